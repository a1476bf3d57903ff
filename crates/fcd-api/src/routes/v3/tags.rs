//! FC 3.0's tags, `/tags-v2`: TagResources (`POST`, body `{ResourceId, ResourceType, Tag}`),
//! UntagResources (`DELETE`, query `ResourceId`, `ResourceType`, `TagKey`, `All`) and
//! ListTagResources (`GET`, query `ResourceType`, `ResourceId`, `Tag`, `Limit`, `NextToken`).
//!
//! 3.0 tags functions: a `ResourceId` is `acs:fc:{region}:{account}:functions/{name}`, `name`
//! being a native function `F` or a 2.0 function `svc$fn`. The tags are the same rows 2.0
//! tags live in (`fcd_control`'s `tags` module); 2.0's service tags are not 3.0 resources.
//! ListTagResources pages by resource (each page holds every tag of at most `Limit`
//! resources, one row per tag); `Tag` keeps the resources that carry every given key (with
//! the given value, when one is given).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use fcd_core::FcError;
use fcd_core::fc3::Fc3Function;
use fcd_core::tags::Tagged;
use fcd_store::tags::{TagKind, TaggedResource};

use super::super::{Ctx, QueryParams, json_body, json_response};
use super::rephrased;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The resource type 3.0 answers with; `function` is accepted as its short form.
const FUNCTION_TYPE: &str = "ALIYUN::FC::FUNCTION";

/// A tag as 3.0 writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: Option<String>,
    value: Option<String>,
}

/// The body of TagResources.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResourcesInput {
    #[serde(default)]
    resource_id: Vec<String>,
    resource_type: Option<String>,
    #[serde(default)]
    tag: Vec<Tag>,
}

/// `ResourceType`: 3.0 tags functions only. Required by ListTagResources, optional elsewhere.
fn check_type(t: Option<&str>, required: bool) -> ApiResult<()> {
    match t.map(str::trim).filter(|t| !t.is_empty()) {
        None if required => Err(ApiError(FcError::invalid("ResourceType is required"))),
        None => Ok(()),
        Some(t) if t.eq_ignore_ascii_case("function") || t.eq_ignore_ascii_case(FUNCTION_TYPE) => {
            Ok(())
        }
        Some(t) => Err(ApiError(FcError::invalid(format!(
            "ResourceType '{t}' is not supported: FC 3.0 tags functions ('function' or '{FUNCTION_TYPE}')"
        )))),
    }
}

/// Each `ResourceId` as a function that exists (3.0's `FunctionNotFound` otherwise).
async fn functions(s: &AppState, account: &str, arns: &[String]) -> ApiResult<Vec<String>> {
    if arns.is_empty() {
        return Err(ApiError(FcError::invalid("ResourceId is required")));
    }
    let mut out = Vec::with_capacity(arns.len());
    for arn in arns {
        let f: Fc3Function = match Tagged::parse_arn(arn, s.control.region(), account)? {
            Tagged::Function(f) => f,
            Tagged::Service(_) => {
                return Err(ApiError(FcError::invalid(format!(
                    "ResourceId '{arn}' is not a function: FC 3.0 tags acs:fc:<region>:<account>:functions/<functionName>"
                ))));
            }
        };
        s.control
            .get_function(account, &f.service(), f.function())
            .await
            .map_err(rephrased(&f))?;
        out.push(arn.clone());
    }
    Ok(out)
}

fn rows(r: &TaggedResource) -> impl Iterator<Item = Value> + '_ {
    r.tags.iter().map(|(k, v)| {
        json!({
            "ResourceId": r.arn,
            "ResourceType": FUNCTION_TYPE,
            "TagKey": k,
            "TagValue": v,
        })
    })
}

/// Whether the resource carries every tag of the filter.
fn matches(r: &TaggedResource, filter: &[Tag]) -> bool {
    filter.iter().all(|want| {
        r.tags.iter().any(|(k, v)| {
            Some(k) == want.key.as_ref() && want.value.as_ref().is_none_or(|wv| wv == v)
        })
    })
}

