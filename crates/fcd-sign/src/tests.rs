#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::Mac as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::*;
use crate::util::{hmac_sha256, sha256_hex};

const AK: &str = "testAccessKeyId";
const SECRET: &str = "testAccessKeySecret";
const NONCE: &str = "0123456789abcdef0123456789abcdef";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn at(rfc3339: &str) -> SystemTime {
    SystemTime::from(OffsetDateTime::parse(rfc3339, &Rfc3339).unwrap())
}

fn now() -> SystemTime {
    at("2024-01-01T00:05:00Z")
}

/// Builds a HeaderMap from `Name: value` lines as they appear in a capture.
fn headers(lines: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').unwrap();
        map.append(
            HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            HeaderValue::from_str(value.trim()).unwrap(),
        );
    }
    map
}

fn hmac_hex(secret: &str, msg: &str) -> String {
    hex::encode(
        hmac_sha256(secret, msg.as_bytes())
            .unwrap()
            .finalize()
            .into_bytes(),
    )
}

fn hmac_b64(secret: &str, msg: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(
        hmac_sha256(secret, msg.as_bytes())
            .unwrap()
            .finalize()
            .into_bytes(),
    )
}

fn signed_list(s: &str) -> Vec<String> {
    s.split(';').map(str::to_string).collect()
}

// ---------------------------------------------------------------- ACS3 vectors

const VECTOR_A_HEADERS: &str = "
Accept-Encoding: identity
host: 127.0.0.1:9000
x-acs-version: 2021-04-06
x-acs-action: InvokeFunction
user-agent: AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-date: 2024-01-01T00:00:00Z
x-acs-signature-nonce: 0123456789abcdef0123456789abcdef
accept: application/json
X-Fc-Account-Id: 1234567890123456
X-Fc-Invocation-Type: Sync
X-Fc-Log-Type: Tail
x-acs-content-sha256: e43abcf3375244839c012f9633f95862d232a95b00d5bc7348b3098b9fed7f32
x-acs-credentials-provider: static_ak
Authorization: ACS3-HMAC-SHA256 Credential=testAccessKeyId,SignedHeaders=accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version;x-fc-account-id;x-fc-invocation-type;x-fc-log-type,Signature=7f3771614e5bba8dfa7628a43401468098ece3e7dbc06036ec9a770b5c406412
Content-Length: 15
";
const VECTOR_A_PATH: &str = "/2021-04-06/services/demo-svc/functions/hello/invocations";
const VECTOR_A_BODY: &[u8] = br#"{"key":"value"}"#;

/// Headers shared by vectors B and C (vector A without the invoke-only ones).
const COMMON_HEADERS: &str = "
host: 127.0.0.1:9000
x-acs-version: 2021-04-06
user-agent: AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-date: 2024-01-01T00:00:00Z
x-acs-signature-nonce: 0123456789abcdef0123456789abcdef
accept: application/json
X-Fc-Account-Id: 1234567890123456
x-acs-credentials-provider: static_ak
";

fn vector_a_headers() -> HeaderMap {
    headers(VECTOR_A_HEADERS)
}

fn vector_a_request<'a>(hdrs: &'a HeaderMap, body: &'a [u8]) -> SignedRequest<'a> {
    SignedRequest {
        method: "POST",
        path: VECTOR_A_PATH,
        query: "qualifier=prod",
        headers: hdrs,
        body,
    }
}

fn authorization_of(hdrs: &HeaderMap) -> Authorization {
    Authorization::parse(hdrs.get("authorization").unwrap().to_str().unwrap()).unwrap()
}

#[test]
fn acs3_vector_a_canonical_request() {
    let hdrs = vector_a_headers();
    let req = vector_a_request(&hdrs, VECTOR_A_BODY);
    let Authorization::Acs3 { signed_headers, .. } = authorization_of(&hdrs) else {
        panic!("expected ACS3");
    };
    let expected = "POST
/2021-04-06/services/demo-svc/functions/hello/invocations
qualifier=prod
accept:application/json
host:127.0.0.1:9000
user-agent:AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-action:InvokeFunction
x-acs-content-sha256:e43abcf3375244839c012f9633f95862d232a95b00d5bc7348b3098b9fed7f32
x-acs-credentials-provider:static_ak
x-acs-date:2024-01-01T00:00:00Z
x-acs-signature-nonce:0123456789abcdef0123456789abcdef
x-acs-version:2021-04-06
x-fc-account-id:1234567890123456
x-fc-invocation-type:Sync
x-fc-log-type:Tail

accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version;x-fc-account-id;x-fc-invocation-type;x-fc-log-type
e43abcf3375244839c012f9633f95862d232a95b00d5bc7348b3098b9fed7f32";
    let canonical = acs3_canonical_request(&req, &signed_headers).unwrap();
    assert_eq!(canonical, expected);
    assert_eq!(canonical_query("qualifier=prod"), "qualifier=prod");

    let sts = acs3_string_to_sign(&canonical);
    assert_eq!(
        sts,
        "ACS3-HMAC-SHA256\n92b34eca30ccaabe91a126a5f72508273a7ddb1e8137cc5d3fab032a87445560"
    );
    assert_eq!(
        hmac_hex(SECRET, &sts),
        "7f3771614e5bba8dfa7628a43401468098ece3e7dbc06036ec9a770b5c406412"
    );
}

#[test]
fn acs3_vector_a_verifies() {
    let hdrs = vector_a_headers();
    let req = vector_a_request(&hdrs, VECTOR_A_BODY);
    let auth = authorization_of(&hdrs);
    assert_eq!(auth.access_key_id(), AK);
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));
}

#[test]
fn acs3_vector_b_query_reencoding() {
    let raw_query = "limit=10&prefix=my+svc%2F%C3%A4%2A~";
    assert_eq!(
        canonical_query(raw_query),
        "limit=10&prefix=my%20svc%2F%C3%A4%2A~"
    );

    let mut hdrs = headers(COMMON_HEADERS);
    hdrs.insert("x-acs-action", HeaderValue::from_static("ListServices"));
    hdrs.insert(
        "x-acs-content-sha256",
        HeaderValue::from_static(EMPTY_SHA256),
    );
    let req = SignedRequest {
        method: "GET",
        path: "/2021-04-06/services",
        query: raw_query,
        headers: &hdrs,
        body: b"",
    };
    let signed = signed_list(
        "accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version;x-fc-account-id",
    );
    let sts = acs3_string_to_sign(&acs3_canonical_request(&req, &signed).unwrap());
    assert_eq!(
        sts,
        "ACS3-HMAC-SHA256\nbeef176dc7919fc7cfc900464fdd20a70b13b33fb408a1e60d8ffe7c17c6d7af"
    );
    let signature = "9f52768a0f64f24fdc1ec1dae25f5a61a46f0b89da83b0c8608b3638bc796d51";
    assert_eq!(hmac_hex(SECRET, &sts), signature);

    let auth = Authorization::Acs3 {
        access_key_id: AK.into(),
        signed_headers: signed,
        signature: hex::decode(signature).unwrap(),
    };
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));
}

