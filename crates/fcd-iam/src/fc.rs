//! Which RAM action and resource each FC API request is. One table for both API versions
//! (`/2021-04-06/…` and `/2016-08-15/…` carry the same resources).
//!
//! # Matching exactly what the router routes
//!
//! An authorization decision is only as good as its agreement with what the handler then
//! does, so [`operation`] reads a request the way `fcd-api`'s axum router does: the same route
//! patterns matched by the same matcher (`matchit`, axum's), path parameters percent-decoded
//! the same way (`secre%74` is `secret`; a parameter that is not UTF-8 once decoded is no
//! operation, as axum refuses it), `HEAD` routed like `GET`, methods compared exactly. The
//! service segment is split at its first `.` into name and qualifier in both API versions,
//! the path's qualifier wins over `?qualifier=`, and an empty qualifier is none — as the
//! handlers' `qualified()` does.
//!
//! # Resources
//!
//! Relative to `acs:fc:<region>:<account>:`. A qualifier appears as `services/{s}.{q}`:
//!
//! | operations | resource |
//! |---|---|
//! | ListServices, CreateService; the account-wide listings ListOnDemandConfigs, ListProvisionConfigs, ListStatefulAsyncInvocationFunctions | `services/*` (a grant on `services/*` or `*` is needed: they list across services) |
//! | GetService (qualified when given), UpdateService, DeleteService | `services/{s}` |
//! | ListFunctions (qualified when given), CreateFunction | `services/{s}/functions/*` |
//! | GetFunction, GetFunctionCode, ListInstances, GetFunctionLogs (fcd's extension), the on-demand, provision and async invoke configs, ListStatefulAsyncInvocations (all qualified when given); UpdateFunction, DeleteFunction, ListFunctionAsyncInvokeConfigs | `services/{s}/functions/{f}` |
//! | InvokeFunction (always qualified; `LATEST` when no qualifier is given) | `services/{s}.{q}/functions/{f}` |
//! | GetStatefulAsyncInvocation, StopStatefulAsyncInvocation | `services/{s}/functions/{f}/stateful-async-invocations/{id}` (never qualified: the handler finds the invocation by id whatever the qualifier) |
//! | ListServiceVersions, PublishServiceVersion / DeleteServiceVersion | `services/{s}/versions/*` / `services/{s}/versions/{v}` |
//! | ListAliases, CreateAlias / GetAlias, UpdateAlias, DeleteAlias | `services/{s}/aliases/*` / `services/{s}/aliases/{a}` |
//! | ListTriggers, CreateTrigger / GetTrigger, UpdateTrigger, DeleteTrigger | `services/{s}/functions/{f}/triggers/*` / `…/triggers/{t}` |
//! | ListCustomDomains, CreateCustomDomain / Get-, Update-, DeleteCustomDomain | `custom-domains/*` / `custom-domains/{d}` |
//! | CreateVpcBinding, DeleteVpcBinding, ListVpcBindings | `services/{s}` (a binding is a property of the service) |
//! | TagResource, UntagResource, GetResourceTags, ListTaggedResources; GetAccountSettings | `*` (the tagged resource travels in the body or query, which the decision does not read: a grant on `*` is needed) |
//! | ListLayers; ListLayerVersions, CreateLayerVersion; GetLayerVersion, DeleteLayerVersion; PutLayerACL | `layers/*`; `layers/{l}/versions/*`; `layers/{l}/versions/{v}`; `layers/{l}` |
//!
//! Operations that take no qualifier name the service without one: their handlers refuse a
//! `svc.q` segment, so nothing is ever done to the qualified name.

use std::sync::LazyLock;

/// The authorization subject of one FC request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcOperation {
    /// `fc:InvokeFunction`, `fc:ListServices`, …
    pub action: &'static str,
    /// The resource relative to `acs:fc:<region>:<account>:`, e.g.
    /// `services/svc.prod/functions/f`.
    pub resource: String,
}

/// The operation of an FC API request, from its method, its full path (with the version
/// prefix, as received, still percent-encoded) and its `qualifier` query parameter. `None`
/// when the path is not an FC operation (the router then answers `PathNotSupported`).
///
/// InvokeFunction is always qualified (`services/{s}.{q}/functions/{f}`, `LATEST` when no
/// qualifier is given); other operations that take a qualifier are qualified only when one is
/// given.
///
/// `path` is `uri.path()` exactly as the router sees it; `qualifier` is the value the handlers
/// read from the query string — [`query_qualifier`] extracts it the same way.
pub fn operation(method: &str, path: &str, qualifier: Option<&str>) -> Option<FcOperation> {
    let (action, resource, params) = route(method, path)?;
    Some(FcOperation {
        action,
        resource: fill(resource, &params, qualifier)?,
    })
}

