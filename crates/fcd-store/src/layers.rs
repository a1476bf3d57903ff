//! Layer versions as stored.
//!
//! A layer belongs to one account; its versions are numbered from 1 by the store, and a number
//! is never reused (the layer's row keeps the highest ever published). A version is immutable
//! except for the layer-wide ACL. Deleting a version leaves a tombstone: it is no longer
//! listed, read or attachable, but a function (or published version) that already names it
//! keeps its package — [`crate::MetadataStore::referenced_code`] counts a deleted version's
//! package as long as something names it, so an instance started later still finds the code.

use async_trait::async_trait;
use fcd_core::layers::LayerVersion;

use crate::{ListQuery, StoreError};

/// Layer versions. Part of every [`crate::MetadataStore`].
#[async_trait]
pub trait LayerStore: Send + Sync + 'static {
    /// Stores `v` as the layer's next version (its `version` field is ignored) and returns it
    /// as stored: numbered one above the highest version the layer ever had, with the layer's
    /// current ACL.
    async fn publish_layer_version(
        &self,
        account: &str,
        v: &LayerVersion,
    ) -> Result<LayerVersion, StoreError>;
    /// The version, if it exists and was not deleted (`deleted_too`: tombstones as well, for
    /// functions that already use it).
    async fn get_layer_version(
        &self,
        account: &str,
        name: &str,
        version: u64,
        deleted_too: bool,
    ) -> Result<Option<LayerVersion>, StoreError>;
    /// The layer's live versions from `start` on, ascending, at most `limit`.
    async fn list_layer_versions(
        &self,
        account: &str,
        name: &str,
        start: u64,
        limit: u32,
    ) -> Result<Vec<LayerVersion>, StoreError>;
    /// The newest live version of each of the account's layers, ordered by name, to which
    /// `prefix` and `from` apply; `public_only`: only layers whose ACL is public.
    async fn list_layers(
        &self,
        account: &str,
        q: &ListQuery,
        public_only: bool,
    ) -> Result<Vec<LayerVersion>, StoreError>;
    /// Deletes the version (a tombstone, see the module docs); [`StoreError::NotFound`] when
    /// there is no live version of that number.
    async fn delete_layer_version(
        &self,
        account: &str,
        name: &str,
        version: u64,
    ) -> Result<(), StoreError>;
    /// Sets the ACL (0 private, 1 public) of every version of the layer;
    /// [`StoreError::NotFound`] when the layer has no live version.
    async fn set_layer_acl(&self, account: &str, name: &str, acl: u8) -> Result<(), StoreError>;
}
