//! Routes of the FC API, one module per resource. Handlers only extract and validate their
//! input, call [`fcd_control::Control`], and shape FC's JSON.
//!
//! Every route answers under both `/2021-04-06` and `/2016-08-15`: the classic SDKs use the
//! older prefix for the same resources with the same JSON.

mod aliases;
mod async_invocations;
mod code;
mod configs;
mod domains;
mod functions;
mod instances;
mod invoke;
mod layers;
mod logs;
mod services;
mod status;
mod tags;
mod triggers;
pub(crate) mod v3;
mod versions;

use std::collections::HashMap;

use axum::Router;
use axum::extract::{FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use fcd_core::FcError;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

pub(crate) fn router(state: AppState) -> Router {
    let api = Router::new()
        .route("/services", get(services::list).post(services::create))
        .route(
            "/services/{service}",
            get(services::get)
                .put(services::update)
                .delete(services::delete),
        )
        .route(
            "/services/{service}/functions",
            get(functions::list).post(functions::create),
        )
        .route(
            "/services/{service}/functions/{function}",
            get(functions::get)
                .put(functions::update)
                .delete(functions::delete),
        )
        .route(
            "/services/{service}/functions/{function}/code",
            get(functions::code),
        )
        .route(
            "/services/{service}/functions/{function}/invocations",
            post(invoke::invoke),
        )
        .route(
            "/services/{service}/versions",
            get(versions::list).post(versions::publish),
        )
        .route(
            "/services/{service}/versions/{version}",
            axum::routing::delete(versions::delete),
        )
        .route(
            "/services/{service}/aliases",
            get(aliases::list).post(aliases::create),
        )
        .route(
            "/services/{service}/aliases/{alias}",
            get(aliases::get)
                .put(aliases::update)
                .delete(aliases::delete),
        )
        .route(
            "/services/{service}/functions/{function}/triggers",
            get(triggers::list).post(triggers::create),
        )
        .route(
            "/services/{service}/functions/{function}/triggers/{trigger}",
            get(triggers::get)
                .put(triggers::update)
                .delete(triggers::delete),
        )
        .route("/custom-domains", get(domains::list).post(domains::create))
        .route(
            "/custom-domains/{domain}",
            get(domains::get)
                .put(domains::update)
                .delete(domains::delete),
        )
        .merge(layers::routes())
        .route(
            "/services/{service}/functions/{function}/on-demand-config",
            put(configs::put_on_demand)
                .get(configs::get_on_demand)
                .delete(configs::delete_on_demand),
        )
        .route("/on-demand-configs", get(configs::list_on_demand))
        .route(
            "/services/{service}/functions/{function}/provision-config",
            put(configs::put_provision).get(configs::get_provision),
        )
        .route(
            "/services/{service}/functions/{function}/async-invoke-config",
            get(async_invocations::get_config)
                .put(async_invocations::put_config)
                .delete(async_invocations::delete_config),
        )
        .route(
            "/services/{service}/functions/{function}/async-invoke-configs",
            get(async_invocations::list_configs),
        )
        .route(
            "/services/{service}/functions/{function}/stateful-async-invocations",
            get(async_invocations::list_invocations),
        )
        .route(
            "/services/{service}/functions/{function}/stateful-async-invocations/{invocation}",
            get(async_invocations::get_invocation).put(async_invocations::stop_invocation),
        )
        .route(
            "/stateful-async-invocation-functions",
            get(async_invocations::stateful_functions),
        )
        .route("/provision-configs", get(configs::list_provision))
        .route(
            "/services/{service}/functions/{function}/instances",
            get(instances::list),
        )
        // fcd's extension: the function's stored log.
        .route(
            "/services/{service}/functions/{function}/logs",
            get(logs::get),
        )
        // The 2021 SDK untags with PUT, the classic SDKs with DELETE.
        .route(
            "/tag",
            post(tags::tag)
                .put(tags::untag)
                .delete(tags::untag)
                .get(tags::get),
        )
        .route("/tags", get(tags::list))
        .route(
            "/services/{service}/bindings",
            get(tags::list_bindings).post(tags::create_binding),
        )
        .route(
            "/services/{service}/bindings/{vpc}",
            delete(tags::delete_binding),
        )
        .route("/account-settings", get(tags::account_settings));
    // Native FC 3.0 functions live in hidden services (`fcd_core::fc3`) that 2.0 never shows.
    let api = api.layer(axum::middleware::from_fn(hide_fc3_services));
    Router::new()
        .nest(
            "/2021-04-06",
            api.clone().layer(axum::Extension(ApiVersion::V2021)),
        )
        .nest("/2016-08-15", api.layer(axum::Extension(ApiVersion::V2016)))
        .nest(
            "/2023-03-30",
            v3::router().layer(axum::Extension(ApiVersion::V2023)),
        )
        .route("/", get(crate::rpc::handle).post(crate::rpc::handle))
        .route("/code-packages/{digest}", get(code::download))
        .route("/status", get(status::status))
        .merge(crate::console::routes())
        // The auth layer already enforced FC's size limits while buffering the body.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .fallback(unsupported)
        .method_not_allowed_fallback(unsupported)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::layer,
        ))
        .with_state(state)
}

/// `GET /metrics` alone, for the metrics listener. No auth layer: the listener is opt-in and
/// meant for a private address; the page carries counters, never secrets or tenant data.
pub(crate) fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(status::metrics))
        .with_state(state)
}

