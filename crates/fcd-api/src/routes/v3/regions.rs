//! FC 3.0 DescribeRegions, `GET /regions`: the one region this fcd serves.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::super::json_response;
use crate::AppState;
use crate::error::ApiResult;

pub(in crate::routes) async fn describe(State(s): State<AppState>) -> ApiResult<Response> {
    let region = s.control.region();
    let body = json!({
        "Regions": { "Region": [ { "RegionId": region, "LocalName": region } ] }
    });
    Ok(json_response(StatusCode::OK, &body, None))
}
