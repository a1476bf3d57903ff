//! One `wasm` instance as the pool sees it: a compiled guest plus what every call to it gets
//! (environment, the code directory read-only at `/code`, a memory cap, outbound-network
//! policy, the log pipe). Each call instantiates the guest afresh in a store of its own, so
//! nothing a call leaves in memory reaches the next; the pool's instance is the unit of the
//! server's budget and of `instanceConcurrency` (how many such calls may run side by side).
//! A `wasi:http` function may opt out with [`REUSE_ENV`]: a guest instance whose call ended
//! cleanly is then kept (up to `instanceConcurrency` of them) and serves the next call with its
//! module state, as an FC instance's process does; one that trapped or timed out is dropped.
//!
//! A call of the custom-runtime contract (`POST /invoke`, an HTTP invocation, `/initialize`,
//! lifecycle hooks) reaches a `wasi:http` guest as that HTTP request. A command guest gets an
//! invocation's body on stdin and answers with its stdout; it has no other entry point, so
//! the initializer and lifecycle hooks are answered for it without running it.
//!
//! Timeouts: the store yields to tokio at every epoch tick ([`super::EPOCH_TICK`]), so a guest
//! in a busy loop shares its thread and is dropped, mid-loop, when the call's limit passes.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::{BodyExt, Full};
use tokio::sync::Notify;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;
use wasmtime_wasi_http::p2::bindings::{Proxy, ProxyPre};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

use super::{Loaded, WasmEngine};
use crate::Payload;
use crate::backend::{BoxFuture, CallResult, ExitInfo, RunningInstance};
use crate::budget::Reservation;
use crate::logs::Logs;

/// Where the code package appears to the guest.
pub(crate) const CODE_DIR_IN_GUEST: &str = "/code";
/// The function environment variable that makes a `wasi:http` function keep its guest
/// instances between calls, as FC keeps a warm instance's process (module state persists).
pub(crate) const REUSE_ENV: &str = "FCD_WASM_REUSE_INSTANCES";
/// How long a reused guest's response may take to complete after its handler returned before
/// the guest is given up (its store dropped, which ends the body) instead of kept.
const BODY_GRACE: Duration = Duration::from_millis(20);
/// Most bytes of a command's stdout kept as its result (FC's response limit is 6 MB for sync
/// calls; more is cut).
const STDOUT_MAX: usize = 16 << 20;

/// What a store of a component guest holds.
pub(crate) struct Host {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    cap: MemoryCap,
    hooks: Outbound,
}

impl WasiView for Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Host {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// What a store of a WASI preview 1 command module holds.
pub(crate) struct CommandHost {
    pub(crate) wasi: wasmtime_wasi::p1::WasiP1Ctx,
    cap: MemoryCap,
}

/// The function's `memorySize` as a cap on the sum of a store's linear memories; records the
/// instance's peak.
struct MemoryCap {
    limit: usize,
    used: usize,
    peak: Arc<AtomicU64>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let next = self.used.saturating_sub(current).saturating_add(desired);
        if next > self.limit {
            return Ok(false);
        }
        self.used = next;
        self.peak.fetch_max(next as u64, Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // Table elements live in host memory: bound them like a memory of the same size.
        Ok(desired.saturating_mul(8) <= self.limit)
    }
}

/// The outbound HTTP policy: the service's `internetAccess`, and never the host's own
/// loopback, link-local or unspecified addresses (fcd's API and other instances live there;
/// a process instance in its own network namespace cannot reach them either).
struct Outbound {
    internet: bool,
}

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
    ) -> Box<
        dyn std::future::Future<
                Output = wasmtime_wasi_http::Result<(
                    http::Response<wasmtime_wasi_http::WasiBody>,
                    Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
                )>,
            > + Send,
    > {
        drop(fut);
        let internet = self.internet;
        Box::new(async move {
            if !internet {
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            let host = request.uri().host().unwrap_or_default().to_owned();
            let port = request.uri().port_u16().unwrap_or(80);
            if !outbound_allowed(&host, port).await {
                return Err(wasmtime_wasi_http::Error::HttpRequestDenied);
            }
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io)
                    as Box<dyn std::future::Future<Output = wasmtime_wasi_http::Result<()>> + Send>,
            ))
        })
    }
}

