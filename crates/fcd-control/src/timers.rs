//! The timer-trigger scheduler: keeps every enabled timer trigger, and at each tick delivers
//! FC's timer event through the asynchronous path (so retries, `maxAsyncEventAgeInSeconds`,
//! destinations and stateful records apply exactly as to an async InvokeFunction).
//!
//! One task per server ([`spawn`], started by `fcd serve`, stopped at shutdown) owns a sorted
//! queue of next ticks (a binary heap keyed by tick time), so thousands of timers cost one heap
//! entry each and one wake-up per due second, never a task per trigger. The trigger list is
//! re-read only when the control plane's trigger generation moves (every trigger write, and the
//! deletes of what owns triggers, bump it); the generation is polled every [`POLL`], so creating,
//! disabling (`enable: false`), re-scheduling or deleting a trigger takes effect within that.
//! A firing is handed to its own task, so one slow enqueue never delays another timer.
//!
//! **Once per tick.** A tick is a whole second computed from the expression alone (`@every`
//! periods are counted from the Unix epoch, see `fcd_core::schedule`), so the same tick has the
//! same identity in every process. The event's request id (which is also the queued
//! invocation's id) is derived from (trigger id, tick), and the async queue refuses a second
//! invocation with an id it already holds (`UNIQUE (account, service, function, invocation_id)`,
//! checked in the same transaction as the insert). A tick that was enqueued is therefore never
//! enqueued again, whatever restarts, reloads or clock steps happen; no separate "last fired"
//! record (and no store migration) is needed, and the dedupe outlives the tick for the queue's
//! retention period, far longer than any tick is ever considered again.
//!
//! **No replay.** On start and whenever a trigger is (re)loaded, its next tick is the first one
//! strictly after now: ticks that passed while the server was down, or before the trigger
//! existed, are not fired. A tick found due more than [`MAX_LATENESS_SECS`] late (the process
//! was suspended, the clock jumped) is skipped as missed rather than fired long after its time.
//!
//! **One scheduler per cluster.** Every node runs the loop, but ticks are fired only while
//! [`TimerSource::active`] says so — for the control plane, while this node holds the cluster's
//! `timers` lease, checked at every tick. A node without it still consumes its due ticks (so it
//! never fires a backlog when it takes the lease over); the node taking over fires from its next
//! due tick. Around a takeover a tick could be handed to the queue by both nodes only across a
//! lease lapse, and the invocation-id dedup above makes that harmless.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, watch};

use fcd_core::FcError;
use fcd_core::schedule::Schedule;

use crate::asynchronous::AsyncEngine;

/// How often the trigger generation is checked.
pub const POLL: Duration = Duration::from_millis(500);
/// A tick found due later than this is treated as missed.
pub const MAX_LATENESS_SECS: i64 = 30;
/// Firings in flight at once (each is one durable enqueue); more wait their turn in their own
/// tasks, never in the scheduler loop.
const MAX_IN_FLIGHT: usize = 64;

/// An enabled timer trigger, ready to schedule.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerSpec {
    pub account: String,
    pub service: String,
    pub function: String,
    /// The qualifier invocations go to (`LATEST` when the trigger has none).
    pub qualifier: String,
    pub trigger_id: String,
    pub trigger_name: String,
    pub payload: String,
    pub schedule: Schedule,
}

impl TimerSpec {
    /// FC's timer event for `tick` (Unix seconds):
    /// `{"triggerTime":"2026-12-01T03:04:05Z","triggerName":"…","payload":"…"}`.
    pub fn event(&self, tick: i64) -> Vec<u8> {
        let time = time::OffsetDateTime::from_unix_timestamp(tick)
            .map(fcd_core::time::fc_timestamp)
            .unwrap_or_default();
        // A struct, not `json!`, so the fields keep FC's order.
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct TimerEvent<'a> {
            trigger_time: String,
            trigger_name: &'a str,
            payload: &'a str,
        }
        serde_json::to_vec(&TimerEvent {
            trigger_time: time,
            trigger_name: &self.trigger_name,
            payload: &self.payload,
        })
        .unwrap_or_default()
    }
}

