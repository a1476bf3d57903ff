//! STS: AssumeRole (temporary credentials for a RAM user or an assumed role), GetCallerIdentity,
//! and the credentials FC itself takes on for a service's role.

use std::time::SystemTime;

use fcd_core::FcError;
use fcd_core::error::RamEntity;
use fcd_iam::{Policy, SessionClaims, TemporaryCredentials, TrustedPrincipal};

use super::ram::policy_error;
use super::snapshot::RoleView;
use super::{AuthContext, DEFAULT_SESSION_DURATION_SECS, Iam, Principal, unix_secs};

/// The longest session policy AssumeRole takes.
pub const SESSION_POLICY_MAX: usize = 2048;
/// The service principal a role must trust for FC to take it on for a service's functions.
pub const FC_SERVICE: &str = "fc.aliyuncs.com";
/// The session name of credentials FC takes on for a service's role.
pub const FUNCTION_SESSION_NAME: &str = "function-compute";

/// AssumeRole's input.
#[derive(Debug, Clone, Default)]
pub struct AssumeRoleRequest {
    pub role_arn: String,
    pub role_session_name: String,
    pub duration_seconds: Option<u64>,
    /// The session policy: narrows the role's permissions for this session.
    pub policy: Option<String>,
}

/// AssumeRole's answer.
#[derive(Debug, Clone)]
pub struct AssumedRole {
    pub credentials: TemporaryCredentials,
    /// `acs:ram::<account>:role/<role>/<session>`.
    pub arn: String,
    /// `<roleId>:<session>`.
    pub assumed_role_id: String,
}

/// GetCallerIdentity's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `Account`, `RAMUser` or `AssumedRoleUser`.
    pub identity_type: &'static str,
    pub account_id: String,
    pub principal_id: String,
    /// For the account and users.
    pub user_id: Option<String>,
    /// For assumed roles.
    pub role_id: Option<String>,
    pub arn: String,
}

fn invalid(code: &'static str, message: impl Into<String>) -> FcError {
    FcError::RamInvalidParameter {
        code,
        message: message.into(),
    }
}

/// `acs:ram::<account>:role/<name>` → (account, name).
fn parse_role_arn(arn: &str) -> Option<(&str, &str)> {
    let rest = arn.strip_prefix("acs:ram::")?;
    let (account, name) = rest.split_once(":role/")?;
    let ok = !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
    ok.then_some((account, name))
}

fn check_session_name(name: &str) -> Result<(), FcError> {
    if name.is_empty() {
        return Err(FcError::MissingParameter("RoleSessionName".into()));
    }
    let len = name.chars().count();
    let chars_ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || ".@-_".contains(c));
    if !(2..=64).contains(&len) || !chars_ok {
        return Err(invalid(
            "InvalidParameter.RoleSessionName",
            format!(
                "The parameter RoleSessionName '{name}' is not valid: 2 to 64 characters from letters, digits and '.@-_'."
            ),
        ));
    }
    Ok(())
}

