//! Asynchronous invocation: accepting durably, running with retries, destinations, and the
//! stateful-invocation API, on any [`fcd_queue::Queue`] (the embedded file, or NATS JetStream
//! and PostgreSQL shared by a cluster).
//!
//! `accept` answers only after the queue has the invocation durably (the embedded queue's
//! writer commits concurrent accepts together). One dispatcher per node claims invocations in
//! batches and runs each as a task: at most `max_running` at once (the async share of the
//! node, so sync traffic is never starved) and, per function, at most what its instances can
//! take at once (`instanceConcurrency` × the instances it may have). Each claim carries an
//! owner token (`{node}:{boot}:{n}`) and a lease of 30 s, extended every 2 s while the function
//! runs; each extension also reads the record's status, so a stop requested on any node
//! reaches the node running the call within 2 s (`cancel_local` is the faster path for a
//! stop told to every node). A run whose node died is claimed again once its lease lapses;
//! the record's compare-and-set keeps its result to one. Each task resolves the function as a
//! sync call would and runs it through the same instance manager. A result is recorded
//! durably before anything acts on it (its destination, a stop); a failed queue write is
//! retried with backoff and logged, never dropped. On the embedded queue `recover` puts back
//! at start what the last run of the node left `Running`.
//! Function errors are retried up to `maxAsyncRetryAttempts` with a doubling pause; throttling
//! and platform trouble are retried with FC's exponential backoff (0.5 s, 1 s, 2 s ... for up to
//! 5 hours) without counting as attempts. An invocation older than `maxAsyncEventAgeInSeconds`
//! when it could start is `Expired`. Results go to the configured destination functions as FC's
//! destination record. The cluster-wide jobs — expiry, the sweeper that republishes what a
//! crash left unpublished, the retention purge — run where [`AsyncEngine::set_runs_jobs`] says
//! (`expire_once`, `sweep_once`, `purge_once` run one pass each); `drain` hands back what a
//! stopping node still runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use base64::Engine as _;
use bytes::Bytes;
use tokio::sync::{Notify, oneshot};

use fcd_core::FcError;
use fcd_core::limits::ASYNC_PAYLOAD_MAX;
use fcd_queue::{
    AsyncConfig, CLAIM_MAX, Claim, Invocation, ListFilter, NewInvocation, Outcome, Queue,
    QueueError, Status, StopResult, invocation_key,
};
use fcd_runtime::{FunctionSpec, HttpInvocation, InstanceLimit, InvokeError, InvokeRequest};

use crate::concurrency::Refused;
use crate::{Control, internal};

const DEFAULT_MAX_AGE_SECS: u64 = 86_400;
const MAX_AGE_LIMIT_SECS: u64 = 604_800;
const DEFAULT_RETRIES: u32 = 3;
const MAX_RETRIES: u32 = 8;
/// Throttled or platform-failed invocations are retried for this long.
const PLATFORM_RETRY_WINDOW_MS: u64 = 5 * 3600 * 1000;
/// Most bytes of a result kept as `returnPayload`.
const RETURN_PAYLOAD_MAX: usize = 1024 * 1024;
/// How long a claim holds an invocation unless extended: a run whose node died is claimable
/// again (on a shared queue, by another node) this long after its last extension.
const LEASE_MS: u64 = 30_000;
/// How often a running invocation's lease is extended, and its record's status read (a stop
/// requested on any node is seen within this).
const EXTEND_EVERY: Duration = Duration::from_secs(2);
/// How long a broker's claim waits for work when none is there.
const CLAIM_WAIT: Duration = Duration::from_secs(1);
/// How late a waiting invocation may be before the sweeper publishes it again. The sweeper
/// cannot tell a lost publish from a backlog: a republish within the broker's duplicate
/// window (2 min) of the first is dropped by the broker, a later one costs a delivery that
/// the record's compare-and-set turns into no second run.
const SWEEP_GRACE: Duration = Duration::from_secs(60);
/// How often the sweeper and the retention purge run (on the node that runs them).
const SWEEP_EVERY: Duration = Duration::from_secs(10);
const PURGE_EVERY: Duration = Duration::from_secs(60);
/// With every slot taken, how long the dispatcher waits for a quarter of them to come back
/// before claiming for fewer.
const REFILL_WAIT: Duration = Duration::from_millis(2);
/// Waiting invocations past their age limit are looked for this often.
const EXPIRE_EVERY_MS: u64 = 1_000;
/// First and longest pause between tries of a failed queue write.
const WRITE_RETRY_FIRST: Duration = Duration::from_millis(50);
const WRITE_RETRY_MAX: Duration = Duration::from_secs(5);

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn queue_error(e: QueueError) -> FcError {
    match e {
        // PostgreSQL or NATS unreachable: FC's 503, worth retrying.
        QueueError::Unavailable(m) => {
            tracing::error!(error = %m, "async queue unavailable");
            FcError::ServiceUnavailable
        }
        e => internal("async queue", e),
    }
}

/// `^[A-Za-z_][A-Za-z0-9_-]{0,127}$`
pub fn valid_invocation_id(id: &str) -> bool {
    let b = id.as_bytes();
    matches!(b.first(), Some(c) if c.is_ascii_alphabetic() || *c == b'_')
        && b.len() <= 128
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'-')
}

/// A destination that is another fcd function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionTarget {
    pub service: String,
    pub qualifier: String,
    pub function: String,
}

/// Parses FC 2.0's `acs:fc:{region}:{account}:services/{s}.{q}/functions/{f}` (the qualifier
/// defaults to LATEST) and FC 3.0's `acs:fc:{region}:{account}:functions/{name}` (a native
/// function `F` or a 2.0 function `svc$fn`, [`fcd_core::fc3`]; always LATEST: whether 3.0
/// destinations can name a qualifier is not known). Region and account may be empty. Other
/// destination kinds are refused by name.
pub fn parse_destination(arn: &str) -> Result<FunctionTarget, FcError> {
    let unsupported = || {
        FcError::invalid(format!(
            "destination '{arn}' is not supported: fcd delivers to Function Compute functions only (acs:fc:{{region}}:{{account}}:functions/{{function}} or acs:fc:{{region}}:{{account}}:services/{{service}}.{{qualifier}}/functions/{{function}}); MNS, EventBridge and RocketMQ destinations are not available"
        ))
    };
    let mut parts = arn.splitn(5, ':');
    let (Some("acs"), Some(kind), Some(_region), Some(_account), Some(resource)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(unsupported());
    };
    if kind != "fc" {
        return Err(unsupported());
    }
    if let Some(name) = resource.strip_prefix("functions/") {
        let f = fcd_core::fc3::Fc3Function::parse(name).map_err(|_| unsupported())?;
        return Ok(FunctionTarget {
            service: f.service().into_owned(),
            qualifier: "LATEST".to_owned(),
            function: f.function().to_owned(),
        });
    }
    let rest = resource.strip_prefix("services/").ok_or_else(unsupported)?;
    let (svc, function) = rest.split_once("/functions/").ok_or_else(unsupported)?;
    let (service, qualifier) = match svc.split_once('.') {
        Some((s, q)) => (s.to_owned(), q.to_owned()),
        None => (svc.to_owned(), "LATEST".to_owned()),
    };
    if service.is_empty() || function.is_empty() || function.contains('/') {
        return Err(unsupported());
    }
    Ok(FunctionTarget {
        service,
        qualifier,
        function: function.to_owned(),
    })
}

