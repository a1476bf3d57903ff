//! The outermost layer of every API request: request id (FC 3.0's `1-…` shape under
//! `/2023-03-30`, a UUID elsewhere), body buffering with FC's size limits,
//! authentication (signature, access key, security token), account resolution, authorization,
//! and the rendering of errors.
//!
//! Authentication: the access key may be one of the account's own (root) keys, a RAM user's, or
//! a temporary `STS.` key, which must come with its security token — `x-acs-security-token`
//! (listed in `SignedHeaders`, with `x-acs-accesskey-id` repeating the key) under ACS3, or
//! `x-fc-security-token` (signed like every `x-fc-*` header) under the FC scheme.
//!
//! Authorization happens here, once, for every FC operation of every API version (2.0's
//! `/2021-04-06` and `/2016-08-15`, 3.0's `/2023-03-30`), before any handler runs (so a
//! refusal never depends on what exists): the root key may do everything; any other principal
//! needs its policies to allow the operation's RAM action on its resource ARN
//! ([`fcd_iam::fc::operation`]), with `acs:SourceIp` (the TCP peer), `acs:CurrentTime` and
//! `acs:SecureTransport` (false: plain HTTP) as condition keys. `/status` is for the root key
//! only. RAM and STS calls (`/`) decide their own permissions in the service layer.
//!
//! The account acted for is always the access key's; a request naming another one
//! (`X-Fc-Account-Id`, or a numeric first `Host` label) is refused.
//!
//! Signatures cover the body (ACS3 hashes it; the FC scheme covers `Content-MD5`, checked
//! against the body), so the body is read here once — after the signature over the head (with
//! the body digest the client claims) has verified — and handed on as `Bytes`; handlers never
//! read the wire themselves. Digests are over the body's bytes as hyper delivers them, i.e.
//! de-chunked: a `Transfer-Encoding: chunked` body (every Node SDK request with a body) needs
//! no `Content-Length`. The exception is a large synchronous invocation (over
//! [`STREAM_ABOVE`], or sent without a length): once the head is verified and the caller
//! authorized, its body is passed on to the instance while it arrives
//! ([`crate::frontdoor::stream_body`], found by the route in a [`StreamSlot`]), and its last
//! piece only after the whole body matched its digest; its ACS3 nonce is recorded when the head
//! has verified, not at the end.

use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;

use fcd_control::iam::{Credential, Principal};
use fcd_core::FcError;
use fcd_core::error::TokenProblem;
use fcd_core::limits::{ASYNC_PAYLOAD_MAX, CODE_ZIP_MAX, SYNC_PAYLOAD_MAX};
use fcd_sign::{Authorization, SignError, SignedRequest};

use crate::AppState;
use crate::error::{render, render_rpc};

/// Who is calling, attached to every request past [`layer`].
#[derive(Debug, Clone)]
pub struct Caller {
    pub request_id: String,
    /// The account acted for (empty on unsigned paths).
    pub account_id: String,
    /// The access key that signed the request (empty on unsigned paths).
    pub access_key_id: String,
    /// Who acts: the account's root, a RAM user or an assumed-role session; `None` only on
    /// the unsigned paths (`/code-packages/…`, `/console…`).
    pub principal: Option<Principal>,
}

/// Body limit for invocations: the sync payload limit (`ASYNC_PAYLOAD_MAX` for async calls).
const INVOKE_BODY_MAX: usize = SYNC_PAYLOAD_MAX;

/// The most an over-limit body of a signed request may be read to be dropped (see
/// `authenticate`).
const OVERSIZED_DRAIN_MAX: u64 = crate::frontdoor::REFUSED_BODY_DRAIN_MAX;

/// A synchronous invocation body larger than this (or of unknown length) is streamed to the
/// instance rather than buffered: below it, buffering costs less than the hand-offs.
pub(crate) const STREAM_ABOVE: u64 = 256 * 1024;

/// A streamed invocation body, waiting in the request's extensions for the route to take it.
#[derive(Clone, Default)]
pub(crate) struct StreamSlot(std::sync::Arc<std::sync::Mutex<Option<fcd_runtime::StreamedBody>>>);

