//! [`PgRecords`]: invocation records and async invoke configs in PostgreSQL, shared by every
//! node of a cluster. Tables `async_invocations` and `async_invoke_configs`, created by a sqlx
//! migrator with versions 1000+ that ignores versions it does not know (the metadata store's
//! migrator shares the database and its `_sqlx_migrations` table). Every transition of a run is
//! one statement, a compare-and-set on the status and the owner token, so an invocation ends
//! once in its record even when two nodes ran it.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Row, SqlSafeStr};

use crate::{
    AsyncConfig, ConfigStore, Event, Invocation, InvocationRecords, ListFilter, NewInvocation,
    Outcome, QueueError, Start, Status, StopResult, parse_key,
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS async_invocations (
    id BIGSERIAL PRIMARY KEY,
    account_id TEXT NOT NULL,
    service TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    invocation_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    stateful BOOLEAN NOT NULL,
    payload BYTEA NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    platform_retries BIGINT NOT NULL DEFAULT 0,
    max_retries BIGINT NOT NULL,
    max_age_secs BIGINT NOT NULL,
    enqueued_ms BIGINT NOT NULL,
    next_attempt_ms BIGINT NOT NULL,
    lease_until_ms BIGINT,
    owner TEXT,
    started_ms BIGINT,
    end_ms BIGINT,
    duration_ms BIGINT,
    return_payload BYTEA,
    error_message TEXT,
    instance_id TEXT,
    destination_status TEXT,
    on_success TEXT,
    on_failure TEXT,
    events JSONB NOT NULL DEFAULT '[]',
    http_request TEXT,
    UNIQUE (account_id, service, function, invocation_id)
);
CREATE INDEX IF NOT EXISTS async_invocations_waiting ON async_invocations (next_attempt_ms)
    WHERE status IN ('Enqueued', 'Retrying');
CREATE INDEX IF NOT EXISTS async_invocations_deadline
    ON async_invocations ((enqueued_ms + max_age_secs * 1000))
    WHERE status IN ('Enqueued', 'Retrying');
CREATE INDEX IF NOT EXISTS async_invocations_leased ON async_invocations (lease_until_ms)
    WHERE status IN ('Running', 'Stopping');
CREATE INDEX IF NOT EXISTS async_invocations_ended ON async_invocations (end_ms)
    WHERE end_ms IS NOT NULL;
CREATE TABLE IF NOT EXISTS async_invoke_configs (
    account_id TEXT NOT NULL,
    service TEXT NOT NULL,
    function TEXT NOT NULL,
    qualifier TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (account_id, service, function, qualifier)
);
";

/// The records' migrations: versions 1000+, beside the metadata store's.
fn migrator() -> Migrator {
    let mut m = Migrator::with_migrations(vec![Migration::new(
        1000,
        "async invocation records and configs".into(),
        MigrationType::Simple,
        SCHEMA.into_sql_str(),
        false,
    )]);
    m.set_ignore_missing(true);
    m
}

/// Appends one event (`$a` status, `$b` timestamp, `$c` detail) to `events`.
fn append_event(status: &str, ts: &str, detail: &str) -> String {
    format!(
        "events || jsonb_build_array(jsonb_build_object('eventId', jsonb_array_length(events) + 1, \
         'status', {status}::text, 'timestamp', {ts}::bigint, 'eventDetail', {detail}::text))"
    )
}

/// Replaces the last event (the `Running` of a start being undone) with a new one.
fn undo_running_and_append(status: &str, ts: &str, detail: &str) -> String {
    format!(
        "(events - (-1)) || jsonb_build_array(jsonb_build_object('eventId', jsonb_array_length(events), \
         'status', {status}::text, 'timestamp', {ts}::bigint, 'eventDetail', {detail}::text))"
    )
}

/// Records and configs in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgRecords {
    pool: PgPool,
}