#[test]
fn acs3_vector_c_json_body() {
    let body = br#"{"description":"demo","serviceName":"demo-svc"}"#;
    assert_eq!(body.len(), 47);
    assert_eq!(
        sha256_hex(body),
        "8d470c5d75923ac302787691671b27503ebfb6ae0822ba126a448658938d6dc0"
    );
    assert_eq!(canonical_query(""), "");

    let mut hdrs = headers(COMMON_HEADERS);
    hdrs.insert("x-acs-action", HeaderValue::from_static("CreateService"));
    hdrs.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    hdrs.insert(
        "x-acs-content-sha256",
        HeaderValue::from_static(
            "8d470c5d75923ac302787691671b27503ebfb6ae0822ba126a448658938d6dc0",
        ),
    );
    let req = SignedRequest {
        method: "POST",
        path: "/2021-04-06/services",
        query: "",
        headers: &hdrs,
        body,
    };
    let signed = signed_list(
        "accept;content-type;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version;x-fc-account-id",
    );
    let canonical = acs3_canonical_request(&req, &signed).unwrap();
    assert!(canonical.starts_with("POST\n/2021-04-06/services\n\naccept:"));
    assert!(canonical.contains("\ncontent-type:application/json; charset=utf-8\n"));
    let sts = acs3_string_to_sign(&canonical);
    assert_eq!(
        sts,
        "ACS3-HMAC-SHA256\n4e782873f2f0e67d055dfa6b10a6401514cb93d9f342e86cbb3def5af4d4eef3"
    );
    let signature = "098df8aa063db84e4c0444062f05fece99dc776b36f63a9d877ee8b03c26e237";
    assert_eq!(hmac_hex(SECRET, &sts), signature);

    let auth = Authorization::Acs3 {
        access_key_id: AK.into(),
        signed_headers: signed,
        signature: hex::decode(signature).unwrap(),
    };
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));
}

// ------------------------------------------------------------- ACS3 negatives

#[test]
fn acs3_wrong_secret_is_signature_mismatch() {
    let hdrs = vector_a_headers();
    let req = vector_a_request(&hdrs, VECTOR_A_BODY);
    assert_eq!(
        verify(&authorization_of(&hdrs), "wrongSecret", &req, now()),
        Err(SignError::SignatureMismatch)
    );
}

#[test]
fn acs3_tampered_signed_header_is_signature_mismatch() {
    let mut hdrs = vector_a_headers();
    let auth = authorization_of(&hdrs);
    hdrs.insert("x-fc-log-type", HeaderValue::from_static("None"));
    let req = vector_a_request(&hdrs, VECTOR_A_BODY);
    assert_eq!(
        verify(&auth, SECRET, &req, now()),
        Err(SignError::SignatureMismatch)
    );
}

#[test]
fn acs3_unsigned_header_change_is_ignored() {
    let mut hdrs = vector_a_headers();
    let auth = authorization_of(&hdrs);
    hdrs.insert("accept-encoding", HeaderValue::from_static("gzip"));
    let req = vector_a_request(&hdrs, VECTOR_A_BODY);
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));
}

