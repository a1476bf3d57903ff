//! The instances of one (function, resolved version) and the scheduling of requests onto them.
//!
//! A request takes a free slot on a live instance (up to `instanceConcurrency` per instance).
//! When every slot is taken it waits for an instance that is already starting, if that one
//! will have room for it, and only otherwise starts another — so a burst of first calls causes
//! as many cold starts as the burst needs instances, not one per request. Starting is bounded
//! by the function's `maximumInstanceCount` and the server's budget; a request that finds both
//! exhausted waits a short, bounded time for a slot and is then throttled.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::instance::Instance;

/// How long a request waits for a slot when no instance can be added before it is throttled.
pub(crate) const THROTTLE_WAIT: Duration = Duration::from_millis(200);

#[derive(Default)]
struct State {
    instances: Vec<Arc<Instance>>,
    /// Instances being started right now.
    starting: u32,
    /// Requests waiting for a slot on an instance that is starting.
    waiting_for_start: u32,
}

pub(crate) struct Pool {
    pub(crate) revision: String,
    /// The extracted code package its instances run (kept from collection while they live).
    pub(crate) code_dir: std::path::PathBuf,
    /// The layer packages its instances run (kept likewise).
    pub(crate) layer_digests: Vec<String>,
    /// The generation of the spec the pool was made for (see `FunctionSpec::generation`).
    pub(crate) generation: u64,
    capacity: u32,
    state: Mutex<State>,
    changed: Notify,
    /// Requests waiting for any change; releases only notify when this is non-zero.
    waiters: AtomicU32,
    /// Set when the pool was replaced or its function retired: requests must find the new pool.
    pub(crate) retired: AtomicBool,
    /// The function's own instance limit: [`crate::InstanceLimit::as_count`].
    pub(crate) max_instances: AtomicU32,
    /// Instances the provision config asks to keep warm.
    pub(crate) provisioned_target: AtomicU32,
}

/// What `acquire` found.
pub(crate) enum Acquired {
    /// A reserved slot on a live instance.
    Warm(Arc<Instance>),
    /// The caller must start an instance; the pool has counted it as starting.
    Start(StartTicket),
}

/// Proof that the pool counted one instance as starting; must be resolved with `finish`.
pub(crate) struct StartTicket {
    pool: Arc<Pool>,
    done: bool,
}

impl Drop for StartTicket {
    fn drop(&mut self) {
        if !self.done {
            self.pool.finish_start(None);
        }
    }
}

impl StartTicket {
    /// Adds the started instance (with one slot reserved for the starter) and wakes waiters.
    pub(crate) fn finish(mut self, inst: Arc<Instance>) {
        self.done = true;
        inst.active.fetch_add(1, Ordering::AcqRel);
        self.pool.finish_start(Some(inst));
    }
}

/// Why no slot could be had.
#[derive(Debug)]
pub(crate) enum NoSlot {
    /// The pool was retired; look the pool up again.
    Retired,
    /// The function's own instance limit.
    FunctionLimit(u32),
    /// The server's budget.
    ServerBudget,
}

impl Pool {
    pub(crate) fn new(
        revision: String,
        code_dir: std::path::PathBuf,
        generation: u64,
        capacity: u32,
    ) -> Pool {
        Pool {
            revision,
            code_dir,
            layer_digests: Vec::new(),
            generation,
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
            changed: Notify::new(),
            waiters: AtomicU32::new(0),
            retired: AtomicBool::new(false),
            max_instances: AtomicU32::new(u32::MAX),
            provisioned_target: AtomicU32::new(0),
        }
    }

    /// The pool of a function with layers.
    pub(crate) fn with_layers(mut self, digests: Option<Vec<String>>) -> Pool {
        self.layer_digests = digests.unwrap_or_default();
        self
    }

    fn reserve_slot(&self, inst: &Arc<Instance>) -> bool {
        if inst.dead.load(Ordering::Relaxed) || inst.hook_busy.load(Ordering::Relaxed) {
            return false;
        }
        let mut cur = inst.active.load(Ordering::Relaxed);
        while cur < self.capacity {
            match inst.active.compare_exchange_weak(
                cur,
                cur + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => cur = now,
            }
        }
        false
    }

