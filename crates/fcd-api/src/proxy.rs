//! The HTTP data path: requests that reach a function by URL rather than through
//! InvokeFunction — an HTTP trigger's `/{2021-04-06|2016-08-15}/proxy/{service}[.{qualifier}]/
//! {function}[/{path…}]`, or any request whose `Host` names a custom domain (routed by the
//! domain's `routeConfig`). fc-runtime-contract.md section 12; CONTRACT-12 sections 3 and 4.
//!
//! FC 3.0's HTTP trigger URLs name the trigger by its `urlId`
//! ([`fcd_control::http_event::url_id`]), two ways: the `Host` `{urlId}.{anything}` (FC's
//! `{urlId}.{region}.fcapp.run`; a `-vpc` second label, `{urlId}.{region}-vpc.fcapp.run`, is
//! the intranet URL), looked up after custom domains; and, for loopback use without DNS, the
//! path `/2023-03-30/proxy/{urlId}/{path…}` (intranet: `/2023-03-30/proxy-vpc/{urlId}/…`),
//! whose prefix is stripped. Either way the function sees the client's raw path (no base
//! path, as on FC 3.0), the trigger's qualifier is used, and `disableURLInternet: true` closes
//! the internet URL (403). FC 3.0 custom domains (`apiVersion` 2023-03-30) reach their
//! functions without an HTTP trigger; their `authConfig` decides who may call. Native 3.0
//! functions (hidden services) are never reached through 2.0's `/proxy/` URLs.
//!
//! A native 3.0 function with a built-in runtime gets the call as the v1 JSON event and its
//! result is mapped back to HTTP ([`fcd_control::http_event`]); every other function gets the
//! HTTP request itself, as below.
//!
//! [`crate::auth::layer`] hands such requests here before API authentication ([`entry`]),
//! because the function's HTTP trigger, not the API's rules, decides who may call:
//! `authType: anonymous` admits anyone; `authType: function` needs the FC signature (the
//! query always signed, sorted or in URL order), a fresh `Date`, a key resolved like an API
//! caller's (root, RAM user, `STS.` key with `x-fc-security-token`) and `fc:InvokeFunction`
//! on the function's qualified ARN — the same functions [`crate::auth`] uses for the API.
//! The trigger's `methods` (and a domain route's) filter the method.
//!
//! The request then reaches the instance manager through [`fcd_control::Control::invoke`],
//! the same call InvokeFunction makes, with the client's request in
//! [`fcd_runtime::InvokeRequest::http`]; `X-Fc-Invocation-Type: Async` goes through the async
//! engine instead, which replays the same HTTP request later.
//!
//! What the client gets: the function's status, headers (minus FC's reserved ones) and body;
//! a function error as 502 with `X-Fc-Error-Type` and FC's error JSON; a request error as
//! FC's error JSON with `X-Fc-Error-Type: FcCommonError`. `X-Fc-Log-Type: Tail` is honoured
//! only for signed (`authType: function`) calls — whoever may invoke may read the tail, as with
//! InvokeFunction — and ignored for anonymous ones, whose callers must not read the
//! function's log.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

use fcd_control::http_event::{self, UrlTrigger};
use fcd_core::FcError;
use fcd_core::domains::CustomDomain;
use fcd_core::limits::{ASYNC_PAYLOAD_MAX, SYNC_PAYLOAD_MAX};
use fcd_core::triggers::AuthType;
use fcd_runtime::{HttpInvocation, InvokeOutcome, InvokeRequest};

use crate::AppState;
use crate::auth;
use crate::error::render;
use crate::frontdoor;

/// The URL prefixes of HTTP triggers, one per API version.
const PROXY_PREFIXES: [&str; 2] = ["/2021-04-06/proxy/", "/2016-08-15/proxy/"];

/// The path forms of FC 3.0 trigger URLs: `{prefix}{urlId}[/{path…}]`, internet and intranet.
pub const FC3_PROXY_PREFIX: &str = "/2023-03-30/proxy/";
pub const FC3_PROXY_VPC_PREFIX: &str = "/2023-03-30/proxy-vpc/";

/// FC 3.0's answer when a trigger's internet URL is disabled.
const INTERNET_DISABLED: &str = "access denied due to function internet URL is disable";

/// FC's request limits for HTTP functions: headers (names plus values), and path with query.
pub const REQUEST_HEADERS_MAX: usize = 8 * 1024;
pub const TARGET_MAX: usize = 4 * 1024;
/// A function's response headers above this are a `BadResponse` (502).
pub const RESPONSE_HEADERS_MAX: usize = 8 * 1024;

/// Characters a rewritten custom-domain path must not carry raw in a request-target.
const PATH_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Why a request belongs to the HTTP data path.
pub(crate) enum Entry {
    /// A `/proxy/` URL.
    Proxy,
    /// A custom domain named by the `Host` header.
    Domain(Arc<CustomDomain>),
    /// An FC 3.0 trigger URL's path form (the trigger is looked up when served).
    Fc3Path,
    /// An FC 3.0 trigger named by the `Host` header's first label.
    Fc3Host {
        trigger: Arc<UrlTrigger>,
        intranet: bool,
    },
}

fn is_proxy_path(path: &str) -> bool {
    PROXY_PREFIXES.iter().any(|p| path.starts_with(p))
}

fn is_fc3_proxy_path(path: &str) -> bool {
    path.starts_with(FC3_PROXY_PREFIX) || path.starts_with(FC3_PROXY_VPC_PREFIX)
}

/// A path-form 3.0 trigger URL split: (urlId, intranet, the prefix up to and with the urlId).
fn fc3_path_parts(path: &str) -> Option<(&str, bool, &str)> {
    let (rest, intranet) = if let Some(r) = path.strip_prefix(FC3_PROXY_PREFIX) {
        (r, false)
    } else {
        (path.strip_prefix(FC3_PROXY_VPC_PREFIX)?, true)
    };
    let id = rest.split('/').next().unwrap_or("");
    let base_len = path.len() - rest.len() + id.len();
    Some((id, intranet, &path[..base_len]))
}

/// The trigger a Host of the form `{urlId}.{rest}` names (`rest` non-empty), and whether it
/// is the intranet host (`{urlId}.{region}-vpc.…`).
async fn fc3_host(state: &AppState, host: &str) -> Option<Entry> {
    let (label, rest) = host.split_once('.')?;
    if rest.is_empty() || label.is_empty() {
        return None;
    }
    let trigger = state.control.http_trigger_by_url_id(label).await?;
    let intranet = rest.split('.').next().is_some_and(|r| r.ends_with("-vpc"));
    Some(Entry::Fc3Host { trigger, intranet })
}

