//! FC 3.0 CreateTrigger, GetTrigger, UpdateTrigger, DeleteTrigger, ListTriggers
//! (`/functions/{f}/triggers[/{trigger}]`, fc3-api.md section 4.3).
//!
//! The triggers are 2.0's, on the function's stored (service, function) (`fcd_core::fc3`), with
//! 3.0's JSON: `triggerConfig` always a JSON string, `targetArn` the function's 3.0 ARN,
//! `status`, and for `http` triggers `httpTrigger {urlInternet, urlIntranet}` — the path form
//! of the trigger's 3.0 URL on this server (`crate::proxy`), which reaches the function without
//! DNS; the Host form `{urlId}.{region}.fcapp.run` works too when a name resolves to fcd.
//! An `http` trigger's `authType` defaults to `function`, as in 3.0.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use fcd_control::http_event::url_id;
use fcd_core::FcError;
use fcd_core::fc3::{Fc3Function, rephrase};
use fcd_core::triggers::{Trigger, TriggerInput, TriggerUpdate};
use fcd_store::triggers::StoredTrigger;

use super::super::{Ctx, PathParams, QueryParams, json_body, json_response, page_response};
use crate::AppState;
use crate::error::{ApiError, ApiResult};
use crate::proxy::{FC3_PROXY_PREFIX, FC3_PROXY_VPC_PREFIX};

/// The path-form URLs (internet, intranet) of an HTTP trigger on this server.
pub(crate) fn trigger_urls(
    public_url: &str,
    account: &str,
    f: &Fc3Function,
    trigger: &str,
) -> (String, String) {
    let base = public_url.trim_end_matches('/');
    let id = url_id(account, &f.service(), f.function(), trigger);
    (
        format!("{base}{FC3_PROXY_PREFIX}{id}"),
        format!("{base}{FC3_PROXY_VPC_PREFIX}{id}"),
    )
}

/// A trigger as the 3.0 SDKs read it.
fn render(s: &AppState, account: &str, f: &Fc3Function, t: &Trigger) -> serde_json::Value {
    let mut v = serde_json::json!({
        "triggerId": t.trigger_id,
        "triggerName": t.trigger_name,
        "triggerType": t.trigger_type,
        "triggerConfig": t.trigger_config,
        "qualifier": t.qualifier,
        "description": t.description,
        "invocationRole": t.invocation_role,
        "sourceArn": t.source_arn,
        "targetArn": f.arn(s.control.region(), account),
        "status": "OK",
        "createdTime": t.created_time,
        "lastModifiedTime": t.last_modified_time,
    });
    if t.trigger_type == "http" {
        let (internet, intranet) = trigger_urls(&s.public_url, account, f, &t.trigger_name);
        v["httpTrigger"] = serde_json::json!({
            "urlInternet": internet,
            "urlIntranet": intranet,
        });
    }
    v
}

/// 3.0's default `authType` (`function`) for an `http` trigger's config that names none.
fn with_fc3_defaults(trigger_type: Option<&str>, config: &mut Option<serde_json::Value>) {
    if trigger_type != Some("http") {
        return;
    }
    let parsed = match config.as_ref() {
        Some(serde_json::Value::String(s)) => serde_json::from_str::<serde_json::Value>(s).ok(),
        Some(v) => Some(v.clone()),
        None => None,
    };
    if let Some(serde_json::Value::Object(mut map)) = parsed
        && !map.contains_key("authType")
    {
        map.insert("authType".into(), "function".into());
        *config = Some(serde_json::Value::Object(map));
    }
}

/// Errors of the 2.0 layer in 3.0's words: no service names.
fn fc3_error(e: FcError, f: &Fc3Function) -> ApiError {
    let e = rephrase(e, f);
    match e {
        FcError::InvalidArgument(m) if f.is_native() => {
            let service = f.service();
            ApiError(FcError::InvalidArgument(
                m.replace(&format!(" of service '{service}'"), ""),
            ))
        }
        other => ApiError(other),
    }
}

/// The 200 answer carrying one trigger.
fn trigger_response(s: &AppState, account: &str, f: &Fc3Function, t: &Trigger) -> Response {
    json_response(StatusCode::OK, &render(s, account, f, t), None)
}

