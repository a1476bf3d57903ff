//! Custom domains as FC describes them: a domain name whose requests are routed by path to a
//! function (service, function, qualifier), and the matching rules for those routes.
//!
//! Routes match FC's way: a route's `path` is either exact (`/users`) or ends in `/*`
//! (`/api/*` matches `/api/` and everything below it; `/*` matches every path). An exact route
//! wins over a wildcard one, and among wildcards the longest prefix wins. A route may name the
//! `methods` it admits and rewrite the path the function sees (`rewriteConfig`: equal and
//! wildcard rules; FC's regex rules are refused rather than ignored).
//!
//! A domain created through FC 3.0 (`apiVersion` `2023-03-30`) routes to functions named the
//! 3.0 way and stored like 2.0 ones: a native 3.0 function `F` as service `~F`, function `F`
//! (`crate::fc3`). It needs no HTTP trigger; its `authConfig` says who may call it.
//!
//! fcd serves custom domains over plain HTTP (TLS is for a proxy in front of it), so `HTTPS`
//! protocols and certificates are refused with a message that says so.

use serde::{Deserialize, Serialize};

use crate::FcError;
use crate::model::JsonObject;
use crate::names::{check_function_name, check_service_name};

/// Most routes one domain may have.
pub const ROUTES_MAX: usize = 100;

/// A stored custom domain; serialises to FC's field names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomDomain {
    pub domain_name: String,
    pub account_id: String,
    /// The FC API version the routes use (`2016-08-15`, as FC reports it).
    pub api_version: String,
    /// `HTTP`.
    pub protocol: String,
    pub route_config: RouteConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<JsonObject>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waf_config: Option<JsonObject>,
    /// FC 3.0: `{authType: anonymous | function, authInfo}`; absent is anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_config: Option<JsonObject>,
    /// FC 3.0: stored and echoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors_config: Option<JsonObject>,
    pub created_time: String,
    pub last_modified_time: String,
}

/// The body of CreateCustomDomain / UpdateCustomDomain.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomDomainInput {
    pub domain_name: Option<String>,
    pub protocol: Option<String>,
    pub route_config: Option<RouteConfig>,
    pub cert_config: Option<JsonObject>,
    pub tls_config: Option<JsonObject>,
    pub waf_config: Option<JsonObject>,
    pub auth_config: Option<JsonObject>,
    pub cors_config: Option<JsonObject>,
    /// The API version that creates the domain (set by the server, never read from a body):
    /// `None` is 2.0's `2016-08-15`.
    #[serde(skip)]
    pub api_version: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteConfig {
    #[serde(default)]
    pub routes: Vec<PathConfig>,
}

/// One route: requests whose path matches `path` go to the function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathConfig {
    pub path: String,
    pub service_name: String,
    pub function_name: String,
    /// `LATEST` when none was given.
    #[serde(default)]
    pub qualifier: String,
    /// Methods admitted; empty admits every method.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite_config: Option<RewriteConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewriteConfig {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub equal_rules: Vec<RewriteRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wildcard_rules: Vec<RewriteRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regex_rules: Vec<RewriteRule>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewriteRule {
    #[serde(rename = "match")]
    pub match_: String,
    pub replacement: String,
}

/// Where a request on a custom domain goes.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteMatch<'a> {
    pub route: &'a PathConfig,
    /// The path the function sees (after rewrite rules).
    pub path: String,
}

/// Checks a domain name: lower-case letters, digits, `-` and `.`, labels of 1 to 63, at most
/// 255 in all (wildcard domains such as `*.example.com` are not routed by fcd).
pub fn check_domain_name(name: &str) -> Result<(), FcError> {
    let label_ok = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 255 || !name.split('.').all(label_ok) {
        return Err(FcError::invalid(format!(
            "domain name '{name}' is invalid: expected lower-case labels of letters, digits and '-' separated by '.'"
        )));
    }
    Ok(())
}

