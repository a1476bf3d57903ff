//! FC 3.0's API, `/2023-03-30`: the same listener, authentication and authorization as 2.0,
//! a different view of the same store (`fcd_core::fc3`: a native function `F` is the hidden
//! service `~F`; a 2.0 function is `svc$fn`). One module per resource; each parses the 3.0
//! input, translates it to the service layer's (2.0-shaped) operations, and renders 3.0's
//! JSON (camelCase, RFC 3339 timestamps, ARNs of the form `acs:fc:{region}:{account}:functions/{name}`).
//!
//! Differences from 2.0 on the wire that every handler here relies on:
//! - list-valued query parameters are one JSON array (`instanceIds=["a","b"]`; [`json_list`]),
//!   booleans `True`/`true` ([`query_bool`]);
//! - errors carry `Code`/`Message`/`RequestId` (the superset body `fcd-api::error` renders for
//!   both versions) and never speak of services ([`fcd_core::fc3::rephrase`]);
//! - operations fcd does not provide (sessions, snapshots, scaling configs, resource groups)
//!   answer `NotSupported` rather than `PathNotSupported`, so a client learns it is fcd's choice.
//!
//! What the resource modules share is written here once: `?qualifier=` ([`qualifier`]), the
//! optional `functionName` of a listing, the existence check of a function ([`resolve`]) and
//! errors in 3.0's words ([`rephrased`]); a page of results with its `nextToken` is answered by
//! `routes::page_response`, as in 2.0.

mod aliases;
mod async_configs;
mod async_tasks;
mod configs;
mod domains;
mod functions;
mod instances;
mod invoke;
mod regions;
mod tags;
mod triggers;
mod versions;
mod vpc_bindings;

use axum::Router;
use axum::extract::Request;
use axum::routing::{any, delete, get, post, put};

use fcd_core::FcError;
use fcd_core::fc3::{Fc3Function, rephrase};

use super::{PathParams, QueryParams, layers};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The routes under `/2023-03-30`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/functions", get(functions::list).post(functions::create))
        .route(
            "/functions/{function}",
            get(functions::get)
                .put(functions::update)
                .delete(functions::delete),
        )
        .route("/functions/{function}/code", get(functions::code))
        .route(
            "/functions/{function}/invoke/disable",
            post(functions::disable_invocation),
        )
        .route(
            "/functions/{function}/invoke/enable",
            post(functions::enable_invocation),
        )
        .route("/functions/{function}/invocations", post(invoke::invoke))
        .route(
            "/functions/{function}/versions",
            get(versions::list).post(versions::publish),
        )
        .route(
            "/functions/{function}/versions/{version}",
            axum::routing::delete(versions::delete),
        )
        .route(
            "/functions/{function}/aliases",
            get(aliases::list).post(aliases::create),
        )
        .route(
            "/functions/{function}/aliases/{alias}",
            get(aliases::get)
                .put(aliases::update)
                .delete(aliases::delete),
        )
        .route("/functions/{function}/instances", get(instances::list))
        .route("/regions", get(regions::describe))
        .route(
            "/functions/{function}/async-invoke-config",
            put(async_configs::put)
                .get(async_configs::get)
                .delete(async_configs::delete),
        )
        .route("/async-invoke-configs", get(async_configs::list))
        .route("/functions/{function}/async-tasks", get(async_tasks::list))
        .route(
            "/functions/{function}/async-tasks/{task}",
            get(async_tasks::get),
        )
        .route(
            "/functions/{function}/async-tasks/{task}/stop",
            put(async_tasks::stop),
        )
        .route(
            "/functions/{function}/provision-config",
            put(configs::put_provision)
                .get(configs::get_provision)
                .delete(configs::delete_provision),
        )
        .route("/provision-configs", get(configs::list_provision))
        .route(
            "/functions/{function}/concurrency",
            put(configs::put_concurrency)
                .get(configs::get_concurrency)
                .delete(configs::delete_concurrency),
        )
        .route("/concurrency-configs", get(configs::list_concurrency))
        .route(
            "/functions/{function}/triggers",
            get(triggers::list).post(triggers::create),
        )
        .route(
            "/functions/{function}/triggers/{trigger}",
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
        .route("/functions/{function}/sessions", any(not_supported))
        .route("/functions/{function}/sessions/{*rest}", any(not_supported))
        .route("/functions/{function}/snapshots", any(not_supported))
        .route(
            "/functions/{function}/snapshots/{*rest}",
            any(not_supported),
        )
        .route("/snapshots", any(not_supported))
        .route("/functions/{function}/scaling-config", any(not_supported))
        .route("/scaling-configs", any(not_supported))
        .route("/resource-groups", any(not_supported))
        .route(
            "/tags-v2",
            get(tags::list).post(tags::tag).delete(tags::untag),
        )
        .route(
            "/functions/{function}/vpc-bindings",
            get(vpc_bindings::list).post(vpc_bindings::create),
        )
        .route(
            "/functions/{function}/vpc-bindings/{vpcId}",
            delete(vpc_bindings::delete),
        )
        .merge(layers::routes())
        .route("/layerarn/{arn}", get(layers::get_by_arn))
}