impl PgRecords {
    /// Connects and brings the tables to the current version.
    pub async fn connect(url: &str) -> Result<PgRecords, QueueError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // With the database unreachable, a request waits this long, then gets a 503.
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await?;
        Self::with_pool(pool).await
    }

    /// Uses a pool the caller made (the node shares one with the metadata store).
    pub async fn with_pool(pool: PgPool) -> Result<PgRecords, QueueError> {
        migrator().run(&pool).await?;
        Ok(PgRecords { pool })
    }
}

fn opt_u64(row: &PgRow, col: &str) -> Result<Option<u64>, QueueError> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(|v| v.max(0) as u64))
}

fn invocation(row: &PgRow) -> Result<Invocation, QueueError> {
    let events: serde_json::Value = row.try_get("events")?;
    Ok(invocation_from_row!(
        row,
        serde_json::from_value::<Vec<Event>>(events)?
    ))
}

fn error_detail(e: &str) -> String {
    serde_json::json!({ "Error": e }).to_string()
}

#[async_trait]
impl InvocationRecords for PgRecords {
    async fn insert(&self, inv: NewInvocation) -> Result<(), QueueError> {
        let events = format!(
            r#"[{{"eventId":1,"status":"Enqueued","timestamp":{},"eventDetail":""}}]"#,
            inv.now_ms
        );
        let res = sqlx::query(
            "INSERT INTO async_invocations (account_id, service, function, qualifier, invocation_id,
                request_id, stateful, payload, status, max_retries, max_age_secs, enqueued_ms,
                next_attempt_ms, on_success, on_failure, events, http_request)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'Enqueued', $9, $10, $11, $11, $12, $13,
                $14::jsonb, $15)
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
        .bind(&inv.on_success)
        .bind(&inv.on_failure)
        .bind(events)
        .bind(&inv.http_request)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 1 {
            Ok(())
        } else {
            Err(QueueError::Duplicate)
        }
    }

    async fn start(
        &self,
        key: &str,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Start, QueueError> {
        let Some((account, service, function, id)) = parse_key(key) else {
            return Ok(Start::Ended);
        };
        let now = now_ms as i64;
        // The compare-and-set: one statement takes a due waiting record, or a run whose lease
        // lapsed (a redelivery; its attempt counts, as after a crash).
        let started = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE async_invocations SET status = 'Running', attempts = attempts + 1,
                lease_until_ms = $5, owner = $6, started_ms = COALESCE(started_ms, $7),
                events = {}
             WHERE account_id = $1 AND service = $2 AND function = $3 AND invocation_id = $4
               AND ((status IN ('Enqueued', 'Retrying') AND next_attempt_ms <= $7)
                    OR (status = 'Running' AND lease_until_ms < $7))
             RETURNING *",
            append_event(
                "'Running'",
                "$7",
                "CASE WHEN status = 'Running' THEN 'redelivered: the lease of the previous run lapsed' ELSE '' END"
            )
        )))
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(id)
        .bind(lease_until_ms as i64)
        .bind(owner)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = started {
            return Ok(Start::Started(Box::new(invocation(&row)?)));
        }
        // A stop whose run lost its lease completes now.
        let stopped = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE async_invocations SET status = 'Stopped', end_ms = $5, lease_until_ms = NULL,
                events = {}
             WHERE account_id = $1 AND service = $2 AND function = $3 AND invocation_id = $4
               AND status = 'Stopping' AND lease_until_ms < $5",
            append_event("'Stopped'", "$5", "'the run being stopped lost its lease'")
        )))
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(id)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if stopped.rows_affected() == 1 {
            return Ok(Start::Ended);
        }
        let row = sqlx::query(
            "SELECT status, next_attempt_ms, lease_until_ms FROM async_invocations
             WHERE account_id = $1 AND service = $2 AND function = $3 AND invocation_id = $4",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Start::Ended);
        };
        let status = Status::parse(&row.try_get::<String, _>("status")?);
        Ok(match status {
            Some(Status::Enqueued | Status::Retrying) => {
                Start::NotDue(row.try_get::<i64, _>("next_attempt_ms")?.max(0) as u64)
            }
            Some(Status::Running | Status::Stopping) => {
                Start::Held(opt_u64(&row, "lease_until_ms")?.unwrap_or(now_ms))
            }
            _ => Start::Ended,
        })
    }

    async fn extend(
        &self,
        inv: &Invocation,
        owner: &str,
        lease_until_ms: u64,
    ) -> Result<Option<Status>, QueueError> {
        let row = sqlx::query(
            "UPDATE async_invocations SET lease_until_ms = $1
             WHERE id = $2 AND owner = $3 AND status IN ('Running', 'Stopping')
             RETURNING status",
        )
        .bind(lease_until_ms as i64)
        .bind(inv.id)
        .bind(owner)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => Ok(Status::parse(&r.try_get::<String, _>(0)?)),
            None => Ok(None),
        }
    }

    async fn finish(
        &self,
        inv: &Invocation,
        owner: &str,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<bool, QueueError> {
        let now = now_ms as i64;
        // $1 id, $2 owner, $3 now; the rest per outcome.
        let running = "WHERE id = $1 AND owner = $2 AND status = 'Running'";
        let running_or_stopping =
            "WHERE id = $1 AND owner = $2 AND status IN ('Running', 'Stopping')";
        let q = match outcome {
            Outcome::Succeeded {
                duration_ms,
                return_payload,
                instance_id,
            } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE async_invocations SET status = 'Succeeded', end_ms = $3, duration_ms = $4,
                    return_payload = $5, instance_id = $6, lease_until_ms = NULL, events = {} {running}",
                append_event("'Succeeded'", "$3", "''")
            )))
            .bind(inv.id)
            .bind(owner)
            .bind(now)
            .bind(duration_ms as i64)
            .bind(return_payload)
            .bind(instance_id),
            Outcome::Failed {
                duration_ms,
                error,
                instance_id,
            } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE async_invocations SET status = 'Failed', end_ms = $3, duration_ms = $4,
                    error_message = $5, instance_id = $6, lease_until_ms = NULL, events = {} {running}",
                append_event("'Failed'", "$3", "$7")
            )))
            .bind(inv.id)
            .bind(owner)
            .bind(now)
            .bind(duration_ms as i64)
            .bind(error.clone())
            .bind(instance_id)
            .bind(error_detail(&error)),
            Outcome::Retry {
                at_ms,
                error,
                platform,
            } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE async_invocations SET status = 'Retrying', next_attempt_ms = $4,
                    error_message = $5, attempts = attempts - $6, platform_retries = platform_retries + $6,
                    lease_until_ms = NULL, owner = NULL, events = {} {running}",
                append_event("'Retrying'", "$3", "$7")
            )))
            .bind(inv.id)
            .bind(owner)
            .bind(now)
            .bind(at_ms as i64)
            .bind(error.clone())
            .bind(i64::from(platform))
            .bind(error_detail(&error)),
            Outcome::Stopped => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE async_invocations SET status = 'Stopped', end_ms = $3, lease_until_ms = NULL,
                    events = {} {running_or_stopping}",
                append_event("'Stopped'", "$3", "''")
            )))
            .bind(inv.id)
            .bind(owner)
            .bind(now),
            // Found not runnable right after the start: the start is undone, so the history
            // never shows a run that did not happen.
            Outcome::Expired => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE async_invocations SET status = 'Expired', end_ms = $3, lease_until_ms = NULL,
                    attempts = attempts - 1,
                    started_ms = CASE WHEN attempts <= 1 THEN NULL ELSE started_ms END,
                    events = {} {running_or_stopping}",
                undo_running_and_append("'Expired'", "$3", "''")
            )))
            .bind(inv.id)
            .bind(owner)
            .bind(now),
            Outcome::Invalid { reason } => sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE async_invocations SET status = 'Invalid', end_ms = $3, error_message = $4,
                    lease_until_ms = NULL, attempts = attempts - 1,
                    started_ms = CASE WHEN attempts <= 1 THEN NULL ELSE started_ms END,
                    events = {} {running_or_stopping}",
                undo_running_and_append("'Invalid'", "$3", "$5")
            )))
            .bind(inv.id)
            .bind(owner)
            .bind(now)
            .bind(reason.clone())
            .bind(error_detail(&reason)),
        };
        Ok(q.execute(&self.pool).await?.rows_affected() == 1)
    }

    async fn release(
        &self,
        inv: &Invocation,
        owner: &str,
        now_ms: u64,
    ) -> Result<bool, QueueError> {
        let res = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE async_invocations SET status = 'Retrying', next_attempt_ms = $3,
                lease_until_ms = NULL, owner = NULL, events = {}
             WHERE id = $1 AND owner = $2 AND status = 'Running'",
            append_event(
                "'Retrying'",
                "$3",
                r#"'{"Error":"handed back by a node that stopped"}'"#
            )
        )))
        .bind(inv.id)
        .bind(owner)
        .bind(now_ms as i64)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Invocation>, QueueError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE async_invocations SET status = 'Expired', end_ms = $1, lease_until_ms = NULL,
                events = {}
             WHERE id IN (SELECT id FROM async_invocations
                          WHERE status IN ('Enqueued', 'Retrying')
                            AND enqueued_ms + max_age_secs * 1000 < $1 AND next_attempt_ms <= $1
                          LIMIT 1000 FOR UPDATE SKIP LOCKED)
               AND status IN ('Enqueued', 'Retrying')
             RETURNING *",
            append_event("'Expired'", "$1", "''")
        )))
        .bind(now_ms as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invocation).collect()
    }

    async fn overdue(&self, before_ms: u64, max: usize) -> Result<Vec<String>, QueueError> {
        let rows = sqlx::query(
            "(SELECT account_id, service, function, invocation_id FROM async_invocations
              WHERE status IN ('Enqueued', 'Retrying') AND next_attempt_ms < $1
              ORDER BY next_attempt_ms LIMIT $2)
             UNION ALL
             (SELECT account_id, service, function, invocation_id FROM async_invocations
              WHERE status IN ('Running', 'Stopping') AND lease_until_ms < $1
              ORDER BY lease_until_ms LIMIT $2)",
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

    async fn set_destination_status(
        &self,
        inv: &Invocation,
        status: &str,
    ) -> Result<(), QueueError> {
        sqlx::query("UPDATE async_invocations SET destination_status = $1 WHERE id = $2")
            .bind(status)
            .bind(inv.id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get(
        &self,
        account: &str,
        service: &str,
        function: &str,
        invocation_id: &str,
    ) -> Result<Option<Invocation>, QueueError> {
        let row = sqlx::query(
            "SELECT * FROM async_invocations
             WHERE account_id = $1 AND service = $2 AND function = $3 AND invocation_id = $4",
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
            "SELECT * FROM async_invocations
             WHERE account_id = $1 AND service = $2 AND function = $3 AND stateful
               AND ($4::text IS NULL OR qualifier = $4)
               AND ($5::text IS NULL OR status = $5)
               AND left(invocation_id, length($6)) = $6
               AND ($7::bigint IS NULL OR COALESCE(started_ms, enqueued_ms) >= $7)
               AND ($8::bigint IS NULL OR COALESCE(started_ms, enqueued_ms) <= $8)
               AND id {cmp} $9
             ORDER BY id {order} LIMIT $10"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(account)
            .bind(service)
            .bind(function)
            .bind(&f.qualifier)
            .bind(f.status.map(|s| s.as_str()))
            .bind(&prefix)
            .bind(f.started_time_begin.map(|v| v as i64))
            .bind(f.started_time_end.map(|v| v as i64))
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
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "SELECT id, status FROM async_invocations
             WHERE account_id = $1 AND service = $2 AND function = $3 AND invocation_id = $4
             FOR UPDATE",
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
        let status = Status::parse(&row.try_get::<String, _>("status")?).unwrap_or(Status::Invalid);
        let now = now_ms as i64;
        let result = match status {
            Status::Enqueued | Status::Retrying => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE async_invocations SET status = 'Stopped', end_ms = $2, events = {}
                     WHERE id = $1",
                    append_event("'Stopped'", "$2", "''")
                )))
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                StopResult::StoppedBeforeRunning
            }
            Status::Running => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "UPDATE async_invocations SET status = 'Stopping', events = {} WHERE id = $1",
                    append_event("'Stopping'", "$2", "''")
                )))
                .bind(id)
                .bind(now)
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

    async fn purge(&self, before_ms: u64) -> Result<u64, QueueError> {
        let res = sqlx::query(
            "DELETE FROM async_invocations WHERE end_ms IS NOT NULL AND end_ms < $1
               AND status IN ('Succeeded', 'Failed', 'Stopped', 'Expired', 'Invalid')",
        )
        .bind(before_ms as i64)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }
}

