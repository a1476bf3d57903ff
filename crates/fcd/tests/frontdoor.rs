//! Black-box tests of the front door against the real binary: replayed and tampered requests,
//! oversized heads and paths, slow clients, the connection cap, client numbers that would
//! overflow, and a burst of 10,000 random malformed requests.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant, SystemTime};

use common::{KEY_ID, SECRET, TestServer, zip_b64};
use http::{HeaderMap, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: only there to turn a hang into a failure.
const HANG: Duration = Duration::from_secs(30);

/// ACS3 headers as the SDKs sign them, with a nonce of the caller's choosing.
fn acs3(
    srv: &TestServer,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    secret: &str,
    nonce: &str,
) -> HeaderMap {
    let (p, q) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_str(&srv.addr).unwrap());
    h.insert("x-acs-version", HeaderValue::from_static("2021-04-06"));
    h.insert("accept", HeaderValue::from_static("application/json"));
    if !body.is_empty() {
        h.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    fcd_sign::sign_acs3(
        KEY_ID,
        secret,
        method,
        p,
        q,
        &mut h,
        body,
        SystemTime::now(),
        nonce,
    )
    .unwrap();
    h
}

fn fresh_nonce() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

#[tokio::test]
async fn a_replayed_acs3_request_is_refused() {
    let srv = TestServer::start();
    let body = br#"{"serviceName":"replayed"}"#.to_vec();
    let nonce = fresh_nonce();
    let h = acs3(&srv, "POST", "/2021-04-06/services", &body, SECRET, &nonce);
    let first = srv
        .raw("POST", "/2021-04-06/services", h.clone(), body.clone())
        .await;
    assert_eq!(first.status, 200, "{:?}", first.body);

    // Byte for byte the same request again.
    let again = srv
        .raw("POST", "/2021-04-06/services", h.clone(), body.clone())
        .await;
    assert_eq!(again.status, 400, "{:?}", again.body);
    assert_eq!(again.error_code(), "SignatureNonceUsed");
    assert_eq!(
        again.json()["ErrorMessage"],
        "The request signature nonce has been used."
    );
    // A read is refused the same way: the nonce is single-use whatever the operation.
    let h = acs3(
        &srv,
        "GET",
        "/2021-04-06/services",
        b"",
        SECRET,
        &fresh_nonce(),
    );
    let r = srv
        .raw("GET", "/2021-04-06/services", h.clone(), Vec::new())
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = srv.raw("GET", "/2021-04-06/services", h, Vec::new()).await;
    assert_eq!(r.error_code(), "SignatureNonceUsed");

    // A nonce is recorded only once the signature verified: a forger who guesses (or sees) a
    // client's next nonce cannot burn it.
    let nonce = fresh_nonce();
    let forged = acs3(&srv, "GET", "/2021-04-06/services", b"", "wrong", &nonce);
    let r = srv
        .raw("GET", "/2021-04-06/services", forged, Vec::new())
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let genuine = acs3(&srv, "GET", "/2021-04-06/services", b"", SECRET, &nonce);
    let r = srv
        .raw("GET", "/2021-04-06/services", genuine, Vec::new())
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // A request whose nonce is not signed could be replayed with another: refused, though its
    // signature over the other headers is genuine.
    let mut h = acs3(
        &srv,
        "GET",
        "/2021-04-06/services",
        b"",
        SECRET,
        &fresh_nonce(),
    );
    let signed: Vec<String> = [
        "accept",
        "host",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-version",
    ]
    .map(String::from)
    .to_vec();
    let canonical = fcd_sign::acs3_canonical_request(
        &fcd_sign::SignedRequest {
            method: "GET",
            path: "/2021-04-06/services",
            query: "",
            headers: &h,
            body: b"",
        },
        &signed,
    )
    .unwrap();
    let signature = {
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(fcd_sign::acs3_string_to_sign(&canonical).as_bytes());
        hex::encode(mac.finalize().into_bytes())
    };
    h.insert(
        "authorization",
        HeaderValue::from_str(&format!(
            "ACS3-HMAC-SHA256 Credential={KEY_ID},SignedHeaders={},Signature={signature}",
            signed.join(";")
        ))
        .unwrap(),
    );
    let r = srv.raw("GET", "/2021-04-06/services", h, Vec::new()).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    let message = r.json()["ErrorMessage"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("x-acs-signature-nonce"), "{message}");
}

/// A request naming a real key but signed with the wrong secret is refused from its head: the
/// server never waits for (or buffers) the 100 MB body it announces.
#[tokio::test]
async fn a_forged_request_is_refused_before_its_body_is_read() {
    let srv = TestServer::start();
    let body = vec![b'x'; 100 * 1024 * 1024];
    let h = acs3(
        &srv,
        "POST",
        "/2021-04-06/services",
        &body,
        "forged",
        &fresh_nonce(),
    );
    let mut head = format!(
        "POST /2021-04-06/services HTTP/1.1\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in &h {
        head.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // Not a byte of the body is sent.
    let (status, reply) = tokio::time::timeout(HANG, read_reply(&mut s, false))
        .await
        .expect("the server waited for the body of a forged request")
        .unwrap()
        .expect("closed without an answer");
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&reply));
    let v: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(v["ErrorCode"], "SignatureNotMatch", "{v}");
}