#[test]
fn acs3_tampered_body_is_content_hash_mismatch() {
    let hdrs = vector_a_headers();
    let req = vector_a_request(&hdrs, br#"{"key":"evil!"}"#);
    assert_eq!(
        verify(&authorization_of(&hdrs), SECRET, &req, now()),
        Err(SignError::ContentHashMismatch)
    );
}

#[test]
fn acs3_head_verifies_without_the_body_and_the_body_after() {
    let hdrs = vector_a_headers();
    let auth = authorization_of(&hdrs);
    // The head alone: the body is not looked at (here: absent).
    let head = vector_a_request(&hdrs, b"");
    assert_eq!(verify_head(&auth, SECRET, &head, now()), Ok(()));
    assert_eq!(verify_body(&auth, &hdrs, VECTOR_A_BODY), Ok(()));
    assert_eq!(
        verify_body(&auth, &hdrs, br#"{"key":"evil!"}"#),
        Err(SignError::ContentHashMismatch)
    );
    // A forged head is refused before any body is read.
    assert_eq!(
        verify_head(&auth, "wrongSecret", &head, now()),
        Err(SignError::SignatureMismatch)
    );
    // The claimed hash is what the signature covers: changing it breaks the signature, and
    // one that is not a SHA-256 is refused outright.
    let mut other = hdrs.clone();
    other.insert(
        "x-acs-content-sha256",
        HeaderValue::from_static(EMPTY_SHA256),
    );
    assert_eq!(
        verify_head(&auth, SECRET, &vector_a_request(&other, b""), now()),
        Err(SignError::SignatureMismatch)
    );
    other.insert(
        "x-acs-content-sha256",
        HeaderValue::from_static("UNSIGNED-PAYLOAD"),
    );
    assert_eq!(
        verify_head(&auth, SECRET, &vector_a_request(&other, b""), now()),
        Err(SignError::ContentHashMismatch)
    );
}

#[test]
fn acs3_tampered_query_is_signature_mismatch() {
    let hdrs = vector_a_headers();
    let mut req = vector_a_request(&hdrs, VECTOR_A_BODY);
    req.query = "qualifier=LATEST";
    assert_eq!(
        verify(&authorization_of(&hdrs), SECRET, &req, now()),
        Err(SignError::SignatureMismatch)
    );
}

#[test]
fn acs3_freshness_window() {
    let hdrs = vector_a_headers();
    let req = vector_a_request(&hdrs, VECTOR_A_BODY);
    let auth = authorization_of(&hdrs);
    let skewed = Err(SignError::RequestTimeTooSkewed {
        date: "2024-01-01T00:00:00Z".into(),
    });
    assert_eq!(
        verify(&auth, SECRET, &req, at("2024-01-01T00:16:00Z")),
        skewed
    );
    assert_eq!(
        verify(&auth, SECRET, &req, at("2023-12-31T23:44:00Z")),
        skewed
    );
    assert_eq!(
        verify(&auth, SECRET, &req, at("2024-01-01T00:15:00Z")),
        Ok(())
    );
    assert_eq!(
        verify(&auth, SECRET, &req, at("2023-12-31T23:45:00Z")),
        Ok(())
    );
}

#[test]
fn acs3_missing_signed_header() {
    let mut hdrs = vector_a_headers();
    let auth = authorization_of(&hdrs);
    hdrs.remove("x-acs-version");
    let req = vector_a_request(&hdrs, VECTOR_A_BODY);
    assert_eq!(
        verify(&auth, SECRET, &req, now()),
        Err(SignError::MissingHeader("x-acs-version".into()))
    );
}

#[test]
fn acs3_required_headers_must_be_signed() {
    let hdrs = vector_a_headers();
    let req = vector_a_request(&hdrs, VECTOR_A_BODY);
    for required in [
        "host",
        "x-acs-date",
        "x-acs-content-sha256",
        "x-acs-signature-nonce",
    ] {
        let Authorization::Acs3 {
            access_key_id,
            signed_headers,
            signature,
        } = authorization_of(&hdrs)
        else {
            panic!("expected ACS3");
        };
        let auth = Authorization::Acs3 {
            access_key_id,
            signed_headers: signed_headers
                .into_iter()
                .filter(|h| h != required)
                .collect(),
            signature,
        };
        assert!(
            matches!(
                verify(&auth, SECRET, &req, now()),
                Err(SignError::MalformedAuthorization(msg)) if msg.contains(required)
            ),
            "{required}"
        );
    }
}

#[test]
fn acs3_invalid_date() {
    let mut hdrs = vector_a_headers();
    hdrs.insert("x-acs-date", HeaderValue::from_static("yesterday"));
    let req = vector_a_request(&hdrs, VECTOR_A_BODY);
    assert_eq!(
        verify(&authorization_of(&hdrs), SECRET, &req, now()),
        Err(SignError::InvalidDate("yesterday".into()))
    );
}

// --------------------------------------------------------- canonical query

#[test]
fn canonical_query_rules() {
    assert_eq!(canonical_query(""), "");
    assert_eq!(canonical_query("b=2&a=1"), "a=1&b=2");
    assert_eq!(canonical_query("flag&a="), "a=&flag=");
    assert_eq!(canonical_query("k=b&k=a"), "k=a&k=b");
    assert_eq!(canonical_query("q=a%20b+c"), "q=a%20b%20c");
    assert_eq!(
        canonical_query("v=-_.~!*'()%3D%26"),
        "v=-_.~%21%2A%27%28%29%3D%26"
    );
    // Keys are not re-encoded.
    assert_eq!(canonical_query("a+b=1"), "a b=1");
}

// ------------------------------------------------------- Authorization parse

#[test]
fn parse_acs3_tolerates_spaces() {
    let sig = "7f3771614e5bba8dfa7628a43401468098ece3e7dbc06036ec9a770b5c406412";
    let parsed = Authorization::parse(&format!(
        "  ACS3-HMAC-SHA256 Credential=ak, SignedHeaders=host;x-acs-date ,  Signature={} ",
        sig.to_uppercase()
    ))
    .unwrap();
    assert_eq!(
        parsed,
        Authorization::Acs3 {
            access_key_id: "ak".into(),
            signed_headers: vec!["host".into(), "x-acs-date".into()],
            signature: hex::decode(sig).unwrap(),
        }
    );
    assert_eq!(parsed.access_key_id(), "ak");
}

#[test]
fn parse_fc() {
    let parsed =
        Authorization::parse("FC testAccessKeyId:/8BaDia4nh+MpiuiWR4iirnj+pDsGAMVVhjzypFLXhY=")
            .unwrap();
    let Authorization::Fc {
        access_key_id,
        signature,
    } = &parsed
    else {
        panic!("expected FC");
    };
    assert_eq!(access_key_id, AK);
    assert_eq!(signature.len(), 32);
    assert_eq!(parsed.access_key_id(), AK);
}

#[test]
fn parse_unsupported_schemes() {
    for (value, scheme) in [
        (
            "ACS3-HMAC-SM3 Credential=a,SignedHeaders=host,Signature=00",
            "ACS3-HMAC-SM3",
        ),
        (
            "ACS3-RSA-SHA256 Credential=a,SignedHeaders=host,Signature=00",
            "ACS3-RSA-SHA256",
        ),
        ("acs ak:c2lnbmF0dXJl", "acs"),
        ("Bearer token", "Bearer"),
    ] {
        assert_eq!(
            Authorization::parse(value),
            Err(SignError::UnsupportedScheme(scheme.into())),
            "{value}"
        );
    }
}

#[test]
fn parse_malformed() {
    let good_sig = "7f3771614e5bba8dfa7628a43401468098ece3e7dbc06036ec9a770b5c406412";
    let cases = [
        String::new(),
        "   ".to_string(),
        "ACS3-HMAC-SHA256".to_string(),
        format!("ACS3-HMAC-SHA256 SignedHeaders=host,Signature={good_sig}"),
        format!("ACS3-HMAC-SHA256 Credential=,SignedHeaders=host,Signature={good_sig}"),
        format!("ACS3-HMAC-SHA256 Credential=ak,Signature={good_sig}"),
        "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host".to_string(),
        "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature=abcd".to_string(),
        format!(
            "ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature={}",
            "zz".repeat(32)
        ),
        format!("ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host;;date,Signature={good_sig}"),
        format!("ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature={good_sig},Extra=1"),
        format!(
            "ACS3-HMAC-SHA256 Credential=ak,Credential=b,SignedHeaders=host,Signature={good_sig}"
        ),
        format!("ACS3-HMAC-SHA256 Credential=ak;SignedHeaders=host;Signature={good_sig}"),
        "FC".to_string(),
        "FC ak".to_string(),
        "FC :c2ln".to_string(),
        "FC ak:".to_string(),
        "FC ak:not*base64!".to_string(),
    ];
    for value in cases {
        assert!(
            matches!(
                Authorization::parse(&value),
                Err(SignError::MalformedAuthorization(_))
            ),
            "{value:?} -> {:?}",
            Authorization::parse(&value)
        );
    }
}

// ---------------------------------------------------------- ACS3 round trips

#[test]
fn sign_acs3_round_trip_with_encoded_path_and_unicode_query() {
    let path = "/2021-04-06/services/my%20svc%2Fx/functions/f%C3%A4~/invocations";
    let query = "prefix=my+svc%2F%C3%A4%2A~&limit=10&q=%E2%9C%93+ok&empty=";
    let body = "héllo wörld".as_bytes();
    let mut hdrs = headers(
        "
host: fc.example.test:9000
user-agent: fcd-bench/1.0
accept: application/json
content-type: application/octet-stream
X-Fc-Account-Id: 1234567890123456
X-Fc-Invocation-Type: Async
accept-encoding: identity
content-length: 13
",
    );
    sign_acs3(
        AK,
        SECRET,
        "POST",
        path,
        query,
        &mut hdrs,
        body,
        now(),
        NONCE,
    )
    .unwrap();

    assert_eq!(hdrs.get("x-acs-date").unwrap(), "2024-01-01T00:05:00Z");
    assert_eq!(hdrs.get("x-acs-signature-nonce").unwrap(), NONCE);
    assert_eq!(
        hdrs.get("x-acs-content-sha256").unwrap().to_str().unwrap(),
        sha256_hex(body)
    );
    let auth = authorization_of(&hdrs);
    let Authorization::Acs3 { signed_headers, .. } = &auth else {
        panic!("expected ACS3");
    };
    assert_eq!(
        signed_headers.join(";"),
        "accept;content-type;host;user-agent;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-fc-account-id;x-fc-invocation-type"
    );

    let req = SignedRequest {
        method: "POST",
        path,
        query,
        headers: &hdrs,
        body,
    };
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));
    assert_eq!(
        verify(&auth, "other", &req, now()),
        Err(SignError::SignatureMismatch)
    );
    // The raw path is signed byte for byte: a differently encoded but
    // equivalent path must not verify.
    let reencoded = SignedRequest {
        path: "/2021-04-06/services/my%20svc%2fx/functions/f%C3%A4~/invocations",
        ..req
    };
    assert_eq!(
        verify(&auth, SECRET, &reencoded, now()),
        Err(SignError::SignatureMismatch)
    );
}

