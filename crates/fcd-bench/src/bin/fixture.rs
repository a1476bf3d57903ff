//! `fcd-bench-fixture`: the custom-runtime function the benchmarks deploy, and the floor they
//! compare fcd against when it is run standalone.
//!
//! A deliberately small std-only HTTP/1.1 server: one thread per connection, keep-alive,
//! `TCP_NODELAY` on every accepted socket, listening on `0.0.0.0:$FC_SERVER_PORT` (9000 by
//! default). `POST /invoke` answers 200 with `x-fc-status: 200` and echoes the request body;
//! so does any method and path of an HTTP invocation (a request carrying
//! `x-fc-control-path: /http-invoke`, as fcd forwards an HTTP trigger's request: the header
//! decides, not the path); `POST /initialize` (and the lifecycle hooks) answer 200 with an
//! empty body. With
//! `FIXTURE_LOG=1` it prints FC's `FC Invoke Start/End RequestId: <id>` markers to stdout;
//! by default it prints nothing, so the floor it sets is not inflated by logging.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

/// Longest request line or header line accepted.
const MAX_LINE: usize = 16 * 1024;
/// Most header lines accepted in one request.
const MAX_HEADERS: usize = 128;
/// Largest body accepted (fcd itself stops at 32 MB).
const MAX_BODY: usize = 64 * 1024 * 1024;
/// Responses up to this size go out in a single write.
const COALESCE_MAX: usize = 64 * 1024;

fn main() -> ExitCode {
    let port = match std::env::var("FC_SERVER_PORT") {
        Ok(p) => match p.trim().parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                eprintln!("fcd-bench-fixture: invalid FC_SERVER_PORT {p:?}");
                return ExitCode::from(2);
            }
        },
        Err(_) => 9000,
    };
    let log = std::env::var("FIXTURE_LOG").is_ok_and(|v| v == "1");
    let listener = match TcpListener::bind(("0.0.0.0", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("fcd-bench-fixture: cannot listen on 0.0.0.0:{port}: {e}");
            return ExitCode::from(1);
        }
    };
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                let spawned = std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || serve(stream, log));
                if let Err(e) = spawned {
                    eprintln!("fcd-bench-fixture: cannot start a connection thread: {e}");
                }
            }
            Err(e) => {
                // e.g. EMFILE: back off instead of spinning.
                eprintln!("fcd-bench-fixture: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    ExitCode::SUCCESS
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    close: bool,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A request that cannot be served; answered with `status`, then the connection closes.
struct BadRequest {
    status: u16,
    reason: &'static str,
}

fn bad(status: u16, reason: &'static str) -> BadRequest {
    BadRequest { status, reason }
}

impl From<io::Error> for BadRequest {
    fn from(_: io::Error) -> BadRequest {
        // The peer went away mid-request; nothing useful can be answered.
        bad(0, "")
    }
}

/// Serves one connection until the peer closes it or asks to.
fn serve(stream: TcpStream, log: bool) {
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let req = match read_request(&mut reader, &mut writer) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => {
                if e.status != 0 {
                    let _ = respond(
                        &mut writer,
                        e.status,
                        &[("content-type", "text/plain")],
                        e.reason.as_bytes(),
                        true,
                    );
                }
                return;
            }
        };
        if respond_to(&req, &mut writer, log).is_err() || req.close {
            return;
        }
    }
}

fn respond_to(req: &Request, w: &mut TcpStream, log: bool) -> io::Result<()> {
    const OK: [(&str, &str); 2] = [
        ("x-fc-status", "200"),
        ("content-type", "application/octet-stream"),
    ];
    // An HTTP trigger's request keeps the client's method and path: the header marks it.
    if req.header("x-fc-control-path") == Some("/http-invoke") {
        return respond(w, 200, &OK, &req.body, req.close);
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/invoke") => {
            let id = req.header("x-fc-request-id").unwrap_or("");
            if log {
                print_line(&format!("FC Invoke Start RequestId: {id}"));
            }
            let r = respond(w, 200, &OK, &req.body, req.close);
            if log {
                print_line(&format!("FC Invoke End RequestId: {id}"));
            }
            r
        }
        ("POST", "/initialize" | "/pre-stop" | "/pre-freeze") => {
            respond(w, 200, &OK, b"", req.close)
        }
        _ => respond(
            w,
            404,
            &[("x-fc-status", "404"), ("content-type", "text/plain")],
            b"not found",
            req.close,
        ),
    }
}

