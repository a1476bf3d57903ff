//! Both signing schemes on arbitrary requests: canonicalisation and verification (API and
//! HTTP-trigger rules) never panic, and whatever the client-side signers produce, the verifier
//! accepts.
#![no_main]

use std::time::{Duration, SystemTime};

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

use fcd_sign::{Authorization, SignedRequest};

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: Vec<(&'a str, &'a [u8])>,
    body: &'a [u8],
    secret: &'a str,
    authorization: &'a str,
    now_secs: u64,
}

fuzz_target!(|input: Input<'_>| {
    let Some(now) = SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(input.now_secs)) else {
        return;
    };
    let mut headers = HeaderMap::new();
    for (name, value) in &input.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    let req = SignedRequest {
        method: input.method,
        path: input.path,
        query: input.query,
        headers: &headers,
        body: input.body,
    };

    // Canonicalisation of whatever arrived.
    let _ = fcd_sign::canonical_query(input.query);
    let _ = fcd_sign::fc_string_to_sign(&req);
    let _ = fcd_sign::fc_string_to_sign_url_order(&req);
    let names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
    if let Ok(canonical) = fcd_sign::acs3_canonical_request(&req, &names) {
        let _ = fcd_sign::acs3_string_to_sign(&canonical);
    }
    if let Ok(auth) = Authorization::parse(input.authorization) {
        if let Authorization::Acs3 { signed_headers, .. } = &auth {
            let _ = fcd_sign::acs3_canonical_request(&req, signed_headers);
        }
        let _ = fcd_sign::verify(&auth, input.secret, &req, now);
        let _ = fcd_sign::verify_head_http_trigger(&auth, input.secret, &req, now);
    }

    // ACS3 round trip: a request the SDK-style signer signed verifies.
    let mut signed = headers.clone();
    if !signed.contains_key(http::header::HOST) {
        signed.insert(
            http::header::HOST,
            HeaderValue::from_static("fc.example.com"),
        );
    }
    let ok = fcd_sign::sign_acs3(
        "AK",
        input.secret,
        input.method,
        input.path,
        input.query,
        &mut signed,
        input.body,
        now,
        "nonce",
    );
    if ok.is_ok() {
        check_round_trip(
            &signed,
            input.secret,
            input.method,
            input.path,
            input.query,
            input.body,
            now,
        );
    }

    // FC round trip (the signer sets `date`; Content-MD5 would bind a body it never saw).
    let mut signed = headers.clone();
    for name in ["date", "x-fc-date", "content-md5"] {
        signed.remove(name);
    }
    let ok = fcd_sign::sign_fc(
        "AK",
        input.secret,
        input.method,
        input.path,
        input.query,
        &mut signed,
        now,
    );
    if ok.is_ok() {
        check_round_trip(
            &signed,
            input.secret,
            input.method,
            input.path,
            input.query,
            input.body,
            now,
        );
    }

    // HTTP-function round trip (the 2021-04-06 SDK's helper: query in URL order, any path).
    let mut signed = headers.clone();
    for name in ["date", "x-fc-date", "content-md5"] {
        signed.remove(name);
    }
    let ok = fcd_sign::sign_fc_http_trigger(
        "AK",
        input.secret,
        input.method,
        input.path,
        input.query,
        &mut signed,
        now,
    );
    if ok.is_ok() {
        let header = signed
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .expect("the signer sets a textual Authorization header");
        let auth = Authorization::parse(header).expect("the signer's Authorization header parses");
        let req = SignedRequest {
            method: input.method,
            path: input.path,
            query: input.query,
            headers: &signed,
            body: input.body,
        };
        if let Err(e) = fcd_sign::verify_head_http_trigger(&auth, input.secret, &req, now) {
            panic!("an HTTP-trigger request signed by fcd-sign does not verify: {e}");
        }
        // One more query parameter is one more signed line.
        let more = format!("{}&zz=1", input.query);
        let changed = SignedRequest {
            query: &more,
            ..req
        };
        assert!(fcd_sign::verify_head_http_trigger(&auth, input.secret, &changed, now).is_err());
    }
});

fn check_round_trip(
    headers: &HeaderMap,
    secret: &str,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
    now: SystemTime,
) {
    let header = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .expect("the signer sets a textual Authorization header");
    let auth = Authorization::parse(header).expect("the signer's Authorization header parses");
    assert_eq!(auth.access_key_id(), "AK");
    let req = SignedRequest {
        method,
        path,
        query,
        headers,
        body,
    };
    if let Err(e) = fcd_sign::verify(&auth, secret, &req, now) {
        panic!("a request signed by fcd-sign does not verify: {e}");
    }
}
