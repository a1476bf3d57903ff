//! Cluster membership, singleton leases, the cache-invalidation bus and request routing for fcd
//! nodes sharing one PostgreSQL database. One [`Cluster`] per process, shared in an `Arc`.
//!
//! - **Membership.** [`Cluster::postgres`] registers the node in `cluster_nodes` (id, advertised
//!   URL, start time, heartbeat, draining flag, and the JSON [`NodeState`] it publishes). A
//!   heartbeat task ([`HEARTBEAT`]) writes that row and reads every other, so [`Cluster::nodes`]
//!   answers from memory, at most one heartbeat stale. A node is live while its heartbeat is
//!   younger than [`LIVE_FOR`] *by the database's clock* (`now() - heartbeat`), so nodes' clocks
//!   never have to agree. If this node cannot reach the database for [`LIVE_FOR`], it stops
//!   counting the others as live (it cannot know), and routes and provisions as if alone.
//! - **Singleton jobs** ([`JOBS`]): see [`Cluster::holds`] for the exact guarantee.
//! - **Events** ([`ClusterEvent`]): [`Cluster::publish`] sends `NOTIFY fcd_events`; a listener
//!   task hands other nodes' events to [`Cluster::subscribe`]rs. After its connection was lost
//!   it reconnects and delivers [`ClusterEvent::Resync`]: events may have been missed, so
//!   whatever they would have invalidated must be dropped whole.
//! - **Routing**: [`Cluster::route`] and [`Cluster::share`], by rendezvous hashing
//!   ([`rendezvous`]) over the live, non-draining nodes.
//!
//! [`Cluster::single`] is one node with no engine: every lease held, no other node, publishing a
//! no-op — exactly a standalone server.
//!
//! Wiring, in `fcd serve`: `Arc::new(Cluster::postgres(url, NodeInfo::new(id, advertised_url))
//! .await?)`; hand it to the control plane (`Control::with_cluster`, which publishes and applies
//! invalidations, provisions this node's shares and gates the timers); on `SIGTERM`
//! [`Cluster::drain`], finish or hand back work, then [`Cluster::leave`]. Whoever knows the
//! warm pools (the instance manager) fills [`NodeState::warm`] through
//! [`Cluster::update_local_state`] for [`Cluster::route`] to see them.

mod pg;
pub mod rendezvous;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};

/// How often a node writes its heartbeat, renews its leases and reads the others.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A node whose heartbeat is older than this (by the database's clock) is not live.
pub const LIVE_FOR: Duration = Duration::from_secs(5);
/// How long a lease lasts in the database after each renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(5);
/// A node stops believing it holds a lease this long before the database would let another
/// node take it (covers clock-rate differences; see [`Cluster::holds`]).
pub const LEASE_MARGIN: Duration = Duration::from_millis(500);
/// Largest event payload: PostgreSQL's `NOTIFY` takes less than 8000 bytes.
pub const MAX_EVENT_BYTES: usize = 7999;

/// The singleton jobs every node contends for.
pub const JOBS: [&str; 5] = [
    "provisioning",
    "timers",
    "retention",
    "code-gc",
    "async-sweeper",
];

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cluster database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cluster database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cluster event encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cluster event of {0} bytes is too large for NOTIFY (at most {MAX_EVENT_BYTES})")]
    EventTooLarge(usize),
    #[error("this node has left the cluster")]
    Left,
}

/// Who this node is: its id (unique in the cluster, stable across restarts) and the base URL
/// other nodes reach it at, e.g. `http://127.0.0.1:9001`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub id: String,
    pub url: String,
}

impl NodeInfo {
    pub fn new(id: impl Into<String>, url: impl Into<String>) -> NodeInfo {
        NodeInfo {
            id: id.into(),
            url: url.into(),
        }
    }
}

/// The routing key of a function version (`LATEST` or a version id); also the key of a pool of
/// provisioned instances for [`Cluster::share`]. FC's names contain no `/`.
pub fn route_key(account: &str, service: &str, function: &str, version: &str) -> String {
    format!("{account}/{service}/{function}/{version}")
}

