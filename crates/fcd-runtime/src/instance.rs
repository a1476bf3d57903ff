//! One running instance of a function: its process, the HTTP/1.1 connections fcd keeps open to
//! it, its log collector, and the custom-runtime calls (`/initialize`, `/invoke`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use fcd_core::model::LifecycleHook;

use crate::budget::Reservation;
use crate::logs::Logs;
use crate::sandbox::{self, ExitInfo, MemoryProbe, NetworkMode, SocketFactory, SpawnSpec};
use crate::{FunctionSpec, RuntimeConfig, StartError};

/// The most response bytes fcd accepts from a function.
const RESPONSE_MAX: usize = 32 * 1024 * 1024;

type Sender = SendRequest<Full<Bytes>>;

pub(crate) struct Instance {
    pub(crate) id: String,
    pid: i32,
    addr: SocketAddr,
    sockets: Option<SocketFactory>,
    pub(crate) logs: Logs,
    memory: Option<MemoryProbe>,
    /// The instance's cgroup, when it has one: limits, and the authoritative peak memory.
    cgroup: Option<sandbox::cgroup::InstanceCgroup>,
    exit: watch::Receiver<Option<ExitInfo>>,
    idle_conns: Mutex<Vec<Sender>>,
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
    /// Holds this instance's share of the server's budget until the instance is dropped.
    _reservation: Reservation,
    created: Instant,
    mem_cached_kib: AtomicU64,
    mem_read_at: AtomicU64,
}

/// What a single call to the instance produced.
pub(crate) enum CallResult {
    Response {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
    TimedOut,
    /// The connection failed; the instance may have exited.
    Failed(String),
}

fn header(map: &mut HeaderMap, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        map.insert(HeaderName::from_static(name), v);
    }
}

