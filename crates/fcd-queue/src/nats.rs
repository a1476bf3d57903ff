//! [`NatsWorkQueue`]: the work queue on NATS JetStream (server 2.9 features only). One stream
//! with WorkQueue retention holds one message per published invocation key (published with
//! `Nats-Msg-Id` = the key, so a republish inside the duplicate window is dropped); one durable
//! pull consumer, shared by every node, delivers each message to one node at a time with
//! explicit acks. `ack_wait` is the lease: the worker sends progress acks (`+WPI`) while the
//! function runs, a retry is a NAK with delay, the last failure a `+TERM`. Deliveries are not
//! limited in number (`max_deliver` -1): the record decides when an invocation is over, and a
//! delivery that finds it over is acknowledged.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, message::PublishMessage, stream};
use async_trait::async_trait;
use futures_util::StreamExt;

use crate::{Delivery, Handle, QueueError, WorkQueue};

/// Where the work queue lives and how long a delivery is leased.
#[derive(Debug, Clone)]
pub struct NatsConfig {
    pub url: String,
    pub stream: String,
    pub subject: String,
    pub consumer: String,
    /// The lease of a delivery (`ack_wait`); the worker's progress acks must come sooner.
    pub ack_wait: Duration,
}

impl NatsConfig {
    /// From `nats://host:port[/name]`: the server, and optionally a name of its own for the
    /// stream (subject `<name>.work`, consumer `<name>-workers`), so that several clusters (or
    /// test runs) can share one NATS server. The name is 1 to 64 of `[A-Za-z0-9_-]`.
    pub fn from_url(url: &str) -> Result<NatsConfig, String> {
        let rest = url
            .strip_prefix("nats://")
            .ok_or_else(|| format!("'{url}' is not a nats:// URL"))?;
        let (server, name) = match rest.split_once('/') {
            None => (rest, ""),
            Some((server, name)) => (server, name.trim_end_matches('/')),
        };
        if server.is_empty() {
            return Err(format!("'{url}' names no server"));
        }
        let mut cfg = NatsConfig::new(&format!("nats://{server}"));
        if !name.is_empty() {
            let ok = name.len() <= 64
                && name
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
            if !ok {
                return Err(format!(
                    "'{name}' is not a stream name: 1 to 64 letters, digits, '_' or '-'"
                ));
            }
            cfg.stream = name.to_owned();
            cfg.subject = format!("{name}.work");
            cfg.consumer = format!("{name}-workers");
        }
        Ok(cfg)
    }

    /// fcd's stream and consumer names, with a lease of 30 s.
    pub fn new(url: &str) -> NatsConfig {
        NatsConfig {
            url: url.to_owned(),
            stream: "FCD_ASYNC".into(),
            subject: "fcd.async.work".into(),
            consumer: "fcd-async-workers".into(),
            ack_wait: Duration::from_secs(30),
        }
    }
}

/// The work queue on a JetStream stream and its durable pull consumer.
#[derive(Debug, Clone)]
pub struct NatsWorkQueue {
    js: jetstream::Context,
    subject: String,
    consumer: consumer::PullConsumer,
}

/// Every failure to talk to the broker (connect, publish, fetch, ack) counts as the broker
/// being unavailable: none of them says anything about the invocation.
fn nats_error(what: &str, e: impl std::fmt::Display) -> QueueError {
    QueueError::Unavailable(format!("nats {what}: {e}"))
}

