use proptest::prelude::*;

use super::*;

fn op(method: &str, path: &str, qualifier: Option<&str>) -> Option<(&'static str, String)> {
    operation(method, path, qualifier).map(|o| (o.action, o.resource))
}

#[test]
fn the_route_table_builds() {
    assert!(ROUTER.is_some());
}

/// Every route, both prefixes: (method, path below the prefix, query qualifier, action,
/// resource).
const TABLE: &[(&str, &str, Option<&str>, &str, &str)] = &[
    ("GET", "/services", None, "fc:ListServices", "services/*"),
    ("POST", "/services", None, "fc:CreateService", "services/*"),
    ("GET", "/services/s", None, "fc:GetService", "services/s"),
    (
        "GET",
        "/services/s",
        Some("prod"),
        "fc:GetService",
        "services/s.prod",
    ),
    (
        "GET",
        "/services/s.1",
        None,
        "fc:GetService",
        "services/s.1",
    ),
    ("PUT", "/services/s", None, "fc:UpdateService", "services/s"),
    (
        "PUT",
        "/services/s",
        Some("prod"),
        "fc:UpdateService",
        "services/s",
    ),
    (
        "DELETE",
        "/services/s",
        None,
        "fc:DeleteService",
        "services/s",
    ),
    (
        "GET",
        "/services/s/functions",
        None,
        "fc:ListFunctions",
        "services/s/functions/*",
    ),
    (
        "GET",
        "/services/s/functions",
        Some("2"),
        "fc:ListFunctions",
        "services/s.2/functions/*",
    ),
    (
        "POST",
        "/services/s/functions",
        None,
        "fc:CreateFunction",
        "services/s/functions/*",
    ),
    (
        "GET",
        "/services/s/functions/f",
        None,
        "fc:GetFunction",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f",
        Some("a"),
        "fc:GetFunction",
        "services/s.a/functions/f",
    ),
    (
        "PUT",
        "/services/s/functions/f",
        None,
        "fc:UpdateFunction",
        "services/s/functions/f",
    ),
    (
        "DELETE",
        "/services/s/functions/f",
        None,
        "fc:DeleteFunction",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/code",
        None,
        "fc:GetFunctionCode",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/code",
        Some("3"),
        "fc:GetFunctionCode",
        "services/s.3/functions/f",
    ),
    (
        "POST",
        "/services/s/functions/f/invocations",
        None,
        "fc:InvokeFunction",
        "services/s.LATEST/functions/f",
    ),
    (
        "POST",
        "/services/s/functions/f/invocations",
        Some("prod"),
        "fc:InvokeFunction",
        "services/s.prod/functions/f",
    ),
    (
        "POST",
        "/services/s.prod/functions/f/invocations",
        None,
        "fc:InvokeFunction",
        "services/s.prod/functions/f",
    ),
    (
        "POST",
        "/services/s.prod/functions/f/invocations",
        Some("other"),
        "fc:InvokeFunction",
        "services/s.prod/functions/f",
    ),
    (
        "POST",
        "/services/s/functions/f/invocations",
        Some(""),
        "fc:InvokeFunction",
        "services/s.LATEST/functions/f",
    ),
    (
        "GET",
        "/services/s/versions",
        None,
        "fc:ListServiceVersions",
        "services/s/versions/*",
    ),
    (
        "POST",
        "/services/s/versions",
        None,
        "fc:PublishServiceVersion",
        "services/s/versions/*",
    ),
    (
        "DELETE",
        "/services/s/versions/3",
        None,
        "fc:DeleteServiceVersion",
        "services/s/versions/3",
    ),
    (
        "GET",
        "/services/s/aliases",
        None,
        "fc:ListAliases",
        "services/s/aliases/*",
    ),
    (
        "POST",
        "/services/s/aliases",
        None,
        "fc:CreateAlias",
        "services/s/aliases/*",
    ),
    (
        "GET",
        "/services/s/aliases/prod",
        None,
        "fc:GetAlias",
        "services/s/aliases/prod",
    ),
    (
        "PUT",
        "/services/s/aliases/prod",
        None,
        "fc:UpdateAlias",
        "services/s/aliases/prod",
    ),
    (
        "DELETE",
        "/services/s/aliases/prod",
        None,
        "fc:DeleteAlias",
        "services/s/aliases/prod",
    ),
    (
        "PUT",
        "/services/s/functions/f/on-demand-config",
        Some("prod"),
        "fc:PutFunctionOnDemandConfig",
        "services/s.prod/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/on-demand-config",
        None,
        "fc:GetFunctionOnDemandConfig",
        "services/s/functions/f",
    ),
    (
        "DELETE",
        "/services/s/functions/f/on-demand-config",
        Some("LATEST"),
        "fc:DeleteFunctionOnDemandConfig",
        "services/s.LATEST/functions/f",
    ),
    (
        "GET",
        "/on-demand-configs",
        None,
        "fc:ListOnDemandConfigs",
        "services/*",
    ),
    (
        "PUT",
        "/services/s/functions/f/provision-config",
        Some("prod"),
        "fc:PutProvisionConfig",
        "services/s.prod/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/provision-config",
        None,
        "fc:GetProvisionConfig",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/provision-configs",
        Some("prod"),
        "fc:ListProvisionConfigs",
        "services/*",
    ),
    (
        "GET",
        "/services/s/functions/f/async-invoke-config",
        None,
        "fc:GetFunctionAsyncInvokeConfig",
        "services/s/functions/f",
    ),
    (
        "PUT",
        "/services/s/functions/f/async-invoke-config",
        Some("1"),
        "fc:PutFunctionAsyncInvokeConfig",
        "services/s.1/functions/f",
    ),
    (
        "DELETE",
        "/services/s/functions/f/async-invoke-config",
        Some("a"),
        "fc:DeleteFunctionAsyncInvokeConfig",
        "services/s.a/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/async-invoke-configs",
        Some("a"),
        "fc:ListFunctionAsyncInvokeConfigs",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/stateful-async-invocations",
        None,
        "fc:ListStatefulAsyncInvocations",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/stateful-async-invocations",
        Some("p"),
        "fc:ListStatefulAsyncInvocations",
        "services/s.p/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/stateful-async-invocations/id-1",
        None,
        "fc:GetStatefulAsyncInvocation",
        "services/s/functions/f/stateful-async-invocations/id-1",
    ),
    (
        "GET",
        "/services/s.p/functions/f/stateful-async-invocations/id-1",
        Some("q"),
        "fc:GetStatefulAsyncInvocation",
        "services/s/functions/f/stateful-async-invocations/id-1",
    ),
    (
        "PUT",
        "/services/s/functions/f/stateful-async-invocations/id-1",
        None,
        "fc:StopStatefulAsyncInvocation",
        "services/s/functions/f/stateful-async-invocations/id-1",
    ),
    (
        "GET",
        "/stateful-async-invocation-functions",
        None,
        "fc:ListStatefulAsyncInvocationFunctions",
        "services/*",
    ),
    (
        "GET",
        "/services/s/functions/f/instances",
        None,
        "fc:ListInstances",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/instances",
        Some("prod"),
        "fc:ListInstances",
        "services/s.prod/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/logs",
        None,
        "fc:GetFunctionLogs",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s.prod/functions/f/logs",
        None,
        "fc:GetFunctionLogs",
        "services/s.prod/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/metrics",
        None,
        "fc:GetFunction",
        "services/s/functions/f",
    ),
    // Never qualified (the handler refuses a qualifier): the ARN stays the function's.
    (
        "GET",
        "/services/s/functions/f/metrics",
        Some("prod"),
        "fc:GetFunction",
        "services/s/functions/f",
    ),
    (
        "GET",
        "/services/s/functions/f/triggers",
        None,
        "fc:ListTriggers",
        "services/s/functions/f/triggers/*",
    ),
    (
        "POST",
        "/services/s/functions/f/triggers",
        None,
        "fc:CreateTrigger",
        "services/s/functions/f/triggers/*",
    ),
    (
        "GET",
        "/services/s/functions/f/triggers/t",
        None,
        "fc:GetTrigger",
        "services/s/functions/f/triggers/t",
    ),
    (
        "PUT",
        "/services/s/functions/f/triggers/t",
        None,
        "fc:UpdateTrigger",
        "services/s/functions/f/triggers/t",
    ),
    (
        "DELETE",
        "/services/s/functions/f/triggers/t",
        None,
        "fc:DeleteTrigger",
        "services/s/functions/f/triggers/t",
    ),
    (
        "GET",
        "/custom-domains",
        None,
        "fc:ListCustomDomains",
        "custom-domains/*",
    ),
    (
        "POST",
        "/custom-domains",
        None,
        "fc:CreateCustomDomain",
        "custom-domains/*",
    ),
    (
        "GET",
        "/custom-domains/example.com",
        None,
        "fc:GetCustomDomain",
        "custom-domains/example.com",
    ),
    (
        "PUT",
        "/custom-domains/example.com",
        None,
        "fc:UpdateCustomDomain",
        "custom-domains/example.com",
    ),
    (
        "DELETE",
        "/custom-domains/example.com",
        None,
        "fc:DeleteCustomDomain",
        "custom-domains/example.com",
    ),
    (
        "GET",
        "/services/s/bindings",
        None,
        "fc:ListVpcBindings",
        "services/s",
    ),
    (
        "POST",
        "/services/s/bindings",
        Some("prod"),
        "fc:CreateVpcBinding",
        "services/s",
    ),
    (
        "DELETE",
        "/services/s/bindings/vpc-1",
        None,
        "fc:DeleteVpcBinding",
        "services/s",
    ),
    ("POST", "/tag", None, "fc:TagResource", "*"),
    ("PUT", "/tag", None, "fc:UntagResource", "*"),
    ("DELETE", "/tag", None, "fc:UntagResource", "*"),
    ("GET", "/tag", None, "fc:GetResourceTags", "*"),
    ("GET", "/tags", None, "fc:ListTaggedResources", "*"),
    (
        "GET",
        "/account-settings",
        None,
        "fc:GetAccountSettings",
        "*",
    ),
    ("GET", "/layers", None, "fc:ListLayers", "layers/*"),
    (
        "GET",
        "/layers/lib/versions",
        None,
        "fc:ListLayerVersions",
        "layers/lib/versions/*",
    ),
    (
        "POST",
        "/layers/lib/versions",
        None,
        "fc:CreateLayerVersion",
        "layers/lib/versions/*",
    ),
    (
        "GET",
        "/layers/lib/versions/3",
        None,
        "fc:GetLayerVersion",
        "layers/lib/versions/3",
    ),
    (
        "DELETE",
        "/layers/lib/versions/3",
        None,
        "fc:DeleteLayerVersion",
        "layers/lib/versions/3",
    ),
    (
        "PUT",
        "/layers/lib/acl",
        None,
        "fc:PutLayerACL",
        "layers/lib",
    ),
];

