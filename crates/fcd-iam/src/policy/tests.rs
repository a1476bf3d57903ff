use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::*;

const FN_ARN: &str = "acs:fc:cn-hangzhou:123:services/svc.prod/functions/f";

fn ctx<'a>(action: &'a str, resource: &'a str) -> RequestContext<'a> {
    RequestContext {
        action,
        resource,
        source_ip: Some("10.1.2.3".parse().unwrap()),
        // 2019-08-12T09:00:00Z
        current_time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_565_600_400),
        secure_transport: false,
    }
}

fn policy(doc: &str) -> Policy {
    Policy::parse(doc).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

fn allow(action: &str, resource: &str) -> String {
    format!(
        r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"{action}","Resource":"{resource}"}}]}}"#
    )
}

fn malformed_message(doc: &str) -> String {
    match Policy::parse(doc) {
        Err(PolicyError::Malformed(m)) => m,
        other => panic!("{doc}: expected Malformed, got {other:?}"),
    }
}

// ---- parsing -------------------------------------------------------------------------------

#[test]
fn parses_the_system_policies() {
    for doc in [
        r#"{"Statement":[{"Action":"fc:*","Effect":"Allow","Resource":"*"}],"Version":"1"}"#,
        r#"{"Version":"1","Statement":[{"Action":["fc:Get*","fc:List*"],"Effect":"Allow","Resource":"*"}]}"#,
        r#"{"Version":"1","Statement":{"Action":"fc:InvokeFunction","Effect":"Allow","Resource":["*"]}}"#,
        r#"{"Version":"1","Statement":[]}"#,
    ] {
        policy(doc);
    }
}

#[test]
fn malformed_documents_say_what_is_wrong() {
    let cases: &[(&str, &str)] = &[
        ("", "invalid JSON"),
        ("[]", "must be a JSON object, not a list"),
        (r#"{"Statement":[]}"#, "Version is missing"),
        (
            r#"{"Version":"2","Statement":[]}"#,
            "Version \"2\" is not supported",
        ),
        (
            r#"{"Version":1,"Statement":[]}"#,
            "Version must be the string \"1\", not a number",
        ),
        (r#"{"Version":"1"}"#, "Statement is missing"),
        (
            r#"{"Version":"1","Statement":"x"}"#,
            "Statement must be a list",
        ),
        (
            r#"{"Version":"1","Statement":[],"Extra":1}"#,
            "unknown element \"Extra\"",
        ),
        (
            r#"{"Version":"1","Version":"1","Statement":[]}"#,
            "duplicate key \"Version\"",
        ),
        (
            r#"{"Version":"1","Statement":[1]}"#,
            "Statement[0]: a statement must be an object",
        ),
        (
            r#"{"Version":"1","Statement":[{"Action":"fc:*","Resource":"*"}]}"#,
            "Statement[0]: Effect is missing",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"allow","Action":"fc:*","Resource":"*"}]}"#,
            "Effect \"allow\" must be Allow or Deny",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
            "Action (or NotAction) is missing",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","NotAction":"fc:Get*","Resource":"*"}]}"#,
            "either Action or NotAction, not both",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*"}]}"#,
            "Resource is missing",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
            "Action: the list is empty",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"InvokeFunction","Resource":"*"}]}"#,
            "is not an action",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":[1],"Resource":"*"}]}"#,
            "every entry must be a string, not a number",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":""}]}"#,
            "an empty string names nothing",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Principal":{"RAM":"acs:ram::1:root"}}]}"#,
            "Principal belongs in a role's trust policy",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Sid":"x"}]}"#,
            "unknown element \"Sid\"",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"IpAdress":{"acs:SourceIp":"10.0.0.0/8"}}}]}"#,
            "unknown operator \"IpAdress\"",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.300"}}}]}"#,
            "Condition.IpAddress.acs:SourceIp: \"10.0.0.300\" is not an IP address or CIDR block",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.0/33"}}}]}"#,
            "is not an IP address or CIDR block",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"IpAddress":{"acs:CurrentTime":"10.0.0.0/8"}}}]}"#,
            "IpAddress compares an IP address, but acs:CurrentTime is a date",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"NumericLessThan":{"acs:SecureTransport":3}}}]}"#,
            "NumericLessThan compares a number, but acs:SecureTransport is a boolean",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"DateLessThan":{"acs:CurrentTime":"2019-08-12 17:00"}}}]}"#,
            "is not a date",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"DateLessThan":{"acs:CurrentTime":"2019-08-12T17:00:00"}}}]}"#,
            "is not a date",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"Bool":{"acs:SecureTransport":"yes"}}}]}"#,
            "\"yes\" is not true or false",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"NumericEquals":{"fc:Size":"ten"}}}]}"#,
            "\"ten\" is not a number",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"StringEquals":{"acs:SourceIp":null}}}]}"#,
            "a value must be a string, a number or a boolean, not null",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"StringEquals":{"k":[]}}}]}"#,
            "no values",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{"StringEquals":{}}}]}"#,
            "tests no key",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":[]}]}"#,
            "Condition must be an object of operators",
        ),
    ];
    for (doc, want) in cases {
        let msg = malformed_message(doc);
        assert!(msg.contains(want), "{doc}\n  got: {msg}\n  want: {want}");
    }
}

