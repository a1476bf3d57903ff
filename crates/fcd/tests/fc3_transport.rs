//! FC 3.0's transport and authorization against the real binary: a RAM user's policy decides
//! 3.0 operations (`/2023-03-30`) through the same single check as 2.0's, 3.0 request ids and
//! error bodies, the account named by a numeric `Host` label, and bodies sent with
//! `Transfer-Encoding: chunked` (as the Node SDKs send every body) verified de-chunked.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, SystemTime};

use common::{ACCOUNT, KEY_ID, Reply, SECRET, TestServer};
use http::{HeaderMap, HeaderValue};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A RAM user's access key.
struct Key {
    id: String,
    secret: String,
}

/// Creates RAM user `name` with a custom policy `document`, through `fcd iam create-user`
/// (the server's own RAM API, signed with the account's key).
fn ram_user(srv: &TestServer, name: &str, document: &serde_json::Value) -> Key {
    let file = srv.dir.path().join(format!("{name}-policy.json"));
    std::fs::write(&file, document.to_string()).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fcd"))
        .args([
            "iam",
            "--endpoint",
            &srv.addr,
            "create-user",
            "--name",
            name,
        ])
        .arg("--policy-file")
        .arg(&file)
        .env("FCD_ACCESS_KEY_ID", KEY_ID)
        .env("FCD_ACCESS_KEY_SECRET", SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fcd iam create-user: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Key {
        id: v["AccessKeyId"].as_str().unwrap().to_owned(),
        secret: v["AccessKeySecret"].as_str().unwrap().to_owned(),
    }
}

fn allow(action: &str, resource: &str) -> serde_json::Value {
    serde_json::json!({
        "Version": "1",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
    })
}

fn nonce() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).unwrap();
    hex::encode(b)
}

