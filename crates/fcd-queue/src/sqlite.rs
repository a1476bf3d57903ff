//! The embedded queue: one SQLite file (`queue.db`) backs the work queue, the invocation
//! records and the configs. Its waiting rows are the work queue (a claim starts the record in
//! the same statement; the row's transitions are its acknowledgements). One writer task, on its
//! own connection, commits every state change of a run (accepts, claims, lease extensions,
//! results, expiry) in batches (group commit). The lease is read: a `Running` row whose lease
//! lapsed is claimable again, and the worker extends it while the function runs; `recover`
//! still hands back every run at start (one node owns the file). The schema is versioned by
//! sqlx migrations 1000+; a file from before versioning opens with its rows.

use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::SqliteConnection;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Row, SqlSafeStr};
use tokio::sync::{mpsc, oneshot};

use crate::{
    AsyncConfig, ConfigStore, Delivery, Event, Handle, Invocation, InvocationRecords, ListFilter,
    NewInvocation, Outcome, QueueError, Start, Status, StopResult, WorkQueue, parse_key,
};

/// The schema as it was before versioning: migration 1000 (every statement idempotent, so a
/// file from before versioning takes it as a no-op and keeps its rows).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS invocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    service TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    invocation_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    stateful INTEGER NOT NULL,
    payload BLOB NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    platform_retries INTEGER NOT NULL DEFAULT 0,
    max_retries INTEGER NOT NULL,
    max_age_secs INTEGER NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    lease_until_ms INTEGER,
    started_ms INTEGER,
    end_ms INTEGER,
    duration_ms INTEGER,
    return_payload BLOB,
    error_message TEXT,
    instance_id TEXT,
    destination_status TEXT,
    on_success TEXT,
    on_failure TEXT,
    events TEXT NOT NULL DEFAULT '[]',
    UNIQUE (account_id, service, function, invocation_id)
);
-- Waiting rows in due order: a claim reads the first few entries, however many rows wait
-- or have ended. (The old `(status, next_attempt_ms)` index could not give the two waiting
-- statuses in one order, so every claim sorted all due rows.)
DROP INDEX IF EXISTS invocations_due;
CREATE INDEX IF NOT EXISTS invocations_waiting ON invocations (next_attempt_ms)
    WHERE status IN ('Enqueued', 'Retrying');
-- Waiting rows by the time they become too old to start (`expire_due`).
CREATE INDEX IF NOT EXISTS invocations_deadline ON invocations (enqueued_ms + max_age_secs * 1000)
    WHERE status IN ('Enqueued', 'Retrying');
CREATE TABLE IF NOT EXISTS async_configs (
    account_id TEXT NOT NULL,
    service TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service, function, qualifier)
);
";

/// Migration 1001: the owner token of a run (its transitions are compare-and-set on it), and
/// runs by lease end (a lapsed lease is claimable again).
const OWNERS_AND_LEASES: &str = "
ALTER TABLE invocations ADD COLUMN owner TEXT;
CREATE INDEX IF NOT EXISTS invocations_leased ON invocations (lease_until_ms)
    WHERE status = 'Running';
";

/// queue.db's migrations (versions 1000+, so they never collide with another migrator's).
fn migrator() -> Migrator {
    let m = |version, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    Migrator::with_migrations(vec![
        m(1000, "invocations and async configs", SCHEMA),
        m(1001, "owners and leases", OWNERS_AND_LEASES),
    ])
}

/// Most commands run in one transaction.
const BATCH_MAX: usize = 1024;
/// Most rows in one multi-row INSERT (17 parameters each: far below SQLite's limit of 32766).
const INSERT_ROWS_MAX: usize = 64;
/// Most invocations one claim takes.
pub const CLAIM_MAX: usize = 256;

/// A write for the writer task. Every change of an invocation's state goes through the one
/// writer, so writes never wait on SQLite's lock (whose busy handler sleeps) and everything
/// that waits shares one durable commit (group commit): accepts, claims and results alike.
enum Cmd {
    Enqueue {
        inv: NewInvocation,
        ack: oneshot::Sender<Result<(), QueueError>>,
    },
    Claim {
        owner: String,
        now_ms: u64,
        lease_until_ms: u64,
        max: usize,
        ack: oneshot::Sender<Result<Vec<Invocation>, QueueError>>,
    },
    Extend {
        id: i64,
        owner: String,
        lease_until_ms: u64,
        ack: oneshot::Sender<Result<Option<Status>, QueueError>>,
    },
    Finish {
        id: i64,
        owner: String,
        outcome: Outcome,
        now_ms: u64,
        ack: oneshot::Sender<Result<bool, QueueError>>,
    },
    Expire {
        now_ms: u64,
        ack: oneshot::Sender<Result<Vec<Invocation>, QueueError>>,
    },
}

/// A command's result, held until the batch's commit decides whether it stands.
enum Done {
    Enqueue(
        oneshot::Sender<Result<(), QueueError>>,
        Result<(), QueueError>,
    ),
    Claim(
        oneshot::Sender<Result<Vec<Invocation>, QueueError>>,
        Result<Vec<Invocation>, QueueError>,
    ),
    Extend(
        oneshot::Sender<Result<Option<Status>, QueueError>>,
        Result<Option<Status>, QueueError>,
    ),
    Finish(
        oneshot::Sender<Result<bool, QueueError>>,
        Result<bool, QueueError>,
    ),
    Expire(
        oneshot::Sender<Result<Vec<Invocation>, QueueError>>,
        Result<Vec<Invocation>, QueueError>,
    ),
}

impl Done {
    fn answer(self, failed: Option<&str>) {
        let fail = |m: &str| QueueError::Backend(m.to_owned());
        match self {
            Done::Enqueue(a, r) => drop(a.send(failed.map_or(r, |m| Err(fail(m))))),
            Done::Claim(a, r) => drop(a.send(failed.map_or(r, |m| Err(fail(m))))),
            Done::Extend(a, r) => drop(a.send(failed.map_or(r, |m| Err(fail(m))))),
            Done::Finish(a, r) => drop(a.send(failed.map_or(r, |m| Err(fail(m))))),
            Done::Expire(a, r) => drop(a.send(failed.map_or(r, |m| Err(fail(m))))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqliteQueue {
    pool: SqlitePool,
    writer: mpsc::Sender<Cmd>,
    /// Transactions the writer committed.
    commits: Arc<AtomicU64>,
}

/// Replaces the last event (the `Running` of a claim being undone) with a new one.
const UNDO_RUNNING_AND_APPEND: &str = "json_insert(json_remove(events, '$[#-1]'), '$[#]', json_object('eventId', json_array_length(events), 'status', ?, 'timestamp', ?, 'eventDetail', ?))";

/// The SQL that appends one event to a row's history.
const APPEND_EVENT: &str = "json_insert(events, '$[#]', json_object('eventId', json_array_length(events) + 1, 'status', ?, 'timestamp', ?, 'eventDetail', ?))";

/// SQL text built once: sqlx keeps a prepared statement per connection and text, so the hot
/// statements are parsed once and never formatted per call.
fn sql(
    cell: &'static OnceLock<Arc<str>>,
    make: impl FnOnce() -> String,
) -> AssertSqlSafe<Arc<str>> {
    AssertSqlSafe(cell.get_or_init(|| Arc::from(make())).clone())
}

macro_rules! cached_sql {
    ($make:expr) => {{
        static CELL: OnceLock<Arc<str>> = OnceLock::new();
        sql(&CELL, || $make)
    }};
}

impl SqliteQueue {
    async fn send(&self, cmd: Cmd) -> Result<(), QueueError> {
        self.writer.send(cmd).await.map_err(|_| QueueError::Closed)
    }

    pub async fn open(path: &Path) -> Result<SqliteQueue, QueueError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        // The writer's connection commits with FULL: WAL synced on every commit, so a 202 (and
        // a recorded result) survives an OS crash. Group commit shares that one fsync among
        // everything that waited while the previous commit ran. The readers' pool (and the
        // few writes outside the writer: stops, recovery, purge, configs) commits with NORMAL;
        // the next FULL commit syncs those frames too, since the WAL is written in order.
        // The writer's own connection, not a pool's: no checkout (nor its liveness ping) per
        // batch.
        let mut durable = opts
            .clone()
            .synchronous(SqliteSynchronous::Full)
            .connect()
            .await?;
        let migrator = migrator();
        migrator.run_to(1000, &mut durable).await?;
        add_columns_from_before_versioning(&mut durable).await?;
        migrator.run(&mut durable).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.synchronous(SqliteSynchronous::Normal))
            .await?;
        let (writer, rx) = mpsc::channel(4096);
        let commits = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(durable, rx, commits.clone()));
        Ok(SqliteQueue {
            pool,
            writer,
            commits,
        })
    }

    /// How many transactions the writer has committed (each one fsync): fewer than the writes
    /// it carried when they came concurrently.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }
}

/// Columns added after the first schema and before versioning, each added to an older file
/// when missing (rows written before read them as NULL, which means what those rows always
/// meant). Later changes are migrations.
const ADDED_COLUMNS: &[(&str, &str)] = &[
    // The client's request of an HTTP-trigger invocation (NULL: an event).
    ("http_request", "TEXT"),
];

async fn add_columns_from_before_versioning(conn: &mut SqliteConnection) -> Result<(), QueueError> {
    let have: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('invocations')")
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("name"))
        .collect::<Result<_, _>>()?;
    for (name, ty) in ADDED_COLUMNS {
        if !have.iter().any(|h| h == name) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE invocations ADD COLUMN {name} {ty}"
            )))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Statement texts for `n` rows, built once per `n` by `build` (the multi-row statements of the
/// writer's group commit).
struct SqlByRows {
    texts: Vec<Option<Arc<str>>>,
    build: fn(usize) -> String,
}

impl SqlByRows {
    fn new(build: fn(usize) -> String) -> SqlByRows {
        SqlByRows {
            texts: Vec::new(),
            build,
        }
    }

    fn get(&mut self, n: usize) -> AssertSqlSafe<Arc<str>> {
        if self.texts.len() <= n {
            self.texts.resize(n + 1, None);
        }
        let build = self.build;
        let text = self.texts[n].get_or_insert_with(|| Arc::from(build(n)));
        AssertSqlSafe(text.clone())
    }
}

/// An INSERT of `n` invocations.
fn insert_text(n: usize) -> String {
    let row = "(?, ?, ?, ?, ?, ?, ?, ?, 'Enqueued', ?, ?, ?, ?, ?, ?, ?, ?)";
    let rows = vec![row; n].join(", ");
    format!(
        "INSERT INTO invocations (account_id, service, function, qualifier, invocation_id,
            request_id, stateful, payload, status, max_retries, max_age_secs, enqueued_ms,
            next_attempt_ms, on_success, on_failure, events, http_request)
         VALUES {rows}
         ON CONFLICT (account_id, service, function, invocation_id) DO NOTHING"
    )
}