fn print_line(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

fn respond(
    w: &mut TcpStream,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    close: bool,
) -> io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str(&format!("content-length: {}\r\n", body.len()));
    if close {
        head.push_str("connection: close\r\n");
    }
    head.push_str("\r\n");
    if body.len() <= COALESCE_MAX {
        // One segment per response: with TCP_NODELAY, two writes would be two packets.
        let mut all = Vec::with_capacity(head.len() + body.len());
        all.extend_from_slice(head.as_bytes());
        all.extend_from_slice(body);
        w.write_all(&all)
    } else {
        w.write_all(head.as_bytes())?;
        w.write_all(body)
    }
}

/// Reads one line (with its `\n`) of at most [`MAX_LINE`] bytes. `Ok(None)` at a clean EOF.
fn read_line(r: &mut BufReader<TcpStream>, buf: &mut Vec<u8>) -> Result<Option<()>, BadRequest> {
    buf.clear();
    let n = r
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        if n > MAX_LINE {
            return Err(bad(431, "line too long"));
        }
        // EOF in the middle of a line.
        return Err(bad(0, ""));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Ok(Some(()))
}

/// Reads the next request of a kept-alive (possibly pipelined) connection. `Ok(None)` when the
/// peer closed the connection between requests.
fn read_request(
    r: &mut BufReader<TcpStream>,
    w: &mut TcpStream,
) -> Result<Option<Request>, BadRequest> {
    let mut line = Vec::with_capacity(256);
    // RFC 9112 2.2: ignore empty lines before a request line.
    loop {
        if read_line(r, &mut line)?.is_none() {
            return Ok(None);
        }
        if !line.is_empty() {
            break;
        }
    }
    let text = std::str::from_utf8(&line).map_err(|_| bad(400, "request line is not text"))?;
    let mut parts = text.split(' ').filter(|s| !s.is_empty());
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(400, "malformed request line"));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(bad(505, "unsupported HTTP version")),
    };
    let method = method.to_owned();
    let path = target.split('?').next().unwrap_or("").to_owned();

    let mut headers = Vec::new();
    loop {
        if read_line(r, &mut line)?.is_none() {
            return Err(bad(0, ""));
        }
        if line.is_empty() {
            break;
        }
        if headers.len() >= MAX_HEADERS {
            return Err(bad(431, "too many headers"));
        }
        let text = String::from_utf8_lossy(&line);
        let Some((name, value)) = text.split_once(':') else {
            return Err(bad(400, "malformed header line"));
        };
        if name.is_empty() || name.ends_with(char::is_whitespace) {
            return Err(bad(400, "malformed header name"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    let mut req = Request {
        method,
        path,
        headers,
        body: Vec::new(),
        close: false,
    };
    let connection = req.header("connection").unwrap_or("").to_ascii_lowercase();
    req.close = if http11 {
        connection.split(',').any(|t| t.trim() == "close")
    } else {
        !connection.split(',').any(|t| t.trim() == "keep-alive")
    };
    if req
        .header("expect")
        .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"))
        && http11
    {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }

    if let Some(te) = req.header("transfer-encoding") {
        if !te
            .rsplit(',')
            .next()
            .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
        {
            return Err(bad(501, "unsupported transfer-encoding"));
        }
        req.body = read_chunked(r, &mut line)?;
    } else {
        let mut length: Option<usize> = None;
        for (k, v) in &req.headers {
            if k == "content-length" {
                let n: usize = v.parse().map_err(|_| bad(400, "bad content-length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(bad(400, "conflicting content-length"));
                }
                length = Some(n);
            }
        }
        let n = length.unwrap_or(0);
        if n > MAX_BODY {
            return Err(bad(413, "body too large"));
        }
        let mut body = vec![0; n];
        r.read_exact(&mut body)?;
        req.body = body;
    }
    Ok(Some(req))
}

fn read_chunked(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> Result<Vec<u8>, BadRequest> {
    let mut body = Vec::new();
    loop {
        if read_line(r, line)?.is_none() {
            return Err(bad(0, ""));
        }
        let text = std::str::from_utf8(line).map_err(|_| bad(400, "bad chunk size"))?;
        let size_text = text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| bad(400, "bad chunk size"))?;
        if size == 0 {
            // Trailers, up to the empty line.
            loop {
                if read_line(r, line)?.is_none() {
                    return Err(bad(0, ""));
                }
                if line.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len().saturating_add(size) > MAX_BODY {
            return Err(bad(413, "body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        r.read_exact(&mut body[start..])?;
        if read_line(r, line)?.is_none() || !line.is_empty() {
            return Err(bad(400, "chunk not followed by CRLF"));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A connection to a fixture serving one accepted socket on a thread.
    fn fixture() -> TcpStream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            serve(s, false);
        });
        let c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        c
    }

    /// Reads one response: status, headers (lower-cased) and body.
    fn response(r: &mut BufReader<TcpStream>) -> (u16, Vec<(String, String)>, Vec<u8>) {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let status = line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            line.clear();
            r.read_line(&mut line).unwrap();
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.push((k.to_ascii_lowercase(), v.trim().to_owned()));
        }
        let n: usize = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.parse().unwrap())
            .unwrap();
        let mut body = vec![0; n];
        r.read_exact(&mut body).unwrap();
        (status, headers, body)
    }

    #[test]
    fn echoes_pipelined_and_chunked_requests_on_one_connection() {
        let mut c = fixture();
        let mut r = BufReader::new(c.try_clone().unwrap());
        // Two requests in one write, then a chunked one, then an unknown path.
        c.write_all(
            b"POST /invoke HTTP/1.1\r\nContent-Length: 5\r\nx-fc-request-id: a\r\n\r\nhello\
              POST /invoke HTTP/1.1\r\ncontent-length: 0\r\n\r\n\
              POST /invoke HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
              POST /initialize HTTP/1.1\r\ncontent-length: 0\r\n\r\n\
              GET /nope HTTP/1.1\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
        let (status, headers, body) = response(&mut r);
        assert_eq!((status, body.as_slice()), (200, &b"hello"[..]));
        assert!(headers.contains(&("x-fc-status".into(), "200".into())));
        assert_eq!(response(&mut r).2, b"");
        assert_eq!(response(&mut r).2, b"abcde");
        assert_eq!(response(&mut r).0, 200);
        let (status, headers, _) = response(&mut r);
        assert_eq!(status, 404);
        assert!(headers.contains(&("connection".into(), "close".into())));
        // The fixture closed the connection as asked.
        let mut rest = Vec::new();
        assert_eq!(r.read_to_end(&mut rest).unwrap(), 0);
    }

    #[test]
    fn http_invocations_are_answered_whatever_their_method_and_path() {
        let mut c = fixture();
        let mut r = BufReader::new(c.try_clone().unwrap());
        c.write_all(
            b"GET /2016-08-15/proxy/s/f/path?x=1 HTTP/1.1\r\nx-fc-control-path: /http-invoke\r\n\r\n\
              POST /2016-08-15/proxy/s/f/path?x=1 HTTP/1.1\r\nx-fc-control-path: /http-invoke\r\ncontent-length: 3\r\n\r\nabc\
              GET /2016-08-15/proxy/s/f/path HTTP/1.1\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
        let (status, headers, body) = response(&mut r);
        assert_eq!((status, body.as_slice()), (200, &b""[..]));
        assert!(headers.contains(&("x-fc-status".into(), "200".into())));
        let (status, _, body) = response(&mut r);
        assert_eq!((status, body.as_slice()), (200, &b"abc"[..]));
        // Without the header, a path other than the contract's is not found.
        assert_eq!(response(&mut r).0, 404);
    }

    #[test]
    fn body_split_across_writes_is_read_exactly() {
        let mut c = fixture();
        let mut r = BufReader::new(c.try_clone().unwrap());
        let body = vec![7u8; 200_000];
        c.write_all(b"POST /invoke HTTP/1.1\r\ncontent-length: 200000\r\n\r\n")
            .unwrap();
        c.write_all(&body[..1000]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        c.write_all(&body[1000..]).unwrap();
        let (status, _, echoed) = response(&mut r);
        assert_eq!(status, 200);
        assert_eq!(echoed, body);
    }

    #[test]
    fn malformed_requests_get_400_and_a_close() {
        let mut c = fixture();
        let mut r = BufReader::new(c.try_clone().unwrap());
        c.write_all(b"POST /invoke HTTP/1.1\r\ncontent-length: x\r\n\r\n")
            .unwrap();
        let (status, headers, _) = response(&mut r);
        assert_eq!(status, 400);
        assert!(headers.contains(&("connection".into(), "close".into())));
    }
}
