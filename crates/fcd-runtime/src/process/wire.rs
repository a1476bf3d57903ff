//! HTTP/1.1 to an instance, driven by the task that makes the call.
//!
//! An instance connection carries one request at a time, so nothing needs a task of its own:
//! the caller writes the request (head and body in one vectored write), reads the response
//! (for small answers, one `read` holds all of it) and puts the connection back. hyper's client
//! runs every connection in a spawned task, which costs each call two task hand-offs and
//! wake-ups (request in, response out), a header map built by the client and a body collected
//! frame by frame; on fcd's hot path that was a measurable share of the CPU per call.
//!
//! What it speaks is the part of HTTP/1.1 an instance may use in a response: a status line
//! (interim `1xx` answers are skipped), headers, and a body framed by `Content-Length`, by
//! `Transfer-Encoding: chunked` (trailers ignored) or by the end of the connection. A body
//! with a known length is read straight into a buffer of that size. A connection is reused only
//! when its response ended cleanly and neither side asked to close it.

use std::io::{self, IoSlice};
use std::task::{Context, Poll, Waker};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most response head bytes accepted (status line and headers).
const HEAD_MAX: usize = 64 * 1024;
/// The most headers a response may have.
const HEADERS_MAX: usize = 128;
/// Bodies up to this size are copied out of the read buffer, so the buffer is reused by the
/// next call; larger ones are split off it without a copy.
const COPY_BELOW: usize = 16 * 1024;
/// Each read asks for at least this much room.
const READ_CHUNK: usize = 16 * 1024;

/// Why a call over a connection failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("the connection was closed before a response")]
    ClosedBeforeResponse,
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("the response body is larger than {0} bytes")]
    TooLarge(usize),
}

/// An instance's response, read whole.
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
    /// Whether the connection may carry another request.
    pub(crate) reusable: bool,
}

/// One kept-alive connection to an instance.
pub(crate) struct Conn {
    stream: TcpStream,
    buf: BytesMut,
}

enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

impl Conn {
    pub(crate) fn new(stream: TcpStream) -> Conn {
        Conn {
            stream,
            buf: BytesMut::with_capacity(READ_CHUNK),
        }
    }