/// Decoded path parameters, by name.
type Params<'p> = Vec<(&'static str, std::borrow::Cow<'p, str>)>;

/// The route `path` takes with `method`, and its parameters decoded as axum decodes them.
fn route<'p>(method: &str, path: &'p str) -> Option<(&'static str, Resource, Params<'p>)> {
    let router = ROUTER.as_ref()?;
    let found = router.at(path).ok()?;
    // axum routes HEAD to the GET handler.
    let method = if method == "HEAD" { "GET" } else { method };
    let (_, action, resource) = found.value.iter().find(|(m, _, _)| *m == method)?;
    let mut params = Vec::new();
    for (name, raw) in found.params.iter() {
        let decoded = percent_encoding::percent_decode(raw.as_bytes())
            .decode_utf8()
            .ok()?;
        params.push((name, decoded));
    }
    Some((action, *resource, params))
}

/// The resource of `resource` for these parameters (see the module docs).
fn fill(resource: Resource, params: &Params<'_>, qualifier: Option<&str>) -> Option<String> {
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_ref())
    };
    let mut out = String::with_capacity(resource.template.len() + 32);
    let mut rest = resource.template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = open + rest[open..].find('}')?;
        let name = &rest[open + 1..close];
        let value = param(name)?;
        if name == "service" {
            push_service(&mut out, value, qualifier, resource.qualify);
        } else {
            out.push_str(value);
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The `qualifier` query parameter as the handlers read it: form-decoded (`+` is a space,
/// invalid UTF-8 replaced), the last one when it is repeated.
pub fn query_qualifier(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == "qualifier")
        .last()
        .map(|(_, v)| v.into_owned())
}

/// `acs:fc:{region}:{account}:{relative}`.
pub fn arn(region: &str, account_id: &str, relative: &str) -> String {
    format!("acs:fc:{region}:{account_id}:{relative}")
}

/// The API version prefixes every route answers under.
pub const API_PREFIXES: [&str; 2] = ["/2021-04-06", "/2016-08-15"];

/// How an operation's resource names the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualify {
    /// The name alone: the operation takes no qualifier.
    Never,
    /// `name.q` when the request has a qualifier.
    WhenGiven,
    /// `name.q`, `name.LATEST` without one.
    Always,
}

#[derive(Debug, Clone, Copy)]
struct Resource {
    /// `{service}` is the service (see [`Qualify`]); any other `{param}` its decoded value.
    template: &'static str,
    qualify: Qualify,
}

const fn res(template: &'static str, qualify: Qualify) -> Resource {
    Resource { template, qualify }
}

type Methods = &'static [(&'static str, &'static str, Resource)];

use Qualify::{Always, Never, WhenGiven};

const SERVICES: Resource = res("services/*", Never);
const SERVICE: Resource = res("services/{service}", Never);
const SERVICE_Q: Resource = res("services/{service}", WhenGiven);
const FUNCTIONS: Resource = res("services/{service}/functions/*", Never);
const FUNCTIONS_Q: Resource = res("services/{service}/functions/*", WhenGiven);
const FUNCTION: Resource = res("services/{service}/functions/{function}", Never);
const FUNCTION_Q: Resource = res("services/{service}/functions/{function}", WhenGiven);
const INVOKED: Resource = res("services/{service}/functions/{function}", Always);
const VERSIONS: Resource = res("services/{service}/versions/*", Never);
const VERSION: Resource = res("services/{service}/versions/{version}", Never);
const ALIASES: Resource = res("services/{service}/aliases/*", Never);
const ALIAS: Resource = res("services/{service}/aliases/{alias}", Never);
const TRIGGERS: Resource = res("services/{service}/functions/{function}/triggers/*", Never);
const TRIGGER: Resource = res(
    "services/{service}/functions/{function}/triggers/{trigger}",
    Never,
);
const INVOCATION: Resource = res(
    "services/{service}/functions/{function}/stateful-async-invocations/{invocation}",
    Never,
);
const DOMAINS: Resource = res("custom-domains/*", Never);
const DOMAIN: Resource = res("custom-domains/{domain}", Never);
/// Operations whose resource is not in the path (tags) or is the account (its settings).
const ANY: Resource = res("*", Never);
const LAYERS: Resource = res("layers/*", Never);
const LAYER: Resource = res("layers/{layer}", Never);
const LAYER_VERSIONS: Resource = res("layers/{layer}/versions/*", Never);
const LAYER_VERSION: Resource = res("layers/{layer}/versions/{version}", Never);

