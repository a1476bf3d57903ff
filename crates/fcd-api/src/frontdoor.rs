//! The front door's rules for what a request may look like before anything else reads it —
//! sizes of the head, how slowly a body may arrive, and the single use of an ACS3 signature —
//! with FC's error body for each. The connection-level half (connection cap, header read
//! timeout, the raw head size hyper accepts) lives in the `fcd` binary's accept loop and uses
//! the constants here, so both halves are documented together.
//!
//! Limits, and why:
//! - Head on the wire (request line + headers) ≤ [`MAX_HEAD_BYTES`] (48 KiB), enforced by hyper
//!   (a bare 431 and the connection closed): RAM and STS send policy documents in the query, so
//!   a 32 KiB query must fit, but a 64 KB header must not.
//! - Headers ≤ [`MAX_HEADERS`] (64) and ≤ [`MAX_HEADER_BYTES`] (16 KiB, counted as on the wire:
//!   name, value and 4 bytes of separators each) → 431 `RequestHeaderTooLarge`. The SDKs send
//!   about 15 headers and 2 KB. Past 100 headers hyper's own limit answers a bare 431.
//! - Path ≤ [`MAX_PATH_BYTES`] (4 KiB, percent-encoded as received) → 414 `PathTooLong`. FC's
//!   longest paths (names of at most 128 characters) stay well under 1 KiB even encoded.
//! - Body: no progress for the body read timeout → 408 `RequestTimeout`. Size limits are the
//!   auth layer's (FC's `EntityTooLarge`). A large synchronous invocation's body is not
//!   buffered at all: [`stream_body`] passes it on piece by piece, verifying as it goes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;

use fcd_core::FcError;
use fcd_sign::Authorization;

use crate::replay::ReplayCache;

/// Most bytes of a request's head (request line and headers) hyper accepts.
pub const MAX_HEAD_BYTES: usize = 48 * 1024;
/// Most headers a request may carry.
pub const MAX_HEADERS: usize = 64;
/// Most bytes of headers (as on the wire) a request may carry.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Longest request path, in bytes as received (still percent-encoded).
pub const MAX_PATH_BYTES: usize = 4096;
/// Default seconds a request body may make no progress.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Front-door state shared by every request: the replay cache, the body timeout, and counters
/// the accept loop keeps for `/metrics`.
#[derive(Debug)]
pub struct FrontDoor {
    replay: ReplayCache,
    body_read_timeout: Duration,
    /// Client connections open on the API listener.
    pub connections_open: AtomicU64,
    /// Connections answered 503 and closed because the cap was reached.
    pub connections_refused: AtomicU64,
}

impl FrontDoor {
    /// `replay_capacity`: most ACS3 nonces remembered at once (see [`crate::replay`]);
    /// `body_read_timeout`: how long a body may make no progress.
    pub fn new(replay_capacity: usize, body_read_timeout: Duration) -> FrontDoor {
        FrontDoor {
            replay: ReplayCache::new(replay_capacity),
            body_read_timeout: body_read_timeout.max(Duration::from_millis(1)),
            connections_open: AtomicU64::new(0),
            connections_refused: AtomicU64::new(0),
        }
    }

    pub fn body_read_timeout(&self) -> Duration {
        self.body_read_timeout
    }

    pub fn replay(&self) -> &ReplayCache {
        &self.replay
    }

    /// Refuses a second use of a verified ACS3 request's nonce. Call only after the signature
    /// verified: nobody may record (and so burn) a nonce they could not sign. The FC scheme has
    /// no nonce and passes.
    pub fn check_replay(
        &self,
        auth: &Authorization,
        headers: &HeaderMap,
        now: SystemTime,
    ) -> Result<(), FcError> {
        let Authorization::Acs3 { access_key_id, .. } = auth else {
            return Ok(());
        };
        let (nonce, date) = fcd_sign::acs3_replay_key(headers).map_err(crate::auth::sign_error)?;
        let now = now
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        self.replay
            .check_and_remember(access_key_id, &nonce, date, now)
            .map_err(|r| {
                let sent = headers
                    .get("x-acs-date")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                r.error(sent)
            })
    }

    /// The front door's lines of `/metrics` (Prometheus text).
    pub fn metrics_text(&self) -> String {
        let horizon = self.replay.horizon();
        let window = if horizon == i64::MIN {
            fcd_sign::MAX_CLOCK_SKEW.as_secs()
        } else {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            now.saturating_sub(u64::try_from(horizon).unwrap_or(0))
                .min(fcd_sign::MAX_CLOCK_SKEW.as_secs())
        };
        format!(
            "# HELP fcd_connections_open Client connections open on the API listener.\n\
             # TYPE fcd_connections_open gauge\n\
             fcd_connections_open {}\n\
             # HELP fcd_connections_refused_total Connections refused with 503 at the connection cap.\n\
             # TYPE fcd_connections_refused_total counter\n\
             fcd_connections_refused_total {}\n\
             # HELP fcd_replay_cache_entries ACS3 nonces remembered against replays.\n\
             # TYPE fcd_replay_cache_entries gauge\n\
             fcd_replay_cache_entries {}\n\
             # HELP fcd_replay_window_seconds How far back signed dates are still checked (900 unless the cache is full).\n\
             # TYPE fcd_replay_window_seconds gauge\n\
             fcd_replay_window_seconds {window}\n",
            self.connections_open.load(Ordering::Relaxed),
            self.connections_refused.load(Ordering::Relaxed),
            self.replay.len(),
        )
    }
}