#[async_trait]
impl ConfigStore for PgRecords {
    async fn put_config(&self, account: &str, cfg: &AsyncConfig) -> Result<(), QueueError> {
        sqlx::query(
            "INSERT INTO async_invoke_configs (account_id, service, function, qualifier, body)
             VALUES ($1, $2, $3, $4, $5)
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
            "SELECT body FROM async_invoke_configs
             WHERE account_id = $1 AND service = $2 AND function = $3 AND qualifier = $4",
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
            "DELETE FROM async_invoke_configs
             WHERE account_id = $1 AND service = $2 AND function = $3 AND qualifier = $4",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(qualifier)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected() > 0)
    }

    async fn delete_configs(
        &self,
        account: &str,
        service: &str,
        function: Option<&str>,
        qualifier: Option<&str>,
    ) -> Result<u64, QueueError> {
        let res = sqlx::query(
            "DELETE FROM async_invoke_configs WHERE account_id = $1 AND service = $2
               AND ($3::text IS NULL OR function = $3) AND ($4::text IS NULL OR qualifier = $4)",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(qualifier)
        .execute(&self.pool)
        .await?;
        Ok(res.rows_affected())
    }

    async fn list_configs(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<Vec<AsyncConfig>, QueueError> {
        let rows = sqlx::query(
            "SELECT body FROM async_invoke_configs
             WHERE account_id = $1 AND service = $2 AND function = $3 ORDER BY qualifier",
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
        let all = self.list_account_configs(account).await?;
        Ok(all.into_iter().filter(|c| c.stateful_invocation).collect())
    }

    async fn list_account_configs(&self, account: &str) -> Result<Vec<AsyncConfig>, QueueError> {
        let rows = sqlx::query(
            "SELECT body FROM async_invoke_configs WHERE account_id = $1
             ORDER BY service, function, qualifier",
        )
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

/// The work queue on the records themselves (`--store postgres` without a broker): the
/// waiting rows are the items; a claim takes due rows, and runs whose lease lapsed, with
/// `FOR UPDATE SKIP LOCKED` (so nodes claiming at once never wait on each other) and starts
/// them in the same statement; the record's transitions are the acknowledgements. A claim
/// with nothing due polls every [`PgWorkQueue::POLL`], woken at once by a publish on the
/// same node.
#[derive(Debug, Clone)]
pub struct PgWorkQueue {
    pool: PgPool,
    published: std::sync::Arc<tokio::sync::Notify>,
}

impl PgWorkQueue {
    /// How often an idle claim looks again (work published by another node waits at most
    /// this long).
    pub const POLL: Duration = Duration::from_millis(200);

    pub fn new(records: &PgRecords) -> PgWorkQueue {
        PgWorkQueue {
            pool: records.pool.clone(),
            published: Default::default(),
        }
    }

    async fn claim_now(
        &self,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
        max: usize,
    ) -> Result<Vec<Invocation>, QueueError> {
        let now = now_ms as i64;
        // Stops whose run lost its lease complete (as the broker's redelivery would).
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE async_invocations SET status = 'Stopped', end_ms = $1, lease_until_ms = NULL,
                events = {}
             WHERE id IN (SELECT id FROM async_invocations
                          WHERE status = 'Stopping' AND lease_until_ms < $1
                          LIMIT 100 FOR UPDATE SKIP LOCKED)",
            append_event("'Stopped'", "$1", "'the run being stopped lost its lease'")
        )))
        .bind(now)
        .execute(&self.pool)
        .await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "WITH lapsed AS (SELECT id FROM async_invocations
                             WHERE status = 'Running' AND lease_until_ms < $3
                             ORDER BY lease_until_ms LIMIT $4 FOR UPDATE SKIP LOCKED),
                  due AS (SELECT id FROM async_invocations
                          WHERE status IN ('Enqueued', 'Retrying') AND next_attempt_ms <= $3
                          ORDER BY next_attempt_ms, id LIMIT $4 FOR UPDATE SKIP LOCKED)
             UPDATE async_invocations SET status = 'Running', attempts = attempts + 1,
                lease_until_ms = $1, owner = $2, started_ms = COALESCE(started_ms, $3),
                events = {}
             WHERE id IN (SELECT id FROM (SELECT id FROM lapsed UNION ALL SELECT id FROM due) u
                          LIMIT $4)
             RETURNING *",
            append_event(
                "'Running'",
                "$3",
                "CASE WHEN status = 'Running' THEN 'redelivered: the lease of the previous run lapsed' ELSE '' END"
            )
        )))
        .bind(lease_until_ms as i64)
        .bind(owner)
        .bind(now)
        .bind(max as i64)
        .fetch_all(&self.pool)
        .await?;
        let mut out = rows.iter().map(invocation).collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|i| i.id);
        Ok(out)
    }
}