impl StreamSlot {
    pub(crate) fn take(&self) -> Option<fcd_runtime::StreamedBody> {
        self.0.lock().ok()?.take()
    }
}
/// Body limit for control-plane calls: a base64 code zip of the largest size plus JSON around it.
const CONTROL_BODY_MAX: usize = CODE_ZIP_MAX / 3 * 4 + 1024 * 1024;

/// Body limit for RAM and STS calls: their parameters travel in the query, an older SDK's form
/// body holds at most a policy document or two.
const RPC_BODY_MAX: usize = 64 * 1024;

/// RAM and STS (RPC-style, `x-acs-version` 2015-05-01 / 2015-04-01) live at `/`.
fn is_rpc(path: &str) -> bool {
    path == "/"
}

fn body_limit(path: &str) -> usize {
    if is_rpc(path) {
        RPC_BODY_MAX
    } else if path.ends_with("/invocations") {
        INVOKE_BODY_MAX
    } else {
        CONTROL_BODY_MAX
    }
}

/// Paths served without a request signature: code downloads carry their own proof; the web
/// console's static files ([`crate::console`]) are public, and the page signs every API call it
/// makes itself. (`/status` needs a signature; `/metrics` is served only on the opt-in metrics
/// listener.)
fn is_unsigned(path: &str) -> bool {
    path.starts_with("/code-packages/") || crate::console::is_console_path(path)
}

pub(crate) fn sign_error(e: SignError) -> FcError {
    match e {
        SignError::SignatureMismatch | SignError::ContentHashMismatch => FcError::SignatureNotMatch,
        SignError::MissingHeader(h) => FcError::MissingRequiredHeader(h),
        SignError::RequestTimeTooSkewed { date } => FcError::RequestTimeTooSkewed(date),
        SignError::InvalidDate(d) => FcError::invalid(format!("invalid request date: {d}")),
        SignError::MalformedAuthorization(m) => {
            FcError::AccessDenied(format!("malformed Authorization header: {m}"))
        }
        SignError::UnsupportedScheme(s) => FcError::AccessDenied(format!(
            "unsupported signature scheme '{s}': use ACS3-HMAC-SHA256 or the FC scheme"
        )),
    }
}

/// Account selection (fc-api.md §2.1, fc3-api.md §1.1): the account is always the access
/// key's. A request may also name one — `X-Fc-Account-Id` (2.0 SDKs, on request), or the first
/// label of `Host` when it is all digits (`{accountId}.{region}.fc.aliyuncs.com`, the endpoint
/// FC tools use, and the only place a 3.0 client names it) — and then it must be the key's own:
/// a key only ever acts for its own account.
fn resolve_account(
    headers: &HeaderMap,
    key_id: &str,
    principal: &Principal,
) -> Result<String, FcError> {
    let account = principal.account_id();
    let refuse = |named: &str| {
        FcError::AccessDenied(format!(
            "access key '{key_id}' may not act for account '{named}'"
        ))
    };
    if let Some(v) = headers.get("x-fc-account-id") {
        let v = v.to_str().unwrap_or_default().trim();
        if !v.is_empty() && v != account {
            return Err(refuse(v));
        }
    }
    if let Some(named) = host_account(headers)
        && named != account
    {
        return Err(refuse(named));
    }
    Ok(account.to_owned())
}

/// The account a `Host` header names: its first label when that is all digits and the host
/// is a name with more labels after it (`1234.cn-hangzhou.fc.aliyuncs.com`), never an IP
/// address (`127.0.0.1:9000`'s `127` is no account).
fn host_account(headers: &HeaderMap) -> Option<&str> {
    let host = headers.get(http::header::HOST)?.to_str().ok()?.trim();
    // A bracketed IPv6 literal has no labels; otherwise drop the port.
    if host.starts_with('[') {
        return None;
    }
    let name = host.rsplit_once(':').map_or(host, |(name, _port)| name);
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return None;
    }
    let (first, rest) = name.split_once('.')?;
    (!first.is_empty() && !rest.is_empty() && first.bytes().all(|b| b.is_ascii_digit()))
        .then_some(first)
}

