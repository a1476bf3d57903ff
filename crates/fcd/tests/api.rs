//! Black-box tests of the API over HTTP: signatures, FC's error body, bad input.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::{KEY_ID, SECRET, TestServer};
use http::{HeaderMap, HeaderValue};

#[tokio::test]
async fn acs3_and_fc_signatures_are_verified() {
    let srv = TestServer::start();
    let ok = srv
        .call("GET", "/2021-04-06/services?limit=5", Vec::new())
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert!(ok.json()["services"].is_array());

    // The classic SDKs' FC scheme on the 2016-08-15 paths.
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_str(&srv.addr).unwrap());
    h.insert("content-type", HeaderValue::from_static("application/json"));
    fcd_sign::sign_fc(
        KEY_ID,
        SECRET,
        "GET",
        "/2016-08-15/services",
        "limit=5",
        &mut h,
        SystemTime::now(),
    )
    .unwrap();
    let classic = srv
        .raw("GET", "/2016-08-15/services?limit=5", h, Vec::new())
        .await;
    assert_eq!(classic.status, 200, "{:?}", classic.body);

    let cases: Vec<(&str, HeaderMap, Vec<u8>, u16, &str)> = vec![
        (
            "wrong secret",
            srv.acs3_headers(
                "GET",
                "/2021-04-06/services",
                b"",
                "nope",
                KEY_ID,
                SystemTime::now(),
            ),
            Vec::new(),
            403,
            "SignatureNotMatch",
        ),
        (
            "unknown key",
            srv.acs3_headers(
                "GET",
                "/2021-04-06/services",
                b"",
                SECRET,
                "LTAIunknown",
                SystemTime::now(),
            ),
            Vec::new(),
            403,
            "InvalidAccessKeyID",
        ),
        (
            "stale date",
            srv.acs3_headers(
                "GET",
                "/2021-04-06/services",
                b"",
                SECRET,
                KEY_ID,
                SystemTime::now() - Duration::from_secs(20 * 60),
            ),
            Vec::new(),
            403,
            "RequestTimeTooSkewed",
        ),
        (
            "tampered body",
            srv.acs3_headers(
                "POST",
                "/2021-04-06/services",
                br#"{"serviceName":"a"}"#,
                SECRET,
                KEY_ID,
                SystemTime::now(),
            ),
            br#"{"serviceName":"b"}"#.to_vec(),
            403,
            "SignatureNotMatch",
        ),
        (
            "unsigned",
            HeaderMap::new(),
            Vec::new(),
            403,
            "AccessDenied",
        ),
    ];
    for (name, headers, body, status, code) in cases {
        let method = if body.is_empty() { "GET" } else { "POST" };
        let r = srv.raw(method, "/2021-04-06/services", headers, body).await;
        assert_eq!(r.status, status, "{name}: {:?}", r.body);
        assert_eq!(r.error_code(), code, "{name}");
    }
    // Nothing from the tampered request was created.
    let get = srv.call("GET", "/2021-04-06/services/b", Vec::new()).await;
    assert_eq!(get.error_code(), "ServiceNotFound");
}

#[tokio::test]
async fn account_header_for_another_account_is_denied() {
    let srv = TestServer::start();
    let r = srv
        .call_with(
            "GET",
            "/2021-04-06/services",
            Vec::new(),
            &[("x-fc-account-id", "999")],
        )
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "AccessDenied");
    let mine = srv
        .call_with(
            "GET",
            "/2021-04-06/services",
            Vec::new(),
            &[("x-fc-account-id", common::ACCOUNT)],
        )
        .await;
    assert_eq!(mine.status, 200);
}

