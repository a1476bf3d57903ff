//! Downloads of code packages through the pre-signed URLs GetFunctionCode hands out.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{PathParams, QueryParams};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use fcd_core::FcError;

pub(super) async fn download(
    State(s): State<AppState>,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let digest = p.get("digest").trim_end_matches(".zip");
    let expires = q
        .string("expires")
        .and_then(|e| e.parse::<u64>().ok())
        .ok_or_else(|| {
            ApiError(FcError::AccessDenied(
                "the code URL is invalid or has expired".into(),
            ))
        })?;
    let sig = q.string("signature").unwrap_or_default();
    let zip = s.control.code_download(digest, expires, &sig).await?;
    let mut resp = (StatusCode::OK, zip).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    Ok(resp)
}
