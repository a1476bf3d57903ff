//! FC 3.0's VPC bindings: CreateVpcBinding (`POST /functions/{f}/vpc-bindings`, body
//! `{vpcId}`), DeleteVpcBinding (`DELETE /functions/{f}/vpc-bindings/{vpcId}`) and
//! ListVpcBindings (`GET /functions/{f}/vpc-bindings` → `{vpcIds}`, unpaged).
//!
//! 3.0 binds functions; fcd keeps bindings per stored service (as 2.0 does), so a native
//! function `F` binds through its hidden service `~F` — its own — and a 2.0 function `svc$fn`
//! through `svc`, which every function of `svc` shares (as in 2.0). fcd has no VPCs: a
//! binding is recorded and listed, nothing more.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use fcd_core::FcError;
use fcd_core::fc3::{Fc3Function, rephrase};

use super::super::{Ctx, PathParams, json_body, json_response};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// The body of CreateVpcBinding.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateVpcBindingInput {
    vpc_id: Option<String>,
}

/// 3.0's wording: errors name the function, never its (hidden) service.
fn fc3_error(e: FcError, f: &Fc3Function) -> ApiError {
    match e {
        FcError::VpcBindingNotFound { vpc_id, .. } => ApiError(FcError::Fc3Message {
            code: "VpcBindingNotFound",
            status: 404,
            message: format!("vpc '{vpc_id}' is not bound to function '{}'", f.name()),
        }),
        other => ApiError(rephrase(other, f)),
    }
}

/// The function must exist (a 2.0 function's service alone is not enough).
async fn existing(s: &AppState, account: &str, p: &PathParams) -> ApiResult<Fc3Function> {
    let f = p.fc3_function()?;
    s.control
        .get_function(account, &f.service(), f.function())
        .await
        .map_err(|e| fc3_error(e, &f))?;
    Ok(f)
}

pub(crate) async fn create(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let b: CreateVpcBindingInput = json_body(&body)?;
    let vpc_id = b
        .vpc_id
        .ok_or_else(|| ApiError(FcError::invalid("vpcId is required")))?;
    let f = existing(&s, &c.account_id, &p).await?;
    s.control
        .create_vpc_binding(&c.account_id, &f.service(), &vpc_id)
        .await
        .map_err(|e| fc3_error(e, &f))?;
    Ok(StatusCode::OK.into_response())
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f = existing(&s, &c.account_id, &p).await?;
    s.control
        .delete_vpc_binding(&c.account_id, &f.service(), p.get("vpcId"))
        .await
        .map_err(|e| fc3_error(e, &f))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f = existing(&s, &c.account_id, &p).await?;
    let ids = s
        .control
        .list_vpc_bindings(&c.account_id, &f.service())
        .await
        .map_err(|e| fc3_error(e, &f))?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "vpcIds": ids }),
        None,
    ))
}