/// The same backend error for each of `n` rows of a statement that failed as a whole.
fn all_failed(n: usize, e: &sqlx::Error) -> Vec<Result<(), QueueError>> {
    let e = e.to_string();
    (0..n)
        .map(|_| Err(QueueError::Backend(e.clone())))
        .collect()
}

/// Inserts `rows` with one statement. Per row: `Ok` if it went in, `Duplicate` if an
/// invocation with its id exists (already, or earlier in `rows`).
async fn insert_many(
    conn: &mut SqliteConnection,
    sql: &mut SqlByRows,
    rows: &[NewInvocation],
) -> Vec<Result<(), QueueError>> {
    // The history starts with one event; written as text here rather than built by SQLite's
    // JSON functions per row.
    let events: Vec<String> = rows
        .iter()
        .map(|inv| {
            format!(
                r#"[{{"eventId":1,"status":"Enqueued","timestamp":{},"eventDetail":""}}]"#,
                inv.now_ms
            )
        })
        .collect();
    let mut q = sqlx::query(sql.get(rows.len()));
    for (inv, events) in rows.iter().zip(&events) {
        q = q
            .bind(&inv.account_id)
            .bind(&inv.service)
            .bind(&inv.function)
            .bind(&inv.qualifier)
            .bind(&inv.invocation_id)
            .bind(&inv.request_id)
            .bind(inv.stateful)
            .bind(&inv.payload)
            .bind(i64::from(inv.max_retries))
            .bind(inv.max_age_secs as i64)
            .bind(inv.now_ms as i64)
            .bind(inv.now_ms as i64)
            .bind(&inv.on_success)
            .bind(&inv.on_failure)
            .bind(events)
            .bind(&inv.http_request);
    }
    let done = match q.execute(&mut *conn).await {
        Ok(d) => d,
        Err(e) => return all_failed(rows.len(), &e),
    };
    let went_in = done.rows_affected() as usize;
    if went_in == rows.len() {
        return rows.iter().map(|_| Ok(())).collect();
    }
    if went_in == 0 {
        return rows.iter().map(|_| Err(QueueError::Duplicate)).collect();
    }
    // Some were duplicates (rare: a client's own invocation id used twice). The rows that went
    // in have the last `went_in` ids (one statement of the only writer); the first input with
    // each of their keys is the one that went in.
    let last = done.last_insert_rowid();
    let keys = sqlx::query(
        "SELECT account_id, service, function, invocation_id FROM invocations WHERE id > ? AND id <= ?",
    )
    .bind(last - went_in as i64)
    .bind(last)
    .fetch_all(&mut *conn)
    .await;
    let inserted = match keys {
        Ok(r) => r,
        Err(e) => return all_failed(rows.len(), &e),
    };
    let mut keys: Vec<Option<[String; 4]>> = inserted
        .iter()
        .map(|r| {
            Some([
                r.try_get("account_id").unwrap_or_default(),
                r.try_get("service").unwrap_or_default(),
                r.try_get("function").unwrap_or_default(),
                r.try_get("invocation_id").unwrap_or_default(),
            ])
        })
        .collect();
    rows.iter()
        .map(|inv| {
            let hit = keys.iter_mut().find(|k| {
                k.as_ref().is_some_and(|[a, s, f, i]| {
                    *i == inv.invocation_id
                        && *f == inv.function
                        && *s == inv.service
                        && *a == inv.account_id
                })
            });
            match hit {
                Some(k) => {
                    *k = None;
                    Ok(())
                }
                None => Err(QueueError::Duplicate),
            }
        })
        .collect()
}

/// One successful execution's result, to be recorded with others in one statement.
struct Success {
    id: i64,
    owner: String,
    now_ms: u64,
    duration_ms: u64,
    return_payload: Vec<u8>,
    instance_id: String,
    ack: oneshot::Sender<Result<bool, QueueError>>,
}

/// An UPDATE recording `n` successes.
fn success_text(n: usize) -> String {
    let rows = vec!["(?, ?, ?, ?, ?, ?)"; n].join(", ");
    format!(
        "WITH r(id, owner, end_ms, duration_ms, return_payload, instance_id) AS (VALUES {rows})
         UPDATE invocations SET status = 'Succeeded', end_ms = r.end_ms,
             duration_ms = r.duration_ms, return_payload = r.return_payload,
             instance_id = r.instance_id, lease_until_ms = NULL,
             events = json_insert(events, '$[#]', json_object('eventId',
                 json_array_length(events) + 1, 'status', 'Succeeded',
                 'timestamp', r.end_ms, 'eventDetail', ''))
         FROM r WHERE invocations.id = r.id AND invocations.status = 'Running'
             AND invocations.owner = r.owner
         RETURNING invocations.id"
    )
}

/// Records successes with one statement; each is answered `true` if it applied (its row was
/// still `Running`).
async fn succeed_many(
    conn: &mut SqliteConnection,
    sql: &mut SqlByRows,
    rows: &[Success],
) -> Result<Vec<bool>, QueueError> {
    let mut q = sqlx::query(sql.get(rows.len()));
    for r in rows {
        q = q
            .bind(r.id)
            .bind(&r.owner)
            .bind(r.now_ms as i64)
            .bind(r.duration_ms as i64)
            .bind(&r.return_payload)
            .bind(&r.instance_id);
    }
    let applied: Vec<i64> = q
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>(0))
        .collect::<Result<_, _>>()?;
    Ok(rows.iter().map(|r| applied.contains(&r.id)).collect())
}

