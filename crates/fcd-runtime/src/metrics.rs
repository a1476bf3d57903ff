//! The instance manager's metrics, kept and rendered by `prometheus-client` (the Prometheus
//! project's Rust client: typed counters, gauges, histograms and label families in a registry
//! owned by the manager, so two managers in one process — tests — never share series).
//!
//! Server-wide series (names unchanged since they were hand-written): `fcd_invocations_total`,
//! `fcd_function_errors_total`, `fcd_cold_starts_total`, `fcd_throttles_total`,
//! `fcd_invocation_duration_seconds`, `fcd_instances{state}` and the `fcd_budget_*` gauges (set
//! from the pools and the budget when scraped).
//!
//! Per-function series, labelled `account`, `service`, `function`, `qualifier`:
//! `fcd_function_invocations_total`, `fcd_function_errors_by_function_total`,
//! `fcd_function_cold_starts_total`, `fcd_function_duration_seconds` (histogram).
//!
//! # Cardinality
//!
//! Each (account, service, function, qualifier) is one label set of four series (plus the
//! histogram's 13 buckets). A server with thousands of functions would otherwise grow its scrape
//! without bound, so at most [`MAX_FUNCTION_SERIES`] label sets are kept; invocations of further
//! functions are counted under `service="_other",function="_other"` (same account and qualifier
//! dropped too), so totals stay right and the page stays bounded (about 2 MB at the cap). Label
//! sets live until the server restarts (a deleted function's counters stay, as counters should).
//!
//! Per call the cost is a few hash lookups under read locks and atomic adds: about a
//! microsecond (measured by `per_call_cost_is_microseconds` below).

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Upper bounds (seconds) of the invocation-duration histograms.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0, 60.0,
];

/// Most per-function label sets kept; further functions share the `_other` one.
pub(crate) const MAX_FUNCTION_SERIES: usize = 2000;

const OTHER: &str = "_other";

/// The labels of a per-function series.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FunctionLabels {
    account: String,
    service: String,
    function: String,
    qualifier: String,
}

type StateLabels = [(&'static str, &'static str); 1];

fn histogram() -> Histogram {
    Histogram::new(BUCKETS)
}

pub(crate) struct Metrics {
    registry: Registry,
    invocations: Counter,
    function_errors: Counter,
    cold_starts: Counter,
    throttles: Counter,
    duration: Histogram,
    instances: Family<StateLabels, Gauge>,
    budget_instances_used: Gauge,
    budget_instances_max: Gauge,
    budget_memory_used: Gauge,
    budget_memory_max: Gauge,
    fn_invocations: Family<FunctionLabels, Counter>,
    fn_errors: Family<FunctionLabels, Counter>,
    fn_cold_starts: Family<FunctionLabels, Counter>,
    fn_duration: Family<FunctionLabels, Histogram, fn() -> Histogram>,
    /// Invocations counted under `_other` (so an operator can see the cap was reached).
    overflowed: Counter,
    /// Function log lines the log store dropped (mirrored from the store when scraped).
    log_dropped: Counter,
    /// Label sets admitted so far.
    admitted: std::sync::Mutex<usize>,
    max_series: usize,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::with_max_series(MAX_FUNCTION_SERIES)
    }
}

/// Values read at scrape time.
#[derive(Debug)]
pub(crate) struct Gauges {
    pub(crate) busy: u64,
    pub(crate) idle: u64,
    pub(crate) provisioned: u64,
    pub(crate) reserved_memory_mb: u64,
    pub(crate) reserved_instances: u64,
    pub(crate) max_instances: u64,
    pub(crate) max_memory_mb: u64,
    /// Lines the log store has dropped since start.
    pub(crate) log_lines_dropped: u64,
}

