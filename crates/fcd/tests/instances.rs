//! Black-box tests of instance lifecycles: processes never outlive their function, their
//! server, or a failure.

#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{TestServer, alive, all_gone, zip_b64};

/// A custom runtime whose bootstrap starts a long-lived grandchild, then serves the contract.
/// Both carry `$MARKER` on their command line, so the test can find them from the host whatever
/// namespaces they run in.
const BOOTSTRAP: &str = r#"#!/bin/sh
sleep "$MARKER" &
exec python3 server.py "$MARKER"
"#;

const SERVER: &str = r#"
import os, socket
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", 0)); self.rfile.read(n)
        body = b"up"
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass

class S(HTTPServer):
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().server_bind()

S(("0.0.0.0", int(os.environ.get("FC_SERVER_PORT", "9000"))), H).serve_forever()
"#;

/// A number `sleep` accepts and nothing else on the machine uses.
fn marker() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}.{:09}", 5000 + std::process::id() % 1000, n)
}

/// Host PIDs of live processes whose command line mentions `marker`.
fn marked(marker: &str) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(marker) && alive(pid) {
            out.push(pid);
        }
    }
    out.sort();
    out
}

async fn deploy(srv: &TestServer, service: &str, function: &str, marker: &str) {
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services",
            format!(r#"{{"serviceName":"{service}"}}"#),
        )
        .await;
    assert!(r.status == 200 || r.status == 409, "{:?}", r.body);
    let body = serde_json::json!({
        "functionName": function,
        "runtime": "custom",
        "timeout": 30,
        "environmentVariables": {"MARKER": marker},
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

/// Invokes the function and returns the host PIDs of its server and grandchild.
async fn pids(srv: &TestServer, service: &str, function: &str, marker: &str) -> Vec<i32> {
    let r = srv
        .call(
            "POST",
            &format!("/2021-04-06/services/{service}/functions/{function}/invocations"),
            "x",
        )
        .await;
    assert_eq!(r.status, 200, "{:?} {}", r.body, srv.log());
    assert!(
        r.headers.get("x-fc-error-type").is_none(),
        "{:?} {}",
        r.body,
        srv.log()
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let found = marked(marker);
        if found.len() >= 2 || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn update_and_delete_stop_instances_and_what_they_started() {
    let srv = TestServer::start();
    let m = marker();
    deploy(&srv, "s", "f", &m).await;
    let first = pids(&srv, "s", "f", &m).await;
    assert!(first.len() >= 2, "{first:?}");
    // Warm: the same instance answers again.
    assert_eq!(pids(&srv, "s", "f", &m).await, first);

    let r = srv
        .call(
            "PUT",
            "/2021-04-06/services/s/functions/f",
            r#"{"description":"v2"}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(
        all_gone(&first, Duration::from_secs(20)),
        "update left {first:?} running"
    );

    let second = pids(&srv, "s", "f", &m).await;
    assert!(second.len() >= 2 && second != first, "{second:?}");
    let r = srv
        .call("DELETE", "/2021-04-06/services/s/functions/f", "")
        .await;
    assert_eq!(r.status, 204);
    assert!(
        all_gone(&second, Duration::from_secs(20)),
        "delete left {second:?} running"
    );
}

#[tokio::test]
async fn sigterm_stops_every_instance() {
    let mut srv = TestServer::start();
    let (ma, mb) = (marker(), marker());
    deploy(&srv, "s", "a", &ma).await;
    deploy(&srv, "s", "b", &mb).await;
    let mut all = pids(&srv, "s", "a", &ma).await;
    all.extend(pids(&srv, "s", "b", &mb).await);
    assert!(all.len() >= 4, "{all:?}");
    let status = srv.terminate();
    assert!(status.success(), "fcd exited with {status}: {}", srv.log());
    assert!(
        all_gone(&all, Duration::from_secs(5)),
        "{all:?} outlived fcd"
    );
}

#[tokio::test]
async fn sigkill_of_fcd_still_takes_instances_down() {
    let srv = TestServer::start();
    let m = marker();
    deploy(&srv, "s", "f", &m).await;
    let p = pids(&srv, "s", "f", &m).await;
    assert!(p.len() >= 2, "{p:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(srv.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    if srv.log().contains("instances run jailed") {
        // The jail's init dies with fcd, its PID 1 with the init, and the kernel takes down
        // the rest of the PID namespace: nothing survives.
        assert!(
            all_gone(&p, Duration::from_secs(10)),
            "{p:?} outlived a killed fcd"
        );
    } else {
        // Unjailed, only the instance process itself has a parent-death signal.
        let server = marked(&format!("server.py {m}"));
        assert!(
            all_gone(&server, Duration::from_secs(10)),
            "instance {server:?} outlived a killed fcd"
        );
        for pid in marked(&m) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[tokio::test]
async fn code_is_read_only_to_the_function() {
    let srv = TestServer::start();
    let handler = r#"
import errno, os
def handler(event, context):
    path = os.path.join(os.environ["FC_FUNC_CODE_PATH"], "written-by-function")
    try:
        open(path, "w").write("x")
    except OSError as e:
        return errno.errorcode.get(e.errno, "OSError")
    return "writable"
"#;
    srv.call("POST", "/2021-04-06/services", r#"{"serviceName":"ro"}"#)
        .await;
    let body = serde_json::json!({
        "functionName": "f", "runtime": "python3", "handler": "index.handler",
        "code": {"zipFile": zip_b64(&[("index.py", handler, false)])},
    });
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services/ro/functions",
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services/ro/functions/f/invocations",
            "",
        )
        .await;
    assert_eq!(r.status, 200);
    let got = String::from_utf8_lossy(&r.body).into_owned();
    if srv.log().contains("private network namespaces") {
        // Root ignores file modes, so only the read-only mount can stop this.
        assert_eq!(got, "EROFS", "{}", srv.log());
    } else {
        assert!(got == "EACCES" || got == "writable", "{got}");
    }
}