/// Runs whatever writes are waiting in one transaction, then answers each of them: nothing is
/// answered before its commit is on disk.
async fn write_batches(
    mut conn: SqliteConnection,
    mut rx: mpsc::Receiver<Cmd>,
    commits: Arc<AtomicU64>,
) {
    let mut insert_sql = SqlByRows::new(insert_text);
    let mut success_sql = SqlByRows::new(success_text);
    let mut batch: Vec<Cmd> = Vec::with_capacity(BATCH_MAX);
    while rx.recv_many(&mut batch, BATCH_MAX).await > 0 {
        // Accepts first, as multi-row inserts, then successes, many per statement; everything
        // else after them, in arrival order. Within one transaction that only lets a claim see
        // rows that arrived with it (a success concerns a row already `Running`, which no
        // claim or expiry touches).
        let mut invs = Vec::new();
        let mut acks = Vec::new();
        let mut successes = Vec::new();
        let mut others = Vec::new();
        for cmd in batch.drain(..) {
            match cmd {
                Cmd::Enqueue { inv, ack } => {
                    invs.push(inv);
                    acks.push(ack);
                }
                Cmd::Finish {
                    id,
                    owner,
                    outcome:
                        Outcome::Succeeded {
                            duration_ms,
                            return_payload,
                            instance_id,
                        },
                    now_ms,
                    ack,
                } => successes.push(Success {
                    id,
                    owner,
                    now_ms,
                    duration_ms,
                    return_payload,
                    instance_id,
                    ack,
                }),
                other => others.push(other),
            }
        }
        let mut done: Vec<Done> = Vec::with_capacity(acks.len() + successes.len() + others.len());
        let committed = async {
            let mut tx = conn.begin().await?;
            let mut acks = acks.into_iter();
            for chunk in invs.chunks(INSERT_ROWS_MAX) {
                for r in insert_many(&mut tx, &mut insert_sql, chunk).await {
                    if let Some(ack) = acks.next() {
                        done.push(Done::Enqueue(ack, r));
                    }
                }
            }
            let mut successes = successes.into_iter().peekable();
            while successes.peek().is_some() {
                let chunk: Vec<Success> = successes.by_ref().take(INSERT_ROWS_MAX).collect();
                match succeed_many(&mut tx, &mut success_sql, &chunk).await {
                    Ok(applied) => {
                        for (s, a) in chunk.into_iter().zip(applied) {
                            done.push(Done::Finish(s.ack, Ok(a)));
                        }
                    }
                    // One at a time, so that what fails is only what cannot be written.
                    Err(_) => {
                        for s in chunk {
                            let outcome = Outcome::Succeeded {
                                duration_ms: s.duration_ms,
                                return_payload: s.return_payload,
                                instance_id: s.instance_id,
                            };
                            let r = finish_on(&mut tx, s.id, &s.owner, outcome, s.now_ms).await;
                            done.push(Done::Finish(s.ack, r));
                        }
                    }
                }
            }
            for cmd in others {
                done.push(match cmd {
                    Cmd::Enqueue { .. } => continue,
                    Cmd::Claim {
                        owner,
                        now_ms,
                        lease_until_ms,
                        max,
                        ack,
                    } => Done::Claim(
                        ack,
                        claim_on(&mut tx, &owner, now_ms, lease_until_ms, max).await,
                    ),
                    Cmd::Extend {
                        id,
                        owner,
                        lease_until_ms,
                        ack,
                    } => Done::Extend(ack, extend_on(&mut tx, id, &owner, lease_until_ms).await),
                    Cmd::Finish {
                        id,
                        owner,
                        outcome,
                        now_ms,
                        ack,
                    } => Done::Finish(ack, finish_on(&mut tx, id, &owner, outcome, now_ms).await),
                    Cmd::Expire { now_ms, ack } => {
                        Done::Expire(ack, expire_on(&mut tx, now_ms).await)
                    }
                });
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        if committed.is_ok() {
            commits.fetch_add(1, Ordering::Relaxed);
        }
        let failed = committed.err().map(|e| {
            tracing::error!(error = %e, "async queue commit failed");
            e.to_string()
        });
        for d in done {
            d.answer(failed.as_deref());
        }
    }
}

/// Takes up to `max` invocations for `owner`: runs whose lease lapsed before `now_ms` first
/// (their worker is gone or hung; through `invocations_leased`), then due ones in due order
/// (through `invocations_waiting`). Two statements whatever the backlog.
async fn claim_on(
    conn: &mut SqliteConnection,
    owner: &str,
    now_ms: u64,
    lease_until_ms: u64,
    max: usize,
) -> Result<Vec<Invocation>, QueueError> {
    let max = max.min(CLAIM_MAX);
    let lapsed = sqlx::query(cached_sql!(
        "UPDATE invocations
         SET attempts = attempts + 1, lease_until_ms = ?1, owner = ?4,
             events = json_insert(events, '$[#]', json_object('eventId', json_array_length(events) + 1,
                 'status', 'Running', 'timestamp', ?2, 'eventDetail', 'redelivered: the lease of the previous run lapsed'))
         WHERE id IN (SELECT id FROM invocations
                      WHERE status = 'Running' AND lease_until_ms < ?2
                      ORDER BY lease_until_ms LIMIT ?3)
         RETURNING *"
            .to_owned()
    ))
    .bind(lease_until_ms as i64)
    .bind(now_ms as i64)
    .bind(max as i64)
    .bind(owner)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = lapsed
        .iter()
        .map(invocation)
        .collect::<Result<Vec<_>, _>>()?;
    if out.len() >= max {
        return Ok(out);
    }
    let q = cached_sql!(
        "UPDATE invocations
         SET status = 'Running', attempts = attempts + 1, lease_until_ms = ?1, owner = ?4,
             started_ms = COALESCE(started_ms, ?2),
             events = json_insert(events, '$[#]', json_object('eventId', json_array_length(events) + 1,
                 'status', 'Running', 'timestamp', ?2, 'eventDetail', ''))
         WHERE id IN (SELECT id FROM invocations
                      WHERE status IN ('Enqueued', 'Retrying') AND next_attempt_ms <= ?2
                      ORDER BY next_attempt_ms, id LIMIT ?3)
         RETURNING *"
            .to_owned()
    );
    let rows = sqlx::query(q)
        .bind(lease_until_ms as i64)
        .bind(now_ms as i64)
        .bind((max - out.len()) as i64)
        .bind(owner)
        .fetch_all(&mut *conn)
        .await?;
    // RETURNING gives no order: restore the due order.
    let mut keyed = rows
        .iter()
        .map(|r| Ok((r.try_get::<i64, _>("next_attempt_ms")?, invocation(r)?)))
        .collect::<Result<Vec<_>, QueueError>>()?;
    keyed.sort_by_key(|(due, inv)| (*due, inv.id));
    out.extend(keyed.into_iter().map(|(_, inv)| inv));
    Ok(out)
}

/// Extends `owner`'s lease; the status it found (`Stopping`: a stop was requested), `None`
/// if the run is no longer `owner`'s.
async fn extend_on(
    conn: &mut SqliteConnection,
    id: i64,
    owner: &str,
    lease_until_ms: u64,
) -> Result<Option<Status>, QueueError> {
    let row = sqlx::query(cached_sql!(
        "UPDATE invocations SET lease_until_ms = ?
         WHERE id = ? AND owner = ? AND status IN ('Running', 'Stopping')
         RETURNING status"
            .to_owned()
    ))
    .bind(lease_until_ms as i64)
    .bind(id)
    .bind(owner)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(r) => Ok(Status::parse(&r.try_get::<String, _>(0)?)),
        None => Ok(None),
    }
}

async fn finish_on(
    conn: &mut SqliteConnection,
    id: i64,
    owner: &str,
    outcome: Outcome,
    now_ms: u64,
) -> Result<bool, QueueError> {
    let now = now_ms as i64;
    let q = match outcome {
        Outcome::Succeeded { duration_ms, return_payload, instance_id } => sqlx::query(cached_sql!(format!(
            "UPDATE invocations SET status = 'Succeeded', end_ms = ?, duration_ms = ?, return_payload = ?,
                instance_id = ?, lease_until_ms = NULL, events = {APPEND_EVENT}
             WHERE id = ? AND status = 'Running' AND owner = ?"
        )))
        .bind(now)
        .bind(duration_ms as i64)
        .bind(return_payload)
        .bind(instance_id)
        .bind("Succeeded")
        .bind(now)
        .bind(""),
        Outcome::Failed { duration_ms, error, instance_id } => sqlx::query(cached_sql!(format!(
            "UPDATE invocations SET status = 'Failed', end_ms = ?, duration_ms = ?, error_message = ?,
                instance_id = ?, lease_until_ms = NULL, events = {APPEND_EVENT}
             WHERE id = ? AND status = 'Running' AND owner = ?"
        )))
        .bind(now)
        .bind(duration_ms as i64)
        .bind(error.clone())
        .bind(instance_id)
        .bind("Failed")
        .bind(now)
        .bind(serde_json::json!({ "Error": error }).to_string()),
        Outcome::Retry { at_ms, error, platform } => sqlx::query(cached_sql!(format!(
            "UPDATE invocations SET status = 'Retrying', next_attempt_ms = ?, error_message = ?,
                attempts = attempts - ?, platform_retries = platform_retries + ?,
                lease_until_ms = NULL, events = {APPEND_EVENT}
             WHERE id = ? AND status = 'Running' AND owner = ?"
        )))
        .bind(at_ms as i64)
        .bind(error.clone())
        .bind(i64::from(platform))
        .bind(i64::from(platform))
        .bind("Retrying")
        .bind(now)
        .bind(serde_json::json!({ "Error": error }).to_string()),
        Outcome::Stopped => sqlx::query(cached_sql!(format!(
            "UPDATE invocations SET status = 'Stopped', end_ms = ?, lease_until_ms = NULL,
                events = {APPEND_EVENT} WHERE id = ? AND status IN ('Running', 'Stopping') AND owner = ?"
        )))
        .bind(now)
        .bind("Stopped")
        .bind(now)
        .bind(""),
        Outcome::Expired => sqlx::query(cached_sql!(format!(
            "UPDATE invocations SET status = 'Expired', end_ms = ?, lease_until_ms = NULL,
                attempts = attempts - 1,
                started_ms = CASE WHEN attempts <= 1 THEN NULL ELSE started_ms END,
                events = {UNDO_RUNNING_AND_APPEND}
             WHERE id = ? AND status IN ('Running', 'Stopping') AND owner = ?"
        )))
        .bind(now)
        .bind("Expired")
        .bind(now)
        .bind(""),
        // Found not runnable right after the claim: the claim is undone, so the history never
        // shows a run that did not happen.
        Outcome::Invalid { reason } => sqlx::query(cached_sql!(format!(
            "UPDATE invocations SET status = 'Invalid', end_ms = ?, error_message = ?, lease_until_ms = NULL,
                attempts = attempts - 1,
                started_ms = CASE WHEN attempts <= 1 THEN NULL ELSE started_ms END,
                events = {UNDO_RUNNING_AND_APPEND}
             WHERE id = ? AND status IN ('Running', 'Stopping') AND owner = ?"
        )))
        .bind(now)
        .bind(reason.clone())
        .bind("Invalid")
        .bind(now)
        .bind(serde_json::json!({ "Error": reason }).to_string()),
    };
    let res = q.bind(id).bind(owner).execute(&mut *conn).await?;
    Ok(res.rows_affected() == 1)
}

/// Ends every waiting invocation past its age limit (found through `invocations_deadline`).
async fn expire_on(
    conn: &mut SqliteConnection,
    now_ms: u64,
) -> Result<Vec<Invocation>, QueueError> {
    let now = now_ms as i64;
    let rows = sqlx::query(cached_sql!(
        "UPDATE invocations SET status = 'Expired', end_ms = ?1, lease_until_ms = NULL,
             events = json_insert(events, '$[#]', json_object('eventId', json_array_length(events) + 1,
                 'status', 'Expired', 'timestamp', ?1, 'eventDetail', ''))
         WHERE id IN (SELECT id FROM invocations
                      WHERE status IN ('Enqueued', 'Retrying')
                        AND enqueued_ms + max_age_secs * 1000 < ?1 AND next_attempt_ms <= ?1)
         RETURNING *"
            .to_owned()
    ))
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(invocation).collect()
}

fn opt_u64(row: &SqliteRow, col: &str) -> Result<Option<u64>, QueueError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(|v| v.max(0) as u64))
}