impl Instance {
    /// Starts the process and waits until it accepts connections on its port.
    pub(crate) async fn start(
        cfg: &RuntimeConfig,
        spec: &FunctionSpec,
        qualifier: &str,
        reservation: Reservation,
    ) -> Result<Arc<Instance>, StartError> {
        let id = format!("c-{}", &uuid::Uuid::new_v4().simple().to_string()[..24]);
        let f = &spec.function;
        let port = match cfg.network {
            NetworkMode::Namespace => f.ca_port,
            NetworkMode::Host => {
                sandbox::free_port().map_err(|e| StartError::Spawn(e.to_string()))?
            }
        };
        let jail = cfg.jail.as_ref();
        // Paths as the instance sees them: inside a jail the code is at /code.
        let code_root = match jail {
            Some(_) => std::path::PathBuf::from("/code"),
            None => spec.code_dir.clone(),
        };
        let is_python =
            fcd_core::model::runtime_kind(&f.runtime) == fcd_core::model::RuntimeKind::Python;
        let (program, args) = match fcd_core::model::runtime_kind(&f.runtime) {
            fcd_core::model::RuntimeKind::Python => {
                let (python, bootstrap) = match jail {
                    Some(j) => (
                        j.python.clone().unwrap_or_else(|| cfg.python.clone()),
                        sandbox::jail::BOOTSTRAP_IN_JAIL.to_owned(),
                    ),
                    None => (
                        cfg.python.clone(),
                        cfg.python_bootstrap.display().to_string(),
                    ),
                };
                (
                    python.into(),
                    vec![
                        "-u".to_owned(),
                        "-X".to_owned(),
                        "utf8".to_owned(),
                        bootstrap,
                    ],
                )
            }
            fcd_core::model::RuntimeKind::Custom => {
                let crc = f.custom_runtime_config.clone().unwrap_or_default();
                match crc.command.split_first() {
                    Some((cmd, rest)) => {
                        let mut args: Vec<String> = rest.to_vec();
                        args.extend(crc.args.iter().cloned());
                        (code_path(&code_root, cmd), args)
                    }
                    None => (code_root.join("bootstrap"), crc.args.clone()),
                }
            }
            fcd_core::model::RuntimeKind::Unsupported => {
                return Err(StartError::UnsupportedRuntime(f.runtime.clone()));
            }
        };
        let env = instance_env(cfg, spec, &id, port, qualifier, &code_root);
        let cgroup = match jail.and_then(|j| j.cgroups.as_ref().map(|c| (c, j.pids_max))) {
            Some((cgroups, pids_max)) => {
                Some(cgroups.create(&id, f.memory_size, pids_max).map_err(|e| {
                    StartError::Spawn(format!("creating the instance's cgroup: {e}"))
                })?)
            }
            None => None,
        };
        let plan = jail.map(|j| sandbox::JailPlan {
            config: j.clone(),
            code_dir: spec.code_dir.clone(),
            bootstrap: is_python.then(|| cfg.python_bootstrap.clone()),
        });
        let spawned = sandbox::spawn(SpawnSpec {
            program: program.clone(),
            args,
            cwd: code_root.clone(),
            env,
            network: cfg.network,
            read_only: Some(spec.code_dir.clone()),
            jail: plan,
            cgroup_procs: cgroup.as_ref().map(|c| c.procs.clone()).unwrap_or_default(),
        })
        .map_err(|e| StartError::Spawn(format!("could not run {}: {e}", program.display())))?;
        let mut spawned = spawned;
        let mut memory_pid = spawned.pid;
        if let Some(report) = spawned.report.take() {
            match sandbox::await_jail(report, cfg.start_timeout).await {
                Ok(child) => memory_pid = child,
                Err(e) => {
                    sandbox::kill_group(spawned.pid);
                    return Err(StartError::Spawn(e.to_string()));
                }
            }
            if cfg.network == NetworkMode::Namespace {
                match sandbox::sockets_for(spawned.pid) {
                    Ok(f) => spawned.sockets = Some(f),
                    Err(e) => {
                        sandbox::kill_group(spawned.pid);
                        return Err(StartError::Spawn(format!(
                            "entering the instance's network: {e}"
                        )));
                    }
                }
            }
        }

        let (exit_tx, exit_rx) = watch::channel(None);
        let exit = spawned.exit;
        tokio::spawn(async move {
            if let Ok(info) = exit.await {
                let _ = exit_tx.send(Some(info));
            }
        });
        let (svc, func, inst) = (
            spec.service_name.clone(),
            f.function_name.clone(),
            id.clone(),
        );
        let logs = Logs::start(
            spawned.output,
            Box::new(move |line| {
                // The per-request markers are for cutting log tails; in fcd's own log they are
                // noise, and forwarding them costs every call two log writes.
                if line.starts_with("FC Invoke Start RequestId:")
                    || line.starts_with("FC Invoke End RequestId:")
                {
                    return;
                }
                tracing::info!(target: "fcd::function", service = %svc, function = %func, instance = %inst, "{line}");
            }),
        );
        let instance = Arc::new(Instance {
            id,
            pid: spawned.pid,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            sockets: spawned.sockets,
            logs,
            memory: MemoryProbe::open(memory_pid).ok(),
            cgroup,
            exit: exit_rx,
            idle_conns: Mutex::new(Vec::new()),
            active: AtomicU32::new(0),
            dead: AtomicBool::new(false),
            base_headers: base_headers(cfg, spec),
            last_used_ms: AtomicU64::new(0),
            hook_busy: AtomicBool::new(false),
            provisioned: AtomicBool::new(false),
            pre_stop: hook(spec, |lc| lc.pre_stop.as_ref()),
            pre_freeze: hook(spec, |lc| lc.pre_freeze.as_ref()),
            _reservation: reservation,
            created: Instant::now(),
            mem_cached_kib: AtomicU64::new(0),
            mem_read_at: AtomicU64::new(0),
        });
        if let Err(e) = instance.wait_listening(cfg.start_timeout, spec).await {
            instance.kill().await;
            return Err(e);
        }
        Ok(instance)
    }