    /// A slot for one request, or the right to start an instance. `can_start` says whether the
    /// server's budget allows one more instance (checked only when one is needed).
    pub(crate) async fn acquire(
        self: &Arc<Self>,
        start_wait: Duration,
        can_start: impl Fn() -> bool,
    ) -> Result<Acquired, NoSlot> {
        let started = Instant::now();
        loop {
            if self.retired.load(Ordering::Acquire) {
                return Err(NoSlot::Retired);
            }
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            enum Next {
                WaitForStart,
                Throttled(NoSlot),
            }
            let next = {
                let Ok(mut st) = self.state.lock() else {
                    return Err(NoSlot::Retired);
                };
                if let Some(inst) = st.instances.iter().find(|i| self.reserve_slot(i)) {
                    return Ok(Acquired::Warm(inst.clone()));
                }
                if st.waiting_for_start < st.starting * self.capacity {
                    st.waiting_for_start += 1;
                    Next::WaitForStart
                } else {
                    let live = st
                        .instances
                        .iter()
                        .filter(|i| !i.dead.load(Ordering::Relaxed))
                        .count() as u32;
                    let max = self.max_instances.load(Ordering::Acquire);
                    if live + st.starting >= max {
                        Next::Throttled(NoSlot::FunctionLimit(max))
                    } else if !can_start() {
                        Next::Throttled(NoSlot::ServerBudget)
                    } else {
                        st.starting += 1;
                        return Ok(Acquired::Start(StartTicket {
                            pool: self.clone(),
                            done: false,
                        }));
                    }
                }
            };
            self.waiters.fetch_add(1, Ordering::AcqRel);
            let limit = match &next {
                Next::WaitForStart => start_wait,
                Next::Throttled(_) => THROTTLE_WAIT,
            };
            let remaining = limit.saturating_sub(started.elapsed());
            let woke = tokio::time::timeout(remaining, notified).await.is_ok();
            self.waiters.fetch_sub(1, Ordering::AcqRel);
            if let Next::WaitForStart = next
                && let Ok(mut st) = self.state.lock()
            {
                st.waiting_for_start = st.waiting_for_start.saturating_sub(1);
            }
            if !woke && let Next::Throttled(why) = next {
                // One last look: a slot may have freed as the wait ended.
                if let Ok(st) = self.state.lock()
                    && let Some(inst) = st.instances.iter().find(|i| self.reserve_slot(i))
                {
                    return Ok(Acquired::Warm(inst.clone()));
                }
                return Err(why);
            }
            // The starting instance did not come up in time; try again from scratch
            // (which may start another one).
        }
    }

    fn finish_start(&self, inst: Option<Arc<Instance>>) {
        if let Ok(mut st) = self.state.lock() {
            st.starting = st.starting.saturating_sub(1);
            if let Some(i) = inst {
                st.instances.push(i);
            }
        }
        self.changed.notify_waiters();
    }

    /// Nothing lives, starts or waits here, and nothing is to be provisioned: the pool can go.
    pub(crate) fn is_empty(&self) -> bool {
        self.waiters.load(Ordering::Acquire) == 0
            && self.provisioned_target.load(Ordering::Acquire) == 0
            && self
                .state
                .lock()
                .map(|st| st.instances.is_empty() && st.starting == 0 && st.waiting_for_start == 0)
                .unwrap_or(false)
    }

    /// Adds an instance started outside a request (provisioned).
    pub(crate) fn add(&self, inst: Arc<Instance>) {
        if let Ok(mut st) = self.state.lock() {
            st.instances.push(inst);
        }
        self.changed.notify_waiters();
    }

    /// A slot was given back, or an instance died: remove dead instances and wake a waiter.
    pub(crate) fn released(&self, inst: &Arc<Instance>) {
        if inst.dead.load(Ordering::Acquire) {
            self.remove(inst);
        }
        if self.waiters.load(Ordering::Acquire) > 0 {
            self.changed.notify_waiters();
        }
    }

    pub(crate) fn remove(&self, inst: &Arc<Instance>) {
        if let Ok(mut st) = self.state.lock() {
            st.instances.retain(|i| !Arc::ptr_eq(i, inst));
        }
        self.changed.notify_waiters();
    }

    /// Marks the pool retired and hands back its instances.
    pub(crate) fn retire(&self) -> Vec<Arc<Instance>> {
        self.retired.store(true, Ordering::Release);
        let all = self
            .state
            .lock()
            .map(|mut st| std::mem::take(&mut st.instances))
            .unwrap_or_default();
        self.changed.notify_waiters();
        all
    }

    pub(crate) fn instances(&self) -> Vec<Arc<Instance>> {
        self.state
            .lock()
            .map(|st| st.instances.clone())
            .unwrap_or_default()
    }

    /// Idle, unprovisioned instances unused since `cutoff_ms`, taken out of the pool.
    pub(crate) fn take_idle(&self, cutoff_ms: u64) -> Vec<Arc<Instance>> {
        let Ok(mut st) = self.state.lock() else {
            return Vec::new();
        };
        let mut idle = Vec::new();
        st.instances.retain(|i| {
            let reclaim = i.active.load(Ordering::Acquire) == 0
                && !i.hook_busy.load(Ordering::Acquire)
                && !i.provisioned.load(Ordering::Acquire)
                && i.last_used_ms.load(Ordering::Acquire) <= cutoff_ms;
            if reclaim {
                i.dead.store(true, Ordering::Release);
                idle.push(i.clone());
            }
            !reclaim
        });
        idle
    }

    /// Instances whose environment's credentials expire before `before` (unix seconds), taken
    /// out of the pool and marked dead whether busy or not: they take no new request.
    pub(crate) fn take_env_expiring(&self, before: u64) -> Vec<Arc<Instance>> {
        let Ok(mut st) = self.state.lock() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        st.instances.retain(|i| {
            let stale = i.env_expires_at().is_some_and(|t| t < before);
            if stale {
                i.dead.store(true, Ordering::Release);
                out.push(i.clone());
            }
            !stale
        });
        if !out.is_empty() {
            self.changed.notify_waiters();
        }
        out
    }