#[test]
fn size_limit_is_in_characters() {
    let pad = |n: usize| {
        let base = allow("fc:*", "*");
        // Whitespace inside the object keeps the document valid.
        format!(
            "{}{}{}",
            &base[..1],
            " ".repeat(n - base.chars().count()),
            &base[1..]
        )
    };
    assert!(Policy::parse(&pad(MAX_POLICY_CHARS)).is_ok());
    assert_eq!(
        Policy::parse(&pad(MAX_POLICY_CHARS + 1)),
        Err(PolicyError::TooLarge {
            len: MAX_POLICY_CHARS + 1,
            max: MAX_POLICY_CHARS
        })
    );
    // Characters, not bytes: 3,000 three-byte characters are within the limit.
    let wide = format!(
        r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"fc:*","Resource":"{}"}}]}}"#,
        "函".repeat(3_000)
    );
    assert!(wide.len() > MAX_POLICY_CHARS);
    assert!(Policy::parse(&wide).is_ok());
}

#[test]
fn operators_are_matched_ignoring_case_and_values_take_any_scalar() {
    policy(
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"fc:*","Resource":"*","Condition":{
            "stringequals":{"k":["a",1,true]},
            "NUMERICLESSTHAN":{"fc:n":[1,"2.5",-3]},
            "Bool":{"acs:SecureTransport":[true,"FALSE"]},
            "DateGreaterThan":{"acs:CurrentTime":["2019-08-12T17:00:00+08:00","2019-08-12T09:00:00Z","2019-08-12T09:00:00.5Z"]},
            "IpAddress":{"ACS:SOURCEIP":["10.0.0.0/8","192.168.1.1","2001:db8::/32","::1"]}
        }}]}"#,
    );
}

// ---- evaluation ----------------------------------------------------------------------------

#[test]
fn actions_and_resources() {
    let cases: &[(&str, &str, &str, &str, bool)] = &[
        // (policy action, policy resource, request action, request resource, allowed)
        ("fc:*", "*", "fc:InvokeFunction", FN_ARN, true),
        ("fc:*", "*", "ram:CreateUser", FN_ARN, false),
        ("FC:invokefunction", "*", "fc:InvokeFunction", FN_ARN, true),
        ("fc:Get*", "*", "fc:GetFunction", FN_ARN, true),
        ("fc:Get*", "*", "fc:InvokeFunction", FN_ARN, false),
        ("fc:Get?unction", "*", "fc:GetFunction", FN_ARN, true),
        (
            "fc:*",
            "acs:fc:*:*:services/svc.prod/functions/*",
            "fc:InvokeFunction",
            FN_ARN,
            true,
        ),
        (
            "fc:*",
            "acs:fc:*:*:services/svc.*/functions/*",
            "fc:InvokeFunction",
            FN_ARN,
            true,
        ),
        (
            "fc:*",
            "acs:fc:*:*:services/svc/functions/*",
            "fc:InvokeFunction",
            FN_ARN,
            false,
        ),
        (
            "fc:*",
            "acs:fc:*:*:services/svc.LATEST/functions/*",
            "fc:InvokeFunction",
            FN_ARN,
            false,
        ),
        (
            "fc:*",
            "acs:fc:*:*:services/*",
            "fc:InvokeFunction",
            FN_ARN,
            true,
        ),
        (
            "fc:*",
            "acs:fc:*:*:services/SVC.prod/functions/*",
            "fc:InvokeFunction",
            FN_ARN,
            false,
        ),
        (
            "fc:*",
            "acs:fc:cn-shanghai:*:*",
            "fc:InvokeFunction",
            FN_ARN,
            false,
        ),
        ("fc:*", "acs:fc:*:124:*", "fc:InvokeFunction", FN_ARN, false),
        ("*", "*", "anything:AtAll", "x", true),
    ];
    for (pa, pr, ra, rr, want) in cases {
        let p = policy(&allow(pa, pr));
        let got = evaluate([&p], &ctx(ra, rr));
        let want = if *want {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        };
        assert_eq!(got, want, "{pa} on {pr} vs {ra} on {rr}");
    }
}

