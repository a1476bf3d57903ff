//! Properties of both schemes over generated input (the `fuzz/` targets `sign_authorization`
//! and `sign_verify` explore the same ground without bounds): parsing never panics and
//! round-trips what it is given; canonicalisation is deterministic; whatever the signers sign
//! verifies, and a changed request does not.

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::*;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// Header names and values as they may arrive (names valid for `http`, values any bytes
/// `http` accepts, including non-UTF-8 ones).
fn header_map() -> impl Strategy<Value = HeaderMap> {
    let name = prop_oneof![
        Just("host".to_owned()),
        Just("content-type".to_owned()),
        Just("content-md5".to_owned()),
        Just("date".to_owned()),
        Just("x-fc-date".to_owned()),
        Just("x-acs-date".to_owned()),
        "x-fc-[a-z-]{1,8}",
        "x-acs-[a-z-]{1,8}",
        "[a-z][a-z0-9-]{0,10}",
    ];
    let value = prop::collection::vec(
        prop_oneof![Just(b' '), Just(b'\t'), 0x21u8..0x7f, 0x80u8..=0xff],
        0..20,
    );
    prop::collection::vec((name, value), 0..8).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (n, v) in pairs {
            if let (Ok(n), Ok(v)) = (
                HeaderName::from_bytes(n.as_bytes()),
                HeaderValue::from_bytes(&v),
            ) {
                map.append(n, v);
            }
        }
        map
    })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("GET".to_owned()),
        Just("POST".to_owned()),
        Just("PUT".to_owned()),
        Just("DELETE".to_owned()),
        "[A-Z]{1,7}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        "(/[a-zA-Z0-9._~%-]{0,12}){0,5}",
        Just("/2021-04-06/proxy/s.LATEST/f/".to_owned()),
        Just("/2016-08-15/proxy/s/f/a%20b".to_owned()),
        "\\PC{0,30}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(("[a-zA-Z0-9%+._~-]{0,6}", "[a-zA-Z0-9%+=._~ -]{0,8}"), 0..5)
            .prop_map(|pairs| pairs
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")),
        "\\PC{0,30}",
    ]
}

