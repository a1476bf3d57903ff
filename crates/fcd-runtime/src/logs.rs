//! Collection of an instance's output (stdout and stderr share one pipe, so their lines keep
//! the order the function wrote them in) and the per-request log tail.
//!
//! Lines are numbered as they arrive and the newest ones are kept in a bounded buffer. A
//! request remembers the number the next line will get when it starts; after its response it
//! asks the collector to drain whatever the pipe already holds, then cuts out its own lines —
//! between the runtime's `FC Invoke Start/End` markers when the runtime prints them, or
//! everything since it started (framed by fcd) when it does not.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncReadExt;
use tokio::net::unix::pipe;
use tokio::sync::{mpsc, oneshot};

/// How many bytes of recent output an instance keeps for log tails.
const KEEP_BYTES: usize = 256 * 1024;

#[derive(Debug, Default)]
struct Buffer {
    lines: VecDeque<(u64, String)>,
    bytes: usize,
    next_seq: u64,
    partial: Vec<u8>,
}

impl Buffer {
    fn push_bytes(&mut self, data: &[u8], sink: &dyn Fn(&str)) {
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..pos]);
            rest = &rest[pos + 1..];
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            sink(&line);
            self.push_line(line);
        }
        self.partial.extend_from_slice(rest);
        // A runaway line without newlines must not grow without bound.
        if self.partial.len() > KEEP_BYTES {
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            sink(&line);
            self.push_line(line);
        }
    }

    fn push_line(&mut self, line: String) {
        self.bytes += line.len() + 1;
        self.lines.push_back((self.next_seq, line));
        self.next_seq += 1;
        while self.bytes > KEEP_BYTES {
            match self.lines.pop_front() {
                Some((_, l)) => self.bytes -= l.len() + 1,
                None => break,
            }
        }
    }

    fn flush_partial(&mut self, sink: &dyn Fn(&str)) {
        if !self.partial.is_empty() {
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            sink(&line);
            self.push_line(line);
        }
    }
}

/// Handle to a running collector.
#[derive(Debug, Clone)]
pub(crate) struct Logs {
    buf: Arc<Mutex<Buffer>>,
    sync_tx: mpsc::Sender<oneshot::Sender<()>>,
}

impl Logs {
    /// Starts collecting from the read end of the instance's output pipe. `sink` sees every
    /// complete line (fcd forwards them to its own log).
    pub(crate) fn start(rx: pipe::Receiver, sink: Box<dyn Fn(&str) + Send + Sync>) -> Logs {
        let buf = Arc::new(Mutex::new(Buffer::default()));
        let (sync_tx, sync_rx) = mpsc::channel(16);
        tokio::spawn(collect(rx, buf.clone(), sync_rx, sink));
        Logs { buf, sync_tx }
    }

    /// The sequence number the next line will get.
    pub(crate) fn mark(&self) -> u64 {
        self.buf.lock().map(|b| b.next_seq).unwrap_or(0)
    }

