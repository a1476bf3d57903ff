//! Black-box tests of abandoned cold starts: a client that hangs up while its instance is still
//! starting — or still running its initializer — leaves no process of the function behind, the
//! server's budget whole, and the function working; and prewarmed jails are never mistaken for
//! instances, nor outlive their server.
//!
//! Processes are found from the host's `/proc` (jailed ones live in another PID namespace but
//! are visible there) by a marker the function carries in its environment, command line or
//! name, together with their ancestors up to fcd (a jail's init). Every outcome is polled for
//! with a deadline; nothing is decided by a sleep.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime};

use common::{KEY_ID, SECRET, TestServer, invoke_path, zip_b64};
use tokio::io::AsyncWriteExt;

/// When the client hangs up, at the earliest (the issue's "50 ms into the cold start").
const HANG_UP_AFTER: Duration = Duration::from_millis(50);
/// How long the function's processes and its budget share may take to go after the hang-up.
const CLEAN_UP_LIMIT: Duration = Duration::from_secs(10);
/// A process seen running after the budget was given back must be gone this soon after (it was
/// exiting at that very moment); any later and the budget came back before the process went.
const EXITING_SLACK: Duration = Duration::from_millis(250);

// ---------------------------------------------------------------------------------------------
// Processes, as the host sees them.

/// One process, told apart from a later one that reuses its PID by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Proc {
    pid: i32,
    start: u64,
}

/// State, parent and start time from `/proc/<pid>/stat`.
fn stat(pid: i32) -> Option<(String, i32, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = s.rsplit_once(')')?.1.split_whitespace().collect();
    // After the command: state (field 3), ppid (4), ... starttime (22).
    Some((
        fields.first()?.to_string(),
        fields.get(1)?.parse().ok()?,
        fields.get(19)?.parse().ok()?,
    ))
}

fn proc_of(pid: i32) -> Option<Proc> {
    let (state, _, start) = stat(pid)?;
    (state != "Z" && state != "X").then_some(Proc { pid, start })
}

/// Whether this very process still runs (a zombie counts as gone).
fn running(p: Proc) -> bool {
    proc_of(p.pid).is_some_and(|now| now == p)
}

fn pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().to_string_lossy().parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

fn read_lossy(pid: i32, what: &str) -> String {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default())
        .into_owned()
}

/// Running processes whose command line, name or environment mentions `marker`.
fn marked(marker: &str) -> BTreeSet<Proc> {
    pids()
        .into_iter()
        .filter(|pid| {
            ["cmdline", "comm", "environ"]
                .iter()
                .any(|what| read_lossy(*pid, what).contains(marker))
        })
        .filter_map(proc_of)
        .collect()
}

/// `p`'s ancestors below `root` (fcd), if `root` is one of its ancestors.
fn ancestors_below(p: Proc, root: i32) -> Vec<Proc> {
    let mut out = Vec::new();
    let mut pid = p.pid;
    for _ in 0..32 {
        let Some((_, ppid, _)) = stat(pid) else {
            return Vec::new();
        };
        if ppid == root {
            return out;
        }
        if ppid <= 1 {
            return Vec::new();
        }
        match proc_of(ppid) {
            Some(parent) => out.push(parent),
            None => return Vec::new(),
        }
        pid = ppid;
    }
    Vec::new()
}

fn children(pid: i32) -> Vec<i32> {
    pids()
        .into_iter()
        .filter(|c| stat(*c).is_some_and(|(_, ppid, _)| ppid == pid))
        .collect()
}

/// The jail spec a jail's init (`fcd __fcd-jail-init`) was started with.
fn jail_spec(pid: i32) -> Option<serde_json::Value> {
    if !read_lossy(pid, "cmdline").contains("__fcd-jail-init") {
        return None;
    }
    read_lossy(pid, "environ").split('\0').find_map(|var| {
        var.strip_prefix("FCD_JAIL_SPEC=")
            .and_then(|spec| serde_json::from_str(spec).ok())
    })
}