/// Warm instances of one function version on a node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WarmPool {
    pub instances: u32,
    /// Requests the pool could take now without starting an instance.
    pub free_slots: u32,
    /// The instances' ids (ListInstances answers for the whole cluster from these).
    pub instance_ids: Vec<String>,
}

/// What a node publishes with every heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct NodeState {
    /// Warm pools by [`route_key`]; [`Cluster::route`] sends requests to nodes with free slots.
    pub warm: BTreeMap<String, WarmPool>,
    /// Provisioned instances up on this node, by pool ([`route_key`]).
    pub provisioned: BTreeMap<String, u32>,
    /// Instances running on this node.
    pub instances: u64,
    /// Whatever else a component wants the other nodes (or `GET /status`) to see.
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// One node as this node last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeView {
    pub id: String,
    pub url: String,
    pub live: bool,
    pub draining: bool,
    pub is_self: bool,
    /// When the node (this incarnation of it) joined, Unix milliseconds (database clock).
    pub started_ms: i64,
    /// Age of its heartbeat when last read, by the database's clock.
    pub heartbeat_age_ms: i64,
    pub state: NodeState,
}

/// Where to run a synchronous invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Local,
    Remote { node_id: String, url: String },
}

/// What nodes tell each other. Delivered to every node but the sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClusterEvent {
    /// Something of the account changed: drop what is cached of `service` (`None`: of the whole
    /// account, custom domains included).
    #[serde(rename_all = "camelCase")]
    Invalidate {
        account: String,
        service: Option<String>,
    },
    /// Instances of a function (`None`: of every function of the service) at a version
    /// (`None`: `LATEST`, for a function; every version otherwise) must stop, as after an
    /// update or delete (the instance manager's `retire`).
    #[serde(rename_all = "camelCase")]
    Retire {
        account: String,
        service: String,
        function: Option<String>,
        version: Option<String>,
    },
    /// Stop a running asynchronous invocation, wherever it runs.
    #[serde(rename_all = "camelCase")]
    StopInvocation {
        account: String,
        service: String,
        function: String,
        invocation_id: String,
    },
    /// Events may have been missed (the listener's connection dropped, or a subscriber fell
    /// behind): drop every cache.
    Resync,
    /// Node `node` ran its hooks on event `seq` of the process `to` (see
    /// [`Cluster::publish_acknowledged`]); never handed to subscribers.
    #[serde(rename_all = "camelCase")]
    Applied { node: String, to: String, seq: u64 },
}

/// A singleton job's lease, as a handle: [`Lease::held`] is [`Cluster::holds`].
#[derive(Debug, Clone)]
pub struct Lease {
    shared: Arc<Shared>,
    job: String,
}

impl Lease {
    pub fn job(&self) -> &str {
        &self.job
    }

    pub fn held(&self) -> bool {
        self.shared.holds(&self.job)
    }
}

/// What the heartbeat last read of the other nodes.
#[derive(Debug, Default)]
struct View {
    nodes: Vec<NodeView>,
    read_at: Option<Instant>,
}

/// State shared by the [`Cluster`] handle and its tasks.
#[derive(Debug)]
struct Shared {
    node: NodeInfo,
    /// The lease holder and event sender name: the node id plus this process's random
    /// incarnation, so a restarted node (or two processes wrongly sharing an id) never
    /// mistakes another process's lease or events for its own.
    holder: String,
    single: bool,
    state: RwLock<NodeState>,
    draining: AtomicBool,
    left: AtomicBool,
    view: RwLock<View>,
    /// Contended jobs, each with the instant until which this node believes it holds it.
    leases: Mutex<HashMap<String, Option<Instant>>>,
    events: broadcast::Sender<ClusterEvent>,
    /// Bumped whenever the set of live, non-draining nodes changes.
    membership: watch::Sender<u64>,
    /// Run by the listener on every other node's event before it is acknowledged (see
    /// [`Cluster::add_hook`]).
    hooks: Hooks,
    /// Acknowledged events of this process: sequence number → node ids that applied it.
    acks: Mutex<HashMap<u64, std::collections::HashSet<String>>>,
    acked: tokio::sync::Notify,
    next_seq: std::sync::atomic::AtomicU64,
}

/// What a node does, synchronously, with another node's event before acknowledging it.
pub type Hook = Arc<dyn Fn(&ClusterEvent) + Send + Sync>;