/// The request id (and async invocation id) of `trigger_id`'s firing at `tick`: the same in
/// every process, shaped as a UUID (version 8, "custom") like every other request id.
pub fn tick_request_id(trigger_id: &str, tick: i64) -> String {
    let digest = Sha256::new()
        .chain_update(b"fcd-timer\0")
        .chain_update(trigger_id.as_bytes())
        .chain_update(b"\0")
        .chain_update(tick.to_be_bytes())
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

/// Where the scheduler reads the timer triggers from.
#[async_trait]
pub trait TimerSource: Send + Sync + 'static {
    /// Moves whenever any trigger may have changed.
    fn generation(&self) -> u64;
    /// Every enabled timer trigger.
    async fn timers(&self) -> Result<Vec<TimerSpec>, FcError>;
    /// Whether this process fires ticks now (in a cluster: holds the `timers` lease).
    fn active(&self) -> bool {
        true
    }
}

/// What a firing came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fired {
    Accepted,
    /// This tick was enqueued before (by this process or an earlier one).
    AlreadyFired,
}

/// Where ticks are delivered.
#[async_trait]
pub trait TimerSink: Send + Sync + 'static {
    async fn fire(&self, timer: &TimerSpec, tick: i64) -> Result<Fired, FcError>;
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

#[async_trait]
impl TimerSink for AsyncEngine {
    async fn fire(&self, timer: &TimerSpec, tick: i64) -> Result<Fired, FcError> {
        let request_id = tick_request_id(&timer.trigger_id, tick);
        let qualifier = (timer.qualifier != "LATEST").then_some(timer.qualifier.as_str());
        let accepted = self
            .accept(
                &timer.account,
                &timer.service,
                &timer.function,
                qualifier,
                Bytes::from(timer.event(tick)),
                &request_id,
                None,
                None,
            )
            .await;
        match accepted {
            Ok(_) => Ok(Fired::Accepted),
            Err(FcError::InvocationAlreadyExists { .. }) => Ok(Fired::AlreadyFired),
            Err(e) => Err(e),
        }
    }
}

/// The control plane as the scheduler's source: enabled timer triggers whose stored expression
/// still parses (a zone that vanished from the tz database is logged and skipped).
#[async_trait]
impl TimerSource for crate::Control {
    fn generation(&self) -> u64 {
        self.triggers_generation()
    }

    fn active(&self) -> bool {
        self.cluster().holds("timers")
    }

    async fn timers(&self) -> Result<Vec<TimerSpec>, FcError> {
        let all = self.timer_triggers().await?;
        let mut out = Vec::with_capacity(all.len());
        for t in all {
            if !t.config.enable {
                continue;
            }
            match Schedule::parse(&t.config.cron_expression) {
                Ok(schedule) => out.push(TimerSpec {
                    account: t.account,
                    service: t.service,
                    function: t.function,
                    qualifier: t.trigger.qualifier,
                    trigger_id: t.trigger.trigger_id,
                    trigger_name: t.trigger.trigger_name,
                    payload: t.config.payload,
                    schedule,
                }),
                Err(e) => tracing::warn!(
                    trigger = %t.trigger.trigger_name,
                    service = %t.service,
                    function = %t.function,
                    error = %e,
                    "timer trigger not scheduled"
                ),
            }
        }
        Ok(out)
    }
}

/// The scheduler's state: the timers and their next ticks. Pure (no clock, no IO), so every rule
/// is testable with made-up times.
#[derive(Debug, Default)]
pub struct Wheel {
    entries: HashMap<String, Entry>,
    /// (tick, entry version, trigger id); an item whose version is no longer the entry's is stale.
    heap: BinaryHeap<Reverse<(i64, u64, String)>>,
    version: u64,
}

