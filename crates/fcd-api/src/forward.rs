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
//! Failure semantics: when the peer cannot be reached at all (connection refused or not
//! established within [`CONNECT_TIMEOUT`]: it died or left since its last heartbeat), nothing
//! was sent and [`Forwarded::Unreachable`] lets the caller run the call itself. Once the request
//! was sent, a broken connection means the call may or may not have run there: the client gets
//! a 503 saying so, never a silent second run.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, Uri};
use bytes::Bytes;
use http_body_util::Full;
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

    /// Sends the client's request (`parts` as received, `body` read whole) to the node at
    /// `base_url` (`http://host:port`) and returns its answer.
    pub async fn forward(
        &self,
        base_url: &str,
        peer: &str,
        parts: &axum::http::request::Parts,
        body: Bytes,
    ) -> Result<Forwarded, FcError> {
        // The request-target as the client sent it (a nested router sees its prefix
        // stripped from `parts.uri`; the signature covers the whole path).
        let uri = parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map(|o| &o.0)
            .unwrap_or(&parts.uri);
        let target = uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/");
        let uri: Uri = format!("{base_url}{target}").parse().map_err(|e| {
            tracing::error!(peer, base_url, error = %e, "a peer's URL is not usable");
            FcError::ServiceUnavailable
        })?;
        let mut req = Request::builder()
            .method(parts.method.clone())
            .uri(uri)
            .body(Full::new(body))
            .map_err(|e| {
                tracing::error!(error = %e, "forwarded request");
                FcError::Internal
            })?;
        let headers = req.headers_mut();
        for (name, value) in parts.headers.iter() {
            if !is_hop_by_hop(name) && name.as_str() != FORWARDED_FROM {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(HeaderName::from_static(FORWARDED_FROM), self.node_id.clone());
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_headers_are_not_passed_on() {
        for name in HOP_BY_HOP {
            assert!(is_hop_by_hop(&HeaderName::from_static(name)), "{name}");
        }
        for name in ["host", "authorization", "x-acs-signature-nonce", "content-md5"] {
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
            .forward(&format!("http://127.0.0.1:{port}"), "n2", &parts, Bytes::new())
            .await
            .unwrap();
        assert!(matches!(got, Forwarded::Unreachable));
    }
}
