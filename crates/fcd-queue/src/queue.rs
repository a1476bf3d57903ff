//! [`Queue`]: the three seams (work queue, invocation records, configs) as one value the
//! engine takes, and the steps that span them: accept (record, then publish), claim (delivery,
//! then the record's compare-and-set start), extend (the record's lease and the delivery's
//! progress ack), finish (the record's CAS, then ack / NAK with delay / terminate), hand back,
//! and the sweeper that republishes what a crash between record and publish left unpublished.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::{
    ConfigStore, Delivery, Invocation, InvocationRecords, NatsConfig, NatsWorkQueue, NewInvocation,
    Outcome, PgRecords, PgWorkQueue, QueueError, SqliteQueue, Start, Status, WorkQueue,
};

/// The async queue: a work queue, invocation records and configs, chosen at start.
#[derive(Clone)]
pub struct Queue {
    work: Arc<dyn WorkQueue>,
    records: Arc<dyn InvocationRecords>,
    configs: Arc<dyn ConfigStore>,
    /// The embedded file, which also backs `recover` (one node owns every run in it).
    embedded: Option<SqliteQueue>,
    /// The records' rows are the work queue (the file, or PostgreSQL alone): nothing can be
    /// left unpublished, so the sweeper has nothing to do.
    rows_are_work: bool,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("embedded", &self.embedded.is_some())
            .finish_non_exhaustive()
    }
}

/// A claimed invocation: its record as started, the owner token its transitions must name,
/// and the delivery to acknowledge.
#[derive(Debug)]
pub struct Claim {
    pub inv: Invocation,
    pub owner: String,
    delivery: Delivery,
}

impl Queue {
    /// The embedded queue: one SQLite file backs all three seams.
    pub async fn embedded(path: &Path) -> Result<Queue, QueueError> {
        let q = SqliteQueue::open(path).await?;
        Ok(Queue {
            work: Arc::new(q.clone()),
            records: Arc::new(q.clone()),
            configs: Arc::new(q.clone()),
            embedded: Some(q),
            rows_are_work: true,
        })
    }

    /// The clustered queue: work on NATS JetStream at `nats_url` (stream and durable consumer
    /// shared by every node), records and configs in PostgreSQL at `postgres_url`.
    pub async fn nats(nats_url: &str, postgres_url: &str) -> Result<Queue, QueueError> {
        Self::nats_with(NatsConfig::new(nats_url), postgres_url).await
    }

    /// [`Queue::nats`] with the stream's names and lease chosen (tests use names of their own).
    pub async fn nats_with(cfg: NatsConfig, postgres_url: &str) -> Result<Queue, QueueError> {
        let work = NatsWorkQueue::connect(cfg).await?;
        let records = PgRecords::connect(postgres_url).await?;
        Ok(Self::from_parts(
            Arc::new(work),
            Arc::new(records.clone()),
            Arc::new(records),
        ))
    }

    /// PostgreSQL alone (no broker): records, configs, and the work queue over the records
    /// (`FOR UPDATE SKIP LOCKED`, see [`PgWorkQueue`]).
    pub async fn postgres(postgres_url: &str) -> Result<Queue, QueueError> {
        let records = PgRecords::connect(postgres_url).await?;
        let mut q = Self::from_parts(
            Arc::new(PgWorkQueue::new(&records)),
            Arc::new(records.clone()),
            Arc::new(records),
        );
        q.rows_are_work = true;
        Ok(q)
    }

    /// Any work queue with any records and configs.
    pub fn from_parts(
        work: Arc<dyn WorkQueue>,
        records: Arc<dyn InvocationRecords>,
        configs: Arc<dyn ConfigStore>,
    ) -> Queue {
        Queue {
            work,
            records,
            configs,
            embedded: None,
            rows_are_work: false,
        }
    }

    pub fn records(&self) -> &dyn InvocationRecords {
        &*self.records
    }

    pub fn configs(&self) -> &dyn ConfigStore {
        &*self.configs
    }

