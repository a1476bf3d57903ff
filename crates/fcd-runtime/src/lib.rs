//! The instance manager: starts instances of functions and carries invocations to them.
//!
//! Every runtime speaks the custom-runtime HTTP contract (fc-runtime-contract.md section 2):
//! `custom` functions bring their own server, and the built-in `python3*` and `nodejs*`
//! runtimes run fcd's embedded bootstraps, which serve the same contract. So the hot path is one
//! shape for all: pick a warm instance of the function (or start one), send `POST /invoke`,
//! read the answer. Nothing on that path touches the disk or a database.
//!
//! The layers, top down: the manager and its [`pool`]s (scheduling, budgets, hooks) see only
//! [`backend::RunningInstance`]s; the [`runtimes`] registry says, per FC runtime name, how an
//! instance is launched and on which backend; [`process`] is the OS-process backend, built on
//! [`sandbox`] — the only module that creates processes.
//!
//! Instances of one function live in a pool that belongs to one revision of the function's
//! config and code; a request for a newer revision replaces the pool, and the old instances are
//! stopped once their in-flight requests finish.
//!
//! A function whose service has a role carries a [`CredentialSource`] in its spec: each
//! invocation asks it once for the role's temporary credentials before it is placed on an
//! instance, and hands them to the instance (headers, and the environment of a new instance);
//! see [`credentials`]. Functions without one never ask.

mod backend;
mod budget;
mod contract;
pub mod credentials;
pub mod history;
mod instance;
mod logs;
pub mod logstore;
mod metrics;
mod pool;
mod process;
pub mod runtimes;
pub mod sandbox;
#[cfg(test)]
mod testkit;
#[cfg(feature = "wasm")]
pub mod wasm;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Method;

use backend::{CallResult, RunningInstance};
use budget::Budget;
pub use credentials::{CredentialSource, FunctionCredentials};
use fcd_core::FcError;
use fcd_core::model::Function;
use instance::Instance;
use pool::{Acquired, NoSlot, Pool};
pub use runtimes::container::ContainerImage;
use runtimes::{Launch, Placement};
pub use runtimes::{Registry, RuntimeOptions, WasmOptions};
pub use sandbox::NetworkMode;

const LATEST: &str = "LATEST";

/// Server-wide settings of the instance manager.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    pub region: String,
    pub network: NetworkMode,
    /// The runtimes this server can run.
    pub runtimes: Registry,
    /// How long a new instance may take to accept connections.
    pub start_timeout: Duration,
    /// Most instances the server runs at once.
    pub max_instances: u32,
    /// Most memory (sum of the instances' `memorySize`) the server hands out, in MB.
    pub max_memory_mb: u64,
    /// How long an on-demand instance may sit idle before it is stopped.
    pub idle_timeout: Duration,
    /// Jail settings; `None` only where the operator asked for unjailed instances
    /// (`fcd serve --isolation none`: a server that cannot jail refuses to start otherwise).
    pub jail: Option<sandbox::JailConfig>,
    /// Why instances are not jailed, when they are not.
    pub jail_unavailable: Option<String>,
    /// Outbound network for instances with `internetAccess` (a bridge with NAT), where the host
    /// allows it; `None` elsewhere (instances then reach only themselves).
    pub egress: Option<Arc<sandbox::Egress>>,
    /// Why outbound network could not be had, when it could not.
    pub egress_unavailable: Option<String>,
    /// Prewarmed jails kept ready per kind of instance (0: none; only where jailed).
    pub prewarm: u32,
    /// The code store's directory (prewarmed jails are handed code from it).
    pub code_store: Option<PathBuf>,
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
    /// A `custom-container` function's image, pulled and unpacked on this node; `None` for
    /// every other runtime.
    pub image: Option<Arc<ContainerImage>>,
    /// The function's layers, shown read-only at `/opt`; `None` without layers.
    pub layers: Option<LayerTree>,
    /// The service's `internetAccess`: whether instances get outbound network.
    pub internet_access: bool,
    /// The service version that runs (`None` for LATEST). Instances are kept per version.
    pub version_id: Option<String>,
    /// How many instances the function may have (its on-demand config plus what is
    /// provisioned for this version).
    pub limit: InstanceLimit,
    /// Changes whenever anything above changes; instances never outlive their revision.
    pub revision: String,
    /// When the spec was resolved, on a clock that only moves forward (the control plane's
    /// cache generation). A pool is replaced only by a spec resolved later than the pool's own:
    /// a request that resolved before an update never brings the old revision back.
    pub generation: u64,
    /// Where the temporary credentials of the service's role come from; `None` when the service
    /// has no role (its instances then get no credentials, and nothing is asked per call).
    pub credentials: Option<Arc<dyn CredentialSource>>,
}

/// A function's layers as its instances see them: one tree, the layers merged (see
/// `fcd_store::code::CodeStore::ensure_layers`). Jailed, it is mounted read-only at `/opt`;
/// without a jail the instance is pointed at it through its environment (`FCD_LAYERS_DIR`,
/// `PYTHONPATH`, `NODE_PATH`, `PATH`, `LD_LIBRARY_PATH`), see `contract`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerTree {
    /// The layers' package digests in the function's order (kept from collection while an
    /// instance runs on them).
    pub digests: Vec<String>,
    /// The merged tree on the host.
    pub dir: PathBuf,
}

