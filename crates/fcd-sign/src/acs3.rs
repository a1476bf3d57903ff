//! ACS3-HMAC-SHA256, the default scheme of the 2021-04-06 SDKs (spec 3.2).

use std::time::SystemTime;

use hmac::Mac as _;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::util::{
    check_fresh, first_header, format_acs_date, header_text, header_value, hmac_sha256,
    parse_acs_date, sha256_hex,
};
use crate::{ACS3_SCHEME, SignError, SignedRequest};

/// RFC 3986 unreserved characters stay literal; everything else is `%XX`.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

const X_ACS_DATE: HeaderName = HeaderName::from_static("x-acs-date");
const X_ACS_NONCE: HeaderName = HeaderName::from_static("x-acs-signature-nonce");
const X_ACS_CONTENT_SHA256: HeaderName = HeaderName::from_static("x-acs-content-sha256");

/// Headers without which a signature would not bind the request to a host, a time, a body and
/// one use: an unsigned nonce could be changed at will, defeating the server's replay cache.
/// Both SDKs sign all four (Python signs every header, Node `host`, `content-type`, `x-acs-*`).
const REQUIRED_SIGNED: [&str; 4] = [
    "host",
    "x-acs-date",
    "x-acs-content-sha256",
    "x-acs-signature-nonce",
];

/// Canonical query string as the SDKs build it from their parameter map:
/// form-decode, sort, re-encode values with RFC 3986 (space as `%20`).
///
/// Keys are left unencoded because neither the Python nor the Node SDK encodes
/// them. Duplicate keys (which the SDKs never produce) sort by value so the
/// result is deterministic.
pub fn canonical_query(raw_query: &str) -> String {
    let mut out = String::with_capacity(raw_query.len() + 8);
    push_canonical_query(&mut out, raw_query);
    out
}

