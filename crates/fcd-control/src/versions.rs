//! Versions, aliases and qualifier resolution.
//!
//! A version is an immutable snapshot of a service and its functions; an alias points at a
//! version and may send a share of traffic to one more. Aliases are cached for the invoke path
//! and re-read after any write to them through this process.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use fcd_core::FcError;
use fcd_core::model::{Function, Service};
use fcd_core::versions::{Alias, AliasUpdate, VersionInfo, check_alias_name, parse_version_id};
use fcd_store::{StoreError, StoredAlias, VersionSnapshot};

use super::{Control, LATEST, Page, Paging, check_if_match, internal, new_id, page};
use fcd_core::limits::{LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX};

/// An alias ready for routing. Traffic is split with a low-discrepancy sequence (golden-ratio
/// steps from a random start): over any run of requests the observed share of each version
/// stays within a few requests of its weight, without the clumping a random draw can show.
#[derive(Debug)]
pub(crate) struct AliasRoute {
    alias: Alias,
    start: f64,
    counter: AtomicU64,
}

const GOLDEN: f64 = 0.618_033_988_749_894_9;

impl AliasRoute {
    fn new(alias: Alias) -> AliasRoute {
        let seed = uuid::Uuid::new_v4().as_u128() as u64;
        AliasRoute {
            alias,
            start: (seed >> 11) as f64 / (1u64 << 53) as f64,
            counter: AtomicU64::new(0),
        }
    }

    fn pick(&self) -> &str {
        if self.alias.additional_version_weight.is_empty() {
            return &self.alias.version_id;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let r = (self.start + n as f64 * GOLDEN).fract();
        self.alias.route(r)
    }
}

/// A page of versions and the direction it was read in.
#[derive(Debug)]
pub struct VersionPage {
    pub versions: Vec<VersionInfo>,
    pub next_token: Option<String>,
    pub direction: &'static str,
}

fn version_not_found(service: &str, version: &str) -> FcError {
    FcError::VersionNotFound {
        service: service.to_owned(),
        version: version.to_owned(),
    }
}

fn alias_not_found(service: &str, alias: &str) -> FcError {
    FcError::AliasNotFound {
        service: service.to_owned(),
        alias: alias.to_owned(),
    }
}

impl Control {
    /// The version a qualifier names right now: a version id as is, an alias by its weights.
    pub(super) async fn route(
        &self,
        account: &str,
        service: &str,
        q: &str,
    ) -> Result<u64, FcError> {
        if let Some(v) = parse_version_id(q) {
            return Ok(v);
        }
        let key = (account.to_owned(), service.to_owned(), q.to_owned());
        let cached = self.aliases.read().ok().and_then(|c| c.get(&key).cloned());
        let route = match cached {
            Some(r) => r,
            None => {
                // Like the spec cache: a read that raced an alias write must not cache the
                // alias as it was before the write.
                let generation = self.alias_gen.load(Ordering::Acquire);
                let alias = self.get_alias(account, service, q).await?;
                let r = Arc::new(AliasRoute::new(alias.alias));
                if let Ok(mut c) = self.aliases.write()
                    && self.alias_gen.load(Ordering::Acquire) == generation
                {
                    c.insert(key, r.clone());
                }
                r
            }
        };
        parse_version_id(route.pick()).ok_or_else(|| alias_not_found(service, q))
    }

    /// The version a qualifier names for reading configuration: an alias's main version.
    pub(super) async fn fixed_version(
        &self,
        account: &str,
        service: &str,
        q: &str,
    ) -> Result<u64, FcError> {
        if let Some(v) = parse_version_id(q) {
            return Ok(v);
        }
        let alias = self.get_alias(account, service, q).await?;
        parse_version_id(&alias.alias.version_id).ok_or_else(|| alias_not_found(service, q))
    }

    pub(super) async fn version_snapshot(
        &self,
        account: &str,
        service: &str,
        version: u64,
    ) -> Result<VersionSnapshot, FcError> {
        match self.store.get_version(account, service, version).await {
            Ok(Some(s)) => Ok(s),
            Ok(None) => {
                self.get_service(account, service).await?;
                Err(version_not_found(service, &version.to_string()))
            }
            Err(e) => Err(internal("get version", e)),
        }
    }

    async fn snapshot_for(
        &self,
        account: &str,
        service: &str,
        qualifier: Option<&str>,
    ) -> Result<Option<VersionSnapshot>, FcError> {
        match qualifier {
            None | Some("") | Some(LATEST) => Ok(None),
            Some(q) => {
                let v = self.fixed_version(account, service, q).await?;
                Ok(Some(self.version_snapshot(account, service, v).await?))
            }
        }
    }

    /// GetService with a qualifier: the service as that version captured it.
    pub async fn service_at(
        &self,
        account: &str,
        service: &str,
        qualifier: Option<&str>,
    ) -> Result<(Service, Option<String>), FcError> {
        match self.snapshot_for(account, service, qualifier).await? {
            Some(snap) => Ok((snap.service, None)),
            None => {
                let s = self.get_service(account, service).await?;
                Ok((s.service, Some(s.etag)))
            }
        }
    }

