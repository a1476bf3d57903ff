//! The embedded queue: one SQLite file, one writer task that commits enqueues in batches.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::SqliteConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use tokio::sync::{mpsc, oneshot};

use crate::{
    AsyncConfig, AsyncQueue, Event, Invocation, ListFilter, NewInvocation, Outcome, QueueError,
    Status, StopResult,
};

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
CREATE INDEX IF NOT EXISTS invocations_due ON invocations (status, next_attempt_ms);
CREATE TABLE IF NOT EXISTS async_configs (
    account_id TEXT NOT NULL,
    service TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service, function, qualifier)
);
";

/// Most enqueues committed in one transaction.
const BATCH_MAX: usize = 512;

/// A write for the writer task. Every change of an invocation's state goes through the one
/// writer, so writes never wait on SQLite's lock (whose busy handler sleeps) and many of them
/// share one durable commit.
enum Cmd {
    Enqueue {
        inv: NewInvocation,
        ack: oneshot::Sender<Result<(), QueueError>>,
    },
    Claim {
        now_ms: u64,
        lease_until_ms: u64,
        ack: oneshot::Sender<Result<Option<Invocation>, QueueError>>,
    },
    Finish {
        id: i64,
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
        oneshot::Sender<Result<Option<Invocation>, QueueError>>,
        Box<Result<Option<Invocation>, QueueError>>,
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
            Done::Claim(a, r) => drop(a.send(failed.map_or(*r, |m| Err(fail(m))))),
            Done::Finish(a, r) => drop(a.send(failed.map_or(r, |m| Err(fail(m))))),
            Done::Expire(a, r) => drop(a.send(failed.map_or(r, |m| Err(fail(m))))),
        }
    }
}

#[derive(Debug, Clone)]
pub struct SqliteQueue {
    pool: SqlitePool,
    writer: mpsc::Sender<Cmd>,
}

/// Replaces the last event (the `Running` of a claim being undone) with a new one.
const UNDO_RUNNING_AND_APPEND: &str = "json_insert(json_remove(events, '$[#-1]'), '$[#]', json_object('eventId', json_array_length(events), 'status', ?, 'timestamp', ?, 'eventDetail', ?))";

/// The SQL that appends one event to a row's history.
const APPEND_EVENT: &str = "json_insert(events, '$[#]', json_object('eventId', json_array_length(events) + 1, 'status', ?, 'timestamp', ?, 'eventDetail', ?))";

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
        // Two kinds of commit, two connection pools. Accepting (the 202) must survive an OS
        // crash: FULL syncs the WAL on commit, and batching shares that fsync among concurrent
        // accepts. Everything after — claims, results, stops — commits without its own fsync
        // (NORMAL): it survives a crash of fcd, and after an OS crash a lost result only means
        // the invocation runs again, which at-least-once delivery allows. The next FULL commit
        // syncs those frames too, since the WAL is written in order.
        let durable = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone().synchronous(SqliteSynchronous::Full))
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&durable).await?;
        migrate(&durable).await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.synchronous(SqliteSynchronous::Normal))
            .await?;
        let (writer, rx) = mpsc::channel(4096);
        tokio::spawn(write_batches(durable, rx));
        Ok(SqliteQueue { pool, writer })
    }
}

/// Columns added after the first schema, each added to an older file when missing (rows
/// written before read them as NULL, which means what those rows always meant).
const ADDED_COLUMNS: &[(&str, &str)] = &[
    // The client's request of an HTTP-trigger invocation (NULL: an event).
    ("http_request", "TEXT"),
];

async fn migrate(pool: &SqlitePool) -> Result<(), QueueError> {
    let have: Vec<String> = sqlx::query("SELECT name FROM pragma_table_info('invocations')")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>("name"))
        .collect::<Result<_, _>>()?;
    for (name, ty) in ADDED_COLUMNS {
        if !have.iter().any(|h| h == name) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE invocations ADD COLUMN {name} {ty}"
            )))
            .execute(pool)
            .await?;
        }
    }
    Ok(())
}

