//! Request authentication for fcd's Function Compute API.
//!
//! This crate owns both signature schemes a Function Compute client may use:
//! `ACS3-HMAC-SHA256` (what the 2021-04-06 SDKs send by default) and the legacy
//! `FC ak:signature` scheme (aliyun-fc2, @alicloud/fc2, fc-go-sdk and the
//! HTTP-trigger helper of the newer SDKs). It parses `Authorization` headers,
//! verifies requests against a known secret — the head first, so a forged
//! request is refused before its body is read, then the body against the
//! digest the head carries — checks freshness, and can sign
//! requests the way the SDKs do so that benchmarks and tests exercise the same
//! code path as real clients. Looking up secrets, nonce replay caches and
//! mapping [`SignError`] to HTTP error codes belong to the API layer.

mod acs3;
mod fc;
mod util;

use std::time::SystemTime;

use base64::Engine as _;

pub use acs3::{
    acs3_canonical_request, acs3_replay_key, acs3_string_to_sign, canonical_query, sign_acs3,
};
pub use fc::{fc_string_to_sign, fc_string_to_sign_url_order, sign_fc, sign_fc_http_trigger};
pub use util::MAX_CLOCK_SKEW;

/// The request as received/sent on the wire.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// Raw path as on the wire, still percent-encoded, without the query.
    pub path: &'a str,
    /// Raw query string without `?`; `""` when there is none.
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// A parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    Acs3 {
        access_key_id: String,
        /// As listed by the client (the SDKs send them lower-cased and sorted).
        signed_headers: Vec<String>,
        /// Decoded from hex.
        signature: Vec<u8>,
    },
    Fc {
        access_key_id: String,
        /// Decoded from base64.
        signature: Vec<u8>,
    },
}

/// Why a request failed authentication.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("malformed Authorization header: {0}")]
    MalformedAuthorization(String),
    #[error("unsupported signature scheme: {0}")]
    UnsupportedScheme(String),
    #[error("missing header: {0}")]
    MissingHeader(String),
    #[error("x-acs-content-sha256 does not match the SHA-256 of the body")]
    ContentHashMismatch,
    #[error("the request signature does not match")]
    SignatureMismatch,
    #[error("invalid date: {0}")]
    InvalidDate(String),
    #[error("request time {date} is too far from the server time")]
    RequestTimeTooSkewed { date: String },
}

const ACS3_SCHEME: &str = "ACS3-HMAC-SHA256";
const FC_SCHEME: &str = "FC";

impl Authorization {
    /// Parses an `Authorization` header value of either supported scheme.
    ///
    /// The SDKs put no spaces after the commas of an ACS3 header; spaces are
    /// tolerated anyway because hand-written clients and proxies add them.
    pub fn parse(header_value: &str) -> Result<Authorization, SignError> {
        let value = header_value.trim();
        if value.is_empty() {
            return Err(SignError::MalformedAuthorization(
                "empty Authorization header".into(),
            ));
        }
        let (scheme, rest) = match value.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((scheme, rest)) => (scheme, rest.trim()),
            None => (value, ""),
        };
        match scheme {
            ACS3_SCHEME => parse_acs3(rest),
            FC_SCHEME => parse_fc(rest),
            // Includes schemes the SDKs can be configured to send but that fcd does not
            // verify (ACS3-HMAC-SM3, ACS3-RSA-SHA256, ROA v2 "acs AK:sig"), so the API
            // layer can tell the client which scheme was refused.
            other => Err(SignError::UnsupportedScheme(other.to_string())),
        }
    }

    pub fn access_key_id(&self) -> &str {
        match self {
            Authorization::Acs3 { access_key_id, .. } | Authorization::Fc { access_key_id, .. } => {
                access_key_id
            }
        }
    }
}

fn parse_acs3(params: &str) -> Result<Authorization, SignError> {
    let malformed = |msg: &str| SignError::MalformedAuthorization(msg.to_string());
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in params.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let (key, val) = part
            .split_once('=')
            .ok_or_else(|| malformed("expected key=value pairs"))?;
        let slot = match key.trim() {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => {
                return Err(SignError::MalformedAuthorization(format!(
                    "unknown parameter {other}"
                )));
            }
        };
        if slot.replace(val.trim()).is_some() {
            return Err(SignError::MalformedAuthorization(format!(
                "duplicate parameter {}",
                key.trim()
            )));
        }
    }

    let access_key_id = credential
        .filter(|c| !c.is_empty())
        .ok_or_else(|| malformed("missing Credential"))?;
    let signed_headers = signed_headers
        .filter(|s| !s.is_empty())
        .ok_or_else(|| malformed("missing SignedHeaders"))?;
    let signature = signature.ok_or_else(|| malformed("missing Signature"))?;

    let signed_headers: Vec<String> = signed_headers
        .split(';')
        .map(|h| h.trim().to_string())
        .collect();
    if signed_headers.iter().any(String::is_empty) {
        return Err(malformed("empty name in SignedHeaders"));
    }
    if signature.len() != 64 {
        return Err(malformed("Signature must be 64 hex characters"));
    }
    let signature = hex::decode(signature).map_err(|_| malformed("Signature is not hex"))?;

    Ok(Authorization::Acs3 {
        access_key_id: access_key_id.to_string(),
        signed_headers,
        signature,
    })
}