/// A function's own instance limit, from its on-demand config (`maximumInstanceCount`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceLimit {
    /// No limit of its own: only the server's budget bounds it.
    Unlimited,
    /// At most this many instances, on-demand and provisioned together.
    AtMost(std::num::NonZeroU32),
    /// `maximumInstanceCount` 0 and nothing provisioned: FC's way of stopping a function.
    Blocked,
}

impl InstanceLimit {
    /// The limit from an on-demand count (if the function has a config) and the number of
    /// provisioned instances of the version.
    pub fn from_config(on_demand: Option<u32>, provisioned: u32) -> InstanceLimit {
        match on_demand {
            None => InstanceLimit::Unlimited,
            Some(n) => match std::num::NonZeroU32::new(n.saturating_add(provisioned)) {
                Some(max) => InstanceLimit::AtMost(max),
                None => InstanceLimit::Blocked,
            },
        }
    }

    /// As the pool counts it.
    fn as_count(self) -> u32 {
        match self {
            InstanceLimit::Unlimited => u32::MAX,
            InstanceLimit::AtMost(n) => n.get(),
            InstanceLimit::Blocked => 0,
        }
    }
}

/// A request body as the instance manager gets it: whole, or still arriving from the client.
#[derive(Debug)]
pub enum Payload {
    Whole(Bytes),
    Streamed(StreamedBody),
}

impl Default for Payload {
    fn default() -> Payload {
        Payload::Whole(Bytes::new())
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Payload {
        Payload::Whole(b)
    }
}

/// A body passed on to the instance while the client still sends it: its pieces in order,
/// then the end of the channel. Whoever reads the client checks the body as it goes and sends
/// an error instead of the last piece when it fails (a body that does not match its signed
/// digest, one over the size limit, a client that stalls), so the instance never receives a
/// complete request that was not verified; the connection carrying it is then abandoned.
#[derive(Debug)]
pub struct StreamedBody {
    /// The length the client declared, sent on as `Content-Length`; without one the body goes
    /// to the instance chunked.
    pub len: Option<u64>,
    pub pieces: tokio::sync::mpsc::Receiver<Result<Bytes, FcError>>,
}

/// One invocation as the API hands it over.
#[derive(Debug)]
pub struct InvokeRequest {
    pub request_id: String,
    /// `LATEST`, a version id or an alias, as the caller named it.
    pub qualifier: String,
    pub trace_id: Option<String>,
    pub body: Payload,
    pub log_tail: bool,
    /// How many times this (asynchronous) invocation ran before; 0 for sync calls.
    pub retry_count: u32,
    /// An HTTP invocation (an HTTP trigger or a custom domain); `None` for an event.
    pub http: Option<HttpInvocation>,
}

/// The client's request an HTTP invocation hands to the instance (fc-runtime-contract.md
/// section 12; the body is [`InvokeRequest::body`]).
#[derive(Debug, Clone)]
pub struct HttpInvocation {
    pub method: Method,
    /// The request-target sent to the instance: the client's path and query exactly as sent
    /// (still percent-encoded), e.g. `/2016-08-15/proxy/svc.prod/fn/users/1?x=1`.
    pub target: String,
    /// The client's headers minus what FC drops (`x-fc-*`, connection, keep-alive,
    /// hop-by-hop).
    pub headers: http::HeaderMap,
    /// The URL prefix before the function's own path when routed by a `/proxy/` URL, e.g.
    /// `/2016-08-15/proxy/svc.prod/fn` (no trailing slash); `None` for custom domains.
    pub base_path: Option<String>,
    pub client_ip: String,
}

/// The instance's own status and headers of a successful HTTP invocation (its body is
/// [`InvokeOutcome::body`]), unfiltered: what a client may see is the front end's call.
#[derive(Debug, Clone)]
pub struct HttpResponseParts {
    pub status: u16,
    pub headers: http::HeaderMap,
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
    /// The instance's status and headers when an HTTP invocation succeeded; `None` for
    /// events and for function errors (whose body is FC's error JSON).
    pub http: Option<HttpResponseParts>,
}

/// Why an instance could not be started; the caller gets a platform error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("runtime '{runtime}' cannot be run by this fcd server (it runs: {runnable})")]
    UnsupportedRuntime { runtime: String, runnable: String },
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
    #[error("the instance failed its health check GET {path}: {detail}; last output: {}", log.join(" | "))]
    Unhealthy {
        path: String,
        detail: String,
        log: Vec<String>,
    },
    /// The function's [`CredentialSource`] failed. Not only at a start: every invocation of a
    /// function with a role asks for its credentials first, and fails with this before any
    /// instance is chosen. The `FcError` is the source's answer for the client, to be passed on
    /// as it is.
    #[error("the credentials of the service's role could not be obtained: {0}")]
    Credentials(fcd_core::FcError),
}

#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The function already runs its `maximumInstanceCount` instances, all busy.
    #[error("the function's instances are all busy and it may not have more than {0}")]
    FunctionThrottled(u32),
    /// The server's instance or memory budget is used up.
    #[error("the server has no capacity for another instance right now")]
    ServerThrottled,
    /// A streamed request body failed on the way (see [`StreamedBody`]): the client's error.
    #[error("{0}")]
    Body(FcError),
}

type PoolKey = (String, String, String, String);

