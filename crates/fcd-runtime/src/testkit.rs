//! What the crate's unit tests share: a function config, an in-memory instance backend that
//! records what it is sent, and credential sources.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fcd_core::FcError;
use fcd_core::model::Function;
use http::{HeaderMap, Method};

use crate::backend::{BoxFuture, CallResult, ExitInfo, RunningInstance};
use crate::credentials::{CredentialSource, FunctionCredentials};
use crate::logs::Logs;

/// A function config as the control plane would hand it over; `extra` overrides fields.
pub(crate) fn function(extra: serde_json::Value) -> Function {
    let mut v = serde_json::json!({
        "functionId": "f-1", "functionName": "fn", "description": "", "runtime": "custom",
        "handler": "index.handler", "timeout": 30, "memorySize": 128,
        "instanceConcurrency": 1, "environmentVariables": {}, "initializer": "",
        "initializationTimeout": 3, "caPort": 9000, "instanceType": "e1", "layers": [],
        "layersArnV2": [], "codeChecksum": "0", "codeSize": 0,
        "createdTime": "2024-01-01T00:00:00Z", "lastModifiedTime": "2024-01-01T00:00:00Z",
    });
    if let (Some(base), Some(more)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in more {
            base.insert(k.clone(), x.clone());
        }
    }
    serde_json::from_value(v).expect("test function config")
}

/// A server config for tests that start nothing: no interpreters, no jail, host network.
pub(crate) fn config_for_tests(dir: &std::path::Path) -> crate::RuntimeConfig {
    crate::RuntimeConfig {
        region: "cn-test".into(),
        network: crate::NetworkMode::Host,
        runtimes: crate::Registry::detect(&crate::RuntimeOptions {
            python: "/nonexistent/python3".into(),
            node: "/nonexistent/node".into(),
            dir: dir.to_path_buf(),
            wasm: None,
        }),
        start_timeout: Duration::from_secs(1),
        max_instances: 1,
        max_memory_mb: 128,
        idle_timeout: Duration::from_secs(1),
        jail: None,
        jail_unavailable: None,
        egress: None,
        egress_unavailable: None,
        prewarm: 0,
        code_store: None,
    }
}

/// A spec of [`function`]`({})` in service `svc`, as the control plane would resolve it.
pub(crate) fn spec_for_tests() -> crate::FunctionSpec {
    crate::FunctionSpec {
        account_id: "1".into(),
        service_name: "svc".into(),
        log_project: String::new(),
        log_store: String::new(),
        function: function(serde_json::json!({})),
        code_dir: "/code".into(),
        image: None,
        layers: None,
        internet_access: false,
        version_id: None,
        limit: crate::InstanceLimit::Unlimited,
        revision: "r".into(),
        generation: 0,
        credentials: None,
    }
}

/// An instance backend that answers every call with 200 and remembers each call's path and
/// headers.
pub(crate) struct Recorder {
    pub(crate) calls: Mutex<Vec<(String, HeaderMap)>>,
    logs: Logs,
    // Keeps the log pipe open for the instance's life.
    _out: tokio::net::unix::pipe::Sender,
}

impl Recorder {
    /// Must run inside a tokio runtime (the log collector is a task).
    pub(crate) fn new() -> Arc<Recorder> {
        let (tx, rx) = tokio::net::unix::pipe::pipe().expect("pipe");
        Arc::new(Recorder {
            calls: Mutex::new(Vec::new()),
            logs: Logs::start(rx, "i", Box::new(|_| {})),
            _out: tx,
        })
    }

    pub(crate) fn calls(&self) -> Vec<(String, HeaderMap)> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The pool owns a `Box<dyn RunningInstance>`; the test keeps the `Arc` to look inside.
pub(crate) struct Shared(pub(crate) Arc<Recorder>);

impl RunningInstance for Shared {
    fn call<'a>(
        &'a self,
        _method: Method,
        path: &'a str,
        headers: HeaderMap,
        _body: crate::Payload,
        _limit: Duration,
    ) -> BoxFuture<'a, CallResult> {
        if let Ok(mut c) = self.0.calls.lock() {
            c.push((path.to_owned(), headers));
        }
        Box::pin(async {
            CallResult::Response {
                status: 200,
                headers: HeaderMap::new(),
                body: Bytes::new(),
            }
        })
    }

    fn logs(&self) -> &Logs {
        &self.0.logs
    }

    fn peak_memory_mb(&self, _fresh: bool) -> f64 {
        0.0
    }

    fn exited(&self) -> bool {
        false
    }

    fn exit_info(&self, _wait: Duration) -> BoxFuture<'_, Option<ExitInfo>> {
        Box::pin(async { None })
    }

    fn kill(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }

    fn stop(&self, _grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

pub(crate) fn creds(tag: &str, expires_at: u64) -> FunctionCredentials {
    FunctionCredentials {
        access_key_id: format!("STS.{tag}"),
        access_key_secret: format!("secret-{tag}"),
        security_token: format!("token-{tag}"),
        expires_at,
    }
}

/// A source that counts its calls and answers with fixed credentials, or with an
/// `AccessDenied` while `failing` is set.
#[derive(Debug)]
pub(crate) struct Counting {
    pub(crate) creds: Arc<FunctionCredentials>,
    pub(crate) calls: AtomicU32,
    pub(crate) failing: AtomicBool,
}

impl Counting {
    pub(crate) fn new(creds: FunctionCredentials) -> Arc<Counting> {
        Arc::new(Counting {
            creds: Arc::new(creds),
            calls: AtomicU32::new(0),
            failing: AtomicBool::new(false),
        })
    }

    pub(crate) fn calls(&self) -> u32 {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl CredentialSource for Counting {
    async fn credentials(&self) -> Result<Arc<FunctionCredentials>, FcError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(FcError::AccessDenied("the role cannot be assumed".into()));
        }
        Ok(self.creds.clone())
    }
}
