//! The OS-process instance backend: one process per instance (jailed, unless the operator asked
//! for `--isolation none`), reached over kept-alive HTTP/1.1 connections on its port, its output
//! collected for log tails.
//!
//! Everything an instance holds — its process group, cgroup and the server budget it reserved —
//! is owned by a [`Teardown`] from the moment the process exists. Whatever ends the instance
//! (a stop, a crash, or the start-up future being dropped because the client hung up), the
//! teardown kills what is left, waits until the process is gone, removes the cgroup and only
//! then gives the budget back — on a blocking thread, never on the async runtime's.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::backend::{BoxFuture, CallResult, ExitInfo, RunningInstance};
use crate::budget::Reservation;
use crate::contract::{Placed, instance_env};

mod health;
pub(crate) mod prewarm;
mod wire;
use crate::logs::Logs;
use crate::runtimes::ProcessLaunch;
use crate::sandbox::{self, MemoryProbe, NetworkMode, SocketFactory, SpawnSpec};
use crate::{FunctionSpec, Payload, RuntimeConfig, StartError, StreamedBody};

/// How sending a streamed body ended when it did not end well.
enum Sent {
    Failed(String),
    Rejected(fcd_core::FcError),
}
use wire::{Conn, WireError};

/// The most response bytes fcd accepts from a function.
const RESPONSE_MAX: usize = 32 * 1024 * 1024;

/// What must be released, in order, when an instance ends.
struct Teardown {
    pid: i32,
    exit: watch::Receiver<Option<ExitInfo>>,
    cgroup: Option<Arc<sandbox::cgroup::InstanceCgroup>>,
    /// The instance's network namespace handle and address, released once it is gone.
    net: Option<Arc<sandbox::net::PreparedNet>>,
    /// A jailed instance's own uid, free for another instance once this one is gone.
    uid: Option<Arc<sandbox::uids::UidLease>>,
    reservation: Option<Reservation>,
}

impl Teardown {
    /// Blocking: kill the group unless it already ended, wait (bounded) for the exit, remove the
    /// cgroup (which kills anything left in it), then free the budget.
    fn run(self) {
        if self.exit.borrow().is_none() {
            sandbox::kill_group(self.pid);
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.exit.borrow().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        drop(self.cgroup);
        drop(self.net);
        drop(self.uid);
        drop(self.reservation);
    }

    /// Runs [`Teardown::run`] off the async runtime.
    fn spawn(self) {
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || self.run());
            }
            Err(_) => self.run(),
        }
    }
}

/// Holds a process that is still starting: if start-up is abandoned at any await point, the
/// process is killed and its budget freed once it is gone.
struct Starting(Option<Teardown>);

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.spawn();
        }
    }
}

pub(crate) struct ProcessInstance {
    id: String,
    pid: i32,
    addr: SocketAddr,
    sockets: Option<SocketFactory>,
    logs: Logs,
    memory: Option<MemoryProbe>,
    /// The function's PID (as fcd sees it) when it is PID 1 of its own PID namespace.
    namespace_init: Option<i32>,
    /// The instance's cgroup, when it has one: limits, and the authoritative peak memory.
    cgroup: Option<Arc<sandbox::cgroup::InstanceCgroup>>,
    exit: watch::Receiver<Option<ExitInfo>>,
    idle_conns: Mutex<Vec<Conn>>,
    created: Instant,
    mem_cached_kib: AtomicU64,
    mem_read_at: AtomicU64,
    teardown: Mutex<Option<Teardown>>,
}