#[test]
fn not_action_covers_everything_else() {
    let p = policy(
        r#"{"Version":"1","Statement":[{"Effect":"Allow","NotAction":["fc:Delete*","fc:Update*"],"Resource":"*"}]}"#,
    );
    assert_eq!(p.evaluate(&ctx("fc:GetFunction", FN_ARN)), Decision::Allow);
    assert_eq!(p.evaluate(&ctx("ram:CreateUser", FN_ARN)), Decision::Allow);
    assert_eq!(
        p.evaluate(&ctx("fc:DeleteService", FN_ARN)),
        Decision::ImplicitDeny
    );
    assert_eq!(
        p.evaluate(&ctx("FC:updatefunction", FN_ARN)),
        Decision::ImplicitDeny
    );
}

#[test]
fn explicit_deny_wins_across_policies_and_order() {
    let allow_all = policy(&allow("*", "*"));
    let deny = policy(
        r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"fc:Delete*","Resource":"acs:fc:*:*:services/prod*"}]}"#,
    );
    let del = ctx("fc:DeleteService", "acs:fc:r:1:services/prod-1");
    assert_eq!(evaluate([&allow_all, &deny], &del), Decision::ExplicitDeny);
    assert_eq!(evaluate([&deny, &allow_all], &del), Decision::ExplicitDeny);
    assert_eq!(evaluate([&deny], &del), Decision::ExplicitDeny);
    let other = ctx("fc:DeleteService", "acs:fc:r:1:services/dev");
    assert_eq!(evaluate([&allow_all, &deny], &other), Decision::Allow);
    assert_eq!(evaluate([] as [&Policy; 0], &other), Decision::ImplicitDeny);
    assert!(!Decision::ExplicitDeny.is_allowed());
    assert!(!Decision::ImplicitDeny.is_allowed());
    assert!(Decision::Allow.is_allowed());
}

fn with_condition(effect: &str, condition: &str) -> Policy {
    policy(&format!(
        r#"{{"Version":"1","Statement":[{{"Effect":"{effect}","Action":"fc:*","Resource":"*","Condition":{condition}}}]}}"#
    ))
}

/// Whether an Allow statement with `condition` allows the request `c`.
fn allows(condition: &str, c: &RequestContext<'_>) -> bool {
    with_condition("Allow", condition).evaluate(c) == Decision::Allow
}