/// The host a request names (`Host`, else the URI's authority), port stripped and
/// lower-cased; `None` for an IP address (how the SDKs and API clients reach fcd, so an API
/// call never costs a domain lookup) or when there is none.
fn host_name(req_headers: &HeaderMap, uri: &http::Uri) -> Option<String> {
    let raw = req_headers
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?
        .trim();
    if raw.starts_with('[') {
        return None; // an IPv6 literal
    }
    // The root's trailing dot goes first, so `10.0.0.1.` is an address too.
    let host = raw
        .rsplit_once(':')
        .map_or(raw, |(h, _)| h)
        .trim_end_matches('.');
    if host.is_empty() || host.parse::<IpAddr>().is_ok() {
        return None;
    }
    Some(host.to_ascii_lowercase())
}

/// Whether `req` is for the HTTP data path, and why.
/// On the API listener (`api_listener`), a request shaped like an API call — a path under an
/// API version prefix, `/status`, `/code-packages/…`, or RAM/STS at `/` (`x-acs-version`) —
/// stays an API call whatever its `Host`: a custom domain named like the server's own host
/// must not capture API traffic (and the signed requests in it). The plain-web listener has
/// no API, so there every path of a domain is the domain's.
///
/// (Takes the head's parts, not the request: a body is not `Sync`, so a borrowed request
/// cannot cross an await.)
pub(crate) async fn entry(
    state: &AppState,
    headers: &HeaderMap,
    uri: &http::Uri,
    api_listener: bool,
) -> Option<Entry> {
    let path = uri.path();
    if is_proxy_path(path) {
        return Some(Entry::Proxy);
    }
    if is_fc3_proxy_path(path) {
        return Some(Entry::Fc3Path);
    }
    if api_listener && is_api_call(path, headers) {
        return None;
    }
    let host = host_name(headers, uri)?;
    match state.control.custom_domain(&host).await {
        Some(d) => Some(Entry::Domain(d)),
        None => fc3_host(state, &host).await,
    }
}

/// Whether a request on the API listener is an API call by its shape (see [`entry`]).
fn is_api_call(path: &str, headers: &HeaderMap) -> bool {
    // FC 3.0's prefix too (its trigger URLs under it are matched before this is asked).
    fcd_iam::fc::API_PREFIXES
        .iter()
        .chain(&["/2023-03-30"])
        .any(|p| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
        || path == "/status"
        || path.starts_with("/code-packages/")
        || (path == "/" && headers.contains_key("x-acs-version"))
}

/// FC's response to a request error (not the function's).
fn common_error(e: &FcError, request_id: &str) -> Response {
    if matches!(e, FcError::Internal) {
        tracing::error!(request_id, "internal error on the HTTP data path");
    }
    let mut resp = render(e, request_id);
    resp.headers_mut().insert(
        HeaderName::from_static("x-fc-error-type"),
        HeaderValue::from_static("FcCommonError"),
    );
    resp
}

/// Serves one request of the data path; every outcome is a response.
pub(crate) async fn serve(
    state: &AppState,
    req: Request,
    request_id: &str,
    entry: Entry,
) -> Response {
    let (parts, body) = req.into_parts();
    let declared = header(&parts.headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    let mut body = Some(body);
    match handle(state, parts, &mut body, request_id, entry).await {
        Ok(resp) => resp,
        Err(e) => {
            // Refused before its body was read: the body is read and dropped first, within
            // bounds, so the connection is not reset under a client or proxy still sending it.
            if let Some(body) = body
                && declared.is_none_or(|n| n <= frontdoor::REFUSED_BODY_DRAIN_MAX)
            {
                frontdoor::discard_body(
                    body,
                    state.front_door.body_read_timeout(),
                    frontdoor::REFUSED_BODY_DRAIN_MAX,
                )
                .await;
            }
            common_error(&e, request_id)
        }
    }
}

/// The function a request reaches and what its instance is sent.
struct Target {
    account: String,
    service: String,
    qualifier: Option<String>,
    function: String,
    /// The request-target for the instance.
    target: String,
    base_path: Option<String>,
    /// `requestContext.domainPrefix` of a v1 event: the trigger's urlId, or the domain's
    /// first label.
    domain_prefix: String,
}

fn decode(raw: &str) -> Result<String, FcError> {
    percent_decode_str(raw)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| FcError::invalid(format!("the path segment '{raw}' is not valid UTF-8")))
}

/// `/{version}/proxy/{service}[.{qualifier}]/{function}[/{path…}]`.
fn proxy_target(path: &str, path_and_query: &str) -> Result<Target, FcError> {
    let prefix = PROXY_PREFIXES
        .iter()
        .find(|p| path.starts_with(*p))
        .ok_or(FcError::Internal)?;
    let rest = &path[prefix.len()..];
    let (svc_raw, after) = rest.split_once('/').unwrap_or((rest, ""));
    let fn_raw = after.split('/').next().unwrap_or("");
    if svc_raw.is_empty() || fn_raw.is_empty() {
        return Err(FcError::invalid(format!(
            "'{path}' is not an HTTP trigger URL: use {prefix}{{service}}[.{{qualifier}}]/{{function}}/{{path}}"
        )));
    }
    let service_seg = decode(svc_raw)?;
    let (service, qualifier) = match service_seg.split_once('.') {
        Some((s, q)) => (s.to_owned(), Some(q.to_owned()).filter(|q| !q.is_empty())),
        None => (service_seg, None),
    };
    Ok(Target {
        account: String::new(),
        service,
        qualifier,
        function: decode(fn_raw)?,
        target: path_and_query.to_owned(),
        base_path: Some(format!("{prefix}{svc_raw}/{fn_raw}")),
        domain_prefix: String::new(),
    })
}

/// The function an FC 3.0 trigger URL reaches: the trigger's, as its qualifier; the function
/// sees the client's path and query, minus `strip` (the path form's prefix).
fn fc3_target(t: &UrlTrigger, path_and_query: &str, strip: &str) -> Target {
    let mut target = path_and_query
        .strip_prefix(strip)
        .unwrap_or(path_and_query)
        .to_owned();
    if !target.starts_with('/') {
        target.insert(0, '/');
    }
    Target {
        account: t.account.clone(),
        service: t.service.clone(),
        qualifier: Some(t.route.trigger.qualifier.clone()),
        function: t.function.clone(),
        target,
        base_path: None,
        domain_prefix: fcd_control::http_event::url_id(
            &t.account,
            &t.service,
            &t.function,
            &t.route.trigger.trigger_name,
        ),
    }
}

/// The account a `/proxy/` URL reaches: FC names it in the host
/// (`{account}.{region}.fc.aliyuncs.com`); otherwise the server's own account.
fn proxy_account(
    state: &AppState,
    headers: &HeaderMap,
    uri: &http::Uri,
) -> Result<String, FcError> {
    let accounts = state.iam.root_accounts();
    if let Some(host) = host_name(headers, uri)
        && let Some(label) = host.split('.').next()
        && accounts.contains(&label)
    {
        return Ok(label.to_owned());
    }
    match accounts.as_slice() {
        [one] => Ok((*one).to_owned()),
        _ => Err(FcError::invalid(
            "this server holds several accounts: name the account as the first label of the Host ({account}.…)",
        )),
    }
}

/// A custom domain's route for the request: the function, and the (rewritten) path it sees.
fn domain_target(
    domain: &CustomDomain,
    method: &str,
    raw_path: &str,
    query: Option<&str>,
) -> Result<Target, FcError> {
    let path = decode(raw_path)?;
    let found = domain
        .route_config
        .find(&path)
        .ok_or_else(|| FcError::RouteNotFound {
            domain: domain.domain_name.clone(),
            path: path.clone(),
        })?;
    let route = found.route;
    if !route.allows(method) {
        return Err(FcError::AccessDenied(format!(
            "method {method} is not allowed on path '{}' of custom domain '{}'",
            route.path, domain.domain_name
        )));
    }
    // Untouched paths go on exactly as the client encoded them.
    let mut target = if found.path == path {
        raw_path.to_owned()
    } else {
        utf8_percent_encode(&found.path, PATH_ESCAPE).to_string()
    };
    if let Some(q) = query {
        target.push('?');
        target.push_str(q);
    }
    Ok(Target {
        account: domain.account_id.clone(),
        service: route.service_name.clone(),
        qualifier: Some(route.qualifier.clone()).filter(|q| !q.is_empty()),
        function: route.function_name.clone(),
        target,
        base_path: None,
        domain_prefix: domain
            .domain_name
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned(),
    })
}

/// FC's request limits: headers and request-target.
fn check_limits(parts: &http::request::Parts) -> Result<(), FcError> {
    let target_len = parts.uri.path_and_query().map_or(0, |p| p.as_str().len());
    if target_len > TARGET_MAX {
        return Err(FcError::invalid(format!(
            "the request path and query are {target_len} bytes: at most {TARGET_MAX} are allowed"
        )));
    }
    let header_len: usize = parts
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len())
        .sum();
    if header_len > REQUEST_HEADERS_MAX {
        return Err(FcError::invalid(format!(
            "the request headers are {header_len} bytes: at most {REQUEST_HEADERS_MAX} are allowed"
        )));
    }
    Ok(())
}