fn check_route(r: &PathConfig) -> Result<(), FcError> {
    if !r.path.starts_with('/') || r.path.len() > 1024 {
        return Err(FcError::invalid(format!(
            "routeConfig path '{}' must start with '/' (at most 1024 characters)",
            r.path
        )));
    }
    if let Some(i) = r.path.find('*')
        && !(r.path.ends_with("/*") && i == r.path.len() - 1)
    {
        return Err(FcError::invalid(format!(
            "routeConfig path '{}': '*' is allowed only as a final '/*'",
            r.path
        )));
    }
    if crate::fc3::is_hidden_service(&r.service_name) {
        // A native 3.0 function: its home service is exactly `~F` for function `F`.
        crate::fc3::check_function_name(&r.function_name)?;
        if r.service_name != crate::fc3::hidden_service(&r.function_name) {
            return Err(FcError::invalid(format!(
                "routeConfig names service '{}', which is not a service",
                r.service_name
            )));
        }
    } else {
        check_service_name(&r.service_name)?;
        check_function_name(&r.function_name)?;
    }
    if !r.qualifier.is_empty() {
        crate::triggers::check_qualifier(&r.qualifier)?;
    }
    for m in &r.methods {
        if !crate::triggers::HTTP_METHODS.contains(&m.to_ascii_uppercase().as_str()) {
            return Err(FcError::invalid(format!(
                "routeConfig methods: '{m}' is not one of {}",
                crate::triggers::HTTP_METHODS.join(", ")
            )));
        }
    }
    if let Some(rw) = &r.rewrite_config {
        if !rw.regex_rules.is_empty() {
            return Err(FcError::invalid(
                "rewriteConfig.regexRules are not supported by fcd; use equalRules or wildcardRules",
            ));
        }
        for rule in rw.equal_rules.iter().chain(&rw.wildcard_rules) {
            if !rule.match_.starts_with('/') || !rule.replacement.starts_with('/') {
                return Err(FcError::invalid(
                    "rewriteConfig rules must match and replace with paths starting with '/'",
                ));
            }
            // Bounded like a route's path: a replacement is copied (with captures) into every
            // rewritten request.
            if rule.match_.len() > 1024 || rule.replacement.len() > 1024 {
                return Err(FcError::invalid(
                    "rewriteConfig rules may match and replace with at most 1024 characters",
                ));
            }
        }
    }
    Ok(())
}

fn normalise_routes(mut rc: RouteConfig) -> Result<RouteConfig, FcError> {
    if rc.routes.len() > ROUTES_MAX {
        return Err(FcError::invalid(format!(
            "routeConfig has {} routes; at most {ROUTES_MAX} are allowed",
            rc.routes.len()
        )));
    }
    for r in &mut rc.routes {
        check_route(r)?;
        if r.qualifier.is_empty() {
            r.qualifier = "LATEST".to_owned();
        }
        for m in &mut r.methods {
            *m = m.to_ascii_uppercase();
        }
    }
    for (i, r) in rc.routes.iter().enumerate() {
        if rc.routes[..i].iter().any(|o| o.path == r.path) {
            return Err(FcError::invalid(format!(
                "routeConfig names path '{}' twice",
                r.path
            )));
        }
    }
    Ok(rc)
}

/// Whom a domain admits: fcd runs `anonymous` and `function` (FC's signature, as for HTTP
/// triggers); `jwt` is refused rather than stored and not enforced.
fn check_auth_config(c: &JsonObject) -> Result<(), FcError> {
    match c.get("authType") {
        None | Some(serde_json::Value::Null) => Ok(()),
        Some(serde_json::Value::String(t))
            if t.eq_ignore_ascii_case("anonymous") || t.eq_ignore_ascii_case("function") =>
        {
            Ok(())
        }
        Some(other) => Err(FcError::invalid(format!(
            "authConfig.authType {other} is not supported: fcd runs 'anonymous' and 'function'"
        ))),
    }
}

