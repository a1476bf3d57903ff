//! FC 3.0 CreateCustomDomain, GetCustomDomain, UpdateCustomDomain, DeleteCustomDomain,
//! ListCustomDomains (`/custom-domains[/{domain}]`, fc3-api.md section 4.8).
//!
//! One set of domains for both APIs. A 3.0 route names its function the 3.0 way
//! (`functionName`: `F` or `svc$fn`) and is stored as a 2.0 route on the function's
//! (service, function) (`fcd_core::fc3`); it is rendered back the same way, whichever API
//! created the domain. Domains created here carry `apiVersion` `2023-03-30`: their routes
//! reach functions without an HTTP trigger, and their `authConfig` (`anonymous` | `function`)
//! says who may call (`crate::proxy`). `corsConfig` is stored and echoed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;

use fcd_core::domains::{
    CustomDomain, CustomDomainInput, FC3_API_VERSION, PathConfig, RewriteConfig, RouteConfig,
};
use fcd_core::fc3::Fc3Function;
use fcd_core::model::JsonObject;

use super::super::{Ctx, PathParams, QueryParams, json_body, json_response, page_response};
use crate::AppState;
use crate::error::{ApiError, ApiResult};

/// CreateCustomDomainInput / UpdateCustomDomainInput.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fc3DomainInput {
    domain_name: Option<String>,
    protocol: Option<String>,
    route_config: Option<Fc3RouteConfig>,
    cert_config: Option<JsonObject>,
    tls_config: Option<JsonObject>,
    waf_config: Option<JsonObject>,
    auth_config: Option<JsonObject>,
    cors_config: Option<JsonObject>,
}

#[derive(Debug, Default, Deserialize)]
struct Fc3RouteConfig {
    #[serde(default)]
    routes: Vec<Fc3PathConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fc3PathConfig {
    path: String,
    function_name: String,
    #[serde(default)]
    qualifier: Option<String>,
    #[serde(default)]
    methods: Option<Vec<String>>,
    #[serde(default)]
    rewrite_config: Option<RewriteConfig>,
}

/// The 3.0 input as the store's (2.0-shaped) input.
fn to_stored(i: Fc3DomainInput, api_version: Option<&str>) -> ApiResult<CustomDomainInput> {
    let route_config = match i.route_config {
        None => None,
        Some(rc) => {
            let mut routes = Vec::with_capacity(rc.routes.len());
            for r in rc.routes {
                let f = Fc3Function::parse(&r.function_name).map_err(ApiError)?;
                routes.push(PathConfig {
                    path: r.path,
                    service_name: f.service().into_owned(),
                    function_name: f.function().to_owned(),
                    qualifier: r.qualifier.unwrap_or_default(),
                    methods: r.methods.unwrap_or_default(),
                    rewrite_config: r.rewrite_config,
                });
            }
            Some(RouteConfig { routes })
        }
    };
    Ok(CustomDomainInput {
        domain_name: i.domain_name,
        protocol: i.protocol,
        route_config,
        cert_config: i.cert_config,
        tls_config: i.tls_config,
        waf_config: i.waf_config,
        auth_config: i.auth_config,
        cors_config: i.cors_config,
        api_version: api_version.map(str::to_owned),
    })
}

/// A domain as the 3.0 SDKs read it: routes name 3.0 functions, no `serviceName`.
fn render(d: &CustomDomain) -> serde_json::Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    let routes: Vec<serde_json::Value> = d
        .route_config
        .routes
        .iter()
        .map(|r| {
            let mut route = serde_json::to_value(r).unwrap_or_default();
            if let Some(obj) = route.as_object_mut() {
                obj.remove("serviceName");
                obj.insert(
                    "functionName".into(),
                    Fc3Function::from_stored(&r.service_name, &r.function_name)
                        .name()
                        .into(),
                );
            }
            route
        })
        .collect();
    v["routeConfig"] = serde_json::json!({ "routes": routes });
    v
}

pub(crate) async fn create(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    body: Bytes,
) -> ApiResult<Response> {
    let input: Fc3DomainInput = json_body(&body)?;
    let d = s
        .control
        .create_custom_domain(&c.account_id, to_stored(input, Some(FC3_API_VERSION))?)
        .await?;
    Ok(json_response(StatusCode::OK, &render(&d.domain), None))
}

pub(crate) async fn get(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    let d = s
        .control
        .get_custom_domain(&c.account_id, p.get("domain"))
        .await?;
    Ok(json_response(StatusCode::OK, &render(&d.domain), None))
}

pub(crate) async fn update(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
    body: Bytes,
) -> ApiResult<Response> {
    let input: Fc3DomainInput = json_body(&body)?;
    let d = s
        .control
        .update_custom_domain(
            &c.account_id,
            p.get("domain"),
            to_stored(input, None)?,
            None,
        )
        .await?;
    Ok(json_response(StatusCode::OK, &render(&d.domain), None))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    p: PathParams,
) -> ApiResult<Response> {
    s.control
        .delete_custom_domain(&c.account_id, p.get("domain"), None)
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Ctx(c): Ctx,
    q: QueryParams,
) -> ApiResult<Response> {
    let page = s
        .control
        .list_custom_domains(&c.account_id, &q.paging()?)
        .await?;
    let domains: Vec<_> = page.items.iter().map(|d| render(&d.domain)).collect();
    Ok(page_response("customDomains", domains, page.next_token))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn routes_name_3_0_functions_both_ways() {
        let input: Fc3DomainInput = serde_json::from_value(serde_json::json!({
            "domainName": "a.example.test",
            "protocol": "HTTP",
            "routeConfig": {"routes": [
                {"path": "/n/*", "functionName": "native", "qualifier": "prod", "methods": ["GET"]},
                {"path": "/o/*", "functionName": "svc$old"},
            ]},
            "authConfig": {"authType": "anonymous"},
            "corsConfig": {"allowOrigins": ["*"]},
        }))
        .unwrap();
        let stored = to_stored(input, Some(FC3_API_VERSION)).unwrap();
        let routes = &stored.route_config.as_ref().unwrap().routes;
        assert_eq!(
            (
                routes[0].service_name.as_str(),
                routes[0].function_name.as_str()
            ),
            ("~native", "native")
        );
        assert_eq!(
            (
                routes[1].service_name.as_str(),
                routes[1].function_name.as_str()
            ),
            ("svc", "old")
        );
        let d = CustomDomain::create("1".into(), stored, "now".into()).unwrap();
        let v = render(&d);
        assert_eq!(v["apiVersion"], FC3_API_VERSION);
        assert_eq!(v["routeConfig"]["routes"][0]["functionName"], "native");
        assert_eq!(v["routeConfig"]["routes"][0]["qualifier"], "prod");
        assert_eq!(v["routeConfig"]["routes"][1]["functionName"], "svc$old");
        assert!(v["routeConfig"]["routes"][0].get("serviceName").is_none());
        assert_eq!(v["corsConfig"]["allowOrigins"][0], "*");
        assert_eq!(v["authConfig"]["authType"], "anonymous");
    }

    #[test]
    fn bad_function_names_are_refused() {
        let input: Fc3DomainInput = serde_json::from_value(serde_json::json!({
            "routeConfig": {"routes": [{"path": "/*", "functionName": "a.b"}]},
        }))
        .unwrap();
        assert!(to_stored(input, None).is_err());
    }
}