#[async_trait]
impl crate::WorkQueue for PgWorkQueue {
    async fn publish(&self, _key: &str) -> Result<(), QueueError> {
        // The record's insert queued it; a claim waiting here looks now.
        self.published.notify_waiters();
        Ok(())
    }

    async fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<crate::Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let until = tokio::time::Instant::now() + wait;
        // The lease is kept as long from each look as from the first.
        let lease_ms = lease_until_ms.saturating_sub(now_ms);
        let mut now = now_ms;
        loop {
            let published = self.published.notified();
            let got = self.claim_now(owner, now, now + lease_ms, max).await?;
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            if !got.is_empty() || left.is_zero() {
                return Ok(got
                    .into_iter()
                    .map(|inv| crate::Delivery {
                        key: inv.key(),
                        started: Some(inv),
                        handle: crate::Handle::Row,
                    })
                    .collect());
            }
            let _ = tokio::time::timeout(left.min(Self::POLL), published).await;
            now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(now);
        }
    }

    async fn progress(&self, _d: &crate::Delivery) -> Result<(), QueueError> {
        // The record's lease is the delivery's.
        Ok(())
    }

    async fn ack(&self, _d: &crate::Delivery) -> Result<(), QueueError> {
        Ok(())
    }

    async fn retry(&self, _d: &crate::Delivery, _delay: Duration) -> Result<(), QueueError> {
        // The record's `next_attempt_ms` is the delay.
        Ok(())
    }

    async fn terminate(&self, _d: &crate::Delivery) -> Result<(), QueueError> {
        Ok(())
    }

    async fn next_due_ms(&self) -> Result<Option<u64>, QueueError> {
        // `claim` waits by itself.
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_database_is_unavailable_not_a_backend_fault() {
        // Port 1 on loopback: nothing listens there.
        let got = PgRecords::connect("postgres://postgres@127.0.0.1:1/none").await;
        assert!(matches!(got, Err(QueueError::Unavailable(_))), "{got:?}");
    }
}
