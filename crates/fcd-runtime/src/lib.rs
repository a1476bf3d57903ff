//! The instance manager: runs functions as processes and carries invocations to them.
//!
//! Every runtime speaks the custom-runtime HTTP contract (fc-runtime-contract.md section 2):
//! `custom` functions bring their own server, and the built-in `python3*` runtimes run fcd's
//! embedded bootstrap, which serves the same contract. So the hot path is one shape for all:
//! pick a warm instance of the function (or start one), send `POST /invoke` over a kept-alive
//! connection, read the answer. Nothing on that path touches the disk or a database.
//!
//! Instances of one function live in a pool that belongs to one revision of the function's
//! config and code; a request for a newer revision replaces the pool, and the old instances are
//! stopped once their in-flight requests finish.

mod instance;
mod logs;
pub mod sandbox;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use fcd_core::model::Function;
use instance::{CallResult, Instance};
pub use sandbox::NetworkMode;

const LATEST: &str = "LATEST";

/// The Python bootstrap fcd ships inside its binary.
pub const PYTHON_BOOTSTRAP: &str = include_str!("python/bootstrap.py");

/// Server-wide settings of the instance manager.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub region: String,
    pub network: NetworkMode,
    /// Interpreter for the `python3*` runtimes.
    pub python: String,
    /// Where [`PYTHON_BOOTSTRAP`] was written.
    pub python_bootstrap: PathBuf,
    /// How long a new instance may take to accept connections.
    pub start_timeout: Duration,
}

/// Everything needed to run one function: resolved once, shared by all its invocations.
#[derive(Debug)]
pub struct FunctionSpec {
    pub account_id: String,
    pub service_name: String,
    pub log_project: String,
    pub log_store: String,
    pub function: Function,
    /// The extracted code package.
    pub code_dir: PathBuf,
    /// The service version that runs (`None` for LATEST). Instances are kept per version.
    pub version_id: Option<String>,
    /// Changes whenever anything above changes; instances never outlive their revision.
    pub revision: String,
}

/// One invocation as the API hands it over.
#[derive(Debug)]
pub struct InvokeRequest {
    pub request_id: String,
    /// `LATEST`, a version id or an alias, as the caller named it.
    pub qualifier: String,
    pub trace_id: Option<String>,
    pub body: Bytes,
    pub log_tail: bool,
}

/// What an invocation produced. A function error is an outcome, not an `Err`.
#[derive(Debug)]
pub struct InvokeOutcome {
    pub body: Bytes,
    /// `Some("UnhandledInvocationError")` etc. when the function failed.
    pub error_type: Option<String>,
    pub duration: Duration,
    pub max_memory_mb: f64,
    pub instance_id: String,
    /// The request's log, framed and summarised, already cut to FC's 4 KB.
    pub log_tail: Option<String>,
}

/// Why an instance could not be started; the caller gets a platform error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(
        "runtime '{0}' cannot be run by this fcd server (supported: custom, custom.debian10, python3, python3.9, python3.10)"
    )]
    UnsupportedRuntime(String),
    #[error("the instance could not be started: {0}")]
    Spawn(String),
    #[error("the instance exited during start-up ({detail}); last output: {}", log.join(" | "))]
    Exited { detail: String, log: Vec<String> },
    #[error("the instance did not accept connections on port {port} within {after:?}; last output: {}", log.join(" | "))]
    NotListening {
        port: u16,
        after: Duration,
        log: Vec<String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("the server is shutting down")]
    ShuttingDown,
}

type PoolKey = (String, String, String, String);

struct Pool {
    revision: String,
    instances: Mutex<Vec<Arc<Instance>>>,
}

impl Pool {
    /// An instance with a free slot, reserved for the caller.
    fn acquire(&self, capacity: u32) -> Option<Arc<Instance>> {
        let list = self.instances.lock().ok()?;
        for inst in list.iter() {
            if inst.dead.load(Ordering::Relaxed) {
                continue;
            }
            let mut cur = inst.active.load(Ordering::Relaxed);
            while cur < capacity {
                match inst.active.compare_exchange_weak(
                    cur,
                    cur + 1,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(inst.clone()),
                    Err(now) => cur = now,
                }
            }
        }
        None
    }