#[test]
fn sign_acs3_reproduces_vector_a() {
    let mut hdrs = vector_a_headers();
    for unsigned_by_sdk in [
        "authorization",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
    ] {
        hdrs.remove(unsigned_by_sdk);
    }
    // Transport headers added after signing are not part of the SDK's set.
    hdrs.remove("accept-encoding");
    hdrs.remove("content-length");
    sign_acs3(
        AK,
        SECRET,
        "POST",
        VECTOR_A_PATH,
        "qualifier=prod",
        &mut hdrs,
        VECTOR_A_BODY,
        at("2024-01-01T00:00:00Z"),
        NONCE,
    )
    .unwrap();
    assert_eq!(
        hdrs.get("authorization").unwrap(),
        vector_a_headers().get("authorization").unwrap()
    );
}

#[test]
fn sign_acs3_requires_host() {
    let mut hdrs = HeaderMap::new();
    assert_eq!(
        sign_acs3(AK, SECRET, "GET", "/", "", &mut hdrs, b"", now(), NONCE),
        Err(SignError::MissingHeader("host".into()))
    );
}

// -------------------------------------------------------------- FC vectors

const FC_DATE: &str = "Mon, 01 Jan 2024 00:00:00 GMT";

#[test]
fn fc_vector_1_api_invoke() {
    let mut hdrs = headers(
        "
date: Mon, 01 Jan 2024 00:00:00 GMT
content-type: application/json
x-fc-invocation-type: Sync
x-fc-log-type: Tail
",
    );
    let path = "/2016-08-15/services/demo-svc.prod/functions/hello/invocations";
    let req = SignedRequest {
        method: "POST",
        path,
        query: "",
        headers: &hdrs,
        body: br#"{"a":1}"#,
    };
    let sts = fc_string_to_sign(&req);
    assert_eq!(
        sts,
        "POST\n\napplication/json\nMon, 01 Jan 2024 00:00:00 GMT\nx-fc-invocation-type:Sync\nx-fc-log-type:Tail\n/2016-08-15/services/demo-svc.prod/functions/hello/invocations"
    );
    let expected = "FC testAccessKeyId:/8BaDia4nh+MpiuiWR4iirnj+pDsGAMVVhjzypFLXhY=";
    assert_eq!(format!("FC {AK}:{}", hmac_b64(SECRET, &sts)), expected);

    let auth = Authorization::parse(expected).unwrap();
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));
    // API requests do not sign the query.
    let with_query = SignedRequest {
        query: "qualifier=x",
        ..req
    };
    assert_eq!(verify(&auth, SECRET, &with_query, now()), Ok(()));

    sign_fc(AK, SECRET, "POST", path, "", &mut hdrs, now()).unwrap();
    assert_eq!(hdrs.get("date").unwrap(), FC_DATE, "existing date is kept");
    assert_eq!(hdrs.get("authorization").unwrap(), expected);
}

#[test]
fn fc_vector_2_http_trigger_sorted_query() {
    let mut hdrs = headers(
        "
date: Mon, 01 Jan 2024 00:00:00 GMT
content-type: text/plain
x-fc-trace-id: trace-1
",
    );
    let path = "/2016-08-15/proxy/demo-svc/hello/path%20with%20space/action";
    let query = "x=1&a=2&with+space=foo+bar&flag&x=3";
    let req = SignedRequest {
        method: "GET",
        path,
        query,
        headers: &hdrs,
        body: b"",
    };
    let sts = fc_string_to_sign(&req);
    assert_eq!(
        sts,
        "GET\n\ntext/plain\nMon, 01 Jan 2024 00:00:00 GMT\nx-fc-trace-id:trace-1\n/2016-08-15/proxy/demo-svc/hello/path with space/action\na=2\nflag\nwith space=foo bar\nx=1\nx=3"
    );
    let expected = "FC testAccessKeyId:5OIIjj0D97ewwSKMpEWAuYFLKrOAPnzfHnkyTpZXvc0=";
    assert_eq!(format!("FC {AK}:{}", hmac_b64(SECRET, &sts)), expected);
    let auth = Authorization::parse(expected).unwrap();
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));

    // For trigger requests the query is signed.
    let tampered = SignedRequest {
        query: "x=1&a=2&with+space=foo+bar&flag&x=4",
        ..req
    };
    assert_eq!(
        verify(&auth, SECRET, &tampered, now()),
        Err(SignError::SignatureMismatch)
    );

    sign_fc(AK, SECRET, "GET", path, query, &mut hdrs, now()).unwrap();
    assert_eq!(hdrs.get("authorization").unwrap(), expected);
}