async fn insert_one(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    inv: &NewInvocation,
) -> Result<(), QueueError> {
    let res = sqlx::query(
        "INSERT INTO invocations (account_id, service, function, qualifier, invocation_id, request_id, stateful,
            payload, status, max_retries, max_age_secs, enqueued_ms, next_attempt_ms, on_success, on_failure, events,
            http_request)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'Enqueued', ?, ?, ?, ?, ?, ?,
            json_array(json_object('eventId', 1, 'status', 'Enqueued', 'timestamp', ?, 'eventDetail', '')), ?)
         ON CONFLICT (account_id, service, function, invocation_id) DO NOTHING",
    )
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
    .bind(inv.now_ms as i64)
    .bind(&inv.http_request)
    .execute(&mut **tx)
    .await?;
    if res.rows_affected() == 0 {
        return Err(QueueError::Duplicate);
    }
    Ok(())
}

/// Runs whatever writes are waiting in one transaction, then answers each of them: an accept
/// is answered only once its commit is on disk.
async fn write_batches(pool: SqlitePool, mut rx: mpsc::Receiver<Cmd>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH_MAX {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let mut done: Vec<Done> = Vec::with_capacity(batch.len());
        let committed = async {
            let mut tx = pool.begin().await?;
            for cmd in batch {
                done.push(match cmd {
                    Cmd::Enqueue { inv, ack } => {
                        Done::Enqueue(ack, insert_one(&mut tx, &inv).await)
                    }
                    Cmd::Claim {
                        now_ms,
                        lease_until_ms,
                        ack,
                    } => Done::Claim(
                        ack,
                        Box::new(claim_on(&mut tx, now_ms, lease_until_ms).await),
                    ),
                    Cmd::Finish {
                        id,
                        outcome,
                        now_ms,
                        ack,
                    } => Done::Finish(ack, finish_on(&mut tx, id, outcome, now_ms).await),
                    Cmd::Expire { now_ms, ack } => {
                        Done::Expire(ack, expire_on(&mut tx, now_ms).await)
                    }
                });
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>(())
        }
        .await;
        let failed = committed.err().map(|e| {
            tracing::error!(error = %e, "async queue commit failed");
            e.to_string()
        });
        for d in done {
            d.answer(failed.as_deref());
        }
    }
}

async fn claim_on(
    conn: &mut SqliteConnection,
    now_ms: u64,
    lease_until_ms: u64,
) -> Result<Option<Invocation>, QueueError> {
    let sql = format!(
        "UPDATE invocations
         SET status = 'Running', attempts = attempts + 1, lease_until_ms = ?,
             started_ms = COALESCE(started_ms, ?), events = {APPEND_EVENT}
         WHERE id = (SELECT id FROM invocations
                     WHERE status IN ('Enqueued', 'Retrying') AND next_attempt_ms <= ?
                     ORDER BY next_attempt_ms, id LIMIT 1)
         RETURNING *"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(lease_until_ms as i64)
        .bind(now_ms as i64)
        .bind("Running")
        .bind(now_ms as i64)
        .bind("")
        .bind(now_ms as i64)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(invocation).transpose()
}

async fn finish_on(
    conn: &mut SqliteConnection,
    id: i64,
    outcome: Outcome,
    now_ms: u64,
) -> Result<bool, QueueError> {
    let now = now_ms as i64;
    let q = match outcome {
        Outcome::Succeeded { duration_ms, return_payload, instance_id } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE invocations SET status = 'Succeeded', end_ms = ?, duration_ms = ?, return_payload = ?,
                instance_id = ?, lease_until_ms = NULL, events = {APPEND_EVENT}
             WHERE id = ? AND status = 'Running'"
        )))
        .bind(now)
        .bind(duration_ms as i64)
        .bind(return_payload)
        .bind(instance_id)
        .bind("Succeeded")
        .bind(now)
        .bind(""),
        Outcome::Failed { duration_ms, error, instance_id } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE invocations SET status = 'Failed', end_ms = ?, duration_ms = ?, error_message = ?,
                instance_id = ?, lease_until_ms = NULL, events = {APPEND_EVENT}
             WHERE id = ? AND status = 'Running'"
        )))
        .bind(now)
        .bind(duration_ms as i64)
        .bind(error.clone())
        .bind(instance_id)
        .bind("Failed")
        .bind(now)
        .bind(serde_json::json!({ "Error": error }).to_string()),
        Outcome::Retry { at_ms, error, platform } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE invocations SET status = 'Retrying', next_attempt_ms = ?, error_message = ?,
                attempts = attempts - ?, platform_retries = platform_retries + ?,
                lease_until_ms = NULL, events = {APPEND_EVENT}
             WHERE id = ? AND status = 'Running'"
        )))
        .bind(at_ms as i64)
        .bind(error.clone())
        .bind(i64::from(platform))
        .bind(i64::from(platform))
        .bind("Retrying")
        .bind(now)
        .bind(serde_json::json!({ "Error": error }).to_string()),
        Outcome::Stopped => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE invocations SET status = 'Stopped', end_ms = ?, lease_until_ms = NULL,
                events = {APPEND_EVENT} WHERE id = ?"
        )))
        .bind(now)
        .bind("Stopped")
        .bind(now)
        .bind(""),
        Outcome::Expired => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE invocations SET status = 'Expired', end_ms = ?, lease_until_ms = NULL,
                attempts = attempts - 1,
                started_ms = CASE WHEN attempts <= 1 THEN NULL ELSE started_ms END,
                events = {UNDO_RUNNING_AND_APPEND} WHERE id = ?"
        )))
        .bind(now)
        .bind("Expired")
        .bind(now)
        .bind(""),
        // Found not runnable right after the claim: the claim is undone, so the history never
        // shows a run that did not happen.
        Outcome::Invalid { reason } => sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE invocations SET status = 'Invalid', end_ms = ?, error_message = ?, lease_until_ms = NULL,
                attempts = attempts - 1,
                started_ms = CASE WHEN attempts <= 1 THEN NULL ELSE started_ms END,
                events = {UNDO_RUNNING_AND_APPEND} WHERE id = ?"
        )))
        .bind(now)
        .bind(reason.clone())
        .bind("Invalid")
        .bind(now)
        .bind(serde_json::json!({ "Error": reason }).to_string()),
    };
    let res = q.bind(id).execute(&mut *conn).await?;
    Ok(res.rows_affected() == 1)
}

