//! FC 3.0 async tasks: GetAsyncTask, ListAsyncTasks, StopAsyncTask — 2.0's stateful async
//! invocations of (service, function) under other names: `taskId`, `taskPayload`,
//! `taskErrorMessage` and `functionArn` for `invocationId`, `invocationPayload`,
//! `invocationErrorMessage` and `serviceName`+`functionName`; the list is `tasks` and its
//! id-prefix filter `prefix`; the stop path ends in `/stop`. An InvokeFunction with
//! `x-fc-async-task-id` starts one (its id is the stateful invocation id).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use fcd_core::FcError;
use fcd_core::fc3::{Fc3Function, rephrase};
use fcd_queue::ListFilter;

use super::super::async_invocations::{after_id, status_filter};
use super::super::{Ctx, PathParams, QueryParams, json_response, page_response};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// A 2.0 `StatefulAsyncInvocation` as FC 3.0's `AsyncTask`.
fn task_json(region: &str, account: &str, inv: Value) -> Value {
    let Value::Object(m) = inv else {
        return inv;
    };
    let mut out = Map::new();
    let mut service = None;
    let mut function = None;
    for (k, v) in m {
        match k.as_str() {
            "serviceName" => service = v.as_str().map(str::to_owned),
            "functionName" => function = v.as_str().map(str::to_owned),
            "invocationId" => {
                out.insert("taskId".into(), v);
            }
            "invocationPayload" => {
                out.insert("taskPayload".into(), v);
            }
            "invocationErrorMessage" => {
                out.insert("taskErrorMessage".into(), v);
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
    if let (Some(s), Some(f)) = (service, function) {
        out.insert(
            "functionArn".into(),
            Fc3Function::from_stored(&s, &f).arn(region, account).into(),
        );
    }
    Value::Object(out)
}

/// 2.0's errors about invocations, worded for 3.0's tasks and functions.
fn fc3_error(e: FcError, f: &Fc3Function) -> ApiError {
    match e {
        FcError::AsyncInvocationStopped { id, .. } => ApiError(FcError::Fc3Message {
            code: "AsyncInvocationStopped",
            status: 412,
            message: format!(
                "the async task '{id}' of function '{}' has been stopped",
                f.name()
            ),
        }),
        FcError::StatefulAsyncInvocationNotFound(id) => ApiError(FcError::Fc3Message {
            code: "StatefulAsyncInvocationNotFound",
            status: 404,
            message: format!(
                "async task '{id}' of function '{}' does not exist",
                f.name()
            ),
        }),
        e => ApiError(rephrase(e, f)),
    }
}

/// The task must belong to the qualifier asked about, when one is given.
fn check_qualifier(task: &Value, q: &QueryParams, f: &Fc3Function, id: &str) -> ApiResult<()> {
    match q.string("qualifier").filter(|q| !q.is_empty()) {
        Some(want) if task.get("qualifier").and_then(Value::as_str) != Some(want.as_str()) => Err(
            fc3_error(FcError::StatefulAsyncInvocationNotFound(id.to_owned()), f),
        ),
        _ => Ok(()),
    }
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let id = p.get("task");
    let inv = s
        .asynchronous
        .get(&c.account_id, &f.service(), f.function(), id)
        .await
        .map_err(|e| fc3_error(e, &f))?;
    check_qualifier(&inv, &q, &f, id)?;
    Ok(json_response(
        StatusCode::OK,
        &task_json(s.control.region(), &c.account_id, inv),
        None,
    ))
}

/// A time in epoch milliseconds (non-negative, within what the store holds).
fn millis(q: &QueryParams, name: &str) -> ApiResult<Option<u64>> {
    match q.string(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError(FcError::invalid(format!(
                    "{name} '{v}' is not a time in milliseconds"
                )))
            }),
    }
}

pub(super) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let limit = q.limit_up_to_100(20)?;
    let status = status_filter(&q)?;
    let descending = match q.string("sortOrderByTime").as_deref() {
        None | Some("") => true,
        Some(o) if o.eq_ignore_ascii_case("desc") => true,
        Some(o) if o.eq_ignore_ascii_case("asc") => false,
        Some(o) => {
            return Err(ApiError(FcError::invalid(format!(
                "sortOrderByTime '{o}' is invalid: use asc or desc"
            ))));
        }
    };
    let after_id = after_id(&q)?;
    let filter = ListFilter {
        qualifier: q.string("qualifier").filter(|v| !v.is_empty()),
        status,
        invocation_id_prefix: q.string("prefix").filter(|v| !v.is_empty()),
        started_time_begin: millis(&q, "startedTimeBegin")?,
        started_time_end: millis(&q, "startedTimeEnd")?,
        descending,
        after_id,
        limit,
    };
    let include_payload = q.query_bool("includePayload")?.unwrap_or(false);
    let (invocations, next) = s
        .asynchronous
        .list(
            &c.account_id,
            &f.service(),
            f.function(),
            filter,
            include_payload,
        )
        .await
        .map_err(|e| fc3_error(e, &f))?;
    let region = s.control.region();
    let tasks: Vec<Value> = invocations
        .into_iter()
        .map(|inv| task_json(region, &c.account_id, inv))
        .collect();
    Ok(page_response("tasks", tasks, next))
}

pub(super) async fn stop(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let id = p.get("task");
    if q.string("qualifier").is_some_and(|q| !q.is_empty()) {
        let inv = s
            .asynchronous
            .get(&c.account_id, &f.service(), f.function(), id)
            .await
            .map_err(|e| fc3_error(e, &f))?;
        check_qualifier(&inv, &q, &f, id)?;
    }
    s.asynchronous
        .stop(&c.account_id, &f.service(), f.function(), id)
        .await
        .map_err(|e| fc3_error(e, &f))?;
    Ok(StatusCode::OK.into_response())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn invocations_are_renamed_to_tasks() {
        let inv = json!({
            "invocationId": "t1",
            "serviceName": "~f",
            "functionName": "f",
            "qualifier": "LATEST",
            "invocationPayload": "p",
            "invocationErrorMessage": "boom",
            "status": "Failed",
            "events": [{"eventId": 1, "status": "Enqueued", "timestamp": 1}],
        });
        let t = task_json("cn-hangzhou", "123", inv);
        assert_eq!(t["taskId"], "t1");
        assert_eq!(t["taskPayload"], "p");
        assert_eq!(t["taskErrorMessage"], "boom");
        assert_eq!(t["functionArn"], "acs:fc:cn-hangzhou:123:functions/f");
        assert_eq!(t["events"][0]["status"], "Enqueued");
        for gone in [
            "invocationId",
            "serviceName",
            "functionName",
            "invocationPayload",
        ] {
            assert!(t.get(gone).is_none(), "{gone}");
        }
        let v2 = task_json(
            "r",
            "1",
            json!({"invocationId": "x", "serviceName": "s", "functionName": "g"}),
        );
        assert_eq!(v2["functionArn"], "acs:fc:r:1:functions/s$g");
    }
}
