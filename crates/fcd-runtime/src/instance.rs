//! One instance as the pool sees it: the scheduling state (slots in use, dead, idle since,
//! provisioned, a hook running) around a [`RunningInstance`] from whichever backend runs it,
//! and the custom-runtime calls every backend answers (`/initialize`, `/invoke`, lifecycle
//! hooks), with the role's credentials on each call when the function has them.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};

use fcd_core::model::LifecycleHook;

use crate::Payload;
use crate::backend::{CallResult, ExitInfo, RunningInstance};
use crate::contract::header;
use crate::credentials::{self, CredentialSource, FunctionCredentials};
use crate::logs::Logs;

/// Headers of the client's connection that never travel to the instance.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "content-length",
];

pub(crate) struct Instance {
    pub(crate) id: String,
    engine: Box<dyn RunningInstance>,
    /// Requests running on this instance right now.
    pub(crate) active: AtomicU32,
    /// Set once the instance must take no more requests (crashed, timed out, retired).
    pub(crate) dead: AtomicBool,
    /// Headers every call to this instance carries.
    base_headers: HeaderMap,
    /// When the last request on it ended (ms on the manager's clock), for idle reclaim.
    pub(crate) last_used_ms: AtomicU64,
    /// A lifecycle hook (preFreeze) is running: no request may start on it meanwhile.
    pub(crate) hook_busy: AtomicBool,
    /// Started ahead of traffic for a provision config; never reclaimed for idleness.
    pub(crate) provisioned: AtomicBool,
    pre_stop: Option<LifecycleHook>,
    pre_freeze: Option<LifecycleHook>,
    /// The function's credential source, asked when a lifecycle hook runs (invocations bring
    /// their own credentials).
    credentials: Option<Arc<dyn CredentialSource>>,
    /// When the credentials in the instance's environment expire (unix seconds).
    env_expires_at: Option<u64>,
}

impl Instance {
    pub(crate) fn new(
        id: String,
        engine: Box<dyn RunningInstance>,
        base_headers: HeaderMap,
        function: &fcd_core::model::Function,
    ) -> Instance {
        let hook =
            |pick: fn(&fcd_core::model::InstanceLifecycleConfig) -> Option<&LifecycleHook>| {
                function
                    .instance_lifecycle_config
                    .as_ref()
                    .and_then(pick)
                    .filter(|h| !h.handler.is_empty())
                    .cloned()
            };
        Instance {
            id,
            engine,
            active: AtomicU32::new(0),
            dead: AtomicBool::new(false),
            base_headers,
            last_used_ms: AtomicU64::new(0),
            hook_busy: AtomicBool::new(false),
            provisioned: AtomicBool::new(false),
            pre_stop: hook(|lc| lc.pre_stop.as_ref()),
            pre_freeze: hook(|lc| lc.pre_freeze.as_ref()),
            credentials: None,
            env_expires_at: None,
        }
    }

    /// The function has a role: its hooks ask `source` for credentials, and the environment
    /// the instance was started with holds credentials expiring at `env_expires_at`.
    pub(crate) fn set_credentials(
        &mut self,
        source: Arc<dyn CredentialSource>,
        env_expires_at: Option<u64>,
    ) {
        self.credentials = Some(source);
        self.env_expires_at = env_expires_at;
    }

    /// When the credentials in the instance's environment expire, if it has any.
    pub(crate) fn env_expires_at(&self) -> Option<u64> {
        self.env_expires_at
    }

    pub(crate) fn logs(&self) -> &Logs {
        self.engine.logs()
    }