/// Runs functions. One per server.
pub struct InstanceManager {
    cfg: Arc<RuntimeConfig>,
    prewarm: Arc<process::prewarm::Prewarm>,
    pools: RwLock<HashMap<PoolKey, Arc<Pool>>>,
    budget: Arc<Budget>,
    closed: AtomicBool,
    in_flight: AtomicU64,
    drained: tokio::sync::Notify,
    clock: Instant,
    metrics: metrics::Metrics,
    /// Every function's last hour, per minute (the console's charts).
    history: history::History,
    /// Where instances' output is kept (`None`: only in memory, for log tails).
    log_store: Option<Arc<logstore::LogStore>>,
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

/// Counts a call in the history however it ends: when it is dropped unfinished (the client
/// went away), as an invocation only.
struct Tally<'a> {
    history: &'a history::History,
    spec: &'a FunctionSpec,
    call: history::Call,
}

impl Drop for Tally<'_> {
    fn drop(&mut self) {
        self.history.record(
            &self.spec.account_id,
            &self.spec.service_name,
            &self.spec.function.function_name,
            self.call,
        );
    }
}

/// Releases an instance slot however the invocation ends.
struct Slot<'a> {
    mgr: &'a InstanceManager,
    pool: Arc<Pool>,
    inst: Arc<Instance>,
    /// False while the call is in progress. If the slot is dropped before the call finished,
    /// the caller went away (HTTP 499); like FC, the instance that may still be working on the
    /// abandoned request is replaced rather than handed the next one.
    finished: bool,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.inst.dead.store(true, Ordering::SeqCst);
            let inst = self.inst.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move { inst.kill().await });
            }
        }
        self.inst
            .last_used_ms
            .store(self.mgr.now_ms(), Ordering::Release);
        let left = self.inst.active.fetch_sub(1, Ordering::AcqRel) - 1;
        if left == 0 && !self.inst.dead.load(Ordering::Acquire) && self.inst.has_pre_freeze() {
            // preFreeze runs between requests; the instance takes none until it is done.
            if self
                .inst
                .hook_busy
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                let (inst, pool) = (self.inst.clone(), self.pool.clone());
                if let Ok(rt) = tokio::runtime::Handle::try_current() {
                    rt.spawn(async move {
                        inst.pre_freeze().await;
                        inst.hook_busy.store(false, Ordering::Release);
                        pool.released(&inst);
                    });
                    return;
                }
                self.inst.hook_busy.store(false, Ordering::Release);
            }
        }
        self.pool.released(&self.inst);
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// One instance as ListInstances reports it.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    pub instance_id: String,
    pub version_id: String,
}

/// One pool's warm capacity (see [`InstanceManager::warm_pools`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WarmPool {
    pub account: String,
    pub service: String,
    pub function: String,
    pub version: String,
    pub instances: u32,
    pub free_slots: u32,
    pub instance_ids: Vec<String>,
}

/// Why an invocation could not be placed on an instance.
fn throttled(why: NoSlot) -> InvokeError {
    match why {
        NoSlot::FunctionLimit(max) => InvokeError::FunctionThrottled(max),
        NoSlot::ServerBudget | NoSlot::Retired => InvokeError::ServerThrottled,
    }
}

impl InstanceManager {
    pub fn new(cfg: RuntimeConfig) -> InstanceManager {
        let budget = Budget::new(cfg.max_instances, cfg.max_memory_mb);
        let cfg = Arc::new(cfg);
        InstanceManager {
            prewarm: process::prewarm::Prewarm::new(cfg.clone()),
            cfg,
            pools: RwLock::new(HashMap::new()),
            budget,
            closed: AtomicBool::new(false),
            in_flight: AtomicU64::new(0),
            drained: tokio::sync::Notify::new(),
            clock: Instant::now(),
            metrics: metrics::Metrics::default(),
            history: history::History::default(),
            log_store: None,
        }
    }

    /// Keeps every instance's output in `store` (see [`logstore`]).
    pub fn with_log_store(mut self, store: Arc<logstore::LogStore>) -> InstanceManager {
        self.log_store = Some(store);
        self
    }

    /// The store functions' output is kept in, if any.
    pub fn log_store(&self) -> Option<&Arc<logstore::LogStore>> {
        self.log_store.as_ref()
    }

    pub fn config(&self) -> &RuntimeConfig {
        &self.cfg
    }

    /// Starts keeping prewarmed jails ready for each runtime's default memory size (more kinds
    /// join as functions use them). Call once, inside the async runtime.
    pub fn start_prewarming(&self) {
        if !self.prewarm.enabled() {
            return;
        }
        for family in self.cfg.runtimes.families() {
            if let Some(launch) = family.blank_launch(fcd_core::limits::MEMORY_DEFAULT) {
                self.prewarm
                    .keep_ready(launch, fcd_core::limits::MEMORY_DEFAULT);
            }
        }
    }

