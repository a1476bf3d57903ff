//! FC 3.0 concurrency configs as stored: one `reservedConcurrency` per function (account,
//! service, function), for every qualifier at once. A config goes with its function (the
//! row's foreign key cascades), so a function deleted and created again starts without one.

use async_trait::async_trait;

use crate::StoreError;

/// One function's concurrency config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConcurrencyConfig {
    pub service: String,
    pub function: String,
    pub reserved_concurrency: u32,
    pub created_time: String,
    pub last_modified_time: String,
}

/// Which configs a listing returns, in (service, function) order.
#[derive(Debug, Clone, Default)]
pub struct ConcurrencyQuery {
    /// Only configs of this service.
    pub service: Option<String>,
    /// Only configs of this function (with `service`).
    pub function: Option<String>,
    /// Only configs at or after this (service, function).
    pub from: Option<(String, String)>,
    /// Most rows to return.
    pub limit: u32,
}

/// Concurrency configs. Part of every [`crate::MetadataStore`].
#[async_trait]
pub trait ConcurrencyStore: Send + Sync + 'static {
    /// Creates or replaces the function's config (keeping its `created_time` on replace); the
    /// function must exist ([`StoreError::ParentNotFound`]). Returns the config as stored.
    async fn put_concurrency_config(
        &self,
        account: &str,
        cfg: &ConcurrencyConfig,
    ) -> Result<ConcurrencyConfig, StoreError>;
    async fn get_concurrency_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<Option<ConcurrencyConfig>, StoreError>;
    /// Deletes the function's config ([`StoreError::NotFound`] if it has none).
    async fn delete_concurrency_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<(), StoreError>;
    async fn list_concurrency_configs(
        &self,
        account: &str,
        q: &ConcurrencyQuery,
    ) -> Result<Vec<ConcurrencyConfig>, StoreError>;
}
