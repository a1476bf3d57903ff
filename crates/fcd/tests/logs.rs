//! Function logs through the real binary: `fcd logs` (by request id, `--since`, `--follow`)
//! against `fcd serve`, the size bound under a function printing 1 GB, and the per-function
//! metrics series.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{ACCOUNT, KEY_ID, SECRET, TestServer, invoke_path, zip_b64};

const HANDLER: &str = r#"
import sys

def handler(event, context):
    word = event.decode()
    print("said " + word)
    if word.startswith("fail"):
        raise ValueError("failing on purpose: " + word)
    return word
"#;

async fn deploy(
    srv: &TestServer,
    service: &str,
    function: &str,
    handler: &str,
    extra: serde_json::Value,
) {
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services",
            serde_json::json!({ "serviceName": service }).to_string(),
        )
        .await;
    assert!(
        r.status == 200 || r.error_code() == "ServiceAlreadyExists",
        "{:?}",
        r.body
    );
    let mut body = serde_json::json!({
        "functionName": function, "runtime": "python3", "handler": "index.handler",
        "timeout": 300, "memorySize": 256,
        "code": {"zipFile": zip_b64(&[("index.py", handler, false)])},
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    let r = srv
        .call(
            "POST",
            &format!("/2021-04-06/services/{service}/functions"),
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// A synchronous invocation; returns its request id.
async fn invoke(srv: &TestServer, service: &str, function: &str, word: &str) -> String {
    let r = srv
        .call(
            "POST",
            &invoke_path(service, function),
            word.as_bytes().to_vec(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    request_id(&r)
}

fn request_id(r: &common::Reply) -> String {
    r.headers
        .get("x-fc-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-fc-request-id")
        .to_owned()
}

/// `fcd logs ARGS` against the test server; its stdout.
fn fcd_logs(srv: &TestServer, args: &[&str]) -> String {
    let out = logs_command(srv, args).output().expect("running fcd logs");
    assert!(
        out.status.success(),
        "fcd logs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn logs_command(srv: &TestServer, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fcd"));
    c.arg("logs")
        .args(args)
        .args(["--endpoint", &srv.addr])
        .arg("--data-dir")
        .arg(srv.dir.path().join("data"))
        .env("FCD_ACCESS_KEY_ID", KEY_ID)
        .env("FCD_ACCESS_KEY_SECRET", SECRET)
        .env("RUST_LOG", "warn");
    c
}

/// Polls `fcd logs ARGS` until its output satisfies `ok` (records reach the store shortly
/// after the invocation; the bound only detects a hang).
fn wait_logs(srv: &TestServer, args: &[&str], ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = fcd_logs(srv, args);
        if ok(&out) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "fcd logs {args:?} never matched; last output:\n{out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_async_invocation_is_found_by_request_id() {
    let srv = TestServer::start();
    deploy(&srv, "logs", "f", HANDLER, serde_json::json!({})).await;
    // Another request's output must not show up under this id.
    invoke(&srv, "logs", "f", "unrelated").await;
    let r = srv
        .call_with(
            "POST",
            &invoke_path("logs", "f"),
            b"fail-async".to_vec(),
            &[("x-fc-invocation-type", "Async")],
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let rid = request_id(&r);
    let out = wait_logs(&srv, &["logs/f", "--request-id", &rid], |o| {
        o.contains("failing on purpose: fail-async")
    });
    for line in out.lines() {
        // time, request id, level, message
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        assert_eq!(parts.len(), 4, "{line}");
        assert_eq!(parts[1], rid, "{out}");
        assert!(parts[0].ends_with('Z'), "{line}");
    }
    assert!(out.contains("said fail-async"), "{out}");
    assert!(
        out.contains(&format!("FC Invoke Start RequestId: {rid}")),
        "{out}"
    );
    assert!(!out.contains("unrelated"), "{out}");
    // The End marker of a failed invocation is an error.
    assert!(
        out.lines()
            .any(|l| l.contains("FC Invoke End") && l.split(' ').nth(2) == Some("ERROR"))
            || !out.contains("FC Invoke End"),
        "{out}"
    );

    // The same through the API, as JSON records.
    let r = srv
        .call(
            "GET",
            &format!("/2021-04-06/services/logs/functions/f/logs?requestId={rid}"),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let v = r.json();
    let records = v["records"].as_array().expect("records");
    assert!(!records.is_empty());
    for rec in records {
        assert_eq!(rec["requestId"], rid.as_str());
        assert_eq!(rec["qualifier"], "LATEST");
        assert!(rec["instanceId"].as_str().is_some_and(|i| !i.is_empty()));
        assert!(rec["level"].as_str().is_some());
    }
    // An unknown function is FC's 404, not an empty list.
    let r = srv
        .call("GET", "/2021-04-06/services/logs/functions/nope/logs", "")
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "FunctionNotFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_selects_by_time_and_follow_sees_new_invocations() {
    // A long grace period: a follower must not hold the shutdown for it (checked at the end).
    let mut srv = TestServer::start_with(&["--shutdown-grace-secs", "600"]);
    deploy(&srv, "logs", "f", HANDLER, serde_json::json!({})).await;
    let first = invoke(&srv, "logs", "f", "first").await;
    let out = wait_logs(&srv, &["logs/f", "--json", "--request-id", &first], |o| {
        o.contains("said first")
    });
    let last_ms = out
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["timestamp"].as_i64())
        .max()
        .expect("timestamps");
    // The next invocation's lines are read at least a millisecond later.
    std::thread::sleep(Duration::from_millis(5));
    invoke(&srv, "logs", "f", "second").await;
    let since = (last_ms + 1).to_string();
    let out = wait_logs(&srv, &["logs/f", "--since", &since], |o| {
        o.contains("said second")
    });
    assert!(!out.contains("said first"), "{out}");
    let out = fcd_logs(&srv, &["logs/f", "--since", "10m"]);
    assert!(
        out.contains("said first") && out.contains("said second"),
        "{out}"
    );

    // Follow: what is there, then what comes.
    let mut child = logs_command(&srv, &["logs/f", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("fcd logs --follow");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let wait_for = |want: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(l) = rx.recv_timeout(Duration::from_millis(200))
                && l.contains(want)
            {
                return true;
            }
        }
        false
    };
    assert!(
        wait_for("said second"),
        "follow printed the existing records"
    );
    let third = invoke(&srv, "logs", "f", "third").await;
    assert!(
        wait_for(&format!("{third} INFO said third")),
        "follow saw the new invocation"
    );
    // Shutting down ends the stream (terminate() fails if fcd takes more than 30 s), and the
    // follower ends with it.
    srv.terminate();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().expect("follower") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fcd logs --follow did not end with the server");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

/// Bytes under a directory, recursively.
fn du(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => du(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU seconds a process has used (user + system).
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command.
    (ticks(11) + ticks(12)) / 100.0
}

const FLOOD: &str = r#"
import sys

def handler(event, context):
    line = "flood " + "x" * 1017 + "\n"
    chunk = line * 1024
    for _ in range(1024):
        sys.stdout.write(chunk)
    sys.stdout.flush()
    return "flooded"
"#;

/// A function printing 1 GB: its logs stay within `--log-max-mb-per-function`, the server's
/// memory stays bounded, and the server and another function's logs are unaffected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_function_printing_a_gigabyte_is_capped() {
    let mut args = vec!["--log-max-mb-per-function", "2"];
    args.extend(common::METRICS);
    let srv = TestServer::start_with(&args);
    deploy(&srv, "logs", "flood", FLOOD, serde_json::json!({})).await;
    deploy(&srv, "logs", "quiet", HANDLER, serde_json::json!({})).await;
    invoke(&srv, "logs", "quiet", "warm").await;
    let started = Instant::now();
    let cpu_before = cpu_secs(srv.pid());
    let flood_path = invoke_path("logs", "flood");
    let flood_call = srv.call("POST", &flood_path, "");
    tokio::pin!(flood_call);
    let mut quiet_calls = 0;
    let mut peak_rss = 0;
    let flood_dir = srv
        .dir
        .path()
        .join("data/logs")
        .join(ACCOUNT)
        .join("logs/flood");
    let reply = loop {
        tokio::select! {
            r = &mut flood_call => break r,
            _ = tokio::time::sleep(Duration::from_millis(300)) => {
                // The server keeps answering, and another function's output is stored.
                let word = format!("during-{quiet_calls}");
                let t = Instant::now();
                invoke(&srv, "logs", "quiet", &word).await;
                assert!(t.elapsed() < Duration::from_secs(10), "a call took {:?} during the flood", t.elapsed());
                quiet_calls += 1;
                peak_rss = peak_rss.max(rss_kib(srv.pid()));
                assert!(du(&flood_dir) <= 2 << 20, "{} bytes on disk", du(&flood_dir));
            }
        }
    };
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(&reply.body[..], b"flooded");
    let took = started.elapsed();
    let cpu = cpu_secs(srv.pid()) - cpu_before;
    let on_disk = du(&flood_dir);
    eprintln!(
        "1 GB flood: {took:?}, fcd used {cpu:.1} s of CPU, {quiet_calls} calls to another function meanwhile, fcd peak RSS {peak_rss} KiB, {on_disk} bytes of logs kept"
    );
    assert!(on_disk <= 2 << 20, "{on_disk} bytes on disk");
    assert!(on_disk > 0);
    // Bounded memory: far below what was printed (generous: a debug build, and the instance's
    // memory is not fcd's).
    assert!(peak_rss < 512 * 1024, "fcd's RSS reached {peak_rss} KiB");
    // The other function's records are all there.
    for i in 0..quiet_calls {
        let word = format!("said during-{i}");
        wait_logs(
            &srv,
            &["logs/quiet", "--since", "30m", "--limit", "10000"],
            |o| o.contains(&word),
        );
    }
    // 1 GB is far more than the function may store in the time it took (2 MB, then 2 MB per
    // 10 s), so lines were dropped, counted, and the log says so.
    let text = srv.metrics().await;
    let dropped_total: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("fcd_log_lines_dropped_total ")?.parse().ok())
        .unwrap_or_else(|| panic!("no fcd_log_lines_dropped_total:\n{text}"));
    assert!(dropped_total > 100_000, "{dropped_total}");
    let out = fcd_logs(&srv, &["logs/flood", "--limit", "10000"]);
    assert!(out.lines().count() > 0);
    let dropped: u64 = out
        .lines()
        .filter_map(|l| {
            l.split("[fcd] ")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    eprintln!("lines reported dropped among the records kept: {dropped}");
    let note = out
        .lines()
        .find(|l| l.contains("[fcd]"))
        .unwrap_or_else(|| panic!("no note of dropped lines in the kept records"));
    assert!(
        note.contains(" WARN ") && note.contains("were dropped"),
        "{note}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_function_metrics_appear_after_invocations() {
    let srv = TestServer::start_with(&common::METRICS);
    deploy(&srv, "m", "f", HANDLER, serde_json::json!({})).await;
    invoke(&srv, "m", "f", "one").await;
    invoke(&srv, "m", "f", "fail-two").await;
    let text = srv.metrics().await;
    let labels =
        format!("{{account=\"{ACCOUNT}\",service=\"m\",function=\"f\",qualifier=\"LATEST\"}}");
    for (name, want) in [
        ("fcd_function_invocations_total", "2"),
        ("fcd_function_errors_by_function_total", "1"),
        ("fcd_function_cold_starts_total", "1"),
        ("fcd_function_duration_seconds_count", "2"),
    ] {
        let line = format!("{name}{labels} {want}");
        assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
    }
    assert!(
        text.lines().any(|l| l == "fcd_invocations_total 2"),
        "{text}"
    );
}
