//! The accept loop: every TCP connection fcd serves HTTP on goes through here.
//!
//! - `TCP_NODELAY` on every connection: without it, small responses wait ~40 ms for delayed
//!   ACKs.
//! - A cap on concurrent connections. Over it, a connection gets a minimal FC-style 503 and is
//!   closed by a small task of its own (itself capped: past that, the connection is just
//!   dropped), so the accept loop never waits on a client and never runs out of descriptors.
//! - Slow clients: a request head must arrive within the header read timeout (hyper's timer;
//!   it also ends keep-alive connections idle for that long) and may be at most
//!   [`MAX_HEAD_BYTES`] (hyper answers a bare 431 and closes). Bodies are the auth layer's:
//!   [`fcd_api::frontdoor`].
//! - The TCP peer goes into every request's extensions as `ConnectInfo<SocketAddr>`
//!   (authorization reads it for `acs:SourceIp`).
//! - Graceful shutdown: on the stop signal the listener closes (new connections are refused by
//!   the kernel), every connection finishes its in-flight request and closes, and [`serve`]
//!   returns once all are gone; the caller bounds that wait with its grace period.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use fcd_api::FrontDoor;
use fcd_api::frontdoor::MAX_HEAD_BYTES;
use fcd_core::FcError;

/// Connections being refused at once; past this, refused connections are closed unanswered.
const REFUSING_MAX: usize = 256;
/// How long a refused connection may take to receive its 503.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(2);
/// At most this much of a refused client's request is read (and discarded) before closing, so
/// the close does not reset the connection before the client has read the 503.
const REFUSE_DRAIN_BYTES: usize = 64 * 1024;

/// How one listener serves.
pub(crate) struct Limits {
    /// For log lines: which listener this is.
    pub(crate) name: &'static str,
    pub(crate) max_connections: usize,
    pub(crate) header_read_timeout: Duration,
    /// Where the connection counters go (the API listener's, shown in `/metrics`).
    pub(crate) counters: Option<Arc<FrontDoor>>,
    /// Set while a cluster node drains: every response says `Connection: close`, so a load
    /// balancer keeps no idle connection to this node that the coming stop could close under a
    /// request it is about to send (see `serve::drain`).
    pub(crate) closing: Option<Arc<AtomicBool>>,
}

/// Serves `app` on `listener` until `stop` turns true (or its sender is dropped), then drains.
pub(crate) async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let max = limits.max_connections.clamp(1, u32::MAX as usize);
    let permits = Arc::new(Semaphore::new(max));
    let refusing = Arc::new(Semaphore::new(REFUSING_MAX));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_header_size(MAX_HEAD_BYTES)
        .keep_alive(true);
    let http = Arc::new(http);
    let mut last_warning: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stopped(&mut stop) => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE/ENFILE: back off instead of spinning, still heeding the stop.
                if warn_now(&mut last_warning) {
                    tracing::warn!(listener = limits.name, error = %e, "accept failed");
                }
                tokio::select! {
                    _ = stopped(&mut stop) => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                tokio::spawn(connection(
                    http.clone(),
                    stream,
                    peer,
                    app.clone(),
                    stop.clone(),
                    permit,
                    Watchers {
                        counters: limits.counters.clone(),
                        closing: limits.closing.clone(),
                    },
                ));
            }
            Err(_) => {
                if let Some(c) = &limits.counters {
                    c.connections_refused.fetch_add(1, Ordering::Relaxed);
                }
                if warn_now(&mut last_warning) {
                    tracing::warn!(
                        listener = limits.name,
                        "{max} connections are open, the most allowed: refusing new ones with 503"
                    );
                }
                if let Ok(p) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(refuse(stream, p, max));
                }
            }
        }
    }
    drop(listener);
    // Every connection holds a permit until it is gone: having them all back means drained.
    let _ = permits.acquire_many(max as u32).await;
}

/// Resolves once the stop signal is given (or can no longer be: its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Warnings about a flood are worth one line every 10 s, not one per connection.
fn warn_now(last: &mut Option<Instant>) -> bool {
    let now = Instant::now();
    if last.is_some_and(|t| now.duration_since(t) < Duration::from_secs(10)) {
        return false;
    }
    *last = Some(now);
    true
}

/// Counts a connection as open for as long as it lives.
struct Open(Option<Arc<FrontDoor>>);

impl Open {
    fn new(counters: Option<Arc<FrontDoor>>) -> Open {
        if let Some(c) = &counters {
            c.connections_open.fetch_add(1, Ordering::Relaxed);
        }
        Open(counters)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        if let Some(c) = &self.0 {
            c.connections_open.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// What a connection reports to and reads from its listener (see [`Limits`]).
struct Watchers {
    counters: Option<Arc<FrontDoor>>,
    closing: Option<Arc<AtomicBool>>,
}

async fn connection(
    http: Arc<http1::Builder>,
    stream: TcpStream,
    peer: SocketAddr,
    app: axum::Router,
    mut stop: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
    Watchers { counters, closing }: Watchers,
) {
    let _open = Open::new(counters);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        let closing = closing.clone();
        async move {
            // The router is always ready (its `poll_ready` is immediate) and never fails: every
            // error is already a response.
            let mut resp: axum::response::Response =
                match tower_service::Service::call(&mut app, req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                };
            if closing.is_some_and(|c| c.load(Ordering::Relaxed)) {
                resp.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
            }
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = http.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stopped(&mut stop) => {
            // Finish the request in flight (if any), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        // Clients that reset, time out or send garbage: common, and theirs to see.
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

/// Answers a connection over the cap with FC's 503 and closes it.
async fn refuse(mut stream: TcpStream, _permit: OwnedSemaphorePermit, max: usize) {
    let request_id = fcd_api::auth::new_request_id();
    let err = FcError::ResourceThrottled(format!(
        "the server has too many connections open (at most {max}): retry shortly"
    ));
    let body = fcd_api::error::error_json(&err, &request_id);
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         content-type: application/json; charset=utf-8\r\n\
         content-length: {}\r\n\
         x-fc-request-id: {request_id}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, async {
        stream.write_all(reply.as_bytes()).await?;
        stream.shutdown().await?;
        let mut buf = [0u8; 4096];
        let mut read = 0;
        while read < REFUSE_DRAIN_BYTES {
            match stream.read(&mut buf).await? {
                0 => break,
                n => read += n,
            }
        }
        Ok::<(), std::io::Error>(())
    })
    .await;
}
