//! FC 3.0 concurrency configs (`reservedConcurrency`) and the cap they put on a function.
//!
//! A config belongs to a function (all its qualifiers together) and caps how many requests of
//! it may be in flight at once: synchronous InvokeFunction, HTTP-trigger and custom-domain
//! calls ([`Control::invoke_here`], which all of them pass) and async runs (the async engine
//! takes the same permit before it hands a run to the instance manager). A call over the cap
//! is refused at once: a synchronous one with FC's `429 ResourceExhausted`, an async one is
//! retried later by the engine as throttled (it never fails for it within FC's retry window).
//! `reservedConcurrency` 0 stops a function. FC also *reserves* that much of the account's
//! capacity for the function; fcd has no account-wide pool to take it from, so the
//! reservation has no effect beyond the cap.
//!
//! The hot path reads the cap from memory: one slot per function holds the in-flight count
//! and the cap as last read from the store. A config write, or any invalidation of the
//! function's service (another node's write arrives as one), marks the cap unknown, and the
//! next call reads it again; the in-flight count is kept across that, so calls admitted under
//! the old cap still count. In a cluster each node counts its own calls: the cap is per node.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use fcd_core::FcError;
use fcd_core::fc3::Fc3Function;
use fcd_core::limits::{LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};
use fcd_store::StoreError;
use fcd_store::concurrency::{ConcurrencyConfig, ConcurrencyQuery};

use crate::{Control, internal};

/// The largest `reservedConcurrency` fcd takes (FC's own bound is the account's quota).
pub const RESERVED_CONCURRENCY_MAX: i64 = 100_000;

/// (account, service, function).
type FnId = (String, String, String);

/// What is known of one function's cap.
#[derive(Debug, Clone, Copy, Default)]
struct CapState {
    /// `None`: not read since the last invalidation. `Some(None)`: the function has no config.
    known: Option<Option<u32>>,
    /// Bumped by every invalidation, so a read of the store that an invalidation overtook is
    /// not kept.
    generation: u64,
}

/// One function's in-flight count and cap.
#[derive(Debug, Default)]
struct Slot {
    in_flight: AtomicU32,
    cap: Mutex<CapState>,
}

impl Slot {
    fn state(&self) -> CapState {
        self.cap.lock().map(|s| *s).unwrap_or_default()
    }

    /// Keeps a cap read from the store, unless an invalidation came since `generation`.
    fn learn(&self, generation: u64, cap: Option<u32>) {
        if let Ok(mut s) = self.cap.lock()
            && s.generation == generation
        {
            s.known = Some(cap);
        }
    }

    fn forget(&self) {
        if let Ok(mut s) = self.cap.lock() {
            s.known = None;
            s.generation = s.generation.wrapping_add(1);
        }
    }

    /// Takes one place under `cap` (none: always), or says the function is at its cap.
    fn try_enter(self: &Arc<Self>, cap: Option<u32>) -> Result<ReservedPermit, u32> {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if let Some(cap) = cap
            && before >= cap
        {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(cap);
        }
        Ok(ReservedPermit { slot: self.clone() })
    }
}

/// One admitted request of a function; its place is given back when dropped.
#[derive(Debug)]
pub struct ReservedPermit {
    slot: Arc<Slot>,
}

