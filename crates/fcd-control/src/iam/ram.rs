//! The RAM operations of one account (users, access keys, policies, roles, attachments), with
//! RAM's validation rules, quotas and error codes. Reached through [`super::Iam::ram`], which
//! only the account's root gets.

use fcd_core::FcError;
use fcd_core::error::{RamEntity, RamLimit};
use fcd_iam::{Policy, PolicyError, TrustPolicy};
use fcd_store::iam::{
    IamStoreError, PolicyType, PrincipalKind, RamAccessKey, RamAttachment, RamPolicy, RamRole,
    RamUser,
};

use super::snapshot::AccountView;
use super::system::{SYSTEM_POLICIES, SYSTEM_POLICY_DATE};
use super::{Iam, MAX_SESSION_DURATION_RANGE, numeric_id, random_string};
use crate::internal;

/// Access keys a user may hold at once (RAM's quota).
pub const ACCESS_KEYS_PER_USER: usize = 2;
/// Custom policies attachable to one user (RAM's quota).
pub const CUSTOM_POLICIES_PER_USER: usize = 5;
/// The longest policy document RAM stores.
pub const POLICY_DOCUMENT_MAX: usize = 6144;
const MAX_ITEMS_DEFAULT: u32 = 100;
const MAX_ITEMS_MAX: u32 = 1000;

/// CreateUser's input.
#[derive(Debug, Clone, Default)]
pub struct NewUser {
    pub user_name: String,
    pub display_name: Option<String>,
    pub comments: Option<String>,
    pub email: Option<String>,
    pub mobile_phone: Option<String>,
}

/// CreateRole's input.
#[derive(Debug, Clone, Default)]
pub struct NewRole {
    pub role_name: String,
    pub assume_role_policy_document: String,
    pub description: Option<String>,
    pub max_session_duration: Option<u32>,
}

/// A policy as RAM describes it (custom or system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub policy_name: String,
    pub policy_type: PolicyType,
    pub description: String,
    pub default_version: String,
    pub document: String,
    pub create_date: String,
    pub update_date: String,
    pub attachment_count: u32,
}

/// A policy attached to a user or role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    pub policy: PolicyInfo,
    pub attach_date: String,
}

/// One page of a listing; `marker` says where the next page starts (`IsTruncated` when set).
#[derive(Debug, Clone)]
pub struct Listing<T> {
    pub items: Vec<T>,
    pub marker: Option<String>,
}

/// Listing parameters: `Marker` (from the previous page) and `MaxItems` (1 to 1000, default
/// 100).
#[derive(Debug, Clone, Default)]
pub struct Paging {
    pub marker: Option<String>,
    pub max_items: Option<u32>,
}

fn invalid(code: &'static str, message: impl Into<String>) -> FcError {
    FcError::RamInvalidParameter {
        code,
        message: message.into(),
    }
}

fn required(name: &'static str, value: &str) -> Result<(), FcError> {
    if value.is_empty() {
        Err(FcError::MissingParameter(name.into()))
    } else {
        Ok(())
    }
}

/// A name of `1..=max` characters from `A-Za-z0-9` and `extra`.
fn check_name(
    param: &'static str,
    codes: (&'static str, &'static str),
    value: &str,
    max: usize,
    extra: &str,
) -> Result<(), FcError> {
    required(param, value)?;
    let len = value.chars().count();
    if len > max {
        return Err(invalid(
            codes.0,
            format!("The parameter {param} is {len} characters long; at most {max} are allowed."),
        ));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || extra.contains(*c)))
    {
        return Err(invalid(
            codes.1,
            format!(
                "The parameter {param} contains '{c}': only letters, digits and '{extra}' are allowed."
            ),
        ));
    }
    Ok(())
}

fn check_len(
    param: &'static str,
    code: &'static str,
    value: &str,
    max: usize,
) -> Result<(), FcError> {
    let len = value.chars().count();
    if len > max {
        return Err(invalid(
            code,
            format!("The parameter {param} is {len} characters long; at most {max} are allowed."),
        ));
    }
    Ok(())
}

