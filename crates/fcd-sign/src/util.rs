//! Helpers shared by both schemes: hashing, header text and clock handling.

use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};
use time::OffsetDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::SignError;

/// How far a request's date may be from the server clock, either way
/// (doc 53252 for the FC scheme; fcd applies the same bound to ACS3).
pub const MAX_CLOCK_SKEW: Duration = Duration::from_secs(15 * 60);

pub(crate) type HmacSha256 = hmac::Hmac<Sha256>;

const ACS_DATE_FORMAT: &[BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

const HTTP_DATE_FORMAT: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub(crate) fn hmac_sha256(secret: &str, msg: &[u8]) -> Result<HmacSha256, SignError> {
    // HMAC takes keys of any length, so this cannot fail; if it ever did,
    // failing closed as a mismatch is the safe answer.
    let mut mac =
        HmacSha256::new_from_slice(secret.as_bytes()).map_err(|_| SignError::SignatureMismatch)?;
    mac.update(msg);
    Ok(mac)
}

/// Header bytes as text for a string-to-sign.
///
/// Most clients send UTF-8, but Python's http.client encodes header values as
/// Latin-1 after the SDK signed the `str`, so non-UTF-8 bytes are mapped back
/// through Latin-1 to reproduce what was signed.
pub(crate) fn header_text(value: &http::HeaderValue) -> Cow<'_, str> {
    match std::str::from_utf8(value.as_bytes()) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(value.as_bytes().iter().map(|&b| char::from(b)).collect()),
    }
}

/// First value of a header as text, "" when absent.
pub(crate) fn first_header<'h>(headers: &'h http::HeaderMap, name: &str) -> Cow<'h, str> {
    headers
        .get(name)
        .map(header_text)
        .unwrap_or(Cow::Borrowed(""))
}

fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i128::try_from(d.as_nanos()).unwrap_or(i128::MAX),
        Err(e) => i128::try_from(e.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    }
}

fn to_offset_date_time(t: SystemTime) -> Result<OffsetDateTime, SignError> {
    OffsetDateTime::from_unix_timestamp_nanos(unix_nanos(t))
        .map_err(|e| SignError::InvalidDate(format!("clock out of range: {e}")))
}

/// Parses `x-acs-date` (`YYYY-MM-DDTHH:MM:SSZ`), also taking full RFC 3339
/// because some hand-rolled clients add fractional seconds.
pub(crate) fn parse_acs_date(s: &str) -> Result<i128, SignError> {
    let s = s.trim();
    let parsed = time::PrimitiveDateTime::parse(s, ACS_DATE_FORMAT)
        .map(time::PrimitiveDateTime::assume_utc)
        .or_else(|_| OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339));
    parsed
        .map(OffsetDateTime::unix_timestamp_nanos)
        .map_err(|_| SignError::InvalidDate(s.to_string()))
}

/// Parses an HTTP date (RFC 1123, RFC 850 or asctime), falling back to the
/// ACS/RFC 3339 forms since `x-fc-date` has no fixed format.
pub(crate) fn parse_http_date(s: &str) -> Result<i128, SignError> {
    let s = s.trim();
    match httpdate::parse_http_date(s) {
        Ok(t) => Ok(unix_nanos(t)),
        Err(_) => parse_acs_date(s),
    }
}

pub(crate) fn check_fresh(at_nanos: i128, now: SystemTime, date: &str) -> Result<(), SignError> {
    let skew = unix_nanos(now).abs_diff(at_nanos);
    if skew > MAX_CLOCK_SKEW.as_nanos() {
        return Err(SignError::RequestTimeTooSkewed {
            date: date.to_string(),
        });
    }
    Ok(())
}

pub(crate) fn format_acs_date(now: SystemTime) -> Result<String, SignError> {
    to_offset_date_time(now)?
        .format(ACS_DATE_FORMAT)
        .map_err(|e| SignError::InvalidDate(e.to_string()))
}

pub(crate) fn format_http_date(now: SystemTime) -> Result<String, SignError> {
    to_offset_date_time(now)?
        .format(HTTP_DATE_FORMAT)
        .map_err(|e| SignError::InvalidDate(e.to_string()))
}

pub(crate) fn header_value(name: &str, value: &str) -> Result<http::HeaderValue, SignError> {
    http::HeaderValue::from_str(value).map_err(|_| {
        SignError::MalformedAuthorization(format!("{name} is not a valid header value"))
    })
}
