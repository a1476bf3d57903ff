//! nginx as a bare reverse proxy in front of a standalone runtime: the warm and payload
//! scenarios' third column, what one extra loopback hop costs when the proxy does nothing
//! else (no signature, no routing, no scheduling).
//!
//! The harness writes a config into a directory of its own and runs nginx in the foreground
//! (`daemon off; master_process off; worker_processes 1`), on the server CPU when pinned,
//! listening on a free loopback port. Upstream connections are kept alive (`keepalive 64`,
//! HTTP/1.1, `Connection` cleared), and bodies are streamed both ways
//! (`proxy_request_buffering off`, `proxy_buffering off`) with 64 KiB buffers, so a 16 MB
//! echo is neither spooled to a temp file nor moved 4 KiB at a time.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::sys::{self, Guard, Pinning};

/// The nginx binary: `/usr/sbin/nginx` (Debian's, off a non-root `PATH`) or `nginx` on `PATH`.
pub(crate) fn find() -> Option<PathBuf> {
    let sbin = Path::new("/usr/sbin/nginx");
    if sbin.is_file() {
        return Some(sbin.to_path_buf());
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
    })
}

/// A running nginx proxying every request to one upstream; stopped when dropped.
pub(crate) struct Nginx {
    child: Guard,
    pub(crate) addr: SocketAddr,
}

fn config(dir: &Path, port: u16, upstream: SocketAddr) -> String {
    let d = dir.display();
    format!(
        "daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    client_max_body_size 64m;
    client_body_buffer_size 64k;
    keepalive_requests 100000000;
    upstream function {{
        server {upstream};
        keepalive 64;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://function;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_buffer_size 64k;
            proxy_buffers 4 64k;
        }}
    }}
}}
"
    )
}

impl Nginx {
    /// Starts `bin` in `dir` (created) in front of `upstream`; returns once it accepts.
    pub(crate) fn start(
        bin: &Path,
        dir: &Path,
        upstream: SocketAddr,
        pin: &Pinning,
    ) -> Result<Nginx> {
        std::fs::create_dir_all(dir)?;
        let port = sys::free_port()?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(dir, port, upstream))?;
        let mut cmd = Command::new(bin);
        // -e: the error log before the config is read (the default is under /var/log).
        cmd.arg("-p")
            .arg(dir)
            .arg("-e")
            .arg(dir.join("error.log"))
            .arg("-c")
            .arg(&conf)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let (child, _) = pin.spawn(&mut cmd)?;
        let mut child = Guard(child);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(addr).is_ok() {
                break;
            }
            let log = || std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            if let Some(status) = child.0.try_wait().context("waiting for nginx")? {
                bail!("nginx exited during start-up ({status}): {}", log());
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on {addr} within 10 s: {}", log());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(Nginx { child, addr })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }
}