impl Drop for ReservedPermit {
    fn drop(&mut self) {
        self.slot.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Why a request was not admitted.
#[derive(Debug)]
pub(crate) enum Refused {
    /// The function has this many requests in flight already (its `reservedConcurrency`).
    AtCap(u32),
    /// Its cap could not be read.
    Store(FcError),
}

impl Refused {
    /// The error a synchronous caller gets.
    pub(crate) fn into_error(self, service: &str, function: &str) -> FcError {
        match self {
            Refused::AtCap(n) => {
                let name = Fc3Function::from_stored(service, function).name();
                FcError::ResourceExhausted(format!(
                    "function '{name}' already has {n} requests in flight, its reservedConcurrency: retry later or raise it"
                ))
            }
            Refused::Store(e) => e,
        }
    }
}

/// The per-function slots of this node.
#[derive(Debug, Default)]
pub(crate) struct ReservedCaps {
    slots: RwLock<HashMap<FnId, Arc<Slot>>>,
}

impl ReservedCaps {
    fn slot(&self, account: &str, service: &str, function: &str) -> Arc<Slot> {
        let key = (account.to_owned(), service.to_owned(), function.to_owned());
        if let Some(s) = self.slots.read().ok().and_then(|m| m.get(&key).cloned()) {
            return s;
        }
        match self.slots.write() {
            Ok(mut m) => m.entry(key).or_default().clone(),
            Err(_) => Arc::new(Slot::default()),
        }
    }

    /// Marks the caps of a function, of every function of a service (`function: None`), of an
    /// account (`service: None`) or of all (`account: None`) unknown. Slots stay: their
    /// in-flight counts are still true.
    pub(crate) fn forget(
        &self,
        account: Option<&str>,
        service: Option<&str>,
        function: Option<&str>,
    ) {
        if let Ok(m) = self.slots.read() {
            for ((a, s, f), slot) in m.iter() {
                if account.is_none_or(|x| x == a)
                    && service.is_none_or(|x| x == s)
                    && function.is_none_or(|x| x == f)
                {
                    slot.forget();
                }
            }
        }
    }

    /// The function's cap if it is known to have one (nothing is read from the store).
    fn known_cap(&self, account: &str, service: &str, function: &str) -> Option<u32> {
        let key = (account.to_owned(), service.to_owned(), function.to_owned());
        let slot = self.slots.read().ok()?.get(&key).cloned()?;
        slot.state().known.flatten()
    }

    /// Requests of a function in flight on this node.
    #[cfg(test)]
    fn in_flight(&self, account: &str, service: &str, function: &str) -> u32 {
        self.slot(account, service, function)
            .in_flight
            .load(Ordering::Acquire)
    }
}

fn not_found(service: &str, function: &str) -> FcError {
    let name = Fc3Function::from_stored(service, function).name();
    FcError::Fc3Message {
        code: "ConcurrencyConfigNotFound",
        status: 404,
        message: format!("concurrency config of function '{name}' does not exist"),
    }
}

/// A ListConcurrencyConfigs page.
#[derive(Debug)]
pub struct ConcurrencyPage {
    pub configs: Vec<ConcurrencyConfig>,
    /// The (service, function) the next page starts at.
    pub next: Option<(String, String)>,
}

impl Control {
    /// Admits one request of a function under its `reservedConcurrency`, or refuses it.
    pub(crate) async fn reserve(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<ReservedPermit, Refused> {
        let slot = self.reserved.slot(account, service, function);
        let state = slot.state();
        let cap = match state.known {
            Some(cap) => cap,
            None => {
                let cap = self
                    .store
                    .get_concurrency_config(account, service, function)
                    .await
                    .map_err(|e| Refused::Store(internal("get concurrency config", e)))?
                    .map(|c| c.reserved_concurrency);
                slot.learn(state.generation, cap);
                cap
            }
        };
        slot.try_enter(cap).map_err(Refused::AtCap)
    }

    /// The function's `reservedConcurrency`, if it has one and this node has read it: the async
    /// engine runs no more of it at once than that, rather than starting runs only to see them
    /// throttled.
    pub(crate) fn known_reserved(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Option<u32> {
        self.reserved.known_cap(account, service, function)
    }

    /// The config changed here: this node reads it again, and every other node is told.
    async fn concurrency_changed(&self, account: &str, service: &str, function: &str) {
        self.reserved
            .forget(Some(account), Some(service), Some(function));
        self.publish_invalidation(account, Some(service)).await;
    }

    /// PutConcurrencyConfig: replaces the function's `reservedConcurrency`.
    pub async fn put_concurrency_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        reserved: Option<i64>,
    ) -> Result<ConcurrencyConfig, FcError> {
        let reserved =
            reserved.ok_or_else(|| FcError::invalid("reservedConcurrency is required"))?;
        if !(0..=RESERVED_CONCURRENCY_MAX).contains(&reserved) {
            return Err(FcError::invalid(format!(
                "reservedConcurrency {reserved} is out of range: it must be between 0 and {RESERVED_CONCURRENCY_MAX}"
            )));
        }
        self.get_function(account, service, function).await?;
        let now = fcd_core::time::now();
        let cfg = ConcurrencyConfig {
            service: service.to_owned(),
            function: function.to_owned(),
            reserved_concurrency: reserved as u32,
            created_time: now.clone(),
            last_modified_time: now,
        };
        let stored = match self.store.put_concurrency_config(account, &cfg).await {
            Ok(c) => c,
            // Deleted meanwhile.
            Err(StoreError::ParentNotFound) => {
                return Err(FcError::FunctionNotFound {
                    service: service.to_owned(),
                    function: function.to_owned(),
                });
            }
            Err(e) => return Err(internal("put concurrency config", e)),
        };
        self.concurrency_changed(account, service, function).await;
        Ok(stored)
    }

    pub async fn get_concurrency_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<ConcurrencyConfig, FcError> {
        match self
            .store
            .get_concurrency_config(account, service, function)
            .await
        {
            Ok(Some(c)) => Ok(c),
            Ok(None) => {
                self.get_function(account, service, function).await?;
                Err(not_found(service, function))
            }
            Err(e) => Err(internal("get concurrency config", e)),
        }
    }

    pub async fn delete_concurrency_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<(), FcError> {
        match self
            .store
            .delete_concurrency_config(account, service, function)
            .await
        {
            Ok(()) => {
                self.concurrency_changed(account, service, function).await;
                Ok(())
            }
            Err(StoreError::NotFound) => {
                self.get_function(account, service, function).await?;
                Err(not_found(service, function))
            }
            Err(e) => Err(internal("delete concurrency config", e)),
        }
    }

    /// ListConcurrencyConfigs: the account's configs in (service, function) order, optionally
    /// of one function, from `from` on.
    pub async fn list_concurrency_configs(
        &self,
        account: &str,
        only: Option<(&str, &str)>,
        from: Option<(String, String)>,
        limit: Option<u32>,
    ) -> Result<ConcurrencyPage, FcError> {
        let limit = limit.unwrap_or(LIST_LIMIT_DEFAULT);
        if limit == 0 || limit > LIST_LIMIT_MAX {
            return Err(FcError::invalid(format!(
                "limit {limit} is out of range: it must be between 1 and {LIST_LIMIT_MAX}"
            )));
        }
        let mut configs = self
            .store
            .list_concurrency_configs(
                account,
                &ConcurrencyQuery {
                    service: only.map(|(s, _)| s.to_owned()),
                    function: only.map(|(_, f)| f.to_owned()),
                    from,
                    limit: limit + 1,
                },
            )
            .await
            .map_err(|e| internal("list concurrency configs", e))?;
        let next = if configs.len() > limit as usize {
            configs
                .pop()
                .map(|c| (c.service.clone(), c.function.clone()))
        } else {
            None
        };
        Ok(ConcurrencyPage { configs, next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use fcd_core::model::{CodeRef, Function, FunctionUpdate, ServiceUpdate};
    use fcd_store::{MetadataStore, SqliteStore, StoredFunction};

    #[tokio::test]
    async fn the_cap_follows_config_writes_here_and_invalidations_from_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let c = crate::testkit::control(dir.path(), store.clone(), "n");
        c.create_service(
            "acc",
            ServiceUpdate {
                service_name: Some("s".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        let f = Function::create(
            "fid".into(),
            "fn".into(),
            FunctionUpdate {
                runtime: Some("custom".into()),
                ..Default::default()
            },
            CodeRef {
                checksum: "1".into(),
                size: 1,
            },
            "t".into(),
        )
        .unwrap();
        store
            .insert_function(
                "acc",
                "s",
                &StoredFunction {
                    function: f,
                    code_digest: "d".into(),
                    etag: "e".into(),
                },
            )
            .await
            .unwrap();

        // No config: anything goes.
        let mut free = Vec::new();
        for _ in 0..3 {
            free.push(c.reserve("acc", "s", "fn").await.unwrap());
        }
        drop(free);

        c.put_concurrency_config("acc", "s", "fn", Some(1))
            .await
            .unwrap();
        let first = c.reserve("acc", "s", "fn").await.unwrap();
        let refused = c.reserve("acc", "s", "fn").await.unwrap_err();
        assert!(matches!(refused, Refused::AtCap(1)));
        let e = refused.into_error("s", "fn");
        assert_eq!((e.code(), e.http_status()), ("ResourceExhausted", 429));
        assert!(e.to_string().contains("'s$fn'"), "{e}");
        drop(first);
        let again = c.reserve("acc", "s", "fn").await.unwrap();

        // Another node's write (straight to the shared store) is not seen until its
        // invalidation arrives; the call admitted before still counts after it.
        let now = fcd_core::time::now();
        store
            .put_concurrency_config(
                "acc",
                &ConcurrencyConfig {
                    service: "s".into(),
                    function: "fn".into(),
                    reserved_concurrency: 2,
                    created_time: now.clone(),
                    last_modified_time: now,
                },
            )
            .await
            .unwrap();
        assert!(c.reserve("acc", "s", "fn").await.is_err());
        c.apply_cluster_event(fcd_cluster::ClusterEvent::Invalidate {
            account: "acc".into(),
            service: Some("s".into()),
        })
        .await;
        let second = c.reserve("acc", "s", "fn").await.unwrap();
        assert!(matches!(
            c.reserve("acc", "s", "fn").await,
            Err(Refused::AtCap(2))
        ));
        drop((again, second));

        // 0 refuses everything; deleting the config lifts the cap.
        c.put_concurrency_config("acc", "s", "fn", Some(0))
            .await
            .unwrap();
        assert!(matches!(
            c.reserve("acc", "s", "fn").await,
            Err(Refused::AtCap(0))
        ));
        c.delete_concurrency_config("acc", "s", "fn").await.unwrap();
        assert!(c.reserve("acc", "s", "fn").await.is_ok());
        assert!(matches!(
            c.get_concurrency_config("acc", "s", "fn").await,
            Err(FcError::Fc3Message {
                code: "ConcurrencyConfigNotFound",
                ..
            })
        ));
    }

    #[test]
    fn a_cap_admits_that_many_and_gives_places_back() {
        let caps = ReservedCaps::default();
        let slot = caps.slot("a", "s", "f");
        let one = slot.try_enter(Some(2)).unwrap();
        let two = slot.try_enter(Some(2)).unwrap();
        assert_eq!(slot.try_enter(Some(2)).unwrap_err(), 2);
        assert_eq!(caps.in_flight("a", "s", "f"), 2);
        drop(one);
        let three = slot.try_enter(Some(2)).unwrap();
        drop((two, three));
        assert_eq!(caps.in_flight("a", "s", "f"), 0);
        // Another function has its own count.
        let _other = caps.slot("a", "s", "g").try_enter(Some(1)).unwrap();
        assert!(caps.slot("a", "s", "f").try_enter(Some(1)).is_ok());
    }

    #[test]
    fn zero_admits_nothing_and_no_cap_admits_everything_but_still_counts() {
        let caps = ReservedCaps::default();
        let slot = caps.slot("a", "s", "f");
        assert_eq!(slot.try_enter(Some(0)).unwrap_err(), 0);
        let held: Vec<_> = (0..5).map(|_| slot.try_enter(None).unwrap()).collect();
        assert_eq!(caps.in_flight("a", "s", "f"), 5);
        // A cap put while calls run counts them.
        assert_eq!(slot.try_enter(Some(5)).unwrap_err(), 5);
        drop(held);
        assert!(slot.try_enter(Some(5)).is_ok());
    }

    #[test]
    fn an_invalidation_overtaking_a_read_wins() {
        let caps = ReservedCaps::default();
        assert_eq!(caps.known_cap("a", "s", "f"), None);
        let slot = caps.slot("a", "s", "f");
        let before = slot.state();
        assert!(before.known.is_none());
        // A read starts, then the config changes (and is forgotten), then the read lands.
        caps.forget(Some("a"), Some("s"), None);
        slot.learn(before.generation, Some(1));
        assert!(slot.state().known.is_none(), "a stale read was kept");
        let now = slot.state();
        slot.learn(now.generation, Some(3));
        assert_eq!(slot.state().known, Some(Some(3)));
        assert_eq!(caps.known_cap("a", "s", "f"), Some(3));
        // Forgetting another service or account leaves it; forgetting all does not.
        caps.forget(Some("a"), Some("t"), None);
        caps.forget(Some("b"), None, None);
        assert_eq!(slot.state().known, Some(Some(3)));
        let _in = slot.try_enter(Some(3)).unwrap();
        caps.forget(None, None, None);
        assert!(slot.state().known.is_none());
        // The count survives the invalidation.
        assert_eq!(caps.in_flight("a", "s", "f"), 1);
    }
}