impl Drop for ProcessInstance {
    fn drop(&mut self) {
        let t = match self.teardown.get_mut() {
            Ok(t) => t.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(t) = t {
            t.spawn();
        }
    }
}

/// A process that exists (and, jailed, has reported its set-up done) but is not yet an
/// instance fcd calls: what [`start`] and the prewarmed pool ([`prewarm`]) share.
pub(crate) struct Spawned {
    pid: i32,
    /// The process whose memory `/proc` reports (a jail's function, not its init).
    memory_pid: i32,
    port: u16,
    exit: watch::Receiver<Option<ExitInfo>>,
    output: tokio::net::unix::pipe::Receiver,
    sockets: Option<SocketFactory>,
    cgroup: Option<Arc<sandbox::cgroup::InstanceCgroup>>,
    /// A prewarmed jail's control channel (see [`prewarm`]).
    control: Option<std::os::unix::net::UnixStream>,
    net: Option<Arc<sandbox::net::PreparedNet>>,
    /// Owns the process until it becomes an instance: dropped before, it is torn down.
    guard: Starting,
}

/// What to spawn, independent of which function (for a prewarmed jail) or for one.
pub(crate) struct SpawnPlan {
    pub(crate) id: String,
    pub(crate) port: u16,
    pub(crate) memory_mb: u32,
    pub(crate) launch: ProcessLaunch,
    /// The function's code directory; `None` for a prewarmed jail, which gets it later.
    pub(crate) code_dir: Option<std::path::PathBuf>,
    /// The function's merged layers, shown at `/opt` in a jail (never prewarmed).
    pub(crate) layers_dir: Option<std::path::PathBuf>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) blank: Option<sandbox::BlankSetup>,
    /// Give the instance outbound network (the server's egress bridge).
    pub(crate) internet: bool,
}

/// Whether an instance of a function with `internetAccess` = `wanted` gets outbound network
/// here: only in its own namespace, and where the server has an egress bridge.
pub(crate) fn internet(cfg: &RuntimeConfig, wanted: bool) -> bool {
    wanted && cfg.network == NetworkMode::Namespace && cfg.egress.is_some()
}

/// The port an instance listens on: its `caPort` in its own namespace, else a free one.
pub(crate) fn instance_port(cfg: &RuntimeConfig, ca_port: u16) -> Result<u16, StartError> {
    match cfg.network {
        NetworkMode::Namespace => Ok(ca_port),
        NetworkMode::Host => sandbox::free_port().map_err(|e| StartError::Spawn(e.to_string())),
    }
}

