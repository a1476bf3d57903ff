//! FC 3.0 aliases: CreateAlias, GetAlias, UpdateAlias, DeleteAlias, ListAliases — the
//! service aliases of the function's hidden service `~F` (`additionalVersionWeight` as in
//! 2.0; 2.0's `resolvePolicy`/`routePolicy` are not shown). A 2.0 function `svc$fn` shows its
//! service's aliases; writing them through 3.0 is refused (see `versions::native_only`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use fcd_core::versions::{Alias, AliasUpdate};

use super::super::{Ctx, PathParams, QueryParams, json_body, json_response, page_response};
use super::versions::native_only;
use super::{rephrased, resolve};
use crate::AppState;
use crate::error::ApiResult;

/// 3.0's `Alias`: `{aliasName, versionId, description, additionalVersionWeight, createdTime,
/// lastModifiedTime}`.
fn render(a: &Alias) -> Value {
    json!({
        "aliasName": a.alias_name,
        "versionId": a.version_id,
        "description": a.description,
        "additionalVersionWeight": a.additional_version_weight,
        "createdTime": a.created_time,
        "lastModifiedTime": a.last_modified_time,
    })
}

pub(in crate::routes) async fn create(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    native_only(&f, "create an alias (CreateAlias)")?;
    let u: AliasUpdate = json_body(&body)?;
    resolve(&s, &c.account_id, &f).await?;
    let a = s
        .control
        .create_alias(&c.account_id, &f.service(), u)
        .await
        .map_err(rephrased(&f))?;
    Ok(json_response(StatusCode::OK, &render(&a.alias), None))
}

pub(in crate::routes) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    resolve(&s, &c.account_id, &f).await?;
    let a = s
        .control
        .get_alias(&c.account_id, &f.service(), p.get("alias"))
        .await
        .map_err(rephrased(&f))?;
    Ok(json_response(StatusCode::OK, &render(&a.alias), None))
}

pub(in crate::routes) async fn update(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    native_only(&f, "update an alias (UpdateAlias)")?;
    let mut u: AliasUpdate = json_body(&body)?;
    // The name is the path's.
    u.alias_name = None;
    let a = s
        .control
        .update_alias(&c.account_id, &f.service(), p.get("alias"), u, None)
        .await
        .map_err(rephrased(&f))?;
    Ok(json_response(StatusCode::OK, &render(&a.alias), None))
}

pub(in crate::routes) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    native_only(&f, "delete an alias (DeleteAlias)")?;
    let alias = p.get("alias");
    s.control
        .delete_alias(&c.account_id, &f.service(), alias, None)
        .await
        .map_err(rephrased(&f))?;
    s.asynchronous
        .forget_configs(&c.account_id, &f.service(), None, Some(alias))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(in crate::routes) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    resolve(&s, &c.account_id, &f).await?;
    let paging = fcd_control::Paging {
        prefix: q.string("prefix"),
        start_key: None,
        next_token: q.string("nextToken"),
        limit: q.u32("limit")?,
    };
    let page = s
        .control
        .list_aliases(&c.account_id, &f.service(), &paging)
        .await
        .map_err(rephrased(&f))?;
    let aliases: Vec<Value> = page.items.iter().map(|a| render(&a.alias)).collect();
    Ok(page_response("aliases", aliases, page.next_token))
}
