//! The instance backend seam: what the pool needs from one running instance, whatever runs it.
//!
//! The pool, the scheduler and the hooks only ever see a [`RunningInstance`]: call it with an
//! HTTP request of the custom-runtime contract, read its log stream and peak memory, learn
//! whether it died, stop it. Today's backend runs OS processes ([`crate::process`]); an
//! in-process engine (wasmtime) implements the same trait, and a runtime family picks its
//! backend through the [`crate::runtimes::Launch`] it returns.
//!
//! A backend owns everything its instance holds — the process, cgroup, namespaces and the
//! instance's share of the server's budget — and releases the budget only once those are gone,
//! however the instance ends (stopped, crashed, or dropped half-started by a caller that went
//! away).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};

use crate::Payload;
use crate::logs::Logs;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a single call to an instance produced.
pub(crate) enum CallResult {
    Response {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
    TimedOut,
    /// The call failed; the instance may have exited.
    Failed(String),
    /// A streamed body failed on the client's side before it was complete; the instance only
    /// lost a connection (see [`crate::StreamedBody`]).
    BodyRejected(fcd_core::FcError),
}

pub(crate) use crate::sandbox::ExitInfo;

/// One started instance, as the pool drives it.
pub(crate) trait RunningInstance: Send + Sync {
    /// One request of the custom-runtime contract, bounded by `limit`. The backend registers
    /// it with its log collector ([`Logs::begin`], from the `x-fc-request-id` and
    /// `x-fc-qualifier` headers) before sending it, until the returned future ends.
    fn call<'a>(
        &'a self,
        method: Method,
        path: &'a str,
        headers: HeaderMap,
        body: Payload,
        limit: Duration,
    ) -> BoxFuture<'a, CallResult>;

    /// The instance's output, for log tails.
    fn logs(&self) -> &Logs;

    /// Peak memory so far in MB; `fresh` reads it now instead of from a short-lived cache.
    fn peak_memory_mb(&self, fresh: bool) -> f64;

    /// Whether the instance has ended.
    fn exited(&self) -> bool;

    /// How it ended, waiting up to `wait` for the end.
    fn exit_info(&self, wait: Duration) -> BoxFuture<'_, Option<ExitInfo>>;

    /// Stops it now and waits (bounded) until it is gone.
    fn kill(&self) -> BoxFuture<'_, ()>;

    /// Stops it politely (SIGTERM or its equivalent), then for good after `grace`.
    fn stop(&self, grace: Duration) -> BoxFuture<'_, ()>;
}