/// The body of PutFunctionAsyncInvokeConfig.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncConfigUpdate {
    pub max_async_event_age_in_seconds: Option<u64>,
    pub max_async_retry_attempts: Option<u32>,
    pub stateful_invocation: Option<bool>,
    pub destination_config: Option<DestinationConfig>,
}

#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DestinationConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_success: Option<Destination>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Destination>,
}

#[derive(Debug, Default, Clone, serde::Deserialize, serde::Serialize)]
pub struct Destination {
    #[serde(default)]
    pub destination: String,
}

fn destinations(cfg: Option<&AsyncConfig>) -> (Option<String>, Option<String>) {
    let dc = cfg
        .and_then(|c| c.destination_config.clone())
        .and_then(|v| serde_json::from_value::<DestinationConfig>(v).ok())
        .unwrap_or_default();
    let pick = |d: Option<Destination>| d.map(|d| d.destination).filter(|d| !d.is_empty());
    (pick(dc.on_success), pick(dc.on_failure))
}

/// An HTTP-trigger request as the queue keeps it (JSON in `http_request`; the body is the
/// invocation's payload). Header values are kept byte for byte: each byte is one character
/// of the string (Latin-1), since a header value need not be UTF-8.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct HttpRecord {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_path: Option<String>,
    client_ip: String,
}

impl HttpRecord {
    fn of(h: &HttpInvocation) -> HttpRecord {
        HttpRecord {
            method: h.method.as_str().to_owned(),
            target: h.target.clone(),
            headers: h
                .headers
                .iter()
                .map(|(k, v)| {
                    let latin1 = v.as_bytes().iter().map(|&b| char::from(b)).collect();
                    (k.as_str().to_owned(), latin1)
                })
                .collect(),
            base_path: h.base_path.clone(),
            client_ip: h.client_ip.clone(),
        }
    }

    fn encode(&self) -> Result<String, FcError> {
        serde_json::to_string(self).map_err(|e| internal("encode an HTTP request for the queue", e))
    }

    fn decode(text: &str) -> Result<HttpInvocation, String> {
        let r: HttpRecord = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let method = http::Method::from_bytes(r.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut headers = http::HeaderMap::with_capacity(r.headers.len());
        for (k, v) in &r.headers {
            let bytes: Vec<u8> = v
                .chars()
                .map(|c| {
                    u8::try_from(u32::from(c)).map_err(|_| "a header byte out of range".to_owned())
                })
                .collect::<Result<_, _>>()?;
            let name = http::HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
            let value = http::HeaderValue::from_bytes(&bytes).map_err(|e| e.to_string())?;
            headers.append(name, value);
        }
        Ok(HttpInvocation {
            method,
            target: r.target,
            headers,
            base_path: r.base_path,
            client_ip: r.client_ip,
        })
    }
}

/// (account, service, function, qualifier).
type ConfigKey = (String, String, String, String);

/// An async invoke config as the cache keeps it: shared, its destinations read once.
#[derive(Debug)]
struct CachedConfig {
    cfg: AsyncConfig,
    on_success: Option<String>,
    on_failure: Option<String>,
}

/// Runs a queue write until it succeeds: a failure is logged at error level and tried again
/// after a pause that doubles up to [`WRITE_RETRY_MAX`]. Gives up (`None`) only once `closed`
/// is set — the server is stopping, and what the write would have recorded is recovered at the
/// next start.
async fn until_written<T, F, Fut>(
    what: &str,
    request_id: &str,
    closed: &AtomicBool,
    mut write: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueueError>>,
{
    let mut pause = WRITE_RETRY_FIRST;
    let mut tries = 0u32;
    loop {
        tries += 1;
        match write().await {
            Ok(v) => {
                if tries > 1 {
                    tracing::warn!(request_id, tries, "{what}: written after retrying");
                }
                return Some(v);
            }
            Err(e) => {
                if closed.load(Ordering::Acquire) || matches!(e, QueueError::Closed) {
                    tracing::error!(request_id, tries, error = %e,
                        "{what} failed while the server stops: the invocation stays Running and goes back to the queue at the next start");
                    return None;
                }
                tracing::error!(request_id, tries, error = %e, retry_in_ms = pause.as_millis() as u64,
                    "{what} failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(WRITE_RETRY_MAX);
            }
        }
    }
}

/// Why a running invocation is interrupted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    /// StopStatefulAsyncInvocation: it ends `Stopped`.
    Stop,
    /// The node is draining: it goes back to the queue for another node.
    HandBack,
}

/// Runs asynchronous invocations. One per node.
pub struct AsyncEngine {
    queue: Queue,
    /// This node's name in owner tokens (`{node}:{boot}:{claim}`: unique per claim, also
    /// across restarts of the node).
    node_id: String,
    boot_ms: u64,
    claims: AtomicU64,
    control: Arc<Control>,
    /// Most invocations running at once, all functions together.
    max_running: usize,
    slots: Arc<Semaphore>,
    /// Per function and qualifier: how many of its invocations may run at once, and the
    /// semaphore that holds them to it.
    function_slots: Mutex<HashMap<ConfigKey, (usize, Arc<Semaphore>)>>,
    retention: Duration,
    wake: Notify,
    /// Invocations running in this process, by invocation key, with the way to abort each.
    running: Mutex<HashMap<String, oneshot::Sender<Abort>>>,
    /// Claims being processed (running, or recording how they ended).
    active: AtomicUsize,
    /// Signalled whenever a claim's processing ends (`drain` waits on it).
    run_ended: Notify,
    /// Whether this node runs the cluster-wide jobs (expiry, sweeper, purge).
    runs_jobs: AtomicBool,
    /// Set by `drain`: the dispatcher claims nothing more.
    draining: AtomicBool,
    /// Async invoke configs by (account, service, function, qualifier); `None` = no config.
    configs: std::sync::RwLock<HashMap<ConfigKey, Option<Arc<CachedConfig>>>>,
    closed: AtomicBool,
}

impl std::fmt::Debug for AsyncEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncEngine")
            .field("max_running", &self.max_running)
            .finish_non_exhaustive()
    }
}

