//! The persistent per-function log store: every line an instance prints, as a [`LogRecord`]
//! (time, request id, instance id, qualifier, level, message), kept on disk per function and
//! bounded by size and age.
//!
//! # Off the hot path
//!
//! Collectors ([`crate::logs`]) hand records to [`FunctionSink::offer`], which never blocks and
//! never touches the disk: it counts the batch's bytes against the function's share of the
//! in-flight budget ([`FN_QUEUE_BYTES`]) and the server's ([`QUEUE_BYTES`]) and queues it for the
//! one writer thread. When the writer falls behind — a function printing in a tight loop, a slow
//! disk — batches that do not fit are dropped and counted, and the next batch that fits starts
//! with a `WARN` record saying how many lines were lost. A noisy function therefore only ever
//! loses its own lines: its share of the queue is full, everyone else's is not.
//!
//! # Layout
//!
//! `<dir>/<account>/<service>/<function>/` holds segment files `<first-seq>.log` (one JSON
//! record per line, `seq` increasing per function, time order) and, for every sealed segment, a
//! small `<first-seq>.idx` (time range, seq range, count and the sorted request ids it holds).
//! The newest segment is the one being appended to and has no index. So:
//! - *by request id*: read the indexes (a few KB each), scan only the segments that hold the id;
//! - *since T*: skip every sealed segment whose index ends before T, scan from the first that
//!   does not;
//! - *size bound*: a segment is an eighth of the function's limit; when the function's files
//!   exceed the limit the oldest segments are deleted whole (no rewrite, no vacuum), so the
//!   files stay within the limit and keep at least seven eighths of it;
//! - *age bound*: a sweep every minute deletes segments whose newest record is older than the
//!   retention, and directories left empty.
//!
//! Append-only files were chosen over SQLite per function: writing is one buffered `write` per
//! batch, capping is deleting files (SQLite would need deletes plus `VACUUM` to give space back,
//! and a connection — file handles, WAL — per function, thousands of them), and the two queries
//! the API needs are served by the indexes above. Service and function names are FC names
//! (`[A-Za-z0-9_-]`), so they are safe path components; anything else is refused.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// A function may store at most its size limit per this period (after a burst of the whole
/// limit): printing faster than that only churns its own log, so the excess is dropped before
/// it costs the writer anything.
const RATE_PERIOD: Duration = Duration::from_secs(10);
/// Bytes of records one function may have queued for the writer; beyond, its lines are dropped.
pub const FN_QUEUE_BYTES: usize = 4 << 20;
/// Bytes of records all functions together may have queued for the writer.
pub const QUEUE_BYTES: usize = 64 << 20;
/// How often expired segments are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// After a round of writing, the writer waits this long before taking the next batches. While
/// it waits it is not blocked on the channel, so a collector's `send` is a plain enqueue with
/// no wake-up: the writer runs at most ~40 times a second under load instead of once per
/// call (a wake-up, a context switch and a `write(2)` per invocation cost a warm python3 call
/// tens of microseconds on a small machine). Records reach the files at most this much later.
const COALESCE: Duration = Duration::from_millis(25);
/// A function's writer state (open file, index of the newest segment) is dropped after this
/// long without records, so thousands of functions do not keep thousands of files open.
const IDLE_CLOSE: Duration = Duration::from_secs(60);
/// Records the live feed (follow mode) holds for slow subscribers; one that falls further
/// behind is told it lagged and catches up from the files. Small, because the feed keeps its
/// newest records whatever their size (256 lines of at most 128 KB: 32 MB at worst).
const LIVE_CAPACITY: usize = 256;
/// Defaults of `fcd serve --log-max-mb-per-function` and `--log-retention-hours`.
pub const DEFAULT_MAX_MB_PER_FUNCTION: u64 = 64;
pub const DEFAULT_RETENTION_HOURS: u64 = 72;

/// The limits every function's logs are held to.
#[derive(Debug, Clone, Copy)]
pub struct LogLimits {
    /// Most bytes of log files per function (segments and their indexes).
    pub max_bytes_per_function: u64,
    /// How long records are kept.
    pub retention: Duration,
}

impl Default for LogLimits {
    fn default() -> Self {
        LogLimits {
            max_bytes_per_function: DEFAULT_MAX_MB_PER_FUNCTION << 20,
            retention: Duration::from_secs(DEFAULT_RETENTION_HOURS * 3600),
        }
    }
}

impl LogLimits {
    /// Size of one segment: an eighth of the limit, at least 16 KB.
    fn segment_bytes(&self) -> u64 {
        (self.max_bytes_per_function / 8).max(16 << 10)
    }
}

/// Levels as they are stored: FC's formatted lines give theirs (upper-cased), everything else
/// is `INFO`.
pub type Level = Arc<str>;

/// One line of an instance's output, as collected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Milliseconds since the Unix epoch, when fcd read the line.
    pub time_ms: i64,
    /// The request the line belongs to; empty when it belongs to none (see [`crate::logs`]).
    pub request_id: Arc<str>,
    pub instance_id: Arc<str>,
    /// The qualifier the request was invoked with (the instance's own for lines of no request).
    pub qualifier: Arc<str>,
    pub level: Level,
    pub message: String,
}

impl LogRecord {
    /// Roughly what the record costs queued and on disk.
    fn cost(&self) -> usize {
        self.message.len() + self.request_id.len() + self.instance_id.len() + 96
    }
}

/// A record as stored and served: the collected record and its place in the function's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredRecord {
    /// Position in the function's log (increasing; survives restarts).
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub time: i64,
    pub request_id: String,
    pub instance_id: String,
    pub qualifier: String,
    pub level: String,
    pub message: String,
}

