//! The RPC-style APIs served at `/` next to FC's paths: RAM 2015-05-01 ([`ram`]) and STS
//! 2015-04-01 ([`sts`]), as the official SDKs call them — `POST /` (or `GET /`) with
//! `x-acs-version` and `x-acs-action`, parameters in the form-decoded query (merged with a
//! form body when one is sent), signed with ACS3-HMAC-SHA256 over the canonical URI `/`.
//!
//! Success is HTTP 200 with the operation's JSON and its `RequestId`; errors are rendered by the
//! auth layer in RPC's shape (`{"RequestId","HostId","Code","Message"}`, see
//! [`crate::error::render_rpc`]).

mod ram;
mod sts;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use fcd_control::iam::{AuthContext, Principal};
use fcd_core::FcError;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub(crate) const RAM_VERSION: &str = "2015-05-01";
pub(crate) const STS_VERSION: &str = "2015-04-01";

/// The parameters of one call: the query, plus a form body's fields.
#[derive(Debug, Default)]
pub(crate) struct Params(HashMap<String, String>);

impl Params {
    fn from_request(query: &str, headers: &HeaderMap, body: &[u8]) -> Params {
        let mut map: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| {
                ct.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if form {
            for (k, v) in form_urlencoded::parse(body).into_owned() {
                map.entry(k).or_insert(v);
            }
        }
        Params(map)
    }

    /// A parameter; an empty value counts as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn string(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }

    pub(crate) fn opt(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    pub(crate) fn u64(&self, name: &str) -> ApiResult<Option<u64>> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                ApiError(FcError::RamInvalidParameter {
                    code: "InvalidParameter",
                    message: format!("The parameter {name} '{v}' is not a valid number."),
                })
            }),
        }
    }

    pub(crate) fn u32(&self, name: &str) -> ApiResult<Option<u32>> {
        self.u64(name)?
            .map(|v| {
                u32::try_from(v).map_err(|_| {
                    ApiError(FcError::RamInvalidParameter {
                        code: "InvalidParameter",
                        message: format!("The parameter {name} {v} is out of range."),
                    })
                })
            })
            .transpose()
    }

    /// Booleans as Python (`True`) and Node (`true`) send them.
    pub(crate) fn bool(&self, name: &str) -> ApiResult<bool> {
        match self.get(name) {
            None => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError(FcError::RamInvalidParameter {
                code: "InvalidParameter",
                message: format!("The parameter {name} '{v}' is not a boolean."),
            })),
        }
    }
}

/// What every RPC operation gets.
pub(crate) struct Call<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) principal: &'a Principal,
    pub(crate) params: Params,
    pub(crate) auth: AuthContext,
}

/// The condition keys of a request: its TCP peer (when the server recorded it), now, plain
/// HTTP.
pub(crate) fn auth_context(extensions: &http::Extensions) -> AuthContext {
    AuthContext {
        source_ip: extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_canonical()),
        now: SystemTime::now(),
        secure_transport: false,
    }
}

/// `POST /` and `GET /`: one RAM or STS call.
pub(crate) async fn handle(State(state): State<AppState>, req: Request) -> Response {
    match dispatch(&state, req).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn dispatch(state: &AppState, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let caller = parts
        .extensions
        .get::<Caller>()
        .cloned()
        .ok_or(ApiError(FcError::Internal))?;
    let principal = caller.principal.ok_or(ApiError(FcError::Internal))?;
    // The auth layer has already buffered (and limited) the body.
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_else(|_| Bytes::new());
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    let version = header("x-acs-version");
    let action = header("x-acs-action");
    let call = Call {
        state,
        principal: &principal,
        params: Params::from_request(parts.uri.query().unwrap_or(""), &parts.headers, &body),
        auth: auth_context(&parts.extensions),
    };
    let mut out = match version.as_str() {
        RAM_VERSION => ram::call(&call, &action).await?,
        STS_VERSION => sts::call(&call, &action).await?,
        _ => return Err(ApiError(FcError::InvalidActionOrVersion)),
    };
    out.insert("RequestId".into(), Value::String(caller.request_id.clone()));
    let mut resp = (StatusCode::OK, Value::Object(out).to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    Ok(resp)
}

/// A JSON object under construction.
pub(crate) type Obj = Map<String, Value>;

pub(crate) fn obj(pairs: impl IntoIterator<Item = (&'static str, Value)>) -> Obj {
    pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}

pub(crate) fn s(v: impl Into<String>) -> Value {
    Value::String(v.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_merge_a_form_body_and_read_booleans_both_ways() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        let p = Params::from_request(
            "UserName=ci+bot&CascadingDelete=True&Empty=",
            &headers,
            b"PolicyName=p%2A&UserName=other&Flag=false",
        );
        assert_eq!(p.get("UserName"), Some("ci bot"), "the query wins");
        assert_eq!(p.get("PolicyName"), Some("p*"));
        assert_eq!(p.get("Empty"), None);
        assert!(p.bool("CascadingDelete").unwrap());
        assert!(!p.bool("Flag").unwrap());
        assert!(!p.bool("Missing").unwrap());
        // Without the form content type the body is not parameters.
        let p = Params::from_request("", &HeaderMap::new(), b"PolicyName=p");
        assert_eq!(p.get("PolicyName"), None);
        let p = Params::from_request("MaxItems=x&D=5", &HeaderMap::new(), b"");
        assert!(p.u32("MaxItems").is_err());
        assert_eq!(p.u64("D").unwrap(), Some(5));
    }
}
