//! ACS3-HMAC-SHA256 on the RPC-style RAM and STS calls (canonical URI `/`, parameters in the
//! query, no body), and the classic FC scheme with a security token: the captured vectors R1,
//! R2, S1, S2 and F1 of spec/ram-sts.md section 4.
#![allow(clippy::unwrap_used)]

use std::time::SystemTime;

use fcd_sign::{
    Authorization, SignError, SignedRequest, acs3_canonical_request, acs3_string_to_sign,
    canonical_query, fc_string_to_sign, verify,
};
use http::{HeaderMap, HeaderName, HeaderValue};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const SECRET: &str = "testAccessKeySecret";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const UA: &str = "AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2";
const SIGNED_STATIC_AK: &str = "accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version";

fn now() -> SystemTime {
    SystemTime::from(OffsetDateTime::parse("2024-01-01T00:05:00Z", &Rfc3339).unwrap())
}

/// The headers the Python SDK sends on an RPC call (spec 2.2), plus `extra`.
fn rpc_headers(version: &str, action: &str, extra: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    let mut put = |k: &str, v: &str| {
        h.insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    };
    put("accept", "application/json");
    put("host", "127.0.0.1:19000");
    put("user-agent", UA);
    put("x-acs-action", action);
    put("x-acs-content-sha256", EMPTY_SHA256);
    put("x-acs-credentials-provider", "static_ak");
    put("x-acs-date", "2024-01-01T00:00:00Z");
    put("x-acs-signature-nonce", "0123456789abcdef0123456789abcdef");
    put("x-acs-version", version);
    // Sent after signing by the HTTP library; never signed.
    put("accept-encoding", "identity");
    put("content-length", "0");
    for (k, v) in extra {
        put(k, v);
    }
    h
}

/// The wire query Python's `urlencode` sends for the parameters a canonical query holds
/// (space as `+`); the server must arrive back at the canonical form.
fn wire_query(canonical: &str) -> String {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for pair in canonical.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap();
        ser.append_pair(
            k,
            &percent_encoding::percent_decode_str(v).decode_utf8_lossy(),
        );
    }
    ser.finish()
}

fn signed(list: &str) -> Vec<String> {
    list.split(';').map(str::to_owned).collect()
}

/// Checks the string to sign, then that the server-side verification accepts the signature
/// and refuses it under another secret or with a changed parameter.
fn check(
    headers: &HeaderMap,
    query: &str,
    signed_headers: &str,
    expected_hash: &str,
    signature: &str,
) {
    let req = SignedRequest {
        method: "POST",
        path: "/",
        query,
        headers,
        body: b"",
    };
    let list = signed(signed_headers);
    let canonical = acs3_canonical_request(&req, &list).unwrap();
    assert_eq!(
        acs3_string_to_sign(&canonical),
        format!("ACS3-HMAC-SHA256\n{expected_hash}")
    );
    let auth = Authorization::parse(&format!(
        "ACS3-HMAC-SHA256 Credential=testAccessKeyId,SignedHeaders={signed_headers},Signature={signature}"
    ))
    .unwrap();
    assert_eq!(verify(&auth, SECRET, &req, now()), Ok(()));
    assert_eq!(
        verify(&auth, "otherSecret", &req, now()),
        Err(SignError::SignatureMismatch)
    );
    let changed = format!("{query}&Extra=1");
    let tampered = SignedRequest {
        query: &changed,
        ..req
    };
    assert_eq!(
        verify(&auth, SECRET, &tampered, now()),
        Err(SignError::SignatureMismatch)
    );
}

#[test]
fn r1_ram_create_user() {
    let headers = rpc_headers("2015-05-01", "CreateUser", &[]);
    let query = "DisplayName=CI+bot&UserName=ci";
    assert_eq!(canonical_query(query), "DisplayName=CI%20bot&UserName=ci");
    let req = SignedRequest {
        method: "POST",
        path: "/",
        query,
        headers: &headers,
        body: b"",
    };
    let expected = "POST
/
DisplayName=CI%20bot&UserName=ci
accept:application/json
host:127.0.0.1:19000
user-agent:AlibabaCloud (Linux; x86_64) Python/3.11.7 Core/0.4.3 TeaDSL/2
x-acs-action:CreateUser
x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
x-acs-credentials-provider:static_ak
x-acs-date:2024-01-01T00:00:00Z
x-acs-signature-nonce:0123456789abcdef0123456789abcdef
x-acs-version:2015-05-01

accept;host;user-agent;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-signature-nonce;x-acs-version
e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    assert_eq!(
        acs3_canonical_request(&req, &signed(SIGNED_STATIC_AK)).unwrap(),
        expected
    );
    check(
        &headers,
        query,
        SIGNED_STATIC_AK,
        "f288d84edfd94e020a28eb807b973bab2768e9cccd36c83d302dfc9e703fff8a",
        "8c10bb3dfd4df48238b0974e60e2a882cd7afdba86f48d8d264d2a57f0f7d732",
    );
}

