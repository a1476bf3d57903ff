//! Function credentials through the real instance manager: a custom-runtime instance (a small
//! Python HTTP server standing in for the function's own) reports which credential headers each
//! call brought and which credential variables its environment holds.

#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fcd_core::FcError;
use fcd_runtime::{
    CredentialSource, FunctionCredentials, FunctionSpec, InstanceLimit, InstanceManager,
    InvokeError, InvokeRequest, NetworkMode, Registry, RuntimeConfig, RuntimeOptions, StartError,
};
use serde_json::{Value, json};

/// The function's own server: answers every call with what it saw, and writes what a
/// lifecycle hook saw to `$HOOK_OUT/<hook>.json` (a hook's answer goes nowhere).
const SERVER: &str = r#"#!/usr/bin/env python3
import http.server, json, os
HEADERS = ["x-fc-access-key-id", "x-fc-access-key-secret", "x-fc-security-token"]
ENV = ["ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
       "ALIBABA_CLOUD_SECURITY_TOKEN", "accessKeyID", "accessKeySecret", "securityToken"]
seen = {}

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self):
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        got = {h: self.headers.get(h) for h in HEADERS}
        seen[self.path] = got
        if self.path in ("/pre-stop", "/pre-freeze"):
            with open(os.path.join(os.environ["HOOK_OUT"], self.path[1:] + ".json"), "w") as f:
                json.dump(got, f)
        body = json.dumps({"seen": seen, "env": {k: os.environ.get(k) for k in ENV}}).encode()
        self.send_response(200)
        self.send_header("x-fc-status", "200")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = answer
    do_POST = answer

http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
"#;

/// A source whose credentials the test replaces, that fails while `failing` is set, and counts
/// how often it is asked.
#[derive(Debug)]
struct TestSource {
    current: Mutex<Arc<FunctionCredentials>>,
    failing: std::sync::atomic::AtomicBool,
    calls: AtomicU32,
}

impl TestSource {
    fn new(tag: &str) -> Arc<TestSource> {
        Arc::new(TestSource {
            current: Mutex::new(Arc::new(creds(tag))),
            failing: false.into(),
            calls: AtomicU32::new(0),
        })
    }

    fn rotate(&self, tag: &str) {
        *self.current.lock().unwrap() = Arc::new(creds(tag));
    }

    fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl CredentialSource for TestSource {
    async fn credentials(&self) -> Result<Arc<FunctionCredentials>, FcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(FcError::AccessDenied(
                "the role acs:ram::1234:role/fn-role cannot be assumed".into(),
            ));
        }
        Ok(self.current.lock().unwrap().clone())
    }
}

fn creds(tag: &str) -> FunctionCredentials {
    FunctionCredentials {
        access_key_id: format!("STS.{tag}"),
        access_key_secret: format!("secret-{tag}"),
        security_token: format!("token-{tag}"),
        // Far from expiry: nothing here depends on the clock.
        expires_at: 4_000_000_000,
    }
}

/// The headers a call carried, as the instance saw them.
fn headers_of(tag: &str) -> Value {
    json!({
        "x-fc-access-key-id": format!("STS.{tag}"),
        "x-fc-access-key-secret": format!("secret-{tag}"),
        "x-fc-security-token": format!("token-{tag}"),
    })
}

fn env_of(tag: &str) -> Value {
    json!({
        "ALIBABA_CLOUD_ACCESS_KEY_ID": format!("STS.{tag}"),
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": format!("secret-{tag}"),
        "ALIBABA_CLOUD_SECURITY_TOKEN": format!("token-{tag}"),
        "accessKeyID": format!("STS.{tag}"),
        "accessKeySecret": format!("secret-{tag}"),
        "securityToken": format!("token-{tag}"),
    })
}

fn no_headers() -> Value {
    json!({"x-fc-access-key-id": null, "x-fc-access-key-secret": null, "x-fc-security-token": null})
}

