//! FC 3.0 function versions: PublishFunctionVersion, ListFunctionVersions,
//! DeleteFunctionVersion — the service versions of the function's hidden service `~F`.
//!
//! A 2.0 function `svc$fn` shows its service's versions, but publishing or deleting one is
//! refused: a 2.0 service version snapshots every function of the service, which a write
//! through one function's 3.0 name must not do behind the other functions' backs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use fcd_core::FcError;
use fcd_core::fc3::Fc3Function;

use super::super::{Ctx, PathParams, QueryParams, json_body, json_response};
use super::{rephrased, resolve};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// Refuses a write through `svc$fn` that would change the 2.0 service (`what` it would do).
pub(super) fn native_only(f: &Fc3Function, what: &str) -> ApiResult<()> {
    if f.is_native() {
        return Ok(());
    }
    Err(ApiError(FcError::invalid(format!(
        "function '{}' is an FC 2.0 function: its versions and aliases are those of service '{}', shared by all its functions; {what} through the 2.0 API",
        f.name(),
        f.service()
    ))))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublishBody {
    description: Option<String>,
}

pub(in crate::routes) async fn publish(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    native_only(&f, "publish a version (PublishServiceVersion)")?;
    let b: PublishBody = json_body(&body)?;
    resolve(&s, &c.account_id, &f).await?;
    let v = s
        .control
        .publish_version(
            &c.account_id,
            &f.service(),
            b.description.as_deref().unwrap_or(""),
            None,
        )
        .await
        .map_err(rephrased(&f))?;
    Ok(json_response(StatusCode::OK, &v, None))
}

pub(in crate::routes) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    resolve(&s, &c.account_id, &f).await?;
    let page = s
        .control
        .list_versions(
            &c.account_id,
            &f.service(),
            q.string("direction").filter(|d| !d.is_empty()).as_deref(),
            None,
            q.string("nextToken").as_deref(),
            q.u32("limit")?,
        )
        .await
        .map_err(rephrased(&f))?;
    let mut body = json!({ "versions": page.versions, "direction": page.direction });
    if let Some(t) = page.next_token {
        body["nextToken"] = t.into();
    }
    Ok(json_response(StatusCode::OK, &body, None))
}

pub(in crate::routes) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    native_only(&f, "delete a version (DeleteServiceVersion)")?;
    let version = p.get("version");
    s.control
        .delete_version(&c.account_id, &f.service(), version)
        .await
        .map_err(rephrased(&f))?;
    s.asynchronous
        .forget_configs(&c.account_id, &f.service(), None, Some(version))
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
