//! The durable queue of asynchronous invocations and their stateful records.
//!
//! An accepted async invocation moves through FC's statuses (`Enqueued`, `Running`,
//! `Retrying`, `Succeeded`, `Failed`, `Stopping`, `Stopped`, `Expired`, `Invalid`) and keeps its
//! `events` history. Three seams, each backed by what a deployment runs:
//! - [`WorkQueue`]: items named by their invocation key ([`invocation_key`]), published with a
//!   durable ack, claimed up to N at a time under a lease the worker extends while the function
//!   runs, acknowledged, retried with a delay, terminated after the last attempt.
//! - [`InvocationRecords`]: the stateful API's data, unique per key; every transition of a run
//!   is a compare-and-set on the status and the claim's owner token, so each invocation ends
//!   once in its record even when two workers ran it (a lease that lapsed, a duplicate
//!   delivery).
//! - [`ConfigStore`]: async invoke configs.
//!
//! [`Queue`] is the value the engine takes: the three together and the steps spanning them.
//! Backends: [`SqliteQueue`] (`queue.db`, one node: its rows are the work queue, one writer
//! task commits what waits in one transaction — group commit), [`NatsWorkQueue`] (JetStream
//! work-queue stream, one durable pull consumer shared by every node, `ack_wait` as the lease)
//! with [`PgRecords`] (PostgreSQL), and [`PgWorkQueue`] (PostgreSQL alone, `FOR UPDATE SKIP
//! LOCKED` over the records). Delivery is at least once; a crash between writing a record and
//! publishing it is repaired by the sweeper ([`Queue::sweep`]).

/// Decodes an invocation from a row of either SQL backend's `invocations` table (the column
/// types decode alike in both; only `events`, JSON text or `jsonb`, differs, so the caller
/// decodes it). `$row` is a `sqlx` row; the expansion uses `?` on `QueueError`.
macro_rules! invocation_from_row {
    ($row:expr, $events:expr) => {{
        let row = $row;
        let status: String = row.try_get("status")?;
        let opt_u64 = |col: &str| -> Result<Option<u64>, QueueError> {
            Ok(row.try_get::<Option<i64>, _>(col)?.map(|v| v.max(0) as u64))
        };
        Invocation {
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
            started_ms: opt_u64("started_ms")?,
            end_ms: opt_u64("end_ms")?,
            duration_ms: opt_u64("duration_ms")?,
            return_payload: row.try_get("return_payload")?,
            error_message: row.try_get("error_message")?,
            instance_id: row.try_get("instance_id")?,
            destination_status: row.try_get("destination_status")?,
            on_success: row.try_get("on_success")?,
            on_failure: row.try_get("on_failure")?,
            platform_retries: row.try_get::<i64, _>("platform_retries")?.max(0) as u32,
            events: $events,
            http_request: row.try_get("http_request")?,
        }
    }};
}

mod nats;
mod postgres;
mod queue;
mod sqlite;
#[cfg(test)]
mod testenv;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use nats::{NatsConfig, NatsWorkQueue};
pub use postgres::{PgRecords, PgWorkQueue};
pub use queue::{Claim, Queue};
pub use sqlite::{CLAIM_MAX, SqliteQueue};

/// FC's statuses of an asynchronous invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Enqueued,
    Running,
    Retrying,
    Succeeded,
    Failed,
    Stopping,
    Stopped,
    Expired,
    Invalid,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Enqueued => "Enqueued",
            Status::Running => "Running",
            Status::Retrying => "Retrying",
            Status::Succeeded => "Succeeded",
            Status::Failed => "Failed",
            Status::Stopping => "Stopping",
            Status::Stopped => "Stopped",
            Status::Expired => "Expired",
            Status::Invalid => "Invalid",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "Enqueued" => Status::Enqueued,
            "Running" => Status::Running,
            "Retrying" => Status::Retrying,
            "Succeeded" => Status::Succeeded,
            "Failed" => Status::Failed,
            "Stopping" => Status::Stopping,
            "Stopped" => Status::Stopped,
            "Expired" => Status::Expired,
            "Invalid" => Status::Invalid,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Succeeded
                | Status::Failed
                | Status::Stopped
                | Status::Expired
                | Status::Invalid
        )
    }
}