impl AsyncEngine {
    /// `max_running`: most async invocations running at once (the async share of the server).
    /// `node_id`: this node's name, unique in the cluster (owner tokens of its runs).
    pub fn new(
        queue: Queue,
        control: Arc<Control>,
        max_running: usize,
        retention: Duration,
        node_id: impl Into<String>,
    ) -> AsyncEngine {
        let max_running = max_running.max(1);
        AsyncEngine {
            queue,
            node_id: node_id.into(),
            boot_ms: now_ms(),
            claims: AtomicU64::new(0),
            control,
            max_running,
            slots: Arc::new(Semaphore::new(max_running)),
            function_slots: Mutex::new(HashMap::new()),
            retention,
            wake: Notify::new(),
            running: Mutex::new(HashMap::new()),
            active: AtomicUsize::new(0),
            run_ended: Notify::new(),
            runs_jobs: AtomicBool::new(true),
            draining: AtomicBool::new(false),
            configs: std::sync::RwLock::new(HashMap::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// Recovers what a previous run left (the embedded queue: this node owned every run in
    /// it), then starts the dispatcher and the periodic jobs (expiry every second, the sweeper,
    /// the retention purge — each only while [`AsyncEngine::set_runs_jobs`] says this node
    /// runs them).
    pub async fn start(self: &Arc<Self>) -> Result<(), FcError> {
        let n = self.queue.recover(now_ms()).await.map_err(queue_error)?;
        if n > 0 {
            tracing::warn!(
                count = n,
                "async invocations interrupted by the last shutdown were put back in the queue"
            );
        }
        tokio::spawn(self.clone().dispatch());
        tokio::spawn(self.clone().jobs());
        Ok(())
    }

    /// Whether this node runs the cluster-wide jobs (expiry, sweeper, purge). On by default;
    /// a cluster turns it on for the one node holding the jobs' lease.
    pub fn set_runs_jobs(&self, on: bool) {
        self.runs_jobs.store(on, Ordering::Release);
    }

    pub fn runs_jobs(&self) -> bool {
        self.runs_jobs.load(Ordering::Acquire)
    }

    /// The periodic jobs, while this node runs them.
    async fn jobs(self: Arc<Self>) {
        let mut last_sweep = tokio::time::Instant::now();
        let mut last_purge: Option<tokio::time::Instant> = None;
        while !self.closed.load(Ordering::Acquire) {
            if self.runs_jobs() {
                self.expire_once().await;
                if last_sweep.elapsed() >= SWEEP_EVERY {
                    last_sweep = tokio::time::Instant::now();
                    if let Err(e) = self.sweep_once().await {
                        tracing::warn!(error = %e, "sweeping unpublished async invocations failed");
                    }
                }
                if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                    last_purge = Some(tokio::time::Instant::now());
                    if let Err(e) = self.purge_once().await {
                        tracing::warn!(error = %e, "purging async invocation records failed");
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(EXPIRE_EVERY_MS)).await;
        }
    }

    /// Ends, as `Expired`, the waiting invocations that became too old to start, and tells
    /// their destinations. Returns how many.
    pub async fn expire_once(&self) -> usize {
        match self.queue.records().expire_due(now_ms()).await {
            Ok(expired) => {
                for inv in &expired {
                    self.deliver(inv, false, "EventExpired", 200, "", b"").await;
                }
                expired.len()
            }
            Err(e) => {
                tracing::error!(error = %e, "expiring async work failed");
                0
            }
        }
    }

    /// Publishes again what waits past its due time and was never started (a node that died
    /// between writing an accepted invocation and publishing it). Returns how many.
    pub async fn sweep_once(&self) -> Result<usize, FcError> {
        let n = self
            .queue
            .sweep(now_ms(), SWEEP_GRACE)
            .await
            .map_err(queue_error)?;
        if n > 0 {
            tracing::warn!(
                count = n,
                "async invocations overdue and not started were published again"
            );
        }
        Ok(n)
    }

    /// Deletes finished records past retention. Returns how many.
    pub async fn purge_once(&self) -> Result<u64, FcError> {
        let cutoff = now_ms().saturating_sub(self.retention.as_millis() as u64);
        let n = self
            .queue
            .records()
            .purge(cutoff)
            .await
            .map_err(queue_error)?;
        if n > 0 {
            tracing::info!(count = n, "purged async invocation records past retention");
        }
        Ok(n)
    }

    /// Stops the invocation if it runs on this node (a stop requested on another node, told
    /// to every node). `false`: it does not run here.
    pub fn cancel_local(
        &self,
        account: &str,
        service: &str,
        function: &str,
        invocation_id: &str,
    ) -> bool {
        let key = invocation_key(account, service, function, invocation_id);
        self.abort_local(&key, Abort::Stop)
    }

    fn abort_local(&self, key: &str, why: Abort) -> bool {
        let abort = self.running.lock().ok().and_then(|mut r| r.remove(key));
        match abort {
            Some(tx) => tx.send(why).is_ok(),
            None => false,
        }
    }

    fn active_count(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    /// Drains this node: claims nothing more, lets running invocations finish until
    /// `deadline`, then hands back what still runs (due again now, for another node).
    /// Returns how many were handed back.
    pub async fn drain(&self, deadline: tokio::time::Instant) -> usize {
        self.draining.store(true, Ordering::Release);
        self.wake.notify_waiters();
        loop {
            let ended = self.run_ended.notified();
            if self.active_count() == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                break;
            }
        }
        let keys: Vec<String> = self
            .running
            .lock()
            .map(|r| r.keys().cloned().collect())
            .unwrap_or_default();
        let handed = keys
            .iter()
            .filter(|k| self.abort_local(k, Abort::HandBack))
            .count();
        // Each run records its hand-back; give them a moment to.
        let until = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.active_count() > 0 && tokio::time::Instant::now() < until {
            let ended = self.run_ended.notified();
            let _ = tokio::time::timeout_at(until, ended).await;
        }
        handed
    }

    /// Stops taking work; running invocations are aborted by the instance manager's shutdown
    /// and run again later: after the next start (embedded), or on another node once their
    /// lease lapses (shared queue; `drain` first hands them back at once).
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }

    /// The async invoke config of a function and qualifier, from memory after the first read;
    /// every change goes through this engine, which drops the cached copy.
    async fn config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: &str,
    ) -> Option<Arc<CachedConfig>> {
        let key = (
            account.to_owned(),
            service.to_owned(),
            function.to_owned(),
            qualifier.to_owned(),
        );
        if let Some(hit) = self.configs.read().ok().and_then(|c| c.get(&key).cloned()) {
            return hit;
        }
        match self
            .queue
            .configs()
            .get_config(account, service, function, qualifier)
            .await
        {
            Ok(c) => {
                let c = c.map(|cfg| {
                    let (on_success, on_failure) = destinations(Some(&cfg));
                    Arc::new(CachedConfig {
                        cfg,
                        on_success,
                        on_failure,
                    })
                });
                if let Ok(mut cache) = self.configs.write() {
                    cache.insert(key, c.clone());
                }
                c
            }
            Err(e) => {
                tracing::warn!(error = %e, "reading async config failed; using defaults");
                None
            }
        }
    }

    fn forget_cached_configs(&self, account: &str, service: &str) {
        self.forget_cached(Some(account), Some(service));
    }

    /// Drops cached async invoke configs: of a service, of an account (`service: None`), or
    /// all of them (`account: None`) — what another node's write or a missed event asks for.
    pub fn forget_cached(&self, account: Option<&str>, service: Option<&str>) {
        if let Ok(mut cache) = self.configs.write() {
            cache.retain(|(a, s, _, _), _| {
                !(account.is_none_or(|x| x == a) && service.is_none_or(|x| x == s))
            });
        }
    }

    /// A config of `service` changed here: forgotten here, and every other node told.
    async fn configs_changed(&self, account: &str, service: &str) {
        self.forget_cached_configs(account, service);
        let cluster = self.control.cluster();
        if !cluster.is_single() {
            let event = fcd_cluster::ClusterEvent::Invalidate {
                account: account.to_owned(),
                service: Some(service.to_owned()),
            };
            match cluster
                .publish_acknowledged(event, std::time::Duration::from_secs(1))
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!("not every node acknowledged an async config change within 1 s")
                }
                Err(e) => {
                    tracing::warn!(error = %e, "could not tell the other nodes of an async config change")
                }
            }
        }
    }