/// Creates the cgroup and the process, and waits for a jail's set-up. Whatever fails or is
/// abandoned on the way leaves no process and no cgroup behind.
pub(crate) async fn spawn(cfg: &RuntimeConfig, plan: SpawnPlan) -> Result<Spawned, StartError> {
    let jail = cfg.jail.as_ref();
    // Its own uid, leased before anything exists so a failure leaves nothing behind; given
    // back by the teardown once the process is gone.
    let uid = match jail {
        Some(j) => Some(Arc::new(j.uids.lease().map_err(|e| {
            StartError::Spawn(format!("no uid for the instance: {e}"))
        })?)),
        None => None,
    };
    let cgroup = match jail.map(|j| (&j.cgroups, j.pids_max)) {
        Some((cgroups, pids_max)) => {
            let (cgroups, id, mem) = (cgroups.clone(), plan.id.clone(), plan.memory_mb);
            let made = tokio::task::spawn_blocking(move || cgroups.create(&id, mem, pids_max))
                .await
                .map_err(|e| StartError::Spawn(e.to_string()))?;
            Some(Arc::new(made.map_err(|e| {
                StartError::Spawn(format!("creating the instance's cgroup: {e}"))
            })?))
        }
        None => None,
    };
    // A namespace with a veth on the egress bridge, prepared ahead by the bridge's own pool.
    let net = match (plan.internet, cfg.egress.clone()) {
        (true, Some(egress)) => Some(Arc::new(
            tokio::task::spawn_blocking(move || egress.prepare())
                .await
                .map_err(|e| StartError::Spawn(e.to_string()))?
                .map_err(|e| StartError::Spawn(format!("preparing the instance's network: {e}")))?,
        )),
        _ => None,
    };
    let netns = match &net {
        Some(n) => Some(
            n.netns
                .try_clone()
                .map_err(|e| StartError::Spawn(format!("instance network: {e}")))?,
        ),
        None => None,
    };
    let hosts = net
        .as_ref()
        .and(cfg.egress.as_ref())
        .map(|e| e.hosts_file().to_path_buf());
    let code_root = match (jail, &plan.code_dir, &plan.launch.image) {
        (_, _, Some(image)) => image.cwd.clone(),
        (Some(_), _, None) | (None, None, None) => std::path::PathBuf::from("/code"),
        (None, Some(dir), None) => dir.clone(),
    };
    let jail_plan = match (jail, &uid) {
        (Some(j), Some(uid)) => Some(sandbox::JailPlan {
            config: j.clone(),
            code_dir: plan.code_dir.clone(),
            layers_dir: plan.layers_dir.clone(),
            mounts: plan.launch.mounts,
            uid: uid.uid(),
            image_user: plan.launch.image.as_ref().and_then(|i| i.user),
            image_root: plan.launch.image.map(|i| i.rootfs),
        }),
        _ => None,
    };
    let program = plan.launch.program;
    let spawned = sandbox::spawn(SpawnSpec {
        program: program.clone(),
        args: plan.launch.args,
        cwd: code_root,
        env: plan.env,
        network: cfg.network,
        read_only: plan.code_dir.clone(),
        jail: jail_plan,
        cgroup_procs: cgroup.as_ref().map(|c| c.procs.clone()).unwrap_or_default(),
        blank: plan.blank,
        netns,
        hosts,
    });
    let mut spawned = match spawned {
        Ok(s) => s,
        Err(e) => {
            if let Some(cg) = cgroup {
                tokio::task::spawn_blocking(move || drop(cg));
            }
            return Err(StartError::Spawn(format!(
                "could not run {}: {e}",
                program.display()
            )));
        }
    };
    let pid = spawned.pid;
    let (exit_tx, exit_rx) = watch::channel(None);
    let exit = spawned.exit;
    tokio::spawn(async move {
        if let Ok(info) = exit.await {
            let _ = exit_tx.send(Some(info));
        }
    });
    // From here on, however this ends, the process does not outlive it.
    let guard = Starting(Some(Teardown {
        pid,
        exit: exit_rx.clone(),
        cgroup: cgroup.clone(),
        net: net.clone(),
        uid: uid.clone(),
        reservation: None,
    }));
    let mut memory_pid = pid;
    if let Some(report) = spawned.report.take() {
        memory_pid = sandbox::await_jail(report, cfg.start_timeout)
            .await
            .map_err(|e| StartError::Spawn(e.to_string()))?;
        if cfg.network == NetworkMode::Namespace && spawned.sockets.is_none() {
            spawned.sockets =
                Some(sandbox::sockets_for(pid).map_err(|e| {
                    StartError::Spawn(format!("entering the instance's network: {e}"))
                })?);
        }
    }
    Ok(Spawned {
        pid,
        memory_pid,
        port: plan.port,
        exit: exit_rx,
        output: spawned.output,
        sockets: spawned.sockets,
        cgroup,
        control: spawned.control,
        net,
        guard,
    })
}

impl Spawned {
    /// Makes the process an instance of `spec` and waits until it accepts connections.
    pub(crate) async fn into_instance(
        self,
        cfg: &RuntimeConfig,
        spec: &FunctionSpec,
        id: String,
        reservation: Reservation,
    ) -> Result<ProcessInstance, StartError> {
        let Spawned {
            pid,
            memory_pid,
            port,
            exit,
            output,
            sockets,
            cgroup,
            control: _,
            net,
            mut guard,
        } = self;
        let teardown = match guard.0.take() {
            Some(mut t) => {
                t.reservation = Some(reservation);
                t
            }
            None => Teardown {
                pid,
                exit: exit.clone(),
                cgroup: cgroup.clone(),
                net,
                uid: None,
                reservation: Some(reservation),
            },
        };
        let (svc, func, inst) = (
            spec.service_name.clone(),
            spec.function.function_name.clone(),
            id.clone(),
        );
        let logs = Logs::start(
            output,
            &id,
            Box::new(move |line| {
                // Functions' output is kept in the log store (`fcd logs`); fcd's own log repeats
                // it only at debug level (`RUST_LOG=fcd::function=debug`), so a function
                // printing in a loop cannot flood the server's log.
                if line.starts_with("FC Invoke Start RequestId:")
                    || line.starts_with("FC Invoke End RequestId:")
                {
                    return;
                }
                tracing::debug!(target: "fcd::function", service = %svc, function = %func, instance = %inst, "{line}");
            }),
        );
        let instance = ProcessInstance {
            id,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            sockets,
            logs,
            memory: MemoryProbe::open(memory_pid).ok(),
            // Jailed, the function is PID 1 of its namespace, where the kernel drops signals
            // it has no handler for.
            namespace_init: (memory_pid != pid).then_some(memory_pid),
            cgroup,
            exit,
            idle_conns: Mutex::new(Vec::new()),
            created: Instant::now(),
            mem_cached_kib: AtomicU64::new(0),
            mem_read_at: AtomicU64::new(0),
            teardown: Mutex::new(Some(teardown)),
        };
        // Dropped from here on (an error or an abandoned start), the instance tears itself down.
        instance
            .wait_listening(cfg.start_timeout, spec.function.ca_port)
            .await?;
        if let Some(check) =
            health::HealthCheck::of(spec.function.custom_health_check_config.as_ref())
        {
            instance.wait_healthy(&check).await?;
        }
        Ok(instance)
    }
}

