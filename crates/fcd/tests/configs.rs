//! Black-box tests of per-qualifier configs: on-demand limits (put, get, list, delete, and the
//! 429 they cause), provisioned instances started ahead of traffic, ListInstances, the
//! metrics listener and the signed /status page.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ACCOUNT, TestServer, zip_b64};

const SLOW: &str = r#"
import time
def handler(event, context):
    time.sleep(2)
    return "done"
"#;

const FAST: &str = r#"
import os
def handler(event, context):
    return os.environ.get("FC_INSTANCE_ID", "")
"#;

async fn python_function(srv: &TestServer, service: &str, name: &str, code: &str) {
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services",
            format!(r#"{{"serviceName":"{service}"}}"#),
        )
        .await;
    assert!(r.status == 200 || r.status == 409, "{:?}", r.body);
    let body = serde_json::json!({
        "functionName": name,
        "runtime": "python3",
        "handler": "index.handler",
        "timeout": 10,
        "instanceConcurrency": 1,
        "code": {"zipFile": zip_b64(&[("index.py", code, false)])},
    });
    let r = srv
        .call(
            "POST",
            &format!("/2021-04-06/services/{service}/functions"),
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
}

fn on_demand_path(service: &str, function: &str, qualifier: &str) -> String {
    format!(
        "/2021-04-06/services/{service}/functions/{function}/on-demand-config?qualifier={qualifier}"
    )
}

fn provision_path(service: &str, function: &str, qualifier: &str) -> String {
    format!(
        "/2021-04-06/services/{service}/functions/{function}/provision-config?qualifier={qualifier}"
    )
}

fn etag(r: &common::Reply) -> String {
    r.headers
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn on_demand_config_crud_and_instance_limit() {
    let srv = Arc::new(TestServer::start());
    python_function(&srv, "od", "slow", SLOW).await;

    // FC's rules: a qualifier is required, and it is LATEST or an alias, never a version.
    for (path, body) in [
        (
            "/2021-04-06/services/od/functions/slow/on-demand-config".to_owned(),
            r#"{"maximumInstanceCount":1}"#,
        ),
        (
            on_demand_path("od", "slow", "1"),
            r#"{"maximumInstanceCount":1}"#,
        ),
        (
            on_demand_path("od", "slow", "LATEST"),
            r#"{"maximumInstanceCount":-1}"#,
        ),
        (on_demand_path("od", "slow", "LATEST"), r#"{}"#),
    ] {
        let r = srv.call("PUT", &path, body).await;
        assert_eq!(r.status, 400, "{path} {body}");
        assert_eq!(r.error_code(), "InvalidArgument");
    }
    let r = srv
        .call(
            "PUT",
            &on_demand_path("od", "nope", "LATEST"),
            r#"{"maximumInstanceCount":1}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "FunctionNotFound")
    );
    let r = srv
        .call("GET", &on_demand_path("od", "slow", "LATEST"), "")
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "OnDemandConfigNotFound")
    );

    let r = srv
        .call(
            "PUT",
            &on_demand_path("od", "slow", "LATEST"),
            r#"{"maximumInstanceCount":1}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["resource"], format!("{ACCOUNT}#od#LATEST#slow"));
    assert_eq!(v["maximumInstanceCount"], 1);
    let first_etag = etag(&r);
    assert!(!first_etag.is_empty());

    // The 2016-08-15 form names the qualifier in the service segment.
    let r = srv
        .call(
            "GET",
            "/2016-08-15/services/od.LATEST/functions/slow/on-demand-config",
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["maximumInstanceCount"], 1);
    assert_eq!(etag(&r), first_etag);

    let r = srv
        .call_with(
            "PUT",
            &on_demand_path("od", "slow", "LATEST"),
            r#"{"maximumInstanceCount":2}"#,
            &[("if-match", "stale")],
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (412, "PreconditionFailed")
    );

    let r = srv.call("GET", "/2021-04-06/on-demand-configs", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["configs"],
        serde_json::json!([{"resource": format!("{ACCOUNT}#od#LATEST#slow"), "maximumInstanceCount": 1}])
    );
    let r = srv
        .call("GET", "/2021-04-06/on-demand-configs?prefix=other", "")
        .await;
    assert_eq!(r.json()["configs"], serde_json::json!([]));
    // The prefix selects by service name, with or without the account in front.
    for prefix in ["od", &format!("{ACCOUNT}%23od%23")] {
        let r = srv
            .call(
                "GET",
                &format!("/2021-04-06/on-demand-configs?prefix={prefix}"),
                "",
            )
            .await;
        assert_eq!(
            r.json()["configs"].as_array().map(Vec::len),
            Some(1),
            "{prefix}"
        );
    }

    // One instance at most, one request per instance: of four concurrent slow calls, some are
    // turned away with 429 ResourceExhausted.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let srv = srv.clone();
        tasks.push(tokio::spawn(async move {
            srv.call(
                "POST",
                "/2021-04-06/services/od/functions/slow/invocations",
                "",
            )
            .await
        }));
    }
    let (mut ok, mut throttled) = (0, 0);
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            200 => {
                assert_eq!(&r.body[..], b"done");
                ok += 1;
            }
            429 => {
                assert_eq!(r.error_code(), "ResourceExhausted");
                throttled += 1;
            }
            s => panic!("unexpected status {s}: {:?}", r.body),
        }
    }
    assert!(ok >= 1 && throttled >= 1, "ok {ok}, throttled {throttled}");
    // The server still serves.
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services/od/functions/slow/invocations",
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // 0 stops the function's invocations at once.
    let r = srv
        .call_with(
            "PUT",
            &on_demand_path("od", "slow", "LATEST"),
            r#"{"maximumInstanceCount":0}"#,
            &[("if-match", &first_etag)],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let zero_etag = etag(&r);
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services/od/functions/slow/invocations",
            "",
        )
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "ResourceExhausted")
    );

    // Deleting the config lifts the limit at once: two concurrent calls both run.
    let r = srv
        .call_with(
            "DELETE",
            &on_demand_path("od", "slow", "LATEST"),
            "",
            &[("if-match", "stale")],
        )
        .await;
    assert_eq!(r.status, 412);
    let r = srv
        .call_with(
            "DELETE",
            &on_demand_path("od", "slow", "LATEST"),
            "",
            &[("if-match", &zero_etag)],
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = srv
        .call("GET", &on_demand_path("od", "slow", "LATEST"), "")
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "OnDemandConfigNotFound")
    );
    let r = srv
        .call("DELETE", &on_demand_path("od", "slow", "LATEST"), "")
        .await;
    assert_eq!(r.status, 404);
    let (a, b) = tokio::join!(
        srv.call(
            "POST",
            "/2021-04-06/services/od/functions/slow/invocations",
            ""
        ),
        srv.call(
            "POST",
            "/2021-04-06/services/od/functions/slow/invocations",
            ""
        ),
    );
    assert_eq!(
        (a.status, b.status),
        (200, 200),
        "{:?} {:?}",
        a.body,
        b.body
    );

    // A function delete takes its LATEST on-demand config along.
    let r = srv
        .call(
            "PUT",
            &on_demand_path("od", "slow", "LATEST"),
            r#"{"maximumInstanceCount":3}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = srv
        .call("DELETE", "/2021-04-06/services/od/functions/slow", "")
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let r = srv.call("GET", "/2021-04-06/on-demand-configs", "").await;
    assert_eq!(r.json()["configs"], serde_json::json!([]));
}