    /// An invocation of `function` as its async invoke config (for that qualifier) shapes it.
    #[allow(clippy::too_many_arguments)]
    async fn plan(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: &str,
        payload: Vec<u8>,
        request_id: &str,
        invocation_id: &str,
        force_stateful: bool,
    ) -> NewInvocation {
        let cached = self.config(account, service, function, qualifier).await;
        let cfg = cached.as_ref().map(|c| &c.cfg);
        let (on_success, on_failure) = cached.as_ref().map_or((None, None), |c| {
            (c.on_success.clone(), c.on_failure.clone())
        });
        NewInvocation {
            account_id: account.to_owned(),
            service: service.to_owned(),
            function: function.to_owned(),
            qualifier: qualifier.to_owned(),
            invocation_id: invocation_id.to_owned(),
            request_id: request_id.to_owned(),
            stateful: force_stateful || cfg.as_ref().is_some_and(|c| c.stateful_invocation),
            payload,
            max_retries: cfg
                .as_ref()
                .map(|c| c.max_async_retry_attempts)
                .unwrap_or(DEFAULT_RETRIES),
            max_age_secs: cfg
                .as_ref()
                .map(|c| c.max_async_event_age_in_seconds)
                .unwrap_or(DEFAULT_MAX_AGE_SECS),
            on_success,
            on_failure,
            now_ms: now_ms(),
            http_request: None,
        }
    }

    /// Removes the async invoke configs of a deleted function (`None`: the whole service) or
    /// qualifier (`None`: all of them), so nothing inherits them later.
    pub async fn forget_configs(
        &self,
        account: &str,
        service: &str,
        function: Option<&str>,
        qualifier: Option<&str>,
    ) {
        if let Err(e) = self
            .queue
            .configs()
            .delete_configs(account, service, function, qualifier)
            .await
        {
            tracing::warn!(error = %e, "removing async invoke configs failed");
        }
        self.forget_cached_configs(account, service);
    }

    /// Accepts an async InvokeFunction. Returns the stateful invocation id, if the call is one.
    #[allow(clippy::too_many_arguments)]
    pub async fn accept(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        payload: Bytes,
        request_id: &str,
        stateful_header: Option<&str>,
        invocation_id: Option<&str>,
    ) -> Result<Option<String>, FcError> {
        self.accept_with(
            account,
            service,
            function,
            qualifier,
            payload,
            request_id,
            stateful_header,
            invocation_id,
            None,
        )
        .await
    }

    /// Accepts an async HTTP-trigger request (`X-Fc-Invocation-Type: Async`): queued like an
    /// async InvokeFunction, and replayed to the instance later as the same HTTP request
    /// (method, request-target, headers, body). Returns the stateful invocation id, if the
    /// call is one.
    #[allow(clippy::too_many_arguments)]
    pub async fn accept_http(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        request: &HttpInvocation,
        body: Bytes,
        request_id: &str,
        stateful_header: Option<&str>,
        invocation_id: Option<&str>,
    ) -> Result<Option<String>, FcError> {
        let record = HttpRecord::of(request).encode()?;
        self.accept_with(
            account,
            service,
            function,
            qualifier,
            body,
            request_id,
            stateful_header,
            invocation_id,
            Some(record),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn accept_with(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        payload: Bytes,
        request_id: &str,
        stateful_header: Option<&str>,
        invocation_id: Option<&str>,
        http_request: Option<String>,
    ) -> Result<Option<String>, FcError> {
        if payload.len() > ASYNC_PAYLOAD_MAX {
            return Err(FcError::EntityTooLarge {
                limit: ASYNC_PAYLOAD_MAX as u64,
            });
        }
        if let Some(id) = invocation_id
            && !valid_invocation_id(id)
        {
            return Err(FcError::invalid(format!(
                "X-Fc-Stateful-Async-Invocation-Id '{id}' is invalid: it must start with a letter or '_', contain only letters, digits, '_' and '-', and be at most 128 characters"
            )));
        }
        // The function must exist now; it is resolved again when it runs. The control plane's
        // cached spec answers that without reading the store; a function that may not run
        // now (maximumInstanceCount 0) is still accepted if it exists, and throttled later.
        match self
            .control
            .resolve(account, service, function, qualifier)
            .await
        {
            Ok(_) => {}
            Err(FcError::ResourceExhausted(_)) => {
                self.control
                    .function_at(account, service, function, qualifier)
                    .await?;
            }
            Err(e) => return Err(e),
        }
        let qualifier = qualifier.unwrap_or("LATEST");
        let cached = self.config(account, service, function, qualifier).await;
        let cfg = cached.as_ref().map(|c| &c.cfg);
        let header_on = stateful_header.is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let stateful = header_on
            || invocation_id.is_some()
            || cfg.as_ref().is_some_and(|c| c.stateful_invocation);
        let id = invocation_id.unwrap_or(request_id).to_owned();
        let (on_success, on_failure) = cached.as_ref().map_or((None, None), |c| {
            (c.on_success.clone(), c.on_failure.clone())
        });
        let inv = NewInvocation {
            account_id: account.to_owned(),
            service: service.to_owned(),
            function: function.to_owned(),
            qualifier: qualifier.to_owned(),
            invocation_id: id.clone(),
            request_id: request_id.to_owned(),
            stateful,
            payload: payload.to_vec(),
            max_retries: cfg
                .as_ref()
                .map(|c| c.max_async_retry_attempts)
                .unwrap_or(DEFAULT_RETRIES),
            max_age_secs: cfg
                .as_ref()
                .map(|c| c.max_async_event_age_in_seconds)
                .unwrap_or(DEFAULT_MAX_AGE_SECS),
            on_success,
            on_failure,
            now_ms: now_ms(),
            http_request,
        };
        match self.queue.enqueue(inv).await {
            Ok(()) => {}
            Err(QueueError::Duplicate) => {
                return Err(FcError::InvocationAlreadyExists {
                    service: service.to_owned(),
                    function: function.to_owned(),
                    id,
                });
            }
            Err(e) => return Err(queue_error(e)),
        }
        self.wake.notify_one();
        Ok(stateful.then_some(id))
    }

    /// Claims due invocations in batches, as many as there are free slots, and runs each as
    /// a task, until the engine closes or drains.
    async fn dispatch(self: Arc<Self>) {
        let mut pause = WRITE_RETRY_FIRST;
        let embedded = self.queue.is_embedded();
        while !self.closed.load(Ordering::Acquire) && !self.draining.load(Ordering::Acquire) {
            let notified = self.wake.notified();
            let free = self.slots.available_permits();
            if free == 0 {
                // Every slot is taken: wait for one to come back (or a second), then a moment
                // for more, so that one claim takes many rather than each freed slot costing a
                // claim of its own.
                let _ = tokio::time::timeout(Duration::from_secs(1), self.slots.acquire()).await;
                let more = (self.max_running / 4).clamp(1, CLAIM_MAX) as u32;
                let _ = tokio::time::timeout(REFILL_WAIT, self.slots.acquire_many(more)).await;
                continue;
            }
            let want = free.min(CLAIM_MAX);
            let now = now_ms();
            // One owner token per claim: a run's transitions name it, so a run that lost its
            // lease (and was started again elsewhere) can no longer change the record.
            let owner = format!(
                "{}:{}:{}",
                self.node_id,
                self.boot_ms,
                self.claims.fetch_add(1, Ordering::Relaxed)
            );
            let wait = if embedded { Duration::ZERO } else { CLAIM_WAIT };
            let claimed = match self
                .queue
                .claim(&owner, now, now + LEASE_MS, want, wait)
                .await
            {
                Ok(batch) => {
                    pause = WRITE_RETRY_FIRST;
                    let full = batch.len() == want;
                    let claimed = batch.len();
                    for c in batch {
                        // Only this loop takes slots, and it claimed no more than were free.
                        let slot = self.slots.clone().try_acquire_owned().ok();
                        self.active.fetch_add(1, Ordering::AcqRel);
                        tokio::spawn(self.clone().run(c, slot));
                    }
                    if full || !embedded {
                        // A broker's claim waited by itself.
                        continue;
                    }
                    claimed
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in_ms = pause.as_millis() as u64, "claiming async work failed");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(WRITE_RETRY_MAX);
                    continue;
                }
            };
            // Nothing due now: sleep until the next due time (a retry), at most a second, or an
            // accept. (After a partial claim, accepts keep coming and wake this loop; the read
            // is saved, and a retry that falls due meanwhile waits at most a second.)
            let due = if claimed > 0 {
                None
            } else {
                match self.queue.next_due_ms().await {
                    Ok(d) => d,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the next due async invocation failed");
                        None
                    }
                }
            };
            let until = due.unwrap_or(u64::MAX).min(now_ms() + EXPIRE_EVERY_MS);
            let wait = Duration::from_millis(until.saturating_sub(now_ms()).clamp(1, 1000));
            let _ = tokio::time::timeout(wait, notified).await;
        }
    }

