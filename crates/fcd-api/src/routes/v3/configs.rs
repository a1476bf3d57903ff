//! FC 3.0 provision configs (Put/Get/Delete/ListProvisionConfig(s)) and concurrency configs
//! (Put/Get/Delete/ListConcurrencyConfig(s)).
//!
//! A provision config is 2.0's provision config of (service, qualifier, function): the
//! reconciler keeps `defaultTarget` instances (`target` is its deprecated alias on input; on
//! output `target` is the value in force, which is `defaultTarget` since fcd acts on no
//! policy). As in fcd's 2.0, the qualifier must be an alias or a version, never LATEST. Empty
//! `scheduledActions`/`targetTrackingPolicies` (Python always sends them) mean none, and a PUT
//! replaces the whole config. DeleteProvisionConfig is 2.0's target 0: the row goes and the
//! instances are released.
//!
//! A concurrency config is a per-function `reservedConcurrency` ([`fcd_control`]'s
//! `concurrency`): a cap on the function's requests in flight, all qualifiers together.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use fcd_control::ProvisionStatus;
use fcd_core::FcError;
use fcd_core::configs::{
    ProvisionConfig, ProvisionConfigUpdate, ScheduledAction, TargetTrackingPolicy,
};
use fcd_core::fc3::Fc3Function;
use fcd_store::concurrency::ConcurrencyConfig;

use super::super::{Ctx, PathParams, QueryParams, json_body, json_response, page_response};
use super::{qualifier, rephrased};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

// ---- provision configs ----

/// PutProvisionConfigInput.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutProvisionInput {
    default_target: Option<i64>,
    target: Option<i64>,
    #[serde(rename = "alwaysAllocateCPU")]
    always_allocate_cpu: Option<bool>,
    #[serde(rename = "alwaysAllocateGPU")]
    always_allocate_gpu: Option<bool>,
    scheduled_actions: Option<Vec<ScheduledAction>>,
    target_tracking_policies: Option<Vec<TargetTrackingPolicy>>,
}

/// FC 3.0's `ProvisionConfig`.
fn provision_json(
    region: &str,
    account: &str,
    c: &ProvisionConfig,
    status: &ProvisionStatus,
) -> Value {
    let f = Fc3Function::from_stored(&c.service_name, &c.function_name);
    json!({
        "functionArn": f.arn(region, account),
        "qualifier": c.qualifier,
        "defaultTarget": c.target,
        "target": c.target,
        "current": status.current,
        "currentError": status.error.clone().unwrap_or_default(),
        "alwaysAllocateCPU": c.always_allocate_cpu,
        "alwaysAllocateGPU": c.always_allocate_gpu.unwrap_or(true),
        "scheduledActions": c.scheduled_actions,
        "targetTrackingPolicies": c.target_tracking_policies,
    })
}

/// The 200 answer carrying one provision config.
fn provision_response(
    s: &AppState,
    account: &str,
    cfg: &ProvisionConfig,
    status: &ProvisionStatus,
) -> Response {
    let body = provision_json(s.control.region(), account, cfg, status);
    json_response(StatusCode::OK, &body, None)
}

/// Writes the provision config of `f` and `qualifier` (a PUT, and a DELETE as target 0).
async fn write_provision(
    s: &AppState,
    account: &str,
    f: &Fc3Function,
    qualifier: Option<&str>,
    u: ProvisionConfigUpdate,
) -> ApiResult<(ProvisionConfig, ProvisionStatus)> {
    s.control
        .put_provision_config(account, &f.service(), f.function(), qualifier, u)
        .await
        .map_err(rephrased(f))
}

pub(super) async fn put_provision(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    body: Bytes,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let input: PutProvisionInput = json_body(&body)?;
    let target = input
        .default_target
        .or(input.target)
        .ok_or_else(|| ApiError(FcError::invalid("defaultTarget is required")))?;
    let u = ProvisionConfigUpdate {
        target: Some(target),
        always_allocate_cpu: input.always_allocate_cpu,
        always_allocate_gpu: input.always_allocate_gpu,
        scheduled_actions: input.scheduled_actions,
        target_tracking_policies: input.target_tracking_policies,
    };
    let qualifier = qualifier(&q);
    let (cfg, status) = write_provision(&s, &c.account_id, &f, qualifier.as_deref(), u).await?;
    Ok(provision_response(&s, &c.account_id, &cfg, &status))
}

