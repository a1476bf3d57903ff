//! The fcd server under test: starting it, timing its start-up, and driving its API with
//! signed requests as the SDKs do.

use std::ffi::OsString;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};

use crate::http::{Creds, Reply, Sender, connect, send, signed_request};
use crate::sys::{Guard, Pinning};

pub(crate) const KEY_ID: &str = "benchAccessKeyId";
pub(crate) const SECRET: &str = "benchAccessKeySecret";
pub(crate) const ACCOUNT_ID: &str = "1234567890123456";
/// The service every benchmark function lives in.
pub(crate) const SERVICE: &str = "bench";

pub(crate) fn creds() -> Creds {
    Creds {
        key_id: KEY_ID.into(),
        secret: SECRET.into(),
    }
}

/// A running `fcd serve`.
pub(crate) struct FcdServer {
    child: Option<Guard>,
    pub(crate) pid: u32,
    pub(crate) addr: SocketAddr,
    /// The metrics listener (`--metrics-listen`), where `/metrics` is read.
    pub(crate) metrics_addr: SocketAddr,
    pub(crate) log: PathBuf,
    /// Spawn → `listen-addr` written and a TCP connect succeeded.
    pub(crate) ready: Duration,
}

impl FcdServer {
    /// Starts fcd with a fresh data dir under `dir` and `args` after the harness's own, and
    /// waits until it is ready.
    pub(crate) fn start(
        fcd: &Path,
        dir: &Path,
        pin: &Pinning,
        args: &[OsString],
    ) -> Result<FcdServer> {
        FcdServer::start_on(fcd, dir, pin, "127.0.0.1:0", args)
    }

    /// [`FcdServer::start`] listening on `listen` (a cluster node's address must be known
    /// before it starts, for `--advertise-url`).
    pub(crate) fn start_on(
        fcd: &Path,
        dir: &Path,
        pin: &Pinning,
        listen: &str,
        args: &[OsString],
    ) -> Result<FcdServer> {
        let data = dir.join("data");
        let log_path = dir.join("fcd.log");
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new(fcd);
        cmd.args(["serve", "--listen", listen, "--data-dir"])
            .arg(&data)
            .env("FCD_ACCESS_KEY_ID", KEY_ID)
            .env("FCD_ACCESS_KEY_SECRET", SECRET)
            .env("FCD_ACCOUNT_ID", ACCOUNT_ID)
            .env("FCD_REGION", "cn-hangzhou")
            .env("RUST_LOG", "info")
            .env_remove("FCD_PYTHON")
            .env_remove("FCD_NODE")
            .env_remove("FCD_PREWARM")
            .env_remove("FCD_METRICS_LISTEN")
            // Compiled wasm components are cached per server, under the run's temp dir: a run
            // never reuses what an earlier one compiled (nor another server's cache).
            .env("FCD_WASM_CACHE_DIR", dir.join("wasm-cache"))
            // custom-container images come from the bench's registry on loopback, over plain
            // HTTP; they are pulled into the server's own (fresh) data dir, with no credentials.
            .env("FCD_INSECURE_REGISTRIES", "127.0.0.1")
            .env_remove("FCD_REGISTRY_AUTH_FILE")
            .env_remove("FCD_IMAGE_CACHE_DIR")
            // Cluster settings come from the arguments only, never from the harness's shell.
            .env_remove("FCD_STORE")
            .env_remove("FCD_QUEUE")
            .env_remove("FCD_NODE_ID")
            .env_remove("FCD_ADVERTISE_URL")
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let (child, started) = pin.spawn(&mut cmd)?;
        let pid = child.id();
        let mut child = Guard(child);
        let addr_file = data.join("listen-addr");
        let deadline = started + Duration::from_secs(30);
        // fcd writes the metrics address before the API's, so it is there once the API is.
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && let Ok(addr) = text.trim().parse::<SocketAddr>()
                && std::net::TcpStream::connect(addr).is_ok()
            {
                break addr;
            }
            if let Some(status) = child.0.try_wait()? {
                bail!(
                    "fcd exited during start-up ({status}): {}",
                    tail(&log_path, 2000)
                );
            }
            if Instant::now() > deadline {
                bail!("fcd was not ready after 30 s: {}", tail(&log_path, 2000));
            }
            std::thread::sleep(Duration::from_micros(200));
        };
        let ready = started.elapsed();
        let metrics_addr = std::fs::read_to_string(data.join("metrics-addr"))
            .context("fcd wrote no metrics-addr")?
            .trim()
            .parse()
            .context("metrics-addr")?;
        Ok(FcdServer {
            child: Some(child),
            pid,
            addr,
            metrics_addr,
            log: log_path,
            ready,
        })
    }

    /// SIGTERM and wait for the exit.
    pub(crate) fn stop(&mut self) {
        if let Some(mut g) = self.child.take() {
            crate::sys::stop(&mut g.0, Duration::from_secs(15));
        }
    }

    pub(crate) fn log_tail(&self) -> String {
        tail(&self.log, 3000)
    }

    /// How fcd said its instances get their network.
    pub(crate) fn instance_network(&self) -> Option<String> {
        let log = std::fs::read_to_string(&self.log).ok()?;
        if log.contains("private network namespaces") {
            Some("namespace (a private network namespace per instance)".into())
        } else if log.contains("share the host network") {
            Some("host (instances share the host network)".into())
        } else {
            None
        }
    }
}