impl CustomDomain {
    /// Whether requests must carry FC's signature (`authConfig.authType: function`).
    pub fn requires_signature(&self) -> bool {
        self.auth_config
            .as_ref()
            .and_then(|c| c.get("authType"))
            .and_then(|t| t.as_str())
            .is_some_and(|t| t.eq_ignore_ascii_case("function"))
    }

    /// Created through FC 3.0: routes reach functions without an HTTP trigger.
    pub fn is_fc3(&self) -> bool {
        self.api_version == FC3_API_VERSION
    }
}

/// `apiVersion` of a domain created through FC 3.0.
pub const FC3_API_VERSION: &str = "2023-03-30";

fn check_protocol(p: &str, cert: Option<&JsonObject>) -> Result<String, FcError> {
    if cert.is_some_and(|c| !c.is_empty()) || !p.eq_ignore_ascii_case("HTTP") {
        return Err(FcError::invalid(format!(
            "protocol '{p}' is not supported: fcd serves custom domains over HTTP only (terminate TLS in a proxy in front of fcd)"
        )));
    }
    Ok("HTTP".to_owned())
}

impl CustomDomain {
    /// A new domain from CreateCustomDomain's body, validated completely.
    pub fn create(
        account_id: String,
        input: CustomDomainInput,
        now: String,
    ) -> Result<CustomDomain, FcError> {
        let name = input
            .domain_name
            .ok_or_else(|| FcError::invalid("domainName is required"))?;
        check_domain_name(&name)?;
        let protocol = check_protocol(
            input.protocol.as_deref().unwrap_or("HTTP"),
            input.cert_config.as_ref(),
        )?;
        let route_config = normalise_routes(input.route_config.unwrap_or_default())?;
        if let Some(c) = &input.auth_config {
            check_auth_config(c)?;
        }
        Ok(CustomDomain {
            domain_name: name,
            account_id,
            api_version: input.api_version.unwrap_or_else(|| "2016-08-15".to_owned()),
            protocol,
            route_config,
            tls_config: input.tls_config,
            waf_config: input.waf_config,
            auth_config: input.auth_config,
            cors_config: input.cors_config,
            created_time: now.clone(),
            last_modified_time: now,
        })
    }

    /// Applies UpdateCustomDomain's body (absent fields keep their values; `routeConfig`
    /// replaces the routes as a whole).
    pub fn apply(&mut self, u: CustomDomainInput, now: String) -> Result<(), FcError> {
        let protocol = match (&u.protocol, &u.cert_config) {
            (None, None) => None,
            (p, c) => Some(check_protocol(p.as_deref().unwrap_or("HTTP"), c.as_ref())?),
        };
        let routes = match u.route_config {
            Some(rc) => Some(normalise_routes(rc)?),
            None => None,
        };
        if let Some(c) = &u.auth_config {
            check_auth_config(c)?;
        }
        if let Some(p) = protocol {
            self.protocol = p;
        }
        if let Some(rc) = routes {
            self.route_config = rc;
        }
        if u.tls_config.is_some() {
            self.tls_config = u.tls_config;
        }
        if u.waf_config.is_some() {
            self.waf_config = u.waf_config;
        }
        if u.auth_config.is_some() {
            self.auth_config = u.auth_config;
        }
        if u.cors_config.is_some() {
            self.cors_config = u.cors_config;
        }
        self.last_modified_time = now;
        Ok(())
    }
}