#[test]
fn r2_ram_create_policy_with_a_json_document() {
    let canonical = "Description=d&PolicyDocument=%7B%22Version%22%3A%20%221%22%2C%20%22Statement%22%3A%20%5B%7B%22Effect%22%3A%20%22Allow%22%2C%20%22Action%22%3A%20%22fc%3AInvokeFunction%22%2C%20%22Resource%22%3A%20%22acs%3Afc%3A%2A%3A123%3Aservices%2Fs.prod%2Ffunctions%2F%2A%22%7D%5D%7D&PolicyName=p1&Tag=%5B%7B%22Key%22%3A%22k%22%2C%22Value%22%3A%22v%22%7D%5D";
    let wire = wire_query(canonical);
    assert!(wire.contains("%7B%22Version%22%3A+%221%22"), "{wire}");
    assert_eq!(canonical_query(&wire), canonical);
    // Node's encodeURIComponent leaves `*` raw and writes spaces as %20: same canonical form.
    let node_wire = canonical.replace("%2A", "*");
    assert_eq!(canonical_query(&node_wire), canonical);
    let headers = rpc_headers("2015-05-01", "CreatePolicy", &[]);
    check(
        &headers,
        &wire,
        SIGNED_STATIC_AK,
        "38bf576492706bb53cc8ab19eb6d4f88cd4b31dda9597bf790e4a6de76d4dc80",
        "d577b7651534e0c41cd8b086b839017b030dfb70c4f4e6203bad3ae48ad3e80d",
    );
}

#[test]
fn s1_sts_assume_role() {
    let canonical = "DurationSeconds=900&RoleArn=acs%3Aram%3A%3A1234567890123456%3Arole%2Fci-role&RoleSessionName=s1";
    let wire = wire_query(canonical);
    assert_eq!(canonical_query(&wire), canonical);
    let headers = rpc_headers("2015-04-01", "AssumeRole", &[]);
    check(
        &headers,
        &wire,
        SIGNED_STATIC_AK,
        "ba8fb405e8438648867fa7f118600cab3bc5ea0c7a3ef93a4ae0062d5c2eefaf",
        "5845e0dbc1cff600f7031b05b04cd8d2fdd02e2f5d7a5ea7f76091a02c6a6148",
    );
}

#[test]
fn s2_sts_get_caller_identity_with_a_security_token() {
    let mut headers = rpc_headers(
        "2015-04-01",
        "GetCallerIdentity",
        &[
            ("x-acs-accesskey-id", "testAccessKeyId"),
            ("x-acs-security-token", "TOKEN+/=abc"),
        ],
    );
    headers.insert(
        "x-acs-credentials-provider",
        HeaderValue::from_static("static_sts"),
    );
    let list = "accept;host;user-agent;x-acs-accesskey-id;x-acs-action;x-acs-content-sha256;x-acs-credentials-provider;x-acs-date;x-acs-security-token;x-acs-signature-nonce;x-acs-version";
    check(
        &headers,
        "",
        list,
        "16a2b2e1d77c7d187f61130342922af64bbbcf6051f8b6c506ca6b335c7ad91c",
        "fc7bec252a490d1b8af5c51966b45325d632294a5e9ed2ed083a66f0bc713bf5",
    );
    // The token is bound by the signature: another token under the same signature fails.
    let auth = Authorization::parse(&format!(
        "ACS3-HMAC-SHA256 Credential=testAccessKeyId,SignedHeaders={list},Signature=fc7bec252a490d1b8af5c51966b45325d632294a5e9ed2ed083a66f0bc713bf5"
    ))
    .unwrap();
    headers.insert(
        "x-acs-security-token",
        HeaderValue::from_static("TOKEN+/=abd"),
    );
    let req = SignedRequest {
        method: "POST",
        path: "/",
        query: "",
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        verify(&auth, SECRET, &req, now()),
        Err(SignError::SignatureMismatch)
    );
}

#[test]
fn f1_classic_fc_scheme_signs_the_security_token() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "date",
        HeaderValue::from_static("Mon, 01 Jan 2024 00:00:00 GMT"),
    );
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "x-fc-security-token",
        HeaderValue::from_static("CAIS+token/="),
    );
    let req = SignedRequest {
        method: "POST",
        path: "/2016-08-15/services/svc.prod/functions/f/invocations",
        query: "",
        headers: &headers,
        body: b"",
    };
    assert_eq!(
        fc_string_to_sign(&req),
        "POST\n\napplication/json\nMon, 01 Jan 2024 00:00:00 GMT\nx-fc-security-token:CAIS+token/=\n/2016-08-15/services/svc.prod/functions/f/invocations"
    );
    let auth = Authorization::parse("FC STS.tmpKeyId:Nr4b9ZiFcNZXyYySIOqfsKRPn0Sx+xetNXXcmpG+wmY=")
        .unwrap();
    assert_eq!(auth.access_key_id(), "STS.tmpKeyId");
    assert_eq!(verify(&auth, "tmpSecret", &req, now()), Ok(()));
    let mut other = headers.clone();
    other.insert(
        "x-fc-security-token",
        HeaderValue::from_static("CAIS+token/X"),
    );
    let tampered = SignedRequest {
        headers: &other,
        ..req
    };
    assert_eq!(
        verify(&auth, "tmpSecret", &tampered, now()),
        Err(SignError::SignatureMismatch)
    );
}