#[test]
fn every_route_under_both_prefixes() {
    for prefix in API_PREFIXES {
        for (method, path, q, action, resource) in TABLE {
            let full = format!("{prefix}{path}");
            assert_eq!(
                op(method, &full, *q),
                Some((*action, resource.to_string())),
                "{method} {full} qualifier={q:?}"
            );
        }
    }
}

#[test]
fn every_table_route_is_tested() {
    for (pattern, methods) in ROUTES {
        for (method, action, _) in *methods {
            assert!(
                TABLE
                    .iter()
                    .any(|(m, _, _, a, _)| m == method && a == action),
                "{method} {pattern} ({action}) has no test"
            );
        }
    }
}

#[test]
fn methods_the_router_does_not_serve() {
    let p = "/2021-04-06/services/s/functions/f";
    assert_eq!(op("POST", p, None), None);
    assert_eq!(op("PATCH", p, None), None);
    assert_eq!(op("OPTIONS", p, None), None);
    assert_eq!(op("get", p, None), None, "methods are case-sensitive");
    // axum routes HEAD to the GET handler.
    assert_eq!(
        op("HEAD", p, None),
        Some(("fc:GetFunction", "services/s/functions/f".into()))
    );
    assert_eq!(
        op(
            "HEAD",
            "/2021-04-06/services/s/functions/f/invocations",
            None
        ),
        None
    );
}