/// Which function a log belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionKey {
    pub account: String,
    pub service: String,
    pub function: String,
}

impl FunctionKey {
    pub fn new(account: &str, service: &str, function: &str) -> FunctionKey {
        FunctionKey {
            account: account.to_owned(),
            service: service.to_owned(),
            function: function.to_owned(),
        }
    }

    /// The function's directory under `root`; `None` for names that are not safe path
    /// components (FC's validation never lets such a name exist).
    fn dir(&self, root: &Path) -> Option<PathBuf> {
        let safe = |s: &str| {
            !s.is_empty()
                && s.len() <= 128
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        (safe(&self.account) && safe(&self.service) && safe(&self.function)).then(|| {
            root.join(&self.account)
                .join(&self.service)
                .join(&self.function)
        })
    }
}

/// What to read from a function's log.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    pub request_id: Option<String>,
    /// Records at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Records before this time.
    pub until_ms: Option<i64>,
    pub qualifier: Option<String>,
    /// Records after this seq (follow mode's continuation).
    pub after_seq: Option<u64>,
    /// Most records returned: the first ones from `since_ms` when it is given, else the newest.
    pub limit: usize,
}

impl LogQuery {
    /// Whether a record is one the query asks for.
    pub fn matches(&self, r: &StoredRecord) -> bool {
        self.request_id
            .as_deref()
            .is_none_or(|id| r.request_id == id)
            && self.since_ms.is_none_or(|t| r.time >= t)
            && self.until_ms.is_none_or(|t| r.time < t)
            && self.qualifier.as_deref().is_none_or(|q| r.qualifier == q)
            && self.after_seq.is_none_or(|s| r.seq > s)
    }
}

/// The records a query found, in log order.
#[derive(Debug, Default)]
pub struct QueryResult {
    pub records: Vec<StoredRecord>,
    /// More records matched than `limit`.
    pub truncated: bool,
}

/// One node's answer to a query, for [`merge`]: in a cluster every node keeps the logs of
/// what ran on it, so a cluster-wide read asks each node the same [`LogQuery`] and merges.
#[derive(Debug, Default)]
pub struct NodeResult {
    /// The node the records came from.
    pub node: String,
    pub result: QueryResult,
}

/// The records of several nodes as one answer, each with the node it came from.
#[derive(Debug, Default)]
pub struct MergedResult {
    /// `(node, record)`, ordered by time, then seq, then node.
    pub records: Vec<(String, StoredRecord)>,
    /// Some node's answer was truncated, or the merge cut records to the limit.
    pub truncated: bool,
}

/// Merges what several nodes found for the same query `q` the way one node's query chooses:
/// the first `q.limit` records from the starting point when `since_ms` (or `after_seq`) is
/// given, else the newest `q.limit`.
///
/// This is exact as long as each node applied `q` itself: any record among the cluster's first
/// (or newest) `limit` is among its own node's first (or newest) `limit`. Seq numbers are per
/// node, so across nodes they only break ties in time (then the node id, so the order is
/// stable).
pub fn merge(q: &LogQuery, parts: Vec<NodeResult>) -> MergedResult {
    let limit = q.limit.max(1);
    let mut truncated = false;
    let mut records = Vec::with_capacity(parts.iter().map(|p| p.result.records.len()).sum());
    for p in parts {
        truncated |= p.result.truncated;
        records.extend(p.result.records.into_iter().map(|r| (p.node.clone(), r)));
    }
    records.sort_by(|(na, a), (nb, b)| {
        a.time
            .cmp(&b.time)
            .then(a.seq.cmp(&b.seq))
            .then_with(|| na.cmp(nb))
    });
    if records.len() > limit {
        truncated = true;
        if q.since_ms.is_some() || q.after_seq.is_some() {
            records.truncate(limit);
        } else {
            records.drain(..records.len() - limit);
        }
    }
    MergedResult { records, truncated }
}

/// A record just written, for followers.
#[derive(Debug)]
pub struct LiveRecord {
    pub key: Arc<FunctionKey>,
    pub record: StoredRecord,
}

enum WriterMsg {
    Batch {
        sink: Arc<FunctionSink>,
        records: Vec<Arc<LogRecord>>,
        bytes: usize,
    },
}