    fn now_ms(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    /// Starts one instance of `spec` on the backend its runtime names. The instance owns
    /// `reservation` and gives it back only once it is gone, however it ends — including when
    /// this future is dropped half-way because the caller went away.
    async fn start_instance(
        &self,
        spec: &FunctionSpec,
        qualifier: &str,
        reservation: budget::Reservation,
        creds: Option<&FunctionCredentials>,
    ) -> Result<Arc<Instance>, StartError> {
        let f = &spec.function;
        let runtime =
            self.cfg
                .runtimes
                .get(&f.runtime)
                .ok_or_else(|| StartError::UnsupportedRuntime {
                    runtime: f.runtime.clone(),
                    runnable: self.cfg.runtimes.runnable().join(", "),
                })?;
        let id = format!("c-{}", &uuid::Uuid::new_v4().simple().to_string()[..24]);
        let jailed = self.cfg.jail.is_some();
        let code_root = if jailed {
            PathBuf::from("/code")
        } else {
            spec.code_dir.clone()
        };
        let launch = runtime.launch(&Placement {
            spec,
            code_root: &code_root,
            jailed,
        })?;
        let engine: Box<dyn RunningInstance> = match launch {
            #[cfg(feature = "wasm")]
            Launch::Wasm(l) => Box::new(
                self.start_wasm(spec, &id, qualifier, l, reservation, creds)
                    .await?,
            ),
            Launch::Process(l) => Box::new(
                process::start(
                    &self.cfg,
                    &self.prewarm,
                    spec,
                    id.clone(),
                    qualifier,
                    l,
                    reservation,
                    creds,
                )
                .await?,
            ),
        };
        let mut inst = Instance::new(id, engine, contract::base_headers(&self.cfg, spec), f);
        if let Some(sink) = self.log_store.as_ref().and_then(|s| {
            s.sink(logstore::FunctionKey::new(
                &spec.account_id,
                &spec.service_name,
                &f.function_name,
            ))
        }) {
            inst.logs().attach(sink, qualifier);
        }
        if let Some(source) = &spec.credentials {
            inst.set_credentials(source.clone(), creds.map(|c| c.expires_at));
        }
        Ok(Arc::new(inst))
    }

    /// Starts a `wasm` instance: waits for its guest's compilation (started by
    /// [`InstanceManager::prepare_code`], or now, on a node that has not compiled it yet).
    #[cfg(feature = "wasm")]
    async fn start_wasm(
        &self,
        spec: &FunctionSpec,
        id: &str,
        qualifier: &str,
        l: runtimes::wasm::WasmLaunch,
        reservation: budget::Reservation,
        creds: Option<&FunctionCredentials>,
    ) -> Result<wasm::instance::WasmInstance, StartError> {
        let loaded = l.engine.load(&l.guest).await.map_err(StartError::Spawn)?;
        let code_root = PathBuf::from(wasm::instance::CODE_DIR_IN_GUEST);
        let env = contract::guest_env(&self.cfg, spec, id, qualifier, &code_root, creds);
        wasm::instance::WasmInstance::new(wasm::instance::WasmStart {
            engine: l.engine,
            loaded,
            id: id.to_owned(),
            env,
            code_dir: spec.code_dir.clone(),
            memory_mb: spec.function.memory_size,
            internet: spec.internet_access,
            reuse: spec
                .function
                .environment_variables
                .get(wasm::instance::REUSE_ENV)
                .is_some_and(|v| matches!(v.trim(), "1" | "true" | "TRUE" | "True")),
            concurrency: spec.function.instance_concurrency,
            reservation,
        })
        .map_err(StartError::Spawn)
    }

    /// Gets a function's code ready to run, where its runtime compiles ahead of calls (`wasm`):
    /// checks the guest and starts compiling it, waiting up to `wait` for the outcome. An
    /// `Err` is the reason the code cannot run, for the caller of Create/UpdateFunction.
    pub async fn prepare_code(
        &self,
        function: &Function,
        code_dir: &std::path::Path,
        wait: Duration,
    ) -> Result<(), String> {
        #[cfg(feature = "wasm")]
        if function.runtime == "wasm"
            && let Some(engine) = self.cfg.runtimes.wasm_engine()
        {
            return engine.prepare(code_dir, &function.handler, wait).await;
        }
        let _ = (function, code_dir, wait);
        Ok(())
    }

    fn pool_key(spec: &FunctionSpec) -> PoolKey {
        (
            spec.account_id.clone(),
            spec.service_name.clone(),
            spec.function.function_name.clone(),
            spec.version_id.clone().unwrap_or_else(|| LATEST.to_owned()),
        )
    }

    fn pool(&self, spec: &FunctionSpec) -> Arc<Pool> {
        let key = Self::pool_key(spec);
        // The pool to use as it is: the spec's own revision, or a newer one (this request
        // resolved before an update and simply runs on what replaced its revision).
        let usable = |p: &Arc<Pool>| {
            !p.retired.load(Ordering::Acquire)
                && (p.revision == spec.revision || p.generation > spec.generation)
        };
        if let Some(p) = self.pools.read().ok().and_then(|m| m.get(&key).cloned())
            && usable(&p)
        {
            return p;
        }
        let fresh = Arc::new(
            Pool::new(
                spec.revision.clone(),
                spec.code_dir.clone(),
                spec.generation,
                spec.function.instance_concurrency,
            )
            .with_layers(spec.layers.as_ref().map(|l| l.digests.clone())),
        );
        let old = match self.pools.write() {
            Ok(mut m) => match m.get(&key) {
                Some(p) if usable(p) => return p.clone(),
                _ => m.insert(key, fresh.clone()),
            },
            Err(_) => None,
        };
        if let Some(old) = old {
            retire_pool(&old);
        }
        fresh
    }

    /// Drops pools that hold no instance and nothing starting, so a server that has run many
    /// functions does not keep a map entry for each forever.
    fn remove_empty_pools(&self) {
        if let Ok(mut m) = self.pools.write() {
            m.retain(|_, p| {
                let keep = !p.is_empty();
                if !keep {
                    p.retired.store(true, Ordering::Release);
                }
                keep
            });
        }
    }

    /// Runs one synchronous invocation.
    pub async fn invoke(
        &self,
        spec: &FunctionSpec,
        req: InvokeRequest,
    ) -> Result<InvokeOutcome, InvokeError> {
        let mut tally = Tally {
            history: &self.history,
            spec,
            call: history::Call::default(),
        };
        let res = self.invoke_counted(spec, req, &mut tally.call.cold).await;
        match &res {
            Ok(o) => {
                tally.call.duration = Some(o.duration);
                tally.call.error = o.error_type.is_some();
            }
            // The client's body broke: not the function's or the platform's failure.
            Err(InvokeError::Body(_)) => {}
            Err(_) => tally.call.error = true,
        }
        res
    }

    /// [`Self::invoke`], saying in `cold` whether the call started an instance.
    async fn invoke_counted(
        &self,
        spec: &FunctionSpec,
        mut req: InvokeRequest,
        cold: &mut bool,
    ) -> Result<InvokeOutcome, InvokeError> {
        // The body goes to the instance once; the request's other fields serve the log tail.
        let body = std::mem::take(&mut req.body);
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _guard = InFlight(self);
        if self.closed.load(Ordering::Acquire) {
            return Err(InvokeError::ShuttingDown);
        }
        let labels = self.metrics.labels(
            &spec.account_id,
            &spec.service_name,
            &spec.function.function_name,
            &req.qualifier,
        );
        self.metrics.invoked(&labels);
        // Before any slot or instance is taken: a failing source harms nothing.
        let creds = match &spec.credentials {
            None => None,
            Some(source) => Some(
                source
                    .credentials()
                    .await
                    .map_err(|e| InvokeError::Start(StartError::Credentials(e)))?,
            ),
        };
        let creds = creds.as_deref();
        let start_wait = self.cfg.start_timeout
            + Duration::from_secs(u64::from(spec.function.initialization_timeout))
            + Duration::from_secs(1);
        let mem = u64::from(spec.function.memory_size);
        let (pool, inst) = loop {
            let pool = self.pool(spec);
            pool.max_instances
                .store(spec.limit.as_count(), Ordering::Release);
            let budget = &self.budget;
            let got = pool
                .acquire(start_wait, || {
                    let ((n, m), (max_n, max_m)) = (budget.used(), budget.limits());
                    n < max_n && m + mem <= max_m
                })
                .await;
            match got {
                Ok(Acquired::Warm(inst)) => break (pool, inst),
                Ok(Acquired::Start(ticket)) => {
                    let Some(reservation) = self.budget.reserve(mem) else {
                        drop(ticket);
                        self.metrics.throttled();
                        return Err(InvokeError::ServerThrottled);
                    };
                    self.metrics.cold_start(&labels);
                    *cold = true;
                    let inst = self
                        .start_instance(spec, &req.qualifier, reservation, creds)
                        .await?;
                    if self.closed.load(Ordering::Acquire) {
                        // Shutdown began while this instance started; it must not outlive the server.
                        inst.kill().await;
                        return Err(InvokeError::ShuttingDown);
                    }
                    // The initializer runs once per instance, before any request, with the id
                    // of the request that caused the start.
                    if let Some(failed) =
                        initialize(spec, &inst, &req.request_id, &req.qualifier, creds).await
                    {
                        inst.kill().await;
                        drop(ticket);
                        return Ok(self.finish(spec, &inst, &req, &labels, failed).await);
                    }
                    ticket.finish(inst.clone());
                    break (pool, inst);
                }
                Err(NoSlot::Retired) => continue,
                Err(why) => {
                    self.metrics.throttled();
                    return Err(throttled(why));
                }
            }
        };
        let mut slot = Slot {
            mgr: self,
            pool,
            inst,
            finished: false,
        };
        let inst = slot.inst.clone();
        let verdict_outcome = match self.run(spec, &inst, &req, body, creds).await {
            Ok(o) => o,
            Err(e) => {
                // The instance is fine: it only lost a request that never became complete.
                slot.finished = true;
                return Err(InvokeError::Body(e));
            }
        };
        slot.finished = true;
        let outcome = self
            .finish(spec, &inst, &req, &labels, verdict_outcome)
            .await;
        drop(slot);
        Ok(outcome)
    }

    /// Metrics and the log tail of a finished call.
    async fn finish(
        &self,
        spec: &FunctionSpec,
        inst: &Arc<Instance>,
        req: &InvokeRequest,
        labels: &metrics::FunctionLabels,
        mut outcome: InvokeOutcome,
    ) -> InvokeOutcome {
        self.metrics
            .finished(labels, outcome.duration, outcome.error_type.is_some());
        if req.log_tail {
            // The same records the log store gets: this request's lines (on a cold start its
            // initializer's too), cut by its markers or framed by fcd.
            let lines =
                logs::request_log(&inst.logs().request_lines(&req.request_id), &req.request_id);
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
        outcome
    }

    async fn run(
        &self,
        spec: &FunctionSpec,
        inst: &Arc<Instance>,
        req: &InvokeRequest,
        body: Payload,
        creds: Option<&FunctionCredentials>,
    ) -> Result<InvokeOutcome, FcError> {
        let f = &spec.function;
        let mut extra: Vec<(&'static str, &str)> = vec![
            ("x-fc-request-id", &req.request_id),
            ("x-fc-qualifier", &req.qualifier),
        ];
        if let Some(t) = &req.trace_id {
            extra.push(("x-fc-trace-id", t));
        }
        let retries = req.retry_count.to_string();
        if req.retry_count > 0 {
            extra.push(("x-fc-retry-count", &retries));
        }
        // FC's duration is the handler's own time, without start-up and initializer.
        let invoked = Instant::now();
        let limit = Duration::from_secs(u64::from(f.timeout.max(1)));
        let Some(http) = &req.http else {
            let res = inst
                .call(Method::POST, "/invoke", &extra, creds, body, limit)
                .await;
            if let CallResult::BodyRejected(e) = res {
                return Err(e);
            }
            let verdict = judge(inst, res, invoked, limit, "Function").await;
            return Ok(outcome(inst, invoked, verdict));
        };
        let res = inst.call_http(http, &extra, creds, body, limit).await;
        if let CallResult::BodyRejected(e) = res {
            return Err(e);
        }
        // An HTTP function's status is the client's business (a 404 page is a success):
        // only the runtime's own verdict (`x-fc-status` other than 200, or an error type)
        // makes it a function error. Timeouts and crashes are judged as for events.
        match res {
            CallResult::Response {
                status,
                headers,
                body,
            } if !http_failed(&headers) => {
                let mut o = outcome(inst, invoked, Verdict::Success(body));
                o.http = Some(HttpResponseParts { status, headers });
                Ok(o)
            }
            other => {
                let verdict = judge(inst, other, invoked, limit, "Function").await;
                Ok(outcome(inst, invoked, verdict))
            }
        }
    }

    /// Keeps `target` instances of `spec` started ahead of traffic, replacing any that die.
    /// Call it periodically; it returns how many are up.
    pub async fn provision(&self, spec: Arc<FunctionSpec>, qualifier: &str, target: u32) -> u32 {
        if self.closed.load(Ordering::Acquire) {
            return 0;
        }
        let pool = self.pool(&spec);
        pool.prune_dead();
        pool.provisioned_target.store(target, Ordering::Release);
        let up = pool.provisioned_count();
        if up > target {
            // Idle extra ones stop now (capacity given back, and ListInstances shows the
            // target); busy ones become ordinary instances and are reclaimed once idle.
            for inst in pool.shed_provisioned(up - target) {
                tracing::info!(instance = %inst.id, "stopping a provisioned instance above the target");
                tokio::spawn(async move { inst.retire(Duration::from_secs(2)).await });
            }
            return target;
        }
        if up == target {
            return up;
        }
        // One ask per round, and only when an instance is to be started.
        let creds = match &spec.credentials {
            None => None,
            Some(source) => match source.credentials().await {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(function = %spec.function.function_name, error = %e, "provisioned instances not started: no credentials for the service's role");
                    return up;
                }
            },
        };
        let creds = creds.as_deref();
        for _ in up..target {
            let Some(reservation) = self.budget.reserve(u64::from(spec.function.memory_size))
            else {
                tracing::warn!(function = %spec.function.function_name, "server budget exhausted: provisioned instances not all started");
                break;
            };
            match self
                .start_instance(&spec, qualifier, reservation, creds)
                .await
            {
                Ok(inst) => {
                    let rid = uuid::Uuid::new_v4().to_string();
                    if initialize(&spec, &inst, &rid, qualifier, creds)
                        .await
                        .is_some()
                    {
                        inst.kill().await;
                        continue;
                    }
                    inst.provisioned.store(true, Ordering::Release);
                    inst.last_used_ms.store(self.now_ms(), Ordering::Release);
                    pool.add(inst);
                }
                Err(e) => {
                    tracing::warn!(function = %spec.function.function_name, error = %e, "provisioned instance failed to start");
                    break;
                }
            }
        }
        pool.provisioned_count()
    }

    /// Stops idle on-demand instances unused for the configured idle time. Runs until shutdown.
    pub async fn reclaim_idle_forever(self: Arc<Self>) {
        let idle = self.cfg.idle_timeout;
        let every = (idle / 4).clamp(Duration::from_millis(100), Duration::from_secs(5));
        while !self.closed.load(Ordering::Acquire) {
            tokio::time::sleep(every).await;
            let cutoff = self.now_ms().saturating_sub(idle.as_millis() as u64);
            let pools: Vec<Arc<Pool>> = self
                .pools
                .read()
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            // Instances whose environment's credentials are about to expire are replaced (see
            // `credentials`): busy ones take no new request and stop once done.
            let stale_before = credentials::unix_now() + credentials::ENV_RENEW_MARGIN.as_secs();
            for p in pools {
                p.prune_dead();
                for inst in p.take_idle(cutoff) {
                    tracing::info!(instance = %inst.id, "reclaiming idle instance");
                    tokio::spawn(async move { inst.retire(Duration::from_secs(2)).await });
                }
                for inst in p.take_env_expiring(stale_before) {
                    tracing::info!(instance = %inst.id, "replacing an instance whose environment's credentials expire soon");
                    retire_when_idle(inst);
                }
            }
            self.remove_empty_pools();
            self.history.sweep();
            #[cfg(feature = "wasm")]
            if let Some(engine) = self.cfg.runtimes.wasm_engine() {
                engine.unload_unused_for(idle);
            }
        }
    }

    /// Stops the instances of one version of a function (`None`: LATEST; `function: None`:
    /// every function of the service), after an update or delete. In-flight requests finish
    /// first; other versions' instances are not disturbed.
    pub async fn retire(
        &self,
        account: &str,
        service: &str,
        function: Option<&str>,
        version: Option<&str>,
    ) {
        let version = version.unwrap_or(LATEST);
        let removed: Vec<Arc<Pool>> = match self.pools.write() {
            Ok(mut m) => {
                let keys: Vec<PoolKey> = m
                    .keys()
                    .filter(|(a, s, f, v)| {
                        a == account
                            && s == service
                            && function.is_none_or(|x| x == f)
                            && v == version
                    })
                    .cloned()
                    .collect();
                keys.iter().filter_map(|k| m.remove(k)).collect()
            }
            Err(_) => Vec::new(),
        };
        for p in removed {
            retire_pool(&p);
        }
    }

    /// Graceful stop: refuse new invocations, let running ones finish for up to `grace`, then
    /// stop every instance (preStop first, bounded).
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
        self.prewarm.shutdown();
        let pools: Vec<Arc<Pool>> = match self.pools.write() {
            Ok(mut m) => m.drain().map(|(_, p)| p).collect(),
            Err(_) => Vec::new(),
        };
        let mut stops = Vec::new();
        for p in pools {
            for inst in p.retire() {
                stops.push(tokio::spawn(async move {
                    // preStop may take its configured time, but shutdown must end.
                    if tokio::time::timeout(
                        Duration::from_secs(5),
                        inst.retire(Duration::from_secs(2)),
                    )
                    .await
                    .is_err()
                    {
                        inst.kill().await;
                    }
                }));
            }
        }
        for s in stops {
            let _ = s.await;
        }
        if let Some(egress) = self.cfg.egress.clone() {
            let _ = tokio::task::spawn_blocking(move || egress.teardown()).await;
        }
        if let Some(cg) = self.cfg.jail.as_ref().map(|j| j.cgroups.clone()) {
            // Kills stragglers with pauses between tries: not on the async runtime's threads.
            let _ = tokio::task::spawn_blocking(move || cg.remove()).await;
        }
    }