/// The client's headers a function sees: FC drops `x-fc-*`, `connection` and `keep-alive`
/// (the instance manager drops the other hop-by-hop headers).
fn client_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        let n = k.as_str();
        if n.starts_with("x-fc-") || n == "connection" || n == "keep-alive" {
            continue;
        }
        out.append(k.clone(), v.clone());
    }
    out
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// `body` is taken when it is read; left in place, the caller drains it.
async fn handle(
    state: &AppState,
    parts: http::request::Parts,
    body: &mut Option<Body>,
    request_id: &str,
    entry: Entry,
) -> Result<Response, FcError> {
    check_limits(&parts)?;
    let raw_path = parts.uri.path().to_owned();
    let method = parts.method.as_str().to_owned();
    let pq = parts
        .uri
        .path_and_query()
        .map_or(raw_path.as_str(), |p| p.as_str())
        .to_owned();
    // The trigger that admits the call (`None`: an FC 3.0 custom domain, which needs none),
    // and whether the URL is an intranet one.
    let (mut t, trigger, intranet) = match &entry {
        Entry::Proxy => {
            let mut t = proxy_target(&raw_path, &pq)?;
            // Native 3.0 functions are invisible to 2.0, its URLs included.
            if fcd_core::fc3::is_hidden_service(&t.service) {
                return Err(FcError::ServiceNotFound(t.service));
            }
            t.account = proxy_account(state, &parts.headers, &parts.uri)?;
            (t, None, false)
        }
        Entry::Domain(d) => (
            domain_target(d, &method, &raw_path, parts.uri.query())?,
            None,
            false,
        ),
        Entry::Fc3Path => {
            let (id, intranet, base) = fc3_path_parts(&raw_path).ok_or(FcError::Internal)?;
            let found = match state.control.http_trigger_by_url_id(id).await {
                Some(found) => found,
                None => {
                    return Err(FcError::Fc3Message {
                        code: "TriggerNotFound",
                        status: 404,
                        message: format!("no HTTP trigger has the URL id '{id}'"),
                    });
                }
            };
            let t = fc3_target(&found, &pq, base);
            (t, Some(found.route.clone()), intranet)
        }
        Entry::Fc3Host { trigger, intranet } => {
            let t = fc3_target(trigger, &pq, "");
            (t, Some(trigger.route.clone()), *intranet)
        }
    };
    let fc3_domain = matches!(&entry, Entry::Domain(d) if d.is_fc3());
    let trigger = match (trigger, &entry) {
        (Some(found), _) => Some(found),
        (None, _) if fc3_domain => None,
        (None, _) => Some(
            state
                .control
                .http_trigger(&t.account, &t.service, t.qualifier.as_deref(), &t.function)
                .await?,
        ),
    };
    if let Some(trigger) = &trigger {
        if !intranet
            && trigger.config.disable_url_internet == Some(true)
            && matches!(entry, Entry::Fc3Path | Entry::Fc3Host { .. })
        {
            return Err(FcError::AccessDenied(INTERNET_DISABLED.to_owned()));
        }
        if !trigger.config.allows(&method) {
            return Err(FcError::AccessDenied(format!(
                "method {method} is not allowed by the HTTP trigger '{}' of function '{}' (it admits {})",
                trigger.trigger.trigger_name,
                t.function,
                trigger.config.methods.join(", ")
            )));
        }
    }
    let auth_type = match (&trigger, &entry) {
        (Some(trigger), _) => trigger.config.auth_type,
        (None, Entry::Domain(d)) if d.requires_signature() => AuthType::Function,
        (None, _) => AuthType::Anonymous,
    };
    let is_async = match header(&parts.headers, "x-fc-invocation-type") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("sync") => false,
        Some(v) if v.eq_ignore_ascii_case("async") => true,
        Some(v) => {
            return Err(FcError::invalid(format!(
                "X-Fc-Invocation-Type '{v}' is invalid: use Sync or Async"
            )));
        }
    };
    let limit = if is_async {
        ASYNC_PAYLOAD_MAX
    } else {
        SYNC_PAYLOAD_MAX
    };
    if let Some(len) = header(&parts.headers, "content-length").and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(FcError::EntityTooLarge {
            limit: limit as u64,
        });
    }
    let now = SystemTime::now();
    let qualifier = t.qualifier.clone().unwrap_or_else(|| "LATEST".to_owned());
    let signed = match auth_type {
        AuthType::Anonymous => None,
        AuthType::Function => {
            if !parts.headers.contains_key(http::header::AUTHORIZATION) {
                return Err(FcError::MissingRequiredHeader("Authorization".into()));
            }
            if !parts.headers.contains_key(http::header::DATE)
                && !parts.headers.contains_key("x-fc-date")
            {
                return Err(FcError::MissingRequiredHeader("Date".into()));
            }
            let (authz, credential) =
                auth::verify_signed_head(state, &parts, &raw_path, now, true).await?;
            auth::authorize_invoke(
                state,
                &parts.extensions,
                &credential,
                &t.account,
                &t.service,
                &qualifier,
                &t.function,
            )
            .await?;
            Some(authz)
        }
    };
    let body = auth::read_body(state, body.take().ok_or(FcError::Internal)?, limit).await?;
    if let Some(authz) = &signed {
        auth::verify_signed_body(state, authz, &parts.headers, &body, now)?;
    }
    let client_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical().to_string())
        .unwrap_or_default();
    let log_tail = signed.is_some()
        && header(&parts.headers, "x-fc-log-type").is_some_and(|v| v.eq_ignore_ascii_case("tail"));
    if fcd_core::fc3::is_hidden_service(&t.service) {
        // DisableFunctionInvocation covers every way in, HTTP included.
        let f = fcd_core::fc3::Fc3Function::from_stored(&t.service, &t.function);
        state.control.fc3_check_invocable(&t.account, &f).await?;
        let v1 = V1Call {
            parts: &parts,
            target: &t,
            body: &body,
            client_ip: &client_ip,
            request_id,
            log_tail,
        };
        if let Some(resp) = v1.serve(state, is_async).await? {
            return Ok(resp);
        }
    }
    let http = HttpInvocation {
        method: parts.method.clone(),
        target: std::mem::take(&mut t.target),
        headers: client_headers(&parts.headers),
        base_path: t.base_path.take(),
        client_ip,
    };
    if is_async {
        let id = state
            .asynchronous
            .accept_http(
                &t.account,
                &t.service,
                &t.function,
                t.qualifier.as_deref(),
                &http,
                body,
                request_id,
                header(&parts.headers, "x-fc-stateful-async-invocation-enable"),
                header(&parts.headers, "x-fc-stateful-async-invocation-id"),
            )
            .await?;
        let mut resp = StatusCode::ACCEPTED.into_response();
        if let Some(id) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
            resp.headers_mut()
                .insert("x-fc-stateful-async-invocation-id", id);
        }
        return Ok(resp);
    }
    let invoked = state
        .control
        .invoke(
            &t.account,
            &t.service,
            &t.function,
            t.qualifier.as_deref(),
            InvokeRequest {
                request_id: request_id.to_owned(),
                qualifier: String::new(),
                trace_id: header(&parts.headers, "x-fc-trace-id").map(str::to_owned),
                body: body.into(),
                log_tail,
                retry_count: 0,
                http: Some(http),
            },
        )
        .await?;
    Ok(respond(invoked.outcome, request_id))
}

