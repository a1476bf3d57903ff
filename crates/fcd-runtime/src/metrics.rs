//! The instance manager's counters, rendered in the Prometheus text format. A handful of
//! atomics on the hot path; everything else is computed when scraped.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the invocation-duration histogram.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 10.0, 60.0,
];

#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) invocations: AtomicU64,
    pub(crate) function_errors: AtomicU64,
    pub(crate) cold_starts: AtomicU64,
    pub(crate) throttles: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
    duration_sum_us: AtomicU64,
    duration_count: AtomicU64,
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
}

impl Metrics {
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        self.duration_sum_us
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
        self.duration_count.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn render(&self, g: Gauges) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            &mut out,
            "fcd_invocations_total",
            "Invocations handed to the instance manager.",
            self.invocations.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "fcd_function_errors_total",
            "Invocations that ended in a function error.",
            self.function_errors.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "fcd_cold_starts_total",
            "Instances started for a waiting request.",
            self.cold_starts.load(Ordering::Relaxed),
        );
        counter(
            &mut out,
            "fcd_throttles_total",
            "Invocations refused for lack of instance capacity.",
            self.throttles.load(Ordering::Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP fcd_instances Live instances by state.\n# TYPE fcd_instances gauge"
        );
        let _ = writeln!(out, "fcd_instances{{state=\"busy\"}} {}", g.busy);
        let _ = writeln!(out, "fcd_instances{{state=\"idle\"}} {}", g.idle);
        let _ = writeln!(
            out,
            "fcd_instances{{state=\"provisioned\"}} {}",
            g.provisioned
        );
        let gauge = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(
            &mut out,
            "fcd_budget_instances_used",
            "Instances holding a share of the server budget.",
            g.reserved_instances,
        );
        gauge(
            &mut out,
            "fcd_budget_instances_max",
            "Most instances the server runs at once.",
            g.max_instances,
        );
        gauge(
            &mut out,
            "fcd_budget_memory_used_megabytes",
            "Memory reserved by instances (their memorySize).",
            g.reserved_memory_mb,
        );
        gauge(
            &mut out,
            "fcd_budget_memory_max_megabytes",
            "Most memory the server hands to instances.",
            g.max_memory_mb,
        );
        let _ = writeln!(
            out,
            "# HELP fcd_invocation_duration_seconds Handler time of invocations.\n# TYPE fcd_invocation_duration_seconds histogram"
        );
        let mut cumulative = 0;
        for (b, n) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += n.load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "fcd_invocation_duration_seconds_bucket{{le=\"{b}\"}} {cumulative}"
            );
        }
        let count = self.duration_count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "fcd_invocation_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "fcd_invocation_duration_seconds_sum {}",
            self.duration_sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "fcd_invocation_duration_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_a_cumulative_histogram() {
        let m = Metrics::default();
        m.invocations.fetch_add(3, Ordering::Relaxed);
        m.observe(Duration::from_micros(300));
        m.observe(Duration::from_millis(20));
        let text = m.render(Gauges {
            busy: 1,
            idle: 2,
            provisioned: 0,
            reserved_memory_mb: 384,
            reserved_instances: 3,
            max_instances: 10,
            max_memory_mb: 1024,
        });
        assert!(text.contains("fcd_invocations_total 3"));
        assert!(text.contains("fcd_instances{state=\"idle\"} 2"));
        assert!(text.contains("fcd_invocation_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("fcd_invocation_duration_seconds_bucket{le=\"0.025\"} 2"));
        assert!(text.contains("fcd_invocation_duration_seconds_count 2"));
    }
}
