//! The HTTP side of the harness: hyper 1 client connections, SDK-style request signing, and the
//! kinds of invocation request the load generator sends: through fcd (a signed InvokeFunction,
//! or a plain request to an HTTP trigger's `/proxy/` URL), and straight to a runtime as fcd
//! itself would send them (`POST /invoke`, or the client's request marked
//! `x-fc-control-path: /http-invoke`).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// One kept-alive HTTP/1.1 connection with `TCP_NODELAY`, driven by a task on the current
/// runtime.
pub(crate) async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A response, fully read.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

impl Reply {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(400)]).into_owned();
        format!("HTTP {} {body}", self.status)
    }
}

pub(crate) async fn send(sender: &mut Sender, req: Request<Full<Bytes>>) -> Result<Reply> {
    sender.ready().await.context("connection not ready")?;
    let resp = sender.send_request(req).await.context("sending request")?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.context("reading body")?.to_bytes();
    Ok(Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    })
}

/// The access key the harness starts fcd with.
#[derive(Clone)]
pub(crate) struct Creds {
    pub(crate) key_id: String,
    pub(crate) secret: String,
}

/// The secret never appears in output.
impl std::fmt::Debug for Creds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Creds")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// Builds a request signed with ACS3-HMAC-SHA256 exactly as the 2021-04-06 SDKs do: a fresh
/// date and nonce and a hash of the body for every request.
pub(crate) fn signed_request(
    creds: &Creds,
    host: &HeaderValue,
    method: &Method,
    path_and_query: &str,
    mut headers: HeaderMap,
    body: Bytes,
) -> Result<Request<Full<Bytes>>> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    headers.insert(http::header::HOST, host.clone());
    headers.insert(
        HeaderName::from_static("x-acs-version"),
        HeaderValue::from_static("2021-04-06"),
    );
    headers.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("fcd-bench (AlibabaCloud SDK style)"),
    );
    headers.insert(
        http::header::ACCEPT,
        HeaderValue::from_static("application/json"),
    );
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    fcd_sign::sign_acs3(
        &creds.key_id,
        &creds.secret,
        method.as_str(),
        path,
        query,
        &mut headers,
        &body,
        SystemTime::now(),
        &nonce,
    )
    .map_err(|e| anyhow!("signing: {e}"))?;
    let mut req = Request::builder()
        .method(method.clone())
        .uri(path_and_query)
        .body(Full::new(body))?;
    *req.headers_mut() = headers;
    Ok(req)
}

/// A signed `InvokeFunction` of one function.
#[derive(Debug, Clone)]
pub(crate) struct FcdInvoke {
    pub(crate) addr: SocketAddr,
    pub(crate) host: HeaderValue,
    pub(crate) creds: Creds,
    pub(crate) path: String,
    /// `X-Fc-Invocation-Type: Async` instead of a synchronous call.
    pub(crate) asynchronous: bool,
    /// Entry points a load run spreads its connections over (worker `i` connects to
    /// `spread[i % len]`); empty: every connection goes to `addr`. The request is the same
    /// whichever node it enters (its `Host` is `addr`'s; fcd verifies what it received).
    pub(crate) spread: Vec<SocketAddr>,
}

impl FcdInvoke {
    pub(crate) fn new(addr: SocketAddr, creds: &Creds, service: &str, function: &str) -> Self {
        FcdInvoke {
            addr,
            host: host_value(addr),
            creds: creds.clone(),
            path: format!("/2021-04-06/services/{service}/functions/{function}/invocations"),
            asynchronous: false,
            spread: Vec::new(),
        }
    }

    pub(crate) fn request(&self, body: &Bytes) -> Result<Request<Full<Bytes>>> {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("x-acs-action"),
            HeaderValue::from_static("InvokeFunction"),
        );
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if self.asynchronous {
            h.insert(
                HeaderName::from_static("x-fc-invocation-type"),
                HeaderValue::from_static("Async"),
            );
        }
        signed_request(
            &self.creds,
            &self.host,
            &Method::POST,
            &self.path,
            h,
            body.clone(),
        )
    }
}

