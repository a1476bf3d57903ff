//! CreateFunction, GetFunction, UpdateFunction, DeleteFunction, ListFunctions, GetFunctionCode.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fcd_core::model::FunctionUpdate;

use super::{
    Ctx, PathParams, QueryParams, header_str, json_body, json_response, page_response, qualified,
};
use crate::AppState;
use crate::error::ApiResult;

pub(super) async fn create(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let u: FunctionUpdate = json_body(&body)?;
    let service = p.unqualified_service()?;
    let f = s
        .control
        .create_function(
            &c.account_id,
            &service,
            u,
            header_str(&headers, "x-fc-code-checksum"),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &s.control.function_json(&f.function),
        Some(&f.etag),
    ))
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    let (f, _, etag) = s
        .control
        .function_at(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &s.control.function_json(&f),
        etag.as_deref(),
    ))
}

pub(super) async fn update(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let u: FunctionUpdate = json_body(&body)?;
    let service = p.unqualified_service()?;
    let f = s
        .control
        .update_function(
            &c.account_id,
            &service,
            p.get("function"),
            u,
            header_str(&headers, "if-match"),
            header_str(&headers, "x-fc-code-checksum"),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &s.control.function_json(&f.function),
        Some(&f.etag),
    ))
}

pub(super) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    s.control
        .delete_function(
            &c.account_id,
            &service,
            p.get("function"),
            header_str(&headers, "if-match"),
        )
        .await?;
    s.asynchronous
        .forget_configs(&c.account_id, &service, Some(p.get("function")), None)
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    let page = s
        .control
        .list_functions_at(&c.account_id, &service, qualifier.as_deref(), &q.paging()?)
        .await?;
    Ok(page_response("functions", page.items, page.next_token))
}

/// GetFunctionCode: a time-limited URL on this server from which the zip downloads.
pub(super) async fn code(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    let (path, checksum) = s
        .control
        .code_url_path(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
        )
        .await?;
    // The caller reached us through this host, so the URL on it is reachable for them too.
    let host = header_str(&headers, "host").unwrap_or("127.0.0.1");
    let body = serde_json::json!({ "url": format!("http://{host}{path}"), "checksum": checksum });
    Ok(json_response(StatusCode::OK, &body, None))
}