/// Starts a process for `spec` from scratch (or from a prewarmed jail when one fits) and waits
/// until it accepts connections on its port. `creds` (the role's, when the function has one) go
/// into its environment either way.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn start(
    cfg: &RuntimeConfig,
    prewarm: &Arc<prewarm::Prewarm>,
    spec: &FunctionSpec,
    id: String,
    qualifier: &str,
    launch: ProcessLaunch,
    reservation: Reservation,
    creds: Option<&crate::FunctionCredentials>,
) -> Result<ProcessInstance, StartError> {
    let f = &spec.function;
    let port = instance_port(cfg, f.ca_port)?;
    let jailed = cfg.jail.is_some();
    // Layers take the whole of `/opt` in a jail; an interpreter installed under `/opt` would
    // have to be mounted inside that read-only tree. Said plainly rather than failing in the
    // jail's set-up.
    if jailed
        && spec.layers.is_some()
        && let Some(b) = launch.mounts.iter().find(|b| b.inside.starts_with("/opt"))
    {
        return Err(StartError::Spawn(format!(
            "this function has layers, which are mounted at /opt, but the runtime's interpreter is installed under {}; install it elsewhere to use layers",
            b.inside.display()
        )));
    }
    let code_root = if jailed {
        std::path::PathBuf::from("/code")
    } else {
        spec.code_dir.clone()
    };
    let placed_env = match &launch.image {
        Some(_) => crate::contract::container_env,
        None => instance_env,
    };
    let env = placed_env(
        cfg,
        spec,
        &Placed {
            id: &id,
            port,
            qualifier,
            code_root: &code_root,
            jailed,
            path_dirs: &launch.path_dirs,
            host_addr: cfg
                .egress
                .as_ref()
                .filter(|_| internet(cfg, spec.internet_access))
                .map(|e| e.host_addr()),
            credentials: creds,
        },
    );
    let has_image = launch.image.is_some();
    let spawned = match prewarm.claim(spec, &launch, &env, port).await {
        Some(ready) => ready,
        None => {
            spawn(
                cfg,
                SpawnPlan {
                    id: id.clone(),
                    port,
                    memory_mb: f.memory_size,
                    launch,
                    // An image is its own root: no code directory, no layers.
                    code_dir: (!has_image).then(|| spec.code_dir.clone()),
                    layers_dir: spec.layers.as_ref().map(|l| l.dir.clone()),
                    env,
                    blank: None,
                    internet: internet(cfg, spec.internet_access),
                },
            )
            .await?
        }
    };
    spawned.into_instance(cfg, spec, id, reservation).await
}