/// The FC 3.0 operations fcd leaves out, by path; README lists them.
async fn not_supported(req: Request) -> ApiError {
    let path = req.uri().path();
    let what = if path.contains("/sessions") {
        "sessions (CreateSession, GetSession, UpdateSession, DeleteSession, ListSessions, PauseSession, ResumeSession)"
    } else if path.contains("snapshots") {
        "snapshots (CreateSnapshot, GetSnapshot, DeleteSnapshot, ListSnapshots)"
    } else if path.contains("scaling-config") {
        "scaling configs (PutScalingConfig, GetScalingConfig, DeleteScalingConfig, ListScalingConfigs)"
    } else {
        "resource groups (ChangeResourceGroup)"
    };
    ApiError(FcError::NotSupported(format!("FC 3.0 {what}")))
}

/// The `?qualifier=` of a request (empty: LATEST).
fn qualifier(q: &QueryParams) -> Option<String> {
    q.string("qualifier").filter(|q| !q.is_empty())
}

/// How an operation on `f` fails in 3.0's words (functions, never hidden services); for
/// `map_err`.
fn rephrased(f: &Fc3Function) -> impl FnOnce(FcError) -> ApiError + '_ {
    move |e| ApiError(rephrase(e, f))
}

/// Fails, as 3.0 words it, unless `f` is a function this account can see.
async fn resolve(s: &AppState, account: &str, f: &Fc3Function) -> ApiResult<()> {
    s.control.fc3_resolve(account, f).await.map_err(ApiError)?;
    Ok(())
}

impl PathParams {
    /// The `{function}` segment as a 3.0 function: `F` or `svc$fn`.
    pub(crate) fn fc3_function(&self) -> ApiResult<Fc3Function> {
        Fc3Function::parse(self.get("function")).map_err(ApiError)
    }
}

impl QueryParams {
    /// The optional `functionName` a listing is narrowed to.
    fn function_filter(&self) -> ApiResult<Option<Fc3Function>> {
        self.string("functionName")
            .filter(|n| !n.is_empty())
            .map(|n| Fc3Function::parse(&n))
            .transpose()
            .map_err(ApiError)
    }

    /// A boolean query parameter as either SDK sends it (`True`/`False`, `true`/`false`).
    pub(crate) fn query_bool(&self, name: &str) -> ApiResult<Option<bool>> {
        match self.0.get(name).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(ApiError(FcError::invalid(format!(
                "{name} '{v}' is not a boolean"
            )))),
        }
    }

    /// A list-valued query parameter: 3.0 sends one JSON array (`ids=["a","b"]`); 2.0's
    /// `ids.1=a&ids.2=b` is accepted too.
    pub(crate) fn json_list<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> ApiResult<Vec<T>> {
        if let Some(v) = self.0.get(name).filter(|v| !v.trim().is_empty()) {
            return serde_json::from_str(v).map_err(|e| {
                ApiError(FcError::invalid(format!(
                    "{name} must be a JSON array: {e}"
                )))
            });
        }
        let mut numbered: Vec<(u32, &String)> = self
            .0
            .iter()
            .filter_map(|(k, v)| {
                let n = k.strip_prefix(name)?.strip_prefix('.')?.parse().ok()?;
                Some((n, v))
            })
            .collect();
        numbered.sort_by_key(|(n, _)| *n);
        numbered
            .into_iter()
            .map(|(_, v)| {
                serde_json::from_value(serde_json::Value::String(v.clone()))
                    .or_else(|_| serde_json::from_str(v))
                    .map_err(|e| ApiError(FcError::invalid(format!("{name}: {e}"))))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn q(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>(),
        )
    }

    #[test]
    fn lists_come_as_json_arrays_or_numbered_keys() {
        let v: Vec<String> = q(&[("instanceIds", r#"["a","b"]"#)])
            .json_list("instanceIds")
            .unwrap();
        assert_eq!(v, ["a", "b"]);
        let v: Vec<String> = q(&[("instanceIds.2", "b"), ("instanceIds.1", "a")])
            .json_list("instanceIds")
            .unwrap();
        assert_eq!(v, ["a", "b"]);
        let v: Vec<String> = q(&[]).json_list("instanceIds").unwrap();
        assert!(v.is_empty());
        assert!(q(&[("x", "[1,")]).json_list::<String>("x").is_err());
    }

    #[test]
    fn booleans_in_either_case() {
        let p = q(&[("a", "True"), ("b", "false"), ("c", "yes")]);
        assert_eq!(p.query_bool("a").unwrap(), Some(true));
        assert_eq!(p.query_bool("b").unwrap(), Some(false));
        assert_eq!(p.query_bool("z").unwrap(), None);
        assert!(p.query_bool("c").is_err());
    }
}
