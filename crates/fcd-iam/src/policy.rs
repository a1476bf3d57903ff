//! The RAM policy language: `{"Version":"1","Statement":[{Effect, Action|NotAction, Resource,
//! Condition?}]}` for identity policies, and `Principal`-bearing trust policies for roles.
//!
//! # Parsing
//!
//! A document is at most [`MAX_POLICY_CHARS`] characters. `Version` must be `"1"`;
//! `Statement` is a list of statements or a single one. Element names are case-sensitive and
//! unknown elements are refused, as are duplicate keys in any object (`{"Effect":"Deny",
//! "Effect":"Allow"}` means different things to different parsers). `Action`, `NotAction`,
//! `Resource` and condition values take a single value or a non-empty list. Every refusal is
//! [`PolicyError::Malformed`] naming the element at fault.
//!
//! # Matching
//!
//! Actions are case-insensitive wildcard patterns and resources case-sensitive ones (see
//! [`crate::glob`]: `*` any run of characters including `/`, `?` one character).
//!
//! # Conditions
//!
//! `Condition` maps operators to keys to values. Operator names are matched ignoring ASCII
//! case; an **unknown operator is refused** when the policy is parsed (a typo would otherwise
//! silently change what the policy means), and so is an operator that cannot test a known key
//! (`IpAddress` on `acs:CurrentTime`, any `Numeric*` on a known key — none of them is a number).
//! Keys are case-insensitive. Known keys and what they hold in a request:
//!
//! | key | type | value |
//! |---|---|---|
//! | `acs:SourceIp` | IP address | the TCP peer (IPv4-mapped IPv6 addresses count as IPv4) |
//! | `acs:CurrentTime` | date | when the request arrived |
//! | `acs:SecureTransport` | boolean | whether the request came over TLS |
//! | `acs:MFAPresent` | boolean | always `false`: every call is signed with an access key |
//!
//! `String*` operators also test every known key through its text (`10.0.0.1`,
//! `2019-08-12T09:00:00Z` in UTC, `true`). Values may be written as strings, numbers or
//! booleans, and are validated for their operator when the policy is parsed (`Date*`: RFC 3339
//! with `Z` or an offset; `IpAddress`: an address or CIDR block, IPv4 or IPv6; `Bool`: `true`
//! or `false`).
//!
//! A key matches when **any** of its values matches; a negated operator (`…NotEquals`,
//! `StringNotLike`, `NotIpAddress`) matches when **none** does, i.e. it is the negation of
//! the positive operator over the whole list. Every key of every operator must match.
//!
//! **Undecidable conditions fail safe.** When a condition's key has no value in the request
//! (an unknown key, a source address that is not known), the condition cannot be decided. It
//! then counts as *not met* in an `Allow` statement and as *met* in a `Deny` statement —
//! whether the operator is negated or not — so missing information never grants access and
//! never lifts a denial (a `Deny` with `NotIpAddress` still denies a request from an unknown
//! address).

use std::net::IpAddr;
use std::time::SystemTime;

use crate::glob::{Glob, fold};
use crate::json::Json;

/// RAM's limit on a policy document, in characters.
pub const MAX_POLICY_CHARS: usize = 6_144;

/// Why a policy document was refused (RAM: `MalformedPolicyDocument`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("the policy document is malformed: {0}")]
    Malformed(String),
    #[error("the policy document is {len} characters long; at most {max} are allowed")]
    TooLarge { len: usize, max: usize },
}

/// An identity (permission) policy, parsed and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    statements: Vec<Statement>,
}

impl Policy {
    /// Parses and validates a policy document (at most 6,144 characters, as RAM).
    pub fn parse(document: &str) -> Result<Policy, PolicyError> {
        let statements = parse_document(document, Kind::Identity)?
            .into_iter()
            .map(|s| s.statement)
            .collect();
        Ok(Policy { statements })
    }

    /// The decision of this policy alone.
    pub fn evaluate(&self, ctx: &RequestContext<'_>) -> Decision {
        evaluate([self], ctx)
    }
}