fn bad_token(problem: TokenProblem, message: impl Into<String>) -> FcError {
    FcError::InvalidSecurityToken {
        problem,
        message: message.into(),
    }
}

/// The security token a request carries, as its signature binds it: ACS3 must list
/// `x-acs-security-token` in `SignedHeaders` and repeat its key in `x-acs-accesskey-id`; the FC
/// scheme signs `x-fc-security-token` with every other `x-fc-*` header.
fn security_token<'h>(
    auth: &Authorization,
    headers: &'h HeaderMap,
) -> Result<Option<&'h str>, FcError> {
    let text = |name: &str| -> Result<Option<&'h str>, FcError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v.to_str().map(|t| Some(t.trim())).map_err(|_| {
                bad_token(
                    TokenProblem::Malformed,
                    format!("The {name} header is not valid text."),
                )
            }),
        }
    };
    match auth {
        Authorization::Acs3 {
            access_key_id,
            signed_headers,
            ..
        } => {
            let Some(token) = text("x-acs-security-token")? else {
                return Ok(None);
            };
            if !signed_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case("x-acs-security-token"))
            {
                return Err(bad_token(
                    TokenProblem::Malformed,
                    "The x-acs-security-token header must be signed: list it in SignedHeaders.",
                ));
            }
            if let Some(id) = text("x-acs-accesskey-id")?
                && id != access_key_id
            {
                return Err(bad_token(
                    TokenProblem::MismatchWithAccessKey,
                    format!(
                        "x-acs-accesskey-id '{id}' is not the access key '{access_key_id}' that signed the request."
                    ),
                ));
            }
            Ok(Some(token))
        }
        Authorization::Fc { .. } => text("x-fc-security-token"),
    }
}

/// Who may do what, once per request, before any handler: see the module's documentation.
async fn authorize(
    state: &AppState,
    parts: &http::request::Parts,
    path: &str,
    credential: &Credential,
) -> Result<(), FcError> {
    let principal = &credential.principal;
    if principal.is_root() || is_rpc(path) {
        return Ok(());
    }
    if path == "/status" {
        return Err(FcError::AccessDenied(format!(
            "'{}' is not authorized to read /status: only the account's own access key may",
            principal.arn()
        )));
    }
    // Read exactly as the handlers read it, so the decision is about what they then do.
    let qualifier = fcd_iam::fc::query_qualifier(parts.uri.query());
    let method = parts.method.as_str();
    let op = fcd_iam::fc::operation(method, path, qualifier.as_deref()).ok_or_else(|| {
        // Fail closed: a path the operation table does not know is not something a policy can
        // allow (and it is not an FC operation anyway).
        FcError::AccessDenied(format!(
            "'{}' is not authorized to call '{method} {path}': it is not an operation a RAM policy can allow",
            principal.arn()
        ))
    })?;
    let arn = fcd_iam::fc::arn(state.iam.region(), principal.account_id(), &op.resource);
    let ctx = crate::rpc::auth_context(&parts.extensions);
    state
        .iam
        .authorize_credential(credential, op.action, &arn, &ctx)
        .await
}

/// Authenticates a signed request's head: its `Authorization` parsed, the access key resolved
/// (root, RAM user, or `STS.` key with its security token) and the signature verified over
/// the head with the body digest the client claims — before any body is read.
/// `http_function`: the request reaches a function over HTTP (an HTTP trigger or a custom
/// domain), whose FC signature always covers the query.
pub(crate) async fn verify_signed_head(
    state: &AppState,
    parts: &http::request::Parts,
    path: &str,
    now: SystemTime,
    http_function: bool,
) -> Result<(Authorization, Credential), FcError> {
    let auth_header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| {
            FcError::AccessDenied("the request is not signed: Authorization header missing".into())
        })?
        .to_str()
        .map_err(|_| FcError::AccessDenied("the Authorization header is not valid text".into()))?;
    let auth = Authorization::parse(auth_header).map_err(sign_error)?;
    let key_id = auth.access_key_id();
    // The root keys are a map lookup; other keys are resolved through the IAM cache (users) or
    // by verifying their token (STS).
    let token = match state.iam.root_key(key_id) {
        Some(_) => None,
        None => security_token(&auth, &parts.headers)?,
    };
    let credential = state.iam.resolve(key_id, token, now).await?;
    // The head is verified before the body is read: a forged or unsigned request never makes
    // the server buffer up to the body limit. The body is then checked against the digest the
    // verified head carries.
    let head = SignedRequest {
        method: parts.method.as_str(),
        path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &[],
    };
    if http_function {
        fcd_sign::verify_head_http_trigger(&auth, &credential.secret, &head, now)
    } else {
        fcd_sign::verify_head(&auth, &credential.secret, &head, now)
    }
    .map_err(sign_error)?;
    Ok((auth, credential))
}