/// The store. One per server; cheap to share.
pub struct LogStore {
    root: PathBuf,
    limits: LogLimits,
    tx: Mutex<mpsc::Sender<WriterMsg>>,
    queued: Arc<AtomicUsize>,
    sinks: Mutex<HashMap<FunctionKey, Arc<FunctionSink>>>,
    live: broadcast::Sender<Arc<LiveRecord>>,
    /// Lines dropped because the writer fell behind, all functions together.
    dropped_total: Arc<AtomicU64>,
    /// Set when the server shuts down: followers end their streams.
    closing: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("root", &self.root)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Where one function's records enter the store; collectors of its instances hold one.
pub struct FunctionSink {
    key: Arc<FunctionKey>,
    /// Token bucket of the function's write rate: (bytes allowed now, when last refilled).
    allowance: Mutex<(f64, Instant)>,
    max_bytes: f64,
    tx: mpsc::Sender<WriterMsg>,
    queued: AtomicUsize,
    server_queued: Arc<AtomicUsize>,
    dropped: AtomicU64,
    dropped_total: Arc<AtomicU64>,
}

impl std::fmt::Debug for FunctionSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionSink")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl FunctionSink {
    /// Queues `records` for the writer without blocking; drops (and counts) them when the
    /// function's or the server's share of the queue is full. Never touches the disk.
    pub fn offer(self: &Arc<Self>, mut records: Vec<Arc<LogRecord>>) {
        if records.is_empty() {
            return;
        }
        let mut bytes: usize = records.iter().map(|r| r.cost()).sum();
        let mine = self.queued.load(Ordering::Relaxed);
        let all = self.server_queued.load(Ordering::Relaxed);
        if mine + bytes > FN_QUEUE_BYTES || all + bytes > QUEUE_BYTES || !self.allow(bytes) {
            let n = records.len() as u64;
            self.dropped.fetch_add(n, Ordering::Relaxed);
            self.dropped_total.fetch_add(n, Ordering::Relaxed);
            return;
        }
        let lost = self.dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let first = &records[0];
            let note = Arc::new(LogRecord {
                time_ms: first.time_ms,
                request_id: Arc::from(""),
                instance_id: first.instance_id.clone(),
                qualifier: first.qualifier.clone(),
                level: Arc::from("WARN"),
                message: format!(
                    "[fcd] {lost} log lines of this function were dropped: it printed faster than they could be stored, or more than its log keeps within {} s",
                    RATE_PERIOD.as_secs()
                ),
            });
            bytes += note.cost();
            records.insert(0, note);
        }
        self.queued.fetch_add(bytes, Ordering::Relaxed);
        self.server_queued.fetch_add(bytes, Ordering::Relaxed);
        let sent = self.tx.send(WriterMsg::Batch {
            sink: self.clone(),
            records,
            bytes,
        });
        if sent.is_err() {
            // The writer is gone (shutdown): nothing will be stored any more.
            self.queued.fetch_sub(bytes, Ordering::Relaxed);
            self.server_queued.fetch_sub(bytes, Ordering::Relaxed);
        }
    }

    /// Takes `bytes` from the function's write allowance, if it has that much.
    fn allow(&self, bytes: usize) -> bool {
        let Ok(mut a) = self.allowance.lock() else {
            return true;
        };
        let now = Instant::now();
        let refill = now.duration_since(a.1).as_secs_f64() / RATE_PERIOD.as_secs_f64();
        a.0 = (a.0 + refill * self.max_bytes).min(self.max_bytes);
        a.1 = now;
        if a.0 < bytes as f64 {
            return false;
        }
        a.0 -= bytes as f64;
        true
    }

    fn done(&self, bytes: usize) {
        self.queued.fetch_sub(bytes, Ordering::Relaxed);
        self.server_queued.fetch_sub(bytes, Ordering::Relaxed);
    }

    pub fn key(&self) -> &FunctionKey {
        &self.key
    }
}

/// The layout version of the files under the store's root (segments, indexes), kept in
/// `<root>/FORMAT`: a directory from before the marker existed has this layout too; one
/// written by a newer fcd is refused rather than misread.
const FORMAT: u32 = 1;

fn check_format(root: &Path) -> io::Result<()> {
    let path = root.join("FORMAT");
    match fs::read_to_string(&path) {
        Ok(text) => {
            let found = text
                .trim()
                .strip_prefix("fcd-logstore ")
                .and_then(|v| v.parse::<u32>().ok());
            match found {
                Some(v) if v <= FORMAT => Ok(()),
                Some(v) => Err(io::Error::other(format!(
                    "{} has log store format {v}, newer than this fcd's {FORMAT}",
                    root.display()
                ))),
                None => Err(io::Error::other(format!(
                    "{} is not a log store format marker",
                    path.display()
                ))),
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let tmp = root.join(".FORMAT.tmp");
            fs::write(&tmp, format!("fcd-logstore {FORMAT}\n"))?;
            fs::rename(&tmp, &path)
        }
        Err(e) => Err(e),
    }
}

impl LogStore {
    /// Opens (creating) the store under `root` and starts its writer thread, which ends when
    /// the store is dropped.
    pub fn open(root: PathBuf, limits: LogLimits) -> io::Result<Arc<LogStore>> {
        fs::create_dir_all(&root)?;
        check_format(&root)?;
        let (tx, rx) = mpsc::channel();
        let (live, _) = broadcast::channel(LIVE_CAPACITY);
        let writer = Writer {
            root: root.clone(),
            limits,
            functions: HashMap::new(),
            live: live.clone(),
        };
        std::thread::Builder::new()
            .name("fcd-log-writer".into())
            .spawn(move || writer.run(rx))?;
        Ok(Arc::new(LogStore {
            root,
            limits,
            tx: Mutex::new(tx),
            queued: Arc::new(AtomicUsize::new(0)),
            sinks: Mutex::new(HashMap::new()),
            live,
            dropped_total: Arc::new(AtomicU64::new(0)),
            closing: tokio::sync::watch::Sender::new(false),
        }))
    }

    pub fn limits(&self) -> LogLimits {
        self.limits
    }

    /// The sink of one function (shared by all its instances, so its queue share and dropped
    /// count are the function's).
    pub fn sink(&self, key: FunctionKey) -> Option<Arc<FunctionSink>> {
        let tx = self.tx.lock().ok()?.clone();
        let mut sinks = self.sinks.lock().ok()?;
        // Sinks no collector holds any more are forgotten, so the map does not grow with every
        // function ever run.
        if sinks.len() > 1024 {
            sinks.retain(|_, s| Arc::strong_count(s) > 1);
        }
        Some(
            sinks
                .entry(key.clone())
                .or_insert_with(|| {
                    let max_bytes = self.limits.max_bytes_per_function as f64;
                    Arc::new(FunctionSink {
                        key: Arc::new(key),
                        allowance: Mutex::new((max_bytes, Instant::now())),
                        max_bytes,
                        tx,
                        queued: AtomicUsize::new(0),
                        server_queued: self.queued.clone(),
                        dropped: AtomicU64::new(0),
                        dropped_total: self.dropped_total.clone(),
                    })
                })
                .clone(),
        )
    }

    /// The server is shutting down: followers end their streams (so a client following a log
    /// does not hold the shutdown's drain for its whole grace period).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once [`LogStore::close`] was called.
    pub async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Lines dropped since start because the writer fell behind.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// Records written from now on, for follow mode. A subscriber that falls more than a few
    /// thousand records behind gets `Lagged` and should re-read from the store.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveRecord>> {
        self.live.subscribe()
    }

    /// Reads a function's records. Blocking file IO: call it off the async runtime's threads.
    pub fn query(&self, key: &FunctionKey, q: &LogQuery) -> io::Result<QueryResult> {
        let Some(dir) = key.dir(&self.root) else {
            return Ok(QueryResult::default());
        };
        query_dir(&dir, q)
    }

    /// Bytes of log files a function has on disk.
    pub fn disk_bytes(&self, key: &FunctionKey) -> u64 {
        key.dir(&self.root)
            .and_then(|d| list_segments(&d).ok())
            .map(|segs| segs.iter().map(|s| s.bytes).sum())
            .unwrap_or(0)
    }
}

