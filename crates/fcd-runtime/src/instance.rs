//! One instance as the pool sees it: the scheduling state (slots in use, dead, idle since,
//! provisioned, a hook running) around a [`RunningInstance`] from whichever backend runs it,
//! and the custom-runtime calls every backend answers (`/initialize`, `/invoke`, lifecycle
//! hooks).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};

use fcd_core::model::LifecycleHook;

use crate::backend::{CallResult, ExitInfo, RunningInstance};
use crate::contract::header;
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
        }
    }

    pub(crate) fn logs(&self) -> &Logs {
        self.engine.logs()
    }

    /// One call of the custom-runtime contract, bounded by `limit`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &'static str,
        extra: &[(&'static str, &str)],
        body: Bytes,
        limit: Duration,
    ) -> CallResult {
        let mut headers = self.base_headers.clone();
        for (k, v) in extra {
            header(&mut headers, k, v);
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
        match self
            .call(
                Method::GET,
                path,
                &[("x-fc-request-id", &rid)],
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