#[derive(Debug)]
struct Entry {
    spec: Arc<TimerSpec>,
    next: i64,
    version: u64,
}

impl Wheel {
    /// Replaces the set of timers. A timer that is unchanged keeps its pending tick; a new or
    /// changed one gets the first tick strictly after `now` (Unix seconds).
    pub fn load(&mut self, specs: Vec<TimerSpec>, now: i64) {
        let mut entries = HashMap::with_capacity(specs.len());
        for spec in specs {
            let id = spec.trigger_id.clone();
            if let Some(old) = self.entries.remove(&id)
                && *old.spec == spec
            {
                entries.insert(id, old);
                continue;
            }
            let Some(next) = spec.schedule.next_after_unix(now) else {
                continue;
            };
            self.version += 1;
            self.heap.push(Reverse((next, self.version, id.clone())));
            entries.insert(
                id,
                Entry {
                    spec: Arc::new(spec),
                    next,
                    version: self.version,
                },
            );
        }
        self.entries = entries;
        // Stale items would otherwise pile up if triggers are rewritten often.
        if self.heap.len() > 2 * self.entries.len() + 64 {
            let live = &self.entries;
            self.heap = self
                .heap
                .drain()
                .filter(|Reverse((_, v, id))| live.get(id).is_some_and(|e| e.version == *v))
                .collect();
        }
    }

    /// Number of timers kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The earliest pending tick.
    pub fn next_tick(&mut self) -> Option<i64> {
        while let Some(Reverse((tick, v, id))) = self.heap.peek() {
            if self.entries.get(id).is_some_and(|e| e.version == *v) {
                return Some(*tick);
            }
            self.heap.pop();
        }
        None
    }

    /// Takes every tick due at `now` (Unix seconds) and schedules each timer's next one
    /// (strictly after `now`). Returns what to fire; ticks more than [`MAX_LATENESS_SECS`] late
    /// are dropped as missed.
    pub fn due(&mut self, now: i64) -> Vec<(Arc<TimerSpec>, i64)> {
        let mut out = Vec::new();
        while let Some(Reverse((tick, _, _))) = self.heap.peek() {
            if *tick > now {
                break;
            }
            let Some(Reverse((tick, v, id))) = self.heap.pop() else {
                break;
            };
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            if entry.version != v {
                continue;
            }
            if now - tick <= MAX_LATENESS_SECS {
                out.push((entry.spec.clone(), tick));
            } else {
                tracing::info!(trigger = %entry.spec.trigger_name, tick, "timer tick missed (the server was not running at its time); not replayed");
            }
            match entry.spec.schedule.next_after_unix(now.max(tick)) {
                Some(next) => {
                    self.version += 1;
                    entry.next = next;
                    entry.version = self.version;
                    self.heap.push(Reverse((next, self.version, id)));
                }
                None => {
                    self.entries.remove(&id);
                }
            }
        }
        out
    }
}

