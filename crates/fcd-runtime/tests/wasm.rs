//! The `wasm` runtime through the instance manager, with WASI command modules written as
//! WebAssembly text: the event on stdin and the result on stdout, stderr in the log tail, a
//! busy loop ended by the function's timeout, `memorySize` as the guest's memory cap, a fresh
//! instance per call, and an exit status as a function error. (`wasi:http` components are
//! exercised through the SDKs in tests/sdk/test_wasm.py, with a componentize-py guest.)
#![cfg(feature = "wasm")]
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use fcd_runtime::{
    FunctionSpec, InstanceLimit, InstanceManager, InvokeRequest, NetworkMode, Registry,
    RuntimeConfig, RuntimeOptions, WasmOptions,
};
use serde_json::json;

/// Reads stdin into memory, writes `echo:` and what it read to stdout, and a line to stderr.
/// (WASI preview 1 `fd_write` may write only the first buffer of several: one per call.)
const ECHO: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "echo:")
  (data (i32.const 16) "a line for the log\n")
  (func $out (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 300) (local.get $ptr))
    (i32.store (i32.const 304) (local.get $len))
    (drop (call $write (local.get $fd) (i32.const 300) (i32.const 1) (i32.const 400))))
  (func (export "_start")
    (i32.store (i32.const 100) (i32.const 1024))
    (i32.store (i32.const 104) (i32.const 4096))
    (drop (call $read (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))
    (call $out (i32.const 1) (i32.const 0) (i32.const 5))
    (call $out (i32.const 1) (i32.const 1024) (i32.load (i32.const 200)))
    (call $out (i32.const 2) (i32.const 16) (i32.const 19))))
"#;

const BUSY: &str =
    r#"(module (memory (export "memory") 1) (func (export "_start") (loop (br 0))))"#;

/// Grows its memory a page at a time until refused, then writes how many pages it got (a
/// little-endian u32) to stdout.
const GREEDY: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (local $n i32)
    (block $refused
      (loop $more
        (br_if $refused (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $more)))
    (i32.store (i32.const 0) (local.get $n))
    (i32.store (i32.const 8) (i32.const 0))
    (i32.store (i32.const 12) (i32.const 4))
    (drop (call $write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 16)))))
"#;

/// Counts its runs in a global and in memory, and writes both counts as bytes: a guest that
/// kept state between calls would answer 2 the second time.
const COUNTER: &str = r#"
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (global $runs (mut i32) (i32.const 0))
  (func (export "_start")
    (global.set $runs (i32.add (global.get $runs) (i32.const 1)))
    (i32.store8 (i32.const 0) (global.get $runs))
    (i32.store8 (i32.const 1) (i32.add (i32.load8_u (i32.const 64)) (i32.const 1)))
    (i32.store8 (i32.const 64) (i32.load8_u (i32.const 1)))
    (i32.store (i32.const 8) (i32.const 0))
    (i32.store (i32.const 12) (i32.const 2))
    (drop (call $write (i32.const 1) (i32.const 8) (i32.const 1) (i32.const 16)))))
"#;

const EXIT3: &str = r#"
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (func (export "_start") (call $exit (i32.const 3))))
"#;

struct Fixture {
    dir: tempfile::TempDir,
    mgr: InstanceManager,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let runtimes = Registry::detect(&RuntimeOptions {
        python: "/nonexistent/python3".into(),
        node: "/nonexistent/node".into(),
        dir: dir.path().join("runtime"),
        wasm: Some(WasmOptions {
            cache_dir: dir.path().join("wasm-cache"),
            max_instances: 8,
            pooling: true,
        }),
    });
    assert!(
        runtimes.runnable().contains(&"wasm"),
        "the wasm runtime must be available: {}",
        runtimes.describe()
    );
    let mgr = InstanceManager::new(RuntimeConfig {
        region: "cn-hangzhou".into(),
        network: NetworkMode::Host,
        runtimes,
        start_timeout: Duration::from_secs(60),
        max_instances: 8,
        max_memory_mb: 4096,
        idle_timeout: Duration::from_secs(3600),
        jail: None,
        jail_unavailable: None,
        egress: None,
        egress_unavailable: None,
        prewarm: 0,
        code_store: None,
    });
    Fixture { dir, mgr }
}

impl Fixture {
    /// A function whose code package holds `app.wat` = `wat`, prepared as CreateFunction does.
    async fn function(&self, name: &str, wat: &str, timeout: u32, memory: u32) -> FunctionSpec {
        let code = self.dir.path().join(name);
        std::fs::create_dir_all(&code).unwrap();
        std::fs::write(code.join("app.wat"), wat).unwrap();
        let function: fcd_core::model::Function = serde_json::from_value(json!({
            "functionId": format!("id-{name}"), "functionName": name, "description": "",
            "runtime": "wasm", "handler": "app.wat", "timeout": timeout, "memorySize": memory,
            "instanceConcurrency": 1, "environmentVariables": {},
            "initializer": "", "initializationTimeout": 3, "caPort": 9000,
            "instanceType": "e1", "layers": [], "layersArnV2": [], "codeChecksum": "0",
            "codeSize": 0, "createdTime": "2024-01-01T00:00:00Z",
            "lastModifiedTime": "2024-01-01T00:00:00Z",
        }))
        .unwrap();
        self.mgr
            .prepare_code(&function, &code, Duration::from_secs(60))
            .await
            .unwrap();
        spec(function, &code)
    }
}