/// One entry of an invocation's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: u64,
    pub status: String,
    pub timestamp: u64,
    pub event_detail: String,
}

/// What the API accepted.
#[derive(Debug, Clone)]
pub struct NewInvocation {
    pub account_id: String,
    pub service: String,
    pub function: String,
    pub qualifier: String,
    pub invocation_id: String,
    pub request_id: String,
    /// Queryable through the stateful-invocation API.
    pub stateful: bool,
    pub payload: Vec<u8>,
    pub max_retries: u32,
    pub max_age_secs: u64,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub now_ms: u64,
    /// For an invocation through an HTTP trigger: the client's request (method, target,
    /// headers ...) as the engine encoded it, replayed to the instance with `payload` as the
    /// body. Opaque here; `None` for an event.
    pub http_request: Option<String>,
}

/// An invocation as stored.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub id: i64,
    pub account_id: String,
    pub service: String,
    pub function: String,
    pub qualifier: String,
    pub invocation_id: String,
    pub request_id: String,
    pub stateful: bool,
    pub payload: Vec<u8>,
    pub status: Status,
    /// Executions started so far (platform retries are not counted).
    pub attempts: u32,
    pub max_retries: u32,
    pub max_age_secs: u64,
    pub enqueued_ms: u64,
    pub started_ms: Option<u64>,
    pub end_ms: Option<u64>,
    pub duration_ms: Option<u64>,
    pub return_payload: Option<Vec<u8>>,
    pub error_message: Option<String>,
    pub instance_id: Option<String>,
    pub destination_status: Option<String>,
    pub on_success: Option<String>,
    pub on_failure: Option<String>,
    pub platform_retries: u32,
    pub events: Vec<Event>,
    /// See [`NewInvocation::http_request`]; `None` for events and for rows written before
    /// the column existed.
    pub http_request: Option<String>,
}

/// How an execution ended, as the worker records it.
#[derive(Debug, Clone)]
pub enum Outcome {
    Succeeded {
        duration_ms: u64,
        return_payload: Vec<u8>,
        instance_id: String,
    },
    Failed {
        duration_ms: u64,
        error: String,
        instance_id: String,
    },
    /// Run again at `at_ms`. `platform` retries (throttling, start-up trouble of the platform)
    /// do not count against `maxAsyncRetryAttempts`.
    Retry {
        at_ms: u64,
        error: String,
        platform: bool,
    },
    Stopped,
    Expired,
    Invalid {
        reason: String,
    },
}

/// Filters of ListStatefulAsyncInvocations.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub qualifier: Option<String>,
    pub status: Option<Status>,
    pub invocation_id_prefix: Option<String>,
    pub started_time_begin: Option<u64>,
    pub started_time_end: Option<u64>,
    pub descending: bool,
    /// Resume after this row (the `nextToken`).
    pub after_id: Option<i64>,
    pub limit: u32,
}

/// What a stop request found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopResult {
    /// It had not started; it never will.
    StoppedBeforeRunning,
    /// It is running; the worker must abort it.
    Stopping,
    /// It had already ended.
    AlreadyFinished(Status),
    NotFound,
}

/// An async invoke config (PutFunctionAsyncInvokeConfig), per function and qualifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsyncConfig {
    pub service: String,
    pub function: String,
    pub qualifier: String,
    pub max_async_event_age_in_seconds: u64,
    pub max_async_retry_attempts: u32,
    pub stateful_invocation: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination_config: Option<serde_json::Value>,
    pub created_time: String,
    pub last_modified_time: String,
}

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("an invocation with this id already exists")]
    Duplicate,
    #[error("the queue is closed")]
    Closed,
    #[error("queue backend: {0}")]
    Backend(String),
    /// The backend cannot be reached (connection refused or lost, pool exhausted): worth
    /// retrying later; the API answers 503.
    #[error("queue backend unavailable: {0}")]
    Unavailable(String),
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed => QueueError::Unavailable(e.to_string()),
            e => QueueError::Backend(e.to_string()),
        }
    }
}