/// `POST /invoke` straight to a runtime, with the headers fcd sends to its instances.
#[derive(Debug, Clone)]
pub(crate) struct DirectInvoke {
    pub(crate) addr: SocketAddr,
    base: HeaderMap,
}

impl DirectInvoke {
    pub(crate) fn new(addr: SocketAddr, handler: &str, function: &str) -> Result<Self> {
        let mut base = HeaderMap::new();
        let pairs = [
            ("content-type", "application/octet-stream"),
            ("x-fc-function-handler", handler),
            ("x-fc-function-memory", "512"),
            ("x-fc-function-timeout", "60"),
            ("x-fc-function-initializer", ""),
            ("x-fc-initialization-timeout", "3"),
            ("x-fc-region", "cn-hangzhou"),
            ("x-fc-account-id", crate::server::ACCOUNT_ID),
            ("x-fc-qualifier", "LATEST"),
            ("x-fc-version-id", ""),
            ("x-fc-function-name", function),
            ("x-fc-service-name", crate::server::SERVICE),
            ("x-fc-service-logproject", ""),
            ("x-fc-service-logstore", ""),
            ("x-fc-control-path", "/invoke"),
        ];
        for (k, v) in pairs {
            base.insert(HeaderName::from_static(k), HeaderValue::from_str(v)?);
        }
        base.insert(http::header::HOST, host_value(addr));
        Ok(DirectInvoke { addr, base })
    }

    pub(crate) fn request(&self, body: &Bytes) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/invoke")
            .body(Full::new(body.clone()))?;
        let mut h = self.base.clone();
        let id = uuid::Uuid::new_v4().to_string();
        h.insert(
            HeaderName::from_static("x-fc-request-id"),
            HeaderValue::from_str(&id)?,
        );
        *req.headers_mut() = h;
        Ok(req)
    }
}

/// The headers an anonymous client of an HTTP trigger sends (as curl does), plus a content
/// type when it sends a body.
fn client_headers(host: &HeaderValue, body: &Bytes) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(http::header::HOST, host.clone());
    h.insert(
        http::header::USER_AGENT,
        HeaderValue::from_static("fcd-bench"),
    );
    h.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
    if !body.is_empty() {
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    h
}

/// A plain, unsigned request to a function's anonymous HTTP trigger through fcd:
/// `{method} /2016-08-15/proxy/{service}/{function}{rest}`.
#[derive(Debug, Clone)]
pub(crate) struct ProxyRequest {
    pub(crate) addr: SocketAddr,
    host: HeaderValue,
    method: Method,
    /// The request-target: path and query.
    target: String,
}

/// The URL prefix of a function's HTTP trigger, as the 2016-08-15 SDKs build it.
pub(crate) fn proxy_base(service: &str, function: &str) -> String {
    format!("/2016-08-15/proxy/{service}/{function}")
}

impl ProxyRequest {
    /// `rest` is what follows the function in the URL (path and query, starting with `/`).
    pub(crate) fn new(
        addr: SocketAddr,
        method: Method,
        service: &str,
        function: &str,
        rest: &str,
    ) -> Self {
        ProxyRequest {
            addr,
            host: host_value(addr),
            method,
            target: format!("{}{rest}", proxy_base(service, function)),
        }
    }

    pub(crate) fn request(&self, body: &Bytes) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(&self.target)
            .body(Full::new(body.clone()))?;
        *req.headers_mut() = client_headers(&self.host, body);
        Ok(req)
    }
}

/// An HTTP trigger's request straight to a runtime, as fcd sends it to its instance: the
/// client's method, request-target and headers, `x-forwarded-for` with the client's address,
/// the contract's `x-fc-*` headers of every call, `x-fc-control-path: /http-invoke` and the
/// `/proxy/` URL's `x-fc-base-path`.
#[derive(Debug, Clone)]
pub(crate) struct DirectHttp {
    pub(crate) addr: SocketAddr,
    method: Method,
    target: String,
    base: HeaderMap,
}

