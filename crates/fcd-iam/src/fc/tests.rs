use proptest::prelude::*;

use super::*;

fn op(method: &str, path: &str, qualifier: Option<&str>) -> Option<(&'static str, String)> {
    operation(method, path, qualifier).map(|o| (o.action, o.resource))
}

#[test]
fn the_route_table_builds() {
    assert!(ROUTER.is_some());
}

/// Every route, both prefixes: (method, path below the prefix, query qualifier, action,
/// resource).
const TABLE: &[(&str, &str, Option<&str>, &str, &str)] = &[
    ("GET", "/services", None, "fc:ListServices", "services/*"),
    ("POST", "/services", None, "fc:CreateService", "services/*"),
    ("GET", "/services/s", None, "fc:GetService", "services/s"),
    (
        "GET",
        "/services/s",
        Some("prod"),
        "fc:GetService",
        "services/s.prod",
    ),
    (
        "GET",
        "/services/s.1",
        None,
        "fc:GetService",
        "services/s.1",
    ),
    ("PUT", "/services/s", None, "fc:UpdateService", "services/s"),
    (
        "PUT",
        "/services/s",
        Some("prod"),
        "fc:UpdateService",
        "services/s",
    ),
    (
        "DELETE",
        "/services/s",
        None,
        "fc:DeleteService",
        "services/s",
    ),
    (
        "GET",
        "/services/s/functions",
        None,
        "fc:ListFunctions",
        "services/s/functions/*",
    ),
    (
        "GET",
        "/services/s/functions",
        Some("2"),
        "fc:ListFunctions",
        "services/s.2/functions/*",
    ),
    (
        "POST",
        "/services/s/functions",
        None,
        "fc:CreateFunction",
        "services/s/functions/*",
    ),
    (
        "GET",
        "/services/s/functions/f",
        None,
        "fc:GetFunction",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f",
        Some("a"),
        "fc:GetFunction",
        "services/s.a/functions/f",
    ),
    (
        "PUT",
        "/services/s/functions/f",
        None,
        "fc:UpdateFunction",
        "services/s/functions/f",
    ),
    (
        "DELETE",
        "/services/s/functions/f",
        None,
        "fc:DeleteFunction",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/code",
        None,
        "fc:GetFunctionCode",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/code",
        Some("3"),
        "fc:GetFunctionCode",
        "services/s.3/functions/f",
    ),
    (
        "POST",
        "/services/s/functions/f/invocations",
        None,
        "fc:InvokeFunction",
        "services/s.LATEST/functions/f",
    ),
    (
        "POST",
        "/services/s/functions/f/invocations",
        Some("prod"),
        "fc:InvokeFunction",
        "services/s.prod/functions/f",
    ),
    (
        "POST",
        "/services/s.prod/functions/f/invocations",
        None,
        "fc:InvokeFunction",
        "services/s.prod/functions/f",
    ),
    (
        "POST",
        "/services/s.prod/functions/f/invocations",
        Some("other"),
        "fc:InvokeFunction",
        "services/s.prod/functions/f",
    ),
    (
        "POST",
        "/services/s/functions/f/invocations",
        Some(""),
        "fc:InvokeFunction",
        "services/s.LATEST/functions/f",
    ),
    (
        "GET",
        "/services/s/versions",
        None,
        "fc:ListServiceVersions",
        "services/s/versions/*",
    ),
    (
        "POST",
        "/services/s/versions",
        None,
        "fc:PublishServiceVersion",
        "services/s/versions/*",
    ),
    (
        "DELETE",
        "/services/s/versions/3",
        None,
        "fc:DeleteServiceVersion",
        "services/s/versions/3",
    ),
    (
        "GET",
        "/services/s/aliases",
        None,
        "fc:ListAliases",
        "services/s/aliases/*",
    ),
    (
        "POST",
        "/services/s/aliases",
        None,
        "fc:CreateAlias",
        "services/s/aliases/*",
    ),
    (
        "GET",
        "/services/s/aliases/prod",
        None,
        "fc:GetAlias",
        "services/s/aliases/prod",
    ),
    (
        "PUT",
        "/services/s/aliases/prod",
        None,
        "fc:UpdateAlias",
        "services/s/aliases/prod",
    ),
    (
        "DELETE",
        "/services/s/aliases/prod",
        None,
        "fc:DeleteAlias",
        "services/s/aliases/prod",
    ),
    (
        "PUT",
        "/services/s/functions/f/on-demand-config",
        Some("prod"),
        "fc:PutFunctionOnDemandConfig",
        "services/s.prod/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/on-demand-config",
        None,
        "fc:GetFunctionOnDemandConfig",
        "services/s/functions/f",
    ),
    (
        "DELETE",
        "/services/s/functions/f/on-demand-config",
        Some("LATEST"),
        "fc:DeleteFunctionOnDemandConfig",
        "services/s.LATEST/functions/f",
    ),
    (
        "GET",
        "/on-demand-configs",
        None,
        "fc:ListOnDemandConfigs",
        "services/*",
    ),
    (
        "PUT",
        "/services/s/functions/f/provision-config",
        Some("prod"),
        "fc:PutProvisionConfig",
        "services/s.prod/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/provision-config",
        None,
        "fc:GetProvisionConfig",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/provision-configs",
        Some("prod"),
        "fc:ListProvisionConfigs",
        "services/*",
    ),
    (
        "GET",
        "/services/s/functions/f/async-invoke-config",
        None,
        "fc:GetFunctionAsyncInvokeConfig",
        "services/s/functions/f",
    ),
    (
        "PUT",
        "/services/s/functions/f/async-invoke-config",
        Some("1"),
        "fc:PutFunctionAsyncInvokeConfig",
        "services/s.1/functions/f",
    ),
    (
        "DELETE",
        "/services/s/functions/f/async-invoke-config",
        Some("a"),
        "fc:DeleteFunctionAsyncInvokeConfig",
        "services/s.a/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/async-invoke-configs",
        Some("a"),
        "fc:ListFunctionAsyncInvokeConfigs",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/stateful-async-invocations",
        None,
        "fc:ListStatefulAsyncInvocations",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/stateful-async-invocations",
        Some("p"),
        "fc:ListStatefulAsyncInvocations",
        "services/s.p/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/stateful-async-invocations/id-1",
        None,
        "fc:GetStatefulAsyncInvocation",
        "services/s/functions/f/stateful-async-invocations/id-1",
    ),
    (
        "GET",
        "/services/s.p/functions/f/stateful-async-invocations/id-1",
        Some("q"),
        "fc:GetStatefulAsyncInvocation",
        "services/s/functions/f/stateful-async-invocations/id-1",
    ),
    (
        "PUT",
        "/services/s/functions/f/stateful-async-invocations/id-1",
        None,
        "fc:StopStatefulAsyncInvocation",
        "services/s/functions/f/stateful-async-invocations/id-1",
    ),
    (
        "GET",
        "/stateful-async-invocation-functions",
        None,
        "fc:ListStatefulAsyncInvocationFunctions",
        "services/*",
    ),
    (
        "GET",
        "/services/s/functions/f/instances",
        None,
        "fc:ListInstances",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/instances",
        Some("prod"),
        "fc:ListInstances",
        "services/s.prod/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/triggers",
        None,
        "fc:ListTriggers",
        "services/s/functions/f/triggers/*",
    ),
    (
        "POST",
        "/services/s/functions/f/triggers",
        None,
        "fc:CreateTrigger",
        "services/s/functions/f/triggers/*",
    ),
    (
        "GET",
        "/services/s/functions/f/triggers/t",
        None,
        "fc:GetTrigger",
        "services/s/functions/f/triggers/t",
    ),
    (
        "PUT",
        "/services/s/functions/f/triggers/t",
        None,
        "fc:UpdateTrigger",
        "services/s/functions/f/triggers/t",
    ),
    (
        "DELETE",
        "/services/s/functions/f/triggers/t",
        None,
        "fc:DeleteTrigger",
        "services/s/functions/f/triggers/t",
    ),
    (
        "GET",
        "/custom-domains",
        None,
        "fc:ListCustomDomains",
        "custom-domains/*",
    ),
    (
        "POST",
        "/custom-domains",
        None,
        "fc:CreateCustomDomain",
        "custom-domains/*",
    ),
    (
        "GET",
        "/custom-domains/example.com",
        None,
        "fc:GetCustomDomain",
        "custom-domains/example.com",
    ),
    (
        "PUT",
        "/custom-domains/example.com",
        None,
        "fc:UpdateCustomDomain",
        "custom-domains/example.com",
    ),
    (
        "DELETE",
        "/custom-domains/example.com",
        None,
        "fc:DeleteCustomDomain",
        "custom-domains/example.com",
    ),
];