/// A call of a native FC 3.0 function over HTTP, to be delivered as the v1 event when the
/// function has a built-in runtime ([`fcd_control::http_event`]).
struct V1Call<'a> {
    parts: &'a http::request::Parts,
    target: &'a Target,
    body: &'a bytes::Bytes,
    client_ip: &'a str,
    request_id: &'a str,
    log_tail: bool,
}

impl V1Call<'_> {
    /// The response, or `None` when the function keeps the HTTP contract (a custom runtime or
    /// container), which the caller then serves.
    async fn serve(&self, state: &AppState, is_async: bool) -> Result<Option<Response>, FcError> {
        let t = self.target;
        let qualifier = t.qualifier.as_deref();
        // Sync calls resolve exactly what will run; an async call's function may change before
        // it runs, so its LATEST configuration decides (a version of another runtime family is
        // not a case FC has either: 3.0 keeps a function's runtime family across versions).
        let spec = if is_async {
            let f = state
                .control
                .get_function(&t.account, &t.service, &t.function)
                .await?;
            if !http_event::uses_v1_event(&t.service, &f.function.runtime) {
                return Ok(None);
            }
            None
        } else {
            let spec = state
                .control
                .resolve(&t.account, &t.service, &t.function, qualifier)
                .await?;
            if !http_event::uses_v1_event(&spec.service_name, &spec.function.runtime) {
                return Ok(None);
            }
            Some(spec)
        };
        let headers = client_headers(&self.parts.headers);
        let domain_name = host_name(&self.parts.headers, &self.parts.uri).unwrap_or_default();
        let protocol = format!("{:?}", self.parts.version);
        let event = http_event::v1_event(&http_event::EventRequest {
            method: self.parts.method.as_str(),
            target: &t.target,
            protocol: &protocol,
            headers: &headers,
            body: self.body,
            source_ip: self.client_ip,
            account_id: &t.account,
            domain_name: &domain_name,
            domain_prefix: &t.domain_prefix,
            request_id: self.request_id,
            now: SystemTime::now(),
        });
        let payload = bytes::Bytes::from(event.to_string());
        let Some(spec) = spec else {
            let id = state
                .asynchronous
                .accept(
                    &t.account,
                    &t.service,
                    &t.function,
                    qualifier,
                    payload,
                    self.request_id,
                    header(&self.parts.headers, "x-fc-stateful-async-invocation-enable"),
                    header(&self.parts.headers, "x-fc-async-task-id").or_else(|| {
                        header(&self.parts.headers, "x-fc-stateful-async-invocation-id")
                    }),
                )
                .await?;
            let mut resp = StatusCode::ACCEPTED.into_response();
            if let Some(id) = id.and_then(|id| HeaderValue::from_str(&id).ok()) {
                resp.headers_mut().insert("x-fc-async-task-id", id.clone());
                resp.headers_mut()
                    .insert("x-fc-stateful-async-invocation-id", id);
            }
            return Ok(Some(resp));
        };
        let invoked = state
            .control
            .invoke_here(
                spec,
                qualifier,
                InvokeRequest {
                    request_id: self.request_id.to_owned(),
                    qualifier: String::new(),
                    trace_id: header(&self.parts.headers, "x-fc-trace-id").map(str::to_owned),
                    body: payload.into(),
                    log_tail: self.log_tail,
                    retry_count: 0,
                    http: None,
                },
            )
            .await?;
        Ok(Some(respond_v1(invoked.outcome, self.request_id)))
    }
}

