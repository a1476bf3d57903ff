//! The async engine on a shared queue (NATS JetStream + PostgreSQL): two engines, as two
//! nodes, on one stream and one database. Needs `FCD_TEST_NATS`, `FCD_TEST_POSTGRES`
//! (scripts/services) and `python3` (the function's server); without them each test says
//! SKIPPED and returns — unless `FCD_REQUIRE_SERVICES=1`.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use fcd_control::Control;
use fcd_control::asynchronous::AsyncEngine;
use fcd_core::model::{FunctionUpdate, ServiceUpdate};
use fcd_queue::{NatsConfig, Queue, Status};
use fcd_runtime::{InstanceManager, NetworkMode, Registry, RuntimeConfig, RuntimeOptions};
use fcd_store::{MetadataStore, SqliteStore};
use serde_json::json;
use sqlx::Connection;

const ACC: &str = "1234";

/// The function: sleeps as long as the payload says (seconds), then answers.
const SERVER: &str = r#"#!/usr/bin/env python3
import http.server, os, time

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b"0"
        time.sleep(float(body or b"0"))
        self.send_response(200)
        self.send_header("x-fc-status", "200")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
"#;

/// The services, or `None` after saying SKIPPED (a failure under `FCD_REQUIRE_SERVICES=1`).
fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("FCD_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{var} is not set and FCD_REQUIRE_SERVICES=1");
            }
            eprintln!("SKIPPED (set {var}; scripts/services starts one)");
            None
        }
    }
}

fn suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{n:x}{:x}", std::process::id())
}