    /// Instances currently running, for tests and metrics.
    pub fn instance_count(&self) -> usize {
        self.pools
            .read()
            .map(|m| m.values().map(|p| p.instances().len()).sum())
            .unwrap_or(0)
    }

    /// Every pool with live instances: what this node tells its cluster peers so that calls
    /// of a function go where it is warm.
    pub fn warm_pools(&self) -> Vec<WarmPool> {
        let Ok(m) = self.pools.read() else {
            return Vec::new();
        };
        m.iter()
            .filter(|(_, p)| !p.retired.load(Ordering::Acquire))
            .filter_map(|((a, s, f, v), p)| {
                let mut instance_ids = Vec::new();
                let (instances, free_slots) = p.warm(|i| instance_ids.push(i.id.clone()));
                (instances > 0).then(|| WarmPool {
                    account: a.clone(),
                    service: s.clone(),
                    function: f.clone(),
                    version: v.clone(),
                    instances,
                    free_slots,
                    instance_ids,
                })
            })
            .collect()
    }

    /// The code packages (their directories' names: the digests), and layers, that this node's
    /// pools run,
    /// so that collecting unreferenced packages never removes one under a live instance
    /// (`None` when that cannot be known: then nothing may be collected).
    pub fn code_in_use(&self) -> Option<std::collections::HashSet<String>> {
        let m = self.pools.read().ok()?;
        Some(
            m.values()
                .flat_map(|p| {
                    p.code_dir
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .into_iter()
                        .chain(p.layer_digests.iter().cloned())
                })
                .collect(),
        )
    }