#[test]
fn every_route_under_both_prefixes() {
    for prefix in API_PREFIXES {
        for (method, path, q, action, resource) in TABLE {
            let full = format!("{prefix}{path}");
            assert_eq!(
                op(method, &full, *q),
                Some((*action, resource.to_string())),
                "{method} {full} qualifier={q:?}"
            );
        }
    }
}

#[test]
fn every_table_route_is_tested() {
    for (pattern, methods) in ROUTES {
        for (method, action, _) in *methods {
            assert!(
                TABLE
                    .iter()
                    .any(|(m, _, _, a, _)| m == method && a == action),
                "{method} {pattern} ({action}) has no test"
            );
        }
    }
}

#[test]
fn methods_the_router_does_not_serve() {
    let p = "/2021-04-06/services/s/functions/f";
    assert_eq!(op("POST", p, None), None);
    assert_eq!(op("PATCH", p, None), None);
    assert_eq!(op("OPTIONS", p, None), None);
    assert_eq!(op("get", p, None), None, "methods are case-sensitive");
    // axum routes HEAD to the GET handler.
    assert_eq!(
        op("HEAD", p, None),
        Some(("fc:GetFunction", "services/s/functions/f".into()))
    );
    assert_eq!(
        op(
            "HEAD",
            "/2021-04-06/services/s/functions/f/invocations",
            None
        ),
        None
    );
}