/// Whether `pid` is the init of a jail that was prewarmed (blank) before a function got it.
fn is_prewarmed_init(pid: i32) -> bool {
    jail_spec(pid).is_some_and(|s| s.get("blank").is_some_and(|b| !b.is_null()))
}

/// Running jail inits (and the not yet executed function sides they forked) of the server
/// whose data dir is `data_dir`: their spec names paths inside it.
fn jail_inits_of(data_dir: &std::path::Path) -> BTreeSet<Proc> {
    let dir = data_dir.display().to_string();
    pids()
        .into_iter()
        .filter(|pid| read_lossy(*pid, "cmdline").contains("__fcd-jail-init"))
        .filter(|pid| {
            read_lossy(*pid, "environ")
                .split('\0')
                .any(|var| var.starts_with("FCD_JAIL_SPEC=") && var.contains(&dir))
        })
        .filter_map(proc_of)
        .collect()
}

/// A string `sleep` accepts, short enough for a process name (15 bytes), and used by nothing
/// else on the machine.
fn marker() -> String {
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}.{:09}", 7000 + std::process::id() % 1000, n)
}

// ---------------------------------------------------------------------------------------------
// The server.

/// Root is needed for jails and cgroups; elsewhere the test says so and passes.
fn skip_unless_root(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return false;
    }
    eprintln!("SKIP: {test}: needs root (jails, cgroups) to run");
    true
}

fn jailed(srv: &TestServer) -> bool {
    srv.log().contains("instances run jailed")
}

async fn status(srv: &TestServer) -> serde_json::Value {
    srv.status().await
}

/// A server for these tests: `args`, and the metrics listener [`budget`] reads.
fn start_with(args: &[&str]) -> TestServer {
    let mut all = args.to_vec();
    all.extend(common::METRICS);
    TestServer::start_with(&all)
}

/// The server's reserved budget from `/metrics`: (instances, MB).
async fn budget(srv: &TestServer) -> (u64, u64) {
    let text = srv.metrics().await;
    let gauge = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
    };
    (
        gauge("fcd_budget_instances_used"),
        gauge("fcd_budget_memory_used_megabytes"),
    )
}

