//! A real `fcd serve` on an ephemeral loopback port with a temporary data dir, and a client that
//! signs requests exactly as the official SDKs do.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub const KEY_ID: &str = "testAccessKeyId";
pub const SECRET: &str = "testAccessKeySecret";
pub const ACCOUNT: &str = "1234567890123456";
/// The arguments that turn on the metrics listener on a free port.
pub const METRICS: [&str; 2] = ["--metrics-listen", "127.0.0.1:0"];

pub struct TestServer {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub addr: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// A header's value as text; panics (failing the test) when it is absent or not text.
    pub fn header(&self, name: &str) -> String {
        let v = self.headers.get(name);
        let v = v.unwrap_or_else(|| panic!("no {name} header"));
        v.to_str().unwrap().to_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Asserts FC's error shape and returns the error code.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let rid = self
            .headers
            .get("x-fc-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        assert!(!rid.is_empty(), "X-Fc-Request-Id missing");
        assert_eq!(v["RequestId"], rid, "RequestId must match the header: {v}");
        assert_eq!(v["ErrorCode"], v["Code"], "{v}");
        assert_eq!(v["ErrorMessage"], v["Message"], "{v}");
        assert!(
            v["ErrorMessage"].as_str().is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        v["ErrorCode"].as_str().unwrap_or_default().to_owned()
    }
}

fn fcd_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_fcd"))
}

impl TestServer {
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// Starts `fcd serve` with `extra_args`. fcd refuses to run functions unjailed unless
    /// asked, and only root can jail: where the tests do not run as root and `extra_args` say
    /// nothing about isolation, the harness asks for `--isolation none` explicitly (tests that
    /// need the jail check for it and say when they skip).
    pub fn start_with(extra_args: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let log = std::fs::File::create(dir.path().join("fcd.log")).unwrap();
        let unjailed: &[&str] =
            if nix::unistd::geteuid().is_root() || extra_args.contains(&"--isolation") {
                &[]
            } else {
                &["--isolation", "none"]
            };
        let child = Command::new(fcd_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .args(unjailed)
            .args(extra_args)
            .env("FCD_ACCESS_KEY_ID", KEY_ID)
            .env("FCD_ACCESS_KEY_SECRET", SECRET)
            .env("FCD_ACCOUNT_ID", ACCOUNT)
            .env("FCD_REGION", "cn-hangzhou")
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let addr_file = data.join("listen-addr");
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            if let Ok(a) = std::fs::read_to_string(&addr_file) {
                break a.trim().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "fcd did not start: {}",
                read_log(dir.path())
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let client = Client::builder(TokioExecutor::new()).build_http();
        TestServer {
            child: Some(child),
            dir,
            addr,
            client,
        }
    }

    pub fn log(&self) -> String {
        read_log(self.dir.path())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// Sends a request exactly as built, without signing.
    pub async fn raw(&self, method: &str, path: &str, headers: HeaderMap, body: Vec<u8>) -> Reply {
        self.raw_at(&self.addr, method, path, headers, body).await
    }

    /// [`Self::raw`] to another of the server's listeners.
    pub async fn raw_at(
        &self,
        addr: &str,
        method: &str,
        path: &str,
        headers: HeaderMap,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(format!("http://{addr}{path}"))
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        *req.headers_mut() = headers;
        let resp = self.client.request(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        Reply {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: body.collect().await.unwrap().to_bytes(),
        }
    }

    /// Headers of an ACS3-signed request (as the 2021-04-06 SDK signs it).
    pub fn acs3_headers(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        secret: &str,
        key_id: &str,
        now: SystemTime,
    ) -> HeaderMap {
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_str(&self.addr).unwrap());
        h.insert("x-acs-version", HeaderValue::from_static("2021-04-06"));
        h.insert("accept", HeaderValue::from_static("application/json"));
        if !body.is_empty() && !path.ends_with("/invocations") {
            h.insert(
                "content-type",
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        let nonce = uuid_like();
        fcd_sign::sign_acs3(key_id, secret, method, p, q, &mut h, body, now, &nonce).unwrap();
        h
    }

    /// A correctly signed API call.
    pub async fn call(&self, method: &str, path: &str, body: impl Into<Vec<u8>>) -> Reply {
        self.call_with(method, path, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: &str,
        path: &str,
        body: impl Into<Vec<u8>>,
        extra: &[(&'static str, &str)],
    ) -> Reply {
        let body = body.into();
        let (p, q) = path.split_once('?').unwrap_or((path, ""));
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_str(&self.addr).unwrap());
        h.insert("x-acs-version", HeaderValue::from_static("2021-04-06"));
        for (k, v) in extra {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        if !body.is_empty() && !path.ends_with("/invocations") {
            h.insert(
                "content-type",
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        fcd_sign::sign_acs3(
            KEY_ID,
            SECRET,
            method,
            p,
            q,
            &mut h,
            &body,
            SystemTime::now(),
            &uuid_like(),
        )
        .unwrap();
        self.raw(method, path, h, body).await
    }

    /// `GET /status`, signed (it is not served to unsigned requests).
    pub async fn status(&self) -> serde_json::Value {
        let r = self.call("GET", "/status", "").await;
        assert_eq!(r.status, 200, "GET /status: {:?}", r.body);
        r.json()
    }

    /// The address of the metrics listener; the server must have been started with
    /// `--metrics-listen 127.0.0.1:0` (see [`METRICS`]).
    pub fn metrics_addr(&self) -> String {
        let file = self.dir.path().join("data").join("metrics-addr");
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| {
                panic!(
                    "no {}: start the server with --metrics-listen ({e})",
                    file.display()
                )
            })
            .trim()
            .to_owned()
    }

    /// `GET /metrics` from the metrics listener (Prometheus text).
    pub async fn metrics(&self) -> String {
        let r = self
            .raw_at(
                &self.metrics_addr(),
                "GET",
                "/metrics",
                HeaderMap::new(),
                Vec::new(),
            )
            .await;
        assert_eq!(r.status, 200, "GET /metrics: {:?}", r.body);
        String::from_utf8_lossy(&r.body).into_owned()
    }

    /// SIGTERM, then wait (bounded) for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server already stopped");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("fcd did not stop after SIGTERM: {}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // A graceful stop lets fcd remove what it made on the host (its cgroups); a server
            // that does not stop in time is killed.
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn read_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("fcd.log")).unwrap_or_default()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:032x}",
        t ^ u128::from(N.fetch_add(1, Ordering::Relaxed)) << 64
    )
}

/// A base64 zip of `files` (name, content, executable).
pub fn zip_b64(files: &[(&str, &str, bool)]) -> String {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body, exec) in files {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(if *exec {
            0o755
        } else {
            0o644
        });
        w.start_file(*name, opts).unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(w.finish().unwrap().into_inner())
}

/// Whether a process is still running (a zombie counts as gone).
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            !matches!(state, Some("Z") | Some("X"))
        }
        Err(_) => false,
    }
}

/// Polls until none of `pids` runs; false if some still do after `limit`.
pub fn all_gone(pids: &[i32], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if pids.iter().all(|p| !alive(*p)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    pids.iter().all(|p| !alive(*p))
}

/// The 2021-04-06 InvokeFunction path of a function.
pub fn invoke_path(service: &str, function: &str) -> String {
    format!("/2021-04-06/services/{service}/functions/{function}/invocations")
}

/// The environments of the jail inits (`fcd __fcd-jail-init`) of the server or manager using
/// `data_dir`: a jail started for a function carries the function's environment in its spec,
/// a prewarmed one gets it only through its assignment pipe.
pub fn jail_init_environs(data_dir: &Path) -> Vec<String> {
    let read = |pid: &str, what: &str| {
        String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/{what}")).unwrap_or_default())
            .into_owned()
    };
    let dir = data_dir.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|p| p.parse::<u32>().is_ok())
        .filter(|p| read(p, "cmdline").contains("__fcd-jail-init"))
        .map(|p| read(&p, "environ"))
        .filter(|env| env.contains(&dir))
        .collect()
}