    /// Whether an idle connection can carry a request: between calls nothing may arrive on it,
    /// so anything readable (the instance closed it, reset it or sent stray bytes) retires it.
    /// Costs no system call unless the socket's readiness says something arrived.
    pub(crate) fn still_open(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => true,
            Poll::Ready(Err(_)) => false,
            // Readiness can be left over from the last response's read; only a read tells.
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Sends one request: the head built here from `headers` (whose own framing headers are
    /// ignored) and the body, in one vectored write where the socket takes it all.
    pub(crate) async fn send(
        &mut self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> io::Result<()> {
        let head = encode_head(method, target, headers, Some(body.len() as u64));
        let mut slices = [IoSlice::new(&head), IoSlice::new(body)];
        let used = if body.is_empty() { 1 } else { 2 };
        self.write_all_vectored(&mut slices[..used]).await
    }

    /// Writes every slice, in as few system calls as the socket allows.
    async fn write_all_vectored(&mut self, mut bufs: &mut [IoSlice<'_>]) -> io::Result<()> {
        while !bufs.is_empty() {
            let n = self.stream.write_vectored(bufs).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut bufs, n);
        }
        Ok(())
    }

    /// Sends a request head announcing a body of `len` bytes, or a chunked body without one;
    /// the body follows with [`Conn::send_piece`] (and [`Conn::end_chunked`]).
    pub(crate) async fn send_head(
        &mut self,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        len: Option<u64>,
    ) -> io::Result<()> {
        let head = encode_head(method, target, headers, len);
        self.stream.write_all(&head).await
    }

    /// One piece of a body announced by [`Conn::send_head`].
    pub(crate) async fn send_piece(&mut self, piece: &[u8], chunked: bool) -> io::Result<()> {
        if piece.is_empty() {
            return Ok(());
        }
        if !chunked {
            return self.stream.write_all(piece).await;
        }
        let size = format!("{:x}\r\n", piece.len());
        let mut slices = [
            IoSlice::new(size.as_bytes()),
            IoSlice::new(piece),
            IoSlice::new(b"\r\n"),
        ];
        self.write_all_vectored(&mut slices).await
    }

    /// The end of a chunked body.
    pub(crate) async fn end_chunked(&mut self) -> io::Result<()> {
        self.stream.write_all(b"0\r\n\r\n").await
    }

    /// Reads the response to a request of `method`, its body at most `max` bytes.
    pub(crate) async fn response(
        &mut self,
        method: &Method,
        max: usize,
    ) -> Result<Response, WireError> {
        let mut got_any = false;
        loop {
            let parsed = self.parse_head()?;
            let Some((status, headers, framing, close)) = parsed else {
                if self.buf.len() > HEAD_MAX {
                    return Err(WireError::Malformed(format!(
                        "response head larger than {HEAD_MAX} bytes"
                    )));
                }
                let read = match self.fill().await {
                    // A reset before any answer is the instance closing the connection.
                    Err(e) if e.kind() == io::ErrorKind::ConnectionReset && !got_any => 0,
                    other => other?,
                };
                if read == 0 {
                    return Err(if got_any || !self.buf.is_empty() {
                        WireError::Malformed("the connection was closed mid-head".into())
                    } else {
                        WireError::ClosedBeforeResponse
                    });
                }
                got_any = true;
                continue;
            };
            // Interim answers (100 Continue, 103 Early Hints) precede the real one.
            if (100..200).contains(&status) && status != 101 {
                continue;
            }
            let framing = if method == Method::HEAD || status == 204 || status == 304 {
                Framing::None
            } else {
                framing
            };
            let (body, ended_cleanly) = match framing {
                Framing::None => (Bytes::new(), true),
                Framing::Length(len) => (self.body_of_length(len, max).await?, true),
                Framing::Chunked => (self.chunked_body(max).await?, true),
                Framing::UntilClose => (self.body_until_close(max).await?, false),
            };
            return Ok(Response {
                status,
                headers,
                body,
                reusable: ended_cleanly && !close && self.buf.is_empty(),
            });
        }
    }

    /// Reads more bytes into the buffer; 0 at the end of the stream.
    async fn fill(&mut self) -> io::Result<usize> {
        if self.buf.capacity() - self.buf.len() < READ_CHUNK {
            self.buf.reserve(READ_CHUNK);
        }
        self.stream.read_buf(&mut self.buf).await
    }

    /// The head at the start of the buffer, consumed from it, or `None` when it is incomplete.
    #[allow(clippy::type_complexity)]
    fn parse_head(&mut self) -> Result<Option<(u16, HeaderMap, Framing, bool)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let mut slots = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut resp = httparse::Response::new(&mut slots);
        let len = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(WireError::Malformed(e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        let http10 = resp.version == Some(0);
        let mut headers = HeaderMap::with_capacity(resp.headers.len());
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut close = http10;
        for h in resp.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| WireError::Malformed(format!("bad header name {:?}", h.name)))?;
            let value = HeaderValue::from_bytes(h.value)
                .map_err(|_| WireError::Malformed(format!("bad value of header {name}")))?;
            if name == http::header::CONTENT_LENGTH {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or_else(|| WireError::Malformed("bad content-length".into()))?;
                if length.is_some_and(|prior| prior != n) {
                    return Err(WireError::Malformed("conflicting content-lengths".into()));
                }
                length = Some(n);
            } else if name == http::header::TRANSFER_ENCODING {
                chunked = value.to_str().is_ok_and(|v| {
                    v.rsplit(',')
                        .next()
                        .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
                });
                if !chunked {
                    return Err(WireError::Malformed(
                        "a transfer-encoding other than chunked".into(),
                    ));
                }
            } else if name == http::header::CONNECTION {
                let v = value.to_str().unwrap_or("");
                for token in v.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") && http10 {
                        close = false;
                    }
                }
            }
            headers.append(name, value);
        }
        self.buf.advance(len);
        let framing = match (chunked, length) {
            // A chunked body's length comes from its chunks (RFC 9112 6.3).
            (true, _) => Framing::Chunked,
            (false, Some(n)) => Framing::Length(n),
            (false, None) => Framing::UntilClose,
        };
        Ok(Some((status, headers, framing, close)))
    }

    async fn body_of_length(&mut self, len: usize, max: usize) -> Result<Bytes, WireError> {
        if len > max {
            return Err(WireError::TooLarge(max));
        }
        if self.buf.len() < len {
            self.buf.reserve(len - self.buf.len());
            while self.buf.len() < len {
                if self.stream.read_buf(&mut self.buf).await? == 0 {
                    return Err(WireError::Malformed(
                        "the connection was closed mid-body".into(),
                    ));
                }
            }
        }
        Ok(self.take(len))
    }