/// A segment file as found in a directory.
#[derive(Debug, Clone)]
struct SegmentFile {
    first_seq: u64,
    log: PathBuf,
    idx: Option<PathBuf>,
    /// Of the log and its index together.
    bytes: u64,
}

/// The index of a sealed segment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
struct SegmentIndex {
    first_ms: i64,
    last_ms: i64,
    first_seq: u64,
    last_seq: u64,
    count: u64,
    request_ids: BTreeSet<String>,
}

impl SegmentIndex {
    fn add(&mut self, r: &StoredRecord) {
        if self.count == 0 {
            self.first_ms = r.time;
            self.first_seq = r.seq;
        }
        self.last_ms = self.last_ms.max(r.time);
        self.last_seq = r.seq;
        self.count += 1;
        if !r.request_id.is_empty() && !self.request_ids.contains(&r.request_id) {
            self.request_ids.insert(r.request_id.clone());
        }
    }

    /// Whether the segment can hold records the query wants.
    fn may_match(&self, q: &LogQuery) -> bool {
        q.since_ms.is_none_or(|t| self.last_ms >= t)
            && q.until_ms.is_none_or(|t| self.first_ms < t)
            && q.after_seq.is_none_or(|s| self.last_seq > s)
            && q.request_id
                .as_deref()
                .is_none_or(|id| self.request_ids.contains(id))
    }
}

fn list_segments(dir: &Path) -> io::Result<Vec<SegmentFile>> {
    let mut logs: HashMap<u64, SegmentFile> = HashMap::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        let Ok(seq) = stem.parse::<u64>() else {
            continue;
        };
        let len = entry.metadata().map(|m| m.len()).unwrap_or(0);
        let seg = logs.entry(seq).or_insert_with(|| SegmentFile {
            first_seq: seq,
            log: dir.join(format!("{stem}.log")),
            idx: None,
            bytes: 0,
        });
        match ext {
            "log" => seg.bytes += len,
            "idx" => {
                seg.bytes += len;
                seg.idx = Some(entry.path());
            }
            _ => {}
        }
    }
    let mut out: Vec<SegmentFile> = logs.into_values().filter(|s| s.log.exists()).collect();
    out.sort_by_key(|s| s.first_seq);
    Ok(out)
}

fn read_index(path: &Path) -> Option<SegmentIndex> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

/// Every record of a segment file (a torn last line, from a crash or a concurrent append, is
/// skipped).
fn read_segment(path: &Path, mut each: impl FnMut(StoredRecord)) -> io::Result<()> {
    let file = match File::open(path) {
        Ok(f) => f,
        // Deleted by the writer meanwhile (size or age bound): nothing to read.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for line in BufReader::with_capacity(64 << 10, file).split(b'\n') {
        let line = line?;
        if let Ok(r) = serde_json::from_slice::<StoredRecord>(&line) {
            each(r);
        }
    }
    Ok(())
}

fn query_dir(dir: &Path, q: &LogQuery) -> io::Result<QueryResult> {
    let segments = match list_segments(dir) {
        Ok(s) => s,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(QueryResult::default()),
        Err(e) => return Err(e),
    };
    let limit = q.limit.max(1);
    let wanted = |s: &SegmentFile| match s.idx.as_deref().and_then(read_index) {
        Some(ix) => ix.may_match(q),
        // The segment being written (or one a crash left without its index): read it.
        None => true,
    };
    let mut out = QueryResult::default();
    if q.since_ms.is_some() || q.after_seq.is_some() {
        // The first `limit` records from the starting point.
        'segments: for s in segments.iter().filter(|s| wanted(s)) {
            let mut full = false;
            read_segment(&s.log, |r| {
                if full || !q.matches(&r) {
                    return;
                }
                if out.records.len() == limit {
                    full = true;
                    return;
                }
                out.records.push(r);
            })?;
            if full {
                out.truncated = true;
                break 'segments;
            }
        }
    } else {
        // The newest `limit` records: segments newest first, until enough are found.
        let mut newest_first: Vec<Vec<StoredRecord>> = Vec::new();
        let mut found = 0;
        for s in segments.iter().rev().filter(|s| wanted(s)) {
            let mut got = Vec::new();
            read_segment(&s.log, |r| {
                if q.matches(&r) {
                    got.push(r);
                }
            })?;
            found += got.len();
            newest_first.push(got);
            if found > limit {
                break;
            }
        }
        out.records = newest_first.into_iter().rev().flatten().collect();
        if out.records.len() > limit {
            out.truncated = true;
            out.records.drain(..out.records.len() - limit);
        }
    }
    Ok(out)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The segment being appended to.
