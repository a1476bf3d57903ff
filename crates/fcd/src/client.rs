//! What the client subcommands (`fcd iam`, `fcd logs`) share: which server to talk to, the
//! account's key, and sending a request signed with it (ACS3-HMAC-SHA256, as the SDKs sign).
//!
//! The key is `FCD_ACCESS_KEY_ID`/`FCD_ACCESS_KEY_SECRET`, else `<data-dir>/credentials.json`;
//! the server is `--endpoint`/`FCD_ENDPOINT`, else the data dir's `listen-addr`, else
//! 127.0.0.1:9000.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bytes::Bytes;
use clap::Args;
use http::{HeaderMap, HeaderValue, Method, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

/// The flags every client subcommand takes.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The server's data dir: where the account's credentials and the listen address are read
    /// from when not given otherwise.
    #[arg(
        long,
        env = "FCD_DATA_DIR",
        default_value = "./fcd-data",
        global = true
    )]
    pub(crate) data_dir: PathBuf,
    /// The server to talk to (`host:port` or `http://host:port`; default: the data dir's
    /// `listen-addr`, else 127.0.0.1:9000).
    #[arg(long, env = "FCD_ENDPOINT", global = true)]
    pub(crate) endpoint: Option<String>,
}

fn endpoint(data_dir: &Path, given: Option<&str>) -> String {
    if let Some(e) = given {
        return e
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
    }
    std::fs::read_to_string(data_dir.join("listen-addr"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "127.0.0.1:9000".to_owned())
}

/// Signs requests with the account's key and sends them to one server.
pub(crate) struct Api {
    endpoint: String,
    key_id: String,
    secret: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Api {
    pub(crate) fn new(args: &ServerArgs) -> anyhow::Result<Api> {
        let creds = crate::credentials::read(&args.data_dir)?;
        Ok(Api {
            endpoint: endpoint(&args.data_dir, args.endpoint.as_deref()),
            key_id: creds.access_key_id,
            secret: creds.access_key_secret,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Signs and sends one request; `query` is already form-encoded. Waits at most 30 s for
    /// the response's head (its body may stream for as long as the server sends).
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        mut headers: HeaderMap,
        body: Bytes,
    ) -> anyhow::Result<Response<Incoming>> {
        headers.insert("host", HeaderValue::from_str(&self.endpoint)?);
        if !headers.contains_key("accept") {
            headers.insert("accept", HeaderValue::from_static("application/json"));
        }
        let mut nonce = [0u8; 16];
        getrandom::fill(&mut nonce).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        fcd_sign::sign_acs3(
            &self.key_id,
            &self.secret,
            method.as_str(),
            path,
            query,
            &mut headers,
            &body,
            SystemTime::now(),
            &hex::encode(nonce),
        )
        .map_err(|e| anyhow::anyhow!("signing {method} {path}: {e}"))?;
        let uri = if query.is_empty() {
            format!("http://{}{path}", self.endpoint)
        } else {
            format!("http://{}{path}?{query}", self.endpoint)
        };
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Full::new(body))?;
        *req.headers_mut() = headers;
        tokio::time::timeout(Duration::from_secs(30), self.client.request(req))
            .await
            .with_context(|| format!("no answer from {}", self.endpoint))?
            .with_context(|| format!("cannot reach fcd at {}", self.endpoint))
    }
}
