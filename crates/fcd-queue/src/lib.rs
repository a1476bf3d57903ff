//! The durable queue of asynchronous invocations and their stateful records.
//!
//! An accepted async invocation is a row that moves through FC's statuses (`Enqueued`,
//! `Running`, `Retrying`, `Succeeded`, `Failed`, `Stopping`, `Stopped`, `Expired`, `Invalid`)
//! and keeps its `events` history. The engine claims due rows in batches with a lease; a crashed
//! server's `Running` rows are handed back on restart (at-least-once execution; each
//! invocation still ends once in its record). Async invoke configs live here too, since only
//! the async path reads them.
//!
//! [`AsyncQueue`] is the seam for other backends: the embedded one is [`SqliteQueue`] (its own
//! SQLite file in the data dir, WAL, `synchronous=FULL`; one writer task commits whatever
//! waits — accepts as multi-row inserts, claims, results — in one transaction, so that many
//! concurrent writes share one fsync). A NATS JetStream backend would map enqueue to a
//! publish with ack, claim to a durable pull consumer's fetch (`ack_wait` as the lease), retry to
//! a NAK with delay, and keep the stateful records in a KV bucket.

mod sqlite;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

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
}

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        QueueError::Backend(e.to_string())
    }
}

impl From<serde_json::Error> for QueueError {
    fn from(e: serde_json::Error) -> Self {
        QueueError::Backend(format!("corrupt record: {e}"))
    }
}

#[async_trait]
pub trait AsyncQueue: Send + Sync + 'static {
    /// Stores the invocation durably; returns only once it would survive a crash.
    async fn enqueue(&self, inv: NewInvocation) -> Result<(), QueueError>;
    /// Takes up to `max` due invocations, earliest due first, marking each `Running` until
    /// `lease_until_ms`. Its cost does not grow with the number of waiting invocations.
    async fn claim(
        &self,
        now_ms: u64,
        lease_until_ms: u64,
        max: usize,
    ) -> Result<Vec<Invocation>, QueueError>;
    /// Records how an execution ended. Results of an execution (`Succeeded`, `Failed`,
    /// `Retry`) only apply while the row is still `Running`; `false` means it was not (a stop
    /// came in meanwhile).
    async fn finish(&self, id: i64, outcome: Outcome, now_ms: u64) -> Result<bool, QueueError>;
    /// Ends, as `Expired`, every waiting invocation that became too old to start, and returns
    /// them (for their onFailure destination). They never show as `Running`.
    async fn expire_due(&self, now_ms: u64) -> Result<Vec<Invocation>, QueueError>;
    /// Deletes async invoke configs of a function (`None`: every function of the service) and
    /// qualifier (`None`: every qualifier). Returns how many went.
    async fn delete_configs(
        &self,
        account: &str,
        service: &str,
        function: Option<&str>,
        qualifier: Option<&str>,
    ) -> Result<u64, QueueError>;
    /// Records where the destination record went.
    async fn set_destination_status(&self, id: i64, status: &str) -> Result<(), QueueError>;
    /// The earliest time something becomes due, if anything is waiting.
    async fn next_due_ms(&self) -> Result<Option<u64>, QueueError>;
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
    /// After a restart: executions that were running when the server died go back to the
    /// queue (their attempt counts), stops that were in progress complete.
    async fn recover(&self, now_ms: u64) -> Result<u64, QueueError>;
    /// Deletes finished records that ended before `before_ms`.
    async fn purge(&self, before_ms: u64) -> Result<u64, QueueError>;

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
    async fn list_configs(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<Vec<AsyncConfig>, QueueError>;
    /// Every config of the account with stateful invocation on.
    async fn list_stateful_configs(&self, account: &str) -> Result<Vec<AsyncConfig>, QueueError>;
}
