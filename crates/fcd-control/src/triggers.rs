//! Triggers and custom domains: their CRUD with FC's rules, and the lookups the HTTP data path
//! and the timer scheduler make.
//!
//! The lookups of the request path ([`Control::http_trigger`], [`Control::custom_domain`]) are
//! answered from memory. The HTTP-trigger cache keeps what a (function, qualifier) resolved to
//! — its trigger, "no HTTP trigger", or "no such function" — so junk URLs do not reach the
//! store either; it is bounded and emptied whole when full. Every write through this process
//! that can change an answer (a trigger write, a function or service created or gone) drops the
//! entries it affects and bumps a generation, so a lookup that read the store before the write
//! never caches what it read (the same scheme as the function spec cache). Custom domains are
//! few and are looked up by every request on a custom domain: all of them are held in one map,
//! re-read after any domain write.
//!
//! A trigger's qualifier must name LATEST, an existing version or an existing alias when the
//! trigger is written; deleting the alias later leaves the trigger, and its requests fail with
//! `AliasNotFound` when they resolve, as on FC. A custom domain's routes are not checked
//! against existing functions: FC resolves them per request (a domain may be deployed before
//! its functions), and so does fcd.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use fcd_core::FcError;
use fcd_core::domains::{CustomDomain, CustomDomainInput};
use fcd_core::triggers::{
    HttpTriggerConfig, TimerTriggerConfig, Trigger, TriggerConfig, TriggerInput, TriggerUpdate,
};
use fcd_core::versions::parse_version_id;
use fcd_store::StoreError;
use fcd_store::triggers::{StoredCustomDomain, StoredTrigger};

use super::{Control, LATEST, Page, Paging, check_if_match, internal, new_id, page};

/// The HTTP trigger a `/proxy/` request reaches, with its configuration parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpTriggerRoute {
    pub trigger: Trigger,
    pub config: HttpTriggerConfig,
}

/// A timer trigger with the function it fires.
#[derive(Debug, Clone, PartialEq)]
pub struct TimerTrigger {
    pub account: String,
    pub service: String,
    pub function: String,
    pub trigger: Trigger,
    pub config: TimerTriggerConfig,
}

/// Most (function, qualifier) answers the HTTP-trigger cache holds before it starts over.
const HTTP_CACHE_MAX: usize = 65_536;

/// (account, service, function, qualifier).
type HttpKey = (String, String, String, String);

#[derive(Debug, Clone)]
enum HttpEntry {
    Route(Arc<HttpTriggerRoute>),
    /// The function exists and has no HTTP trigger for the qualifier.
    NoTrigger,
    /// The service or function does not exist (the error says which).
    Missing(FcError),
}

type DomainMap = HashMap<String, Arc<CustomDomain>>;

/// The lookups' in-memory state; part of [`Control`].
#[derive(Debug, Default)]
pub(crate) struct TriggerCaches {
    http: RwLock<HashMap<HttpKey, HttpEntry>>,
    /// Bumped under `http`'s write lock by every invalidation.
    pub(crate) http_gen: AtomicU64,
    /// `None` until first read and after every domain write.
    domains: RwLock<Option<Arc<DomainMap>>>,
    domains_gen: AtomicU64,
    /// Every HTTP trigger by its 3.0 `urlId` (`crate::http_event`); `None` until first read
    /// and after every drop of cached HTTP-trigger answers (same generation as `http`).
    pub(crate) url_ids: RwLock<Option<Arc<crate::http_event::UrlIdMap>>>,
    /// [`Control::triggers_generation`].
    generation: AtomicU64,
}

fn trigger_not_found(service: &str, function: &str, trigger: &str) -> FcError {
    FcError::TriggerNotFound {
        service: service.to_owned(),
        function: function.to_owned(),
        trigger: trigger.to_owned(),
    }
}

impl Control {
    // ---- lookups of the request path and the scheduler ----

