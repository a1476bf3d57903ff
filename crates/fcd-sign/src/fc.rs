//! The legacy `FC ak:signature` scheme of the 2016-08-15 SDKs and of the
//! HTTP-trigger helpers (spec 3.4).

use std::time::SystemTime;

use base64::Engine as _;
use hmac::Mac as _;
use http::HeaderMap;
use http::header::{AUTHORIZATION, DATE};
use percent_encoding::percent_decode_str;

use crate::util::{
    check_fresh, first_header, format_http_date, header_text, header_value, hmac_sha256,
    parse_http_date,
};
use crate::{FC_SCHEME, SignError, SignedRequest};

#[derive(Clone, Copy, PartialEq, Eq)]
enum QueryOrder {
    Sorted,
    Url,
}

/// HTTP-trigger requests (`/{version}/proxy/...`) are the only ones whose
/// query is signed; the SDKs decide by that path shape.
pub(crate) fn is_http_trigger(decoded_path: &str) -> bool {
    decoded_path.split('/').nth(2) == Some("proxy")
}

/// Form decoding (`+` is a space) because the SDKs send queries through
/// `requests`/`url.Values`, which encode that way, and sign the unescaped values.
fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

/// One `key=value` line per parameter; a bare `key` (no `=`) stays bare, which
/// is how the SDKs sign a parameter with an empty value list.
fn query_lines(raw_query: &str) -> Vec<String> {
    raw_query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| match piece.split_once('=') {
            Some((k, v)) => format!("{}={}", form_decode(k), form_decode(v)),
            None => form_decode(piece),
        })
        .collect()
}

fn canonical_resource(req: &SignedRequest<'_>, order: Option<QueryOrder>) -> String {
    // aliyun-fc2 signs `unquote(path)`: percent escapes only, `+` stays literal.
    let path = percent_decode_str(req.path).decode_utf8_lossy();
    let Some(order) = order else {
        return path.into_owned();
    };
    let mut lines = query_lines(req.query);
    if order == QueryOrder::Sorted {
        // fc-go-sdk sorts the rendered lines, not the keys, so "x-fc-a=1"
        // precedes "x=1"; aliyun-fc2 and @alicloud/fc2 agree.
        lines.sort();
    }
    let mut out = String::with_capacity(path.len() + req.query.len() + 1);
    out.push_str(&path);
    out.push('\n');
    out.push_str(&lines.join("\n"));
    out
}

fn string_to_sign(req: &SignedRequest<'_>, resource: &str) -> String {
    let mut fc_headers: Vec<(&str, String)> = req
        .headers
        .keys()
        .filter(|name| name.as_str().starts_with("x-fc-"))
        .map(|name| {
            // The SDKs hold headers in a map, so a repeated header can only
            // come from a proxy; joining keeps it deterministic.
            let joined = req
                .headers
                .get_all(name)
                .iter()
                .map(|v| header_text(v).into_owned())
                .collect::<Vec<_>>()
                .join(",");
            (name.as_str(), joined)
        })
        .collect();
    fc_headers.sort();

    let mut out = String::new();
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&first_header(req.headers, "content-md5"));
    out.push('\n');
    out.push_str(&first_header(req.headers, "content-type"));
    out.push('\n');
    out.push_str(&first_header(req.headers, "date"));
    out.push('\n');
    for (name, value) in &fc_headers {
        out.push_str(name);
        out.push(':');
        out.push_str(value);
        out.push('\n');
    }
    out.push_str(resource);
    out
}

/// The FC string-to-sign as aliyun-fc2, @alicloud/fc2 and fc-go-sdk build it:
/// the decoded path for API requests, plus the sorted decoded query for
/// HTTP-trigger (`/{version}/proxy/...`) requests.
pub fn fc_string_to_sign(req: &SignedRequest<'_>) -> String {
    let path = percent_decode_str(req.path).decode_utf8_lossy();
    let order = is_http_trigger(&path).then_some(QueryOrder::Sorted);
    string_to_sign(req, &canonical_resource(req, order))
}

/// The variant produced by `alibabacloud_gateway_fc_util.sign_request` (the
/// 2021-04-06 SDK's HTTP-trigger helper): the query lines are kept in URL order
/// and always follow the path, whatever the path looks like.
pub fn fc_string_to_sign_url_order(req: &SignedRequest<'_>) -> String {
    string_to_sign(req, &canonical_resource(req, Some(QueryOrder::Url)))
}

