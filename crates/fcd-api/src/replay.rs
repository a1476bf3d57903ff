//! Replay protection for ACS3-signed requests: the `x-acs-signature-nonce` of every verified
//! request is remembered for as long as its signed `x-acs-date` is fresh, and a second use is
//! refused with 400 `SignatureNonceUsed` (the code RAM and STS answer; FC documents none).
//!
//! Memory is bounded whatever the load. What is stored is a 64-bit fingerprint of
//! (access key id, nonce) under a SipHash key drawn at random per process, so a client can
//! neither predict nor aim collisions. Fingerprints sit in one-second buckets keyed by the
//! request's signed date: a replay carries the same date, so only its own bucket is looked at,
//! and whole buckets expire once their date can no longer pass the freshness check
//! ([`fcd_sign::MAX_CLOCK_SKEW`]). At ~15,000 signed calls/s that is ~27 M fingerprints for the
//! ±15-minute window; the cache holds at most `capacity` (default [`DEFAULT_CAPACITY`], ~4 M,
//! about 80 MiB at most). When it is full the oldest buckets are dropped and the *horizon* — the date
//! before which requests are refused outright — moves up to just after them: under extreme load
//! the remembered window shrinks rather than memory growing, and a dropped bucket can never be
//! replayed into because its dates are refused. The horizon never passes
//! [`MIN_WINDOW_SECS`] before now: if honouring the cap would need that (the cache filled by
//! requests dated now or later, e.g. a client signing with future dates), the request is
//! refused as throttled instead, and memory still stays bounded.
//!
//! The lock is sharded by fingerprint, so concurrent requests rarely meet; each shard holds an
//! equal part of the capacity. Only requests whose signature verified are ever recorded — the
//! caller guarantees it — so nobody can burn another client's nonce.
//!
//! The classic FC scheme (`Authorization: FC ak:sig`) has no nonce: identical legitimate calls
//! within one second sign identically, so its requests cannot be told apart from replays. They
//! are bounded only by the `Date` freshness check and, for bodies, by `Content-MD5`.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use fcd_core::FcError;

/// Default number of fingerprints remembered: 4 Mi, about 4.6 minutes of 15,000 signed calls/s.
/// An entry costs 8 bytes plus its bucket table's slack, 10 to 20 bytes in all (the tables grow
/// by powers of two); measured at 15,000 calls/s, 19.3 bytes, so ~76 MiB at the cap (see the
/// `measure` test).
pub const DEFAULT_CAPACITY: usize = 4 * 1024 * 1024;

/// The horizon never comes closer to now than this: clients whose clocks lag by up to a minute
/// keep working even when the cache is under pressure.
pub const MIN_WINDOW_SECS: i64 = 60;

/// Shards of the lock; a power of two.
const SHARDS: usize = 16;

/// How long a request's date stays acceptable, in whole seconds, plus a second for the
/// fraction dropped by bucketing.
fn window_secs() -> i64 {
    i64::try_from(fcd_sign::MAX_CLOCK_SKEW.as_secs()).unwrap_or(i64::MAX) + 1
}

/// Fingerprints are already keyed-random: hashing them again would only cost time.
#[derive(Default, Clone, Copy)]
struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Bucket = HashSet<u64, BuildHasherDefault<FingerprintHasher>>;

#[derive(Default)]
struct Shard {
    /// Signed date (Unix seconds) → fingerprints of the requests signed at that second.
    buckets: BTreeMap<i64, Bucket>,
    len: usize,
}

impl Shard {
    fn drop_oldest(&mut self) -> Option<i64> {
        let (date, bucket) = self.buckets.pop_first()?;
        self.len -= bucket.len();
        Some(date)
    }
}

/// Why a verified request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The nonce was already used by a request signed at the same date.
    Used,
    /// The request is dated before the horizon: the cache no longer covers that date.
    BeforeWindow,
    /// Recording it would exceed the capacity, and nothing old enough is left to drop.
    Full,
}

/// The nonces of recently verified ACS3 requests.
pub struct ReplayCache {
    shards: Box<[Mutex<Shard>]>,
    /// The per-process SipHash key of the fingerprints.
    key: RandomState,
    shard_capacity: usize,
    /// Requests dated before this (Unix seconds) are refused; moves up only.
    horizon: AtomicI64,
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("capacity", &(self.shard_capacity * SHARDS))
            .field("horizon", &self.horizon())
            .finish_non_exhaustive()
    }
}

