//! Temporary credentials. A security token is self-contained and sealed with the token key
//! (HMAC-SHA256), so every node that holds the key verifies it without a lookup; the secret of
//! a temporary access key is derived from the key id with the same key, so nothing is stored.

use std::time::SystemTime;

/// The server's key for sealing tokens and deriving temporary secrets.
#[derive(Clone)]
pub struct TokenKey {
    key: [u8; 32],
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// What a token says about its session.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionClaims {
    /// The temporary access key id this token belongs to (`STS.…`).
    pub access_key_id: String,
    pub account_id: String,
    pub role_name: String,
    pub role_id: String,
    pub session_name: String,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds.
    pub expires_at: u64,
    /// The session policy passed to AssumeRole, verbatim (already validated at minting).
    pub session_policy: Option<String>,
}

/// Credentials handed to a caller (AssumeRole) or a function (its service's role).
#[derive(Clone, PartialEq, Eq)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub access_key_secret: String,
    pub security_token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

impl std::fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Why a token was refused (STS: `InvalidSecurityToken.*`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the security token is malformed")]
    Malformed,
    #[error("the security token has expired")]
    Expired,
    #[error("the security token does not belong to access key '{0}'")]
    MismatchWithAccessKey(String),
}

impl TokenKey {
    /// A key derived from secret material (e.g. the account's root secret), so that every node
    /// configured with the same credentials derives the same key.
    pub fn derive(material: &[u8]) -> TokenKey {
        let _ = material;
        todo!("fcd-iam token key derivation")
    }

    /// Mints credentials for `claims` (its `access_key_id` is ignored and a fresh one drawn).
    pub fn mint(&self, claims: SessionClaims) -> (TemporaryCredentials, SessionClaims) {
        let _ = claims;
        todo!("fcd-iam token minting")
    }

    /// Whether `access_key_id` has the shape of a temporary key (`STS.` prefix).
    pub fn is_temporary(access_key_id: &str) -> bool {
        access_key_id.starts_with("STS.")
    }

    /// The secret of a temporary access key (derived, never stored).
    pub fn secret_for(&self, access_key_id: &str) -> String {
        let _ = access_key_id;
        todo!("fcd-iam secret derivation")
    }

    /// Verifies `token` as presented with `access_key_id` at `now`: sealed by this key, for this
    /// access key, unexpired.
    pub fn verify(
        &self,
        access_key_id: &str,
        token: &str,
        now: SystemTime,
    ) -> Result<SessionClaims, TokenError> {
        let _ = (access_key_id, token, now, &self.key);
        todo!("fcd-iam token verification")
    }
}
