//! CreateLayerVersion, GetLayerVersion, DeleteLayerVersion, ListLayerVersions, ListLayers and
//! PutLayerACL for both APIs, which share one account-level table of layers and differ only in
//! the view (chosen by the request's [`ApiVersion`]): 2.0 (`/2021-04-06`, `/2016-08-15`) renders
//! `acl` an integer and `arn`/`arnV2` both the version's ARN; 3.0 (`/2023-03-30`, which also has
//! GetLayerVersionByArn at `/layerarn/{arn}`) renders `acl` a string (`"0"` private, `"1"`
//! public) and `layerVersionArn`, and its PutLayerACL also takes `acl=0|1`. `code.location` is a
//! download URL on the host the caller reached.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing;
use axum::{Extension, Router};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use fcd_control::{Control, LayerFilter, LayerInput};
use fcd_core::FcError;
use fcd_core::layers::LayerVersion;

use super::{ApiVersion, Ctx, PathParams, QueryParams, header_str, json_body, json_response};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The layer routes both API versions share (3.0 adds `/layerarn/{arn}`, [`get_by_arn`]).
pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/layers", routing::get(list))
        .route(
            "/layers/{layer}/versions",
            routing::get(list_versions).post(create),
        )
        .route(
            "/layers/{layer}/versions/{version}",
            routing::get(get).delete(delete),
        )
        .route("/layers/{layer}/acl", routing::put(put_acl))
}

/// CreateLayerVersion's body. The 2021 SDK sends `Code` (capital C); others `code`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateLayerBody {
    #[serde(alias = "Code")]
    code: Option<LayerCodeBody>,
    #[serde(default)]
    compatible_runtime: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    license: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LayerCodeBody {
    zip_file: Option<String>,
    oss_bucket_name: Option<String>,
    oss_object_name: Option<String>,
}

impl CreateLayerBody {
    fn into_input(self) -> LayerInput {
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
fn version_param(p: &PathParams) -> ApiResult<u64> {
    let raw = p.get("version");
    raw.parse::<u64>().ok().filter(|v| *v > 0).ok_or_else(|| {
        ApiError(FcError::invalid(format!(
            "layer version '{raw}' is not a positive integer"
        )))
    })
}

/// The download URL of a version's zip, on the host the caller reached.
fn code_location(control: &Control, headers: &HeaderMap, v: &LayerVersion) -> String {
    let host = header_str(headers, "host").unwrap_or("127.0.0.1");
    format!("http://{host}{}", control.layer_code_path(v))
}

/// The `startVersion` query parameter.
fn start_version(q: &QueryParams) -> ApiResult<Option<u64>> {
    match q.string("startVersion").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| {
            ApiError(FcError::invalid(format!(
                "startVersion '{v}' is not a valid number"
            )))
        }),
    }
}

/// ListLayers' `public` and `official` (booleans as either SDK spells them).
fn layer_filter(q: &QueryParams) -> ApiResult<LayerFilter> {
    Ok(LayerFilter {
        public: q.query_bool("public")?.unwrap_or(false),
        official: q.query_bool("official")?.unwrap_or(false),
    })
}

/// A layer version in the view of `version`'s API.
fn view(
    control: &Control,
    version: ApiVersion,
    account: &str,
    headers: &HeaderMap,
    v: &LayerVersion,
) -> Value {
    let arn = control.layer_arn(account, v);
    let mut body = json!({
        "layerName": v.layer_name,
        "version": v.version,
        "description": v.description,
        "license": v.license,
        "compatibleRuntime": v.compatible_runtime,
        "code": {"location": code_location(control, headers, v), "repositoryType": "OSS"},
        "codeChecksum": v.code_checksum,
        "codeSize": v.code_size,
        "createTime": v.create_time,
    });
    if version == ApiVersion::V2023 {
        body["acl"] = json!(v.acl.to_string());
        body["layerVersionArn"] = json!(arn);
    } else {
        // 2.0's CreateLayerVersion response model spells it `codesize`.
        body["codesize"] = json!(v.code_size);
        body["acl"] = json!(v.acl);
        body["arn"] = json!(arn);
        body["arnV2"] = json!(arn);
    }
    body
}

/// The 200 answer carrying one layer version.
fn one(
    s: &AppState,
    version: ApiVersion,
    account: &str,
    headers: &HeaderMap,
    v: &LayerVersion,
) -> Response {
    let body = view(&s.control, version, account, headers, v);
    json_response(StatusCode::OK, &body, None)
}

/// The 200 answer carrying a page of layer versions, with `next_key` (`nextVersion` or
/// `nextToken`) set when there is a next page.
fn page(
    s: &AppState,
    version: ApiVersion,
    account: &str,
    headers: &HeaderMap,
    layers: &[LayerVersion],
    next_key: &str,
    next: Option<Value>,
) -> Response {
    let layers: Vec<Value> = layers
        .iter()
        .map(|v| view(&s.control, version, account, headers, v))
        .collect();
    let mut body = json!({ "layers": layers });
    if let Some(next) = next {
        body[next_key] = next;
    }
    json_response(StatusCode::OK, &body, None)
}

pub(super) async fn create(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
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
    Ok(one(&s, version, &c.account_id, &headers, &v))
}

pub(super) async fn get(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v = s
        .control
        .get_layer_version(&c.account_id, p.get("layer"), version_param(&p)?)
        .await?;
    Ok(one(&s, version, &c.account_id, &headers, &v))
}

/// GetLayerVersionByArn (3.0 only): the ARN is one percent-encoded segment, decoded by the
/// router.
pub(super) async fn get_by_arn(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let v = s
        .control
        .get_layer_version_by_arn(&c.account_id, p.get("arn"))
        .await?;
    Ok(one(&s, version, &c.account_id, &headers, &v))
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
    Extension(version): Extension<ApiVersion>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let found = s
        .control
        .list_layer_versions(
            &c.account_id,
            p.get("layer"),
            start_version(&q)?,
            q.u32("limit")?,
        )
        .await?;
    let next = found.next_version.map(|n| json!(n));
    Ok(page(
        &s,
        version,
        &c.account_id,
        &headers,
        &found.layers,
        "nextVersion",
        next,
    ))
}

pub(super) async fn list(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Ctx(c): Ctx,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let found = s
        .control
        .list_layers(&c.account_id, &q.paging()?, &layer_filter(&q)?)
        .await?;
    let next = found.next_token.map(|n| json!(n));
    Ok(page(
        &s,
        version,
        &c.account_id,
        &headers,
        &found.items,
        "nextToken",
        next,
    ))
}

/// PutLayerACL: `public=true|false`; 3.0 (the Node SDK's) may say `acl=0|1` instead.
pub(super) async fn put_acl(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let public = if version == ApiVersion::V2023 {
        match q.string("acl").filter(|a| !a.is_empty()).as_deref() {
            Some("1") => Some(true),
            Some("0") => Some(false),
            Some(other) => {
                return Err(ApiError(FcError::invalid(format!(
                    "acl '{other}' must be \"0\" (private) or \"1\" (public)"
                ))));
            }
            None => q.query_bool("public")?,
        }
        .ok_or_else(|| ApiError(FcError::invalid("the query parameter acl is required")))?
    } else {
        q.query_bool("public")?
            .ok_or_else(|| ApiError(FcError::invalid("the query parameter public is required")))?
    };
    s.control
        .put_layer_acl(&c.account_id, p.get("layer"), public)
        .await?;
    Ok(StatusCode::OK.into_response())
}