    pub fn work(&self) -> &dyn WorkQueue {
        &*self.work
    }

    /// True for the embedded file: every run in it is this node's.
    pub fn is_embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Stores the invocation durably, then publishes its key. A failed publish after the
    /// record is written is not the client's failure: the record is durable, and the sweeper
    /// publishes it again once it is overdue.
    pub async fn enqueue(&self, inv: NewInvocation) -> Result<(), QueueError> {
        let key = inv.key();
        self.records.insert(inv).await?;
        if let Err(e) = self.work.publish(&key).await {
            tracing::warn!(key, error = %e, "publishing an accepted async invocation failed; the sweeper publishes it again");
        }
        Ok(())
    }

    /// Claims up to `max` invocations for `owner` (a token unique to this claim), each leased
    /// until `lease_until_ms`. Deliveries that find nothing to run are settled here: an early
    /// one goes back until it is due, one held by a live lease elsewhere until that lease ends,
    /// an ended one is acknowledged.
    pub async fn claim(
        &self,
        owner: &str,
        now_ms: u64,
        lease_until_ms: u64,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Claim>, QueueError> {
        let deliveries = self
            .work
            .claim(owner, now_ms, lease_until_ms, max, wait)
            .await?;
        let mut claims = Vec::with_capacity(deliveries.len());
        for mut d in deliveries {
            if let Some(inv) = d.started.take() {
                claims.push(Claim {
                    inv,
                    owner: owner.to_owned(),
                    delivery: d,
                });
                continue;
            }
            let start = match self
                .records
                .start(&d.key, owner, now_ms, lease_until_ms)
                .await
            {
                Ok(s) => s,
                Err(e) => {
                    // Nothing was taken: the delivery comes back in a second.
                    tracing::warn!(key = %d.key, error = %e, "starting a delivered async invocation failed");
                    let _ = self.work.retry(&d, Duration::from_secs(1)).await;
                    continue;
                }
            };
            match start {
                Start::Started(inv) => claims.push(Claim {
                    inv: *inv,
                    owner: owner.to_owned(),
                    delivery: d,
                }),
                Start::NotDue(at) | Start::Held(at) => {
                    let delay = Duration::from_millis(at.saturating_sub(now_ms) + 100);
                    if let Err(e) = self.work.retry(&d, delay).await {
                        tracing::warn!(key = %d.key, error = %e, "putting back an early async delivery failed");
                    }
                }
                Start::Ended => {
                    if let Err(e) = self.work.ack(&d).await {
                        tracing::warn!(key = %d.key, error = %e, "acknowledging an ended async delivery failed");
                    }
                }
            }
        }
        Ok(claims)
    }

    /// Extends a claim's lease: the record's and the delivery's. Returns the record's status
    /// (`Stopping`: a stop was requested, on any node), `None` if the run is no longer this
    /// claim's.
    pub async fn extend(
        &self,
        c: &Claim,
        lease_until_ms: u64,
    ) -> Result<Option<Status>, QueueError> {
        let status = self
            .records
            .extend(&c.inv, &c.owner, lease_until_ms)
            .await?;
        if status.is_some() {
            self.work.progress(&c.delivery).await?;
        }
        Ok(status)
    }

    /// Records how the claim's run ended (see [`InvocationRecords::finish`]), then settles its
    /// delivery: a retry goes back with its delay, a last failure is terminated, anything else
    /// acknowledged. `false`: the record did not take it (a stop, or another owner).
    pub async fn finish(
        &self,
        c: &Claim,
        outcome: Outcome,
        now_ms: u64,
    ) -> Result<bool, QueueError> {
        let retry_at = match &outcome {
            Outcome::Retry { at_ms, .. } => Some(*at_ms),
            _ => None,
        };
        let dead_letter = matches!(outcome, Outcome::Failed { .. });
        let applied = self
            .records
            .finish(&c.inv, &c.owner, outcome, now_ms)
            .await?;
        // Settling is best effort: an unsettled delivery comes back after its lease and finds
        // the record's state.
        let settled = match (applied, retry_at) {
            (true, Some(at)) => {
                self.work
                    .retry(
                        &c.delivery,
                        Duration::from_millis(at.saturating_sub(now_ms)),
                    )
                    .await
            }
            (true, None) if dead_letter => self.work.terminate(&c.delivery).await,
            _ => self.work.ack(&c.delivery).await,
        };
        if let Err(e) = settled {
            tracing::warn!(key = %c.delivery.key, error = %e, "settling an async delivery failed; it comes back after its lease");
        }
        Ok(applied)
    }

    /// Hands a claim back unfinished (a draining node): the record is due again now, and the
    /// delivery goes back without delay for another node.
    pub async fn release(&self, c: &Claim, now_ms: u64) -> Result<bool, QueueError> {
        let released = self.records.release(&c.inv, &c.owner, now_ms).await?;
        if let Err(e) = self.work.retry(&c.delivery, Duration::ZERO).await {
            tracing::warn!(key = %c.delivery.key, error = %e, "handing back an async delivery failed; it comes back after its lease");
        }
        Ok(released)
    }

    /// Publishes again what should have started before `now_ms - grace` and did not (a crash
    /// between writing the record and publishing it, or a lease that lapsed with its
    /// delivery lost). Duplicates are harmless: the broker deduplicates by key, and the
    /// record's CAS starts a run once. Returns how many were published.
    pub async fn sweep(&self, now_ms: u64, grace: Duration) -> Result<usize, QueueError> {
        if self.rows_are_work {
            // The rows are the work queue: nothing can be unpublished.
            return Ok(0);
        }
        let before = now_ms.saturating_sub(grace.as_millis() as u64);
        let keys = self.records.overdue(before, 1000).await?;
        for k in &keys {
            self.work.publish(k).await?;
        }
        Ok(keys.len())
    }

    /// After a restart of the only node: runs it had are handed back, stops in progress
    /// complete. Nothing for a shared backend, whose runs come back when their lease lapses.
    pub async fn recover(&self, now_ms: u64) -> Result<u64, QueueError> {
        match &self.embedded {
            Some(q) => q.recover(now_ms).await,
            None => Ok(0),
        }
    }

    /// When the next item falls due, if the work queue can tell.
    pub async fn next_due_ms(&self) -> Result<Option<u64>, QueueError> {
        self.work.next_due_ms().await
    }

    /// The embedded file, if that is the backend (tests and benchmarks read its commits).
    pub fn embedded_file(&self) -> Option<&SqliteQueue> {
        self.embedded.as_ref()
    }
}

#[cfg(test)]
mod tests {
    //! The same behaviour on the embedded file and on NATS JetStream + PostgreSQL (the latter
    //! when `FCD_TEST_NATS` and `FCD_TEST_POSTGRES` are set; see `testenv`).