/// Waits until the server keeps a prewarmed jail of every runtime family it prewarms from start
/// ready, and returns how many are ready.
async fn prewarmed_ready(srv: &TestServer) -> u64 {
    let families = status(srv).await["runtimes"]["prewarmedAtStart"]
        .as_array()
        .map_or(1, |f| f.len().max(1)) as u64;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = status(srv).await["isolation"]["prewarmed"]
            .as_u64()
            .unwrap_or(0);
        if n >= families {
            return n;
        }
        assert!(
            Instant::now() < deadline,
            "only {n} of {families} prewarmed jails became ready: {}",
            srv.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_function(srv: &TestServer, service: &str, body: serde_json::Value) {
    let r = srv
        .call(
            "POST",
            "/2021-04-06/services",
            format!(r#"{{"serviceName":"{service}"}}"#),
        )
        .await;
    assert!(r.status == 200 || r.status == 409, "{:?}", r.body);
    let r = srv
        .call(
            "POST",
            &format!("/2021-04-06/services/{service}/functions"),
            body.to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

async fn instance_ids(srv: &TestServer, service: &str, function: &str) -> Vec<String> {
    let r = srv
        .call(
            "GET",
            &format!("/2021-04-06/services/{service}/functions/{function}/instances"),
            "",
        )
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()["instances"]
        .as_array()
        .unwrap_or_else(|| panic!("no instances array: {}", r.json()))
        .iter()
        .map(|i| i["instanceId"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Sends a signed InvokeFunction on a connection of its own and returns that connection
/// without reading the answer: dropping it is the client hanging up.
async fn invoke_on_own_connection(srv: &TestServer, path: &str) -> tokio::net::TcpStream {
    let body = b"hang-up";
    let headers = srv.acs3_headers("POST", path, body, SECRET, KEY_ID, SystemTime::now());
    let mut req = format!("POST {path} HTTP/1.1\r\n");
    for (k, v) in &headers {
        req.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
    }
    req.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut conn = tokio::net::TcpStream::connect(&srv.addr).await.unwrap();
    conn.set_nodelay(true).unwrap();
    conn.write_all(req.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    conn.flush().await.unwrap();
    conn
}

// ---------------------------------------------------------------------------------------------
// The scenario both hang-up tests share.

/// What the function under test looks like from the host.
struct Subject<'a> {
    service: &'a str,
    function: &'a str,
    marker: &'a str,
    /// Whether the phase to interrupt is under way, given the function's processes.
    in_phase: &'a dyn Fn(&BTreeSet<Proc>) -> bool,
    /// Whether the cold start must come from a prewarmed jail.
    prewarmed: bool,
    /// The follow-up call's expected answer.
    answer: &'a str,
}

/// Invokes the function, hangs up once the interrupted phase is under way (and at least
/// [`HANG_UP_AFTER`] into the call), then asserts that every process of the function goes, that
/// the budget comes back — only once they are gone — and that the next call succeeds.
async fn hang_up_and_check(srv: &TestServer, s: &Subject<'_>) {
    let fcd = srv.pid() as i32;
    let baseline = budget(srv).await;
    assert!(marked(s.marker).is_empty(), "marker {} in use", s.marker);

    let path = invoke_path(s.service, s.function);
    let conn = invoke_on_own_connection(srv, &path).await;
    let sent = Instant::now();
    // Everything of the function seen while it starts: marked processes and their ancestors
    // below fcd (a jail's init carries no marker of the function when it was prewarmed).
    let mut seen = BTreeSet::new();
    let phase_deadline = sent + Duration::from_secs(20);
    loop {
        let now = marked(s.marker);
        for p in &now {
            seen.insert(*p);
            seen.extend(ancestors_below(*p, fcd));
        }
        if sent.elapsed() >= HANG_UP_AFTER && (s.in_phase)(&now) {
            break;
        }
        let mut buf = [0u8; 512];
        match conn.try_read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!(
                "fcd answered before the client hung up ({other:?}): {}\n{}",
                String::from_utf8_lossy(&buf),
                srv.log()
            ),
        }
        assert!(
            Instant::now() < phase_deadline,
            "the phase to interrupt never began (processes {now:?}): {}",
            srv.log()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The start holds its share of the budget while it runs.
    let during = budget(srv).await;
    assert_eq!(
        during.0,
        baseline.0 + 1,
        "a starting instance must hold a reservation: {during:?} (before: {baseline:?})"
    );
    let inits: Vec<Proc> = seen
        .iter()
        .copied()
        .filter(|p| {
            stat(p.pid).is_some_and(|(_, ppid, _)| ppid == fcd) && jail_spec(p.pid).is_some()
        })
        .collect();
    if jailed(srv) {
        assert_eq!(
            inits.len(),
            1,
            "expected the instance's jail init among {seen:?}"
        );
        assert_eq!(
            is_prewarmed_init(inits[0].pid),
            s.prewarmed,
            "the cold start {} come from a prewarmed jail",
            if s.prewarmed { "should" } else { "should not" }
        );
    }
    drop(conn);
    let hung_up = sent.elapsed();
    eprintln!(
        "hung up {hung_up:?} into the call; the function had {} processes: {seen:?}",
        seen.len()
    );

    // Every process of it goes, and the budget comes back — after they are gone: each round
    // reads the budget first, so a process found running after a whole budget was read ran
    // when the budget came back.
    let deadline = Instant::now() + CLEAN_UP_LIMIT;
    let mut returned_early: Option<(Instant, BTreeSet<Proc>)> = None;
    let gone_at = loop {
        let b = budget(srv).await;
        let mut left: BTreeSet<Proc> = seen.iter().copied().filter(|p| running(*p)).collect();
        left.extend(marked(s.marker));
        if b == baseline && !left.is_empty() && returned_early.is_none() {
            returned_early = Some((Instant::now(), left.clone()));
        }
        if b == baseline && left.is_empty() {
            break Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "{CLEAN_UP_LIMIT:?} after a client hung up {hung_up:?} into a cold start: \
             processes still running {left:?}, budget {b:?} (before the call: {baseline:?}){}: {}",
            if returned_early.is_some() {
                "; the budget was given back while they ran"
            } else {
                ""
            },
            srv.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!(
        "processes gone and budget whole {:?} after the hang-up",
        sent.elapsed() - hung_up
    );
    if let Some((at, left)) = returned_early {
        assert!(
            gone_at.duration_since(at) <= EXITING_SLACK,
            "the budget was given back while {left:?} still ran (for {:?} more)",
            gone_at.duration_since(at)
        );
    }
    let listed = instance_ids(srv, s.service, s.function).await;
    assert!(listed.is_empty(), "abandoned start listed: {listed:?}");

    // The function still works: a fresh instance starts.
    let r = tokio::time::timeout(Duration::from_secs(60), srv.call("POST", &path, "again"))
        .await
        .expect("the follow-up call did not finish");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(
        r.headers.get("x-fc-error-type").is_none(),
        "follow-up failed: {} {}",
        String::from_utf8_lossy(&r.body),
        srv.log()
    );
    assert_eq!(String::from_utf8_lossy(&r.body), s.answer);
    assert_eq!(instance_ids(srv, s.service, s.function).await.len(), 1);
    assert_eq!(budget(srv).await.0, baseline.0 + 1);
}

// ---------------------------------------------------------------------------------------------
// 1 and 3: a client that hangs up during a slow cold start.

/// Takes ~2 s before it listens, like a slow runtime. Its processes carry `$MARKER` in their
/// environment.
const SLOW_BOOTSTRAP: &str = r#"#!/bin/sh
sleep 2
exec python3 server.py
"#;

const SERVER: &str = r#"
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        n = int(self.headers.get("content-length", 0)); self.rfile.read(n)
        body = b"up"
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass

HTTPServer(("0.0.0.0", int(os.environ.get("FC_SERVER_PORT", "9000"))), H).serve_forever()
"#;

async fn hang_up_during_cold_start(test: &str, args: &[&str], prewarmed: bool) {
    if skip_unless_root(test) {
        return;
    }
    let srv = start_with(args);
    if prewarmed {
        if !jailed(&srv) {
            eprintln!("SKIP: {test}: instances cannot be jailed here, so nothing is prewarmed");
            return;
        }
        prewarmed_ready(&srv).await;
    } else {
        assert_eq!(status(&srv).await["isolation"]["prewarmed"], 0);
    }
    let m = marker();
    create_function(
        &srv,
        "cancel",
        serde_json::json!({
            "functionName": "slow",
            "runtime": "custom",
            "timeout": 30,
            "environmentVariables": {"MARKER": m},
            "code": {"zipFile": zip_b64(&[("bootstrap", SLOW_BOOTSTRAP, true), ("server.py", SERVER, false)])},
        }),
    )
    .await;
    // The bootstrap runs (and sleeps: the call cannot have been answered yet), not just the
    // jail being set up for it.
    let started = |procs: &BTreeSet<Proc>| {
        procs
            .iter()
            .any(|p| !read_lossy(p.pid, "cmdline").contains("__fcd-jail-init"))
    };
    hang_up_and_check(
        &srv,
        &Subject {
            service: "cancel",
            function: "slow",
            marker: &m,
            in_phase: &started,
            prewarmed,
            answer: "up",
        },
    )
    .await;
}

#[tokio::test]
async fn hang_up_during_cold_start_leaves_nothing_and_the_function_works() {
    hang_up_during_cold_start(
        "hang_up_during_cold_start_leaves_nothing_and_the_function_works",
        &["--prewarm", "0"],
        false,
    )
    .await;
}

#[tokio::test]
async fn hang_up_during_unjailed_cold_start_leaves_nothing_and_the_function_works() {
    // No jail and no cgroup: only the teardown's kill of the process group stops it.
    hang_up_during_cold_start(
        "hang_up_during_unjailed_cold_start_leaves_nothing_and_the_function_works",
        &["--isolation", "none"],
        false,
    )
    .await;
}

#[tokio::test]
async fn hang_up_during_prewarmed_cold_start_leaves_nothing_and_the_function_works() {
    hang_up_during_cold_start(
        "hang_up_during_prewarmed_cold_start_leaves_nothing_and_the_function_works",
        &[],
        true,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 2 and 3: a client that hangs up during the initializer.

/// The initializer names its process after the marker, starts a child carrying it (which must
/// not survive either) and takes 2 s.
const SLOW_INITIALIZER: &str = r#"
import subprocess, time

MARK = "@MARK@"

def initialize(context):
    with open("/proc/self/comm", "w") as f:
        f.write(MARK)
    subprocess.Popen(["sleep", MARK])
    time.sleep(2)

def handler(event, context):
    return "initialized"
"#;

async fn hang_up_during_initializer(test: &str, args: &[&str], prewarmed: bool) {
    if skip_unless_root(test) {
        return;
    }
    let srv = start_with(args);
    if prewarmed {
        if !jailed(&srv) {
            eprintln!("SKIP: {test}: instances cannot be jailed here, so nothing is prewarmed");
            return;
        }
        prewarmed_ready(&srv).await;
    } else {
        assert_eq!(status(&srv).await["isolation"]["prewarmed"], 0);
    }
    let m = marker();
    let code = SLOW_INITIALIZER.replace("@MARK@", &m);
    create_function(
        &srv,
        "cancel",
        serde_json::json!({
            "functionName": "init",
            "runtime": "python3.10",
            "handler": "index.handler",
            "initializer": "index.initialize",
            "initializationTimeout": 10,
            "timeout": 30,
            "environmentVariables": {"MARKER": m},
            "code": {"zipFile": zip_b64(&[("index.py", &code, false)])},
        }),
    )
    .await;
    // The initializer's child runs: the initializer is under way, and sleeps for 2 s more.
    let child = |procs: &BTreeSet<Proc>| {
        procs.iter().any(|p| {
            read_lossy(p.pid, "cmdline")
                .split('\0')
                .next()
                .is_some_and(|argv0| argv0.ends_with("sleep"))
        })
    };
    hang_up_and_check(
        &srv,
        &Subject {
            service: "cancel",
            function: "init",
            marker: &m,
            in_phase: &child,
            prewarmed,
            answer: "initialized",
        },
    )
    .await;
}

#[tokio::test]
async fn hang_up_during_initializer_leaves_nothing_and_the_function_works() {
    hang_up_during_initializer(
        "hang_up_during_initializer_leaves_nothing_and_the_function_works",
        &["--prewarm", "0"],
        false,
    )
    .await;
}

#[tokio::test]
async fn hang_up_during_unjailed_initializer_leaves_nothing_and_the_function_works() {
    hang_up_during_initializer(
        "hang_up_during_unjailed_initializer_leaves_nothing_and_the_function_works",
        &["--isolation", "none"],
        false,
    )
    .await;
}

#[tokio::test]
async fn hang_up_during_prewarmed_initializer_leaves_nothing_and_the_function_works() {
    hang_up_during_initializer(
        "hang_up_during_prewarmed_initializer_leaves_nothing_and_the_function_works",
        &[],
        true,
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// 4: prewarmed jails are not instances, and do not outlive the server.

const NAMED: &str = r#"
MARK = "@MARK@"

def handler(event, context):
    with open("/proc/self/comm", "w") as f:
        f.write(MARK)
    return "named"
"#;

/// Prewarmed jails of this server whose waiting function process runs Python, except `but`.
fn python_blanks(data_dir: &std::path::Path, but: i32) -> usize {
    jail_inits_of(data_dir)
        .into_iter()
        .filter(|init| init.pid != but && is_prewarmed_init(init.pid))
        .filter(|init| {
            children(init.pid).iter().any(|c| {
                std::fs::read_link(format!("/proc/{c}/exe"))
                    .ok()
                    .and_then(|exe| exe.file_name().map(|n| n.to_string_lossy().into_owned()))
                    .is_some_and(|n| n.starts_with("python"))
            })
        })
        .count()
}

#[tokio::test]
async fn prewarmed_jails_are_not_instances_and_stop_with_the_server() {
    let test = "prewarmed_jails_are_not_instances_and_stop_with_the_server";
    if skip_unless_root(test) {
        return;
    }
    let mut srv = start_with(&[]);
    if !jailed(&srv) {
        eprintln!("SKIP: {test}: instances cannot be jailed here, so nothing is prewarmed");
        return;
    }
    let data_dir = srv.dir.path().join("data");
    let ready = prewarmed_ready(&srv).await;
    let python_ready = python_blanks(&data_dir, 0);
    assert!(python_ready >= 1, "no prewarmed Python jail");
    // Prewarmed jails are no instances: they hold no budget and are not listed.
    assert_eq!(budget(&srv).await, (0, 0));
    assert_eq!(status(&srv).await["instances"], 0);

    let m = marker();
    create_function(
        &srv,
        "warm",
        serde_json::json!({
            "functionName": "f",
            "runtime": "python3",
            "handler": "index.handler",
            "code": {"zipFile": zip_b64(&[("index.py", &NAMED.replace("@MARK@", &m), false)])},
        }),
    )
    .await;
    let r = srv.call("POST", &invoke_path("warm", "f"), "").await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(String::from_utf8_lossy(&r.body), "named", "{}", srv.log());
    let id = r
        .headers
        .get("x-fc-instance-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();

    // The instance is a claimed prewarmed jail.
    let fcd = srv.pid() as i32;
    let function: Vec<Proc> = marked(&m).into_iter().collect();
    assert_eq!(function.len(), 1, "{function:?}");
    let above = ancestors_below(function[0], fcd);
    assert_eq!(above.len(), 1, "expected a jail init above {function:?}");
    let init = above[0];
    assert!(
        is_prewarmed_init(init.pid),
        "the cold start did not claim the prewarmed jail"
    );

    // Exactly one instance, however many jails are prewarmed; a replacement is made ready.
    assert_eq!(instance_ids(&srv, "warm", "f").await, vec![id.clone()]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let prewarmed = status(&srv).await["isolation"]["prewarmed"]
            .as_u64()
            .unwrap_or(0);
        if prewarmed >= ready && python_blanks(&data_dir, init.pid) >= python_ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the claimed jail was not replaced: {prewarmed} prewarmed (was {ready}): {}",
            srv.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(instance_ids(&srv, "warm", "f").await, vec![id]);
    assert_eq!(status(&srv).await["instances"], 1);
    assert_eq!(budget(&srv).await, (1, 128));

    // A graceful stop takes every jail of the server along, prewarmed or not, before fcd exits.
    let before = jail_inits_of(&data_dir);
    assert!(
        before.len() as u64 > ready,
        "expected the instance's and {ready} prewarmed jails, found {before:?}"
    );
    let status = srv.terminate();
    assert!(status.success(), "fcd exited with {status}: {}", srv.log());
    let left = jail_inits_of(&data_dir);
    let instance_left: Vec<Proc> = function.iter().copied().filter(|p| running(*p)).collect();
    assert!(
        left.is_empty() && instance_left.is_empty(),
        "after a graceful stop, jail inits {left:?} and instance processes {instance_left:?} \
         of the server still run"
    );
}
