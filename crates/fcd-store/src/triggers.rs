//! Triggers and custom domains as stored.
//!
//! A trigger belongs to one function (account, service, function) and its name is unique per
//! function; a custom domain's name is unique across the whole server (a Host header names it
//! without an account), and the domain records its owner. Both are compare-and-swap on an etag,
//! like the rest of the store.
//!
//! What must hold across records is checked inside each write's transaction: a trigger's
//! function exists; a function has at most one `http` trigger per qualifier (FC's rule: the
//! `/proxy/` URL of a qualifier must name exactly one trigger); and a function with triggers
//! cannot be deleted (`delete_function` refuses with [`StoreError::NotEmpty`]).

use async_trait::async_trait;
use fcd_core::domains::CustomDomain;
use fcd_core::triggers::Trigger;

use crate::{ListQuery, StoreError};

/// A trigger as stored, with the etag of this revision.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTrigger {
    pub trigger: Trigger,
    pub etag: String,
}

/// A trigger with the function it belongs to (listings across functions).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedTrigger {
    pub account: String,
    pub service: String,
    pub function: String,
    pub trigger: StoredTrigger,
}

/// A custom domain as stored, with the etag of this revision. The owning account is
/// [`CustomDomain::account_id`].
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCustomDomain {
    pub domain: CustomDomain,
    pub etag: String,
}

/// Triggers and custom domains. Part of every [`crate::MetadataStore`].
#[async_trait]
pub trait TriggerStore: Send + Sync + 'static {
    /// Inserts a trigger. The function must exist ([`StoreError::ParentNotFound`]); the name
    /// must be free for the function ([`StoreError::AlreadyExists`]); an `http` trigger must be
    /// the function's only one for its qualifier ([`StoreError::InUse`] naming the other).
    async fn insert_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        t: &StoredTrigger,
    ) -> Result<(), StoreError>;
    async fn get_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        name: &str,
    ) -> Result<Option<StoredTrigger>, StoreError>;
    /// Replaces the trigger if its current etag is `expected_etag` ([`StoreError::Conflict`]
    /// otherwise, [`StoreError::NotFound`] if it is gone); the `http` rule of
    /// [`TriggerStore::insert_trigger`] applies to its (possibly new) qualifier.
    async fn replace_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        t: &StoredTrigger,
        expected_etag: &str,
    ) -> Result<(), StoreError>;
    /// Deletes the trigger ([`StoreError::NotFound`] if there is none; with `expected_etag`,
    /// [`StoreError::Conflict`] if it differs).
    async fn delete_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        name: &str,
        expected_etag: Option<&str>,
    ) -> Result<(), StoreError>;
    /// The function's triggers ordered by name, to which `prefix` and `from` apply.
    async fn list_triggers(
        &self,
        account: &str,
        service: &str,
        function: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredTrigger>, StoreError>;
    /// The function's triggers of one type under one qualifier (at most one for `http`).
    async fn find_triggers(
        &self,
        account: &str,
        service: &str,
        function: &str,
        trigger_type: &str,
        qualifier: &str,
    ) -> Result<Vec<StoredTrigger>, StoreError>;
    /// Every trigger of `trigger_type` of every account (what the timer scheduler runs),
    /// ordered by account, service, function and name.
    async fn all_triggers(&self, trigger_type: &str) -> Result<Vec<OwnedTrigger>, StoreError>;

    /// Inserts a custom domain; [`StoreError::AlreadyExists`] when any account has the name.
    async fn insert_custom_domain(&self, d: &StoredCustomDomain) -> Result<(), StoreError>;
    /// The domain of that name, whichever account owns it.
    async fn get_custom_domain(&self, name: &str)
    -> Result<Option<StoredCustomDomain>, StoreError>;
    /// Replaces the domain (same name and account) if its etag is `expected_etag`.
    async fn replace_custom_domain(
        &self,
        d: &StoredCustomDomain,
        expected_etag: &str,
    ) -> Result<(), StoreError>;
    /// Deletes the account's domain ([`StoreError::NotFound`] if the account has none of that
    /// name; with `expected_etag`, [`StoreError::Conflict`] if it differs).
    async fn delete_custom_domain(
        &self,
        account: &str,
        name: &str,
        expected_etag: Option<&str>,
    ) -> Result<(), StoreError>;
    /// The account's domains ordered by name, to which `prefix` and `from` apply.
    async fn list_custom_domains(
        &self,
        account: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredCustomDomain>, StoreError>;
    /// Every domain of every account (what the Host lookup serves from memory).
    async fn all_custom_domains(&self) -> Result<Vec<StoredCustomDomain>, StoreError>;
}