    /// The HTTP trigger a `/proxy/` request reaches: the function's `http` trigger whose
    /// qualifier equals the URL's (`LATEST` when the URL has none). From memory on a hit.
    /// `TriggerNotFound` (with an empty trigger name) when the function has none.
    pub async fn http_trigger(
        &self,
        account: &str,
        service: &str,
        qualifier: Option<&str>,
        function: &str,
    ) -> Result<Arc<HttpTriggerRoute>, FcError> {
        let qualifier = qualifier.filter(|q| !q.is_empty()).unwrap_or(LATEST);
        let key = (
            account.to_owned(),
            service.to_owned(),
            function.to_owned(),
            qualifier.to_owned(),
        );
        let cached = self
            .triggers
            .http
            .read()
            .ok()
            .and_then(|c| c.get(&key).cloned());
        let entry = match cached {
            Some(e) => e,
            None => {
                let generation = self.triggers.http_gen.load(Ordering::Acquire);
                let entry = self
                    .read_http_trigger(account, service, qualifier, function)
                    .await?;
                if let Ok(mut c) = self.triggers.http.write()
                    && self.triggers.http_gen.load(Ordering::Acquire) == generation
                {
                    if c.len() >= HTTP_CACHE_MAX {
                        c.clear();
                    }
                    c.insert(key, entry.clone());
                }
                entry
            }
        };
        match entry {
            HttpEntry::Route(r) => Ok(r),
            HttpEntry::NoTrigger => Err(trigger_not_found(service, function, "")),
            HttpEntry::Missing(e) => Err(e),
        }
    }

    /// What the store says about a (function, qualifier); `Err` only for failures not to cache.
    async fn read_http_trigger(
        &self,
        account: &str,
        service: &str,
        qualifier: &str,
        function: &str,
    ) -> Result<HttpEntry, FcError> {
        match self.get_function(account, service, function).await {
            Ok(_) => {}
            Err(e @ (FcError::ServiceNotFound(_) | FcError::FunctionNotFound { .. })) => {
                return Ok(HttpEntry::Missing(e));
            }
            Err(e) => return Err(e),
        }
        let found = self
            .store
            .find_triggers(account, service, function, "http", qualifier)
            .await
            .map_err(|e| internal("find http trigger", e))?;
        let Some(t) = found.into_iter().next() else {
            return Ok(HttpEntry::NoTrigger);
        };
        match t.trigger.config() {
            Ok(TriggerConfig::Http(config)) => Ok(HttpEntry::Route(Arc::new(HttpTriggerRoute {
                trigger: t.trigger,
                config,
            }))),
            Ok(_) => Err(internal(
                "http trigger",
                format!(
                    "trigger {} is stored as http with another config",
                    t.trigger.trigger_name
                ),
            )),
            Err(e) => Err(internal("http trigger config", e)),
        }
    }

    /// The custom domain for a Host header value (port stripped and lower-cased by the caller),
    /// from memory; `None` when no domain has that name (or the store cannot be read: logged).
    pub async fn custom_domain(&self, domain: &str) -> Option<Arc<CustomDomain>> {
        let loaded = self.triggers.domains.read().ok().and_then(|d| d.clone());
        let map = match loaded {
            Some(m) => m,
            None => {
                let generation = self.triggers.domains_gen.load(Ordering::Acquire);
                let all = match self.store.all_custom_domains().await {
                    Ok(all) => all,
                    Err(e) => {
                        tracing::error!(error = %e, "read custom domains");
                        return None;
                    }
                };
                let map: Arc<DomainMap> = Arc::new(
                    all.into_iter()
                        .map(|d| (d.domain.domain_name.clone(), Arc::new(d.domain)))
                        .collect(),
                );
                if let Ok(mut d) = self.triggers.domains.write()
                    && self.triggers.domains_gen.load(Ordering::Acquire) == generation
                {
                    *d = Some(map.clone());
                }
                map
            }
        };
        map.get(domain).cloned()
    }