    /// Drops the prewarmed jails kept for images whose digest is not in `keep` (they pin their
    /// images' trees), so the image collector can remove those.
    pub fn keep_image_jails(&self, keep: &std::collections::HashSet<String>) {
        self.prewarm.keep_images(keep);
    }

    /// Request slots free right now on this node's warm instances of `spec`'s version.
    pub fn free_slots(&self, spec: &FunctionSpec) -> u32 {
        let key = Self::pool_key(spec);
        self.pools
            .read()
            .ok()
            .and_then(|m| m.get(&key).map(|p| p.warm_capacity().1))
            .unwrap_or(0)
    }

    /// ListInstances: the live instances of a function (all versions unless one is named).
    pub fn list_instances(
        &self,
        account: &str,
        service: &str,
        function: &str,
        version: Option<&str>,
    ) -> Vec<InstanceInfo> {
        let Ok(m) = self.pools.read() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for ((a, s, f, v), p) in m.iter() {
            if a != account || s != service || f != function || version.is_some_and(|x| x != v) {
                continue;
            }
            for i in p.instances() {
                if !i.dead.load(Ordering::Acquire) && !i.exited() {
                    out.push(InstanceInfo {
                        instance_id: i.id.clone(),
                        version_id: v.clone(),
                    });
                }
            }
        }
        out
    }

