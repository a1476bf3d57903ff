//! What a run measured, as JSON and as a Markdown report.

use std::fmt::Write as _;

use serde::Serialize;

use crate::cluster::{self, FCD, GENERATOR, NATS, NGINX, POSTGRES};
use crate::load::{CpuShare, LoadStats};

#[derive(Debug, Default, Serialize)]
pub(crate) struct Env {
    pub(crate) date: String,
    pub(crate) git_commit: Option<String>,
    pub(crate) cpus: usize,
    pub(crate) cpu_model: Option<String>,
    pub(crate) kernel: String,
    pub(crate) fcd_binary: String,
    pub(crate) fcd_profile: String,
    pub(crate) harness_profile: String,
    pub(crate) python: Option<String>,
    pub(crate) node: Option<String>,
    /// The wasm scenarios' reference: `wasmtime --version` and where it came from.
    pub(crate) wasmtime: Option<String>,
    pub(crate) instance_network: Option<String>,
    /// Mean client-side cost of signing one empty InvokeFunction request.
    pub(crate) sign_us: f64,
    /// `/proc/loadavg` when the run started and when it ended: other work on the machine
    /// skews every number.
    pub(crate) loadavg_start: Option<String>,
    pub(crate) loadavg_end: Option<String>,
    /// CPU time that other processes took during the run (noise in every number).
    pub(crate) foreign_load: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct ServerStats {
    /// Spawn → `listen-addr` present and a TCP connect succeeded, one per start.
    pub(crate) start_to_ready_ms: Vec<f64>,
    pub(crate) start_to_ready_median_ms: f64,
    /// VmRSS after the idle period following start-up (no instance exists).
    pub(crate) idle_rss_start_mib: f64,
    /// VmRSS after the run, once every function was deleted and its instances were gone.
    pub(crate) idle_rss_end_mib: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct WarmRow {
    pub(crate) runtime: String,
    pub(crate) concurrency: usize,
    pub(crate) fcd: LoadStats,
    pub(crate) direct: LoadStats,
    /// fcd p50 / direct p50.
    pub(crate) latency_ratio: f64,
    /// fcd req/s / direct req/s.
    pub(crate) throughput_ratio: f64,
    /// fcd p50 − direct p50.
    pub(crate) p50_overhead_us: f64,
}

/// The warm scenario's third column: the same standalone runtime behind another server
/// (nginx as a bare reverse proxy), beside fcd and direct at the same concurrency.
#[derive(Debug, Serialize)]
pub(crate) struct ProxyRow {
    pub(crate) runtime: String,
    pub(crate) concurrency: usize,
    /// What stands in front of the runtime (`nginx`).
    pub(crate) proxy: String,
    pub(crate) stats: LoadStats,
    pub(crate) direct_p50_us: f64,
    pub(crate) fcd_p50_us: f64,
    pub(crate) fcd_rps: f64,
    /// proxy p50 − direct p50.
    pub(crate) proxy_overhead_us: f64,
    /// fcd p50 − direct p50.
    pub(crate) fcd_overhead_us: f64,
    /// fcd's p50 overhead / the proxy's.
    pub(crate) overhead_ratio: f64,
    /// fcd req/s / the proxy's req/s.
    pub(crate) throughput_ratio: f64,
}

/// The payload scenario's nginx column for one body size.
#[derive(Debug, Serialize)]
pub(crate) struct PayloadProxyRow {
    pub(crate) label: String,
    pub(crate) stats: LoadStats,
    /// nginx MB/s / direct MB/s.
    pub(crate) proxy_share_of_direct: f64,
    /// fcd MB/s / nginx MB/s.
    pub(crate) fcd_over_proxy: f64,
}

/// A python3 no-op behind serverless-offline (the local emulator of AWS Lambda and API
/// Gateway), beside the same function through fcd at the same concurrency.
#[derive(Debug, Serialize)]
pub(crate) struct EmulatorRow {
    pub(crate) runtime: String,
    pub(crate) concurrency: usize,
    pub(crate) stats: LoadStats,
    pub(crate) fcd: LoadStats,
    /// fcd req/s / serverless-offline req/s.
    pub(crate) fcd_throughput_ratio: f64,
}

/// A burst of concurrent calls to a function with no instance and instanceConcurrency 1.
#[derive(Debug, Serialize)]
pub(crate) struct BurstResult {
    pub(crate) runtime: String,
    pub(crate) calls: usize,
    /// Per sample: the first answer, after the calls were sent together.
    pub(crate) first_ms: Vec<f64>,
    /// Per sample: the last answer (every call answered).
    pub(crate) all_ms: Vec<f64>,
    pub(crate) first_median_ms: f64,
    pub(crate) all_median_ms: f64,
    /// Median over every call of every sample.
    pub(crate) call_median_ms: f64,
    /// Instances fcd had after the first sample's calls (`fcd_budget_instances_used`).
    pub(crate) instances: f64,
}

/// A runtime's own start-up, without fcd.
#[derive(Debug, Serialize)]
pub(crate) struct Baseline {
    /// `standalone` (the runtime's server, spawn → first answered `POST /invoke`) or
    /// `interpreter` (the bare interpreter's start and exit).
    pub(crate) id: String,
    pub(crate) what: String,
    pub(crate) median_ms: f64,
    pub(crate) samples_ms: Vec<f64>,
    /// The cold median through fcd as shipped minus this median.
    pub(crate) as_shipped_minus_baseline_ms: f64,
    /// The cold median through fcd --prewarm 0 minus this median.
    pub(crate) prewarm_off_minus_baseline_ms: f64,
}

/// One server's cold starts of one runtime.
#[derive(Debug, Serialize)]
pub(crate) struct ColdStats {
    /// InvokeFunction → response for a function with no instance, one per fresh function.
    pub(crate) samples_ms: Vec<f64>,
    pub(crate) median_ms: f64,
    /// Samples whose instance was a prewarmed jail (seen from outside: a jail that was
    /// waiting before the sample was gone after it).
    pub(crate) prewarmed_jail_claimed: usize,
    /// Median time from DeleteFunction sent to the instance's budget given back (fcd does
    /// that once the instance's processes are gone). Not part of the cold start.
    pub(crate) instance_gone_after_delete_ms: f64,
    /// Median time from DeleteFunction sent to the server settled again: no more processes
    /// than before the sample (a claimed prewarmed jail replaced) and under 1 ms of CPU in
    /// 25 ms (the window included).
    pub(crate) settled_after_delete_ms: f64,
}

#[derive(Debug, Serialize)]
pub(crate) struct ColdRow {
    pub(crate) runtime: String,
    /// fcd as shipped: `--prewarm` at its default.
    pub(crate) as_shipped: ColdStats,
    /// The same fcd with `--prewarm 0`, sampled alternately in the same run.
    pub(crate) prewarm_off: ColdStats,
    /// `prewarm_off` median − `as_shipped` median.
    pub(crate) saved_by_prewarming_ms: f64,
    pub(crate) baselines: Vec<Baseline>,
}

impl ColdRow {
    fn baseline(&self, id: &str) -> Option<&Baseline> {
        self.baselines.iter().find(|b| b.id == id)
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct PayloadRow {
    pub(crate) bytes: usize,
    pub(crate) label: String,
    pub(crate) fcd: LoadStats,
    pub(crate) direct: LoadStats,
    /// fcd MB/s / direct MB/s.
    pub(crate) throughput_ratio: f64,
    /// Client-side signing of one request of this size (part of every fcd latency).
    pub(crate) client_sign_ms: f64,
}

/// One kind of request to a function with an anonymous HTTP trigger, through fcd and
/// straight to the same runtime.
#[derive(Debug, Serialize)]
pub(crate) struct HttpRow {
    pub(crate) runtime: String,
    pub(crate) concurrency: usize,
    /// `invoke` (a signed InvokeFunction), `get` or `post` (plain requests to the trigger's
    /// `/proxy/` URL).
    pub(crate) kind: String,
    /// What was sent, for the report.
    pub(crate) request: String,
    pub(crate) fcd: LoadStats,
    pub(crate) direct: LoadStats,
    /// fcd req/s / direct req/s.
    pub(crate) throughput_ratio: f64,
    /// fcd p50 − direct p50.
    pub(crate) p50_overhead_us: f64,
    /// This row's fcd p50 − the InvokeFunction row's fcd p50 (same runtime and c).
    pub(crate) p50_vs_invoke_us: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AsyncResult {
    /// `skipped` or `measured`.
    pub(crate) status: String,
    pub(crate) detail: String,
    pub(crate) accepted: Option<LoadStats>,
    /// The same at c=64, where many accepts share each durable commit.
    pub(crate) accepted_c64: Option<LoadStats>,
    /// Backlogs of accepted no-op calls, timed until every one of them ran.
    pub(crate) drains: Vec<DrainRow>,
    /// The same function called synchronously at c=8, in the same run.
    pub(crate) sync_c8: Option<LoadStats>,
}

/// One backlog of accepted async calls and how fast it ran.
#[derive(Debug, Serialize)]
pub(crate) struct DrainRow {
    /// Calls accepted (HTTP 202) at c=64.
    pub(crate) accepted: usize,
    pub(crate) accept_per_s: f64,
    pub(crate) accept_s: f64,
    /// Accepted calls not yet run when the last accept was answered.
    pub(crate) backlog_at_accept_end: f64,
    /// From the last accept until every accepted call ran.
    pub(crate) drain_s: f64,
    /// `None` when too few were left to time (the calls ran about as fast as they came).
    pub(crate) drain_per_s: Option<f64>,
    /// From the first accept until every accepted call ran.
    pub(crate) end_to_end_s: f64,
    pub(crate) end_to_end_per_s: f64,
    /// `drain_per_s` / sync c=8 req/s of the same function.
    pub(crate) drain_vs_sync: Option<f64>,
}

/// One path to the wasm component at one concurrency: `wasmtime serve`, or fcd's
/// InvokeFunction or HTTP trigger.
#[derive(Debug, Serialize)]
pub(crate) struct WasmWarmRow {
    pub(crate) concurrency: usize,
    /// `wasmtime`, `invoke` or `trigger`.
    pub(crate) kind: String,
    /// Instances reused between calls (fcd's `FCD_WASM_REUSE_INSTANCES`, `wasmtime serve
    /// --max-instance-reuse-count`) instead of a fresh one per call (both sides' default).
    pub(crate) reuse: bool,
    /// What was sent, for the report.
    pub(crate) request: String,
    pub(crate) stats: LoadStats,
    /// This row's req/s / `wasmtime serve`'s at the same concurrency (`None` for its own row,
    /// or without the reference).
    pub(crate) vs_wasmtime: Option<f64>,
}

/// The first answer of never-invoked `wasm` functions whose component fcd has compiled.
#[derive(Debug, Serialize)]
pub(crate) struct WasmCold {
    pub(crate) samples: usize,
    /// CreateFunction → first answer of the run's first wasm function: fcd compiling the
    /// component into its (fresh) cache, then the call.
    pub(crate) first_deploy_ms: Option<f64>,
    /// InvokeFunction sent as soon as CreateFunction answered → its answer.
    pub(crate) invoke_ms: Vec<f64>,
    pub(crate) invoke_median_ms: f64,
    pub(crate) invoke_p90_ms: f64,
    /// The CreateFunction calls themselves (a zip of the whole component each).
    pub(crate) create_ms: Vec<f64>,
    pub(crate) create_median_ms: f64,
    /// CreateFunction sent → the first InvokeFunction's answer.
    pub(crate) create_to_answer_ms: Vec<f64>,
    pub(crate) create_to_answer_median_ms: f64,
    pub(crate) create_to_answer_p90_ms: f64,
    /// How long the second series waited between CreateFunction and InvokeFunction.
    pub(crate) pause_ms: f64,
    /// InvokeFunction → answer of functions created `pause_ms` earlier (code loaded, never
    /// invoked).
    pub(crate) loaded_ms: Vec<f64>,
    pub(crate) loaded_median_ms: f64,
    pub(crate) loaded_p90_ms: f64,
    pub(crate) wasmtime: Option<WasmtimeCold>,
}

/// `wasmtime serve -Scli`'s process start → first answer.
#[derive(Debug, Serialize)]
pub(crate) struct WasmtimeCold {
    /// Of the component precompiled with `wasmtime compile` (`--allow-precompiled`).
    pub(crate) precompiled_ms: Vec<f64>,
    pub(crate) precompiled_median_ms: f64,
    pub(crate) precompiled_p90_ms: f64,
    /// Of the `.wasm` itself, compiled at start (`-C cache=n`); one sample, not under --quick.
    pub(crate) compiled_at_start_ms: Option<f64>,
    /// `wasmtime compile` of the component, when this run did it (it is cached between runs).
    pub(crate) compile_ms: Option<f64>,
}

/// The cluster scenario: fcd embedded against fcd on PostgreSQL + NATS, one node and three.
#[derive(Debug, Serialize)]
pub(crate) struct ClusterResult {
    /// The PostgreSQL server (version and address, no credentials).
    pub(crate) postgres: String,
    pub(crate) nats: String,
    /// Which processes each CPU column counts.
    pub(crate) cpu_note: String,
    /// CPU-seconds PostgreSQL and NATS spent in the measured phases (part of the run's
    /// *other load*: they are not the harness's children).
    pub(crate) engines_cpu_s: f64,
    pub(crate) setups: Vec<ClusterSetup>,
    /// Setups that could not be measured, and why.
    pub(crate) failures: Vec<String>,
}

/// One way of running fcd, measured.
#[derive(Debug, Serialize)]
pub(crate) struct ClusterSetup {
    pub(crate) id: String,
    pub(crate) label: String,
    pub(crate) nodes: usize,
    pub(crate) sync: Vec<ClusterSync>,
    /// Async calls accepted (HTTP 202) at c=64; `None` for a setup measured for sync calls
    /// only (the forwarded one: async calls are not routed by warm instances).
    pub(crate) accept_c64: Option<LoadStats>,
    /// A backlog of accepted no-op calls run to completion (`None` as `accept_c64`).
    pub(crate) drain: Option<DrainRow>,
    /// CPU time per call of the backlog, first accept to the last call run, by group.
    pub(crate) drain_cpu_us: Vec<CpuShare>,
    /// The machine's busy time over the backlog, in CPUs.
    pub(crate) drain_machine_busy_cpus: Option<f64>,
    /// Calls of the backlog (and any left from the accept run) run on each node.
    pub(crate) drain_calls_per_node: Vec<f64>,
    /// Where the async calls were queued, as checked on NATS after the backlog.
    pub(crate) queue: String,
    /// What the setup's database did per call of the backlog (`pg_stat_database`).
    pub(crate) drain_postgres: Option<PgPerCall>,
}

/// A database's work per call.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PgPerCall {
    pub(crate) commits: f64,
    pub(crate) rows_inserted: f64,
    pub(crate) rows_updated: f64,
    pub(crate) rows_deleted: f64,
}

/// Warm synchronous calls at one concurrency.
#[derive(Debug, Serialize)]
pub(crate) struct ClusterSync {
    pub(crate) concurrency: usize,
    pub(crate) stats: LoadStats,
    /// `fcd_invocations_total` of each node over the run (warm-up included): where the
    /// calls ran.
    pub(crate) calls_per_node: Vec<f64>,
    /// `fcd_budget_instances_used` of each node after the run.
    pub(crate) instances_per_node: Vec<f64>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Report {
    pub(crate) scenario: String,
    pub(crate) quick: bool,
    pub(crate) env: Env,
    pub(crate) pinning: String,
    pub(crate) notes: Vec<String>,
    pub(crate) server: Option<ServerStats>,
    pub(crate) warm: Vec<WarmRow>,
    /// The warm scenario's nginx column (custom fixture), when nginx is installed.
    pub(crate) warm_nginx: Vec<ProxyRow>,
    /// python3 behind serverless-offline (`--serverless-offline`).
    pub(crate) warm_serverless_offline: Vec<EmulatorRow>,
    /// The payload scenario's nginx column, when nginx is installed.
    pub(crate) payload_nginx: Vec<PayloadProxyRow>,
    pub(crate) burst: Option<BurstResult>,
    pub(crate) cold: Vec<ColdRow>,
    pub(crate) payload: Vec<PayloadRow>,
    pub(crate) http: Vec<HttpRow>,
    #[serde(rename = "async")]
    pub(crate) asynchronous: Option<AsyncResult>,
    pub(crate) cluster: Option<ClusterResult>,
    pub(crate) wasm_warm: Vec<WasmWarmRow>,
    pub(crate) wasm_cold: Option<WasmCold>,
    pub(crate) container_cold: Option<crate::container::ContainerCold>,
    pub(crate) skipped: Vec<String>,
    pub(crate) failures: Vec<String>,
}

fn us(x: f64) -> String {
    if x >= 10_000.0 {
        format!("{:.1} ms", x / 1000.0)
    } else {
        format!("{x:.0} µs")
    }
}

/// A server-side CPU time per request, or "?" where it was not measured.
fn cpu(x: Option<f64>) -> String {
    x.map_or_else(|| "?".into(), |v| format!("{v:.0} µs"))
}

fn signed_us(x: f64) -> String {
    if x.abs() >= 10_000.0 {
        format!("{:+.1} ms", x / 1000.0)
    } else {
        format!("{x:+.0} µs")
    }
}

pub(crate) fn ms_list(xs: &[f64]) -> String {
    if xs.len() > 8 {
        let mut v = xs.to_vec();
        v.sort_by(f64::total_cmp);
        let (lo, hi) = (v[0], v[v.len() - 1]);
        return format!("min {lo:.1}, max {hi:.1}");
    }
    xs.iter()
        .map(|x| format!("{x:.1}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One target and where the run stands against it.
struct Verdict {
    target: &'static str,
    measured: String,
    met: Option<bool>,
}

impl Report {
    fn verdicts(&self) -> Vec<Verdict> {
        let mut v = Vec::new();
        let warm = |rt: &str, c: usize| {
            self.warm
                .iter()
                .find(|r| r.runtime == rt && r.concurrency == c)
        };
        let row = warm("custom", 1);
        v.push(Verdict {
            target: "warm custom, c=1: fcd p50 within 50 µs of direct",
            measured: row.map_or("not measured".into(), |r| {
                format!(
                    "{} ({} vs {})",
                    signed_us(r.p50_overhead_us),
                    us(r.fcd.p50_us),
                    us(r.direct.p50_us)
                )
            }),
            met: row.map(|r| r.p50_overhead_us <= 50.0),
        });
        let row = warm("custom", 8);
        v.push(Verdict {
            target: "warm custom, c=8: fcd throughput ≥ 60 % of direct",
            measured: row.map_or("not measured".into(), |r| {
                format!(
                    "{:.0} % ({:.0} vs {:.0} req/s)",
                    r.throughput_ratio * 100.0,
                    r.fcd.rps,
                    r.direct.rps
                )
            }),
            met: row.map(|r| r.throughput_ratio >= 0.6),
        });
        let nginx = |c: usize| {
            self.warm_nginx
                .iter()
                .find(|r| r.runtime == "custom" && r.concurrency == c)
        };
        if let Some(r) = nginx(1) {
            v.push(Verdict {
                target: "warm custom, c=1: fcd p50 overhead over direct ≤ nginx's",
                measured: format!(
                    "{} vs nginx {}",
                    signed_us(r.fcd_overhead_us),
                    signed_us(r.proxy_overhead_us)
                ),
                met: Some(r.fcd_overhead_us <= r.proxy_overhead_us),
            });
        }
        if let Some(r) = nginx(8) {
            v.push(Verdict {
                target: "warm custom, c=8: fcd req/s ≥ nginx's",
                measured: format!(
                    "{:.0} % ({:.0} vs {:.0} req/s)",
                    r.throughput_ratio * 100.0,
                    r.fcd_rps,
                    r.stats.rps
                ),
                met: Some(r.throughput_ratio >= 1.0),
            });
        }
        if let Some(r) = self
            .warm_serverless_offline
            .iter()
            .find(|r| r.concurrency == 16)
        {
            v.push(Verdict {
                target: "warm python3, c=16: fcd req/s ≥ 5× serverless-offline's",
                measured: format!(
                    "{:.2}× ({:.0} vs {:.0} req/s)",
                    r.fcd_throughput_ratio, r.fcd.rps, r.stats.rps
                ),
                met: Some(r.fcd_throughput_ratio >= 5.0),
            });
        }
        let row = warm("python3", 1);
        v.push(Verdict {
            target: "warm python3, c=1: fcd p50 ≤ 0.3 ms",
            measured: row.map_or("not measured".into(), |r| us(r.fcd.p50_us)),
            met: row.map(|r| r.fcd.p50_us <= 300.0),
        });
        let cold = |rt: &str, id: &str| {
            self.cold
                .iter()
                .find(|r| r.runtime == rt)
                .and_then(|r| r.baseline(id).map(|b| (r, b)))
        };
        let vs = |ms: f64, b: &Baseline| {
            format!(
                "{ms:.1} ms vs {:.1} ms ({:+.1} ms)",
                b.median_ms,
                ms - b.median_ms
            )
        };
        let row = cold("custom", "standalone");
        v.push(Verdict {
            target: "cold custom, fcd as shipped: ≤ 5 ms above the fixture's own start-up",
            measured: row.map_or("not measured".into(), |(r, b)| {
                vs(r.as_shipped.median_ms, b)
            }),
            met: row.map(|(_, b)| b.as_shipped_minus_baseline_ms <= 5.0),
        });
        let row = cold("python3", "interpreter");
        v.push(Verdict {
            target: "cold python3, fcd as shipped: first response ≤ 35 ms",
            measured: row.map_or("not measured".into(), |(r, _)| {
                format!("{:.1} ms", r.as_shipped.median_ms)
            }),
            met: row.map(|(r, _)| r.as_shipped.median_ms <= 35.0),
        });
        v.push(Verdict {
            target: "cold python3, fcd as shipped: below `python3 -c pass`",
            measured: row.map_or("not measured".into(), |(r, b)| {
                vs(r.as_shipped.median_ms, b)
            }),
            met: row.map(|(_, b)| b.as_shipped_minus_baseline_ms < 0.0),
        });
        let row = cold("nodejs20", "interpreter");
        v.push(Verdict {
            target: "cold nodejs20, fcd as shipped: ≤ `node -e 0`",
            measured: row.map_or("not measured".into(), |(r, b)| {
                vs(r.as_shipped.median_ms, b)
            }),
            met: row.map(|(_, b)| b.as_shipped_minus_baseline_ms <= 0.0),
        });
        let row = cold("custom", "standalone");
        v.push(Verdict {
            target: "cold custom, --prewarm 0: ≤ 15 ms above the fixture's own start-up (earlier target)",
            measured: row.map_or("not measured".into(), |(r, b)| {
                vs(r.prewarm_off.median_ms, b)
            }),
            met: row.map(|(_, b)| b.prewarm_off_minus_baseline_ms <= 15.0),
        });
        let row = cold("python3", "interpreter");
        v.push(Verdict {
            target: "cold python3, --prewarm 0: ≤ 30 ms above `python3 -c pass` (earlier target)",
            measured: row.map_or("not measured".into(), |(r, b)| {
                vs(r.prewarm_off.median_ms, b)
            }),
            met: row.map(|(_, b)| b.prewarm_off_minus_baseline_ms <= 30.0),
        });
        let a = self.asynchronous.as_ref();
        let c64 = a.and_then(|a| a.accepted_c64.as_ref());
        v.push(Verdict {
            target: "async: ≥ 20,000 accepted calls/s at c=64",
            measured: c64.map_or("not measured".into(), |s| {
                format!("{:.0} calls/s (p99 {})", s.rps, us(s.p99_us))
            }),
            met: c64.map(|s| s.rps >= 20_000.0),
        });
        // The largest backlog that was left to time.
        let drain = a.and_then(|a| {
            a.drains
                .iter()
                .filter_map(|d| Some((d, d.drain_per_s?, d.drain_vs_sync?)))
                .max_by_key(|(d, _, _)| d.accepted)
        });
        v.push(Verdict {
            target: "async: a backlog of no-op calls runs at ≥ 50 % of sync c=8",
            measured: drain.map_or("not measured".into(), |(d, rate, ratio)| {
                format!(
                    "{:.0} % ({rate:.0} calls/s draining {:.0} queued)",
                    ratio * 100.0,
                    d.backlog_at_accept_end
                )
            }),
            met: drain.map(|(_, _, ratio)| ratio >= 0.5),
        });
        self.wasm_verdicts(&mut v);
        let s = self.server.as_ref();
        v.push(Verdict {
            target: "server start to ready ≤ 100 ms",
            measured: s.map_or("not measured".into(), |s| {
                format!("{:.1} ms", s.start_to_ready_median_ms)
            }),
            met: s.map(|s| s.start_to_ready_median_ms <= 100.0),
        });
        v.push(Verdict {
            target: "idle RSS ≤ 40 MB (VmRSS, MiB), after start-up",
            measured: s.map_or("not measured".into(), |s| {
                format!("{:.1} MiB", s.idle_rss_start_mib)
            }),
            met: s.map(|s| s.idle_rss_start_mib <= 40.0),
        });
        let end = s.and_then(|s| s.idle_rss_end_mib);
        v.push(Verdict {
            target: "idle RSS ≤ 30 MiB (VmRSS) after the run with every function deleted (issue 13)",
            measured: end.map_or("not measured".into(), |m| format!("{m:.1} MiB")),
            met: end.map(|m| m <= 30.0),
        });
        v
    }

    /// The wasm runtime's targets: ≥ 1.5× `wasmtime serve`'s req/s at c=1 and 16 (judged per
    /// fcd path), and a cold start ≤ 5 ms.
    fn wasm_verdicts(&self, v: &mut Vec<Verdict>) {
        if self.wasm_warm.is_empty() && self.wasm_cold.is_none() {
            return;
        }
        let ratio = crate::wasm::TARGET_RATIO;
        for c in crate::wasm::CONCURRENCY {
            let base = self
                .wasm_warm
                .iter()
                .find(|r| r.concurrency == c && r.kind == "wasmtime" && !r.reuse);
            for (kind, target) in [
                (
                    "trigger",
                    if c == 1 {
                        "wasm warm, c=1: fcd HTTP trigger req/s ≥ 1.5× `wasmtime serve`'s"
                    } else {
                        "wasm warm, c=16: fcd HTTP trigger req/s ≥ 1.5× `wasmtime serve`'s"
                    },
                ),
                (
                    "invoke",
                    if c == 1 {
                        "wasm warm, c=1: fcd InvokeFunction req/s ≥ 1.5× `wasmtime serve`'s"
                    } else {
                        "wasm warm, c=16: fcd InvokeFunction req/s ≥ 1.5× `wasmtime serve`'s"
                    },
                ),
            ] {
                let row = self
                    .wasm_warm
                    .iter()
                    .find(|r| r.concurrency == c && r.kind == kind && !r.reuse);
                let pair = row
                    .zip(base)
                    .and_then(|(r, b)| r.vs_wasmtime.map(|x| (r, b, x)));
                v.push(Verdict {
                    target,
                    measured: pair.map_or("not measured".into(), |(r, b, x)| {
                        format!("{x:.2}× ({:.0} vs {:.0} req/s)", r.stats.rps, b.stats.rps)
                    }),
                    met: pair.map(|(_, _, x)| x >= ratio),
                });
            }
        }
        let cold = self.wasm_cold.as_ref();
        v.push(Verdict {
            target: "wasm cold: first answer of a never-invoked function ≤ 5 ms (InvokeFunction right after CreateFunction)",
            measured: cold.map_or("not measured".into(), |c| {
                format!(
                    "{:.1} ms median, p90 {:.1} ms{}",
                    c.invoke_median_ms,
                    c.invoke_p90_ms,
                    c.wasmtime.as_ref().map_or(String::new(), |w| format!(
                        " (`wasmtime serve` of the precompiled component, start to first answer: {:.1} ms)",
                        w.precompiled_median_ms
                    ))
                )
            }),
            met: cold.map(|c| c.invoke_median_ms <= crate::wasm::TARGET_COLD_MS),
        });
    }

    fn wasm_markdown(&self, o: &mut String) {
        if !self.wasm_warm.is_empty() {
            let _ = writeln!(
                o,
                "\n## WebAssembly: a wasi:http component on fcd's `wasm` runtime against `wasmtime serve -Scli`\n\n\
                 The same component through fcd (InvokeFunction, signed; and its anonymous HTTP trigger, a plain POST) \
                 and run by `wasmtime serve -Scli` (a plain POST). *fresh*: a new instance for every call, both sides' \
                 default (the targets are judged on these rows); *reused*: instances kept between calls on both sides \
                 (fcd: the function's `FCD_WASM_REUSE_INSTANCES=1`; `wasmtime serve --max-instance-reuse-count {}`). \
                 *CPU/req*: fcd's, or `wasmtime serve`'s, CPU time per request over the measured phase. \
                 Target: fcd's req/s ≥ 1.5× `wasmtime serve`'s at c=1 and c=16.\n\n\
                 | instances | c | request | p50 | p90 | p99 | req/s | CPU/req | req/s ÷ wasmtime serve |\n\
                 |---|--:|---|--:|--:|--:|--:|--:|--:|",
                crate::wasm::WASMTIME_REUSE_COUNT
            );
            for r in &self.wasm_warm {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {} | {:.0} | {} | {} |",
                    if r.reuse { "reused" } else { "fresh" },
                    r.concurrency,
                    r.request,
                    us(r.stats.p50_us),
                    us(r.stats.p90_us),
                    us(r.stats.p99_us),
                    r.stats.rps,
                    cpu(r.stats.server_cpu_us),
                    r.vs_wasmtime.map_or("—".into(), |x| format!("{x:.2}×")),
                );
            }
        }
        if let Some(c) = &self.wasm_cold {
            let _ = writeln!(
                o,
                "\n## WebAssembly: first answer of a never-invoked function\n\n\
                 Each sample creates a fresh function of the component fcd has already compiled (its cache), \
                 invokes it once and deletes it; a second series waits {:.0} ms between CreateFunction and the \
                 InvokeFunction. Beside it, `wasmtime serve -Scli` from process start to its first answer. \
                 Target: ≤ 5 ms.{}\n\n\
                 | what | median | p90 | samples (ms) |\n\
                 |---|--:|--:|---|",
                c.pause_ms,
                c.first_deploy_ms.map_or(String::new(), |m| format!(
                    " The run's first deploy (CreateFunction → first answer, fcd compiling the component into its fresh cache) took {:.1} s.",
                    m / 1000.0
                ))
            );
            let _ = writeln!(
                o,
                "| fcd: InvokeFunction right after CreateFunction → answer | {:.1} ms | {:.1} ms | {} |",
                c.invoke_median_ms,
                c.invoke_p90_ms,
                ms_list(&c.invoke_ms)
            );
            let _ = writeln!(
                o,
                "| fcd: CreateFunction sent → that answer | {:.1} ms | {:.1} ms | {} |",
                c.create_to_answer_median_ms,
                c.create_to_answer_p90_ms,
                ms_list(&c.create_to_answer_ms)
            );
            let _ = writeln!(
                o,
                "| fcd: CreateFunction alone | {:.1} ms | | {} |",
                c.create_median_ms,
                ms_list(&c.create_ms)
            );
            let _ = writeln!(
                o,
                "| fcd: InvokeFunction {:.0} ms after CreateFunction → answer | {:.1} ms | {:.1} ms | {} |",
                c.pause_ms,
                c.loaded_median_ms,
                c.loaded_p90_ms,
                ms_list(&c.loaded_ms)
            );
            match &c.wasmtime {
                Some(w) => {
                    let _ = writeln!(
                        o,
                        "| `wasmtime serve` of the precompiled component (`--allow-precompiled`): start → first answer | {:.1} ms | {:.1} ms | {} |",
                        w.precompiled_median_ms,
                        w.precompiled_p90_ms,
                        ms_list(&w.precompiled_ms)
                    );
                    if let Some(m) = w.compiled_at_start_ms {
                        let _ = writeln!(
                            o,
                            "| `wasmtime serve` of the `.wasm` (compiled at start, `-C cache=n`): start → first answer | {m:.1} ms | | {m:.1} |"
                        );
                    }
                    if let Some(m) = w.compile_ms {
                        let _ = writeln!(
                            o,
                            "| `wasmtime compile` of the component (this run) | {m:.1} ms | | {m:.1} |"
                        );
                    }
                }
                None => {
                    let _ = writeln!(o, "| `wasmtime serve` | not measured (see *Skipped*) | | |");
                }
            }
        }
    }

    pub(crate) fn markdown(&self) -> String {
        let mut o = String::new();
        let e = &self.env;
        let _ = writeln!(o, "# fcd benchmark: `{}`\n", self.scenario);
        let _ = writeln!(o, "| | |\n|---|---|");
        let _ = writeln!(o, "| date | {} |", e.date);
        let _ = writeln!(
            o,
            "| commit | {} |",
            e.git_commit.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(
            o,
            "| CPUs | {}{} |",
            e.cpus,
            e.cpu_model
                .as_ref()
                .map(|m| format!(" ({m})"))
                .unwrap_or_default()
        );
        let _ = writeln!(o, "| kernel | {} |", e.kernel);
        let _ = writeln!(o, "| fcd | `{}` ({} build) |", e.fcd_binary, e.fcd_profile);
        let _ = writeln!(o, "| harness | {} build |", e.harness_profile);
        let _ = writeln!(
            o,
            "| python | {} |",
            e.python.as_deref().unwrap_or("not available")
        );
        let _ = writeln!(
            o,
            "| node | {} |",
            e.node.as_deref().unwrap_or("not available")
        );
        if let Some(w) = &e.wasmtime {
            let _ = writeln!(o, "| wasmtime | {w} |");
        }
        let _ = writeln!(
            o,
            "| instance network | {} |",
            e.instance_network.as_deref().unwrap_or("unknown")
        );
        let _ = writeln!(o, "| pinning | {} |", self.pinning);
        let _ = writeln!(
            o,
            "| load average (1/5/15 min) | {} at start, {} at the end |",
            e.loadavg_start.as_deref().unwrap_or("?"),
            e.loadavg_end.as_deref().unwrap_or("?")
        );
        if let Some(f) = &e.foreign_load {
            let _ = writeln!(o, "| other load | {f} |");
        }
        let _ = writeln!(
            o,
            "| client signing | {:.1} µs per InvokeFunction (included in every fcd latency) |",
            e.sign_us
        );
        let _ = writeln!(
            o,
            "| mode | {} |",
            if self.quick {
                "--quick: tiny counts to check the harness end to end; the numbers mean nothing"
            } else {
                "full"
            }
        );
        for n in &self.notes {
            let _ = writeln!(o, "| note | {n} |");
        }

        if let Some(s) = &self.server {
            let _ = writeln!(o, "\n## Server\n\n| metric | value |\n|---|---|");
            let _ = writeln!(
                o,
                "| start to ready (median of {}) | {:.1} ms ({}) |",
                s.start_to_ready_ms.len(),
                s.start_to_ready_median_ms,
                ms_list(&s.start_to_ready_ms)
            );
            let _ = writeln!(
                o,
                "| idle RSS after start | {:.1} MiB |",
                s.idle_rss_start_mib
            );
            if let Some(end) = s.idle_rss_end_mib {
                let _ = writeln!(
                    o,
                    "| idle RSS after the run (no instances) | {end:.1} MiB |"
                );
            }
        }

        if !self.warm.is_empty() {
            let _ = writeln!(
                o,
                "\n## Warm: no-op synchronous invocations\n\n\
                 *CPU/req*: CPU time of the server side (fcd and its instances; the floor process) per request, \
                 from the processes' `utime + stime` over the measured phase (10 ms ticks).\n\n\
                 | runtime | c | fcd p50 | fcd p90 | fcd p99 | fcd req/s | direct p50 | direct p90 | direct p99 | direct req/s | p50 overhead | p50 fcd/direct | req/s fcd/direct | fcd CPU/req | direct CPU/req |\n\
                 |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
            );
            for r in &self.warm {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {} | {:.0} | {} | {:.2}× | {:.0} % | {} | {} |",
                    r.runtime,
                    r.concurrency,
                    us(r.fcd.p50_us),
                    us(r.fcd.p90_us),
                    us(r.fcd.p99_us),
                    r.fcd.rps,
                    us(r.direct.p50_us),
                    us(r.direct.p90_us),
                    us(r.direct.p99_us),
                    r.direct.rps,
                    signed_us(r.p50_overhead_us),
                    r.latency_ratio,
                    r.throughput_ratio * 100.0,
                    cpu(r.fcd.server_cpu_us),
                    cpu(r.direct.server_cpu_us)
                );
            }
        }

        if !self.warm_nginx.is_empty() {
            let _ = writeln!(
                o,
                "\n### Warm: nginx as a bare reverse proxy in front of the same runtime\n\n\
                 The standalone runtime of the rows above behind nginx (one worker, upstream keep-alive, pinned like fcd), \
                 called with the same unsigned request as *direct*. Goals: fcd's p50 overhead at c=1 ≤ nginx's; fcd's req/s at c=8 ≥ nginx's.\n\n\
                 | runtime | c | nginx p50 | nginx p99 | nginx req/s | nginx p50 overhead | fcd p50 overhead | overhead fcd/nginx | req/s fcd/nginx | nginx + runtime CPU/req |\n\
                 |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
            );
            for r in &self.warm_nginx {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {:.0} | {} | {} | {:.2}× | {:.0} % | {} |",
                    r.runtime,
                    r.concurrency,
                    us(r.stats.p50_us),
                    us(r.stats.p99_us),
                    r.stats.rps,
                    signed_us(r.proxy_overhead_us),
                    signed_us(r.fcd_overhead_us),
                    r.overhead_ratio,
                    r.throughput_ratio * 100.0,
                    cpu(r.stats.server_cpu_us)
                );
            }
        }

        if !self.warm_serverless_offline.is_empty() {
            let _ = writeln!(
                o,
                "\n### Warm: python3 through serverless-offline\n\n\
                 The same no-op python handler behind `serverless offline` (an `http` event, `POST /dev/invoke`, the same \
                 interpreter, pinned like fcd). Goal: fcd's python3 req/s at c=16 ≥ 5× serverless-offline's.\n\n\
                 | runtime | c | serverless-offline p50 | p99 | req/s | CPU/req | fcd p50 | fcd req/s | fcd CPU/req | req/s fcd ÷ serverless-offline | CPU/req serverless-offline ÷ fcd |\n\
                 |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
            );
            for r in &self.warm_serverless_offline {
                let cpu_ratio = match (r.stats.server_cpu_us, r.fcd.server_cpu_us) {
                    (Some(s), Some(f)) if f > 0.0 => format!("{:.2}×", s / f),
                    _ => "?".into(),
                };
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {:.0} | {} | {} | {:.0} | {} | {:.2}× | {cpu_ratio} |",
                    r.runtime,
                    r.concurrency,
                    us(r.stats.p50_us),
                    us(r.stats.p99_us),
                    r.stats.rps,
                    cpu(r.stats.server_cpu_us),
                    us(r.fcd.p50_us),
                    r.fcd.rps,
                    cpu(r.fcd.server_cpu_us),
                    r.fcd_throughput_ratio
                );
            }
        }

        if !self.cold.is_empty() {
            let _ = writeln!(
                o,
                "\n## Cold: InvokeFunction on a function with no instance\n\n\
                 Each sample creates a function (memorySize 128), times one InvokeFunction to its answer and deletes \
                 the function, then waits until the server has no more instances and processes than before and is quiet. \
                 *As shipped* is `fcd serve` with prewarmed jails (`--prewarm` at its default); *--prewarm 0* is a second \
                 fcd in the same run, the two sampled alternately.\n\n\
                 | runtime | as shipped: median | samples (ms) | prewarmed jail used | --prewarm 0: median | samples (ms) | saved by prewarming |\n\
                 |---|--:|---|--:|--:|---|--:|"
            );
            for r in &self.cold {
                let (a, b) = (&r.as_shipped, &r.prewarm_off);
                let share = if b.median_ms > 0.0 {
                    r.saved_by_prewarming_ms / b.median_ms * 100.0
                } else {
                    0.0
                };
                let _ = writeln!(
                    o,
                    "| {} | {:.1} ms | {} | {}/{} | {:.1} ms | {} | {:.1} ms ({share:.0} %) |",
                    r.runtime,
                    a.median_ms,
                    ms_list(&a.samples_ms),
                    a.prewarmed_jail_claimed,
                    a.samples_ms.len(),
                    b.median_ms,
                    ms_list(&b.samples_ms),
                    r.saved_by_prewarming_ms,
                );
            }
            let _ = writeln!(
                o,
                "\n| runtime | baseline: the runtime's own start-up | baseline median | as shipped − baseline | --prewarm 0 − baseline |\n\
                 |---|---|--:|--:|--:|"
            );
            for r in &self.cold {
                for (i, b) in r.baselines.iter().enumerate() {
                    let rt = if i == 0 { r.runtime.as_str() } else { "" };
                    let _ = writeln!(
                        o,
                        "| {rt} | {} | {:.1} ms | {:+.1} ms | {:+.1} ms |",
                        b.what,
                        b.median_ms,
                        b.as_shipped_minus_baseline_ms,
                        b.prewarm_off_minus_baseline_ms
                    );
                }
            }
            let _ = writeln!(
                o,
                "\nBetween samples (not part of any cold start): DeleteFunction sent → the instance gone (fcd gave its budget back) \
                 → fcd settled (no more processes than before, a claimed prewarmed jail replaced, under 1 ms of CPU in 25 ms), medians.\n\n\
                 | runtime | as shipped: instance gone | as shipped: settled | --prewarm 0: instance gone | --prewarm 0: settled |\n\
                 |---|--:|--:|--:|--:|"
            );
            for r in &self.cold {
                let (a, b) = (&r.as_shipped, &r.prewarm_off);
                let _ = writeln!(
                    o,
                    "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
                    r.runtime,
                    a.instance_gone_after_delete_ms,
                    a.settled_after_delete_ms,
                    b.instance_gone_after_delete_ms,
                    b.settled_after_delete_ms
                );
            }
        }

        if !self.payload.is_empty() {
            let _ = writeln!(
                o,
                "\n## Payload: echo through the custom fixture, c=1\n\n\
                 | size | requests fcd/direct | client signing | fcd p50 | fcd MB/s | direct p50 | direct MB/s | MB/s fcd/direct |\n\
                 |---|--:|--:|--:|--:|--:|--:|--:|"
            );
            for r in &self.payload {
                let _ = writeln!(
                    o,
                    "| {} | {}/{} | {} | {} | {:.1} | {} | {:.1} | {:.0} % |",
                    r.label,
                    r.fcd.requests,
                    r.direct.requests,
                    us(r.client_sign_ms * 1000.0),
                    us(r.fcd.p50_us),
                    r.fcd.mb_per_s,
                    us(r.direct.p50_us),
                    r.direct.mb_per_s,
                    r.throughput_ratio * 100.0
                );
            }
        }

        if !self.payload_nginx.is_empty() {
            let _ = writeln!(
                o,
                "\n### Payload: nginx in front of the same fixture\n\n\
                 | size | nginx p50 | nginx MB/s | MB/s nginx/direct | MB/s fcd/nginx |\n\
                 |---|--:|--:|--:|--:|"
            );
            for r in &self.payload_nginx {
                let _ = writeln!(
                    o,
                    "| {} | {} | {:.1} | {:.0} % | {:.0} % |",
                    r.label,
                    us(r.stats.p50_us),
                    r.stats.mb_per_s,
                    r.proxy_share_of_direct * 100.0,
                    r.fcd_over_proxy * 100.0
                );
            }
        }

        if let Some(b) = &self.burst {
            let _ = writeln!(
                o,
                "\n## Burst: {} concurrent calls to a {} function with no instance (instanceConcurrency 1)\n\n\
                 Each sample creates the function (memorySize 128), sends the calls together, each on its own connection, \
                 times them to their answers and deletes the function. fcd had {} instance(s) after the first sample's calls.\n\n\
                 | first answer (median) | every call answered (median) | per call (median of all) | samples: first / all (ms) |\n\
                 |--:|--:|--:|---|",
                b.calls, b.runtime, b.instances
            );
            let samples: Vec<String> = b
                .first_ms
                .iter()
                .zip(&b.all_ms)
                .map(|(f, a)| format!("{f:.1} / {a:.1}"))
                .collect();
            let _ = writeln!(
                o,
                "| {:.1} ms | {:.1} ms | {:.1} ms | {} |",
                b.first_median_ms,
                b.all_median_ms,
                b.call_median_ms,
                samples.join(", ")
            );
        }

        if !self.http.is_empty() {
            let _ = writeln!(
                o,
                "\n## HTTP triggers: plain requests to an anonymous trigger, against InvokeFunction\n\n\
                 The same function (`instanceConcurrency` 100) reached three ways, through fcd and straight to the same runtime \
                 as fcd sends each to its instance (*direct*: `POST /invoke` for InvokeFunction; the client's request with \
                 `x-fc-control-path: /http-invoke` for the trigger). Bodies are echoed and checked.\n\n\
                 | runtime | c | request | fcd p50 | fcd p99 | fcd req/s | direct p50 | direct p99 | direct req/s | p50 overhead | req/s fcd/direct | fcd p50 − InvokeFunction's |\n\
                 |---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
            );
            for r in &self.http {
                let _ = writeln!(
                    o,
                    "| {} | {} | {} | {} | {} | {:.0} | {} | {} | {:.0} | {} | {:.0} % | {} |",
                    r.runtime,
                    r.concurrency,
                    r.request,
                    us(r.fcd.p50_us),
                    us(r.fcd.p99_us),
                    r.fcd.rps,
                    us(r.direct.p50_us),
                    us(r.direct.p99_us),
                    r.direct.rps,
                    signed_us(r.p50_overhead_us),
                    r.throughput_ratio * 100.0,
                    r.p50_vs_invoke_us.map_or("—".into(), signed_us),
                );
            }
        }

        if let Some(a) = &self.asynchronous {
            let _ = writeln!(o, "\n## Async\n");
            match &a.accepted {
                Some(s) => {
                    let _ = writeln!(
                        o,
                        "{}: {:.0} accepted calls/s at c={} (p50 {}, p99 {}).",
                        a.detail,
                        s.rps,
                        s.concurrency,
                        us(s.p50_us),
                        us(s.p99_us)
                    );
                    if let Some(s) = &a.accepted_c64 {
                        let _ = writeln!(
                            o,
                            "\nAt c={}: {:.0} accepted calls/s (p50 {}, p99 {}).",
                            s.concurrency,
                            s.rps,
                            us(s.p50_us),
                            us(s.p99_us)
                        );
                    }
                    if !a.drains.is_empty() {
                        let _ = writeln!(
                            o,
                            "\nExecution of a backlog of accepted no-op calls (accepted at c=64, then counted by `fcd_invocations_total` until every one ran):\n\n| accepted | accept calls/s | queued at the last accept | draining calls/s | end to end (first accept → last run) | vs sync c=8 |\n|---|---|---|---|---|---|"
                        );
                        for d in &a.drains {
                            let _ = writeln!(
                                o,
                                "| {} | {:.0} | {:.0} | {} | {:.0} calls/s ({:.2} s) | {} |",
                                d.accepted,
                                d.accept_per_s,
                                d.backlog_at_accept_end,
                                d.drain_per_s.map_or("— (too few left)".into(), |r| {
                                    format!("{r:.0} (in {:.2} s)", d.drain_s)
                                }),
                                d.end_to_end_per_s,
                                d.end_to_end_s,
                                d.drain_vs_sync
                                    .map_or("—".into(), |r| format!("{:.0} %", r * 100.0))
                            );
                        }
                    }
                    if let Some(s) = &a.sync_c8 {
                        let _ = writeln!(
                            o,
                            "\nThe same function called synchronously at c=8: {:.0} req/s (p50 {}, p99 {}).",
                            s.rps,
                            us(s.p50_us),
                            us(s.p99_us)
                        );
                    }
                }
                None => {
                    let _ = writeln!(o, "{}: {}", a.status, a.detail);
                }
            }
        }

        self.wasm_markdown(&mut o);
        if let Some(c) = &self.container_cold {
            crate::container::markdown(c, &mut o);
        }

        if let Some(c) = &self.cluster {
            cluster_markdown(&mut o, c);
        }

        if !self.quick && self.cluster.is_none() {
            let _ = writeln!(
                o,
                "\n## Targets\n\n| target | measured | status |\n|---|---|---|"
            );
            for v in self.verdicts() {
                let status = match v.met {
                    Some(true) => "met",
                    Some(false) => "**not met**",
                    None => "not measured",
                };
                let _ = writeln!(o, "| {} | {} | {status} |", v.target, v.measured);
            }
        }

        if !self.skipped.is_empty() {
            let _ = writeln!(o, "\n## Skipped\n");
            for s in &self.skipped {
                let _ = writeln!(o, "- {s}");
            }
        }
        if !self.failures.is_empty() {
            let _ = writeln!(o, "\n## Failures\n");
            for f in &self.failures {
                let _ = writeln!(o, "- {}", f.replace('\n', " "));
            }
        }
        o
    }
}

/// A count per node: `a / b / c`.
fn per_node(xs: &[f64]) -> String {
    xs.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(" / ")
}

/// The CPU columns of a split: fcd, nginx, PostgreSQL, NATS, the server side together, the
/// load generator.
fn cpu_columns(shares: &[CpuShare]) -> String {
    let one = |label| cluster::share(shares, label).map_or("—".into(), |v| format!("{v:.0} µs"));
    format!(
        "{} | {} | {} | {} | {:.0} µs | {}",
        one(FCD),
        one(NGINX),
        one(POSTGRES),
        one(NATS),
        cluster::server_side(shares),
        one(GENERATOR)
    )
}

/// The machine's busy CPUs, and what that is per request (`per_s` requests a second): all
/// of the machine's CPU time, the kernel's loopback work and other processes included.
fn busy(x: Option<f64>, per_s: f64) -> String {
    match x {
        Some(v) if per_s > 0.0 => format!("{v:.2} | {:.0} µs", v * 1e6 / per_s),
        Some(v) => format!("{v:.2} | ?"),
        None => "? | ?".into(),
    }
}

fn cluster_markdown(o: &mut String, c: &ClusterResult) {
    let _ = writeln!(
        o,
        "\n## Cluster: embedded against PostgreSQL + NATS, one node and three\n\n\
         {} and {}, on this machine. No-op custom-runtime function (instanceConcurrency 100), \
         signed InvokeFunction. *CPU/req* is CPU time per request over the measured phase (10 ms ticks): {}. \
         *busy* is the whole machine's busy time over the phase, in CPUs. *calls per node*: \
         `fcd_invocations_total` of each node over the run (warm-up included).\n\n\
         | setup | c | req/s | p50 | p99 | fcd CPU/req | nginx | PostgreSQL | NATS | server side | load generator | busy (CPUs) | machine CPU/req | calls per node | instances per node |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
        c.postgres, c.nats, c.cpu_note
    );
    for s in &c.setups {
        for r in &s.sync {
            let _ = writeln!(
                o,
                "| {} | {} | {:.0} | {} | {} | {} | {} | {} | {} |",
                s.label,
                r.concurrency,
                r.stats.rps,
                us(r.stats.p50_us),
                us(r.stats.p99_us),
                cpu_columns(&r.stats.cpu_split_us),
                busy(r.stats.machine_busy_cpus, r.stats.rps),
                per_node(&r.calls_per_node),
                per_node(&r.instances_per_node),
            );
        }
    }
    let _ = writeln!(
        o,
        "\nAsync: calls accepted (HTTP 202) at c=64, CPU per accept (the calls run meanwhile, their CPU included).\n\n\
         | setup | accepted/s | p50 | p99 | fcd CPU/accept | nginx | PostgreSQL | NATS | server side | load generator | busy (CPUs) | machine CPU/req |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for s in &c.setups {
        let Some(a) = &s.accept_c64 else { continue };
        let _ = writeln!(
            o,
            "| {} | {:.0} | {} | {} | {} | {} |",
            s.label,
            a.rps,
            us(a.p50_us),
            us(a.p99_us),
            cpu_columns(&a.cpu_split_us),
            busy(a.machine_busy_cpus, a.rps)
        );
    }
    let _ = writeln!(
        o,
        "\nAsync backlog: accepted at c=64 as fast as taken, then counted (`fcd_invocations_total`, summed over the nodes) \
         until every call ran. CPU per call is first accept → last run, accept and execution together.\n\n\
         | setup | accepted | accept calls/s | queued at the last accept | draining calls/s | end to end | fcd CPU/call | nginx | PostgreSQL | NATS | server side | load generator | busy (CPUs) | machine CPU/req | calls per node |\n\
         |---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
    );
    for s in &c.setups {
        let Some(d) = &s.drain else { continue };
        let _ = writeln!(
            o,
            "| {} | {} | {:.0} | {:.0} | {} | {:.0} calls/s ({:.2} s) | {} | {} | {} |",
            s.label,
            d.accepted,
            d.accept_per_s,
            d.backlog_at_accept_end,
            d.drain_per_s.map_or("— (too few left)".into(), |r| format!(
                "{r:.0} (in {:.2} s)",
                d.drain_s
            )),
            d.end_to_end_per_s,
            d.end_to_end_s,
            cpu_columns(&s.drain_cpu_us),
            busy(s.drain_machine_busy_cpus, d.end_to_end_per_s),
            per_node(&s.drain_calls_per_node),
        );
    }
    let _ = writeln!(
        o,
        "\nPostgreSQL and NATS used {:.1} CPU-s in the measured phases; the *other load* line above counts them (they are not this harness's children).",
        c.engines_cpu_s
    );
    let _ = writeln!(o, "\nAsync queue, per setup:\n");
    for s in c.setups.iter().filter(|s| s.drain.is_some()) {
        let pg = s.drain_postgres.as_ref().map_or(String::new(), |p| {
            format!(
                "; PostgreSQL per call of the backlog: {:.2} commits, {:.2} rows inserted, {:.2} updated, {:.2} deleted",
                p.commits, p.rows_inserted, p.rows_updated, p.rows_deleted
            )
        });
        let _ = writeln!(o, "- {}: {}{pg}", s.label, s.queue);
    }
    if !c.failures.is_empty() {
        let _ = writeln!(o, "\nNot measured:\n");
        for f in &c.failures {
            let _ = writeln!(o, "- {}", f.replace('\n', " "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(rps: f64, split: &[(&str, f64)]) -> LoadStats {
        LoadStats {
            concurrency: 8,
            requests: 1000,
            seconds: 1.0,
            rps,
            p50_us: 300.0,
            p90_us: 400.0,
            p99_us: 900.0,
            mean_us: 320.0,
            max_us: 2000.0,
            mb_per_s: 0.0,
            server_cpu_us: None,
            cpu_split_us: split
                .iter()
                .map(|(l, v)| CpuShare {
                    label: (*l).into(),
                    us_per_request: *v,
                })
                .collect(),
            machine_busy_cpus: Some(2.0),
        }
    }

    /// The wasm tables are rectangular, and the targets are judged per fcd path against
    /// `wasmtime serve` at the same concurrency.
    #[test]
    fn wasm_tables_and_verdicts() {
        let row = |c: usize, kind: &str, rps: f64, vs: Option<f64>| WasmWarmRow {
            concurrency: c,
            kind: kind.into(),
            reuse: false,
            request: format!("{kind} request"),
            stats: stats(rps, &[]),
            vs_wasmtime: vs,
        };
        let report = Report {
            wasm_warm: vec![
                row(1, "wasmtime", 500.0, None),
                row(1, "invoke", 600.0, Some(1.2)),
                row(1, "trigger", 800.0, Some(1.6)),
                row(16, "wasmtime", 400.0, None),
                row(16, "invoke", 900.0, Some(2.25)),
                row(16, "trigger", 1000.0, Some(2.5)),
            ],
            wasm_cold: Some(WasmCold {
                samples: 2,
                first_deploy_ms: Some(9000.0),
                invoke_ms: vec![3.0, 4.0],
                invoke_median_ms: 3.5,
                invoke_p90_ms: 4.0,
                create_ms: vec![50.0, 60.0],
                create_median_ms: 55.0,
                create_to_answer_ms: vec![53.0, 64.0],
                create_to_answer_median_ms: 58.5,
                create_to_answer_p90_ms: 64.0,
                pause_ms: 500.0,
                loaded_ms: vec![1.0, 2.0],
                loaded_median_ms: 1.5,
                loaded_p90_ms: 2.0,
                wasmtime: Some(WasmtimeCold {
                    precompiled_ms: vec![14.0, 15.0],
                    precompiled_median_ms: 14.5,
                    precompiled_p90_ms: 15.0,
                    compiled_at_start_ms: Some(7600.0),
                    compile_ms: None,
                }),
            }),
            ..Report::default()
        };
        let mut o = String::new();
        report.wasm_markdown(&mut o);
        let mut tables = 0;
        let mut width = None;
        for line in o.lines() {
            if !line.starts_with('|') {
                width = None;
                continue;
            }
            let cells = line.matches('|').count();
            match width {
                None => {
                    tables += 1;
                    width = Some(cells);
                }
                Some(w) => assert_eq!(cells, w, "{line}\n{o}"),
            }
        }
        assert_eq!(tables, 2, "{o}");
        assert!(o.contains("| 1.60× |"), "{o}");
        let mut v = Vec::new();
        report.wasm_verdicts(&mut v);
        let met: Vec<Option<bool>> = v.iter().map(|v| v.met).collect();
        // c=1 trigger, c=1 invoke, c=16 trigger, c=16 invoke, cold.
        assert_eq!(
            met,
            [Some(true), Some(false), Some(true), Some(true), Some(true)]
        );
        assert!(
            v[1].measured.starts_with("1.20× (600 vs 500 req/s)"),
            "{}",
            v[1].measured
        );
    }

    /// Every row of the cluster tables has as many cells as its header.
    #[test]
    fn cluster_tables_are_rectangular() {
        let split = [
            (FCD, 60.0),
            (NGINX, 15.0),
            (POSTGRES, 2.0),
            (NATS, 1.0),
            (GENERATOR, 14.0),
        ];
        let setup = ClusterSetup {
            id: "engines-3-nginx".into(),
            label: "3 nodes".into(),
            nodes: 3,
            sync: vec![ClusterSync {
                concurrency: 8,
                stats: stats(20_000.0, &split),
                calls_per_node: vec![10.0, 11.0, 12.0],
                instances_per_node: vec![1.0, 1.0, 1.0],
            }],
            accept_c64: Some(stats(5000.0, &split)),
            drain: Some(DrainRow {
                accepted: 10112,
                accept_per_s: 5000.0,
                accept_s: 2.0,
                backlog_at_accept_end: 3000.0,
                drain_s: 0.5,
                drain_per_s: Some(6000.0),
                end_to_end_s: 2.5,
                end_to_end_per_s: 4044.8,
                drain_vs_sync: None,
            }),
            drain_cpu_us: split
                .iter()
                .map(|(l, v)| CpuShare {
                    label: (*l).into(),
                    us_per_request: *v,
                })
                .collect(),
            drain_machine_busy_cpus: None,
            drain_calls_per_node: vec![3370.0, 3371.0, 3371.0],
            queue: "NATS stream bench_x".into(),
            drain_postgres: Some(PgPerCall {
                commits: 3.0,
                rows_inserted: 1.0,
                rows_updated: 2.0,
                rows_deleted: 0.0,
            }),
        };
        let result = ClusterResult {
            postgres: "PostgreSQL 15".into(),
            nats: "nats-server 2.9".into(),
            cpu_note: "n".into(),
            engines_cpu_s: 1.5,
            setups: vec![setup],
            failures: vec!["1 node: failed".into()],
        };
        let mut o = String::new();
        cluster_markdown(&mut o, &result);
        let mut tables = 0;
        let mut width = None;
        for line in o.lines() {
            if !line.starts_with('|') {
                width = None;
                continue;
            }
            let cells = line.matches('|').count();
            match width {
                None => {
                    tables += 1;
                    width = Some(cells);
                }
                Some(w) => assert_eq!(cells, w, "{line}\n{o}"),
            }
        }
        assert_eq!(tables, 3, "{o}");
        // Server side: everything but the generator; machine CPU/req: 2 CPUs over 20k/s.
        assert!(o.contains("| 78 µs | 14 µs | 2.00 | 100 µs |"), "{o}");
        assert!(o.contains("10 / 11 / 12"), "{o}");
        assert!(o.contains("- 1 node: failed"), "{o}");
        assert!(o.contains("3.00 commits, 1.00 rows inserted"), "{o}");
    }
}