    /// GetFunction with a qualifier: the function as that version captured it, with the digest
    /// of its code.
    pub async fn function_at(
        &self,
        account: &str,
        service: &str,
        name: &str,
        qualifier: Option<&str>,
    ) -> Result<(Function, String, Option<String>), FcError> {
        match self.snapshot_for(account, service, qualifier).await? {
            Some(snap) => snap
                .functions
                .into_iter()
                .find(|f| f.function.function_name == name)
                .map(|f| (f.function, f.code_digest, None))
                .ok_or_else(|| FcError::FunctionNotFound {
                    service: service.to_owned(),
                    function: name.to_owned(),
                }),
            None => {
                let f = self.get_function(account, service, name).await?;
                Ok((f.function, f.code_digest, Some(f.etag)))
            }
        }
    }

    /// ListFunctions of a version.
    pub async fn list_functions_at(
        &self,
        account: &str,
        service: &str,
        qualifier: Option<&str>,
        p: &Paging,
    ) -> Result<Page<Function>, FcError> {
        match self.snapshot_for(account, service, qualifier).await? {
            Some(snap) => {
                let (q, limit) = p.query()?;
                let prefix = q.prefix.unwrap_or_default();
                let from = q.from.unwrap_or_default();
                let mut items: Vec<Function> = snap
                    .functions
                    .into_iter()
                    .map(|f| f.function)
                    .filter(|f| f.function_name.starts_with(&prefix) && f.function_name >= from)
                    .collect();
                items.sort_by(|a, b| a.function_name.cmp(&b.function_name));
                items.truncate(limit + 1);
                Ok(page(items, limit, |f| f.function_name.clone()))
            }
            None => {
                let pg = self.list_functions(account, service, p).await?;
                Ok(Page {
                    items: pg.items.into_iter().map(|f| f.function).collect(),
                    next_token: pg.next_token,
                })
            }
        }
    }

    // ---- versions ----

    pub async fn publish_version(
        &self,
        account: &str,
        service: &str,
        description: &str,
        if_match: Option<&str>,
    ) -> Result<VersionInfo, FcError> {
        let now = fcd_core::time::now();
        match self
            .store
            .publish_version(account, service, description, &now, if_match)
            .await
        {
            Ok(v) => Ok(v),
            Err(StoreError::NotFound) => Err(FcError::ServiceNotFound(service.to_owned())),
            Err(StoreError::Conflict) => Err(FcError::PreconditionFailed),
            Err(StoreError::NotChanged(v)) => Err(FcError::VersionNotChanged {
                service: service.to_owned(),
                version: v,
            }),
            Err(e) => Err(internal("publish version", e)),
        }
    }

    /// ListServiceVersions: `direction` is `BACKWARD` (newest first, FC's default) or `FORWARD`.
    pub async fn list_versions(
        &self,
        account: &str,
        service: &str,
        direction: Option<&str>,
        start_key: Option<&str>,
        next_token: Option<&str>,
        limit: Option<u32>,
    ) -> Result<VersionPage, FcError> {
        self.get_service(account, service).await?;
        let descending = match direction.unwrap_or("BACKWARD") {
            d if d.eq_ignore_ascii_case("BACKWARD") => true,
            d if d.eq_ignore_ascii_case("FORWARD") => false,
            d => {
                return Err(FcError::invalid(format!(
                    "direction '{d}' is invalid: use FORWARD or BACKWARD"
                )));
            }
        };
        let limit = limit.unwrap_or(LIST_LIMIT_DEFAULT);
        if limit == 0 || limit > LIST_LIMIT_MAX {
            return Err(FcError::invalid(format!(
                "limit {limit} is out of range: it must be between 1 and {LIST_LIMIT_MAX}"
            )));
        }
        let parse = |what: &str, v: Option<&str>| -> Result<Option<u64>, FcError> {
            match v.filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => parse_version_id(s)
                    .map(Some)
                    .ok_or_else(|| FcError::invalid(format!("{what} '{s}' is not a version id"))),
            }
        };
        // nextToken continues where the last page stopped; it wins over startKey.
        let from = parse("nextToken", next_token)?.or(parse("startKey", start_key)?);
        let mut versions = self
            .store
            .list_versions(account, service, from, limit + 1, descending)
            .await
            .map_err(|e| internal("list versions", e))?;
        let next_token = if versions.len() > limit as usize {
            versions.pop().map(|v| v.version_id)
        } else {
            None
        };
        Ok(VersionPage {
            versions,
            next_token,
            direction: if descending { "BACKWARD" } else { "FORWARD" },
        })
    }