    use super::*;
    use crate::{NewInvocation, QueueError, StopResult, testenv};

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
            max_age_secs: 600,
            on_success: None,
            on_failure: None,
            now_ms: now,
            http_request: None,
        }
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    fn ok(d: u64) -> Outcome {
        Outcome::Succeeded {
            duration_ms: d,
            return_payload: b"ok".to_vec(),
            instance_id: "i".into(),
        }
    }

    /// Two handles on one clustered queue (two nodes), or `None` when the services are not
    /// configured. `ack_wait` is the lease.
    async fn cluster(ack_wait: Duration) -> Option<(Queue, Queue)> {
        let pg = testenv::postgres().await?;
        let nats = testenv::nats(ack_wait)?;
        let one = Queue::nats_with(nats.clone(), &pg).await.unwrap();
        let two = Queue::nats_with(nats, &pg).await.unwrap();
        Some((one, two))
    }

    async fn status(q: &Queue, id: &str) -> Status {
        q.records()
            .get("a", "s", "f", id)
            .await
            .unwrap()
            .unwrap()
            .status
    }

    /// Publish, claim, extend, ack; duplicates refused; nothing delivered twice.
    async fn publish_claim_extend_ack(q: &Queue) {
        let t = now();
        for id in ["x", "y"] {
            q.enqueue(new(id, t)).await.unwrap();
        }
        assert!(matches!(
            q.enqueue(new("x", t)).await,
            Err(QueueError::Duplicate)
        ));
        let mut got = q
            .claim("n1:1", t, t + 30_000, 10, Duration::from_secs(2))
            .await
            .unwrap();
        got.sort_by(|a, b| a.inv.invocation_id.cmp(&b.inv.invocation_id));
        let ids: Vec<_> = got.iter().map(|c| c.inv.invocation_id.as_str()).collect();
        assert_eq!(ids, ["x", "y"]);
        assert!(
            got.iter()
                .all(|c| c.inv.status == Status::Running && c.inv.attempts == 1)
        );
        assert_eq!(
            q.extend(&got[0], t + 60_000).await.unwrap(),
            Some(Status::Running)
        );
        // Another owner cannot finish or extend it.
        let stranger = Claim {
            inv: got[0].inv.clone(),
            owner: "n2:9".into(),
            delivery: Delivery {
                key: got[0].inv.key(),
                started: None,
                handle: crate::Handle::Row,
            },
        };
        assert_eq!(q.extend(&stranger, t + 60_000).await.unwrap(), None);
        assert!(!q.finish(&stranger, ok(1), t + 5).await.unwrap());
        for c in &got {
            assert!(q.finish(c, ok(2), t + 10).await.unwrap());
        }
        assert!(
            q.claim("n1:2", t + 20, t + 30_000, 10, Duration::from_millis(500))
                .await
                .unwrap()
                .is_empty()
        );
        let x = q.records().get("a", "s", "f", "x").await.unwrap().unwrap();
        assert_eq!(x.status, Status::Succeeded);
        let events: Vec<_> = x.events.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(events, ["Enqueued", "Running", "Succeeded"]);
    }