/// Headers of a request signed as the FC 3.0 SDK signs it (`x-acs-version: 2023-03-30`, no
/// account header), with `host` as given.
fn fc3_headers(
    host: &str,
    (key_id, secret): (&str, &str),
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> HeaderMap {
    let (p, q) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut h = HeaderMap::new();
    h.insert("host", HeaderValue::from_str(host).unwrap());
    h.insert("x-acs-version", HeaderValue::from_static("2023-03-30"));
    h.insert("accept", HeaderValue::from_static("application/json"));
    if !body.is_empty() {
        h.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    fcd_sign::sign_acs3(
        key_id,
        secret,
        method,
        p,
        q,
        &mut h,
        body,
        SystemTime::now(),
        &nonce(),
    )
    .unwrap();
    h
}

async fn call_as(
    srv: &TestServer,
    key: (&str, &str),
    method: &str,
    path: &str,
    body: &[u8],
) -> Reply {
    let h = fc3_headers(&srv.addr, key, method, path, body);
    srv.raw(method, path, h, body.to_vec()).await
}

/// Whether `id` has FC 3.0's request id shape, `1-<8 hex>-<8 hex>-<12 hex>`.
fn is_fc3_request_id(id: &str) -> bool {
    let parts: Vec<&str> = id.split('-').collect();
    parts.len() == 4
        && parts[0] == "1"
        && parts[1..].iter().map(|p| p.len()).eq([8, 8, 12])
        && parts[1..]
            .iter()
            .all(|p| p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
}

/// Asserts FC's error body (3.0 and 2.0 keys alike, the request id in body and header) with
/// a 3.0 request id; returns the code.
fn fc3_error(r: &Reply) -> String {
    let code = r.error_code();
    let rid = r.header("x-fc-request-id");
    assert!(is_fc3_request_id(&rid), "not a 3.0 request id: {rid}");
    let v = r.json();
    assert_eq!(v["Code"], code.as_str(), "{v}");
    assert!(v["Message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    code
}

#[tokio::test]
async fn ram_policies_decide_fc3_operations() {
    let srv = TestServer::start();
    let get_f1 = ram_user(
        &srv,
        "get-f1",
        &allow("fc:GetFunction", "acs:fc:*:*:functions/f1"),
    );
    let functions = ram_user(&srv, "functions", &allow("fc:*", "acs:fc:*:*:functions/*"));
    let get_f1 = (get_f1.id.as_str(), get_f1.secret.as_str());
    let functions = (functions.id.as_str(), functions.secret.as_str());
    let root = (KEY_ID, SECRET);

    // Allowed: the request reaches the router, which answers about the function (it does not
    // exist) or the path — never AccessDenied.
    let r = call_as(&srv, get_f1, "GET", "/2023-03-30/functions/f1", b"").await;
    assert_ne!(fc3_error(&r), "AccessDenied", "{:?}", r.body);
    assert_ne!(r.status, 403);

    // Another function, another action, another name for the same function, an operation
    // fcd does not provide: each refused before any handler runs.
    for (method, path) in [
        ("GET", "/2023-03-30/functions/f2"),
        ("GET", "/2023-03-30/functions/f1x"),
        ("PUT", "/2023-03-30/functions/f1"),
        ("DELETE", "/2023-03-30/functions/f1"),
        ("POST", "/2023-03-30/functions/f1/invocations"),
        ("GET", "/2023-03-30/functions/f1/code"),
        ("GET", "/2023-03-30/functions/f1/aliases/prod"),
        ("GET", "/2023-03-30/functions/svc%24f1"),
        ("GET", "/2023-03-30/functions/f1/sessions"),
        ("GET", "/2023-03-30/functions"),
        ("GET", "/2023-03-30/regions"),
        // Not an operation at all: refused rather than routed.
        ("GET", "/2023-03-30/nothing"),
    ] {
        let r = call_as(&srv, get_f1, method, path, b"").await;
        assert_eq!(r.status, 403, "{method} {path}: {:?}", r.body);
        assert_eq!(fc3_error(&r), "AccessDenied", "{method} {path}");
    }
    // The same operation on the 2.0 API is another resource (services/…): refused too.
    let r = call_as(
        &srv,
        get_f1,
        "GET",
        "/2021-04-06/services/s/functions/f1",
        b"",
    )
    .await;
    assert_eq!(r.status, 403, "{:?}", r.body);

    // `fc:*` on `functions/*` reaches every function-scoped operation, including those fcd
    // answers NotSupported (the answer then is that, not a refusal) …
    for (method, path, code) in [
        ("GET", "/2023-03-30/functions/f1/sessions", "NotSupported"),
        (
            "PUT",
            "/2023-03-30/functions/f9/scaling-config",
            "NotSupported",
        ),
        ("GET", "/2023-03-30/scaling-configs", "NotSupported"),
        ("POST", "/2023-03-30/functions/f1/snapshots", "NotSupported"),
    ] {
        let r = call_as(&srv, functions, method, path, b"{}").await;
        assert_eq!(fc3_error(&r), code, "{method} {path}: {:?}", r.body);
        assert_ne!(r.status, 403);
    }
    let r = call_as(&srv, functions, "GET", "/2023-03-30/functions/f1", b"").await;
    assert_ne!(r.status, 403, "{:?}", r.body);
    // … but not tags, regions or resource groups (resource `*`), nor layers.
    for (method, path) in [
        ("GET", "/2023-03-30/tags-v2?ResourceType=function"),
        ("GET", "/2023-03-30/regions"),
        ("PUT", "/2023-03-30/resource-groups"),
        ("GET", "/2023-03-30/layers"),
    ] {
        let r = call_as(&srv, functions, method, path, b"").await;
        assert_eq!(r.status, 403, "{method} {path}: {:?}", r.body);
        assert_eq!(fc3_error(&r), "AccessDenied");
    }

    // The account's own key may do everything: the router answers.
    let r = call_as(&srv, root, "GET", "/2023-03-30/resource-groups", b"").await;
    assert_ne!(r.status, 403, "{:?}", r.body);
    let r = call_as(&srv, root, "PUT", "/2023-03-30/resource-groups", b"{}").await;
    assert_eq!(fc3_error(&r), "NotSupported");
    let r = call_as(&srv, root, "GET", "/2023-03-30/nothing", b"").await;
    assert_eq!(fc3_error(&r), "PathNotSupported");
}

#[tokio::test]
async fn request_ids_and_error_bodies_by_api_version() {
    let srv = TestServer::start();
    // A 3.0 refusal made before any handler (bad signature) and one made by a handler.
    let mut h = fc3_headers(
        &srv.addr,
        (KEY_ID, "wrong"),
        "GET",
        "/2023-03-30/functions",
        b"",
    );
    h.insert("x-acs-version", HeaderValue::from_static("2023-03-30"));
    let r = srv.raw("GET", "/2023-03-30/functions", h, Vec::new()).await;
    assert_eq!(r.status, 403);
    assert_eq!(fc3_error(&r), "SignatureNotMatch");
    let r = srv
        .call("GET", "/2023-03-30/functions/f1/sessions", "")
        .await;
    assert_eq!(fc3_error(&r), "NotSupported");
    // Successes carry one too.
    let ok = srv.call("GET", "/2021-04-06/services", "").await;
    assert_eq!(ok.status, 200);
    // 2.0 keeps its UUIDs.
    let rid = ok.header("x-fc-request-id");
    assert_eq!(rid.len(), 36, "{rid}");
    assert!(!is_fc3_request_id(&rid));
    let r = srv.call("GET", "/2021-04-06/services/nope", "").await;
    assert_eq!(r.error_code(), "ServiceNotFound");
    assert!(!is_fc3_request_id(&r.header("x-fc-request-id")));
}

#[tokio::test]
async fn a_numeric_host_label_must_name_the_keys_account() {
    let srv = TestServer::start();
    let root = (KEY_ID, SECRET);
    // The endpoint FC tools use for invocations, `{accountId}.{region}.fc.aliyuncs.com`,
    // sent (and signed) as the Host of a request to this server.
    let own = format!("{ACCOUNT}.cn-hangzhou.fc.aliyuncs.com");
    for path in ["/2021-04-06/services", "/2023-03-30/functions/f1/sessions"] {
        let h = fc3_headers(&own, root, "GET", path, b"");
        let r = srv.raw("GET", path, h, Vec::new()).await;
        assert_ne!(r.status, 403, "{path}: {:?}", r.body);
    }
    let other = "999999.cn-hangzhou.fc.aliyuncs.com";
    for path in ["/2021-04-06/services", "/2023-03-30/functions/f1/sessions"] {
        let h = fc3_headers(other, root, "GET", path, b"");
        let r = srv.raw("GET", path, h, Vec::new()).await;
        assert_eq!(r.status, 403, "{path}: {:?}", r.body);
        assert_eq!(r.error_code(), "AccessDenied");
        assert!(r.json()["Message"].as_str().unwrap().contains("999999"));
    }
    // 3.0's default management endpoint names no account: the key's is used.
    let h = fc3_headers(
        "fcv3.cn-hangzhou.aliyuncs.com",
        root,
        "GET",
        "/2021-04-06/services",
        b"",
    );
    let r = srv.raw("GET", "/2021-04-06/services", h, Vec::new()).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// Sends `head` (signed headers) and `body` as a chunked request, cut in `pieces`, on a raw
/// connection; returns the status and the body of the answer.
async fn send_chunked(
    srv: &TestServer,
    method: &str,
    path: &str,
    head: &HeaderMap,
    body: &[u8],
    pieces: usize,
) -> (u16, serde_json::Value) {
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    for (k, v) in head {
        req.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    req.push_str("transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    let mut bytes = req.into_bytes();
    let size = body.len().div_ceil(pieces.max(1)).max(1);
    for piece in body.chunks(size) {
        bytes.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        bytes.extend_from_slice(piece);
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(b"0\r\n\r\n");
    let mut s = TcpStream::connect(&srv.addr).await.unwrap();
    s.write_all(&bytes).await.unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let end = reply.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let head = String::from_utf8_lossy(&reply[..end]).to_ascii_lowercase();
    assert!(head.contains("content-length:"), "{head}");
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let json = serde_json::from_slice(&reply[end..]).unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test]
async fn chunked_bodies_are_verified_de_chunked() {
    let srv = TestServer::start();
    let root = (KEY_ID, SECRET);

    // A 2.0 write whose body arrives in chunks, with no Content-Length: accepted, and it did
    // what the body says.
    let body = br#"{"serviceName":"chunky","description":"sent in pieces"}"#;
    let path = "/2021-04-06/services";
    let head = fc3_headers(&srv.addr, root, "POST", path, body);
    assert!(!head.contains_key("content-length"));
    let (status, json) = send_chunked(&srv, "POST", path, &head, body, 5).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json["serviceName"], "chunky");
    let got = srv.call("GET", "/2021-04-06/services/chunky", "").await;
    assert_eq!(got.json()["description"], "sent in pieces");

    // The digest is over the de-chunked bytes: other bytes in the same framing are refused.
    let body = br#"{"serviceName":"chunky2"}"#;
    let head = fc3_headers(&srv.addr, root, "POST", path, body);
    let (status, json) = send_chunked(
        &srv,
        "POST",
        path,
        &head,
        br#"{"serviceName":"chunkyX"}"#,
        3,
    )
    .await;
    assert_eq!(
        (status, json["Code"].as_str()),
        (403, Some("SignatureNotMatch"))
    );

    // A 3.0 path, signed as the 3.0 SDK signs (the router answers NotSupported here, which
    // it only does once the body verified).
    let path = "/2023-03-30/functions/f1/sessions";
    let body = br#"{"sessionTTLInSeconds":60}"#;
    let head = fc3_headers(&srv.addr, root, "POST", path, body);
    let (status, json) = send_chunked(&srv, "POST", path, &head, body, 4).await;
    assert_eq!(json["Code"], "NotSupported", "{status} {json}");
    assert!(is_fc3_request_id(json["RequestId"].as_str().unwrap()));
    let (status, json) = send_chunked(
        &srv,
        "POST",
        path,
        &head,
        br#"{"sessionTTLInSeconds":61}"#,
        4,
    )
    .await;
    assert_eq!(
        (status, json["Code"].as_str()),
        (403, Some("SignatureNotMatch"))
    );
}