#[test]
fn unknown_paths() {
    for path in [
        "",
        "/",
        "/services",
        "/2021-04-06",
        "/2021-04-06/",
        "/2021-04-06/services/",
        "/2021-04-06/services/s/",
        "/2021-04-06/services/s/functions/",
        "/2021-04-06/services/s/functions/f/",
        "/2021-04-06/Services",
        "/2021%2D04-06/services",
        "/2023-03-30/services",
        "/2021-04-06/layerarn/x",
        "/2021-04-06/layers/l",
        "/2021-04-06/services/s/functions/f/nothing",
        "/2021-04-06//services",
        "/code-packages/abc",
        "/metrics",
        "/status",
        "/2021-04-06/services?x=1",
    ] {
        assert_eq!(op("GET", path, None), None, "{path}");
    }
}

#[test]
fn segments_are_percent_decoded_like_the_router() {
    let plain = op("GET", "/2021-04-06/services/secret/functions/f", None);
    let encoded = op("GET", "/2021-04-06/services/secre%74/functions/f", None);
    assert_eq!(
        plain,
        Some(("fc:GetFunction", "services/secret/functions/f".into()))
    );
    assert_eq!(encoded, plain);
    assert_eq!(
        op(
            "POST",
            "/2016-08-15/services/%73ecret%2Eprod/functions/%66/invocations",
            None
        ),
        Some((
            "fc:InvokeFunction",
            "services/secret.prod/functions/f".into()
        ))
    );
    // Lower- and upper-case hex alike; `+` stays a `+` in a path.
    assert_eq!(
        op("GET", "/2021-04-06/services/a%2bb+c/functions/%c3%A9", None),
        Some(("fc:GetFunction", "services/a+b+c/functions/é".into()))
    );
    // An encoded slash stays inside its segment, as the handler sees it.
    assert_eq!(
        op("GET", "/2021-04-06/services/a%2Fb", None),
        Some(("fc:GetService", "services/a/b".into()))
    );
    // A `%` that is not an escape is kept, as percent-decoding keeps it.
    assert_eq!(
        op("GET", "/2021-04-06/services/100%", None),
        Some(("fc:GetService", "services/100%".into()))
    );
    // Not UTF-8 once decoded: axum refuses the request, so there is no operation.
    assert_eq!(op("GET", "/2021-04-06/services/%FF", None), None);
    assert_eq!(
        op("GET", "/2021-04-06/services/s/functions/%C3", None),
        None
    );
}

#[test]
fn empty_segments_route_as_the_router_routes_them() {
    // matchit lets a parameter in the middle of a path be empty, never a trailing one.
    assert_eq!(
        op("GET", "/2021-04-06/services//functions/f", None),
        Some(("fc:GetFunction", "services//functions/f".into()))
    );
    assert_eq!(op("GET", "/2021-04-06/services/s/functions/", None), None);
}

#[test]
fn qualifiers_as_the_handlers_read_them() {
    let invoke = |path: &str, q: Option<&str>| op("POST", path, q).map(|(_, r)| r);
    // The path's qualifier wins; an empty one is none (and the query is not consulted).
    assert_eq!(
        invoke(
            "/2021-04-06/services/s.a/functions/f/invocations",
            Some("b")
        ),
        Some("services/s.a/functions/f".into())
    );
    assert_eq!(
        invoke("/2021-04-06/services/s./functions/f/invocations", Some("b")),
        Some("services/s.LATEST/functions/f".into())
    );
    // Split at the first dot.
    assert_eq!(
        invoke("/2021-04-06/services/s.a.b/functions/f/invocations", None),
        Some("services/s.a.b/functions/f".into())
    );
    // Operations without a qualifier name the service alone.
    assert_eq!(
        op("PUT", "/2016-08-15/services/s.prod/functions/f", None),
        Some(("fc:UpdateFunction", "services/s/functions/f".into()))
    );
}

