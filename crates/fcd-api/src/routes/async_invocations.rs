//! Async invoke configs (Put/Get/Delete/ListFunctionAsyncInvokeConfig(s)) and stateful async
//! invocations (Get/List/Stop/ListStatefulAsyncInvocationFunctions).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use fcd_core::FcError;
use fcd_queue::{ListFilter, Status};

use super::{Ctx, PathParams, QueryParams, json_body, json_response, page_response, qualified};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use fcd_control::asynchronous::AsyncConfigUpdate;

pub(super) async fn put_config(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    body: Bytes,
) -> ApiResult<Response> {
    let u: AsyncConfigUpdate = json_body(&body)?;
    let (service, qualifier) = qualified(&p, &q);
    let cfg = s
        .asynchronous
        .put_config(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
            u,
        )
        .await?;
    Ok(json_response(StatusCode::OK, &cfg, None))
}

pub(super) async fn get_config(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    let cfg = s
        .asynchronous
        .get_config(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &cfg, None))
}

pub(super) async fn delete_config(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    s.asynchronous
        .delete_config(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_configs(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    let configs = s
        .asynchronous
        .list_configs(&c.account_id, &service, p.get("function"))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &serde_json::json!({ "configs": configs }),
        None,
    ))
}

pub(super) async fn get_invocation(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let (service, _) = p.service();
    let inv = s
        .asynchronous
        .get(
            &c.account_id,
            &service,
            p.get("function"),
            p.get("invocation"),
        )
        .await?;
    Ok(json_response(StatusCode::OK, &inv, None))
}

/// The `status` a listing of stateful invocations (2.0) or async tasks (3.0) is narrowed to.
pub(super) fn status_filter(q: &QueryParams) -> ApiResult<Option<Status>> {
    match q.string("status").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => Status::parse(&v).map(Some).ok_or_else(|| {
            ApiError(FcError::invalid(format!(
                "status '{v}' is not a known status"
            )))
        }),
    }
}

/// The `nextToken` of such a listing: the id of the invocation the next page starts after.
pub(super) fn after_id(q: &QueryParams) -> ApiResult<Option<i64>> {
    match q.string("nextToken").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse()
            .map(Some)
            .map_err(|_| ApiError(FcError::invalid("nextToken is invalid"))),
    }
}

/// A time in milliseconds: a non-negative number the store can hold (at most `i64::MAX`), so
/// it never wraps into a negative bound.
fn u64_param(q: &QueryParams, name: &str) -> ApiResult<Option<u64>> {
    match q.string(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| {
                ApiError(FcError::invalid(format!(
                    "{name} '{v}' is not a number between 0 and {}",
                    i64::MAX
                )))
            }),
    }
}

pub(super) async fn list_invocations(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    let limit = q.limit_up_to_100(50)?;
    let status = status_filter(&q)?;
    let descending = match q.string("sortOrderByTime").as_deref() {
        None | Some("") | Some("desc") => true,
        Some("asc") => false,
        Some(o) => {
            return Err(ApiError(FcError::invalid(format!(
                "sortOrderByTime '{o}' is invalid: use asc or desc"
            ))));
        }
    };
    let after_id = after_id(&q)?;
    let include_payload = q
        .string("includePayload")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let filter = ListFilter {
        qualifier,
        status,
        invocation_id_prefix: q.string("invocationIdPrefix").filter(|v| !v.is_empty()),
        started_time_begin: u64_param(&q, "startedTimeBegin")?,
        started_time_end: u64_param(&q, "startedTimeEnd")?,
        descending,
        after_id,
        limit,
    };
    let (invocations, next) = s
        .asynchronous
        .list(
            &c.account_id,
            &service,
            p.get("function"),
            filter,
            include_payload,
        )
        .await?;
    Ok(page_response("invocations", invocations, next))
}

pub(super) async fn stop_invocation(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let (service, _) = p.service();
    s.asynchronous
        .stop(
            &c.account_id,
            &service,
            p.get("function"),
            p.get("invocation"),
        )
        .await?;
    Ok(StatusCode::OK.into_response())
}

pub(super) async fn stateful_functions(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let limit = q.limit_up_to_100(100)?;
    let limit = limit as usize;
    // A token is an offset this server handed out; anything else (a crafted huge number that
    // would overflow `skip + limit`, text) is refused rather than trusted.
    let skip: usize = match q.string("nextToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .parse::<u32>()
            .map(|n| n as usize)
            .map_err(|_| ApiError(FcError::invalid(format!("nextToken '{t}' is invalid"))))?,
    };
    let all = s.asynchronous.stateful_functions(&c.account_id).await?;
    let page: Vec<_> = all.iter().skip(skip).take(limit).cloned().collect();
    let mut body = serde_json::json!({ "data": page });
    let next = skip.saturating_add(limit);
    if next < all.len() {
        body["nextToken"] = next.to_string().into();
    }
    Ok(json_response(StatusCode::OK, &body, None))
}