fn check_user_name(name: &str) -> Result<(), FcError> {
    check_name(
        "UserName",
        (
            "InvalidParameter.UserName.Length",
            "InvalidParameter.UserName.InvalidChars",
        ),
        name,
        64,
        ".-_",
    )
}

fn check_policy_name(name: &str) -> Result<(), FcError> {
    check_name(
        "PolicyName",
        (
            "InvalidParameter.PolicyName.Length",
            "InvalidParameter.PolicyName.InvalidChars",
        ),
        name,
        128,
        "-",
    )
}

fn check_role_name(name: &str) -> Result<(), FcError> {
    check_name(
        "RoleName",
        (
            "InvalidParameter.RoleName.Length",
            "InvalidParameter.RoleName.InvalidChars",
        ),
        name,
        64,
        ".-",
    )
}

/// Parses `PolicyType` (`Custom` or `System`).
pub fn policy_type(value: &str) -> Result<PolicyType, FcError> {
    PolicyType::parse(value).ok_or_else(|| {
        invalid(
            "InvalidParameter.PolicyType",
            format!("The parameter PolicyType '{value}' is not valid: use Custom or System."),
        )
    })
}

pub(crate) fn policy_error(e: PolicyError) -> FcError {
    match e {
        PolicyError::TooLarge { .. } => {
            invalid("InvalidParameter.PolicyDocument.Length", e.to_string())
        }
        PolicyError::Malformed(_) => FcError::MalformedPolicyDocument(e.to_string()),
    }
}

fn store_error(e: IamStoreError, name: &str) -> FcError {
    match e {
        IamStoreError::NotFound(entity) => FcError::EntityNotExist {
            entity,
            name: name.to_owned(),
        },
        IamStoreError::AlreadyExists(entity) => FcError::EntityAlreadyExists {
            entity,
            name: name.to_owned(),
        },
        IamStoreError::DeleteConflict(conflict) => {
            use fcd_core::error::RamConflict::*;
            let message = match conflict {
                UserAccessKey => {
                    format!("The user '{name}' still has access keys: delete them first.")
                }
                UserPolicy => {
                    format!("The user '{name}' still has policies attached: detach them first.")
                }
                PolicyUser => format!(
                    "The policy '{name}' is still attached to users: detach it first (or delete with CascadingDelete)."
                ),
                PolicyRole => format!(
                    "The policy '{name}' is still attached to roles: detach it first (or delete with CascadingDelete)."
                ),
                RolePolicy => {
                    format!("The role '{name}' still has policies attached: detach them first.")
                }
            };
            FcError::DeleteConflict { conflict, message }
        }
        IamStoreError::LimitExceeded(limit) => {
            let message = match limit {
                RamLimit::UserAccessKey => format!(
                    "The user '{name}' already has {ACCESS_KEYS_PER_USER} access keys, the most a user may have."
                ),
                RamLimit::UserPolicy => format!(
                    "The user '{name}' already has {CUSTOM_POLICIES_PER_USER} custom policies attached, the most a user may have."
                ),
            };
            FcError::RamLimitExceeded { limit, message }
        }
        IamStoreError::Store(e) => internal("iam store", e),
    }
}

/// Cuts `items` (sorted by `key`) into the page starting at `paging.marker`.
fn paginate<T>(
    items: impl Iterator<Item = T>,
    key: impl Fn(&T) -> String,
    paging: &Paging,
) -> Result<Listing<T>, FcError> {
    let max = paging.max_items.unwrap_or(MAX_ITEMS_DEFAULT);
    if max == 0 || max > MAX_ITEMS_MAX {
        return Err(invalid(
            "InvalidParameter.MaxItems",
            format!(
                "The parameter MaxItems {max} is out of range: it must be between 1 and {MAX_ITEMS_MAX}."
            ),
        ));
    }
    let from = paging.marker.as_deref().filter(|m| !m.is_empty());
    let mut page: Vec<T> = Vec::new();
    let mut marker = None;
    for item in items {
        if from.is_some_and(|m| key(&item).as_str() < m) {
            continue;
        }
        if page.len() == max as usize {
            marker = Some(key(&item));
            break;
        }
        page.push(item);
    }
    Ok(Listing {
        items: page,
        marker,
    })
}