    fn add(&self, inst: Arc<Instance>) {
        if let Ok(mut l) = self.instances.lock() {
            l.push(inst);
        }
    }

    fn remove(&self, inst: &Arc<Instance>) {
        if let Ok(mut l) = self.instances.lock() {
            l.retain(|i| !Arc::ptr_eq(i, inst));
        }
    }

    fn take_all(&self) -> Vec<Arc<Instance>> {
        self.instances
            .lock()
            .map(|mut l| std::mem::take(&mut *l))
            .unwrap_or_default()
    }
}

/// Runs functions. One per server.
pub struct InstanceManager {
    cfg: RuntimeConfig,
    pools: RwLock<HashMap<PoolKey, Arc<Pool>>>,
    closed: AtomicBool,
    in_flight: AtomicU64,
    drained: tokio::sync::Notify,
}

impl std::fmt::Debug for InstanceManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstanceManager")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Decrements the in-flight count however the invocation ends.
struct InFlight<'a>(&'a InstanceManager);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.drained.notify_waiters();
        }
    }
}

/// Releases an instance slot however the invocation ends; a dead instance leaves its pool.
struct Slot {
    pool: Arc<Pool>,
    inst: Arc<Instance>,
    /// False while the call is in progress. If the slot is dropped before the call finished,
    /// the caller went away (HTTP 499); like FC, the instance that may still be working on the
    /// abandoned request is replaced rather than handed the next one.
    finished: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.finished {
            self.inst.dead.store(true, Ordering::SeqCst);
            let inst = self.inst.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { inst.kill().await });
            }
        }
        self.inst.active.fetch_sub(1, Ordering::AcqRel);
        if self.inst.dead.load(Ordering::Acquire) {
            self.pool.remove(&self.inst);
        }
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

impl InstanceManager {
    pub fn new(cfg: RuntimeConfig) -> InstanceManager {
        InstanceManager {
            cfg,
            pools: RwLock::new(HashMap::new()),
            closed: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            drained: tokio::sync::Notify::new(),
        }
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    fn pool(&self, spec: &FunctionSpec) -> Arc<Pool> {
        let key = (
            spec.account_id.clone(),
            spec.service_name.clone(),
            spec.function.function_name.clone(),
            spec.version_id.clone().unwrap_or_else(|| LATEST.to_owned()),
        );
        if let Some(p) = self.pools.read().ok().and_then(|m| m.get(&key).cloned())
            && p.revision == spec.revision
        {
            return p;
        }
        let fresh = Arc::new(Pool {
            revision: spec.revision.clone(),
            instances: Mutex::new(Vec::new()),
        });
        let old = match self.pools.write() {
            Ok(mut m) => match m.get(&key) {
                Some(p) if p.revision == spec.revision => return p.clone(),
                _ => m.insert(key, fresh.clone()),
            },
            Err(_) => None,
        };
        if let Some(old) = old {
            retire_pool(old);
        }
        fresh
    }

    /// Runs one synchronous invocation.
    pub async fn invoke(
        &self,
        spec: &FunctionSpec,
        req: InvokeRequest,
    ) -> Result<InvokeOutcome, InvokeError> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _guard = InFlight(self);
        if self.closed.load(Ordering::Acquire) {
            return Err(InvokeError::ShuttingDown);
        }
        let pool = self.pool(spec);
        let capacity = spec.function.instance_concurrency.max(1);
        let (inst, cold) = match pool.acquire(capacity) {
            Some(i) => (i, false),
            None => {
                let i = Instance::start(&self.cfg, spec, &req.qualifier).await?;
                i.active.fetch_add(1, Ordering::AcqRel);
                pool.add(i.clone());
                if self.closed.load(Ordering::Acquire) {
                    // Shutdown began while this instance started; it must not outlive the server.
                    i.kill().await;
                }
                (i, true)
            }
        };
        let mut slot = Slot {
            pool,
            inst,
            finished: false,
        };
        let inst = slot.inst.clone();
        let mark = inst.logs.mark();
        let mut outcome = self.run(spec, &inst, &req, cold).await;
        slot.finished = true;
        if req.log_tail {
            inst.logs.sync().await;
            let lines = logs::request_log(&inst.logs.since(mark), &req.request_id);
            let ms = outcome.duration.as_secs_f64() * 1000.0;
            let text = format!(
                "{}\n\nDuration: {:.2} ms, Billed Duration: {} ms, Memory Size: {} MB, Max Memory Used: {:.2} MB",
                lines.join("\n"),
                ms,
                ms.ceil() as u64,
                spec.function.memory_size,
                outcome.max_memory_mb
            );
            outcome.log_tail = Some(logs::tail(&text, fcd_core::limits::LOG_TAIL_MAX).to_owned());
        }
        Ok(outcome)
    }

