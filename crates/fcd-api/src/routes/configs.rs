//! PutFunctionOnDemandConfig, GetFunctionOnDemandConfig, DeleteFunctionOnDemandConfig,
//! ListOnDemandConfigs, PutProvisionConfig, GetProvisionConfig, ListProvisionConfigs.
//!
//! The qualifier comes from `?qualifier=` or, in 2016-08-15 paths, from `svc.q`. Both kinds
//! of config answer FC's `resource` name `{account}#{service}#{qualifier}#{function}`. The
//! listings never show native FC 3.0 functions' hidden services.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use fcd_core::configs::{OnDemandConfigUpdate, ProvisionConfig, ProvisionConfigUpdate};
use fcd_store::StoredOnDemandConfig;

use super::{
    Ctx, PathParams, QueryParams, header_str, json_body, json_response, page_response, qualified,
};
use crate::AppState;
use crate::error::ApiResult;
use fcd_control::ProvisionStatus;

/// FC's `OnDemandConfig`.
fn on_demand_json(account: &str, c: &StoredOnDemandConfig) -> Value {
    json!({
        "resource": c.config.resource(account),
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
        &on_demand_json(&c.account_id, &cfg),
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
        &on_demand_json(&c.account_id, &cfg),
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
    let configs: Vec<Value> = page
        .items
        .iter()
        .map(|cfg| on_demand_json(&c.account_id, cfg))
        .collect();
    Ok(page_response("configs", configs, page.next_token))
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

/// A page of ListProvisionConfigs as 2.0 shows it: the service layer lists every config, but
/// 2.0 does not see native FC 3.0 functions. Their hidden services sort after every 2.0 name,
/// so once one shows up the rest of the page and every later page are hidden too: the listing
/// ends there.
fn without_hidden<S>(
    mut configs: Vec<(ProvisionConfig, S)>,
    next_token: Option<String>,
) -> (Vec<(ProvisionConfig, S)>, Option<String>) {
    let hidden = |service: &str| fcd_core::fc3::is_hidden_service(service);
    let all = configs.len();
    configs.retain(|(cfg, _)| !hidden(&cfg.service_name));
    // The token is a resource name, `{account}#{service}#…`.
    let next_token =
        next_token.filter(|t| configs.len() == all && !t.split('#').nth(1).is_some_and(hidden));
    (configs, next_token)
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
    let (visible, next_token) = without_hidden(page.configs, page.next_token);
    let configs: Vec<Value> = visible
        .iter()
        .map(|(cfg, status)| provision_json(&c.account_id, cfg, status, true))
        .collect();
    Ok(page_response("provisionConfigs", configs, next_token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fcd_core::configs::ProvisionConfigUpdate;

    fn cfg(service: &str) -> (ProvisionConfig, ()) {
        let c = ProvisionConfigUpdate {
            target: Some(1),
            ..Default::default()
        }
        .into_config(service, "prod", "f")
        .unwrap();
        (c, ())
    }

    #[test]
    fn provision_listings_end_where_hidden_services_begin() {
        let names = |v: &[(ProvisionConfig, ())]| {
            v.iter()
                .map(|(c, _)| c.service_name.clone())
                .collect::<Vec<_>>()
        };
        let (v, t) = without_hidden(vec![cfg("a"), cfg("b")], Some("1#c#prod#f".into()));
        assert_eq!(
            (names(&v), t.as_deref()),
            (vec!["a".into(), "b".into()], Some("1#c#prod#f"))
        );
        let (v, t) = without_hidden(vec![cfg("a"), cfg("b")], Some("1#~F#prod#F".into()));
        assert_eq!((names(&v), t), (vec!["a".into(), "b".into()], None));
        let (v, t) = without_hidden(vec![cfg("a"), cfg("~F")], Some("1#~G#prod#G".into()));
        assert_eq!((names(&v), t), (vec!["a".into()], None));
        let (v, t) = without_hidden(vec![cfg("~F")], None);
        assert_eq!((names(&v), t), (Vec::<String>::new(), None));
    }
}
