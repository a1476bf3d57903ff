//! The scenarios: warm, cold, payload, HTTP-trigger and async invocations, each measured
//! through fcd and against a floor (the same runtime process, standalone, called directly).

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;

use crate::http::{
    DirectHttp, DirectInvoke, FcdInvoke, PlainPost, ProxyRequest, Target, send, wait_first_response,
};
use crate::load::{self, Limit, LoadSpec, LoadStats, median};
use crate::nginx::{self, Nginx};
use crate::report::{
    AsyncResult, Baseline, ColdRow, ColdStats, DrainRow, HttpRow, PayloadProxyRow, PayloadRow,
    ProxyRow, Report, ServerStats, WarmRow,
};
use crate::server::{self, Api, FcdServer, FunctionDef, SERVICE};
use crate::sls;
use crate::sys::{self, Guard, Pinning};

/// The Python bootstrap fcd runs its python3 functions with; the python floor runs it alone.
const PYTHON_BOOTSTRAP: &str = include_str!("../../fcd-runtime/src/runtimes/python/bootstrap.py");
/// The python3 function: returns the event, so an empty body is a no-op and the payload echoes.
const PYTHON_INDEX: &str = "def handler(event, context):\n    return event\n";
const PYTHON_HANDLER: &str = "index.handler";
/// The python3 function behind an HTTP trigger: a WSGI app echoing the request body. Called
/// through InvokeFunction it gets `(event, context)` instead (the bootstrap picks the shape
/// per request) and returns the event, so the same function serves both paths.
const PYTHON_HTTP_INDEX: &str = "\
def handler(environ, start_response):
    if not callable(start_response):
        return environ
    body = environ['wsgi.input'].read(int(environ.get('CONTENT_LENGTH') or 0))
    start_response('200 OK', [('Content-Type', 'application/octet-stream')])
    return [body]
";
/// The Node.js bootstrap fcd runs its nodejs* functions with; the node floor runs it alone.
const NODE_BOOTSTRAP: &str = include_str!("../../fcd-runtime/src/runtimes/nodejs/bootstrap.js");
/// The nodejs function: a no-op answering an empty body.
const NODE_INDEX: &str = "exports.handler = (e, c, cb) => cb(null, '');\n";
const NODE_HANDLER: &str = "index.handler";
/// The Node runtime the cold scenario deploys (every nodejs* runs on the machine's one node).
const NODE_RUNTIME: &str = "nodejs20";
/// FC's default memory size: what fcd keeps prewarmed jails of from the start, and for
/// nodejs, `--max-old-space-size=96` (¾ of it), as the standalone floor is started.
const COLD_MEMORY_MB: u32 = 128;
/// The memory size of the warm, payload and async functions.
const WARM_MEMORY_MB: u32 = 512;

const WARM_CUSTOM: &str = "warm-custom";
const WARM_PYTHON: &str = "warm-python";
const ASYNC_CUSTOM: &str = "async-custom";
const HTTP_CUSTOM: &str = "http-custom";
const HTTP_PYTHON: &str = "http-python";
/// The name of each HTTP function's anonymous trigger.
const HTTP_TRIGGER: &str = "http";
/// What follows the function in the trigger's URL.
const HTTP_REST: &str = "/path?x=1";
/// The body of the HTTP scenario's POSTs and InvokeFunctions (echoed).
const HTTP_BODY_BYTES: usize = 128;
/// The HTTP scenario's concurrencies.
const HTTP_CONCURRENCY: [usize; 2] = [1, 8];
/// The gauge of instances holding a share of fcd's budget (prewarmed jails hold none).
const INSTANCES_USED: &str = "fcd_budget_instances_used";
/// The concurrencies python3 is measured at behind serverless-offline; the target is judged
/// at the larger.
const SLS_CONCURRENCY: [usize; 2] = [1, SLS_JUDGED_AT];
const SLS_JUDGED_AT: usize = 16;
/// The burst scenario's concurrent calls (and so instances started at once).
const BURST_CALLS: usize = 16;
/// One instance serves every worker, as the single standalone floor process does.
pub(crate) const WARM_INSTANCE_CONCURRENCY: u32 = 100;

/// How much of everything to do.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    /// Overrides how long time-bound measurements last.
    pub(crate) duration: Option<Duration>,
    /// The warm scenario's concurrencies.
    pub(crate) concurrency: Vec<usize>,
    /// python3 behind serverless-offline too, in the warm scenario.
    pub(crate) serverless_offline: bool,
    /// The wasm scenarios' component (`--component`); default [`crate::wasm::default_component`].
    pub(crate) component: Option<PathBuf>,
    /// The reference `wasmtime` (`--wasmtime`); default: installed from PyPI by the bench.
    pub(crate) wasmtime: Option<PathBuf>,
}

impl Plan {
    pub(crate) fn warmup(&self) -> Duration {
        if self.quick {
            Duration::from_millis(30)
        } else {
            Duration::from_millis(500)
        }
    }

    pub(crate) fn warm_limit(&self) -> Limit {
        if let Some(d) = self.duration {
            Limit::Time(d)
        } else if self.quick {
            Limit::Time(Duration::from_millis(120))
        } else {
            Limit::Time(Duration::from_secs(5))
        }
    }

    /// Backlogs of accepted no-op calls whose execution is timed end to end.
    pub(crate) fn async_backlogs(&self) -> Vec<usize> {
        if self.quick {
            vec![256]
        } else {
            vec![10_000, 30_000]
        }
    }

    /// The cluster scenario's backlog of accepted async calls, per setup.
    pub(crate) fn cluster_backlog(&self) -> usize {
        if self.quick { 256 } else { 10_000 }
    }

    fn cold_samples(&self) -> usize {
        if self.quick { 1 } else { 20 }
    }

    /// Unrecorded cold starts per runtime and server before the samples.
    fn cold_warmups(&self) -> usize {
        if self.quick { 0 } else { 1 }
    }

    pub(crate) fn startup_samples(&self) -> usize {
        if self.quick { 1 } else { 5 }
    }

    pub(crate) fn idle(&self) -> Duration {
        if self.quick {
            Duration::from_millis(300)
        } else {
            Duration::from_secs(1)
        }
    }

    fn payloads(&self) -> Vec<(&'static str, usize, Limit)> {
        let timed = match self.duration {
            Some(d) => Limit::Time(d),
            None if self.quick => Limit::Count(1),
            None => Limit::Time(Duration::from_secs(3)),
        };
        let large = if self.quick {
            Limit::Count(1)
        } else {
            Limit::Count(12)
        };
        vec![
            ("1 KB", 1024, timed),
            ("1 MB", 1024 * 1024, timed),
            ("16 MB", 16 * 1024 * 1024, large),
        ]
    }

    /// The warm scenario's concurrencies for `floor`: python3 adds 16 (the concurrency the
    /// serverless-offline comparison is judged at) when that comparison runs.
    fn warm_concurrency(&self, floor: Floor) -> Vec<usize> {
        let mut c = self.concurrency.clone();
        if self.serverless_offline && floor == Floor::Python && !c.contains(&SLS_JUDGED_AT) {
            c.push(SLS_JUDGED_AT);
            c.sort_unstable();
        }
        c
    }

    fn sign_iterations(&self) -> usize {
        if self.quick { 200 } else { 5000 }
    }
}