fn custom_info(view: &AccountView, name: &str) -> Option<PolicyInfo> {
    view.policies.get(name).map(|p| PolicyInfo {
        policy_name: p.policy.policy_name.clone(),
        policy_type: PolicyType::Custom,
        description: p.policy.description.clone(),
        default_version: p.policy.default_version.clone(),
        document: p.policy.document.clone(),
        create_date: p.policy.create_date.clone(),
        update_date: p.policy.update_date.clone(),
        attachment_count: p.attachment_count,
    })
}

fn system_info(view: &AccountView, name: &str) -> Option<PolicyInfo> {
    super::system::find(name).map(|p| PolicyInfo {
        policy_name: p.name.to_owned(),
        policy_type: PolicyType::System,
        description: p.description.to_owned(),
        default_version: "v1".into(),
        document: p.document.to_owned(),
        create_date: SYSTEM_POLICY_DATE.into(),
        update_date: SYSTEM_POLICY_DATE.into(),
        attachment_count: view.system_attachments.get(name).copied().unwrap_or(0),
    })
}

fn info(view: &AccountView, t: PolicyType, name: &str) -> Option<PolicyInfo> {
    match t {
        PolicyType::Custom => custom_info(view, name),
        PolicyType::System => system_info(view, name),
    }
}

/// The RAM operations of one account.
#[derive(Debug)]
pub struct Ram<'a> {
    iam: &'a Iam,
    account: String,
}

impl<'a> Ram<'a> {
    pub(super) fn new(iam: &'a Iam, account: String) -> Ram<'a> {
        Ram { iam, account }
    }

    pub fn account_id(&self) -> &str {
        &self.account
    }

    // ---- users ----

    pub async fn create_user(&self, u: NewUser) -> Result<RamUser, FcError> {
        check_user_name(&u.user_name)?;
        let display_name = u
            .display_name
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| u.user_name.clone());
        check_len(
            "DisplayName",
            "InvalidParameter.DisplayName.Length",
            &display_name,
            128,
        )?;
        let comments = u.comments.unwrap_or_default();
        check_len(
            "Comments",
            "InvalidParameter.Comments.Length",
            &comments,
            128,
        )?;
        let email = u.email.unwrap_or_default();
        check_len("Email", "InvalidParameter.Email.Length", &email, 128)?;
        if !email.is_empty() && !email.contains('@') {
            return Err(invalid(
                "InvalidParameter.Email.Format",
                format!("The parameter Email '{email}' is not an email address."),
            ));
        }
        let mobile_phone = u.mobile_phone.unwrap_or_default();
        check_len(
            "MobilePhone",
            "InvalidParameter.MobilePhone.Length",
            &mobile_phone,
            32,
        )?;
        let now = fcd_core::time::now();
        let user = RamUser {
            user_id: numeric_id()?,
            user_name: u.user_name.clone(),
            display_name,
            comments,
            email,
            mobile_phone,
            create_date: now.clone(),
            update_date: now,
        };
        self.iam
            .store
            .create_ram_user(&self.account, &user)
            .await
            .map_err(|e| store_error(e, &u.user_name))?;
        Ok(user)
    }

    pub async fn get_user(&self, name: &str) -> Result<RamUser, FcError> {
        required("UserName", name)?;
        let snap = self.iam.snapshot().await?;
        snap.account(&self.account)
            .users
            .get(name)
            .map(|u| u.user.clone())
            .ok_or_else(|| FcError::EntityNotExist {
                entity: RamEntity::User,
                name: name.to_owned(),
            })
    }