#[derive(Default)]
struct Hooks(RwLock<Vec<Hook>>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0.read().map(|h| h.len()).unwrap_or(0);
        write!(f, "{n} hooks")
    }
}

impl Shared {
    fn holds(&self, job: &str) -> bool {
        if self.single {
            return true;
        }
        if self.draining.load(Ordering::Acquire) || self.left.load(Ordering::Acquire) {
            return false;
        }
        let now = Instant::now();
        self.leases
            .lock()
            .ok()
            .and_then(|l| l.get(job).copied().flatten())
            .is_some_and(|until| now < until)
    }

    fn self_view(&self) -> NodeView {
        NodeView {
            id: self.node.id.clone(),
            url: self.node.url.clone(),
            live: !self.left.load(Ordering::Acquire),
            draining: self.draining.load(Ordering::Acquire),
            is_self: true,
            started_ms: 0,
            heartbeat_age_ms: 0,
            state: self.state.read().map(|s| s.clone()).unwrap_or_default(),
        }
    }

    /// Every node known, this one first, with this node's own entry from memory.
    fn nodes(&self) -> Vec<NodeView> {
        let mut me = self.self_view();
        let Ok(view) = self.view.read() else {
            return vec![me];
        };
        let fresh = view.read_at.is_some_and(|t| t.elapsed() < LIVE_FOR);
        let mut out = Vec::with_capacity(view.nodes.len() + 1);
        for n in &view.nodes {
            if n.id == self.node.id {
                me.started_ms = n.started_ms;
                me.heartbeat_age_ms = n.heartbeat_age_ms;
                continue;
            }
            let mut n = n.clone();
            n.live &= fresh;
            out.push(n);
        }
        out.insert(0, me);
        out
    }

    /// Ids of the nodes work may go to: live and not draining (this one unless it drains).
    fn candidates(nodes: &[NodeView]) -> Vec<&str> {
        nodes
            .iter()
            .filter(|n| n.live && !n.draining)
            .map(|n| n.id.as_str())
            .collect()
    }
}

/// This process's membership of the cluster. See the module documentation.
#[derive(Debug)]
pub struct Cluster {
    shared: Arc<Shared>,
    engine: Option<pg::Engine>,
}

