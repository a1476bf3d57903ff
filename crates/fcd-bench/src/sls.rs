//! serverless-offline, the local AWS Lambda + API Gateway emulator FaaS users otherwise pick:
//! the python3 warm column of `--serverless-offline`.
//!
//! `serverless@3` and `serverless-offline@13.9.0` are installed with npm into
//! `~/.cache/fcd-bench-sls` the first time (nothing of it runs under `--quick` or in CI). A
//! service directory of the run's own holds a `serverless.yml` with one python3.11 function,
//! `handler.handler`, behind an `http` event (`POST /dev/invoke`: the API Gateway path a user
//! calls), and `handler.py` answering `{"statusCode": 200, "body": <the request body>}`.
//! `serverless offline` runs with its defaults (no `--useInProcess`, `--reloadHandler` or
//! `--noTimeout`: python handlers run in a kept python process per concurrent call, as a user
//! gets them) and only its ports chosen; it spawns `python3` from `PATH`, so the directory of
//! the interpreter fcd is given comes first there. Telemetry and notifications are off, and
//! it needs neither AWS credentials nor the network.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::sys::{self, Pinning};

const PACKAGES: [&str; 2] = ["serverless@3", "serverless-offline@13.9.0"];

const SERVERLESS_YML: &str = r#"service: fcd-bench
frameworkVersion: "3"
provider:
  name: aws
  runtime: python3.11
  stage: dev
  region: us-east-1
functions:
  noop:
    handler: handler.handler
    events:
      - http:
          path: invoke
          method: post
plugins:
  - serverless-offline
"#;

/// The same no-op as fcd's python3 function (which returns its event), in Lambda's
/// proxy-integration shape.
const HANDLER_PY: &str = "def handler(event, context):\n    return {\"statusCode\": 200, \"body\": event.get(\"body\") or \"\"}\n";

/// The request path of the function's `http` event.
pub(crate) const PATH: &str = "/dev/invoke";

fn cache_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from);
    home.join(".cache").join("fcd-bench-sls")
}

/// The serverless CLI's entry point, installing both packages first when missing.
fn install() -> Result<PathBuf> {
    let dir = cache_dir();
    let cli = dir.join("node_modules/serverless/bin/serverless.js");
    let plugin = dir.join("node_modules/serverless-offline/package.json");
    if cli.is_file() && plugin.is_file() {
        return Ok(cli);
    }
    std::fs::create_dir_all(&dir)?;
    println!(
        "installing {} into {} with npm…",
        PACKAGES.join(" "),
        dir.display()
    );
    let out = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .args(PACKAGES)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .context("running npm (needed for --serverless-offline)")?;
    if !out.status.success() || !cli.is_file() {
        bail!(
            "npm install {} failed ({}): {}",
            PACKAGES.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(cli)
}

/// A running `serverless offline`; its whole process group (node and the python processes it
/// started) is stopped when dropped.
pub(crate) struct Offline {
    child: Child,
    pub(crate) addr: SocketAddr,
}

impl Drop for Offline {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

impl Offline {
    /// node's; the python processes it starts are below it.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Installs (if needed) and starts serverless-offline in `dir` with `python`'s directory
    /// first on `PATH`; returns once the function's path answers 200.
    pub(crate) fn start(dir: &Path, node: &Path, python: &Path, pin: &Pinning) -> Result<Offline> {
        let cli = install()?;
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("serverless.yml"), SERVERLESS_YML)?;
        std::fs::write(dir.join("handler.py"), HANDLER_PY)?;
        let modules = dir.join("node_modules");
        if !modules.exists() {
            std::os::unix::fs::symlink(cache_dir().join("node_modules"), &modules)?;
        }
        let home = dir.join("home");
        std::fs::create_dir_all(&home)?;
        let port = sys::free_port()?;
        let lambda_port = sys::free_port()?;
        let ws_port = sys::free_port()?;
        let mut path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .collect::<Vec<_>>();
        if let Some(d) = python.parent() {
            path.insert(0, d.to_path_buf());
        }
        if let Some(d) = node.parent() {
            path.push(d.to_path_buf());
        }
        let log = std::fs::File::create(dir.join("offline.log"))?;
        let mut cmd = Command::new(node);
        cmd.arg(&cli)
            .arg("offline")
            .args(["--httpPort", &port.to_string()])
            .args(["--lambdaPort", &lambda_port.to_string()])
            .args(["--websocketPort", &ws_port.to_string()])
            .current_dir(dir)
            .env_clear()
            .env("PATH", std::env::join_paths(path)?)
            .env("HOME", &home)
            .env("LANG", "C.UTF-8")
            .env("SLS_TELEMETRY_DISABLED", "1")
            .env("SLS_NOTIFICATIONS_MODE", "off")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let (child, _) = pin.spawn(&mut cmd)?;
        let mut offline = Offline {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if answers(offline.addr) {
                return Ok(offline);
            }
            let log = || std::fs::read_to_string(dir.join("offline.log")).unwrap_or_default();
            if let Some(status) = offline.child.try_wait()? {
                bail!(
                    "serverless offline exited during start-up ({status}): {}",
                    log()
                );
            }
            if Instant::now() > deadline {
                bail!("serverless offline did not answer within 60 s: {}", log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One `POST /dev/invoke` on a fresh connection answered 200.
fn answers(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let req = format!(
        "POST {PATH} HTTP/1.1\r\nhost: {addr}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    resp.starts_with(b"HTTP/1.1 200")
}