/// Every FC route (below the version prefix), with its operations by method. The patterns
/// are `fcd-api`'s router's, plus the trigger and custom-domain routes.
const ROUTES: &[(&str, Methods)] = &[
    (
        "/services",
        &[
            ("GET", "fc:ListServices", SERVICES),
            ("POST", "fc:CreateService", SERVICES),
        ],
    ),
    (
        "/services/{service}",
        &[
            ("GET", "fc:GetService", SERVICE_Q),
            ("PUT", "fc:UpdateService", SERVICE),
            ("DELETE", "fc:DeleteService", SERVICE),
        ],
    ),
    (
        "/services/{service}/functions",
        &[
            ("GET", "fc:ListFunctions", FUNCTIONS_Q),
            ("POST", "fc:CreateFunction", FUNCTIONS),
        ],
    ),
    (
        "/services/{service}/functions/{function}",
        &[
            ("GET", "fc:GetFunction", FUNCTION_Q),
            ("PUT", "fc:UpdateFunction", FUNCTION),
            ("DELETE", "fc:DeleteFunction", FUNCTION),
        ],
    ),
    (
        "/services/{service}/functions/{function}/code",
        &[("GET", "fc:GetFunctionCode", FUNCTION_Q)],
    ),
    (
        "/services/{service}/functions/{function}/invocations",
        &[("POST", "fc:InvokeFunction", INVOKED)],
    ),
    (
        "/services/{service}/versions",
        &[
            ("GET", "fc:ListServiceVersions", VERSIONS),
            ("POST", "fc:PublishServiceVersion", VERSIONS),
        ],
    ),
    (
        "/services/{service}/versions/{version}",
        &[("DELETE", "fc:DeleteServiceVersion", VERSION)],
    ),
    (
        "/services/{service}/aliases",
        &[
            ("GET", "fc:ListAliases", ALIASES),
            ("POST", "fc:CreateAlias", ALIASES),
        ],
    ),
    (
        "/services/{service}/aliases/{alias}",
        &[
            ("GET", "fc:GetAlias", ALIAS),
            ("PUT", "fc:UpdateAlias", ALIAS),
            ("DELETE", "fc:DeleteAlias", ALIAS),
        ],
    ),
    (
        "/services/{service}/functions/{function}/on-demand-config",
        &[
            ("PUT", "fc:PutFunctionOnDemandConfig", FUNCTION_Q),
            ("GET", "fc:GetFunctionOnDemandConfig", FUNCTION_Q),
            ("DELETE", "fc:DeleteFunctionOnDemandConfig", FUNCTION_Q),
        ],
    ),
    (
        "/on-demand-configs",
        &[("GET", "fc:ListOnDemandConfigs", SERVICES)],
    ),
    (
        "/services/{service}/functions/{function}/provision-config",
        &[
            ("PUT", "fc:PutProvisionConfig", FUNCTION_Q),
            ("GET", "fc:GetProvisionConfig", FUNCTION_Q),
        ],
    ),
    (
        "/provision-configs",
        &[("GET", "fc:ListProvisionConfigs", SERVICES)],
    ),
    (
        "/services/{service}/functions/{function}/async-invoke-config",
        &[
            ("GET", "fc:GetFunctionAsyncInvokeConfig", FUNCTION_Q),
            ("PUT", "fc:PutFunctionAsyncInvokeConfig", FUNCTION_Q),
            ("DELETE", "fc:DeleteFunctionAsyncInvokeConfig", FUNCTION_Q),
        ],
    ),
    (
        "/services/{service}/functions/{function}/async-invoke-configs",
        &[("GET", "fc:ListFunctionAsyncInvokeConfigs", FUNCTION)],
    ),
    (
        "/services/{service}/functions/{function}/stateful-async-invocations",
        &[("GET", "fc:ListStatefulAsyncInvocations", FUNCTION_Q)],
    ),
    (
        "/services/{service}/functions/{function}/stateful-async-invocations/{invocation}",
        &[
            ("GET", "fc:GetStatefulAsyncInvocation", INVOCATION),
            ("PUT", "fc:StopStatefulAsyncInvocation", INVOCATION),
        ],
    ),
    (
        "/stateful-async-invocation-functions",
        &[("GET", "fc:ListStatefulAsyncInvocationFunctions", SERVICES)],
    ),
    (
        "/services/{service}/functions/{function}/instances",
        &[("GET", "fc:ListInstances", FUNCTION_Q)],
    ),
    // fcd's own extension: the function's stored log (not an FC operation).
    (
        "/services/{service}/functions/{function}/logs",
        &[("GET", "fc:GetFunctionLogs", FUNCTION_Q)],
    ),
    (
        "/services/{service}/functions/{function}/triggers",
        &[
            ("GET", "fc:ListTriggers", TRIGGERS),
            ("POST", "fc:CreateTrigger", TRIGGERS),
        ],
    ),
    (
        "/services/{service}/functions/{function}/triggers/{trigger}",
        &[
            ("GET", "fc:GetTrigger", TRIGGER),
            ("PUT", "fc:UpdateTrigger", TRIGGER),
            ("DELETE", "fc:DeleteTrigger", TRIGGER),
        ],
    ),
    (
        "/custom-domains",
        &[
            ("GET", "fc:ListCustomDomains", DOMAINS),
            ("POST", "fc:CreateCustomDomain", DOMAINS),
        ],
    ),
    (
        "/custom-domains/{domain}",
        &[
            ("GET", "fc:GetCustomDomain", DOMAIN),
            ("PUT", "fc:UpdateCustomDomain", DOMAIN),
            ("DELETE", "fc:DeleteCustomDomain", DOMAIN),
        ],
    ),
    (
        "/services/{service}/bindings",
        &[
            ("GET", "fc:ListVpcBindings", SERVICE),
            ("POST", "fc:CreateVpcBinding", SERVICE),
        ],
    ),
    (
        "/services/{service}/bindings/{vpc}",
        &[("DELETE", "fc:DeleteVpcBinding", SERVICE)],
    ),
    // UntagResource: PUT from the 2021 SDK, DELETE from the classic SDKs.
    (
        "/tag",
        &[
            ("POST", "fc:TagResource", ANY),
            ("PUT", "fc:UntagResource", ANY),
            ("DELETE", "fc:UntagResource", ANY),
            ("GET", "fc:GetResourceTags", ANY),
        ],
    ),
    ("/tags", &[("GET", "fc:ListTaggedResources", ANY)]),
    (
        "/account-settings",
        &[("GET", "fc:GetAccountSettings", ANY)],
    ),
    ("/layers", &[("GET", "fc:ListLayers", LAYERS)]),
    (
        "/layers/{layer}/versions",
        &[
            ("GET", "fc:ListLayerVersions", LAYER_VERSIONS),
            ("POST", "fc:CreateLayerVersion", LAYER_VERSIONS),
        ],
    ),
    (
        "/layers/{layer}/versions/{version}",
        &[
            ("GET", "fc:GetLayerVersion", LAYER_VERSION),
            ("DELETE", "fc:DeleteLayerVersion", LAYER_VERSION),
        ],
    ),
    ("/layers/{layer}/acl", &[("PUT", "fc:PutLayerACL", LAYER)]),
];

/// The table as a matcher; `None` only if a pattern were invalid, which the tests rule out
/// (then every request is "no operation", i.e. refused, rather than a panic).
static ROUTER: LazyLock<Option<matchit::Router<Methods>>> = LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for prefix in API_PREFIXES {
        for (pattern, methods) in ROUTES {
            router.insert(format!("{prefix}{pattern}"), *methods).ok()?;
        }
    }
    Some(router)
});

/// Appends the service as the operation names it: the segment is `name` or `name.qualifier`
/// (split at the first dot); the path's qualifier wins over the query's; empty is none.
fn push_service(out: &mut String, segment: &str, query: Option<&str>, qualify: Qualify) {
    let (name, path_q) = match segment.split_once('.') {
        Some((name, q)) => (name, Some(q)),
        None => (segment, None),
    };
    let qualifier = path_q.or(query).filter(|q| !q.is_empty());
    out.push_str(name);
    match (qualify, qualifier) {
        (Qualify::Never, _) | (Qualify::WhenGiven, None) => {}
        (Qualify::WhenGiven | Qualify::Always, Some(q)) => {
            out.push('.');
            out.push_str(q);
        }
        (Qualify::Always, None) => out.push_str(".LATEST"),
    }
}

#[cfg(test)]
mod tests;