#[test]
fn query_qualifier_reads_the_query_like_the_handlers() {
    assert_eq!(query_qualifier(None), None);
    assert_eq!(query_qualifier(Some("")), None);
    assert_eq!(query_qualifier(Some("limit=3")), None);
    assert_eq!(query_qualifier(Some("qualifier=prod")), Some("prod".into()));
    assert_eq!(query_qualifier(Some("qualifier=")), Some("".into()));
    assert_eq!(
        query_qualifier(Some("qualifier=a&qualifier=b")),
        Some("b".into())
    );
    assert_eq!(
        query_qualifier(Some("qualifier=a+b%2Fc")),
        Some("a b/c".into())
    );
    assert_eq!(query_qualifier(Some("Qualifier=a")), None);
}

#[test]
fn arns() {
    assert_eq!(
        arn("cn-hangzhou", "123", "services/s.LATEST/functions/f"),
        "acs:fc:cn-hangzhou:123:services/s.LATEST/functions/f"
    );
}

// ---- FC 3.0 -------------------------------------------------------------------------------

/// Every 3.0 operation: (method, path below `/2023-03-30`, query qualifier, action, resource).
const V3_TABLE: &[(&str, &str, Option<&str>, &str, &str)] = &[
    (
        "POST",
        "/functions",
        None,
        "fc:CreateFunction",
        "functions/*",
    ),
    ("GET", "/functions", None, "fc:ListFunctions", "functions/*"),
    ("GET", "/functions/f", None, "fc:GetFunction", "functions/f"),
    (
        "GET",
        "/functions/f",
        Some("prod"),
        "fc:GetFunction",
        "functions/f",
    ),
    (
        "PUT",
        "/functions/f",
        None,
        "fc:UpdateFunction",
        "functions/f",
    ),
    (
        "DELETE",
        "/functions/f",
        None,
        "fc:DeleteFunction",
        "functions/f",
    ),
    (
        "GET",
        "/functions/f/code",
        Some("1"),
        "fc:GetFunctionCode",
        "functions/f",
    ),
    (
        "POST",
        "/functions/f/invoke/disable",
        None,
        "fc:DisableFunctionInvocation",
        "functions/f",
    ),
    (
        "POST",
        "/functions/f/invoke/enable",
        None,
        "fc:EnableFunctionInvocation",
        "functions/f",
    ),
    (
        "POST",
        "/functions/f/invocations",
        None,
        "fc:InvokeFunction",
        "functions/f",
    ),
    (
        "POST",
        "/functions/f/invocations",
        Some("prod"),
        "fc:InvokeFunction",
        "functions/f",
    ),
    (
        "POST",
        "/functions/svc%24fn/invocations",
        None,
        "fc:InvokeFunction",
        "functions/svc$fn",
    ),
    (
        "POST",
        "/functions/f/versions",
        None,
        "fc:PublishFunctionVersion",
        "functions/f/versions/*",
    ),
    (
        "GET",
        "/functions/f/versions",
        None,
        "fc:ListFunctionVersions",
        "functions/f/versions/*",
    ),
    (
        "DELETE",
        "/functions/f/versions/3",
        None,
        "fc:DeleteFunctionVersion",
        "functions/f/versions/3",
    ),
    (
        "POST",
        "/functions/f/aliases",
        None,
        "fc:CreateAlias",
        "functions/f/aliases/*",
    ),
    (
        "GET",
        "/functions/f/aliases",
        None,
        "fc:ListAliases",
        "functions/f/aliases/*",
    ),
    (
        "GET",
        "/functions/f/aliases/prod",
        None,
        "fc:GetAlias",
        "functions/f/aliases/prod",
    ),
    (
        "PUT",
        "/functions/f/aliases/prod",
        None,
        "fc:UpdateAlias",
        "functions/f/aliases/prod",
    ),
    (
        "DELETE",
        "/functions/f/aliases/prod",
        None,
        "fc:DeleteAlias",
        "functions/f/aliases/prod",
    ),
    (
        "POST",
        "/functions/f/triggers",
        None,
        "fc:CreateTrigger",
        "functions/f/triggers/*",
    ),
    (
        "GET",
        "/functions/f/triggers",
        None,
        "fc:ListTriggers",
        "functions/f/triggers/*",
    ),
    (
        "GET",
        "/functions/f/triggers/t",
        None,
        "fc:GetTrigger",
        "functions/f/triggers/t",
    ),
    (
        "PUT",
        "/functions/f/triggers/t",
        None,
        "fc:UpdateTrigger",
        "functions/f/triggers/t",
    ),
    (
        "DELETE",
        "/functions/f/triggers/t",
        None,
        "fc:DeleteTrigger",
        "functions/f/triggers/t",
    ),
    (
        "PUT",
        "/functions/f/async-invoke-config",
        Some("prod"),
        "fc:PutAsyncInvokeConfig",
        "functions/f",
    ),
    (
        "GET",
        "/functions/f/async-invoke-config",
        None,
        "fc:GetAsyncInvokeConfig",
        "functions/f",
    ),
    (
        "DELETE",
        "/functions/f/async-invoke-config",
        None,
        "fc:DeleteAsyncInvokeConfig",
        "functions/f",
    ),
    (
        "GET",
        "/async-invoke-configs",
        None,
        "fc:ListAsyncInvokeConfigs",
        "functions/*",
    ),
    (
        "GET",
        "/functions/f/async-tasks",
        None,
        "fc:ListAsyncTasks",
        "functions/f",
    ),
    (
        "GET",
        "/functions/f/async-tasks/task-1",
        None,
        "fc:GetAsyncTask",
        "functions/f/async-tasks/task-1",
    ),
    (
        "PUT",
        "/functions/f/async-tasks/task-1/stop",
        None,
        "fc:StopAsyncTask",
        "functions/f/async-tasks/task-1",
    ),
    (
        "PUT",
        "/functions/f/concurrency",
        None,
        "fc:PutConcurrencyConfig",
        "functions/f",
    ),
    (
        "GET",
        "/functions/f/concurrency",
        None,
        "fc:GetConcurrencyConfig",
        "functions/f",
    ),
    (
        "DELETE",
        "/functions/f/concurrency",
        None,
        "fc:DeleteConcurrencyConfig",
        "functions/f",
    ),
    (
        "GET",
        "/concurrency-configs",
        None,
        "fc:ListConcurrencyConfigs",
        "functions/*",
    ),
    (
        "PUT",
        "/functions/f/provision-config",
        Some("prod"),
        "fc:PutProvisionConfig",
        "functions/f",
    ),
    (
        "GET",
        "/functions/f/provision-config",
        None,
        "fc:GetProvisionConfig",
        "functions/f",
    ),
    (
        "DELETE",
        "/functions/f/provision-config",
        None,
        "fc:DeleteProvisionConfig",
        "functions/f",
    ),
    (
        "GET",
        "/provision-configs",
        None,
        "fc:ListProvisionConfigs",
        "functions/*",
    ),
    (
        "PUT",
        "/functions/f/scaling-config",
        None,
        "fc:PutScalingConfig",
        "functions/f",
    ),
    (
        "GET",
        "/functions/f/scaling-config",
        None,
        "fc:GetScalingConfig",
        "functions/f",
    ),
    (
        "DELETE",
        "/functions/f/scaling-config",
        None,
        "fc:DeleteScalingConfig",
        "functions/f",
    ),
    (
        "GET",
        "/scaling-configs",
        None,
        "fc:ListScalingConfigs",
        "functions/*",
    ),
    (
        "GET",
        "/functions/f/instances",
        None,
        "fc:ListInstances",
        "functions/f",
    ),
    (
        "POST",
        "/functions/f/vpc-bindings",
        None,
        "fc:CreateVpcBinding",
        "functions/f",
    ),
    (
        "GET",
        "/functions/f/vpc-bindings",
        None,
        "fc:ListVpcBindings",
        "functions/f",
    ),
    (
        "DELETE",
        "/functions/f/vpc-bindings/vpc-1",
        None,
        "fc:DeleteVpcBinding",
        "functions/f",
    ),
    (
        "POST",
        "/functions/f/sessions",
        None,
        "fc:CreateSession",
        "functions/f/sessions/*",
    ),
    (
        "GET",
        "/functions/f/sessions",
        None,
        "fc:ListSessions",
        "functions/f/sessions/*",
    ),
    (
        "GET",
        "/functions/f/sessions/s1",
        None,
        "fc:GetSession",
        "functions/f/sessions/s1",
    ),
    (
        "PUT",
        "/functions/f/sessions/s1",
        None,
        "fc:UpdateSession",
        "functions/f/sessions/s1",
    ),
    (
        "DELETE",
        "/functions/f/sessions/s1",
        None,
        "fc:DeleteSession",
        "functions/f/sessions/s1",
    ),
    (
        "PUT",
        "/functions/f/sessions/s1/pause",
        None,
        "fc:PauseSession",
        "functions/f/sessions/s1",
    ),
    (
        "PUT",
        "/functions/f/sessions/s1/resume",
        None,
        "fc:ResumeSession",
        "functions/f/sessions/s1",
    ),
    (
        "POST",
        "/functions/f/snapshots",
        None,
        "fc:CreateSnapshot",
        "functions/f/snapshots/*",
    ),
    (
        "GET",
        "/functions/f/snapshots/snap",
        None,
        "fc:GetSnapshot",
        "functions/f/snapshots/snap",
    ),
    (
        "DELETE",
        "/functions/f/snapshots/snap",
        None,
        "fc:DeleteSnapshot",
        "functions/f/snapshots/snap",
    ),
    ("GET", "/snapshots", None, "fc:ListSnapshots", "functions/*"),
    ("GET", "/layers", None, "fc:ListLayers", "layers/*"),
    (
        "POST",
        "/layers/l/versions",
        None,
        "fc:CreateLayerVersion",
        "layers/l/versions/*",
    ),
    (
        "GET",
        "/layers/l/versions",
        None,
        "fc:ListLayerVersions",
        "layers/l/versions/*",
    ),
    (
        "GET",
        "/layers/l/versions/2",
        None,
        "fc:GetLayerVersion",
        "layers/l/versions/2",
    ),
    (
        "DELETE",
        "/layers/l/versions/2",
        None,
        "fc:DeleteLayerVersion",
        "layers/l/versions/2",
    ),
    ("PUT", "/layers/l/acl", None, "fc:PutLayerACL", "layers/l"),
    (
        "GET",
        "/layerarn/acs%3Afc%3Acn-hangzhou%3A123%3Alayers%2Fl%2Fversions%2F1",
        None,
        "fc:GetLayerVersionByArn",
        "layers/l/versions/1",
    ),
    (
        "POST",
        "/custom-domains",
        None,
        "fc:CreateCustomDomain",
        "custom-domains/*",
    ),
    (
        "GET",
        "/custom-domains",
        None,
        "fc:ListCustomDomains",
        "custom-domains/*",
    ),
    (
        "GET",
        "/custom-domains/a.example.com",
        None,
        "fc:GetCustomDomain",
        "custom-domains/a.example.com",
    ),
    (
        "PUT",
        "/custom-domains/a.example.com",
        None,
        "fc:UpdateCustomDomain",
        "custom-domains/a.example.com",
    ),
    (
        "DELETE",
        "/custom-domains/a.example.com",
        None,
        "fc:DeleteCustomDomain",
        "custom-domains/a.example.com",
    ),
    ("POST", "/tags-v2", None, "fc:TagResources", "*"),
    ("DELETE", "/tags-v2", None, "fc:UntagResources", "*"),
    ("GET", "/tags-v2", None, "fc:ListTagResources", "*"),
    ("GET", "/regions", None, "fc:DescribeRegions", "*"),
    (
        "PUT",
        "/resource-groups",
        None,
        "fc:ChangeResourceGroup",
        "*",
    ),
];