    async fn run(
        &self,
        spec: &FunctionSpec,
        inst: &Arc<Instance>,
        req: &InvokeRequest,
        cold: bool,
    ) -> InvokeOutcome {
        let f = &spec.function;
        let mut extra: Vec<(&'static str, &str)> = vec![
            ("x-fc-request-id", &req.request_id),
            ("x-fc-qualifier", &req.qualifier),
        ];
        if let Some(t) = &req.trace_id {
            extra.push(("x-fc-trace-id", t));
        }
        if cold && !f.initializer.is_empty() {
            let limit = Duration::from_secs(u64::from(f.initialization_timeout.max(1)));
            let init_started = Instant::now();
            let res = inst
                .call(Method::POST, "/initialize", &extra, Bytes::new(), limit)
                .await;
            match judge(inst, res, init_started, limit, "Initializer").await {
                Verdict::Success(_) => {}
                failed => {
                    // The instance is not reused: the next request starts a fresh one and runs
                    // the initializer again.
                    inst.kill().await;
                    return outcome(inst, init_started, failed);
                }
            }
        }
        // FC's duration is the handler's own time, without start-up and initializer.
        let invoked = Instant::now();
        let limit = Duration::from_secs(u64::from(f.timeout.max(1)));
        let res = inst
            .call(Method::POST, "/invoke", &extra, req.body.clone(), limit)
            .await;
        let verdict = judge(inst, res, invoked, limit, "Function").await;
        outcome(inst, invoked, verdict)
    }

    /// Stops the instances of one version of a function (`None`: LATEST), after an update or
    /// delete. In-flight requests finish first; other versions' instances are not disturbed.
    pub async fn retire(&self, account: &str, service: &str, function: Option<&str>, version: Option<&str>) {
        let version = version.unwrap_or(LATEST);
        let removed: Vec<Arc<Pool>> = match self.pools.write() {
            Ok(mut m) => {
                let keys: Vec<PoolKey> = m
                    .keys()
                    .filter(|(a, s, f, v)| {
                        a == account && s == service && function.is_none_or(|x| x == f) && v == version
                    })
                    .cloned()
                    .collect();
                keys.iter().filter_map(|k| m.remove(k)).collect()
            }
            Err(_) => Vec::new(),
        };
        for p in removed {
            retire_pool(p);
        }
    }

    /// Graceful stop: refuse new invocations, let running ones finish for up to `grace`, then
    /// stop every instance.
    pub async fn shutdown(&self, grace: Duration) {
        self.closed.store(true, Ordering::Release);
        let drained = async {
            while self.in_flight.load(Ordering::Acquire) > 0 {
                let notified = self.drained.notified();
                if self.in_flight.load(Ordering::Acquire) == 0 {
                    break;
                }
                let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
            }
        };
        if tokio::time::timeout(grace, drained).await.is_err() {
            tracing::warn!(
                "shutdown grace period over with invocations still running; stopping instances"
            );
        }
        let pools: Vec<Arc<Pool>> = match self.pools.write() {
            Ok(mut m) => m.drain().map(|(_, p)| p).collect(),
            Err(_) => Vec::new(),
        };
        let mut stops = Vec::new();
        for p in pools {
            for inst in p.take_all() {
                stops.push(tokio::spawn(async move {
                    inst.stop(Duration::from_secs(2)).await
                }));
            }
        }
        for s in stops {
            let _ = s.await;
        }
    }