/// The trigger `name` of `f` as stored (GetTrigger, and UpdateTrigger's look at its type).
async fn stored(
    s: &AppState,
    account: &str,
    f: &Fc3Function,
    name: &str,
) -> ApiResult<StoredTrigger> {
    s.control
        .get_trigger(account, &f.service(), f.function(), name)
        .await
        .map_err(|e| fc3_error(e, f))
}

pub(crate) async fn create(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let mut input: TriggerInput = json_body(&body)?;
    with_fc3_defaults(input.trigger_type.as_deref(), &mut input.trigger_config);
    let t = s
        .control
        .create_trigger(&c.account_id, &f.service(), f.function(), input)
        .await
        .map_err(|e| fc3_error(e, &f))?;
    Ok(trigger_response(&s, &c.account_id, &f, &t.trigger))
}

pub(crate) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let t = stored(&s, &c.account_id, &f, p.get("trigger")).await?;
    Ok(trigger_response(&s, &c.account_id, &f, &t.trigger))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let mut u: TriggerUpdate = json_body(&body)?;
    if u.trigger_config.is_some() {
        // The defaults depend on the type, which only the stored trigger knows.
        let current = stored(&s, &c.account_id, &f, p.get("trigger")).await?;
        with_fc3_defaults(Some(&current.trigger.trigger_type), &mut u.trigger_config);
    }
    let t = s
        .control
        .update_trigger(
            &c.account_id,
            &f.service(),
            f.function(),
            p.get("trigger"),
            u,
            None,
        )
        .await
        .map_err(|e| fc3_error(e, &f))?;
    Ok(trigger_response(&s, &c.account_id, &f, &t.trigger))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    s.control
        .delete_trigger(
            &c.account_id,
            &f.service(),
            f.function(),
            p.get("trigger"),
            None,
        )
        .await
        .map_err(|e| fc3_error(e, &f))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let page = s
        .control
        .list_triggers(&c.account_id, &f.service(), f.function(), &q.paging()?)
        .await
        .map_err(|e| fc3_error(e, &f))?;
    let triggers: Vec<_> = page
        .items
        .iter()
        .map(|t| render(&s, &c.account_id, &f, &t.trigger))
        .collect();
    Ok(page_response("triggers", triggers, page.next_token))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn http_configs_default_to_signed_calls() {
        let mut c = Some(serde_json::Value::String(r#"{"methods":["GET"]}"#.into()));
        with_fc3_defaults(Some("http"), &mut c);
        assert_eq!(c.unwrap()["authType"], "function");
        let mut c = Some(serde_json::json!({"authType": "anonymous", "methods": ["GET"]}));
        with_fc3_defaults(Some("http"), &mut c);
        assert_eq!(c.unwrap()["authType"], "anonymous");
        let mut c = Some(serde_json::json!({"cronExpression": "@every 1m"}));
        with_fc3_defaults(Some("timer"), &mut c);
        assert!(c.unwrap().get("authType").is_none());
    }

    #[test]
    fn urls_are_the_path_forms_on_this_server() {
        let f = Fc3Function::parse("hello").unwrap();
        let (i, v) = trigger_urls("http://127.0.0.1:9000/", "123", &f, "web");
        let id = url_id("123", "~hello", "hello", "web");
        assert_eq!(i, format!("http://127.0.0.1:9000/2023-03-30/proxy/{id}"));
        assert_eq!(
            v,
            format!("http://127.0.0.1:9000/2023-03-30/proxy-vpc/{id}")
        );
    }

    #[test]
    fn native_errors_do_not_name_the_hidden_service() {
        let f = Fc3Function::parse("hello").unwrap();
        let e = fc3_error(
            FcError::invalid(
                "function 'hello' of service '~hello' already has the http trigger 'a'",
            ),
            &f,
        );
        assert!(!e.0.to_string().contains("service"), "{}", e.0);
        let e = fc3_error(
            FcError::TriggerAlreadyExists {
                service: "~hello".into(),
                function: "hello".into(),
                trigger: "t".into(),
            },
            &f,
        );
        assert_eq!(e.0.code(), "TriggerAlreadyExists");
        assert_eq!(e.0.http_status(), 409);
    }
}
