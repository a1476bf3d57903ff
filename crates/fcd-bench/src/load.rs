//! The closed-loop load generator: `concurrency` workers, each with its own kept-alive
//! connection, send requests back to back; every request's latency is recorded and merged.
//!
//! A worker's latency covers building the request (for fcd that includes signing it, as an
//! SDK does for every call), sending it, and reading the whole response. It runs on whatever
//! runtime drives it — the harness uses a single-threaded one, so the generator fits on one
//! core when pinned.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use bytes::Bytes;
use serde::Serialize;

use crate::http::{Target, connect, send};
use crate::sys::CpuGroup;

/// How long the measured phase lasts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    /// Every worker stops starting requests after this long.
    Time(Duration),
    /// Every worker sends this many requests.
    Count(usize),
}

#[derive(Debug, Clone)]
pub(crate) struct LoadSpec {
    pub(crate) concurrency: usize,
    /// Unrecorded requests first (at least one per worker), until this much time has passed.
    pub(crate) warmup: Duration,
    pub(crate) limit: Limit,
    pub(crate) body: Bytes,
    /// Check that the response body equals the request body.
    pub(crate) echo: bool,
    /// Processes whose CPU time (with their descendants') during the measured phase is
    /// reported per request: the server side of the target.
    pub(crate) cpu_of: Vec<u32>,
    /// Groups of processes whose CPU time during the measured phase is reported per request
    /// each on its own ([`LoadStats::cpu_split_us`]), with how busy the whole machine was:
    /// where the time goes when several servers share the CPUs.
    pub(crate) cpu_split: Vec<CpuGroup>,
}

/// One group's CPU time per request.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CpuShare {
    pub(crate) label: String,
    pub(crate) us_per_request: f64,
}

/// What one load run measured.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LoadStats {
    pub(crate) concurrency: usize,
    pub(crate) requests: usize,
    pub(crate) seconds: f64,
    pub(crate) rps: f64,
    pub(crate) p50_us: f64,
    pub(crate) p90_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) mean_us: f64,
    pub(crate) max_us: f64,
    /// Request payload bytes per second (the same again comes back when echoed).
    pub(crate) mb_per_s: f64,
    /// CPU time of the server side ([`LoadSpec::cpu_of`]) per request of the measured phase,
    /// in microseconds: what the target costs whatever else runs on the machine.
    pub(crate) server_cpu_us: Option<f64>,
    /// [`LoadSpec::cpu_split`]'s groups, per request of the measured phase.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) cpu_split_us: Vec<CpuShare>,
    /// With [`LoadSpec::cpu_split`]: the machine's busy time during the measured phase, in
    /// CPUs (`/proc/stat`, every process and the kernel, 10 ms ticks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) machine_busy_cpus: Option<f64>,
}

struct WorkerResult {
    started: Instant,
    ended: Instant,
    latencies: Vec<u64>,
}

async fn worker(
    id: usize,
    target: Arc<Target>,
    spec: Arc<LoadSpec>,
    warm_until: Instant,
    barrier: Arc<tokio::sync::Barrier>,
) -> Result<WorkerResult> {
    let mut sender = connect(target.addr_for(id)).await?;
    let mut n = 0usize;
    let mut one = async |sender: &mut crate::http::Sender| -> Result<u64> {
        n += 1;
        let t = Instant::now();
        let req = target.request(&spec.body)?;
        let reply = send(sender, req).await?;
        let lat = t.elapsed();
        target
            .check(&reply, &spec.body, spec.echo)
            .with_context(|| format!("worker {id}, request {n}"))?;
        Ok(u64::try_from(lat.as_nanos()).unwrap_or(u64::MAX))
    };
    loop {
        one(&mut sender).await?;
        if Instant::now() >= warm_until {
            break;
        }
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(match spec.limit {
        Limit::Count(c) => c,
        Limit::Time(_) => 100_000,
    });
    match spec.limit {
        Limit::Count(c) => {
            for _ in 0..c {
                latencies.push(one(&mut sender).await?);
            }
        }
        Limit::Time(d) => {
            let end = started + d;
            while Instant::now() < end {
                latencies.push(one(&mut sender).await?);
            }
        }
    }
    Ok(WorkerResult {
        started,
        ended: Instant::now(),
        latencies,
    })
}

/// Runs one closed-loop measurement. Any failed request fails the run.
pub(crate) async fn run(target: &Target, spec: &LoadSpec) -> Result<LoadStats> {
    let target = Arc::new(target.clone());
    let spec = Arc::new(spec.clone());
    let c = spec.concurrency.max(1);
    // The workers and this task: the CPU count starts when the measured phase does.
    let barrier = Arc::new(tokio::sync::Barrier::new(c + 1));
    let warm_until = Instant::now() + spec.warmup;
    let mut set = tokio::task::JoinSet::new();
    for id in 0..c {
        set.spawn(worker(
            id,
            target.clone(),
            spec.clone(),
            warm_until,
            barrier.clone(),
        ));
    }
    let cpu_ns = || -> u64 {
        spec.cpu_of
            .iter()
            .map(|&p| crate::sys::tree_cpu_total_ns(p))
            .sum()
    };
    let split_ns = || -> Vec<u64> { spec.cpu_split.iter().map(CpuGroup::cpu_ns).collect() };
    // A worker that fails during the warm-up never reaches the barrier.
    let cpu_start = tokio::select! {
        _ = barrier.wait() => Some((cpu_ns(), split_ns(), crate::sys::busy_ticks())),
        Some(joined) = set.join_next() => {
            set.abort_all();
            return match joined {
                Ok(Err(e)) => Err(e),
                Ok(Ok(_)) => Err(anyhow!("a load worker ended before the measured phase")),
                Err(e) => Err(anyhow!("load worker failed: {e}")),
            };
        }
    };
    let mut results = Vec::with_capacity(c);
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(Ok(r)) => results.push(r),
            Ok(Err(e)) => {
                set.abort_all();
                return Err(e);
            }
            Err(e) => {
                set.abort_all();
                return Err(anyhow!("load worker failed: {e}"));
            }
        }
    }
    let started = results
        .iter()
        .map(|r| r.started)
        .min()
        .ok_or_else(|| anyhow!("no worker ran"))?;
    let ended = results
        .iter()
        .map(|r| r.ended)
        .max()
        .ok_or_else(|| anyhow!("no worker ran"))?;
    let (split_end, busy_end) = (split_ns(), crate::sys::busy_ticks());
    let cpu_used = cpu_start
        .as_ref()
        .map(|(s, _, _)| cpu_ns().saturating_sub(*s));
    let mut all: Vec<u64> = results.into_iter().flat_map(|r| r.latencies).collect();
    let mut st = stats(c, &mut all, ended - started, spec.body.len());
    if !spec.cpu_of.is_empty() && st.requests > 0 {
        st.server_cpu_us = cpu_used.map(|ns| ns as f64 / 1000.0 / st.requests as f64);
    }
    if let Some((_, split_start, busy_start)) = cpu_start
        && !spec.cpu_split.is_empty()
    {
        st.cpu_split_us = cpu_shares(&spec.cpu_split, &split_start, &split_end, st.requests);
        st.machine_busy_cpus = match (busy_start, busy_end) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / 100.0 / st.seconds),
            _ => None,
        };
    }
    Ok(st)
}

