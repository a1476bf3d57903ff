//! FC 3.0 InvokeFunction, `POST /functions/{f}/invocations`: the 2.0 invocation path
//! (`routes::invoke::run`: placement, forwarding, streaming, limits) with 3.0's headers —
//! `x-fc-async-task-id` names an async task (2.0's stateful async invocation id) and is echoed
//! on 202. `svc$fn` invokes the 2.0 function with 2.0 qualifier semantics. The body's
//! `content-type: application/octet-stream` means nothing and is not looked at.

use axum::extract::State;
use axum::response::Response;

use fcd_core::FcError;
use fcd_core::fc3::rephrase;

use super::super::invoke::{Dialect, run};
use super::super::{Ctx, PathParams, QueryParams, header_str};
use super::functions::qualifier;
use crate::AppState;
use crate::error::{ApiError, ApiResult};

pub(in crate::routes) async fn invoke(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    req: axum::extract::Request,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    if let Some(d) = header_str(req.headers(), "x-fc-async-delay")
        && d.trim() != "0"
        && !d.trim().is_empty()
    {
        // The async queue runs what it accepts as soon as it can; a delay it would not keep
        // is refused rather than ignored.
        return Err(ApiError(FcError::NotSupported(format!(
            "x-fc-async-delay ('{d}': delayed async invocation)"
        ))));
    }
    s.control
        .fc3_check_invocable(&c.account_id, &f)
        .await
        .map_err(ApiError)?;
    run(
        &s,
        &c,
        req,
        &f.service(),
        f.function(),
        qualifier(&q).as_deref(),
        Dialect::V3,
    )
    .await
    .map_err(|e| ApiError(rephrase(e.0, &f)))
}