async fn expire_on(
    conn: &mut SqliteConnection,
    now_ms: u64,
) -> Result<Vec<Invocation>, QueueError> {
    let now = now_ms as i64;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE invocations SET status = 'Expired', end_ms = ?, lease_until_ms = NULL, events = {APPEND_EVENT}
         WHERE status IN ('Enqueued', 'Retrying') AND next_attempt_ms <= ?
           AND enqueued_ms + max_age_secs * 1000 < ?
         RETURNING *"
    )))
    .bind(now)
    .bind("Expired")
    .bind(now)
    .bind("")
    .bind(now)
    .bind(now)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(invocation).collect()
}

fn opt_u64(row: &SqliteRow, col: &str) -> Result<Option<u64>, QueueError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(|v| v.max(0) as u64))
}

fn invocation(row: &SqliteRow) -> Result<Invocation, QueueError> {
    let status: String = row.try_get("status")?;
    let events: String = row.try_get("events")?;
    Ok(Invocation {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        service: row.try_get("service")?,
        function: row.try_get("function")?,
        qualifier: row.try_get("qualifier")?,
        invocation_id: row.try_get("invocation_id")?,
        request_id: row.try_get("request_id")?,
        stateful: row.try_get("stateful")?,
        payload: row.try_get("payload")?,
        status: Status::parse(&status)
            .ok_or_else(|| QueueError::Backend(format!("unknown status {status}")))?,
        attempts: row.try_get::<i64, _>("attempts")?.max(0) as u32,
        max_retries: row.try_get::<i64, _>("max_retries")?.max(0) as u32,
        max_age_secs: row.try_get::<i64, _>("max_age_secs")?.max(0) as u64,
        enqueued_ms: row.try_get::<i64, _>("enqueued_ms")?.max(0) as u64,
        started_ms: opt_u64(row, "started_ms")?,
        end_ms: opt_u64(row, "end_ms")?,
        duration_ms: opt_u64(row, "duration_ms")?,
        return_payload: row.try_get("return_payload")?,
        error_message: row.try_get("error_message")?,
        instance_id: row.try_get("instance_id")?,
        destination_status: row.try_get("destination_status")?,
        on_success: row.try_get("on_success")?,
        on_failure: row.try_get("on_failure")?,
        platform_retries: row.try_get::<i64, _>("platform_retries")?.max(0) as u32,
        events: serde_json::from_str::<Vec<Event>>(&events)?,
        http_request: row.try_get("http_request")?,
    })
}