impl Iam {
    /// STS AssumeRole for `caller` (a RAM user or an assumed role; the account's root key
    /// cannot). The caller needs `sts:AssumeRole` on the role's ARN and the role's trust policy
    /// must trust it; the credentials carry the role's permissions narrowed by `req.policy`.
    pub async fn assume_role(
        &self,
        caller: &Principal,
        req: AssumeRoleRequest,
        ctx: &AuthContext,
    ) -> Result<AssumedRole, FcError> {
        if caller.is_root() {
            return Err(FcError::NoPermission(
                "Roles may not be assumed by root accounts: call AssumeRole with the access key of a RAM user or role.".into(),
            ));
        }
        if req.role_arn.is_empty() {
            return Err(FcError::MissingParameter("RoleArn".into()));
        }
        let (account, role_name) = parse_role_arn(&req.role_arn).ok_or_else(|| {
            invalid(
                "InvalidParameter.RoleArn",
                format!(
                    "The parameter RoleArn '{}' is not valid: expected acs:ram::<account>:role/<name>.",
                    req.role_arn
                ),
            )
        })?;
        check_session_name(&req.role_session_name)?;
        let session_policy = match req.policy.as_deref().filter(|p| !p.is_empty()) {
            None => None,
            Some(doc) => {
                let len = doc.chars().count();
                if len > SESSION_POLICY_MAX {
                    return Err(invalid(
                        "InvalidParameter.PolicySize",
                        format!(
                            "The session policy is {len} characters long; at most {SESSION_POLICY_MAX} are allowed."
                        ),
                    ));
                }
                Policy::parse(doc).map_err(|e| {
                    invalid(
                        "InvalidParameter.PolicyGrammar",
                        policy_error(e).to_string(),
                    )
                })?;
                Some(doc.to_owned())
            }
        };
        let arn = format!("acs:ram::{account}:role/{role_name}");
        if !self
            .decide(caller, "sts:AssumeRole", &arn, ctx)
            .await?
            .is_allowed()
        {
            return Err(FcError::NoPermission(format!(
                "You are not authorized to do this action. You should be authorized by RAM: '{}' may not perform 'sts:AssumeRole' on '{arn}'.",
                caller.arn()
            )));
        }
        let snap = self.snapshot().await?;
        let role =
            snap.account(account)
                .roles
                .get(role_name)
                .ok_or_else(|| FcError::EntityNotExist {
                    entity: RamEntity::Role,
                    name: req.role_arn.clone(),
                })?;
        let who = match caller {
            Principal::Session(s) => format!("acs:ram::{}:role/{}", s.account_id, s.role_name),
            other => other.arn(),
        };
        let trusted = role.trust.as_ref().is_some_and(|t| {
            t.trusts(&TrustedPrincipal::Ram {
                account_id: caller.account_id(),
                arn: &who,
            })
        });
        if !trusted {
            return Err(FcError::NoPermission(format!(
                "You are not authorized to do this action. The trust policy of role '{arn}' does not allow '{}' to assume it.",
                caller.arn()
            )));
        }
        let max = u64::from(role.role.max_session_duration);
        let duration = req
            .duration_seconds
            .unwrap_or(DEFAULT_SESSION_DURATION_SECS.min(max));
        if duration < self.min_session_duration_secs || duration > max {
            return Err(invalid(
                "InvalidParameter.DurationSeconds",
                format!(
                    "The parameter DurationSeconds {duration} is out of range: it must be between {} and the role's MaxSessionDuration {max}.",
                    self.min_session_duration_secs
                ),
            ));
        }
        let credentials = self.mint(
            account,
            role,
            &req.role_session_name,
            session_policy,
            ctx.now,
            duration,
        );
        Ok(AssumedRole {
            credentials,
            arn: format!(
                "acs:ram::{account}:role/{}/{}",
                role.role.role_name, req.role_session_name
            ),
            assumed_role_id: format!("{}:{}", role.role.role_id, req.role_session_name),
        })
    }

    fn mint(
        &self,
        account: &str,
        role: &RoleView,
        session_name: &str,
        session_policy: Option<String>,
        now: SystemTime,
        duration: u64,
    ) -> TemporaryCredentials {
        let issued_at = unix_secs(now);
        let (credentials, _) = self.token_key.mint(SessionClaims {
            access_key_id: String::new(),
            account_id: account.to_owned(),
            role_name: role.role.role_name.clone(),
            role_id: role.role.role_id.clone(),
            session_name: session_name.to_owned(),
            issued_at,
            expires_at: issued_at.saturating_add(duration),
            session_policy,
        });
        credentials
    }

    /// STS GetCallerIdentity (no permission needed).
    pub fn caller_identity(&self, caller: &Principal) -> CallerIdentity {
        match caller {
            Principal::Root { account_id } => CallerIdentity {
                identity_type: "Account",
                account_id: account_id.clone(),
                principal_id: account_id.clone(),
                user_id: Some(account_id.clone()),
                role_id: None,
                arn: caller.arn(),
            },
            Principal::User {
                account_id,
                user_id,
                ..
            } => CallerIdentity {
                identity_type: "RAMUser",
                account_id: account_id.clone(),
                principal_id: user_id.clone(),
                user_id: Some(user_id.clone()),
                role_id: None,
                arn: caller.arn(),
            },
            Principal::Session(s) => CallerIdentity {
                identity_type: "AssumedRoleUser",
                account_id: s.account_id.clone(),
                principal_id: format!("{}:{}", s.role_id, s.session_name),
                user_id: None,
                role_id: Some(s.role_id.clone()),
                arn: caller.arn(),
            },
        }
    }

