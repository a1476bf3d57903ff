//! Passing a synchronous invocation to the cluster node that holds a warm instance of its
//! function (see `fcd_control::Control::place`).
//!
//! The request goes on as the client sent it — method, path and query, every end-to-end
//! header (the `Host` and the signature included) and the body — so the receiving node
//! authenticates and authorizes it exactly as if it had come straight from the client; a
//! forwarded request is trusted with nothing. It carries `x-fcd-forwarded-from: <node id>`,
//! and a node never forwards a request that has it (one hop at most). The answer comes back
//! as the other node gave it.
//!
//! A read can also be asked of every other node at once ([`Forwarder::fetch_all`], the
//! cluster-wide logs query): the same request, sent the same way, each peer's whole body read
//! within a size bound and a timeout; a peer that cannot be reached, fails, answers with an
//! error status or too much, or too slowly, is reported as such and the others' answers kept.
//!
//! Failure semantics: when the peer cannot be reached at all (connection refused or not
//! established within [`CONNECT_TIMEOUT`]: it died or left since its last heartbeat), nothing
//! was sent and [`Forwarded::Unreachable`] lets the caller run the call itself. Once the request
//! was sent, a broken connection means the call may or may not have run there: the client gets
//! a 503 saying so, never a silent second run.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use fcd_core::FcError;

/// The header naming the node a request was forwarded from.
pub const FORWARDED_FROM: &str = "x-fcd-forwarded-from";
/// How long reaching a peer may take before it counts as gone.
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);

/// Headers that describe one connection, not the request (RFC 9110 §7.6.1), plus the framing
/// the client library sets again.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

/// Whether a request came from another node (and so must run here).
pub fn is_forwarded(headers: &HeaderMap) -> bool {
    headers.contains_key(FORWARDED_FROM)
}

/// What became of a forwarded call.
#[derive(Debug)]
pub enum Forwarded {
    /// The peer answered (whatever its status).
    Answered(Response<Body>),
    /// Nothing reached the peer; the call may run elsewhere.
    Unreachable,
}

/// Why a peer's answer to [`Forwarder::fetch_all`] is missing.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("unreachable")]
    Unreachable,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answered {0}")]
    Status(StatusCode),
    #[error("answered more than {0} bytes")]
    TooLarge(usize),
    #[error("failed: {0}")]
    Failed(String),
}

/// A request as it goes on to peers: the client's method, request-target and end-to-end
/// headers, with [`FORWARDED_FROM`] naming this node.
#[derive(Debug, Clone)]
struct Outgoing {
    method: Method,
    target: String,
    headers: HeaderMap,
}