struct Active {
    first_seq: u64,
    file: BufWriter<File>,
    bytes: u64,
    index: SegmentIndex,
}

/// The writer's state of one function.
struct FunctionState {
    dir: PathBuf,
    /// Sealed segments, oldest first: (first seq, bytes with index, last record time).
    sealed: Vec<(u64, u64, i64)>,
    active: Option<Active>,
    next_seq: u64,
    last_write: Instant,
}

impl FunctionState {
    /// Reads what a function already has on disk (after a restart or an idle close).
    fn open(dir: PathBuf) -> io::Result<FunctionState> {
        fs::create_dir_all(&dir)?;
        let mut st = FunctionState {
            dir,
            sealed: Vec::new(),
            active: None,
            next_seq: 1,
            last_write: Instant::now(),
        };
        let segments = list_segments(&st.dir)?;
        for (i, s) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            let index = match s.idx.as_deref().and_then(read_index) {
                Some(ix) => ix,
                None => {
                    // The newest segment (or one a crash left unsealed): index it now.
                    let mut ix = SegmentIndex::default();
                    read_segment(&s.log, |r| ix.add(&r))?;
                    ix
                }
            };
            st.next_seq = st.next_seq.max(index.last_seq + 1).max(s.first_seq);
            if last && s.idx.is_none() {
                let mut file = OpenOptions::new().read(true).append(true).open(&s.log)?;
                let mut bytes = file.metadata()?.len();
                // A crash may have left half a line: end it, so the next record starts on a
                // line of its own (the torn one is skipped by readers).
                if bytes > 0 {
                    use std::io::{Read, Seek, SeekFrom};
                    let mut last_byte = [0u8; 1];
                    file.seek(SeekFrom::Start(bytes - 1))?;
                    file.read_exact(&mut last_byte)?;
                    if last_byte[0] != b'\n' {
                        file.write_all(b"\n")?;
                        bytes += 1;
                    }
                }
                st.active = Some(Active {
                    first_seq: s.first_seq,
                    file: BufWriter::with_capacity(64 << 10, file),
                    bytes,
                    index,
                });
            } else {
                if s.idx.is_none() {
                    write_index(&st.dir, s.first_seq, &index)?;
                }
                st.sealed.push((s.first_seq, s.bytes, index.last_ms));
            }
        }
        Ok(st)
    }

    fn total_bytes(&self) -> u64 {
        self.sealed.iter().map(|s| s.1).sum::<u64>() + self.active.as_ref().map_or(0, |a| a.bytes)
    }

    fn append(&mut self, r: StoredRecord, limits: &LogLimits) -> io::Result<()> {
        let mut line = serde_json::to_vec(&r).map_err(io::Error::other)?;
        line.push(b'\n');
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.bytes + line.len() as u64 > limits.segment_bytes())
        {
            self.seal()?;
        }
        if self.active.is_none() {
            let path = self.dir.join(format!("{:020}.log", r.seq));
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            self.active = Some(Active {
                first_seq: r.seq,
                file: BufWriter::with_capacity(64 << 10, file),
                bytes: 0,
                index: SegmentIndex::default(),
            });
        }
        if let Some(a) = self.active.as_mut() {
            a.file.write_all(&line)?;
            a.bytes += line.len() as u64;
            a.index.add(&r);
        }
        self.enforce_size(limits)
    }

    /// Closes the active segment: flushed, with its index written next to it.
    fn seal(&mut self) -> io::Result<()> {
        if let Some(mut a) = self.active.take() {
            a.file.flush()?;
            let idx_bytes = write_index(&self.dir, a.first_seq, &a.index)?;
            self.sealed
                .push((a.first_seq, a.bytes + idx_bytes, a.index.last_ms));
        }
        Ok(())
    }

    /// Deletes the oldest segments while the function's files exceed its limit.
    fn enforce_size(&mut self, limits: &LogLimits) -> io::Result<()> {
        while self.total_bytes() > limits.max_bytes_per_function && !self.sealed.is_empty() {
            let (seq, _, _) = self.sealed.remove(0);
            remove_segment(&self.dir, seq);
        }
        Ok(())
    }

    /// Deletes segments whose newest record is older than `cutoff_ms`.
    fn expire(&mut self, cutoff_ms: i64) -> io::Result<()> {
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.index.last_ms < cutoff_ms)
        {
            self.seal()?;
        }
        let dir = self.dir.clone();
        self.sealed.retain(|(seq, _, last_ms)| {
            let keep = *last_ms >= cutoff_ms;
            if !keep {
                remove_segment(&dir, *seq);
            }
            keep
        });
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.active.as_mut() {
            Some(a) => a.file.flush(),
            None => Ok(()),
        }
    }
}

fn write_index(dir: &Path, first_seq: u64, index: &SegmentIndex) -> io::Result<u64> {
    let body = serde_json::to_vec(index).map_err(io::Error::other)?;
    let tmp = dir.join(format!(".{first_seq:020}.idx.tmp"));
    fs::write(&tmp, &body)?;
    fs::rename(&tmp, dir.join(format!("{first_seq:020}.idx")))?;
    Ok(body.len() as u64)
}

fn remove_segment(dir: &Path, first_seq: u64) {
    // The index first: a segment without an index is read in full, never skipped wrongly.
    let _ = fs::remove_file(dir.join(format!("{first_seq:020}.idx")));
    let _ = fs::remove_file(dir.join(format!("{first_seq:020}.log")));
}

/// The writer thread: the only code that writes log files.
struct Writer {
    root: PathBuf,
    limits: LogLimits,
    functions: HashMap<Arc<FunctionKey>, FunctionState>,
    live: broadcast::Sender<Arc<LiveRecord>>,
}