proptest! {
    #[test]
    fn parse_never_panics(s in "\\PC{0,200}") {
        let _ = Authorization::parse(&s);
    }

    #[test]
    fn parse_never_panics_on_scheme_shaped_input(
        scheme in prop_oneof![Just("ACS3-HMAC-SHA256"), Just("FC"), Just("acs")],
        parts in prop::collection::vec("[A-Za-z=,;: /+0-9a-f]{0,70}", 0..4),
    ) {
        let _ = Authorization::parse(&format!("{scheme} {}", parts.join(",")));
    }

    #[test]
    fn acs3_header_round_trips(
        id in "[A-Za-z0-9.]{1,30}",
        names in prop::collection::vec("[a-z][a-z0-9-]{0,15}", 1..8),
        signature in prop::collection::vec(any::<u8>(), 32),
        spaces in any::<bool>(),
    ) {
        let sep = if spaces { ", " } else { "," };
        let header = format!(
            "ACS3-HMAC-SHA256 Credential={id}{sep}SignedHeaders={}{sep}Signature={}",
            names.join(";"),
            hex::encode(&signature)
        );
        prop_assert_eq!(
            Authorization::parse(&header),
            Ok(Authorization::Acs3 { access_key_id: id, signed_headers: names, signature })
        );
    }

    #[test]
    fn fc_header_round_trips(
        id in "[A-Za-z0-9.]{1,30}",
        signature in prop::collection::vec(any::<u8>(), 1..40),
    ) {
        use base64::Engine as _;
        let header = format!("FC {id}:{}", base64::engine::general_purpose::STANDARD.encode(&signature));
        prop_assert_eq!(
            Authorization::parse(&header),
            Ok(Authorization::Fc { access_key_id: id, signature })
        );
    }

    #[test]
    fn canonical_query_ignores_parameter_order(
        pairs in prop::collection::vec(("[a-z]{1,4}", "[a-zA-Z0-9%+ ]{0,6}"), 0..6),
        seed in any::<u64>(),
    ) {
        let raw: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut shuffled = raw.clone();
        // A deterministic shuffle from the seed.
        let n = shuffled.len();
        for i in (1..n).rev() {
            let j = (seed.wrapping_mul(6364136223846793005).wrapping_add(i as u64) % (i as u64 + 1)) as usize;
            shuffled.swap(i, j);
        }
        prop_assert_eq!(canonical_query(&raw.join("&")), canonical_query(&shuffled.join("&")));
    }

    #[test]
    fn acs3_signed_requests_verify(
        method in method(),
        path in path(),
        query in query(),
        mut headers in header_map(),
        body in prop::collection::vec(any::<u8>(), 0..64),
        secret in "\\PC{0,20}",
        now in 0u64..253_402_300_799,
    ) {
        headers.insert(http::header::HOST, HeaderValue::from_static("fc.example.test"));
        sign_acs3("AK", &secret, &method, &path, &query, &mut headers, &body, at(now), "nonce")
            .expect("a request with a host is signable");
        let auth = Authorization::parse(headers[http::header::AUTHORIZATION].to_str().unwrap())
            .expect("the signer's header parses");
        let req = SignedRequest { method: &method, path: &path, query: &query, headers: &headers, body: &body };
        prop_assert_eq!(verify(&auth, &secret, &req, at(now)), Ok(()));
        // Another body, method or secret does not verify.
        let mut other_body = body.clone();
        other_body.push(0);
        let changed_body = verify(&auth, &secret, &SignedRequest { body: &other_body, ..req }, at(now));
        prop_assert!(changed_body.is_err());
        let other_method = format!("{method}X");
        let changed_method = verify(&auth, &secret, &SignedRequest { method: &other_method, ..req }, at(now));
        prop_assert!(changed_method.is_err());
        let other_secret = format!("{secret}x");
        prop_assert!(verify(&auth, &other_secret, &req, at(now)).is_err());
        // Nor too late.
        let late = now + MAX_CLOCK_SKEW.as_secs() + 1;
        prop_assert!(verify(&auth, &secret, &req, at(late)).is_err());
    }

    #[test]
    fn fc_signed_requests_verify(
        method in method(),
        path in path(),
        query in query(),
        mut headers in header_map(),
        secret in "\\PC{0,20}",
        now in 0u64..253_402_300_799,
    ) {
        for name in ["date", "x-fc-date", "content-md5"] {
            headers.remove(name);
        }
        sign_fc("AK", &secret, &method, &path, &query, &mut headers, at(now))
            .expect("signable");
        let auth = Authorization::parse(headers[http::header::AUTHORIZATION].to_str().unwrap())
            .expect("the signer's header parses");
        let req = SignedRequest { method: &method, path: &path, query: &query, headers: &headers, body: b"" };
        prop_assert_eq!(verify(&auth, &secret, &req, at(now)), Ok(()));
        let other_method = format!("{method}X");
        let changed_method = verify(&auth, &secret, &SignedRequest { method: &other_method, ..req }, at(now));
        prop_assert!(changed_method.is_err());
        let other_secret = format!("{secret}x");
        prop_assert!(verify(&auth, &other_secret, &req, at(now)).is_err());
    }

    /// A request to a function over HTTP, signed as the 2021-04-06 SDK's helper does (query in
    /// URL order) or, for a `/proxy/` URL, as the legacy SDKs do (query sorted), verifies under
    /// the HTTP-function rule whatever its path; one more query parameter, another method or
    /// another secret does not.
    #[test]
    fn http_trigger_signed_requests_verify(
        method in method(),
        path in prop_oneof![path(), path().prop_map(|p| format!("/2016-08-15/proxy/s.prod/f{p}"))],
        query in query(),
        mut headers in header_map(),
        secret in "\\PC{0,20}",
        now in 0u64..253_402_300_799,
        url_order in any::<bool>(),
    ) {
        for name in ["date", "x-fc-date", "content-md5"] {
            headers.remove(name);
        }
        let sorted = !url_order && fc::is_http_trigger(&percent_encoding::percent_decode_str(&path).decode_utf8_lossy());
        if sorted {
            sign_fc("AK", &secret, &method, &path, &query, &mut headers, at(now)).expect("signable");
        } else {
            sign_fc_http_trigger("AK", &secret, &method, &path, &query, &mut headers, at(now))
                .expect("signable");
        }
        let auth = Authorization::parse(headers[http::header::AUTHORIZATION].to_str().unwrap())
            .expect("the signer's header parses");
        let req = SignedRequest { method: &method, path: &path, query: &query, headers: &headers, body: b"" };
        prop_assert_eq!(verify_head_http_trigger(&auth, &secret, &req, at(now)), Ok(()));
        prop_assert_eq!(verify_body(&auth, &headers, b"any body: FC signs no body without Content-MD5"), Ok(()));
        let more = if query.is_empty() { "zz=1".to_owned() } else { format!("{query}&zz=1") };
        let changed_query = verify_head_http_trigger(&auth, &secret, &SignedRequest { query: &more, ..req }, at(now));
        prop_assert_eq!(changed_query, Err(SignError::SignatureMismatch));
        let other_method = format!("{method}X");
        let changed_method = verify_head_http_trigger(&auth, &secret, &SignedRequest { method: &other_method, ..req }, at(now));
        prop_assert!(changed_method.is_err());
        let other_secret = format!("{secret}x");
        prop_assert!(verify_head_http_trigger(&auth, &other_secret, &req, at(now)).is_err());
        let late = now + MAX_CLOCK_SKEW.as_secs() + 1;
        prop_assert!(verify_head_http_trigger(&auth, &secret, &req, at(late)).is_err());
    }

    #[test]
    fn verify_never_panics(
        header in "\\PC{0,120}",
        method in method(),
        path in path(),
        query in query(),
        headers in header_map(),
        body in prop::collection::vec(any::<u8>(), 0..16),
        now in any::<u64>(),
    ) {
        let req = SignedRequest { method: &method, path: &path, query: &query, headers: &headers, body: &body };
        let _ = fc_string_to_sign(&req);
        let _ = fc_string_to_sign_url_order(&req);
        let names: Vec<String> = headers.keys().map(|k| k.as_str().to_owned()).collect();
        let _ = acs3_canonical_request(&req, &names);
        if let (Ok(auth), Some(now)) = (
            Authorization::parse(&header),
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(now)),
        ) {
            let _ = verify(&auth, "secret", &req, now);
            let _ = verify_head_http_trigger(&auth, "secret", &req, now);
        }
    }
}
