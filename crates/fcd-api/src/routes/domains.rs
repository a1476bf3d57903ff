//! CreateCustomDomain, GetCustomDomain, UpdateCustomDomain, DeleteCustomDomain,
//! ListCustomDomains. The same JSON on both API versions (both SDKs read objects here).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fcd_core::domains::CustomDomainInput;

use super::{Ctx, PathParams, QueryParams, header_str, json_body, json_response, page_response};
use crate::AppState;
use crate::error::ApiResult;

pub(super) async fn create(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    body: Bytes,
) -> ApiResult<Response> {
    let input: CustomDomainInput = json_body(&body)?;
    let d = s.control.create_custom_domain(&c.account_id, input).await?;
    Ok(json_response(StatusCode::OK, &d.domain, Some(&d.etag)))
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let d = s
        .control
        .get_custom_domain(&c.account_id, p.get("domain"))
        .await?;
    Ok(json_response(StatusCode::OK, &d.domain, Some(&d.etag)))
}

pub(super) async fn update(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let input: CustomDomainInput = json_body(&body)?;
    let d = s
        .control
        .update_custom_domain(
            &c.account_id,
            p.get("domain"),
            input,
            header_str(&headers, "if-match"),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &d.domain, Some(&d.etag)))
}

pub(super) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    s.control
        .delete_custom_domain(
            &c.account_id,
            p.get("domain"),
            header_str(&headers, "if-match"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let page = s
        .control
        .list_custom_domains(&c.account_id, &q.paging()?)
        .await?;
    let domains: Vec<_> = page.items.into_iter().map(|d| d.domain).collect();
    Ok(page_response("customDomains", domains, page.next_token))
}