/// FC's errors for a path or headers beyond the limits above.
pub fn check_head(parts: &Parts) -> Result<(), FcError> {
    let path_len = parts.uri.path().len();
    if path_len > MAX_PATH_BYTES {
        return Err(FcError::PathTooLong {
            len: path_len,
            limit: MAX_PATH_BYTES,
        });
    }
    let count = parts.headers.len();
    if count > MAX_HEADERS {
        return Err(FcError::RequestHeaderTooLarge {
            what: format!("{count} headers; at most {MAX_HEADERS} are allowed"),
        });
    }
    let bytes = parts.headers.iter().fold(0usize, |n, (k, v)| {
        n.saturating_add(k.as_str().len() + v.len() + 4)
    });
    if bytes > MAX_HEADER_BYTES {
        return Err(FcError::RequestHeaderTooLarge {
            what: format!("{bytes} bytes of headers; at most {MAX_HEADER_BYTES} are allowed"),
        });
    }
    Ok(())
}

/// Reads the whole body, at most `limit` bytes, failing when no part of it arrives for
/// `idle`: a client that stops sending mid-body is answered 408 rather than holding its
/// connection and buffer forever.
pub async fn read_body(body: Body, limit: usize, idle: Duration) -> Result<Bytes, FcError> {
    let mut body = body;
    let mut first: Option<Bytes> = None;
    let mut rest: Option<BytesMut> = None;
    let mut len = 0usize;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => {
                return Err(FcError::RequestTimeout {
                    secs: idle.as_secs().max(1),
                });
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                return Err(FcError::invalid(format!(
                    "could not read the request body: {e}"
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing fcd reads.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        len = len.saturating_add(data.len());
        if len > limit {
            // The refusal goes out only after up to as much again has been read and dropped:
            // a proxy in front of fcd still sending the body would see the connection reset
            // and turn the 400 into its own 502.
            discard_body(body, idle, limit as u64).await;
            return Err(FcError::EntityTooLarge {
                limit: limit as u64,
            });
        }
        // A body in one frame (the common case) is handed on without a copy.
        match (&mut first, &mut rest) {
            (None, None) => first = Some(data),
            (Some(f), None) => {
                let mut buf = BytesMut::with_capacity(f.len() + data.len());
                buf.extend_from_slice(f);
                buf.extend_from_slice(&data);
                first = None;
                rest = Some(buf);
            }
            (_, Some(buf)) => buf.extend_from_slice(&data),
        }
    }
    Ok(match (first, rest) {
        (_, Some(buf)) => buf.freeze(),
        (Some(f), None) => f,
        (None, None) => Bytes::new(),
    })
}

/// The most of a refused request's body fcd reads and drops before answering (see
/// [`discard_body`]): twice the largest body any path accepts. A body declared larger is
/// refused at once and its connection closed.
pub(crate) const REFUSED_BODY_DRAIN_MAX: u64 = 2 * fcd_core::limits::SYNC_PAYLOAD_MAX as u64;

/// Reads a body to its end and drops every piece, giving up after `max` bytes or when no part
/// of it arrives for `idle`. A response sent before its request's body was read makes the
/// server close the connection with data unread, which resets it: a client that keeps
/// connections alive would see its next call fail, and a proxy in front of fcd (a cluster's
/// load balancer) still sending the body would answer its own 502 instead of fcd's refusal.
pub(crate) async fn discard_body(body: Body, idle: Duration, max: u64) {
    let mut body = body;
    let mut read = 0u64;
    while read <= max {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    read = read.saturating_add(data.len() as u64);
                }
            }
            _ => return,
        }
    }
}

/// How many pieces of a streamed body may wait for the instance; with hyper's read buffer (at
/// most a few hundred KiB per piece) this bounds the memory a streamed request holds.
const STREAM_QUEUE: usize = 4;

