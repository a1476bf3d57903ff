//! `--isolation`: fcd jails by default, and where it cannot it refuses to start — naming what is
//! missing and the explicit way out — instead of silently running functions unjailed.
//!
//! The jail needs root, so the refusal is seen by running fcd as an unprivileged user: `nobody`
//! when the tests run as root (from a copy of the binary it can execute), the tests' own user
//! otherwise.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A world-readable scratch dir with a copy of fcd that an unprivileged user can run.
struct Unprivileged {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl Unprivileged {
    fn new() -> Unprivileged {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let bin = dir.path().join("fcd");
        std::fs::copy(env!("CARGO_BIN_EXE_fcd"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        Unprivileged { dir, bin }
    }

    fn data(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `fcd serve` as an unprivileged user.
    fn serve(&self, data: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .args(extra)
            .env("FCD_ACCESS_KEY_ID", "testAccessKeyId")
            .env("FCD_ACCESS_KEY_SECRET", "testAccessKeySecret")
            .env("FCD_ACCOUNT_ID", "1234567890123456")
            .env_remove("FCD_ISOLATION")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        if nix::unistd::geteuid().is_root() {
            cmd.uid(65534).gid(65534);
        }
        cmd
    }
}

/// Runs `cmd` to its end (bounded: a hang is a failure, not a pass).
fn run_to_end(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("fcd serve kept running instead of refusing to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn without_a_jail_fcd_refuses_to_start_and_says_why() {
    let u = Unprivileged::new();
    // The default, and `auto` (which used to fall back to unjailed instances), alike.
    for (name, extra) in [("default", &[][..]), ("auto", &["--isolation", "auto"][..])] {
        let data = u.data(name);
        let out = run_to_end(u.serve(&data, extra));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: started unjailed: {stderr}");
        assert!(
            stderr.contains("cannot be jailed") && stderr.contains("not running as root"),
            "{name}: the refusal does not say what is missing: {stderr}"
        );
        assert!(
            stderr.contains("--isolation none"),
            "{name}: the refusal does not name the way out: {stderr}"
        );
        assert!(
            !data.join("listen-addr").exists(),
            "{name}: it listened anyway"
        );
    }
}

#[test]
fn asked_for_no_jail_fcd_starts_and_says_so() {
    let u = Unprivileged::new();
    let data = u.data("none");
    let mut cmd = u.serve(&data, &["--isolation", "none"]);
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        if let Ok(a) = std::fs::read_to_string(data.join("listen-addr")) {
            break a.trim().to_owned();
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "fcd --isolation none exited"
        );
        assert!(
            Instant::now() < deadline,
            "fcd --isolation none did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // /status (signed: it is not served to anonymous callers) tells the truth about it.
    let status = {
        use std::io::{Read, Write};
        let mut h = http::HeaderMap::new();
        h.insert("host", http::HeaderValue::from_str(&addr).unwrap());
        h.insert(
            "x-acs-version",
            http::HeaderValue::from_static("2021-04-06"),
        );
        fcd_sign::sign_acs3(
            "testAccessKeyId",
            "testAccessKeySecret",
            "GET",
            "/status",
            "",
            &mut h,
            b"",
            std::time::SystemTime::now(),
            "0123456789abcdef0123456789abcdef",
        )
        .unwrap();
        let mut req = String::from("GET /status HTTP/1.1\r\nConnection: close\r\n");
        for (k, v) in &h {
            req.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
        }
        req.push_str("\r\n");
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        text
    };
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let body = status.split("\r\n\r\n").nth(1).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| {
        panic!("no JSON in the /status answer: {status}");
    });
    assert_eq!(v["isolation"]["jailed"], false, "{v}");
    let missing = v["isolation"]["missing"].to_string();
    assert!(missing.contains("--isolation none"), "{v}");
}