impl NatsWorkQueue {
    /// Connects and makes the stream and the consumer if they do not exist yet (every node
    /// does this at start; the first one creates them).
    pub async fn connect(cfg: NatsConfig) -> Result<NatsWorkQueue, QueueError> {
        let client = async_nats::connect(cfg.url.as_str())
            .await
            .map_err(|e| nats_error("connect", e))?;
        let js = jetstream::new(client);
        let stream = js
            .get_or_create_stream(stream::Config {
                name: cfg.stream.clone(),
                subjects: vec![cfg.subject.clone()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| nats_error("stream", e))?;
        let consumer = stream
            .get_or_create_consumer(
                &cfg.consumer,
                consumer::pull::Config {
                    durable_name: Some(cfg.consumer.clone()),
                    filter_subject: cfg.subject.clone(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: cfg.ack_wait,
                    max_deliver: -1,
                    // Messages waiting out a NAK delay count as pending: room for a backlog
                    // of retries besides what runs.
                    max_ack_pending: 1_000_000,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| nats_error("consumer", e))?;
        Ok(NatsWorkQueue {
            js,
            subject: cfg.subject,
            consumer,
        })
    }

    async fn settle(&self, d: &Delivery, kind: AckKind) -> Result<(), QueueError> {
        match &d.handle {
            Handle::Nats(m) => m.ack_with(kind).await.map_err(|e| nats_error("ack", e)),
            Handle::Row => Ok(()),
        }
    }

    fn delivery(m: jetstream::Message) -> Option<Delivery> {
        let key = std::str::from_utf8(&m.payload).ok()?.to_owned();
        Some(Delivery {
            key,
            started: None,
            handle: Handle::Nats(Box::new(m)),
        })
    }
}

#[async_trait]
impl WorkQueue for NatsWorkQueue {
    async fn publish(&self, key: &str) -> Result<(), QueueError> {
        let msg = PublishMessage::build()
            .payload(bytes::Bytes::copy_from_slice(key.as_bytes()))
            .message_id(key);
        self.js
            .send_publish(self.subject.clone(), msg)
            .await
            .map_err(|e| nats_error("publish", e))?
            .await
            .map_err(|e| nats_error("publish ack", e))?;
        Ok(())
    }

    async fn claim(
        &self,
        _owner: &str,
        _now_ms: u64,
        _lease_until_ms: u64,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Delivery>, QueueError> {
        if max == 0 {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        // What is there now, without waiting.
        let mut batch = self
            .consumer
            .fetch()
            .max_messages(max)
            .messages()
            .await
            .map_err(|e| nats_error("fetch", e))?;
        while let Some(m) = batch.next().await {
            let m = match m {
                Ok(m) => m,
                // What came before the error is kept: dropped, it would wait out its lease.
                Err(e) if !out.is_empty() => {
                    tracing::warn!(error = %e, "fetching async work ended early");
                    break;
                }
                Err(e) => return Err(nats_error("fetch", e)),
            };
            match Self::delivery(m) {
                Some(d) => out.push(d),
                None => tracing::warn!("an async work message that is not a key was dropped"),
            }
        }
        if !out.is_empty() || wait.is_zero() {
            return Ok(out);
        }
        // Nothing: wait for one (a request for one message, so none is left delivered to a
        // request nobody reads), then take what came with it.
        let mut one = self
            .consumer
            .batch()
            .max_messages(1)
            .expires(wait)
            .messages()
            .await
            .map_err(|e| nats_error("pull", e))?;
        while let Some(m) = one.next().await {
            let m = m.map_err(|e| nats_error("pull", e))?;
            if let Some(d) = Self::delivery(m) {
                out.push(d);
            }
        }
        if !out.is_empty() && max > 1 {
            let mut more = self
                .consumer
                .fetch()
                .max_messages(max - 1)
                .messages()
                .await
                .map_err(|e| nats_error("fetch", e))?;
            while let Some(m) = more.next().await {
                let Ok(m) = m else { break };
                if let Some(d) = Self::delivery(m) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    async fn progress(&self, d: &Delivery) -> Result<(), QueueError> {
        self.settle(d, AckKind::Progress).await
    }

    async fn ack(&self, d: &Delivery) -> Result<(), QueueError> {
        self.settle(d, AckKind::Ack).await
    }

    async fn retry(&self, d: &Delivery, delay: Duration) -> Result<(), QueueError> {
        let delay = (!delay.is_zero()).then_some(delay);
        self.settle(d, AckKind::Nak(delay)).await
    }

    async fn terminate(&self, d: &Delivery) -> Result<(), QueueError> {
        self.settle(d, AckKind::Term).await
    }

    async fn next_due_ms(&self) -> Result<Option<u64>, QueueError> {
        // The broker knows; `claim` waits for it.
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_the_server_and_optionally_the_stream() {
        let plain = NatsConfig::from_url("nats://127.0.0.1:4222").unwrap();
        assert_eq!(plain.url, "nats://127.0.0.1:4222");
        assert_eq!(plain.stream, NatsConfig::new("x").stream);
        let named = NatsConfig::from_url("nats://127.0.0.1:4222/team_a/").unwrap();
        assert_eq!(named.url, "nats://127.0.0.1:4222");
        assert_eq!(
            (named.stream.as_str(), named.subject.as_str(), named.consumer.as_str()),
            ("team_a", "team_a.work", "team_a-workers")
        );
        for bad in ["http://x", "nats://", "nats://h/a.b", "nats://h/a*", "nats://h/a b"] {
            assert!(NatsConfig::from_url(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_broker_is_unavailable() {
        let got = NatsWorkQueue::connect(NatsConfig::new("nats://127.0.0.1:1")).await;
        assert!(matches!(got, Err(QueueError::Unavailable(_))), "{got:?}");
    }
}
