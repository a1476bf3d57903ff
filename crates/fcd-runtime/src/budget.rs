//! The server-wide budget of instances and memory: every instance holds a reservation from it
//! for its whole life, so the machine is never asked for more than it was configured to give.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[derive(Debug)]
pub(crate) struct Budget {
    max_instances: u32,
    max_memory_mb: u64,
    instances: AtomicU32,
    memory_mb: AtomicU64,
}

/// One instance's share; given back on drop.
#[derive(Debug)]
pub(crate) struct Reservation {
    budget: Arc<Budget>,
    memory_mb: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.instances.fetch_sub(1, Ordering::AcqRel);
        self.budget
            .memory_mb
            .fetch_sub(self.memory_mb, Ordering::AcqRel);
    }
}

impl Budget {
    pub(crate) fn new(max_instances: u32, max_memory_mb: u64) -> Arc<Budget> {
        Arc::new(Budget {
            max_instances,
            max_memory_mb,
            instances: AtomicU32::new(0),
            memory_mb: AtomicU64::new(0),
        })
    }

    /// Reserves room for one instance of `memory_mb`, or `None` if the server is full.
    pub(crate) fn reserve(self: &Arc<Self>, memory_mb: u64) -> Option<Reservation> {
        let grew = self
            .instances
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_instances).then_some(n + 1)
            });
        if grew.is_err() {
            return None;
        }
        let fits = self
            .memory_mb
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                (m + memory_mb <= self.max_memory_mb).then_some(m + memory_mb)
            });
        if fits.is_err() {
            self.instances.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Reservation {
            budget: self.clone(),
            memory_mb,
        })
    }

    pub(crate) fn used(&self) -> (u32, u64) {
        (
            self.instances.load(Ordering::Acquire),
            self.memory_mb.load(Ordering::Acquire),
        )
    }

    pub(crate) fn limits(&self) -> (u32, u64) {
        (self.max_instances, self.max_memory_mb)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_respect_both_limits_and_come_back() {
        let b = Budget::new(2, 1024);
        let a = b.reserve(512).unwrap();
        let c = b.reserve(512).unwrap();
        assert!(b.reserve(128).is_none(), "instance limit");
        drop(c);
        assert!(b.reserve(1024).is_none(), "memory limit");
        let d = b.reserve(512).unwrap();
        assert_eq!(b.used(), (2, 1024));
        drop((a, d));
        assert_eq!(b.used(), (0, 0));
    }
}