#[test]
fn every_v3_route() {
    for (method, path, q, action, resource) in V3_TABLE {
        let full = format!("{V3_PREFIX}{path}");
        assert_eq!(
            op(method, &full, *q),
            Some((*action, resource.to_string())),
            "{method} {full} qualifier={q:?}"
        );
    }
}

#[test]
fn every_v3_table_route_is_tested() {
    let mut count = 0;
    for (pattern, methods) in V3_ROUTES {
        for (method, action, _) in *methods {
            count += 1;
            assert!(
                V3_TABLE
                    .iter()
                    .any(|(m, _, _, a, _)| m == method && a == action),
                "{method} {pattern} ({action}) has no test"
            );
        }
    }
    // fc3-api.md §3: the Python client's 72 operations and the Node client's PutLayerACL.
    assert_eq!(count, 73);
}

#[test]
fn v3_actions_are_the_operation_names() {
    // One action per operation, never shared between two routes.
    let mut seen = std::collections::HashSet::new();
    for (_, methods) in V3_ROUTES {
        for (_, action, _) in *methods {
            assert!(action.starts_with("fc:"), "{action}");
            assert!(seen.insert(*action), "{action} appears twice");
        }
    }
}

#[test]
fn v3_names_are_decoded_like_the_router() {
    // The 3.0 SDKs encode `$` of a 2.0 function's 3.0 name, and any other reserved character.
    assert_eq!(
        op("GET", "/2023-03-30/functions/svc%24fn", None),
        Some(("fc:GetFunction", "functions/svc$fn".into()))
    );
    assert_eq!(
        op("GET", "/2023-03-30/functions/svc$fn", None),
        Some(("fc:GetFunction", "functions/svc$fn".into()))
    );
    assert_eq!(
        op("GET", "/2023-03-30/functions/%66%31/aliases/%70rod", None),
        Some(("fc:GetAlias", "functions/f1/aliases/prod".into()))
    );
    // An encoded slash stays inside the segment: no route escapes into another resource.
    assert_eq!(
        op("GET", "/2023-03-30/functions/a%2Ftriggers%2Ft", None),
        Some(("fc:GetFunction", "functions/a/triggers/t".into()))
    );
    assert_eq!(op("GET", "/2023-03-30/functions/%FF", None), None);
}