/// Which standalone runtime process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Floor {
    Fixture,
    Python,
    /// The python3 bootstrap with the HTTP scenario's WSGI function.
    PythonHttp,
    Node,
}

impl Floor {
    fn runtime(self) -> &'static str {
        match self {
            Floor::Fixture => "custom",
            Floor::Python | Floor::PythonHttp => "python3",
            Floor::Node => NODE_RUNTIME,
        }
    }

    fn function(self) -> &'static str {
        match self {
            Floor::Fixture => WARM_CUSTOM,
            Floor::Python => WARM_PYTHON,
            Floor::PythonHttp => HTTP_PYTHON,
            Floor::Node => "direct-nodejs",
        }
    }

    fn handler(self) -> &'static str {
        match self {
            Floor::Fixture => "index.handler",
            Floor::Python | Floor::PythonHttp => PYTHON_HANDLER,
            Floor::Node => NODE_HANDLER,
        }
    }
}

/// Which of the cold scenario's two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prewarming {
    /// `fcd serve` as shipped (`--prewarm` left at its default).
    AsShipped,
    /// `fcd serve --prewarm 0`.
    Off,
}

/// One server's cold starts of one runtime.
#[derive(Debug, Default)]
struct ColdSeries {
    ms: Vec<f64>,
    /// Samples whose instance was a prewarmed jail (one that existed before the sample was
    /// gone after it).
    claimed: usize,
    /// Samples after which fcd's processes did not settle within the limit.
    unsettled: usize,
    /// DeleteFunction sent → the instance's budget given back (its processes gone), ms.
    gone_ms: Vec<f64>,
    /// DeleteFunction sent → as many processes as before, and quiet, ms.
    settled_ms: Vec<f64>,
}

impl ColdSeries {
    fn stats(self) -> ColdStats {
        ColdStats {
            median_ms: median(&self.ms),
            samples_ms: self.ms,
            prewarmed_jail_claimed: self.claimed,
            instance_gone_after_delete_ms: median(&self.gone_ms),
            settled_after_delete_ms: median(&self.settled_ms),
        }
    }
}

/// One cold start through fcd, as measured from outside.
struct ColdSample {
    ms: f64,
    claimed: bool,
    settled: bool,
    gone_ms: f64,
    settled_ms: f64,
}

/// A standalone runtime process and where it listens.
struct Standalone {
    child: Guard,
    addr: SocketAddr,
    /// Spawn → first successful `POST /invoke`.
    start: Duration,
}

pub(crate) struct Bench {
    pub(crate) plan: Plan,
    pub(crate) pin: Pinning,
    pub(crate) fcd_bin: PathBuf,
    pub(crate) fixture_bin: PathBuf,
    /// The real interpreter (not a shim), for fcd and the floors alike.
    pub(crate) python: Option<PathBuf>,
    /// The real `node` (not a shim), for fcd and the floors alike.
    pub(crate) node: Option<PathBuf>,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) server: Option<FcdServer>,
    api: Option<Api>,
    fixture_zip: String,
    python_zip: String,
    python_http_zip: String,
    node_zip: String,
    warm_deployed: bool,
    /// What the wasm scenarios prepared once per run.
    pub(crate) wasm: crate::wasm::WasmState,
    pub(crate) report: Report,
}

impl Bench {
    pub(crate) fn new(
        plan: Plan,
        pin: Pinning,
        fcd_bin: PathBuf,
        fixture_bin: PathBuf,
        python: Option<PathBuf>,
        node: Option<PathBuf>,
        report: Report,
    ) -> Result<Bench> {
        let fixture = std::fs::read(&fixture_bin)
            .with_context(|| format!("reading the fixture {}", fixture_bin.display()))?;
        let fixture_zip = server::zip_b64(&[("bootstrap", &fixture, 0o755)])?;
        let python_zip = server::zip_b64(&[("index.py", PYTHON_INDEX.as_bytes(), 0o644)])?;
        let python_http_zip =
            server::zip_b64(&[("index.py", PYTHON_HTTP_INDEX.as_bytes(), 0o644)])?;
        let node_zip = server::zip_b64(&[("index.js", NODE_INDEX.as_bytes(), 0o644)])?;
        Ok(Bench {
            plan,
            pin,
            fcd_bin,
            fixture_bin,
            python,
            node,
            dir: tempfile::Builder::new().prefix("fcd-bench-").tempdir()?,
            server: None,
            api: None,
            fixture_zip,
            python_zip,
            python_http_zip,
            node_zip,
            warm_deployed: false,
            wasm: crate::wasm::WasmState::default(),
            report,
        })
    }

