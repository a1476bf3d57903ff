//! Function credentials on the prewarmed-jail path: a custom-runtime instance claimed from a
//! prewarmed jail gets the role's credentials in its environment from the assignment (the jail
//! was started before the function, or its credentials, were known) and in every call's
//! headers. Drives `fcd_runtime` as a library with this package's `fcd` binary as the jails'
//! init, since the control plane does not mint credentials yet.
//!
//! Needs root and a host that can jail (else it says so and passes).
#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fcd_core::FcError;
use fcd_runtime::sandbox::JailConfig;
use fcd_runtime::{
    CredentialSource, FunctionCredentials, FunctionSpec, InstanceLimit, InstanceManager,
    InvokeRequest, NetworkMode, Registry, RuntimeConfig, RuntimeOptions,
};
use serde_json::{Value, json};

/// The function's own server: answers with the credential headers of the call and the
/// credential variables of its environment.
const SERVER: &str = r#"#!/usr/bin/env python3
import http.server, json, os
HEADERS = ["x-fc-access-key-id", "x-fc-access-key-secret", "x-fc-security-token"]
ENV = ["ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
       "ALIBABA_CLOUD_SECURITY_TOKEN"]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        if n:
            self.rfile.read(n)
        body = json.dumps({"headers": {h: self.headers.get(h) for h in HEADERS},
                           "env": {k: os.environ.get(k) for k in ENV}}).encode()
        self.send_response(200)
        self.send_header("x-fc-status", "200")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ["FC_SERVER_PORT"])), Handler).serve_forever()
"#;

const SECRET: &str = "secret-jailed-7f3a";
const TOKEN: &str = "token-jailed-7f3a";

#[derive(Debug)]
struct Fixed(Arc<FunctionCredentials>);

#[async_trait::async_trait]
impl CredentialSource for Fixed {
    async fn credentials(&self) -> Result<Arc<FunctionCredentials>, FcError> {
        Ok(self.0.clone())
    }
}

#[tokio::test]
async fn a_prewarmed_jail_gets_the_role_credentials_with_its_assignment() {
    let test = "a_prewarmed_jail_gets_the_role_credentials_with_its_assignment";
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: {test}: needs root to jail instances");
        return;
    }
    if std::process::Command::new("python3")
        .args(["-c", "pass"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        eprintln!("SKIP: {test}: no python3 to run the custom-runtime test server");
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let tag = format!("cr{:08x}", std::process::id());
    let jail = match JailConfig::detect(
        std::path::PathBuf::from(env!("CARGO_BIN_EXE_fcd")),
        data.path(),
        &tag,
    )
    .await
    {
        Ok(j) => j,
        Err(why) => {
            eprintln!("SKIP: {test}: instances cannot be jailed here: {why}");
            return;
        }
    };
    let store = data.path().join("code");
    let code = store.join("pkg-with-role");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::set_permissions(&code, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bootstrap = code.join("bootstrap");
    std::fs::write(&bootstrap, SERVER).unwrap();
    std::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755)).unwrap();

    let runtimes = Registry::detect(&RuntimeOptions {
        python: "python3".into(),
        node: "node".into(),
        dir: data.path().join("runtime"),
        wasm: None,
    });
    let families = runtimes.describe()["prewarmedAtStart"]
        .as_array()
        .map_or(1, |f| f.len()) as u64;
    let mgr = InstanceManager::new(RuntimeConfig {
        region: "cn-hangzhou".into(),
        network: NetworkMode::Namespace,
        runtimes,
        start_timeout: Duration::from_secs(30),
        max_instances: 8,
        max_memory_mb: 4096,
        idle_timeout: Duration::from_secs(3600),
        jail: Some(jail),
        jail_unavailable: None,
        egress: None,
        egress_unavailable: None,
        prewarm: 1,
        code_store: Some(store.clone()),
    });
    mgr.start_prewarming();
    // Every family's default kind (custom at 128 MB among them) ready before the first call.
    let deadline = Instant::now() + Duration::from_secs(60);
    while mgr.isolation()["prewarmed"].as_u64().unwrap_or(0) < families {
        assert!(
            Instant::now() < deadline,
            "prewarmed jails never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let creds = Arc::new(FunctionCredentials {
        access_key_id: "STS.jailed".into(),
        access_key_secret: SECRET.into(),
        security_token: TOKEN.into(),
        expires_at: 4_000_000_000,
    });
    let function = serde_json::from_value(json!({
        "functionId": "id-jailed", "functionName": "jailed", "description": "",
        "runtime": "custom", "handler": "index.handler", "timeout": 30, "memorySize": 128,
        "instanceConcurrency": 1, "environmentVariables": {}, "initializer": "",
        "initializationTimeout": 3, "caPort": 9000, "instanceType": "e1", "layers": [],
        "layersArnV2": [], "codeChecksum": "0", "codeSize": 0,
        "createdTime": "2024-01-01T00:00:00Z", "lastModifiedTime": "2024-01-01T00:00:00Z",
    }))
    .unwrap();
    let spec = FunctionSpec {
        account_id: "1234".into(),
        service_name: "svc".into(),
        log_project: String::new(),
        log_store: String::new(),
        function,
        code_dir: code,
        image: None,
        layers: None,
        internet_access: false,
        version_id: None,
        limit: InstanceLimit::Unlimited,
        revision: "r1".into(),
        generation: 1,
        credentials: Some(Arc::new(Fixed(creds)) as Arc<dyn CredentialSource>),
    };
    let out = mgr
        .invoke(
            &spec,
            InvokeRequest {
                request_id: "req-jailed".into(),
                qualifier: "LATEST".into(),
                trace_id: None,
                body: Bytes::from_static(b"{}").into(),
                log_tail: false,
                retry_count: 0,
                http: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        out.error_type,
        None,
        "{}",
        String::from_utf8_lossy(&out.body)
    );
    let got: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        got["headers"],
        json!({"x-fc-access-key-id": "STS.jailed", "x-fc-access-key-secret": SECRET,
               "x-fc-security-token": TOKEN})
    );
    assert_eq!(
        got["env"],
        json!({"ALIBABA_CLOUD_ACCESS_KEY_ID": "STS.jailed",
               "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET, "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN})
    );
    // The instance came from a prewarmed jail: a jail started for the function carries its
    // environment in its init's spec, a prewarmed one got it through the assignment pipe only.
    let inits = common::jail_init_environs(data.path());
    assert!(!inits.is_empty(), "no jail init of this test found");
    for env in &inits {
        assert!(
            !env.contains(SECRET) && !env.contains(TOKEN),
            "the instance was started afresh, not from a prewarmed jail"
        );
    }
    mgr.shutdown(Duration::from_secs(10)).await;
}
