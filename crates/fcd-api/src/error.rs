//! Rendering of platform errors as FC's error body.
//!
//! Handlers return [`ApiError`]; its response carries only the status and the [`FcError`] in the
//! response extensions. The outermost middleware ([`crate::auth`]) knows the request id and
//! renders the body, so every error, wherever it arises, gets the same
//! `{"ErrorCode","ErrorMessage","Code","Message","RequestId"}` shape and `X-Fc-Request-Id`.
//! Requests to the RPC APIs at `/` (RAM, STS) get RPC's shape instead ([`render_rpc`]).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fcd_core::FcError;

/// A platform error leaving a handler.
#[derive(Debug)]
pub struct ApiError(pub FcError);

impl From<FcError> for ApiError {
    fn from(e: FcError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = status.into_response();
        resp.extensions_mut().insert(self.0);
        resp
    }
}

/// FC's error body for request `request_id`.
pub fn error_json(err: &FcError, request_id: &str) -> String {
    let message = err.to_string();
    serde_json::json!({
        "ErrorCode": err.code(),
        "ErrorMessage": message,
        "Code": err.code(),
        "Message": message,
        "RequestId": request_id,
    })
    .to_string()
}

/// The body and headers of an error response for request `request_id`.
pub fn render(err: &FcError, request_id: &str) -> Response {
    let status =
        StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, error_json(err, request_id)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// The body of an error of an RPC API (RAM, STS): `{"RequestId","HostId","Code","Message"}` with
/// the RPC code and status ([`FcError::rpc_code`]); FC's `ErrorCode`/`ErrorMessage` ride along
/// for clients that read those.
pub fn render_rpc(err: &FcError, request_id: &str, host_id: &str) -> Response {
    let message = err.to_string();
    let code = err.rpc_code();
    let body = serde_json::json!({
        "RequestId": request_id,
        "HostId": host_id,
        "Code": code,
        "Message": message,
        "ErrorCode": code,
        "ErrorMessage": message,
    });
    let status =
        StatusCode::from_u16(err.rpc_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json;charset=utf-8"),
    );
    resp
}

pub type ApiResult<T> = Result<T, ApiError>;