fn spec(function: fcd_core::model::Function, code: &Path) -> FunctionSpec {
    FunctionSpec {
        account_id: "1234".into(),
        service_name: "svc".into(),
        log_project: String::new(),
        log_store: String::new(),
        function,
        code_dir: code.to_path_buf(),
        image: None,
        layers: None,
        internet_access: false,
        version_id: None,
        limit: InstanceLimit::Unlimited,
        revision: "r1".into(),
        generation: 1,
        credentials: None,
    }
}

fn request(id: &str, body: &[u8]) -> InvokeRequest {
    InvokeRequest {
        request_id: id.into(),
        qualifier: "LATEST".into(),
        trace_id: None,
        body: bytes::Bytes::copy_from_slice(body).into(),
        log_tail: true,
        retry_count: 0,
        http: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_reads_the_event_and_answers_on_stdout_with_stderr_in_the_log() {
    let fx = fixture();
    let f = fx.function("echo", ECHO, 10, 128).await;
    let out = fx.mgr.invoke(&f, request("r-1", b"hello")).await.unwrap();
    assert_eq!(out.error_type, None, "{:?}", out.body);
    assert_eq!(&out.body[..], b"echo:hello");
    let tail = out.log_tail.unwrap();
    assert!(tail.contains("a line for the log"), "{tail}");
    assert!(tail.contains("FC Invoke Start RequestId: r-1"), "{tail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_loop_ends_at_the_timeout_and_the_function_serves_again() {
    let fx = fixture();
    let busy = fx.function("busy", BUSY, 1, 128).await;
    let echo = fx.function("echo", ECHO, 10, 128).await;
    let out = fx.mgr.invoke(&busy, request("r-busy", b"")).await.unwrap();
    assert_eq!(out.error_type.as_deref(), Some("UnhandledInvocationError"));
    let msg = String::from_utf8_lossy(&out.body);
    assert!(msg.contains("timed out after 1 seconds"), "{msg}");
    // Other functions ran meanwhile on the same threads, and still do.
    let ok = fx.mgr.invoke(&echo, request("r-2", b"x")).await.unwrap();
    assert_eq!(&ok.body[..], b"echo:x");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_size_caps_the_guests_memory() {
    let fx = fixture();
    for mb in [128u32, 256] {
        let f = fx.function(&format!("greedy{mb}"), GREEDY, 30, mb).await;
        let out = fx.mgr.invoke(&f, request("r-m", b"")).await.unwrap();
        assert_eq!(out.error_type, None, "{:?}", out.body);
        let pages = u32::from_le_bytes(out.body[..4].try_into().unwrap());
        // One 64 KiB page to start with, then as many as fit in memorySize.
        assert_eq!(pages + 1, mb * 16, "{mb} MB");
        assert!(
            out.max_memory_mb > f64::from(mb) - 1.0,
            "{}",
            out.max_memory_mb
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_gets_a_fresh_instance() {
    let fx = fixture();
    let f = fx.function("counter", COUNTER, 10, 128).await;
    for i in 0..3 {
        let out = fx
            .mgr
            .invoke(&f, request(&format!("r-{i}"), b""))
            .await
            .unwrap();
        assert_eq!(&out.body[..], &[1u8, 1u8], "call {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exit_status_is_a_function_error() {
    let fx = fixture();
    let f = fx.function("exit3", EXIT3, 10, 128).await;
    let out = fx.mgr.invoke(&f, request("r-x", b"")).await.unwrap();
    assert_eq!(out.error_type.as_deref(), Some("UnhandledInvocationError"));
    let msg = String::from_utf8_lossy(&out.body);
    assert!(msg.contains("exited with status 3"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_that_cannot_run_is_refused_before_any_call() {
    let fx = fixture();
    let code = fx.dir.path().join("bad");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("app.wat"),
        "(module (func (export \"_start\") i32.add))",
    )
    .unwrap();
    std::fs::write(code.join("junk.wasm"), b"not wasm").unwrap();
    let mut function: fcd_core::model::Function = serde_json::from_value(json!({
        "functionId": "id", "functionName": "bad", "description": "",
        "runtime": "wasm", "handler": "app.wat", "timeout": 3, "memorySize": 128,
        "instanceConcurrency": 1, "environmentVariables": {},
        "initializer": "", "initializationTimeout": 3, "caPort": 9000,
        "instanceType": "e1", "layers": [], "layersArnV2": [], "codeChecksum": "0",
        "codeSize": 0, "createdTime": "2024-01-01T00:00:00Z",
        "lastModifiedTime": "2024-01-01T00:00:00Z",
    }))
    .unwrap();
    let wait = Duration::from_secs(60);
    let e = fx
        .mgr
        .prepare_code(&function, &code, wait)
        .await
        .unwrap_err();
    assert!(e.contains("does not compile"), "{e}");
    function.handler = "junk.wasm".into();
    let e = fx
        .mgr
        .prepare_code(&function, &code, wait)
        .await
        .unwrap_err();
    assert!(e.contains("is not WebAssembly"), "{e}");
    std::fs::write(code.join("nostart.wat"), "(module (memory 1))").unwrap();
    function.handler = "nostart.wat".into();
    let e = fx
        .mgr
        .prepare_code(&function, &code, wait)
        .await
        .unwrap_err();
    assert!(e.contains("_start"), "{e}");
}