    /// What isolation instances get on this host, and what is missing (for `GET /status`).
    pub fn isolation(&self) -> serde_json::Value {
        let cfg = &self.cfg;
        let mut missing = Vec::new();
        if cfg.network == NetworkMode::Host {
            missing.push("network namespaces: instances share the host network".to_owned());
        } else if cfg.egress.is_none() {
            missing.push(format!(
                "outbound network ({}): instances reach only themselves, whatever internetAccess says",
                cfg.egress_unavailable.as_deref().unwrap_or("disabled")
            ));
        }
        let jail = cfg.jail.as_ref();
        if jail.is_none() {
            missing.push(format!(
                "jail ({}): instances run as fcd's own user, see the host's files (fcd's data dir and credentials included) and processes, with no system-call filter",
                cfg.jail_unavailable.as_deref().unwrap_or("disabled")
            ));
            missing.push("cgroups: memorySize and process limits are not enforced".to_owned());
        }
        let user = match jail {
            Some(j) => j.describe_uids(),
            None => format!("fcd's own (uid {})", nix::unistd::geteuid()),
        };
        serde_json::json!({
            "network": match cfg.network { NetworkMode::Namespace => "namespace", NetworkMode::Host => "host" },
            "egress": cfg.egress.as_ref().map(|e| e.describe()),
            "hostAddr": cfg.egress.as_ref().map(|e| e.host_addr().to_string()),
            "jailed": jail.is_some(),
            "filesystem": if jail.is_some() {
                "allow-list: system trees and the runtime read-only, code read-only at /code, layers read-only at /opt, a private /tmp"
            } else {
                "host"
            },
            "pidNamespace": jail.is_some(),
            "cgroups": jail.map(|j| j.cgroups.describe()),
            "seccomp": jail.is_some(),
            "user": user,
            "prewarmed": self.prewarm.ready_count(),
            "missing": missing,
        })
    }