fn no_env() -> Value {
    json!({
        "ALIBABA_CLOUD_ACCESS_KEY_ID": null, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": null,
        "ALIBABA_CLOUD_SECURITY_TOKEN": null, "accessKeyID": null, "accessKeySecret": null,
        "securityToken": null,
    })
}

struct Fixture {
    _dir: tempfile::TempDir,
    code: PathBuf,
    hook_out: PathBuf,
    mgr: InstanceManager,
}

/// `None` (after saying so) where there is no `python3` to run the function's server with.
fn fixture() -> Option<Fixture> {
    if std::process::Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("SKIPPED: no python3 on PATH to run the custom-runtime test server");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    let hook_out = dir.path().join("hooks");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::create_dir_all(&hook_out).unwrap();
    let bootstrap = code.join("bootstrap");
    std::fs::write(&bootstrap, SERVER).unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();
    let runtimes = Registry::detect(&RuntimeOptions {
        python: "python3".into(),
        node: "node".into(),
        dir: dir.path().join("runtime"),
        wasm: None,
    });
    let mgr = InstanceManager::new(RuntimeConfig {
        region: "cn-hangzhou".into(),
        network: NetworkMode::Host,
        runtimes,
        start_timeout: Duration::from_secs(30),
        max_instances: 8,
        max_memory_mb: 4096,
        idle_timeout: Duration::from_secs(3600),
        jail: None,
        jail_unavailable: None,
        egress: None,
        egress_unavailable: None,
        prewarm: 0,
        code_store: None,
    });
    Some(Fixture {
        _dir: dir,
        code,
        hook_out,
        mgr,
    })
}

fn spec(
    name: &str,
    code: &Path,
    hook_out: &Path,
    source: Option<Arc<dyn CredentialSource>>,
) -> FunctionSpec {
    let function = serde_json::from_value(json!({
        "functionId": format!("id-{name}"), "functionName": name, "description": "",
        "runtime": "custom", "handler": "index.handler", "timeout": 30, "memorySize": 128,
        "instanceConcurrency": 1,
        "environmentVariables": {"HOOK_OUT": hook_out.display().to_string()},
        "initializer": "index.init", "initializationTimeout": 30, "caPort": 9000,
        "instanceLifecycleConfig": {"preStop": {"handler": "index.stop", "timeout": 10}},
        "instanceType": "e1", "layers": [], "layersArnV2": [], "codeChecksum": "0",
        "codeSize": 0, "createdTime": "2024-01-01T00:00:00Z",
        "lastModifiedTime": "2024-01-01T00:00:00Z",
    }))
    .unwrap();
    FunctionSpec {
        account_id: "1234".into(),
        service_name: "svc".into(),
        log_project: String::new(),
        log_store: String::new(),
        function,
        code_dir: code.to_path_buf(),
        image: None,
        layers: None,
        internet_access: false,
        version_id: None,
        limit: InstanceLimit::Unlimited,
        revision: "r1".into(),
        generation: 1,
        credentials: source,
    }
}

fn request(n: u32) -> InvokeRequest {
    InvokeRequest {
        request_id: format!("req-{n}"),
        qualifier: "LATEST".into(),
        trace_id: None,
        body: Bytes::from_static(b"{}").into(),
        log_tail: false,
        retry_count: 0,
        http: None,
    }
}

/// What the instance reported, from a successful invocation.
fn report(out: &fcd_runtime::InvokeOutcome) -> Value {
    assert_eq!(
        out.error_type,
        None,
        "{:?}",
        String::from_utf8_lossy(&out.body)
    );
    serde_json::from_slice(&out.body).unwrap()
}