/// The FC scheme signs `Content-MD5`, not the body: a captured request with another body is
/// refused. It has no nonce, so the genuine request replayed within the Date window reaches the
/// handler again (here: the service exists by then) — the documented limit of that scheme.
#[tokio::test]
async fn an_fc_signed_request_with_a_swapped_body_is_refused() {
    let srv = TestServer::start();
    let body = br#"{"serviceName":"fc-md5"}"#.to_vec();
    let digest = {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(&body))
    };
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_str(&srv.addr).unwrap());
    h.insert("content-type", HeaderValue::from_static("application/json"));
    // aliyun-fc2 spells Content-MD5 as the hex digest.
    h.insert("content-md5", HeaderValue::from_str(&digest).unwrap());
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
    let swapped = srv
        .raw(
            "POST",
            "/2016-08-15/services",
            h.clone(),
            br#"{"serviceName":"fc-evil"}"#.to_vec(),
        )
        .await;
    assert_eq!(swapped.status, 403, "{:?}", swapped.body);
    assert_eq!(swapped.error_code(), "SignatureNotMatch");
    let genuine = srv
        .raw("POST", "/2016-08-15/services", h.clone(), body.clone())
        .await;
    assert_eq!(genuine.status, 200, "{:?}", genuine.body);
    let replayed = srv.raw("POST", "/2016-08-15/services", h, body).await;
    assert_eq!(replayed.status, 409, "{:?}", replayed.body);
    let r = srv.call("GET", "/2021-04-06/services/fc-evil", "").await;
    assert_eq!(r.status, 404, "the swapped body never ran");
}

/// Writes `request` on a fresh connection and returns the status of the answer, or `None` if
/// the server closed (or reset) the connection without one.
async fn status_of_raw(addr: &str, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it has read everything: a failed write is fine.
    let _ = s.write_all(request).await;
    tokio::time::timeout(HANG, read_reply(&mut s, false))
        .await
        .expect("the server neither answered nor closed")
        .ok()
        .flatten()
        .map(|(status, _)| status)
}