#[test]
fn unknown_paths() {
    for path in [
        "",
        "/",
        "/services",
        "/2021-04-06",
        "/2021-04-06/",
        "/2021-04-06/services/",
        "/2021-04-06/services/s/",
        "/2021-04-06/services/s/functions/",
        "/2021-04-06/services/s/functions/f/",
        "/2021-04-06/Services",
        "/2021%2D04-06/services",
        "/2023-03-30/services",
        "/2021-04-06/layers",
        "/2021-04-06/services/s/functions/f/nothing",
        "/2021-04-06//services",
        "/code-packages/abc",
        "/metrics",
        "/status",
        "/2021-04-06/services?x=1",
    ] {
        assert_eq!(op("GET", path, None), None, "{path}");
    }
}

#[test]
fn segments_are_percent_decoded_like_the_router() {
    let plain = op("GET", "/2021-04-06/services/secret/functions/f", None);
    let encoded = op("GET", "/2021-04-06/services/secre%74/functions/f", None);
    assert_eq!(
        plain,
        Some(("fc:GetFunction", "services/secret/functions/f".into()))
    );
    assert_eq!(encoded, plain);
    assert_eq!(
        op(
            "POST",
            "/2016-08-15/services/%73ecret%2Eprod/functions/%66/invocations",
            None
        ),
        Some((
            "fc:InvokeFunction",
            "services/secret.prod/functions/f".into()
        ))
    );
    // Lower- and upper-case hex alike; `+` stays a `+` in a path.
    assert_eq!(
        op("GET", "/2021-04-06/services/a%2bb+c/functions/%c3%A9", None),
        Some(("fc:GetFunction", "services/a+b+c/functions/é".into()))
    );
    // An encoded slash stays inside its segment, as the handler sees it.
    assert_eq!(
        op("GET", "/2021-04-06/services/a%2Fb", None),
        Some(("fc:GetService", "services/a/b".into()))
    );
    // A `%` that is not an escape is kept, as percent-decoding keeps it.
    assert_eq!(
        op("GET", "/2021-04-06/services/100%", None),
        Some(("fc:GetService", "services/100%".into()))
    );
    // Not UTF-8 once decoded: axum refuses the request, so there is no operation.
    assert_eq!(op("GET", "/2021-04-06/services/%FF", None), None);
    assert_eq!(
        op("GET", "/2021-04-06/services/s/functions/%C3", None),
        None
    );
}

#[test]
fn empty_segments_route_as_the_router_routes_them() {
    // matchit lets a parameter in the middle of a path be empty, never a trailing one.
    assert_eq!(
        op("GET", "/2021-04-06/services//functions/f", None),
        Some(("fc:GetFunction", "services//functions/f".into()))
    );
    assert_eq!(op("GET", "/2021-04-06/services/s/functions/", None), None);
}