impl Writer {
    fn run(mut self, rx: mpsc::Receiver<WriterMsg>) {
        let mut next_sweep = Instant::now();
        loop {
            let wait = next_sweep.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(msg) => {
                    self.handle(msg);
                    // Everything already queued, then one flush for the lot.
                    while let Ok(msg) = rx.try_recv() {
                        self.handle(msg);
                    }
                    for st in self.functions.values_mut() {
                        if let Err(e) = st.flush() {
                            tracing::warn!(dir = %st.dir.display(), error = %e, "writing function logs failed");
                        }
                    }
                    std::thread::sleep(COALESCE);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_sweep {
                self.sweep(now_ms());
                next_sweep = Instant::now() + SWEEP_EVERY;
            }
        }
        for st in self.functions.values_mut() {
            let _ = st.flush();
        }
    }

    fn handle(&mut self, msg: WriterMsg) {
        let WriterMsg::Batch {
            sink,
            records,
            bytes,
        } = msg;
        if let Err(e) = self.write(&sink.key, records) {
            tracing::warn!(service = %sink.key.service, function = %sink.key.function, error = %e, "writing function logs failed");
        }
        sink.done(bytes);
    }

    fn write(&mut self, key: &Arc<FunctionKey>, records: Vec<Arc<LogRecord>>) -> io::Result<()> {
        if !self.functions.contains_key(key) {
            let Some(dir) = key.dir(&self.root) else {
                return Ok(());
            };
            self.functions
                .insert(key.clone(), FunctionState::open(dir)?);
        }
        let Some(st) = self.functions.get_mut(key) else {
            return Ok(());
        };
        let follow = self.live.receiver_count() > 0;
        for r in records {
            let stored = StoredRecord {
                seq: st.next_seq,
                time: r.time_ms,
                request_id: r.request_id.to_string(),
                instance_id: r.instance_id.to_string(),
                qualifier: r.qualifier.to_string(),
                level: r.level.to_string(),
                message: r.message.clone(),
            };
            st.next_seq += 1;
            if follow {
                st.append(stored.clone(), &self.limits)?;
                let _ = self.live.send(Arc::new(LiveRecord {
                    key: key.clone(),
                    record: stored,
                }));
            } else {
                st.append(stored, &self.limits)?;
            }
        }
        st.last_write = Instant::now();
        Ok(())
    }

    /// Applies the age bound to every function on disk, and closes idle functions' files.
    fn sweep(&mut self, now_ms: i64) {
        let cutoff = now_ms - self.limits.retention.as_millis() as i64;
        let idle: Vec<Arc<FunctionKey>> = self
            .functions
            .iter()
            .filter(|(_, st)| st.last_write.elapsed() > IDLE_CLOSE)
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            if let Some(mut st) = self.functions.remove(&k) {
                let _ = st.flush();
            }
        }
        for st in self.functions.values_mut() {
            if let Err(e) = st.expire(cutoff) {
                tracing::warn!(dir = %st.dir.display(), error = %e, "expiring function logs failed");
            }
        }
        // Functions without open state: straight from the directory tree.
        for dir in function_dirs(&self.root) {
            if self.functions.values().any(|st| st.dir == dir) {
                continue;
            }
            expire_dir(&dir, cutoff);
        }
    }
}

