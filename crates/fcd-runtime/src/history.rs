//! The last hour of each function's invocations, minute by minute, on this node: what the
//! console's charts and `GET …/functions/{f}/metrics` show. [`crate::metrics`] keeps
//! Prometheus' running totals (a scraper makes rates of them); this keeps what a page needs
//! without a Prometheus: per minute, the calls that ended in it, how many failed, how many
//! started an instance, and their handler times' p50 and p99.
//!
//! # What is counted
//!
//! A call is counted when it ends (in the minute it ended), once, whatever its qualifier: the
//! history is per function — (account, service, function), as the metrics' label sets are
//! without their qualifier. An *error* is a function error (`x-fc-error-type`, an initializer
//! that failed included) or a platform failure of the call (no instance could be started,
//! throttled, shutting down); a client's streamed body that broke is neither. A call whose
//! client went away before it ended counts as an invocation only. A *cold start* is a call that
//! started an instance. Durations are handler time, as the metrics' histograms; calls that never
//! reached a handler have none.
//!
//! # Cost and bounds
//!
//! Per call: one map lookup under a read lock (no allocation: the key is looked up borrowed),
//! a read of the wall clock and four relaxed atomic adds. Once per minute per function the
//! first call of the new minute takes that function's mutex to close the old minute (its p50
//! and p99 are computed then, from a histogram of [`HIST_LEN`] log-scale buckets, and kept as
//! two numbers) — `fcd-bench warm` shows it (docs/benchmarks.md). A function costs
//! about 2.5 KB (60 minute slots and one live histogram). At most [`MAX_FUNCTIONS`] functions
//! are kept (the metrics' label-set cap); a function with no call for an hour is dropped
//! ([`History::sweep`], from the idle reclaimer), a deleted one at once
//! ([`History::forget`]); while the map is full, calls of further functions are not kept.
//!
//! # Precision
//!
//! Percentiles are interpolated within buckets four to an octave (each at most 25 % wider
//! than its lower bound; exact below 4 µs), so they are within a few percent of the true
//! value. A call ending just as the minute turns may be counted in the neighbouring minute.
//!
//! Each node keeps its own history: in a cluster, the numbers are those of the calls this
//! node ran.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

/// Minutes kept per function (the last hour, the current minute included).
pub const MINUTES: usize = 60;

/// Most functions kept (as many as the metrics keep label sets).
pub(crate) const MAX_FUNCTIONS: usize = crate::metrics::MAX_FUNCTION_SERIES;

/// Sub-buckets per octave, as a power of two: 2 bits, four buckets to an octave.
const SUB_BITS: u32 = 2;
const SUB: u64 = 1 << SUB_BITS;
/// Durations are kept in microseconds up to 2^38 µs (76 hours; longer ones go to the last
/// bucket), more than any function timeout.
const MAX_BITS: u32 = 38;
/// Buckets of a duration histogram.
pub(crate) const HIST_LEN: usize = ((MAX_BITS - SUB_BITS + 1) as usize) * SUB as usize;

/// The bucket of a duration of `us` microseconds.
fn bucket_of(us: u64) -> usize {
    let us = us.min((1 << MAX_BITS) - 1);
    if us < SUB {
        return us as usize;
    }
    let msb = 63 - us.leading_zeros();
    let sub = (us >> (msb - SUB_BITS)) & (SUB - 1);
    ((msb - SUB_BITS + 1) as u64 * SUB + sub) as usize
}

/// The smallest duration (µs) of bucket `i` (for `i == HIST_LEN`: the end of the last one).
fn bucket_start(i: usize) -> u64 {
    let i = i as u64;
    if i < SUB {
        return i;
    }
    let (octave, sub) = (i / SUB, i % SUB);
    (SUB + sub) << (octave - 1)
}