pub(crate) async fn tag(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    body: Bytes,
) -> ApiResult<Response> {
    let b: TagResourcesInput = json_body(&body)?;
    check_type(b.resource_type.as_deref(), false)?;
    let tags = b
        .tag
        .into_iter()
        .map(|t| match t.key {
            Some(k) => Ok((k, t.value.unwrap_or_default())),
            None => Err(ApiError(FcError::invalid("every Tag needs a Key"))),
        })
        .collect::<ApiResult<Vec<_>>>()?;
    if tags.is_empty() {
        return Err(ApiError(FcError::invalid("Tag is required")));
    }
    let arns = functions(&s, &c.account_id, &b.resource_id).await?;
    s.control.tag_resources(&c.account_id, &arns, &tags).await?;
    Ok(StatusCode::OK.into_response())
}

pub(crate) async fn untag(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    check_type(q.string("ResourceType").as_deref(), false)?;
    let ids: Vec<String> = q.json_list("ResourceId")?;
    let keys: Vec<String> = q.json_list("TagKey")?;
    let all = q.query_bool("All")?.unwrap_or(false);
    let arns = functions(&s, &c.account_id, &ids).await?;
    let keys = (!all).then_some(keys.as_slice());
    s.control
        .untag_resources(&c.account_id, &arns, keys)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    check_type(q.string("ResourceType").as_deref(), true)?;
    let ids: Vec<String> = q.json_list("ResourceId")?;
    let filter: Vec<Tag> = q.json_list("Tag")?;
    if filter.len() > fcd_core::tags::TAGS_PER_RESOURCE_MAX {
        return Err(ApiError(FcError::invalid(format!(
            "Tag: at most {} tags can be given",
            fcd_core::tags::TAGS_PER_RESOURCE_MAX
        ))));
    }
    if filter
        .iter()
        .any(|t| t.key.as_deref().is_none_or(str::is_empty))
    {
        return Err(ApiError(FcError::invalid("every Tag needs a Key")));
    }
    let (resources, next_token) = if ids.is_empty() {
        let page = s
            .control
            .list_tagged_resources(
                &c.account_id,
                TagKind::Functions,
                q.string("NextToken").as_deref(),
                q.u32("Limit")?,
            )
            .await?;
        (page.items, page.next_token)
    } else {
        // Named resources: all of them, one page.
        let mut out = Vec::new();
        for arn in functions(&s, &c.account_id, &ids).await? {
            let tags = s.control.resource_tags(&c.account_id, &arn).await?;
            out.push(TaggedResource { arn, tags });
        }
        (out, None)
    };
    let tag_resources: Vec<Value> = resources
        .iter()
        .filter(|r| matches(r, &filter))
        .flat_map(rows)
        .collect();
    let mut body = json!({ "TagResources": tag_resources, "RequestId": c.request_id });
    if let Some(t) = next_token {
        body["NextToken"] = t.into();
    }
    Ok(json_response(StatusCode::OK, &body, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_types() {
        assert!(check_type(Some("function"), true).is_ok());
        assert!(check_type(Some("ALIYUN::FC::FUNCTION"), true).is_ok());
        assert!(check_type(None, false).is_ok());
        assert!(check_type(None, true).is_err());
        assert!(check_type(Some("ALIYUN::FC::SERVICE"), false).is_err());
    }

    #[test]
    fn tag_filters_need_every_tag() {
        let r = TaggedResource {
            arn: "a".into(),
            tags: vec![("env".into(), "prod".into()), ("team".into(), "x".into())],
        };
        let t = |k: &str, v: Option<&str>| Tag {
            key: Some(k.into()),
            value: v.map(Into::into),
        };
        assert!(matches(&r, &[]));
        assert!(matches(&r, &[t("env", Some("prod")), t("team", None)]));
        assert!(!matches(&r, &[t("env", Some("dev"))]));
        assert!(!matches(&r, &[t("env", None), t("owner", None)]));
    }
}