fn parse_fc(credentials: &str) -> Result<Authorization, SignError> {
    let malformed = |msg: &str| SignError::MalformedAuthorization(msg.to_string());
    let (access_key_id, signature) = credentials
        .split_once(':')
        .ok_or_else(|| malformed("expected FC <AccessKeyId>:<Signature>"))?;
    let access_key_id = access_key_id.trim();
    let signature = signature.trim();
    if access_key_id.is_empty() {
        return Err(malformed("empty AccessKeyId"));
    }
    if signature.is_empty() {
        return Err(malformed("empty Signature"));
    }
    let signature = base64::engine::general_purpose::STANDARD
        .decode(signature)
        .map_err(|_| malformed("Signature is not base64"))?;
    Ok(Authorization::Fc {
        access_key_id: access_key_id.to_string(),
        signature,
    })
}

/// Verifies the request was signed with `secret`: [`verify_head`], then
/// [`verify_body`] on `req.body`.
pub fn verify(
    auth: &Authorization,
    secret: &str,
    req: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<(), SignError> {
    verify_head(auth, secret, req, now)?;
    verify_body(auth, req.headers, req.body)
}

/// Verifies everything about the request but its body (`req.body` is not
/// read), so a server can refuse a forged request before buffering what may be
/// a large body; [`verify_body`] must follow once the body is read. `now` is
/// the server clock.
///
/// ACS3: `host`, `x-acs-date`, `x-acs-content-sha256` and
/// `x-acs-signature-nonce` must be among the signed headers (else
/// [`SignError::MalformedAuthorization`]); every signed header must be
/// present; the signature is checked over the body hash the client claims in
/// `x-acs-content-sha256`; `x-acs-date` must be within [`MAX_CLOCK_SKEW`] of
/// `now`.
///
/// FC: the `date` header (or, when absent, `x-fc-date`) must be within
/// [`MAX_CLOCK_SKEW`] of `now`. HTTP-trigger (`/proxy/`) requests are also
/// accepted when signed with the query in URL order.
///
/// Signatures are compared in constant time (`hmac`'s `verify_slice`).
pub fn verify_head(
    auth: &Authorization,
    secret: &str,
    req: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<(), SignError> {
    match auth {
        Authorization::Acs3 {
            signed_headers,
            signature,
            ..
        } => acs3::verify_head(signed_headers, signature, secret, req, now),
        Authorization::Fc { signature, .. } => fc::verify_head(signature, secret, req, now),
    }
}

/// [`verify_head`] for a request reaching a function over HTTP (an HTTP trigger's `/proxy/`
/// URL or a custom domain): under the FC scheme the query is always part of the signed
/// resource (sorted, or in URL order), whatever the path looks like. ACS3 signs the query
/// anyway and is verified as usual.
pub fn verify_head_http_trigger(
    auth: &Authorization,
    secret: &str,
    req: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<(), SignError> {
    match auth {
        Authorization::Acs3 { .. } => verify_head(auth, secret, req, now),
        Authorization::Fc { signature, .. } => {
            fc::verify_head_http_trigger(signature, secret, req, now)
        }
    }
}

/// Checks the body against the digest the (verified) head carries: ACS3's
/// `x-acs-content-sha256`; the FC scheme's `Content-MD5` when sent (without it
/// the FC scheme does not cover the body, as on FC). The digests are compared
/// plainly: they are hashes of what the client sent, not secrets.
pub fn verify_body(
    auth: &Authorization,
    headers: &http::HeaderMap,
    body: &[u8],
) -> Result<(), SignError> {
    let mut v = BodyVerifier::new(auth, headers)?;
    v.update(body);
    v.finish()
}

/// Checks a body against the digest its verified head carries, piece by piece as it arrives,
/// so a body can be passed on while it is read: ACS3's `x-acs-content-sha256` (always present
/// in a signed ACS3 request), the FC scheme's `Content-MD5` when the client sent one.
pub struct BodyVerifier {
    check: BodyCheck,
}

enum BodyCheck {
    Sha256 {
        claimed: String,
        hasher: sha2::Sha256,
    },
    Md5 {
        sent: String,
        hasher: md5::Md5,
    },
    Nothing,
}

impl BodyVerifier {
    /// Fails at once where the claimed digest cannot be right (ACS3: not 64 hex digits).
    pub fn new(auth: &Authorization, headers: &http::HeaderMap) -> Result<BodyVerifier, SignError> {
        use sha2::Digest as _;
        let check = match auth {
            Authorization::Acs3 { .. } => BodyCheck::Sha256 {
                claimed: acs3::claimed_body_hash(headers)?,
                hasher: sha2::Sha256::new(),
            },
            Authorization::Fc { .. } => match fc::sent_content_md5(headers) {
                Some(sent) => BodyCheck::Md5 {
                    sent,
                    hasher: md5::Md5::new(),
                },
                None => BodyCheck::Nothing,
            },
        };
        Ok(BodyVerifier { check })
    }

    pub fn update(&mut self, piece: &[u8]) {
        use sha2::Digest as _;
        match &mut self.check {
            BodyCheck::Sha256 { hasher, .. } => hasher.update(piece),
            BodyCheck::Md5 { hasher, .. } => hasher.update(piece),
            BodyCheck::Nothing => {}
        }
    }

    /// Whether the whole body was the one the client signed.
    pub fn finish(self) -> Result<(), SignError> {
        use sha2::Digest as _;
        let matches = match self.check {
            BodyCheck::Sha256 { claimed, hasher } => hex::encode(hasher.finalize()) == claimed,
            BodyCheck::Md5 { sent, hasher } => fc::content_md5_matches(&sent, &hasher.finalize()),
            BodyCheck::Nothing => true,
        };
        if matches {
            Ok(())
        } else {
            Err(SignError::ContentHashMismatch)
        }
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