/// A pooled HTTP/1.1 client to the other nodes (kept-alive connections per peer).
#[derive(Debug, Clone)]
pub struct Forwarder {
    node_id: HeaderValue,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Forwarder {
    pub fn new(node_id: &str) -> Result<Forwarder, FcError> {
        let node_id = HeaderValue::from_str(node_id)
            .map_err(|_| FcError::invalid(format!("node id '{node_id}' is not a header value")))?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(64)
            .build(connector);
        Ok(Forwarder { node_id, client })
    }

    /// What goes on to a peer for the client's request `parts` (as received).
    fn outgoing(&self, parts: &axum::http::request::Parts) -> Outgoing {
        // The request-target as the client sent it (a nested router sees its prefix
        // stripped from `parts.uri`; the signature covers the whole path).
        let uri = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map(|o| &o.0)
            .unwrap_or(&parts.uri);
        let target = uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/")
            .to_owned();
        let mut headers = HeaderMap::with_capacity(parts.headers.len() + 1);
        for (name, value) in parts.headers.iter() {
            if !is_hop_by_hop(name) && name.as_str() != FORWARDED_FROM {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(
            HeaderName::from_static(FORWARDED_FROM),
            self.node_id.clone(),
        );
        Outgoing {
            method: parts.method.clone(),
            target,
            headers,
        }
    }

    fn request(
        out: Outgoing,
        base_url: &str,
        peer: &str,
        body: Bytes,
    ) -> Result<Request<Full<Bytes>>, FcError> {
        let uri: Uri = format!("{base_url}{}", out.target).parse().map_err(|e| {
            tracing::error!(peer, base_url, error = %e, "a peer's URL is not usable");
            FcError::ServiceUnavailable
        })?;
        let mut req = Request::builder()
            .method(out.method)
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| {
                tracing::error!(error = %e, "forwarded request");
                FcError::Internal
            })?;
        *req.headers_mut() = out.headers;
        Ok(req)
    }

    /// Sends the client's request (`parts` as received, `body` read whole) to the node at
    /// `base_url` (`http://host:port`) and returns its answer.
    pub async fn forward(
        &self,
        base_url: &str,
        peer: &str,
        parts: &axum::http::request::Parts,
        body: Bytes,
    ) -> Result<Forwarded, FcError> {
        let req = Self::request(self.outgoing(parts), base_url, peer, body)?;
        match self.client.request(req).await {
            Ok(resp) => {
                let (mut parts, body) = resp.into_parts();
                for name in HOP_BY_HOP {
                    parts.headers.remove(name);
                }
                Ok(Forwarded::Answered(Response::from_parts(
                    parts,
                    Body::new(body),
                )))
            }
            Err(e) if e.is_connect() => {
                tracing::warn!(peer, error = %e, "peer unreachable; running the call here");
                Ok(Forwarded::Unreachable)
            }
            Err(e) => {
                tracing::warn!(peer, error = %e, "peer failed during a forwarded call");
                Err(FcError::Unavailable(format!(
                    "the cluster node '{peer}' running this call went away before it answered; the call may or may not have run"
                )))
            }
        }
    }

    /// Sends the same bodiless request to one peer and reads its whole answer: a success
    /// status, at most `max_bytes` of body, all within `timeout`.
    async fn fetch_one(
        &self,
        out: &Outgoing,
        base_url: &str,
        peer: &str,
        max_bytes: usize,
        timeout: Duration,
    ) -> Result<Bytes, FetchError> {
        let req = Self::request(out.clone(), base_url, peer, Bytes::new())
            .map_err(|e| FetchError::Failed(e.to_string()))?;
        let exchange = async {
            let resp = self.client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    FetchError::Unreachable
                } else {
                    FetchError::Failed(e.to_string())
                }
            })?;
            let status = resp.status();
            if !status.is_success() {
                return Err(FetchError::Status(status));
            }
            match Limited::new(resp.into_body(), max_bytes).collect().await {
                Ok(body) => Ok(body.to_bytes()),
                Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                    Err(FetchError::TooLarge(max_bytes))
                }
                Err(e) => Err(FetchError::Failed(e.to_string())),
            }
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(FetchError::Timeout(timeout)))
    }

    /// Asks every peer in `peers` (`(node id, base URL)`) the client's request `parts` (a
    /// read: its body is not sent), all at once, and returns each peer's whole body or why it
    /// is missing, in the order of `peers`. Each answer is bounded by `max_bytes` and `timeout`.
    pub async fn fetch_all(
        &self,
        peers: Vec<(String, String)>,
        parts: &axum::http::request::Parts,
        max_bytes: usize,
        timeout: Duration,
    ) -> Vec<(String, Result<Bytes, FetchError>)> {
        let out = Arc::new(self.outgoing(parts));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, (peer, url)) in peers.iter().enumerate() {
            let (me, out, peer, url) = (self.clone(), out.clone(), peer.clone(), url.clone());
            tasks.spawn(async move {
                let got = me.fetch_one(&out, &url, &peer, max_bytes, timeout).await;
                (i, got)
            });
        }
        let mut got: Vec<Option<Result<Bytes, FetchError>>> =
            std::iter::repeat_with(|| None).take(peers.len()).collect();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((i, r)) => {
                    if let Some(slot) = got.get_mut(i) {
                        *slot = Some(r);
                    }
                }
                Err(e) => tracing::error!(error = %e, "a peer fetch task failed"),
            }
        }
        peers
            .into_iter()
            .zip(got)
            .map(|((peer, _), r)| {
                let r = r.unwrap_or_else(|| Err(FetchError::Failed("task failed".into())));
                if let Err(e) = &r {
                    tracing::warn!(peer, error = %e, "a peer did not answer a cluster-wide read");
                }
                (peer, r)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_are_not_passed_on() {
        for name in HOP_BY_HOP {
            assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
        for name in [
            "host",
            "authorization",
            "x-acs-signature-nonce",
            "content-md5",
        ] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
    }

    #[tokio::test]
    async fn a_peer_that_is_gone_is_unreachable_not_an_error() {
        // A port nothing listens on: bind, note the port, close.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let f = Forwarder::new("n1").unwrap();
        let (parts, _) = Request::builder()
            .uri("/2021-04-06/services/s/functions/f/invocations")
            .body(())
            .unwrap()
            .into_parts();
        let got = f
            .forward(
                &format!("http://127.0.0.1:{port}"),
                "n2",
                &parts,
                Bytes::new(),
            )
            .await
            .unwrap();
        assert!(matches!(got, Forwarded::Unreachable));
    }

    #[tokio::test]
    async fn fetch_all_keeps_the_answers_and_says_why_others_are_missing() {
        use axum::routing::get;
        let gone = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        // One server, four behaviours by path; the path and query reach it as the client's.
        let app = axum::Router::new()
            .route(
                "/ok",
                get(|h: HeaderMap, uri: Uri| async move {
                    let from = h.get(FORWARDED_FROM).unwrap().to_str().unwrap().to_owned();
                    format!("{from} {}", uri.query().unwrap_or(""))
                }),
            )
            .route("/big", get(|| async { "x".repeat(100) }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/err", get(|| async { StatusCode::INTERNAL_SERVER_ERROR }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let f = &Forwarder::new("n1").unwrap();
        let ask = |path: &'static str| async move {
            let (parts, _) = Request::builder()
                .uri(format!("{path}?limit=3"))
                .header(FORWARDED_FROM, "spoofed")
                .body(())
                .unwrap()
                .into_parts();
            let live = format!("http://127.0.0.1:{port}");
            let dead = format!("http://127.0.0.1:{gone}");
            f.fetch_all(
                vec![("a".into(), live), ("b".into(), dead)],
                &parts,
                50,
                Duration::from_millis(300),
            )
            .await
        };
        let got = ask("/ok").await;
        assert_eq!(got[0].0, "a");
        assert_eq!(got[0].1.as_ref().unwrap().as_ref(), b"n1 limit=3");
        assert_eq!(got[1].0, "b");
        assert!(matches!(got[1].1, Err(FetchError::Unreachable)), "{got:?}");
        assert!(matches!(
            ask("/big").await[0].1,
            Err(FetchError::TooLarge(50))
        ));
        assert!(matches!(
            ask("/slow").await[0].1,
            Err(FetchError::Timeout(_))
        ));
        assert!(matches!(
            ask("/err").await[0].1,
            Err(FetchError::Status(StatusCode::INTERNAL_SERVER_ERROR))
        ));
    }
}
