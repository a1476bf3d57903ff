//! PublishServiceVersion, ListServiceVersions, DeleteServiceVersion.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use super::{Ctx, PathParams, QueryParams, header_str, json_body, json_response};
use crate::AppState;
use crate::error::ApiResult;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublishBody {
    description: Option<String>,
}

pub(super) async fn publish(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let b: PublishBody = json_body(&body)?;
    let service = p.unqualified_service()?;
    let v = s
        .control
        .publish_version(
            &c.account_id,
            &service,
            b.description.as_deref().unwrap_or(""),
            header_str(&headers, "if-match"),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &v, None))
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
        .list_versions(
            &c.account_id,
            &service,
            q.string("direction").as_deref(),
            q.string("startKey").as_deref(),
            q.string("nextToken").as_deref(),
            q.u32("limit")?,
        )
        .await?;
    let mut body = serde_json::json!({ "versions": page.versions, "direction": page.direction });
    if let Some(t) = page.next_token {
        body["nextToken"] = t.into();
    }
    Ok(json_response(StatusCode::OK, &body, None))
}

pub(super) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    s.control
        .delete_version(&c.account_id, &service, p.get("version"))
        .await?;
    s.asynchronous
        .forget_configs(&c.account_id, &service, None, Some(p.get("version")))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