fn invocation(row: &SqliteRow) -> Result<Invocation, QueueError> {
    let events: String = row.try_get("events")?;
    Ok(invocation_from_row!(
        row,
        serde_json::from_str::<Vec<Event>>(&events)?
    ))
}

/// The operations, as inherent methods (the seams' implementations below call them).
impl SqliteQueue {
    pub async fn enqueue(&self, inv: NewInvocation) -> Result<(), QueueError> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Enqueue { inv, ack }).await?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    /// Claims up to `max` invocations for `owner` (see `claim_on`).
    pub async fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
        max: usize,
    ) -> Result<Vec<Invocation>, QueueError> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Claim {
            owner: owner.to_owned(),
            now_ms,
            lease_until_ms,
            max,
            ack,
        })
        .await?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    pub async fn extend(
        &self,
        id: i64,
        owner: &str,
        lease_until_ms: u64,
    ) -> Result<Option<Status>, QueueError> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Extend {
            id,
            owner: owner.to_owned(),
            lease_until_ms,
            ack,
        })
        .await?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    pub async fn finish(
        &self,
        id: i64,
        owner: &str,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<bool, QueueError> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Finish {
            id,
            owner: owner.to_owned(),
            outcome,
            now_ms,
            ack,
        })
        .await?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    pub async fn expire_due(&self, now_ms: u64) -> Result<Vec<Invocation>, QueueError> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Expire { now_ms, ack }).await?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    pub async fn delete_configs(
        &self,
        account: &str,
        service: &str,
        function: Option<&str>,
        qualifier: Option<&str>,
    ) -> Result<u64, QueueError> {
        let res = sqlx::query(
            "DELETE FROM async_configs WHERE account_id = ? AND service = ?
               AND (? IS NULL OR function = ?) AND (? IS NULL OR qualifier = ?)",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(function)
        .bind(qualifier)
        .bind(qualifier)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }

    pub async fn set_destination_status(&self, id: i64, status: &str) -> Result<(), QueueError> {
        sqlx::query("UPDATE invocations SET destination_status = ? WHERE id = ?")
            .bind(status)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn next_due_ms(&self) -> Result<Option<u64>, QueueError> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_ms) FROM invocations WHERE status IN ('Enqueued', 'Retrying')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.map(|v| v.max(0) as u64))
    }

    pub async fn get(
        &self,
        account: &str,
        service: &str,
        function: &str,
        invocation_id: &str,
    ) -> Result<Option<Invocation>, QueueError> {
        let row = sqlx::query(
            "SELECT * FROM invocations WHERE account_id = ? AND service = ? AND function = ? AND invocation_id = ?",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(invocation_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(invocation).transpose()
    }

    pub async fn list(
        &self,
        account: &str,
        service: &str,
        function: &str,
        f: &ListFilter,
    ) -> Result<Vec<Invocation>, QueueError> {
        let prefix = f.invocation_id_prefix.clone().unwrap_or_default();
        let (cmp, order) = if f.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let after = f
            .after_id
            .unwrap_or(if f.descending { i64::MAX } else { 0 });
        let sql = format!(
            "SELECT * FROM invocations
             WHERE account_id = ? AND service = ? AND function = ? AND stateful = 1
               AND (? IS NULL OR qualifier = ?)
               AND (? IS NULL OR status = ?)
               AND substr(invocation_id, 1, ?) = ?
               AND (? IS NULL OR COALESCE(started_ms, enqueued_ms) >= ?)
               AND (? IS NULL OR COALESCE(started_ms, enqueued_ms) <= ?)
               AND id {cmp} ?
             ORDER BY id {order} LIMIT ?"
        );
        let status = f.status.map(|s| s.as_str());
        let begin = f.started_time_begin.map(|v| v as i64);
        let end = f.started_time_end.map(|v| v as i64);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(service)
            .bind(function)
            .bind(&f.qualifier)
            .bind(&f.qualifier)
            .bind(status)
            .bind(status)
            .bind(prefix.chars().count() as i64)
            .bind(&prefix)
            .bind(begin)
            .bind(begin)
            .bind(end)
            .bind(end)
            .bind(after)
            .bind(i64::from(f.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(invocation).collect()
    }

    pub async fn request_stop(
        &self,
        account: &str,
        service: &str,
        function: &str,
        invocation_id: &str,
        now_ms: u64,
    ) -> Result<StopResult, QueueError> {
        // IMMEDIATE: this transaction reads, then writes; taking the write lock up front makes
        // a concurrent writer wait instead of failing with SQLITE_BUSY.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT id, status FROM invocations WHERE account_id = ? AND service = ? AND function = ? AND invocation_id = ?",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(invocation_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(StopResult::NotFound);
        };
        let id: i64 = row.try_get("id")?;
        let status: String = row.try_get("status")?;
        let status = Status::parse(&status).unwrap_or(Status::Invalid);
        let now = now_ms as i64;
        let result = match status {
            Status::Enqueued | Status::Retrying => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE invocations SET status = 'Stopped', end_ms = ?, events = {APPEND_EVENT} WHERE id = ?"
                )))
                .bind(now)
                .bind("Stopped")
                .bind(now)
                .bind("")
                .bind(id)
                .execute(&mut *tx)
                .await?;
                StopResult::StoppedBeforeRunning
            }
            Status::Running => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE invocations SET status = 'Stopping', events = {APPEND_EVENT} WHERE id = ?"
                )))
                .bind("Stopping")
                .bind(now)
                .bind("")
                .bind(id)
                .execute(&mut *tx)
                .await?;
                StopResult::Stopping
            }
            Status::Stopping => StopResult::Stopping,
            s => StopResult::AlreadyFinished(s),
        };
        tx.commit().await?;
        Ok(result)
    }

    pub async fn recover(&self, now_ms: u64) -> Result<u64, QueueError> {
        let now = now_ms as i64;
        let stopped = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE invocations SET status = 'Stopped', end_ms = ?, lease_until_ms = NULL, events = {APPEND_EVENT}
             WHERE status = 'Stopping'"
        )))
        .bind(now)
        .bind("Stopped")
        .bind(now)
        .bind("the server restarted while stopping")
        .execute(&self.pool)
        .await?
        .rows_affected();
        let requeued = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE invocations SET status = 'Retrying', next_attempt_ms = ?, lease_until_ms = NULL,
                events = {APPEND_EVENT}
             WHERE status = 'Running'"
        )))
        .bind(now)
        .bind("Retrying")
        .bind(now)
        .bind(r#"{"Error":"the server stopped during the execution"}"#)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(stopped + requeued)
    }

    pub async fn purge(&self, before_ms: u64) -> Result<u64, QueueError> {
        let res = sqlx::query(
            "DELETE FROM invocations WHERE end_ms IS NOT NULL AND end_ms < ?
               AND status IN ('Succeeded', 'Failed', 'Stopped', 'Expired', 'Invalid')",
        )
        .bind(before_ms as i64)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }

    pub async fn put_config(&self, account: &str, cfg: &AsyncConfig) -> Result<(), QueueError> {
        sqlx::query(
            "INSERT INTO async_configs (account_id, service, function, qualifier, body) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (account_id, service, function, qualifier) DO UPDATE SET body = excluded.body",
        )
        .bind(account)
        .bind(&cfg.service)
        .bind(&cfg.function)
        .bind(&cfg.qualifier)
        .bind(serde_json::to_string(cfg)?)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn get_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<AsyncConfig>, QueueError> {
        let row = sqlx::query(
            "SELECT body FROM async_configs WHERE account_id = ? AND service = ? AND function = ? AND qualifier = ?",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(qualifier)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Some(serde_json::from_str(
                &r.try_get::<String, _>("body")?,
            )?)),
            None => Ok(None),
        }
    }

    pub async fn delete_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: &str,
    ) -> Result<bool, QueueError> {
        let res = sqlx::query(
            "DELETE FROM async_configs WHERE account_id = ? AND service = ? AND function = ? AND qualifier = ?",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(qualifier)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    pub async fn list_configs(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<Vec<AsyncConfig>, QueueError> {
        let rows = sqlx::query(
            "SELECT body FROM async_configs WHERE account_id = ? AND service = ? AND function = ? ORDER BY qualifier",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(serde_json::from_str(&r.try_get::<String, _>("body")?)?))
            .collect()
    }

    pub async fn list_stateful_configs(
        &self,
        account: &str,
    ) -> Result<Vec<AsyncConfig>, QueueError> {
        let all = self.list_account_configs(account).await?;
        Ok(all.into_iter().filter(|c| c.stateful_invocation).collect())
    }

    pub async fn list_account_configs(
        &self,
        account: &str,
    ) -> Result<Vec<AsyncConfig>, QueueError> {
        let rows = sqlx::query("SELECT body FROM async_configs WHERE account_id = ? ORDER BY service, function, qualifier")
            .bind(account)
            .fetch_all(&self.pool)
            .await?;
        let all: Vec<AsyncConfig> = rows
            .iter()
            .map(|r| Ok::<_, QueueError>(serde_json::from_str(&r.try_get::<String, _>("body")?)?))
            .collect::<Result<_, _>>()?;
        Ok(all)
    }
}

impl SqliteQueue {
    /// [`InvocationRecords::start`] for a key delivered by another work queue (this file's own
    /// claims start their rows as they take them).
    async fn start_key(
        &self,
        key: &str,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Start, QueueError> {
        let Some((account, service, function, id)) = parse_key(key) else {
            return Ok(Start::Ended);
        };
        // IMMEDIATE: read, then write, without SQLITE_BUSY from a concurrent writer.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT id, status, next_attempt_ms, lease_until_ms FROM invocations
             WHERE account_id = ? AND service = ? AND function = ? AND invocation_id = ?",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Start::Ended);
        };
        let rowid: i64 = row.try_get("id")?;
        let status = Status::parse(&row.try_get::<String, _>("status")?);
        let due = row.try_get::<i64, _>("next_attempt_ms")?.max(0) as u64;
        let lease = opt_u64(&row, "lease_until_ms")?.unwrap_or(0);
        let now = now_ms as i64;
        let start = match status {
            Some(Status::Enqueued | Status::Retrying) if due > now_ms => Start::NotDue(due),
            Some(Status::Running | Status::Stopping) if lease >= now_ms => Start::Held(lease),
            Some(Status::Stopping) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE invocations SET status = 'Stopped', end_ms = ?, lease_until_ms = NULL,
                        events = {APPEND_EVENT} WHERE id = ?"
                )))
                .bind(now)
                .bind("Stopped")
                .bind(now)
                .bind("the run being stopped lost its lease")
                .bind(rowid)
                .execute(&mut *tx)
                .await?;
                Start::Ended
            }
            Some(s @ (Status::Enqueued | Status::Retrying | Status::Running)) => {
                let detail = if s == Status::Running {
                    "redelivered: the lease of the previous run lapsed"
                } else {
                    ""
                };
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE invocations SET status = 'Running', attempts = attempts + 1,
                        lease_until_ms = ?, owner = ?, started_ms = COALESCE(started_ms, ?),
                        events = {APPEND_EVENT}
                     WHERE id = ? RETURNING *"
                )))
                .bind(lease_until_ms as i64)
                .bind(owner)
                .bind(now)
                .bind("Running")
                .bind(now)
                .bind(detail)
                .bind(rowid)
                .fetch_one(&mut *tx)
                .await?;
                Start::Started(Box::new(invocation(&row)?))
            }
            _ => Start::Ended,
        };
        tx.commit().await?;
        Ok(start)
    }

    /// [`InvocationRecords::release`].
    pub async fn release(&self, id: i64, owner: &str, now_ms: u64) -> Result<bool, QueueError> {
        let now = now_ms as i64;
        let res = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE invocations SET status = 'Retrying', next_attempt_ms = ?, lease_until_ms = NULL,
                owner = NULL, events = {APPEND_EVENT}
             WHERE id = ? AND owner = ? AND status = 'Running'"
        )))
        .bind(now)
        .bind("Retrying")
        .bind(now)
        .bind(r#"{"Error":"handed back by a node that stopped"}"#)
        .bind(id)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// [`InvocationRecords::overdue`].
    pub async fn overdue(&self, before_ms: u64, max: usize) -> Result<Vec<String>, QueueError> {
        let rows = sqlx::query(
            "SELECT account_id, service, function, invocation_id FROM invocations
             WHERE id IN (SELECT id FROM invocations
                          WHERE status IN ('Enqueued', 'Retrying') AND next_attempt_ms < ?1
                          ORDER BY next_attempt_ms LIMIT ?2)
                OR id IN (SELECT id FROM invocations
                          WHERE status = 'Running' AND lease_until_ms < ?1
                          ORDER BY lease_until_ms LIMIT ?2)
             LIMIT ?2",
        )
        .bind(before_ms as i64)
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::invocation_key(
                    &r.try_get::<String, _>(0)?,
                    &r.try_get::<String, _>(1)?,
                    &r.try_get::<String, _>(2)?,
                    &r.try_get::<String, _>(3)?,
                ))
            })
            .collect()
    }
}