    /// Every timer trigger of every account, for the scheduler (reads the store). A stored
    /// config that no longer parses is logged and left out rather than failing the rest.
    pub async fn timer_triggers(&self) -> Result<Vec<TimerTrigger>, FcError> {
        let all = self
            .store
            .all_triggers("timer")
            .await
            .map_err(|e| internal("list timer triggers", e))?;
        let mut out = Vec::with_capacity(all.len());
        for t in all {
            match t.trigger.trigger.config() {
                Ok(TriggerConfig::Timer(config)) => out.push(TimerTrigger {
                    account: t.account,
                    service: t.service,
                    function: t.function,
                    trigger: t.trigger.trigger,
                    config,
                }),
                other => tracing::error!(
                    trigger = %t.trigger.trigger.trigger_name,
                    service = %t.service,
                    function = %t.function,
                    config = ?other,
                    "stored timer trigger has an unusable config; skipped"
                ),
            }
        }
        Ok(out)
    }

    /// Bumped by every trigger write through this process: the scheduler re-reads
    /// [`Control::timer_triggers`] when it moves.
    pub fn triggers_generation(&self) -> u64 {
        self.triggers.generation.load(Ordering::Acquire)
    }

    /// Drops the cached HTTP-trigger answers of one function (`None`: of the whole service).
    pub(crate) fn forget_http_triggers(
        &self,
        account: &str,
        service: &str,
        function: Option<&str>,
    ) {
        if let Ok(mut c) = self.triggers.http.write() {
            self.triggers.http_gen.fetch_add(1, Ordering::AcqRel);
            c.retain(|(a, s, f, _), _| {
                !(a == account && s == service && function.is_none_or(|x| x == f))
            });
        }
        self.forget_url_ids();
    }

    /// Drops the cached HTTP-trigger answers of `account` (`None`: of every account).
    pub(crate) fn forget_http_triggers_of(&self, account: Option<&str>) {
        if let Ok(mut c) = self.triggers.http.write() {
            self.triggers.http_gen.fetch_add(1, Ordering::AcqRel);
            c.retain(|(a, ..), _| account.is_some_and(|x| x != a));
        }
        self.forget_url_ids();
    }

    /// Drops the `urlId` map (after `http_gen` moved, so a read under way does not keep it).
    fn forget_url_ids(&self) {
        if let Ok(mut m) = self.triggers.url_ids.write() {
            *m = None;
        }
    }

    /// Moves [`Control::triggers_generation`]: the scheduler re-reads the timers.
    pub(crate) fn triggers_changed(&self) {
        self.triggers.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// After a trigger write (here, and on the other nodes).
    async fn trigger_written(&self, account: &str, service: &str, function: &str) {
        self.forget_http_triggers(account, service, Some(function));
        self.triggers_changed();
        self.publish_invalidation(account, Some(service)).await;
    }

    /// After a custom domain write (here, and on the other nodes).
    async fn domains_written(&self, account: &str) {
        self.forget_domains();
        self.publish_invalidation(account, None).await;
    }

    pub(crate) fn forget_domains(&self) {
        if let Ok(mut d) = self.triggers.domains.write() {
            self.triggers.domains_gen.fetch_add(1, Ordering::AcqRel);
            *d = None;
        }
    }

    // ---- trigger CRUD ----

    /// A non-LATEST qualifier must name an existing version or alias.
    async fn check_trigger_qualifier(
        &self,
        account: &str,
        service: &str,
        qualifier: &str,
    ) -> Result<(), FcError> {
        if qualifier == LATEST {
            return Ok(());
        }
        match parse_version_id(qualifier) {
            Some(v) => self.version_snapshot(account, service, v).await.map(|_| ()),
            None => self
                .get_alias(account, service, qualifier)
                .await
                .map(|_| ()),
        }
    }

    fn trigger_store_error(service: &str, function: &str, t: &Trigger, e: StoreError) -> FcError {
        match e {
            StoreError::NotFound => trigger_not_found(service, function, &t.trigger_name),
            StoreError::ParentNotFound => FcError::FunctionNotFound {
                service: service.to_owned(),
                function: function.to_owned(),
            },
            StoreError::AlreadyExists => FcError::TriggerAlreadyExists {
                service: service.to_owned(),
                function: function.to_owned(),
                trigger: t.trigger_name.clone(),
            },
            StoreError::HttpTriggerExists(other) => FcError::invalid(format!(
                "function '{function}' of service '{service}' already has the http trigger '{other}' for qualifier '{}': a function has at most one http trigger per qualifier",
                t.qualifier
            )),
            StoreError::Conflict => FcError::ConcurrentUpdate(format!(
                "trigger '{}' was modified by another request; read it again and retry",
                t.trigger_name
            )),
            e => internal("trigger", e),
        }
    }

    pub async fn create_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        input: TriggerInput,
    ) -> Result<StoredTrigger, FcError> {
        self.get_function(account, service, function).await?;
        let trigger = Trigger::create(new_id(), input, fcd_core::time::now())?;
        self.check_trigger_qualifier(account, service, &trigger.qualifier)
            .await?;
        let stored = StoredTrigger {
            trigger,
            etag: new_id(),
        };
        self.store
            .insert_trigger(account, service, function, &stored)
            .await
            .map_err(|e| Self::trigger_store_error(service, function, &stored.trigger, e))?;
        self.trigger_written(account, service, function).await;
        Ok(stored)
    }