/// The client's response to a v1-event call: the function's error as FC shapes it, or its
/// result mapped back to HTTP ([`http_event::map_result`]).
fn respond_v1(o: InvokeOutcome, request_id: &str) -> Response {
    if o.error_type.is_some() {
        return respond(o, request_id);
    }
    let mapped = match http_event::map_result(&o.body) {
        Ok(m) => m,
        Err(message) => return bad_response(message, request_id),
    };
    let Ok(status) = StatusCode::from_u16(mapped.status) else {
        return bad_response(
            format!("the function returned statusCode {}", mapped.status),
            request_id,
        );
    };
    let mut headers = HeaderMap::with_capacity(mapped.headers.len());
    let mut size = 0usize;
    for (k, v) in &mapped.headers {
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(k.to_ascii_lowercase().as_bytes()),
            HeaderValue::from_str(v),
        ) else {
            return bad_response(
                format!("the function returned the header '{k}', which is not a valid HTTP header"),
                request_id,
            );
        };
        if reserved_response_header(name.as_str()) {
            continue;
        }
        size += name.as_str().len() + value.len();
        headers.append(name, value);
    }
    if size > RESPONSE_HEADERS_MAX {
        return bad_response(
            format!(
                "the function's response headers are {size} bytes: at most {RESPONSE_HEADERS_MAX} are allowed"
            ),
            request_id,
        );
    }
    let mut resp = (status, mapped.body).into_response();
    resp.headers_mut().remove(http::header::CONTENT_TYPE);
    resp.headers_mut().extend(headers);
    if let Some(log) = &o.log_tail
        && let Ok(v) =
            HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(log.as_bytes()))
    {
        resp.headers_mut().insert("x-fc-log-result", v);
    }
    resp
}

/// Response headers a function may not set (FC ignores them); hop-by-hop ones are the
/// server's.
fn reserved_response_header(name: &str) -> bool {
    name.starts_with("x-fc-")
        || matches!(
            name,
            "connection"
                | "content-length"
                | "date"
                | "keep-alive"
                | "server"
                | "upgrade"
                | "transfer-encoding"
                | "proxy-connection"
                | "te"
                | "trailer"
        )
}

/// A function's answer fcd cannot pass on.
fn bad_response(message: String, request_id: &str) -> Response {
    let mut resp = render(&FcError::BadResponse(message), request_id);
    resp.headers_mut().insert(
        HeaderName::from_static("x-fc-error-type"),
        HeaderValue::from_static("UnhandledInvocationError"),
    );
    resp
}

/// The client's response: the function's own, or its error as FC shapes it.
fn respond(o: InvokeOutcome, request_id: &str) -> Response {
    let mut resp = match (&o.error_type, o.http) {
        (Some(kind), _) => {
            let mut resp = (StatusCode::BAD_GATEWAY, o.body).into_response();
            let h = resp.headers_mut();
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(v) = HeaderValue::from_str(kind) {
                h.insert(HeaderName::from_static("x-fc-error-type"), v);
            }
            resp
        }
        (None, Some(parts)) => {
            let Ok(status) = StatusCode::from_u16(parts.status) else {
                return bad_response(
                    format!("the function answered with status {}", parts.status),
                    request_id,
                );
            };
            let mut headers = HeaderMap::with_capacity(parts.headers.len());
            let mut size = 0usize;
            for (k, v) in &parts.headers {
                if reserved_response_header(k.as_str()) {
                    continue;
                }
                size += k.as_str().len() + v.len();
                headers.append(k.clone(), v.clone());
            }
            if size > RESPONSE_HEADERS_MAX {
                return bad_response(
                    format!(
                        "the function's response headers are {size} bytes: at most {RESPONSE_HEADERS_MAX} are allowed"
                    ),
                    request_id,
                );
            }
            let mut resp = (status, o.body).into_response();
            // No content type unless the function set one (axum's default for bytes is not
            // the function's).
            resp.headers_mut().remove(http::header::CONTENT_TYPE);
            resp.headers_mut().extend(headers);
            resp
        }
        (None, None) => return common_error(&FcError::Internal, request_id),
    };
    if let Some(log) = &o.log_tail
        && let Ok(v) =
            HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(log.as_bytes()))
    {
        resp.headers_mut().insert("x-fc-log-result", v);
    }
    resp
}

/// The router of the optional plain-web listener (`fcd serve --http-listen`): custom domains
/// and `/proxy/` URLs, nothing of the API.
pub fn web_router(state: AppState) -> Router {
    Router::new().fallback(web).with_state(state)
}