impl From<sqlx::migrate::MigrateError> for QueueError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        QueueError::Backend(format!("schema migration: {e}"))
    }
}

impl From<serde_json::Error> for QueueError {
    fn from(e: serde_json::Error) -> Self {
        QueueError::Backend(format!("corrupt record: {e}"))
    }
}

/// The string that names one invocation everywhere: the work queue's item (and the broker's
/// deduplication id), the record's unique key. Names and invocation ids cannot contain `/`.
pub fn invocation_key(account: &str, service: &str, function: &str, invocation_id: &str) -> String {
    format!("{account}/{service}/{function}/{invocation_id}")
}

/// The four parts of an [`invocation_key`].
pub fn parse_key(key: &str) -> Option<(&str, &str, &str, &str)> {
    let mut p = key.splitn(4, '/');
    Some((p.next()?, p.next()?, p.next()?, p.next()?))
}

impl NewInvocation {
    pub fn key(&self) -> String {
        invocation_key(
            &self.account_id,
            &self.service,
            &self.function,
            &self.invocation_id,
        )
    }
}

impl Invocation {
    pub fn key(&self) -> String {
        invocation_key(
            &self.account_id,
            &self.service,
            &self.function,
            &self.invocation_id,
        )
    }
}

/// What [`InvocationRecords::start`] found for a delivered key.
#[derive(Debug, Clone)]
pub enum Start {
    /// Now `Running` under the caller's owner token (attempt counted, event appended): it was
    /// waiting and due, or `Running` under a lease that lapsed (a redelivery).
    Started(Box<Invocation>),
    /// Waiting, but not due before this time (a delivery that came early).
    NotDue(u64),
    /// Running under another owner's live lease, until this time.
    Held(u64),
    /// Nothing to run: ended, unknown (purged), or a stop of a lapsed run completed now.
    Ended,
}

/// The work queue: items named by their invocation key, delivered to one claimer at a time
/// under a lease that the claimer extends while the function runs; retried with a delay;
/// terminated after the last attempt. A broker (NATS JetStream) or the embedded file backs it.
#[async_trait]
pub trait WorkQueue: Send + Sync + 'static {
    /// Makes `key` deliverable; returns once the broker has it durably. Publishing a key that
    /// is already queued is harmless (deduplicated, or found started by the record's CAS).
    async fn publish(&self, key: &str) -> Result<(), QueueError>;
    /// Takes up to `max` deliveries, waiting at most `wait` for the first. A work queue that
    /// shares its rows with the records starts them in the same step (`owner`, lease): those
    /// deliveries carry the started record.
    async fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
        max: usize,
        wait: std::time::Duration,
    ) -> Result<Vec<Delivery>, QueueError>;
    /// Extends the delivery's lease (a progress ack).
    async fn progress(&self, d: &Delivery) -> Result<(), QueueError>;
    /// Done with it: it is not delivered again.
    async fn ack(&self, d: &Delivery) -> Result<(), QueueError>;
    /// Deliver it again after `delay` (zero: hand it back now).
    async fn retry(&self, d: &Delivery, delay: std::time::Duration) -> Result<(), QueueError>;
    /// Dead letter: the last attempt failed; never delivered again.
    async fn terminate(&self, d: &Delivery) -> Result<(), QueueError>;
    /// When the next item falls due, if the work queue can tell (the embedded one can); `None`
    /// also for a broker, whose `claim` waits by itself.
    async fn next_due_ms(&self) -> Result<Option<u64>, QueueError>;
}

/// One delivery of a work item.
#[derive(Debug)]
pub struct Delivery {
    pub key: String,
    /// Set when the work queue started the record as it claimed (the embedded file).
    pub started: Option<Invocation>,
    pub(crate) handle: Handle,
}

/// What acknowledges a delivery.
#[derive(Debug)]
pub(crate) enum Handle {
    /// The row is the item: its record's transitions are its acknowledgements.
    Row,
    Nats(Box<async_nats::jetstream::Message>),
}

