//! Temporary credentials. A security token is self-contained and sealed with the token key
//! (HMAC-SHA256), so every node that holds the key verifies it without a lookup; the secret of
//! a temporary access key is derived from the key id with the same key, so nothing is stored.
//!
//! # Formats
//!
//! - Token key: `HMAC-SHA256(key = "fcd-iam token key v1", material)` (HKDF's extract step),
//!   so every node configured with the same material has the same key.
//! - Access key id: `STS.` and 24 random letters and digits.
//! - Secret: the first 30 bytes of `HMAC-SHA256(token key, "fcd-iam secret v1\0" ‖ key id)`,
//!   base64url (40 characters).
//! - Security token: base64url without padding (header-safe) of
//!   `version (1) ‖ claims as JSON ‖ HMAC-SHA256(token key, "fcd-iam token v1\0" ‖ version ‖
//!   claims)`. Only the canonical encoding is accepted, so changing any character — even one
//!   whose low bits a lenient decoder would ignore — makes the token invalid. A token is about
//!   4/3 of its claims: ~400 characters, plus 4/3 of the session policy's JSON-escaped UTF-8
//!   (a 2,048-character ASCII session policy gives under 4 KB).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit as _, Mac as _};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// STS's limit on the session policy given to AssumeRole, in characters.
pub const MAX_SESSION_POLICY_CHARS: usize = 2_048;

const KEY_LABEL: &[u8] = b"fcd-iam token key v1";
const TOKEN_LABEL: &[u8] = b"fcd-iam token v1\0";
const SECRET_LABEL: &[u8] = b"fcd-iam secret v1\0";
const TOKEN_VERSION: u8 = 1;
const MAC_LEN: usize = 32;
const KEY_ID_PREFIX: &str = "STS.";
const KEY_ID_RANDOM_CHARS: usize = 24;

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

/// An HMAC keyed with a key of at most one SHA-256 block: HMAC pads such a key with zeros,
/// so the padded block is the key itself and the constructor cannot fail.
fn hmac_with(key: &[u8]) -> HmacSha256 {
    let mut block = [0u8; 64];
    let n = key.len().min(block.len());
    block[..n].copy_from_slice(&key[..n]);
    HmacSha256::new(&block.into())
}

impl TokenKey {
    /// A key derived from secret material (e.g. the account's root secret), so that every node
    /// configured with the same credentials derives the same key.
    pub fn derive(material: &[u8]) -> TokenKey {
        let mut mac = hmac_with(KEY_LABEL);
        mac.update(material);
        TokenKey {
            key: mac.finalize().into_bytes().into(),
        }
    }

    /// Mints credentials for `claims` (its `access_key_id` is ignored and a fresh one drawn).
    pub fn mint(&self, mut claims: SessionClaims) -> (TemporaryCredentials, SessionClaims) {
        claims.access_key_id = self.fresh_key_id();
        let security_token = self.seal(&claims);
        let credentials = TemporaryCredentials {
            access_key_secret: self.secret_for(&claims.access_key_id),
            access_key_id: claims.access_key_id.clone(),
            security_token,
            expires_at: claims.expires_at,
        };
        (credentials, claims)
    }

    /// Whether `access_key_id` has the shape of a temporary key (`STS.` prefix).
    pub fn is_temporary(access_key_id: &str) -> bool {
        access_key_id.starts_with("STS.")
    }

    /// The secret of a temporary access key (derived, never stored).
    pub fn secret_for(&self, access_key_id: &str) -> String {
        let mut mac = hmac_with(&self.key);
        mac.update(SECRET_LABEL);
        mac.update(access_key_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        URL_SAFE_NO_PAD.encode(&digest[..30])
    }

    /// Verifies `token` as presented with `access_key_id` at `now`: sealed by this key, for this
    /// access key, unexpired.
    pub fn verify(
        &self,
        access_key_id: &str,
        token: &str,
        now: SystemTime,
    ) -> Result<SessionClaims, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| TokenError::Malformed)?;
        // Only the canonical encoding: a changed character must never decode to the same bytes.
        if URL_SAFE_NO_PAD.encode(&bytes) != token {
            return Err(TokenError::Malformed);
        }
        if bytes.len() < 1 + MAC_LEN || bytes[0] != TOKEN_VERSION {
            return Err(TokenError::Malformed);
        }
        let (sealed, tag) = bytes.split_at(bytes.len() - MAC_LEN);
        self.token_mac(sealed)
            .verify_slice(tag)
            .map_err(|_| TokenError::Malformed)?;
        let claims: SessionClaims =
            serde_json::from_slice(&sealed[1..]).map_err(|_| TokenError::Malformed)?;
        if claims.access_key_id != access_key_id {
            return Err(TokenError::MismatchWithAccessKey(access_key_id.to_owned()));
        }
        let now = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now >= claims.expires_at {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    fn token_mac(&self, sealed: &[u8]) -> HmacSha256 {
        let mut mac = hmac_with(&self.key);
        mac.update(TOKEN_LABEL);
        mac.update(sealed);
        mac
    }

    fn seal(&self, claims: &SessionClaims) -> String {
        let mut bytes = vec![TOKEN_VERSION];
        // Serializing plain strings and integers into a Vec cannot fail; were it to, the empty
        // claims would make a token that never verifies rather than a panic.
        if let Ok(json) = serde_json::to_vec(claims) {
            bytes.extend_from_slice(&json);
        }
        let tag = self.token_mac(&bytes).finalize().into_bytes();
        bytes.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(&bytes)
    }

    /// `STS.` and 24 letters and digits, uniformly drawn.
    fn fresh_key_id(&self) -> String {
        const ALPHABET: &[u8; 62] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        let mut id = String::with_capacity(KEY_ID_PREFIX.len() + KEY_ID_RANDOM_CHARS);
        id.push_str(KEY_ID_PREFIX);
        let mut want = KEY_ID_RANDOM_CHARS;
        while want > 0 {
            let mut buf = [0u8; 32];
            self.random_bytes(&mut buf);
            // Rejection sampling: 248 = 4 × 62, so `b % 62` is uniform below it.
            for b in buf.iter().filter(|b| **b < 248).take(want) {
                id.push(char::from(ALPHABET[usize::from(*b % 62)]));
                want -= 1;
            }
        }
        id
    }

    /// Operating-system randomness. `getrandom` does not fail on any Linux fcd runs on; were it
    /// to, the bytes come from this key's HMAC over the time, the process and a counter —
    /// still unique within the process — rather than a panic on the request path.
    fn random_bytes(&self, buf: &mut [u8; 32]) {
        if getrandom::fill(buf).is_ok() {
            return;
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut mac = hmac_with(&self.key);
        mac.update(b"fcd-iam key id fallback\0");
        mac.update(&nanos.to_le_bytes());
        mac.update(&std::process::id().to_le_bytes());
        mac.update(&COUNTER.fetch_add(1, Ordering::Relaxed).to_le_bytes());
        buf.copy_from_slice(&mac.finalize().into_bytes());
    }
}

#[cfg(test)]
mod tests;
