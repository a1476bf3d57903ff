//! The outermost layer of every API request: request id, body buffering with FC's size limits,
//! signature verification, account resolution, and the rendering of errors.
//!
//! Signatures cover the body (ACS3 hashes it; the FC scheme covers `Content-MD5`, checked
//! against the body), so the body is buffered here once — after the signature over the head
//! (with the body digest the client claims) has verified — and handed on as `Bytes`; handlers
//! never read the wire themselves.

use std::collections::HashMap;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;

use fcd_core::FcError;
use fcd_core::limits::{CODE_ZIP_MAX, SYNC_PAYLOAD_MAX};
use fcd_sign::{Authorization, SignError, SignedRequest};

use crate::AppState;
use crate::error::render;

/// One access key and the account it belongs to.
#[derive(Clone)]
pub struct AccessKey {
    pub id: String,
    pub secret: String,
    pub account_id: String,
}

/// The secret never appears in logs or panics.
impl std::fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("account_id", &self.account_id)
            .finish()
    }
}

/// The access keys the server accepts.
#[derive(Debug, Default)]
pub struct Keyring {
    keys: HashMap<String, AccessKey>,
}

impl Keyring {
    pub fn new(keys: impl IntoIterator<Item = AccessKey>) -> Keyring {
        Keyring {
            keys: keys.into_iter().map(|k| (k.id.clone(), k)).collect(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&AccessKey> {
        self.keys.get(id)
    }
}

/// Who is calling, attached to every authenticated request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub request_id: String,
    pub account_id: String,
    pub access_key_id: String,
}

/// Body limit for invocations: the sync payload limit (async is checked later, it is smaller).
const INVOKE_BODY_MAX: usize = SYNC_PAYLOAD_MAX;
/// Body limit for control-plane calls: a base64 code zip of the largest size plus JSON around it.
const CONTROL_BODY_MAX: usize = CODE_ZIP_MAX / 3 * 4 + 1024 * 1024;

fn body_limit(path: &str) -> usize {
    if path.ends_with("/invocations") {
        INVOKE_BODY_MAX
    } else {
        CONTROL_BODY_MAX
    }
}

/// Paths served without a request signature: code downloads carry their own proof. (`/status`
/// needs a signature; `/metrics` is served only on the opt-in metrics listener.)
fn is_unsigned(path: &str) -> bool {
    path.starts_with("/code-packages/")
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

/// Account selection (fc-api.md section 2.1): `X-Fc-Account-Id`, else the first label of `Host`
/// when it names the key's account, else the key's account. A key only ever acts for its own
/// account.
fn resolve_account(headers: &HeaderMap, key: &AccessKey) -> Result<String, FcError> {
    if let Some(v) = headers.get("x-fc-account-id") {
        let v = v.to_str().unwrap_or_default().trim();
        if !v.is_empty() && v != key.account_id {
            return Err(FcError::AccessDenied(format!(
                "access key '{}' may not act for account '{v}'",
                key.id
            )));
        }
    }
    Ok(key.account_id.clone())
}

/// The body, within `limit` bytes and the body read timeout (see [`crate::frontdoor`]).
async fn read_body(state: &AppState, body: Body, limit: usize) -> Result<Bytes, FcError> {
    crate::frontdoor::read_body(body, limit, state.front_door.body_read_timeout()).await
}

/// A fresh request id (a version-4 UUID). Drawn from a per-thread generator seeded once from
/// the OS, so the hot path makes no `getrandom` system call per request; ids need to be unique,
/// not secret.
pub fn new_request_id() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<(u64, u64)> = Cell::new({
            let seed = uuid::Uuid::new_v4().as_u128();
            ((seed >> 64) as u64 | 1, seed as u64 | 1)
        });
    }
    // xorshift128+: fast, and 2^128 - 1 states are plenty for request ids.
    let bytes = STATE.with(|s| {
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
    });
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// Authenticates the request, then runs the route; renders any error as FC's error body.
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let request_id = new_request_id();
    let mut resp = match authenticate(&state, req, &request_id).await {
        Ok(req) => next.run(req).await,
        Err(e) => render(&e, &request_id),
    };
    if let Some(err) = resp.extensions_mut().remove::<FcError>() {
        if matches!(err, FcError::Internal) {
            tracing::error!(request_id, "internal error");
        }
        resp = render(&err, &request_id);
    }
    let headers = resp.headers_mut();
    if !headers.contains_key("x-fc-request-id")
        && let Ok(v) = HeaderValue::from_str(&request_id)
    {
        headers.insert("x-fc-request-id", v);
    }
    resp
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
        });
        return Ok(Request::from_parts(parts, body));
    }
    let limit = body_limit(&path);
    if let Some(len) = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(FcError::EntityTooLarge {
            limit: limit as u64,
        });
    }
    let auth_header = parts
        .headers
        .get(http::header::AUTHORIZATION)
        .ok_or_else(|| {
            FcError::AccessDenied("the request is not signed: Authorization header missing".into())
        })?
        .to_str()
        .map_err(|_| FcError::AccessDenied("the Authorization header is not valid text".into()))?;
    let auth = Authorization::parse(auth_header).map_err(sign_error)?;
    let key = state
        .keyring
        .get(auth.access_key_id())
        .ok_or_else(|| FcError::InvalidAccessKeyId(auth.access_key_id().to_owned()))?;
    // The head is verified before the body is read: a forged or unsigned request never makes
    // the server buffer up to the body limit. The body is then checked against the digest the
    // verified head carries.
    let now = SystemTime::now();
    let head = SignedRequest {
        method: parts.method.as_str(),
        path: &path,
        query: parts.uri.query().unwrap_or(""),
        headers: &parts.headers,
        body: &[],
    };
    fcd_sign::verify_head(&auth, &key.secret, &head, now).map_err(sign_error)?;
    let body = read_body(state, body, limit).await?;
    fcd_sign::verify_body(&auth, &parts.headers, &body).map_err(sign_error)?;
    // Only now, with the whole request verified, may its nonce be recorded.
    state.front_door.check_replay(&auth, &parts.headers, now)?;
    let account_id = resolve_account(&parts.headers, key)?;
    parts.extensions.insert(Caller {
        request_id: request_id.to_owned(),
        account_id,
        access_key_id: key.id.clone(),
    });
    Ok(Request::from_parts(parts, Body::from(body)))
}
