//! The scenarios: warm, cold, payload and async invocations, each measured through fcd and
//! against a floor (the same runtime process, standalone, called directly).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use bytes::Bytes;

use crate::http::{DirectInvoke, FcdInvoke, Target, send, wait_first_response};
use crate::load::{self, Limit, LoadSpec, LoadStats, median};
use crate::report::{AsyncResult, Baseline, ColdRow, PayloadRow, Report, ServerStats, WarmRow};
use crate::server::{self, Api, FcdServer, FunctionDef, SERVICE};
use crate::sys::{self, Guard, Pinning};

/// The Python bootstrap fcd runs its python3 functions with; the python floor runs it alone.
const PYTHON_BOOTSTRAP: &str = include_str!("../../fcd-runtime/src/runtimes/python/bootstrap.py");
/// The python3 function: returns the event, so an empty body is a no-op and the payload echoes.
const PYTHON_INDEX: &str = "def handler(event, context):\n    return event\n";
const PYTHON_HANDLER: &str = "index.handler";

const WARM_CUSTOM: &str = "warm-custom";
const WARM_PYTHON: &str = "warm-python";
const ASYNC_CUSTOM: &str = "async-custom";
/// One instance serves every worker, as the single standalone floor process does.
const WARM_INSTANCE_CONCURRENCY: u32 = 100;

/// How much of everything to do.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) quick: bool,
    /// Overrides how long time-bound measurements last.
    pub(crate) duration: Option<Duration>,
    /// The warm scenario's concurrencies.
    pub(crate) concurrency: Vec<usize>,
}

impl Plan {
    fn warmup(&self) -> Duration {
        if self.quick {
            Duration::from_millis(30)
        } else {
            Duration::from_millis(500)
        }
    }

    fn warm_limit(&self) -> Limit {
        if let Some(d) = self.duration {
            Limit::Time(d)
        } else if self.quick {
            Limit::Time(Duration::from_millis(120))
        } else {
            Limit::Time(Duration::from_secs(5))
        }
    }

    fn cold_samples(&self) -> usize {
        if self.quick { 1 } else { 20 }
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

    fn sign_iterations(&self) -> usize {
        if self.quick { 200 } else { 5000 }
    }
}

/// Which standalone runtime process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Floor {
    Fixture,
    Python,
}

impl Floor {
    fn runtime(self) -> &'static str {
        match self {
            Floor::Fixture => "custom",
            Floor::Python => "python3",
        }
    }

    fn function(self) -> &'static str {
        match self {
            Floor::Fixture => WARM_CUSTOM,
            Floor::Python => WARM_PYTHON,
        }
    }

    fn handler(self) -> &'static str {
        match self {
            Floor::Fixture => "index.handler",
            Floor::Python => PYTHON_HANDLER,
        }
    }
}

/// A standalone runtime process and where it listens.
struct Standalone {
    _child: Guard,
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
    pub(crate) dir: tempfile::TempDir,
    pub(crate) server: Option<FcdServer>,
    api: Option<Api>,
    fixture_zip: String,
    python_zip: String,
    warm_deployed: bool,
    pub(crate) report: Report,
}

impl Bench {
    pub(crate) fn new(
        plan: Plan,
        pin: Pinning,
        fcd_bin: PathBuf,
        fixture_bin: PathBuf,
        python: Option<PathBuf>,
        report: Report,
    ) -> Result<Bench> {
        let fixture = std::fs::read(&fixture_bin)
            .with_context(|| format!("reading the fixture {}", fixture_bin.display()))?;
        let fixture_zip = server::zip_b64(&[("bootstrap", &fixture, 0o755)])?;
        let python_zip = server::zip_b64(&[("index.py", PYTHON_INDEX.as_bytes(), 0o644)])?;
        Ok(Bench {
            plan,
            pin,
            fcd_bin,
            fixture_bin,
            python,
            dir: tempfile::Builder::new().prefix("fcd-bench-").tempdir()?,
            server: None,
            api: None,
            fixture_zip,
            python_zip,
            warm_deployed: false,
            report,
        })
    }

