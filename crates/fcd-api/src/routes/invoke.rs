//! InvokeFunction, the hot path, for both APIs ([`run`] also serves `v3::invoke`): resolve
//! the function from the in-memory cache, hand the body to the instance manager, and shape
//! FC's response headers.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use bytes::Bytes;

use fcd_core::FcError;
use fcd_runtime::InvokeRequest;

use super::{Ctx, PathParams, QueryParams, header_str, qualified};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The list real FC sends on every invocation response.
pub(crate) const EXPOSE_HEADERS: &str = "Date,x-fc-request-id,x-fc-error-type,x-fc-code-checksum,x-fc-invocation-duration,x-fc-max-memory-usage,x-fc-log-result,x-fc-invocation-code-version";

pub(crate) fn put(headers: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        headers.insert(HeaderName::from_static(name), v);
    }
}

pub(super) async fn invoke(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    run(
        &s,
        &c,
        req,
        &service,
        p.get("function"),
        qualifier.as_deref(),
        Dialect::V2,
    )
    .await
}

/// Which API's headers an invocation speaks; everything else about it is the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// FC 2.0: `X-Fc-Stateful-Async-Invocation-Enable` / `-Id`.
    V2,
    /// FC 3.0: `x-fc-async-task-id` names the async task (a stateful invocation), echoed back
    /// under both names on 202.
    V3,
}

/// InvokeFunction of `function` in `service` as `qualifier` names it, for either API: sync or
/// async, cluster placement (a call may be forwarded to the node its function is warm on),
/// a large body streamed to the instance as it arrives.
pub(crate) async fn run(
    s: &AppState,
    c: &crate::auth::Caller,
    req: axum::extract::Request,
    service: &str,
    function: &str,
    qualifier: Option<&str>,
    dialect: Dialect,
) -> ApiResult<Response> {
    // The request itself rather than a `HeaderMap` extractor, which would copy every header.
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    // A large body the auth layer is streaming (see `auth::STREAM_ABOVE`); else the body it
    // buffered, handed over as one piece.
    let streamed = parts
        .extensions
        .get::<crate::auth::StreamSlot>()
        .and_then(|slot| slot.take());
    let body: Bytes = match streamed {
        Some(_) => Bytes::new(),
        None => axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|_| ApiError(FcError::Internal))?,
    };
    match header_str(headers, "x-fc-invocation-type") {
        None => {}
        Some(t) if t.eq_ignore_ascii_case("sync") => {}
        Some(t) if t.eq_ignore_ascii_case("async") => {
            let (enable, id) = match dialect {
                Dialect::V2 => (
                    header_str(headers, "x-fc-stateful-async-invocation-enable"),
                    header_str(headers, "x-fc-stateful-async-invocation-id"),
                ),
                Dialect::V3 => (
                    None,
                    header_str(headers, "x-fc-async-task-id")
                        .or_else(|| header_str(headers, "x-fc-stateful-async-invocation-id")),
                ),
            };
            let id = s
                .asynchronous
                .accept(
                    &c.account_id,
                    service,
                    function,
                    qualifier,
                    body,
                    &c.request_id,
                    enable,
                    id,
                )
                .await?;
            let mut resp = StatusCode::ACCEPTED.into_response();
            if let Some(id) = id {
                put(resp.headers_mut(), "x-fc-stateful-async-invocation-id", &id);
                if dialect == Dialect::V3 {
                    put(resp.headers_mut(), "x-fc-async-task-id", &id);
                }
            }
            return Ok(resp);
        }
        Some(t) => {
            return Err(ApiError(FcError::invalid(format!(
                "X-Fc-Invocation-Type '{t}' is invalid: use Sync or Async"
            ))));
        }
    }
    let log_tail =
        header_str(headers, "x-fc-log-type").is_some_and(|t| t.eq_ignore_ascii_case("tail"));
    let trace_id = header_str(headers, "x-fc-trace-id").map(str::to_owned);
    tracing::debug!(request_id = %c.request_id, trace_id = ?trace_id, service = %service, function = %function, "invoke");
    // In a cluster: a call whose function is warm on another node (and not here) goes there,
    // as the client sent it. A streamed body (over `STREAM_ABOVE`) always runs here: it is
    // being read as it runs, and moving it costs more than the cold start it would save.
    let forwarded = crate::forward::is_forwarded(headers);
    let spec = match s
        .control
        .place(
            &c.account_id,
            service,
            function,
            qualifier,
            forwarded || streamed.is_some(),
        )
        .await?
    {
        fcd_control::Placement::Here(spec) => spec,
        fcd_control::Placement::There { node_id, url } => {
            match s
                .forwarder
                .forward(&url, &node_id, &parts, body.clone())
                .await?
            {
                crate::forward::Forwarded::Answered(resp) => return Ok(resp),
                // Gone since its last heartbeat: run it here after all.
                crate::forward::Forwarded::Unreachable => {
                    s.control
                        .resolve(&c.account_id, service, function, qualifier)
                        .await?
                }
            }
        }
    };
    let fcd_control::Invoked { spec, outcome } = s
        .control
        .invoke_here(
            spec,
            qualifier,
            InvokeRequest {
                request_id: c.request_id.clone(),
                qualifier: String::new(),
                trace_id,
                body: match streamed {
                    Some(s) => fcd_runtime::Payload::Streamed(s),
                    None => body.into(),
                },
                log_tail,
                retry_count: 0,
                http: None,
            },
        )
        .await?;

    let mut resp = (StatusCode::OK, outcome.body).into_response();
    let h = resp.headers_mut();
    let billed_ms = (outcome.duration.as_secs_f64() * 1000.0).ceil() as u64;
    put(h, "x-fc-code-checksum", &spec.function.code_checksum);
    put(h, "x-fc-invocation-duration", &billed_ms.to_string());
    put(
        h,
        "x-fc-max-memory-usage",
        &format!("{:.2}", outcome.max_memory_mb),
    );
    put(
        h,
        "x-fc-invocation-service-version",
        spec.version_id.as_deref().unwrap_or("LATEST"),
    );
    put(h, "x-fc-instance-id", &outcome.instance_id);
    h.insert(
        HeaderName::from_static("access-control-expose-headers"),
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    match &outcome.error_type {
        Some(kind) => {
            put(h, "x-fc-error-type", kind);
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        None => {
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
        }
    }
    if let Some(log) = &outcome.log_tail {
        put(
            h,
            "x-fc-log-result",
            &base64::engine::general_purpose::STANDARD.encode(log.as_bytes()),
        );
    }
    Ok(resp)
}