async fn database(base: &str) -> String {
    let name = format!("t_{}", suffix());
    let mut conn = sqlx::PgConnection::connect(base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    format!("{head}/{name}")
}

fn code_zip() -> String {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
        z.start_file("bootstrap", opts).unwrap();
        z.write_all(SERVER.as_bytes()).unwrap();
        z.finish().unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(buf.into_inner())
}

/// One node: its own instance manager and control plane over the shared metadata and code.
fn node(dir: &std::path::Path, store: Arc<dyn MetadataStore>, name: &str) -> Arc<Control> {
    let code = fcd_store::code::CodeStore::open(dir.join("code")).unwrap();
    let runtime = Arc::new(InstanceManager::new(RuntimeConfig {
        region: "cn-test".into(),
        network: NetworkMode::Host,
        runtimes: Registry::detect(&RuntimeOptions {
            python: "python3".into(),
            node: "node".into(),
            dir: dir.join(format!("runtime-{name}")),
            wasm: None,
        }),
        start_timeout: Duration::from_secs(30),
        max_instances: 4,
        max_memory_mb: 2048,
        idle_timeout: Duration::from_secs(3600),
        jail: None,
        jail_unavailable: None,
        egress: None,
        egress_unavailable: None,
        prewarm: 0,
        code_store: None,
    }));
    let iam = Arc::new(fcd_control::iam::Iam::new(
        store.clone(),
        fcd_control::iam::IamConfig {
            region: "cn-test".into(),
            root_keys: vec![],
            token_key: fcd_iam::TokenKey::derive(b"test"),
            min_session_duration_secs: 900,
        },
    ));
    Arc::new(Control::new(
        store,
        code,
        runtime,
        "cn-test".into(),
        b"secret".to_vec(),
        iam,
    ))
}

async fn status(q: &Queue, id: &str) -> Option<Status> {
    q.records()
        .get(ACC, "s", "slow", id)
        .await
        .unwrap()
        .map(|i| i.status)
}

async fn wait_for(q: &Queue, id: &str, want: Status, within: Duration) {
    let until = tokio::time::Instant::now() + within;
    loop {
        let got = status(q, id).await;
        if got == Some(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "{id}: {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two nodes (engines `one` and `two`, on queues `qa` and `qb`) sharing a function `s/slow`,
/// or `None` when the services are missing. Neither engine is started.
struct Cluster {
    _dir: tempfile::TempDir,
    one: Arc<AsyncEngine>,
    two: Arc<AsyncEngine>,
    qb: Queue,
}

async fn cluster() -> Option<Cluster> {
    let (Some(pg), Some(nats)) = (service("FCD_TEST_POSTGRES"), service("FCD_TEST_NATS")) else {
        return None;
    };
    if std::process::Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("SKIPPED: no python3 on PATH to run the function's server");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn MetadataStore> = Arc::new(
        SqliteStore::open(&dir.path().join("meta.db"))
            .await
            .unwrap(),
    );
    let a = node(dir.path(), store.clone(), "a");
    let b = node(dir.path(), store, "b");
    let service: ServiceUpdate = serde_json::from_value(json!({"serviceName": "s"})).unwrap();
    a.create_service(ACC, service).await.unwrap();
    let function: FunctionUpdate = serde_json::from_value(json!({
        "functionName": "slow", "runtime": "custom", "handler": "index.handler",
        "timeout": 120, "memorySize": 128, "code": {"zipFile": code_zip()},
    }))
    .unwrap();
    a.create_function(ACC, "s", function, None).await.unwrap();

    let db = database(&pg).await;
    let s = suffix();
    let cfg = NatsConfig {
        url: nats,
        stream: format!("T_{s}"),
        subject: format!("t.{s}.work"),
        consumer: format!("w{s}"),
        ack_wait: Duration::from_secs(30),
    };
    let qa = Queue::nats_with(cfg.clone(), &db).await.unwrap();
    let qb = Queue::nats_with(cfg, &db).await.unwrap();
    let retention = Duration::from_secs(86_400);
    let one = Arc::new(AsyncEngine::new(qa, a, 4, retention, "a"));
    let two = Arc::new(AsyncEngine::new(qb.clone(), b, 4, retention, "b"));
    Some(Cluster {
        _dir: dir,
        one,
        two,
        qb,
    })
}

async fn accept(e: &AsyncEngine, id: &str, seconds: &'static str) {
    e.accept(
        ACC,
        "s",
        "slow",
        None,
        Bytes::from_static(seconds.as_bytes()),
        &format!("req-{id}"),
        None,
        Some(id),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_asked_of_one_node_stops_the_call_running_on_another() {
    let Some(Cluster { _dir, one, two, qb }) = cluster().await else {
        return;
    };
    // Node b answers the API only: its dispatcher never runs, so node a runs every call.
    one.start().await.unwrap();

    // Accepted through b, run on a.
    let id = two
        .accept(
            ACC,
            "s",
            "slow",
            None,
            Bytes::from_static(b"60"),
            "req-1",
            None,
            Some("job1"),
        )
        .await
        .unwrap();
    assert_eq!(id.as_deref(), Some("job1"));
    wait_for(&qb, "job1", Status::Running, Duration::from_secs(30)).await;
    // A second accept of the same id is refused on either node.
    let dup = one
        .accept(
            ACC,
            "s",
            "slow",
            None,
            Bytes::from_static(b"0"),
            "req-2",
            None,
            Some("job1"),
        )
        .await;
    assert!(dup.is_err(), "{dup:?}");

    // Stop asked of b: a sees it at its next lease extension (every 2 s) and drops the call.
    let asked = std::time::Instant::now();
    two.stop(ACC, "s", "slow", "job1").await.unwrap();
    wait_for(&qb, "job1", Status::Stopped, Duration::from_secs(6)).await;
    assert!(asked.elapsed() < Duration::from_secs(6));
    let rec = qb
        .records()
        .get(ACC, "s", "slow", "job1")
        .await
        .unwrap()
        .unwrap();
    let events: Vec<_> = rec.events.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(events, ["Enqueued", "Running", "Stopping", "Stopped"]);

    // Stop asked of the node running it: stopped at once, before any lease extension.
    accept(&two, "job3", "60").await;
    wait_for(&qb, "job3", Status::Running, Duration::from_secs(30)).await;
    one.stop(ACC, "s", "slow", "job3").await.unwrap();
    wait_for(&qb, "job3", Status::Stopped, Duration::from_millis(1500)).await;
    // Told to a node that does not run it: nothing to stop there.
    assert!(!two.cancel_local(ACC, "s", "slow", "job3"));

    // A short call runs to its end, once.
    two.accept(
        ACC,
        "s",
        "slow",
        None,
        Bytes::from_static(b"0"),
        "req-3",
        None,
        Some("job2"),
    )
    .await
    .unwrap();
    wait_for(&qb, "job2", Status::Succeeded, Duration::from_secs(30)).await;
    one.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_hands_back_what_it_runs_and_another_node_finishes_it() {
    let Some(Cluster { _dir, one, two, qb }) = cluster().await else {
        return;
    };
    one.start().await.unwrap();
    accept(&two, "long", "3").await;
    wait_for(&qb, "long", Status::Running, Duration::from_secs(30)).await;
    let handed = one
        .drain(tokio::time::Instant::now() + Duration::from_millis(300))
        .await;
    assert_eq!(handed, 1);
    assert_eq!(status(&qb, "long").await, Some(Status::Retrying));
    // Node a claims nothing more; node b takes it over and runs it to its end, once.
    two.start().await.unwrap();
    wait_for(&qb, "long", Status::Succeeded, Duration::from_secs(30)).await;
    let rec = qb
        .records()
        .get(ACC, "s", "slow", "long")
        .await
        .unwrap()
        .unwrap();
    let events: Vec<_> = rec.events.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(
        events,
        ["Enqueued", "Running", "Retrying", "Running", "Succeeded"]
    );
    one.close();
    two.close();
}