impl Drop for FcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(n);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    text[start..].to_owned()
}

/// Control-plane calls over one kept-alive connection, and metrics over another.
pub(crate) struct Api {
    addr: SocketAddr,
    host: HeaderValue,
    creds: Creds,
    sender: Option<Sender>,
    metrics_addr: SocketAddr,
    metrics_sender: Option<Sender>,
}

impl Api {
    pub(crate) fn new(server: &FcdServer) -> Result<Api> {
        Ok(Api {
            addr: server.addr,
            host: HeaderValue::from_str(&server.addr.to_string())?,
            creds: creds(),
            sender: None,
            metrics_addr: server.metrics_addr,
            metrics_sender: None,
        })
    }

    pub(crate) async fn sender(&mut self) -> Result<&mut Sender> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.sender = Some(connect(self.addr).await?);
        }
        self.sender
            .as_mut()
            .ok_or_else(|| anyhow!("no connection to fcd"))
    }

    /// `GET /metrics` from the metrics listener (unsigned; the API port does not serve it).
    async fn metrics_text(&mut self) -> Result<String> {
        if self.metrics_sender.as_ref().is_none_or(|s| s.is_closed()) {
            self.metrics_sender = Some(connect(self.metrics_addr).await?);
        }
        let sender = self
            .metrics_sender
            .as_mut()
            .ok_or_else(|| anyhow!("no connection to fcd's metrics listener"))?;
        let req = http::Request::builder()
            .method(Method::GET)
            .uri("/metrics")
            .header(
                http::header::HOST,
                HeaderValue::from_str(&self.metrics_addr.to_string())?,
            )
            .body(http_body_util::Full::new(bytes::Bytes::new()))?;
        let reply = crate::http::send(sender, req)
            .await
            .context("GET /metrics")?;
        if reply.status != 200 {
            bail!("GET /metrics: {}", reply.describe());
        }
        Ok(String::from_utf8_lossy(&reply.body).into_owned())
    }

    /// A metric without labels from `GET /metrics`.
    pub(crate) async fn metric(&mut self, name: &str) -> Result<f64> {
        let text = self.metrics_text().await?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| anyhow!("no {name} in /metrics"))
    }

    /// `fcd_invocations_total` from `GET /metrics`.
    pub(crate) async fn invocations_total(&mut self) -> Result<f64> {
        self.metric("fcd_invocations_total").await
    }

    /// Waits until at most `n` instances hold a share of the server's budget: fcd gives an
    /// instance's reservation back only once its processes are gone (prewarmed jails hold
    /// none).
    pub(crate) async fn wait_instances_at_most(&mut self, n: f64, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let used = self.metric("fcd_budget_instances_used").await?;
            if used <= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "fcd still reserves {used} instance(s) after {limit:?} (at most {n} expected)"
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `GET /status`, signed (fcd serves it to signed requests only).
    pub(crate) async fn status(&mut self) -> Result<serde_json::Value> {
        let reply = self.call(Method::GET, "/status", "").await?;
        serde_json::from_slice(&reply.body).context("GET /status: not JSON")
    }

    /// A signed call; fails unless the status is 2xx.
    pub(crate) async fn call(&mut self, method: Method, path: &str, body: &str) -> Result<Reply> {
        let reply = self.call_raw(method.clone(), path, body).await?;
        if !(200..300).contains(&reply.status) {
            bail!("{method} {path}: {}", reply.describe());
        }
        Ok(reply)
    }

    /// A signed call, whatever its status.
    pub(crate) async fn call_raw(
        &mut self,
        method: Method,
        path: &str,
        body: &str,
    ) -> Result<Reply> {
        let mut h = HeaderMap::new();
        if !body.is_empty() {
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        let req = signed_request(
            &self.creds,
            &self.host,
            &method,
            path,
            h,
            Bytes::copy_from_slice(body.as_bytes()),
        )?;
        let sender = self.sender().await?;
        send(sender, req)
            .await
            .with_context(|| format!("{method} {path}"))
    }

    /// Creates the benchmark service; one that already exists is fine.
    pub(crate) async fn create_service(&mut self) -> Result<()> {
        let body = serde_json::json!({ "serviceName": SERVICE, "description": "fcd-bench" });
        let reply = self
            .call_raw(Method::POST, "/2021-04-06/services", &body.to_string())
            .await?;
        if !(200..300).contains(&reply.status) && reply.status != 409 {
            bail!("creating service {SERVICE}: {}", reply.describe());
        }
        Ok(())
    }

    pub(crate) async fn create_function(&mut self, f: &FunctionDef) -> Result<()> {
        let mut body = serde_json::json!({
            "functionName": f.name,
            "runtime": f.runtime,
            "handler": f.handler,
            "timeout": 60,
            "memorySize": f.memory_mb,
            "instanceConcurrency": f.instance_concurrency,
            "code": { "zipFile": f.zip_b64 },
        });
        if !f.env.is_empty() {
            let env: serde_json::Map<String, serde_json::Value> = f
                .env
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                .collect();
            body["environmentVariables"] = serde_json::Value::Object(env);
        }
        self.call(
            Method::POST,
            &format!("/2021-04-06/services/{SERVICE}/functions"),
            &body.to_string(),
        )
        .await
        .with_context(|| format!("creating function {}", f.name))?;
        Ok(())
    }

    /// An HTTP trigger on `function` admitting anonymous `methods` (`triggerConfig` is a JSON
    /// string for the 2021-04-06 API).
    pub(crate) async fn create_http_trigger(
        &mut self,
        function: &str,
        trigger: &str,
        methods: &[&str],
    ) -> Result<()> {
        let config = serde_json::json!({ "authType": "anonymous", "methods": methods });
        let body = serde_json::json!({
            "triggerName": trigger,
            "triggerType": "http",
            "triggerConfig": config.to_string(),
        });
        self.call(
            Method::POST,
            &format!("/2021-04-06/services/{SERVICE}/functions/{function}/triggers"),
            &body.to_string(),
        )
        .await
        .with_context(|| format!("creating HTTP trigger {trigger} of {function}"))?;
        Ok(())
    }

    pub(crate) async fn delete_trigger(&mut self, function: &str, trigger: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/2021-04-06/services/{SERVICE}/functions/{function}/triggers/{trigger}"),
            "",
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn delete_function(&mut self, name: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/2021-04-06/services/{SERVICE}/functions/{name}"),
            "",
        )
        .await?;
        Ok(())
    }
}

/// A function to deploy.
pub(crate) struct FunctionDef {
    pub(crate) name: String,
    pub(crate) runtime: String,
    pub(crate) handler: String,
    pub(crate) instance_concurrency: u32,
    pub(crate) memory_mb: u32,
    pub(crate) zip_b64: String,
    /// `environmentVariables`, when any.
    pub(crate) env: Vec<(String, String)>,
}

/// A base64 zip of `(name, content, mode)` entries, as CreateFunction takes it.
pub(crate) fn zip_b64(files: &[(&str, &[u8], u32)]) -> Result<String> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, content, mode) in files {
        let opts = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
        w.start_file(*name, opts)?;
        w.write_all(content)?;
    }
    let bytes = w.finish()?.into_inner();
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
}
