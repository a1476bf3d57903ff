//! CreateFunction, GetFunction, UpdateFunction, DeleteFunction, ListFunctions, GetFunctionCode.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fcd_core::model::FunctionUpdate;

use super::{Ctx, PathParams, QueryParams, check_qualifier, header_str, json_body, json_response};
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
    let (service, _) = p.service();
    let f = s
        .control
        .create_function(
            &c.account_id,
            &service,
            u,
            header_str(&headers, "x-fc-code-checksum"),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &f.function, Some(&f.etag)))
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (service, path_q) = p.service();
    check_qualifier(
        &service,
        path_q.as_deref().or(q.string("qualifier").as_deref()),
    )?;
    let f = s
        .control
        .get_function(&c.account_id, &service, p.get("function"))
        .await?;
    Ok(json_response(StatusCode::OK, &f.function, Some(&f.etag)))
}

pub(super) async fn update(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let u: FunctionUpdate = json_body(&body)?;
    let (service, _) = p.service();
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
    Ok(json_response(StatusCode::OK, &f.function, Some(&f.etag)))
}

pub(super) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (service, _) = p.service();
    s.control
        .delete_function(
            &c.account_id,
            &service,
            p.get("function"),
            header_str(&headers, "if-match"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (service, path_q) = p.service();
    check_qualifier(
        &service,
        path_q.as_deref().or(q.string("qualifier").as_deref()),
    )?;
    let page = s
        .control
        .list_functions(&c.account_id, &service, &q.paging()?)
        .await?;
    let functions: Vec<_> = page.items.into_iter().map(|f| f.function).collect();
    let mut body = serde_json::json!({ "functions": functions });
    if let Some(t) = page.next_token {
        body["nextToken"] = t.into();
    }
    Ok(json_response(StatusCode::OK, &body, None))
}

/// GetFunctionCode: a time-limited URL on this server from which the zip downloads.
pub(super) async fn code(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (service, path_q) = p.service();
    check_qualifier(
        &service,
        path_q.as_deref().or(q.string("qualifier").as_deref()),
    )?;
    let (path, checksum) = s
        .control
        .code_url_path(&c.account_id, &service, p.get("function"))
        .await?;
    // The caller reached us through this host, so the URL on it is reachable for them too.
    let host = header_str(&headers, "host").unwrap_or("127.0.0.1");
    let body = serde_json::json!({ "url": format!("http://{host}{path}"), "checksum": checksum });
    Ok(json_response(StatusCode::OK, &body, None))
}