    async fn run(self: Arc<Self>, c: Claim, slot: Option<OwnedSemaphorePermit>) {
        self.process(c).await;
        drop(slot);
        self.active.fetch_sub(1, Ordering::AcqRel);
        self.run_ended.notify_waiters();
    }

    /// The semaphore that holds one function to what its instances can take at once:
    /// `instanceConcurrency` × the instances it may have (its own limit, the server's), within
    /// the engine's `max_running` and its `reservedConcurrency` when known (at least one run:
    /// a function at 0 is refused when it runs, and retried as throttled).
    fn function_slots(&self, inv: &Invocation, spec: &FunctionSpec) -> Arc<Semaphore> {
        let server = self.control.runtime().config().max_instances;
        let instances = match spec.limit {
            InstanceLimit::Unlimited => server,
            InstanceLimit::AtMost(n) => n.get().min(server),
            // It is refused when it runs (and retried as throttled): one at a time is enough.
            InstanceLimit::Blocked => 1,
        };
        let reserved = self
            .control
            .known_reserved(&inv.account_id, &inv.service, &inv.function)
            .map_or(usize::MAX, |n| n.max(1) as usize);
        let cap = (spec.function.instance_concurrency.max(1) as usize)
            .saturating_mul(instances.max(1) as usize)
            .min(self.max_running)
            .min(reserved);
        let key = (
            inv.account_id.clone(),
            inv.service.clone(),
            inv.function.clone(),
            inv.qualifier.clone(),
        );
        let Ok(mut map) = self.function_slots.lock() else {
            return Arc::new(Semaphore::new(cap));
        };
        match map.get(&key) {
            Some((c, sem)) if *c == cap => sem.clone(),
            // New, or its capacity changed (an update): those running on the old semaphore
            // finish there.
            _ => {
                let sem = Arc::new(Semaphore::new(cap));
                map.insert(key, (cap, sem.clone()));
                sem
            }
        }
    }

    /// Records how an execution ended (retrying a failed write, see [`until_written`]).
    /// `Some(false)`: not applied — a stop came first, or the run lost its lease to another
    /// node. `None`: the server stopped first.
    async fn record(&self, c: &Claim, outcome: Outcome) -> Option<bool> {
        until_written(
            "recording an async invocation's result",
            &c.inv.request_id,
            &self.closed,
            || self.queue.finish(c, outcome.clone(), now_ms()),
        )
        .await
    }

    /// Records a result of an execution and, once it is on disk, tells the destination; if a
    /// stop came first, the invocation ends as stopped instead.
    #[allow(clippy::too_many_arguments)]
    async fn record_then_deliver(
        &self,
        c: &Claim,
        outcome: Outcome,
        success: bool,
        condition: &str,
        status: u16,
        function_error: &str,
        response: &[u8],
    ) {
        match self.record(c, outcome).await {
            Some(true) => {
                self.deliver(&c.inv, success, condition, status, function_error, response)
                    .await
            }
            Some(false) => self.finish_stopped(c).await,
            None => {}
        }
    }