/// The `q`-quantile (0 < q ≤ 1) of a histogram's counts, in milliseconds: the bucket it falls
/// in, interpolated linearly within it. `None` for an empty histogram.
fn quantile_ms(counts: &[u32; HIST_LEN], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total == 0 {
        return None;
    }
    // The rank of the wanted call, 1-based and fractional (q·n, at least the first call).
    let rank = (q * total as f64).max(1.0);
    let mut below = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        let c = u64::from(c);
        if c == 0 {
            continue;
        }
        if (below + c) as f64 >= rank {
            let (lo, hi) = (bucket_start(i) as f64, bucket_start(i + 1) as f64);
            let within = (rank - below as f64) / c as f64;
            let us = lo + (hi - lo) * within;
            // Milliseconds to the microsecond.
            return Some(us.round() / 1000.0);
        }
        below += c;
    }
    None
}

/// The calls of one minute, for one function.
#[derive(Default)]
struct Slot {
    /// The minute (since the epoch) whose calls these are; a slot whose minute is not the one
    /// asked about holds nothing of it.
    minute: AtomicU64,
    invocations: AtomicU32,
    errors: AtomicU32,
    cold_starts: AtomicU32,
    /// p50 and p99 in ms (`f32` bits; NaN: none), set when the minute was closed.
    p50: AtomicU32,
    p99: AtomicU32,
}

const NONE: u32 = 0x7fc0_0000; // f32::NAN's bits

fn ms_bits(v: Option<f64>) -> u32 {
    v.map_or(NONE, |v| (v as f32).to_bits())
}

fn bits_ms(b: u32) -> Option<f64> {
    let v = f32::from_bits(b);
    (!v.is_nan()).then_some(f64::from(v))
}

/// One function's last hour.
struct Series {
    slots: [Slot; MINUTES],
    /// The minute the calls being counted now belong to; `hist` holds its durations.
    live: AtomicU64,
    hist: [AtomicU32; HIST_LEN],
    /// Held only while a minute is closed and the next one opened.
    turn: Mutex<()>,
}

impl Series {
    fn new(minute: u64) -> Series {
        let s = Series {
            slots: std::array::from_fn(|_| Slot::default()),
            live: AtomicU64::new(minute),
            hist: std::array::from_fn(|_| AtomicU32::new(0)),
            turn: Mutex::new(()),
        };
        let slot = &s.slots[minute as usize % MINUTES];
        slot.minute.store(minute, Ordering::Relaxed);
        slot.p50.store(NONE, Ordering::Relaxed);
        slot.p99.store(NONE, Ordering::Relaxed);
        s
    }

    fn hist_counts(&self) -> [u32; HIST_LEN] {
        std::array::from_fn(|i| self.hist[i].load(Ordering::Relaxed))
    }

    /// Makes `now` the live minute if it is later than the live one, closing that one; returns
    /// the live minute (a call whose clock read lagged a turn counts in the new minute).
    fn advance(&self, now: u64) -> u64 {
        let live = self.live.load(Ordering::Acquire);
        if now <= live {
            return live;
        }
        let Ok(_turn) = self.turn.lock() else {
            return live;
        };
        let live = self.live.load(Ordering::Acquire);
        if now <= live {
            return live;
        }
        // Close the live minute: its percentiles from its histogram, which then starts over.
        let counts = self.hist_counts();
        let closed = &self.slots[live as usize % MINUTES];
        if closed.minute.load(Ordering::Relaxed) == live {
            closed
                .p50
                .store(ms_bits(quantile_ms(&counts, 0.5)), Ordering::Relaxed);
            closed
                .p99
                .store(ms_bits(quantile_ms(&counts, 0.99)), Ordering::Relaxed);
        }
        for c in &self.hist {
            c.store(0, Ordering::Relaxed);
        }
        // Open the new one (its slot held a minute an hour or more ago).
        let open = &self.slots[now as usize % MINUTES];
        open.invocations.store(0, Ordering::Relaxed);
        open.errors.store(0, Ordering::Relaxed);
        open.cold_starts.store(0, Ordering::Relaxed);
        open.p50.store(NONE, Ordering::Relaxed);
        open.p99.store(NONE, Ordering::Relaxed);
        open.minute.store(now, Ordering::Relaxed);
        // Release: whoever sees the new minute sees its slot and the histogram reset.
        self.live.store(now, Ordering::Release);
        now
    }