/// Whether a guest may connect to `host`: every address it resolves to must be a public one.
async fn outbound_allowed(host: &str, port: u16) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.eq_ignore_ascii_case("localhost") {
        return false;
    }
    let addrs: Vec<IpAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![ip],
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Ok(it) => it.map(|a| a.ip()).collect(),
            Err(_) => return false,
        },
    };
    !addrs.is_empty() && addrs.iter().all(|ip| !host_internal(ip))
}

fn host_internal(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| host_internal(&IpAddr::V4(v4)))
        }
    }
}

/// A `wasi:http` guest instance between two calls.
type IdleGuest = (Store<Host>, Proxy);

/// What the pool holds for one started `wasm` instance.
pub(crate) struct WasmInstance {
    engine: Arc<WasmEngine>,
    loaded: Arc<Loaded>,
    logs: Logs,
    /// The write end of the log pipe; every store's stdout/stderr is a duplicate of it.
    out: std::fs::File,
    env: Vec<(String, String)>,
    code_dir: PathBuf,
    memory_limit: usize,
    internet: bool,
    peak: Arc<AtomicU64>,
    killed: AtomicBool,
    kill: Notify,
    /// Whether guest instances are kept between calls ([`REUSE_ENV`]).
    reuse: bool,
    /// Guest instances whose last call ended cleanly, ready for the next one.
    idle: std::sync::Mutex<Vec<IdleGuest>>,
    /// How many may wait in `idle`: `instanceConcurrency`.
    max_idle: usize,
    /// The instance's share of the server's budget, given back when it is dropped.
    _reservation: Reservation,
}

/// Everything [`WasmInstance::new`] needs.
pub(crate) struct WasmStart {
    pub(crate) engine: Arc<WasmEngine>,
    pub(crate) loaded: Arc<Loaded>,
    pub(crate) id: String,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) code_dir: PathBuf,
    pub(crate) memory_mb: u32,
    pub(crate) internet: bool,
    /// Keep guest instances between calls ([`REUSE_ENV`]).
    pub(crate) reuse: bool,
    pub(crate) concurrency: u32,
    pub(crate) reservation: Reservation,
}