#[test]
fn v3_layer_arns() {
    let by_arn =
        |encoded: &str| op("GET", &format!("/2023-03-30/layerarn/{encoded}"), None).map(|(_, r)| r);
    // Lower-case escapes, and another account's (public) layer: checked as the layer's
    // relative name under the caller's account.
    assert_eq!(
        by_arn("acs%3afc%3acn-shanghai%3a999%3alayers%2fPython310%2fversions%2f7"),
        Some("layers/Python310/versions/7".into())
    );
    // Unencoded `:` is legal in a path segment; an unencoded `/` is another path.
    assert_eq!(
        by_arn("acs:fc:cn-hangzhou:123:layers%2Fl%2Fversions%2F1"),
        Some("layers/l/versions/1".into())
    );
    assert_eq!(by_arn("acs:fc:cn-hangzhou:123:layers/l/versions/1"), None);
    // Not a layer ARN: the handler refuses it; no grant on a named layer covers it.
    for bad in [
        "nonsense",
        "acs%3Afc%3Ar%3Aa%3Afunctions%2Ff",
        "acs%3Aoss%3Ar%3Aa%3Alayers%2Fl",
    ] {
        assert_eq!(by_arn(bad), Some("layers/?".into()), "{bad}");
    }
}

#[test]
fn v3_paths_are_not_2_0_paths() {
    for (method, path) in [
        ("GET", "/2023-03-30/services"),
        ("GET", "/2023-03-30/services/s/functions/f"),
        ("GET", "/2021-04-06/functions"),
        ("GET", "/2021-04-06/functions/f"),
        ("GET", "/2016-08-15/regions"),
        ("GET", "/2023-03-30/on-demand-configs"),
        ("GET", "/2023-03-30/functions/"),
        ("GET", "/2023-03-30/functions/f/"),
        ("GET", "/2023-03-30/functions/f/sessions/s1/other"),
        ("POST", "/2023-03-30/functions/f"),
        ("GET", "/2023-03-30/functions/f/invocations"),
        ("PUT", "/2023-03-30/functions/f/async-tasks/t"),
        ("GET", "/2023-03-30/tags"),
        ("GET", "/2023-03-30"),
    ] {
        assert_eq!(op(method, path, None), None, "{method} {path}");
    }
}