impl RouteConfig {
    /// The route a request path goes to, with the path its function sees; `None` when no
    /// route matches. `path` is the decoded path without the query.
    pub fn find(&self, path: &str) -> Option<RouteMatch<'_>> {
        let exact = self.routes.iter().find(|r| r.path == path);
        let route = exact.or_else(|| {
            self.routes
                .iter()
                .filter_map(|r| {
                    let prefix = r.path.strip_suffix('*')?;
                    // `/api/*` also takes `/api` itself.
                    let hit = path.starts_with(prefix) || path == prefix.trim_end_matches('/');
                    hit.then_some((prefix.len(), r))
                })
                .max_by_key(|(len, _)| *len)
                .map(|(_, r)| r)
        })?;
        Some(RouteMatch {
            route,
            path: rewrite(route.rewrite_config.as_ref(), path),
        })
    }
}

impl PathConfig {
    /// Whether the route admits `method`.
    pub fn allows(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method))
    }
}

/// Applies the first rewrite rule that matches: equal rules before wildcard rules. A wildcard
/// rule's `*`s match any text and `$1`, `$2`, … in the replacement stand for what they matched.
fn rewrite(rc: Option<&RewriteConfig>, path: &str) -> String {
    let Some(rc) = rc else {
        return path.to_owned();
    };
    if let Some(r) = rc.equal_rules.iter().find(|r| r.match_ == path) {
        return r.replacement.clone();
    }
    for r in &rc.wildcard_rules {
        if let Some(caps) = wildcard_captures(&r.match_, path) {
            return substitute(&r.replacement, &caps);
        }
    }
    path.to_owned()
}

