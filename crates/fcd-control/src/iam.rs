//! Access control, the way Alibaba Cloud RAM and STS do it: who a caller is, what it may do,
//! and the RAM and STS operations that change that.
//!
//! - [`Iam::resolve`] turns an access key id (and, for temporary keys, the security token sent
//!   with it) into the key's secret and the [`Principal`] acting: the account itself (root keys
//!   from the server's configuration), a RAM user (keys in the store), or an assumed-role
//!   session (`STS.` keys: the secret is derived and the token verified, nothing is looked up).
//! - [`Iam::authorize`] decides one action on one resource for a principal: root may do
//!   everything; a user has the union of its attached policies; a session has its role's
//!   policies narrowed by the session policy.
//! - [`Iam::ram`] gives the account's root the RAM operations ([`ram::Ram`]); [`Iam::assume_role`],
//!   [`Iam::caller_identity`] and [`Iam::function_credentials`] are STS.
//!
//! Users and roles are resolved and evaluated against an in-memory [`snapshot`] of all RAM
//! state. The store bumps a generation with every IAM write; each non-root request reads it (one
//! cheap query) and reloads the snapshot when it moved, so a change made on any node applies to
//! the next request everywhere. The root key never touches the store.

pub mod ram;
mod snapshot;
mod sts;
mod system;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use fcd_core::FcError;
use fcd_core::error::TokenProblem;
use fcd_iam::{Decision, Policy, RequestContext, TokenError, TokenKey};
use fcd_store::MetadataStore;

use crate::internal;
use snapshot::{Snapshot, SystemSet};

pub use sts::{
    AssumeRoleRequest, AssumedRole, CallerIdentity, FC_SERVICE, FUNCTION_SESSION_NAME,
    SESSION_POLICY_MAX,
};

/// The lowest `DurationSeconds` AssumeRole accepts (STS's rule).
pub const MIN_SESSION_DURATION_SECS: u64 = 900;
/// The role's `MaxSessionDuration` range and default.
pub const MAX_SESSION_DURATION_RANGE: (u32, u32) = (3600, 43_200);
pub const DEFAULT_SESSION_DURATION_SECS: u64 = 3600;

/// One of the account's own (root) access keys, from the server's configuration.
#[derive(Clone)]
pub struct RootKey {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub account_id: String,
}

impl std::fmt::Debug for RootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootKey")
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// How the server's access control is set up.
#[derive(Debug, Clone)]
pub struct IamConfig {
    /// The region in FC resource ARNs.
    pub region: String,
    pub root_keys: Vec<RootKey>,
    /// Seals security tokens and derives temporary secrets; every node serving the same
    /// accounts must hold the same key.
    pub token_key: TokenKey,
    /// The lowest `DurationSeconds` AssumeRole accepts: [`MIN_SESSION_DURATION_SECS`] unless a
    /// test lowers it (`fcd serve --test-sts-min-duration-secs`) to see tokens expire.
    pub min_session_duration_secs: u64,
}

/// An assumed-role session, as its security token describes it.
#[derive(Debug)]
pub struct RoleSession {
    pub account_id: String,
    pub role_name: String,
    pub role_id: String,
    pub session_name: String,
    /// The temporary access key id (`STS.…`).
    pub access_key_id: String,
    /// Unix seconds.
    pub expires_at: u64,
    /// The policy given to AssumeRole, which narrows the role's.
    pub session_policy: Option<Policy>,
}

/// Who is acting.
#[derive(Debug, Clone)]
pub enum Principal {
    /// The account itself (its root key): may do everything, RAM included.
    Root { account_id: String },
    /// A RAM user, through one of its access keys.
    User {
        account_id: String,
        user_name: String,
        user_id: String,
    },
    /// A role assumed through STS (by AssumeRole, or by FC for a service's role).
    Session(Arc<RoleSession>),
}

impl Principal {
    pub fn account_id(&self) -> &str {
        match self {
            Principal::Root { account_id } | Principal::User { account_id, .. } => account_id,
            Principal::Session(s) => &s.account_id,
        }
    }