    async fn process(&self, c: Claim) {
        let inv = &c.inv;
        let now = now_ms();
        if now.saturating_sub(inv.enqueued_ms) > inv.max_age_secs * 1000 {
            if self.record(&c, Outcome::Expired).await == Some(true) {
                self.deliver(inv, false, "EventExpired", 200, "", b"").await;
            }
            return;
        }
        let spec = match self
            .control
            .resolve(
                &inv.account_id,
                &inv.service,
                &inv.function,
                Some(inv.qualifier.as_str()),
            )
            .await
        {
            Ok(s) => s,
            Err(e) => {
                let reason = e.to_string();
                if self.record(&c, Outcome::Invalid { reason }).await == Some(true) {
                    self.deliver(inv, false, e.code(), 404, "", b"").await;
                }
                return;
            }
        };
        let http = match inv.http_request.as_deref().map(HttpRecord::decode) {
            None => None,
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => {
                let reason = format!("the queued HTTP request cannot be read: {e}");
                tracing::warn!(request_id = %inv.request_id, "{reason}");
                if self.record(&c, Outcome::Invalid { reason }).await == Some(true) {
                    self.deliver(inv, false, "InvalidArgument", 400, "", b"")
                        .await;
                }
                return;
            }
        };
        let key = inv.key();
        let (stop_tx, stop_rx) = oneshot::channel();
        if let Ok(mut r) = self.running.lock() {
            r.insert(key.clone(), stop_tx);
        }
        let req = InvokeRequest {
            request_id: inv.request_id.clone(),
            qualifier: inv.qualifier.clone(),
            trace_id: None,
            body: Bytes::from(inv.payload.clone()).into(),
            log_tail: false,
            retry_count: inv.attempts.saturating_sub(1),
            http,
        };
        let runtime = self.control.runtime().clone();
        let function_slots = self.function_slots(inv, &spec);
        let call = async {
            // Waits while the function runs as many as its instances can take.
            let _slot = function_slots.acquire_owned().await;
            // A function at its reservedConcurrency is throttled: retried later, like a
            // function at its instance limit.
            let _permit = match self
                .control
                .reserve(&inv.account_id, &inv.service, &inv.function)
                .await
            {
                Ok(p) => p,
                Err(Refused::AtCap(n)) => return Err(InvokeError::FunctionThrottled(n)),
                Err(Refused::Store(_)) => return Err(InvokeError::ServerThrottled),
            };
            runtime.invoke(&spec, req).await
        };
        // The lease is extended while the function runs, and the record's status read with
        // it: a stop requested on another node shows as `Stopping`. Polled beside the call (not
        // in turn with it), so a slow extension never holds up the call's own I/O.
        let watch = async {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + EXTEND_EVERY, EXTEND_EVERY);
            loop {
                tick.tick().await;
                match self.queue.extend(&c, now_ms() + LEASE_MS).await {
                    Ok(Some(Status::Running)) => {}
                    Ok(Some(_)) => return,
                    Ok(None) => {
                        tracing::warn!(request_id = %inv.request_id, "an async invocation's lease was lost; its run is dropped");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(request_id = %inv.request_id, error = %e, "extending an async invocation's lease failed")
                    }
                }
            }
        };
        let result = tokio::select! {
            r = call => Ok(r),
            why = stop_rx => Err(why.unwrap_or(Abort::Stop)),
            () = watch => Err(Abort::Stop),
        };
        if let Ok(mut r) = self.running.lock() {
            r.remove(&key);
        }
        let now = now_ms();
        let outcome = match result {
            // Stopped: dropping the call replaced the instance that was running it.
            Err(Abort::Stop) => {
                if self.record(&c, Outcome::Stopped).await == Some(true) {
                    self.deliver(inv, false, "Stopped", 200, "", b"").await;
                }
                return;
            }
            // The node drains: another node runs it (a stop requested meanwhile wins).
            Err(Abort::HandBack) => {
                let released = until_written(
                    "handing back an async invocation",
                    &inv.request_id,
                    &self.closed,
                    || self.queue.release(&c, now_ms()),
                )
                .await;
                if released == Some(false) {
                    self.finish_stopped(&c).await;
                }
                return;
            }
            Ok(r) => r,
        };
        match outcome {
            Ok(o) if o.error_type.is_none() => {
                let mut payload = o.body.to_vec();
                payload.truncate(RETURN_PAYLOAD_MAX);
                let done = Outcome::Succeeded {
                    duration_ms: o.duration.as_millis() as u64,
                    return_payload: payload,
                    instance_id: o.instance_id,
                };
                self.record_then_deliver(&c, done, true, "", 200, "", &o.body)
                    .await;
            }
            Ok(o) => {
                let kind = o
                    .error_type
                    .unwrap_or_else(|| "UnhandledInvocationError".into());
                if inv.attempts <= inv.max_retries {
                    // Function errors are retried after a doubling pause: 1 s, 2 s, 4 s ...
                    let pause = 1000u64 << inv.attempts.saturating_sub(1).min(6);
                    let retry = Outcome::Retry {
                        at_ms: now + pause,
                        error: kind,
                        platform: false,
                    };
                    if self.record(&c, retry).await == Some(false) {
                        self.finish_stopped(&c).await;
                    }
                } else {
                    let failed = Outcome::Failed {
                        duration_ms: o.duration.as_millis() as u64,
                        error: kind.clone(),
                        instance_id: o.instance_id,
                    };
                    self.record_then_deliver(&c, failed, false, &kind, 200, &kind, &o.body)
                        .await;
                }
            }
            Err(InvokeError::FunctionThrottled(_))
            | Err(InvokeError::ServerThrottled)
            | Err(InvokeError::ShuttingDown) => {
                if now.saturating_sub(inv.enqueued_ms) > PLATFORM_RETRY_WINDOW_MS {
                    let failed = Outcome::Failed {
                        duration_ms: 0,
                        error: "ResourceThrottled".into(),
                        instance_id: String::new(),
                    };
                    self.record_then_deliver(
                        &c,
                        failed,
                        false,
                        "FunctionResourceExhausted",
                        429,
                        "",
                        b"",
                    )
                    .await;
                    return;
                }
                let pause = 500u64 << inv.platform_retries.min(15);
                let retry = Outcome::Retry {
                    at_ms: now + pause,
                    error: "ResourceThrottled".into(),
                    platform: true,
                };
                if self.record(&c, retry).await == Some(false) {
                    self.finish_stopped(&c).await;
                }
            }
            // A queued body is whole, so `Body` (a streamed body refused) cannot happen here; it
            // would count as a start failure.
            Err(e @ (InvokeError::Start(_) | InvokeError::Body(_))) => {
                // A function that cannot start is the function's failure: it counts.
                if inv.attempts <= inv.max_retries {
                    let pause = 1000u64 << inv.attempts.saturating_sub(1).min(6);
                    let retry = Outcome::Retry {
                        at_ms: now + pause,
                        error: e.to_string(),
                        platform: false,
                    };
                    if self.record(&c, retry).await == Some(false) {
                        self.finish_stopped(&c).await;
                    }
                } else {
                    let failed = Outcome::Failed {
                        duration_ms: 0,
                        error: e.to_string(),
                        instance_id: String::new(),
                    };
                    self.record_then_deliver(
                        &c,
                        failed,
                        false,
                        "FunctionNotStarted",
                        200,
                        "FunctionNotStarted",
                        b"",
                    )
                    .await;
                }
            }
        }
    }

    /// A stop arrived while the result was being recorded: the stop wins.
    async fn finish_stopped(&self, c: &Claim) {
        if self.record(c, Outcome::Stopped).await == Some(true) {
            self.deliver(&c.inv, false, "Stopped", 200, "", b"").await;
        }
    }

    /// Sends FC's destination record to the onSuccess / onFailure function, if configured.
    async fn deliver(
        &self,
        inv: &Invocation,
        success: bool,
        condition: &str,
        status: u16,
        function_error: &str,
        response: &[u8],
    ) {
        let target = if success {
            &inv.on_success
        } else {
            &inv.on_failure
        };
        let Some(arn) = target else {
            return;
        };
        let region = self.control.region().to_owned();
        let record = serde_json::json!({
            "timestamp": now_ms(),
            "requestContext": {
                "requestId": inv.request_id,
                "functionArn": format!("acs:fc:{region}:{}:services/{}.{}/functions/{}", inv.account_id, inv.service, inv.qualifier, inv.function),
                "condition": condition,
                "approximateInvokeCount": inv.attempts.max(1),
            },
            "requestPayload": String::from_utf8_lossy(&inv.payload),
            "responseContext": { "statusCode": status, "functionError": function_error },
            "responsePayload": String::from_utf8_lossy(response),
        });
        let delivered = match parse_destination(arn) {
            Ok(t) => {
                // The destination is an ordinary async invocation of that function, shaped by
                // its own async invoke config.
                let rid = uuid::Uuid::new_v4().to_string();
                let next = self
                    .plan(
                        &inv.account_id,
                        &t.service,
                        &t.function,
                        &t.qualifier,
                        record.to_string().into_bytes(),
                        &rid,
                        &rid,
                        false,
                    )
                    .await;
                match self.queue.enqueue(next).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::error!(request_id = %inv.request_id, destination = %arn, error = %e,
                            "queueing the destination record failed");
                        false
                    }
                }
            }
            Err(_) => false,
        };
        if delivered {
            self.wake.notify_one();
        }
        let status = if delivered { "Succeeded" } else { "Failed" };
        until_written(
            "recording an async invocation's destination status",
            &inv.request_id,
            &self.closed,
            || self.queue.records().set_destination_status(inv, status),
        )
        .await;
    }

    // ---- the stateful-invocation API ----

    pub async fn get(
        &self,
        account: &str,
        service: &str,
        function: &str,
        id: &str,
    ) -> Result<serde_json::Value, FcError> {
        self.control
            .get_function(account, service, function)
            .await?;
        match self
            .queue
            .records()
            .get(account, service, function, id)
            .await
            .map_err(queue_error)?
        {
            Some(inv) if inv.stateful => Ok(render(&inv, true)),
            _ => Err(FcError::StatefulAsyncInvocationNotFound(id.to_owned())),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn list(
        &self,
        account: &str,
        service: &str,
        function: &str,
        filter: ListFilter,
        include_payload: bool,
    ) -> Result<(Vec<serde_json::Value>, Option<String>), FcError> {
        self.control
            .get_function(account, service, function)
            .await?;
        let limit = filter.limit as usize;
        let mut f = filter;
        f.limit = f.limit.saturating_add(1);
        let mut rows = self
            .queue
            .records()
            .list(account, service, function, &f)
            .await
            .map_err(queue_error)?;
        let next = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| r.id.to_string())
        } else {
            None
        };
        Ok((
            rows.iter().map(|r| render(r, include_payload)).collect(),
            next,
        ))
    }

    pub async fn stop(
        &self,
        account: &str,
        service: &str,
        function: &str,
        id: &str,
    ) -> Result<(), FcError> {
        self.control
            .get_function(account, service, function)
            .await?;
        let inv = match self
            .queue
            .records()
            .get(account, service, function, id)
            .await
            .map_err(queue_error)?
        {
            Some(inv) if inv.stateful => inv,
            _ => return Err(FcError::StatefulAsyncInvocationNotFound(id.to_owned())),
        };
        match self
            .queue
            .records()
            .request_stop(account, service, function, id, now_ms())
            .await
            .map_err(queue_error)?
        {
            StopResult::StoppedBeforeRunning => {
                self.deliver(&inv, false, "Stopped", 200, "", b"").await;
                Ok(())
            }
            StopResult::Stopping => {
                // Running here: stopped now. Elsewhere: told to every node (its node calls
                // `cancel_local`), and in any case seen as `Stopping` at the run's next lease
                // extension.
                if !self.cancel_local(account, service, function, id)
                    && !self.control.cluster().is_single()
                {
                    let event = fcd_cluster::ClusterEvent::StopInvocation {
                        account: account.to_owned(),
                        service: service.to_owned(),
                        function: function.to_owned(),
                        invocation_id: id.to_owned(),
                    };
                    if let Err(e) = self.control.cluster().publish(event).await {
                        tracing::warn!(error = %e, "could not tell the other nodes of a stop; it takes effect at the run's next lease extension");
                    }
                }
                Ok(())
            }
            StopResult::AlreadyFinished(Status::Stopped) => Err(FcError::AsyncInvocationStopped {
                service: service.to_owned(),
                function: function.to_owned(),
                id: id.to_owned(),
            }),
            StopResult::AlreadyFinished(s) => Err(FcError::invalid(format!(
                "the async invocation '{id}' has already finished with status {}",
                s.as_str()
            ))),
            StopResult::NotFound => Err(FcError::StatefulAsyncInvocationNotFound(id.to_owned())),
        }
    }

    /// ListStatefulAsyncInvocationFunctions.
    pub async fn stateful_functions(
        &self,
        account: &str,
    ) -> Result<Vec<serde_json::Value>, FcError> {
        let configs = self
            .queue
            .configs()
            .list_stateful_configs(account)
            .await
            .map_err(queue_error)?;
        // Native FC 3.0 functions (hidden services) are not 2.0's to see.
        Ok(configs
            .into_iter()
            .filter(|c| !fcd_core::fc3::is_hidden_service(&c.service))
            .map(|c| serde_json::json!({"serviceName": c.service, "functionName": c.function, "qualifier": c.qualifier}))
            .collect())
    }

    /// Every async invoke config of the account, in (service, function, qualifier) order
    /// (FC 3.0's ListAsyncInvokeConfigs; hidden services included).
    pub async fn list_account_configs(&self, account: &str) -> Result<Vec<AsyncConfig>, FcError> {
        self.queue
            .configs()
            .list_account_configs(account)
            .await
            .map_err(queue_error)
    }

    // ---- async invoke configs ----

    /// PutFunctionAsyncInvokeConfig (FC 2.0): what the request leaves out keeps its value.
    pub async fn put_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        u: AsyncConfigUpdate,
    ) -> Result<AsyncConfig, FcError> {
        self.write_config(account, service, function, qualifier, u, false)
            .await
    }

    /// PutAsyncInvokeConfig (FC 3.0): the request replaces the whole config; what it leaves
    /// out takes its default (the creation time is kept).
    pub async fn replace_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        u: AsyncConfigUpdate,
    ) -> Result<AsyncConfig, FcError> {
        self.write_config(account, service, function, qualifier, u, true)
            .await
    }

    async fn write_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
        u: AsyncConfigUpdate,
        replace: bool,
    ) -> Result<AsyncConfig, FcError> {
        self.control
            .function_at(account, service, function, qualifier)
            .await?;
        let qualifier = qualifier.unwrap_or("LATEST");
        if let Some(a) = u.max_async_event_age_in_seconds
            && (a == 0 || a > MAX_AGE_LIMIT_SECS)
        {
            return Err(FcError::invalid(format!(
                "maxAsyncEventAgeInSeconds {a} is out of range: it must be between 1 and {MAX_AGE_LIMIT_SECS}"
            )));
        }
        if let Some(r) = u.max_async_retry_attempts
            && r > MAX_RETRIES
        {
            return Err(FcError::invalid(format!(
                "maxAsyncRetryAttempts {r} is out of range: it must be between 0 and {MAX_RETRIES}"
            )));
        }
        if let Some(dc) = &u.destination_config {
            for d in [&dc.on_success, &dc.on_failure].into_iter().flatten() {
                if d.destination.is_empty() {
                    continue;
                }
                let t = parse_destination(&d.destination)?;
                let q = Some(t.qualifier.as_str()).filter(|q| *q != "LATEST");
                if self
                    .control
                    .function_at(account, &t.service, &t.function, q)
                    .await
                    .is_err()
                {
                    return Err(FcError::invalid(format!(
                        "destination '{}' names a function that does not exist",
                        d.destination
                    )));
                }
            }
        }
        let now = fcd_core::time::now();
        let current = self
            .config(account, service, function, qualifier)
            .await
            .map(|c| c.cfg.clone());
        let fresh = AsyncConfig {
            service: service.to_owned(),
            function: function.to_owned(),
            qualifier: qualifier.to_owned(),
            max_async_event_age_in_seconds: DEFAULT_MAX_AGE_SECS,
            max_async_retry_attempts: DEFAULT_RETRIES,
            stateful_invocation: false,
            destination_config: None,
            created_time: now.clone(),
            last_modified_time: now.clone(),
        };
        let mut cfg = match current {
            Some(c) if replace => AsyncConfig {
                created_time: c.created_time,
                ..fresh
            },
            Some(c) => c,
            None => fresh,
        };
        // PUT merges: what the request leaves out keeps its value.
        if let Some(a) = u.max_async_event_age_in_seconds {
            cfg.max_async_event_age_in_seconds = a;
        }
        if let Some(r) = u.max_async_retry_attempts {
            cfg.max_async_retry_attempts = r;
        }
        if let Some(s) = u.stateful_invocation {
            cfg.stateful_invocation = s;
        }
        if let Some(dc) = u.destination_config {
            let mut merged: DestinationConfig = cfg
                .destination_config
                .clone()
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default();
            if dc.on_success.is_some() {
                merged.on_success = dc.on_success;
            }
            if dc.on_failure.is_some() {
                merged.on_failure = dc.on_failure;
            }
            cfg.destination_config = serde_json::to_value(merged).ok();
        }
        cfg.last_modified_time = now;
        self.queue
            .configs()
            .put_config(account, &cfg)
            .await
            .map_err(queue_error)?;
        self.configs_changed(account, service).await;
        Ok(cfg)
    }

    pub async fn get_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<AsyncConfig, FcError> {
        self.control
            .function_at(account, service, function, qualifier)
            .await?;
        let q = qualifier.unwrap_or("LATEST");
        self.queue
            .configs()
            .get_config(account, service, function, q)
            .await
            .map_err(queue_error)?
            .ok_or_else(|| FcError::AsyncConfigNotExists {
                service: service.to_owned(),
                function: function.to_owned(),
            })
    }

    pub async fn delete_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: Option<&str>,
    ) -> Result<(), FcError> {
        self.control
            .function_at(account, service, function, qualifier)
            .await?;
        let q = qualifier.unwrap_or("LATEST");
        let deleted = self
            .queue
            .configs()
            .delete_config(account, service, function, q)
            .await
            .map_err(queue_error)?;
        self.configs_changed(account, service).await;
        if deleted {
            Ok(())
        } else {
            Err(FcError::AsyncConfigNotExists {
                service: service.to_owned(),
                function: function.to_owned(),
            })
        }
    }

    pub async fn list_configs(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<Vec<AsyncConfig>, FcError> {
        self.control
            .get_function(account, service, function)
            .await?;
        self.queue
            .configs()
            .list_configs(account, service, function)
            .await
            .map_err(queue_error)
    }
}