    pub(crate) fn server(&self) -> Result<&FcdServer> {
        self.server
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("fcd is not running"))
    }

    pub(crate) fn api(&mut self) -> Result<&mut Api> {
        self.api
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("fcd is not running"))
    }

    /// What every fcd the harness starts is given: the interpreters the floors use,
    /// `--prewarm` when not left at fcd's default, and — only where the harness is not root,
    /// so fcd could not jail and would refuse to start — `--isolation none`, said so in the
    /// report's notes.
    pub(crate) fn node_args(&self) -> Vec<OsString> {
        self.server_args(Prewarming::AsShipped)
    }

    fn server_args(&self, prewarm: Prewarming) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        if !nix::unistd::geteuid().is_root() {
            args.extend(["--isolation".into(), "none".into()]);
        }
        if let Some(p) = &self.python {
            args.extend(["--python".into(), p.clone().into_os_string()]);
        }
        if let Some(n) = &self.node {
            args.extend(["--node".into(), n.clone().into_os_string()]);
        }
        if prewarm == Prewarming::Off {
            args.extend(["--prewarm".into(), "0".into()]);
        }
        args
    }

    /// Starts fcd `samples` times (fresh data dir each time) to time start-up, keeps the last
    /// one running, and measures its idle RSS.
    pub(crate) fn start_server(&mut self, samples: usize) -> Result<()> {
        if !nix::unistd::geteuid().is_root() {
            self.report.notes.push(
                "not run as root: fcd was started with --isolation none (unjailed instances, nothing prewarmed)"
                    .to_owned(),
            );
        }
        let mut times = Vec::new();
        let args = self.server_args(Prewarming::AsShipped);
        for i in 0..samples.max(1) {
            let dir = self.dir.path().join(format!("fcd-{i}"));
            std::fs::create_dir_all(&dir)?;
            let mut s = FcdServer::start(&self.fcd_bin, &dir, &self.pin, &args)?;
            times.push(s.ready.as_secs_f64() * 1000.0);
            if i + 1 < samples {
                s.stop();
            } else {
                self.api = Some(Api::new(&s)?);
                self.server = Some(s);
            }
        }
        std::thread::sleep(self.plan.idle());
        let s = self.server()?;
        let pid = s.pid;
        let rss = sys::rss_mib(pid)?;
        let network = s.instance_network();
        self.report.env.instance_network = network;
        self.report.server = Some(ServerStats {
            start_to_ready_median_ms: median(&times),
            start_to_ready_ms: times,
            idle_rss_start_mib: rss,
            idle_rss_end_mib: None,
        });
        if self.pin.pinned() {
            let cpus = sys::proc_status(pid, "Cpus_allowed_list").unwrap_or_default();
            self.report
                .notes
                .push(format!("fcd (pid {pid}) Cpus_allowed_list: {cpus}"));
        }
        Ok(())
    }

    /// Deletes every benchmark function, waits for their instances to go, and measures RSS.
    pub(crate) async fn finish_server(&mut self) -> Result<()> {
        if self.warm_deployed {
            self.api()?.delete_function(WARM_CUSTOM).await?;
            if self.python.is_some() {
                self.api()?.delete_function(WARM_PYTHON).await?;
            }
            self.warm_deployed = false;
        }
        let pid = self.server()?.pid;
        // Prewarmed jails stay (they are fcd's children too); instances must be gone.
        self.api()?
            .wait_instances_at_most(0.0, Duration::from_secs(20))
            .await?;
        sys::wait_quiet(pid, Duration::from_secs(5));
        std::thread::sleep(self.plan.idle());
        let rss = sys::rss_mib(pid)?;
        if let Some(s) = self.report.server.as_mut() {
            s.idle_rss_end_mib = Some(rss);
        }
        Ok(())
    }

    /// The client-side cost of signing one InvokeFunction, for reading the latencies.
    pub(crate) fn measure_signing(&mut self) -> Result<()> {
        let target = FcdInvoke::new(
            SocketAddr::from(([127, 0, 0, 1], 9000)),
            &server::creds(),
            SERVICE,
            WARM_CUSTOM,
        );
        let body = Bytes::new();
        let n = self.plan.sign_iterations();
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(target.request(&body)?);
        }
        self.report.env.sign_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
        Ok(())
    }

    pub(crate) fn custom_def(&self, name: &str, concurrency: u32) -> FunctionDef {
        FunctionDef {
            name: name.into(),
            runtime: "custom".into(),
            handler: "index.handler".into(),
            instance_concurrency: concurrency,
            memory_mb: WARM_MEMORY_MB,
            zip_b64: self.fixture_zip.clone(),
            env: Vec::new(),
        }
    }

    fn python_def(&self, name: &str, concurrency: u32) -> FunctionDef {
        FunctionDef {
            name: name.into(),
            runtime: "python3".into(),
            handler: PYTHON_HANDLER.into(),
            instance_concurrency: concurrency,
            memory_mb: WARM_MEMORY_MB,
            zip_b64: self.python_zip.clone(),
            env: Vec::new(),
        }
    }

    /// A cold-start function of `floor`'s runtime, at FC's default memory size.
    fn cold_def(&self, floor: Floor, name: &str) -> FunctionDef {
        let def = match floor {
            Floor::Fixture => self.custom_def(name, 1),
            Floor::Python | Floor::PythonHttp => self.python_def(name, 1),
            Floor::Node => FunctionDef {
                name: name.into(),
                runtime: NODE_RUNTIME.into(),
                handler: NODE_HANDLER.into(),
                instance_concurrency: 1,
                memory_mb: WARM_MEMORY_MB,
                zip_b64: self.node_zip.clone(),
                env: Vec::new(),
            },
        };
        FunctionDef {
            memory_mb: COLD_MEMORY_MB,
            ..def
        }
    }

    async fn deploy_warm(&mut self) -> Result<()> {
        if self.warm_deployed {
            return Ok(());
        }
        self.api()?.create_service().await?;
        let custom = self.custom_def(WARM_CUSTOM, WARM_INSTANCE_CONCURRENCY);
        self.api()?.create_function(&custom).await?;
        if self.python.is_some() {
            let py = self.python_def(WARM_PYTHON, WARM_INSTANCE_CONCURRENCY);
            self.api()?.create_function(&py).await?;
        }
        self.warm_deployed = true;
        Ok(())
    }

    pub(crate) fn fcd_target(&self, function: &str) -> Result<FcdInvoke> {
        Ok(FcdInvoke::new(
            self.server()?.addr,
            &server::creds(),
            SERVICE,
            function,
        ))
    }

    /// Starts a runtime standalone on a free host port, as the floor: spawn → first answer.
    fn standalone(&self, floor: Floor, tag: &str) -> Result<Standalone> {
        let port = sys::free_port()?;
        let root = self.dir.path().join(format!("floor-{tag}"));
        std::fs::create_dir_all(&root)?;
        let stderr = std::fs::File::create(root.join("stderr.log"))?;
        let mut env = floor_env();
        env.push(("FC_SERVER_PORT", port.to_string().into()));
        let mut cmd = match floor {
            Floor::Fixture => {
                let mut c = Command::new(&self.fixture_bin);
                c.current_dir(&root);
                c
            }
            Floor::Python | Floor::PythonHttp => {
                let python = self
                    .python
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("python3 is not available"))?;
                let rt = root.join("runtime");
                let code = root.join("code");
                std::fs::create_dir_all(&rt)?;
                std::fs::create_dir_all(&code)?;
                let bootstrap = rt.join("bootstrap.py");
                std::fs::write(&bootstrap, PYTHON_BOOTSTRAP)?;
                let index = if floor == Floor::PythonHttp {
                    PYTHON_HTTP_INDEX
                } else {
                    PYTHON_INDEX
                };
                std::fs::write(code.join("index.py"), index)?;
                env.push(("FC_FUNC_CODE_PATH", code.clone().into_os_string()));
                env.push(("FC_FUNCTION_HANDLER", PYTHON_HANDLER.into()));
                env.push(("PYTHONUNBUFFERED", "1".into()));
                let mut c = Command::new(python);
                c.args(["-u", "-X", "utf8"])
                    .arg(&bootstrap)
                    .current_dir(&code);
                c
            }
            Floor::Node => {
                let node = self
                    .node
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("node is not available"))?;
                let rt = root.join("runtime");
                let code = root.join("code");
                std::fs::create_dir_all(&rt)?;
                std::fs::create_dir_all(&code)?;
                let bootstrap = rt.join("bootstrap.js");
                std::fs::write(&bootstrap, NODE_BOOTSTRAP)?;
                std::fs::write(code.join("index.js"), NODE_INDEX)?;
                env.push(("FC_FUNC_CODE_PATH", code.clone().into_os_string()));
                env.push(("FC_FUNCTION_HANDLER", NODE_HANDLER.into()));
                env.push(("FC_RUNTIME_VERSION", NODE_RUNTIME.into()));
                // As fcd starts it for a function of COLD_MEMORY_MB: old generation at ¾.
                let mut c = Command::new(node);
                c.arg(format!("--max-old-space-size={}", COLD_MEMORY_MB * 3 / 4))
                    .arg(&bootstrap)
                    .current_dir(&code);
                c
            }
        };
        cmd.env_clear()
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let (child, started) = self.pin.spawn(&mut cmd)?;
        let mut child = Guard(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let answered =
            wait_first_response(addr, floor.handler(), &mut child.0, Duration::from_secs(30))
                .with_context(|| {
                    format!(
                        "standalone {} runtime: {}",
                        floor.runtime(),
                        std::fs::read_to_string(root.join("stderr.log")).unwrap_or_default()
                    )
                })?;
        Ok(Standalone {
            child,
            addr,
            start: answered - started,
        })
    }

    pub(crate) fn spec(
        &self,
        concurrency: usize,
        body: Bytes,
        limit: Limit,
        echo: bool,
    ) -> LoadSpec {
        LoadSpec {
            concurrency,
            warmup: self.plan.warmup(),
            limit,
            body,
            echo,
            cpu_of: Vec::new(),
            cpu_split: Vec::new(),
        }
    }

    /// Warm no-op invocations at several concurrencies, through fcd and direct; for the custom
    /// fixture also behind nginx (when installed), for python3 also behind serverless-offline
    /// (with `--serverless-offline`).
    pub(crate) async fn warm(&mut self) -> Result<()> {
        self.deploy_warm().await?;
        let mut floors = vec![Floor::Fixture];
        if self.python.is_some() {
            floors.push(Floor::Python);
        } else {
            self.report
                .skipped
                .push("warm python3: no python3 interpreter found".into());
        }
        for floor in floors {
            let direct_proc = self.standalone(floor, &format!("warm-{}", floor.runtime()))?;
            let direct = Target::Direct(DirectInvoke::new(
                direct_proc.addr,
                floor.handler(),
                floor.function(),
            )?);
            let via_fcd = Target::Fcd(self.fcd_target(floor.function())?);
            let nginx = match floor {
                Floor::Fixture => self.start_nginx(direct_proc.addr, "warm")?,
                Floor::Python | Floor::PythonHttp | Floor::Node => None,
            };
            let via_nginx = match &nginx {
                Some(n) => Some(Target::Direct(DirectInvoke::new(
                    n.addr,
                    floor.handler(),
                    floor.function(),
                )?)),
                None => None,
            };
            let offline = if floor == Floor::Python && self.plan.serverless_offline {
                Some(self.start_serverless_offline()?)
            } else {
                None
            };
            let via_offline = offline
                .as_ref()
                .map(|o| Target::Plain(PlainPost::new(o.addr, sls::PATH)));
            let server_pid = self.server()?.pid;
            let direct_pid = direct_proc.child.0.id();
            for c in self.plan.warm_concurrency(floor) {
                let spec = self.spec(c, Bytes::new(), self.plan.warm_limit(), false);
                let on = |pids: Vec<u32>| LoadSpec {
                    cpu_of: pids,
                    ..spec.clone()
                };
                let f = load::run(&via_fcd, &on(vec![server_pid]))
                    .await
                    .with_context(|| format!("warm {} c={c} through fcd", floor.runtime()))?;
                let d = load::run(&direct, &on(vec![direct_pid]))
                    .await
                    .with_context(|| format!("warm {} c={c} direct", floor.runtime()))?;
                if let (Some(t), Some(ng)) = (&via_nginx, &nginx) {
                    let n = load::run(t, &on(vec![ng.pid(), direct_pid]))
                        .await
                        .with_context(|| format!("warm {} c={c} through nginx", floor.runtime()))?;
                    self.report
                        .warm_nginx
                        .push(proxy_row(floor.runtime(), c, "nginx", n, &f, &d));
                }
                if let (Some(t), Some(sl)) = (&via_offline, &offline)
                    && SLS_CONCURRENCY.contains(&c)
                {
                    let o = load::run(t, &on(vec![sl.pid()])).await.with_context(|| {
                        format!("warm {} c={c} through serverless-offline", floor.runtime())
                    })?;
                    self.report
                        .warm_serverless_offline
                        .push(crate::report::EmulatorRow {
                            runtime: floor.runtime().into(),
                            concurrency: c,
                            fcd_throughput_ratio: ratio(f.rps, o.rps),
                            stats: o,
                            fcd: f.clone(),
                        });
                }
                self.report.warm.push(warm_row(floor.runtime(), c, f, d));
            }
        }
        if self.pin.pinned() {
            self.note_instance_cpus();
        }
        Ok(())
    }

    /// A burst of [`BURST_CALLS`] concurrent InvokeFunctions to a python3 function with no
    /// instance and the default instanceConcurrency (1), so that as many instances start at
    /// once: the first answer and the last, per sample (a fresh function each).
    pub(crate) async fn burst(&mut self) -> Result<()> {
        if self.python.is_none() {
            self.report
                .skipped
                .push("burst: no python3 interpreter found".into());
            return Ok(());
        }
        self.api()?.create_service().await?;
        let samples = if self.plan.quick { 1 } else { 5 };
        let (mut first, mut all, mut calls) = (Vec::new(), Vec::new(), Vec::new());
        let mut instances = 0.0;
        for i in 0..samples {
            let name = format!("burst-python-{i}");
            let def = FunctionDef {
                memory_mb: COLD_MEMORY_MB,
                ..self.python_def(&name, 1)
            };
            let before = self.api()?.metric(INSTANCES_USED).await?;
            self.api()?.create_function(&def).await?;
            let target = self.fcd_target(&name)?;
            let mut senders = Vec::new();
            for _ in 0..BURST_CALLS {
                senders.push(crate::http::connect(target.addr).await?);
            }
            let t = Instant::now();
            let mut tasks = Vec::new();
            for mut sender in senders {
                let target = target.clone();
                tasks.push(tokio::spawn(async move {
                    let req = target.request(&Bytes::new())?;
                    let reply = send(&mut sender, req).await?;
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    Target::Fcd(target).check(&reply, &Bytes::new(), false)?;
                    anyhow::Ok(ms)
                }));
            }
            let mut sample = Vec::new();
            for task in tasks {
                sample.push(task.await.context("a burst call's task")??);
            }
            if i == 0 {
                instances = self.api()?.metric(INSTANCES_USED).await? - before;
            }
            sample.sort_by(f64::total_cmp);
            first.push(sample[0]);
            all.push(sample[sample.len() - 1]);
            calls.extend(sample);
            self.api()?.delete_function(&name).await?;
            self.api()?
                .wait_instances_at_most(before, Duration::from_secs(30))
                .await?;
            let pid = self.server()?.pid;
            sys::wait_quiet(pid, Duration::from_secs(5));
        }
        self.report.burst = Some(crate::report::BurstResult {
            runtime: Floor::Python.runtime().into(),
            calls: BURST_CALLS,
            first_median_ms: median(&first),
            all_median_ms: median(&all),
            call_median_ms: median(&calls),
            first_ms: first,
            all_ms: all,
            instances,
        });
        Ok(())
    }

    /// nginx in front of `upstream`, or `None` (listed under *Skipped*) where it is not
    /// installed.
    fn start_nginx(&mut self, upstream: SocketAddr, tag: &str) -> Result<Option<Nginx>> {
        let Some(bin) = nginx::find() else {
            let why =
                "nginx column: nginx is not installed (neither /usr/sbin/nginx nor nginx on PATH)";
            if !self.report.skipped.iter().any(|s| s == why) {
                self.report.skipped.push(why.into());
            }
            return Ok(None);
        };
        let dir = self.dir.path().join(format!("nginx-{tag}"));
        Nginx::start(&bin, &dir, upstream, &self.pin)
            .map(Some)
            .with_context(|| format!("starting {} in front of {upstream}", bin.display()))
    }

    fn start_serverless_offline(&mut self) -> Result<sls::Offline> {
        let python = self
            .python
            .clone()
            .ok_or_else(|| anyhow::anyhow!("python3 is not available"))?;
        let node = self.node.clone().ok_or_else(|| {
            anyhow::anyhow!("--serverless-offline needs node (and npm), and none was found")
        })?;
        println!("starting serverless offline…");
        let offline = sls::Offline::start(&self.dir.path().join("sls"), &node, &python, &self.pin)
            .context("starting serverless offline")?;
        self.report.notes.push(format!(
            "serverless-offline: {} (serverless@3, serverless-offline@13.9.0 with their defaults; python3 from {})",
            offline.addr,
            python.display()
        ));
        Ok(offline)
    }

    fn note_instance_cpus(&mut self) {
        let Ok(s) = self.server() else { return };
        let kids = sys::children(s.pid);
        // Instances and prewarmed jails alike: both are started by the server.
        let cpus: Vec<String> = kids
            .iter()
            .map(|p| {
                format!(
                    "{p}: {}",
                    sys::proc_status(*p, "Cpus_allowed_list").unwrap_or_default()
                )
            })
            .collect();
        if !cpus.is_empty() {
            self.report.notes.push(format!(
                "fcd's child processes' (instances' and prewarmed jails') Cpus_allowed_list (pid: CPUs): {}",
                cpus.join(", ")
            ));
        }
    }

    /// Cold starts of every runtime through fcd as shipped (prewarmed jails) and through a
    /// second fcd started with `--prewarm 0`, sampled alternately in the same run, against
    /// each runtime's own start-up.
    pub(crate) async fn cold(&mut self) -> Result<()> {
        self.api()?.create_service().await?;
        let mut floors = vec![Floor::Fixture];
        if self.python.is_some() {
            floors.push(Floor::Python);
        } else {
            self.report
                .skipped
                .push("cold python3: no python3 interpreter found".into());
        }
        if self.node.is_some() {
            floors.push(Floor::Node);
        } else {
            self.report
                .skipped
                .push(format!("cold {NODE_RUNTIME}: no node (Node.js) found"));
        }
        let dir = self.dir.path().join("fcd-prewarm-0");
        std::fs::create_dir_all(&dir)?;
        let args = self.server_args(Prewarming::Off);
        let mut off = FcdServer::start(&self.fcd_bin, &dir, &self.pin, &args)
            .context("starting the second fcd, with --prewarm 0")?;
        let mut off_api = Api::new(&off)?;
        let res = self.cold_on(&floors, &off, &mut off_api).await;
        off.stop();
        res.map_err(|e| e.context(format!("fcd --prewarm 0 log tail:\n{}", off.log_tail())))
    }

    async fn cold_on(
        &mut self,
        floors: &[Floor],
        off: &FcdServer,
        off_api: &mut Api,
    ) -> Result<()> {
        off_api.create_service().await?;
        let (shipped_pid, shipped_addr) = (self.server()?.pid, self.server()?.addr);
        for pid in [shipped_pid, off.pid] {
            sys::wait_quiet(pid, Duration::from_secs(10));
        }
        self.note_prewarming(off_api).await?;
        let n = self.plan.cold_samples();
        let warmups = self.plan.cold_warmups();
        for &floor in floors {
            let rt = floor.runtime();
            let kinds = baseline_kinds(floor);
            let mut shipped = ColdSeries::default();
            let mut bare = ColdSeries::default();
            let mut base: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
            for i in 0..warmups + n {
                let record = i >= warmups;
                // Alternate which server goes first, so neither always follows the other.
                let order = if i % 2 == 0 {
                    [Prewarming::AsShipped, Prewarming::Off]
                } else {
                    [Prewarming::Off, Prewarming::AsShipped]
                };
                for which in order {
                    let name = format!("cold-{rt}-{}-{i}", which.tag()).replace('.', "_");
                    let def = self.cold_def(floor, &name);
                    let (pid, addr, api, series) = match which {
                        Prewarming::AsShipped => (
                            shipped_pid,
                            shipped_addr,
                            self.api.as_mut().context("fcd is not running")?,
                            &mut shipped,
                        ),
                        Prewarming::Off => (off.pid, off.addr, &mut *off_api, &mut bare),
                    };
                    let s = cold_sample(pid, addr, api, &def)
                        .await
                        .with_context(|| format!("cold {rt} through {}", which.label()))?;
                    if record {
                        series.ms.push(s.ms);
                        series.claimed += usize::from(s.claimed);
                        series.unsettled += usize::from(!s.settled);
                        series.gone_ms.push(s.gone_ms);
                        series.settled_ms.push(s.settled_ms);
                    }
                }
                let ms = self
                    .cold_baselines(floor, i)
                    .with_context(|| format!("cold {rt}: the runtime's own start-up"))?;
                if record {
                    for (samples, m) in base.iter_mut().zip(ms) {
                        samples.push(m);
                    }
                }
            }
            for (series, which) in [(&shipped, Prewarming::AsShipped), (&bare, Prewarming::Off)] {
                if series.unsettled > 0 {
                    self.report.notes.push(format!(
                        "cold {rt} through {}: after {} of {} samples fcd's processes did not settle (under 1 ms of CPU in 25 ms) within 5 s; the next sample started anyway",
                        which.label(),
                        series.unsettled,
                        series.ms.len()
                    ));
                }
            }
            let (shipped, bare) = (shipped.stats(), bare.stats());
            let baselines = kinds
                .iter()
                .zip(base)
                .map(|(&(id, what), samples)| {
                    baseline(id, what, samples, shipped.median_ms, bare.median_ms)
                })
                .collect();
            self.report.cold.push(ColdRow {
                runtime: rt.into(),
                saved_by_prewarming_ms: bare.median_ms - shipped.median_ms,
                as_shipped: shipped,
                prewarm_off: bare,
                baselines,
            });
        }
        Ok(())
    }

    /// Records how the two servers prewarm: what `GET /status` says, and what the prewarmed
    /// jails' processes are running while they wait.
    async fn note_prewarming(&mut self, off_api: &mut Api) -> Result<()> {
        let pid = self.server()?.pid;
        let shipped = self.api()?.status().await?;
        let off = off_api.status().await?;
        let ready = |s: &serde_json::Value| s["isolation"]["prewarmed"].as_u64();
        let jailed = shipped["isolation"]["jailed"].as_bool().unwrap_or(false);
        let mut programs: Vec<(String, usize)> = Vec::new();
        for p in sys::blank_jails(pid) {
            match programs.iter_mut().find(|(q, _)| *q == p) {
                Some((_, n)) => *n += 1,
                None => programs.push((p, 1)),
            }
        }
        let programs = programs
            .iter()
            .map(|(p, n)| format!("{p} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        let count = |v: Option<u64>| v.map_or("an unknown number of".into(), |n| n.to_string());
        self.report.notes.push(format!(
            "cold: before the samples, fcd as shipped had {} prewarmed jail(s) ready (GET /status; instances jailed: {jailed}), whose waiting function processes were: {} (`fcd`: a jail that executes the function's command on assignment; an interpreter: started, waiting for its function); fcd --prewarm 0 had {}",
            count(ready(&shipped)),
            if programs.is_empty() { "none" } else { &programs },
            count(ready(&off)),
        ));
        Ok(())
    }

    /// The runtime's own start-up, one sample of each of [`baseline_kinds`], in ms.
    fn cold_baselines(&self, floor: Floor, i: usize) -> Result<Vec<f64>> {
        let standalone = || -> Result<f64> {
            let s = self.standalone(floor, &format!("cold-{}-{i}", floor.runtime()))?;
            Ok(s.start.as_secs_f64() * 1000.0)
        };
        Ok(match floor {
            Floor::Fixture => vec![standalone()?],
            Floor::Python | Floor::PythonHttp => {
                let python = self.python.as_deref().context("python3 is not available")?;
                vec![self.wall_ms(python, &["-c", "pass"])?, standalone()?]
            }
            Floor::Node => {
                let node = self.node.as_deref().context("node is not available")?;
                vec![self.wall_ms(node, &["-e", "0"])?, standalone()?]
            }
        })
    }

    /// Wall time of running `program args` to completion (pinned like the server, in the
    /// floors' environment), in ms.
    fn wall_ms(&self, program: &Path, args: &[&str]) -> Result<f64> {
        let mut cmd = Command::new(program);
        cmd.args(args)
            .env_clear()
            .envs(floor_env())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let (mut child, started) = self.pin.spawn(&mut cmd)?;
        let status = child.wait()?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if !status.success() {
            bail!("{} {} failed: {status}", program.display(), args.join(" "));
        }
        Ok(ms)
    }

    /// Echo bodies of several sizes through the custom fixture, via fcd and direct.
    pub(crate) async fn payload(&mut self) -> Result<()> {
        self.deploy_warm().await?;
        let direct_proc = self.standalone(Floor::Fixture, "payload")?;
        let direct = Target::Direct(DirectInvoke::new(
            direct_proc.addr,
            Floor::Fixture.handler(),
            WARM_CUSTOM,
        )?);
        let via_fcd = Target::Fcd(self.fcd_target(WARM_CUSTOM)?);
        let nginx = self.start_nginx(direct_proc.addr, "payload")?;
        let via_nginx = match &nginx {
            Some(n) => Some(Target::Direct(DirectInvoke::new(
                n.addr,
                Floor::Fixture.handler(),
                WARM_CUSTOM,
            )?)),
            None => None,
        };
        for (label, size, limit) in self.plan.payloads() {
            let body = pseudo_random(size);
            let spec = LoadSpec {
                // Large bodies: one request is warm-up enough.
                warmup: if size > 1024 * 1024 {
                    Duration::ZERO
                } else {
                    self.plan.warmup()
                },
                ..self.spec(1, body, limit, true)
            };
            let sign_ms = match &via_fcd {
                Target::Fcd(t) => sign_cost_ms(t, &spec.body)?,
                Target::Direct(_) | Target::Proxy(_) | Target::DirectHttp(_) | Target::Plain(_) => {
                    0.0
                }
            };
            let f = load::run(&via_fcd, &spec)
                .await
                .with_context(|| format!("payload {label} through fcd"))?;
            let d = load::run(&direct, &spec)
                .await
                .with_context(|| format!("payload {label} direct"))?;
            if let Some(t) = &via_nginx {
                let n = load::run(t, &spec)
                    .await
                    .with_context(|| format!("payload {label} through nginx"))?;
                self.report.payload_nginx.push(PayloadProxyRow {
                    label: label.into(),
                    proxy_share_of_direct: ratio(n.mb_per_s, d.mb_per_s),
                    fcd_over_proxy: ratio(f.mb_per_s, n.mb_per_s),
                    stats: n,
                });
            }
            self.report.payload.push(PayloadRow {
                bytes: size,
                label: label.into(),
                throughput_ratio: ratio(f.mb_per_s, d.mb_per_s),
                client_sign_ms: sign_ms,
                fcd: f,
                direct: d,
            });
        }
        Ok(())
    }

    /// HTTP triggers: a custom and a python3 (WSGI) function, each behind an anonymous HTTP
    /// trigger, reached by plain GET and POST to `/2016-08-15/proxy/{service}/{function}/path?x=1`
    /// and by a signed InvokeFunction, at c=1 and 8, through fcd and straight to the same
    /// runtime standalone.
    pub(crate) async fn http(&mut self) -> Result<()> {
        self.api()?.create_service().await?;
        let mut cases = vec![(Floor::Fixture, HTTP_CUSTOM)];
        if self.python.is_some() {
            cases.push((Floor::PythonHttp, HTTP_PYTHON));
        } else {
            self.report
                .skipped
                .push("http python3: no python3 interpreter found".into());
        }
        let mut deployed: Vec<(&str, bool)> = Vec::new();
        let mut res = Ok(());
        for &(floor, name) in &cases {
            let def = match floor {
                Floor::PythonHttp => FunctionDef {
                    zip_b64: self.python_http_zip.clone(),
                    ..self.python_def(name, WARM_INSTANCE_CONCURRENCY)
                },
                _ => self.custom_def(name, WARM_INSTANCE_CONCURRENCY),
            };
            if let Err(e) = self.api()?.create_function(&def).await {
                res = Err(e);
                break;
            }
            deployed.push((name, false));
            if let Err(e) = self
                .api()?
                .create_http_trigger(name, HTTP_TRIGGER, &["GET", "POST"])
                .await
            {
                res = Err(e);
                break;
            }
            if let Some(d) = deployed.last_mut() {
                d.1 = true;
            }
        }
        if res.is_ok() {
            res = self.http_on(&cases).await;
        }
        // Triggers first: fcd refuses to delete a function that still has one.
        for (name, with_trigger) in deployed {
            let mut gone = Ok(());
            if with_trigger {
                gone = self.api()?.delete_trigger(name, HTTP_TRIGGER).await;
            }
            if gone.is_ok() {
                gone = self.api()?.delete_function(name).await;
            }
            res = res.and(gone.with_context(|| format!("deleting {name}")));
        }
        res
    }

    async fn http_on(&mut self, cases: &[(Floor, &str)]) -> Result<()> {
        let addr = self.server()?.addr;
        let body = pseudo_random(HTTP_BODY_BYTES);
        for &(floor, name) in cases {
            let rt = floor.runtime();
            let direct_proc = self.standalone(floor, &format!("http-{rt}"))?;
            let handler = floor.handler();
            let get = http::Method::GET;
            let post = http::Method::POST;
            let kinds = [
                (
                    "invoke",
                    format!("InvokeFunction, signed ({HTTP_BODY_BYTES} B)"),
                    Target::Fcd(self.fcd_target(name)?),
                    Target::Direct(DirectInvoke::new(direct_proc.addr, handler, name)?),
                    body.clone(),
                ),
                (
                    "get",
                    format!("GET /proxy/…{HTTP_REST}, anonymous"),
                    Target::Proxy(ProxyRequest::new(
                        addr,
                        get.clone(),
                        SERVICE,
                        name,
                        HTTP_REST,
                    )),
                    Target::DirectHttp(DirectHttp::new(
                        direct_proc.addr,
                        get,
                        handler,
                        name,
                        HTTP_REST,
                    )?),
                    Bytes::new(),
                ),
                (
                    "post",
                    format!("POST /proxy/…{HTTP_REST}, anonymous ({HTTP_BODY_BYTES} B)"),
                    Target::Proxy(ProxyRequest::new(
                        addr,
                        post.clone(),
                        SERVICE,
                        name,
                        HTTP_REST,
                    )),
                    Target::DirectHttp(DirectHttp::new(
                        direct_proc.addr,
                        post,
                        handler,
                        name,
                        HTTP_REST,
                    )?),
                    body.clone(),
                ),
            ];
            for c in HTTP_CONCURRENCY {
                let mut invoke_p50 = None;
                for (kind, request, via_fcd, direct, body) in &kinds {
                    let spec = self.spec(c, body.clone(), self.plan.warm_limit(), true);
                    let f = load::run(via_fcd, &spec)
                        .await
                        .with_context(|| format!("http {rt} {kind} c={c} through fcd"))?;
                    let d = load::run(direct, &spec)
                        .await
                        .with_context(|| format!("http {rt} {kind} c={c} direct"))?;
                    if *kind == "invoke" {
                        invoke_p50 = Some(f.p50_us);
                    }
                    self.report.http.push(HttpRow {
                        runtime: rt.into(),
                        concurrency: c,
                        kind: (*kind).into(),
                        request: request.clone(),
                        throughput_ratio: ratio(f.rps, d.rps),
                        p50_overhead_us: f.p50_us - d.p50_us,
                        p50_vs_invoke_us: invoke_p50
                            .filter(|_| *kind != "invoke")
                            .map(|p| f.p50_us - p),
                        fcd: f,
                        direct: d,
                    });
                }
            }
        }
        Ok(())
    }

    /// Asynchronous invocation: measured if the server accepts it (202), else skipped.
    pub(crate) async fn asynchronous(&mut self) -> Result<()> {
        self.api()?.create_service().await?;
        // A function of its own: a backlog of accepted calls must not reach other scenarios.
        let def = self.custom_def(ASYNC_CUSTOM, WARM_INSTANCE_CONCURRENCY);
        self.api()?.create_function(&def).await?;
        let res = self.asynchronous_on(ASYNC_CUSTOM).await;
        let deleted = self.api()?.delete_function(ASYNC_CUSTOM).await;
        res.and(deleted)
    }

    async fn asynchronous_on(&mut self, function: &str) -> Result<()> {
        let mut target = self.fcd_target(function)?;
        target.asynchronous = true;
        let req = target.request(&Bytes::new())?;
        let reply = send(self.api()?.sender().await?, req).await?;
        if reply.status != 202 {
            let code = serde_json::from_slice::<serde_json::Value>(&reply.body)
                .ok()
                .and_then(|v| v["ErrorCode"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let msg = format!(
                "asynchronous invocation is not implemented yet (issue 7): the server answered HTTP {} {code}",
                reply.status
            );
            println!("async: skipped: {msg}");
            self.report.skipped.push(format!("async: {msg}"));
            self.report.asynchronous = Some(AsyncResult {
                status: "skipped".into(),
                detail: msg,
                accepted: None,
                accepted_c64: None,
                drains: Vec::new(),
                sync_c8: None,
            });
            return Ok(());
        }
        let spec = self.spec(8, Bytes::new(), self.plan.warm_limit(), false);
        let stats = load::run(&Target::Fcd(target.clone()), &spec)
            .await
            .context("async invocations")?;
        let spec64 = self.spec(64, Bytes::new(), self.plan.warm_limit(), false);
        let stats64 = load::run(&Target::Fcd(target.clone()), &spec64)
            .await
            .context("async invocations at c=64")?;
        // What those accepts left runs first: each drain below starts from an empty queue.
        self.wait_drained(Duration::from_secs(180)).await?;
        let mut drains = Vec::new();
        for n in self.plan.async_backlogs() {
            drains.push(self.drain(&target, n).await?);
        }
        // The same function called synchronously, in the same run, as the yardstick.
        let mut sync_target = target;
        sync_target.asynchronous = false;
        let spec = self.spec(8, Bytes::new(), self.plan.warm_limit(), false);
        let sync8 = load::run(&Target::Fcd(sync_target), &spec)
            .await
            .context("sync invocations of the async function at c=8")?;
        for d in &mut drains {
            d.drain_vs_sync = d.drain_per_s.map(|r| r / sync8.rps);
        }
        self.report.asynchronous = Some(AsyncResult {
            status: "measured".into(),
            detail: "the server accepted asynchronous invocations (HTTP 202 once durably queued)"
                .into(),
            accepted: Some(stats),
            accepted_c64: Some(stats64),
            drains,
            sync_c8: Some(sync8),
        });
        Ok(())
    }
}

impl Bench {
    async fn wait_drained(&mut self, limit: Duration) -> Result<()> {
        wait_drained(self.api()?, limit).await
    }

    async fn drain(&mut self, target: &FcdInvoke, n: usize) -> Result<DrainRow> {
        drain_backlog(self.api()?, target, n).await
    }
}

/// Where `fcd_invocations_total` is read: one server, or the sum over a cluster's nodes.
pub(crate) trait Invocations {
    async fn invocations_total(&mut self) -> Result<f64>;
}

impl Invocations for Api {
    async fn invocations_total(&mut self) -> Result<f64> {
        Api::invocations_total(self).await
    }
}

impl Invocations for Vec<Api> {
    async fn invocations_total(&mut self) -> Result<f64> {
        let mut sum = 0.0;
        for api in self.iter_mut() {
            sum += Api::invocations_total(api).await?;
        }
        Ok(sum)
    }
}

/// Waits until `fcd_invocations_total` has not moved for half a second (the accepted
/// backlog of no-op calls has run).
pub(crate) async fn wait_drained<C: Invocations>(counter: &mut C, limit: Duration) -> Result<()> {
    let start = Instant::now();
    let mut last = counter.invocations_total().await?;
    let mut last_change = Instant::now();
    while last_change.elapsed() < Duration::from_millis(500) {
        if start.elapsed() > limit {
            bail!("the async backlog was still running after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = counter.invocations_total().await?;
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
    Ok(())
}

/// Accepts about `n` no-op calls at c=64 as fast as the server takes them, then watches
/// `fcd_invocations_total` until every accepted call has run: end to end (first accept to
/// the last call run) and while draining (from the last accept on). Fails if not every
/// accepted call runs within a few minutes.
pub(crate) async fn drain_backlog<C: Invocations>(
    counter: &mut C,
    target: &FcdInvoke,
    n: usize,
) -> Result<DrainRow> {
    const C: usize = 64;
    let per_worker = n.div_ceil(C).max(1);
    let spec = LoadSpec {
        concurrency: C,
        // One unrecorded request per worker, then `per_worker` recorded ones.
        warmup: Duration::ZERO,
        limit: Limit::Count(per_worker),
        body: Bytes::new(),
        echo: false,
        cpu_of: Vec::new(),
        cpu_split: Vec::new(),
    };
    let accepted = C * (per_worker + 1);
    let base = counter.invocations_total().await?;
    let t0 = Instant::now();
    let stats = load::run(&Target::Fcd(target.clone()), &spec)
        .await
        .with_context(|| format!("accepting a backlog of {accepted} async calls"))?;
    let accept_s = t0.elapsed().as_secs_f64();
    let ran_at_accept_end = counter.invocations_total().await? - base;
    let t_accepted = Instant::now();
    let limit = Duration::from_secs(300);
    loop {
        let ran = counter.invocations_total().await? - base;
        if ran >= accepted as f64 {
            break;
        }
        if t_accepted.elapsed() > limit {
            bail!("only {ran} of {accepted} accepted async calls ran within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let end_to_end_s = t0.elapsed().as_secs_f64();
    let drain_s = t_accepted.elapsed().as_secs_f64().max(1e-3);
    let backlog = (accepted as f64 - ran_at_accept_end).max(0.0);
    Ok(DrainRow {
        accepted,
        accept_per_s: stats.rps,
        accept_s,
        backlog_at_accept_end: backlog,
        drain_s,
        // Fewer than one per connection left: no rate worth the name.
        drain_per_s: (backlog >= C as f64).then(|| backlog / drain_s),
        end_to_end_s,
        end_to_end_per_s: accepted as f64 / end_to_end_s,
        drain_vs_sync: None,
    })
}

impl Prewarming {
    fn tag(self) -> &'static str {
        match self {
            Prewarming::AsShipped => "shipped",
            Prewarming::Off => "noprewarm",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Prewarming::AsShipped => "fcd as shipped (prewarmed jails)",
            Prewarming::Off => "fcd --prewarm 0",
        }
    }
}

/// The environment every floor process starts with, as an instance starts with FC's and not
/// the harness's: variables such as `NODE_EXTRA_CA_CERTS` (which makes node read a whole CA
/// bundle, ≈ 40 ms, before running anything) would otherwise inflate the baselines.
pub(crate) fn floor_env() -> Vec<(&'static str, OsString)> {
    vec![
        (
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
        ),
        ("HOME", "/tmp".into()),
        ("LANG", "C.UTF-8".into()),
    ]
}

/// The runtime's own start-up the cold scenario compares with: (id, what), in the order
/// [`Bench::cold_baselines`] measures them.
fn baseline_kinds(floor: Floor) -> &'static [(&'static str, &'static str)] {
    match floor {
        Floor::Fixture => &[(
            "standalone",
            "fixture standalone: spawn → first /invoke answered",
        )],
        Floor::Python | Floor::PythonHttp => &[
            (
                "interpreter",
                "`python3 -c pass` wall time (environment: PATH, HOME, LANG)",
            ),
            (
                "standalone",
                "bootstrap standalone (`python3 -u -X utf8 bootstrap.py`): spawn → first /invoke answered",
            ),
        ],
        Floor::Node => &[
            (
                "interpreter",
                "`node -e 0` wall time (environment: PATH, HOME, LANG)",
            ),
            (
                "standalone",
                "bootstrap standalone (`node --max-old-space-size=96 bootstrap.js`): spawn → first /invoke answered",
            ),
        ],
    }
}

/// One cold InvokeFunction on a freshly created function of the server `pid` at `addr`
/// (create, then InvokeFunction timed until its answer), deleted afterwards. Returns once the
/// server is back where it was: no more instances and no more child processes than before
/// (a claimed prewarmed jail has been replaced by a new one), and quiet.
async fn cold_sample(
    pid: u32,
    addr: SocketAddr,
    api: &mut Api,
    def: &FunctionDef,
) -> Result<ColdSample> {
    let before = sys::children(pid);
    let instances_before = api.metric(INSTANCES_USED).await?;
    let target = FcdInvoke::new(addr, &server::creds(), SERVICE, &def.name);
    api.create_function(def).await?;
    let sender = api.sender().await?;
    let t = Instant::now();
    let req = target.request(&Bytes::new())?;
    let reply = send(sender, req).await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    Target::Fcd(target)
        .check(&reply, &Bytes::new(), false)
        .with_context(|| format!("cold invoke of {}", def.name))?;
    let deleting = Instant::now();
    api.delete_function(&def.name).await?;
    api.wait_instances_at_most(instances_before, Duration::from_secs(20))
        .await?;
    let gone_ms = deleting.elapsed().as_secs_f64() * 1000.0;
    sys::wait_children_count(pid, before.len(), Duration::from_secs(20))?;
    let settled = sys::wait_quiet(pid, Duration::from_secs(5));
    let settled_ms = deleting.elapsed().as_secs_f64() * 1000.0;
    let after = sys::children(pid);
    Ok(ColdSample {
        ms,
        claimed: before.iter().any(|p| !after.contains(p)),
        settled,
        gone_ms,
        settled_ms,
    })
}

/// Median time to build and sign one InvokeFunction carrying `body` (what an SDK spends).
fn sign_cost_ms(target: &FcdInvoke, body: &Bytes) -> Result<f64> {
    let mut samples = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        std::hint::black_box(target.request(body)?);
        samples.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(median(&samples))
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn warm_row(runtime: &str, c: usize, f: LoadStats, d: LoadStats) -> WarmRow {
    WarmRow {
        runtime: runtime.into(),
        concurrency: c,
        latency_ratio: ratio(f.p50_us, d.p50_us),
        throughput_ratio: ratio(f.rps, d.rps),
        p50_overhead_us: f.p50_us - d.p50_us,
        fcd: f,
        direct: d,
    }
}

/// The nginx (or other proxy) column of a warm row: `p` in front of the runtime `d` measured
/// directly, beside fcd's `f`.
fn proxy_row(
    runtime: &str,
    c: usize,
    proxy: &str,
    p: LoadStats,
    f: &LoadStats,
    d: &LoadStats,
) -> ProxyRow {
    let proxy_overhead_us = p.p50_us - d.p50_us;
    let fcd_overhead_us = f.p50_us - d.p50_us;
    ProxyRow {
        runtime: runtime.into(),
        concurrency: c,
        proxy: proxy.into(),
        direct_p50_us: d.p50_us,
        fcd_p50_us: f.p50_us,
        fcd_rps: f.rps,
        proxy_overhead_us,
        fcd_overhead_us,
        overhead_ratio: ratio(fcd_overhead_us, proxy_overhead_us),
        throughput_ratio: ratio(f.rps, p.rps),
        stats: p,
    }
}

fn baseline(id: &str, what: &str, samples: Vec<f64>, shipped: f64, off: f64) -> Baseline {
    let m = median(&samples);
    Baseline {
        id: id.into(),
        what: what.into(),
        median_ms: m,
        samples_ms: samples,
        as_shipped_minus_baseline_ms: shipped - m,
        prewarm_off_minus_baseline_ms: off - m,
    }
}

/// Incompressible, deterministic bytes (xorshift64).
fn pseudo_random(n: usize) -> Bytes {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(n);
    Bytes::from(v)
}

/// The real interpreter behind `python3` (resolving shims such as pyenv's), if any.
pub(crate) fn find_python() -> Option<(PathBuf, String)> {
    let exe = sys::output_of("python3", &["-c", "import sys; print(sys.executable)"])?;
    let exe = PathBuf::from(exe);
    if !Path::new(&exe).is_file() {
        return None;
    }
    let version = sys::output_of(&exe.to_string_lossy(), &["--version"])?;
    Some((exe, version))
}

/// The real `node` behind `node` (resolving shims such as nvm's), if any, and its version.
pub(crate) fn find_node() -> Option<(PathBuf, String)> {
    let out = sys::output_of(
        "node",
        &[
            "-e",
            "console.log(require('fs').realpathSync(process.execPath)); console.log(process.version)",
        ],
    )?;
    let mut lines = out.lines();
    let exe = PathBuf::from(lines.next()?.trim());
    let version = lines.next()?.trim().to_owned();
    exe.is_file().then(|| (exe, format!("Node.js {version}")))
}