    fn record(&self, now: u64, call: &Call) {
        let minute = self.advance(now);
        let slot = &self.slots[minute as usize % MINUTES];
        slot.invocations.fetch_add(1, Ordering::Relaxed);
        if call.error {
            slot.errors.fetch_add(1, Ordering::Relaxed);
        }
        if call.cold {
            slot.cold_starts.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(d) = call.duration {
            let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
            self.hist[bucket_of(us)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The minutes `now - 59 ..= now`, oldest first.
    fn window(&self, now: u64) -> Vec<Point> {
        let live = self.live.load(Ordering::Acquire);
        let counts = self.hist_counts();
        // A minute closed meanwhile has its percentiles in its slot, and the histogram read
        // above may already be the next minute's.
        let still_live = self.live.load(Ordering::Acquire) == live;
        let first = now.saturating_sub(MINUTES as u64 - 1);
        (first..=now)
            .map(|minute| {
                let slot = &self.slots[minute as usize % MINUTES];
                if slot.minute.load(Ordering::Relaxed) != minute || minute > live {
                    return Point::empty(minute);
                }
                let (p50_ms, p99_ms) = if minute == live && still_live {
                    (quantile_ms(&counts, 0.5), quantile_ms(&counts, 0.99))
                } else {
                    (
                        bits_ms(slot.p50.load(Ordering::Relaxed)),
                        bits_ms(slot.p99.load(Ordering::Relaxed)),
                    )
                };
                Point {
                    minute_start: minute * 60,
                    invocations: u64::from(slot.invocations.load(Ordering::Relaxed)),
                    errors: u64::from(slot.errors.load(Ordering::Relaxed)),
                    cold_starts: u64::from(slot.cold_starts.load(Ordering::Relaxed)),
                    p50_ms,
                    p99_ms,
                }
            })
            .collect()
    }
}

/// How one call ended, as the history counts it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Call {
    pub(crate) cold: bool,
    pub(crate) error: bool,
    /// Handler time, when a handler ran.
    pub(crate) duration: Option<Duration>,
}

/// One minute of a function's history.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// The minute's first second, since the epoch (UTC).
    pub minute_start: u64,
    pub invocations: u64,
    pub errors: u64,
    pub cold_starts: u64,
    /// Median handler time, ms; `None` without a call that reached its handler.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

impl Point {
    fn empty(minute: u64) -> Point {
        Point {
            minute_start: minute * 60,
            invocations: 0,
            errors: 0,
            cold_starts: 0,
            p50_ms: None,
            p99_ms: None,
        }
    }
}

// ---- the map, looked up by borrowed names ------------------------------------------------

/// A function's names, owned (the map's key) or borrowed (a lookup).
trait Names {
    fn names(&self) -> (&str, &str, &str);
}

#[derive(PartialEq, Eq)]
struct Key {
    account: String,
    service: String,
    function: String,
}

impl Names for Key {
    fn names(&self) -> (&str, &str, &str) {
        (&self.account, &self.service, &self.function)
    }
}

impl Names for (&str, &str, &str) {
    fn names(&self) -> (&str, &str, &str) {
        *self
    }
}

impl<'a> Borrow<dyn Names + 'a> for Key {
    fn borrow(&self) -> &(dyn Names + 'a) {
        self
    }
}

// `Key`'s hash is the names' hash, as `Borrow` requires.
impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.names().hash(h);
    }
}

impl Hash for dyn Names + '_ {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.names().hash(h);
    }
}

impl PartialEq for dyn Names + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.names() == other.names()
    }
}

impl Eq for dyn Names + '_ {}

type Clock = Box<dyn Fn() -> u64 + Send + Sync>;