/// The file's waiting rows are the work queue: an accept is its publish, a claim starts the
/// rows it takes, and the rows' transitions are the acknowledgements.
#[async_trait]
impl WorkQueue for SqliteQueue {
    async fn publish(&self, _key: &str) -> Result<(), QueueError> {
        // The record's insert queued it.
        Ok(())
    }

    async fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
        max: usize,
        _wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        let got = SqliteQueue::claim(self, owner, now_ms, lease_until_ms, max).await?;
        Ok(got
            .into_iter()
            .map(|inv| Delivery {
                key: inv.key(),
                started: Some(inv),
                handle: Handle::Row,
            })
            .collect())
    }

    async fn progress(&self, _d: &Delivery) -> Result<(), QueueError> {
        // The record's lease is the delivery's.
        Ok(())
    }

    async fn ack(&self, _d: &Delivery) -> Result<(), QueueError> {
        Ok(())
    }

    async fn retry(&self, _d: &Delivery, _delay: Duration) -> Result<(), QueueError> {
        // The record's `next_attempt_ms` is the delay.
        Ok(())
    }

    async fn terminate(&self, _d: &Delivery) -> Result<(), QueueError> {
        Ok(())
    }

    async fn next_due_ms(&self) -> Result<Option<u64>, QueueError> {
        SqliteQueue::next_due_ms(self).await
    }
}

#[async_trait]
impl InvocationRecords for SqliteQueue {
    async fn insert(&self, inv: NewInvocation) -> Result<(), QueueError> {
        self.enqueue(inv).await
    }