#[async_trait]
impl AsyncQueue for SqliteQueue {
    async fn enqueue(&self, inv: NewInvocation) -> Result<(), QueueError> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Enqueue { inv, ack }).await?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    async fn claim(
        &self,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Option<Invocation>, QueueError> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Claim {
            now_ms,
            lease_until_ms,
            ack,
        })
        .await?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    async fn finish(&self, id: i64, outcome: Outcome, now_ms: u64) -> Result<bool, QueueError> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Finish {
            id,
            outcome,
            now_ms,
            ack,
        })
        .await?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Invocation>, QueueError> {
        let (ack, rx) = oneshot::channel();
        self.send(Cmd::Expire { now_ms, ack }).await?;
        rx.await.map_err(|_| QueueError::Closed)?
    }

    async fn delete_configs(
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

    async fn set_destination_status(&self, id: i64, status: &str) -> Result<(), QueueError> {
        sqlx::query("UPDATE invocations SET destination_status = ? WHERE id = ?")
            .bind(status)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn next_due_ms(&self) -> Result<Option<u64>, QueueError> {
        let row = sqlx::query(
            "SELECT MIN(next_attempt_ms) FROM invocations WHERE status IN ('Enqueued', 'Retrying')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?.map(|v| v.max(0) as u64))
    }

    async fn get(
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

    async fn list(
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

    async fn request_stop(
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

    async fn recover(&self, now_ms: u64) -> Result<u64, QueueError> {
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

    async fn purge(&self, before_ms: u64) -> Result<u64, QueueError> {
        let res = sqlx::query(
            "DELETE FROM invocations WHERE end_ms IS NOT NULL AND end_ms < ?
               AND status IN ('Succeeded', 'Failed', 'Stopped', 'Expired', 'Invalid')",
        )
        .bind(before_ms as i64)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }

    async fn put_config(&self, account: &str, cfg: &AsyncConfig) -> Result<(), QueueError> {
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

    async fn get_config(
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

    async fn delete_config(
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

    async fn list_configs(
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

    async fn list_stateful_configs(&self, account: &str) -> Result<Vec<AsyncConfig>, QueueError> {
        let rows = sqlx::query("SELECT body FROM async_configs WHERE account_id = ? ORDER BY service, function, qualifier")
            .bind(account)
            .fetch_all(&self.pool)
            .await?;
        let all: Vec<AsyncConfig> = rows
            .iter()
            .map(|r| Ok::<_, QueueError>(serde_json::from_str(&r.try_get::<String, _>("body")?)?))
            .collect::<Result<_, _>>()?;
        Ok(all.into_iter().filter(|c| c.stateful_invocation).collect())
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
    async fn lifecycle_retries_and_history() {
        let dir = tempfile::tempdir().unwrap();
        let q = SqliteQueue::open(&dir.path().join("q.db")).await.unwrap();
        q.enqueue(new("one", 1000)).await.unwrap();
        assert!(matches!(
            q.enqueue(new("one", 1001)).await,
            Err(QueueError::Duplicate)
        ));
        let c = q.claim(1000, 5000).await.unwrap().unwrap();
        assert_eq!((c.status, c.attempts), (Status::Running, 1));
        assert!(
            q.claim(1000, 5000).await.unwrap().is_none(),
            "claimed twice"
        );
        q.finish(
            c.id,
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
            q.claim(1500, 5000).await.unwrap().is_none(),
            "retried before its time"
        );
        let c = q.claim(2000, 5000).await.unwrap().unwrap();
        assert_eq!(c.attempts, 2);
        q.finish(
            c.id,
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
        let c = q.claim(5000, 9000).await.unwrap().unwrap();
        q.finish(
            c.id,
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
            let r = q.claim(1, 100).await.unwrap().unwrap();
            assert_eq!(r.invocation_id, "queued");
            q.finish(
                r.id,
                Outcome::Retry {
                    at_ms: 50,
                    error: "x".into(),
                    platform: true,
                },
                2,
            )
            .await
            .unwrap();
            let running = q.claim(2, 100).await.unwrap().unwrap();
            assert_eq!(running.invocation_id, "running");
            let done = q.claim(2, 100).await.unwrap().unwrap();
            q.finish(
                done.id,
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
        let again = q.claim(10, 100).await.unwrap().unwrap();
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
}