    /// A function's last hour on this node, one point a minute (see [`history`]): always
    /// [`history::MINUTES`] points, oldest first, the current minute last.
    pub fn function_history(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Vec<history::Point> {
        self.history.window(account, service, function)
    }

    /// Forgets a deleted function's history (`function: None`: every function of the
    /// service), so a new function of the same name starts with none.
    pub fn forget_history(&self, account: &str, service: &str, function: Option<&str>) {
        self.history.forget(account, service, function);
    }

    /// The server's metrics in the Prometheus text format.
    pub fn metrics_text(&self) -> String {
        let (mut busy, mut idle, mut provisioned) = (0u64, 0u64, 0u64);
        if let Ok(m) = self.pools.read() {
            for p in m.values() {
                for i in p.instances() {
                    if i.dead.load(Ordering::Acquire) {
                        continue;
                    }
                    if i.provisioned.load(Ordering::Acquire) {
                        provisioned += 1;
                    }
                    if i.active.load(Ordering::Acquire) > 0 {
                        busy += 1;
                    } else {
                        idle += 1;
                    }
                }
            }
        }
        let (used_n, used_m) = self.budget.used();
        let (max_n, max_m) = self.budget.limits();
        self.metrics.render(metrics::Gauges {
            busy,
            idle,
            provisioned,
            reserved_memory_mb: used_m,
            reserved_instances: u64::from(used_n),
            max_instances: u64::from(max_n),
            max_memory_mb: max_m,
            log_lines_dropped: self.log_store.as_ref().map_or(0, |s| s.dropped_total()),
        })
    }
}

/// Runs the initializer of a new instance, if the function has one. `Some` is the failed
/// invocation's outcome: the instance must not be used.
async fn initialize(
    spec: &FunctionSpec,
    inst: &Arc<Instance>,
    request_id: &str,
    qualifier: &str,
    creds: Option<&FunctionCredentials>,
) -> Option<InvokeOutcome> {
    let f = &spec.function;
    if f.initializer.is_empty() {
        return None;
    }
    let limit = Duration::from_secs(u64::from(f.initialization_timeout.max(1)));
    let extra = [
        ("x-fc-request-id", request_id),
        ("x-fc-qualifier", qualifier),
    ];
    let started = Instant::now();
    let res = inst
        .call(
            Method::POST,
            "/initialize",
            &extra,
            creds,
            Bytes::new().into(),
            limit,
        )
        .await;
    match judge(inst, res, started, limit, "Initializer").await {
        Verdict::Success(_) => None,
        failed => Some(outcome(inst, started, failed)),
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
            let mem = round2(inst.fresh_memory_mb());
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
        // Only a streamed body can be refused, and only invocations stream one (`run` handles
        // it); anything else is a call fcd made itself with a whole body.
        CallResult::BodyRejected(e) => Verdict::FunctionError {
            body: error_body(&e.to_string()),
            kind: "UnhandledInvocationError".into(),
        },
        CallResult::Failed(e) => {
            let exit = inst.exit_info(Duration::from_millis(500)).await;
            inst.dead.store(true, Ordering::SeqCst);
            let mem = match &exit {
                Some(x) => x.max_rss_kib as f64 / 1024.0,
                None => inst.fresh_memory_mb(),
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

/// Whether the runtime reported an HTTP invocation as failed.
fn http_failed(headers: &http::HeaderMap) -> bool {
    headers.contains_key("x-fc-error-type")
        || headers
            .get("x-fc-status")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|s| s.trim() != "200")
}

fn outcome(inst: &Instance, started: Instant, v: Verdict) -> InvokeOutcome {
    let duration = started.elapsed();
    let (body, error_type, mem) = match v {
        Verdict::Success(b) => (b, None, inst.max_memory_mb()),
        // Failures are rare and their memory figure matters (OOM): read it fresh.
        Verdict::FunctionError { body, kind } => (body, Some(kind), inst.fresh_memory_mb()),
    };
    InvokeOutcome {
        body,
        error_type,
        duration,
        max_memory_mb: round2(mem),
        instance_id: inst.id.clone(),
        log_tail: None,
        http: None,
    }
}

fn error_body(msg: &str) -> Bytes {
    Bytes::from(serde_json::json!({ "errorMessage": msg }).to_string())
}

/// Stops a pool's instances once each has no request left.
fn retire_pool(pool: &Arc<Pool>) {
    for inst in pool.retire() {
        retire_when_idle(inst);
    }
}

/// Stops an instance already taken out of its pool once it has no request left.
fn retire_when_idle(inst: Arc<Instance>) {
    tokio::spawn(async move {
        inst.dead.store(true, Ordering::SeqCst);
        // Bounded: a request cannot outlive its function's timeout by much.
        let deadline = Instant::now() + Duration::from_secs(86_400);
        while inst.active.load(Ordering::Acquire) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        inst.retire(Duration::from_secs(2)).await;
    });
}