    /// Instances currently running, for tests and metrics.
    pub fn instance_count(&self) -> usize {
        self.pools
            .read()
            .map(|m| {
                m.values()
                    .map(|p| p.instances.lock().map(|l| l.len()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    }
}

/// How one call to an instance went, from the caller's point of view.
enum Verdict {
    Success(Bytes),
    /// The function reported an error, timed out or died; `kind` is FC's `X-Fc-Error-Type`.
    FunctionError {
        body: Bytes,
        kind: String,
    },
}

/// Classifies a call result. Timeouts and broken connections also retire the instance: it may
/// still be busy with the abandoned request, or gone.
async fn judge(
    inst: &Arc<Instance>,
    res: CallResult,
    started: Instant,
    limit: Duration,
    what: &str,
) -> Verdict {
    match res {
        CallResult::Response {
            status,
            headers,
            body,
        } => {
            // `x-fc-status` is the runtime's own verdict; without it, FC's custom-runtime rule
            // is that 404 means failure (other 4xx/5xx are treated as failures as well).
            let failed = match headers.get("x-fc-status").and_then(|v| v.to_str().ok()) {
                Some(s) => s.trim() != "200",
                None => status >= 400,
            };
            if !failed {
                return Verdict::Success(body);
            }
            let kind = headers
                .get("x-fc-error-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("UnhandledInvocationError")
                .to_owned();
            Verdict::FunctionError { body, kind }
        }
        CallResult::TimedOut => {
            let mem = round2(inst.max_memory_mb());
            inst.kill().await;
            let msg = format!(
                "{what} timed out after {} seconds (maxMemoryUsage: {mem:.2}MB)",
                limit.as_secs()
            );
            Verdict::FunctionError {
                body: error_body(&msg),
                kind: "UnhandledInvocationError".into(),
            }
        }
        CallResult::Failed(e) => {
            let exit = inst.exit_info(Duration::from_millis(500)).await;
            inst.dead.store(true, Ordering::SeqCst);
            let mem = match &exit {
                Some(x) => x.max_rss_kib as f64 / 1024.0,
                None => inst.max_memory_mb(),
            };
            match &exit {
                Some(x) => {
                    tracing::warn!(instance = %inst.id, exit = %x.description, "instance exited during a request")
                }
                None => {
                    tracing::warn!(instance = %inst.id, error = %e, "instance connection failed; replacing it");
                    inst.kill().await;
                }
            }
            let msg = format!(
                "Process exited unexpectedly before completing request (duration: {}ms, maxMemoryUsage: {mem:.2}MB)",
                started.elapsed().as_millis()
            );
            Verdict::FunctionError {
                body: error_body(&msg),
                kind: "UnhandledInvocationError".into(),
            }
        }
    }
}

fn outcome(inst: &Instance, started: Instant, v: Verdict) -> InvokeOutcome {
    let (body, error_type) = match v {
        Verdict::Success(b) => (b, None),
        Verdict::FunctionError { body, kind } => (body, Some(kind)),
    };
    InvokeOutcome {
        body,
        error_type,
        duration: started.elapsed(),
        max_memory_mb: round2(inst.max_memory_mb()),
        instance_id: inst.id.clone(),
        log_tail: None,
    }
}

fn error_body(msg: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "errorMessage": msg }).to_string())
}

/// Stops a pool's instances once each has no request left.
fn retire_pool(pool: Arc<Pool>) {
    tokio::spawn(async move {
        for inst in pool.take_all() {
            tokio::spawn(async move {
                inst.dead.store(true, Ordering::SeqCst);
                // Bounded: a request cannot outlive its function's timeout by much.
                let deadline = Instant::now() + Duration::from_secs(86_400);
                while inst.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                inst.stop(Duration::from_secs(2)).await;
            });
        }
    });
}