impl DirectHttp {
    /// The same request as `ProxyRequest::new(_, method, SERVICE, function, rest)`, addressed
    /// to the runtime at `addr`.
    pub(crate) fn new(
        addr: SocketAddr,
        method: Method,
        handler: &str,
        function: &str,
        rest: &str,
    ) -> Result<Self> {
        let base_path = proxy_base(crate::server::SERVICE, function);
        // The contract's headers, as for an event: only the control path differs.
        let mut base = DirectInvoke::new(addr, handler, function)?.base;
        base.remove(http::header::CONTENT_TYPE);
        base.remove(http::header::HOST);
        base.insert(
            HeaderName::from_static("x-fc-control-path"),
            HeaderValue::from_static("/http-invoke"),
        );
        base.insert(
            HeaderName::from_static("x-fc-base-path"),
            HeaderValue::from_str(&base_path)?,
        );
        base.insert(
            HeaderName::from_static("x-forwarded-for"),
            HeaderValue::from_static("127.0.0.1"),
        );
        Ok(DirectHttp {
            addr,
            method,
            target: format!("{base_path}{rest}"),
            base,
        })
    }

    pub(crate) fn request(&self, body: &Bytes) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(self.method.clone())
            .uri(&self.target)
            .body(Full::new(body.clone()))?;
        let mut h = client_headers(&host_value(self.addr), body);
        for (k, v) in &self.base {
            h.insert(k.clone(), v.clone());
        }
        let id = uuid::Uuid::new_v4().to_string();
        h.insert(
            HeaderName::from_static("x-fc-request-id"),
            HeaderValue::from_str(&id)?,
        );
        *req.headers_mut() = h;
        Ok(req)
    }
}

/// A plain `POST {path}` with the client headers of [`ProxyRequest`]: a function behind
/// another server's HTTP route (serverless-offline's API Gateway emulation).
#[derive(Debug, Clone)]
pub(crate) struct PlainPost {
    pub(crate) addr: SocketAddr,
    host: HeaderValue,
    path: String,
}

impl PlainPost {
    pub(crate) fn new(addr: SocketAddr, path: &str) -> Self {
        PlainPost {
            addr,
            host: host_value(addr),
            path: path.to_owned(),
        }
    }

    pub(crate) fn request(&self, body: &Bytes) -> Result<Request<Full<Bytes>>> {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(&self.path)
            .body(Full::new(body.clone()))?;
        *req.headers_mut() = client_headers(&self.host, body);
        Ok(req)
    }
}

/// What the load generator sends.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Fcd(FcdInvoke),
    Direct(DirectInvoke),
    /// An HTTP trigger's URL through fcd, unsigned.
    Proxy(ProxyRequest),
    /// An HTTP trigger's request straight to the runtime.
    DirectHttp(DirectHttp),
    /// A plain POST to another server's route for a function.
    Plain(PlainPost),
}