/// Everything but the body: the signature (which covers `Content-MD5`, not the body) and the
/// freshness. [`crate::BodyVerifier`] then binds the body to a sent `Content-MD5`.
pub(crate) fn verify_head(
    signature: &[u8],
    secret: &str,
    req: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<(), SignError> {
    check_date(req, now)?;

    let path = percent_decode_str(req.path).decode_utf8_lossy();
    let candidates = if is_http_trigger(&path) {
        http_trigger_candidates(req)
    } else {
        vec![fc_string_to_sign(req)]
    };
    verify_candidates(signature, secret, candidates)
}

/// The strings an HTTP-trigger request may have been signed as: the query sorted (aliyun-fc2,
/// @alicloud/fc2, fc-go-sdk) or in URL order (`alibabacloud_gateway_fc_util`).
fn http_trigger_candidates(req: &SignedRequest<'_>) -> Vec<String> {
    vec![
        string_to_sign(req, &canonical_resource(req, Some(QueryOrder::Sorted))),
        fc_string_to_sign_url_order(req),
    ]
}

/// [`verify_head`] for a request that reached a function over HTTP whatever its path looks
/// like (a custom domain's path has no `/proxy/`): the query is always signed.
pub(crate) fn verify_head_http_trigger(
    signature: &[u8],
    secret: &str,
    req: &SignedRequest<'_>,
    now: SystemTime,
) -> Result<(), SignError> {
    check_date(req, now)?;
    verify_candidates(signature, secret, http_trigger_candidates(req))
}

/// The request's date must be within the allowed skew. `x-fc-date` is only a freshness
/// fallback: it is signed as an x-fc- header, but the Date line of the string-to-sign stays
/// the `date` header.
fn check_date(req: &SignedRequest<'_>, now: SystemTime) -> Result<(), SignError> {
    let date = req
        .headers
        .get(DATE)
        .or_else(|| req.headers.get("x-fc-date"))
        .map(header_text)
        .ok_or_else(|| SignError::MissingHeader(DATE.as_str().to_string()))?;
    check_fresh(parse_http_date(&date)?, now, date.trim())
}

fn verify_candidates(
    signature: &[u8],
    secret: &str,
    candidates: Vec<String>,
) -> Result<(), SignError> {
    for candidate in candidates {
        if hmac_sha256(secret, candidate.as_bytes())?
            .verify_slice(signature)
            .is_ok()
        {
            return Ok(());
        }
    }
    Err(SignError::SignatureMismatch)
}

/// Signs a request like aliyun-fc2: sets `date` (RFC 1123, from `now`) unless
/// present, then `Authorization: FC <access_key_id>:<signature>`.
pub fn sign_fc(
    access_key_id: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &mut HeaderMap,
    now: SystemTime,
) -> Result<(), SignError> {
    let req = (method, path, query);
    sign_with(access_key_id, secret, req, headers, now, fc_string_to_sign)
}

/// Signs a request to a function over HTTP (an HTTP trigger's URL or a custom domain) like
/// `alibabacloud_gateway_fc_util.sign_request`, the 2021-04-06 SDK's helper: as [`sign_fc`],
/// but the query is always signed, in URL order, whatever the path looks like.
pub fn sign_fc_http_trigger(
    access_key_id: &str,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &mut HeaderMap,
    now: SystemTime,
) -> Result<(), SignError> {
    let req = (method, path, query);
    sign_with(
        access_key_id,
        secret,
        req,
        headers,
        now,
        fc_string_to_sign_url_order,
    )
}

/// The FC scheme's signing, with the string to sign the caller's variant builds.
fn sign_with(
    access_key_id: &str,
    secret: &str,
    (method, path, query): (&str, &str, &str),
    headers: &mut HeaderMap,
    now: SystemTime,
    string_to_sign: fn(&SignedRequest<'_>) -> String,
) -> Result<(), SignError> {
    if !headers.contains_key(DATE) {
        headers.insert(DATE, header_value("date", &format_http_date(now)?)?);
    }
    let req = SignedRequest {
        method,
        path,
        query,
        headers,
        body: &[],
    };
    let signature = hmac_sha256(secret, string_to_sign(&req).as_bytes())?
        .finalize()
        .into_bytes();
    let authorization = format!(
        "{FC_SCHEME} {access_key_id}:{}",
        base64::engine::general_purpose::STANDARD.encode(signature)
    );
    headers.insert(
        AUTHORIZATION,
        header_value("Authorization", &authorization)?,
    );
    Ok(())
}

/// When a request carries `Content-MD5`, it must be the body's: the signature covers the
/// header but not the body, so without this check a captured request could be replayed with
/// another body. The SDKs spell it three ways: the hex digest (aliyun-fc2), base64 of the hex
/// text (@alicloud/fc2), and base64 of the raw digest (RFC 1864); any of them is accepted.
/// Without the header the body is not covered, as on FC.
/// The `Content-MD5` a client sent, trimmed, if any.
pub(crate) fn sent_content_md5(headers: &HeaderMap) -> Option<String> {
    headers
        .get("content-md5")
        .map(|v| header_text(v).trim().to_owned())
}

/// Whether a sent `Content-MD5` names `digest`: as hex, as base64 of the hex text (what the
/// FC SDKs send) or as base64 of the digest (RFC 1864).
pub(crate) fn content_md5_matches(sent: &str, digest: &[u8]) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let hex_text = hex::encode(digest);
    sent.eq_ignore_ascii_case(&hex_text)
        || sent == b64.encode(hex_text.as_bytes())
        || sent == b64.encode(digest)
}