/// `replacement` with each `$n` (1-based, the longest number that names a capture, so `$12`
/// is the twelfth capture when there are twelve and the first followed by `2` otherwise)
/// replaced by capture n, in one pass: a capture's text is the client's and is never read for
/// `$n` itself (replacing capture by capture would let a path holding `$1` pull capture 1 into
/// capture 2's place). Anything else, `$0` and a `$` without a capture number included, is
/// kept as written.
fn substitute(replacement: &str, caps: &[String]) -> String {
    let mut out = String::with_capacity(replacement.len());
    let mut rest = replacement;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        // Digits are ASCII, so every prefix length is a character boundary.
        let named = (1..=digits).rev().find_map(|n| {
            let number = &after[..n];
            let index: usize = number.parse().ok()?;
            let cap = caps.get(index.checked_sub(1)?)?;
            (!number.starts_with('0')).then_some((n, cap))
        });
        match named {
            Some((n, cap)) => {
                out.push_str(cap);
                rest = &after[n..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// What each `*` of `pattern` matched in `text`, if it matches as a whole.
fn wildcard_captures(pattern: &str, text: &str) -> Option<Vec<String>> {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first()?;
    let mut pos = text.strip_prefix(first).map(|_| first.len())?;
    let mut caps = Vec::new();
    for (i, part) in rest.iter().enumerate() {
        let last = i == rest.len() - 1;
        let found = if last {
            // The last literal must end the text.
            if !text[pos..].ends_with(part) {
                return None;
            }
            text.len() - part.len()
        } else {
            pos + text[pos..].find(part)?
        };
        if found < pos {
            return None;
        }
        caps.push(text[pos..found].to_owned());
        pos = found + part.len();
    }
    (pos == text.len()).then_some(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str, f: &str) -> PathConfig {
        PathConfig {
            path: path.into(),
            service_name: "s".into(),
            function_name: f.into(),
            qualifier: String::new(),
            methods: vec![],
            rewrite_config: None,
        }
    }

    fn domain(routes: Vec<PathConfig>) -> CustomDomain {
        CustomDomain::create(
            "1".into(),
            CustomDomainInput {
                domain_name: Some("api.example.test".into()),
                route_config: Some(RouteConfig { routes }),
                ..CustomDomainInput::default()
            },
            "now".into(),
        )
        .unwrap()
    }

    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let d = domain(vec![
            route("/*", "root"),
            route("/users/*", "users"),
            route("/users/me", "me"),
            route("/users/admin/*", "admin"),
        ]);
        let rc = &d.route_config;
        let f = |p: &str| rc.find(p).map(|m| m.route.function_name.clone());
        assert_eq!(f("/users/me").as_deref(), Some("me"));
        assert_eq!(f("/users/1").as_deref(), Some("users"));
        assert_eq!(f("/users").as_deref(), Some("users"));
        assert_eq!(f("/users/admin/x").as_deref(), Some("admin"));
        assert_eq!(f("/other").as_deref(), Some("root"));
        assert_eq!(rc.routes[0].qualifier, "LATEST");
        let only = domain(vec![route("/a", "a")]);
        assert!(only.route_config.find("/b").is_none());
        assert!(only.route_config.find("/a/x").is_none());
    }

    #[test]
    fn rewrites() {
        let mut r = route("/old/*", "f");
        r.rewrite_config = Some(RewriteConfig {
            equal_rules: vec![RewriteRule {
                match_: "/old/index".into(),
                replacement: "/index.html".into(),
            }],
            wildcard_rules: vec![RewriteRule {
                match_: "/old/*/items/*".into(),
                replacement: "/v2/$1/$2".into(),
            }],
            regex_rules: vec![],
        });
        let d = domain(vec![r]);
        let p = |x: &str| d.route_config.find(x).map(|m| m.path);
        assert_eq!(p("/old/index").as_deref(), Some("/index.html"));
        assert_eq!(p("/old/a/items/7").as_deref(), Some("/v2/a/7"));
        assert_eq!(p("/old/zzz").as_deref(), Some("/old/zzz"));
    }

    #[test]
    fn a_capture_holding_a_dollar_reference_stays_literal() {
        // Regression (found by property testing): replacing `$2` then `$1` over the whole
        // output let a client's `$1` inside capture 2 be replaced by capture 1.
        let mut r = route("/old/*", "f");
        r.rewrite_config = Some(RewriteConfig {
            wildcard_rules: vec![RewriteRule {
                match_: "/old/*/items/*".into(),
                replacement: "/v2/$1/$2/$10/$0/$".into(),
            }],
            ..RewriteConfig::default()
        });
        let d = domain(vec![r]);
        let p = |x: &str| d.route_config.find(x).map(|m| m.path);
        assert_eq!(
            p("/old/a/items/$1$2").as_deref(),
            Some("/v2/a/$1$2/a0/$0/$")
        );
        assert_eq!(p("/old/é/items/ü").as_deref(), Some("/v2/é/ü/é0/$0/$"));
    }

    #[test]
    fn invalid_domains_are_refused() {
        for bad in [
            "",
            "Api.example.com",
            "-a.com",
            "a..b",
            "*.example.com",
            "a b",
        ] {
            assert!(check_domain_name(bad).is_err(), "{bad}");
        }
        let input = |p: &str, routes| CustomDomainInput {
            domain_name: Some("x.test".into()),
            protocol: Some(p.into()),
            route_config: Some(RouteConfig { routes }),
            ..CustomDomainInput::default()
        };
        assert!(CustomDomain::create("1".into(), input("HTTPS", vec![]), "n".into()).is_err());
        for bad_path in ["users", "/a*", "/*/b"] {
            let e = CustomDomain::create(
                "1".into(),
                input("HTTP", vec![route(bad_path, "f")]),
                "n".into(),
            );
            assert!(e.is_err(), "{bad_path}");
        }
        let mut bad_qualifier = route("/a", "f");
        bad_qualifier.qualifier = "pr od".into();
        let e = CustomDomain::create("1".into(), input("HTTP", vec![bad_qualifier]), "n".into());
        assert!(e.is_err());
        let dup = vec![route("/a", "f"), route("/a", "g")];
        assert!(CustomDomain::create("1".into(), input("HTTP", dup), "n".into()).is_err());
    }

    #[test]
    fn fc3_domains_route_to_native_functions_and_keep_their_configs() {
        let native = |service: &str, function: &str| {
            let mut r = route("/*", function);
            r.service_name = service.into();
            CustomDomainInput {
                domain_name: Some("a.example.test".into()),
                route_config: Some(RouteConfig { routes: vec![r] }),
                api_version: Some(FC3_API_VERSION.into()),
                auth_config: Some(
                    serde_json::json!({"authType": "function"})
                        .as_object()
                        .cloned()
                        .unwrap_or_default(),
                ),
                ..CustomDomainInput::default()
            }
        };
        let d = CustomDomain::create("1".into(), native("~f1", "f1"), "n".into()).unwrap();
        assert!(d.is_fc3() && d.requires_signature());
        assert!(!domain(vec![route("/*", "f")]).is_fc3());
        for (s, f) in [("~f1", "f2"), ("~", ""), ("~f$x", "f$x")] {
            assert!(
                CustomDomain::create("1".into(), native(s, f), "n".into()).is_err(),
                "{s} {f}"
            );
        }
        let mut jwt = native("~f1", "f1");
        jwt.auth_config = serde_json::json!({"authType": "jwt"}).as_object().cloned();
        assert!(CustomDomain::create("1".into(), jwt, "n".into()).is_err());
        // Stored and read back with the 3.0 fields.
        let back: CustomDomain = serde_json::from_value(serde_json::to_value(&d).unwrap()).unwrap();
        assert_eq!(back, d);
    }
}

/// Properties over generated routes and paths (the `fuzz/` target `custom_domain` explores the
/// same ground without bounds): validation and matching never panic, matching picks the route
/// FC's rules name, and wildcard rewrites capture and substitute exactly.
#[cfg(test)]
mod proptests {
    use proptest::prelude::*;

    use super::*;

    /// Path-ish text over a small alphabet (so that routes and paths collide), with `*`, `$`,
    /// digits and multi-byte characters (the wildcard code slices strings).
    fn text(max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                6 => prop::sample::select(vec!["/", "a", "b", "ab", "/a", "/b"]),
                1 => prop::sample::select(vec!["*", "$", "$1", "$2", "1", "é", "✓", "𝄞", ".", "%"]),
            ],
            0..max,
        )
        .prop_map(|v| v.concat())
    }

    fn route_path() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => text(5).prop_map(|t| format!("/{t}")),
            3 => text(4).prop_map(|t| format!("/{t}/*")),
            1 => Just("/*".to_owned()),
            1 => text(5),
        ]
    }

    fn rule() -> impl Strategy<Value = RewriteRule> {
        (text(8), text(8)).prop_map(|(m, r)| RewriteRule {
            match_: format!("/{m}"),
            replacement: format!("/{r}"),
        })
    }

    fn path_config() -> impl Strategy<Value = PathConfig> {
        (
            route_path(),
            "[a-z]{1,3}",
            prop::collection::vec(rule(), 0..3),
            prop::collection::vec(rule(), 0..3),
        )
            .prop_map(|(path, f, equal_rules, wildcard_rules)| PathConfig {
                path,
                service_name: "s".into(),
                function_name: f,
                qualifier: String::new(),
                methods: vec![],
                rewrite_config: Some(RewriteConfig {
                    equal_rules,
                    wildcard_rules,
                    regex_rules: vec![],
                }),
            })
    }

    /// FC's rule, written plainly: an exact route, else the wildcard route with the longest
    /// prefix (`/api/*` taking `/api` too).
    fn model<'a>(routes: &'a [PathConfig], path: &str) -> Option<&'a PathConfig> {
        if let Some(r) = routes.iter().find(|r| r.path == path) {
            return Some(r);
        }
        let mut best: Option<&PathConfig> = None;
        for r in routes {
            let Some(prefix) = r.path.strip_suffix('*') else {
                continue;
            };
            let matches = path.starts_with(prefix) || path == prefix.trim_end_matches('/');
            if matches && best.is_none_or(|b| b.path.len() < r.path.len()) {
                best = Some(r);
            }
        }
        best
    }

    proptest! {
        #[test]
        fn find_picks_the_route_fc_names(
            routes in prop::collection::vec(path_config(), 0..6),
            path in text(8).prop_map(|t| format!("/{t}")),
        ) {
            let created = CustomDomain::create(
                "1".into(),
                CustomDomainInput {
                    domain_name: Some("x.test".into()),
                    route_config: Some(RouteConfig { routes }),
                    ..CustomDomainInput::default()
                },
                "now".into(),
            );
            let Ok(domain) = created else {
                return Ok(());
            };
            for r in &domain.route_config.routes {
                prop_assert!(r.path.starts_with('/'));
                prop_assert!(!r.qualifier.is_empty());
            }
            let rc = &domain.route_config;
            let found = rc.find(&path);
            prop_assert_eq!(
                found.as_ref().map(|m| &m.route.path),
                model(&rc.routes, &path).map(|r| &r.path),
                "{}",
                path
            );
        }

        #[test]
        fn rewrite_never_panics(rules in prop::collection::vec(rule(), 0..4), path in text(10)) {
            let rc = RewriteConfig { equal_rules: rules.clone(), wildcard_rules: rules, regex_rules: vec![] };
            let _ = rewrite(Some(&rc), &path);
        }

        /// What `*`s capture, put back in the pattern, is the text (captures are sound), and
        /// a text built from the pattern is matched (they are complete).
        #[test]
        fn wildcard_captures_rebuild_the_text(
            literals in prop::collection::vec(text(3).prop_map(|t| t.replace('*', "")), 1..5),
            fills in prop::collection::vec(text(4), 4),
            other in text(10),
        ) {
            let pattern = literals.join("*");
            let rebuild = |caps: &[String]| {
                let mut out = literals[0].clone();
                for (lit, cap) in literals[1..].iter().zip(caps) {
                    out.push_str(cap);
                    out.push_str(lit);
                }
                out
            };
            let built = rebuild(&fills[..literals.len() - 1]);
            let caps = wildcard_captures(&pattern, &built);
            prop_assert!(caps.is_some(), "{} does not match {}", pattern, built);
            for text in [built, other] {
                if let Some(caps) = wildcard_captures(&pattern, &text) {
                    prop_assert_eq!(caps.len(), literals.len() - 1);
                    prop_assert_eq!(rebuild(&caps), text);
                    // Each capture substitutes exactly, whatever it holds.
                    let replacement: Vec<String> = (1..=caps.len()).map(|i| format!("${i}")).collect();
                    prop_assert_eq!(substitute(&replacement.join("|"), &caps), caps.join("|"));
                }
            }
        }

        #[test]
        fn create_never_panics(
            name in prop_oneof![Just("a.test".to_owned()), "\\PC{0,20}"],
            protocol in prop::option::of(prop_oneof![Just("HTTP".to_owned()), Just("https".to_owned()), "\\PC{0,5}"]),
            routes in prop::collection::vec(path_config(), 0..4),
            qualifier in "\\PC{0,4}",
            methods in prop::collection::vec(prop_oneof![Just("get".to_owned()), "\\PC{0,4}"], 0..3),
        ) {
            let routes = routes
                .into_iter()
                .map(|mut r| {
                    r.qualifier = qualifier.clone();
                    r.methods = methods.clone();
                    r
                })
                .collect();
            if let Ok(d) = CustomDomain::create(
                "1".into(),
                CustomDomainInput {
                    domain_name: Some(name),
                    protocol,
                    route_config: Some(RouteConfig { routes }),
                    ..CustomDomainInput::default()
                },
                "now".into(),
            ) {
                for r in &d.route_config.routes {
                    prop_assert!(r.methods.iter().all(|m| HTTP_METHODS_UPPER.contains(&m.as_str())));
                }
            }
        }
    }

    const HTTP_METHODS_UPPER: [&str; 7] = crate::triggers::HTTP_METHODS;
}