pub(super) async fn get_provision(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let qualifier = qualifier(&q);
    let (cfg, status) = s
        .control
        .get_provision_config(
            &c.account_id,
            &f.service(),
            f.function(),
            qualifier.as_deref(),
        )
        .await
        .map_err(rephrased(&f))?;
    Ok(provision_response(&s, &c.account_id, &cfg, &status))
}

pub(super) async fn delete_provision(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let qualifier = qualifier(&q);
    // 2.0's way of removing one: a config that asks for nothing is deleted, and the
    // reconciler releases what it kept.
    let nothing = ProvisionConfigUpdate {
        target: Some(0),
        ..Default::default()
    };
    write_provision(&s, &c.account_id, &f, qualifier.as_deref(), nothing).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_provision(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let only = q.function_filter()?;
    let service = only.as_ref().map(|f| f.service().into_owned());
    let page = s
        .control
        .list_provision_configs(
            &c.account_id,
            service.as_deref(),
            None,
            q.string("nextToken").as_deref(),
            q.u32("limit")?,
        )
        .await?;
    let region = s.control.region();
    // A 2.0 service may hold other functions than the one asked about: the page keeps only
    // its configs (and may so be shorter than the limit; `nextToken` still continues it).
    let configs: Vec<Value> = page
        .configs
        .iter()
        .filter(|(cfg, _)| {
            only.as_ref()
                .is_none_or(|f| cfg.function_name == f.function())
        })
        .map(|(cfg, status)| provision_json(region, &c.account_id, cfg, status))
        .collect();
    Ok(page_response("provisionConfigs", configs, page.next_token))
}

// ---- concurrency configs ----

/// PutConcurrencyInput.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutConcurrencyInput {
    reserved_concurrency: Option<i64>,
}

/// FC 3.0's `ConcurrencyConfig`.
fn concurrency_json(region: &str, account: &str, c: &ConcurrencyConfig) -> Value {
    let f = Fc3Function::from_stored(&c.service, &c.function);
    json!({
        "functionArn": f.arn(region, account),
        "reservedConcurrency": c.reserved_concurrency,
    })
}

/// The 200 answer carrying one concurrency config.
fn concurrency_response(s: &AppState, account: &str, cfg: &ConcurrencyConfig) -> Response {
    let body = concurrency_json(s.control.region(), account, cfg);
    json_response(StatusCode::OK, &body, None)
}

pub(super) async fn put_concurrency(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let input: PutConcurrencyInput = json_body(&body)?;
    let cfg = s
        .control
        .put_concurrency_config(
            &c.account_id,
            &f.service(),
            f.function(),
            input.reserved_concurrency,
        )
        .await
        .map_err(rephrased(&f))?;
    Ok(concurrency_response(&s, &c.account_id, &cfg))
}

pub(super) async fn get_concurrency(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let cfg = s
        .control
        .get_concurrency_config(&c.account_id, &f.service(), f.function())
        .await
        .map_err(rephrased(&f))?;
    Ok(concurrency_response(&s, &c.account_id, &cfg))
}

pub(super) async fn delete_concurrency(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    s.control
        .delete_concurrency_config(&c.account_id, &f.service(), f.function())
        .await
        .map_err(rephrased(&f))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list_concurrency(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let only = q.function_filter()?;
    // The token is the 3.0 name of the first config of the next page.
    let from = q
        .string("nextToken")
        .filter(|t| !t.is_empty())
        .map(|t| {
            Fc3Function::parse(&t)
                .map(|f| (f.service().into_owned(), f.function().to_owned()))
                .map_err(|_| ApiError(FcError::invalid(format!("nextToken '{t}' is invalid"))))
        })
        .transpose()?;
    let only_key = only
        .as_ref()
        .map(|f| (f.service().into_owned(), f.function().to_owned()));
    let page = s
        .control
        .list_concurrency_configs(
            &c.account_id,
            only_key.as_ref().map(|(s, f)| (s.as_str(), f.as_str())),
            from,
            q.u32("limit")?,
        )
        .await?;
    let region = s.control.region();
    let configs: Vec<Value> = page
        .configs
        .iter()
        .map(|cfg| concurrency_json(region, &c.account_id, cfg))
        .collect();
    let mut body = json!({ "configs": configs });
    if let Some((service, function)) = page.next {
        body["nextToken"] = Fc3Function::from_stored(&service, &function).name().into();
    }
    Ok(json_response(StatusCode::OK, &body, None))
}