    /// One call of the custom-runtime contract, bounded by `limit`, with the role's `creds`
    /// when the function has them.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &'static str,
        extra: &[(&'static str, &str)],
        creds: Option<&FunctionCredentials>,
        body: Payload,
        limit: Duration,
    ) -> CallResult {
        let mut headers = self.base_headers.clone();
        for (k, v) in extra {
            header(&mut headers, k, v);
        }
        if let Some(c) = creds {
            credentials::add_headers(&mut headers, c);
        }
        header(&mut headers, "x-fc-control-path", path);
        self.engine.call(method, path, headers, body, limit).await
    }

    /// An HTTP invocation (fc-runtime-contract.md section 12): the client's method,
    /// request-target, headers and body, with the common `x-fc-*` headers of every call on
    /// top (they win over anything the client sent), `x-fc-control-path: /http-invoke`, the
    /// `x-fc-base-path` of a `/proxy/` URL and `x-forwarded-for` ending with the client's
    /// address. The client's headers arrive already filtered of what FC drops.
    pub(crate) async fn call_http(
        &self,
        http: &crate::HttpInvocation,
        extra: &[(&'static str, &str)],
        creds: Option<&FunctionCredentials>,
        body: Payload,
        limit: Duration,
    ) -> CallResult {
        let mut headers = http.headers.clone();
        // The body is sent whole: its length is recomputed by the HTTP client, and nothing
        // of the client's connection management applies to fcd's connection.
        for name in HOP_BY_HOP {
            headers.remove(*name);
        }
        let forwarded = match headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
        {
            Some(prior) => format!("{prior}, {}", http.client_ip),
            None => http.client_ip.clone(),
        };
        header(&mut headers, "x-forwarded-for", &forwarded);
        // Only the contract's own headers: the client's `Host` and `Content-Type` are the
        // function's business, not the event defaults among the base headers.
        for (k, v) in &self.base_headers {
            if k.as_str().starts_with("x-fc-") {
                headers.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in extra {
            header(&mut headers, k, v);
        }
        if let Some(c) = creds {
            credentials::add_headers(&mut headers, c);
        }
        header(&mut headers, "x-fc-control-path", "/http-invoke");
        if let Some(base) = &http.base_path {
            header(&mut headers, "x-fc-base-path", base);
        }
        self.engine
            .call(http.method.clone(), &http.target, headers, body, limit)
            .await
    }

    pub(crate) fn has_pre_freeze(&self) -> bool {
        self.pre_freeze.is_some()
    }

    pub(crate) fn exited(&self) -> bool {
        self.engine.exited()
    }

    /// Peak memory in MB for a successful call's headers (may be up to 100 ms old).
    pub(crate) fn max_memory_mb(&self) -> f64 {
        self.engine.peak_memory_mb(false)
    }

    /// Peak memory in MB, read now.
    pub(crate) fn fresh_memory_mb(&self) -> f64 {
        self.engine.peak_memory_mb(true)
    }

    pub(crate) async fn exit_info(&self, wait: Duration) -> Option<ExitInfo> {
        self.engine.exit_info(wait).await
    }

    /// Stops the instance now and waits (bounded) until it is gone.
    pub(crate) async fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.engine.kill().await;
    }

    /// Runs the preFreeze hook, if the function has one, while no request can start here.
    pub(crate) async fn pre_freeze(&self) {
        if let Some(h) = &self.pre_freeze {
            self.hook("/pre-freeze", h).await;
        }
    }

    async fn hook(&self, path: &'static str, h: &LifecycleHook) {
        let rid = uuid::Uuid::new_v4().to_string();
        let limit = Duration::from_secs(u64::from(h.timeout.max(1)));
        // A hook has no invocation to fail: without credentials it runs without them (its
        // `context.credentials` empty), as FC goes on with freezing or stopping anyway.
        // Bounded by the hook's own limit: a stuck source must not keep an instance alive.
        let creds = match &self.credentials {
            None => None,
            Some(source) => match tokio::time::timeout(limit, source.credentials()).await {
                Ok(Ok(c)) => Some(c),
                Ok(Err(e)) => {
                    tracing::warn!(instance = %self.id, hook = path, error = %e, "no credentials for the lifecycle hook; running it without");
                    None
                }
                Err(_) => {
                    tracing::warn!(instance = %self.id, hook = path, "no credentials for the lifecycle hook in time; running it without");
                    None
                }
            },
        };
        match self
            .call(
                Method::GET,
                path,
                &[("x-fc-request-id", &rid)],
                creds.as_deref(),
                Bytes::new().into(),
                limit,
            )
            .await
        {
            CallResult::Response { status, .. } if status < 300 => {}
            CallResult::Response { status, .. } => {
                tracing::warn!(instance = %self.id, hook = path, status, "lifecycle hook failed")
            }
            CallResult::TimedOut => {
                tracing::warn!(instance = %self.id, hook = path, "lifecycle hook timed out")
            }
            CallResult::Failed(e) => {
                tracing::warn!(instance = %self.id, hook = path, error = %e, "lifecycle hook failed")
            }
            CallResult::BodyRejected(e) => {
                tracing::warn!(instance = %self.id, hook = path, error = %e, "lifecycle hook failed")
            }
        }
    }

    /// Retires the instance: preStop (if configured and the instance is healthy), then a polite
    /// stop that turns forceful after `grace`.
    pub(crate) async fn retire(&self, grace: Duration) {
        let healthy = !self.engine.exited();
        self.dead.store(true, Ordering::SeqCst);
        if healthy && let Some(h) = &self.pre_stop {
            self.hook("/pre-stop", h).await;
        }
        self.engine.stop(grace).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use bytes::Bytes;
    use http::{HeaderMap, Method};

    use super::Instance;
    use crate::testkit::{self, Counting, Recorder, Shared};

    const CRED_HEADERS: [&str; 3] = [
        "x-fc-access-key-id",
        "x-fc-access-key-secret",
        "x-fc-security-token",
    ];

    fn with_hooks() -> fcd_core::model::Function {
        testkit::function(serde_json::json!({
            "instanceLifecycleConfig": {
                "preFreeze": {"handler": "index.freeze", "timeout": 3},
                "preStop": {"handler": "index.stop", "timeout": 3},
            }
        }))
    }

    fn cred_headers(h: &HeaderMap) -> Vec<Option<String>> {
        CRED_HEADERS
            .iter()
            .map(|n| h.get(*n).and_then(|v| v.to_str().ok()).map(str::to_owned))
            .collect()
    }

    fn some(v: [&str; 3]) -> Vec<Option<String>> {
        v.iter().map(|s| Some((*s).to_owned())).collect()
    }

    #[tokio::test]
    async fn a_call_carries_credentials_exactly_when_given() {
        let rec = Recorder::new();
        let inst = Instance::new(
            "i".into(),
            Box::new(Shared(rec.clone())),
            HeaderMap::new(),
            &testkit::function(serde_json::json!({})),
        );
        let c = testkit::creds("a", 1);
        let limit = Duration::from_secs(5);
        inst.call(
            Method::POST,
            "/invoke",
            &[],
            Some(&c),
            Bytes::new().into(),
            limit,
        )
        .await;
        inst.call(
            Method::POST,
            "/invoke",
            &[],
            None,
            Bytes::new().into(),
            limit,
        )
        .await;
        let calls = rec.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(
            cred_headers(&calls[0].1),
            some(["STS.a", "secret-a", "token-a"])
        );
        assert_eq!(cred_headers(&calls[1].1), vec![None, None, None]);
    }

    #[tokio::test]
    async fn an_http_call_sends_the_clients_request_with_the_contracts_headers_on_top() {
        let rec = Recorder::new();
        let mut base = HeaderMap::new();
        base.insert("x-fc-function-name", "fn".parse().unwrap());
        base.insert("content-type", "application/octet-stream".parse().unwrap());
        base.insert("host", "127.0.0.1:9000".parse().unwrap());
        let inst = Instance::new(
            "i".into(),
            Box::new(Shared(rec.clone())),
            base,
            &testkit::function(serde_json::json!({})),
        );
        let mut client = HeaderMap::new();
        client.insert("host", "example.test".parse().unwrap());
        client.insert("content-type", "text/plain".parse().unwrap());
        client.insert("x-forwarded-for", "1.2.3.4".parse().unwrap());
        client.append("accept", "a".parse().unwrap());
        client.append("accept", "b".parse().unwrap());
        client.insert("connection", "close".parse().unwrap());
        client.insert("content-length", "3".parse().unwrap());
        let http = crate::HttpInvocation {
            method: Method::PUT,
            target: "/2016-08-15/proxy/s/fn/invoke?a=1".into(),
            headers: client,
            base_path: Some("/2016-08-15/proxy/s/fn".into()),
            client_ip: "10.0.0.9".into(),
        };
        let c = testkit::creds("a", 1);
        inst.call_http(
            &http,
            &[("x-fc-request-id", "rid")],
            Some(&c),
            Bytes::from_static(b"abc").into(),
            Duration::from_secs(5),
        )
        .await;
        let calls = rec.calls();
        let (target, h) = &calls[0];
        assert_eq!(target, "/2016-08-15/proxy/s/fn/invoke?a=1");
        let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(get("x-fc-control-path").as_deref(), Some("/http-invoke"));
        assert_eq!(
            get("x-fc-base-path").as_deref(),
            Some("/2016-08-15/proxy/s/fn")
        );
        assert_eq!(get("x-forwarded-for").as_deref(), Some("1.2.3.4, 10.0.0.9"));
        assert_eq!(get("x-fc-request-id").as_deref(), Some("rid"));
        assert_eq!(get("x-fc-function-name").as_deref(), Some("fn"));
        assert_eq!(get("host").as_deref(), Some("example.test"));
        assert_eq!(get("content-type").as_deref(), Some("text/plain"));
        assert_eq!(get("x-fc-access-key-id").as_deref(), Some("STS.a"));
        assert_eq!(h.get_all("accept").iter().count(), 2);
        assert!(h.get("connection").is_none() && h.get("content-length").is_none());
    }

    #[tokio::test]
    async fn hooks_ask_the_source_and_run_without_credentials_when_it_fails() {
        let rec = Recorder::new();
        let source = Counting::new(testkit::creds("hook", 1));
        let mut inst = Instance::new(
            "i".into(),
            Box::new(Shared(rec.clone())),
            HeaderMap::new(),
            &with_hooks(),
        );
        inst.set_credentials(source.clone(), Some(1));
        inst.pre_freeze().await;
        assert_eq!(source.calls(), 1);
        source.failing.store(true, Ordering::SeqCst);
        inst.pre_freeze().await;
        assert_eq!(source.calls(), 2);
        source.failing.store(false, Ordering::SeqCst);
        inst.retire(Duration::from_secs(1)).await;
        assert_eq!(source.calls(), 3);
        let calls = rec.calls();
        let paths: Vec<&str> = calls.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["/pre-freeze", "/pre-freeze", "/pre-stop"]);
        assert_eq!(
            cred_headers(&calls[0].1),
            some(["STS.hook", "secret-hook", "token-hook"])
        );
        assert_eq!(cred_headers(&calls[1].1), vec![None, None, None]);
        assert_eq!(
            cred_headers(&calls[2].1),
            some(["STS.hook", "secret-hook", "token-hook"])
        );
    }

    #[tokio::test]
    async fn hooks_of_a_function_without_a_role_carry_no_credentials() {
        let rec = Recorder::new();
        let inst = Arc::new(Instance::new(
            "i".into(),
            Box::new(Shared(rec.clone())),
            HeaderMap::new(),
            &with_hooks(),
        ));
        inst.pre_freeze().await;
        inst.retire(Duration::from_secs(1)).await;
        let calls = rec.calls();
        assert_eq!(calls.len(), 2);
        for (_, h) in &calls {
            assert_eq!(cred_headers(h), vec![None, None, None]);
        }
        assert_eq!(inst.env_expires_at(), None);
    }
}