    #[tokio::test]
    async fn publish_claim_extend_ack_embedded() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::embedded(&dir.path().join("q.db")).await.unwrap();
        publish_claim_extend_ack(&q).await;
    }

    #[tokio::test]
    async fn publish_claim_extend_ack_nats() {
        let Some((q, _)) = cluster(Duration::from_secs(30)).await else {
            return;
        };
        publish_claim_extend_ack(&q).await;
    }

    /// A retry comes back after its delay, not before; its attempt counted.
    async fn retry_after_delay(q: &Queue) {
        let t = now();
        q.enqueue(new("r", t)).await.unwrap();
        let c = q
            .claim("n1:1", t, t + 30_000, 1, Duration::from_secs(2))
            .await
            .unwrap()
            .pop()
            .unwrap();
        let retry = Outcome::Retry {
            at_ms: t + 1500,
            error: "E".into(),
            platform: false,
        };
        assert!(q.finish(&c, retry, t).await.unwrap());
        assert_eq!(status(q, "r").await, Status::Retrying);
        let early = q
            .claim("n1:2", now(), now() + 30_000, 1, Duration::from_millis(300))
            .await
            .unwrap();
        assert!(early.is_empty(), "delivered before its delay");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let again = q
            .claim("n1:3", now(), now() + 30_000, 1, Duration::from_secs(3))
            .await
            .unwrap()
            .pop()
            .expect("redelivered after its delay");
        assert_eq!(
            (again.inv.invocation_id.as_str(), again.inv.attempts),
            ("r", 2)
        );
        assert!(q.finish(&again, ok(1), now()).await.unwrap());
    }

    #[tokio::test]
    async fn retry_after_delay_embedded() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::embedded(&dir.path().join("q.db")).await.unwrap();
        retry_after_delay(&q).await;
    }

    #[tokio::test]
    async fn nak_with_delay_redelivers_nats() {
        let Some((q, _)) = cluster(Duration::from_secs(30)).await else {
            return;
        };
        retry_after_delay(&q).await;
    }

    /// A run whose lease lapses (its node died) is started again by another node; the first
    /// one's late result does not count, and the record ends once.
    async fn lapsed_lease_is_redelivered(one: &Queue, two: &Queue, lease_ms: u64) {
        let t = now();
        one.enqueue(new("l", t)).await.unwrap();
        let first = one
            .claim("n1:1", t, t + lease_ms, 1, Duration::from_secs(2))
            .await
            .unwrap()
            .pop()
            .unwrap();
        // While the lease holds, nobody else gets it.
        assert!(
            two.claim(
                "n2:1",
                now(),
                now() + lease_ms,
                1,
                Duration::from_millis(200)
            )
            .await
            .unwrap()
            .is_empty()
        );
        tokio::time::sleep(Duration::from_millis(lease_ms + 200)).await;
        let second = two
            .claim(
                "n2:2",
                now(),
                now() + 30_000,
                1,
                Duration::from_millis(lease_ms * 2),
            )
            .await
            .unwrap()
            .pop()
            .expect("redelivered after the lease lapsed");
        assert_eq!(second.inv.attempts, 2);
        assert_eq!(one.extend(&first, now() + lease_ms).await.unwrap(), None);
        assert!(!one.finish(&first, ok(1), now()).await.unwrap());
        assert!(two.finish(&second, ok(2), now()).await.unwrap());
        let rec = two
            .records()
            .get("a", "s", "f", "l")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rec.status, Status::Succeeded);
        assert_eq!(
            rec.events
                .iter()
                .filter(|e| e.status == "Succeeded")
                .count(),
            1
        );
        assert_eq!(rec.duration_ms, Some(2));
    }

    #[tokio::test]
    async fn lapsed_lease_is_redelivered_embedded() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::embedded(&dir.path().join("q.db")).await.unwrap();
        lapsed_lease_is_redelivered(&q, &q, 1000).await;
    }

    #[tokio::test]
    async fn lapsed_lease_is_redelivered_to_another_consumer_nats() {
        let Some((one, two)) = cluster(Duration::from_secs(2)).await else {
            return;
        };
        lapsed_lease_is_redelivered(&one, &two, 2000).await;
    }

    /// Two handles on one PostgreSQL-only queue (two nodes).
    async fn pg_only() -> Option<(Queue, Queue)> {
        let pg = testenv::postgres().await?;
        Some((
            Queue::postgres(&pg).await.unwrap(),
            Queue::postgres(&pg).await.unwrap(),
        ))
    }

    #[tokio::test]
    async fn publish_claim_extend_ack_postgres() {
        let Some((q, _)) = pg_only().await else {
            return;
        };
        publish_claim_extend_ack(&q).await;
    }

    #[tokio::test]
    async fn retry_after_delay_postgres() {
        let Some((q, _)) = pg_only().await else {
            return;
        };
        retry_after_delay(&q).await;
    }

    #[tokio::test]
    async fn lapsed_lease_is_redelivered_to_another_node_postgres() {
        let Some((one, two)) = pg_only().await else {
            return;
        };
        lapsed_lease_is_redelivered(&one, &two, 1000).await;
    }

    #[tokio::test]
    async fn stop_across_two_nodes_postgres() {
        let Some((one, two)) = pg_only().await else {
            return;
        };
        stop_reaches_the_running_node(&one, &two).await;
    }

    /// A stop requested through one node reaches the run on another at its next extension.
    async fn stop_reaches_the_running_node(one: &Queue, two: &Queue) {
        let t = now();
        one.enqueue(new("s1", t)).await.unwrap();
        let c = one
            .claim("n1:1", t, t + 30_000, 1, Duration::from_secs(2))
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert_eq!(
            two.records()
                .request_stop("a", "s", "f", "s1", now())
                .await
                .unwrap(),
            StopResult::Stopping
        );
        assert_eq!(
            one.extend(&c, now() + 30_000).await.unwrap(),
            Some(Status::Stopping)
        );
        // A result that raced the stop does not apply; the stop does, once.
        assert!(!one.finish(&c, ok(1), now()).await.unwrap());
        assert!(one.finish(&c, Outcome::Stopped, now()).await.unwrap());
        assert!(!one.finish(&c, Outcome::Stopped, now()).await.unwrap());
        assert_eq!(status(two, "s1").await, Status::Stopped);
        // Stopped before it ran: never delivered to anyone.
        two.enqueue(new("s2", t)).await.unwrap();
        assert_eq!(
            one.records()
                .request_stop("a", "s", "f", "s2", now())
                .await
                .unwrap(),
            StopResult::StoppedBeforeRunning
        );
        assert!(
            one.claim("n1:2", now(), now() + 30_000, 5, Duration::from_millis(500))
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn stop_reaches_the_running_node_embedded() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::embedded(&dir.path().join("q.db")).await.unwrap();
        stop_reaches_the_running_node(&q, &q).await;
    }

    #[tokio::test]
    async fn stop_across_two_nodes_nats() {
        let Some((one, two)) = cluster(Duration::from_secs(30)).await else {
            return;
        };
        stop_reaches_the_running_node(&one, &two).await;
    }

    #[tokio::test]
    async fn a_draining_node_hands_back_its_run_nats() {
        let Some((one, two)) = cluster(Duration::from_secs(30)).await else {
            return;
        };
        let t = now();
        one.enqueue(new("h", t)).await.unwrap();
        let c = one
            .claim("n1:1", t, t + 30_000, 1, Duration::from_secs(2))
            .await
            .unwrap()
            .pop()
            .unwrap();
        assert!(one.release(&c, now()).await.unwrap());
        let again = two
            .claim("n2:1", now(), now() + 30_000, 1, Duration::from_secs(2))
            .await
            .unwrap()
            .pop()
            .expect("handed back at once");
        assert_eq!(again.inv.invocation_id, "h");
        assert!(two.finish(&again, ok(1), now()).await.unwrap());
    }

    #[tokio::test]
    async fn publishes_are_deduplicated_and_the_sweeper_republishes_nats() {
        let Some((q, _)) = cluster(Duration::from_secs(30)).await else {
            return;
        };
        let t = now();
        // A node that died between the record and the publish.
        q.records().insert(new("lost", t)).await.unwrap();
        assert!(
            q.claim("n1:1", t, t + 30_000, 5, Duration::from_millis(300))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(q.sweep(t + 1000, Duration::ZERO).await.unwrap(), 1);
        // Published twice: the broker keeps one.
        q.work().publish(&new("lost", t).key()).await.unwrap();
        let got = q
            .claim("n1:2", now(), now() + 30_000, 5, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert!(q.finish(&got[0], ok(1), now()).await.unwrap());
        assert!(
            q.claim("n1:3", now(), now() + 30_000, 5, Duration::from_millis(300))
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(q.sweep(now() + 100_000, Duration::ZERO).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn expiry_and_configs_nats() {
        let Some((q, _)) = cluster(Duration::from_secs(30)).await else {
            return;
        };
        let t = now();
        let mut old = new("old", t - 5000);
        old.max_age_secs = 1;
        q.records().insert(old).await.unwrap();
        let expired = q.records().expire_due(t).await.unwrap();
        assert_eq!(expired.len(), 1);
        let rec = q
            .records()
            .get("a", "s", "f", "old")
            .await
            .unwrap()
            .unwrap();
        let events: Vec<_> = rec.events.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(
            (rec.status, events),
            (Status::Expired, vec!["Enqueued", "Expired"])
        );
        assert_eq!(q.records().purge(t + 1).await.unwrap(), 1);
        let cfg = crate::AsyncConfig {
            service: "s".into(),
            function: "f".into(),
            qualifier: "LATEST".into(),
            max_async_event_age_in_seconds: 60,
            max_async_retry_attempts: 1,
            stateful_invocation: true,
            destination_config: None,
            created_time: "t".into(),
            last_modified_time: "t".into(),
        };
        q.configs().put_config("a", &cfg).await.unwrap();
        assert_eq!(
            q.configs()
                .get_config("a", "s", "f", "LATEST")
                .await
                .unwrap(),
            Some(cfg.clone())
        );
        assert_eq!(
            q.configs().list_stateful_configs("a").await.unwrap().len(),
            1
        );
        assert_eq!(
            q.configs()
                .delete_configs("a", "s", None, None)
                .await
                .unwrap(),
            1
        );
    }
}

#[cfg(test)]
mod start_tests {
    //! `InvocationRecords::start`, the compare-and-set a broker's delivery goes through, on
    //! both record stores.

    use crate::{InvocationRecords, NewInvocation, Outcome, Start, Status, StopResult, testenv};

    fn new(id: &str) -> NewInvocation {
        NewInvocation {
            account_id: "a".into(),
            service: "s".into(),
            function: "f".into(),
            qualifier: "LATEST".into(),
            invocation_id: id.into(),
            request_id: format!("r-{id}"),
            stateful: true,
            payload: Vec::new(),
            max_retries: 2,
            max_age_secs: 600,
            on_success: None,
            on_failure: None,
            now_ms: 1000,
            http_request: None,
        }
    }

    fn started(s: Start) -> crate::Invocation {
        match s {
            Start::Started(inv) => *inv,
            other => panic!("not started: {other:?}"),
        }
    }

    async fn starts(r: &dyn InvocationRecords) {
        r.insert(new("k")).await.unwrap();
        let key = new("k").key();
        let first = started(r.start(&key, "o1", 1000, 2000).await.unwrap());
        assert_eq!((first.status, first.attempts), (Status::Running, 1));
        assert!(matches!(
            r.start(&key, "o2", 1500, 3000).await.unwrap(),
            Start::Held(2000)
        ));
        // Lapsed: another owner starts it; the first can no longer finish it.
        let second = started(r.start(&key, "o2", 2001, 5000).await.unwrap());
        assert_eq!(second.attempts, 2);
        let retry = Outcome::Retry {
            at_ms: 9000,
            error: "E".into(),
            platform: false,
        };
        assert!(!r.finish(&first, "o1", retry.clone(), 2002).await.unwrap());
        assert!(r.finish(&second, "o2", retry, 2002).await.unwrap());
        assert!(matches!(
            r.start(&key, "o3", 3000, 9000).await.unwrap(),
            Start::NotDue(9000)
        ));
        let third = started(r.start(&key, "o3", 9000, 12_000).await.unwrap());
        assert_eq!(
            r.request_stop("a", "s", "f", "k", 9001).await.unwrap(),
            StopResult::Stopping
        );
        // Its node died while stopping: the next delivery completes the stop.
        assert!(matches!(
            r.start(&key, "o4", 12_001, 20_000).await.unwrap(),
            Start::Ended
        ));
        let rec = r.get("a", "s", "f", "k").await.unwrap().unwrap();
        assert_eq!(rec.status, Status::Stopped);
        assert!(
            !r.finish(&third, "o3", Outcome::Stopped, 12_002)
                .await
                .unwrap()
        );
        assert!(matches!(
            r.start(&new("gone").key(), "o5", 1, 2).await.unwrap(),
            Start::Ended
        ));
    }

    #[tokio::test]
    async fn start_is_a_compare_and_set_sqlite() {
        let dir = tempfile::tempdir().unwrap();
        let q = crate::SqliteQueue::open(&dir.path().join("q.db"))
            .await
            .unwrap();
        starts(&q).await;
    }

    #[tokio::test]
    async fn start_is_a_compare_and_set_postgres() {
        let Some(pg) = testenv::postgres().await else {
            return;
        };
        let r = crate::PgRecords::connect(&pg).await.unwrap();
        starts(&r).await;
    }
}
