//! FC 3.0 async invoke configs: Put/Get/DeleteAsyncInvokeConfig (per function and
//! `?qualifier=`) and the account-wide ListAsyncInvokeConfigs, over the 2.0 configs of
//! (service, qualifier, function) that the async engine keeps.
//!
//! Differences from 2.0: `asyncTask` is 2.0's `statefulInvocation`; the config names its
//! function by `functionArn` (no service/function/qualifier); a PUT replaces the whole config
//! (2.0 merges); the listing covers the whole account, native functions and `svc$fn` alike,
//! optionally one function (`functionName`). Destinations may be given in either ARN form
//! (`acs:fc:{region}:{account}:functions/{name}` or 2.0's `…:services/{s}.{q}/functions/{f}`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use fcd_control::asynchronous::{AsyncConfigUpdate, DestinationConfig};
use fcd_core::FcError;
use fcd_core::fc3::{Fc3Function, rephrase};
use fcd_queue::AsyncConfig;

use super::super::{Ctx, PathParams, QueryParams, json_body, json_response, page_response};
use super::{qualifier, rephrased};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// PutAsyncInvokeConfigInput.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutInput {
    async_task: Option<bool>,
    destination_config: Option<DestinationConfig>,
    max_async_event_age_in_seconds: Option<u64>,
    max_async_retry_attempts: Option<u32>,
}

/// FC 3.0's `AsyncConfig`.
pub(super) fn config_json(region: &str, account: &str, c: &AsyncConfig) -> Value {
    let f = Fc3Function::from_stored(&c.service, &c.function);
    let mut v = json!({
        "asyncTask": c.stateful_invocation,
        "maxAsyncEventAgeInSeconds": c.max_async_event_age_in_seconds,
        "maxAsyncRetryAttempts": c.max_async_retry_attempts,
        "functionArn": f.arn(region, account),
        "qualifier": c.qualifier,
        "createdTime": c.created_time,
        "lastModifiedTime": c.last_modified_time,
    });
    if let Some(d) = &c.destination_config {
        v["destinationConfig"] = d.clone();
    }
    v
}

/// The 200 answer carrying one config.
fn config_response(s: &AppState, account: &str, cfg: &AsyncConfig) -> Response {
    let body = config_json(s.control.region(), account, cfg);
    json_response(StatusCode::OK, &body, None)
}

/// A missing config, worded for a function.
fn not_exists(f: &Fc3Function, qualifier: Option<&str>) -> FcError {
    FcError::Fc3Message {
        code: "AsyncConfigNotExists",
        status: 404,
        message: format!(
            "async invoke config of function '{}' (qualifier {}) does not exist",
            f.name(),
            qualifier.unwrap_or("LATEST")
        ),
    }
}

fn fc3_error(e: FcError, f: &Fc3Function, qualifier: Option<&str>) -> ApiError {
    match e {
        FcError::AsyncConfigNotExists { .. } => ApiError(not_exists(f, qualifier)),
        e => ApiError(rephrase(e, f)),
    }
}

pub(super) async fn put(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    body: Bytes,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let input: PutInput = json_body(&body)?;
    let qualifier = qualifier(&q);
    let u = AsyncConfigUpdate {
        max_async_event_age_in_seconds: input.max_async_event_age_in_seconds,
        max_async_retry_attempts: input.max_async_retry_attempts,
        stateful_invocation: input.async_task,
        destination_config: input.destination_config,
    };
    let cfg = s
        .asynchronous
        .replace_config(
            &c.account_id,
            &f.service(),
            f.function(),
            qualifier.as_deref(),
            u,
        )
        .await
        .map_err(|e| fc3_error(e, &f, qualifier.as_deref()))?;
    Ok(config_response(&s, &c.account_id, &cfg))
}

pub(super) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let qualifier = qualifier(&q);
    let cfg = s
        .asynchronous
        .get_config(
            &c.account_id,
            &f.service(),
            f.function(),
            qualifier.as_deref(),
        )
        .await
        .map_err(|e| fc3_error(e, &f, qualifier.as_deref()))?;
    Ok(config_response(&s, &c.account_id, &cfg))
}

pub(super) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let qualifier = qualifier(&q);
    s.asynchronous
        .delete_config(
            &c.account_id,
            &f.service(),
            f.function(),
            qualifier.as_deref(),
        )
        .await
        .map_err(|e| fc3_error(e, &f, qualifier.as_deref()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A ListAsyncInvokeConfigs token: where the next page starts, `{service}#{function}#{qualifier}`
/// (none of the three can hold `#`).
fn config_token(c: &AsyncConfig) -> String {
    format!("{}#{}#{}", c.service, c.function, c.qualifier)
}

fn parse_config_token(t: &str) -> ApiResult<(String, String, String)> {
    let parts: Vec<&str> = t.split('#').collect();
    match parts.as_slice() {
        [s, f, q] => Ok(((*s).to_owned(), (*f).to_owned(), (*q).to_owned())),
        _ => Err(ApiError(FcError::invalid(format!(
            "nextToken '{t}' is invalid"
        )))),
    }
}

pub(super) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let limit = q.limit_up_to_100(20)?;
    let only = q.function_filter()?;
    if let Some(f) = &only {
        // A function that does not exist is FunctionNotFound, not an empty list.
        s.control
            .get_function(&c.account_id, &f.service(), f.function())
            .await
            .map_err(rephrased(f))?;
    }
    let from = q
        .string("nextToken")
        .filter(|t| !t.is_empty())
        .map(|t| parse_config_token(&t))
        .transpose()?;
    let all = s.asynchronous.list_account_configs(&c.account_id).await?;
    // The store's (service, function, qualifier) order is the order of pages.
    let mut page: Vec<&AsyncConfig> = all
        .iter()
        .filter(|cfg| {
            only.as_ref()
                .is_none_or(|f| cfg.service == f.service() && cfg.function == f.function())
        })
        .filter(|cfg| {
            from.as_ref().is_none_or(|(s, f, q)| {
                (
                    cfg.service.as_str(),
                    cfg.function.as_str(),
                    cfg.qualifier.as_str(),
                ) >= (s.as_str(), f.as_str(), q.as_str())
            })
        })
        .take(limit as usize + 1)
        .collect();
    let next = if page.len() > limit as usize {
        page.pop().map(config_token)
    } else {
        None
    };
    let region = s.control.region();
    let configs: Vec<Value> = page
        .into_iter()
        .map(|cfg| config_json(region, &c.account_id, cfg))
        .collect();
    Ok(page_response("configs", configs, next))
}