#[tokio::test]
async fn provisioned_instances_start_before_traffic() {
    let srv = TestServer::start();
    python_function(&srv, "pv", "f", FAST).await;
    let r = srv
        .call("POST", "/2021-04-06/services/pv/versions", "{}")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services/pv/aliases",
            r#"{"aliasName":"prod","versionId":"1"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // FC keeps provisioned instances for aliases and versions only.
    for (path, body) in [
        (provision_path("pv", "f", "LATEST"), r#"{"target":1}"#),
        (
            "/2021-04-06/services/pv/functions/f/provision-config".to_owned(),
            r#"{"target":1}"#,
        ),
        (provision_path("pv", "f", "prod"), r#"{"target":10001}"#),
        (provision_path("pv", "f", "prod"), r#"{"target":-1}"#),
    ] {
        let r = srv.call("PUT", &path, body).await;
        assert_eq!(r.status, 400, "{path} {body}: {:?}", r.body);
        assert_eq!(r.error_code(), "InvalidArgument");
    }
    let r = srv
        .call(
            "PUT",
            &provision_path("pv", "f", "staging"),
            r#"{"target":1}"#,
        )
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (404, "AliasNotFound"));

    // Nothing provisioned yet: target 0.
    let r = srv
        .call("GET", &provision_path("pv", "f", "prod"), "")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json()["target"], 0);

    let body = serde_json::json!({
        "target": 2,
        "alwaysAllocateCPU": false,
        "scheduledActions": [{"name": "morning", "startTime": "2030-01-01T00:00:00Z",
            "endTime": "2031-01-01T00:00:00Z", "target": 3, "scheduleExpression": "cron(0 0 8 * * *)"}],
        "targetTrackingPolicies": [{"name": "p", "metricType": "ProvisionedConcurrencyUtilization",
            "metricTarget": 0.6, "minCapacity": 1, "maxCapacity": 4}],
    });
    let r = srv
        .call("PUT", &provision_path("pv", "f", "prod"), body.to_string())
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    assert_eq!(v["resource"], format!("{ACCOUNT}#pv#prod#f"));
    assert_eq!(v["target"], 2);
    assert_eq!(v["alwaysAllocateCPU"], false);
    assert_eq!(v["scheduledActions"], body["scheduledActions"]);
    assert_eq!(v["targetTrackingPolicies"], body["targetTrackingPolicies"]);
    assert!(v["current"].is_u64(), "{v}");

    // The reconciler brings the instances up without any invocation.
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let r = srv
            .call("GET", &provision_path("pv", "f", "prod"), "")
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        let v = r.json();
        if v["current"] == 2 {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "provisioned instances did not come up: {v} {}",
            srv.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(got["currentError"], "");
    let r = srv
        .call(
            "GET",
            "/2021-04-06/services/pv/functions/f/instances?qualifier=prod",
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let instances = r.json()["instances"].as_array().unwrap().clone();
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert!(
        instances.iter().all(|i| i["versionId"] == "1"),
        "{instances:?}"
    );
    let ids: Vec<String> = instances
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap().to_owned())
        .collect();
    let r = srv
        .call(
            "GET",
            &format!(
                "/2021-04-06/services/pv/functions/f/instances?instanceIds.1={}&limit=5",
                ids[1]
            ),
            "",
        )
        .await;
    assert_eq!(r.json()["instances"][0]["instanceId"], ids[1].as_str());
    assert_eq!(r.json()["instances"].as_array().unwrap().len(), 1);

    let r = srv
        .call(
            "GET",
            "/2021-04-06/provision-configs?serviceName=pv&qualifier=prod",
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let listed = r.json()["provisionConfigs"].clone();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["current"], 2);
    let r = srv
        .call("GET", "/2021-04-06/provision-configs?qualifier=prod", "")
        .await;
    assert_eq!(r.status, 400);

    // The first invocation by the alias lands on a provisioned instance: no cold start.
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services/pv/functions/f/invocations?qualifier=prod",
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let served_by = r
        .headers
        .get("x-fc-instance-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(ids.contains(&served_by), "{served_by} not in {ids:?}");
    let r = srv
        .call(
            "GET",
            "/2021-04-06/services/pv/functions/f/instances?qualifier=prod",
            "",
        )
        .await;
    assert_eq!(r.json()["instances"].as_array().unwrap().len(), 2);

    // Provisioned capacity is not dropped implicitly: the alias cannot go while it has some.
    let r = srv
        .call("DELETE", "/2021-04-06/services/pv/aliases/prod", "")
        .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (409, "ProvisionConfigExist")
    );
    let r = srv
        .call("PUT", &provision_path("pv", "f", "prod"), r#"{"target":0}"#)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = srv.call("GET", "/2021-04-06/provision-configs", "").await;
    assert_eq!(r.json()["provisionConfigs"], serde_json::json!([]));
    let r = srv
        .call("DELETE", "/2021-04-06/services/pv/aliases/prod", "")
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
}

#[tokio::test]
async fn metrics_are_on_their_own_listener_and_status_needs_a_signature() {
    let srv = TestServer::start_with(&common::METRICS);
    // The metrics listener serves them unsigned...
    let r = srv
        .raw_at(
            &srv.metrics_addr(),
            "GET",
            "/metrics",
            http::HeaderMap::new(),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.headers.get("content-type").unwrap(),
        "text/plain; version=0.0.4"
    );
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(text.contains("fcd_invocations_total"), "{text}");
    assert!(text.contains("fcd_replay_cache_entries"), "{text}");
    // ...and nothing else.
    let r = srv
        .raw_at(
            &srv.metrics_addr(),
            "GET",
            "/2021-04-06/services",
            http::HeaderMap::new(),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 404);

    // The API port serves no metrics, even to a signed request.
    let r = srv.call("GET", "/metrics", "").await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.error_code(), "PathNotSupported");

    // /status needs a signature.
    let r = srv
        .raw("GET", "/status", http::HeaderMap::new(), Vec::new())
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "AccessDenied");
    let v = srv.status().await;
    assert!(v["version"].is_string(), "{v}");
    assert!(v["uptimeSeconds"].is_u64(), "{v}");
    assert!(v["isolation"]["network"].is_string(), "{v}");
    assert!(v["limits"]["maxInstances"].is_u64(), "{v}");

    // Everything else still needs a signature.
    let r = srv
        .raw(
            "GET",
            "/2021-04-06/services",
            http::HeaderMap::new(),
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 403);
}