    fn server(&self) -> Result<&FcdServer> {
        self.server
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("fcd is not running"))
    }

    fn api(&mut self) -> Result<&mut Api> {
        self.api
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("fcd is not running"))
    }

    /// Starts fcd `samples` times (fresh data dir each time) to time start-up, keeps the last
    /// one running, and measures its idle RSS.
    pub(crate) fn start_server(&mut self, samples: usize) -> Result<()> {
        let mut times = Vec::new();
        for i in 0..samples.max(1) {
            let dir = self.dir.path().join(format!("fcd-{i}"));
            std::fs::create_dir_all(&dir)?;
            let mut s = FcdServer::start(&self.fcd_bin, &dir, &self.pin, self.python.as_deref())?;
            times.push(s.ready.as_secs_f64() * 1000.0);
            if i + 1 < samples {
                s.stop();
            } else {
                self.api = Some(Api::new(s.addr)?);
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
        sys::wait_children(pid, &[], Duration::from_secs(20))?;
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

    fn custom_def(&self, name: &str, concurrency: u32) -> FunctionDef {
        FunctionDef {
            name: name.into(),
            runtime: "custom".into(),
            handler: "index.handler".into(),
            instance_concurrency: concurrency,
            zip_b64: self.fixture_zip.clone(),
        }
    }

    fn python_def(&self, name: &str, concurrency: u32) -> FunctionDef {
        FunctionDef {
            name: name.into(),
            runtime: "python3".into(),
            handler: PYTHON_HANDLER.into(),
            instance_concurrency: concurrency,
            zip_b64: self.python_zip.clone(),
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

    fn fcd_target(&self, function: &str) -> Result<FcdInvoke> {
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
        let mut env: Vec<(&str, std::ffi::OsString)> = vec![
            (
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            ),
            ("HOME", "/tmp".into()),
            ("LANG", "C.UTF-8".into()),
            ("FC_SERVER_PORT", port.to_string().into()),
        ];
        let mut cmd = match floor {
            Floor::Fixture => {
                let mut c = Command::new(&self.fixture_bin);
                c.current_dir(&root);
                c
            }
            Floor::Python => {
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
                std::fs::write(code.join("index.py"), PYTHON_INDEX)?;
                env.push(("FC_FUNC_CODE_PATH", code.clone().into_os_string()));
                env.push(("FC_FUNCTION_HANDLER", PYTHON_HANDLER.into()));
                env.push(("PYTHONUNBUFFERED", "1".into()));
                let mut c = Command::new(python);
                c.args(["-u", "-X", "utf8"])
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
            _child: child,
            addr,
            start: answered - started,
        })
    }

    fn spec(&self, concurrency: usize, body: Bytes, limit: Limit, echo: bool) -> LoadSpec {
        LoadSpec {
            concurrency,
            warmup: self.plan.warmup(),
            limit,
            body,
            echo,
        }
    }

    /// Warm no-op invocations at several concurrencies, through fcd and direct.
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
            for c in self.plan.concurrency.clone() {
                let spec = self.spec(c, Bytes::new(), self.plan.warm_limit(), false);
                let f = load::run(&via_fcd, &spec)
                    .await
                    .with_context(|| format!("warm {} c={c} through fcd", floor.runtime()))?;
                let d = load::run(&direct, &spec)
                    .await
                    .with_context(|| format!("warm {} c={c} direct", floor.runtime()))?;
                self.report.warm.push(warm_row(floor.runtime(), c, f, d));
            }
        }
        if self.pin.pinned() {
            self.note_instance_cpus();
        }
        Ok(())
    }

    fn note_instance_cpus(&mut self) {
        let Ok(s) = self.server() else { return };
        let kids = sys::children(s.pid);
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
                "instances' Cpus_allowed_list (pid: CPUs): {}",
                cpus.join(", ")
            ));
        }
    }

    /// One cold InvokeFunction on a freshly created function; deletes it afterwards.
    async fn cold_sample(&mut self, def: &FunctionDef) -> Result<f64> {
        let pid = self.server()?.pid;
        let before = sys::children(pid);
        let target = self.fcd_target(&def.name)?;
        let api = self.api()?;
        api.create_function(def).await?;
        let sender = api.sender().await?;
        let t = Instant::now();
        let req = target.request(&Bytes::new())?;
        let reply = send(sender, req).await?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        Target::Fcd(target.clone())
            .check(&reply, &Bytes::new(), false)
            .with_context(|| format!("cold invoke of {}", def.name))?;
        api.delete_function(&def.name).await?;
        sys::wait_children(pid, &before, Duration::from_secs(20))?;
        Ok(ms)
    }

    /// Cold starts through fcd against the runtimes' own start-up.
    pub(crate) async fn cold(&mut self) -> Result<()> {
        self.api()?.create_service().await?;
        let n = self.plan.cold_samples();

        let mut fcd_ms = Vec::new();
        let mut alone_ms = Vec::new();
        for i in 0..n {
            let name = format!("cold-custom-{i}");
            let def = self.custom_def(&name, 1);
            fcd_ms.push(self.cold_sample(&def).await?);
            let s = self.standalone(Floor::Fixture, &format!("cold-{i}"))?;
            alone_ms.push(s.start.as_secs_f64() * 1000.0);
        }
        let fcd_median = median(&fcd_ms);
        self.report.cold.push(ColdRow {
            runtime: "custom".into(),
            fcd_median_ms: fcd_median,
            fcd_samples_ms: fcd_ms,
            baselines: vec![baseline(
                "fixture standalone: spawn → first /invoke answered",
                alone_ms,
                fcd_median,
            )],
        });

        let Some(python) = self.python.clone() else {
            self.report
                .skipped
                .push("cold python3: no python3 interpreter found".into());
            return Ok(());
        };
        let mut fcd_ms = Vec::new();
        let mut pass_ms = Vec::new();
        let mut alone_ms = Vec::new();
        for i in 0..n {
            let name = format!("cold-python-{i}");
            let def = self.python_def(&name, 1);
            fcd_ms.push(self.cold_sample(&def).await?);
            let mut cmd = Command::new(&python);
            cmd.args(["-c", "pass"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let (mut child, started) = self.pin.spawn(&mut cmd)?;
            let status = child.wait()?;
            pass_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            if !status.success() {
                bail!("python3 -c pass failed: {status}");
            }
            let s = self.standalone(Floor::Python, &format!("cold-py-{i}"))?;
            alone_ms.push(s.start.as_secs_f64() * 1000.0);
        }
        let fcd_median = median(&fcd_ms);
        self.report.cold.push(ColdRow {
            runtime: "python3".into(),
            fcd_median_ms: fcd_median,
            fcd_samples_ms: fcd_ms,
            baselines: vec![
                baseline("`python3 -c pass` wall time", pass_ms, fcd_median),
                baseline(
                    "bootstrap standalone: spawn → first /invoke answered",
                    alone_ms,
                    fcd_median,
                ),
            ],
        });
        Ok(())
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
                Target::Direct(_) => 0.0,
            };
            let f = load::run(&via_fcd, &spec)
                .await
                .with_context(|| format!("payload {label} through fcd"))?;
            let d = load::run(&direct, &spec)
                .await
                .with_context(|| format!("payload {label} direct"))?;
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
                completions_per_s: None,
            });
            return Ok(());
        }
        let spec = self.spec(8, Bytes::new(), self.plan.warm_limit(), false);
        let stats = load::run(&Target::Fcd(target.clone()), &spec)
            .await
            .context("async invocations")?;
        let spec64 = self.spec(64, Bytes::new(), self.plan.warm_limit(), false);
        let stats64 = load::run(&Target::Fcd(target), &spec64)
            .await
            .context("async invocations at c=64")?;
        let completions = self.drain_rate().await?;
        self.report.asynchronous = Some(AsyncResult {
            status: "measured".into(),
            detail: "the server accepted asynchronous invocations (HTTP 202; the calls run later, off the measured path)".into(),
            accepted: Some(stats),
            accepted_c64: Some(stats64),
            completions_per_s: completions,
        });
        Ok(())
    }
}

impl Bench {
    /// Watches `fcd_invocations_total` while the accepted backlog runs: the rate at which it
    /// rises until it settles is the end-to-end async execution rate. Bounded to a minute.
    async fn drain_rate(&mut self) -> Result<Option<f64>> {
        let start = Instant::now();
        let first = self.api()?.invocations_total().await?;
        let mut last = first;
        let mut last_change = start;
        while start.elapsed() < Duration::from_secs(60) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let now = self.api()?.invocations_total().await?;
            if now > last {
                last = now;
                last_change = Instant::now();
            } else if last_change.elapsed() > Duration::from_millis(500) {
                break;
            }
        }
        let secs = last_change.duration_since(start).as_secs_f64();
        Ok((last > first && secs > 0.0).then(|| (last - first) / secs))
    }
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

fn baseline(what: &str, samples: Vec<f64>, fcd_median: f64) -> Baseline {
    let m = median(&samples);
    Baseline {
        what: what.into(),
        median_ms: m,
        samples_ms: samples,
        fcd_minus_baseline_ms: fcd_median - m,
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
