//! Persistence for fcd: the [`MetadataStore`] trait over services and functions, its two
//! implementations ([`SqliteStore`], one embedded file for a single machine, and [`PgStore`],
//! PostgreSQL shared by every node of a cluster), their sqlx [`migrate`]ions, and the
//! content-addressed [`code::CodeStore`] for code packages (optionally backed by
//! [`code::SharedPackages`], which [`PgPackages`] implements).
//!
//! The trait speaks in whole records plus an opaque etag so that every backend can offer the
//! same compare-and-swap semantics: a write names the etag it read, and loses with
//! [`StoreError::Conflict`] if someone else wrote first.

pub mod code;
pub mod concurrency;
pub mod iam;
pub mod layers;
pub mod migrate;
mod postgres;
mod sql;
mod sqlite;
pub mod tags;
#[cfg(test)]
mod tests;
pub mod triggers;

use std::collections::HashSet;

use async_trait::async_trait;
use fcd_core::configs::{OnDemandConfig, ProvisionConfig};
use fcd_core::model::{Function, Service};
use fcd_core::versions::{Alias, VersionInfo};
use serde::{Deserialize, Serialize};

pub use postgres::{PgPackages, PgStore};
pub use sqlite::SqliteStore;

/// A service as stored, with the etag of this revision.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredService {
    pub service: Service,
    pub etag: String,
}

/// A function as stored: its config, the digest that addresses its code package in the
/// [`code::CodeStore`], and the etag of this revision.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFunction {
    pub function: Function,
    pub code_digest: String,
    pub etag: String,
}

/// A published version: the service and every function (config and code) as they were.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionSnapshot {
    pub info: VersionInfo,
    pub service: Service,
    pub functions: Vec<SnapshotFunction>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotFunction {
    pub function: Function,
    pub code_digest: String,
}

/// An alias as stored, with the etag of this revision.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlias {
    pub alias: Alias,
    pub etag: String,
}

/// An on-demand config as stored, with the etag of this revision (FC's `If-Match` applies).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredOnDemandConfig {
    pub config: OnDemandConfig,
    pub etag: String,
}

/// One page request of ListProvisionConfigs, ordered by (service, qualifier, function).
#[derive(Debug, Clone, Default)]
pub struct ProvisionQuery {
    /// Only configs of this service.
    pub service: Option<String>,
    /// Only configs under this qualifier.
    pub qualifier: Option<String>,
    /// Only configs at or after this (service, qualifier, function).
    pub from: Option<(String, String, String)>,
    /// Most rows to return.
    pub limit: u32,
}

/// One page request of a name-ordered listing.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// Only names `>=` this (FC's `startKey`, and where a `nextToken` resumes).
    pub from: Option<String>,
    /// Most rows to return.
    pub limit: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The parent (the service of a function) does not exist.
    #[error("parent not found")]
    ParentNotFound,
    #[error("already exists")]
    AlreadyExists,
    #[error("not empty")]
    NotEmpty,
    /// The record changed since the caller read it.
    #[error("concurrent update")]
    Conflict,
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// Publishing found nothing new since this version.
    #[error("nothing changed since version {0}")]
    NotChanged(String),
    /// The version is still routed to by this alias.
    #[error("in use by alias {0}")]
    InUse(String),
    /// The alias or version still has provisioned instances of this function.
    #[error("function {0} has a provision config with a target above 0")]
    Provisioned(String),
    /// An alias names a version that does not exist.
    #[error("version {0} does not exist")]
    VersionMissing(String),
    /// The function already has this `http` trigger for the qualifier written.
    #[error("http trigger {0} already serves that qualifier")]
    HttpTriggerExists(String),
    #[error("storage backend: {0}")]
    Backend(String),
    /// The storage engine itself failed (unreachable, connection reset, no pooled connection in
    /// time): nothing of the operation was committed, and trying again later may succeed. FC's
    /// answer is 503 `ServiceUnavailable`.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if sql::is_unavailable(&e) {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Backend(e.to_string())
        }
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Backend(format!("corrupt record: {e}"))
    }
}