/// [`canonical_query`], appended to `out` (nothing for an empty query, the common case).
fn push_canonical_query(out: &mut String, raw_query: &str) {
    if raw_query.is_empty() {
        return;
    }
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    pairs.sort();
    for (i, (key, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(key);
        out.push('=');
        out.extend(utf8_percent_encode(value, RFC3986));
    }
}

/// Builds the ACS3 canonical request for `signed_headers`, taken in the given
/// order. Fails with [`SignError::MissingHeader`] if a signed header is absent.
pub fn acs3_canonical_request(
    req: &SignedRequest<'_>,
    signed_headers: &[String],
) -> Result<String, SignError> {
    canonical_request_with_hash(req, signed_headers, &sha256_hex(req.body))
}

/// The canonical request with the body's hash already computed: hashing a large body is the
/// dominant cost of verification, so it is done once.
fn canonical_request_with_hash(
    req: &SignedRequest<'_>,
    signed_headers: &[String],
    payload_hash: &str,
) -> Result<String, SignError> {
    // The SDK signs the path string it puts on the wire, so re-encoding it here
    // could only introduce mismatches.
    let uri = if req.path.is_empty() { "/" } else { req.path };

    // Built in one buffer: this runs on every signed request, and a string per header and
    // value was a measurable share of a warm invocation's CPU.
    let mut out = String::with_capacity(256 + req.query.len() + signed_headers.len() * 64);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(uri);
    out.push('\n');
    push_canonical_query(&mut out, req.query);
    out.push('\n');
    for name in signed_headers {
        // `HeaderMap` lookups by `&str` ignore case.
        let mut all = req.headers.get_all(name.as_str()).iter();
        let Some(first) = all.next() else {
            return Err(SignError::MissingHeader(name.clone()));
        };
        out.push_str(name);
        out.push(':');
        match all.next() {
            None => out.push_str(header_text(first).trim()),
            Some(second) => {
                // A repeated header: its trimmed values sorted and joined with commas.
                let mut values: Vec<String> = [first, second]
                    .into_iter()
                    .chain(all)
                    .map(|v| header_text(v).trim().to_string())
                    .collect();
                values.sort();
                out.push_str(&values.join(","));
            }
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(payload_hash);
    Ok(out)
}

pub fn acs3_string_to_sign(canonical_request: &str) -> String {
    format!(
        "{ACS3_SCHEME}\n{}",
        sha256_hex(canonical_request.as_bytes())
    )
}

/// Everything but the body: the signature is checked over the canonical request built with the
/// body hash the client claims in `x-acs-content-sha256` (which it signed), so a forged request
/// is refused before its body is read. [`crate::verify_body`] then checks the claim.
pub(crate) fn verify_head(
    signed_headers: &[String],
    signature: &[u8],
    secret: &str,
    req: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<(), SignError> {
    for required in REQUIRED_SIGNED {
        if !signed_headers
            .iter()
            .any(|h| h.eq_ignore_ascii_case(required))
        {
            return Err(SignError::MalformedAuthorization(format!(
                "SignedHeaders must include {required}"
            )));
        }
    }

    let claimed_hash = claimed_body_hash(req.headers)?;
    let canonical = canonical_request_with_hash(req, signed_headers, &claimed_hash)?;

    let date = first_header(req.headers, X_ACS_DATE.as_str());
    check_fresh(parse_acs_date(&date)?, now, date.trim())?;

    hmac_sha256(secret, acs3_string_to_sign(&canonical).as_bytes())?
        .verify_slice(signature)
        .map_err(|_| SignError::SignatureMismatch)
}

/// `x-acs-content-sha256` as the canonical request's last line: 64 hex digits, lower-cased.
pub(crate) fn claimed_body_hash(headers: &HeaderMap) -> Result<String, SignError> {
    let claimed = first_header(headers, X_ACS_CONTENT_SHA256.as_str());
    let claimed = claimed.trim();
    if claimed.len() != 64 || !claimed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(SignError::ContentHashMismatch);
    }
    Ok(claimed.to_ascii_lowercase())
}

/// What makes a verified ACS3 request single-use: its `x-acs-signature-nonce` exactly as it was
/// signed (the canonical text: trimmed, non-UTF-8 bytes read as Latin-1), and its `x-acs-date` in
/// Unix seconds. Each must be sent once and the nonce must not be empty.
///
/// Call it only after [`crate::verify`] succeeded, which guarantees both are signed: the server
/// remembers the nonce for as long as the date is fresh, so a replay — which carries the same
/// signed nonce and date — is recognised.
pub fn acs3_replay_key(headers: &HeaderMap) -> Result<(String, i64), SignError> {
    let once = |name: &HeaderName| -> Result<String, SignError> {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => Ok(header_text(v).trim().to_owned()),
            (None, _) => Err(SignError::MissingHeader(name.as_str().to_owned())),
            (Some(_), Some(_)) => Err(SignError::MalformedAuthorization(format!(
                "{name} must be sent once"
            ))),
        }
    };
    let nonce = once(&X_ACS_NONCE)?;
    if nonce.is_empty() {
        return Err(SignError::MissingHeader(X_ACS_NONCE.as_str().to_owned()));
    }
    let date = parse_acs_date(&once(&X_ACS_DATE)?)?;
    // Whole seconds: the replay cache buckets by second; sub-second precision adds nothing.
    let secs = i64::try_from(date.div_euclid(1_000_000_000))
        .map_err(|_| SignError::InvalidDate("out of range".into()))?;
    Ok((nonce, secs))
}

/// Names the Python SDK signs: everything it sends before the HTTP library adds
/// transport headers, which in practice is this set.
fn client_signs(name: &str) -> bool {
    matches!(name, "host" | "content-type" | "accept" | "user-agent")
        || name.starts_with("x-acs-")
        || name.starts_with("x-fc-")
}

/// Signs a request the way the Python SDK does: adds `x-acs-date` (from `now`),
/// `x-acs-signature-nonce`, `x-acs-content-sha256` and `Authorization`,
/// signing `host`, `content-type`, `accept`, `user-agent`, `x-acs-*` and
/// `x-fc-*` headers present in `headers`. `headers` must already hold `host`.
#[allow(clippy::too_many_arguments)]
pub fn sign_acs3(
    access_key_id: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &mut HeaderMap,
    body: &[u8],
    now: SystemTime,
    nonce: &str,
) -> Result<(), SignError> {
    if !headers.contains_key(HOST) {
        return Err(SignError::MissingHeader(HOST.as_str().to_string()));
    }
    headers.insert(
        X_ACS_DATE,
        header_value("x-acs-date", &format_acs_date(now)?)?,
    );
    headers.insert(X_ACS_NONCE, header_value("x-acs-signature-nonce", nonce)?);
    headers.insert(
        X_ACS_CONTENT_SHA256,
        header_value("x-acs-content-sha256", &sha256_hex(body))?,
    );

    let mut signed: Vec<String> = headers
        .keys()
        .map(HeaderName::as_str)
        .filter(|n| client_signs(n))
        .map(str::to_string)
        .collect();
    signed.sort();

    let req = SignedRequest {
        method,
        path,
        query,
        headers,
        body,
    };
    let canonical = acs3_canonical_request(&req, &signed)?;
    let signature = hmac_sha256(secret, acs3_string_to_sign(&canonical).as_bytes())?
        .finalize()
        .into_bytes();

    let authorization = format!(
        "{ACS3_SCHEME} Credential={access_key_id},SignedHeaders={},Signature={}",
        signed.join(";"),
        hex::encode(signature)
    );
    let authorization: HeaderValue = header_value("Authorization", &authorization)?;
    headers.insert(AUTHORIZATION, authorization);
    Ok(())
}
