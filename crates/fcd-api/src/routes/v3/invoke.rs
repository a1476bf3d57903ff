//! FC 3.0 InvokeFunction, `POST /functions/{f}/invocations`: the 2.0 invocation path
//! (`routes::invoke::run`: placement, forwarding, streaming, limits) with 3.0's headers —
//! `x-fc-async-task-id` names an async task (2.0's stateful async invocation id) and is echoed
//! on 202. `svc$fn` invokes the 2.0 function with 2.0 qualifier semantics. The body's
//! `content-type: application/octet-stream` means nothing and is not looked at.

use axum::extract::State;
use axum::response::Response;

use fcd_core::FcError;
use fcd_core::fc3::{Fc3Function, rephrase};

use super::super::invoke::{Dialect, run};
use super::super::{Ctx, PathParams, QueryParams, header_str};
use super::qualifier;
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
    if let Some(id) = header_str(req.headers(), "x-fc-async-task-id")
        && !fcd_control::asynchronous::valid_invocation_id(id)
    {
        return Err(ApiError(FcError::invalid(format!(
            "x-fc-async-task-id '{id}' is invalid: it must start with a letter or '_', contain only letters, digits, '_' and '-', and be at most 128 characters"
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
    .map_err(|e| ApiError(invoke_error(e.0, &f)))
}

/// An invocation error in 3.0's words: no hidden service names in messages.
fn invoke_error(e: FcError, f: &Fc3Function) -> FcError {
    let hidden = format!(" of service '{}'", f.service());
    match rephrase(e, f) {
        FcError::ResourceExhausted(m) if f.is_native() => {
            FcError::ResourceExhausted(m.replace(&hidden, ""))
        }
        FcError::InvocationAlreadyExists { id, .. } => FcError::Fc3Message {
            // The 2.0 code: no 3.0 source names another.
            code: "StatefulAsyncInvocationAlreadyExists",
            status: 409,
            message: format!(
                "an async task with id '{id}' already exists for function '{}'",
                f.name()
            ),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invocation_errors_never_name_the_hidden_service() {
        let f = Fc3Function::Native("f1".into());
        let e = invoke_error(
            FcError::ResourceExhausted(
                "function 'f1' of service '~f1' may not run on-demand instances".into(),
            ),
            &f,
        );
        assert_eq!(
            e.to_string(),
            "function 'f1' may not run on-demand instances"
        );
        let e = invoke_error(
            FcError::InvocationAlreadyExists {
                service: "~f1".into(),
                function: "f1".into(),
                id: "t1".into(),
            },
            &f,
        );
        assert_eq!(e.code(), "StatefulAsyncInvocationAlreadyExists");
        assert_eq!(e.http_status(), 409);
        assert!(!e.to_string().contains('~'));
    }
}