    pub async fn delete_version(
        &self,
        account: &str,
        service: &str,
        version: &str,
    ) -> Result<(), FcError> {
        let id = parse_version_id(version).ok_or_else(|| version_not_found(service, version))?;
        match self.store.delete_version(account, service, id).await {
            Ok(()) => {
                self.forget_specs(|(a, s, _, v, _)| a == account && s == service && v == version);
                self.runtime
                    .retire(account, service, None, Some(version))
                    .await;
                self.publish_invalidation(account, Some(service)).await;
                self.publish(fcd_cluster::ClusterEvent::Retire {
                    account: account.to_owned(),
                    service: service.to_owned(),
                    function: None,
                    version: Some(version.to_owned()),
                })
                .await;
                Ok(())
            }
            Err(StoreError::NotFound) => {
                self.get_service(account, service).await?;
                Err(version_not_found(service, version))
            }
            Err(StoreError::InUse(alias)) => Err(FcError::VersionInUse {
                service: service.to_owned(),
                version: version.to_owned(),
                alias,
            }),
            Err(StoreError::Provisioned(function)) => Err(FcError::ProvisionConfigExist {
                service: service.to_owned(),
                what: format!("version {version}"),
                function,
            }),
            Err(e) => Err(internal("delete version", e)),
        }
    }

    // ---- aliases ----

    fn alias_store_error(service: &str, alias: &str, e: StoreError) -> FcError {
        match e {
            StoreError::NotFound => alias_not_found(service, alias),
            StoreError::ParentNotFound => FcError::ServiceNotFound(service.to_owned()),
            StoreError::AlreadyExists => FcError::AliasAlreadyExists {
                service: service.to_owned(),
                alias: alias.to_owned(),
            },
            StoreError::VersionMissing(v) => version_not_found(service, &v),
            StoreError::Provisioned(function) => FcError::ProvisionConfigExist {
                service: service.to_owned(),
                what: format!("alias '{alias}'"),
                function,
            },
            StoreError::Conflict => FcError::ConcurrentUpdate(format!(
                "alias '{alias}' was modified by another request; read it again and retry"
            )),
            e => internal("alias", e),
        }
    }

    fn forget_alias(&self, account: &str, service: &str, alias: &str) {
        if let Ok(mut c) = self.aliases.write() {
            self.alias_gen.fetch_add(1, Ordering::AcqRel);
            c.remove(&(account.to_owned(), service.to_owned(), alias.to_owned()));
        }
    }

    pub async fn create_alias(
        &self,
        account: &str,
        service: &str,
        u: AliasUpdate,
    ) -> Result<StoredAlias, FcError> {
        let name = u
            .alias_name
            .clone()
            .ok_or_else(|| FcError::invalid("aliasName is required"))?;
        check_alias_name(&name)?;
        let alias = Alias::create(name.clone(), u, fcd_core::time::now())?;
        let stored = StoredAlias {
            alias,
            etag: new_id(),
        };
        self.store
            .insert_alias(account, service, &stored)
            .await
            .map_err(|e| Self::alias_store_error(service, &name, e))?;
        self.forget_alias(account, service, &name);
        self.publish_invalidation(account, Some(service)).await;
        Ok(stored)
    }

    pub async fn get_alias(
        &self,
        account: &str,
        service: &str,
        name: &str,
    ) -> Result<StoredAlias, FcError> {
        match self.store.get_alias(account, service, name).await {
            Ok(Some(a)) => Ok(a),
            Ok(None) => {
                self.get_service(account, service).await?;
                Err(alias_not_found(service, name))
            }
            Err(e) => Err(internal("get alias", e)),
        }
    }

    pub async fn update_alias(
        &self,
        account: &str,
        service: &str,
        name: &str,
        u: AliasUpdate,
        if_match: Option<&str>,
    ) -> Result<StoredAlias, FcError> {
        let current = self.get_alias(account, service, name).await?;
        check_if_match(if_match, &current.etag)?;
        let mut alias = current.alias.clone();
        alias.apply(u, fcd_core::time::now())?;
        let stored = StoredAlias {
            alias,
            etag: new_id(),
        };
        self.store
            .replace_alias(account, service, &stored, &current.etag)
            .await
            .map_err(|e| Self::alias_store_error(service, name, e))?;
        self.forget_alias(account, service, name);
        self.publish_invalidation(account, Some(service)).await;
        Ok(stored)
    }

    pub async fn delete_alias(
        &self,
        account: &str,
        service: &str,
        name: &str,
        if_match: Option<&str>,
    ) -> Result<(), FcError> {
        let current = self.get_alias(account, service, name).await?;
        check_if_match(if_match, &current.etag)?;
        self.store
            .delete_alias(account, service, name)
            .await
            .map_err(|e| Self::alias_store_error(service, name, e))?;
        self.forget_alias(account, service, name);
        // The alias's on-demand configs went with it.
        self.forget_specs(|(a, s, .., q)| a == account && s == service && q == name);
        self.publish_invalidation(account, Some(service)).await;
        Ok(())
    }

    pub async fn list_aliases(
        &self,
        account: &str,
        service: &str,
        p: &Paging,
    ) -> Result<Page<StoredAlias>, FcError> {
        self.get_service(account, service).await?;
        let (q, limit) = p.query()?;
        let items = self
            .store
            .list_aliases(account, service, &q)
            .await
            .map_err(|e| internal("list aliases", e))?;
        Ok(page(items, limit, |a| a.alias.alias_name.clone()))
    }
}
