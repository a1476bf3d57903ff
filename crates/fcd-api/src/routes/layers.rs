//! CreateLayerVersion, GetLayerVersion, DeleteLayerVersion, ListLayerVersions, ListLayers and
//! PutLayerACL on 2.0 (`/2021-04-06`, `/2016-08-15`): the `Layer` model with `acl` an integer,
//! `arn` and `arnV2` both the version's ARN, and `code.location` a pre-signed download URL on
//! the host the caller reached. The 3.0 view of the same layers is `v3::layers`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use fcd_control::{Control, LayerFilter, LayerInput};
use fcd_core::FcError;
use fcd_core::layers::LayerVersion;

use super::{Ctx, PathParams, QueryParams, header_str, json_body, json_response};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// CreateLayerVersion's body. The 2021 SDK sends `Code` (capital C); others `code`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CreateLayerBody {
    #[serde(alias = "Code")]
    pub(crate) code: Option<LayerCodeBody>,
    #[serde(default)]
    pub(crate) compatible_runtime: Vec<String>,
    #[serde(default)]
    pub(crate) description: String,
    #[serde(default)]
    pub(crate) license: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LayerCodeBody {
    zip_file: Option<String>,
    oss_bucket_name: Option<String>,
    oss_object_name: Option<String>,
}

impl CreateLayerBody {
    pub(crate) fn into_input(self) -> LayerInput {
        let code = self.code.unwrap_or_default();
        LayerInput {
            oss: code.oss_bucket_name.is_some() || code.oss_object_name.is_some(),
            zip_file: code.zip_file,
            compatible_runtime: self.compatible_runtime,
            description: self.description,
            license: self.license,
        }
    }
}

/// The `{version}` path segment.
pub(crate) fn version_param(p: &PathParams) -> ApiResult<u64> {
    let raw = p.get("version");
    raw.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError(FcError::invalid(format!(
            "layer version '{raw}' is not a positive integer"
        )))
    })
}

/// The download URL of a version's zip, on the host the caller reached.
pub(crate) fn code_location(control: &Control, headers: &HeaderMap, v: &LayerVersion) -> String {
    let host = header_str(headers, "host").unwrap_or("127.0.0.1");
    format!("http://{host}{}", control.layer_code_path(v))
}

fn view(control: &Control, account: &str, headers: &HeaderMap, v: &LayerVersion) -> Value {
    let arn = control.layer_arn(account, v);
    json!({
        "layerName": v.layer_name,
        "version": v.version,
        "description": v.description,
        "license": v.license,
        "compatibleRuntime": v.compatible_runtime,
        "code": {"location": code_location(control, headers, v), "repositoryType": "OSS"},
        "codeChecksum": v.code_checksum,
        "codeSize": v.code_size,
        // CreateLayerVersion's response model spells it `codesize`.
        "codesize": v.code_size,
        "createTime": v.create_time,
        "acl": v.acl,
        "arn": arn,
        "arnV2": arn,
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

/// The `startVersion` query parameter.
pub(crate) fn start_version(q: &QueryParams) -> ApiResult<Option<u64>> {
    match q.string("startVersion").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError(FcError::invalid(format!(
                "startVersion '{v}' is not a valid number"
            )))
        }),
    }
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

/// ListLayers' `public` and `official` (booleans as either SDK spells them).
pub(crate) fn layer_filter(q: &QueryParams) -> ApiResult<LayerFilter> {
    Ok(LayerFilter {
        public: q.query_bool("public")?.unwrap_or(false),
        official: q.query_bool("official")?.unwrap_or(false),
    })
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

pub(super) async fn put_acl(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let public = q
        .query_bool("public")?
        .ok_or_else(|| ApiError(FcError::invalid("the query parameter public is required")))?;
    s.control
        .put_layer_acl(&c.account_id, p.get("layer"), public)
        .await?;
    Ok(StatusCode::OK.into_response())
}