fn incarnation() -> String {
    let mut b = [0u8; 8];
    // Without randomness the process id still tells incarnations on one machine apart.
    if getrandom::fill(&mut b).is_err() {
        b = u64::from(std::process::id()).to_be_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Cluster {
    fn shared(node: NodeInfo, single: bool) -> Arc<Shared> {
        let holder = format!("{}#{}", node.id, incarnation());
        let leases = JOBS.iter().map(|j| ((*j).to_owned(), None)).collect();
        Arc::new(Shared {
            node,
            holder,
            single,
            state: RwLock::new(NodeState::default()),
            draining: AtomicBool::new(false),
            left: AtomicBool::new(false),
            view: RwLock::new(View::default()),
            leases: Mutex::new(leases),
            events: broadcast::channel(4096).0,
            membership: watch::channel(0).0,
            hooks: Hooks::default(),
            acks: Mutex::new(HashMap::new()),
            acked: tokio::sync::Notify::new(),
            next_seq: std::sync::atomic::AtomicU64::new(1),
        })
    }

    /// A cluster of this node alone: every lease held, `nodes()` is this node, `publish` does
    /// nothing, every route is local and every share the whole target.
    pub fn single(node: NodeInfo) -> Cluster {
        Cluster {
            shared: Cluster::shared(node, true),
            engine: None,
        }
    }

    /// Joins the cluster whose state lives in the PostgreSQL database at `url`: creates the
    /// tables if needed (migrations 2000+), registers this node, takes the leases that are free,
    /// starts listening for events, and starts the heartbeat. When it returns, [`Cluster::nodes`]
    /// already lists the nodes alive at the time, and events published from then on arrive.
    pub async fn postgres(url: &str, node: NodeInfo) -> Result<Cluster, ClusterError> {
        let shared = Cluster::shared(node, false);
        let engine = pg::Engine::start(url, shared.clone()).await?;
        Ok(Cluster {
            shared,
            engine: Some(engine),
        })
    }

    pub fn node(&self) -> &NodeInfo {
        &self.shared.node
    }

    /// True for [`Cluster::single`].
    pub fn is_single(&self) -> bool {
        self.shared.single
    }

    /// Replaces what the next heartbeat publishes.
    pub fn set_local_state(&self, state: NodeState) {
        if let Ok(mut s) = self.shared.state.write() {
            *s = state;
        }
    }

    /// Changes part of what the next heartbeat publishes (components own different fields).
    pub fn update_local_state(&self, f: impl FnOnce(&mut NodeState)) {
        if let Ok(mut s) = self.shared.state.write() {
            f(&mut s);
        }
    }

    pub fn local_state(&self) -> NodeState {
        self.shared
            .state
            .read()
            .map(|s| s.clone())
            .unwrap_or_default()
    }

    /// Every node known (this one first), from memory: at most one heartbeat stale. Nodes that
    /// are not live stay listed until they have been silent for an hour.
    pub fn nodes(&self) -> Vec<NodeView> {
        self.shared.nodes()
    }

    /// Moves whenever the set of live, non-draining nodes changes (shares may have moved).
    pub fn membership(&self) -> watch::Receiver<u64> {
        self.shared.membership.subscribe()
    }

    /// Whether this node holds the singleton `job` now.
    ///
    /// **Guarantee.** A lease row says who holds a job until when (`expires`, database clock);
    /// another node takes it only once `expires < now()` in the database. Each heartbeat renews
    /// this node's leases to `now() + LEASE_TTL`, and this node believes it holds a job until
    /// `t + LEASE_TTL - LEASE_MARGIN`, where `t` is its own monotonic time taken *before* the
    /// renewal was sent — so before the renewal could have been executed. Its belief therefore
    /// always ends before the row it wrote expires, however late the answer came or if it never
    /// came: **at no instant do two nodes both get `true` for the same job**, as long as the
    /// database's clock does not jump forward by more than [`LEASE_MARGIN`] and neither clock
    /// runs more than 10 % fast. When a node stops heartbeating (killed, partitioned), another
    /// takes the job at its first heartbeat after `expires`, i.e. within `LEASE_TTL` +
    /// [`HEARTBEAT`]. What the guarantee does not cover: `true` is a fact about the instant of
    /// the call; a job that checks and then works for seconds (or whose process is paused) may
    /// overlap the next holder, so a job should check before every unit of work and make that
    /// unit safe to repeat (the timers' invocation-id dedup does exactly that).
    ///
    /// A draining or departed node holds nothing. [`Cluster::single`] holds every job.
    pub fn holds(&self, job: &str) -> bool {
        self.shared.holds(job)
    }

    /// A handle on `job`'s lease; a job not in [`JOBS`] is contended from the next heartbeat.
    pub fn lease(&self, job: &str) -> Lease {
        if let Ok(mut l) = self.shared.leases.lock() {
            l.entry(job.to_owned()).or_insert(None);
        }
        Lease {
            shared: self.shared.clone(),
            job: job.to_owned(),
        }
    }

    /// Tells every other node. A no-op on a single node. Fails when the database is
    /// unreachable or the event is too large for `NOTIFY`.
    pub async fn publish(&self, event: ClusterEvent) -> Result<(), ClusterError> {
        match &self.engine {
            None => Ok(()),
            Some(_) if self.shared.left.load(Ordering::Acquire) => Err(ClusterError::Left),
            Some(e) => e.publish(&self.shared, &event).await,
        }
    }

    /// Publishes `event` and waits, at most `timeout`, until every other live node has run its
    /// hooks on it ([`Cluster::add_hook`]): a write that answers after this is seen by the
    /// next request on any node, not merely within the bus's delay. Returns whether every
    /// node acknowledged (a node that does not — dead, partitioned — only costs the wait;
    /// its caches are dropped whole when its listener comes back, by `Resync`).
    pub async fn publish_acknowledged(
        &self,
        event: ClusterEvent,
        timeout: std::time::Duration,
    ) -> Result<bool, ClusterError> {
        let Some(engine) = &self.engine else {
            return Ok(true);
        };
        if self.shared.left.load(Ordering::Acquire) {
            return Err(ClusterError::Left);
        }
        let seq = self.shared.next_seq.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut acks) = self.shared.acks.lock() {
            acks.insert(seq, Default::default());
        }
        let result = engine.publish_seq(&self.shared, &event, Some(seq)).await;
        let done = async {
            loop {
                let notified = self.shared.acked.notified();
                let waiting: Vec<String> = self
                    .shared
                    .nodes()
                    .into_iter()
                    .filter(|n| !n.is_self && n.live)
                    .map(|n| n.id)
                    .collect();
                let all = self.shared.acks.lock().is_ok_and(|acks| {
                    acks.get(&seq)
                        .is_some_and(|got| waiting.iter().all(|id| got.contains(id)))
                });
                if all {
                    return;
                }
                notified.await;
            }
        };
        let complete = result.is_ok() && tokio::time::timeout(timeout, done).await.is_ok();
        if let Ok(mut acks) = self.shared.acks.lock() {
            acks.remove(&seq);
        }
        result.map(|()| complete)
    }

    /// Runs `hook` on every other node's event, in the listener, before the event is
    /// acknowledged to its sender and handed to subscribers: what must be true before the
    /// sender's write answers (dropping caches) belongs here; slower work in a subscriber.
    /// A [`ClusterEvent::Resync`] the listener raises itself (after reconnecting, or for an
    /// unreadable event) reaches subscribers only: they must drop everything on it.
    pub fn add_hook(&self, hook: Hook) {
        if let Ok(mut hooks) = self.shared.hooks.0.write() {
            hooks.push(hook);
        }
    }

    /// Other nodes' events, in the order they were published. A receiver that falls behind
    /// gets `RecvError::Lagged` and must treat it as [`ClusterEvent::Resync`].
    pub fn subscribe(&self) -> broadcast::Receiver<ClusterEvent> {
        self.shared.events.subscribe()
    }

    /// Where a synchronous invocation of `key` ([`route_key`]) should run:
    /// 1. here, when this node has a free warm slot (`local_has_free_slot`);
    /// 2. else on the first node in `key`'s rendezvous order, among the live, non-draining
    ///    others, that advertises a warm instance of `key` with a free slot;
    /// 3. else, when no node is warm for `key` at all, on its home — the first node of the
    ///    order, this one included — so that calls entering anywhere warm one node, not each
    ///    of them, and the next call finds that node warm even before its heartbeat says so;
    /// 4. else (warm somewhere, but every warm node full) on the first node of the order that
    ///    is not warm yet: load spills over to a new node.
    ///
    /// A request forwarded to another node must run there, not be routed again.
    pub fn route(&self, key: &str, local_has_free_slot: bool) -> Route {
        if local_has_free_slot || self.shared.single {
            return Route::Local;
        }
        let nodes = self.shared.nodes();
        let eligible: Vec<&NodeView> = nodes.iter().filter(|n| n.live && !n.draining).collect();
        let order = rendezvous::rank(key, eligible.iter().map(|n| n.id.as_str()));
        let node = |id: &str| eligible.iter().copied().find(|n| n.id == id);
        let warm = |id: &str| node(id).and_then(|n| n.state.warm.get(key));
        let chosen = order
            .iter()
            .copied()
            .find(|id| {
                node(id).is_some_and(|n| !n.is_self) && warm(id).is_some_and(|w| w.free_slots > 0)
            })
            .or_else(|| {
                if order.iter().all(|id| warm(id).is_none()) {
                    order.first().copied()
                } else {
                    order.iter().copied().find(|id| warm(id).is_none())
                }
            });
        match chosen.and_then(node) {
            Some(n) if !n.is_self => Route::Remote {
                node_id: n.id.clone(),
                url: n.url.clone(),
            },
            _ => Route::Local,
        }
    }

    /// This node's share of `target` instances of the pool `pool_key`: the live, non-draining
    /// nodes (this one included unless it drains) ranked by rendezvous weight on `pool_key`;
    /// rank `r` of `n` gets `target / n + (r < target % n)`. The same on every node that sees
    /// the same node list; the shares sum to `target`. A draining node's share is 0.
    pub fn share(&self, pool_key: &str, target: u32) -> u32 {
        if self.shared.single {
            return target;
        }
        let nodes = self.shared.nodes();
        let ids = Shared::candidates(&nodes);
        rendezvous::share(pool_key, target, &ids, &self.shared.node.id)
    }

    /// Marks this node draining: the next heartbeat tells the others, who stop routing to it
    /// and stop giving it shares; its leases are released at once.
    pub async fn drain(&self) -> Result<(), ClusterError> {
        self.shared.draining.store(true, Ordering::Release);
        self.shared.membership.send_modify(|g| *g += 1);
        match &self.engine {
            None => Ok(()),
            Some(e) => e.drain(&self.shared).await,
        }
    }

    /// Leaves the cluster: stops the heartbeat and the listener, deletes this node's row and
    /// releases its leases.
    pub async fn leave(&self) -> Result<(), ClusterError> {
        self.shared.left.store(true, Ordering::Release);
        match &self.engine {
            None => Ok(()),
            Some(e) => e.leave(&self.shared).await,
        }
    }

    /// The lease holder name of this process (node id and incarnation), as written to
    /// `cluster_leases.holder`.
    pub fn holder(&self) -> &str {
        &self.shared.holder
    }

    /// The `application_name` of this node's event-listener connection to PostgreSQL (what an
    /// operator sees in `pg_stat_activity`; tests cut it to see a [`ClusterEvent::Resync`]).
    pub fn listener_application_name(&self) -> String {
        pg::listener_name(&self.shared.holder)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_holds_everything_and_routes_locally() {
        let c = Cluster::single(NodeInfo::new("n1", "http://127.0.0.1:9000"));
        for j in JOBS {
            assert!(c.holds(j));
        }
        assert!(c.lease("anything").held());
        assert_eq!(c.route("a/s/f/1", false), Route::Local);
        assert_eq!(c.share("a/s/f/1", 7), 7);
        let nodes = c.nodes();
        assert_eq!(nodes.len(), 1);
        assert!(nodes[0].is_self && nodes[0].live && !nodes[0].draining);
        assert_eq!(nodes[0].url, "http://127.0.0.1:9000");
    }

    #[tokio::test]
    async fn single_publish_is_a_no_op_and_state_is_kept() {
        let c = Cluster::single(NodeInfo::new("n1", "u"));
        let mut rx = c.subscribe();
        c.publish(ClusterEvent::Resync).await.unwrap();
        assert!(rx.try_recv().is_err());
        c.update_local_state(|s| {
            s.provisioned.insert("a/s/f/1".into(), 2);
        });
        assert_eq!(c.nodes()[0].state.provisioned["a/s/f/1"], 2);
        c.drain().await.unwrap();
        assert!(c.nodes()[0].draining);
    }

    fn view(id: &str, live: bool, draining: bool, warm: &[(&str, u32)]) -> NodeView {
        NodeView {
            id: id.into(),
            url: format!("http://{id}"),
            live,
            draining,
            is_self: false,
            started_ms: 0,
            heartbeat_age_ms: 0,
            state: NodeState {
                warm: warm
                    .iter()
                    .map(|(k, free)| {
                        (
                            (*k).to_owned(),
                            WarmPool {
                                instances: 1,
                                free_slots: *free,
                                ..WarmPool::default()
                            },
                        )
                    })
                    .collect(),
                ..NodeState::default()
            },
        }
    }

    /// A cluster handle whose view of the others is set by hand (no engine).
    fn with_view(me: &str, others: Vec<NodeView>) -> Cluster {
        let shared = Cluster::shared(NodeInfo::new(me, format!("http://{me}")), false);
        if let Ok(mut v) = shared.view.write() {
            v.nodes = others;
            v.read_at = Some(Instant::now());
        }
        Cluster {
            shared,
            engine: None,
        }
    }

    #[test]
    fn route_prefers_local_then_rendezvous_order_among_free_nodes() {
        let key = "acct/svc/f/1";
        let all = ["b", "c", "d"];
        let order = rendezvous::rank(key, all);
        let c = with_view(
            "a",
            all.iter()
                .map(|id| view(id, true, false, &[(key, 1)]))
                .collect(),
        );
        assert_eq!(c.route(key, true), Route::Local);
        assert_eq!(
            c.route(key, false),
            Route::Remote {
                node_id: order[0].into(),
                url: format!("http://{}", order[0])
            }
        );
        // The first is full: spill to the second.
        let c = with_view(
            "a",
            all.iter()
                .map(|id| view(id, true, false, &[(key, u32::from(*id != order[0]))]))
                .collect(),
        );
        assert!(
            matches!(c.route(key, false), Route::Remote { node_id, .. } if node_id == order[1])
        );
        // Dead or draining: never chosen, however warm. Nobody warm for the key: its home
        // (the first live, non-draining node of its order), which may be this node.
        let c = with_view(
            "a",
            vec![
                view(order[0], false, false, &[(key, 5)]),
                view(order[1], true, true, &[(key, 5)]),
                view(order[2], true, false, &[("other/key/x/1", 5)]),
            ],
        );
        // (This node, "a", is always a candidate: the home is first among it and order[2].)
        let expect = |c: &Cluster, among: &[&str], pick: &dyn Fn(&[&str]) -> Option<String>| {
            let got = match c.route(key, false) {
                Route::Local => "a".to_owned(),
                Route::Remote { node_id, .. } => node_id,
            };
            let ranked = rendezvous::rank(key, among.iter().copied());
            assert_eq!(Some(got), pick(&ranked));
        };
        expect(&c, &["a", order[2]], &|r| r.first().map(|s| s.to_string()));
        let mut me = view("a", true, false, &[]);
        me.is_self = true;
        let home = rendezvous::rank(key, ["a", "b"])[0];
        let c = with_view("a", vec![me.clone(), view("b", true, false, &[])]);
        match c.route(key, false) {
            Route::Local => assert_eq!(home, "a"),
            Route::Remote { node_id, .. } => assert_eq!((home, node_id.as_str()), ("b", "b")),
        }
        // Warm somewhere but full everywhere: spill to the first node not warm yet.
        let c = with_view(
            "a",
            vec![
                view(order[0], true, false, &[(key, 0)]),
                view(order[1], true, false, &[]),
                view(order[2], true, false, &[(key, 0)]),
            ],
        );
        // The first not warm yet, in the order of all four (this node included).
        expect(&c, &["a", order[0], order[1], order[2]], &|r| {
            r.iter()
                .find(|id| **id == "a" || **id == order[1])
                .map(|s| s.to_string())
        });
    }

    #[test]
    fn shares_follow_the_live_non_draining_nodes() {
        let key = "acct/svc/f/1";
        let c = with_view(
            "a",
            vec![
                view("b", true, false, &[]),
                view("c", true, false, &[]),
                view("dead", false, false, &[]),
                view("drains", true, true, &[]),
            ],
        );
        let ids = ["a", "b", "c"];
        assert_eq!(c.share(key, 4), rendezvous::share(key, 4, &ids, "a"));
        let total: u32 = ids
            .iter()
            .map(|me| rendezvous::share(key, 4, &ids, me))
            .sum();
        assert_eq!(total, 4);
        // A stale view (no heartbeat read for LIVE_FOR) counts only this node.
        if let Ok(mut v) = c.shared.view.write() {
            v.read_at = Instant::now().checked_sub(LIVE_FOR + Duration::from_secs(1));
        }
        assert_eq!(c.share(key, 4), 4);
        assert!(c.nodes().iter().filter(|n| !n.is_self).all(|n| !n.live));
    }

    #[test]
    fn events_have_a_stable_json_shape() {
        let e = ClusterEvent::StopInvocation {
            account: "1".into(),
            service: "s".into(),
            function: "f".into(),
            invocation_id: "i".into(),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"type":"stopInvocation","account":"1","service":"s","function":"f","invocationId":"i"}"#
        );
        for e in [
            e,
            ClusterEvent::Resync,
            ClusterEvent::Invalidate {
                account: "1".into(),
                service: None,
            },
            ClusterEvent::Retire {
                account: "1".into(),
                service: "s".into(),
                function: Some("f".into()),
                version: None,
            },
        ] {
            let back: ClusterEvent =
                serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
            assert_eq!(back, e);
        }
    }
}
