//! RAM state as stored: users, their access keys, custom policies, roles, and which policies
//! are attached to which user or role, per account — plus one generation number that every IAM
//! write bumps in its own transaction, so a node can tell with one cheap read whether what it
//! cached is stale.
//!
//! The store checks what must hold across records inside each write's transaction (a key's user
//! exists, a user's quota of keys, a policy still attached cannot go); the rules about one
//! record (names, documents) are the service layer's. System policies live in code, not here:
//! an attachment of one is stored by name and type only.

use std::collections::BTreeMap;

use async_trait::async_trait;
use fcd_core::error::{RamConflict, RamEntity, RamLimit};
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// A RAM user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RamUser {
    pub user_id: String,
    pub user_name: String,
    pub display_name: String,
    pub comments: String,
    pub email: String,
    pub mobile_phone: String,
    pub create_date: String,
    pub update_date: String,
}

/// An access key of a RAM user (the account's own keys come from the server's configuration).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RamAccessKey {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub user_name: String,
    /// `Active` (fcd has no UpdateAccessKey, so keys never become `Inactive`).
    pub status: String,
    pub create_date: String,
}

impl std::fmt::Debug for RamAccessKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RamAccessKey")
            .field("access_key_id", &self.access_key_id)
            .field("user_name", &self.user_name)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A custom policy (one version, `v1`: fcd has no CreatePolicyVersion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RamPolicy {
    pub policy_name: String,
    pub description: String,
    /// The document as the client sent it.
    pub document: String,
    pub default_version: String,
    pub create_date: String,
    pub update_date: String,
}

/// A RAM role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RamRole {
    pub role_id: String,
    pub role_name: String,
    /// `acs:ram::<account>:role/<name>`.
    pub arn: String,
    /// The trust policy as the client sent it.
    pub assume_role_policy_document: String,
    pub description: String,
    pub max_session_duration: u32,
    pub create_date: String,
    pub update_date: String,
}

/// `System` (built into the server) or `Custom` (stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyType {
    System,
    Custom,
}

impl PolicyType {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyType::System => "System",
            PolicyType::Custom => "Custom",
        }
    }

    pub fn parse(s: &str) -> Option<PolicyType> {
        match s {
            "System" => Some(PolicyType::System),
            "Custom" => Some(PolicyType::Custom),
            _ => None,
        }
    }
}

/// What a policy is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrincipalKind {
    User,
    Role,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "User",
            PrincipalKind::Role => "Role",
        }
    }

    pub fn parse(s: &str) -> Option<PrincipalKind> {
        match s {
            "User" => Some(PrincipalKind::User),
            "Role" => Some(PrincipalKind::Role),
            _ => None,
        }
    }
}

/// One policy attached to one user or role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RamAttachment {
    pub kind: PrincipalKind,
    /// The user's or role's name.
    pub principal: String,
    pub policy_type: PolicyType,
    pub policy_name: String,
    pub attach_date: String,
}

/// Everything RAM knows about one account.
#[derive(Debug, Clone, Default)]
pub struct IamAccount {
    pub users: Vec<RamUser>,
    pub access_keys: Vec<RamAccessKey>,
    pub policies: Vec<RamPolicy>,
    pub roles: Vec<RamRole>,
    pub attachments: Vec<RamAttachment>,
}

/// All RAM state, read in one transaction, with the generation it is current for.
#[derive(Debug, Clone, Default)]
pub struct IamState {
    pub generation: u64,
    pub accounts: BTreeMap<String, IamAccount>,
}

/// Why an IAM write was refused.
#[derive(Debug, thiserror::Error)]
pub enum IamStoreError {
    #[error("{0:?} not found")]
    NotFound(RamEntity),
    #[error("{0:?} already exists")]
    AlreadyExists(RamEntity),
    #[error("delete conflict: {0:?}")]
    DeleteConflict(RamConflict),
    #[error("limit exceeded: {0:?}")]
    LimitExceeded(RamLimit),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for IamStoreError {
    fn from(e: sqlx::Error) -> Self {
        IamStoreError::Store(e.into())
    }
}

impl From<serde_json::Error> for IamStoreError {
    fn from(e: serde_json::Error) -> Self {
        IamStoreError::Store(e.into())
    }
}

/// RAM state. Every write bumps the generation in the same transaction.
#[async_trait]
pub trait IamStore: Send + Sync + 'static {
    /// The current generation: changes whenever any IAM record does.
    async fn iam_generation(&self) -> Result<u64, StoreError>;
    /// Every account's RAM state, consistent with the generation it carries.
    async fn iam_state(&self) -> Result<IamState, StoreError>;

    /// [`IamStoreError::AlreadyExists`] (`User`) when the name is taken.
    async fn create_ram_user(&self, account: &str, user: &RamUser) -> Result<(), IamStoreError>;
    /// Refused while the user has access keys or attached policies.
    async fn delete_ram_user(&self, account: &str, name: &str) -> Result<(), IamStoreError>;

    /// The user must exist and have fewer than `max_per_user` keys.
    async fn create_ram_access_key(
        &self,
        account: &str,
        key: &RamAccessKey,
        max_per_user: usize,
    ) -> Result<(), IamStoreError>;
    async fn delete_ram_access_key(
        &self,
        account: &str,
        user_name: &str,
        access_key_id: &str,
    ) -> Result<(), IamStoreError>;

    async fn create_ram_policy(
        &self,
        account: &str,
        policy: &RamPolicy,
    ) -> Result<(), IamStoreError>;
    /// Refused while the policy is attached, unless `cascade` (then detached everywhere first).
    async fn delete_ram_policy(
        &self,
        account: &str,
        name: &str,
        cascade: bool,
    ) -> Result<(), IamStoreError>;

    async fn create_ram_role(&self, account: &str, role: &RamRole) -> Result<(), IamStoreError>;
    /// Refused while the role has attached policies.
    async fn delete_ram_role(&self, account: &str, name: &str) -> Result<(), IamStoreError>;

    /// The user or role must exist, and a custom policy too; a user holds at most
    /// `max_custom_per_user` custom policies.
    async fn attach_ram_policy(
        &self,
        account: &str,
        attachment: &RamAttachment,
        max_custom_per_user: usize,
    ) -> Result<(), IamStoreError>;
    async fn detach_ram_policy(
        &self,
        account: &str,
        kind: PrincipalKind,
        principal: &str,
        policy_type: PolicyType,
        policy_name: &str,
    ) -> Result<(), IamStoreError>;
}
