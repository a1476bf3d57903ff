//! CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fcd_core::versions::AliasUpdate;

use super::{Ctx, PathParams, QueryParams, header_str, json_body, json_response, page_response};
use crate::AppState;
use crate::error::ApiResult;

pub(super) async fn create(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let u: AliasUpdate = json_body(&body)?;
    let service = p.unqualified_service()?;
    let a = s.control.create_alias(&c.account_id, &service, u).await?;
    Ok(json_response(StatusCode::OK, &a.alias, Some(&a.etag)))
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    let a = s
        .control
        .get_alias(&c.account_id, &service, p.get("alias"))
        .await?;
    Ok(json_response(StatusCode::OK, &a.alias, Some(&a.etag)))
}

pub(super) async fn update(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let u: AliasUpdate = json_body(&body)?;
    let service = p.unqualified_service()?;
    let a = s
        .control
        .update_alias(
            &c.account_id,
            &service,
            p.get("alias"),
            u,
            header_str(&headers, "if-match"),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &a.alias, Some(&a.etag)))
}

pub(super) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    s.control
        .delete_alias(
            &c.account_id,
            &service,
            p.get("alias"),
            header_str(&headers, "if-match"),
        )
        .await?;
    s.asynchronous
        .forget_configs(&c.account_id, &service, None, Some(p.get("alias")))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    let page = s
        .control
        .list_aliases(&c.account_id, &service, &q.paging()?)
        .await?;
    let aliases: Vec<_> = page.items.into_iter().map(|a| a.alias).collect();
    Ok(page_response("aliases", aliases, page.next_token))
}