    pub async fn list_users(&self, paging: &Paging) -> Result<Listing<RamUser>, FcError> {
        let snap = self.iam.snapshot().await?;
        paginate(
            snap.account(&self.account)
                .users
                .values()
                .map(|u| u.user.clone()),
            |u| u.user_name.clone(),
            paging,
        )
    }

    pub async fn delete_user(&self, name: &str) -> Result<(), FcError> {
        required("UserName", name)?;
        self.iam
            .store
            .delete_ram_user(&self.account, name)
            .await
            .map_err(|e| store_error(e, name))
    }

    // ---- access keys ----

    /// A new key for `user_name` (its secret is only ever returned here).
    pub async fn create_access_key(&self, user_name: &str) -> Result<RamAccessKey, FcError> {
        required("UserName", user_name)?;
        const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let key = RamAccessKey {
            access_key_id: format!("LTAI{}", random_string(UPPER, 20)?),
            access_key_secret: random_string(ALNUM, 30)?,
            user_name: user_name.to_owned(),
            status: "Active".into(),
            create_date: fcd_core::time::now(),
        };
        self.iam
            .store
            .create_ram_access_key(&self.account, &key, ACCESS_KEYS_PER_USER)
            .await
            .map_err(|e| store_error(e, user_name))?;
        Ok(key)
    }

    /// The user's keys (secrets included: the wire layer leaves them out).
    pub async fn list_access_keys(&self, user_name: &str) -> Result<Vec<RamAccessKey>, FcError> {
        required("UserName", user_name)?;
        let snap = self.iam.snapshot().await?;
        let view = snap.account(&self.account);
        if !view.users.contains_key(user_name) {
            return Err(FcError::EntityNotExist {
                entity: RamEntity::User,
                name: user_name.to_owned(),
            });
        }
        Ok(view
            .keys_by_user
            .get(user_name)
            .cloned()
            .unwrap_or_default())
    }

    pub async fn delete_access_key(
        &self,
        user_name: &str,
        access_key_id: &str,
    ) -> Result<(), FcError> {
        required("UserName", user_name)?;
        required("UserAccessKeyId", access_key_id)?;
        self.iam
            .store
            .delete_ram_access_key(&self.account, user_name, access_key_id)
            .await
            .map_err(|e| match e {
                IamStoreError::NotFound(RamEntity::UserAccessKey) => FcError::EntityNotExist {
                    entity: RamEntity::UserAccessKey,
                    name: access_key_id.to_owned(),
                },
                e => store_error(e, user_name),
            })
    }

    // ---- policies ----

    pub async fn create_policy(
        &self,
        name: &str,
        document: &str,
        description: Option<&str>,
    ) -> Result<PolicyInfo, FcError> {
        check_policy_name(name)?;
        required("PolicyDocument", document)?;
        let description = description.unwrap_or_default();
        check_len(
            "Description",
            "InvalidParameter.Description.Length",
            description,
            1024,
        )?;
        if document.chars().count() > POLICY_DOCUMENT_MAX {
            return Err(invalid(
                "InvalidParameter.PolicyDocument.Length",
                format!("The policy document is longer than {POLICY_DOCUMENT_MAX} characters."),
            ));
        }
        Policy::parse(document).map_err(policy_error)?;
        let now = fcd_core::time::now();
        let policy = RamPolicy {
            policy_name: name.to_owned(),
            description: description.to_owned(),
            document: document.to_owned(),
            default_version: "v1".into(),
            create_date: now.clone(),
            update_date: now,
        };
        self.iam
            .store
            .create_ram_policy(&self.account, &policy)
            .await
            .map_err(|e| store_error(e, name))?;
        Ok(PolicyInfo {
            policy_name: policy.policy_name,
            policy_type: PolicyType::Custom,
            description: policy.description,
            default_version: policy.default_version,
            document: policy.document,
            create_date: policy.create_date,
            update_date: policy.update_date,
            attachment_count: 0,
        })
    }

