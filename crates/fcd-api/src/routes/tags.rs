//! FC 2.0's tags (TagResource, UntagResource, GetResourceTags, ListTaggedResources), VPC
//! bindings (CreateVpcBinding, DeleteVpcBinding, ListVpcBindings) and GetAccountSettings.
//!
//! 2.0 tags services only: a `resourceArn` is `acs:fc:{region}:{account}:services/{name}`
//! (a function ARN is FC 3.0's, answered through `/tags-v2`). What fcd does with each is in
//! `fcd_control`'s `tags` module: tags and bindings are recorded and listed, not acted on.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use fcd_core::FcError;
use fcd_core::tags::Tagged;
use fcd_store::tags::{TagKind, TaggedResource};

use super::{Ctx, PathParams, QueryParams, json_body, json_response, page_response};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The body of TagResource.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TagBody {
    resource_arn: Option<String>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// The body of UntagResource.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UntagBody {
    resource_arn: Option<String>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    tag_keys: Vec<String>,
}

/// The body of CreateVpcBinding.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VpcBindingBody {
    vpc_id: Option<String>,
}

/// The `resourceArn` of a 2.0 tag request: required, and a service's; answered in its full
/// form (a partial `services/<name>` is accepted).
fn service_arn(s: &AppState, account: &str, arn: Option<String>) -> ApiResult<String> {
    let arn = arn
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError(FcError::invalid("resourceArn is required")))?;
    match Tagged::parse_arn(&arn, s.control.region(), account)? {
        t @ Tagged::Service(_) => Ok(t.arn(s.control.region(), account)),
        Tagged::Function(_) => Err(ApiError(FcError::invalid(format!(
            "resourceArn '{arn}' names a function: FC 2.0 tags services (acs:fc:<region>:<account>:services/<serviceName>); function tags are FC 3.0's /tags-v2"
        )))),
    }
}

/// FC's `Resource`: `{resourceArn, tags}`.
fn resource_json(arn: &str, tags: &[(String, String)]) -> Value {
    let tags: serde_json::Map<String, Value> = tags
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    json!({ "resourceArn": arn, "tags": tags })
}

pub(super) async fn tag(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    body: Bytes,
) -> ApiResult<Response> {
    let b: TagBody = json_body(&body)?;
    let arn = service_arn(&s, &c.account_id, b.resource_arn)?;
    let tags: Vec<(String, String)> = b.tags.into_iter().collect();
    if tags.is_empty() {
        return Err(ApiError(FcError::invalid(
            "tags is required: give at least one tag",
        )));
    }
    s.control
        .tag_resources(&c.account_id, &[arn], &tags)
        .await?;
    Ok(request_id_body(&c.request_id))
}

/// What Tag/UntagResource answer: the 2021 SDK reads no body, the classic SDKs parse one as
/// JSON (their docs show `{"requestId"}`).
fn request_id_body(request_id: &str) -> Response {
    json_response(StatusCode::OK, &json!({ "requestId": request_id }), None)
}

/// UntagResource: `PUT /tag` from the 2021 SDK, `DELETE /tag` from the classic ones.
pub(super) async fn untag(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    body: Bytes,
) -> ApiResult<Response> {
    let b: UntagBody = json_body(&body)?;
    let arn = service_arn(&s, &c.account_id, b.resource_arn)?;
    let keys = (!b.all).then_some(b.tag_keys.as_slice());
    s.control
        .untag_resources(&c.account_id, &[arn], keys)
        .await?;
    Ok(request_id_body(&c.request_id))
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let arn = service_arn(&s, &c.account_id, q.string("resourceArn"))?;
    let tags = s.control.resource_tags(&c.account_id, &arn).await?;
    Ok(json_response(
        StatusCode::OK,
        &resource_json(&arn, &tags),
        None,
    ))
}

pub(super) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let page = s
        .control
        .list_tagged_resources(
            &c.account_id,
            TagKind::Services,
            q.string("nextToken").as_deref(),
            q.u32("limit")?,
        )
        .await?;
    let resources: Vec<Value> = page
        .items
        .iter()
        .map(|r: &TaggedResource| resource_json(&r.arn, &r.tags))
        .collect();
    Ok(page_response("resources", resources, page.next_token))
}

pub(super) async fn create_binding(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let b: VpcBindingBody = json_body(&body)?;
    let service = p.unqualified_service()?;
    let vpc_id = b
        .vpc_id
        .ok_or_else(|| ApiError(FcError::invalid("vpcId is required")))?;
    s.control
        .create_vpc_binding(&c.account_id, &service, &vpc_id)
        .await?;
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn delete_binding(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    s.control
        .delete_vpc_binding(&c.account_id, &service, p.get("vpc"))
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_bindings(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    let ids = s.control.list_vpc_bindings(&c.account_id, &service).await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "vpcIds": ids }),
        None,
    ))
}

/// GetAccountSettings: `availableAZs` is this server's region (fcd has no zones); there is no
/// `defaultRole` (see `fcd_control::AccountSettings`).
pub(super) async fn account_settings(
    State(s): State<AppState>,
    Ctx(c): Ctx,
) -> ApiResult<Response> {
    let a = s.control.account_settings(&c.account_id);
    let mut body = json!({ "availableAZs": a.available_azs });
    if let Some(role) = a.default_role {
        body["defaultRole"] = role.into();
    }
    Ok(json_response(StatusCode::OK, &body, None))
}