/// Passes a body on while it arrives (see [`fcd_runtime::StreamedBody`]): each piece is counted
/// against `limit`, fed to `verifier` and sent on — except the latest, held back until the next
/// one arrives or the body ends, so the last piece goes out only once the whole body matched
/// the digest its signed head claims. Whatever goes wrong (too large, a stalled or broken
/// client, a digest mismatch) is sent instead of the held piece, and the instance is left with
/// an incomplete request. Runs as a task of its own: it ends when the body does or when the
/// receiving side is dropped.
pub(crate) fn stream_body(
    body: Body,
    mut verifier: fcd_sign::BodyVerifier,
    limit: usize,
    idle: Duration,
    len: Option<u64>,
) -> fcd_runtime::StreamedBody {
    let (tx, rx) = tokio::sync::mpsc::channel(STREAM_QUEUE);
    tokio::spawn(async move {
        let mut body = body;
        let mut held: Option<Bytes> = None;
        let mut total = 0usize;
        let failure = loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    break FcError::RequestTimeout {
                        secs: idle.as_secs().max(1),
                    };
                }
                Ok(None) => match verifier.finish() {
                    Ok(()) => {
                        if let Some(last) = held {
                            let _ = tx.send(Ok(last)).await;
                        }
                        return;
                    }
                    Err(e) => break crate::auth::sign_error(e),
                },
                Ok(Some(Err(e))) => {
                    break FcError::invalid(format!("could not read the request body: {e}"));
                }
                Ok(Some(Ok(frame))) => frame,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            total = total.saturating_add(data.len());
            if total > limit {
                break FcError::EntityTooLarge {
                    limit: limit as u64,
                };
            }
            verifier.update(&data);
            if let Some(previous) = held.replace(data)
                && tx.send(Ok(previous)).await.is_err()
            {
                return;
            }
        };
        let _ = tx.send(Err(failure)).await;
    });
    fcd_runtime::StreamedBody { len, pieces: rx }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(path: &str, headers: &[(String, String)]) -> Parts {
        let mut b = Request::builder().uri(path);
        for (k, v) in headers {
            b = b.header(k, v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn access_keys_never_show_their_secret() {
        let k = fcd_control::iam::RootKey {
            access_key_id: "LTAIkey".into(),
            access_key_secret: "s3cr3t-value".into(),
            account_id: "123".into(),
        };
        let shown = format!("{k:?}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
        assert!(shown.contains("LTAIkey"), "{shown}");
    }

    #[test]
    fn head_limits() {
        assert_eq!(check_head(&parts("/2021-04-06/services", &[])), Ok(()));
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert!(matches!(
            check_head(&parts(&long, &[])),
            Err(FcError::PathTooLong { .. })
        ));
        let many: Vec<(String, String)> = (0..=MAX_HEADERS)
            .map(|i| (format!("x-h{i}"), "v".to_owned()))
            .collect();
        assert_eq!(check_head(&parts("/", &many[1..])), Ok(()));
        assert!(matches!(
            check_head(&parts("/", &many)),
            Err(FcError::RequestHeaderTooLarge { .. })
        ));
        let big = [("x-big".to_owned(), "v".repeat(MAX_HEADER_BYTES))];
        let e = check_head(&parts("/", &big)).unwrap_err();
        assert_eq!(e.http_status(), 431);
        // A 32 KiB query is not the path.
        let q = format!("/?policy={}", "p".repeat(32 * 1024));
        assert_eq!(check_head(&parts(&q, &[])), Ok(()));
    }

    /// A body of the given chunks that, if `stall`, then never ends.
    struct Chunks {
        chunks: std::collections::VecDeque<Bytes>,
        stall: bool,
    }

    impl http_body::Body for Chunks {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            match self.chunks.pop_front() {
                Some(c) => std::task::Poll::Ready(Some(Ok(http_body::Frame::data(c)))),
                None if self.stall => std::task::Poll::Pending,
                None => std::task::Poll::Ready(None),
            }
        }
    }

    fn chunks(parts: &[&'static str], stall: bool) -> Body {
        Body::new(Chunks {
            chunks: parts
                .iter()
                .map(|p| Bytes::from_static(p.as_bytes()))
                .collect(),
            stall,
        })
    }

    #[tokio::test]
    async fn bodies_are_read_whole_within_their_limit() {
        let idle = Duration::from_secs(5);
        let b = read_body(Body::from("hello"), 5, idle).await.unwrap();
        assert_eq!(&b[..], b"hello");
        let e = read_body(Body::from("hello!"), 5, idle).await.unwrap_err();
        assert_eq!(e, FcError::EntityTooLarge { limit: 5 });
        // Several frames are joined in order, and counted together against the limit.
        let b = read_body(chunks(&["ab", "cd", "e"], false), 5, idle)
            .await
            .unwrap();
        assert_eq!(&b[..], b"abcde");
        let e = read_body(chunks(&["abc", "def"], false), 5, idle)
            .await
            .unwrap_err();
        assert_eq!(e, FcError::EntityTooLarge { limit: 5 });
        let b = read_body(Body::empty(), 5, idle).await.unwrap();
        assert!(b.is_empty());
    }

    #[tokio::test]
    async fn a_stalled_body_times_out() {
        // The body never ends, so only the timeout can end the read.
        let e = read_body(chunks(&["part"], true), 100, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e, FcError::RequestTimeout { secs: 1 });
        assert_eq!(e.http_status(), 408);
    }
}