#[tokio::test]
async fn role_credentials_reach_a_custom_runtime_on_every_call_and_in_its_environment() {
    let Some(fx) = fixture() else { return };
    let source = TestSource::new("one");
    let spec = spec(
        "with-role",
        &fx.code,
        &fx.hook_out,
        Some(source.clone() as Arc<dyn CredentialSource>),
    );

    // Cold start: /initialize and /invoke carry the headers, the environment the same.
    let first = fx.mgr.invoke(&spec, request(1)).await.unwrap();
    let r = report(&first);
    assert_eq!(r["seen"]["/initialize"], headers_of("one"));
    assert_eq!(r["seen"]["/invoke"], headers_of("one"));
    assert_eq!(r["env"], env_of("one"));
    assert_eq!(source.calls(), 1, "one ask per invocation, start included");

    // Rotated: a warm instance gets the new credentials in its headers; its environment keeps
    // the ones it started with.
    source.rotate("two");
    let second = fx.mgr.invoke(&spec, request(2)).await.unwrap();
    assert_eq!(second.instance_id, first.instance_id);
    let r = report(&second);
    assert_eq!(r["seen"]["/invoke"], headers_of("two"));
    assert_eq!(r["env"], env_of("one"));
    assert_eq!(source.calls(), 2);

    // preStop asks the source again and carries what it holds now.
    source.rotate("three");
    fx.mgr.shutdown(Duration::from_secs(10)).await;
    let hook: Value =
        serde_json::from_slice(&std::fs::read(fx.hook_out.join("pre-stop.json")).unwrap()).unwrap();
    assert_eq!(hook, headers_of("three"));
    assert_eq!(source.calls(), 3);
}

#[tokio::test]
async fn without_a_source_no_credentials_are_sent_or_set() {
    let Some(fx) = fixture() else { return };
    let spec = spec("no-role", &fx.code, &fx.hook_out, None);
    let out = fx.mgr.invoke(&spec, request(1)).await.unwrap();
    let r = report(&out);
    assert_eq!(r["seen"]["/initialize"], no_headers());
    assert_eq!(r["seen"]["/invoke"], no_headers());
    assert_eq!(r["env"], no_env());
    fx.mgr.shutdown(Duration::from_secs(10)).await;
    let hook: Value =
        serde_json::from_slice(&std::fs::read(fx.hook_out.join("pre-stop.json")).unwrap()).unwrap();
    assert_eq!(hook, no_headers());
}

#[tokio::test]
async fn a_failing_source_fails_the_invocation_with_its_error_and_harms_no_instance() {
    let Some(fx) = fixture() else { return };
    let denied =
        || FcError::AccessDenied("the role acs:ram::1234:role/fn-role cannot be assumed".into());

    // Failing from the first call: nothing is started.
    let cold = TestSource::new("cold");
    cold.failing.store(true, Ordering::SeqCst);
    let cold_spec = spec(
        "fails-cold",
        &fx.code,
        &fx.hook_out,
        Some(cold.clone() as Arc<dyn CredentialSource>),
    );
    match fx.mgr.invoke(&cold_spec, request(1)).await {
        Err(InvokeError::Start(StartError::Credentials(e))) => assert_eq!(e, denied()),
        other => panic!("expected the source's error, got {other:?}"),
    }
    assert_eq!(cold.calls(), 1);
    assert_eq!(fx.mgr.instance_count(), 0);

    // Failing while an instance is warm: the invocation fails, the instance stays and serves
    // the next one.
    let warm = TestSource::new("warm");
    let warm_spec = spec(
        "fails-warm",
        &fx.code,
        &fx.hook_out,
        Some(warm.clone() as Arc<dyn CredentialSource>),
    );
    let first = fx.mgr.invoke(&warm_spec, request(2)).await.unwrap();
    warm.failing.store(true, Ordering::SeqCst);
    match fx.mgr.invoke(&warm_spec, request(3)).await {
        Err(InvokeError::Start(StartError::Credentials(e))) => assert_eq!(e, denied()),
        other => panic!("expected the source's error, got {other:?}"),
    }
    assert_eq!(fx.mgr.instance_count(), 1);
    warm.failing.store(false, Ordering::SeqCst);
    let again = fx.mgr.invoke(&warm_spec, request(4)).await.unwrap();
    assert_eq!(again.instance_id, first.instance_id);
    assert_eq!(report(&again)["seen"]["/invoke"], headers_of("warm"));
    assert_eq!(warm.calls(), 3);
    fx.mgr.shutdown(Duration::from_secs(10)).await;
}