fn gauge(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Metrics {
    pub(crate) fn with_max_series(max_series: usize) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            registry: Registry::default(),
            invocations: Counter::default(),
            function_errors: Counter::default(),
            cold_starts: Counter::default(),
            throttles: Counter::default(),
            duration: histogram(),
            instances: Family::default(),
            budget_instances_used: Gauge::default(),
            budget_instances_max: Gauge::default(),
            budget_memory_used: Gauge::default(),
            budget_memory_max: Gauge::default(),
            fn_invocations: Family::default(),
            fn_errors: Family::default(),
            fn_cold_starts: Family::default(),
            fn_duration: Family::new_with_constructor(histogram as fn() -> Histogram),
            overflowed: Counter::default(),
            log_dropped: Counter::default(),
            admitted: std::sync::Mutex::new(0),
            max_series,
        };
        registry.register(
            "fcd_invocations",
            "Invocations handed to the instance manager",
            m.invocations.clone(),
        );
        registry.register(
            "fcd_function_errors",
            "Invocations that ended in a function error",
            m.function_errors.clone(),
        );
        registry.register(
            "fcd_cold_starts",
            "Instances started for a waiting request",
            m.cold_starts.clone(),
        );
        registry.register(
            "fcd_throttles",
            "Invocations refused for lack of instance capacity",
            m.throttles.clone(),
        );
        registry.register(
            "fcd_instances",
            "Live instances by state",
            m.instances.clone(),
        );
        registry.register(
            "fcd_budget_instances_used",
            "Instances holding a share of the server budget",
            m.budget_instances_used.clone(),
        );
        registry.register(
            "fcd_budget_instances_max",
            "Most instances the server runs at once",
            m.budget_instances_max.clone(),
        );
        registry.register(
            "fcd_budget_memory_used_megabytes",
            "Memory reserved by instances (their memorySize)",
            m.budget_memory_used.clone(),
        );
        registry.register(
            "fcd_budget_memory_max_megabytes",
            "Most memory the server hands to instances",
            m.budget_memory_max.clone(),
        );
        registry.register(
            "fcd_invocation_duration_seconds",
            "Handler time of invocations",
            m.duration.clone(),
        );
        registry.register(
            "fcd_function_invocations",
            "Invocations per function and qualifier",
            m.fn_invocations.clone(),
        );
        registry.register(
            "fcd_function_errors_by_function",
            "Function errors per function and qualifier",
            m.fn_errors.clone(),
        );
        registry.register(
            "fcd_function_cold_starts",
            "Cold starts per function and qualifier",
            m.fn_cold_starts.clone(),
        );
        registry.register(
            "fcd_function_duration_seconds",
            "Handler time per function and qualifier",
            m.fn_duration.clone(),
        );
        registry.register(
            "fcd_function_series_overflow",
            "Invocations counted under the _other label set: the per-function series cap was reached",
            m.overflowed.clone(),
        );
        registry.register(
            "fcd_log_lines_dropped",
            "Function log lines not stored: printed faster than they could be stored, or more than the function's log keeps in 10 s",
            m.log_dropped.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The labels of a function's series, or the shared `_other` set once the cap is reached.
    pub(crate) fn labels(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: &str,
    ) -> FunctionLabels {
        let l = FunctionLabels {
            account: account.to_owned(),
            service: service.to_owned(),
            function: function.to_owned(),
            qualifier: qualifier.to_owned(),
        };
        if self.fn_invocations.get(&l).is_some() {
            return l;
        }
        // First call of this label set: admitted under a lock, so the count is exact.
        if let Ok(mut admitted) = self.admitted.lock() {
            if self.fn_invocations.get(&l).is_some() {
                return l;
            }
            if *admitted < self.max_series {
                *admitted += 1;
                drop(self.fn_invocations.get_or_create(&l));
                return l;
            }
        }
        self.overflowed.inc();
        FunctionLabels {
            account: OTHER.to_owned(),
            service: OTHER.to_owned(),
            function: OTHER.to_owned(),
            qualifier: OTHER.to_owned(),
        }
    }

    pub(crate) fn invoked(&self, l: &FunctionLabels) {
        self.invocations.inc();
        self.fn_invocations.get_or_create(l).inc();
    }

    pub(crate) fn cold_start(&self, l: &FunctionLabels) {
        self.cold_starts.inc();
        self.fn_cold_starts.get_or_create(l).inc();
    }

    pub(crate) fn throttled(&self) {
        self.throttles.inc();
    }

    /// A finished call: its handler time, and whether it was a function error.
    pub(crate) fn finished(&self, l: &FunctionLabels, d: Duration, error: bool) {
        let secs = d.as_secs_f64();
        self.duration.observe(secs);
        self.fn_duration.get_or_create(l).observe(secs);
        if error {
            self.function_errors.inc();
            self.fn_errors.get_or_create(l).inc();
        }
    }

    pub(crate) fn render(&self, g: Gauges) -> String {
        self.instances
            .get_or_create(&[("state", "busy")])
            .set(gauge(g.busy));
        self.instances
            .get_or_create(&[("state", "idle")])
            .set(gauge(g.idle));
        self.instances
            .get_or_create(&[("state", "provisioned")])
            .set(gauge(g.provisioned));
        self.budget_instances_used.set(gauge(g.reserved_instances));
        self.budget_instances_max.set(gauge(g.max_instances));
        self.budget_memory_used.set(gauge(g.reserved_memory_mb));
        self.budget_memory_max.set(gauge(g.max_memory_mb));
        let seen = self.log_dropped.get();
        if g.log_lines_dropped > seen {
            self.log_dropped.inc_by(g.log_lines_dropped - seen);
        }
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::warn!("rendering metrics failed");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauges() -> Gauges {
        Gauges {
            busy: 1,
            idle: 2,
            provisioned: 0,
            reserved_memory_mb: 384,
            reserved_instances: 3,
            max_instances: 10,
            max_memory_mb: 1024,
            log_lines_dropped: 5,
        }
    }

    #[test]
    fn renders_counters_gauges_and_cumulative_histograms() {
        let m = Metrics::default();
        let l = m.labels("1", "svc", "fn", "LATEST");
        for _ in 0..3 {
            m.invoked(&l);
        }
        m.cold_start(&l);
        m.finished(&l, Duration::from_micros(300), false);
        m.finished(&l, Duration::from_millis(20), true);
        let text = m.render(gauges());
        for want in [
            "fcd_invocations_total 3",
            "fcd_function_errors_total 1",
            "fcd_cold_starts_total 1",
            "fcd_throttles_total 0",
            "fcd_instances{state=\"idle\"} 2",
            "fcd_budget_instances_used 3",
            "fcd_budget_memory_used_megabytes 384",
            "fcd_log_lines_dropped_total 5",
            "fcd_invocation_duration_seconds_bucket{le=\"0.0005\"} 1",
            "fcd_invocation_duration_seconds_bucket{le=\"0.025\"} 2",
            "fcd_invocation_duration_seconds_count 2",
            "fcd_function_invocations_total{account=\"1\",service=\"svc\",function=\"fn\",qualifier=\"LATEST\"} 3",
            "fcd_function_errors_by_function_total{account=\"1\",service=\"svc\",function=\"fn\",qualifier=\"LATEST\"} 1",
            "fcd_function_cold_starts_total{account=\"1\",service=\"svc\",function=\"fn\",qualifier=\"LATEST\"} 1",
            "fcd_function_duration_seconds_count{account=\"1\",service=\"svc\",function=\"fn\",qualifier=\"LATEST\"} 2",
        ] {
            assert!(text.lines().any(|l| l == want), "{want} missing:\n{text}");
        }
    }

    #[test]
    fn function_series_are_capped() {
        let m = Metrics::with_max_series(3);
        for i in 0..10 {
            let l = m.labels("1", "svc", &format!("f{i}"), "LATEST");
            m.invoked(&l);
        }
        // A function that already has series keeps them.
        let l = m.labels("1", "svc", "f0", "LATEST");
        m.invoked(&l);
        let text = m.render(gauges());
        let series = text
            .lines()
            .filter(|l| l.starts_with("fcd_function_invocations_total{"))
            .count();
        assert_eq!(series, 4, "{text}");
        assert!(text.contains("fcd_function_invocations_total{account=\"_other\",service=\"_other\",function=\"_other\",qualifier=\"_other\"} 7"));
        assert!(text.contains("function=\"f0\",qualifier=\"LATEST\"} 2"));
        assert!(text.contains("fcd_invocations_total 11"));
        assert!(text.contains("fcd_function_series_overflow_total 7"));
    }

    /// What the hot path pays per invocation for metrics, roughly (debug builds are slower
    /// than release; the bound only catches a gross regression, timing decides nothing else).
    #[test]
    fn per_call_cost_is_microseconds() {
        let m = Metrics::default();
        for i in 0..1000 {
            let l = m.labels("1", "svc", &format!("f{i}"), "LATEST");
            m.invoked(&l);
        }
        let n = 100_000u32;
        let started = std::time::Instant::now();
        for i in 0..n {
            let l = m.labels("1", "svc", "f500", "LATEST");
            m.invoked(&l);
            m.finished(&l, Duration::from_micros(u64::from(i % 5000)), i % 10 == 0);
        }
        let per_call = started.elapsed() / n;
        eprintln!("metrics per call: {per_call:?}");
        assert!(per_call < Duration::from_millis(1), "{per_call:?}");
    }
}