impl ReplayCache {
    /// A cache remembering at most `capacity` nonces (at least one per shard).
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            key: RandomState::new(),
            shard_capacity: capacity.div_ceil(SHARDS).max(1),
            horizon: AtomicI64::new(i64::MIN),
        }
    }

    /// Most fingerprints held at once.
    pub fn capacity(&self) -> usize {
        self.shard_capacity * SHARDS
    }

    /// Fingerprints held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map(|s| s.len).unwrap_or(0))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The earliest signed date (Unix seconds) still accepted; `i64::MIN` while the cache has
    /// never had to drop anything.
    pub fn horizon(&self) -> i64 {
        self.horizon.load(Ordering::Acquire)
    }

    fn fingerprint(&self, access_key_id: &str, nonce: &str) -> u64 {
        // Hashing the pair as a tuple delimits the strings, so ("ab","c") ≠ ("a","bc").
        self.key.hash_one((access_key_id, nonce))
    }

    /// Records the nonce of a request whose signature has been verified, signed at `date` (Unix
    /// seconds); refuses it if it was seen, or if the cache cannot vouch for that date. `now` is
    /// the server clock in Unix seconds.
    pub fn check_and_remember(
        &self,
        access_key_id: &str,
        nonce: &str,
        date: i64,
        now: i64,
    ) -> Result<(), Refusal> {
        let window = window_secs();
        let expired_before = now.saturating_sub(window);
        if date < expired_before {
            // Freshness was checked before; this is a guard, not a path.
            return Err(Refusal::BeforeWindow);
        }
        let fp = self.fingerprint(access_key_id, nonce);
        // The table index of a bucket uses the low bits; the shard takes bits from the middle.
        let shard = &self.shards[(fp >> 32) as usize & (SHARDS - 1)];
        let mut s = match shard.lock() {
            Ok(s) => s,
            // A panic while holding the lock cannot leave a shard inconsistent beyond a wrong
            // count, so keep serving rather than failing every request from now on.
            Err(poisoned) => poisoned.into_inner(),
        };
        // Buckets whose dates can no longer pass the freshness check, or that the horizon
        // (possibly moved by another shard) already refuses.
        let dead_before = expired_before.max(self.horizon());
        while s
            .buckets
            .first_key_value()
            .is_some_and(|(d, _)| *d < dead_before)
        {
            s.drop_oldest();
        }
        if date < self.horizon() {
            return Err(Refusal::BeforeWindow);
        }
        if s.buckets.get(&date).is_some_and(|b| b.contains(&fp)) {
            return Err(Refusal::Used);
        }
        // Room for one more: drop the oldest buckets, moving the horizon past them.
        while s.len >= self.shard_capacity {
            match s.buckets.first_key_value() {
                Some((oldest, _)) if *oldest < now.saturating_sub(MIN_WINDOW_SECS) => {
                    if let Some(dropped) = s.drop_oldest() {
                        self.horizon.fetch_max(dropped + 1, Ordering::AcqRel);
                    }
                }
                _ => return Err(Refusal::Full),
            }
        }
        // The bucket of this very date may just have been dropped.
        if date < self.horizon() {
            return Err(Refusal::BeforeWindow);
        }
        s.buckets.entry(date).or_default().insert(fp);
        s.len += 1;
        Ok(())
    }
}