    async fn wait_listening(&self, limit: Duration, spec: &FunctionSpec) -> Result<(), StartError> {
        let deadline = Instant::now() + limit;
        let mut pause = Duration::from_micros(500);
        loop {
            if let Some(info) = self.exit.borrow().clone() {
                return Err(StartError::Exited {
                    detail: info.description,
                    log: self.logs.last(20),
                });
            }
            if let Ok(stream) = self.connect().await
                && let Ok(sender) = handshake(stream).await
            {
                self.put_conn(sender);
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::NotListening {
                    port: spec.function.ca_port,
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

    fn put_conn(&self, s: Sender) {
        if let Ok(mut c) = self.idle_conns.lock() {
            c.push(s);
        }
    }

    async fn sender(&self) -> Result<Sender, String> {
        loop {
            let pooled = self.idle_conns.lock().ok().and_then(|mut c| c.pop());
            match pooled {
                Some(mut s) if !s.is_closed() => {
                    if s.ready().await.is_ok() {
                        return Ok(s);
                    }
                }
                Some(_) => continue,
                None => break,
            }
        }
        let stream = self.connect().await.map_err(|e| e.to_string())?;
        handshake(stream).await.map_err(|e| e.to_string())
    }

    /// One HTTP call to the instance, bounded by `limit`.
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        extra: &[(&'static str, &str)],
        body: Bytes,
        limit: Duration,
    ) -> CallResult {
        let mut headers = self.base_headers.clone();
        for (k, v) in extra {
            header(&mut headers, k, v);
        }
        header(&mut headers, "x-fc-control-path", path);
        let fut = async {
            let mut sender = self.sender().await?;
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .body(Full::new(body))
                .map_err(|e| e.to_string())?;
            *req.headers_mut() = headers;
            let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
            let (parts, body) = resp.into_parts();
            let body = http_body_util::Limited::new(body, RESPONSE_MAX)
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            self.put_conn(sender);
            Ok::<_, String>(CallResult::Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            })
        };
        match tokio::time::timeout(limit, fut).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => CallResult::Failed(e),
            Err(_) => CallResult::TimedOut,
        }
    }

    pub(crate) fn has_pre_freeze(&self) -> bool {
        self.pre_freeze.is_some()
    }

    /// Whether the process has exited.
    pub(crate) fn exited(&self) -> bool {
        self.exit.borrow().is_some()
    }

    /// Peak memory so far in MB; after an exit, the peak the kernel reported for the process.
    /// Peak memory in MB for a successful call's headers: re-read at most every 100 ms per
    /// instance (a peak only grows; the kernel's figure is a syscall away, which the hot path
    /// should not pay on every request).
    pub(crate) fn max_memory_mb(&self) -> f64 {
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

    /// Peak memory so far in MB, read now; after an exit, the peak the kernel reported for the
    /// process.
    pub(crate) fn fresh_memory_mb(&self) -> f64 {
        let kib = self
            .cgroup
            .as_ref()
            .and_then(|c| c.peak_kib())
            .or_else(|| self.memory.as_ref().and_then(MemoryProbe::peak_kib))
            .or_else(|| self.exit.borrow().as_ref().map(|e| e.max_rss_kib))
            .unwrap_or(0);
        kib as f64 / 1024.0
    }

    /// How the process ended, waiting up to `wait` for it to end.
    pub(crate) async fn exit_info(&self, wait: Duration) -> Option<ExitInfo> {
        let mut rx = self.exit.clone();
        let _ = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;

        rx.borrow().clone()
    }

    /// Stops the instance now: SIGKILL to its process group, then waits for the exit.
    pub(crate) async fn kill(&self) {
        self.dead.store(true, Ordering::SeqCst);
        sandbox::kill_group(self.pid);
        let _ = self.exit_info(Duration::from_secs(5)).await;
    }

    /// Runs the preFreeze hook, if the function has one, while no request can start here.
    pub(crate) async fn pre_freeze(&self) {
        if let Some(h) = &self.pre_freeze {
            self.hook("/pre-freeze", h).await;
        }
    }

    async fn hook(&self, path: &str, h: &LifecycleHook) {
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

    /// Retires the instance: preStop (if configured and the instance is healthy), then SIGTERM,
    /// then SIGKILL after `grace`.
    pub(crate) async fn retire(&self, grace: Duration) {
        let healthy = self.exit.borrow().is_none();
        self.dead.store(true, Ordering::SeqCst);
        if healthy && let Some(h) = &self.pre_stop {
            self.hook("/pre-stop", h).await;
        }
        self.stop(grace).await;
    }

    /// Stops the instance politely: SIGTERM, then SIGKILL after `grace`.
    pub(crate) async fn stop(&self, grace: Duration) {
        self.dead.store(true, Ordering::SeqCst);
        sandbox::terminate_group(self.pid);
        if self.exit_info(grace).await.is_none() {
            sandbox::kill_group(self.pid);
            let _ = self.exit_info(Duration::from_secs(5)).await;
        } else {
            // The leader is gone; make sure nothing it started outlives it.
            sandbox::kill_group(self.pid);
        }
    }
}

fn hook(
    spec: &FunctionSpec,
    pick: impl Fn(&fcd_core::model::InstanceLifecycleConfig) -> Option<&LifecycleHook>,
) -> Option<LifecycleHook> {
    spec.function
        .instance_lifecycle_config
        .as_ref()
        .and_then(pick)
        .filter(|h| !h.handler.is_empty())
        .cloned()
}

async fn handshake(stream: TcpStream) -> Result<Sender, hyper::Error> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A command from `customRuntimeConfig`: relative paths and `/code/...` are taken inside the
/// function's code directory.
fn code_path(code_root: &std::path::Path, cmd: &str) -> std::path::PathBuf {
    if let Some(rest) = cmd.strip_prefix("/code/") {
        return code_root.join(rest);
    }
    if cmd.contains('/') && !cmd.starts_with('/') {
        return code_root.join(cmd);
    }
    cmd.into()
}

/// The environment of fc-runtime-contract.md section 5, then the user's variables.
fn instance_env(
    cfg: &RuntimeConfig,
    spec: &FunctionSpec,
    id: &str,
    port: u16,
    qualifier: &str,
    code_root: &std::path::Path,
) -> Vec<(String, String)> {
    let f = &spec.function;
    let code = code_root.display().to_string();
    let path = match &cfg.jail {
        // Inside a jail only system directories and the interpreter exist.
        Some(j) => match &j.python_bin_dir {
            Some(py) => format!("{py}:/usr/local/bin:/usr/bin:/bin"),
            None => "/usr/local/bin:/usr/bin:/bin".to_owned(),
        },
        None => std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned()),
    };
    let mut env = vec![
        ("PATH".to_owned(), format!("{code}:{code}/bin:{path}")),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ("HOME".to_owned(), "/tmp".to_owned()),
        ("TZ".to_owned(), "UTC".to_owned()),
        (
            "LD_LIBRARY_PATH".to_owned(),
            format!("{code}:{code}/lib:/usr/local/lib"),
        ),
        ("PYTHONUNBUFFERED".to_owned(), "1".to_owned()),
        ("FC_FUNC_CODE_PATH".to_owned(), code.clone()),
        ("FC_ACCOUNT_ID".to_owned(), spec.account_id.clone()),
        ("FC_REGION".to_owned(), cfg.region.clone()),
        ("FC_SERVICE_NAME".to_owned(), spec.service_name.clone()),
        ("FC_FUNCTION_NAME".to_owned(), f.function_name.clone()),
        ("FC_FUNCTION_HANDLER".to_owned(), f.handler.clone()),
        (
            "FC_FUNCTION_MEMORY_SIZE".to_owned(),
            f.memory_size.to_string(),
        ),
        ("FC_INSTANCE_ID".to_owned(), id.to_owned()),
        ("FC_QUALIFIER".to_owned(), qualifier.to_owned()),
        ("FC_RUNTIME_VERSION".to_owned(), f.runtime.clone()),
        ("FC_SERVER_PORT".to_owned(), port.to_string()),
        ("FC_CUSTOM_LISTEN_PORT".to_owned(), port.to_string()),
    ];
    if let Some(v) = &spec.version_id {
        env.push(("FC_VER_ID".to_owned(), v.clone()));
        env.push(("FC_FUNCTION_VERSION".to_owned(), v.clone()));
    }
    if !f.initializer.is_empty() {
        env.push(("FC_FUNCTION_INITIALIZER".to_owned(), f.initializer.clone()));
    }
    for (k, v) in &f.environment_variables {
        env.push((k.clone(), v.clone()));
    }
    env
}

/// The `x-fc-*` headers of fc-runtime-contract.md section 2.2 that are the same for every call.
fn base_headers(cfg: &RuntimeConfig, spec: &FunctionSpec) -> HeaderMap {
    let f = &spec.function;
    let mut h = HeaderMap::new();
    header(&mut h, "host", &format!("127.0.0.1:{}", f.ca_port));
    header(&mut h, "content-type", "application/octet-stream");
    header(&mut h, "x-fc-function-handler", &f.handler);
    header(&mut h, "x-fc-function-memory", &f.memory_size.to_string());
    header(&mut h, "x-fc-function-timeout", &f.timeout.to_string());
    header(&mut h, "x-fc-function-initializer", &f.initializer);
    header(
        &mut h,
        "x-fc-initialization-timeout",
        &f.initialization_timeout.to_string(),
    );
    if let Some(lc) = &f.instance_lifecycle_config {
        if let Some(h2) = &lc.pre_stop {
            header(
                &mut h,
                "x-fc-instance-lifecycle-pre-stop-handler",
                &h2.handler,
            );
        }
        if let Some(h2) = &lc.pre_freeze {
            header(
                &mut h,
                "x-fc-instance-lifecycle-pre-freeze-handler",
                &h2.handler,
            );
        }
    }
    header(&mut h, "x-fc-region", &cfg.region);
    header(&mut h, "x-fc-account-id", &spec.account_id);
    header(
        &mut h,
        "x-fc-version-id",
        spec.version_id.as_deref().unwrap_or(""),
    );
    header(&mut h, "x-fc-function-name", &f.function_name);
    header(&mut h, "x-fc-service-name", &spec.service_name);
    header(&mut h, "x-fc-service-logproject", &spec.log_project);
    header(&mut h, "x-fc-service-logstore", &spec.log_store);
    h
}