impl Target {
    /// Where load worker `worker` connects: [`FcdInvoke::spread`] when set, else the address.
    pub(crate) fn addr_for(&self, worker: usize) -> SocketAddr {
        match self {
            Target::Fcd(f) if !f.spread.is_empty() => f.spread[worker % f.spread.len()],
            _ => self.addr(),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        match self {
            Target::Fcd(f) => f.addr,
            Target::Direct(d) => d.addr,
            Target::Proxy(p) => p.addr,
            Target::DirectHttp(d) => d.addr,
            Target::Plain(p) => p.addr,
        }
    }

    pub(crate) fn request(&self, body: &Bytes) -> Result<Request<Full<Bytes>>> {
        match self {
            Target::Fcd(f) => f.request(body),
            Target::Direct(d) => d.request(body),
            Target::Proxy(p) => p.request(body),
            Target::DirectHttp(d) => d.request(body),
            Target::Plain(p) => p.request(body),
        }
    }

    /// Fails unless the reply is a success (and, with `echo`, carries the body sent).
    pub(crate) fn check(&self, reply: &Reply, sent: &Bytes, echo: bool) -> Result<()> {
        match self {
            Target::Fcd(f) if f.asynchronous => {
                if reply.status != 202 {
                    bail!("async invoke answered {}", reply.describe());
                }
                return Ok(());
            }
            Target::Plain(_) => {
                if reply.status != 200 {
                    bail!("the server answered {}", reply.describe());
                }
            }
            Target::Fcd(_) | Target::Proxy(_) => {
                // An HTTP function's status is its own; the benchmark's functions answer 200.
                if reply.status != 200 {
                    bail!("fcd answered {}", reply.describe());
                }
                if let Some(kind) = reply.header("x-fc-error-type") {
                    bail!("function error {kind}: {}", reply.describe());
                }
            }
            Target::Direct(_) | Target::DirectHttp(_) => {
                if reply.status != 200 || reply.header("x-fc-status").is_some_and(|s| s != "200") {
                    bail!(
                        "runtime answered {} (x-fc-status {:?})",
                        reply.describe(),
                        reply.header("x-fc-status")
                    );
                }
            }
        }
        if echo && reply.body != *sent {
            bail!(
                "the echoed body differs: sent {} bytes, got {}",
                sent.len(),
                reply.body.len()
            );
        }
        Ok(())
    }
}

fn host_value(addr: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&addr.to_string()).unwrap_or(HeaderValue::from_static("127.0.0.1"))
}

/// A blocking `POST /invoke` on a fresh connection, for start-up probes: `Ok(true)` once the
/// runtime answered 200, `Ok(false)` while nothing listens yet.
pub(crate) fn probe_invoke(addr: SocketAddr, handler: &str) -> Result<bool> {
    let mut s = match std::net::TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Ok(false),
        Err(e) => return Err(e).context("probe connect"),
    };
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let id = uuid::Uuid::new_v4();
    let req = format!(
        "POST /invoke HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/octet-stream\r\nx-fc-request-id: {id}\r\nx-fc-function-handler: {handler}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
    if s.write_all(req.as_bytes()).is_err() {
        return Ok(false);
    }
    let mut resp = Vec::new();
    // The runtime closes the connection after answering (`connection: close`).
    if s.read_to_end(&mut resp).is_err() && resp.is_empty() {
        return Ok(false);
    }
    if resp.is_empty() {
        return Ok(false);
    }
    let head = String::from_utf8_lossy(&resp[..resp.len().min(64)]).into_owned();
    if head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200") {
        Ok(true)
    } else {
        bail!("runtime answered the start-up probe with {head:?}")
    }
}

/// Polls [`probe_invoke`] until it succeeds; returns when it did.
pub(crate) fn wait_first_response(
    addr: SocketAddr,
    handler: &str,
    child: &mut std::process::Child,
    limit: Duration,
) -> Result<Instant> {
    let deadline = Instant::now() + limit;
    loop {
        if probe_invoke(addr, handler)? {
            return Ok(Instant::now());
        }
        if let Some(status) = child.try_wait()? {
            bail!("the runtime exited during start-up: {status}");
        }
        if Instant::now() > deadline {
            bail!("the runtime did not answer on {addr} within {limit:?}");
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// A duration in milliseconds, as the reports print them.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Fails unless `reply` is a 200 without a function error whose body carries `body` (the
/// request's echo).
pub(crate) fn check_echo(what: &str, reply: &Reply, body: &[u8]) -> Result<()> {
    if reply.status != 200 {
        bail!("{what} answered {}", reply.describe());
    }
    if let Some(kind) = reply.header("x-fc-error-type") {
        bail!("{what}: function error {kind}: {}", reply.describe());
    }
    if !reply.body.windows(body.len()).any(|w| w == body) {
        bail!(
            "{what}: the answer does not carry the request body: {}",
            reply.describe()
        );
    }
    Ok(())
}