    pub async fn get_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        name: &str,
    ) -> Result<StoredTrigger, FcError> {
        match self
            .store
            .get_trigger(account, service, function, name)
            .await
        {
            Ok(Some(t)) => Ok(t),
            Ok(None) => {
                // FC names the missing service or function when that is what is missing.
                self.get_function(account, service, function).await?;
                Err(trigger_not_found(service, function, name))
            }
            Err(e) => Err(internal("get trigger", e)),
        }
    }

    pub async fn update_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        name: &str,
        u: TriggerUpdate,
        if_match: Option<&str>,
    ) -> Result<StoredTrigger, FcError> {
        let current = self.get_trigger(account, service, function, name).await?;
        check_if_match(if_match, &current.etag)?;
        let mut trigger = current.trigger.clone();
        trigger.apply(u, fcd_core::time::now())?;
        if trigger.qualifier != current.trigger.qualifier {
            self.check_trigger_qualifier(account, service, &trigger.qualifier)
                .await?;
        }
        let stored = StoredTrigger {
            trigger,
            etag: new_id(),
        };
        self.store
            .replace_trigger(account, service, function, &stored, &current.etag)
            .await
            .map_err(|e| Self::trigger_store_error(service, function, &stored.trigger, e))?;
        self.trigger_written(account, service, function).await;
        Ok(stored)
    }

    pub async fn delete_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<(), FcError> {
        let current = self.get_trigger(account, service, function, name).await?;
        check_if_match(if_match, &current.etag)?;
        self.store
            .delete_trigger(account, service, function, name, Some(&current.etag))
            .await
            .map_err(|e| Self::trigger_store_error(service, function, &current.trigger, e))?;
        self.trigger_written(account, service, function).await;
        Ok(())
    }

    pub async fn list_triggers(
        &self,
        account: &str,
        service: &str,
        function: &str,
        p: &Paging,
    ) -> Result<Page<StoredTrigger>, FcError> {
        self.get_function(account, service, function).await?;
        let (q, limit) = p.query()?;
        let items = self
            .store
            .list_triggers(account, service, function, &q)
            .await
            .map_err(|e| internal("list triggers", e))?;
        Ok(page(items, limit, |t| t.trigger.trigger_name.clone()))
    }

    // ---- custom domain CRUD ----

    pub async fn create_custom_domain(
        &self,
        account: &str,
        input: CustomDomainInput,
    ) -> Result<StoredCustomDomain, FcError> {
        let domain = CustomDomain::create(account.to_owned(), input, fcd_core::time::now())?;
        let stored = StoredCustomDomain {
            domain,
            etag: new_id(),
        };
        match self.store.insert_custom_domain(&stored).await {
            Ok(()) => {
                self.domains_written(account).await;
                Ok(stored)
            }
            Err(StoreError::AlreadyExists) => Err(FcError::DomainNameAlreadyExists(
                stored.domain.domain_name.clone(),
            )),
            Err(e) => Err(internal("insert custom domain", e)),
        }
    }

    /// The account's domain; another account's domain of that name is as good as none.
    pub async fn get_custom_domain(
        &self,
        account: &str,
        name: &str,
    ) -> Result<StoredCustomDomain, FcError> {
        match self.store.get_custom_domain(name).await {
            Ok(Some(d)) if d.domain.account_id == account => Ok(d),
            Ok(_) => Err(FcError::DomainNameNotFound(name.to_owned())),
            Err(e) => Err(internal("get custom domain", e)),
        }
    }

    /// UpdateCustomDomain: absent fields keep their values; `routeConfig` replaces the routes.
    pub async fn update_custom_domain(
        &self,
        account: &str,
        name: &str,
        input: CustomDomainInput,
        if_match: Option<&str>,
    ) -> Result<StoredCustomDomain, FcError> {
        let current = self.get_custom_domain(account, name).await?;
        check_if_match(if_match, &current.etag)?;
        if let Some(n) = input.domain_name.as_deref().filter(|n| *n != name) {
            return Err(FcError::invalid(format!(
                "domainName '{n}' in the body does not match '{name}' in the path"
            )));
        }
        let mut domain = current.domain.clone();
        domain.apply(input, fcd_core::time::now())?;
        let stored = StoredCustomDomain {
            domain,
            etag: new_id(),
        };
        match self
            .store
            .replace_custom_domain(&stored, &current.etag)
            .await
        {
            Ok(()) => {
                self.domains_written(account).await;
                Ok(stored)
            }
            Err(StoreError::NotFound) => Err(FcError::DomainNameNotFound(name.to_owned())),
            Err(StoreError::Conflict) => Err(FcError::ConcurrentUpdate(format!(
                "custom domain '{name}' was modified by another request; read it again and retry"
            ))),
            Err(e) => Err(internal("update custom domain", e)),
        }
    }

    pub async fn delete_custom_domain(
        &self,
        account: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<(), FcError> {
        let current = self.get_custom_domain(account, name).await?;
        check_if_match(if_match, &current.etag)?;
        match self
            .store
            .delete_custom_domain(account, name, Some(&current.etag))
            .await
        {
            Ok(()) => {
                self.domains_written(account).await;
                Ok(())
            }
            Err(StoreError::NotFound) => Err(FcError::DomainNameNotFound(name.to_owned())),
            Err(StoreError::Conflict) => Err(FcError::ConcurrentUpdate(format!(
                "custom domain '{name}' was modified by another request; read it again and retry"
            ))),
            Err(e) => Err(internal("delete custom domain", e)),
        }
    }

    pub async fn list_custom_domains(
        &self,
        account: &str,
        p: &Paging,
    ) -> Result<Page<StoredCustomDomain>, FcError> {
        let (q, limit) = p.query()?;
        let items = self
            .store
            .list_custom_domains(account, &q)
            .await
            .map_err(|e| internal("list custom domains", e))?;
        Ok(page(items, limit, |d| d.domain.domain_name.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use fcd_core::domains::{PathConfig, RouteConfig};
    use fcd_core::model::{CodeRef, Function, FunctionUpdate, ServiceUpdate};
    use fcd_store::{MetadataStore, SqliteStore, StoredFunction};
    use serde_json::json;

    const ACC: &str = "1234";

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<dyn MetadataStore>,
        control: Control,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let control = crate::testkit::control(dir.path(), store.clone(), "t");
        Fixture {
            _dir: dir,
            store,
            control,
        }
    }

    /// A function stored directly (its code is never run here).
    async fn add_function(f: &Fixture, service: &str, name: &str) {
        let u = FunctionUpdate {
            runtime: Some("custom".into()),
            ..Default::default()
        };
        let code = CodeRef {
            checksum: "1".into(),
            size: 1,
        };
        let stored = StoredFunction {
            function: Function::create("fid".into(), name.into(), u, code, "t".into()).unwrap(),
            code_digest: "d".into(),
            etag: "fe".into(),
        };
        f.store
            .insert_function(ACC, service, &stored)
            .await
            .unwrap();
        // As create_function would.
        f.control.forget_http_triggers(ACC, service, Some(name));
    }

    fn http(name: &str, qualifier: Option<&str>) -> TriggerInput {
        TriggerInput {
            trigger_name: Some(name.into()),
            trigger_type: Some("http".into()),
            qualifier: qualifier.map(Into::into),
            trigger_config: Some(json!(
                r#"{"authType":"anonymous","methods":["GET","post"]}"#
            )),
            ..TriggerInput::default()
        }
    }

    fn timer(name: &str) -> TriggerInput {
        TriggerInput {
            trigger_name: Some(name.into()),
            trigger_type: Some("timer".into()),
            trigger_config: Some(json!({"cronExpression": "@every 1m", "payload": "p"})),
            ..TriggerInput::default()
        }
    }

    #[tokio::test]
    async fn http_trigger_lookups_follow_writes() {
        let f = fixture().await;
        let c = &f.control;
        assert!(matches!(
            c.http_trigger(ACC, "s", None, "fn").await,
            Err(FcError::ServiceNotFound(_))
        ));
        c.create_service(
            ACC,
            ServiceUpdate {
                service_name: Some("s".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // The cached "no service" answer went with the create.
        assert!(matches!(
            c.http_trigger(ACC, "s", None, "fn").await,
            Err(FcError::FunctionNotFound { .. })
        ));
        add_function(&f, "s", "fn").await;
        assert!(matches!(
            c.http_trigger(ACC, "s", None, "fn").await,
            Err(FcError::TriggerNotFound { trigger, .. }) if trigger.is_empty()
        ));

        let created = c
            .create_trigger(ACC, "s", "fn", http("web", None))
            .await
            .unwrap();
        assert_eq!(created.trigger.qualifier, "LATEST");
        let route = c
            .http_trigger(ACC, "s", Some("LATEST"), "fn")
            .await
            .unwrap();
        assert_eq!(route.trigger.trigger_name, "web");
        assert_eq!(route.config.methods, ["GET", "POST"]);
        // A hit is the same Arc, from memory.
        let again = c.http_trigger(ACC, "s", None, "fn").await.unwrap();
        assert!(Arc::ptr_eq(&route, &again));

        // One http trigger per qualifier.
        let dup = c.create_trigger(ACC, "s", "fn", http("web2", None)).await;
        assert!(
            matches!(dup, Err(FcError::InvalidArgument(m)) if m.contains("at most one http trigger"))
        );
        let same = c.create_trigger(ACC, "s", "fn", http("web", None)).await;
        assert!(matches!(same, Err(FcError::TriggerAlreadyExists { .. })));
        // A qualifier must exist.
        assert!(matches!(
            c.create_trigger(ACC, "s", "fn", http("web2", Some("prod")))
                .await,
            Err(FcError::AliasNotFound { .. })
        ));
        assert!(matches!(
            c.create_trigger(ACC, "s", "fn", http("web2", Some("7")))
                .await,
            Err(FcError::VersionNotFound { .. })
        ));

        // An update is seen at once; a stale If-Match is refused.
        let u = TriggerUpdate {
            trigger_config: Some(json!({"authType": "function", "methods": ["PUT"]})),
            ..TriggerUpdate::default()
        };
        assert!(matches!(
            c.update_trigger(ACC, "s", "fn", "web", u.clone(), Some("stale"))
                .await,
            Err(FcError::PreconditionFailed)
        ));
        let updated = c
            .update_trigger(ACC, "s", "fn", "web", u, Some(&created.etag))
            .await
            .unwrap();
        assert_ne!(updated.etag, created.etag);
        let route = c.http_trigger(ACC, "s", None, "fn").await.unwrap();
        assert_eq!(route.config.methods, ["PUT"]);

        // Deleting the function is refused while it has triggers.
        assert!(matches!(
            c.delete_function(ACC, "s", "fn", None).await,
            Err(FcError::FunctionNotEmpty(n)) if n == "fn"
        ));
        assert!(matches!(
            c.delete_trigger(ACC, "s", "fn", "web", Some(&created.etag))
                .await,
            Err(FcError::PreconditionFailed)
        ));
        c.delete_trigger(ACC, "s", "fn", "web", Some(&updated.etag))
            .await
            .unwrap();
        assert!(matches!(
            c.http_trigger(ACC, "s", None, "fn").await,
            Err(FcError::TriggerNotFound { .. })
        ));
        assert!(matches!(
            c.get_trigger(ACC, "s", "fn", "web").await,
            Err(FcError::TriggerNotFound { trigger, .. }) if trigger == "web"
        ));
        c.delete_function(ACC, "s", "fn", None).await.unwrap();
        assert!(matches!(
            c.http_trigger(ACC, "s", None, "fn").await,
            Err(FcError::FunctionNotFound { .. })
        ));
    }

    #[tokio::test]
    async fn timer_triggers_and_generation() {
        let f = fixture().await;
        let c = &f.control;
        c.create_service(
            ACC,
            ServiceUpdate {
                service_name: Some("s".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        add_function(&f, "s", "fn").await;
        let g0 = c.triggers_generation();
        c.create_trigger(ACC, "s", "fn", timer("tick"))
            .await
            .unwrap();
        c.create_trigger(ACC, "s", "fn", http("web", None))
            .await
            .unwrap();
        assert!(c.triggers_generation() > g0);
        let timers = c.timer_triggers().await.unwrap();
        assert_eq!(timers.len(), 1);
        assert_eq!(timers[0].function, "fn");
        assert_eq!(timers[0].config.payload, "p");
        assert!(timers[0].config.enable);

        let g1 = c.triggers_generation();
        let off = TriggerUpdate {
            trigger_config: Some(json!({"cronExpression": "@every 1m", "enable": false})),
            ..TriggerUpdate::default()
        };
        c.update_trigger(ACC, "s", "fn", "tick", off, None)
            .await
            .unwrap();
        assert!(c.triggers_generation() > g1);
        assert!(!c.timer_triggers().await.unwrap()[0].config.enable);

        let page1 = c
            .list_triggers(
                ACC,
                "s",
                "fn",
                &Paging {
                    limit: Some(1),
                    ..Paging::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(page1.items.len(), 1);
        assert_eq!(page1.next_token.as_deref(), Some("web"));
    }

    fn domain(name: &str, function: &str) -> CustomDomainInput {
        CustomDomainInput {
            domain_name: Some(name.into()),
            route_config: Some(RouteConfig {
                routes: vec![PathConfig {
                    path: "/*".into(),
                    service_name: "s".into(),
                    function_name: function.into(),
                    qualifier: String::new(),
                    methods: vec![],
                    rewrite_config: None,
                }],
            }),
            ..CustomDomainInput::default()
        }
    }

    #[tokio::test]
    async fn custom_domains_from_memory_follow_writes() {
        let f = fixture().await;
        let c = &f.control;
        assert!(c.custom_domain("a.example.test").await.is_none());
        c.create_custom_domain(ACC, domain("a.example.test", "f1"))
            .await
            .unwrap();
        let d = c.custom_domain("a.example.test").await.unwrap();
        assert_eq!(d.account_id, ACC);
        assert_eq!(d.route_config.routes[0].function_name, "f1");
        assert!(matches!(
            c.create_custom_domain("other", domain("a.example.test", "f1"))
                .await,
            Err(FcError::DomainNameAlreadyExists(_))
        ));
        // Another account neither sees nor deletes it.
        assert!(matches!(
            c.get_custom_domain("other", "a.example.test").await,
            Err(FcError::DomainNameNotFound(_))
        ));
        assert!(matches!(
            c.delete_custom_domain("other", "a.example.test", None)
                .await,
            Err(FcError::DomainNameNotFound(_))
        ));

        c.update_custom_domain(
            ACC,
            "a.example.test",
            CustomDomainInput {
                route_config: domain("x", "f2").route_config,
                ..CustomDomainInput::default()
            },
            None,
        )
        .await
        .unwrap();
        let d = c.custom_domain("a.example.test").await.unwrap();
        assert_eq!(d.route_config.routes[0].function_name, "f2");
        assert!(
            c.update_custom_domain(ACC, "a.example.test", domain("b.example.test", "f"), None)
                .await
                .is_err()
        );

        c.delete_custom_domain(ACC, "a.example.test", None)
            .await
            .unwrap();
        assert!(c.custom_domain("a.example.test").await.is_none());
        assert!(
            c.list_custom_domains(ACC, &Paging::default())
                .await
                .unwrap()
                .items
                .is_empty()
        );
    }
}
