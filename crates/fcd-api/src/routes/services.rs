//! CreateService, GetService, UpdateService, DeleteService, ListServices.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fcd_core::model::ServiceUpdate;

use super::{
    Ctx, PathParams, QueryParams, header_str, json_body, json_response, page_response, qualified,
};
use crate::AppState;
use crate::error::ApiResult;

pub(super) async fn create(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    body: Bytes,
) -> ApiResult<Response> {
    let u: ServiceUpdate = json_body(&body)?;
    let svc = s.control.create_service(&c.account_id, u).await?;
    Ok(json_response(StatusCode::OK, &svc.service, Some(&svc.etag)))
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (name, qualifier) = qualified(&p, &q);
    let (svc, etag) = s
        .control
        .service_at(&c.account_id, &name, qualifier.as_deref())
        .await?;
    Ok(json_response(StatusCode::OK, &svc, etag.as_deref()))
}

pub(super) async fn update(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let u: ServiceUpdate = json_body(&body)?;
    let name = p.unqualified_service()?;
    let svc = s
        .control
        .update_service(&c.account_id, &name, u, header_str(&headers, "if-match"))
        .await?;
    Ok(json_response(StatusCode::OK, &svc.service, Some(&svc.etag)))
}

pub(super) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let name = p.unqualified_service()?;
    s.control
        .delete_service(&c.account_id, &name, header_str(&headers, "if-match"))
        .await?;
    s.asynchronous
        .forget_configs(&c.account_id, &name, None, None)
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let page = s.control.list_services(&c.account_id, &q.paging()?).await?;
    let services: Vec<_> = page.items.into_iter().map(|s| s.service).collect();
    Ok(page_response("services", services, page.next_token))
}
