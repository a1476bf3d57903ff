//! PutFunctionOnDemandConfig, GetFunctionOnDemandConfig, DeleteFunctionOnDemandConfig,
//! ListOnDemandConfigs, PutProvisionConfig, GetProvisionConfig, ListProvisionConfigs.
//!
//! The qualifier comes from `?qualifier=` or, in 2016-08-15 paths, from `svc.q`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use fcd_core::configs::{OnDemandConfigUpdate, ProvisionConfig, ProvisionConfigUpdate};
use fcd_store::StoredOnDemandConfig;

use super::{Ctx, PathParams, QueryParams, header_str, json_body, json_response, qualified};
use crate::AppState;
use crate::error::ApiResult;
use fcd_control::ProvisionStatus;

/// FC's `OnDemandConfig`.
fn on_demand_json(c: &StoredOnDemandConfig) -> Value {
    json!({
        "resource": c.config.resource(),
        "maximumInstanceCount": c.config.maximum_instance_count,
    })
}

/// FC's provision config body; `currentError` is part of Get and List, not of Put.
fn provision_json(
    account: &str,
    c: &ProvisionConfig,
    status: &ProvisionStatus,
    with_error: bool,
) -> Value {
    let mut v = json!({
        "resource": c.resource(account),
        "target": c.target,
        "current": status.current,
        "scheduledActions": c.scheduled_actions,
        "targetTrackingPolicies": c.target_tracking_policies,
        "alwaysAllocateCPU": c.always_allocate_cpu,
    });
    if with_error {
        v["currentError"] = status.error.clone().unwrap_or_default().into();
    }
    v
}

pub(super) async fn put_on_demand(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let u: OnDemandConfigUpdate = json_body(&body)?;
    let (service, qualifier) = qualified(&p, &q);
    let cfg = s
        .control
        .put_on_demand_config(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
            u,
            header_str(&headers, "if-match"),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &on_demand_json(&cfg),
        Some(&cfg.etag),
    ))
}

pub(super) async fn get_on_demand(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    let cfg = s
        .control
        .get_on_demand_config(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &on_demand_json(&cfg),
        Some(&cfg.etag),
    ))
}

pub(super) async fn delete_on_demand(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    s.control
        .delete_on_demand_config(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
            header_str(&headers, "if-match"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_on_demand(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let page = s
        .control
        .list_on_demand_configs(&c.account_id, &q.paging()?)
        .await?;
    let configs: Vec<Value> = page.items.iter().map(on_demand_json).collect();
    let mut body = json!({ "configs": configs });
    if let Some(t) = page.next_token {
        body["nextToken"] = t.into();
    }
    Ok(json_response(StatusCode::OK, &body, None))
}

pub(super) async fn put_provision(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    body: Bytes,
) -> ApiResult<Response> {
    let u: ProvisionConfigUpdate = json_body(&body)?;
    let (service, qualifier) = qualified(&p, &q);
    let (cfg, status) = s
        .control
        .put_provision_config(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
            u,
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &provision_json(&c.account_id, &cfg, &status, false),
        None,
    ))
}

pub(super) async fn get_provision(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let (service, qualifier) = qualified(&p, &q);
    let (cfg, status) = s
        .control
        .get_provision_config(
            &c.account_id,
            &service,
            p.get("function"),
            qualifier.as_deref(),
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &provision_json(&c.account_id, &cfg, &status, true),
        None,
    ))
}

pub(super) async fn list_provision(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let page = s
        .control
        .list_provision_configs(
            &c.account_id,
            q.string("serviceName").as_deref(),
            q.string("qualifier").as_deref(),
            q.string("nextToken").as_deref(),
            q.u32("limit")?,
        )
        .await?;
    // Native FC 3.0 functions (hidden services) are not 2.0's to see. Their services sort
    // after every 2.0 name, so once one shows up, the rest of the listing is theirs too.
    let hidden = |cfg: &ProvisionConfig| fcd_core::fc3::is_hidden_service(&cfg.service_name);
    let configs: Vec<Value> = page
        .configs
        .iter()
        .filter(|(cfg, _)| !hidden(cfg))
        .map(|(cfg, status)| provision_json(&c.account_id, cfg, status, true))
        .collect();
    let reached_hidden = page.configs.iter().any(|(cfg, _)| hidden(cfg))
        || page
            .next_token
            .as_deref()
            .and_then(|t| t.split('#').nth(1))
            .is_some_and(fcd_core::fc3::is_hidden_service);
    let mut body = json!({ "provisionConfigs": configs });
    if let Some(t) = page.next_token.filter(|_| !reached_hidden) {
        body["nextToken"] = t.into();
    }
    Ok(json_response(StatusCode::OK, &body, None))
}
