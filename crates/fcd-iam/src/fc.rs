//! Which RAM action and resource each FC API request is. One table for both FC 2.0 API
//! versions (`/2021-04-06/…` and `/2016-08-15/…` carry the same resources), and one for FC 3.0
//! (`/2023-03-30/…`, see "FC 3.0 resources" below).
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
//! | GetFunction, GetFunctionCode, ListInstances, GetFunctionLogs (fcd's extension), the on-demand, provision and async invoke configs, ListStatefulAsyncInvocations (all qualified when given); UpdateFunction, DeleteFunction, ListFunctionAsyncInvokeConfigs; fcd's function metrics (`…/metrics`: action `fc:GetFunction`, never qualified) | `services/{s}/functions/{f}` |
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
//!
//! # FC 3.0 resources
//!
//! Every operation of the 3.0 SDKs (fc3-api.md §3: the Python client's 72 and the Node
//! client's PutLayerACL) has a row, also those fcd answers `NotSupported` (sessions,
//! snapshots, scaling configs, resource groups): a RAM user gets a policy decision about them
//! like about any other, not a refusal for an unknown path. The action is `fc:` and the
//! operation's name (`fc:PublishFunctionVersion`, `fc:GetAsyncTask`, `fc:TagResources`, …).
//! Functions are top-level and a 2.0 function is `svc$fn` in 3.0 (sent as `svc%24fn`, decoded
//! like every segment), so its 3.0 resource is `functions/svc$fn`: grants on 2.0's
//! `services/…` resources do not reach the 3.0 API. Qualifiers are not part of 3.0 resources
//! (fcd decides; FC 3.0's RAM page lists most 3.0 actions with "all resources"): a grant on
//! `functions/f` covers every version and alias of `f`, invocations included.
//!
//! | operations | resource |
//! |---|---|
//! | CreateFunction, ListFunctions; the account-wide ListAsyncInvokeConfigs, ListConcurrencyConfigs, ListProvisionConfigs, ListScalingConfigs, ListSnapshots | `functions/*` |
//! | Get-, Update-, DeleteFunction, GetFunctionCode, Enable-/DisableFunctionInvocation, InvokeFunction, ListInstances, ListAsyncTasks, the async invoke, concurrency, provision and scaling configs, Create-/List-/DeleteVpcBinding | `functions/{f}` |
//! | PublishFunctionVersion, ListFunctionVersions / DeleteFunctionVersion | `functions/{f}/versions/*` / `functions/{f}/versions/{v}` |
//! | CreateAlias, ListAliases / Get-, Update-, DeleteAlias | `functions/{f}/aliases/*` / `functions/{f}/aliases/{a}` |
//! | CreateTrigger, ListTriggers / Get-, Update-, DeleteTrigger | `functions/{f}/triggers/*` / `functions/{f}/triggers/{t}` |
//! | GetAsyncTask, StopAsyncTask | `functions/{f}/async-tasks/{id}` |
//! | CreateSession, ListSessions / Get-, Update-, Delete-, Pause-, ResumeSession | `functions/{f}/sessions/*` / `functions/{f}/sessions/{id}` |
//! | CreateSnapshot / GetSnapshot, DeleteSnapshot | `functions/{f}/snapshots/*` / `functions/{f}/snapshots/{id}` |
//! | ListLayers; PutLayerACL | `layers/*`; `layers/{l}` |
//! | CreateLayerVersion, ListLayerVersions / GetLayerVersion, DeleteLayerVersion | `layers/{l}/versions/*` / `layers/{l}/versions/{v}` |
//! | GetLayerVersionByArn (`/layerarn/{arn}`, the ARN percent-encoded whole) | the ARN's own relative part, `layers/{l}/versions/{v}` |
//! | custom domains | as in 2.0: `custom-domains/*` / `custom-domains/{d}` |
//! | TagResources, UntagResources, ListTagResources, DescribeRegions, ChangeResourceGroup | `*` (they span resource types) |

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
/// In 2.0, InvokeFunction is always qualified (`services/{s}.{q}/functions/{f}`, `LATEST`
/// when no qualifier is given); other operations that take a qualifier are qualified only when
/// one is given. 3.0 resources never carry a qualifier.
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
        } else if name == "arn" {
            out.push_str(layer_arn_resource(value));
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

/// The FC 2.0 API version prefixes every 2.0 route answers under (3.0's is [`V3_PREFIX`]).
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
    // fcd's own extension: the function's last hour, per minute. Read as GetFunction is, but
    // never qualified: the numbers are every version's and alias's together (the handler
    // refuses a qualifier), so a grant on one alias does not reveal them.
    (
        "/services/{service}/functions/{function}/metrics",
        &[("GET", "fc:GetFunction", FUNCTION)],
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

// ---- FC 3.0 (`/2023-03-30`) ------------------------------------------------------------
//
// One block for the whole 3.0 API, kept apart from the 2.0 table above. Actions are the
// operation names of fc3-api.md §3; resources are the 3.0 ones (module docs). Every operation
// of the SDKs is here, also those fcd answers `NotSupported`, so that a RAM user gets a
// decision about them like about any other.

/// The 3.0 API's path prefix.
pub const V3_PREFIX: &str = "/2023-03-30";

/// Account-wide 3.0 listings, and CreateFunction.
const V3_FUNCTIONS: Resource = res("functions/*", Never);
/// Anything of one function (also its configs, code, instances, async tasks lists).
const V3_FUNCTION: Resource = res("functions/{function}", Never);
const V3_VERSIONS: Resource = res("functions/{function}/versions/*", Never);
const V3_VERSION: Resource = res("functions/{function}/versions/{version}", Never);
const V3_ALIASES: Resource = res("functions/{function}/aliases/*", Never);
const V3_ALIAS: Resource = res("functions/{function}/aliases/{alias}", Never);
const V3_TRIGGERS: Resource = res("functions/{function}/triggers/*", Never);
const V3_TRIGGER: Resource = res("functions/{function}/triggers/{trigger}", Never);
const V3_TASK: Resource = res("functions/{function}/async-tasks/{task}", Never);
const V3_SESSIONS: Resource = res("functions/{function}/sessions/*", Never);
const V3_SESSION: Resource = res("functions/{function}/sessions/{session}", Never);
const V3_SNAPSHOTS: Resource = res("functions/{function}/snapshots/*", Never);
const V3_SNAPSHOT: Resource = res("functions/{function}/snapshots/{snapshot}", Never);
const V3_LAYERS: Resource = res("layers/*", Never);
const V3_LAYER: Resource = res("layers/{layer}", Never);
const V3_LAYER_VERSIONS: Resource = res("layers/{layer}/versions/*", Never);
const V3_LAYER_VERSION: Resource = res("layers/{layer}/versions/{version}", Never);
/// `/layerarn/{arn}`: the layer version the (decoded) ARN names, see [`layer_arn_resource`].
const V3_LAYER_ARN: Resource = res("{arn}", Never);
/// Tags, regions and resource groups span resource types: no narrower resource exists.
const V3_ANY: Resource = res("*", Never);

/// Every FC 3.0 operation (below [`V3_PREFIX`]), by path and method.
const V3_ROUTES: &[(&str, Methods)] = &[
    (
        "/functions",
        &[
            ("POST", "fc:CreateFunction", V3_FUNCTIONS),
            ("GET", "fc:ListFunctions", V3_FUNCTIONS),
        ],
    ),
    (
        "/functions/{function}",
        &[
            ("GET", "fc:GetFunction", V3_FUNCTION),
            ("PUT", "fc:UpdateFunction", V3_FUNCTION),
            ("DELETE", "fc:DeleteFunction", V3_FUNCTION),
        ],
    ),
    (
        "/functions/{function}/code",
        &[("GET", "fc:GetFunctionCode", V3_FUNCTION)],
    ),
    (
        "/functions/{function}/invoke/disable",
        &[("POST", "fc:DisableFunctionInvocation", V3_FUNCTION)],
    ),
    (
        "/functions/{function}/invoke/enable",
        &[("POST", "fc:EnableFunctionInvocation", V3_FUNCTION)],
    ),
    (
        "/functions/{function}/invocations",
        &[("POST", "fc:InvokeFunction", V3_FUNCTION)],
    ),
    (
        "/functions/{function}/versions",
        &[
            ("POST", "fc:PublishFunctionVersion", V3_VERSIONS),
            ("GET", "fc:ListFunctionVersions", V3_VERSIONS),
        ],
    ),
    (
        "/functions/{function}/versions/{version}",
        &[("DELETE", "fc:DeleteFunctionVersion", V3_VERSION)],
    ),
    (
        "/functions/{function}/aliases",
        &[
            ("POST", "fc:CreateAlias", V3_ALIASES),
            ("GET", "fc:ListAliases", V3_ALIASES),
        ],
    ),
    (
        "/functions/{function}/aliases/{alias}",
        &[
            ("GET", "fc:GetAlias", V3_ALIAS),
            ("PUT", "fc:UpdateAlias", V3_ALIAS),
            ("DELETE", "fc:DeleteAlias", V3_ALIAS),
        ],
    ),
    (
        "/functions/{function}/triggers",
        &[
            ("POST", "fc:CreateTrigger", V3_TRIGGERS),
            ("GET", "fc:ListTriggers", V3_TRIGGERS),
        ],
    ),
    (
        "/functions/{function}/triggers/{trigger}",
        &[
            ("GET", "fc:GetTrigger", V3_TRIGGER),
            ("PUT", "fc:UpdateTrigger", V3_TRIGGER),
            ("DELETE", "fc:DeleteTrigger", V3_TRIGGER),
        ],
    ),
    (
        "/functions/{function}/async-invoke-config",
        &[
            ("PUT", "fc:PutAsyncInvokeConfig", V3_FUNCTION),
            ("GET", "fc:GetAsyncInvokeConfig", V3_FUNCTION),
            ("DELETE", "fc:DeleteAsyncInvokeConfig", V3_FUNCTION),
        ],
    ),
    (
        "/async-invoke-configs",
        &[("GET", "fc:ListAsyncInvokeConfigs", V3_FUNCTIONS)],
    ),
    (
        "/functions/{function}/async-tasks",
        &[("GET", "fc:ListAsyncTasks", V3_FUNCTION)],
    ),
    (
        "/functions/{function}/async-tasks/{task}",
        &[("GET", "fc:GetAsyncTask", V3_TASK)],
    ),
    (
        "/functions/{function}/async-tasks/{task}/stop",
        &[("PUT", "fc:StopAsyncTask", V3_TASK)],
    ),
    (
        "/functions/{function}/concurrency",
        &[
            ("PUT", "fc:PutConcurrencyConfig", V3_FUNCTION),
            ("GET", "fc:GetConcurrencyConfig", V3_FUNCTION),
            ("DELETE", "fc:DeleteConcurrencyConfig", V3_FUNCTION),
        ],
    ),
    (
        "/concurrency-configs",
        &[("GET", "fc:ListConcurrencyConfigs", V3_FUNCTIONS)],
    ),
    (
        "/functions/{function}/provision-config",
        &[
            ("PUT", "fc:PutProvisionConfig", V3_FUNCTION),
            ("GET", "fc:GetProvisionConfig", V3_FUNCTION),
            ("DELETE", "fc:DeleteProvisionConfig", V3_FUNCTION),
        ],
    ),
    (
        "/provision-configs",
        &[("GET", "fc:ListProvisionConfigs", V3_FUNCTIONS)],
    ),
    (
        "/functions/{function}/scaling-config",
        &[
            ("PUT", "fc:PutScalingConfig", V3_FUNCTION),
            ("GET", "fc:GetScalingConfig", V3_FUNCTION),
            ("DELETE", "fc:DeleteScalingConfig", V3_FUNCTION),
        ],
    ),
    (
        "/scaling-configs",
        &[("GET", "fc:ListScalingConfigs", V3_FUNCTIONS)],
    ),
    (
        "/functions/{function}/instances",
        &[("GET", "fc:ListInstances", V3_FUNCTION)],
    ),
    (
        "/functions/{function}/vpc-bindings",
        &[
            ("POST", "fc:CreateVpcBinding", V3_FUNCTION),
            ("GET", "fc:ListVpcBindings", V3_FUNCTION),
        ],
    ),
    (
        "/functions/{function}/vpc-bindings/{vpc}",
        &[("DELETE", "fc:DeleteVpcBinding", V3_FUNCTION)],
    ),
    (
        "/functions/{function}/sessions",
        &[
            ("POST", "fc:CreateSession", V3_SESSIONS),
            ("GET", "fc:ListSessions", V3_SESSIONS),
        ],
    ),
    (
        "/functions/{function}/sessions/{session}",
        &[
            ("GET", "fc:GetSession", V3_SESSION),
            ("PUT", "fc:UpdateSession", V3_SESSION),
            ("DELETE", "fc:DeleteSession", V3_SESSION),
        ],
    ),
    (
        "/functions/{function}/sessions/{session}/pause",
        &[("PUT", "fc:PauseSession", V3_SESSION)],
    ),
    (
        "/functions/{function}/sessions/{session}/resume",
        &[("PUT", "fc:ResumeSession", V3_SESSION)],
    ),
    (
        "/functions/{function}/snapshots",
        &[("POST", "fc:CreateSnapshot", V3_SNAPSHOTS)],
    ),
    (
        "/functions/{function}/snapshots/{snapshot}",
        &[
            ("GET", "fc:GetSnapshot", V3_SNAPSHOT),
            ("DELETE", "fc:DeleteSnapshot", V3_SNAPSHOT),
        ],
    ),
    ("/snapshots", &[("GET", "fc:ListSnapshots", V3_FUNCTIONS)]),
    ("/layers", &[("GET", "fc:ListLayers", V3_LAYERS)]),
    (
        "/layers/{layer}/versions",
        &[
            ("POST", "fc:CreateLayerVersion", V3_LAYER_VERSIONS),
            ("GET", "fc:ListLayerVersions", V3_LAYER_VERSIONS),
        ],
    ),
    (
        "/layers/{layer}/versions/{version}",
        &[
            ("GET", "fc:GetLayerVersion", V3_LAYER_VERSION),
            ("DELETE", "fc:DeleteLayerVersion", V3_LAYER_VERSION),
        ],
    ),
    (
        "/layers/{layer}/acl",
        &[("PUT", "fc:PutLayerACL", V3_LAYER)],
    ),
    (
        "/layerarn/{arn}",
        &[("GET", "fc:GetLayerVersionByArn", V3_LAYER_ARN)],
    ),
    (
        "/custom-domains",
        &[
            ("POST", "fc:CreateCustomDomain", DOMAINS),
            ("GET", "fc:ListCustomDomains", DOMAINS),
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
        "/tags-v2",
        &[
            ("POST", "fc:TagResources", V3_ANY),
            ("DELETE", "fc:UntagResources", V3_ANY),
            ("GET", "fc:ListTagResources", V3_ANY),
        ],
    ),
    ("/regions", &[("GET", "fc:DescribeRegions", V3_ANY)]),
    (
        "/resource-groups",
        &[("PUT", "fc:ChangeResourceGroup", V3_ANY)],
    ),
];

/// The resource of `GET /layerarn/{arn}`: the relative part of the layer version ARN it names
/// (`acs:fc:{region}:{account}:layers/{name}/versions/{v}` → `layers/{name}/versions/{v}`),
/// checked, like every resource, under the caller's own account (whatever account the ARN
/// names: reading another account's public layer needs the same grant as reading one's own).
/// A value that is not an `acs:fc:` layer ARN (the handler refuses it) is `layers/?`: a grant
/// on every layer covers the refusal, a grant on a named layer never does.
fn layer_arn_resource(arn: &str) -> &str {
    let mut parts = arn.splitn(5, ':');
    match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some("acs"), Some("fc"), Some(_), Some(_), Some(relative))
            if relative.starts_with("layers/") =>
        {
            relative
        }
        _ => "layers/?",
    }
}

/// The table as a matcher; `None` only if a pattern were invalid, which the tests rule out
/// (then every request is "no operation", i.e. refused, rather than a panic).
static ROUTER: LazyLock<Option<matchit::Router<Methods>>> = LazyLock::new(|| {
    let mut router = matchit::Router::new();
    for prefix in API_PREFIXES {
        for (pattern, methods) in ROUTES {
            router.insert(format!("{prefix}{pattern}"), *methods).ok()?;
        }
    }
    for (pattern, methods) in V3_ROUTES {
        router
            .insert(format!("{V3_PREFIX}{pattern}"), *methods)
            .ok()?;
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