/// Metadata of services and functions, per account; RAM state ([`iam::IamStore`]),
/// triggers and custom domains ([`triggers::TriggerStore`]), tags and VPC bindings
/// ([`tags::TagStore`]), layer versions ([`layers::LayerStore`]) and FC 3.0 concurrency configs
/// ([`concurrency::ConcurrencyStore`])
/// live next to it in the same store.
#[async_trait]
pub trait MetadataStore:
    iam::IamStore
    + triggers::TriggerStore
    + tags::TagStore
    + layers::LayerStore
    + concurrency::ConcurrencyStore
    + Send
    + Sync
    + 'static
{
    async fn insert_service(&self, account: &str, svc: &StoredService) -> Result<(), StoreError>;
    async fn get_service(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<StoredService>, StoreError>;
    /// Replaces the service if its current etag is `expected_etag`.
    async fn replace_service(
        &self,
        account: &str,
        svc: &StoredService,
        expected_etag: &str,
    ) -> Result<(), StoreError>;
    /// Deletes the service; refuses with [`StoreError::NotEmpty`] while it has functions,
    /// versions or aliases. On-demand and provision configs still stored under it are deleted
    /// in the same transaction (they can only be left over for qualifiers that no longer exist),
    /// and so are its tags and VPC bindings.
    async fn delete_service(&self, account: &str, name: &str) -> Result<(), StoreError>;
    async fn list_services(
        &self,
        account: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredService>, StoreError>;

    /// Inserts a function; the service must exist and have room for it.
    async fn insert_function(
        &self,
        account: &str,
        service: &str,
        f: &StoredFunction,
    ) -> Result<(), StoreError>;
    async fn get_function(
        &self,
        account: &str,
        service: &str,
        name: &str,
    ) -> Result<Option<StoredFunction>, StoreError>;
    async fn replace_function(
        &self,
        account: &str,
        service: &str,
        f: &StoredFunction,
        expected_etag: &str,
    ) -> Result<(), StoreError>;
    /// Deletes the function (LATEST) and, in the same transaction, its on-demand config under
    /// `LATEST` and its tags; refuses with [`StoreError::NotEmpty`] while it has triggers. Configs under aliases and versions stay: those run the function as the
    /// version's snapshot captured it, which deleting LATEST does not touch.
    async fn delete_function(
        &self,
        account: &str,
        service: &str,
        name: &str,
    ) -> Result<(), StoreError>;
    async fn list_functions(
        &self,
        account: &str,
        service: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredFunction>, StoreError>;

    /// Snapshots the service and all its functions as the next version. Refuses with
    /// [`StoreError::NotChanged`] when nothing changed since the newest version, and with
    /// [`StoreError::Conflict`] when `expected_etag` is given and the service's differs.
    async fn publish_version(
        &self,
        account: &str,
        service: &str,
        description: &str,
        now: &str,
        expected_etag: Option<&str>,
    ) -> Result<VersionInfo, StoreError>;
    async fn get_version(
        &self,
        account: &str,
        service: &str,
        version: u64,
    ) -> Result<Option<VersionSnapshot>, StoreError>;
    /// Versions from `from` (inclusive) in the given direction.
    async fn list_versions(
        &self,
        account: &str,
        service: &str,
        from: Option<u64>,
        limit: u32,
        descending: bool,
    ) -> Result<Vec<VersionInfo>, StoreError>;
    /// Deletes a version; refuses with [`StoreError::InUse`] while an alias routes to it and with
    /// [`StoreError::Provisioned`] while a provision config under the version's id has a target
    /// above 0 (as FC refuses to drop provisioned capacity implicitly). Other configs under the
    /// version's id are deleted in the same transaction.
    async fn delete_version(
        &self,
        account: &str,
        service: &str,
        version: u64,
    ) -> Result<(), StoreError>;

    /// Inserts an alias; every version it routes to must exist.
    async fn insert_alias(
        &self,
        account: &str,
        service: &str,
        alias: &StoredAlias,
    ) -> Result<(), StoreError>;
    async fn get_alias(
        &self,
        account: &str,
        service: &str,
        name: &str,
    ) -> Result<Option<StoredAlias>, StoreError>;
    async fn replace_alias(
        &self,
        account: &str,
        service: &str,
        alias: &StoredAlias,
        expected_etag: &str,
    ) -> Result<(), StoreError>;
    /// Deletes an alias; refuses with [`StoreError::Provisioned`] while a provision config under
    /// it has a target above 0. Other configs under the alias are deleted in the same
    /// transaction, so a new alias of the same name starts without them.
    async fn delete_alias(
        &self,
        account: &str,
        service: &str,
        name: &str,
    ) -> Result<(), StoreError>;
    async fn list_aliases(
        &self,
        account: &str,
        service: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredAlias>, StoreError>;

    /// Creates or replaces an on-demand config; the service must exist. With `expected_etag`
    /// (FC's `If-Match`) the config must exist with that etag, else [`StoreError::Conflict`].
    async fn put_on_demand_config(
        &self,
        account: &str,
        cfg: &StoredOnDemandConfig,
        expected_etag: Option<&str>,
    ) -> Result<(), StoreError>;
    async fn get_on_demand_config(
        &self,
        account: &str,
        service: &str,
        qualifier: &str,
        function: &str,
    ) -> Result<Option<StoredOnDemandConfig>, StoreError>;
    /// Deletes an on-demand config ([`StoreError::NotFound`] if there is none; with
    /// `expected_etag`, [`StoreError::Conflict`] if it differs).
    async fn delete_on_demand_config(
        &self,
        account: &str,
        service: &str,
        qualifier: &str,
        function: &str,
        expected_etag: Option<&str>,
    ) -> Result<(), StoreError>;
    /// The account's on-demand configs ordered by [`OnDemandConfig::list_key`]
    /// (`{service}#{qualifier}#{function}`), to which `prefix` and `from` apply.
    async fn list_on_demand_configs(
        &self,
        account: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredOnDemandConfig>, StoreError>;

    /// Creates or replaces a provision config; the service must exist. A config that asks for
    /// nothing ([`ProvisionConfig::is_empty`]) is deleted instead: FC 2.0 has no
    /// DeleteProvisionConfig, a target of 0 is how one goes away.
    async fn put_provision_config(
        &self,
        account: &str,
        cfg: &ProvisionConfig,
    ) -> Result<(), StoreError>;
    async fn get_provision_config(
        &self,
        account: &str,
        service: &str,
        qualifier: &str,
        function: &str,
    ) -> Result<Option<ProvisionConfig>, StoreError>;
    async fn list_provision_configs(
        &self,
        account: &str,
        q: &ProvisionQuery,
    ) -> Result<Vec<ProvisionConfig>, StoreError>;
    /// Every provision config of every account, with its account: what the reconciler keeps
    /// running.
    async fn all_provision_configs(&self) -> Result<Vec<(String, ProvisionConfig)>, StoreError>;

    /// Every code digest that a function (LATEST) or a published version's snapshot
    /// references, and every layer version's package (a deleted version's only while a
    /// function or version names it): the packages the code collector must keep.
    async fn referenced_code(&self) -> Result<HashSet<String>, StoreError>;

    /// Every image reference (`customContainerConfig.image`) that a `custom-container`
    /// function (LATEST) or a published version's snapshot names: the images the image
    /// collector must keep.
    async fn referenced_images(&self) -> Result<HashSet<String>, StoreError>;
}
