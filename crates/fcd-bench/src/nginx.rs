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
//!
//! The cluster scenario's balancer is the same server with several upstreams, taken in turn
//! (nginx's default round-robin), passing the client's `Host` on: the API's signature covers
//! it, and a node forwards a call to a peer with the client's headers as they came.

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

/// A running nginx proxying every request to its upstream(s); stopped when dropped.
pub(crate) struct Nginx {
    child: Guard,
    pub(crate) addr: SocketAddr,
}

/// How nginx stands in front of its upstreams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A bare reverse proxy in front of one runtime (`Host` becomes the upstream's name).
    Proxy,
    /// A load balancer in front of fcd nodes: the client's `Host` is kept.
    Balancer,
}

fn config(dir: &Path, port: u16, upstreams: &[SocketAddr], role: Role) -> String {
    let d = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|u| format!("        server {u};\n"))
        .collect();
    let host = match role {
        Role::Proxy => "",
        Role::Balancer => "            proxy_set_header Host $http_host;\n",
    };
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
{servers}        keepalive 64;
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://function;
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
{host}            proxy_request_buffering off;
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
        Nginx::launch(bin, dir, &[upstream], Role::Proxy, pin)
    }

    /// Starts `bin` in `dir` (created) as a round-robin balancer over `upstreams` (fcd
    /// nodes), keeping the client's `Host`; returns once it accepts.
    pub(crate) fn start_balancer(
        bin: &Path,
        dir: &Path,
        upstreams: &[SocketAddr],
        pin: &Pinning,
    ) -> Result<Nginx> {
        if upstreams.is_empty() {
            bail!("a balancer needs at least one upstream");
        }
        Nginx::launch(bin, dir, upstreams, Role::Balancer, pin)
    }

    fn launch(
        bin: &Path,
        dir: &Path,
        upstreams: &[SocketAddr],
        role: Role,
        pin: &Pinning,
    ) -> Result<Nginx> {
        std::fs::create_dir_all(dir)?;
        let port = sys::free_port()?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config(dir, port, upstreams, role))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_balancer_lists_every_node_and_keeps_the_host() {
        let nodes: Vec<SocketAddr> = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let c = config(Path::new("/tmp/x"), 9000, &nodes, Role::Balancer);
        for n in &nodes {
            assert_eq!(c.matches(&format!("server {n};")).count(), 1, "{c}");
        }
        assert!(c.contains("proxy_set_header Host $http_host;"), "{c}");
        assert!(c.contains("listen 127.0.0.1:9000;"), "{c}");
        // Round-robin is nginx's default: no other balancing method may be configured.
        for method in ["least_conn", "ip_hash", "hash ", "random"] {
            assert!(!c.contains(method), "{method} in {c}");
        }
    }

    #[test]
    fn a_bare_proxy_has_one_upstream_and_leaves_the_host_alone() {
        let up: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let c = config(Path::new("/tmp/x"), 9000, &[up], Role::Proxy);
        assert_eq!(c.matches("server 127.0.0.1:").count(), 1, "{c}");
        assert!(!c.contains("proxy_set_header Host"), "{c}");
        assert!(c.contains("keepalive 64;"), "{c}");
    }
}
