//! The in-memory view of all RAM state that requests are resolved and authorized against: the
//! store's records indexed for lookups, every attached policy already parsed, tagged with the
//! store generation it was built from.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use fcd_iam::{Policy, TrustPolicy};
use fcd_store::iam::{
    IamState, PolicyType, PrincipalKind, RamAccessKey, RamAttachment, RamPolicy, RamRole, RamUser,
};

use super::system::SYSTEM_POLICIES;

/// The parsed system policies, built once per [`super::Iam`].
#[derive(Debug)]
pub(crate) struct SystemSet {
    pub(crate) parsed: HashMap<&'static str, Arc<Policy>>,
}

impl SystemSet {
    pub(crate) fn new() -> SystemSet {
        let mut parsed = HashMap::new();
        for p in SYSTEM_POLICIES {
            match Policy::parse(p.document) {
                Ok(policy) => {
                    parsed.insert(p.name, Arc::new(policy));
                }
                // A bug in this file, not in input: the policy then grants nothing.
                Err(e) => {
                    tracing::error!(policy = p.name, error = %e, "system policy does not parse")
                }
            }
        }
        SystemSet { parsed }
    }
}

/// The policies in force for one user or role. `broken` when one of them no longer parses: the
/// principal is then denied everything (an unreadable Deny must not turn into an Allow).
#[derive(Debug, Clone, Default)]
pub(crate) struct Effective {
    pub(crate) policies: Vec<Arc<Policy>>,
    pub(crate) broken: bool,
}

#[derive(Debug)]
pub(crate) struct UserView {
    pub(crate) user: RamUser,
    pub(crate) attachments: Vec<RamAttachment>,
    pub(crate) effective: Effective,
}

#[derive(Debug)]
pub(crate) struct RoleView {
    pub(crate) role: RamRole,
    /// `None` when the stored trust policy no longer parses: nobody may assume the role.
    pub(crate) trust: Option<TrustPolicy>,
    pub(crate) attachments: Vec<RamAttachment>,
    pub(crate) effective: Effective,
}

#[derive(Debug)]
pub(crate) struct PolicyView {
    pub(crate) policy: RamPolicy,
    pub(crate) attachment_count: u32,
}

#[derive(Debug, Default)]
pub(crate) struct AccountView {
    pub(crate) users: BTreeMap<String, UserView>,
    pub(crate) roles: BTreeMap<String, RoleView>,
    pub(crate) policies: BTreeMap<String, PolicyView>,
    pub(crate) keys_by_user: BTreeMap<String, Vec<RamAccessKey>>,
    /// Attachments per system policy name.
    pub(crate) system_attachments: HashMap<String, u32>,
}

/// Where a RAM user's access key leads.
#[derive(Clone)]
pub(crate) struct KeyEntry {
    pub(crate) account_id: String,
    pub(crate) user_name: String,
    pub(crate) secret: String,
    pub(crate) active: bool,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyEntry")
            .field("account_id", &self.account_id)
            .field("user_name", &self.user_name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Snapshot {
    /// `None` until the first load.
    pub(crate) generation: Option<u64>,
    pub(crate) keys: HashMap<String, KeyEntry>,
    pub(crate) accounts: HashMap<String, AccountView>,
}

static EMPTY: std::sync::LazyLock<AccountView> = std::sync::LazyLock::new(AccountView::default);

impl Snapshot {
    pub(crate) fn account(&self, id: &str) -> &AccountView {
        self.accounts.get(id).unwrap_or(&EMPTY)
    }

    pub(crate) fn build(state: IamState, system: &SystemSet) -> Snapshot {
        let mut snap = Snapshot {
            generation: Some(state.generation),
            ..Snapshot::default()
        };
        for (account_id, acct) in state.accounts {
            let mut view = AccountView::default();
            let mut parsed: HashMap<&str, Option<Arc<Policy>>> = HashMap::new();
            for p in &acct.policies {
                let policy = match Policy::parse(&p.document) {
                    Ok(policy) => Some(Arc::new(policy)),
                    Err(e) => {
                        tracing::error!(account = %account_id, policy = %p.policy_name, error = %e,
                            "a stored policy no longer parses: whoever it is attached to is denied everything");
                        None
                    }
                };
                parsed.insert(&p.policy_name, policy);
            }
            let resolve = |a: &RamAttachment, eff: &mut Effective| {
                let found = match a.policy_type {
                    PolicyType::System => system.parsed.get(a.policy_name.as_str()).cloned(),
                    PolicyType::Custom => parsed.get(a.policy_name.as_str()).cloned().flatten(),
                };
                match found {
                    Some(p) => eff.policies.push(p),
                    None => eff.broken = true,
                }
            };
            let mut user_attachments: HashMap<&str, Vec<RamAttachment>> = HashMap::new();
            let mut role_attachments: HashMap<&str, Vec<RamAttachment>> = HashMap::new();
            let mut custom_counts: HashMap<&str, u32> = HashMap::new();
            for a in &acct.attachments {
                match a.policy_type {
                    PolicyType::Custom => *custom_counts.entry(&a.policy_name).or_default() += 1,
                    PolicyType::System => {
                        *view
                            .system_attachments
                            .entry(a.policy_name.clone())
                            .or_default() += 1
                    }
                }
                let by = match a.kind {
                    PrincipalKind::User => &mut user_attachments,
                    PrincipalKind::Role => &mut role_attachments,
                };
                by.entry(&a.principal).or_default().push(a.clone());
            }
            for user in acct.users {
                let attachments = user_attachments
                    .remove(user.user_name.as_str())
                    .unwrap_or_default();
                let mut effective = Effective::default();
                for a in &attachments {
                    resolve(a, &mut effective);
                }
                view.users.insert(
                    user.user_name.clone(),
                    UserView {
                        user,
                        attachments,
                        effective,
                    },
                );
            }
            for role in acct.roles {
                let attachments = role_attachments
                    .remove(role.role_name.as_str())
                    .unwrap_or_default();
                let mut effective = Effective::default();
                for a in &attachments {
                    resolve(a, &mut effective);
                }
                let trust = match TrustPolicy::parse(&role.assume_role_policy_document) {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::error!(account = %account_id, role = %role.role_name, error = %e,
                            "a stored trust policy no longer parses: the role cannot be assumed");
                        None
                    }
                };
                view.roles.insert(
                    role.role_name.clone(),
                    RoleView {
                        role,
                        trust,
                        attachments,
                        effective,
                    },
                );
            }
            for key in acct.access_keys {
                snap.keys.insert(
                    key.access_key_id.clone(),
                    KeyEntry {
                        account_id: account_id.clone(),
                        user_name: key.user_name.clone(),
                        secret: key.access_key_secret.clone(),
                        active: key.status == "Active",
                    },
                );
                view.keys_by_user
                    .entry(key.user_name.clone())
                    .or_default()
                    .push(key);
            }
            for policy in acct.policies {
                let attachment_count = custom_counts
                    .get(policy.policy_name.as_str())
                    .copied()
                    .unwrap_or(0);
                view.policies.insert(
                    policy.policy_name.clone(),
                    PolicyView {
                        policy,
                        attachment_count,
                    },
                );
            }
            snap.accounts.insert(account_id, view);
        }
        snap
    }
}