    pub async fn get_policy(&self, name: &str, t: PolicyType) -> Result<PolicyInfo, FcError> {
        required("PolicyName", name)?;
        let snap = self.iam.snapshot().await?;
        info(snap.account(&self.account), t, name).ok_or_else(|| FcError::EntityNotExist {
            entity: RamEntity::Policy,
            name: name.to_owned(),
        })
    }

    /// Custom policies, then system ones, each by name; `only` filters by type.
    pub async fn list_policies(
        &self,
        only: Option<PolicyType>,
        paging: &Paging,
    ) -> Result<Listing<PolicyInfo>, FcError> {
        let snap = self.iam.snapshot().await?;
        let view = snap.account(&self.account);
        let system = SYSTEM_POLICIES
            .iter()
            .filter(|_| only.is_none_or(|t| t == PolicyType::System))
            .filter_map(|p| system_info(view, p.name));
        let custom = view
            .policies
            .keys()
            .filter(|_| only.is_none_or(|t| t == PolicyType::Custom))
            .filter_map(|n| custom_info(view, n));
        // Ordered by the marker's own form, so a marker resumes exactly where a page ended.
        let key = |p: &PolicyInfo| format!("{}:{}", p.policy_type.as_str(), p.policy_name);
        let mut all: Vec<PolicyInfo> = system.chain(custom).collect();
        all.sort_by_key(key);
        paginate(all.into_iter(), key, paging)
    }

    /// Deletes a custom policy; attached ones only with `cascade` (detached everywhere first).
    pub async fn delete_policy(&self, name: &str, cascade: bool) -> Result<(), FcError> {
        required("PolicyName", name)?;
        self.iam
            .store
            .delete_ram_policy(&self.account, name, cascade)
            .await
            .map_err(|e| store_error(e, name))
    }

    // ---- attachments ----