/// A running scheduler; [`TimerHandle::stop`] ends it.
#[derive(Debug)]
pub struct TimerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl TimerHandle {
    /// Stops scheduling (firings already handed to the async queue are not affected).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Starts the scheduler.
pub fn spawn(
    source: Arc<dyn TimerSource>,
    sink: Arc<dyn TimerSink>,
    clock: Arc<dyn Clock>,
) -> TimerHandle {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(run(source, sink, clock, stopped));
    TimerHandle { stop, task }
}

async fn run(
    source: Arc<dyn TimerSource>,
    sink: Arc<dyn TimerSink>,
    clock: Arc<dyn Clock>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut wheel = Wheel::default();
    let mut loaded: Option<u64> = None;
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut was_active = true;
    while !*stopped.borrow() {
        // Read the generation before the list: a write landing in between bumps it again, so
        // it is picked up on the next round.
        let generation = source.generation();
        if loaded != Some(generation) {
            match source.timers().await {
                Ok(specs) => {
                    wheel.load(specs, clock.now_ms().div_euclid(1000));
                    loaded = Some(generation);
                    tracing::debug!(timers = wheel.len(), "timer triggers loaded");
                }
                Err(e) => tracing::warn!(error = %e, "reading timer triggers failed; retrying"),
            }
        }
        let now_ms = clock.now_ms();
        let due = wheel.due(now_ms.div_euclid(1000));
        // Checked at every tick: another node may have taken the lease since the last.
        let active = !due.is_empty() && source.active();
        if !due.is_empty() && active != was_active {
            if active {
                tracing::info!("timer scheduler: this node holds the timers lease; firing ticks");
            } else {
                tracing::info!("timer scheduler: another node holds the timers lease; standing by");
            }
            was_active = active;
        }
        for (spec, tick) in due.into_iter().filter(|_| active) {
            let sink = sink.clone();
            let in_flight = in_flight.clone();
            tokio::spawn(async move {
                let Ok(_permit) = in_flight.acquire_owned().await else {
                    return;
                };
                match sink.fire(&spec, tick).await {
                    Ok(Fired::Accepted) => {
                        tracing::debug!(trigger = %spec.trigger_name, service = %spec.service, function = %spec.function, tick, "timer fired")
                    }
                    Ok(Fired::AlreadyFired) => {
                        tracing::info!(trigger = %spec.trigger_name, tick, "timer tick already fired; not fired again")
                    }
                    Err(e) => {
                        tracing::warn!(trigger = %spec.trigger_name, service = %spec.service, function = %spec.function, tick, error = %e, "timer trigger could not fire")
                    }
                }
            });
        }
        let poll_at = now_ms + POLL.as_millis() as i64;
        let wake_at = wheel
            .next_tick()
            .map(|t| t.saturating_mul(1000).min(poll_at))
            .unwrap_or(poll_at);
        let wait = Duration::from_millis(wake_at.saturating_sub(clock.now_ms()).max(1) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    fn spec(id: &str, expr: &str) -> TimerSpec {
        TimerSpec {
            account: "acct".into(),
            service: "svc".into(),
            function: "fn".into(),
            qualifier: "LATEST".into(),
            trigger_id: id.into(),
            trigger_name: format!("name-{id}"),
            payload: "p".into(),
            schedule: Schedule::parse(expr).unwrap(),
        }
    }

    /// 2026-12-01T03:04:00Z
    const T0: i64 = 1_796_094_240;

    /// Drives a wheel second by second from `from` to `to` (inclusive), collecting firings.
    fn drive(w: &mut Wheel, from: i64, to: i64) -> Vec<(String, i64)> {
        (from..=to)
            .flat_map(|now| w.due(now))
            .map(|(s, t)| (s.trigger_id.clone(), t))
            .collect()
    }

    #[test]
    fn event_and_request_id_are_fcs_shape_and_deterministic() {
        let s = spec("t1", "@every 1m");
        assert_eq!(
            String::from_utf8(s.event(T0 + 5)).unwrap(),
            r#"{"triggerTime":"2026-12-01T03:04:05Z","triggerName":"name-t1","payload":"p"}"#
        );
        let a = tick_request_id("t1", T0);
        assert_eq!(a, tick_request_id("t1", T0));
        assert_ne!(a, tick_request_id("t1", T0 + 60));
        assert_ne!(a, tick_request_id("t2", T0));
        let u = uuid::Uuid::parse_str(&a).unwrap();
        assert_eq!(u.get_version_num(), 8);
    }

    #[test]
    fn fires_each_tick_once_in_order() {
        let mut w = Wheel::default();
        w.load(
            vec![spec("a", "*/2 * * * * *"), spec("b", "@every 1m")],
            T0 - 1,
        );
        let fired = drive(&mut w, T0 - 1, T0 + 6);
        assert_eq!(
            fired,
            [
                ("a".to_owned(), T0),
                ("b".to_owned(), T0),
                ("a".to_owned(), T0 + 2),
                ("a".to_owned(), T0 + 4),
                ("a".to_owned(), T0 + 6)
            ]
        );
        // Asking again at the same second fires nothing more.
        assert!(w.due(T0 + 6).is_empty());
        assert_eq!(w.next_tick(), Some(T0 + 8));
    }

    #[test]
    fn no_tick_at_or_before_load_time_is_fired() {
        let mut w = Wheel::default();
        // Loaded exactly at a tick second (as after a restart within that second): that tick
        // belongs to the previous run and is not fired again.
        w.load(vec![spec("a", "*/2 * * * * *")], T0);
        assert_eq!(drive(&mut w, T0, T0 + 2), [("a".to_owned(), T0 + 2)]);
    }

    #[test]
    fn ticks_missed_while_down_are_not_replayed() {
        // The first run fires up to T0+2 and "stops".
        let mut first = Wheel::default();
        first.load(vec![spec("a", "*/2 * * * * *")], T0 - 1);
        assert_eq!(drive(&mut first, T0 - 1, T0 + 3).len(), 2);
        // A new process an hour later starts from scratch: nothing from the gap.
        let later = T0 + 3600 + 1;
        let mut second = Wheel::default();
        second.load(vec![spec("a", "*/2 * * * * *")], later);
        assert_eq!(
            drive(&mut second, later, later + 1),
            [("a".to_owned(), later + 1)]
        );
        // A running wheel that was not driven for a long time (suspended) skips the old tick.
        let mut stalled = Wheel::default();
        stalled.load(vec![spec("a", "@every 1m")], T0 - 1);
        assert!(stalled.due(T0 + 600).is_empty());
        assert_eq!(stalled.next_tick(), Some(T0 + 660));
        // A short stall still fires the late tick once.
        let mut late = Wheel::default();
        late.load(vec![spec("a", "@every 1m")], T0 - 1);
        assert_eq!(
            late.due(T0 + 5)
                .into_iter()
                .map(|(_, t)| t)
                .collect::<Vec<_>>(),
            [T0]
        );
        assert_eq!(late.next_tick(), Some(T0 + 60));
    }

    #[test]
    fn reload_keeps_unchanged_removes_deleted_and_reschedules_changed() {
        let mut w = Wheel::default();
        w.load(
            vec![spec("a", "@every 1m"), spec("b", "@every 1m")],
            T0 - 30,
        );
        // A reload that changes nothing keeps the pending ticks.
        w.load(
            vec![spec("a", "@every 1m"), spec("b", "@every 1m")],
            T0 - 10,
        );
        assert_eq!(w.next_tick(), Some(T0));
        // b deleted (or disabled: disabled timers are not in the list), a rescheduled.
        w.load(vec![spec("a", "0 30 * * * *")], T0 - 5);
        assert_eq!(w.len(), 1);
        assert!(w.due(T0 + 1).is_empty());
        assert_eq!(w.next_tick(), Some(T0 + 26 * 60));
        // Payload changes count as changes too, and stale heap items do not pile up.
        for i in 0..500 {
            let mut s = spec("a", "@every 1m");
            s.payload = format!("{i}");
            w.load(vec![s], T0);
        }
        assert!(w.heap.len() <= 2 * w.len() + 65);
        w.load(Vec::new(), T0);
        assert!(w.is_empty());
        assert_eq!(w.next_tick(), None);
    }

    #[test]
    fn thousands_of_timers_are_one_heap() {
        let mut w = Wheel::default();
        let specs: Vec<_> = (0..5000)
            .map(|i| {
                spec(
                    &format!("t{i}"),
                    if i % 2 == 0 {
                        "@every 1m"
                    } else {
                        "*/2 * * * * *"
                    },
                )
            })
            .collect();
        w.load(specs, T0 - 1);
        assert_eq!(w.len(), 5000);
        assert_eq!(w.due(T0).len(), 5000);
        assert_eq!(w.due(T0 + 1).len(), 0);
        assert_eq!(w.due(T0 + 2).len(), 2500);
    }

    // The async loop, on tokio's paused clock: no real waiting.

    struct FakeSource {
        generation: AtomicU64,
        specs: Mutex<Vec<TimerSpec>>,
        inactive: std::sync::atomic::AtomicBool,
    }

    impl FakeSource {
        fn set(&self, specs: Vec<TimerSpec>) {
            *self.specs.lock().unwrap() = specs;
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[async_trait]
    impl TimerSource for FakeSource {
        fn generation(&self) -> u64 {
            self.generation.load(Ordering::SeqCst)
        }
        async fn timers(&self) -> Result<Vec<TimerSpec>, FcError> {
            Ok(self.specs.lock().unwrap().clone())
        }
        fn active(&self) -> bool {
            !self.inactive.load(Ordering::SeqCst)
        }
    }

    /// Records firings; refuses a (trigger, tick) seen before, as the queue's unique id does.
    #[derive(Default)]
    struct FakeQueue {
        fired: Mutex<Vec<(String, i64, String)>>,
        ids: Mutex<std::collections::HashSet<String>>,
        slow_trigger: Option<String>,
    }

    #[async_trait]
    impl TimerSink for FakeQueue {
        async fn fire(&self, timer: &TimerSpec, tick: i64) -> Result<Fired, FcError> {
            if self.slow_trigger.as_deref() == Some(timer.trigger_id.as_str()) {
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            if !self
                .ids
                .lock()
                .unwrap()
                .insert(tick_request_id(&timer.trigger_id, tick))
            {
                return Ok(Fired::AlreadyFired);
            }
            let ev: serde_json::Value = serde_json::from_slice(&timer.event(tick)).unwrap();
            self.fired.lock().unwrap().push((
                timer.trigger_id.clone(),
                tick,
                ev["triggerTime"].as_str().unwrap_or_default().to_owned(),
            ));
            Ok(Fired::Accepted)
        }
    }

    /// Wall time that follows tokio's (paused) clock, starting at `base_ms`.
    struct TokioClock {
        base_ms: AtomicI64,
        start: tokio::time::Instant,
    }

    impl TokioClock {
        fn at(base_ms: i64) -> TokioClock {
            TokioClock {
                base_ms: AtomicI64::new(base_ms),
                start: tokio::time::Instant::now(),
            }
        }
    }

    impl Clock for TokioClock {
        fn now_ms(&self) -> i64 {
            self.base_ms.load(Ordering::SeqCst) + self.start.elapsed().as_millis() as i64
        }
    }

    fn ticks_of(q: &FakeQueue, id: &str) -> Vec<i64> {
        q.fired
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, _, _)| t == id)
            .map(|(_, tick, _)| *tick)
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn scheduler_fires_follows_changes_and_stops() {
        let source = Arc::new(FakeSource {
            generation: AtomicU64::new(0),
            inactive: Default::default(),
            specs: Mutex::new(vec![spec("a", "*/2 * * * * *")]),
        });
        let queue = Arc::new(FakeQueue::default());
        // Half a second before T0.
        let clock = Arc::new(TokioClock::at(T0 * 1000 - 500));
        let handle = spawn(source.clone(), queue.clone(), clock.clone());
        tokio::time::sleep(Duration::from_millis(5_000)).await;
        // T0-0.5 .. T0+4.5: ticks T0, T0+2, T0+4.
        assert_eq!(ticks_of(&queue, "a"), [T0, T0 + 2, T0 + 4]);
        assert_eq!(queue.fired.lock().unwrap()[0].2, "2026-12-01T03:04:00Z");

        // Disabled (gone from the list): nothing more.
        source.set(Vec::new());
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(ticks_of(&queue, "a").len(), 3);

        // Re-enabled with another expression: takes effect from the next tick after now.
        source.set(vec![spec("a", "*/5 * * * * *")]);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let after = ticks_of(&queue, "a");
        assert_eq!(after.len(), 5, "{after:?}");
        assert!(after[3..].iter().all(|t| t % 5 == 0));

        handle.stop().await;
        let n = queue.fired.lock().unwrap().len();
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(queue.fired.lock().unwrap().len(), n);
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_within_the_tick_second_neither_loses_nor_doubles() {
        let specs = vec![spec("a", "*/2 * * * * *")];
        let queue = Arc::new(FakeQueue::default());
        let source = Arc::new(FakeSource {
            generation: AtomicU64::new(0),
            inactive: Default::default(),
            specs: Mutex::new(specs.clone()),
        });
        // First run: T0-0.5 .. T0+0.3 fires T0.
        let first = spawn(
            source.clone(),
            queue.clone(),
            Arc::new(TokioClock::at(T0 * 1000 - 500)),
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        first.stop().await;
        assert_eq!(ticks_of(&queue, "a"), [T0]);
        // Second run starts at T0+0.6, still inside the tick second T0, and runs past T0+2.
        let second = spawn(
            source.clone(),
            queue.clone(),
            Arc::new(TokioClock::at(T0 * 1000 + 600)),
        );
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        second.stop().await;
        assert_eq!(ticks_of(&queue, "a"), [T0, T0 + 2]);

        // Even a clock stepped back across a fired tick does not fire it twice: the queue
        // refuses the repeated id (what the loop sees as `AlreadyFired`).
        let third = spawn(
            source.clone(),
            queue.clone(),
            Arc::new(TokioClock::at((T0 + 1) * 1000 + 900)),
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        third.stop().await;
        assert_eq!(ticks_of(&queue, "a"), [T0, T0 + 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn one_slow_trigger_does_not_hold_up_the_others() {
        let source = Arc::new(FakeSource {
            generation: AtomicU64::new(0),
            inactive: Default::default(),
            specs: Mutex::new(vec![
                spec("slow", "* * * * * *"),
                spec("fast", "* * * * * *"),
            ]),
        });
        let queue = Arc::new(FakeQueue {
            slow_trigger: Some("slow".into()),
            ..FakeQueue::default()
        });
        let handle = spawn(
            source,
            queue.clone(),
            Arc::new(TokioClock::at(T0 * 1000 - 500)),
        );
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        assert_eq!(ticks_of(&queue, "fast"), [T0, T0 + 1, T0 + 2]);
        assert!(ticks_of(&queue, "slow").is_empty());
        handle.stop().await;
    }

    #[tokio::test(start_paused = true)]
    async fn only_an_active_scheduler_fires_and_it_replays_nothing_on_taking_over() {
        let source = Arc::new(FakeSource {
            generation: AtomicU64::new(0),
            inactive: Default::default(),
            specs: Mutex::new(vec![spec("a", "* * * * * *")]),
        });
        source.inactive.store(true, Ordering::SeqCst);
        let queue = Arc::new(FakeQueue::default());
        let handle = spawn(
            source.clone(),
            queue.clone(),
            Arc::new(TokioClock::at(T0 * 1000 - 500)),
        );
        // Standing by (another node holds the lease): ticks T0..T0+2 pass unfired.
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        assert!(ticks_of(&queue, "a").is_empty());
        // Taking over at T0+2.5: from the next tick on, none of the passed ones.
        source.inactive.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(2_000)).await;
        assert_eq!(ticks_of(&queue, "a"), [T0 + 3, T0 + 4]);
        // Losing it again stops the firing at the next tick.
        source.inactive.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(3_000)).await;
        assert_eq!(ticks_of(&queue, "a"), [T0 + 3, T0 + 4]);
        handle.stop().await;
    }
}
