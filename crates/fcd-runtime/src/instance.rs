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

use crate::backend::{CallResult, ExitInfo, RunningInstance};
use crate::contract::header;
use crate::credentials::{self, CredentialSource, FunctionCredentials};
use crate::logs::Logs;

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
        body: Bytes,
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
                Bytes::new(),
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
        inst.call(Method::POST, "/invoke", &[], Some(&c), Bytes::new(), limit)
            .await;
        inst.call(Method::POST, "/invoke", &[], None, Bytes::new(), limit)
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