impl ProcessInstance {
    async fn wait_listening(&self, limit: Duration, ca_port: u16) -> Result<(), StartError> {
        let deadline = Instant::now() + limit;
        let mut pause = Duration::from_micros(500);
        loop {
            if let Some(info) = self.exit.borrow().clone() {
                return Err(StartError::Exited {
                    detail: info.description,
                    log: self.logs.last(20),
                });
            }
            if let Ok(stream) = self.connect().await {
                self.put_conn(Conn::new(stream));
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::NotListening {
                    port: ca_port,
                    after: limit,
                    log: self.logs.last(20),
                });
            }
            tokio::time::sleep(pause).await;
            // A slow starter is noticed within a millisecond of listening: cold starts are
            // measured in milliseconds, and a doubling back-off would add up to its last step.
            pause = Duration::from_millis(1);
        }
    }

    async fn connect(&self) -> std::io::Result<TcpStream> {
        let stream = match &self.sockets {
            Some(factory) => {
                let fd = factory.socket().await?;
                let socket = tokio::net::TcpSocket::from_std_stream(std::net::TcpStream::from(fd));
                socket.connect(self.addr).await?
            }
            None => TcpStream::connect(self.addr).await?,
        };
        // Without this every request pays ~40 ms of delayed ACK.
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    fn put_conn(&self, c: Conn) {
        if let Ok(mut conns) = self.idle_conns.lock() {
            conns.push(c);
        }
    }

    /// A kept-alive connection the instance has not closed, if there is one.
    fn pooled_conn(&self) -> Option<Conn> {
        loop {
            let mut c = self.idle_conns.lock().ok()?.pop()?;
            if c.still_open() {
                return Some(c);
            }
        }
    }

    async fn call_inner(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Payload,
        limit: Duration,
    ) -> CallResult {
        let body = match body {
            Payload::Whole(b) => b,
            Payload::Streamed(s) => {
                return self.call_streamed(method, path, headers, s, limit).await;
            }
        };
        let fut = async {
            // A kept-alive connection the instance closed just now fails the write; the
            // request never reached it, so it goes out again on a fresh connection.
            let mut conn = match self.pooled_conn() {
                Some(mut c) => match c.send(&method, path, &headers, &body).await {
                    Ok(()) => c,
                    Err(_) => self.fresh_conn(&method, path, &headers, &body).await?,
                },
                None => self.fresh_conn(&method, path, &headers, &body).await?,
            };
            let resp = conn
                .response(&method, RESPONSE_MAX)
                .await
                .map_err(|e| match e {
                    WireError::ClosedBeforeResponse => {
                        "the instance closed the connection without a response".to_owned()
                    }
                    e => e.to_string(),
                })?;
            if resp.reusable {
                self.put_conn(conn);
            }
            Ok::<_, String>(CallResult::Response {
                status: resp.status,
                headers: resp.headers,
                body: resp.body,
            })
        };
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => CallResult::Failed(e),
            Err(_) => CallResult::TimedOut,
        }
    }

    /// A call whose body is still arriving from the client: the head goes out first (on a
    /// fresh connection if a kept-alive one turns out closed), then each piece as it comes.
    /// Sending and waiting for the response are bounded by `limit` each, so a client's slow
    /// upload is not counted as the function's time.
    async fn call_streamed(
        &self,
        method: Method,
        path: &str,
        headers: HeaderMap,
        mut body: StreamedBody,
        limit: Duration,
    ) -> CallResult {
        let chunked = body.len.is_none();
        let send = async {
            let mut conn = match self.pooled_conn() {
                Some(mut c) => match c.send_head(&method, path, &headers, body.len).await {
                    Ok(()) => Some(c),
                    Err(_) => None,
                },
                None => None,
            };
            if conn.is_none() {
                let stream = self
                    .connect()
                    .await
                    .map_err(|e| Sent::Failed(e.to_string()))?;
                let mut c = Conn::new(stream);
                c.send_head(&method, path, &headers, body.len)
                    .await
                    .map_err(|e| Sent::Failed(e.to_string()))?;
                conn = Some(c);
            }
            let Some(mut conn) = conn else {
                return Err(Sent::Failed("no connection".into()));
            };
            while let Some(piece) = body.pieces.recv().await {
                // On a refused body the connection is dropped with the request incomplete:
                // the instance never sees a whole request that was not verified.
                let piece = piece.map_err(Sent::Rejected)?;
                conn.send_piece(&piece, chunked)
                    .await
                    .map_err(|e| Sent::Failed(e.to_string()))?;
            }
            if chunked {
                conn.end_chunked()
                    .await
                    .map_err(|e| Sent::Failed(e.to_string()))?;
            }
            Ok(conn)
        };
        let mut conn = match tokio::time::timeout(limit, send).await {
            Ok(Ok(c)) => c,
            Ok(Err(Sent::Rejected(e))) => return CallResult::BodyRejected(e),
            Ok(Err(Sent::Failed(e))) => return CallResult::Failed(e),
            Err(_) => return CallResult::TimedOut,
        };
        match tokio::time::timeout(limit, conn.response(&method, RESPONSE_MAX)).await {
            Ok(Ok(resp)) => {
                if resp.reusable {
                    self.put_conn(conn);
                }
                CallResult::Response {
                    status: resp.status,
                    headers: resp.headers,
                    body: resp.body,
                }
            }
            Ok(Err(e)) => CallResult::Failed(e.to_string()),
            Err(_) => CallResult::TimedOut,
        }
    }

    async fn fresh_conn(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<Conn, String> {
        let stream = self.connect().await.map_err(|e| e.to_string())?;
        let mut conn = Conn::new(stream);
        conn.send(method, path, headers, body)
            .await
            .map_err(|e| e.to_string())?;
        Ok(conn)
    }

    /// Peak memory in MB, read now; after an exit, the peak the kernel reported for it.
    fn fresh_memory_mb(&self) -> f64 {
        let kib = self
            .cgroup
            .as_ref()
            .and_then(|c| c.peak_kib())
            .or_else(|| self.memory.as_ref().and_then(MemoryProbe::peak_kib))
            .or_else(|| self.exit.borrow().as_ref().map(|e| e.max_rss_kib))
            .unwrap_or(0);
        kib as f64 / 1024.0
    }

    async fn wait_exit(&self, wait: Duration) -> Option<ExitInfo> {
        let mut rx = self.exit.clone();
        let _ = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
        rx.borrow().clone()
    }
}