/// What is being asked: one action on one resource, with the condition keys' values.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    /// `fc:InvokeFunction`, `ram:CreateUser`, `sts:AssumeRole`, …
    pub action: &'a str,
    /// The full ARN, `acs:fc:cn-hangzhou:123:services/s.prod/functions/f`.
    pub resource: &'a str,
    /// `acs:SourceIp`: the TCP peer.
    pub source_ip: Option<IpAddr>,
    /// `acs:CurrentTime`: when the request arrived.
    pub current_time: SystemTime,
    /// `acs:SecureTransport`.
    pub secure_transport: bool,
}

/// The outcome of evaluating a request against a set of policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A Deny statement matched: nothing else can allow the request.
    ExplicitDeny,
    /// Nothing matched: denied by default.
    ImplicitDeny,
}

impl Decision {
    pub fn is_allowed(self) -> bool {
        self == Decision::Allow
    }
}

/// Evaluates one request against the union of `policies` (a principal's attached policies):
/// any matching Deny → `ExplicitDeny`; else any matching Allow → `Allow`; else `ImplicitDeny`.
pub fn evaluate<'p>(
    policies: impl IntoIterator<Item = &'p Policy>,
    ctx: &RequestContext<'_>,
) -> Decision {
    let request = Request::new(ctx);
    let mut allowed = false;
    for policy in policies {
        for s in &policy.statements {
            if s.applies(&request) {
                match s.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// The decision for an assumed-role session: the role's policies, narrowed by the session
/// policy given to AssumeRole (when there is one): allowed only if both allow, denied if either
/// denies explicitly.
pub fn evaluate_session<'p>(
    role_policies: impl IntoIterator<Item = &'p Policy>,
    session_policy: Option<&Policy>,
    ctx: &RequestContext<'_>,
) -> Decision {
    let role = evaluate(role_policies, ctx);
    let Some(session) = session_policy else {
        return role;
    };
    match (role, session.evaluate(ctx)) {
        (Decision::ExplicitDeny, _) | (_, Decision::ExplicitDeny) => Decision::ExplicitDeny,
        (Decision::Allow, Decision::Allow) => Decision::Allow,
        _ => Decision::ImplicitDeny,
    }
}

/// Who asks to assume a role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustedPrincipal<'a> {
    /// A RAM identity: `acs:ram::<account>:user/<name>` or `acs:ram::<account>:role/<name>`
    /// (an assumed role re-assuming), with its account. `…:root` in a trust policy trusts every
    /// identity of that account.
    Ram { account_id: &'a str, arn: &'a str },
    /// A cloud service, e.g. `fc.aliyuncs.com` for a service's role given to its functions.
    Service(&'a str),
}

/// A role's trust policy (`AssumeRolePolicyDocument`), parsed and validated.
///
/// Statements name `Action` (or `NotAction`, wildcards as in identity policies), `Effect` and
/// `Principal: {"RAM": [arns], "Service": [names]}` (each a string or a list; at least one
/// entry). A RAM entry is `acs:ram::<account>:root` (every identity of that account) or an
/// exact `acs:ram::<account>:user/<name>` / `…:role/<name>` ARN — no wildcards; a service is
/// compared ignoring ASCII case. `Resource` and `Condition` are refused (a trust decision has
/// no resource, and no request to test conditions against), as are `Federated` principals.
/// A matching Deny wins over any Allow.
#[derive(Debug, Clone, PartialEq)]
pub struct TrustPolicy {
    statements: Vec<TrustStatement>,
}

#[derive(Debug, Clone, PartialEq)]
struct TrustStatement {
    effect: Effect,
    actions: Actions,
    ram: Vec<RamPrincipal>,
    services: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum RamPrincipal {
    /// `acs:ram::<account>:root`.
    Account(String),
    Exact(String),
}

impl TrustPolicy {
    pub fn parse(document: &str) -> Result<TrustPolicy, PolicyError> {
        let statements = parse_document(document, Kind::Trust)?
            .into_iter()
            .map(|s| TrustStatement {
                effect: s.statement.effect,
                actions: s.statement.actions,
                ram: s.ram,
                services: s.services,
            })
            .collect();
        Ok(TrustPolicy { statements })
    }

    /// Whether `who` may call `sts:AssumeRole` on this role.
    pub fn trusts(&self, who: &TrustedPrincipal<'_>) -> bool {
        let action: Vec<char> = "sts:AssumeRole".chars().map(fold).collect();
        let mut allowed = false;
        for s in &self.statements {
            if !s.actions.matches(&action) || !s.names(who) {
                continue;
            }
            match s.effect {
                Effect::Deny => return false,
                Effect::Allow => allowed = true,
            }
        }
        allowed
    }
}

impl TrustStatement {
    fn names(&self, who: &TrustedPrincipal<'_>) -> bool {
        match who {
            TrustedPrincipal::Ram { account_id, arn } => self.ram.iter().any(|p| match p {
                RamPrincipal::Account(a) => a == account_id,
                RamPrincipal::Exact(e) => e == arn,
            }),
            TrustedPrincipal::Service(name) => {
                self.services.iter().any(|s| s.eq_ignore_ascii_case(name))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The parsed form.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone, PartialEq)]
enum Actions {
    Only(Vec<Glob>),
    AllBut(Vec<Glob>),
}

impl Actions {
    /// `action` already folded to lower case.
    fn matches(&self, action: &[char]) -> bool {
        match self {
            Actions::Only(globs) => globs.iter().any(|g| g.matches_chars(action, true)),
            Actions::AllBut(globs) => !globs.iter().any(|g| g.matches_chars(action, true)),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Statement {
    effect: Effect,
    actions: Actions,
    resources: Vec<Glob>,
    conditions: Vec<Condition>,
}

impl Statement {
    fn applies(&self, r: &Request<'_>) -> bool {
        self.actions.matches(&r.action)
            && self
                .resources
                .iter()
                .any(|g| g.matches_chars(&r.resource, false))
            && self.conditions.iter().all(|c| match c.decide(r) {
                Some(met) => met,
                // Undecidable: see the module docs.
                None => self.effect == Effect::Deny,
            })
    }
}

/// The request, prepared once per evaluation.
struct Request<'a> {
    action: Vec<char>,
    resource: Vec<char>,
    ctx: &'a RequestContext<'a>,
}

impl<'a> Request<'a> {
    fn new(ctx: &'a RequestContext<'a>) -> Request<'a> {
        Request {
            action: ctx.action.chars().map(fold).collect(),
            resource: ctx.resource.chars().collect(),
            ctx,
        }
    }

    fn source_ip(&self) -> Option<IpAddr> {
        self.ctx.source_ip.map(|ip| ip.to_canonical())
    }

    /// `acs:CurrentTime` in Unix nanoseconds.
    fn now_nanos(&self) -> i128 {
        match self.ctx.current_time.duration_since(SystemTime::UNIX_EPOCH) {
            Ok(d) => d.as_nanos() as i128,
            Err(e) => -(e.duration().as_nanos() as i128),
        }
    }

    fn text_of(&self, key: &Key) -> Option<String> {
        match key {
            Key::SourceIp => self.source_ip().map(|ip| ip.to_string()),
            // Checked: a time beyond year 9999 has no RFC 3339 text (undecidable, not a panic).
            Key::CurrentTime => time::OffsetDateTime::from_unix_timestamp_nanos(self.now_nanos())
                .ok()?
                .format(&time::format_description::well_known::Rfc3339)
                .ok(),
            Key::SecureTransport => Some(self.ctx.secure_transport.to_string()),
            Key::MfaPresent => Some(false.to_string()),
            Key::Unknown(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Key {
    SourceIp,
    CurrentTime,
    SecureTransport,
    MfaPresent,
    Unknown(String),
}

impl Key {
    fn parse(name: &str) -> Key {
        const KNOWN: [(&str, Key); 4] = [
            ("acs:SourceIp", Key::SourceIp),
            ("acs:CurrentTime", Key::CurrentTime),
            ("acs:SecureTransport", Key::SecureTransport),
            ("acs:MFAPresent", Key::MfaPresent),
        ];
        KNOWN
            .into_iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, key)| key)
            .unwrap_or_else(|| Key::Unknown(name.to_owned()))
    }

    /// The key's type for the operators that need one; `None` for unknown keys.
    fn family(&self) -> Option<Family> {
        match self {
            Key::SourceIp => Some(Family::Ip),
            Key::CurrentTime => Some(Family::Date),
            Key::SecureTransport | Key::MfaPresent => Some(Family::Bool),
            Key::Unknown(_) => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    String,
    Numeric,
    Date,
    Bool,
    Ip,
}

impl Family {
    fn describe(self) -> &'static str {
        match self {
            Family::String => "a string",
            Family::Numeric => "a number",
            Family::Date => "a date",
            Family::Bool => "a boolean",
            Family::Ip => "an IP address",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds<T: PartialOrd>(self, actual: T, wanted: T) -> bool {
        match self {
            Cmp::Eq => actual == wanted,
            Cmp::Lt => actual < wanted,
            Cmp::Le => actual <= wanted,
            Cmp::Gt => actual > wanted,
            Cmp::Ge => actual >= wanted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrCmp {
    Equals,
    EqualsIgnoreCase,
    Like,
}

/// The operators, by name: (name, family, comparison, negated).
const OPERATORS: [(&str, Op); 21] = [
    ("StringEquals", Op::Str(StrCmp::Equals, false)),
    ("StringNotEquals", Op::Str(StrCmp::Equals, true)),
    (
        "StringEqualsIgnoreCase",
        Op::Str(StrCmp::EqualsIgnoreCase, false),
    ),
    (
        "StringNotEqualsIgnoreCase",
        Op::Str(StrCmp::EqualsIgnoreCase, true),
    ),
    ("StringLike", Op::Str(StrCmp::Like, false)),
    ("StringNotLike", Op::Str(StrCmp::Like, true)),
    ("NumericEquals", Op::Num(Cmp::Eq, false)),
    ("NumericNotEquals", Op::Num(Cmp::Eq, true)),
    ("NumericLessThan", Op::Num(Cmp::Lt, false)),
    ("NumericLessThanEquals", Op::Num(Cmp::Le, false)),
    ("NumericGreaterThan", Op::Num(Cmp::Gt, false)),
    ("NumericGreaterThanEquals", Op::Num(Cmp::Ge, false)),
    ("DateEquals", Op::Date(Cmp::Eq, false)),
    ("DateNotEquals", Op::Date(Cmp::Eq, true)),
    ("DateLessThan", Op::Date(Cmp::Lt, false)),
    ("DateLessThanEquals", Op::Date(Cmp::Le, false)),
    ("DateGreaterThan", Op::Date(Cmp::Gt, false)),
    ("DateGreaterThanEquals", Op::Date(Cmp::Ge, false)),
    ("Bool", Op::Bool),
    ("IpAddress", Op::Ip(false)),
    ("NotIpAddress", Op::Ip(true)),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Str(StrCmp, bool),
    Num(Cmp, bool),
    Date(Cmp, bool),
    Bool,
    Ip(bool),
}

impl Op {
    fn family(self) -> Family {
        match self {
            Op::Str(..) => Family::String,
            Op::Num(..) => Family::Numeric,
            Op::Date(..) => Family::Date,
            Op::Bool => Family::Bool,
            Op::Ip(_) => Family::Ip,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    key: Key,
    negated: bool,
    test: Test,
}

#[derive(Debug, Clone, PartialEq)]
enum Test {
    Str(StrCmp, Vec<StrValue>),
    Num(Cmp, Vec<f64>),
    /// Unix nanoseconds.
    Date(Cmp, Vec<i128>),
    Bool(Vec<bool>),
    Ip(Vec<Cidr>),
}

#[derive(Debug, Clone, PartialEq)]
enum StrValue {
    Exact(String),
    /// Folded with [`fold`].
    Folded(Vec<char>),
    Like(Glob),
}

impl Condition {
    /// Whether the condition holds; `None` when the request has no value for its key.
    fn decide(&self, r: &Request<'_>) -> Option<bool> {
        let positive = match &self.test {
            Test::Str(_, values) => {
                let text = r.text_of(&self.key)?;
                let chars: Vec<char> = text.chars().collect();
                let folded: Vec<char> = chars.iter().copied().map(fold).collect();
                values.iter().any(|v| match v {
                    StrValue::Exact(s) => *s == text,
                    StrValue::Folded(f) => *f == folded,
                    StrValue::Like(g) => g.matches_chars(&chars, false),
                })
            }
            // No known key is a number (refused when parsed); unknown keys have no value.
            Test::Num(..) => return None,
            Test::Date(cmp, values) => match self.key {
                Key::CurrentTime => {
                    let now = r.now_nanos();
                    values.iter().any(|v| cmp.holds(now, *v))
                }
                _ => return None,
            },
            Test::Bool(values) => {
                let actual = match self.key {
                    Key::SecureTransport => r.ctx.secure_transport,
                    Key::MfaPresent => false,
                    _ => return None,
                };
                values.contains(&actual)
            }
            Test::Ip(blocks) => match self.key {
                Key::SourceIp => {
                    let ip = r.source_ip()?;
                    blocks.iter().any(|b| b.contains(ip))
                }
                _ => return None,
            },
        };
        Some(positive != self.negated)
    }
}

/// An address block; IPv4-mapped IPv6 blocks are kept as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    fn parse(text: &str) -> Option<Cidr> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            // Digits only: `u8::from_str` would also take a sign.
            Some(p) if !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
        };
        Some(match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => Cidr {
                    addr: IpAddr::V4(v4),
                    prefix: prefix - 96,
                },
                _ => Cidr { addr, prefix },
            },
            IpAddr::V4(_) => Cidr { addr, prefix },
        })
    }

    /// `ip` already canonical (IPv4-mapped addresses as IPv4).
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = mask_v4(self.prefix);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = mask_v6(self.prefix);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn mask_v4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask_v6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// Parsing.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Identity,
    Trust,
}

/// One statement as parsed, with the principals of trust policies.
struct Parsed {
    statement: Statement,
    ram: Vec<RamPrincipal>,
    services: Vec<String>,
}

fn malformed(msg: impl Into<String>) -> PolicyError {
    PolicyError::Malformed(msg.into())
}

fn parse_document(document: &str, kind: Kind) -> Result<Vec<Parsed>, PolicyError> {
    let len = document.chars().count();
    if len > MAX_POLICY_CHARS {
        return Err(PolicyError::TooLarge {
            len,
            max: MAX_POLICY_CHARS,
        });
    }
    let json = Json::parse(document).map_err(PolicyError::Malformed)?;
    let Json::Object(top) = json else {
        return Err(malformed(format!(
            "the document must be a JSON object, not {}",
            json.kind()
        )));
    };
    let mut version = None;
    let mut statements = None;
    for (name, value) in top {
        match name.as_str() {
            "Version" => version = Some(value),
            "Statement" => statements = Some(value),
            other => {
                return Err(malformed(format!(
                    "unknown element \"{other}\": a policy has only Version and Statement"
                )));
            }
        }
    }
    match version {
        Some(Json::String(v)) if v == "1" => {}
        Some(Json::String(v)) => {
            return Err(malformed(format!(
                "Version \"{v}\" is not supported: it must be \"1\""
            )));
        }
        Some(other) => {
            return Err(malformed(format!(
                "Version must be the string \"1\", not {}",
                other.kind()
            )));
        }
        None => return Err(malformed("Version is missing: it must be \"1\"")),
    }
    let statements = match statements {
        Some(Json::Array(list)) => list,
        Some(one @ Json::Object(_)) => vec![one],
        Some(other) => {
            return Err(malformed(format!(
                "Statement must be a list of statements or one statement, not {}",
                other.kind()
            )));
        }
        None => return Err(malformed("Statement is missing")),
    };
    statements
        .into_iter()
        .enumerate()
        .map(|(i, s)| {
            parse_statement(s, kind).map_err(|e| malformed(format!("Statement[{i}]: {e}")))
        })
        .collect()
}

fn parse_statement(json: Json, kind: Kind) -> Result<Parsed, String> {
    let Json::Object(fields) = json else {
        return Err(format!(
            "a statement must be an object, not {}",
            json.kind()
        ));
    };
    let mut effect = None;
    let mut action = None;
    let mut not_action = None;
    let mut resource = None;
    let mut condition = None;
    let mut principal = None;
    for (name, value) in fields {
        match (name.as_str(), kind) {
            ("Effect", _) => effect = Some(value),
            ("Action", _) => action = Some(value),
            ("NotAction", _) => not_action = Some(value),
            ("Resource", Kind::Identity) => resource = Some(value),
            ("Condition", Kind::Identity) => condition = Some(value),
            ("Principal", Kind::Trust) => principal = Some(value),
            ("Principal", Kind::Identity) => {
                return Err(
                    "Principal belongs in a role's trust policy, not in a permission policy".into(),
                );
            }
            ("Resource", Kind::Trust) => {
                return Err(
                    "a trust policy has no Resource: the role itself is the resource".into(),
                );
            }
            ("Condition", Kind::Trust) => {
                return Err("conditions are not supported in trust policies".into());
            }
            (other, Kind::Identity) => {
                return Err(format!(
                    "unknown element \"{other}\": a statement has Effect, Action or NotAction, Resource and Condition"
                ));
            }
            (other, Kind::Trust) => {
                return Err(format!(
                    "unknown element \"{other}\": a trust statement has Effect, Action or NotAction, and Principal"
                ));
            }
        }
    }
    let effect = match effect {
        Some(Json::String(e)) if e == "Allow" => Effect::Allow,
        Some(Json::String(e)) if e == "Deny" => Effect::Deny,
        Some(Json::String(e)) => return Err(format!("Effect \"{e}\" must be Allow or Deny")),
        Some(other) => {
            return Err(format!(
                "Effect must be Allow or Deny, not {}",
                other.kind()
            ));
        }
        None => return Err("Effect is missing".into()),
    };
    let actions = match (action, not_action) {
        (Some(_), Some(_)) => {
            return Err("a statement has either Action or NotAction, not both".into());
        }
        (Some(a), None) => Actions::Only(parse_actions("Action", a)?),
        (None, Some(a)) => Actions::AllBut(parse_actions("NotAction", a)?),
        (None, None) => return Err("Action (or NotAction) is missing".into()),
    };
    let mut parsed = Parsed {
        statement: Statement {
            effect,
            actions,
            resources: Vec::new(),
            conditions: Vec::new(),
        },
        ram: Vec::new(),
        services: Vec::new(),
    };
    match kind {
        Kind::Identity => {
            let resource = resource.ok_or("Resource is missing")?;
            parsed.statement.resources = strings("Resource", resource)?
                .iter()
                .map(|r| {
                    if r.is_empty() {
                        Err("Resource: an empty string names nothing".to_owned())
                    } else {
                        Ok(Glob::new(r))
                    }
                })
                .collect::<Result<_, _>>()?;
            if let Some(c) = condition {
                parsed.statement.conditions = parse_conditions(c)?;
            }
        }
        Kind::Trust => {
            let principal = principal.ok_or("Principal is missing")?;
            (parsed.ram, parsed.services) = parse_principal(principal)?;
        }
    }
    Ok(parsed)
}

/// A string or a non-empty list of strings.
fn strings(element: &str, json: Json) -> Result<Vec<String>, String> {
    match json {
        Json::String(s) => Ok(vec![s]),
        Json::Array(items) if items.is_empty() => Err(format!("{element}: the list is empty")),
        Json::Array(items) => items
            .into_iter()
            .map(|item| match item {
                Json::String(s) => Ok(s),
                other => Err(format!(
                    "{element}: every entry must be a string, not {}",
                    other.kind()
                )),
            })
            .collect(),
        other => Err(format!(
            "{element} must be a string or a list of strings, not {}",
            other.kind()
        )),
    }
}

fn parse_actions(element: &str, json: Json) -> Result<Vec<Glob>, String> {
    strings(element, json)?
        .into_iter()
        .map(|a| {
            let valid = a == "*"
                || a.split_once(':')
                    .is_some_and(|(service, api)| !service.is_empty() && !api.is_empty());
            if valid {
                Ok(Glob::new(&a))
            } else {
                Err(format!(
                    "{element} \"{a}\" is not an action: write <service>:<Api> (e.g. fc:InvokeFunction, fc:Get*) or *"
                ))
            }
        })
        .collect()
}

fn parse_principal(json: Json) -> Result<(Vec<RamPrincipal>, Vec<String>), String> {
    let Json::Object(fields) = json else {
        return Err(format!(
            "Principal must be an object such as {{\"RAM\": [\"acs:ram::<account>:root\"]}}, not {}",
            json.kind()
        ));
    };
    let mut ram = Vec::new();
    let mut services = Vec::new();
    for (name, value) in fields {
        match name.as_str() {
            "RAM" => {
                for arn in strings("Principal.RAM", value)? {
                    ram.push(parse_ram_principal(&arn)?);
                }
            }
            "Service" => {
                for s in strings("Principal.Service", value)? {
                    if s.is_empty() || s.contains(['*', '?']) {
                        return Err(format!(
                            "Principal.Service \"{s}\" must name one service, e.g. fc.aliyuncs.com"
                        ));
                    }
                    services.push(s);
                }
            }
            "Federated" => return Err("Federated principals are not supported".into()),
            other => {
                return Err(format!(
                    "unknown principal type \"{other}\": use RAM or Service"
                ));
            }
        }
    }
    if ram.is_empty() && services.is_empty() {
        return Err("Principal names nobody: give RAM or Service".into());
    }
    Ok((ram, services))
}

fn parse_ram_principal(arn: &str) -> Result<RamPrincipal, String> {
    let bad = || {
        format!(
            "Principal.RAM \"{arn}\" must be acs:ram::<account>:root, acs:ram::<account>:user/<name> or acs:ram::<account>:role/<name>"
        )
    };
    let rest = arn.strip_prefix("acs:ram::").ok_or_else(bad)?;
    let (account, relative) = rest.split_once(':').ok_or_else(bad)?;
    if account.is_empty() || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    if relative == "root" {
        return Ok(RamPrincipal::Account(account.to_owned()));
    }
    let name = relative
        .strip_prefix("user/")
        .or_else(|| relative.strip_prefix("role/"))
        .ok_or_else(bad)?;
    if name.is_empty() || name.contains(['*', '?', ':']) {
        return Err(bad());
    }
    Ok(RamPrincipal::Exact(arn.to_owned()))
}

fn parse_conditions(json: Json) -> Result<Vec<Condition>, String> {
    let Json::Object(ops) = json else {
        return Err(format!(
            "Condition must be an object of operators, not {}",
            json.kind()
        ));
    };
    let mut conditions = Vec::new();
    for (op_name, keys) in ops {
        let op = OPERATORS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(&op_name))
            .map(|(_, op)| *op)
            .ok_or_else(|| format!("Condition: unknown operator \"{op_name}\""))?;
        let Json::Object(keys) = keys else {
            return Err(format!(
                "Condition.{op_name} must be an object of keys, not {}",
                keys.kind()
            ));
        };
        if keys.is_empty() {
            return Err(format!("Condition.{op_name} tests no key"));
        }
        for (key_name, values) in keys {
            let at = format!("Condition.{op_name}.{key_name}");
            let key = Key::parse(&key_name);
            if let Some(family) = key.family()
                && op.family() != Family::String
                && op.family() != family
            {
                return Err(format!(
                    "{at}: {op_name} compares {}, but {key_name} is {}",
                    op.family().describe(),
                    family.describe()
                ));
            }
            let values = condition_values(&at, values)?;
            let (negated, test) = parse_test(&at, op, values)?;
            conditions.push(Condition { key, negated, test });
        }
    }
    Ok(conditions)
}

/// A condition's values, each as JSON scalar.
fn condition_values(at: &str, json: Json) -> Result<Vec<Json>, String> {
    let values = match json {
        Json::Array(items) if items.is_empty() => return Err(format!("{at}: no values")),
        Json::Array(items) => items,
        one => vec![one],
    };
    for v in &values {
        if matches!(v, Json::Null | Json::Array(_) | Json::Object(_)) {
            return Err(format!(
                "{at}: a value must be a string, a number or a boolean, not {}",
                v.kind()
            ));
        }
    }
    Ok(values)
}

fn scalar_text(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        Json::Number(_, text) => text.clone(),
        Json::Bool(b) => b.to_string(),
        // Refused by `condition_values`.
        Json::Null | Json::Array(_) | Json::Object(_) => String::new(),
    }
}

fn parse_test(at: &str, op: Op, values: Vec<Json>) -> Result<(bool, Test), String> {
    Ok(match op {
        Op::Str(cmp, negated) => {
            let values = values
                .iter()
                .map(|v| {
                    let s = scalar_text(v);
                    match cmp {
                        StrCmp::Equals => StrValue::Exact(s),
                        StrCmp::EqualsIgnoreCase => StrValue::Folded(s.chars().map(fold).collect()),
                        StrCmp::Like => StrValue::Like(Glob::new(&s)),
                    }
                })
                .collect();
            (negated, Test::Str(cmp, values))
        }
        Op::Num(cmp, negated) => {
            let values = values
                .iter()
                .map(|v| match v {
                    Json::Number(n, _) => Ok(*n),
                    Json::String(s) => s
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|n| n.is_finite())
                        .ok_or_else(|| format!("{at}: \"{s}\" is not a number")),
                    other => Err(format!("{at}: {} is not a number", other.kind())),
                })
                .collect::<Result<_, _>>()?;
            (negated, Test::Num(cmp, values))
        }
        Op::Date(cmp, negated) => {
            let values = values
                .iter()
                .map(|v| match v {
                    Json::String(s) => parse_date(s).ok_or_else(|| {
                        format!(
                            "{at}: \"{s}\" is not a date: write RFC 3339 with a zone, e.g. 2019-08-12T17:00:00+08:00 or 2019-08-12T09:00:00Z"
                        )
                    }),
                    other => Err(format!(
                        "{at}: a date must be a string such as 2019-08-12T17:00:00+08:00, not {}",
                        other.kind()
                    )),
                })
                .collect::<Result<_, _>>()?;
            (negated, Test::Date(cmp, values))
        }
        Op::Bool => {
            let values = values
                .iter()
                .map(|v| match v {
                    Json::Bool(b) => Ok(*b),
                    Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
                    Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
                    other => Err(format!(
                        "{at}: \"{}\" is not true or false",
                        scalar_text(other)
                    )),
                })
                .collect::<Result<_, _>>()?;
            (false, Test::Bool(values))
        }
        Op::Ip(negated) => {
            let values = values
                .iter()
                .map(|v| {
                    let s = scalar_text(v);
                    Cidr::parse(&s)
                        .ok_or_else(|| format!("{at}: \"{s}\" is not an IP address or CIDR block"))
                })
                .collect::<Result<_, _>>()?;
            (negated, Test::Ip(values))
        }
    })
}

/// RFC 3339 (`Z` or an offset) in Unix nanoseconds.
fn parse_date(s: &str) -> Option<i128> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp_nanos())
}

#[cfg(test)]
mod tests;