    /// The first `len` buffered bytes, copied when small so the buffer's memory is kept.
    fn take(&mut self, len: usize) -> Bytes {
        if len < COPY_BELOW {
            let body = Bytes::copy_from_slice(&self.buf[..len]);
            self.buf.advance(len);
            body
        } else {
            self.buf.split_to(len).freeze()
        }
    }

    async fn chunked_body(&mut self, max: usize) -> Result<Bytes, WireError> {
        let mut body = BytesMut::new();
        loop {
            let line = self.line().await?;
            let size_text = line.split(|b| *b == b';').next().unwrap_or(&[]);
            let size = std::str::from_utf8(size_text)
                .ok()
                .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
                .ok_or_else(|| WireError::Malformed("bad chunk size".into()))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(body.freeze());
            }
            if body.len().saturating_add(size) > max {
                return Err(WireError::TooLarge(max));
            }
            while self.buf.len() < size + 2 {
                if self.fill().await? == 0 {
                    return Err(WireError::Malformed(
                        "the connection was closed mid-chunk".into(),
                    ));
                }
            }
            body.extend_from_slice(&self.buf[..size]);
            if &self.buf[size..size + 2] != b"\r\n" {
                return Err(WireError::Malformed("a chunk not ended by CRLF".into()));
            }
            self.buf.advance(size + 2);
        }
    }

    /// One CRLF-ended line of a chunked body, consumed, without its CRLF.
    async fn line(&mut self) -> Result<Bytes, WireError> {
        loop {
            if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(i).freeze();
                self.buf.advance(2);
                return Ok(line);
            }
            if self.buf.len() > HEAD_MAX {
                return Err(WireError::Malformed("a chunk line too long".into()));
            }
            if self.fill().await? == 0 {
                return Err(WireError::Malformed(
                    "the connection was closed mid-body".into(),
                ));
            }
        }
    }

    async fn body_until_close(&mut self, max: usize) -> Result<Bytes, WireError> {
        loop {
            if self.buf.len() > max {
                return Err(WireError::TooLarge(max));
            }
            if self.fill().await? == 0 {
                let len = self.buf.len();
                return Ok(self.take(len));
            }
        }
    }
}

