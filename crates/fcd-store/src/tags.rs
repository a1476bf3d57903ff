//! Tags and VPC bindings as stored.
//!
//! A tag is keyed by (account, resource ARN, key). The ARN is an opaque string to the store
//! (`fcd_core::tags::Tagged` makes and reads it), so FC 2.0's service tags and FC 3.0's function
//! tags share one table; beside it the store keeps the service (and function) the resource is
//! or lives in, so it can check that the resource exists when tagging, and delete its tags in
//! the same transaction that deletes it (`delete_service` drops every tag of the service and of
//! its functions, `delete_function` the function's).
//!
//! A VPC binding is a (service, VPC id) pair, recorded and listed; fcd has no VPCs, nothing
//! else reads it. `delete_service` deletes the service's bindings.

use async_trait::async_trait;

use crate::StoreError;

/// What a tag is attached to, as the store checks and cleans up after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagOwner {
    /// The stored service the resource is, or lives in.
    pub service: String,
    /// The function inside it; `None` for the service itself.
    pub function: Option<String>,
}

/// Which tagged resources a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagKind {
    /// Services' own tags (FC 2.0).
    Services,
    /// Functions' tags (FC 3.0).
    Functions,
}

/// One tagged resource and its tags, ordered by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedResource {
    pub arn: String,
    pub tags: Vec<(String, String)>,
}

/// Tags and VPC bindings. Part of every [`crate::MetadataStore`].
#[async_trait]
pub trait TagStore: Send + Sync + 'static {
    /// Sets `tags` on the resource (a key it already has takes the new value). The owner must
    /// exist ([`StoreError::ParentNotFound`]); if the resource would then carry more than
    /// `max_tags`, nothing is written ([`StoreError::LimitExceeded`]).
    async fn tag_resource(
        &self,
        account: &str,
        arn: &str,
        owner: &TagOwner,
        tags: &[(String, String)],
        max_tags: usize,
    ) -> Result<(), StoreError>;
    /// Removes the given keys from the resource (keys it does not have are ignored), or every
    /// tag with `None`.
    async fn untag_resource(
        &self,
        account: &str,
        arn: &str,
        keys: Option<&[String]>,
    ) -> Result<(), StoreError>;
    /// The resource's tags, ordered by key (empty when it has none).
    async fn resource_tags(
        &self,
        account: &str,
        arn: &str,
    ) -> Result<Vec<(String, String)>, StoreError>;
    /// The account's tagged resources of one kind ordered by ARN, from `from` (inclusive), at
    /// most `limit` resources.
    async fn list_tagged_resources(
        &self,
        account: &str,
        kind: TagKind,
        from: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TaggedResource>, StoreError>;

    /// Binds the service to a VPC; binding it again is no change. The service must exist
    /// ([`StoreError::ParentNotFound`]).
    async fn put_vpc_binding(
        &self,
        account: &str,
        service: &str,
        vpc_id: &str,
    ) -> Result<(), StoreError>;
    /// Unbinds the service from a VPC ([`StoreError::NotFound`] if it is not bound to it).
    async fn delete_vpc_binding(
        &self,
        account: &str,
        service: &str,
        vpc_id: &str,
    ) -> Result<(), StoreError>;
    /// The VPC ids the service is bound to, ordered.
    async fn list_vpc_bindings(
        &self,
        account: &str,
        service: &str,
    ) -> Result<Vec<String>, StoreError>;
}