impl WasmInstance {
    pub(crate) fn new(s: WasmStart) -> Result<WasmInstance, String> {
        let (rx, tx) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)
                .map_err(|e| format!("creating the log pipe: {e}"))?;
        let rx = tokio::net::unix::pipe::Receiver::from_owned_fd(rx)
            .map_err(|e| format!("creating the log pipe: {e}"))?;
        // The guest's writes go through blocking `write(2)`s of wasmtime's file streams; the
        // write end must block (a full pipe then waits for the collector instead of failing).
        nix::fcntl::fcntl(
            &tx,
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
        )
        .map_err(|e| format!("creating the log pipe: {e}"))?;
        let label = s.id.clone();
        let logs = Logs::start(
            rx,
            &s.id,
            Box::new(move |line| tracing::debug!(instance = %label, "{line}")),
        );
        Ok(WasmInstance {
            engine: s.engine,
            loaded: s.loaded,
            logs,
            out: std::fs::File::from(tx),
            env: s.env,
            code_dir: s.code_dir,
            memory_limit: (s.memory_mb as usize) << 20,
            internet: s.internet,
            peak: Arc::new(AtomicU64::new(0)),
            killed: AtomicBool::new(false),
            kill: Notify::new(),
            reuse: s.reuse,
            idle: std::sync::Mutex::new(Vec::new()),
            max_idle: s.concurrency.max(1) as usize,
            _reservation: s.reservation,
        })
    }

    fn cap(&self) -> MemoryCap {
        MemoryCap {
            limit: self.memory_limit,
            used: 0,
            peak: self.peak.clone(),
        }
    }

    /// Writes a trap with the guest's backtrace to the function's log, where a process
    /// runtime's stack trace would be.
    fn log_trap(&self, trap: &wasmtime::Error) {
        use std::io::Write;
        let text = format!("{trap:?}\n");
        let _ = (&self.out).write_all(text.as_bytes());
    }

    /// The state of a component guest's store.
    fn host(&self, wasi: WasiCtx) -> Host {
        Host {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            cap: self.cap(),
            hooks: Outbound {
                internet: self.internet,
            },
        }
    }

    fn log_stream(&self) -> Result<wasmtime_wasi::cli::OutputFile, String> {
        self.out
            .try_clone()
            .map(wasmtime_wasi::cli::OutputFile::new)
            .map_err(|e| format!("duplicating the log pipe: {e}"))
    }

    /// The WASI context every call gets; `stdio` completes it per kind of guest.
    fn wasi(
        &self,
        stdio: impl FnOnce(&mut WasiCtxBuilder) -> Result<(), String>,
    ) -> Result<WasiCtxBuilder, String> {
        let mut b = WasiCtxBuilder::new();
        b.envs(&self.env);
        b.preopened_dir(&self.code_dir, CODE_DIR_IN_GUEST, FsPerms::ReadOnly)
            .map_err(|e| format!("opening the code directory: {e}"))?;
        stdio(&mut b)?;
        Ok(b)
    }

    fn store<T: 'static>(&self, data: T, cap: fn(&mut T) -> &mut MemoryCap) -> Store<T> {
        let mut store = Store::new(self.engine.engine(), data);
        store.limiter(move |d| cap(d) as &mut dyn ResourceLimiter);
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        store
    }

    async fn run(&self, method: Method, path: &str, headers: HeaderMap, body: Bytes) -> CallResult {
        let res = match &*self.loaded {
            Loaded::Http(pre) => self.run_http(pre, method, path, headers, body).await,
            Loaded::CommandComponent(_) | Loaded::CommandModule(_) => {
                if path != "/invoke" && !is_http_call(path) {
                    // Initializer and lifecycle hooks: a command has no entry point for them.
                    return CallResult::Response {
                        status: 200,
                        headers: HeaderMap::new(),
                        body: Bytes::new(),
                    };
                }
                self.run_command(body).await
            }
        };
        res.unwrap_or_else(CallResult::Failed)
    }

    /// A store with a `wasi:http` guest instantiated in it: an idle one of this instance when
    /// it reuses them, else a new one.
    async fn http_guest(&self, pre: &ProxyPre<Host>) -> Result<(Store<Host>, Proxy), CallResult> {
        if self.reuse
            && let Some(ready) = self.idle.lock().ok().and_then(|mut v| v.pop())
        {
            let (mut store, proxy) = ready;
            // The deadline of its last call has passed: arm it again.
            store.set_epoch_deadline(1);
            return Ok((store, proxy));
        }
        let out = self.log_stream().map_err(CallResult::Failed)?;
        let err = self.log_stream().map_err(CallResult::Failed)?;
        let wasi = self
            .wasi(|b| {
                b.stdout(out).stderr(err);
                Ok(())
            })
            .map_err(CallResult::Failed)?
            .build();
        let mut store = self.store(self.host(wasi), |h| &mut h.cap);
        match pre.instantiate_async(&mut store).await {
            Ok(proxy) => Ok((store, proxy)),
            Err(e) => {
                self.log_trap(&e);
                Err(function_error(&trap_message(&e, "while instantiating")))
            }
        }
    }

    async fn run_http(
        &self,
        pre: &ProxyPre<Host>,
        method: Method,
        path: &str,
        headers: HeaderMap,
        body: Bytes,
    ) -> Result<CallResult, String> {
        let (mut store, proxy) = match self.http_guest(pre).await {
            Ok(g) => g,
            Err(res) => return Ok(res),
        };
        let authority = headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost")
            .to_owned();
        let uri = format!("http://{authority}{path}");
        let mut req = http::Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body).map_err(|never| -> wasmtime_wasi_http::Error { match never {} }))
            .map_err(|e| format!("building the guest's request: {e}"))?;
        *req.headers_mut() = headers;
        let incoming = store
            .data_mut()
            .http()
            .new_incoming_request(Scheme::Http, req)
            .map_err(|e| format!("building the guest's request: {e:#}"))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let outparam = store
            .data_mut()
            .http()
            .new_response_outparam(tx)
            .map_err(|e| format!("building the guest's response: {e:#}"))?;
        // The guest runs in one future and the host reads its response in another, polled
        // together: the guest may wait for the host to take its body.
        let guest = async move {
            let r = proxy
                .wasi_http_incoming_handler()
                .call_handle(&mut store, incoming, outparam)
                .await;
            (store, proxy, r)
        };
        let host = async move {
            let resp = match rx.await {
                Ok(Ok(resp)) => resp,
                Ok(Err(code)) => {
                    return Err(format!("the function answered with an error: {code:?}"));
                }
                Err(_) => return Err(String::new()),
            };
            let (parts, body) = resp.into_parts();
            match body.collect().await {
                Ok(b) => Ok((parts, b.to_bytes())),
                Err(e) => Err(format!("the function's response body failed: {e:?}")),
            }
        };
        tokio::pin!(guest, host);
        let mut answered = None;
        let (store, proxy, g) = loop {
            tokio::select! {
                g = &mut guest => break g,
                h = &mut host, if answered.is_none() => answered = Some(h),
            }
        };
        // `handle` returned: the guest wrote all it will. A body it left open ends only with
        // its store, so a store is kept for reuse only if its response completes by itself.
        let h = match answered {
            Some(h) => {
                self.keep_idle(store, proxy, g.is_ok());
                h
            }
            None if self.reuse && g.is_ok() => {
                match tokio::time::timeout(BODY_GRACE, &mut host).await {
                    Ok(h) => {
                        self.keep_idle(store, proxy, true);
                        h
                    }
                    Err(_) => {
                        drop(store);
                        host.await
                    }
                }
            }
            None => {
                drop(store);
                host.await
            }
        };
        Ok(match (h, g) {
            (Ok((parts, body)), _) => CallResult::Response {
                status: parts.status.as_u16(),
                headers: parts.headers,
                body,
            },
            (Err(e), Err(trap)) => {
                self.log_trap(&trap);
                function_error(&trap_message(&trap, &e))
            }
            (Err(e), Ok(())) if !e.is_empty() => function_error(&e),
            (Err(_), Ok(())) => function_error(
                "the function returned without setting a response (wasi:http response-outparam.set)",
            ),
        })
    }

    /// Keeps a store whose call ended cleanly for the next call, when the function reuses
    /// instances and fewer than `instanceConcurrency` are idle already.
    fn keep_idle(&self, store: Store<Host>, proxy: Proxy, clean: bool) {
        if !self.reuse || !clean || self.killed.load(Ordering::Acquire) {
            return;
        }
        if let Ok(mut idle) = self.idle.lock()
            && idle.len() < self.max_idle
        {
            idle.push((store, proxy));
        }
    }

    async fn run_command(&self, stdin: Bytes) -> Result<CallResult, String> {
        let stdout = MemoryOutputPipe::new(STDOUT_MAX);
        let captured = stdout.clone();
        let err = self.log_stream()?;
        let mut wasi = self.wasi(|b| {
            b.stdin(MemoryInputPipe::new(stdin))
                .stdout(stdout)
                .stderr(err)
                .args(&["main"]);
            Ok(())
        })?;
        let ran: wasmtime::Result<Result<(), ()>> = match &*self.loaded {
            Loaded::CommandComponent(pre) => {
                let mut store = self.store(self.host(wasi.build()), |h| &mut h.cap);
                match pre.instantiate_async(&mut store).await {
                    Ok(cmd) => cmd.wasi_cli_run().call_run(&mut store).await,
                    Err(e) => Err(e),
                }
            }
            Loaded::CommandModule(pre) => {
                let mut store = self.store(
                    CommandHost {
                        wasi: wasi.build_p1(),
                        cap: self.cap(),
                    },
                    |h| &mut h.cap,
                );
                match pre.instantiate_async(&mut store).await {
                    Ok(inst) => match inst.get_typed_func::<(), ()>(&mut store, "_start") {
                        Ok(start) => start.call_async(&mut store, ()).await.map(Ok),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            }
            Loaded::Http(_) => return Err("not a command".into()),
        };
        let out = captured.contents();
        let exit = match ran {
            Ok(Ok(())) => 0,
            Ok(Err(())) => 1,
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(I32Exit(code)) => *code,
                None => {
                    self.log_trap(&e);
                    return Ok(function_error(&trap_message(&e, "")));
                }
            },
        };
        if exit == 0 {
            return Ok(CallResult::Response {
                status: 200,
                headers: HeaderMap::new(),
                body: out,
            });
        }
        Ok(function_error(&format!(
            "the command exited with status {exit}"
        )))
    }
}