/// Each group's CPU time between two readings, per one of `requests`.
pub(crate) fn cpu_shares(
    groups: &[CpuGroup],
    start: &[u64],
    end: &[u64],
    requests: usize,
) -> Vec<CpuShare> {
    if requests == 0 {
        return Vec::new();
    }
    groups
        .iter()
        .zip(start.iter().zip(end))
        .map(|(g, (a, b))| CpuShare {
            label: g.label.clone(),
            us_per_request: b.saturating_sub(*a) as f64 / 1000.0 / requests as f64,
        })
        .collect()
}

/// Nearest-rank percentile of sorted nanoseconds, in microseconds.
fn percentile_us(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

fn stats(concurrency: usize, lat: &mut [u64], elapsed: Duration, payload: usize) -> LoadStats {
    lat.sort_unstable();
    let n = lat.len();
    let seconds = elapsed.as_secs_f64().max(1e-9);
    let mean = if n == 0 {
        0.0
    } else {
        lat.iter().map(|&x| x as f64).sum::<f64>() / n as f64 / 1000.0
    };
    LoadStats {
        concurrency,
        requests: n,
        seconds,
        rps: n as f64 / seconds,
        p50_us: percentile_us(lat, 50.0),
        p90_us: percentile_us(lat, 90.0),
        p99_us: percentile_us(lat, 99.0),
        mean_us: mean,
        max_us: lat.last().map_or(0.0, |&x| x as f64 / 1000.0),
        mb_per_s: (n * payload) as f64 / seconds / 1_000_000.0,
        server_cpu_us: None,
        cpu_split_us: Vec::new(),
        machine_busy_cpus: None,
    }
}

/// The median of a sample, in the sample's unit.
pub(crate) fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_us(&v, 50.0), 50.0);
        assert_eq!(percentile_us(&v, 90.0), 90.0);
        assert_eq!(percentile_us(&v, 99.0), 99.0);
        assert_eq!(percentile_us(&[7000], 99.0), 7.0);
        assert_eq!(percentile_us(&[], 50.0), 0.0);
    }

    #[test]
    fn median_of_even_and_odd_samples() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn stats_count_rate_and_throughput() {
        let mut lat = vec![1000, 2000, 3000, 4000];
        let s = stats(2, &mut lat, Duration::from_secs(2), 1_000_000);
        assert_eq!(s.requests, 4);
        assert_eq!(s.rps, 2.0);
        assert_eq!(s.mb_per_s, 2.0);
        assert_eq!(s.mean_us, 2.5);
        assert_eq!(s.max_us, 4.0);
    }

    #[test]
    fn cpu_shares_divide_each_group_by_the_requests() {
        let group = |label: &str| CpuGroup {
            label: label.into(),
            pids: Vec::new(),
            descendants: false,
        };
        let groups = [group("fcd"), group("nats")];
        let shares = cpu_shares(&groups, &[1_000_000, 0], &[3_000_000, 500_000], 100);
        assert_eq!(shares.len(), 2);
        assert_eq!(shares[0].label, "fcd");
        assert_eq!(shares[0].us_per_request, 20.0);
        assert_eq!(shares[1].us_per_request, 5.0);
        // A counter that went backwards (a process gone) counts as nothing, not as negative.
        assert_eq!(
            cpu_shares(&groups, &[5, 5], &[1, 1], 1)[0].us_per_request,
            0.0
        );
        assert!(cpu_shares(&groups, &[0, 0], &[1, 1], 0).is_empty());
    }
}
