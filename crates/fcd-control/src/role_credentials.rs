//! A service role's temporary credentials for its functions (FC's "service role").
//!
//! A service whose `role` names a RAM role gets, for each of its functions' instances, STS
//! credentials of that role minted by [`Iam::function_credentials`] (which checks that the
//! role exists in the service's account and that its trust policy trusts `fc.aliyuncs.com`).
//! What the credentials may do is decided at each request they sign, by the role's policies as
//! they are then — revoking a policy takes effect at once, not when the token expires.
//!
//! One [`CachingSource`] is kept per (account, role ARN) for the server's lifetime, shared by
//! every function and version using that role, so re-resolving a function (after a cache drop)
//! never mints again and every instance of a role sees the same, periodically renewed token.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use fcd_core::FcError;
use fcd_runtime::credentials::{CachingSource, Mint};
use fcd_runtime::{CredentialSource, FunctionCredentials};

use crate::iam::Iam;

/// Mints credentials of one role for the functions of one account.
struct RoleMint {
    iam: Arc<Iam>,
    account_id: String,
    role_arn: String,
}

impl std::fmt::Debug for RoleMint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoleMint")
            .field("account_id", &self.account_id)
            .field("role_arn", &self.role_arn)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Mint for RoleMint {
    async fn mint(&self) -> Result<FunctionCredentials, FcError> {
        let c = self
            .iam
            .function_credentials(&self.account_id, &self.role_arn)
            .await?;
        Ok(FunctionCredentials {
            access_key_id: c.access_key_id,
            access_key_secret: c.access_key_secret,
            security_token: c.security_token,
            expires_at: c.expires_at,
        })
    }
}

/// The credential sources of every role in use, one per (account, role ARN).
pub(crate) struct RoleSources {
    iam: Arc<Iam>,
    sources: RwLock<HashMap<(String, String), Arc<dyn CredentialSource>>>,
}

impl RoleSources {
    pub(crate) fn new(iam: Arc<Iam>) -> RoleSources {
        RoleSources {
            iam,
            sources: RwLock::new(HashMap::new()),
        }
    }

    /// The source for `role_arn`'s credentials in `account_id`; `None` for a service without
    /// a role. Minting happens on first use, not here.
    pub(crate) fn for_role(
        &self,
        account_id: &str,
        role_arn: &str,
    ) -> Option<Arc<dyn CredentialSource>> {
        if role_arn.is_empty() {
            return None;
        }
        let key = (account_id.to_owned(), role_arn.to_owned());
        if let Ok(s) = self.sources.read()
            && let Some(src) = s.get(&key)
        {
            return Some(src.clone());
        }
        let mut sources = match self.sources.write() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let src = sources.entry(key).or_insert_with(|| {
            Arc::new(CachingSource::new(RoleMint {
                iam: self.iam.clone(),
                account_id: account_id.to_owned(),
                role_arn: role_arn.to_owned(),
            })) as Arc<dyn CredentialSource>
        });
        Some(src.clone())
    }
}