/// The second half of [`verify_signed_head`], once the body is read: the body against the
/// digest the verified head carries, then the ACS3 nonce (recorded only now, with the whole
/// request verified).
pub(crate) fn verify_signed_body(
    state: &AppState,
    auth: &Authorization,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Result<(), FcError> {
    fcd_sign::verify_body(auth, headers, body).map_err(sign_error)?;
    state.front_door.check_replay(auth, headers, now)
}

/// Whether `credential` may invoke `function` of `service` in `account` as `qualifier`
/// (`fc:InvokeFunction` on its ARN, [`invoke_resource`]), decided as for InvokeFunction: root
/// may, others by their policies.
pub(crate) async fn authorize_invoke(
    state: &AppState,
    extensions: &http::Extensions,
    credential: &Credential,
    account: &str,
    service: &str,
    qualifier: &str,
    function: &str,
) -> Result<(), FcError> {
    let principal = &credential.principal;
    if principal.account_id() != account {
        return Err(FcError::AccessDenied(format!(
            "'{}' may not invoke functions of account '{account}'",
            principal.arn()
        )));
    }
    if principal.is_root() {
        return Ok(());
    }
    let arn = fcd_iam::fc::arn(
        state.iam.region(),
        account,
        &invoke_resource(service, qualifier, function),
    );
    let ctx = crate::rpc::auth_context(extensions);
    state
        .iam
        .authorize_credential(credential, "fc:InvokeFunction", &arn, &ctx)
        .await
}

/// The resource InvokeFunction names for a stored (service, function): a native FC 3.0
/// function (kept in its hidden service, `fcd_core::fc3`) is `functions/{f}`, as the 3.0 API
/// names it — 3.0 resources carry no qualifier ([`fcd_iam::fc`]) —; a 2.0 function is
/// `services/{s}.{q}/functions/{f}`.
fn invoke_resource(service: &str, qualifier: &str, function: &str) -> String {
    if fcd_core::fc3::is_hidden_service(service) {
        format!("functions/{function}")
    } else {
        format!("services/{service}.{qualifier}/functions/{function}")
    }
}

/// The body, within `limit` bytes and the body read timeout (see [`crate::frontdoor`]).
pub(crate) async fn read_body(
    state: &AppState,
    body: Body,
    limit: usize,
) -> Result<Bytes, FcError> {
    crate::frontdoor::read_body(body, limit, state.front_door.body_read_timeout()).await
}

/// 16 bytes from a per-thread generator seeded once from the OS, so the hot path makes no
/// `getrandom` system call per request; request ids need to be unique, not secret.
fn request_id_bytes() -> [u8; 16] {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<(u64, u64)> = Cell::new({
            let seed = uuid::Uuid::new_v4().as_u128();
            ((seed >> 64) as u64 | 1, seed as u64 | 1)
        });
    }
    // xorshift128+: fast, and 2^128 - 1 states are plenty for request ids.
    STATE.with(|s| {
        let mut out = [0u8; 16];
        for half in out.chunks_mut(8) {
            let (mut a, b) = s.get();
            let r = a.wrapping_add(b);
            a ^= a << 23;
            let next = a ^ b ^ (a >> 17) ^ (b >> 26);
            s.set((b, next));
            half.copy_from_slice(&r.to_le_bytes());
        }
        out
    })
}

/// A fresh FC 2.0 request id (a version-4 UUID), see [`request_id_bytes`].
pub fn new_request_id() -> String {
    uuid::Builder::from_random_bytes(request_id_bytes())
        .into_uuid()
        .to_string()
}