/// The stateful API's data: an invocation's status, `events` history, result and destination
/// status. Unique per invocation key; every transition of a run is a compare-and-set on the
/// status and the runner's owner token, so an invocation ends once in its record even when two
/// workers ran it.
#[async_trait]
pub trait InvocationRecords: Send + Sync + 'static {
    /// Stores the invocation durably (`Enqueued`); `Duplicate` if its key exists.
    async fn insert(&self, inv: NewInvocation) -> Result<(), QueueError>;
    /// Starts a delivered key for `owner`: takes `Enqueued`/`Retrying` when due, or `Running`
    /// whose lease lapsed before `now_ms` (a redelivery); a `Stopping` one whose lease lapsed
    /// becomes `Stopped`.
    async fn start(
        &self,
        key: &str,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
    ) -> Result<Start, QueueError>;
    /// Extends the lease of a run `owner` holds; returns the record's status (`Running`, or
    /// `Stopping` when a stop was requested anywhere), `None` if the run is no longer theirs.
    async fn extend(
        &self,
        inv: &Invocation,
        owner: &str,
        lease_until_ms: u64,
    ) -> Result<Option<Status>, QueueError>;
    /// Records how `owner`'s run ended. `Succeeded`, `Failed` and `Retry` apply only while the
    /// record is `Running` under `owner`; `Stopped`, `Expired` and `Invalid` while it is
    /// `Running` or `Stopping` under `owner`. `false`: not applied.
    async fn finish(
        &self,
        inv: &Invocation,
        owner: &str,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<bool, QueueError>;
    /// Hands `owner`'s run back (a draining node): `Retrying`, due now, the attempt counted.
    async fn release(&self, inv: &Invocation, owner: &str, now_ms: u64)
    -> Result<bool, QueueError>;
    /// Ends, as `Expired`, every waiting invocation that became too old to start, and returns
    /// them (for their onFailure destination). They never show as `Running`.
    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Invocation>, QueueError>;
    /// Keys that should have been started before `before_ms` and were not: waiting and due,
    /// or running under a lapsed lease (at most `max`). The sweeper publishes them again.
    async fn overdue(&self, before_ms: u64, max: usize) -> Result<Vec<String>, QueueError>;
    /// Records where the destination record went.
    async fn set_destination_status(
        &self,
        inv: &Invocation,
        status: &str,
    ) -> Result<(), QueueError>;
    async fn get(
        &self,
        account: &str,
        service: &str,
        function: &str,
        invocation_id: &str,
    ) -> Result<Option<Invocation>, QueueError>;
    async fn list(
        &self,
        account: &str,
        service: &str,
        function: &str,
        filter: &ListFilter,
    ) -> Result<Vec<Invocation>, QueueError>;
    async fn request_stop(
        &self,
        account: &str,
        service: &str,
        function: &str,
        invocation_id: &str,
        now_ms: u64,
    ) -> Result<StopResult, QueueError>;
    /// Deletes finished records that ended before `before_ms`.
    async fn purge(&self, before_ms: u64) -> Result<u64, QueueError>;
}

/// Async invoke configs (PutFunctionAsyncInvokeConfig), per function and qualifier.
#[async_trait]
pub trait ConfigStore: Send + Sync + 'static {
    async fn put_config(&self, account: &str, cfg: &AsyncConfig) -> Result<(), QueueError>;
    async fn get_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: &str,
    ) -> Result<Option<AsyncConfig>, QueueError>;
    async fn delete_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
        qualifier: &str,
    ) -> Result<bool, QueueError>;
    /// Deletes async invoke configs of a function (`None`: every function of the service) and
    /// qualifier (`None`: every qualifier). Returns how many went.
    async fn delete_configs(
        &self,
        account: &str,
        service: &str,
        function: Option<&str>,
        qualifier: Option<&str>,
    ) -> Result<u64, QueueError>;
    async fn list_configs(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<Vec<AsyncConfig>, QueueError>;
    /// Every config of the account with stateful invocation on.
    async fn list_stateful_configs(&self, account: &str) -> Result<Vec<AsyncConfig>, QueueError>;
    /// Every config of the account, in (service, function, qualifier) order (FC 3.0's
    /// account-wide ListAsyncInvokeConfigs).
    async fn list_account_configs(&self, account: &str) -> Result<Vec<AsyncConfig>, QueueError>;
}