/// A `StatefulAsyncInvocation` as FC returns it.
fn render(inv: &Invocation, include_payload: bool) -> serde_json::Value {
    let mut v = serde_json::json!({
        "invocationId": inv.invocation_id,
        "serviceName": inv.service,
        "functionName": inv.function,
        "qualifier": inv.qualifier,
        "requestId": inv.request_id,
        "status": inv.status.as_str(),
        "alreadyRetriedTimes": inv.attempts.saturating_sub(1),
        "events": inv.events,
    });
    let set = |v: &mut serde_json::Value, k: &str, x: serde_json::Value| {
        if let Some(o) = v.as_object_mut() {
            o.insert(k.to_owned(), x);
        }
    };
    if let Some(t) = inv.started_ms.or(Some(inv.enqueued_ms)) {
        set(&mut v, "startedTime", t.into());
    }
    if let Some(t) = inv.end_ms {
        set(&mut v, "endTime", t.into());
    }
    if let Some(d) = inv.duration_ms {
        set(&mut v, "durationMs", d.into());
    }
    if let Some(i) = &inv.instance_id {
        set(&mut v, "instanceId", i.clone().into());
    }
    if let Some(e) = &inv.error_message
        && inv.status != Status::Succeeded
    {
        set(&mut v, "invocationErrorMessage", e.clone().into());
    }
    if let Some(d) = &inv.destination_status {
        set(&mut v, "destinationStatus", d.clone().into());
    }
    if let Some(p) = &inv.return_payload {
        set(
            &mut v,
            "returnPayload",
            String::from_utf8_lossy(p).into_owned().into(),
        );
    }
    if include_payload {
        let payload = match std::str::from_utf8(&inv.payload) {
            Ok(s) => s.to_owned(),
            Err(_) => base64::engine::general_purpose::STANDARD.encode(&inv.payload),
        };
        set(&mut v, "invocationPayload", payload.into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_fc_arns_only() {
        let t = parse_destination("acs:fc:cn-hangzhou:123:services/s.prod/functions/f").unwrap();
        assert_eq!(
            t,
            FunctionTarget {
                service: "s".into(),
                qualifier: "prod".into(),
                function: "f".into()
            }
        );
        let t = parse_destination("acs:fc:::services/s/functions/f").unwrap();
        assert_eq!(t.qualifier, "LATEST");
        // FC 3.0's form: a native function lives in its hidden service, `svc$fn` is 2.0's.
        let t = parse_destination("acs:fc:cn-hangzhou:123:functions/f").unwrap();
        assert_eq!(
            t,
            FunctionTarget {
                service: "~f".into(),
                qualifier: "LATEST".into(),
                function: "f".into()
            }
        );
        let t = parse_destination("acs:fc:::functions/s$g").unwrap();
        assert_eq!((t.service.as_str(), t.function.as_str()), ("s", "g"));
        for bad in [
            "acs:mns:cn-hangzhou:123:/queues/q/messages",
            "acs:fc:::functions/",
            "acs:fc:::functions/a.b",
            "acs:fc:::functions/~f",
            "acs:fc:::functions/s$",
            "nonsense",
            "acs:fc:::services//functions/f",
        ] {
            assert!(parse_destination(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_http_request_survives_the_queue_byte_for_byte() {
        let mut headers = http::HeaderMap::new();
        headers.append("set-cookie", http::HeaderValue::from_static("a=1"));
        headers.append("set-cookie", http::HeaderValue::from_static("b=2"));
        headers.insert(
            "x-raw",
            http::HeaderValue::from_bytes(b"caf\xe9 \xff").unwrap(),
        );
        let req = HttpInvocation {
            method: http::Method::PATCH,
            target: "/2016-08-15/proxy/s.prod/f/a%20b?x=1&x=2".into(),
            headers,
            base_path: Some("/2016-08-15/proxy/s.prod/f".into()),
            client_ip: "10.0.0.7".into(),
        };
        let text = HttpRecord::of(&req).encode().unwrap();
        let back = HttpRecord::decode(&text).unwrap();
        assert_eq!(back.method, req.method);
        assert_eq!(back.target, req.target);
        assert_eq!(back.headers, req.headers);
        assert_eq!(back.base_path, req.base_path);
        assert_eq!(back.client_ip, req.client_ip);
        assert!(HttpRecord::decode("{\"method\":1}").is_err());
    }

    #[tokio::test]
    async fn a_failed_queue_write_is_retried_until_it_is_written() {
        let tries = std::sync::atomic::AtomicU32::new(0);
        let open = AtomicBool::new(false);
        let got = until_written("test write", "r1", &open, || async {
            match tries.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(QueueError::Backend("disk I/O error".into())),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(got, Some(2));
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_queue_write_is_given_up_only_when_the_server_stops() {
        let closed = AtomicBool::new(true);
        let tries = std::sync::atomic::AtomicU32::new(0);
        let got: Option<()> = until_written("test write", "r1", &closed, || async {
            tries.fetch_add(1, Ordering::SeqCst);
            Err(QueueError::Backend("disk I/O error".into()))
        })
        .await;
        assert_eq!((got, tries.load(Ordering::SeqCst)), (None, 1));
        // A closed queue (its writer gone) is the server stopping as well.
        let open = AtomicBool::new(false);
        let got: Option<()> = until_written("test write", "r1", &open, || async {
            Err(QueueError::Closed)
        })
        .await;
        assert_eq!(got, None);
    }

    #[test]
    fn invocation_ids() {
        assert!(valid_invocation_id("job_1-a"));
        assert!(valid_invocation_id("_x"));
        assert!(!valid_invocation_id("1job"));
        assert!(!valid_invocation_id("a b"));
        assert!(!valid_invocation_id(""));
        assert!(!valid_invocation_id(&"a".repeat(129)));
    }
}