#[tokio::test]
async fn bad_input_gets_fc_errors_and_loses_nothing() {
    let srv = TestServer::start();
    let created = srv
        .call(
            "POST",
            "/2021-04-06/services",
            r#"{"serviceName":"keep","description":"d"}"#,
        )
        .await;
    assert_eq!(created.status, 200);
    let cases: &[(&str, &str, &str, u16, &str)] = &[
        (
            "POST",
            "/2021-04-06/services",
            "{not json",
            400,
            "InvalidArgument",
        ),
        (
            "POST",
            "/2021-04-06/services",
            r#"{"serviceName":5}"#,
            400,
            "InvalidArgument",
        ),
        (
            "POST",
            "/2021-04-06/services",
            r#"{"serviceName":"ok","internetAccess":"yes"}"#,
            400,
            "InvalidArgument",
        ),
        (
            "POST",
            "/2021-04-06/services",
            r#"{"serviceName":"1bad"}"#,
            400,
            "InvalidArgument",
        ),
        (
            "POST",
            "/2021-04-06/services",
            r#"{"serviceName":"keep"}"#,
            409,
            "ServiceAlreadyExists",
        ),
        (
            "PUT",
            "/2021-04-06/services/keep",
            r#"{"description":["x"]}"#,
            400,
            "InvalidArgument",
        ),
        (
            "POST",
            "/2021-04-06/services/keep/functions",
            r#"{"functionName":"f","runtime":"python3","handler":"i.h","memorySize":"big"}"#,
            400,
            "InvalidArgument",
        ),
        (
            "POST",
            "/2021-04-06/services/keep/functions",
            r#"{"functionName":"f","runtime":"python3","handler":"i.h","code":{"zipFile":"UEsDBA=="}}"#,
            400,
            "InvalidArgument",
        ),
        (
            "GET",
            "/2021-04-06/nothing/here",
            "",
            400,
            "PathNotSupported",
        ),
        ("PATCH", "/2021-04-06/services", "", 400, "PathNotSupported"),
        (
            "GET",
            "/2021-04-06/services?limit=abc",
            "",
            400,
            "InvalidArgument",
        ),
        (
            "GET",
            "/2021-04-06/services?limit=1000",
            "",
            400,
            "InvalidArgument",
        ),
        (
            "GET",
            "/2021-04-06/services/keep?qualifier=prod",
            "",
            404,
            "AliasNotFound",
        ),
        (
            "GET",
            "/2021-04-06/services/keep?qualifier=3",
            "",
            404,
            "VersionNotFound",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let r = srv.call(method, path, *body).await;
        assert_eq!(r.status, *status, "{method} {path} {body}: {:?}", r.body);
        assert_eq!(r.error_code(), *code, "{method} {path} {body}");
        let still = srv.call("GET", "/2021-04-06/services/keep", "").await;
        assert_eq!(
            still.status, 200,
            "server stopped serving after {method} {path}"
        );
        assert_eq!(still.json()["description"], "d");
    }
    assert_eq!(
        srv.call("GET", "/2021-04-06/services", "").await.json()["services"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn if_match_guards_updates() {
    let srv = TestServer::start();
    let created = srv
        .call("POST", "/2021-04-06/services", r#"{"serviceName":"s"}"#)
        .await;
    let etag = created
        .headers
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let stale = srv
        .call_with(
            "PUT",
            "/2021-04-06/services/s",
            r#"{"description":"x"}"#,
            &[("if-match", "other")],
        )
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.error_code(), "PreconditionFailed");
    let fresh = srv
        .call_with(
            "PUT",
            "/2021-04-06/services/s",
            r#"{"description":"x"}"#,
            &[("if-match", &etag)],
        )
        .await;
    assert_eq!(fresh.status, 200);
    assert_ne!(fresh.headers.get("etag").unwrap().to_str().unwrap(), etag);
}

#[tokio::test]
async fn generated_credentials_are_kept_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let run = || {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_fcd"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env_remove("FCD_ACCESS_KEY_ID")
            .env_remove("FCD_ACCESS_KEY_SECRET")
            .env_remove("FCD_ACCOUNT_ID")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !data.join("listen-addr").exists() {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = run();
    assert!(first.contains("AccessKeySecret:"), "{first}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("credentials.json"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let second = run();
    assert!(
        !second.contains("AccessKeySecret:"),
        "credentials are printed only once: {second}"
    );
}

#[tokio::test]
async fn oversized_code_package_is_refused() {
    let srv = TestServer::start();
    srv.call("POST", "/2021-04-06/services", r#"{"serviceName":"big"}"#)
        .await;
    // Just over the 100 MB inline zip limit; the content does not matter, the size does.
    let zip = "A".repeat((100 * 1024 * 1024 + 16) / 3 * 4);
    let body = format!(r#"{{"functionName":"f","runtime":"custom","code":{{"zipFile":"{zip}"}}}}"#);
    let r = srv
        .call("POST", "/2021-04-06/services/big/functions", body)
        .await;
    assert_eq!(
        r.status,
        400,
        "{:?}",
        String::from_utf8_lossy(&r.body[..r.body.len().min(300)])
    );
    let code = r.error_code();
    assert!(
        code == "InvalidArgument" || code == "EntityTooLarge",
        "{code}"
    );
    let list = srv
        .call("GET", "/2021-04-06/services/big/functions", "")
        .await;
    assert_eq!(list.json()["functions"].as_array().map(Vec::len), Some(0));
}

/// The FC scheme signs `Content-MD5` but not the body: a captured request replayed with another
/// body must be refused, and the genuine one accepted.
#[tokio::test]
async fn fc_signed_request_with_a_swapped_body_is_refused() {
    use base64::Engine as _;
    let srv = TestServer::start();
    let body = br#"{"serviceName":"md5-svc"}"#.to_vec();
    let digest = {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(&body))
    };
    let signed = |md5_header: String| {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_str(&srv.addr).unwrap());
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("content-md5", HeaderValue::from_str(&md5_header).unwrap());
        fcd_sign::sign_fc(
            KEY_ID,
            SECRET,
            "POST",
            "/2016-08-15/services",
            "",
            &mut h,
            SystemTime::now(),
        )
        .unwrap();
        h
    };
    // @alicloud/fc2 spells it base64(hex text).
    let h = signed(base64::engine::general_purpose::STANDARD.encode(digest.as_bytes()));
    let swapped = srv
        .raw(
            "POST",
            "/2016-08-15/services",
            h.clone(),
            br#"{"serviceName":"evil-svc"}"#.to_vec(),
        )
        .await;
    assert_eq!(swapped.status, 403, "{:?}", swapped.body);
    assert_eq!(swapped.error_code(), "SignatureNotMatch");
    let genuine = srv.raw("POST", "/2016-08-15/services", h, body).await;
    assert_eq!(genuine.status, 200, "{:?}", genuine.body);
}

/// Paging tokens are offsets fcd handed out; a crafted one is refused, never trusted into
/// arithmetic.
#[tokio::test]
async fn crafted_paging_tokens_are_refused() {
    let srv = TestServer::start();
    for token in ["18446744073709551615", "-1", "abc"] {
        let r = srv
            .call(
                "GET",
                &format!("/2021-04-06/stateful-async-invocation-functions?nextToken={token}"),
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, 400, "{token}: {:?}", r.body);
        assert_eq!(r.error_code(), "InvalidArgument", "{token}");
    }
    let r = srv
        .call(
            "GET",
            "/2021-04-06/stateful-async-invocation-functions?nextToken=4294967295&limit=100",
            Vec::new(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}