impl Refusal {
    /// FC's error for this refusal; `date` is the request's `x-acs-date` as sent.
    pub fn error(self, date: &str) -> FcError {
        match self {
            Refusal::Used => FcError::SignatureNonceUsed,
            Refusal::BeforeWindow => FcError::RequestOlderThanReplayWindow(date.to_owned()),
            Refusal::Full => FcError::ResourceThrottled(
                "too many signed requests to check for replays: retry shortly".into(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;

    #[test]
    fn a_replay_is_refused_and_other_nonces_pass() {
        let c = ReplayCache::new(1000);
        assert_eq!(c.check_and_remember("ak", "n1", NOW, NOW), Ok(()));
        assert_eq!(
            c.check_and_remember("ak", "n1", NOW, NOW),
            Err(Refusal::Used)
        );
        // Later, still within the window: the same date, so the same bucket.
        assert_eq!(
            c.check_and_remember("ak", "n1", NOW, NOW + 800),
            Err(Refusal::Used)
        );
        assert_eq!(c.check_and_remember("ak", "n2", NOW, NOW), Ok(()));
        // Another key may use the same nonce: it is another client.
        assert_eq!(c.check_and_remember("other", "n1", NOW, NOW), Ok(()));
        // Delimited: ("ak","n1") and ("akn","1") differ.
        assert_eq!(c.check_and_remember("akn", "1", NOW, NOW), Ok(()));
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn future_dated_requests_within_the_skew_are_remembered_until_they_expire() {
        let c = ReplayCache::new(1000);
        let future = NOW + 14 * 60;
        assert_eq!(c.check_and_remember("ak", "f", future, NOW), Ok(()));
        // Replayed 25 minutes later its date is still fresh (11 minutes old): still refused.
        assert_eq!(
            c.check_and_remember("ak", "f", future, NOW + 25 * 60),
            Err(Refusal::Used)
        );
    }

    #[test]
    fn buckets_expire_with_the_window() {
        let c = ReplayCache::new(100_000);
        for i in 0..10 {
            c.check_and_remember("ak", &format!("old{i}"), NOW, NOW)
                .unwrap();
        }
        // 16 minutes on the old date cannot pass the freshness check; a new request in each
        // shard's turn sweeps its expired buckets.
        let later = NOW + 16 * 60 + 2;
        // 1000 requests reach every one of the 16 shards (but with odds of ~1e-28).
        for i in 0..1000 {
            c.check_and_remember("ak", &format!("new{i}"), later, later)
                .unwrap();
        }
        assert_eq!(c.len(), 1000, "the expired bucket is gone from every shard");
        // Nothing was dropped for lack of room, so the horizon never moved.
        assert_eq!(c.horizon(), i64::MIN);
    }

    #[test]
    fn a_full_cache_shrinks_its_window_and_refuses_what_it_dropped() {
        // 16 shards of 4 entries.
        let c = ReplayCache::new(64);
        let start = NOW - 10 * 60;
        let mut accepted = Vec::new();
        for t in 0..200 {
            let nonce = format!("n{t}");
            let date = start + t;
            c.check_and_remember("ak", &nonce, date, NOW).unwrap();
            accepted.push((nonce, date));
        }
        assert!(c.len() <= c.capacity(), "{} > {}", c.len(), c.capacity());
        let horizon = c.horizon();
        assert!(horizon > start, "the window shrank: horizon {horizon}");
        assert!(horizon <= NOW - MIN_WINDOW_SECS);
        // Every request accepted before is refused now: replays of dropped ones as too old,
        // the others as used. None can be replayed.
        for (nonce, date) in &accepted {
            let r = c.check_and_remember("ak", nonce, *date, NOW);
            if *date < horizon {
                assert_eq!(r, Err(Refusal::BeforeWindow), "{nonce} at {date}");
            } else {
                assert_eq!(r, Err(Refusal::Used), "{nonce} at {date}");
            }
        }
        // A fresh request still passes: the window shrank, it did not close.
        assert_eq!(c.check_and_remember("ak", "fresh", NOW, NOW), Ok(()));
    }

    #[test]
    fn the_window_never_shrinks_past_the_last_minute() {
        let c = ReplayCache::new(16);
        // Fill every shard with requests dated now (or later): nothing may be dropped.
        let mut refused = 0;
        for i in 0..200 {
            match c.check_and_remember("ak", &format!("n{i}"), NOW + 5, NOW) {
                Ok(()) => {}
                Err(Refusal::Full) => refused += 1,
                Err(e) => panic!("{e:?}"),
            }
        }
        assert!(refused > 0);
        assert!(c.len() <= c.capacity());
        assert_eq!(c.horizon(), i64::MIN, "nothing recent was dropped");
    }

    #[test]
    fn fingerprints_are_keyed_per_process() {
        let a = ReplayCache::new(16);
        let b = ReplayCache::new(16);
        assert_ne!(a.fingerprint("ak", "n"), b.fingerprint("ak", "n"));
        assert_eq!(a.fingerprint("ak", "n"), a.fingerprint("ak", "n"));
    }

    /// Insert cost and memory at the cap: `cargo test --release -p fcd-api replay::tests::measure
    /// -- --ignored --nocapture`. Prints; asserts nothing about speed.
    #[test]
    #[ignore = "a measurement, run by hand"]
    fn measure() {
        fn rss_kib() -> u64 {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .and_then(|l| l.split_whitespace().nth(1))
                        .and_then(|v| v.parse().ok())
                })
                .unwrap_or(0)
        }
        let before = rss_kib();
        let c = ReplayCache::new(DEFAULT_CAPACITY);
        let rate = 15_000;
        let nonces: Vec<String> = (0..rate).map(|i| format!("{i:032x}")).collect();
        let t = std::time::Instant::now();
        let mut n = 0u64;
        // Six simulated minutes at 15,000/s: the cache fills (~4.7 min) and starts dropping.
        // Each second another access key id makes the (key, nonce) pairs new without
        // formatting a nonce per call.
        for sec in 0..360 {
            let now = NOW + sec;
            let key = format!("LTAIexampleKey{sec:04}");
            for nonce in &nonces {
                c.check_and_remember(&key, nonce, now, now).unwrap();
                n += 1;
            }
        }
        let elapsed = t.elapsed();
        let after = rss_kib();
        println!(
            "{n} inserts in {elapsed:?}: {:.0} ns/insert; \
             {} entries held (capacity {}); RSS +{} MiB ({:.1} bytes/entry); horizon now-{} s",
            elapsed.as_nanos() as f64 / n as f64,
            c.len(),
            c.capacity(),
            (after - before) / 1024,
            (after - before) as f64 * 1024.0 / c.len() as f64,
            NOW + 359 - c.horizon()
        );
    }
}