/// A fresh FC 3.0 request id, shaped as real FC 3.0's (`1-65bf56b2-1368aa6d-c7da7fa6a4d4`):
/// `1-`, the Unix time in seconds as 8 hex digits, then 8 and 12 random hex digits. The
/// clock read is a vDSO call, not a system call.
pub fn new_fc3_request_id() -> String {
    fc3_request_id_at(SystemTime::now(), request_id_bytes())
}

fn fc3_request_id_at(now: SystemTime, random: [u8; 16]) -> String {
    use std::fmt::Write as _;
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut id = String::with_capacity(32);
    // 8 hex digits hold Unix seconds until 2106; the low 32 bits keep the shape after that.
    let _ = write!(id, "1-{:08x}-", secs as u32);
    for b in &random[..4] {
        let _ = write!(id, "{b:02x}");
    }
    id.push('-');
    for b in &random[4..10] {
        let _ = write!(id, "{b:02x}");
    }
    id
}

/// Whether `path` is FC 3.0's API (`/2023-03-30/…`).
fn is_fc3(path: &str) -> bool {
    path.strip_prefix(fcd_iam::fc::V3_PREFIX)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The request id of a request to `path`: FC 3.0's shape under `/2023-03-30`, a UUID
/// elsewhere (as FC 2.0 and the RAM/STS APIs answer).
pub fn request_id_for(path: &str) -> String {
    if is_fc3(path) {
        new_fc3_request_id()
    } else {
        new_request_id()
    }
}

/// Authenticates the request, then runs the route; renders any error as FC's error body.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = request_id_for(req.uri().path());
    // Errors of the RPC APIs take RPC's shape, with the endpoint as `HostId`.
    let rpc_host = is_rpc(req.uri().path()).then(|| {
        req.headers()
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("fcd")
            .to_owned()
    });
    let render = |e: &FcError| match &rpc_host {
        Some(host) => render_rpc(e, &request_id, host),
        None => render(e, &request_id),
    };
    // A function reached over HTTP (a `/proxy/` URL, or a Host naming a custom domain) is not
    // an API call: its trigger decides who may call it (see `crate::proxy`).
    if let Some(entry) = crate::proxy::entry(&state, req.headers(), req.uri(), true).await {
        let mut resp = crate::proxy::serve(&state, req, &request_id, entry).await;
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-fc-request-id", v);
        }
        return resp;
    }
    let mut resp = match authenticate(&state, req, &request_id).await {
        Ok(req) => next.run(req).await,
        Err(e) => render(&e),
    };
    if let Some(err) = resp.extensions_mut().remove::<FcError>() {
        if matches!(err, FcError::Internal) {
            tracing::error!(request_id, "internal error");
        }
        resp = render(&err);
    }
    let headers = resp.headers_mut();
    if !headers.contains_key("x-fc-request-id")
        && let Ok(v) = HeaderValue::from_str(&request_id)
    {
        headers.insert("x-fc-request-id", v);
    }
    resp
}