async fn unsupported(req: Request) -> ApiError {
    ApiError(FcError::PathNotSupported {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
    })
}

/// A 2.0 path naming a hidden service (a native FC 3.0 function's home) answers
/// `ServiceNotFound`, exactly as for a service that does not exist.
async fn hide_fc3_services(req: Request, next: axum::middleware::Next) -> Response {
    let segment = req
        .uri()
        .path()
        .split('/')
        .skip_while(|s| *s != "services")
        .nth(1)
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        });
    match segment {
        Some(name) if fcd_core::fc3::is_hidden_service(&name) => {
            ApiError(FcError::ServiceNotFound(name)).into_response()
        }
        _ => next.run(req).await,
    }
}

/// The API version of the request's path prefix, for the few shapes that differ between them
/// (a request extension set by the router).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ApiVersion {
    /// `/2021-04-06`: the alibabacloud-fc-open20210406 SDK.
    V2021,
    /// `/2016-08-15`: the classic SDKs (aliyun-fc2, fc-go-sdk, @alicloud/fc2).
    V2016,
    /// `/2023-03-30`: FC 3.0 (alibabacloud-fc20230330, @alicloud/fc20230330).
    V2023,
}

/// The authenticated caller; present on every request past [`crate::auth::layer`].
pub(crate) struct Ctx(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .map(Ctx)
            .ok_or(ApiError(FcError::Internal))
    }
}

/// Path parameters, percent-decoded by axum; a segment that does not decode is FC's
/// `InvalidArgument` rather than axum's plain-text rejection.
pub(crate) struct PathParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map(|p| PathParams(p.0))
            .map_err(|e| ApiError(FcError::invalid(format!("invalid path: {e}"))))
    }
}

impl PathParams {
    pub(crate) fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }

    /// The service segment of an operation that takes no qualifier (writes, and reads of
    /// unversioned resources): `svc.prod` there is an error, not a quiet write to LATEST.
    pub(crate) fn unqualified_service(&self) -> ApiResult<String> {
        match self.service() {
            (name, None) => Ok(name),
            (name, Some(q)) => Err(ApiError(FcError::invalid(format!(
                "this operation does not take a qualifier: use service '{name}' instead of '{name}.{q}'"
            )))),
        }
    }

    /// The service segment, split into name and qualifier (`svc.prod` in 2016-08-15 paths).
    pub(crate) fn service(&self) -> (String, Option<String>) {
        let raw = self.get("service");
        match raw.split_once('.') {
            Some((name, q)) => (name.to_owned(), Some(q.to_owned())),
            None => (raw.to_owned(), None),
        }
    }
}

/// The query string, form-decoded (the SDKs send `+` for spaces).
pub(crate) struct QueryParams(pub HashMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        Ok(QueryParams(
            form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
        ))
    }
}

impl QueryParams {
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    pub(crate) fn u32(&self, name: &str) -> ApiResult<Option<u32>> {
        match self.0.get(name) {
            None => Ok(None),
            Some(v) if v.is_empty() => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                ApiError(FcError::invalid(format!(
                    "{name} '{v}' is not a valid number"
                )))
            }),
        }
    }

    /// `limit` where it must lie between 1 and 100 (`default` when absent).
    pub(crate) fn limit_up_to_100(&self, default: u32) -> ApiResult<u32> {
        let limit = self.u32("limit")?.unwrap_or(default);
        if limit == 0 || limit > 100 {
            return Err(ApiError(FcError::invalid(format!(
                "limit {limit} is out of range: it must be between 1 and 100"
            ))));
        }
        Ok(limit)
    }

    pub(crate) fn paging(&self) -> ApiResult<fcd_control::Paging> {
        Ok(fcd_control::Paging {
            prefix: self.string("prefix"),
            start_key: self.string("startKey"),
            next_token: self.string("nextToken"),
            limit: self.u32("limit")?,
        })
    }
}

/// A 200 list answer: `{key: items}`, with `nextToken` when there is a next page.
pub(crate) fn page_response(
    key: &str,
    items: impl serde::Serialize,
    next_token: Option<String>,
) -> Response {
    let mut body = serde_json::json!({ key: items });
    if let Some(t) = next_token {
        body["nextToken"] = t.into();
    }
    json_response(StatusCode::OK, &body, None)
}

/// Parses a JSON request body into `T`, with FC's error for anything malformed.
pub(crate) fn json_body<T: DeserializeOwned + Default>(body: &Bytes) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError(FcError::invalid(format!(
            "the request body is not valid: {e}"
        )))
    })
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The service named in the path and the qualifier of the request: `svc.q` in 2016-08-15
/// paths, else `?qualifier=`.
pub(crate) fn qualified(p: &PathParams, q: &QueryParams) -> (String, Option<String>) {
    let (service, path_q) = p.service();
    let qualifier = path_q
        .or_else(|| q.string("qualifier"))
        .filter(|q| !q.is_empty());
    (service, qualifier)
}

/// A JSON response with FC's content type and the resource's ETag.
pub(crate) fn json_response(
    status: StatusCode,
    value: &impl serde::Serialize,
    etag: Option<&str>,
) -> Response {
    let body = match serde_json::to_vec(value) {
        Ok(b) => b,
        Err(_) => return ApiError(FcError::Internal).into_response(),
    };
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Some(etag) = etag.and_then(|e| HeaderValue::from_str(e).ok()) {
        resp.headers_mut().insert(header::ETAG, etag);
    }
    resp
}
