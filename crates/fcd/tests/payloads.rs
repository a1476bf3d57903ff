//! Black-box tests of large invocation bodies against the real binary: streamed to the
//! instance byte-exact (with and without a declared length), and refused — without the
//! function ever getting a whole request — when too large or not the body the client signed.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::{KEY_ID, SECRET, TestServer, invoke_path, zip_b64};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Generous: only there to turn a hang into a failure.
const HANG: Duration = Duration::from_secs(120);

const BOOTSTRAP: &str = "#!/bin/sh\nexec python3 server.py\n";

/// Echoes every body it receives whole (sized or chunked) and counts them; a body of `count?`
/// is answered with that count instead.
const SERVER: &str = r#"
import os, socket
from http.server import BaseHTTPRequestHandler, HTTPServer

COMPLETE = 0

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def body(self):
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("content-length", 0))
        data = self.rfile.read(n)
        if len(data) != n:
            raise ConnectionError("short body")
        return data
    def do_POST(self):
        global COMPLETE
        data = self.body()
        if data == b"count?":
            data = str(COMPLETE).encode()
        else:
            COMPLETE += 1
        self.send_response(200)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *a): pass

class S(HTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()

S(("0.0.0.0", int(os.environ.get("FC_SERVER_PORT", "9000"))), H).serve_forever()
"#;

async fn deploy(srv: &TestServer, service: &str) {
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services",
            format!(r#"{{"serviceName":"{service}"}}"#),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let body = serde_json::json!({
        "functionName": "echo",
        "runtime": "custom",
        "timeout": 60,
        "memorySize": 512,
        "code": {"zipFile": zip_b64(&[("bootstrap", BOOTSTRAP, true), ("server.py", SERVER, false)])},
    });
    let r = srv
        .call(
            "POST",
            &format!("/2021-04-06/services/{service}/functions"),
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// How many whole bodies the function has received, and which instance said so.
async fn completed(srv: &TestServer, service: &str) -> (String, String) {
    let r = srv
        .call("POST", &invoke_path(service, "echo"), "count?")
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let instance = r.header("x-fc-instance-id");
    (String::from_utf8(r.body.to_vec()).unwrap(), instance)
}

/// Sends a signed InvokeFunction whose body goes out chunked (no Content-Length), signed for
/// `signed_body` but carrying `sent_body`, and returns the status, headers and body of the
/// answer.
async fn invoke_chunked(
    srv: &TestServer,
    service: &str,
    signed_body: &[u8],
    sent_body: &[u8],
) -> (u16, String, Vec<u8>) {
    let path = invoke_path(service, "echo");
    let h = srv.acs3_headers(
        "POST",
        &path,
        signed_body,
        SECRET,
        KEY_ID,
        SystemTime::now(),
    );
    let mut head = format!("POST {path} HTTP/1.1\r\ntransfer-encoding: chunked\r\n");
    for (k, v) in &h {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    head.push_str("\r\n");
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    let writer = async {
        s.write_all(head.as_bytes()).await?;
        for piece in sent_body.chunks(300_000) {
            s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await?;
            s.write_all(piece).await?;
            s.write_all(b"\r\n").await?;
        }
        s.write_all(b"0\r\n\r\n").await?;
        std::io::Result::Ok(s)
    };
    let mut s = tokio::time::timeout(HANG, writer).await.unwrap().unwrap();
    let mut buf = Vec::new();
    let read = async {
        loop {
            let mut chunk = vec![0u8; 1 << 16];
            let n = s.read(&mut chunk).await.unwrap();
            assert!(
                n > 0,
                "closed before a whole answer: {:?}",
                String::from_utf8_lossy(&buf)
            );
            buf.extend_from_slice(&chunk[..n]);
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap();
            if buf.len() >= end + 4 + len {
                let status = head[9..12].parse().unwrap();
                return (status, head, buf[end + 4..end + 4 + len].to_vec());
            }
        }
    };
    tokio::time::timeout(HANG, read).await.unwrap()
}

#[tokio::test]
async fn sixteen_megabytes_round_trip_byte_exact_with_and_without_a_length() {
    let srv = TestServer::start();
    deploy(&srv, "big").await;
    let body = pseudo_random(16 * 1024 * 1024, 7);
    let r = tokio::time::timeout(
        HANG,
        srv.call("POST", &invoke_path("big", "echo"), body.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        r.status,
        200,
        "{:?}",
        String::from_utf8_lossy(&r.body[..200.min(r.body.len())])
    );
    assert!(r.headers.get("x-fc-error-type").is_none());
    assert!(
        r.body == body,
        "16 MiB came back different ({} bytes)",
        r.body.len()
    );

    let body = pseudo_random(3 * 1024 * 1024 + 17, 9);
    let (status, head, echoed) = invoke_chunked(&srv, "big", &body, &body).await;
    assert_eq!(status, 200, "{head}");
    assert!(!head.contains("\nx-fc-error-type:"), "{head}");
    assert!(echoed == body, "the chunked body came back different");
    assert_eq!(completed(&srv, "big").await.0, "2");
}

#[tokio::test]
async fn a_streamed_body_that_is_too_large_or_not_the_signed_one_never_reaches_the_function() {
    let srv = TestServer::start();
    deploy(&srv, "refuse").await;
    let (count, instance) = completed(&srv, "refuse").await;
    assert_eq!(count, "0");

    // 32 MiB + 1 without a declared length: refused (FC's 400 EntityTooLarge) once the count
    // passes the limit.
    let over = pseudo_random(32 * 1024 * 1024 + 1, 3);
    let (status, head, body) = invoke_chunked(&srv, "refuse", &over, &over).await;
    assert_eq!(status, 400, "{head} {}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("EntityTooLarge"));

    // Signed for one body, carrying another of the same length.
    let signed = pseudo_random(2 * 1024 * 1024, 5);
    let mut sent = signed.clone();
    sent[1_500_000] ^= 0xff;
    let (status, head, body) = invoke_chunked(&srv, "refuse", &signed, &sent).await;
    assert_eq!(status, 403, "{head} {}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("SignatureNotMatch"));

    // The same with a declared length, through an ordinary client.
    let path = invoke_path("refuse", "echo");
    let h = srv.acs3_headers("POST", &path, &signed, SECRET, KEY_ID, SystemTime::now());
    let r = srv.raw("POST", &path, h, sent).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(r.error_code(), "SignatureNotMatch");

    // The function never received a whole body, and its instance was not harmed.
    let (count, after) = completed(&srv, "refuse").await;
    assert_eq!(count, "0");
    assert_eq!(after, instance, "a refused body must not cost the instance");
}

/// Writes one request on `s` and reads its answer (sized by `content-length`).
async fn exchange(s: &mut TcpStream, head: String, body: &[u8]) -> (u16, Vec<u8>) {
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut buf = Vec::new();
    loop {
        let mut chunk = vec![0u8; 1 << 16];
        let n = s.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "closed before an answer: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let text = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let len: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if buf.len() >= end + 4 + len {
            return (
                text[9..12].parse().unwrap(),
                buf[end + 4..end + 4 + len].to_vec(),
            );
        }
    }
}

fn signed_head(srv: &TestServer, path: &str, body: &[u8], extra: &[(&str, &str)]) -> String {
    let mut h = srv.acs3_headers("POST", path, body, SECRET, KEY_ID, SystemTime::now());
    for (k, v) in extra {
        h.insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            http::HeaderValue::from_str(v).unwrap(),
        );
    }
    let mut head = format!("POST {path} HTTP/1.1\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in &h {
        head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    head.push_str("\r\n");
    head
}

/// An async call over its 128 KB limit is refused, and the client's connection still carries
/// its next call (the body was read and dropped, not left unread).
#[tokio::test]
async fn an_oversized_async_body_is_refused_and_the_connection_stays_usable() {
    let srv = TestServer::start();
    deploy(&srv, "asyncbig").await;
    let path = invoke_path("asyncbig", "echo");
    let big = pseudo_random(128 * 1024 + 1, 11);
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    let head = signed_head(&srv, &path, &big, &[("x-fc-invocation-type", "Async")]);
    let (status, body) = tokio::time::timeout(HANG, exchange(&mut s, head, &big))
        .await
        .unwrap();
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("EntityTooLarge"));
    let small = b"next".to_vec();
    let head = signed_head(&srv, &path, &small, &[]);
    let (status, body) = tokio::time::timeout(HANG, exchange(&mut s, head, &small))
        .await
        .unwrap();
    assert_eq!((status, body), (200, small));
}

/// Calls refused on an HTTP trigger's URL before their bodies are used — declared too large,
/// too large as it arrives (chunked), a method the trigger does not admit — still have their
/// bodies read and dropped: the client's connection carries its next call, and a load balancer
/// in front of fcd, still sending such a body, gets fcd's answer instead of a reset.
#[tokio::test]
async fn calls_refused_on_a_trigger_url_leave_the_connection_usable() {
    let srv = TestServer::start();
    deploy(&srv, "trigbig").await;
    let trigger = serde_json::json!({
        "triggerName": "web",
        "triggerType": "http",
        "triggerConfig": serde_json::json!({"authType": "anonymous", "methods": ["POST"]}).to_string(),
    });
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services/trigbig/functions/echo/triggers",
            trigger.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let path = "/2021-04-06/proxy/trigbig/echo/in";
    let head = |method: &str, len: Option<usize>, extra: &str| {
        let length = len.map_or("transfer-encoding: chunked\r\n".to_owned(), |n| {
            format!("content-length: {n}\r\n")
        });
        format!("{method} {path} HTTP/1.1\r\nhost: fcd\r\n{length}{extra}\r\n")
    };
    let big = pseudo_random(128 * 1024 + 1, 12);
    let mut chunked = Vec::new();
    for piece in big.chunks(16 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let async_call = "x-fc-invocation-type: Async\r\n";
    let refused: [(String, &[u8], u16, &str); 3] = [
        (
            head("POST", Some(big.len()), async_call),
            &big,
            400,
            "EntityTooLarge",
        ),
        (
            head("POST", None, async_call),
            &chunked,
            400,
            "EntityTooLarge",
        ),
        (head("PUT", Some(big.len()), ""), &big, 403, "AccessDenied"),
    ];
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    for (head_text, body, status, code) in refused {
        let (got, answer) = tokio::time::timeout(HANG, exchange(&mut s, head_text, body))
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&answer).into_owned();
        assert_eq!(got, status, "{answer}");
        assert!(answer.contains(code), "{answer}");
        let small = b"next".to_vec();
        let (got, answer) = tokio::time::timeout(
            HANG,
            exchange(&mut s, head("POST", Some(small.len()), ""), &small),
        )
        .await
        .unwrap();
        assert_eq!((got, answer), (200, small));
    }
}
