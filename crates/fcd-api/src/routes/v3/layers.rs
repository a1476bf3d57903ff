//! FC 3.0's layers (`/2023-03-30/layers…`, `/layerarn/{arn}`): the same layer versions as
//! 2.0 (`routes::layers`, whose input parsing is shared), in 3.0's `Layer` model — `acl` a
//! string (`"0"` private, `"1"` public) and `layerVersionArn` instead of `arn`/`arnV2`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use fcd_control::Control;
use fcd_core::FcError;
use fcd_core::layers::LayerVersion;

use super::super::layers::{
    CreateLayerBody, code_location, layer_filter, start_version, version_param,
};
use super::super::{Ctx, PathParams, QueryParams, json_body, json_response};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

fn view(control: &Control, account: &str, headers: &HeaderMap, v: &LayerVersion) -> Value {
    json!({
        "layerName": v.layer_name,
        "version": v.version,
        "description": v.description,
        "license": v.license,
        "compatibleRuntime": v.compatible_runtime,
        "code": {"location": code_location(control, headers, v), "repositoryType": "OSS"},
        "codeChecksum": v.code_checksum,
        "codeSize": v.code_size,
        "createTime": v.create_time,
        "acl": v.acl.to_string(),
        "layerVersionArn": control.layer_arn(account, v),
    })
}

pub(super) async fn create(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let input: CreateLayerBody = json_body(&body)?;
    let v = s
        .control
        .publish_layer_version(&c.account_id, p.get("layer"), input.into_input())
        .await?;
    let body = view(&s.control, &c.account_id, &headers, &v);
    Ok(json_response(StatusCode::OK, &body, None))
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v = s
        .control
        .get_layer_version(&c.account_id, p.get("layer"), version_param(&p)?)
        .await?;
    let body = view(&s.control, &c.account_id, &headers, &v);
    Ok(json_response(StatusCode::OK, &body, None))
}

/// GetLayerVersionByArn: the ARN is one percent-encoded segment, decoded by the router.
pub(super) async fn get_by_arn(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v = s
        .control
        .get_layer_version_by_arn(&c.account_id, p.get("arn"))
        .await?;
    let body = view(&s.control, &c.account_id, &headers, &v);
    Ok(json_response(StatusCode::OK, &body, None))
}

pub(super) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    s.control
        .delete_layer_version(&c.account_id, p.get("layer"), version_param(&p)?)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_versions(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let page = s
        .control
        .list_layer_versions(
            &c.account_id,
            p.get("layer"),
            start_version(&q)?,
            q.u32("limit")?,
        )
        .await?;
    let layers: Vec<Value> = page
        .layers
        .iter()
        .map(|v| view(&s.control, &c.account_id, &headers, v))
        .collect();
    let mut body = json!({ "layers": layers });
    if let Some(next) = page.next_version {
        body["nextVersion"] = json!(next);
    }
    Ok(json_response(StatusCode::OK, &body, None))
}

pub(super) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let page = s
        .control
        .list_layers(&c.account_id, &q.paging()?, &layer_filter(&q)?)
        .await?;
    let layers: Vec<Value> = page
        .items
        .iter()
        .map(|v| view(&s.control, &c.account_id, &headers, v))
        .collect();
    let mut body = json!({ "layers": layers });
    if let Some(next) = page.next_token {
        body["nextToken"] = json!(next);
    }
    Ok(json_response(StatusCode::OK, &body, None))
}

/// PutLayerACL (the Node SDK's): `acl=0|1`, or `public=true|false`.
pub(super) async fn put_acl(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let public = match q.string("acl").filter(|a| !a.is_empty()).as_deref() {
        Some("1") => Some(true),
        Some("0") => Some(false),
        Some(other) => {
            return Err(ApiError(FcError::invalid(format!(
                "acl '{other}' must be \"0\" (private) or \"1\" (public)"
            ))));
        }
        None => q.query_bool("public")?,
    }
    .ok_or_else(|| ApiError(FcError::invalid("the query parameter acl is required")))?;
    s.control
        .put_layer_acl(&c.account_id, p.get("layer"), public)
        .await?;
    Ok(StatusCode::OK.into_response())
}