#[test]
fn ip_conditions() {
    let mut c = ctx("fc:InvokeFunction", FN_ARN);
    let cases: &[(&str, &str, bool)] = &[
        (
            "10.1.2.3",
            r#"{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#,
            true,
        ),
        (
            "10.1.2.3",
            r#"{"IpAddress":{"acs:SourceIp":"10.1.2.3"}}"#,
            true,
        ),
        (
            "10.1.2.3",
            r#"{"IpAddress":{"acs:SourceIp":"10.1.2.4"}}"#,
            false,
        ),
        (
            "10.1.2.3",
            r#"{"IpAddress":{"acs:SourceIp":"10.1.2.0/31"}}"#,
            false,
        ),
        (
            "10.1.2.3",
            r#"{"IpAddress":{"acs:SourceIp":"10.1.2.2/31"}}"#,
            true,
        ),
        (
            "10.1.2.3",
            r#"{"IpAddress":{"acs:SourceIp":"0.0.0.0/0"}}"#,
            true,
        ),
        (
            "10.1.2.3",
            r#"{"IpAddress":{"acs:SourceIp":["192.168.0.0/16","10.0.0.0/8"]}}"#,
            true,
        ),
        (
            "10.1.2.3",
            r#"{"IpAddress":{"acs:SourceIp":"::/0"}}"#,
            false,
        ),
        (
            "10.1.2.3",
            r#"{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#,
            false,
        ),
        (
            "10.1.2.3",
            r#"{"NotIpAddress":{"acs:SourceIp":["192.168.0.0/16","172.16.0.0/12"]}}"#,
            true,
        ),
        // Negation is over the whole list: in one of them → not "not in".
        (
            "10.1.2.3",
            r#"{"NotIpAddress":{"acs:SourceIp":["192.168.0.0/16","10.0.0.0/8"]}}"#,
            false,
        ),
        // IPv4-mapped IPv6 peers (a dual-stack listener) are IPv4 peers.
        (
            "::ffff:10.1.2.3",
            r#"{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#,
            true,
        ),
        (
            "10.1.2.3",
            r#"{"IpAddress":{"acs:SourceIp":"::ffff:10.0.0.0/104"}}"#,
            true,
        ),
        (
            "2001:db8::1",
            r#"{"IpAddress":{"acs:SourceIp":"2001:db8::/32"}}"#,
            true,
        ),
        (
            "2001:db9::1",
            r#"{"IpAddress":{"acs:SourceIp":"2001:db8::/32"}}"#,
            false,
        ),
        (
            "2001:db8::1",
            r#"{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#,
            false,
        ),
        ("::1", r#"{"IpAddress":{"acs:SourceIp":"::1/128"}}"#, true),
        (
            "10.1.2.3",
            r#"{"StringLike":{"acs:SourceIp":"10.1.*"}}"#,
            true,
        ),
        (
            "10.1.2.3",
            r#"{"StringEquals":{"acs:SourceIp":"10.1.2.3"}}"#,
            true,
        ),
    ];
    for (ip, cond, want) in cases {
        c.source_ip = Some(ip.parse::<IpAddr>().unwrap());
        assert_eq!(allows(cond, &c), *want, "{ip} vs {cond}");
    }
}

#[test]
fn undecidable_conditions_fail_safe() {
    let mut c = ctx("fc:InvokeFunction", FN_ARN);
    c.source_ip = None;
    let conditions = [
        r#"{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#,
        r#"{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#,
        r#"{"StringEquals":{"acs:SourceIp":"10.1.2.3"}}"#,
        r#"{"StringNotEquals":{"acs:SourceIp":"10.1.2.3"}}"#,
        r#"{"StringEquals":{"acs:Unknown":"x"}}"#,
        r#"{"StringNotEquals":{"acs:Unknown":"x"}}"#,
        r#"{"StringNotLike":{"fc:Whatever":"*"}}"#,
        r#"{"NumericLessThan":{"fc:n":1}}"#,
        r#"{"NumericNotEquals":{"fc:n":1}}"#,
        r#"{"DateNotEquals":{"acs:Other":"2019-08-12T09:00:00Z"}}"#,
        r#"{"Bool":{"fc:flag":true}}"#,
    ];
    for cond in conditions {
        // Missing information never grants access…
        assert_eq!(
            with_condition("Allow", cond).evaluate(&c),
            Decision::ImplicitDeny,
            "Allow {cond}"
        );
        // …and never lifts a denial.
        let both = [&policy(&allow("*", "*")), &with_condition("Deny", cond)];
        assert_eq!(evaluate(both, &c), Decision::ExplicitDeny, "Deny {cond}");
    }
    // With the address known, the Deny with NotIpAddress is decided normally.
    c.source_ip = Some("10.9.9.9".parse().unwrap());
    let both = [
        &policy(&allow("*", "*")),
        &with_condition("Deny", r#"{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#),
    ];
    assert_eq!(evaluate(both, &c), Decision::Allow);
    c.source_ip = Some("11.0.0.1".parse().unwrap());
    assert_eq!(evaluate(both, &c), Decision::ExplicitDeny);
}

#[test]
fn date_conditions() {
    // The request arrives at 2019-08-12T09:00:00Z = 17:00:00+08:00.
    let c = ctx("fc:InvokeFunction", FN_ARN);
    let cases: &[(&str, &str, bool)] = &[
        ("DateLessThan", "2019-08-12T17:00:01+08:00", true),
        ("DateLessThan", "2019-08-12T17:00:00+08:00", false),
        ("DateLessThanEquals", "2019-08-12T17:00:00+08:00", true),
        ("DateEquals", "2019-08-12T09:00:00Z", true),
        ("DateEquals", "2019-08-12T09:00:00.000Z", true),
        ("DateEquals", "2019-08-12T09:00:00.001Z", false),
        ("DateNotEquals", "2019-08-12T09:00:00Z", false),
        ("DateNotEquals", "2020-01-01T00:00:00Z", true),
        ("DateGreaterThan", "2019-08-12T08:59:59Z", true),
        ("DateGreaterThan", "2019-08-12T09:00:00Z", false),
        ("DateGreaterThanEquals", "2019-08-12T09:00:00-00:00", true),
        ("DateGreaterThanEquals", "2019-08-12T10:00:00+01:00", true),
        ("DateGreaterThanEquals", "2019-08-12T10:00:01+01:00", false),
    ];
    for (op, date, want) in cases {
        let cond = format!(r#"{{"{op}":{{"acs:CurrentTime":"{date}"}}}}"#);
        assert_eq!(allows(&cond, &c), *want, "{cond}");
    }
    // Any value: one of them holds.
    assert!(allows(
        r#"{"DateLessThan":{"acs:CurrentTime":["2000-01-01T00:00:00Z","2030-01-01T00:00:00Z"]}}"#,
        &c
    ));
    assert!(allows(
        r#"{"StringLike":{"acs:currenttime":"2019-08-12T09:*Z"}}"#,
        &c
    ));
}

#[test]
fn bool_and_string_conditions() {
    let mut c = ctx("fc:InvokeFunction", FN_ARN);
    assert!(!allows(r#"{"Bool":{"acs:SecureTransport":true}}"#, &c));
    assert!(allows(r#"{"Bool":{"acs:SecureTransport":"false"}}"#, &c));
    c.secure_transport = true;
    assert!(allows(r#"{"Bool":{"acs:SecureTransport":"TRUE"}}"#, &c));
    assert!(allows(
        r#"{"Bool":{"acs:SecureTransport":[false,true]}}"#,
        &c
    ));
    // Every call is signed with an access key: MFA is never present.
    assert!(allows(r#"{"Bool":{"acs:MFAPresent":false}}"#, &c));
    assert!(!allows(r#"{"Bool":{"acs:mfapresent":true}}"#, &c));
    assert!(allows(
        r#"{"StringEquals":{"acs:SecureTransport":"true"}}"#,
        &c
    ));
    assert!(allows(
        r#"{"StringEquals":{"acs:SecureTransport":true}}"#,
        &c
    ));
    assert!(!allows(
        r#"{"StringEquals":{"acs:SecureTransport":"TRUE"}}"#,
        &c
    ));
    assert!(allows(
        r#"{"StringEqualsIgnoreCase":{"acs:SecureTransport":"TRUE"}}"#,
        &c
    ));
    assert!(!allows(
        r#"{"StringNotEqualsIgnoreCase":{"acs:SecureTransport":"TRUE"}}"#,
        &c
    ));
    assert!(allows(
        r#"{"StringNotEquals":{"acs:SecureTransport":["no","false"]}}"#,
        &c
    ));
    assert!(!allows(
        r#"{"StringNotLike":{"acs:SecureTransport":["x*","t*"]}}"#,
        &c
    ));
    assert!(allows(
        r#"{"StringLike":{"acs:SecureTransport":"t?ue"}}"#,
        &c
    ));
}

#[test]
fn every_key_and_operator_must_hold() {
    let mut c = ctx("fc:InvokeFunction", FN_ARN);
    c.secure_transport = true;
    let both = r#"{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"},"Bool":{"acs:SecureTransport":true}}"#;
    assert!(allows(both, &c));
    c.secure_transport = false;
    assert!(!allows(both, &c));
    c.secure_transport = true;
    c.source_ip = Some("11.0.0.1".parse().unwrap());
    assert!(!allows(both, &c));
    // Two keys under one operator: both must hold.
    let two_keys = r#"{"StringEquals":{"acs:SecureTransport":"true","acs:MFAPresent":"true"}}"#;
    assert!(!allows(two_keys, &c));
}

#[test]
fn numeric_comparisons() {
    // No known key is a number, so the comparisons are tested directly.
    assert!(Cmp::Lt.holds(1.0, 2.0));
    assert!(!Cmp::Lt.holds(2.0, 2.0));
    assert!(Cmp::Le.holds(2.0, 2.0));
    assert!(Cmp::Gt.holds(3.0, 2.0));
    assert!(Cmp::Ge.holds(2.0, 2.0));
    assert!(Cmp::Eq.holds(2.0, 2.0));
    assert!(!Cmp::Eq.holds(2.5, 2.0));
}

#[test]
fn session_policy_narrows() {
    let role = [policy(&allow("fc:*", "*"))];
    let session = policy(&allow(
        "fc:InvokeFunction",
        "acs:fc:*:*:services/svc.prod/*",
    ));
    let invoke = ctx("fc:InvokeFunction", FN_ARN);
    let delete = ctx("fc:DeleteService", "acs:fc:r:1:services/svc");
    assert_eq!(
        evaluate_session(&role, Some(&session), &invoke),
        Decision::Allow
    );
    assert_eq!(
        evaluate_session(&role, Some(&session), &delete),
        Decision::ImplicitDeny
    );
    assert_eq!(evaluate_session(&role, None, &delete), Decision::Allow);
    // A session policy cannot widen the role.
    let narrow_role = [policy(&allow("fc:Get*", "*"))];
    let wide_session = policy(&allow("*", "*"));
    assert_eq!(
        evaluate_session(&narrow_role, Some(&wide_session), &invoke),
        Decision::ImplicitDeny
    );
    // A Deny in either denies.
    let deny = policy(
        r#"{"Version":"1","Statement":{"Effect":"Deny","Action":"fc:InvokeFunction","Resource":"*"}}"#,
    );
    assert_eq!(
        evaluate_session(&role, Some(&deny), &invoke),
        Decision::ExplicitDeny
    );
    let role_with_deny = [policy(&allow("*", "*")), deny.clone()];
    assert_eq!(
        evaluate_session(&role_with_deny, Some(&wide_session), &invoke),
        Decision::ExplicitDeny
    );
}

// ---- trust policies ------------------------------------------------------------------------

fn trust(principal: &str) -> TrustPolicy {
    let doc = format!(
        r#"{{"Statement":[{{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{principal}}}],"Version":"1"}}"#
    );
    TrustPolicy::parse(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"))
}

const ALICE: TrustedPrincipal<'static> = TrustedPrincipal::Ram {
    account_id: "123",
    arn: "acs:ram::123:user/alice",
};
const BOB_OTHER_ACCOUNT: TrustedPrincipal<'static> = TrustedPrincipal::Ram {
    account_id: "456",
    arn: "acs:ram::456:user/bob",
};

#[test]
fn trust_root_trusts_the_whole_account() {
    let t = trust(r#"{"RAM":["acs:ram::123:root"]}"#);
    assert!(t.trusts(&ALICE));
    assert!(t.trusts(&TrustedPrincipal::Ram {
        account_id: "123",
        arn: "acs:ram::123:role/r/session",
    }));
    assert!(!t.trusts(&BOB_OTHER_ACCOUNT));
    assert!(!t.trusts(&TrustedPrincipal::Service("fc.aliyuncs.com")));
}

#[test]
fn trust_exact_identities_and_services() {
    let t = trust(r#"{"RAM":"acs:ram::123:user/alice","Service":["fc.aliyuncs.com"]}"#);
    assert!(t.trusts(&ALICE));
    assert!(!t.trusts(&TrustedPrincipal::Ram {
        account_id: "123",
        arn: "acs:ram::123:user/alice2",
    }));
    assert!(t.trusts(&TrustedPrincipal::Service("FC.aliyuncs.com")));
    assert!(!t.trusts(&TrustedPrincipal::Service("oss.aliyuncs.com")));
}

#[test]
fn trust_deny_wins_and_actions_are_globs() {
    let doc = r#"{"Version":"1","Statement":[
        {"Action":"sts:*","Effect":"Allow","Principal":{"RAM":"acs:ram::123:root"}},
        {"Action":"sts:AssumeRole","Effect":"Deny","Principal":{"RAM":["acs:ram::123:user/alice"]}}
    ]}"#;
    let t = TrustPolicy::parse(doc).unwrap();
    assert!(!t.trusts(&ALICE));
    assert!(t.trusts(&TrustedPrincipal::Ram {
        account_id: "123",
        arn: "acs:ram::123:user/carol",
    }));
    let other_action = r#"{"Version":"1","Statement":{"Action":"sts:GetCallerIdentity","Effect":"Allow","Principal":{"RAM":"acs:ram::123:root"}}}"#;
    assert!(!TrustPolicy::parse(other_action).unwrap().trusts(&ALICE));
}

#[test]
fn trust_malformed() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"RAM":"acs:ram::123:user/*"}"#,
            "must be acs:ram::<account>:root",
        ),
        (
            r#"{"RAM":"acs:ram:cn:123:root"}"#,
            "must be acs:ram::<account>:root",
        ),
        (
            r#"{"RAM":"acs:ram::abc:root"}"#,
            "must be acs:ram::<account>:root",
        ),
        (
            r#"{"RAM":"acs:ram::123:group/g"}"#,
            "must be acs:ram::<account>:root",
        ),
        (r#"{"RAM":[]}"#, "Principal.RAM: the list is empty"),
        (r#"{"Service":"*"}"#, "must name one service"),
        (
            r#"{"Federated":"x"}"#,
            "Federated principals are not supported",
        ),
        (r#"{"AWS":"x"}"#, "unknown principal type \"AWS\""),
        (r#"{}"#, "Principal names nobody"),
        (r#""*""#, "Principal must be an object"),
    ];
    for (principal, want) in cases {
        let doc = format!(
            r#"{{"Statement":[{{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{principal}}}],"Version":"1"}}"#
        );
        match TrustPolicy::parse(&doc) {
            Err(PolicyError::Malformed(m)) => assert!(m.contains(want), "{doc}: {m}"),
            other => panic!("{doc}: {other:?}"),
        }
    }
    for (doc, want) in [
        (
            r#"{"Version":"1","Statement":[{"Action":"sts:AssumeRole","Effect":"Allow"}]}"#,
            "Principal is missing",
        ),
        (
            r#"{"Version":"1","Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"RAM":"acs:ram::1:root"},"Resource":"*"}]}"#,
            "a trust policy has no Resource",
        ),
        (
            r#"{"Version":"1","Statement":[{"Action":"sts:AssumeRole","Effect":"Allow","Principal":{"RAM":"acs:ram::1:root"},"Condition":{}}]}"#,
            "conditions are not supported in trust policies",
        ),
    ] {
        match TrustPolicy::parse(doc) {
            Err(PolicyError::Malformed(m)) => assert!(m.contains(want), "{doc}: {m}"),
            other => panic!("{doc}: {other:?}"),
        }
    }
}

// ---- properties ----------------------------------------------------------------------------

/// Documents built from policy-shaped pieces, so the generator reaches deep into the parser
/// (random bytes mostly stop at the JSON syntax).
fn document() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        Just("\"*\"".to_owned()),
        Just("\"10.0.0.0/8\"".to_owned()),
        Just("\"2019-08-12T17:00:00+08:00\"".to_owned()),
        Just("true".to_owned()),
        Just("1.5".to_owned()),
        Just("null".to_owned()),
        "\"[a-z:*?/.]{0,8}\"".prop_map(|s| s),
    ];
    let values = prop_oneof![
        scalar.clone(),
        prop::collection::vec(scalar, 0..3).prop_map(|v| format!("[{}]", v.join(","))),
    ];
    let op = prop_oneof![
        Just("StringLike"),
        Just("NotIpAddress"),
        Just("IpAddress"),
        Just("DateLessThan"),
        Just("Bool"),
        Just("NumericEquals"),
        Just("Nope"),
    ];
    let key = prop_oneof![
        Just("acs:SourceIp"),
        Just("acs:CurrentTime"),
        Just("acs:SecureTransport"),
        Just("acs:MFAPresent"),
        Just("x:y"),
    ];
    let condition = (op, key, values.clone())
        .prop_map(|(o, k, v)| format!(r#","Condition":{{"{o}":{{"{k}":{v}}}}}"#));
    let statement = (
        prop_oneof![Just("Allow"), Just("Deny"), Just("Maybe")],
        prop_oneof![Just("Action"), Just("NotAction")],
        values.clone(),
        values,
        prop::option::of(condition),
    )
        .prop_map(|(e, a, av, rv, c)| {
            format!(
                r#"{{"Effect":"{e}","{a}":{av},"Resource":{rv}{}}}"#,
                c.unwrap_or_default()
            )
        });
    prop::collection::vec(statement, 0..4)
        .prop_map(|s| format!(r#"{{"Version":"1","Statement":[{}]}}"#, s.join(",")))
}

fn request_parts() -> impl Strategy<Value = (String, String, Option<IpAddr>, u64, bool)> {
    (
        "(fc|sts|ram|FC):[A-Za-z*]{0,12}",
        "[a-z:*/.0-9]{0,30}",
        prop::option::of(any::<IpAddr>()),
        0u64..4_000_000_000,
        any::<bool>(),
    )
}

fn simple_policy() -> impl Strategy<Value = Policy> {
    (
        prop_oneof![Just("Allow"), Just("Deny")],
        prop_oneof![Just("*"), Just("fc:*"), Just("fc:Get*"), Just("fc:InvokeFunction")],
        prop_oneof![Just("*"), Just("acs:fc:*:*:services/a*"), Just("acs:fc:*:*:services/b/*")],
        prop_oneof![
            Just(""),
            Just(r#","Condition":{"IpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#),
            Just(r#","Condition":{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}"#),
            Just(r#","Condition":{"Bool":{"acs:SecureTransport":true}}"#),
        ],
    )
        .prop_map(|(e, a, r, c)| {
            policy(&format!(
                r#"{{"Version":"1","Statement":{{"Effect":"{e}","Action":"{a}","Resource":"{r}"{c}}}}}"#
            ))
        })
}

fn simple_request() -> impl Strategy<Value = (String, String, Option<IpAddr>, bool)> {
    (
        prop_oneof![
            Just("fc:GetFunction"),
            Just("fc:InvokeFunction"),
            Just("fc:DeleteService")
        ],
        prop_oneof![
            Just("acs:fc:r:1:services/a"),
            Just("acs:fc:r:1:services/b/functions/f"),
            Just("acs:fc:r:1:services/c")
        ],
        prop::option::of(prop_oneof![
            Just("10.1.1.1".parse::<IpAddr>().unwrap()),
            Just("11.1.1.1".parse::<IpAddr>().unwrap()),
        ]),
        any::<bool>(),
    )
        .prop_map(|(a, r, ip, tls)| (a.to_owned(), r.to_owned(), ip, tls))
}

/// Any JSON value, with the policy's element names and operators among its keys.
fn any_json() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::String),
        Just(Value::String("1".into())),
        Just(Value::String("Allow".into())),
        Just(Value::String("Deny".into())),
    ];
    let key = prop_oneof![
        Just("Version"),
        Just("Statement"),
        Just("Effect"),
        Just("Action"),
        Just("NotAction"),
        Just("Resource"),
        Just("Condition"),
        Just("Principal"),
        Just("RAM"),
        Just("Service"),
        Just("StringLike"),
        Just("IpAddress"),
        Just("DateEquals"),
        Just("Bool"),
        Just("acs:SourceIp"),
        Just("acs:CurrentTime"),
        Just("x"),
    ]
    .prop_map(str::to_owned);
    leaf.prop_recursive(5, 64, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #[test]
    fn parse_never_panics_on_json(value in any_json()) {
        let text = value.to_string();
        let _ = Policy::parse(&text);
        let _ = TrustPolicy::parse(&text);
    }

    #[test]
    fn parse_never_panics_on_strings(s in "\\PC{0,200}") {
        let _ = Policy::parse(&s);
        let _ = TrustPolicy::parse(&s);
    }

    #[test]
    fn parse_and_evaluate_never_panic_on_policy_shapes(
        doc in document(),
        (action, resource, ip, secs, tls) in request_parts(),
    ) {
        let _ = TrustPolicy::parse(&doc);
        if let Ok(p) = Policy::parse(&doc) {
            let c = RequestContext {
                action: &action,
                resource: &resource,
                source_ip: ip,
                current_time: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
                secure_transport: tls,
            };
            let _ = p.evaluate(&c);
        }
    }

    #[test]
    fn deny_wins(
        policies in prop::collection::vec(simple_policy(), 1..5),
        (action, resource, ip, tls) in simple_request(),
    ) {
        let c = RequestContext {
            action: &action,
            resource: &resource,
            source_ip: ip,
            current_time: SystemTime::UNIX_EPOCH,
            secure_transport: tls,
        };
        let each: Vec<Decision> = policies.iter().map(|p| p.evaluate(&c)).collect();
        let all = evaluate(&policies, &c);
        let want = if each.contains(&Decision::ExplicitDeny) {
            Decision::ExplicitDeny
        } else if each.contains(&Decision::Allow) {
            Decision::Allow
        } else {
            Decision::ImplicitDeny
        };
        prop_assert_eq!(all, want);
        // Adding any policy never turns a denial into an allow.
        let mut more = policies.clone();
        more.push(policy(&allow("*", "*")));
        if all == Decision::ExplicitDeny {
            prop_assert_eq!(evaluate(&more, &c), Decision::ExplicitDeny);
        }
    }

    #[test]
    fn session_never_widens(
        role in prop::collection::vec(simple_policy(), 0..4),
        session in prop::option::of(simple_policy()),
        (action, resource, ip, tls) in simple_request(),
    ) {
        let c = RequestContext {
            action: &action,
            resource: &resource,
            source_ip: ip,
            current_time: SystemTime::UNIX_EPOCH,
            secure_transport: tls,
        };
        let alone = evaluate(&role, &c);
        let narrowed = evaluate_session(&role, session.as_ref(), &c);
        if narrowed.is_allowed() {
            prop_assert!(alone.is_allowed());
            if let Some(s) = &session {
                prop_assert!(s.evaluate(&c).is_allowed());
            }
        }
        if alone == Decision::ExplicitDeny {
            prop_assert_eq!(narrowed, Decision::ExplicitDeny);
        }
    }
}

#[test]
fn times_without_rfc3339_text_are_undecidable_not_a_panic() {
    let mut c = ctx("fc:InvokeFunction", FN_ARN);
    c.current_time = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::MAX / 4);
    assert!(!allows(r#"{"StringLike":{"acs:CurrentTime":"*"}}"#, &c));
    assert!(allows(
        r#"{"DateGreaterThan":{"acs:CurrentTime":"9999-12-31T23:59:59Z"}}"#,
        &c
    ));
    c.current_time = SystemTime::UNIX_EPOCH - Duration::from_secs(86_400);
    assert!(allows(
        r#"{"StringLike":{"acs:CurrentTime":"1969-12-31T00:00:00Z"}}"#,
        &c
    ));
}