#[test]
fn qualifiers_as_the_handlers_read_them() {
    let invoke = |path: &str, q: Option<&str>| op("POST", path, q).map(|(_, r)| r);
    // The path's qualifier wins; an empty one is none (and the query is not consulted).
    assert_eq!(
        invoke(
            "/2021-04-06/services/s.a/functions/f/invocations",
            Some("b")
        ),
        Some("services/s.a/functions/f".into())
    );
    assert_eq!(
        invoke("/2021-04-06/services/s./functions/f/invocations", Some("b")),
        Some("services/s.LATEST/functions/f".into())
    );
    // Split at the first dot.
    assert_eq!(
        invoke("/2021-04-06/services/s.a.b/functions/f/invocations", None),
        Some("services/s.a.b/functions/f".into())
    );
    // Operations without a qualifier name the service alone.
    assert_eq!(
        op("PUT", "/2016-08-15/services/s.prod/functions/f", None),
        Some(("fc:UpdateFunction", "services/s/functions/f".into()))
    );
}

#[test]
fn query_qualifier_reads_the_query_like_the_handlers() {
    assert_eq!(query_qualifier(None), None);
    assert_eq!(query_qualifier(Some("")), None);
    assert_eq!(query_qualifier(Some("limit=3")), None);
    assert_eq!(query_qualifier(Some("qualifier=prod")), Some("prod".into()));
    assert_eq!(query_qualifier(Some("qualifier=")), Some("".into()));
    assert_eq!(
        query_qualifier(Some("qualifier=a&qualifier=b")),
        Some("b".into())
    );
    assert_eq!(
        query_qualifier(Some("qualifier=a+b%2Fc")),
        Some("a b/c".into())
    );
    assert_eq!(query_qualifier(Some("Qualifier=a")), None);
}

#[test]
fn arns() {
    assert_eq!(
        arn("cn-hangzhou", "123", "services/s.LATEST/functions/f"),
        "acs:fc:cn-hangzhou:123:services/s.LATEST/functions/f"
    );
}

/// Percent-encodes any subset of a segment's characters.
fn encode_some(segment: &str, mask: &[bool]) -> String {
    let mut out = String::new();
    for (i, c) in segment.chars().enumerate() {
        if mask.get(i).copied().unwrap_or(false) || c == '/' || c == '%' || c == '?' || c == '#' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

proptest! {
    #[test]
    fn never_panics(method in "[A-Za-z]{0,8}", path in "\\PC{0,80}", q in prop::option::of("\\PC{0,10}")) {
        let _ = operation(&method, &path, q.as_deref());
    }

    #[test]
    fn never_panics_on_route_shaped_paths(
        segs in prop::collection::vec(prop_oneof![
            Just("services".to_owned()), Just("functions".to_owned()), Just("".to_owned()),
            Just("invocations".to_owned()), "[a-z.%0-9A-F]{0,6}".prop_map(|s| s),
        ], 0..8),
        prefix in prop_oneof![Just("/2021-04-06"), Just("/2016-08-15")],
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE"), Just("HEAD")],
    ) {
        let path = format!("{prefix}/{}", segs.join("/"));
        let _ = operation(method, &path, None);
    }

    #[test]
    fn encoding_never_changes_the_operation(
        service in "\\PC{1,8}",
        function in "\\PC{1,8}",
        mask in prop::collection::vec(any::<bool>(), 16),
        q in prop::option::of("[a-zA-Z0-9]{0,5}"),
    ) {
        for (method, tail) in [("POST", "/invocations"), ("GET", ""), ("GET", "/code")] {
            let plain = format!(
                "/2021-04-06/services/{}/functions/{}{tail}",
                encode_some(&service, &[]),
                encode_some(&function, &[]),
            );
            let encoded = format!(
                "/2021-04-06/services/{}/functions/{}{tail}",
                encode_some(&service, &mask),
                encode_some(&function, &mask[8..]),
            );
            prop_assert_eq!(operation(method, &plain, q.as_deref()), operation(method, &encoded, q.as_deref()));
            let got = operation(method, &plain, q.as_deref());
            prop_assert!(got.is_some(), "{} {}", method, plain);
        }
    }
}