/// `<root>/<account>/<service>/<function>` directories.
fn function_dirs(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let subdirs = |d: &Path| -> Vec<PathBuf> {
        fs::read_dir(d)
            .map(|it| {
                it.filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default()
    };
    for account in subdirs(root) {
        for service in subdirs(&account) {
            out.extend(subdirs(&service));
        }
    }
    out
}

/// The age bound for a function the writer has not open: sealed segments by their index, the
/// newest by its file's modification time (its last append).
fn expire_dir(dir: &Path, cutoff_ms: i64) {
    let Ok(segments) = list_segments(dir) else {
        return;
    };
    for s in &segments {
        let last_ms = match s.idx.as_deref().and_then(read_index) {
            Some(ix) => ix.last_ms,
            None => fs::metadata(&s.log)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(i64::MAX, |d| d.as_millis() as i64),
        };
        if last_ms < cutoff_ms {
            remove_segment(dir, s.first_seq);
        }
    }
    // Empty directories go, up to the account's.
    let mut d = dir.to_path_buf();
    for _ in 0..3 {
        if fs::remove_dir(&d).is_err() {
            break;
        }
        if !d.pop() {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(time_ms: i64, rid: &str, msg: &str) -> Arc<LogRecord> {
        Arc::new(LogRecord {
            time_ms,
            request_id: Arc::from(rid),
            instance_id: Arc::from("c-1"),
            qualifier: Arc::from("LATEST"),
            level: Arc::from("INFO"),
            message: msg.to_owned(),
        })
    }

    fn writer(root: &Path, limits: LogLimits) -> Writer {
        Writer {
            root: root.to_path_buf(),
            limits,
            functions: HashMap::new(),
            live: broadcast::channel(16).0,
        }
    }

    fn key() -> Arc<FunctionKey> {
        Arc::new(FunctionKey::new("123", "svc", "fn"))
    }

    #[test]
    fn the_layout_is_versioned_and_a_newer_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // A directory from before the marker (or new) gets it, and opens again.
        check_format(dir.path()).unwrap();
        let marker = fs::read_to_string(dir.path().join("FORMAT")).unwrap();
        assert_eq!(marker.trim(), format!("fcd-logstore {FORMAT}"));
        check_format(dir.path()).unwrap();
        fs::write(
            dir.path().join("FORMAT"),
            format!("fcd-logstore {}\n", FORMAT + 1),
        )
        .unwrap();
        let e = check_format(dir.path()).unwrap_err();
        assert!(e.to_string().contains("newer"), "{e}");
        fs::write(dir.path().join("FORMAT"), "something else").unwrap();
        assert!(check_format(dir.path()).is_err());
    }

    fn q() -> LogQuery {
        LogQuery {
            limit: 1_000_000,
            ..LogQuery::default()
        }
    }

    fn stored(seq: u64, time: i64, message: &str) -> StoredRecord {
        StoredRecord {
            seq,
            time,
            request_id: format!("r{seq}"),
            instance_id: "i".into(),
            qualifier: "LATEST".into(),
            level: "INFO".into(),
            message: message.into(),
        }
    }

    fn at(node: &str, truncated: bool, records: Vec<StoredRecord>) -> NodeResult {
        NodeResult {
            node: node.into(),
            result: QueryResult { records, truncated },
        }
    }

    fn shape(m: &MergedResult) -> Vec<(&str, &str)> {
        m.records
            .iter()
            .map(|(n, r)| (n.as_str(), r.message.as_str()))
            .collect()
    }

    #[test]
    fn nodes_results_merge_by_time_then_seq_then_node() {
        let parts = || {
            vec![
                at("n2", false, vec![stored(1, 10, "b1"), stored(2, 30, "b2")]),
                at(
                    "n1",
                    false,
                    vec![
                        stored(7, 10, "a7"),
                        stored(8, 20, "a8"),
                        stored(9, 30, "a9"),
                    ],
                ),
                at("n3", false, vec![stored(1, 30, "c1")]),
            ]
        };
        let all = merge(&q(), parts());
        assert_eq!(
            shape(&all),
            [
                ("n2", "b1"),
                ("n1", "a7"),
                ("n1", "a8"),
                ("n3", "c1"),
                ("n2", "b2"),
                ("n1", "a9"),
            ]
        );
        assert!(!all.truncated);
        // Without `since`: the newest `limit`.
        let newest = merge(&LogQuery { limit: 2, ..q() }, parts());
        assert_eq!(shape(&newest), [("n2", "b2"), ("n1", "a9")]);
        assert!(newest.truncated);
        // With `since`: the first `limit` from it.
        let first = merge(
            &LogQuery {
                limit: 2,
                since_ms: Some(0),
                ..q()
            },
            parts(),
        );
        assert_eq!(shape(&first), [("n2", "b1"), ("n1", "a7")]);
        assert!(first.truncated);
        // Exactly `limit`: nothing cut, nothing truncated.
        let exact = merge(&LogQuery { limit: 6, ..q() }, parts());
        assert_eq!(exact.records.len(), 6);
        assert!(!exact.truncated);
    }

    #[test]
    fn a_truncated_node_truncates_the_merge() {
        let m = merge(
            &q(),
            vec![
                at("n1", false, vec![stored(1, 5, "a")]),
                at("n2", true, vec![stored(4, 6, "b")]),
            ],
        );
        assert_eq!(shape(&m), [("n1", "a"), ("n2", "b")]);
        assert!(m.truncated);
        let none = merge(&q(), Vec::new());
        assert!(none.records.is_empty() && !none.truncated);
    }

    #[test]
    fn writes_and_finds_by_request_id_and_time_using_the_index() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            max_bytes_per_function: 1 << 20,
            retention: Duration::from_secs(3600),
        };
        let mut w = writer(tmp.path(), limits);
        let k = key();
        for i in 0..3000i64 {
            let rid = format!("req-{}", i / 10);
            w.write(&k, vec![rec(1_000 + i, &rid, &format!("line {i}"))])
                .unwrap();
        }
        w.functions.get_mut(&k).unwrap().flush().unwrap();
        let dir = k.dir(tmp.path()).unwrap();
        let segs = list_segments(&dir).unwrap();
        assert!(segs.len() > 2, "rotated into several segments: {segs:?}");
        assert!(segs[..segs.len() - 1].iter().all(|s| s.idx.is_some()));
        assert!(segs.last().unwrap().idx.is_none(), "the newest is active");

        let by_id = query_dir(
            &dir,
            &LogQuery {
                request_id: Some("req-7".into()),
                ..q()
            },
        )
        .unwrap();
        let msgs: Vec<_> = by_id.records.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(msgs.len(), 10);
        assert_eq!(msgs[0], "line 70");
        // Only one sealed segment's index names req-7.
        let holding = segs
            .iter()
            .filter_map(|s| s.idx.as_deref().and_then(read_index))
            .filter(|ix| ix.request_ids.contains("req-7"))
            .count();
        assert_eq!(holding, 1);

        let since = query_dir(
            &dir,
            &LogQuery {
                since_ms: Some(3_990),
                ..q()
            },
        )
        .unwrap();
        assert_eq!(since.records.len(), 10);
        assert_eq!(since.records[0].message, "line 2990");
        let ixs: Vec<_> = segs
            .iter()
            .filter_map(|s| s.idx.as_deref().and_then(read_index))
            .collect();
        assert!(ixs.iter().any(|ix| !ix.may_match(&LogQuery {
            since_ms: Some(3_990),
            ..q()
        })));

        let newest = query_dir(&dir, &LogQuery { limit: 5, ..q() }).unwrap();
        assert!(newest.truncated);
        let m: Vec<_> = newest.records.iter().map(|r| r.seq).collect();
        assert_eq!(m, [2996, 2997, 2998, 2999, 3000]);

        let first = query_dir(
            &dir,
            &LogQuery {
                since_ms: Some(0),
                limit: 3,
                ..q()
            },
        )
        .unwrap();
        assert!(first.truncated);
        assert_eq!(first.records[2].message, "line 2");
    }

    #[test]
    fn the_size_bound_holds_and_seq_survives_a_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            max_bytes_per_function: 256 << 10,
            retention: Duration::from_secs(3600),
        };
        let k = key();
        let mut w = writer(tmp.path(), limits);
        let big = "x".repeat(1000);
        for i in 0..2000 {
            w.write(&k, vec![rec(i, "r", &big)]).unwrap();
            let on_disk = list_segments(&k.dir(tmp.path()).unwrap())
                .unwrap()
                .iter()
                .map(|s| s.bytes)
                .sum::<u64>();
            let st = &w.functions[&k];
            assert!(st.total_bytes() <= limits.max_bytes_per_function);
            // What is on disk never exceeds the bound either (buffered bytes only lag).
            assert!(on_disk <= limits.max_bytes_per_function);
        }
        drop(w);
        let dir = k.dir(tmp.path()).unwrap();
        // A crash half-way through a line: the torn record is lost, nothing else.
        let active = list_segments(&dir).unwrap().last().unwrap().log.clone();
        let mut f = OpenOptions::new().append(true).open(&active).unwrap();
        f.write_all(b"{\"seq\":99999,\"ti").unwrap();
        drop(f);
        let kept: u64 = list_segments(&dir).unwrap().iter().map(|s| s.bytes).sum();
        assert!(kept >= limits.max_bytes_per_function * 6 / 8, "{kept}");
        let mut w = writer(tmp.path(), limits);
        w.write(&k, vec![rec(5000, "r", "after reopen")]).unwrap();
        w.functions.get_mut(&k).unwrap().flush().unwrap();
        let last = query_dir(&dir, &LogQuery { limit: 1, ..q() }).unwrap();
        assert_eq!(last.records[0].seq, 2001);
        assert_eq!(last.records[0].message, "after reopen");
    }

    #[test]
    fn expiry_deletes_old_segments_open_or_not() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            max_bytes_per_function: 128 << 10,
            retention: Duration::from_secs(10),
        };
        let k = key();
        let other = Arc::new(FunctionKey::new("123", "svc", "other"));
        let mut w = writer(tmp.path(), limits);
        let line = "y".repeat(500);
        for i in 0..200 {
            w.write(&k, vec![rec(1_000 + i, "old", &line)]).unwrap();
        }
        for i in 0..200 {
            w.write(&k, vec![rec(100_000 + i, "new", &line)]).unwrap();
        }
        w.write(&other, vec![rec(1_000, "o", "old")]).unwrap();
        // `other` is not open any more: expired straight from the directory by its index.
        w.functions.get_mut(&other).unwrap().seal().unwrap();
        w.functions.remove(&other);
        w.sweep(100_000 + 5_000);
        let dir = k.dir(tmp.path()).unwrap();
        let all = query_dir(&dir, &q()).unwrap();
        assert!(all.records.iter().all(|r| r.request_id == "new"));
        assert!(!all.records.is_empty());
        assert!(!other.dir(tmp.path()).unwrap().exists());
        // Everything old enough goes, the active segment included.
        w.sweep(1_000_000);
        assert!(query_dir(&dir, &q()).unwrap().records.is_empty());
    }

    #[test]
    fn unsafe_names_have_no_directory() {
        let root = Path::new("/x");
        assert!(FunctionKey::new("1", "..", "f").dir(root).is_none());
        assert!(FunctionKey::new("1", "s/t", "f").dir(root).is_none());
        assert!(FunctionKey::new("1", "s", "").dir(root).is_none());
        assert!(FunctionKey::new("1", "s", "f_1-a").dir(root).is_some());
    }

    #[tokio::test]
    async fn a_function_may_store_its_limit_per_period_at_most() {
        let tmp = tempfile::tempdir().unwrap();
        let limits = LogLimits {
            max_bytes_per_function: 64 << 10,
            retention: Duration::from_secs(3600),
        };
        let store = LogStore::open(tmp.path().to_path_buf(), limits).unwrap();
        let sink = store.sink(FunctionKey::new("1", "s", "f")).unwrap();
        let line = "z".repeat(900);
        // 100 records of ~1 KB: the first ~64 fit the allowance, the rest are dropped.
        for i in 0..100 {
            sink.offer(vec![rec(i, "r", &line)]);
        }
        let dropped = store.dropped_total();
        assert!((30..=40).contains(&dropped), "{dropped}");
        // Another function has its own allowance.
        let other = store.sink(FunctionKey::new("1", "s", "g")).unwrap();
        other.offer(vec![rec(1, "r", &line)]);
        assert_eq!(store.dropped_total(), dropped);
    }

    #[tokio::test]
    async fn a_full_queue_drops_counts_and_says_so() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LogStore::open(tmp.path().to_path_buf(), LogLimits::default()).unwrap();
        let sink = store.sink(FunctionKey::new("1", "s", "f")).unwrap();
        // Pretend the writer is far behind: the function's share is used up.
        sink.queued.fetch_add(FN_QUEUE_BYTES, Ordering::Relaxed);
        sink.offer(vec![rec(1, "a", "lost 1"), rec(2, "a", "lost 2")]);
        assert_eq!(store.dropped_total(), 2);
        sink.queued.fetch_sub(FN_QUEUE_BYTES, Ordering::Relaxed);
        let mut live = store.subscribe();
        sink.offer(vec![rec(3, "b", "kept")]);
        let first = live.recv().await.unwrap();
        assert_eq!(first.record.level, "WARN");
        assert!(first.record.message.contains("2 log lines"), "{first:?}");
        assert_eq!(live.recv().await.unwrap().record.message, "kept");
    }
}
