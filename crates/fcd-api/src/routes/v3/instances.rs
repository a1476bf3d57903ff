//! FC 3.0 ListInstances, `GET /functions/{f}/instances`: the function's live instances (2.0's
//! ListInstances underneath), with 3.0's query (`instanceIds`/`instanceStatus` as JSON arrays,
//! `startKey`, `withAllActive`) and shape (`versionId` `"0"` for LATEST).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::super::{Ctx, PathParams, QueryParams, json_response};
use super::{qualifier, rephrased};
use crate::AppState;
use crate::error::ApiResult;

/// Every instance fcd lists is running: stopped ones are gone from its pools.
const RUNNING: &str = "Running";

pub(in crate::routes) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let ids: Vec<String> = q.json_list("instanceIds")?;
    let statuses: Vec<String> = q.json_list("instanceStatus")?;
    // `withAllActive` asks for active instances besides the filtered ones; all of fcd's are.
    q.query_bool("withAllActive")?;
    let qualifier = qualifier(&q);
    let start_key = q.string("startKey").filter(|k| !k.is_empty());
    let limit = q.u32("limit")?;
    let mut instances = s
        .control
        .list_instances(
            &c.account_id,
            &f.service(),
            f.function(),
            qualifier.as_deref(),
            &ids,
            None,
        )
        .await
        .map_err(rephrased(&f))?;
    // `startKey` resumes after an instance id, so the order is by id.
    instances.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
    let wanted_status = statuses.is_empty() || statuses.iter().any(|st| st == RUNNING);
    let out: Vec<_> = instances
        .iter()
        .filter(|_| wanted_status)
        .filter(|i| start_key.as_ref().is_none_or(|k| i.instance_id > *k))
        .take(limit.map_or(usize::MAX, |l| l as usize))
        .map(|i| {
            let version = if i.version_id == "LATEST" {
                "0"
            } else {
                i.version_id.as_str()
            };
            json!({
                "instanceId": i.instance_id,
                "versionId": version,
                "qualifier": qualifier.as_deref().unwrap_or(&i.version_id),
                "status": RUNNING,
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "instances": out, "requestId": c.request_id }),
        None,
    ))
}
