//! Collection of an instance's output (stdout and stderr share one pipe, so their lines keep
//! the order the function wrote them in): every line becomes a [`LogRecord`] attributed to a
//! request, kept in a bounded in-memory ring (log tails, start-up errors) and handed to the
//! function's [`FunctionSink`] for the persistent store ([`crate::logstore`]).
//!
//! # Attribution
//!
//! Every call to an instance (`/invoke`, HTTP invocations, `/initialize`, the lifecycle hooks)
//! is registered with the collector for its duration ([`Logs::begin`]; the registration ends
//! once the pipe has been drained after the response). A line belongs to, in this order:
//! 1. the request a platform marker names (`FC Invoke Start RequestId: <id>`, and `End`, and
//!    the `Initialize`/`PreFreeze`/`PreStop` ones);
//! 2. the request id of an FC-formatted line (`<time> <requestId> [LEVEL] message`, §4.4 of the
//!    runtime contract) — as FC does, even where a runtime's process-wide logger printed
//!    another concurrent request's id;
//! 3. the one request whose markers are open (between its `Start` and `End`), if exactly one is;
//! 4. the one request registered on the instance, if exactly one is — this covers custom
//!    runtimes that print no markers and `instanceConcurrency` 1;
//! 5. otherwise no request (empty id): output between requests, or unmarked, unformatted
//!    output while several requests run at once (FC cannot attribute it either).
//!
//! The level is the formatted line's (upper-cased: `INFO`, `WARNING`, `VERBOSE`, …), `ERROR`
//! for an `End` marker reporting a function error, else `INFO`.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::unix::pipe;

use crate::logstore::{FunctionSink, LogRecord};

// Shared, so the common values cost no allocation per line.
static INFO: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("INFO"));
static ERROR: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("ERROR"));
static NONE: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));

/// How many bytes of recent output an instance keeps in memory for log tails.
const KEEP_BYTES: usize = 256 * 1024;
/// Longest line kept whole; a longer run without a newline is cut into lines of this size.
const MAX_LINE: usize = 128 * 1024;

/// The newest records of an instance.
#[derive(Debug, Default)]
struct Ring {
    records: VecDeque<Arc<LogRecord>>,
    bytes: usize,
}

impl Ring {
    fn push(&mut self, r: Arc<LogRecord>) {
        self.bytes += r.message.len() + 1;
        self.records.push_back(r);
        while self.bytes > KEEP_BYTES {
            match self.records.pop_front() {
                Some(old) => self.bytes -= old.message.len() + 1,
                None => break,
            }
        }
    }
}

/// Most bytes one drain takes from the pipe on a caller's behalf, so a function printing in a
/// loop cannot keep a caller reading; the rest is the collector task's.
const DRAIN_MAX: usize = 256 << 10;

/// Handle to a running collector.
///
/// The pipe is read only under the state's lock — by the collector task when it is readable,
/// and by callers (a call beginning or ending, a log tail) draining what it holds right then —
/// so lines are processed in the order they were written, and a call's registration is exact:
/// whatever was in the pipe when the call began is collected before it is registered, and
/// whatever is there when it ends, before it is unregistered. Registering costs a non-blocking
/// `read(2)` and a lock, no round trip to the task.
#[derive(Clone)]
pub(crate) struct Logs {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Logs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logs").finish_non_exhaustive()
    }
}

struct Inner {
    rx: pipe::Receiver,
    state: Mutex<Collector>,
}

/// Ends a call's registration when dropped, however the call ends (a caller that goes away
/// drops the call's future).
pub(crate) struct CallLog {
    inner: Arc<Inner>,
    request_id: Arc<str>,
}

impl Drop for CallLog {
    fn drop(&mut self) {
        self.inner.with_drained(|c| c.end(&self.request_id));
    }
}

impl Inner {
    /// Runs `f` on the state after collecting what the pipe holds right now.
    fn with_drained<R>(&self, f: impl FnOnce(&mut Collector) -> R) -> Option<R> {
        let mut c = self.state.lock().ok()?;
        c.drain(&self.rx);
        Some(f(&mut c))
    }
}

impl Logs {
    /// Starts collecting from the read end of instance `instance_id`'s output pipe. `forward`
    /// sees every complete line (fcd passes them to its own log at debug level).
    pub(crate) fn start(
        rx: pipe::Receiver,
        instance_id: &str,
        forward: Box<dyn Fn(&str) + Send + Sync>,
    ) -> Logs {
        let inner = Arc::new(Inner {
            rx,
            state: Mutex::new(Collector {
                ring: Ring::default(),
                attribution: Attribution::default(),
                instance_id: Arc::from(instance_id),
                qualifier: Arc::from(""),
                sink: None,
                forward,
                partial: Vec::new(),
                chunk: vec![0u8; 16 * 1024],
                closed: false,
            }),
        });
        tokio::spawn(collect(inner.clone()));
        Logs { inner }
    }