    async fn start(
        &self,
        key: &str,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Start, QueueError> {
        self.start_key(key, owner, now_ms, lease_until_ms).await
    }

    async fn extend(
        &self,
        inv: &Invocation,
        owner: &str,
        lease_until_ms: u64,
    ) -> Result<Option<Status>, QueueError> {
        SqliteQueue::extend(self, inv.id, owner, lease_until_ms).await
    }

    async fn finish(
        &self,
        inv: &Invocation,
        owner: &str,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<bool, QueueError> {
        SqliteQueue::finish(self, inv.id, owner, outcome, now_ms).await
    }

    async fn release(
        &self,
        inv: &Invocation,
        owner: &str,
        now_ms: u64,
    ) -> Result<bool, QueueError> {
        SqliteQueue::release(self, inv.id, owner, now_ms).await
    }

    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Invocation>, QueueError> {
        SqliteQueue::expire_due(self, now_ms).await
    }

    async fn overdue(&self, before_ms: u64, max: usize) -> Result<Vec<String>, QueueError> {
        SqliteQueue::overdue(self, before_ms, max).await
    }

    async fn set_destination_status(
        &self,
        inv: &Invocation,
        status: &str,
    ) -> Result<(), QueueError> {
        SqliteQueue::set_destination_status(self, inv.id, status).await
    }

    async fn get(
        &self,
        account: &str,
        service: &str,
        function: &str,
        invocation_id: &str,
    ) -> Result<Option<Invocation>, QueueError> {
        SqliteQueue::get(self, account, service, function, invocation_id).await
    }

    async fn list(
        &self,
        account: &str,
        service: &str,
        function: &str,
        filter: &ListFilter,
    ) -> Result<Vec<Invocation>, QueueError> {
        SqliteQueue::list(self, account, service, function, filter).await
    }

    async fn request_stop(
        &self,
        account: &str,
        service: &str,
        function: &str,
        invocation_id: &str,
        now_ms: u64,
    ) -> Result<StopResult, QueueError> {
        SqliteQueue::request_stop(self, account, service, function, invocation_id, now_ms).await
    }

    async fn purge(&self, before_ms: u64) -> Result<u64, QueueError> {
        SqliteQueue::purge(self, before_ms).await
    }
}

#[async_trait]
impl ConfigStore for SqliteQueue {
    async fn put_config(&self, account: &str, cfg: &AsyncConfig) -> Result<(), QueueError> {
        SqliteQueue::put_config(self, account, cfg).await
    }

    async fn get_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<AsyncConfig>, QueueError> {
        SqliteQueue::get_config(self, account, service, function, qualifier).await
    }

    async fn delete_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: &str,
    ) -> Result<bool, QueueError> {
        SqliteQueue::delete_config(self, account, service, function, qualifier).await
    }

    async fn delete_configs(
        &self,
        account: &str,
        service: &str,
        function: Option<&str>,
        qualifier: Option<&str>,
    ) -> Result<u64, QueueError> {
        SqliteQueue::delete_configs(self, account, service, function, qualifier).await
    }

    async fn list_configs(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<Vec<AsyncConfig>, QueueError> {
        SqliteQueue::list_configs(self, account, service, function).await
    }

    async fn list_stateful_configs(&self, account: &str) -> Result<Vec<AsyncConfig>, QueueError> {
        SqliteQueue::list_stateful_configs(self, account).await
    }

    async fn list_account_configs(&self, account: &str) -> Result<Vec<AsyncConfig>, QueueError> {
        SqliteQueue::list_account_configs(self, account).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(id: &str, now: u64) -> NewInvocation {
        NewInvocation {
            account_id: "a".into(),
            service: "s".into(),
            function: "f".into(),
            qualifier: "LATEST".into(),
            invocation_id: id.into(),
            request_id: format!("r-{id}"),
            stateful: true,
            payload: b"p".to_vec(),
            max_retries: 2,
            max_age_secs: 60,
            on_success: None,
            on_failure: None,
            now_ms: now,
            http_request: None,
        }
    }

    async fn claim1_as(q: &SqliteQueue, owner: &str, now: u64, lease: u64) -> Option<Invocation> {
        let mut got = q.claim(owner, now, lease, 1).await.unwrap();
        assert!(got.len() <= 1, "claimed {} for a claim of one", got.len());
        got.pop()
    }

    /// One claim of at most one invocation.
    async fn claim1(q: &SqliteQueue, now: u64, lease: u64) -> Option<Invocation> {
        let mut got = q.claim("o", now, lease, 1).await.unwrap();
        assert!(got.len() <= 1, "claimed {} for a claim of one", got.len());
        got.pop()
    }

    #[tokio::test]
    async fn a_file_from_before_http_requests_is_migrated_and_its_rows_stay_readable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        {
            // The schema as it was before `http_request`, with one row in it.
            let opts = SqliteConnectOptions::from_str("sqlite://")
                .unwrap()
                .filename(&path)
                .create_if_missing(true);
            let pool = SqlitePoolOptions::new().connect_with(opts).await.unwrap();
            // SCHEMA is still the first schema: later columns are added by `migrate`.
            sqlx::raw_sql(SCHEMA).execute(&pool).await.unwrap();
            let cols: Vec<String> =
                sqlx::query("SELECT name FROM pragma_table_info('invocations')")
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>("name"))
                    .collect();
            assert!(!cols.iter().any(|c| c == "http_request"), "{cols:?}");
            sqlx::query(
                "INSERT INTO invocations (account_id, service, function, qualifier, invocation_id, request_id, stateful,
                    payload, status, max_retries, max_age_secs, enqueued_ms, next_attempt_ms)
                 VALUES ('a', 's', 'f', 'LATEST', 'old', 'r-old', 1, X'7031', 'Enqueued', 2, 60, 1000, 1000)",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        }
        let q = SqliteQueue::open(&path).await.unwrap();
        let old = q.get("a", "s", "f", "old").await.unwrap().unwrap();
        assert_eq!(
            (old.payload.as_slice(), old.http_request),
            (&b"p1"[..], None)
        );
        let mut inv = new("http", 1000);
        inv.http_request = Some("{\"method\":\"PUT\"}".into());
        q.enqueue(inv).await.unwrap();
        let got = q.get("a", "s", "f", "http").await.unwrap().unwrap();
        assert_eq!(got.http_request.as_deref(), Some("{\"method\":\"PUT\"}"));
        // Versioned from now on: the baseline and every later migration are recorded.
        let versions: Vec<i64> =
            sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
                .fetch_all(&q.pool)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<i64, _>(0))
                .collect();
        assert_eq!(versions, [1000, 1001]);
        // Opening again finds the column and adds nothing.
        drop(q);
        let q = SqliteQueue::open(&path).await.unwrap();
        assert!(
            q.get("a", "s", "f", "http")
                .await
                .unwrap()
                .unwrap()
                .http_request
                .is_some()
        );
    }

    #[tokio::test]
    async fn account_wide_config_listings() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("q.db")).await.unwrap();
        let cfg = |service: &str, function: &str, qualifier: &str, stateful: bool| AsyncConfig {
            service: service.into(),
            function: function.into(),
            qualifier: qualifier.into(),
            max_async_event_age_in_seconds: 60,
            max_async_retry_attempts: 1,
            stateful_invocation: stateful,
            destination_config: None,
            created_time: "t".into(),
            last_modified_time: "t".into(),
        };
        for (a, c) in [
            ("a", cfg("~n", "n", "LATEST", false)),
            ("a", cfg("s", "f", "prod", true)),
            ("a", cfg("s", "f", "LATEST", false)),
            ("b", cfg("s", "f", "LATEST", true)),
        ] {
            ConfigStore::put_config(&q, a, &c).await.unwrap();
        }
        let keys = |v: Vec<AsyncConfig>| {
            v.into_iter()
                .map(|c| format!("{}/{}/{}", c.service, c.function, c.qualifier))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            keys(ConfigStore::list_account_configs(&q, "a").await.unwrap()),
            ["s/f/LATEST", "s/f/prod", "~n/n/LATEST"]
        );
        assert_eq!(
            keys(ConfigStore::list_stateful_configs(&q, "a").await.unwrap()),
            ["s/f/prod"]
        );
    }

    #[tokio::test]
    async fn lifecycle_retries_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("q.db")).await.unwrap();
        q.enqueue(new("one", 1000)).await.unwrap();
        assert!(matches!(
            q.enqueue(new("one", 1001)).await,
            Err(QueueError::Duplicate)
        ));
        let c = claim1(&q, 1000, 5000).await.unwrap();
        assert_eq!((c.status, c.attempts), (Status::Running, 1));
        assert!(claim1(&q, 1000, 5000).await.is_none(), "claimed twice");
        q.finish(
            c.id,
            "o",
            Outcome::Retry {
                at_ms: 2000,
                error: "E".into(),
                platform: false,
            },
            1100,
        )
        .await
        .unwrap();
        assert!(
            claim1(&q, 1500, 5000).await.is_none(),
            "retried before its time"
        );
        let c = claim1(&q, 2000, 5000).await.unwrap();
        assert_eq!(c.attempts, 2);
        q.finish(
            c.id,
            "o",
            Outcome::Succeeded {
                duration_ms: 5,
                return_payload: b"ok".to_vec(),
                instance_id: "i".into(),
            },
            2100,
        )
        .await
        .unwrap();
        let got = q.get("a", "s", "f", "one").await.unwrap().unwrap();
        assert_eq!(got.status, Status::Succeeded);
        assert_eq!(got.return_payload.as_deref(), Some(&b"ok"[..]));
        let statuses: Vec<_> = got.events.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(
            statuses,
            ["Enqueued", "Running", "Retrying", "Running", "Succeeded"]
        );
        assert_eq!(
            got.events.iter().map(|e| e.event_id).collect::<Vec<_>>(),
            [1, 2, 3, 4, 5]
        );
    }

    #[tokio::test]
    async fn expired_and_invalid_never_show_a_run() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("q.db")).await.unwrap();
        let mut old = new("old", 1000);
        old.max_age_secs = 1;
        q.enqueue(old).await.unwrap();
        q.enqueue(new("gone", 1000)).await.unwrap();
        let expired = q.expire_due(5000).await.unwrap();
        assert_eq!(expired.len(), 1);
        let got = q.get("a", "s", "f", "old").await.unwrap().unwrap();
        assert_eq!(got.status, Status::Expired);
        assert_eq!(
            got.events
                .iter()
                .map(|e| e.status.as_str())
                .collect::<Vec<_>>(),
            ["Enqueued", "Expired"]
        );
        let c = claim1(&q, 5000, 9000).await.unwrap();
        q.finish(
            c.id,
            "o",
            Outcome::Invalid {
                reason: "function gone".into(),
            },
            5001,
        )
        .await
        .unwrap();
        let got = q.get("a", "s", "f", "gone").await.unwrap().unwrap();
        assert_eq!(
            (got.status, got.attempts, got.started_ms),
            (Status::Invalid, 0, None)
        );
        let events: Vec<_> = got
            .events
            .iter()
            .map(|e| (e.event_id, e.status.as_str()))
            .collect();
        assert_eq!(events, [(1, "Enqueued"), (2, "Invalid")]);
    }

    #[tokio::test]
    async fn stop_and_recover() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        {
            let q = SqliteQueue::open(&path).await.unwrap();
            for id in ["queued", "running", "done"] {
                q.enqueue(new(id, 1)).await.unwrap();
            }
            let r = claim1(&q, 1, 100).await.unwrap();
            assert_eq!(r.invocation_id, "queued");
            q.finish(
                r.id,
                "o",
                Outcome::Retry {
                    at_ms: 50,
                    error: "x".into(),
                    platform: true,
                },
                2,
            )
            .await
            .unwrap();
            let running = claim1(&q, 2, 100).await.unwrap();
            assert_eq!(running.invocation_id, "running");
            let done = claim1(&q, 2, 100).await.unwrap();
            q.finish(
                done.id,
                "o",
                Outcome::Failed {
                    duration_ms: 1,
                    error: "E".into(),
                    instance_id: "i".into(),
                },
                3,
            )
            .await
            .unwrap();
            assert_eq!(
                q.request_stop("a", "s", "f", "queued", 4).await.unwrap(),
                StopResult::StoppedBeforeRunning
            );
            assert_eq!(
                q.request_stop("a", "s", "f", "done", 4).await.unwrap(),
                StopResult::AlreadyFinished(Status::Failed)
            );
            assert_eq!(
                q.request_stop("a", "s", "f", "nope", 4).await.unwrap(),
                StopResult::NotFound
            );
        }
        // A crash while "running" ran: it comes back, its attempt counted.
        let q = SqliteQueue::open(&path).await.unwrap();
        assert_eq!(q.recover(10).await.unwrap(), 1);
        let again = claim1(&q, 10, 100).await.unwrap();
        assert_eq!(
            (again.invocation_id.as_str(), again.attempts),
            ("running", 2)
        );
        let f = ListFilter {
            status: Some(Status::Stopped),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(q.list("a", "s", "f", &f).await.unwrap().len(), 1);
        let f = ListFilter {
            invocation_id_prefix: Some("do".into()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            q.list("a", "s", "f", &f).await.unwrap()[0].invocation_id,
            "done"
        );
        assert_eq!(q.purge(1000).await.unwrap(), 2);
    }

    /// Polls every future in one pass until all are done, so that everything they send is
    /// queued before any of it is answered (outside tokio's cooperative budget, which would
    /// otherwise make the 129th send wait for a later pass).
    async fn all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
        tokio::task::unconstrained(all_in_one_pass(futs)).await
    }

    async fn all_in_one_pass<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
        let mut futs: Vec<_> = futs.into_iter().map(Box::pin).collect();
        let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
        std::future::poll_fn(|cx| {
            let mut pending = false;
            for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
                if o.is_none() {
                    match f.as_mut().poll(cx) {
                        std::task::Poll::Ready(v) => *o = Some(v),
                        std::task::Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await;
        out.into_iter().flatten().collect()
    }

    #[tokio::test]
    async fn concurrent_accepts_share_one_commit_and_duplicates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.db");
        let q = SqliteQueue::open(&path).await.unwrap();
        q.enqueue(new("existing", 1)).await.unwrap();
        let before = q.commits();
        // 300 distinct ids (more than one multi-row INSERT holds), the existing one, and one id
        // twice within the same batch.
        let mut ids: Vec<String> = (0..300).map(|i| format!("id{i}")).collect();
        ids.push("existing".into());
        ids.push("id7".into());
        let results = all(ids.iter().map(|id| q.enqueue(new(id, 2))).collect()).await;
        let duplicates: Vec<&str> = ids
            .iter()
            .zip(&results)
            .filter(|(_, r)| matches!(r, Err(QueueError::Duplicate)))
            .map(|(id, _)| id.as_str())
            .collect();
        assert_eq!(duplicates, ["existing", "id7"]);
        assert!(results.iter().filter(|r| r.is_ok()).count() == 300);
        assert_eq!(
            q.commits() - before,
            1,
            "302 accepts sent together: one commit"
        );
        // Durable: a fresh open sees every row, each with its one event.
        drop(q);
        let q = SqliteQueue::open(&path).await.unwrap();
        let got = q.get("a", "s", "f", "id299").await.unwrap().unwrap();
        assert_eq!((got.status, got.events.len()), (Status::Enqueued, 1));
        assert_eq!(
            q.claim("o", 2, 100, CLAIM_MAX).await.unwrap().len(),
            CLAIM_MAX
        );
        assert_eq!(
            q.claim("o", 2, 100, CLAIM_MAX).await.unwrap().len(),
            301 - CLAIM_MAX
        );
    }

    #[tokio::test]
    async fn a_batch_claim_takes_due_invocations_earliest_first() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("q.db")).await.unwrap();
        for (id, at) in [("c", 30), ("a", 10), ("later", 500), ("b", 20), ("d", 30)] {
            q.enqueue(new(id, at)).await.unwrap();
        }
        let ids = |v: &[Invocation]| {
            v.iter()
                .map(|i| i.invocation_id.clone())
                .collect::<Vec<_>>()
        };
        let first = q.claim("o", 100, 1000, 2).await.unwrap();
        assert_eq!(ids(&first), ["a", "b"]);
        assert!(
            first
                .iter()
                .all(|i| i.status == Status::Running && i.attempts == 1)
        );
        // `b` is retried at 40: due after c and d (30), before `later` (500).
        let b = &first[1];
        let r = Outcome::Retry {
            at_ms: 40,
            error: "E".into(),
            platform: false,
        };
        assert!(q.finish(b.id, "o", r, 100).await.unwrap());
        assert_eq!(
            ids(&q.claim("o", 100, 1000, 10).await.unwrap()),
            ["c", "d", "b"]
        );
        // Nothing else is due before 500.
        assert!(q.claim("o", 499, 1000, 10).await.unwrap().is_empty());
        assert_eq!(q.next_due_ms().await.unwrap(), Some(500));
        assert_eq!(ids(&q.claim("o", 500, 1000, 10).await.unwrap()), ["later"]);
        assert_eq!(q.next_due_ms().await.unwrap(), None);
    }

    #[tokio::test]
    async fn claims_and_expiry_read_an_index_not_the_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("q.db")).await.unwrap();
        let plan = |sql: &'static str| {
            let pool = q.pool.clone();
            async move {
                sqlx::query(AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| r.get::<String, _>("detail"))
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        };
        let claim = plan(
            "SELECT id FROM invocations WHERE status IN ('Enqueued', 'Retrying') AND next_attempt_ms <= 5
             ORDER BY next_attempt_ms, id LIMIT 10",
        )
        .await;
        assert!(claim.contains("USING INDEX invocations_waiting"), "{claim}");
        assert!(!claim.contains("TEMP B-TREE"), "a claim sorts: {claim}");
        let expire = plan(
            "SELECT id FROM invocations WHERE status IN ('Enqueued', 'Retrying')
               AND enqueued_ms + max_age_secs * 1000 < 5 AND next_attempt_ms <= 5",
        )
        .await;
        assert!(
            expire.contains("USING INDEX invocations_deadline"),
            "{expire}"
        );
        let due = plan(
            "SELECT MIN(next_attempt_ms) FROM invocations WHERE status IN ('Enqueued', 'Retrying')",
        )
        .await;
        assert!(due.contains("USING INDEX invocations_waiting"), "{due}");
        let lapsed = plan(
            "SELECT id FROM invocations WHERE status = 'Running' AND lease_until_ms < 5
             ORDER BY lease_until_ms LIMIT 10",
        )
        .await;
        assert!(lapsed.contains("INDEX invocations_leased"), "{lapsed}");
    }

    #[tokio::test]
    async fn a_run_is_extended_by_its_owner_only_and_claimable_again_once_its_lease_lapses() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("q.db")).await.unwrap();
        q.enqueue(new("x", 1)).await.unwrap();
        let c = claim1_as(&q, "n:1", 10, 100).await.unwrap();
        assert_eq!(
            q.extend(c.id, "n:1", 200).await.unwrap(),
            Some(Status::Running)
        );
        assert_eq!(q.extend(c.id, "n:2", 900).await.unwrap(), None);
        // Extended to 200: not claimable at 150, claimable at 201 — by another owner, whose
        // run is now the only one that counts.
        assert!(claim1_as(&q, "n:2", 150, 1000).await.is_none());
        let again = claim1_as(&q, "n:2", 201, 1000).await.unwrap();
        assert_eq!((again.id, again.attempts), (c.id, 2));
        let ok = || Outcome::Succeeded {
            duration_ms: 1,
            return_payload: Vec::new(),
            instance_id: "i".into(),
        };
        assert!(!q.finish(c.id, "n:1", ok(), 300).await.unwrap());
        assert!(q.finish(c.id, "n:2", ok(), 300).await.unwrap());
        let got = q.get("a", "s", "f", "x").await.unwrap().unwrap();
        let events: Vec<_> = got.events.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(events, ["Enqueued", "Running", "Running", "Succeeded"]);
    }

    #[tokio::test]
    async fn a_failed_write_is_answered_as_failed_and_spoils_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("q.db")).await.unwrap();
        q.enqueue(new("bad", 1)).await.unwrap();
        q.enqueue(new("good", 1)).await.unwrap();
        let claimed = q.claim("o", 1, 100, 2).await.unwrap();
        let (bad, good) = (claimed[0].id, claimed[1].id);
        // The disk refusing this one row's result, as a full disk or an I/O error would.
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE TRIGGER refuse BEFORE UPDATE OF status ON invocations
             WHEN old.id = {bad} AND new.status = 'Succeeded'
             BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )))
        .execute(&q.pool)
        .await
        .unwrap();
        let done = |id| {
            let o = Outcome::Succeeded {
                duration_ms: 1,
                return_payload: b"ok".to_vec(),
                instance_id: "i".into(),
            };
            q.finish(id, "o", o, 2)
        };
        let results = all(vec![done(bad), done(good)]).await;
        assert!(
            matches!(&results[0], Err(QueueError::Backend(m)) if m.contains("refused")),
            "{:?}",
            results[0]
        );
        assert!(matches!(results[1], Ok(true)), "{:?}", results[1]);
        let status = |id: &'static str| {
            let q = q.clone();
            async move { q.get("a", "s", "f", id).await.unwrap().unwrap().status }
        };
        assert_eq!(status("bad").await, Status::Running);
        assert_eq!(status("good").await, Status::Succeeded);
    }

    #[tokio::test]
    async fn many_results_share_one_commit_and_a_stopped_one_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("q.db")).await.unwrap();
        let ids: Vec<String> = (0..100).map(|i| format!("r{i}")).collect();
        for r in all(ids.iter().map(|id| q.enqueue(new(id, 1))).collect()).await {
            r.unwrap();
        }
        let claimed = q.claim("o", 1, 100, 100).await.unwrap();
        assert_eq!(claimed.len(), 100);
        // A stop of r5 came in while it ran.
        assert_eq!(
            q.request_stop("a", "s", "f", "r5", 2).await.unwrap(),
            StopResult::Stopping
        );
        let before = q.commits();
        let finishes = claimed
            .iter()
            .map(|inv| {
                let o = Outcome::Succeeded {
                    duration_ms: 3,
                    return_payload: inv.invocation_id.as_bytes().to_vec(),
                    instance_id: "i".into(),
                };
                q.finish(inv.id, "o", o, 7)
            })
            .collect();
        let applied: Vec<bool> = all(finishes)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(q.commits() - before, 1);
        for (inv, a) in claimed.iter().zip(&applied) {
            assert_eq!(*a, inv.invocation_id != "r5", "{}", inv.invocation_id);
        }
        let got = q.get("a", "s", "f", "r42").await.unwrap().unwrap();
        assert_eq!(
            (got.status, got.end_ms, got.duration_ms),
            (Status::Succeeded, Some(7), Some(3))
        );
        assert_eq!(got.return_payload.as_deref(), Some(&b"r42"[..]));
        let events: Vec<_> = got
            .events
            .iter()
            .map(|e| (e.event_id, e.status.as_str(), e.timestamp))
            .collect();
        assert_eq!(
            events,
            [(1, "Enqueued", 1), (2, "Running", 1), (3, "Succeeded", 7)]
        );
        let stopped = q.get("a", "s", "f", "r5").await.unwrap().unwrap();
        assert_eq!(stopped.status, Status::Stopping);
        assert_eq!(stopped.return_payload, None);
    }
}