#[test]
fn fc_vector_3_go_sdk_signed_url() {
    let sts = "GET\nef5b43a0fe1d5b401b62c3ba33a7a3d6\ntext/json\n1583221068\nx-fc-trace-id:trace-id\n/2016-08-15/proxy/service.LATEST/func/abc 123\na=123 45\nx-fc-access-key-id=akID\nx-fc-expires=1583221068\nx-fc-security-token=stsToken\nx=456\nx=xyz";
    assert_eq!(
        hmac_b64("S9MWOBG0AOWHSO9HPASP216QOPHT5YR4NLH3A", sts),
        "QFdNhz0Dl+onUM/MvpX940WFH3H8OHayZHbby1c01aI="
    );

    // The same string-to-sign from a wire request: line sorting puts
    // `x-fc-...=` before `x=`.
    let hdrs = headers(
        "
content-md5: ef5b43a0fe1d5b401b62c3ba33a7a3d6
content-type: text/json
date: 1583221068
x-fc-trace-id: trace-id
",
    );
    let req = SignedRequest {
        method: "GET",
        path: "/2016-08-15/proxy/service.LATEST/func/abc%20123",
        query: "x=456&x=xyz&a=123+45&x-fc-access-key-id=akID&x-fc-expires=1583221068&x-fc-security-token=stsToken",
        headers: &hdrs,
        body: b"",
    };
    assert_eq!(fc_string_to_sign(&req), sts);
}

#[test]
fn fc_vector_4_gateway_util_url_order() {
    let hdrs = headers(
        "
content-type: text/plain
X-Fc-Trace-Id: trace-1
date: Mon, 01 Jan 2024 00:00:00 GMT
",
    );
    let req = SignedRequest {
        method: "POST",
        path: "/2016-08-15/proxy/demo-svc/hello/path%20x",
        query: "b=2&a=1",
        headers: &hdrs,
        body: b"payload",
    };
    let sts = fc_string_to_sign_url_order(&req);
    assert_eq!(
        sts,
        "POST\n\ntext/plain\nMon, 01 Jan 2024 00:00:00 GMT\nx-fc-trace-id:trace-1\n/2016-08-15/proxy/demo-svc/hello/path x\nb=2\na=1"
    );
    assert_ne!(fc_string_to_sign(&req), sts);
    let expected = "FC testAccessKeyId:GY3qwrXwBeG/BtvJ2kh/En6piSiy2EHChrocRWBo2k0=";
    assert_eq!(format!("FC {AK}:{}", hmac_b64(SECRET, &sts)), expected);
    let auth = Authorization::parse(expected).unwrap();
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));
}

// ------------------------------------------------------------- FC negatives

fn fc_vector_1() -> (HeaderMap, Authorization) {
    let hdrs = headers(
        "
date: Mon, 01 Jan 2024 00:00:00 GMT
content-type: application/json
x-fc-invocation-type: Sync
x-fc-log-type: Tail
",
    );
    let auth =
        Authorization::parse("FC testAccessKeyId:/8BaDia4nh+MpiuiWR4iirnj+pDsGAMVVhjzypFLXhY=")
            .unwrap();
    (hdrs, auth)
}

fn fc_vector_1_request(hdrs: &HeaderMap) -> SignedRequest<'_> {
    SignedRequest {
        method: "POST",
        path: "/2016-08-15/services/demo-svc.prod/functions/hello/invocations",
        query: "",
        headers: hdrs,
        body: b"",
    }
}

#[test]
fn fc_wrong_secret() {
    let (hdrs, auth) = fc_vector_1();
    assert_eq!(
        verify(&auth, "wrong", &fc_vector_1_request(&hdrs), now()),
        Err(SignError::SignatureMismatch)
    );
}

#[test]
fn fc_tampered_header() {
    let (mut hdrs, auth) = fc_vector_1();
    hdrs.insert("x-fc-log-type", HeaderValue::from_static("None"));
    assert_eq!(
        verify(&auth, SECRET, &fc_vector_1_request(&hdrs), now()),
        Err(SignError::SignatureMismatch)
    );
}

#[test]
fn fc_stale_date() {
    let (hdrs, auth) = fc_vector_1();
    let req = fc_vector_1_request(&hdrs);
    assert_eq!(
        verify(&auth, SECRET, &req, at("2024-01-01T00:16:00Z")),
        Err(SignError::RequestTimeTooSkewed {
            date: FC_DATE.into()
        })
    );
    assert_eq!(
        verify(&auth, SECRET, &req, at("2024-01-01T00:15:00Z")),
        Ok(())
    );
}

#[test]
fn fc_missing_and_invalid_date() {
    let (mut hdrs, auth) = fc_vector_1();
    hdrs.insert("date", HeaderValue::from_static("not a date"));
    assert_eq!(
        verify(&auth, SECRET, &fc_vector_1_request(&hdrs), now()),
        Err(SignError::InvalidDate("not a date".into()))
    );
    hdrs.remove("date");
    assert_eq!(
        verify(&auth, SECRET, &fc_vector_1_request(&hdrs), now()),
        Err(SignError::MissingHeader("date".into()))
    );
}

#[test]
fn fc_x_fc_date_is_freshness_fallback() {
    let hdrs = headers(
        "
content-type: application/json
x-fc-date: Mon, 01 Jan 2024 00:00:00 GMT
",
    );
    let req = SignedRequest {
        method: "GET",
        path: "/2016-08-15/services",
        query: "",
        headers: &hdrs,
        body: b"",
    };
    let sts = fc_string_to_sign(&req);
    assert_eq!(
        sts,
        "GET\n\napplication/json\n\nx-fc-date:Mon, 01 Jan 2024 00:00:00 GMT\n/2016-08-15/services"
    );
    let auth = Authorization::Fc {
        access_key_id: AK.into(),
        signature: base64::engine::general_purpose::STANDARD
            .decode(hmac_b64(SECRET, &sts))
            .unwrap(),
    };
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));
    assert_eq!(
        verify(&auth, SECRET, &req, at("2024-01-01T01:00:00Z")),
        Err(SignError::RequestTimeTooSkewed {
            date: FC_DATE.into()
        })
    );
}