async fn web(State(state): State<AppState>, req: Request) -> Response {
    let request_id = auth::new_request_id();
    let mut resp = match entry(&state, req.headers(), req.uri(), false).await {
        Some(e) => serve(&state, req, &request_id, e).await,
        None => {
            let host = host_name(req.headers(), req.uri()).unwrap_or_default();
            common_error(&FcError::DomainNameNotFound(host), &request_id)
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-fc-request-id", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn hosts(h: &str) -> Option<String> {
        let mut m = HeaderMap::new();
        m.insert(http::header::HOST, HeaderValue::from_str(h).unwrap());
        host_name(&m, &http::Uri::from_static("/"))
    }

    #[test]
    fn hosts_are_lower_cased_without_port_and_ip_literals_are_no_domain() {
        assert_eq!(
            hosts("API.Example.test:8080").as_deref(),
            Some("api.example.test")
        );
        assert_eq!(
            hosts("api.example.test.").as_deref(),
            Some("api.example.test")
        );
        assert_eq!(hosts("127.0.0.1:9000"), None);
        assert_eq!(hosts("[::1]:9000"), None);
        assert_eq!(hosts("10.0.0.1"), None);
        // Regressions (found by property testing): an address with the root's dot was a
        // domain name to look up, and a lone dot an empty one.
        assert_eq!(hosts("10.0.0.1.:80"), None);
        assert_eq!(hosts("0.0.0.0."), None);
        assert_eq!(hosts("."), None);
    }

    #[test]
    fn api_calls_on_the_api_listener_are_never_a_domains() {
        let none = HeaderMap::new();
        let mut rpc = HeaderMap::new();
        rpc.insert("x-acs-version", HeaderValue::from_static("2015-05-01"));
        for p in [
            "/2021-04-06/services",
            "/2023-03-30/functions",
            "/2016-08-15",
            "/status",
            "/code-packages/x",
        ] {
            assert!(is_api_call(p, &none), "{p}");
        }
        assert!(is_api_call("/", &rpc));
        for p in ["/", "/users/1", "/2021-04-06x/a", "/statuses"] {
            assert!(!is_api_call(p, &none), "{p}");
        }
    }

    #[test]
    fn proxy_urls_name_service_qualifier_function_and_base_path() {
        let t = proxy_target(
            "/2016-08-15/proxy/svc.prod/fn/users/1",
            "/2016-08-15/proxy/svc.prod/fn/users/1?a=1&a=2",
        )
        .unwrap();
        assert_eq!(
            (
                t.service.as_str(),
                t.qualifier.as_deref(),
                t.function.as_str()
            ),
            ("svc", Some("prod"), "fn")
        );
        assert_eq!(t.target, "/2016-08-15/proxy/svc.prod/fn/users/1?a=1&a=2");
        assert_eq!(
            t.base_path.as_deref(),
            Some("/2016-08-15/proxy/svc.prod/fn")
        );
        let t = proxy_target("/2021-04-06/proxy/svc/fn", "/2021-04-06/proxy/svc/fn").unwrap();
        assert_eq!((t.qualifier, t.function.as_str()), (None, "fn"));
        assert!(proxy_target("/2021-04-06/proxy/svc/", "/2021-04-06/proxy/svc/").is_err());
        assert!(proxy_target("/2021-04-06/proxy/%ff/f", "/2021-04-06/proxy/%ff/f").is_err());
    }

    #[test]
    fn fc3_path_urls_strip_their_prefix_and_name_the_url_id() {
        assert_eq!(
            fc3_path_parts("/2023-03-30/proxy/f-abc/a/b"),
            Some(("f-abc", false, "/2023-03-30/proxy/f-abc"))
        );
        assert_eq!(
            fc3_path_parts("/2023-03-30/proxy-vpc/f-abc"),
            Some(("f-abc", true, "/2023-03-30/proxy-vpc/f-abc"))
        );
        assert_eq!(fc3_path_parts("/2023-03-30/functions"), None);
        let trigger = fcd_core::triggers::Trigger::create(
            "id".into(),
            fcd_core::triggers::TriggerInput {
                trigger_name: Some("web".into()),
                trigger_type: Some("http".into()),
                qualifier: Some("prod".into()),
                trigger_config: Some(
                    serde_json::json!({"authType": "anonymous", "methods": ["GET"]}),
                ),
                ..Default::default()
            },
            "now".into(),
        )
        .unwrap();
        let config = match trigger.config().unwrap() {
            fcd_core::triggers::TriggerConfig::Http(c) => c,
            other => panic!("{other:?}"),
        };
        let route = Arc::new(fcd_control::HttpTriggerRoute { trigger, config });
        let t = UrlTrigger {
            account: "1".into(),
            service: "~f".into(),
            function: "f".into(),
            route,
        };
        let target = fc3_target(&t, "/2023-03-30/proxy/x/a%20b?q=1", "/2023-03-30/proxy/x");
        assert_eq!(target.target, "/a%20b?q=1");
        assert_eq!(target.qualifier.as_deref(), Some("prod"));
        assert!(target.base_path.is_none());
        assert_eq!(
            target.domain_prefix,
            fcd_control::http_event::url_id("1", "~f", "f", "web")
        );
        assert_eq!(
            fc3_target(&t, "/2023-03-30/proxy/x?q", "/2023-03-30/proxy/x").target,
            "/?q"
        );
        assert_eq!(fc3_target(&t, "/a/b", "").target, "/a/b");
    }

    #[test]
    fn v1_results_map_to_responses_without_reserved_headers() {
        let mut o = outcome(None, None);
        o.body = bytes::Bytes::from_static(
            br#"{"statusCode": 418, "headers": {"X-Mine": "1", "x-fc-status": "200", "Set-Cookie": ["a=1", "b=2"]}, "body": "tea"}"#,
        );
        let resp = respond_v1(o, "rid");
        assert_eq!(resp.status(), 418);
        assert_eq!(resp.headers().get("x-mine").unwrap(), "1");
        assert!(resp.headers().get("x-fc-status").is_none());
        assert_eq!(resp.headers().get_all("set-cookie").iter().count(), 2);
        let mut o = outcome(None, None);
        o.body = bytes::Bytes::from_static(br#"{"statusCode": 200, "headers": {"bad name": "x"}}"#);
        assert_eq!(respond_v1(o, "rid").status(), 502);
        let mut o = outcome(None, None);
        o.body = bytes::Bytes::from_static(br#"{"statusCode": 99}"#);
        assert_eq!(respond_v1(o, "rid").status(), 502);
        let plain = respond_v1(outcome(None, None), "rid");
        assert_eq!(plain.status(), 200);
        assert!(plain.headers().get("content-type").is_none());
        let failed = respond_v1(outcome(Some("UnhandledInvocationError"), None), "rid");
        assert_eq!(failed.status(), 502);
    }

    fn outcome(
        error_type: Option<&str>,
        http: Option<(u16, Vec<(&'static str, String)>)>,
    ) -> InvokeOutcome {
        InvokeOutcome {
            body: bytes::Bytes::from_static(b"payload"),
            error_type: error_type.map(str::to_owned),
            duration: std::time::Duration::from_millis(3),
            max_memory_mb: 1.0,
            instance_id: "c-1".into(),
            log_tail: None,
            http: http.map(|(status, hs)| {
                let mut headers = HeaderMap::new();
                for (k, v) in hs {
                    headers.append(k, HeaderValue::from_str(&v).unwrap());
                }
                fcd_runtime::HttpResponseParts { status, headers }
            }),
        }
    }

    #[test]
    fn the_functions_response_goes_back_without_reserved_headers() {
        let resp = respond(
            outcome(
                None,
                Some((
                    418,
                    vec![
                        ("set-cookie", "a=1".into()),
                        ("set-cookie", "b=2".into()),
                        ("x-fc-status", "200".into()),
                        ("server", "mine".into()),
                        ("content-length", "999".into()),
                        ("content-type", "text/x".into()),
                    ],
                )),
            ),
            "rid",
        );
        assert_eq!(resp.status(), 418);
        let h = resp.headers();
        assert_eq!(h.get_all("set-cookie").iter().count(), 2);
        assert_eq!(h.get("content-type").unwrap(), "text/x");
        for gone in ["x-fc-status", "server", "content-length"] {
            assert!(h.get(gone).is_none(), "{gone}");
        }
        let no_type = respond(outcome(None, Some((200, vec![]))), "rid");
        assert!(no_type.headers().get("content-type").is_none());
    }

    #[test]
    fn function_errors_and_bad_responses_are_502() {
        let resp = respond(outcome(Some("UnhandledInvocationError"), None), "rid");
        assert_eq!(resp.status(), 502);
        assert_eq!(
            resp.headers().get("x-fc-error-type").unwrap(),
            "UnhandledInvocationError"
        );
        let big = respond(
            outcome(
                None,
                Some((200, vec![("x-big", "b".repeat(RESPONSE_HEADERS_MAX))])),
            ),
            "rid",
        );
        assert_eq!(big.status(), 502);
        let odd = respond(outcome(None, Some((1000, vec![]))), "rid");
        assert_eq!(odd.status(), 502);
    }

    #[test]
    fn reserved_and_hop_by_hop_headers_are_not_passed_on() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("x-fc-invocation-type", "Sync"),
            ("connection", "keep-alive"),
            ("keep-alive", "5"),
            ("accept", "*/*"),
            ("authorization", "FC a:b"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        let out = client_headers(&h);
        let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["accept", "authorization"]);
        for n in [
            "x-fc-status",
            "content-length",
            "date",
            "server",
            "upgrade",
            "keep-alive",
        ] {
            assert!(reserved_response_header(n), "{n}");
        }
        assert!(!reserved_response_header("set-cookie"));
    }

    /// Properties over generated requests: the data path's parsers never panic, a `/proxy/`
    /// URL names the function InvokeFunction's authorization would name for the same segments,
    /// and what reaches the instance and the client is well-formed and filtered.
    mod properties {
        use proptest::prelude::*;

        use super::*;

        /// A raw (still encoded) path segment: names, dots (the qualifier separator), escapes
        /// good and bad, multi-byte characters.
        fn segment() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![
                    6 => "[a-z0-9_-]{1,4}",
                    2 => Just(".".to_owned()),
                    2 => "%[0-9A-Fa-f]{2}",
                    1 => prop::sample::select(vec!["%2E", "%2F", "%2e", "%", "%G1", "%C3", "%C3%A9", "é", "+", "~"])
                        .prop_map(str::to_owned),
                ],
                0..5,
            )
            .prop_map(|v| v.concat())
        }

        fn rest() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(String::new()),
                Just("/".to_owned()),
                prop::collection::vec(segment(), 1..4).prop_map(|v| format!("/{}", v.join("/"))),
            ]
        }

        fn prefix() -> impl Strategy<Value = &'static str> {
            prop::sample::select(PROXY_PREFIXES.to_vec())
        }

        /// A header name a function or client may send, reserved ones and `x-fc-` among them.
        fn header_name() -> impl Strategy<Value = HeaderName> {
            prop_oneof![
                prop::sample::select(vec![
                    "connection",
                    "content-length",
                    "date",
                    "keep-alive",
                    "server",
                    "upgrade",
                    "transfer-encoding",
                    "proxy-connection",
                    "te",
                    "trailer",
                    "set-cookie",
                    "content-type",
                    "x-fc-status",
                    "x-fc-request-id",
                    "x-fcx",
                    "host",
                ])
                .prop_map(HeaderName::from_static),
                "(x-fc-)?[a-z][a-z0-9-]{0,10}".prop_filter_map("a header name", |n| {
                    HeaderName::from_bytes(n.as_bytes()).ok()
                }),
            ]
        }

        fn header_map() -> impl Strategy<Value = HeaderMap> {
            prop::collection::vec((header_name(), "[ -~]{0,12}"), 0..10).prop_map(|pairs| {
                let mut m = HeaderMap::new();
                for (k, v) in pairs {
                    if let Ok(v) = HeaderValue::from_str(&v) {
                        m.append(k, v);
                    }
                }
                m
            })
        }

        proptest! {
            #[test]
            fn proxy_target_never_panics(prefix in prefix(), rest in "\\PC{0,40}") {
                let path = format!("{prefix}{rest}");
                let _ = proxy_target(&path, &path);
            }

            /// The service, qualifier and function a `/proxy/` URL reaches are those the
            /// operation table (the API's authorization) names for InvokeFunction with the same
            /// raw segments: `fc:InvokeFunction` is checked on the resource the API would check.
            #[test]
            fn proxy_urls_name_what_invoke_function_authorizes(
                prefix in prefix(),
                svc in segment(),
                func in segment(),
                rest in rest(),
                query in prop::option::of("[a-z=&%0-9]{0,10}"),
            ) {
                let path = format!("{prefix}{svc}/{func}{rest}");
                let pq = match &query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                };
                let decodes = |s: &str| percent_decode_str(s).decode_utf8().is_ok();
                let parsed = proxy_target(&path, &pq);
                let api_path = format!("{}/services/{svc}/functions/{func}/invocations", &prefix[..11]);
                let op = fcd_iam::fc::operation("POST", &api_path, None);
                match parsed {
                    Ok(t) => {
                        let op = op.expect("the API routes the same segments");
                        prop_assert_eq!(op.action, "fc:InvokeFunction");
                        let qualifier = t.qualifier.as_deref().unwrap_or("LATEST");
                        prop_assert_eq!(
                            op.resource,
                            format!("services/{}.{qualifier}/functions/{}", t.service, t.function)
                        );
                        // The instance gets the request-target unchanged, under its base path.
                        let base = t.base_path.expect("a /proxy/ URL has a base path");
                        prop_assert_eq!(&base, &format!("{prefix}{svc}/{func}"));
                        prop_assert_eq!(&t.target, &pq);
                        let after = &t.target[base.len()..];
                        prop_assert!(after.is_empty() || after.starts_with('/') || after.starts_with('?'));
                    }
                    Err(_) => {
                        prop_assert!(
                            svc.is_empty() || func.is_empty() || !decodes(&svc) || !decodes(&func),
                            "{} refused", path
                        );
                    }
                }
            }

            #[test]
            fn host_names_are_lower_case_names_never_addresses(
                host in prop_oneof![
                    "[A-Za-z0-9.-]{0,12}(:[0-9]{0,5})?",
                    "(\\[[0-9a-f:]{0,8}\\]|[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3})\\.?(:[0-9]{1,5})?",
                    "[ -~]{0,16}",
                ],
                authority in prop::option::of("[a-z0-9.:]{1,10}"),
            ) {
                let mut headers = HeaderMap::new();
                if let Ok(v) = HeaderValue::from_str(&host) {
                    headers.insert(http::header::HOST, v);
                }
                let uri = match &authority {
                    Some(a) => format!("http://{a}/x").parse::<http::Uri>().unwrap_or_default(),
                    None => http::Uri::from_static("/x"),
                };
                if let Some(name) = host_name(&headers, &uri) {
                    prop_assert!(!name.is_empty(), "{:?}", host);
                    prop_assert_eq!(&name, &name.to_ascii_lowercase());
                    prop_assert!(!name.ends_with('.'));
                    prop_assert!(name.parse::<IpAddr>().is_err(), "{:?} gave address {}", host, name);
                }
            }

            /// What a custom domain hands the instance is a valid request-target that decodes to
            /// the path the route chose, with the client's query unchanged.
            #[test]
            fn domain_targets_are_request_targets(
                route_path in prop_oneof![Just("/*"), Just("/a/*"), Just("/a/b")],
                matcher in prop_oneof![
                    Just("/*".to_owned()), Just("/a/*".to_owned()), Just("/*/b*".to_owned()),
                    "/[a-z*é/]{0,6}",
                ],
                replacement in "/[a-z$12é/ %?#<>\\\\^|\"`{}\\[\\]]{0,10}",
                path in prop::collection::vec(
                    prop_oneof![segment(), Just("a".to_owned()), Just("b".to_owned())], 0..4,
                ).prop_map(|v| format!("/{}", v.join("/"))),
                query in prop::option::of("[a-z=&%0-9]{0,10}"),
                method in prop::sample::select(vec!["GET", "POST", "get", "BREW"]),
            ) {
                let route = fcd_core::domains::PathConfig {
                    path: route_path.to_owned(),
                    service_name: "s".into(),
                    function_name: "f".into(),
                    qualifier: String::new(),
                    methods: vec!["GET".into()],
                    rewrite_config: Some(fcd_core::domains::RewriteConfig {
                        wildcard_rules: vec![fcd_core::domains::RewriteRule {
                            match_: matcher,
                            replacement,
                        }],
                        ..Default::default()
                    }),
                };
                let domain = CustomDomain::create(
                    "1".into(),
                    fcd_core::domains::CustomDomainInput {
                        domain_name: Some("a.test".into()),
                        route_config: Some(fcd_core::domains::RouteConfig { routes: vec![route] }),
                        ..Default::default()
                    },
                    "now".into(),
                )
                .expect("a valid domain");
                let Ok(t) = domain_target(&domain, method, &path, query.as_deref()) else {
                    return Ok(());
                };
                prop_assert!(method.eq_ignore_ascii_case("GET"));
                let pq = t.target.parse::<http::uri::PathAndQuery>();
                prop_assert!(pq.is_ok(), "{:?} is not a request-target", t.target);
                let pq = pq.unwrap();
                let decoded = percent_decode_str(&path).decode_utf8().unwrap();
                let routed = domain.route_config.find(&decoded).unwrap();
                prop_assert_eq!(percent_decode_str(pq.path()).decode_utf8().unwrap(), routed.path.as_str());
                prop_assert_eq!(pq.query(), query.as_deref());
                prop_assert_eq!((t.service.as_str(), t.function.as_str(), t.qualifier.as_deref()), ("s", "f", Some("LATEST")));
            }

            #[test]
            fn client_headers_drop_exactly_fcs_own(headers in header_map()) {
                let out = client_headers(&headers);
                let keep = |n: &str| !(n.starts_with("x-fc-") || n == "connection" || n == "keep-alive");
                let want: Vec<_> = headers.iter().filter(|(k, _)| keep(k.as_str())).collect();
                let got: Vec<_> = out.iter().collect();
                prop_assert_eq!(got, want);
            }

            /// The client gets the function's status and its headers minus the reserved ones,
            /// every value of a repeated header in order; or a 502 when that cannot be passed on.
            #[test]
            fn responses_pass_on_exactly_the_functions_own_headers(
                status in prop_oneof![100u16..600, any::<u16>()],
                headers in header_map(),
            ) {
                let o = InvokeOutcome {
                    body: bytes::Bytes::from_static(b"x"),
                    error_type: None,
                    duration: std::time::Duration::from_millis(1),
                    max_memory_mb: 1.0,
                    instance_id: "c".into(),
                    log_tail: None,
                    http: Some(fcd_runtime::HttpResponseParts { status, headers: headers.clone() }),
                };
                let resp = respond(o, "rid");
                if StatusCode::from_u16(status).is_err() {
                    prop_assert_eq!(resp.status(), StatusCode::BAD_GATEWAY);
                    return Ok(());
                }
                prop_assert_eq!(resp.status().as_u16(), status);
                for name in resp.headers().keys() {
                    prop_assert!(!reserved_response_header(name.as_str()), "{} passed on", name);
                    let sent: Vec<_> = resp.headers().get_all(name).iter().collect();
                    let set: Vec<_> = headers.get_all(name).iter().collect();
                    prop_assert_eq!(sent, set);
                }
                for name in headers.keys() {
                    prop_assert_eq!(
                        resp.headers().contains_key(name),
                        !reserved_response_header(name.as_str())
                    );
                }
            }
        }
    }
}