/// Every function's last hour on this node (see the module docs).
pub(crate) struct History {
    /// Boxed: growing the map moves pointers, not 2.5 KB a function.
    series: RwLock<HashMap<Key, Box<Series>>>,
    max: usize,
    /// Seconds since the epoch.
    clock: Clock,
    /// The minute of the last sweep (one a minute is enough).
    swept: AtomicU64,
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("History")
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

fn wall_clock() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Default for History {
    fn default() -> Self {
        History::new(MAX_FUNCTIONS, Box::new(wall_clock))
    }
}

impl History {
    pub(crate) fn new(max: usize, clock: Clock) -> History {
        History {
            series: RwLock::new(HashMap::new()),
            max,
            clock,
            swept: AtomicU64::new(0),
        }
    }

    fn minute(&self) -> u64 {
        (self.clock)() / 60
    }

    /// Counts one call of a function.
    pub(crate) fn record(&self, account: &str, service: &str, function: &str, call: Call) {
        let now = self.minute();
        let names = (account, service, function);
        if let Ok(map) = self.series.read()
            && let Some(s) = map.get(&names as &dyn Names)
        {
            s.record(now, &call);
            return;
        }
        // The function's first call here (or in an hour): a slot of its own, if one is left.
        let full = self.series.read().map_or(true, |m| m.len() >= self.max);
        if full {
            self.sweep();
        }
        let Ok(mut map) = self.series.write() else {
            return;
        };
        if !map.contains_key(&names as &dyn Names) {
            if map.len() >= self.max {
                return;
            }
            map.insert(
                Key {
                    account: account.to_owned(),
                    service: service.to_owned(),
                    function: function.to_owned(),
                },
                Box::new(Series::new(now)),
            );
        }
        if let Some(s) = map.get(&names as &dyn Names) {
            s.record(now, &call);
        }
    }

    /// The function's last hour, oldest minute first, the current (partial) minute last:
    /// always [`MINUTES`] points (zeros for a function this node has not run).
    pub(crate) fn window(&self, account: &str, service: &str, function: &str) -> Vec<Point> {
        let now = self.minute();
        let names = (account, service, function);
        let found = self
            .series
            .read()
            .ok()
            .and_then(|m| m.get(&names as &dyn Names).map(|s| s.window(now)));
        found.unwrap_or_else(|| {
            let first = now.saturating_sub(MINUTES as u64 - 1);
            (first..=now).map(Point::empty).collect()
        })
    }

    /// Drops a deleted function's history (`function: None`: every function of the service).
    pub(crate) fn forget(&self, account: &str, service: &str, function: Option<&str>) {
        if let Ok(mut map) = self.series.write() {
            map.retain(|k, _| {
                !(k.account == account
                    && k.service == service
                    && function.is_none_or(|f| f == k.function))
            });
        }
    }