// ----------------------------------------------------------- FC round trips

#[test]
fn sign_fc_round_trip_api_path_with_encoded_chars() {
    let path = "/2016-08-15/services/my%2Dsvc.prod/functions/f%C3%A4/invocations";
    let mut hdrs = headers(
        "
host: fc.example.test
content-type: application/octet-stream
x-fc-invocation-type: Async
",
    );
    sign_fc(AK, SECRET, "POST", path, "", &mut hdrs, now()).unwrap();
    assert_eq!(hdrs.get("date").unwrap(), "Mon, 01 Jan 2024 00:05:00 GMT");
    let auth = authorization_of(&hdrs);
    assert!(matches!(auth, Authorization::Fc { .. }));
    let req = SignedRequest {
        method: "POST",
        path,
        query: "",
        headers: &hdrs,
        body: b"\x00\x01",
    };
    assert!(
        fc_string_to_sign(&req)
            .ends_with("\n/2016-08-15/services/my-svc.prod/functions/fä/invocations")
    );
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));
    assert_eq!(
        verify(&auth, "nope", &req, now()),
        Err(SignError::SignatureMismatch)
    );
}

#[test]
fn sign_fc_round_trip_http_trigger_with_unicode_query() {
    let path = "/2016-08-15/proxy/svc/fn/a%20b/%E2%9C%93";
    let query = "q=hello+world&u=%C3%A4%C3%B6&z=&flag";
    let mut hdrs = headers("x-fc-trace-id: t-1");
    sign_fc(AK, SECRET, "PUT", path, query, &mut hdrs, now()).unwrap();
    let req = SignedRequest {
        method: "PUT",
        path,
        query,
        headers: &hdrs,
        body: b"",
    };
    assert!(
        fc_string_to_sign(&req)
            .ends_with("\n/2016-08-15/proxy/svc/fn/a b/✓\nflag\nq=hello world\nu=äö\nz=")
    );
    let auth = authorization_of(&hdrs);
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));

    // With no query, the resource is the path followed by a newline.
    let mut bare = HeaderMap::new();
    sign_fc(AK, SECRET, "GET", path, "", &mut bare, now()).unwrap();
    let req = SignedRequest {
        method: "GET",
        path,
        query: "",
        headers: &bare,
        body: b"",
    };
    assert!(fc_string_to_sign(&req).ends_with("/a b/✓\n"));
    assert_eq!(
        verify(&authorization_of(&bare), SECRET, &req, now()),
        Ok(())
    );
}

#[test]
fn fc_service_named_proxy_is_not_a_trigger() {
    let hdrs = headers("date: Mon, 01 Jan 2024 00:00:00 GMT");
    let req = SignedRequest {
        method: "GET",
        path: "/2016-08-15/services/proxy/functions/proxy",
        query: "a=1",
        headers: &hdrs,
        body: b"",
    };
    assert!(fc_string_to_sign(&req).ends_with("\n/2016-08-15/services/proxy/functions/proxy"));
}

#[test]
fn clock_skew_constant() {
    assert_eq!(MAX_CLOCK_SKEW, Duration::from_secs(900));
}

#[test]
fn fc_content_md5_must_be_the_bodys_in_every_sdk_spelling() {
    use base64::Engine as _;
    use md5::Digest as _;
    let body: &[u8] = b"{\"code\":\"the real one\"}";
    let digest = md5::Md5::digest(body);
    let hex_text = hex::encode(digest);
    let b64 = base64::engine::general_purpose::STANDARD;
    let spellings = [
        hex_text.clone(),
        b64.encode(hex_text.as_bytes()),
        b64.encode(digest),
    ];
    let path = "/2016-08-15/services/svc/functions/f";
    for md5_header in spellings {
        let mut hdrs = headers(&format!(
            "content-type: application/json\ncontent-md5: {md5_header}\n"
        ));
        sign_fc(AK, SECRET, "PUT", path, "", &mut hdrs, now()).unwrap();
        let auth = authorization_of(&hdrs);
        let genuine = SignedRequest {
            method: "PUT",
            path,
            query: "",
            headers: &hdrs,
            body,
        };
        assert_eq!(
            verify(&auth, SECRET, &genuine, now()),
            Ok(()),
            "{md5_header}"
        );
        // The same signed headers replayed with another body.
        let swapped = SignedRequest {
            body: b"{\"code\":\"an attacker's\"}",
            ..genuine
        };
        assert_eq!(
            verify(&auth, SECRET, &swapped, now()),
            Err(SignError::ContentHashMismatch),
            "{md5_header}"
        );
        // Split: the head verifies whatever the body, the body check tells them apart.
        assert_eq!(verify_head(&auth, SECRET, &swapped, now()), Ok(()));
        assert_eq!(
            verify_body(&auth, &hdrs, swapped.body),
            Err(SignError::ContentHashMismatch)
        );
        assert_eq!(verify_body(&auth, &hdrs, body), Ok(()));
    }
}

// ------------------------------------------------------------- ACS3 replay key

#[test]
fn acs3_replay_key_is_the_signed_nonce_and_date() {
    let hdrs = vector_a_headers();
    let (nonce, secs) = acs3_replay_key(&hdrs).unwrap();
    assert_eq!(nonce, NONCE);
    assert_eq!(secs, 1_704_067_200); // 2024-01-01T00:00:00Z
}

#[test]
fn acs3_replay_key_is_the_canonical_nonce_text() {
    // A trailing NBSP byte (not UTF-8, read as Latin-1) is trimmed in the canonical header, so
    // the signature does not change: the replay key must not change either, or a replay with
    // the byte appended would look new.
    let mut hdrs = vector_a_headers();
    let mut raw = NONCE.as_bytes().to_vec();
    raw.push(0xa0);
    hdrs.insert(
        "x-acs-signature-nonce",
        HeaderValue::from_bytes(&raw).unwrap(),
    );
    assert_eq!(acs3_replay_key(&hdrs).unwrap().0, NONCE);
    let req = vector_a_request(&hdrs, VECTOR_A_BODY);
    assert_eq!(
        verify(&authorization_of(&hdrs), SECRET, &req, now()),
        Ok(())
    );
}