    /// From now on (and for what the ring already holds) the records go to `sink`.
    pub(crate) fn attach(&self, sink: Arc<FunctionSink>, qualifier: &str) {
        self.inner.with_drained(|c| {
            let q: Arc<str> = Arc::from(qualifier);
            // Start-up output was read before the instance's qualifier was known.
            let held = c
                .ring
                .records
                .iter()
                .map(|r| match r.qualifier.is_empty() {
                    true => Arc::new(LogRecord {
                        qualifier: q.clone(),
                        ..(**r).clone()
                    }),
                    false => r.clone(),
                })
                .collect();
            sink.offer(held);
            c.qualifier = q;
            c.sink = Some(sink);
        });
    }

    /// Registers a call to the instance until the returned guard is dropped. Send the call
    /// only after this: everything printed before belongs to no call of this one, everything
    /// printed from now on is collected while the call is registered.
    pub(crate) fn begin(&self, request_id: &str, qualifier: &str) -> CallLog {
        let request_id: Arc<str> = Arc::from(request_id);
        self.inner.with_drained(|c| {
            // Hooks carry no qualifier: their lines get the instance's.
            let qualifier = if qualifier.is_empty() {
                c.qualifier.clone()
            } else {
                Arc::from(qualifier)
            };
            c.attribution.running.push((request_id.clone(), qualifier));
        });
        CallLog {
            inner: self.inner.clone(),
            request_id,
        }
    }