#[tokio::test]
async fn oversized_heads_and_paths_are_refused() {
    let srv = TestServer::start();
    // A 64 KB header: refused by hyper (431) or the connection dropped.
    let big = format!(
        "GET /2021-04-06/services HTTP/1.1\r\nHost: {}\r\nX-Big: {}\r\n\r\n",
        srv.addr,
        "a".repeat(64 * 1024)
    );
    let status = status_of_raw(&srv.addr, big.as_bytes()).await;
    assert!(
        status.is_none_or(|s| (400..500).contains(&s)),
        "64 KB header: {status:?}"
    );

    // 20 KB of headers pass hyper but not the auth layer: FC's error body.
    let mut h = HeaderMap::new();
    h.insert(
        "x-big",
        HeaderValue::from_str(&"b".repeat(20 * 1024)).unwrap(),
    );
    let r = srv.raw("GET", "/2021-04-06/services", h, Vec::new()).await;
    assert_eq!(r.status, 431, "{:?}", r.body);
    assert_eq!(r.error_code(), "RequestHeaderTooLarge");

    // Too many headers.
    let mut h = HeaderMap::new();
    for i in 0..80 {
        h.insert(
            http::HeaderName::from_bytes(format!("x-h{i}").as_bytes()).unwrap(),
            HeaderValue::from_static("v"),
        );
    }
    let r = srv.raw("GET", "/2021-04-06/services", h, Vec::new()).await;
    assert_eq!(r.status, 431, "{:?}", r.body);
    assert_eq!(r.error_code(), "RequestHeaderTooLarge");

    // An over-long path.
    let path = format!("/2021-04-06/services/{}", "p".repeat(5000));
    let r = srv.call("GET", &path, "").await;
    assert_eq!(r.status, 414, "{:?}", r.body);
    assert_eq!(r.error_code(), "PathTooLong");

    // But a 32 KiB query (RAM and STS put policy documents there) is served, signed.
    let q = format!("/2021-04-06/services?policy={}", "q".repeat(32 * 1024));
    let r = srv.call("GET", &q, "").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

#[tokio::test]
async fn slow_clients_are_cut_off() {
    let srv = TestServer::start_with(&[
        "--header-read-timeout-secs",
        "1",
        "--body-read-timeout-secs",
        "1",
    ]);
    // Slowloris: a head that never ends, one byte at a time.
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    s.write_all(b"GET /2021-04-06/services HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        assert!(
            start.elapsed() < HANG,
            "a client dribbling its headers is still connected after {HANG:?}"
        );
        if s.write_all(b"a").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(_)) | Err(_) => {}
        }
    }

    // A body that stops arriving: 408 with FC's error body, from a signed request (only those
    // get their bodies read).
    let body = format!(
        r#"{{"serviceName":"slow","description":"{}"}}"#,
        "d".repeat(100)
    );
    let h = acs3(
        &srv,
        "POST",
        "/2021-04-06/services",
        body.as_bytes(),
        SECRET,
        &fresh_nonce(),
    );
    let mut head = format!(
        "POST /2021-04-06/services HTTP/1.1\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (k, v) in &h {
        head.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body.as_bytes()[..20]).await.unwrap();
    let (status, body) = tokio::time::timeout(HANG, read_reply(&mut s, false))
        .await
        .expect("a stalled body was never answered")
        .unwrap()
        .expect("the server closed without answering");
    assert_eq!(status, 408);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["ErrorCode"], "RequestTimeout", "{v}");

    // The server still serves.
    let r = srv.call("GET", "/2021-04-06/services", "").await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn over_the_connection_cap_a_client_gets_503_and_the_server_recovers() {
    // A long header timeout, so the idle connections stay for the whole test.
    let srv = TestServer::start_with(&[
        "--max-connections",
        "4",
        "--header-read-timeout-secs",
        "600",
    ]);
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(&srv.addr).await.unwrap());
    }
    let request = b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n";
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let (status, body) = tokio::time::timeout(HANG, read_reply(&mut s, false))
        .await
        .expect("the fifth connection was neither answered nor closed")
        .unwrap()
        .expect("the fifth connection was closed without the 503");
    assert_eq!(status, 503);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["ErrorCode"], "ResourceThrottled", "{v}");
    assert_eq!(v["ErrorCode"], v["Code"]);
    assert!(
        v["RequestId"].as_str().is_some_and(|r| !r.is_empty()),
        "{v}"
    );

    // The held connections still work.
    let (status, _) = {
        let c = &mut held[0];
        c.write_all(request).await.unwrap();
        read_reply(c, false).await.unwrap().unwrap()
    };
    assert_eq!(status, 403, "an unsigned /status");

    drop(held);
    let deadline = Instant::now() + HANG;
    loop {
        let status = status_of_raw(&srv.addr, request).await;
        if status == Some(403) {
            break;
        }
        assert!(
            status == Some(503) && Instant::now() < deadline,
            "after the held connections closed: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = srv.call("GET", "/2021-04-06/services", "").await;
    assert_eq!(r.status, 200);
}

/// On SIGTERM the listener closes at once, and a request in flight still completes.
#[tokio::test]
async fn shutdown_stops_accepting_and_finishes_the_request_in_flight() {
    let mut srv = TestServer::start();
    let body = br#"{"serviceName":"drained"}"#;
    let h = acs3(
        &srv,
        "POST",
        "/2021-04-06/services",
        body,
        SECRET,
        &fresh_nonce(),
    );
    // `Expect: 100-continue` makes the server say when the request is being handled: hyper
    // sends the 100 once the handler starts reading the body.
    let mut head = format!(
        "POST /2021-04-06/services HTTP/1.1\r\ncontent-length: {}\r\nexpect: 100-continue\r\n",
        body.len()
    );
    for (k, v) in &h {
        head.push_str(&format!("{}: {}\r\n", k, v.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(HANG, s.read(&mut buf))
            .await
            .expect("no 100 Continue")
            .unwrap();
        assert!(n > 0, "closed before 100 Continue");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&got)
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(srv.pid() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + HANG;
    while TcpStream::connect(&srv.addr).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "still accepting connections after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    s.write_all(body).await.unwrap();
    let (status, reply) = tokio::time::timeout(HANG, read_reply(&mut s, false))
        .await
        .expect("the request in flight was not answered")
        .unwrap()
        .expect("the request in flight was dropped at shutdown");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&reply));
    assert!(srv.terminate().success());
}

#[tokio::test]
async fn client_numbers_that_would_overflow_are_refused() {
    let srv = TestServer::start();
    let r = srv
        .call("POST", "/2021-04-06/services", r#"{"serviceName":"nums"}"#)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let f = serde_json::json!({
        "functionName": "f", "runtime": "custom",
        "code": {"zipFile": zip_b64(&[("bootstrap", "#!/bin/sh\n", true)])},
    });
    let r = srv
        .call("POST", "/2021-04-06/services/nums/functions", f.to_string())
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for path in [
        "/2021-04-06/services?limit=99999999999",
        "/2021-04-06/services?limit=-1",
        "/2021-04-06/services/nums/versions?nextToken=18446744073709551615",
        "/2021-04-06/services/nums/versions?startKey=9223372036854775808",
        "/2021-04-06/services/nums/functions/f/stateful-async-invocations?startedTimeBegin=18446744073709551615",
        "/2021-04-06/services/nums/functions/f/stateful-async-invocations?startedTimeEnd=-5",
        "/2021-04-06/stateful-async-invocation-functions?nextToken=18446744073709551615",
    ] {
        let r = srv.call("GET", path, "").await;
        assert_eq!(r.status, 400, "{path}: {:?}", r.body);
        assert_eq!(r.error_code(), "InvalidArgument", "{path}");
    }
    // The largest id the store holds is a valid (if absent) bound.
    let r = srv
        .call(
            "GET",
            "/2021-04-06/services/nums/versions?nextToken=9223372036854775807",
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

// ------------------------------------------------------------------------------------------
// Random malformed requests
// ------------------------------------------------------------------------------------------

/// Reads one response (skipping 1xx). `Ok(None)`: the connection ended before any byte of it.
async fn read_reply(
    s: &mut TcpStream,
    head_request: bool,
) -> std::io::Result<Option<(u16, Vec<u8>)>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                if buf.is_empty() {
                    return Ok(None);
                }
                return Err(std::io::Error::other(format!(
                    "the connection ended inside a response head: {:?}",
                    String::from_utf8_lossy(&buf)
                )));
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not a response: {head:?}")))?;
        let rest = buf.split_off(end);
        buf = rest;
        if (100..200).contains(&status) {
            continue;
        }
        let lower = head.to_ascii_lowercase();
        let len: usize = lower
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        assert!(
            !lower.contains("transfer-encoding: chunked"),
            "fcd's answers have a length: {head}"
        );
        let len = if head_request { 0 } else { len };
        while buf.len() < len {
            let n = s.read(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::Error::other("the connection ended inside a body"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.truncate(len);
        return Ok(Some((status, buf)));
    }
}

/// xorshift64*: reproducible from the seed printed by the test.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const PATHS: &[&str] = &[
    "/",
    "/status",
    "/metrics",
    "/2021-04-06/services",
    "/2021-04-06/services/keep",
    "/2021-04-06/services/keep/functions",
    "/2021-04-06/services/keep/functions/f",
    "/2021-04-06/services/keep/functions/f/invocations",
    "/2021-04-06/services/keep/functions/f/code",
    "/2021-04-06/services/keep/versions",
    "/2021-04-06/services/keep/aliases/prod",
    "/2016-08-15/services/keep.prod/functions/f/invocations",
    "/2016-08-15/proxy/keep/f/x",
    "/code-packages/0123abcd.zip",
    "/2021-04-06/services/%ff%fe%00/functions",
    "/2021-04-06/services/..%2f..%2fetc%2fpasswd",
    "*",
];

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT", "FOO",
];

const QUERIES: &[&str] = &[
    "",
    "?limit=5",
    "?limit=99999999999999999999999",
    "?limit=-3&nextToken=%ff",
    "?nextToken=18446744073709551615&startKey=x",
    "?qualifier=LATEST&qualifier=prod",
    "?a=%zz&&=&b",
    "?expires=99999999999999999999&signature=zz",
    "?%c3%28=%e2%82",
    "?prefix=",
];

/// Headers that get the body read (a known key) or exercise the parsers, never a valid
/// signature.
fn random_auth(rng: &mut Rng, srv: &TestServer) -> Option<String> {
    let sig64: String = (0..64).map(|_| *rng.pick(&['a', 'f', '0', '9'])).collect();
    Some(match rng.below(9) {
        0 => return None,
        1 => format!(
            "ACS3-HMAC-SHA256 Credential={KEY_ID},SignedHeaders=host;x-acs-date;x-acs-content-sha256;x-acs-signature-nonce,Signature={sig64}"
        ),
        2 => format!("ACS3-HMAC-SHA256 Credential={KEY_ID},SignedHeaders=,Signature=zz"),
        3 => format!("FC {KEY_ID}:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
        4 => format!("FC {KEY_ID}:!!notbase64"),
        5 => "FC unknownKey:AAAA".into(),
        6 => "Bearer abc.def.ghi".into(),
        7 => "ACS3-HMAC-SM3 Credential=x,SignedHeaders=host,Signature=00".into(),
        _ => {
            // A genuine signature, then the request changes under it.
            let h = acs3(
                srv,
                "GET",
                "/2021-04-06/services/keep",
                b"",
                SECRET,
                &fresh_nonce(),
            );
            return h
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
        }
    })
}

fn random_header(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    let names: &[&[u8]] = &[
        b"x-acs-date",
        b"x-acs-content-sha256",
        b"x-acs-signature-nonce",
        b"x-fc-account-id",
        b"x-fc-invocation-type",
        b"x-fc-log-type",
        b"x-fc-stateful-async-invocation-id",
        b"date",
        b"content-type",
        b"content-md5",
        b"x-random",
        b"expect",
        b"upgrade",
        b"if-match",
    ];
    let name = rng.pick(names).to_vec();
    let value = match rng.below(7) {
        0 => Vec::new(),
        1 => b"2024-01-01T00:00:00Z".to_vec(),
        2 => b"Mon, 01 Jan 2024 00:00:00 GMT".to_vec(),
        3 => (0..rng.below(40))
            .map(|_| 0x80 + (rng.next() % 0x80) as u8)
            .collect(),
        4 => b"100-continue".to_vec(),
        5 => "9".repeat(rng.below(30) + 1).into_bytes(),
        _ => (0..rng.below(60))
            .map(|_| 0x20 + (rng.next() % 0x5f) as u8)
            .collect(),
    };
    (name, value)
}

/// One case: bytes to send, and whether they form complete requests (the connection may be
/// kept) or break the framing (sent on a connection of their own, closed for writing after).
struct Case {
    bytes: Vec<u8>,
    framed: bool,
    head: bool,
}

fn random_case(rng: &mut Rng, srv: &TestServer) -> Case {
    let method = *rng.pick(METHODS);
    let mut path = format!("{}{}", rng.pick(PATHS), rng.pick(QUERIES));
    if rng.chance(5) {
        path = format!("/{}", "x".repeat(4097 + rng.below(3000)));
    }
    let body: Vec<u8> = match rng.below(4) {
        0 => Vec::new(),
        1 => br#"{"serviceName":"fuzzed","description":"x"}"#.to_vec(),
        2 => {
            let n = rng.below(3000);
            rng.bytes(n)
        }
        _ => b"{\"functionName\": \"\xff\xfe\", \"code\": {\"zipFile\": \"!!!\"}}".to_vec(),
    };
    let mut head = Vec::new();
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(path.as_bytes());
    head.extend_from_slice(if rng.chance(5) {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    head.extend_from_slice(format!("host: {}\r\n", srv.addr).as_bytes());
    if let Some(a) = random_auth(rng, srv) {
        head.extend_from_slice(format!("authorization: {a}\r\n").as_bytes());
    }
    for _ in 0..rng.below(6) {
        let (k, v) = random_header(rng);
        head.extend_from_slice(&k);
        head.extend_from_slice(b": ");
        head.extend_from_slice(&v);
        head.extend_from_slice(b"\r\n");
    }
    let head_request = method == "HEAD";
    match rng.below(10) {
        // Complete requests with a correct length or chunked framing.
        0..=4 => {
            head.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            head.extend_from_slice(&body);
            Case {
                bytes: head,
                framed: true,
                head: head_request,
            }
        }
        5 => {
            head.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            for piece in body.chunks(700) {
                head.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                head.extend_from_slice(piece);
                head.extend_from_slice(b"\r\n");
            }
            head.extend_from_slice(b"0\r\n\r\n");
            Case {
                bytes: head,
                framed: true,
                head: head_request,
            }
        }
        // Everything below breaks the framing.
        6 => {
            // Bad chunked encoding.
            head.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            let bad: &[&[u8]] = &[
                b"zz\r\nabc\r\n0\r\n\r\n",
                b"ffffffffffffffffffff\r\nabc",
                b"5\r\nabc\r\n0\r\n\r\n",
                b"3;ext=\xff\r\nabc\r\n",
                b"-1\r\n",
                b"3\r\nabcXX0\r\n\r\n",
            ];
            let piece: &&[u8] = rng.pick(bad);
            head.extend_from_slice(piece);
            Case {
                bytes: head,
                framed: false,
                head: head_request,
            }
        }
        7 => {
            // A length that lies, or cannot be parsed, or conflicts.
            let lies: &[&str] = &[
                "content-length: 99999999999999999999\r\n",
                "content-length: 1000000000000000\r\n",
                "content-length: -5\r\n",
                "content-length: 5\r\ncontent-length: 6\r\n",
                "content-length: 10\r\ntransfer-encoding: chunked\r\n",
                "content-length: 4000\r\n",
            ];
            head.extend_from_slice(rng.pick(lies).as_bytes());
            head.extend_from_slice(b"\r\n");
            head.extend_from_slice(&body);
            Case {
                bytes: head,
                framed: false,
                head: head_request,
            }
        }
        8 => {
            // A truncated request.
            head.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            head.extend_from_slice(&body);
            let cut = rng.below(head.len());
            head.truncate(cut);
            Case {
                bytes: head,
                framed: false,
                head: head_request,
            }
        }
        _ => {
            // Garbage: random bytes, or a request line of them.
            let n = rng.below(2000) + 1;
            let mut g = rng.bytes(n);
            if rng.chance(50) {
                let mut line = b"GET /\xff\xfe\x00 HTTP/1.1\r\n".to_vec();
                line.append(&mut g);
                g = line;
            }
            Case {
                bytes: g,
                framed: false,
                head: false,
            }
        }
    }
}

/// What a worker saw: answers by status, and connections dropped without an answer.
#[derive(Default)]
struct Seen {
    statuses: std::collections::BTreeMap<u16, u64>,
    dropped: u64,
}

/// Every status seen must be a 4xx.
fn check(status: u16, case: &Case, seen: &mut Seen) {
    assert!(
        (400..500).contains(&status),
        "got {status} for {:?}",
        String::from_utf8_lossy(&case.bytes[..case.bytes.len().min(400)])
    );
    *seen.statuses.entry(status).or_default() += 1;
}

async fn fuzz_worker(srv: &TestServer, seed: u64, cases: usize) -> Seen {
    let mut rng = Rng(seed);
    let mut seen = Seen::default();
    let mut conn: Option<TcpStream> = None;
    for _ in 0..cases {
        let case = random_case(&mut rng, srv);
        if case.framed {
            // On the kept connection; if the server had closed it, once more on a new one.
            let mut answered = false;
            for attempt in 0..2 {
                let reused = conn.is_some();
                let mut s = match conn.take() {
                    Some(s) => s,
                    None => TcpStream::connect(&srv.addr).await.unwrap(),
                };
                let _ = s.write_all(&case.bytes).await;
                match tokio::time::timeout(HANG, read_reply(&mut s, case.head))
                    .await
                    .expect("the server neither answered nor closed")
                {
                    Ok(Some((status, _))) => {
                        check(status, &case, &mut seen);
                        conn = Some(s);
                        answered = true;
                        break;
                    }
                    Ok(None) | Err(_) if reused && attempt == 0 => continue,
                    Ok(None) | Err(_) => break,
                }
            }
            if !answered {
                seen.dropped += 1;
            }
        } else {
            let mut s = TcpStream::connect(&srv.addr).await.unwrap();
            let _ = s.write_all(&case.bytes).await;
            let _ = s.shutdown().await;
            let mut statuses = Vec::new();
            while let Ok(Some((status, _))) =
                tokio::time::timeout(HANG, read_reply(&mut s, case.head))
                    .await
                    .expect("the server neither answered nor closed")
            {
                statuses.push(status);
            }
            if statuses.is_empty() {
                seen.dropped += 1;
            }
            for status in statuses {
                check(status, &case, &mut seen);
            }
        }
    }
    seen
}

#[tokio::test]
async fn ten_thousand_malformed_requests_get_4xx_or_are_dropped() {
    let srv = std::sync::Arc::new(TestServer::start());
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services",
            r#"{"serviceName":"keep","description":"kept"}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let f = serde_json::json!({
        "functionName": "f", "runtime": "custom",
        "code": {"zipFile": zip_b64(&[("bootstrap", "#!/bin/sh\n", true)])},
    });
    let r = srv
        .call("POST", "/2021-04-06/services/keep/functions", f.to_string())
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let service_before = srv
        .call("GET", "/2021-04-06/services/keep", "")
        .await
        .json();
    let function_before = srv
        .call("GET", "/2021-04-06/services/keep/functions/f", "")
        .await
        .json();

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("fuzz seed: {seed:#x} (workers use seed + i)");
    let workers = 4u64;
    let per_worker = 2500;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..workers {
        let srv = srv.clone();
        tasks.push(tokio::spawn(async move {
            fuzz_worker(&srv, seed.wrapping_add(w), per_worker).await
        }));
    }
    let mut totals = Seen::default();
    for t in tasks {
        let seen = t.await.unwrap();
        for (status, n) in seen.statuses {
            *totals.statuses.entry(status).or_default() += n;
        }
        totals.dropped += seen.dropped;
    }
    let answered: u64 = totals.statuses.values().sum();
    eprintln!(
        "{} cases in {:?}: {answered} answers, all 4xx ({:?}), {} dropped without an answer",
        workers as usize * per_worker,
        started.elapsed(),
        totals.statuses,
        totals.dropped
    );
    assert!(answered > 1000, "most malformed requests get an answer");

    // Still serving, and nothing was changed by the noise.
    let r = srv.call("GET", "/2021-04-06/services", "").await;
    assert_eq!(r.status, 200);
    let listed = r.json();
    let names: Vec<&str> = listed["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["serviceName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["keep"], "{listed}");
    assert_eq!(
        srv.call("GET", "/2021-04-06/services/keep", "")
            .await
            .json(),
        service_before
    );
    assert_eq!(
        srv.call("GET", "/2021-04-06/services/keep/functions/f", "")
            .await
            .json(),
        function_before
    );
    let log = srv.log();
    assert!(!log.contains("panicked"), "{log}");
}