#[cfg(test)]
mod throughput {
    use super::*;

    /// Not a test: `cargo test --release -p fcd-queue -- --ignored --nocapture enqueue_rate`
    /// prints what the queue alone sustains (no HTTP), for the "where the time goes" notes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore]
    async fn enqueue_rate() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(SqliteQueue::open(&dir.path().join("q.db")).await.unwrap());
        for c in [8usize, 64] {
            let per = 20_000 / c;
            let t = std::time::Instant::now();
            let before = q.commits();
            let mut set = tokio::task::JoinSet::new();
            for w in 0..c {
                let q = q.clone();
                set.spawn(async move {
                    for i in 0..per {
                        let inv = NewInvocation {
                            account_id: "a".into(),
                            service: "s".into(),
                            function: "f".into(),
                            qualifier: "LATEST".into(),
                            invocation_id: format!("c{c}-w{w}-{i}"),
                            request_id: format!("c{c}-w{w}-{i}"),
                            stateful: false,
                            payload: Vec::new(),
                            max_retries: 3,
                            max_age_secs: 86400,
                            on_success: None,
                            on_failure: None,
                            now_ms: 1,
                            http_request: None,
                        };
                        q.enqueue(inv).await.unwrap();
                    }
                });
            }
            while set.join_next().await.is_some() {}
            let n = per * c;
            let s = t.elapsed().as_secs_f64();
            println!(
                "c={c}: {n} enqueues in {s:.2} s = {:.0}/s, {} commits",
                n as f64 / s,
                q.commits() - before
            );
        }
        let t = std::time::Instant::now();
        let mut n = 0;
        loop {
            let got = q.claim("o", 2, 100, 64).await.unwrap();
            if got.is_empty() {
                break;
            }
            let fin: Vec<_> = got
                .iter()
                .map(|inv| {
                    let q = q.clone();
                    let id = inv.id;
                    tokio::spawn(async move {
                        let o = Outcome::Succeeded {
                            duration_ms: 0,
                            return_payload: Vec::new(),
                            instance_id: "i".into(),
                        };
                        q.finish(id, "o", o, 3).await.unwrap()
                    })
                })
                .collect();
            for f in fin {
                f.await.unwrap();
            }
            n += got.len();
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "claim 64 + finish each: {n} in {s:.2} s = {:.0}/s",
            n as f64 / s
        );
    }
}