    /// The messages of `request_id`'s lines still in memory, including everything the
    /// instance wrote before this call.
    pub(crate) fn request_lines(&self, request_id: &str) -> Vec<String> {
        self.inner
            .with_drained(|c| {
                c.ring
                    .records
                    .iter()
                    .filter(|l| *l.request_id == *request_id)
                    .map(|l| l.message.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The last `n` lines, for startup errors.
    pub(crate) fn last(&self, n: usize) -> Vec<String> {
        self.inner
            .with_drained(|c| {
                let skip = c.ring.records.len().saturating_sub(n);
                c.ring
                    .records
                    .iter()
                    .skip(skip)
                    .map(|l| l.message.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The collector task: reads whenever the pipe is readable, until it is closed.
async fn collect(inner: Arc<Inner>) {
    loop {
        if inner.rx.readable().await.is_err() {
            break;
        }
        let Ok(mut c) = inner.state.lock() else {
            break;
        };
        c.read_ready(&inner.rx);
        if c.closed {
            c.flush_partial();
            break;
        }
    }
}

/// Which requests a line can belong to (see the module docs for the rules).
#[derive(Debug, Default)]
struct Attribution {
    /// Registered calls: (request id, qualifier).
    running: Vec<(Arc<str>, Arc<str>)>,
    /// Requests between their Start and End markers.
    open: Vec<Arc<str>>,
}

/// `FC <Phase> Start|End RequestId: <id>[, Error: …]`.
fn parse_marker(line: &str) -> Option<(bool, &str, bool)> {
    let rest = line.strip_prefix("FC ")?;
    let (phase, rest) = rest.split_once(' ')?;
    if !matches!(phase, "Invoke" | "Initialize" | "PreFreeze" | "PreStop") {
        return None;
    }
    let (start, rest) = if let Some(r) = rest.strip_prefix("Start RequestId: ") {
        (true, r)
    } else {
        (false, rest.strip_prefix("End RequestId: ")?)
    };
    let end = rest.find([',', ' ']).unwrap_or(rest.len());
    let id = rest[..end].trim();
    let error = rest[end..].contains("Error");
    (!id.is_empty()).then_some((start, id, error))
}

/// `<timestamp> <requestId> [LEVEL] message` as FC's loggers print it (Python, Node.js, Go,
/// PHP): the request id and the level.
fn parse_formatted(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.splitn(4, ' ');
    let time = parts.next()?;
    let b = time.as_bytes();
    // 2020-07-08T11:54:44.123Z, 2020-07-08T19:54:44+08:00
    if b.len() < 19 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' || b[10] != b'T' {
        return None;
    }
    let rid = parts.next()?;
    let level = parts.next()?.strip_prefix('[')?.strip_suffix(']')?;
    if rid.is_empty()
        || level.is_empty()
        || level.len() > 12
        || !level.bytes().all(|c| c.is_ascii_alphabetic())
    {
        return None;
    }
    Some((rid, level))
}

impl Attribution {
    /// The request id and level of one line, updating the open marker regions.
    fn attribute(&mut self, line: &str) -> (Option<Arc<str>>, Level) {
        if let Some((start, id, error)) = parse_marker(line) {
            let id = self.intern(id);
            if start {
                if !self.open.contains(&id) {
                    self.open.push(id.clone());
                }
            } else {
                self.open.retain(|o| *o != id);
            }
            let level = if error { Level::Error } else { Level::Info };
            return (Some(id), level);
        }
        if let Some((rid, level)) = parse_formatted(line) {
            return (Some(self.intern(rid)), Level::Parsed(level.to_owned()));
        }
        let id = match (self.open.as_slice(), self.running.as_slice()) {
            ([one], _) => Some(one.clone()),
            ([], [(one, _)]) => Some(one.clone()),
            _ => None,
        };
        (id, Level::Info)
    }

    /// The shared string of a running request's id (so records do not each allocate it).
    fn intern(&self, id: &str) -> Arc<str> {
        self.running
            .iter()
            .map(|(r, _)| r)
            .chain(self.open.iter())
            .find(|r| &***r == id)
            .cloned()
            .unwrap_or_else(|| Arc::from(id))
    }

    fn qualifier_of(&self, id: &str) -> Option<Arc<str>> {
        self.running
            .iter()
            .find(|(r, _)| &**r == id)
            .map(|(_, q)| q.clone())
    }
}

enum Level {
    Info,
    Error,
    Parsed(String),
}

struct Collector {
    ring: Ring,
    attribution: Attribution,
    instance_id: Arc<str>,
    /// The instance's qualifier, for lines of no request.
    qualifier: Arc<str>,
    sink: Option<Arc<FunctionSink>>,
    forward: Box<dyn Fn(&str) + Send + Sync>,
    partial: Vec<u8>,
    chunk: Vec<u8>,
    /// The pipe reached its end (the instance is gone).
    closed: bool,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Collector {
    /// Reads what tokio says is readable, until the pipe would block (which clears tokio's
    /// readiness) or a round's worth is read (the task then yields to others).
    fn read_ready(&mut self, rx: &pipe::Receiver) {
        let mut chunk = std::mem::take(&mut self.chunk);
        let mut taken = 0;
        while !self.closed && taken < DRAIN_MAX {
            match rx.try_read(&mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    taken += n;
                    self.push_bytes(&chunk[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
        self.chunk = chunk;
    }

    /// Collects what the pipe holds right now without waiting for more. A plain non-blocking
    /// `read(2)`, not `try_read`: tokio's readiness may not have caught up with data the
    /// instance wrote before it answered, and that data belongs to the call that just ended.
    fn drain(&mut self, rx: &pipe::Receiver) {
        let mut chunk = std::mem::take(&mut self.chunk);
        let mut taken = 0;
        while !self.closed && taken < DRAIN_MAX {
            match nix::unistd::read(rx, &mut chunk) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    taken += n;
                    self.push_bytes(&chunk[..n]);
                }
                Err(nix::errno::Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        self.chunk = chunk;
    }

    /// A call ended: it takes no more lines.
    fn end(&mut self, request_id: &Arc<str>) {
        let a = &mut self.attribution;
        if let Some(i) = a.running.iter().position(|(r, _)| r == request_id) {
            a.running.remove(i);
        }
        // A request that never printed its End marker (timed out, crashed) has no region
        // any more.
        if !a.running.iter().any(|(r, _)| r == request_id) {
            a.open.retain(|o| o != request_id);
        }
    }

    fn push_bytes(&mut self, data: &[u8]) {
        let time_ms = now_ms();
        let mut batch = Vec::new();
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let line = if self.partial.is_empty() {
                String::from_utf8_lossy(&rest[..pos]).into_owned()
            } else {
                self.partial.extend_from_slice(&rest[..pos]);
                let l = String::from_utf8_lossy(&self.partial).into_owned();
                self.partial.clear();
                l
            };
            rest = &rest[pos + 1..];
            batch.push(self.record(time_ms, line));
        }
        self.partial.extend_from_slice(rest);
        // A runaway line without newlines must not grow without bound.
        while self.partial.len() >= MAX_LINE {
            let tail = self.partial.split_off(MAX_LINE);
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial = tail;
            batch.push(self.record(time_ms, line));
        }
        self.emit(batch);
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            let r = self.record(now_ms(), line);
            self.emit(vec![r]);
        }
    }

    fn record(&mut self, time_ms: i64, line: String) -> Arc<LogRecord> {
        let line = line.strip_suffix('\r').map(str::to_owned).unwrap_or(line);
        let (id, level) = self.attribution.attribute(&line);
        let qualifier = id
            .as_deref()
            .and_then(|i| self.attribution.qualifier_of(i))
            .unwrap_or_else(|| self.qualifier.clone());
        let level: Arc<str> = match level {
            Level::Info => INFO.clone(),
            Level::Error => ERROR.clone(),
            Level::Parsed(l) => Arc::from(l.to_ascii_uppercase()),
        };
        Arc::new(LogRecord {
            time_ms,
            request_id: id.unwrap_or_else(|| NONE.clone()),
            instance_id: self.instance_id.clone(),
            qualifier,
            level,
            message: line,
        })
    }

    fn emit(&mut self, batch: Vec<Arc<LogRecord>>) {
        if batch.is_empty() {
            return;
        }
        for r in &batch {
            (self.forward)(&r.message);
        }
        for r in &batch {
            self.ring.push(r.clone());
        }
        if let Some(sink) = &self.sink {
            sink.offer(batch);
        }
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
    use std::io::Write as _;
    use std::time::Duration;

    use super::*;
    use crate::logstore::{FunctionKey, LogLimits, LogQuery, LogStore};

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
    fn tail_respects_char_boundaries() {
        assert_eq!(tail("abc", 10), "abc");
        assert_eq!(tail("abcdef", 3), "def");
        assert_eq!(tail("aé", 1), "");
        assert_eq!(tail("aéb", 2), "b");
    }

    #[test]
    fn parses_fc_markers_and_formatted_lines() {
        assert_eq!(
            parse_marker("FC Invoke End RequestId: r-1, Error: Unhandled function error"),
            Some((false, "r-1", true))
        );
        assert_eq!(
            parse_marker("FC PreStop Start RequestId: x"),
            Some((true, "x", false))
        );
        assert_eq!(parse_marker("FC Invoke Start RequestId: "), None);
        assert_eq!(parse_marker("FC Foo Start RequestId: x"), None);
        assert_eq!(
            parse_formatted("2020-07-08T11:54:44.123Z 72ee-c3 [INFO] hello world"),
            Some(("72ee-c3", "INFO"))
        );
        assert_eq!(
            parse_formatted("2020-07-08T19:54:44+08:00 rid [warn] x"),
            Some(("rid", "warn"))
        );
        assert_eq!(parse_formatted("hello [INFO] world"), None);
        assert_eq!(parse_formatted("2020-07-08T11:54:44.123Z rid INFO x"), None);
    }

    fn ids(a: &mut Attribution, line: &str) -> String {
        a.attribute(line)
            .0
            .map(|s| s.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn attribution_rules() {
        let mut a = Attribution::default();
        // Nothing running: no request.
        assert_eq!(ids(&mut a, "boot"), "");
        // One request running, no markers (a custom runtime): that request.
        a.running.push((Arc::from("r1"), Arc::from("LATEST")));
        assert_eq!(ids(&mut a, "plain"), "r1");
        // Two running (instanceConcurrency 2): markers and formatted lines decide …
        a.running.push((Arc::from("r2"), Arc::from("prod")));
        assert_eq!(ids(&mut a, "plain"), "");
        assert_eq!(ids(&mut a, "FC Invoke Start RequestId: r2"), "r2");
        // … one open region takes unformatted lines …
        assert_eq!(ids(&mut a, "print from r2"), "r2");
        assert_eq!(
            ids(&mut a, "2024-01-01T00:00:00.000Z r1 [INFO] from r1"),
            "r1"
        );
        // … two open regions make them ambiguous.
        assert_eq!(ids(&mut a, "FC Invoke Start RequestId: r1"), "r1");
        assert_eq!(ids(&mut a, "ambiguous"), "");
        assert_eq!(ids(&mut a, "FC Invoke End RequestId: r2"), "r2");
        assert_eq!(ids(&mut a, "back to one"), "r1");
        assert_eq!(a.qualifier_of("r2").as_deref(), Some("prod"));
    }

    #[test]
    fn levels_come_from_the_line() {
        let mut a = Attribution::default();
        let lvl = |a: &mut Attribution, l: &str| match a.attribute(l).1 {
            Level::Info => "INFO".to_owned(),
            Level::Error => "ERROR".to_owned(),
            Level::Parsed(p) => p.to_ascii_uppercase(),
        };
        assert_eq!(
            lvl(&mut a, "2024-01-01T00:00:00.000Z r [WARNING] w"),
            "WARNING"
        );
        assert_eq!(
            lvl(&mut a, "2024-01-01T00:00:00.000Z r [verbose] v"),
            "VERBOSE"
        );
        assert_eq!(
            lvl(
                &mut a,
                "FC Invoke End RequestId: r, Error: Handled function error"
            ),
            "ERROR"
        );
        assert_eq!(lvl(&mut a, "print"), "INFO");
    }

    #[test]
    fn ring_stays_bounded() {
        let mut ring = Ring::default();
        for i in 0..10_000 {
            ring.push(Arc::new(LogRecord {
                time_ms: i,
                request_id: Arc::from(""),
                instance_id: Arc::from("i"),
                qualifier: Arc::from(""),
                level: Arc::from("INFO"),
                message: "x".repeat(100),
            }));
        }
        assert!(ring.bytes <= KEEP_BYTES);
    }

    /// What registering a call costs the invocation (one round trip to the collector task and
    /// back, plus the end message). Printed for the record; the bound only catches a hang.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn call_registration_cost() {
        let (_tx, rx) = pipe::pipe().unwrap();
        let logs = Logs::start(rx, "c-1", Box::new(|_| {}));
        let n = 20_000u32;
        let started = std::time::Instant::now();
        for _ in 0..n {
            drop(logs.begin("req", "LATEST"));
        }
        let per_call = started.elapsed() / n;
        eprintln!("call registration: {per_call:?} per call");
        assert!(per_call < Duration::from_millis(5));
    }

    /// How fast the collector turns output into records (what a function printing in a loop
    /// costs fcd's CPU before anything is stored). Printed for the record.
    #[test]
    fn collector_throughput() {
        let mut c = Collector {
            ring: Ring::default(),
            attribution: Attribution::default(),
            instance_id: Arc::from("c-1"),
            qualifier: Arc::from("LATEST"),
            sink: None,
            forward: Box::new(|_| {}),
            partial: Vec::new(),
            chunk: Vec::new(),
            closed: false,
        };
        c.attribution
            .running
            .push((Arc::from("r"), Arc::from("LATEST")));
        let line = format!("flood {}\n", "x".repeat(1017));
        let chunk = line.repeat(16).into_bytes();
        let total = 64usize << 20;
        let started = std::time::Instant::now();
        for _ in 0..total / chunk.len() {
            c.push_bytes(&chunk);
        }
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "collector: {:.0} MB/s of 1 KB lines",
            total as f64 / secs / 1e6
        );
        assert!(c.ring.bytes <= KEEP_BYTES);
    }

    /// Through a real pipe: registration, lines, the tail's lines and the store agree.
    #[tokio::test]
    async fn a_call_registers_collects_and_stores() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LogStore::open(tmp.path().to_path_buf(), LogLimits::default()).unwrap();
        let key = FunctionKey::new("1", "s", "f");
        let (tx, rx) = pipe::pipe().unwrap();
        let mut tx = std::fs::File::from(tx.into_blocking_fd().unwrap());
        let logs = Logs::start(rx, "c-1", Box::new(|_| {}));
        writeln!(tx, "starting up").unwrap();
        logs.attach(store.sink(key.clone()).unwrap(), "LATEST");
        let call = logs.begin("req-1", "prod");
        writeln!(tx, "no markers here").unwrap();
        write!(tx, "a split ").unwrap();
        writeln!(tx, "line").unwrap();
        drop(call);
        let got = logs.request_lines("req-1");
        assert_eq!(got, ["no markers here", "a split line"]);
        writeln!(tx, "between requests").unwrap();
        assert!(logs.request_lines("req-1").len() == 2);
        assert_eq!(logs.last(1), ["between requests"]);
        // The writer stores them shortly after (never on the caller's path).
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = store
                .query(
                    &key,
                    &LogQuery {
                        limit: 100,
                        ..Default::default()
                    },
                )
                .unwrap();
            if r.records.len() == 4 {
                let by: Vec<_> = r
                    .records
                    .iter()
                    .map(|r| {
                        (
                            r.request_id.as_str(),
                            r.qualifier.as_str(),
                            r.instance_id.as_str(),
                        )
                    })
                    .collect();
                assert_eq!(
                    by,
                    [
                        ("", "LATEST", "c-1"),
                        ("req-1", "prod", "c-1"),
                        ("req-1", "prod", "c-1"),
                        ("", "LATEST", "c-1")
                    ]
                );
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{r:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