#[test]
fn acs3_replay_key_needs_exactly_one_nonce_and_date() {
    let mut twice = vector_a_headers();
    twice.append("x-acs-signature-nonce", HeaderValue::from_static("other"));
    assert!(matches!(
        acs3_replay_key(&twice),
        Err(SignError::MalformedAuthorization(_))
    ));
    let mut empty = vector_a_headers();
    empty.insert("x-acs-signature-nonce", HeaderValue::from_static("  "));
    assert!(matches!(
        acs3_replay_key(&empty),
        Err(SignError::MissingHeader(_))
    ));
    let mut missing = vector_a_headers();
    missing.remove("x-acs-date");
    assert!(matches!(
        acs3_replay_key(&missing),
        Err(SignError::MissingHeader(_))
    ));
}

#[test]
fn custom_domain_requests_are_verified_with_their_query_signed() {
    let mut hdrs = headers(
        "
date: Mon, 01 Jan 2024 00:00:00 GMT
content-type: text/plain
",
    );
    // A custom domain's path has no `/proxy/`: the API rule would leave the query unsigned.
    let (path, query) = ("/users/1", "b=2&a=1");
    let sorted = format!("GET\n\ntext/plain\nMon, 01 Jan 2024 00:00:00 GMT\n{path}\na=1\nb=2");
    hdrs.insert(
        "authorization",
        format!("FC {AK}:{}", hmac_b64(SECRET, &sorted))
            .parse()
            .unwrap(),
    );
    let auth = Authorization::parse(hdrs.get("authorization").unwrap().to_str().unwrap()).unwrap();
    let req = SignedRequest {
        method: "GET",
        path,
        query,
        headers: &hdrs,
        body: b"",
    };
    assert_eq!(verify_head_http_trigger(&auth, SECRET, &req, now()), Ok(()));
    assert_eq!(
        verify_head(&auth, SECRET, &req, now()),
        Err(SignError::SignatureMismatch),
        "the API rule signs no query"
    );
    let tampered = SignedRequest {
        query: "b=2&a=9",
        ..req
    };
    assert_eq!(
        verify_head_http_trigger(&auth, SECRET, &tampered, now()),
        Err(SignError::SignatureMismatch)
    );
    let url_order = format!("GET\n\ntext/plain\nMon, 01 Jan 2024 00:00:00 GMT\n{path}\nb=2\na=1");
    let auth = Authorization::parse(&format!("FC {AK}:{}", hmac_b64(SECRET, &url_order))).unwrap();
    assert_eq!(verify_head_http_trigger(&auth, SECRET, &req, now()), Ok(()));
}

/// A body checked piece by piece gives the verdict the whole body gives, for both schemes,
/// however it is cut.
#[test]
fn a_body_verified_in_pieces_matches_the_whole() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut acs3 = HeaderMap::new();
    acs3.insert("host", HeaderValue::from_static("fc.local"));
    crate::sign_acs3("ak", "sk", "POST", "/p", "", &mut acs3, &body, now(), "n1").unwrap();
    let acs3_auth = authorization_of(&acs3);
    let mut md5_headers = HeaderMap::new();
    let digest = {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(&body))
    };
    md5_headers.insert("content-md5", HeaderValue::from_str(&digest).unwrap());
    crate::sign_fc("ak", "sk", "POST", "/p", "", &mut md5_headers, now()).unwrap();
    let fc_auth = authorization_of(&md5_headers);
    for (auth, hdrs) in [(&acs3_auth, &acs3), (&fc_auth, &md5_headers)] {
        for cut in [1usize, 7, 4096, 65_536, 100_000] {
            let mut v = BodyVerifier::new(auth, hdrs).unwrap();
            body.chunks(cut).for_each(|p| v.update(p));
            assert!(v.finish().is_ok(), "cut {cut}");
            let mut v = BodyVerifier::new(auth, hdrs).unwrap();
            body[1..].chunks(cut).for_each(|p| v.update(p));
            assert!(matches!(v.finish(), Err(SignError::ContentHashMismatch)));
        }
        assert!(verify_body(auth, hdrs, &body).is_ok());
    }
    // The FC scheme without Content-MD5 binds no body.
    let mut plain = HeaderMap::new();
    crate::sign_fc("ak", "sk", "POST", "/p", "", &mut plain, now()).unwrap();
    let mut v = BodyVerifier::new(&authorization_of(&plain), &plain).unwrap();
    v.update(b"anything");
    assert!(v.finish().is_ok());
}

// ------------------------------------------------------- FC 3.0 (2023-03-30) vectors
//
// fc3-api.md §1.3: the 3.0 SDK (alibabacloud-fc20230330 4.8.3) signs with the same ACS3 as
// 2021-04-06 — no account header, `x-acs-version: 2023-03-30`, InvokeFunction's body typed
// `application/octet-stream`. Pinned date, nonce and user agent as for the 2.0 vectors; host
// `127.0.0.1:9100`.

/// Headers every 3.0 vector carries (the Python SDK's, minus the per-operation ones).
const FC3_COMMON_HEADERS: &str = "
host: 127.0.0.1:9100
x-acs-version: 2023-03-30
user-agent: AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-date: 2024-01-01T00:00:00Z
x-acs-signature-nonce: 0123456789abcdef0123456789abcdef
accept: application/json
x-acs-credentials-provider: static_ak
";

/// Checks a 3.0 vector end to end: the canonical request hashes to the published
/// string-to-sign, the secret signs that to the published signature, and the verifier
/// accepts the request with its body (and refuses it with another secret).
fn check_fc3_vector(req: &SignedRequest<'_>, signed: &str, sts_hash: &str, signature: &str) {
    let signed = signed_list(signed);
    let canonical = acs3_canonical_request(req, &signed).unwrap();
    let sts = acs3_string_to_sign(&canonical);
    assert_eq!(sts, format!("ACS3-HMAC-SHA256\n{sts_hash}"), "{canonical}");
    assert_eq!(hmac_hex(SECRET, &sts), signature);
    let auth = Authorization::Acs3 {
        access_key_id: AK.into(),
        signed_headers: signed,
        signature: hex::decode(signature).unwrap(),
    };
    assert_eq!(verify(&auth, SECRET, req, now()), Ok(()));
    assert_eq!(
        verify(&auth, "otherSecret", req, now()),
        Err(SignError::SignatureMismatch)
    );
}