/// An `X-Fc-Invocation-Type: Async` call: its body is queued whole, never streamed.
fn is_async_invocation(headers: &HeaderMap) -> bool {
    headers
        .get("x-fc-invocation-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("async"))
}

async fn authenticate(
    state: &AppState,
    req: Request,
    request_id: &str,
) -> Result<Request, FcError> {
    let (mut parts, body) = req.into_parts();
    crate::frontdoor::check_head(&parts)?;
    let path = parts.uri.path().to_owned();
    if is_unsigned(&path) {
        parts.extensions.insert(Caller {
            request_id: request_id.to_owned(),
            account_id: String::new(),
            access_key_id: String::new(),
            principal: None,
        });
        return Ok(Request::from_parts(parts, body));
    }
    // An asynchronous invocation's smaller limit applies at once: its body is queued whole.
    let path_limit = body_limit(&path);
    let limit = match path_limit {
        INVOKE_BODY_MAX if is_async_invocation(&parts.headers) => ASYNC_PAYLOAD_MAX,
        other => other,
    };
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // Over what the path ever accepts: refused before anything is read, and for a stranger
    // the connection then closes with its body unread. A caller whose signed head verifies
    // has a body of moderate excess read and dropped first: a proxy in front of fcd (a
    // cluster's load balancer) that is still sending it would otherwise turn the refusal
    // into its own 502.
    let oversized = declared.filter(|len| *len > path_limit as u64);
    if oversized.is_some_and(|len| len > OVERSIZED_DRAIN_MAX) {
        return Err(FcError::EntityTooLarge {
            limit: limit as u64,
        });
    }
    let now = SystemTime::now();
    let (auth, credential) = verify_signed_head(state, &parts, &path, now, false).await?;
    if oversized.is_some() {
        crate::frontdoor::discard_body(
            body,
            state.front_door.body_read_timeout(),
            OVERSIZED_DRAIN_MAX,
        )
        .await;
        return Err(FcError::EntityTooLarge {
            limit: limit as u64,
        });
    }
    let key_id = auth.access_key_id();
    // An async call over its own limit but within the path's: a signed client's body is read
    // and dropped (never kept) before the refusal, so its kept-alive connection stays usable
    // for the next call, as it did when such bodies were buffered and refused later.
    if let Some(len) = declared
        && len > limit as u64
    {
        crate::frontdoor::discard_body(
            body,
            state.front_door.body_read_timeout(),
            OVERSIZED_DRAIN_MAX,
        )
        .await;
        return Err(FcError::EntityTooLarge {
            limit: limit as u64,
        });
    }
    // hyper knows a body's exact length from Content-Length, and that a request without
    // Content-Length or Transfer-Encoding has none; only a chunked body's is unknown.
    let known_len = axum::body::HttpBody::size_hint(&body).exact();
    if limit == INVOKE_BODY_MAX
        && parts.method == http::Method::POST
        && known_len.is_none_or(|n| n > STREAM_ABOVE)
        && !is_async_invocation(&parts.headers)
    {
        let verifier = fcd_sign::BodyVerifier::new(&auth, &parts.headers).map_err(sign_error)?;
        let account_id = resolve_account(&parts.headers, key_id, &credential.principal)?;
        authorize(state, &parts, &path, &credential).await?;
        state.front_door.check_replay(&auth, &parts.headers, now)?;
        let streamed = crate::frontdoor::stream_body(
            body,
            verifier,
            limit,
            state.front_door.body_read_timeout(),
            known_len,
        );
        parts
            .extensions
            .insert(StreamSlot(std::sync::Arc::new(std::sync::Mutex::new(
                Some(streamed),
            ))));
        parts.extensions.insert(Caller {
            request_id: request_id.to_owned(),
            account_id,
            access_key_id: key_id.to_owned(),
            principal: Some(credential.principal),
        });
        return Ok(Request::from_parts(parts, Body::empty()));
    }
    let body = read_body(state, body, limit).await?;
    verify_signed_body(state, &auth, &parts.headers, &body, now)?;
    let account_id = resolve_account(&parts.headers, key_id, &credential.principal)?;
    authorize(state, &parts, &path, &credential).await?;
    parts.extensions.insert(Caller {
        request_id: request_id.to_owned(),
        account_id,
        access_key_id: key_id.to_owned(),
        principal: Some(credential.principal),
    });
    Ok(Request::from_parts(parts, Body::from(body)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn acs3(signed: &str) -> Authorization {
        Authorization::Acs3 {
            access_key_id: "STS.key".into(),
            signed_headers: signed.split(';').map(str::to_owned).collect(),
            signature: vec![0; 32],
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn acs3_tokens_must_be_signed_and_name_the_signing_key() {
        let signed = "host;x-acs-accesskey-id;x-acs-date;x-acs-security-token";
        let h = headers(&[
            ("x-acs-security-token", "tok"),
            ("x-acs-accesskey-id", "STS.key"),
        ]);
        assert_eq!(security_token(&acs3(signed), &h).unwrap(), Some("tok"));
        assert_eq!(
            security_token(&acs3(signed), &HeaderMap::new()).unwrap(),
            None
        );
        let err = security_token(&acs3("host;x-acs-date"), &h).unwrap_err();
        assert_eq!(err.code(), "InvalidSecurityToken.Malformed");
        let other = headers(&[
            ("x-acs-security-token", "tok"),
            ("x-acs-accesskey-id", "STS.other"),
        ]);
        let err = security_token(&acs3(signed), &other).unwrap_err();
        assert_eq!(err.code(), "InvalidSecurityToken.MismatchWithAccessKey");
    }

    #[test]
    fn the_fc_scheme_carries_its_token_in_x_fc_security_token() {
        let fc = Authorization::Fc {
            access_key_id: "STS.key".into(),
            signature: vec![0; 32],
        };
        let h = headers(&[
            ("x-fc-security-token", "tok"),
            ("x-acs-security-token", "no"),
        ]);
        assert_eq!(security_token(&fc, &h).unwrap(), Some("tok"));
    }

    #[test]
    fn fc3_request_ids_have_fc3s_shape() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(0x65bf_56b2);
        let mut random = [0u8; 16];
        random[..10].copy_from_slice(&[0x13, 0x68, 0xaa, 0x6d, 0xc7, 0xda, 0x7f, 0xa6, 0xa4, 0xd4]);
        assert_eq!(
            fc3_request_id_at(at, random),
            "1-65bf56b2-1368aa6d-c7da7fa6a4d4"
        );
        let id = new_fc3_request_id();
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.len(), 4, "{id}");
        assert_eq!(parts[0], "1");
        assert_eq!(
            parts[1..].iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 8, 12]
        );
        assert!(parts[1..].iter().all(|p| {
            p.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        }));
        let secs = u64::from_str_radix(parts[1], 16).unwrap();
        let now = SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(now.abs_diff(secs) < 5);
        assert_ne!(new_fc3_request_id(), new_fc3_request_id());
    }

    #[test]
    fn request_ids_follow_the_api_version() {
        assert!(request_id_for("/2023-03-30/functions").starts_with("1-"));
        assert!(request_id_for("/2023-03-30").starts_with("1-"));
        for path in [
            "/2021-04-06/services",
            "/2016-08-15/services",
            "/",
            "/2023-03-300/x",
        ] {
            let id = request_id_for(path);
            assert!(uuid::Uuid::parse_str(&id).is_ok(), "{path}: {id}");
        }
    }

    #[test]
    fn a_numeric_first_host_label_names_the_account() {
        let host = |h: &'static str| headers(&[("host", h)]);
        assert_eq!(
            host_account(&host("1234567890.cn-hangzhou.fc.aliyuncs.com")),
            Some("1234567890")
        );
        assert_eq!(host_account(&host("1234.localhost:9000")), Some("1234"));
        for none in [
            "127.0.0.1:9000",
            "127.0.0.1",
            "10.1.2.3:80",
            "[::1]:9000",
            "localhost:9000",
            "fcv3.cn-hangzhou.aliyuncs.com",
            "12a4.cn-hangzhou.fc.aliyuncs.com",
            "1234",
            "1234:9000",
            "1234.",
            ".x",
        ] {
            assert_eq!(host_account(&host(none)), None, "{none}");
        }
        assert_eq!(host_account(&HeaderMap::new()), None);
    }

    #[test]
    fn invocations_name_the_resource_of_their_api_version() {
        // What the API's InvokeFunction names for the same function (fcd_iam::fc).
        let api =
            |path: &str| fcd_iam::fc::operation("POST", path, Some("prod")).map(|o| o.resource);
        assert_eq!(
            Some(invoke_resource("svc", "prod", "f")),
            api("/2021-04-06/services/svc/functions/f/invocations")
        );
        let hidden = fcd_core::fc3::hidden_service("f1");
        assert_eq!(
            Some(invoke_resource(&hidden, "prod", "f1")),
            api("/2023-03-30/functions/f1/invocations")
        );
    }

    #[test]
    fn rpc_calls_live_at_the_root_path_with_a_small_body_limit() {
        assert!(is_rpc("/"));
        assert!(!is_rpc("/2021-04-06/services"));
        assert_eq!(body_limit("/"), RPC_BODY_MAX);
    }
}