/// An HTTP invocation's path (anything but the contract's own endpoints).
fn is_http_call(path: &str) -> bool {
    !matches!(
        path,
        "/initialize" | "/pre-freeze" | "/pre-stop" | "/invoke"
    )
}

fn trap_message(trap: &wasmtime::Error, detail: &str) -> String {
    // The reason alone (`wasm trap: wasm \`unreachable\` instruction executed`); the guest's
    // backtrace, wasmtime's outer context, goes to the log ([`WasmInstance::log_trap`]).
    let mut msg = match trap.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::Interrupt) => "the function was interrupted".to_owned(),
        Some(t) => format!("the function trapped: {t}"),
        None => format!("the function failed: {}", trap.root_cause()),
    };
    if !detail.is_empty() {
        msg.push_str(&format!(" ({detail})"));
    }
    msg
}

/// A function error as the custom-runtime contract reports one.
fn function_error(msg: &str) -> CallResult {
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-fc-error-type",
        HeaderValue::from_static("UnhandledInvocationError"),
    );
    headers.insert("x-fc-status", HeaderValue::from_static("500"));
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = serde_json::json!({
        "errorMessage": msg,
        "errorType": "UnhandledInvocationError",
    });
    CallResult::Response {
        status: 500,
        headers,
        body: Bytes::from(body.to_string()),
    }
}