    /// Temporary credentials for the functions of a service whose `role` is `role_arn`, in
    /// `account`: the role must exist in that account and trust the service principal
    /// `fc.aliyuncs.com`. The credentials act as the role (session `function-compute`) and its
    /// policies are evaluated live at each request made with them. The same credentials are
    /// handed out again while at least half of their life is left; a change to the role (its
    /// trust policy, or deleting and re-creating it) takes effect at the next call.
    pub async fn function_credentials(
        &self,
        account: &str,
        role_arn: &str,
    ) -> Result<TemporaryCredentials, FcError> {
        let now = SystemTime::now();
        let denied = |why: &str| {
            FcError::AccessDenied(format!(
                "Function Compute cannot assume the service's role '{role_arn}': {why}"
            ))
        };
        let (role_account, role_name) =
            parse_role_arn(role_arn).ok_or_else(|| denied("it is not a role ARN"))?;
        if role_account != account {
            return Err(denied("the role belongs to another account"));
        }
        let snap = self.snapshot().await?;
        let role = snap
            .account(account)
            .roles
            .get(role_name)
            .ok_or_else(|| denied("the role does not exist"))?;
        let trusted = role
            .trust
            .as_ref()
            .is_some_and(|t| t.trusts(&TrustedPrincipal::Service(FC_SERVICE)));
        if !trusted {
            return Err(denied(&format!(
                "its trust policy does not trust the service '{FC_SERVICE}'"
            )));
        }
        let duration = u64::from(role.role.max_session_duration).min(DEFAULT_SESSION_DURATION_SECS);
        let key = (account.to_owned(), role_arn.to_owned());
        let now_secs = unix_secs(now);
        if let Ok(cache) = self.function_creds.lock()
            && let Some(c) = cache.get(&key)
            && c.expires_at > now_secs.saturating_add(duration / 2)
            && self.token_matches_role(c, role, now)
        {
            return Ok(c.clone());
        }
        let creds = self.mint(account, role, FUNCTION_SESSION_NAME, None, now, duration);
        if let Ok(mut cache) = self.function_creds.lock() {
            cache.insert(key, creds.clone());
        }
        Ok(creds)
    }

    /// Whether cached credentials were minted for this very role (not one deleted and
    /// re-created under the same name since).
    fn token_matches_role(
        &self,
        c: &TemporaryCredentials,
        role: &RoleView,
        now: SystemTime,
    ) -> bool {
        self.token_key
            .verify(&c.access_key_id, &c.security_token, now)
            .is_ok_and(|claims| claims.role_id == role.role.role_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_arns() {
        assert_eq!(
            parse_role_arn("acs:ram::1234567890123456:role/ci-role"),
            Some(("1234567890123456", "ci-role"))
        );
        for bad in [
            "acs:ram:cn-hangzhou:1:role/x",
            "acs:ram::1:user/x",
            "acs:ram::abc:role/x",
            "acs:ram::1:role/",
            "acs:ram::1:role/a/b",
            "acs:ram::1:role/a b",
        ] {
            assert_eq!(parse_role_arn(bad), None, "{bad}");
        }
    }

    #[test]
    fn session_names() {
        for ok in ["s1", "alice@example.com", "a-b_c.d", &"x".repeat(64)] {
            assert!(check_session_name(ok).is_ok(), "{ok}");
        }
        for bad in ["a", "has space", "a/b", &"x".repeat(65)] {
            assert_eq!(
                check_session_name(bad).unwrap_err().code(),
                "InvalidParameter.RoleSessionName",
                "{bad}"
            );
        }
        assert_eq!(
            check_session_name("").unwrap_err().code(),
            "MissingParameter"
        );
    }
}
