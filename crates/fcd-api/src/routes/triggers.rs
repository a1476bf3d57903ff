//! CreateTrigger, GetTrigger, UpdateTrigger, DeleteTrigger, ListTriggers.
//!
//! The two API versions carry `triggerConfig` differently, each the way its SDK parses it: the
//! 2021-04-06 SDK declares it a JSON *string*, the classic SDKs (2016-08-15 paths) send and read
//! an object. Requests are accepted in either form on both; responses follow the path's version.
//! HTTP triggers also get `urlInternet`/`urlIntranet`: the `/proxy/` URL on this server's
//! public address (`fcd serve --public-url`).

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use fcd_core::triggers::{Trigger, TriggerInput, TriggerUpdate};

use super::{
    ApiVersion, Ctx, PathParams, QueryParams, header_str, json_body, json_response, page_response,
};
use crate::AppState;
use crate::error::ApiResult;

/// The `/proxy/` URL of an HTTP trigger (with FC's trailing slash): the qualifier is part of
/// the service segment unless it is LATEST.
fn proxy_url(public_url: &str, service: &str, qualifier: &str, function: &str) -> String {
    let base = public_url.trim_end_matches('/');
    if qualifier.is_empty() || qualifier == "LATEST" {
        format!("{base}/2016-08-15/proxy/{service}/{function}/")
    } else {
        format!("{base}/2016-08-15/proxy/{service}.{qualifier}/{function}/")
    }
}

/// A trigger as the API version's SDK reads it.
fn render(
    t: &Trigger,
    version: ApiVersion,
    public_url: &str,
    service: &str,
    function: &str,
) -> serde_json::Value {
    let mut v = serde_json::to_value(t).unwrap_or_default();
    if version == ApiVersion::V2016
        && let Ok(obj) = serde_json::from_str::<serde_json::Value>(&t.trigger_config)
    {
        v["triggerConfig"] = obj;
    }
    if t.trigger_type == "http" {
        let url = proxy_url(public_url, service, &t.qualifier, function);
        v["urlInternet"] = url.clone().into();
        v["urlIntranet"] = url.into();
    }
    v
}

pub(super) async fn create(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let input: TriggerInput = json_body(&body)?;
    let service = p.unqualified_service()?;
    let function = p.get("function");
    let t = s
        .control
        .create_trigger(&c.account_id, &service, function, input)
        .await?;
    let body = render(&t.trigger, version, &s.public_url, &service, function);
    Ok(json_response(StatusCode::OK, &body, Some(&t.etag)))
}

pub(super) async fn get(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    let function = p.get("function");
    let t = s
        .control
        .get_trigger(&c.account_id, &service, function, p.get("trigger"))
        .await?;
    let body = render(&t.trigger, version, &s.public_url, &service, function);
    Ok(json_response(StatusCode::OK, &body, Some(&t.etag)))
}

pub(super) async fn update(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let u: TriggerUpdate = json_body(&body)?;
    let service = p.unqualified_service()?;
    let function = p.get("function");
    let t = s
        .control
        .update_trigger(
            &c.account_id,
            &service,
            function,
            p.get("trigger"),
            u,
            header_str(&headers, "if-match"),
        )
        .await?;
    let body = render(&t.trigger, version, &s.public_url, &service, function);
    Ok(json_response(StatusCode::OK, &body, Some(&t.etag)))
}

pub(super) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    s.control
        .delete_trigger(
            &c.account_id,
            &service,
            p.get("function"),
            p.get("trigger"),
            header_str(&headers, "if-match"),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn list(
    State(s): State<AppState>,
    Extension(version): Extension<ApiVersion>,
    Ctx(c): Ctx,
    p: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let service = p.unqualified_service()?;
    let function = p.get("function");
    let page = s
        .control
        .list_triggers(&c.account_id, &service, function, &q.paging()?)
        .await?;
    let triggers: Vec<_> = page
        .items
        .iter()
        .map(|t| render(&t.trigger, version, &s.public_url, &service, function))
        .collect();
    Ok(page_response("triggers", triggers, page.next_token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_name_the_qualifier_unless_latest() {
        assert_eq!(
            proxy_url("http://127.0.0.1:9000/", "s", "LATEST", "f"),
            "http://127.0.0.1:9000/2016-08-15/proxy/s/f/"
        );
        assert_eq!(
            proxy_url("https://fc.example.test", "s", "prod", "f"),
            "https://fc.example.test/2016-08-15/proxy/s.prod/f/"
        );
    }
}