    /// Dead instances still listed (crashed while idle), removed.
    pub(crate) fn prune_dead(&self) {
        if let Ok(mut st) = self.state.lock() {
            st.instances
                .retain(|i| !i.dead.load(Ordering::Acquire) && !i.exited());
        }
    }

    /// Live instances and the request slots free on them right now (an instance running a
    /// hook takes none). What a node advertises to its cluster peers, and what decides whether
    /// a call may stay on this node.
    pub(crate) fn warm_capacity(&self) -> (u32, u32) {
        self.warm(|_| {})
    }

    /// [`Pool::warm_capacity`], calling `each` with every live instance.
    pub(crate) fn warm(&self, mut each: impl FnMut(&Arc<Instance>)) -> (u32, u32) {
        let Ok(st) = self.state.lock() else {
            return (0, 0);
        };
        let mut live = 0;
        let mut free = 0;
        for i in st.instances.iter() {
            if i.dead.load(Ordering::Acquire) || i.exited() {
                continue;
            }
            each(i);
            live += 1;
            if !i.hook_busy.load(Ordering::Acquire) {
                free += self
                    .capacity
                    .saturating_sub(i.active.load(Ordering::Acquire));
            }
        }
        (live, free)
    }

    /// Gives up `surplus` provisioned instances after a target went down (here, or this
    /// node's share of it in a cluster): idle ones leave the pool at once and are returned, to
    /// be stopped; busy ones become on-demand instances, reclaimed once idle.
    pub(crate) fn shed_provisioned(&self, surplus: u32) -> Vec<Arc<Instance>> {
        let Ok(mut st) = self.state.lock() else {
            return Vec::new();
        };
        let mut left = surplus;
        let mut out = Vec::new();
        st.instances.retain(|i| {
            let idle = i.active.load(Ordering::Acquire) == 0
                && !i.hook_busy.load(Ordering::Acquire)
                && !i.dead.load(Ordering::Acquire);
            if left > 0 && idle && i.provisioned.load(Ordering::Acquire) {
                left -= 1;
                i.provisioned.store(false, Ordering::Release);
                i.dead.store(true, Ordering::Release);
                out.push(i.clone());
                return false;
            }
            true
        });
        for i in st.instances.iter() {
            if left == 0 {
                break;
            }
            if i.provisioned.load(Ordering::Acquire) && !i.dead.load(Ordering::Acquire) {
                i.provisioned.store(false, Ordering::Release);
                left -= 1;
            }
        }
        drop(st);
        self.changed.notify_waiters();
        out
    }

    /// Live provisioned instances, and how many are starting.
    pub(crate) fn provisioned_count(&self) -> u32 {
        self.state
            .lock()
            .map(|st| {
                st.instances
                    .iter()
                    .filter(|i| {
                        i.provisioned.load(Ordering::Acquire) && !i.dead.load(Ordering::Acquire)
                    })
                    .count() as u32
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    use http::HeaderMap;

    use super::Pool;
    use crate::instance::Instance;
    use crate::testkit::{self, Counting, Recorder, Shared};

    fn instance(id: &str, env_expires_at: Option<u64>) -> Arc<Instance> {
        let mut inst = Instance::new(
            id.into(),
            Box::new(Shared(Recorder::new())),
            HeaderMap::new(),
            &testkit::function(serde_json::json!({})),
        );
        if let Some(t) = env_expires_at {
            inst.set_credentials(Counting::new(testkit::creds(id, t)), Some(t));
        }
        Arc::new(inst)
    }

    #[tokio::test]
    async fn instances_whose_env_credentials_expire_are_taken_out_busy_or_not() {
        let pool = Pool::new("r".into(), "/code".into(), 1, 1);
        let soon = instance("soon", Some(1_000));
        let busy_soon = instance("busy-soon", Some(1_100));
        busy_soon.active.store(1, Ordering::SeqCst);
        let later = instance("later", Some(5_000));
        let no_role = instance("no-role", None);
        for i in [&soon, &busy_soon, &later, &no_role] {
            pool.add(i.clone());
        }
        let taken = pool.take_env_expiring(2_000);
        let mut ids: Vec<&str> = taken.iter().map(|i| i.id.as_str()).collect();
        ids.sort();
        assert_eq!(ids, ["busy-soon", "soon"]);
        assert!(taken.iter().all(|i| i.dead.load(Ordering::SeqCst)));
        let left: Vec<String> = pool.instances().iter().map(|i| i.id.clone()).collect();
        assert_eq!(left, ["later", "no-role"]);
        assert!(!later.dead.load(Ordering::SeqCst) && !no_role.dead.load(Ordering::SeqCst));
        assert!(pool.take_env_expiring(2_000).is_empty());
    }
}
