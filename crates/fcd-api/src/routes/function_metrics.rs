//! `GET /{version}/services/{s}/functions/{f}/metrics`: fcd's own extension (not an FC
//! operation), the last hour of a function's invocations on this node, one point a minute —
//! what the console draws its charts from ([`fcd_runtime::history`]). Signed and authorized like
//! every FC call: `fc:GetFunction` on the function's ARN.
//!
//! ```json
//! {"periodSeconds": 60,
//!  "points": [{"time": "2026-12-01T10:01:00Z", "invocations": 3, "errors": 1,
//!              "coldStarts": 1, "p50Ms": 1.2, "p99Ms": 20.5}, …]}
//! ```
//!
//! Always 60 points, oldest first, the current (partial) minute last; `time` is the minute's
//! start (UTC); a minute without calls has zeros and `null` percentiles. The numbers are the
//! function's, every version and alias together, so the operation takes no qualifier (`svc.q`
//! or `?qualifier=` is `InvalidArgument`). A function that does not exist is GetFunction's
//! 404. In a cluster the answer is the node's own: the calls that ran on the node the request
//! reached (nothing is gathered from other nodes).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use fcd_core::FcError;
use fcd_runtime::history::Point;
use serde_json::json;

use super::{Ctx, PathParams, QueryParams, json_response};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// A minute's start as RFC 3339 (`2026-12-01T10:01:00Z`).
fn minute_rfc3339(unix_secs: u64) -> String {
    i64::try_from(unix_secs)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn point_json(p: &Point) -> serde_json::Value {
    json!({
        "time": minute_rfc3339(p.minute_start),
        "invocations": p.invocations,
        "errors": p.errors,
        "coldStarts": p.cold_starts,
        "p50Ms": p.p50_ms,
        "p99Ms": p.p99_ms,
    })
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    if q.string("qualifier").is_some_and(|v| !v.is_empty()) {
        return Err(ApiError(FcError::invalid(
            "this operation does not take a qualifier: its numbers are the function's, every version and alias together",
        )));
    }
    let function = p.get("function");
    // GetFunction's 404s for what does not exist, not an empty history.
    s.control
        .get_function(&c.account_id, &service, function)
        .await?;
    let points: Vec<_> = s
        .control
        .runtime()
        .function_history(&c.account_id, &service, function)
        .iter()
        .map(point_json)
        .collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({ "periodSeconds": 60, "points": points }),
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_fc_shaped() {
        let v = point_json(&Point {
            minute_start: 1_796_119_260,
            invocations: 3,
            errors: 1,
            cold_starts: 1,
            p50_ms: Some(1.25),
            p99_ms: None,
        });
        assert_eq!(
            v,
            json!({"time": "2026-12-01T10:01:00Z", "invocations": 3, "errors": 1,
                   "coldStarts": 1, "p50Ms": 1.25, "p99Ms": null})
        );
    }
}