impl RunningInstance for ProcessInstance {
    fn call<'a>(
        &'a self,
        method: Method,
        path: &'a str,
        headers: HeaderMap,
        body: Payload,
        limit: Duration,
    ) -> BoxFuture<'a, CallResult> {
        // Every call of the contract (invocations of either kind, `/initialize`, the hooks)
        // is registered with the log collector before it is sent and until its future ends, so
        // the output it causes is attributed to its request (see `logs`).
        let named = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
        };
        let call_log = self
            .logs
            .begin(named("x-fc-request-id"), named("x-fc-qualifier"));
        Box::pin(async move {
            let _call_log = call_log;
            self.call_inner(method, path, headers, body, limit).await
        })
    }

    fn logs(&self) -> &Logs {
        &self.logs
    }

    /// A peak only grows, and the kernel's figure is a syscall away: the hot path re-reads it
    /// at most every 100 ms per instance.
    fn peak_memory_mb(&self, fresh: bool) -> f64 {
        if fresh {
            return self.fresh_memory_mb();
        }
        let now = self.created.elapsed().as_millis() as u64 + 1;
        let read_at = self.mem_read_at.load(Ordering::Relaxed);
        if read_at != 0 && now.saturating_sub(read_at) < 100 {
            return self.mem_cached_kib.load(Ordering::Relaxed) as f64 / 1024.0;
        }
        let mb = self.fresh_memory_mb();
        self.mem_cached_kib
            .store((mb * 1024.0) as u64, Ordering::Relaxed);
        self.mem_read_at.store(now, Ordering::Relaxed);
        mb
    }

    fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    fn exit_info(&self, wait: Duration) -> BoxFuture<'_, Option<ExitInfo>> {
        Box::pin(self.wait_exit(wait))
    }

    fn kill(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            sandbox::kill_group(self.pid);
            let _ = self.wait_exit(Duration::from_secs(5)).await;
        })
    }

    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.exited() {
                return;
            }
            // PID 1 of a namespace ignores a SIGTERM it does not handle: where the function
            // did not install a handler, what SIGTERM would have done elsewhere is done now
            // rather than after the whole grace period.
            let grace = match self.namespace_init {
                Some(p) if !sandbox::catches_sigterm(p) => Duration::ZERO,
                _ => grace,
            };
            sandbox::terminate_group(self.pid);
            if self.wait_exit(grace).await.is_none() {
                sandbox::kill_group(self.pid);
                let _ = self.wait_exit(Duration::from_secs(5)).await;
            } else {
                // The leader is gone; make sure nothing it started outlives it.
                sandbox::kill_group(self.pid);
            }
            tracing::debug!(instance = %self.id, "instance stopped");
        })
    }
}