/// The request head: request line, the caller's headers minus framing and connection ones,
/// then `content-length` where a body is sent or the method normally carries one, or
/// `transfer-encoding: chunked` for a body of unknown length (`body_len` `None`).
fn encode_head(
    method: &Method,
    target: &str,
    headers: &HeaderMap,
    body_len: Option<u64>,
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256 + headers.len() * 48);
    head.extend_from_slice(method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        if name == http::header::CONTENT_LENGTH
            || name == http::header::TRANSFER_ENCODING
            || name == http::header::CONNECTION
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    let bodiless = matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::CONNECT
    );
    match body_len {
        None => head.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Some(n) if n > 0 || !bodiless => {
            head.extend_from_slice(b"content-length: ");
            head.extend_from_slice(n.to_string().as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        Some(_) => {}
    }
    head.extend_from_slice(b"\r\n");
    head
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::net::TcpListener;

    /// A connection whose other end answers each request with the next of `answers`, written
    /// in pieces of `step` bytes, and records what it received.
    async fn pair(answers: Vec<Vec<u8>>, step: usize) -> (Conn, tokio::task::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            for answer in answers {
                // Read one request: up to the blank line, then its content-length.
                let mut buf = Vec::new();
                loop {
                    let mut b = [0u8; 4096];
                    let n = s.read(&mut b).await.unwrap();
                    if n == 0 {
                        return seen;
                    }
                    buf.extend_from_slice(&b[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length: "))
                            .map_or(0, |v| v.parse::<usize>().unwrap());
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                seen.extend_from_slice(&buf);
                for piece in answer.chunks(step.max(1)) {
                    s.write_all(piece).await.unwrap();
                    s.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
            }
            seen
        });
        let stream = TcpStream::connect(addr).await.unwrap();
        (Conn::new(stream), server)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[tokio::test]
    async fn a_request_is_framed_and_a_sized_answer_read_whole() {
        let (mut c, server) = pair(
            vec![b"HTTP/1.1 200 OK\r\nx-fc-status: 200\r\nContent-Length: 5\r\n\r\nhello".to_vec()],
            3,
        )
        .await;
        let h = headers(&[("x-fc-request-id", "r1"), ("content-length", "999")]);
        c.send(&Method::POST, "/invoke", &h, &Bytes::from_static(b"abc"))
            .await
            .unwrap();
        let r = c.response(&Method::POST, 1 << 20).await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"hello");
        assert_eq!(r.headers.get("x-fc-status").unwrap(), "200");
        assert!(r.reusable);
        drop(c);
        let seen = String::from_utf8(server.await.unwrap()).unwrap();
        assert!(seen.starts_with("POST /invoke HTTP/1.1\r\n"), "{seen}");
        assert!(seen.contains("x-fc-request-id: r1\r\n"));
        // The caller's own content-length is replaced by the real one.
        assert!(
            seen.contains("content-length: 3\r\n") && !seen.contains("999"),
            "{seen}"
        );
        assert!(seen.ends_with("\r\n\r\nabc"));
    }

    #[tokio::test]
    async fn chunked_interim_and_keep_alive_answers() {
        let (mut c, _server) = pair(
            vec![
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n2\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n".to_vec(),
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
                b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end".to_vec(),
            ],
            7,
        )
        .await;
        let empty = Bytes::new();
        c.send(&Method::POST, "/invoke", &HeaderMap::new(), &empty)
            .await
            .unwrap();
        let r = c.response(&Method::POST, 1 << 20).await.unwrap();
        assert_eq!(
            (r.status, &r.body[..], r.reusable),
            (200, &b"abcde"[..], true)
        );
        assert!(c.still_open());
        c.send(&Method::GET, "/x", &HeaderMap::new(), &empty)
            .await
            .unwrap();
        let r = c.response(&Method::GET, 1 << 20).await.unwrap();
        assert_eq!((r.status, r.body.len(), r.reusable), (404, 0, true));
        c.send(&Method::GET, "/y", &HeaderMap::new(), &empty)
            .await
            .unwrap();
        let r = c.response(&Method::GET, 1 << 20).await.unwrap();
        assert_eq!(
            (r.status, &r.body[..], r.reusable),
            (200, &b"until the end"[..], false)
        );
    }

    #[tokio::test]
    async fn large_bodies_arrive_whole_and_oversized_ones_are_refused() {
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut answer =
            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", big.len()).into_bytes();
        answer.extend_from_slice(&big);
        let (mut c, _server) = pair(vec![answer.clone(), answer], 65536).await;
        let body = Bytes::from(big.clone());
        c.send(&Method::POST, "/invoke", &HeaderMap::new(), &body)
            .await
            .unwrap();
        let r = c.response(&Method::POST, 32 << 20).await.unwrap();
        assert_eq!(r.body, big);
        c.send(&Method::POST, "/invoke", &HeaderMap::new(), &Bytes::new())
            .await
            .unwrap();
        assert!(matches!(
            c.response(&Method::POST, 1 << 20).await,
            Err(WireError::TooLarge(_))
        ));
    }

    #[tokio::test]
    async fn a_closed_connection_is_noticed_before_reuse_and_reported() {
        let (mut c, server) = pair(vec![], 1).await;
        // The server side ends without answering: no requests were expected.
        server.await.unwrap();
        c.send(&Method::POST, "/invoke", &HeaderMap::new(), &Bytes::new())
            .await
            .unwrap();
        assert!(matches!(
            c.response(&Method::POST, 1 << 20).await,
            Err(WireError::ClosedBeforeResponse)
        ));
        // Readable (end of stream) between calls: not reusable.
        assert!(!c.still_open());
    }

    #[tokio::test]
    async fn head_responses_and_bad_heads() {
        let (mut c, _server) = pair(
            vec![
                b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n".to_vec(),
                b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab".to_vec(),
            ],
            100,
        )
        .await;
        c.send(&Method::HEAD, "/", &HeaderMap::new(), &Bytes::new())
            .await
            .unwrap();
        let r = c.response(&Method::HEAD, 1 << 20).await.unwrap();
        assert_eq!((r.status, r.body.len(), r.reusable), (200, 0, true));
        c.send(&Method::GET, "/", &HeaderMap::new(), &Bytes::new())
            .await
            .unwrap();
        assert!(matches!(
            c.response(&Method::GET, 1 << 20).await,
            Err(WireError::Malformed(_))
        ));
    }
}