    /// Waits until everything the instance wrote before this call has been collected.
    pub(crate) async fn sync(&self) {
        let (tx, rx) = oneshot::channel();
        if self.sync_tx.send(tx).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// The lines since `mark`.
    pub(crate) fn since(&self, mark: u64) -> Vec<String> {
        match self.buf.lock() {
            Ok(b) => b
                .lines
                .iter()
                .filter(|(seq, _)| *seq >= mark)
                .map(|(_, l)| l.clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The sequence number of the first line mentioning `request_id` (an initializer's lines
    /// precede the request's own mark on a cold start).
    pub(crate) fn first_mark_of(&self, request_id: &str) -> Option<u64> {
        let b = self.buf.lock().ok()?;
        b.lines
            .iter()
            .find(|(_, l)| l.contains(request_id))
            .map(|(seq, _)| *seq)
    }

    /// The last `n` lines, for startup errors.
    pub(crate) fn last(&self, n: usize) -> Vec<String> {
        match self.buf.lock() {
            Ok(b) => b
                .lines
                .iter()
                .rev()
                .take(n)
                .rev()
                .map(|(_, l)| l.clone())
                .collect(),
            Err(_) => Vec::new(),
        }
    }
}

async fn collect(
    mut rx: pipe::Receiver,
    buf: Arc<Mutex<Buffer>>,
    mut sync_rx: mpsc::Receiver<oneshot::Sender<()>>,
    sink: Box<dyn Fn(&str) + Send + Sync>,
) {
    let mut chunk = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            biased;
            req = sync_rx.recv() => {
                let Some(ack) = req else { break };
                // Drain what the pipe holds right now without waiting for more.
                loop {
                    match rx.try_read(&mut chunk) {
                        Ok(0) => break,
                        Ok(n) => {
                            if let Ok(mut b) = buf.lock() {
                                b.push_bytes(&chunk[..n], &*sink);
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(_) => break,
                    }
                }
                let _ = ack.send(());
            }
            read = rx.read(&mut chunk) => {
                match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if let Ok(mut b) = buf.lock() {
                            b.push_bytes(&chunk[..n], &*sink);
                        }
                    }
                }
            }
        }
    }
    if let Ok(mut b) = buf.lock() {
        b.flush_partial(&*sink);
    }
    // The pipe is closed: answer any late sync requests at once.
    while let Some(ack) = sync_rx.recv().await {
        let _ = ack.send(());
    }
}

/// This request's part of the log, cut out by its markers or framed by fcd.
pub(crate) fn request_log(lines: &[String], request_id: &str) -> Vec<String> {
    let start_marker = format!("FC Invoke Start RequestId: {request_id}");
    let end_marker = format!("FC Invoke End RequestId: {request_id}");
    let start = lines.iter().position(|l| l.starts_with(&start_marker));
    let end = lines.iter().rposition(|l| l.starts_with(&end_marker));
    match (start, end) {
        (Some(s), Some(e)) if s <= e => {
            // Keep Initialize lines that came before the invoke in the same request.
            let init_marker = format!("FC Initialize Start RequestId: {request_id}");
            let first = lines[..s]
                .iter()
                .position(|l| l.starts_with(&init_marker))
                .unwrap_or(s);
            lines[first..=e].to_vec()
        }
        _ => {
            let mut out = Vec::with_capacity(lines.len() + 2);
            out.push(start_marker);
            out.extend(lines.iter().cloned());
            out.push(end_marker);
            out
        }
    }
}

/// The last `max` bytes of `text`, cut at a character boundary.
pub(crate) fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cuts_between_markers_including_initialize() {
        let l = lines(&[
            "noise",
            "FC Initialize Start RequestId: r1",
            "init",
            "FC Initialize End RequestId: r1",
            "FC Invoke Start RequestId: r1",
            "hello",
            "FC Invoke End RequestId: r1",
            "after",
        ]);
        let got = request_log(&l, "r1");
        assert_eq!(
            got.first().map(String::as_str),
            Some("FC Initialize Start RequestId: r1")
        );
        assert_eq!(
            got.last().map(String::as_str),
            Some("FC Invoke End RequestId: r1")
        );
        assert!(!got.contains(&"noise".to_string()) && !got.contains(&"after".to_string()));
    }

    #[test]
    fn frames_output_without_markers() {
        let got = request_log(&lines(&["a", "b"]), "r2");
        assert_eq!(
            got,
            lines(&[
                "FC Invoke Start RequestId: r2",
                "a",
                "b",
                "FC Invoke End RequestId: r2"
            ])
        );
    }

    #[test]
    fn buffer_splits_lines_and_stays_bounded() {
        let mut b = Buffer::default();
        let seen = std::sync::Mutex::new(Vec::new());
        let sink = |l: &str| seen.lock().unwrap().push(l.to_string());
        b.push_bytes(b"one\ntw", &sink);
        b.push_bytes(b"o\nthree", &sink);
        assert_eq!(*seen.lock().unwrap(), ["one", "two"]);
        b.flush_partial(&sink);
        assert_eq!(b.lines.len(), 3);
        for _ in 0..10_000 {
            b.push_bytes(&[b'x'; 100], &sink);
            b.push_bytes(b"\n", &sink);
        }
        assert!(b.bytes <= KEEP_BYTES);
    }

    #[test]
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("abc", 10), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aéb", 2), "b");
    }
}