    /// Drops the functions without a call in the last hour (at most once a minute).
    pub(crate) fn sweep(&self) {
        let now = self.minute();
        if self.swept.swap(now, Ordering::AcqRel) == now {
            return;
        }
        let oldest = now.saturating_sub(MINUTES as u64 - 1);
        if let Ok(mut map) = self.series.write() {
            map.retain(|_, s| s.live.load(Ordering::Acquire) >= oldest);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.series.read().map_or(0, |m| m.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A history on a clock the test moves (seconds since the epoch).
    fn history(max: usize) -> (History, Arc<AtomicU64>) {
        let now = Arc::new(AtomicU64::new(1_800_000_000));
        let clock = now.clone();
        let h = History::new(max, Box::new(move || clock.load(Ordering::Relaxed)));
        (h, now)
    }

    fn ok(ms: u64) -> Call {
        Call {
            duration: Some(Duration::from_millis(ms)),
            ..Call::default()
        }
    }

    #[test]
    fn buckets_are_monotonic_and_tight() {
        for i in 0..HIST_LEN {
            assert!(bucket_start(i) < bucket_start(i + 1), "{i}");
            assert_eq!(bucket_of(bucket_start(i)), i, "{i}");
            assert_eq!(bucket_of(bucket_start(i + 1) - 1), i, "{i}");
            // Never wider than a quarter of where it starts (above the exact ones).
            if i >= SUB as usize {
                assert!(
                    bucket_start(i + 1) - bucket_start(i) <= bucket_start(i) / 4,
                    "{i}"
                );
            }
        }
        assert_eq!(bucket_of(u64::MAX), HIST_LEN - 1);
        // 24 h (FC's longest timeout) is not in the overflow bucket's range.
        assert!(bucket_start(HIST_LEN) > 86_400 * 1_000_000);
    }

    #[test]
    fn percentiles_are_close_to_the_true_ones() {
        let mut counts = [0u32; HIST_LEN];
        // 1..=1000 ms, one call each: p50 = 500 ms, p99 = 990 ms.
        for ms in 1..=1000u64 {
            counts[bucket_of(ms * 1000)] += 1;
        }
        let p50 = quantile_ms(&counts, 0.5).unwrap();
        let p99 = quantile_ms(&counts, 0.99).unwrap();
        assert!((p50 - 500.0).abs() / 500.0 < 0.05, "{p50}");
        assert!((p99 - 990.0).abs() / 990.0 < 0.05, "{p99}");
        // One call: both are (about) it.
        let mut one = [0u32; HIST_LEN];
        one[bucket_of(20_000)] += 1;
        let p = quantile_ms(&one, 0.5).unwrap();
        assert!((p - 20.0).abs() / 20.0 < 0.25, "{p}");
        assert!(quantile_ms(&[0; HIST_LEN], 0.5).is_none());
        // A slow tail shows in p99, not in p50.
        let mut tail = [0u32; HIST_LEN];
        tail[bucket_of(1_000)] += 98;
        tail[bucket_of(2_000_000)] += 2;
        assert!(quantile_ms(&tail, 0.5).unwrap() < 1.3);
        assert!(quantile_ms(&tail, 0.99).unwrap() > 1_500.0);
    }

    #[test]
    fn minutes_rotate_with_the_clock() {
        let (h, now) = history(10);
        let start = now.load(Ordering::Relaxed) / 60 * 60;
        now.store(start + 5, Ordering::Relaxed);
        h.record("1", "s", "f", ok(10));
        h.record(
            "1",
            "s",
            "f",
            Call {
                cold: true,
                error: true,
                duration: Some(Duration::from_millis(30)),
            },
        );
        let w = h.window("1", "s", "f");
        assert_eq!(w.len(), MINUTES);
        let last = w.last().unwrap();
        assert_eq!(last.minute_start, start);
        assert_eq!((last.invocations, last.errors, last.cold_starts), (2, 1, 1));
        assert!(last.p50_ms.is_some());
        assert!(
            w[..MINUTES - 1]
                .iter()
                .all(|p| p.invocations == 0 && p.p50_ms.is_none())
        );
        // Points are one minute apart, oldest first.
        assert!(
            w.windows(2)
                .all(|p| p[1].minute_start == p[0].minute_start + 60)
        );

        // Two minutes later: the first minute is closed with its percentiles, one minute in
        // between is empty, the current one has its own calls.
        now.store(start + 125, Ordering::Relaxed);
        h.record("1", "s", "f", ok(100));
        let w = h.window("1", "s", "f");
        let (closed, gap, current) = (&w[MINUTES - 3], &w[MINUTES - 2], &w[MINUTES - 1]);
        assert_eq!(closed.minute_start, start);
        assert_eq!(closed.invocations, 2);
        let p99 = closed.p99_ms.unwrap();
        assert!((p99 - 30.0).abs() < 30.0 * 0.25, "{p99}");
        assert_eq!((gap.invocations, gap.p50_ms), (0, None));
        assert_eq!(
            (current.invocations, current.errors, current.cold_starts),
            (1, 0, 0)
        );
        let p50 = current.p50_ms.unwrap();
        assert!((p50 - 100.0).abs() < 25.0, "{p50}");

        // 59 minutes after the first: it is the oldest point still.
        now.store(start + 59 * 60, Ordering::Relaxed);
        let w = h.window("1", "s", "f");
        assert_eq!(w[0].minute_start, start);
        assert_eq!(w[0].invocations, 2);
        // One more minute and it is gone, though its slot is only reused by a call.
        now.store(start + 60 * 60 + 1, Ordering::Relaxed);
        let w = h.window("1", "s", "f");
        assert_eq!(w[0].minute_start, start + 60);
        assert_eq!(w.iter().map(|p| p.invocations).sum::<u64>(), 1);
        h.record("1", "s", "f", ok(1));
        let w = h.window("1", "s", "f");
        assert_eq!(w.last().unwrap().invocations, 1);
        assert_eq!(w.iter().map(|p| p.invocations).sum::<u64>(), 2);
    }

    #[test]
    fn the_live_minute_reads_without_a_call_after_it() {
        let (h, now) = history(10);
        let start = now.load(Ordering::Relaxed) / 60 * 60;
        now.store(start, Ordering::Relaxed);
        h.record("1", "s", "f", ok(50));
        // No call since: the minute is not closed, its percentiles come from the histogram.
        now.store(start + 600, Ordering::Relaxed);
        let w = h.window("1", "s", "f");
        let p = &w[MINUTES - 11];
        assert_eq!(p.minute_start, start);
        assert_eq!(p.invocations, 1);
        assert!(p.p50_ms.is_some());
    }

    #[test]
    fn a_clock_going_back_counts_in_the_live_minute() {
        let (h, now) = history(10);
        let start = now.load(Ordering::Relaxed) / 60 * 60;
        now.store(start + 60, Ordering::Relaxed);
        h.record("1", "s", "f", ok(1));
        now.store(start + 30, Ordering::Relaxed);
        h.record("1", "s", "f", ok(1));
        now.store(start + 61, Ordering::Relaxed);
        let w = h.window("1", "s", "f");
        assert_eq!(w.last().unwrap().invocations, 2);
    }

    #[test]
    fn functions_are_apart_and_capped_and_idle_ones_go() {
        let (h, now) = history(3);
        for f in ["a", "b", "c", "d"] {
            h.record("1", "s", f, ok(1));
        }
        assert_eq!(h.len(), 3);
        let total = |f: &str| {
            h.window("1", "s", f)
                .iter()
                .map(|p| p.invocations)
                .sum::<u64>()
        };
        assert_eq!(total("a"), 1);
        assert_eq!(total("d"), 0, "over the cap: not kept");
        assert_eq!(h.window("1", "s", "d").len(), MINUTES);
        assert_eq!(total("x"), 0);
        // Same names in another account or service are other functions.
        assert_eq!(
            h.window("2", "s", "a")
                .iter()
                .map(|p| p.invocations)
                .sum::<u64>(),
            0
        );

        h.forget("1", "s", Some("b"));
        assert_eq!(h.len(), 2);
        h.record("1", "s", "d", ok(1));
        assert_eq!(total("d"), 1);

        // An hour later "a" is called again; the others were idle for the hour and make room.
        now.fetch_add(3600, Ordering::Relaxed);
        h.record("1", "s", "a", ok(1));
        h.record("1", "s", "e", ok(1));
        h.record("1", "s", "f", ok(1));
        assert_eq!(h.len(), 3);
        assert_eq!(total("e"), 1);
        assert_eq!(total("f"), 1);
        assert_eq!(total("c"), 0);
        h.forget("1", "s", None);
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn concurrent_calls_are_all_counted() {
        let (h, _) = history(10);
        let h = Arc::new(h);
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let h = h.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u64 {
                        h.record("1", "s", "f", ok(i % 100));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let w = h.window("1", "s", "f");
        assert_eq!(w.last().unwrap().invocations, 40_000);
    }
}