    pub async fn attach_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        t: PolicyType,
        policy_name: &str,
    ) -> Result<(), FcError> {
        self.check_attachment(kind, principal, t, policy_name)?;
        let a = RamAttachment {
            kind,
            principal: principal.to_owned(),
            policy_type: t,
            policy_name: policy_name.to_owned(),
            attach_date: fcd_core::time::now(),
        };
        self.iam
            .store
            .attach_ram_policy(&self.account, &a, CUSTOM_POLICIES_PER_USER)
            .await
            .map_err(|e| self.attachment_error(e, principal, policy_name))
    }

    pub async fn detach_policy(
        &self,
        kind: PrincipalKind,
        principal: &str,
        t: PolicyType,
        policy_name: &str,
    ) -> Result<(), FcError> {
        self.check_attachment(kind, principal, t, policy_name)?;
        self.iam
            .store
            .detach_ram_policy(&self.account, kind, principal, t, policy_name)
            .await
            .map_err(|e| self.attachment_error(e, principal, policy_name))
    }

    fn check_attachment(
        &self,
        kind: PrincipalKind,
        principal: &str,
        t: PolicyType,
        policy_name: &str,
    ) -> Result<(), FcError> {
        required("PolicyName", policy_name)?;
        match kind {
            PrincipalKind::User => required("UserName", principal)?,
            PrincipalKind::Role => required("RoleName", principal)?,
        }
        if t == PolicyType::System && super::system::find(policy_name).is_none() {
            return Err(FcError::EntityNotExist {
                entity: RamEntity::Policy,
                name: policy_name.to_owned(),
            });
        }
        Ok(())
    }

    fn attachment_error(&self, e: IamStoreError, principal: &str, policy: &str) -> FcError {
        match e {
            IamStoreError::NotFound(RamEntity::Policy) => store_error(e, policy),
            IamStoreError::NotFound(entity @ (RamEntity::UserPolicy | RamEntity::RolePolicy))
            | IamStoreError::AlreadyExists(
                entity @ (RamEntity::UserPolicy | RamEntity::RolePolicy),
            ) => {
                let name = format!("{policy} of {principal}");
                match e {
                    IamStoreError::NotFound(_) => FcError::EntityNotExist { entity, name },
                    _ => FcError::EntityAlreadyExists { entity, name },
                }
            }
            e => store_error(e, principal),
        }
    }

    /// The policies attached to a user or role, in the order they were attached.
    pub async fn list_policies_for(
        &self,
        kind: PrincipalKind,
        principal: &str,
    ) -> Result<Vec<AttachedPolicy>, FcError> {
        let snap = self.iam.snapshot().await?;
        let view = snap.account(&self.account);
        let (attachments, entity) = match kind {
            PrincipalKind::User => {
                required("UserName", principal)?;
                (
                    view.users.get(principal).map(|u| &u.attachments),
                    RamEntity::User,
                )
            }
            PrincipalKind::Role => {
                required("RoleName", principal)?;
                (
                    view.roles.get(principal).map(|r| &r.attachments),
                    RamEntity::Role,
                )
            }
        };
        let attachments = attachments.ok_or_else(|| FcError::EntityNotExist {
            entity,
            name: principal.to_owned(),
        })?;
        Ok(attachments
            .iter()
            .filter_map(|a| {
                info(view, a.policy_type, &a.policy_name).map(|policy| AttachedPolicy {
                    policy,
                    attach_date: a.attach_date.clone(),
                })
            })
            .collect())
    }

    // ---- roles ----

    pub async fn create_role(&self, r: NewRole) -> Result<RamRole, FcError> {
        check_role_name(&r.role_name)?;
        required("AssumeRolePolicyDocument", &r.assume_role_policy_document)?;
        if r.assume_role_policy_document.chars().count() > POLICY_DOCUMENT_MAX {
            return Err(invalid(
                "InvalidParameter.AssumeRolePolicyDocument.Length",
                format!("The trust policy is longer than {POLICY_DOCUMENT_MAX} characters."),
            ));
        }
        TrustPolicy::parse(&r.assume_role_policy_document).map_err(policy_error)?;
        let description = r.description.unwrap_or_default();
        check_len(
            "Description",
            "InvalidParameter.Description.Length",
            &description,
            1024,
        )?;
        let (lo, hi) = MAX_SESSION_DURATION_RANGE;
        let max = r.max_session_duration.unwrap_or(lo);
        if !(lo..=hi).contains(&max) {
            return Err(invalid(
                "InvalidParameter.MaxSessionDuration",
                format!(
                    "The parameter MaxSessionDuration {max} is out of range: it must be between {lo} and {hi} seconds."
                ),
            ));
        }
        let now = fcd_core::time::now();
        let role = RamRole {
            role_id: numeric_id()?,
            arn: format!("acs:ram::{}:role/{}", self.account, r.role_name),
            role_name: r.role_name.clone(),
            assume_role_policy_document: r.assume_role_policy_document,
            description,
            max_session_duration: max,
            create_date: now.clone(),
            update_date: now,
        };
        self.iam
            .store
            .create_ram_role(&self.account, &role)
            .await
            .map_err(|e| store_error(e, &r.role_name))?;
        Ok(role)
    }

    pub async fn get_role(&self, name: &str) -> Result<RamRole, FcError> {
        required("RoleName", name)?;
        let snap = self.iam.snapshot().await?;
        snap.account(&self.account)
            .roles
            .get(name)
            .map(|r| r.role.clone())
            .ok_or_else(|| FcError::EntityNotExist {
                entity: RamEntity::Role,
                name: name.to_owned(),
            })
    }

    pub async fn list_roles(&self, paging: &Paging) -> Result<Listing<RamRole>, FcError> {
        let snap = self.iam.snapshot().await?;
        paginate(
            snap.account(&self.account)
                .roles
                .values()
                .map(|r| r.role.clone()),
            |r| r.role_name.clone(),
            paging,
        )
    }

    pub async fn delete_role(&self, name: &str) -> Result<(), FcError> {
        required("RoleName", name)?;
        self.iam
            .store
            .delete_ram_role(&self.account, name)
            .await
            .map_err(|e| store_error(e, name))
    }
}