/// Percent-encodes any subset of a segment's characters.
fn encode_some(segment: &str, mask: &[bool]) -> String {
    let mut out = String::new();
    for (i, c) in segment.chars().enumerate() {
        if mask.get(i).copied().unwrap_or(false) || c == '/' || c == '%' || c == '?' || c == '#' {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

proptest! {
    #[test]
    fn never_panics(method in "[A-Za-z]{0,8}", path in "\\PC{0,80}", q in prop::option::of("\\PC{0,10}")) {
        let _ = operation(&method, &path, q.as_deref());
    }

    #[test]
    fn never_panics_on_route_shaped_paths(
        segs in prop::collection::vec(prop_oneof![
            Just("services".to_owned()), Just("functions".to_owned()), Just("".to_owned()),
            Just("invocations".to_owned()), "[a-z.%0-9A-F]{0,6}".prop_map(|s| s),
        ], 0..8),
        prefix in prop_oneof![Just("/2021-04-06"), Just("/2016-08-15")],
        method in prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE"), Just("HEAD")],
    ) {
        let path = format!("{prefix}/{}", segs.join("/"));
        let _ = operation(method, &path, None);
    }

    #[test]
    fn encoding_never_changes_the_operation(
        service in "\\PC{1,8}",
        function in "\\PC{1,8}",
        mask in prop::collection::vec(any::<bool>(), 16),
        q in prop::option::of("[a-zA-Z0-9]{0,5}"),
    ) {
        for (method, tail) in [("POST", "/invocations"), ("GET", ""), ("GET", "/code")] {
            let plain = format!(
                "/2021-04-06/services/{}/functions/{}{tail}",
                encode_some(&service, &[]),
                encode_some(&function, &[]),
            );
            let encoded = format!(
                "/2021-04-06/services/{}/functions/{}{tail}",
                encode_some(&service, &mask),
                encode_some(&function, &mask[8..]),
            );
            prop_assert_eq!(operation(method, &plain, q.as_deref()), operation(method, &encoded, q.as_deref()));
            let got = operation(method, &plain, q.as_deref());
            prop_assert!(got.is_some(), "{} {}", method, plain);
        }
    }
}

// ---- differential: the same requests through an axum router with the same routes ----------
//
// `fcd-api` routes with axum; this router is built the same way (the patterns of `ROUTES`,
// nested under both prefixes, only the methods the table names) and answers with the
// parameters its `Path` extractor decoded. `operation` must find a route exactly when axum
// does, and name the same parameters.

mod against_axum {
    use std::collections::BTreeMap;
    use std::sync::LazyLock;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::Path;
    use axum::http::{Method, Request, StatusCode};
    use axum::routing::{MethodFilter, on};
    use proptest::prelude::*;
    use tower::ServiceExt as _;

    use super::super::{ROUTES, V3_PREFIX, V3_ROUTES, route};

    /// Answers with the decoded parameters in a header (HEAD responses lose their body),
    /// hex-encoded JSON so any text fits.
    async fn echo(
        params: Result<Path<BTreeMap<String, String>>, axum::extract::rejection::PathRejection>,
    ) -> Result<[(&'static str, String); 1], StatusCode> {
        match params {
            Ok(Path(p)) => {
                let json = serde_json::to_string(&p).unwrap_or_default();
                let hex: String = json.bytes().map(|b| format!("{b:02x}")).collect();
                Ok([("x-params", hex)])
            }
            // Not UTF-8 once decoded: the handler never runs.
            Err(_) => Err(StatusCode::BAD_REQUEST),
        }
    }

    fn filter(method: &str) -> MethodFilter {
        match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "DELETE" => MethodFilter::DELETE,
            other => panic!("no filter for {other}"),
        }
    }

    /// A router of `routes`, each method of the table answered by [`echo`].
    fn echo_router(routes: &[(&str, super::super::Methods)]) -> Router {
        let mut api = Router::new();
        for (pattern, methods) in routes {
            let mut mr: Option<axum::routing::MethodRouter> = None;
            for (m, _, _) in *methods {
                mr = Some(match mr {
                    None => on(filter(m), echo),
                    Some(r) => r.on(filter(m), echo),
                });
            }
            if let Some(mr) = mr {
                api = api.route(pattern, mr);
            }
        }
        api
    }

    static APP: LazyLock<Router> = LazyLock::new(|| {
        let api = echo_router(ROUTES);
        Router::new()
            .nest("/2021-04-06", api.clone())
            .nest("/2016-08-15", api)
            .nest(V3_PREFIX, echo_router(V3_ROUTES))
            .fallback(|| async { StatusCode::NOT_FOUND })
            .method_not_allowed_fallback(|| async { StatusCode::METHOD_NOT_ALLOWED })
    });

    /// What axum does with the request: `Some(params)` when a handler ran, `None` when it
    /// answered not found, method not allowed or an undecodable path.
    fn axum_params(method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        let request = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).ok()?)
            .uri(path)
            .body(Body::empty())
            .ok()?;
        let runtime = tokio::runtime::Builder::new_current_thread().build().ok()?;
        let response = runtime.block_on(APP.clone().oneshot(request)).ok()?;
        if response.status() != StatusCode::OK {
            return None;
        }
        let hex = response.headers().get("x-params")?.to_str().ok()?;
        let json: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok())
            .collect::<Option<_>>()?;
        serde_json::from_slice(&json).ok()
    }

    fn ours(method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        route(method, path).map(|(_, _, params)| {
            params
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.into_owned()))
                .collect()
        })
    }

    /// Whether `path` can be sent as a request target at all (else there is nothing to compare).
    fn sendable(path: &str) -> bool {
        path.starts_with('/')
            && path
                .parse::<axum::http::Uri>()
                .is_ok_and(|u| u.path() == path)
    }

    #[test]
    fn table_routes_agree() {
        for prefix in super::API_PREFIXES {
            for (method, path, _, _, _) in super::TABLE {
                let full = format!("{prefix}{path}");
                assert_eq!(
                    ours(method, &full),
                    axum_params(method, &full),
                    "{method} {full}"
                );
                assert!(ours(method, &full).is_some());
            }
        }
    }

    #[test]
    fn v3_table_routes_agree() {
        for (method, path, _, _, _) in super::V3_TABLE {
            let full = format!("{V3_PREFIX}{path}");
            assert_eq!(
                ours(method, &full),
                axum_params(method, &full),
                "{method} {full}"
            );
            assert!(ours(method, &full).is_some());
        }
    }

    #[test]
    fn edge_cases_agree() {
        for path in [
            "/2021-04-06/services/secre%74/functions/f",
            "/2021-04-06/services/a%2Fb/functions/f",
            "/2021-04-06/services/%FF/functions/f",
            "/2021-04-06/services/%C3/functions/f",
            "/2021-04-06/services/100%/functions/f",
            "/2021-04-06/services/%zz/functions/f",
            "/2021-04-06/services//functions/f",
            "/2021-04-06/services/s/functions/",
            "/2021-04-06/services/",
            "/2021-04-06//services",
            "/2021-04-06/services/s.prod/functions/f/invocations",
            "/2021-04-06/services/s/functions/f/triggers/t",
            "/2021-04-06/custom-domains/a.b",
            "/2021-04-06/on-demand-configs",
            "/2021-04-06/on-demand-configs/",
            "/2021-04-06/Services",
            "/2023-03-30/functions/svc%24fn",
            "/2023-03-30/functions/svc$fn/invocations",
            "/2023-03-30/functions/a%2Fb/triggers/t",
            "/2023-03-30/functions/%FF/aliases/a",
            "/2023-03-30/functions//aliases/a",
            "/2023-03-30/functions/f/async-tasks/t/stop",
            "/2023-03-30/functions/f/async-tasks/t/stop/",
            "/2023-03-30/layerarn/acs%3Afc%3Ar%3A1%3Alayers%2Fl%2Fversions%2F1",
            "/2023-03-30/layerarn/acs:fc:r:1:layers/l/versions/1",
            "/2023-03-30/layerarn/",
            "/2023-03-30/tags-v2",
            "/2023-03-30/regions/",
            "/2023-03-30/services",
        ] {
            for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
                assert_eq!(
                    ours(method, path),
                    axum_params(method, path),
                    "{method} {path}"
                );
            }
        }
    }

    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop_oneof![
                Just("services"), Just("functions"), Just("invocations"), Just("versions"),
                Just("aliases"), Just("triggers"), Just("custom-domains"), Just("code"),
                Just("on-demand-config"), Just("stateful-async-invocations"), Just("instances"),
                Just("logs"), Just("metrics"), Just("layers"), Just("acl"),
                Just("async-invoke-config"), Just("provision-configs"),
                Just("async-tasks"), Just("stop"), Just("layers"), Just("layerarn"),
                Just("sessions"), Just("pause"), Just("concurrency"), Just("tags-v2"),
                Just("invoke"), Just("disable"), Just("regions"), Just("vpc-bindings"),
            ].prop_map(str::to_owned),
            2 => "[a-z.]{0,4}",
            2 => "(%[0-9A-Fa-f]{2}|%|[a-z.~+])*".prop_filter("short", |s| s.len() < 12),
            1 => "\\PC{0,3}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn generated_requests_agree(
            prefix in prop_oneof![
                Just("/2021-04-06"), Just("/2016-08-15"), Just("/2021-04-07"), Just("/2023-03-30"),
            ],
            segments in prop::collection::vec(segment(), 0..7),
            trailing in any::<bool>(),
            method in prop_oneof![Just("GET"), Just("HEAD"), Just("POST"), Just("PUT"), Just("DELETE")],
        ) {
            let mut path = format!("{prefix}/{}", segments.join("/"));
            if trailing {
                path.push('/');
            }
            prop_assume!(sendable(&path));
            prop_assert_eq!(ours(method, &path), axum_params(method, &path), "{} {}", method, path);
        }

        #[test]
        fn every_route_with_generated_parameters_agrees(
            route_index in any::<prop::sample::Index>(),
            prefix in prop_oneof![Just("/2021-04-06"), Just("/2016-08-15"), Just(V3_PREFIX)],
            values in prop::collection::vec(
                "(%[0-9A-Fa-f]{2}|%[0-9A-Fa-f]?|[a-zA-Z0-9._~+*!$&'()=:@-]|\\PC)*"
                    .prop_filter("short", |s| s.len() < 16),
                4,
            ),
            method in prop_oneof![Just("GET"), Just("HEAD"), Just("POST"), Just("PUT"), Just("DELETE")],
        ) {
            let routes = if prefix == V3_PREFIX { V3_ROUTES } else { ROUTES };
            let (pattern, _) = routes[route_index.index(routes.len())];
            // Replace each `{param}` of the pattern by a generated value.
            let mut path = String::from(prefix);
            let mut values = values.iter();
            for piece in pattern.split('/').skip(1) {
                path.push('/');
                if piece.starts_with('{') {
                    path.push_str(values.next().map(String::as_str).unwrap_or(""));
                } else {
                    path.push_str(piece);
                }
            }
            prop_assume!(sendable(&path));
            prop_assert_eq!(ours(method, &path), axum_params(method, &path), "{} {}", method, path);
        }
    }
}
