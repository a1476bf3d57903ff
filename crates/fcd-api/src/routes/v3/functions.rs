//! FC 3.0 functions: CreateFunction, GetFunction, UpdateFunction, DeleteFunction,
//! ListFunctions, GetFunctionCode, Disable/EnableFunctionInvocation. The translation between
//! 3.0's flat function and the 2.0 service + function it is stored as is
//! `fcd_control::fc3`'s; this module parses the request and renders the answer.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use fcd_control::fc3::{Fc3ListFilter, Fc3View, split_input};
use fcd_core::fc3::Fc3Function;
use fcd_core::model::JsonObject;

use super::super::{
    Ctx, PathParams, QueryParams, header_str, json_body, json_response, page_response,
};
use super::{qualifier, rephrased};
use crate::AppState;
use crate::error::ApiResult;

/// `Function` JSON of `view` as this server and account show it.
pub(super) async fn render(s: &AppState, account: &str, view: &Fc3View, list: bool) -> JsonObject {
    let sizes = s
        .control
        .fc3_layer_sizes(account, &view.function.layers)
        .await;
    let mut o = view.render(s.control.region(), account, &sizes, list);
    if !list && let Some(state) = s.control.function_state(&view.function) {
        state.apply(&mut o);
    }
    o
}

pub(in crate::routes) async fn create(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    body: Bytes,
) -> ApiResult<Response> {
    let body: JsonObject = json_body(&body)?;
    let input = split_input(body, true)?;
    let view = s.control.fc3_create_function(&c.account_id, input).await?;
    let out = render(&s, &c.account_id, &view, false).await;
    Ok(json_response(StatusCode::OK, &out, None))
}

pub(in crate::routes) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let view = s
        .control
        .fc3_get_function(&c.account_id, &f, qualifier(&q).as_deref())
        .await?;
    let out = render(&s, &c.account_id, &view, false).await;
    Ok(json_response(StatusCode::OK, &out, None))
}

pub(in crate::routes) async fn update(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let body: JsonObject = json_body(&body)?;
    let input = split_input(body, false)?;
    let view = s
        .control
        .fc3_update_function(&c.account_id, &f, input)
        .await?;
    let out = render(&s, &c.account_id, &view, false).await;
    Ok(json_response(StatusCode::OK, &out, None))
}

pub(in crate::routes) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    s.control.fc3_delete_function(&c.account_id, &f).await?;
    // The async engine keeps its own configs: a native function's whole hidden service goes.
    let only = (!f.is_native()).then(|| f.function());
    s.asynchronous
        .forget_configs(&c.account_id, &f.service(), only, None)
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
struct TagFilter {
    #[serde(alias = "key")]
    #[serde(rename = "Key")]
    key: String,
    #[serde(alias = "value")]
    #[serde(rename = "Value", default)]
    value: String,
}

pub(in crate::routes) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let tags: Vec<TagFilter> = q.json_list("tags")?;
    let filter = Fc3ListFilter {
        prefix: q.string("prefix"),
        function_name: q.string("functionName"),
        description: q.string("description"),
        runtime: q.string("runtime"),
        gpu_type: q.string("gpuType"),
        resource_group_id: q.string("resourceGroupId"),
        tags: tags.into_iter().map(|t| (t.key, t.value)).collect(),
        fc_version: q.string("fcVersion").filter(|v| !v.is_empty()),
        next_token: q.string("nextToken"),
        limit: q.u32("limit")?,
    };
    let page = s.control.fc3_list_functions(&c.account_id, &filter).await?;
    let mut functions = Vec::with_capacity(page.functions.len());
    for v in &page.functions {
        functions.push(Value::Object(render(&s, &c.account_id, v, true).await));
    }
    Ok(page_response("functions", functions, page.next_token))
}

/// GetFunctionCode: `{url, checksum}`, a time-limited URL on this server (as the 2.0 operation
/// hands out) from which the zip downloads.
pub(in crate::routes) async fn code(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let f = p.fc3_function()?;
    let (path, checksum) = s
        .control
        .code_url_path(
            &c.account_id,
            &f.service(),
            f.function(),
            qualifier(&q).as_deref(),
        )
        .await
        .map_err(rephrased(&f))?;
    // The caller reached us through this host, so the URL on it is reachable for them too.
    let host = header_str(&headers, "host").unwrap_or("127.0.0.1");
    let body = json!({ "url": format!("http://{host}{path}"), "checksum": checksum });
    Ok(json_response(StatusCode::OK, &body, None))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DisableBody {
    reason: Option<String>,
    /// fcd has no long-running requests to cut short beyond the function's timeout; accepted.
    #[allow(dead_code)]
    abort_ongoing_request: Option<bool>,
}

/// DisableFunctionInvocation: later invocations through 3.0 are refused until enabled again.
pub(in crate::routes) async fn disable_invocation(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let f: Fc3Function = p.fc3_function()?;
    let b: DisableBody = json_body(&body)?;
    s.control
        .fc3_set_invocation_restriction(&c.account_id, &f, true, b.reason)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "success": true }),
        None,
    ))
}

/// EnableFunctionInvocation.
pub(in crate::routes) async fn enable_invocation(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let f: Fc3Function = p.fc3_function()?;
    s.control
        .fc3_set_invocation_restriction(&c.account_id, &f, false, None)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "success": true }),
        None,
    ))
}