    pub fn is_root(&self) -> bool {
        matches!(self, Principal::Root { .. })
    }

    /// `acs:ram::<account>:root`, `…:user/<name>`, or `…:assumed-role/<role>/<session>`.
    pub fn arn(&self) -> String {
        match self {
            Principal::Root { account_id } => format!("acs:ram::{account_id}:root"),
            Principal::User {
                account_id,
                user_name,
                ..
            } => format!("acs:ram::{account_id}:user/{user_name}"),
            Principal::Session(s) => format!(
                "acs:ram::{}:assumed-role/{}/{}",
                s.account_id, s.role_name, s.session_name
            ),
        }
    }
}

/// What an access key id resolves to: the secret the request must be signed with, and who
/// acts.
#[derive(Clone)]
pub struct Credential {
    pub secret: String,
    pub principal: Principal,
    /// The snapshot a user's key was resolved in: [`Iam::authorize_credential`] decides in it
    /// rather than reading the generation a second time for the same request.
    snapshot: Option<Arc<Snapshot>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

/// The request's condition keys.
#[derive(Debug, Clone, Copy)]
pub struct AuthContext {
    /// `acs:SourceIp`: the TCP peer; `None` when unknown (a condition on it then fails).
    pub source_ip: Option<IpAddr>,
    /// `acs:CurrentTime`.
    pub now: SystemTime,
    /// `acs:SecureTransport`.
    pub secure_transport: bool,
}

pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Unix seconds as RAM's `2015-01-23T12:33:18Z`.
pub fn format_unix(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    fcd_core::time::fc_timestamp(t)
}

fn token_error(e: TokenError) -> FcError {
    let problem = match e {
        TokenError::Malformed => TokenProblem::Malformed,
        TokenError::Expired => TokenProblem::Expired,
        TokenError::MismatchWithAccessKey(_) => TokenProblem::MismatchWithAccessKey,
    };
    FcError::InvalidSecurityToken {
        problem,
        message: format!("The security token is not valid: {e}."),
    }
}

pub struct Iam {
    store: Arc<dyn MetadataStore>,
    region: String,
    roots: HashMap<String, RootKey>,
    token_key: TokenKey,
    min_session_duration_secs: u64,
    system: SystemSet,
    snapshot: RwLock<Arc<Snapshot>>,
    /// One reload at a time; others wait for it and use its result.
    reload: tokio::sync::Mutex<()>,
    /// Credentials handed out for services' roles, reused while they have enough life left.
    function_creds: Mutex<HashMap<(String, String), fcd_iam::TemporaryCredentials>>,
}

impl std::fmt::Debug for Iam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iam")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Iam {
    pub fn new(store: Arc<dyn MetadataStore>, config: IamConfig) -> Iam {
        Iam {
            store,
            region: config.region,
            roots: config
                .root_keys
                .into_iter()
                .map(|k| (k.access_key_id.clone(), k))
                .collect(),
            token_key: config.token_key,
            min_session_duration_secs: config.min_session_duration_secs,
            system: SystemSet::new(),
            snapshot: RwLock::new(Arc::new(Snapshot::default())),
            reload: tokio::sync::Mutex::new(()),
            function_creds: Mutex::new(HashMap::new()),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The accounts the server's root keys belong to (usually one), without repeats.
    pub fn root_accounts(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.roots.values().map(|k| k.account_id.as_str()).collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// A root key of the server's configuration: the fast path, no store read.
    pub fn root_key(&self, access_key_id: &str) -> Option<&RootKey> {
        self.roots.get(access_key_id)
    }

    /// The secret and principal of `access_key_id`. A temporary (`STS.`) key needs the
    /// `security_token` it was issued with, unexpired at `now`; other keys ignore it.
    /// Unknown keys (and keys of deleted users) are `InvalidAccessKeyID`.
    pub async fn resolve(
        &self,
        access_key_id: &str,
        security_token: Option<&str>,
        now: SystemTime,
    ) -> Result<Credential, FcError> {
        if let Some(root) = self.roots.get(access_key_id) {
            return Ok(Credential {
                secret: root.access_key_secret.clone(),
                principal: Principal::Root {
                    account_id: root.account_id.clone(),
                },
                snapshot: None,
            });
        }
        if TokenKey::is_temporary(access_key_id) {
            let token = security_token.filter(|t| !t.is_empty()).ok_or_else(|| {
                FcError::InvalidSecurityToken {
                    problem: TokenProblem::Missing,
                    message: format!(
                        "The access key '{access_key_id}' is temporary: the request must carry its security token."
                    ),
                }
            })?;
            let claims = self
                .token_key
                .verify(access_key_id, token, now)
                .map_err(token_error)?;
            let session_policy = match &claims.session_policy {
                Some(doc) => {
                    Some(
                        Policy::parse(doc).map_err(|_| FcError::InvalidSecurityToken {
                            problem: TokenProblem::Malformed,
                            message: "The security token's session policy is not valid.".into(),
                        })?,
                    )
                }
                None => None,
            };
            return Ok(Credential {
                secret: self.token_key.secret_for(access_key_id),
                principal: Principal::Session(Arc::new(RoleSession {
                    account_id: claims.account_id,
                    role_name: claims.role_name,
                    role_id: claims.role_id,
                    session_name: claims.session_name,
                    access_key_id: access_key_id.to_owned(),
                    expires_at: claims.expires_at,
                    session_policy,
                })),
                snapshot: None,
            });
        }
        let snap = self.snapshot().await?;
        let unknown = || FcError::InvalidAccessKeyId(access_key_id.to_owned());
        let entry = snap.keys.get(access_key_id).ok_or_else(unknown)?;
        if !entry.active {
            return Err(unknown());
        }
        let user = snap
            .account(&entry.account_id)
            .users
            .get(&entry.user_name)
            .ok_or_else(unknown)?;
        Ok(Credential {
            secret: entry.secret.clone(),
            principal: Principal::User {
                account_id: entry.account_id.clone(),
                user_name: user.user.user_name.clone(),
                user_id: user.user.user_id.clone(),
            },
            snapshot: Some(snap.clone()),
        })
    }

    /// The decision for `principal` doing `action` on `resource` (a full ARN).
    pub async fn decide(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
        ctx: &AuthContext,
    ) -> Result<Decision, FcError> {
        self.decide_in(None, principal, action, resource, ctx).await
    }

    /// [`Iam::decide`] in `snapshot` when given (taken during this request), else in a fresh one.
    async fn decide_in(
        &self,
        snapshot: Option<Arc<Snapshot>>,
        principal: &Principal,
        action: &str,
        resource: &str,
        ctx: &AuthContext,
    ) -> Result<Decision, FcError> {
        let req = RequestContext {
            action,
            resource,
            source_ip: ctx.source_ip,
            current_time: ctx.now,
            secure_transport: ctx.secure_transport,
        };
        match principal {
            Principal::Root { .. } => Ok(Decision::Allow),
            Principal::User {
                account_id,
                user_name,
                user_id,
            } => {
                let snap = match snapshot {
                    Some(s) => s,
                    None => self.snapshot().await?,
                };
                let Some(user) = snap.account(account_id).users.get(user_name) else {
                    return Ok(Decision::ImplicitDeny);
                };
                // A user deleted and created again under the same name is someone else.
                if &user.user.user_id != user_id || user.effective.broken {
                    return Ok(Decision::ImplicitDeny);
                }
                Ok(fcd_iam::policy::evaluate(
                    user.effective.policies.iter().map(Arc::as_ref),
                    &req,
                ))
            }
            Principal::Session(s) => {
                if s.expires_at <= unix_secs(ctx.now) {
                    return Ok(Decision::ImplicitDeny);
                }
                let snap = self.snapshot().await?;
                let Some(role) = snap.account(&s.account_id).roles.get(&s.role_name) else {
                    return Ok(Decision::ImplicitDeny);
                };
                if role.role.role_id != s.role_id || role.effective.broken {
                    return Ok(Decision::ImplicitDeny);
                }
                Ok(fcd_iam::policy::evaluate_session(
                    role.effective.policies.iter().map(Arc::as_ref),
                    s.session_policy.as_ref(),
                    &req,
                ))
            }
        }
    }

    /// Allows `principal` to do `action` on `resource`, or refuses with FC's `AccessDenied`
    /// naming both (and nothing about whether the resource exists).
    pub async fn authorize(
        &self,
        principal: &Principal,
        action: &str,
        resource: &str,
        ctx: &AuthContext,
    ) -> Result<(), FcError> {
        self.authorize_in(None, principal, action, resource, ctx)
            .await
    }

    /// [`Iam::authorize`] for the credential a request was just resolved to: a user's key is
    /// decided in the snapshot it was resolved in (one generation read per request, not two).
    pub async fn authorize_credential(
        &self,
        credential: &Credential,
        action: &str,
        resource: &str,
        ctx: &AuthContext,
    ) -> Result<(), FcError> {
        self.authorize_in(
            credential.snapshot.clone(),
            &credential.principal,
            action,
            resource,
            ctx,
        )
        .await
    }

    async fn authorize_in(
        &self,
        snapshot: Option<Arc<Snapshot>>,
        principal: &Principal,
        action: &str,
        resource: &str,
        ctx: &AuthContext,
    ) -> Result<(), FcError> {
        match self
            .decide_in(snapshot, principal, action, resource, ctx)
            .await?
        {
            Decision::Allow => Ok(()),
            Decision::ExplicitDeny => Err(FcError::AccessDenied(format!(
                "'{}' is not authorized to perform '{action}' on resource '{resource}': an explicit Deny in a policy refuses it",
                principal.arn()
            ))),
            Decision::ImplicitDeny => Err(FcError::AccessDenied(format!(
                "'{}' is not authorized to perform '{action}' on resource '{resource}': no policy allows it",
                principal.arn()
            ))),
        }
    }

    /// The RAM operations, for the account's root only (RAM users and roles get
    /// `NoPermission`).
    pub fn ram(&self, caller: &Principal) -> Result<ram::Ram<'_>, FcError> {
        match caller {
            Principal::Root { account_id } => Ok(ram::Ram::new(self, account_id.clone())),
            _ => Err(FcError::NoPermission(
                "You are not authorized to do this action. You should be authorized by RAM. (RAM operations are for the account's own access key only.)".into(),
            )),
        }
    }

    /// The current snapshot, reloaded first if the store's generation moved.
    async fn snapshot(&self) -> Result<Arc<Snapshot>, FcError> {
        let generation = self
            .store
            .iam_generation()
            .await
            .map_err(|e| internal("iam generation", e))?;
        if let Some(s) = self.current_if(generation) {
            return Ok(s);
        }
        let _one = self.reload.lock().await;
        if let Some(s) = self.current_if(generation) {
            return Ok(s);
        }
        let state = self
            .store
            .iam_state()
            .await
            .map_err(|e| internal("iam state", e))?;
        let snap = Arc::new(Snapshot::build(state, &self.system));
        if let Ok(mut cur) = self.snapshot.write() {
            *cur = snap.clone();
        }
        Ok(snap)
    }

    /// The cached snapshot when it is at least as new as `generation`.
    fn current_if(&self, generation: u64) -> Option<Arc<Snapshot>> {
        let cur = self.snapshot.read().ok()?;
        match cur.generation {
            Some(g) if g >= generation => Some(cur.clone()),
            _ => None,
        }
    }
}

/// Random characters from `alphabet` (uniform: rejection sampling), from the OS.
pub(crate) fn random_string(alphabet: &[u8], len: usize) -> Result<String, FcError> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| internal("randomness", e))?;
        for b in buf.iter().map(|b| *b as usize).filter(|b| *b < limit) {
            if out.len() == len {
                break;
            }
            out.push(alphabet[b % alphabet.len()] as char);
        }
    }
    Ok(out)
}

/// A RAM-style numeric id (16 digits, no leading zero).
pub(crate) fn numeric_id() -> Result<String, FcError> {
    Ok(format!(
        "{}{}",
        random_string(b"123456789", 1)?,
        random_string(b"0123456789", 15)?
    ))
}

#[cfg(test)]
mod tests;