async fn whole(body: Payload) -> Result<Bytes, fcd_core::FcError> {
    match body {
        Payload::Whole(b) => Ok(b),
        Payload::Streamed(mut s) => {
            let mut buf = Vec::with_capacity(s.len.unwrap_or(0).min(32 << 20) as usize);
            while let Some(piece) = s.pieces.recv().await {
                buf.extend_from_slice(&piece?);
            }
            Ok(Bytes::from(buf))
        }
    }
}

impl RunningInstance for WasmInstance {
    fn call<'a>(
        &'a self,
        method: Method,
        path: &'a str,
        headers: HeaderMap,
        body: Payload,
        limit: Duration,
    ) -> BoxFuture<'a, CallResult> {
        Box::pin(async move {
            if self.killed.load(Ordering::Acquire) {
                return CallResult::Failed("the instance was stopped".into());
            }
            let header = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            let _registered = self
                .logs
                .begin(&header("x-fc-request-id"), &header("x-fc-qualifier"));
            let body = match whole(body).await {
                Ok(b) => b,
                Err(e) => return CallResult::BodyRejected(e),
            };
            let killed = self.kill.notified();
            tokio::select! {
                r = tokio::time::timeout(limit, self.run(method, path, headers, body)) => match r {
                    Ok(res) => res,
                    Err(_) => CallResult::TimedOut,
                },
                _ = killed => CallResult::Failed("the instance was stopped".into()),
            }
        })
    }

    fn logs(&self) -> &Logs {
        &self.logs
    }

    fn peak_memory_mb(&self, _fresh: bool) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
    }

    fn exited(&self) -> bool {
        self.killed.load(Ordering::Acquire)
    }

    fn exit_info(&self, _wait: Duration) -> BoxFuture<'_, Option<ExitInfo>> {
        Box::pin(async move {
            self.killed.load(Ordering::Acquire).then(|| ExitInfo {
                description: "stopped".into(),
                max_rss_kib: self.peak.load(Ordering::Relaxed) / 1024,
            })
        })
    }

    fn kill(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.killed.store(true, Ordering::Release);
            self.kill.notify_waiters();
            if let Ok(mut idle) = self.idle.lock() {
                idle.clear();
            }
        })
    }

    fn stop(&self, _grace: Duration) -> BoxFuture<'_, ()> {
        self.kill()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guests_never_reach_the_hosts_own_addresses() {
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "169.254.169.254",
            "::1",
            "::ffff:127.0.0.1",
            "fe80::1",
        ] {
            assert!(host_internal(&ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "8.8.8.8", "2001:db8::1"] {
            assert!(!host_internal(&ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn the_memory_cap_counts_every_memory_of_a_store() {
        let peak = Arc::new(AtomicU64::new(0));
        let mut cap = MemoryCap {
            limit: 10 << 20,
            used: 0,
            peak: peak.clone(),
        };
        assert!(cap.memory_growing(0, 6 << 20, None).unwrap());
        assert!(cap.memory_growing(0, 3 << 20, None).unwrap());
        assert!(!cap.memory_growing(3 << 20, 5 << 20, None).unwrap());
        assert!(cap.memory_growing(3 << 20, 4 << 20, None).unwrap());
        assert_eq!(peak.load(Ordering::Relaxed), 10 << 20);
    }
}