#[test]
fn fc3_vector_1_invoke_function() {
    let body = br#"{"key":"value"}"#;
    let hash = "e43abcf3375244839c012f9633f95862d232a95b00d5bc7348b3098b9fed7f32";
    assert_eq!(sha256_hex(body), hash);
    let mut hdrs = headers(FC3_COMMON_HEADERS);
    for (name, value) in [
        ("x-acs-action", "InvokeFunction"),
        ("content-type", "application/octet-stream"),
        ("x-fc-invocation-type", "Sync"),
        ("x-fc-log-type", "Tail"),
        ("x-acs-content-sha256", hash),
    ] {
        hdrs.insert(name, HeaderValue::from_static(value));
    }
    let req = SignedRequest {
        method: "POST",
        path: "/2023-03-30/functions/hello/invocations",
        query: "qualifier=prod",
        headers: &hdrs,
        body,
    };
    let signed = "accept;content-type;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version;x-fc-invocation-type;x-fc-log-type";
    let canonical = acs3_canonical_request(&req, &signed_list(signed)).unwrap();
    assert!(
        canonical.starts_with("POST\n/2023-03-30/functions/hello/invocations\nqualifier=prod\n")
    );
    assert!(canonical.contains("\ncontent-type:application/octet-stream\n"));
    assert!(canonical.contains("\nx-acs-version:2023-03-30\n"));
    check_fc3_vector(
        &req,
        signed,
        "becd3d35bcc787503ec1dbdafce6223bb9da8d7ab9d20cba009f373134944e98",
        "1579336b2345d854b5eff21f64afde7909e01e51f726a1b22ddd34b894960393",
    );
    // The body is covered: one changed byte is a digest mismatch.
    let auth = Authorization::Acs3 {
        access_key_id: AK.into(),
        signed_headers: signed_list(signed),
        signature: hex::decode("1579336b2345d854b5eff21f64afde7909e01e51f726a1b22ddd34b894960393")
            .unwrap(),
    };
    let tampered = SignedRequest {
        body: br#"{"key":"valuE"}"#,
        ..req
    };
    assert_eq!(
        verify(&auth, SECRET, &tampered, now()),
        Err(SignError::ContentHashMismatch)
    );
}

#[test]
fn fc3_vector_2_create_function_json_body() {
    let body = br#"{"code":{"zipFile":"UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA=="},"environmentVariables":{"A":"1"},"functionName":"f1","handler":"index.handler","instanceLifecycleConfig":{"initializer":{"handler":"index.init","timeout":3}},"internetAccess":true,"layers":["acs:fc:cn-hangzhou:123:layers/l/versions/1"],"memorySize":128,"runtime":"python3.10","tags":[{"Key":"k","Value":"v"}]}"#;
    assert_eq!(body.len(), 364);
    let hash = "51c95d4972f6222e92fc56ceb0e4c521c2b8440992ab559dc6d6005a7c73e43c";
    assert_eq!(sha256_hex(body), hash);
    let mut hdrs = headers(FC3_COMMON_HEADERS);
    for (name, value) in [
        ("x-acs-action", "CreateFunction"),
        ("content-type", "application/json; charset=utf-8"),
        ("x-acs-content-sha256", hash),
    ] {
        hdrs.insert(name, HeaderValue::from_static(value));
    }
    let req = SignedRequest {
        method: "POST",
        path: "/2023-03-30/functions",
        query: "",
        headers: &hdrs,
        body,
    };
    check_fc3_vector(
        &req,
        "accept;content-type;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version",
        "f30f50ae4307069b9b082d862ab068b8ace5e34d38463a89fe5f9bd6649831e5",
        "06826ffd30b95447be1a727b2785158bbb1b6b758294a45207089b5a0dc4aa8a",
    );
}

#[test]
fn fc3_vector_3_list_functions_query_reencoding() {
    let raw_query = "fcVersion=v3&limit=10&prefix=my+f%2F%C3%A4&tags=%5B%7B%22Key%22%3A%22k%22%2C%22Value%22%3A%22v%22%7D%5D";
    assert_eq!(
        canonical_query(raw_query),
        "fcVersion=v3&limit=10&prefix=my%20f%2F%C3%A4&tags=%5B%7B%22Key%22%3A%22k%22%2C%22Value%22%3A%22v%22%7D%5D"
    );
    let mut hdrs = headers(FC3_COMMON_HEADERS);
    hdrs.insert("x-acs-action", HeaderValue::from_static("ListFunctions"));
    hdrs.insert(
        "x-acs-content-sha256",
        HeaderValue::from_static(EMPTY_SHA256),
    );
    let req = SignedRequest {
        method: "GET",
        path: "/2023-03-30/functions",
        query: raw_query,
        headers: &hdrs,
        body: b"",
    };
    check_fc3_vector(
        &req,
        "accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version",
        "21d535779cbc6668388341a13546cff9285c37b652396b48195a1f413166689b",
        "9ae8d5ccf7bc67e27e3ce5ba448f8445f5c21fc4cd10eb4749f5d06213eb6baf",
    );
}

/// `sign_acs3` (what fcd's tests and benchmark sign with) reproduces the 3.0 SDK's
/// InvokeFunction signature exactly.
#[test]
fn sign_acs3_reproduces_fc3_vector_1() {
    let mut hdrs = headers(FC3_COMMON_HEADERS);
    hdrs.remove("x-acs-date");
    hdrs.remove("x-acs-signature-nonce");
    for (name, value) in [
        ("x-acs-action", "InvokeFunction"),
        ("content-type", "application/octet-stream"),
        ("x-fc-invocation-type", "Sync"),
        ("x-fc-log-type", "Tail"),
    ] {
        hdrs.insert(name, HeaderValue::from_static(value));
    }
    sign_acs3(
        AK,
        SECRET,
        "POST",
        "/2023-03-30/functions/hello/invocations",
        "qualifier=prod",
        &mut hdrs,
        br#"{"key":"value"}"#,
        at("2024-01-01T00:00:00Z"),
        NONCE,
    )
    .unwrap();
    let authorization = hdrs.get("authorization").unwrap().to_str().unwrap();
    assert!(
        authorization.ends_with(
            "Signature=1579336b2345d854b5eff21f64afde7909e01e51f726a1b22ddd34b894960393"
        ),
        "{authorization}"
    );
}
