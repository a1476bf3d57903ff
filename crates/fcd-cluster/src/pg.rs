//! The PostgreSQL engine behind [`Cluster::postgres`](crate::Cluster::postgres): the tables
//! (migrations 2000+ in sqlx's shared `_sqlx_migrations`, with `ignore_missing` because the
//! store's and the queue's migrators use the same database), the heartbeat task (leases, this
//! node's row, everyone's rows) and the `LISTEN fcd_events` task.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions};
use sqlx::{Row, SqlSafeStr};
use tokio::task::JoinHandle;

use crate::{
    ClusterError, ClusterEvent, HEARTBEAT, LEASE_MARGIN, LEASE_TTL, LIVE_FOR, MAX_EVENT_BYTES,
    NodeState, NodeView, Shared,
};

/// The `NOTIFY` channel.
pub(crate) const CHANNEL: &str = "fcd_events";
/// Rows of nodes silent this long are deleted (by whichever node notices).
const FORGET_AFTER_SECS: f64 = 3600.0;
/// A heartbeat that takes longer than this is abandoned (and retried at the next tick).
const BEAT_TIMEOUT: Duration = Duration::from_secs(3);

const MIGRATION_2000: &str = r#"
CREATE TABLE IF NOT EXISTS cluster_nodes (
    id          TEXT PRIMARY KEY,
    url         TEXT NOT NULL,
    incarnation TEXT NOT NULL,
    started     TIMESTAMPTZ NOT NULL DEFAULT now(),
    heartbeat   TIMESTAMPTZ NOT NULL DEFAULT now(),
    draining    BOOLEAN NOT NULL DEFAULT FALSE,
    state       JSONB NOT NULL DEFAULT '{}'::jsonb
);
CREATE TABLE IF NOT EXISTS cluster_leases (
    name    TEXT PRIMARY KEY,
    holder  TEXT NOT NULL,
    expires TIMESTAMPTZ NOT NULL
);
"#;

fn migrator() -> Migrator {
    let mut m = Migrator::with_migrations(vec![Migration::new(
        2000,
        "cluster nodes and leases".into(),
        MigrationType::Simple,
        MIGRATION_2000.into_sql_str(),
        false,
    )]);
    m.set_ignore_missing(true);
    m
}

/// Takes or renews each named lease that is free, expired or already ours; returns the names
/// now ours. The row lock of `ON CONFLICT DO UPDATE` makes concurrent takers queue, and the
/// `WHERE` is evaluated on the row as the winner left it, so one of them wins.
const ACQUIRE: &str = "
INSERT INTO cluster_leases (name, holder, expires)
SELECT n, $2, now() + make_interval(secs => $3) FROM unnest($1::text[]) AS n
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires = EXCLUDED.expires
WHERE cluster_leases.expires < now() OR cluster_leases.holder = EXCLUDED.holder
RETURNING name";

const UPSERT_NODE: &str = "
INSERT INTO cluster_nodes (id, url, incarnation, started, heartbeat, draining, state)
VALUES ($1, $2, $3, now(), now(), $4, $5::jsonb)
ON CONFLICT (id) DO UPDATE SET
    url = EXCLUDED.url,
    started = CASE WHEN cluster_nodes.incarnation = EXCLUDED.incarnation
                   THEN cluster_nodes.started ELSE now() END,
    incarnation = EXCLUDED.incarnation,
    heartbeat = now(),
    draining = EXCLUDED.draining,
    state = EXCLUDED.state";

const READ_NODES: &str = "
SELECT id, url, draining, state::text AS state,
       (extract(epoch FROM started) * 1000)::int8 AS started_ms,
       (extract(epoch FROM now() - heartbeat) * 1000)::int8 AS age_ms
FROM cluster_nodes ORDER BY id";

/// An event on the wire: who sent it (to skip one's own) and what.
#[derive(Serialize, Deserialize)]
struct Envelope {
    from: String,
    event: ClusterEvent,
    /// Set when the sender waits for acknowledgements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

#[derive(Debug)]
pub(crate) struct Engine {
    pool: PgPool,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Ok(t) = self.tasks.lock() {
            for h in t.iter() {
                h.abort();
            }
        }
    }
}

impl Engine {
    pub(crate) async fn start(url: &str, shared: Arc<Shared>) -> Result<Engine, ClusterError> {
        let opts = PgConnectOptions::from_str(url)?;
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(BEAT_TIMEOUT)
            .connect_with(
                opts.clone()
                    .application_name(&format!("fcd-cluster {}", shared.holder)),
            )
            .await?;
        migrator().run(&pool).await?;
        // Listen before the first heartbeat, so nothing published once `postgres` returned is
        // missed.
        let listener_opts = opts.application_name(&listener_name(&shared.holder));
        let listener = listen(&listener_opts).await?;
        beat(&pool, &shared).await?;
        let heartbeat = tokio::spawn(heartbeat_forever(pool.clone(), shared.clone()));
        let listening = tokio::spawn(listen_forever(
            listener,
            listener_opts,
            shared,
            pool.clone(),
        ));
        Ok(Engine {
            pool,
            tasks: std::sync::Mutex::new(vec![heartbeat, listening]),
        })
    }

    pub(crate) async fn publish(
        &self,
        shared: &Shared,
        event: &ClusterEvent,
    ) -> Result<(), ClusterError> {
        self.publish_seq(shared, event, None).await
    }

    pub(crate) async fn publish_seq(
        &self,
        shared: &Shared,
        event: &ClusterEvent,
        seq: Option<u64>,
    ) -> Result<(), ClusterError> {
        notify(&self.pool, &shared.holder, event, seq).await
    }

    pub(crate) async fn drain(&self, shared: &Shared) -> Result<(), ClusterError> {
        release(&self.pool, shared).await?;
        // Tell the others now rather than at the next tick.
        beat(&self.pool, shared).await
    }

    pub(crate) async fn leave(&self, shared: &Shared) -> Result<(), ClusterError> {
        let tasks: Vec<JoinHandle<()>> = self
            .tasks
            .lock()
            .map(|mut t| t.drain(..).collect())
            .unwrap_or_default();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
        release(&self.pool, shared).await?;
        sqlx::query("DELETE FROM cluster_nodes WHERE id = $1 AND incarnation = $2")
            .bind(&shared.node.id)
            .bind(incarnation_of(&shared.holder))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

pub(crate) fn listener_name(holder: &str) -> String {
    format!("fcd-cluster-listener {holder}")
}

fn incarnation_of(holder: &str) -> &str {
    holder.rsplit_once('#').map_or(holder, |(_, i)| i)
}

/// Drops every lease of this process, in the database and in memory.
async fn release(pool: &PgPool, shared: &Shared) -> Result<(), ClusterError> {
    if let Ok(mut l) = shared.leases.lock() {
        l.values_mut().for_each(|v| *v = None);
    }
    sqlx::query("DELETE FROM cluster_leases WHERE holder = $1")
        .bind(&shared.holder)
        .execute(pool)
        .await?;
    Ok(())
}

async fn heartbeat_forever(pool: PgPool, shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(HEARTBEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    let mut beats: u64 = 0;
    loop {
        tick.tick().await;
        if shared.left.load(Ordering::Acquire) {
            return;
        }
        match tokio::time::timeout(BEAT_TIMEOUT, beat(&pool, &shared)).await {
            Ok(Ok(())) => {
                if failing {
                    tracing::info!("cluster heartbeat: the database answers again");
                }
                failing = false;
            }
            Ok(Err(e)) => {
                if !failing {
                    tracing::error!(error = %e, "cluster heartbeat failed; leases lapse and other nodes are not seen until it works again");
                }
                failing = true;
            }
            Err(_) => {
                if !failing {
                    tracing::error!(
                        "cluster heartbeat timed out; leases lapse and other nodes are not seen until it works again"
                    );
                }
                failing = true;
            }
        }
        beats += 1;
        if beats.is_multiple_of(60) {
            let _ = sqlx::query(
                "DELETE FROM cluster_nodes WHERE heartbeat < now() - make_interval(secs => $1)",
            )
            .bind(FORGET_AFTER_SECS)
            .execute(&pool)
            .await;
        }
    }
}

/// One heartbeat: leases, then this node's row, then everyone's rows.
async fn beat(pool: &PgPool, shared: &Shared) -> Result<(), ClusterError> {
    let draining = shared.draining.load(Ordering::Acquire);
    if !draining {
        let jobs: Vec<String> = shared
            .leases
            .lock()
            .map(|l| l.keys().cloned().collect())
            .unwrap_or_default();
        // Taken before the statement is sent: the belief ends before the row can expire.
        let sent = Instant::now();
        let rows = sqlx::query(ACQUIRE)
            .bind(&jobs)
            .bind(&shared.holder)
            .bind(LEASE_TTL.as_secs_f64())
            .fetch_all(pool)
            .await?;
        let held: HashSet<String> = rows
            .iter()
            .filter_map(|r| r.try_get::<String, _>("name").ok())
            .collect();
        let until = sent + LEASE_TTL - LEASE_MARGIN;
        if let Ok(mut l) = shared.leases.lock() {
            for (job, belief) in l.iter_mut() {
                let now_held = held.contains(job);
                let was_held = belief.is_some_and(|u| Instant::now() < u);
                if now_held && !was_held {
                    tracing::info!(job = %job, node = %shared.node.id, "singleton lease taken");
                } else if !now_held && was_held {
                    tracing::warn!(job = %job, node = %shared.node.id, "singleton lease lost to another node");
                }
                *belief = now_held.then_some(until);
            }
        }
    }
    let state = shared
        .state
        .read()
        .map(|s| serde_json::to_string(&*s))
        .unwrap_or_else(|_| Ok("{}".to_owned()))?;
    sqlx::query(UPSERT_NODE)
        .bind(&shared.node.id)
        .bind(&shared.node.url)
        .bind(incarnation_of(&shared.holder))
        .bind(draining)
        .bind(state)
        .execute(pool)
        .await?;
    let rows = sqlx::query(READ_NODES).fetch_all(pool).await?;
    let live_ms = LIVE_FOR.as_millis() as i64;
    let mut nodes = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.try_get("id")?;
        let state: String = r.try_get("state")?;
        let age_ms: i64 = r.try_get("age_ms")?;
        nodes.push(NodeView {
            is_self: id == shared.node.id,
            id,
            url: r.try_get("url")?,
            live: age_ms < live_ms,
            draining: r.try_get("draining")?,
            started_ms: r.try_get("started_ms")?,
            heartbeat_age_ms: age_ms,
            // A node of a newer build may publish fields this one does not know: ignored.
            state: serde_json::from_str::<NodeState>(&state).unwrap_or_default(),
        });
    }
    let before = membership_of(&shared.nodes());
    if let Ok(mut v) = shared.view.write() {
        v.nodes = nodes;
        v.read_at = Some(Instant::now());
    }
    if membership_of(&shared.nodes()) != before {
        shared.membership.send_modify(|g| *g += 1);
    }
    Ok(())
}

/// The ids of the live, non-draining nodes, sorted.
fn membership_of(nodes: &[NodeView]) -> Vec<String> {
    let mut ids: Vec<String> = Shared::candidates(nodes)
        .into_iter()
        .map(str::to_owned)
        .collect();
    ids.sort_unstable();
    ids
}

async fn listen(opts: &PgConnectOptions) -> Result<PgListener, ClusterError> {
    // A pool of one connection that never idles out: the listener's own.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .acquire_timeout(BEAT_TIMEOUT)
        .connect_with(opts.clone())
        .await?;
    let mut l = PgListener::connect_with(&pool).await?;
    l.ignore_pool_close_event(true);
    // Reconnection is ours (below), so we know when to announce a resync.
    l.eager_reconnect(false);
    l.listen(CHANNEL).await?;
    Ok(l)
}

async fn notify(
    pool: &PgPool,
    holder: &str,
    event: &ClusterEvent,
    seq: Option<u64>,
) -> Result<(), ClusterError> {
    let payload = serde_json::to_string(&Envelope {
        from: holder.to_owned(),
        event: event.clone(),
        seq,
    })?;
    if payload.len() > MAX_EVENT_BYTES {
        return Err(ClusterError::EventTooLarge(payload.len()));
    }
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(payload)
        .execute(pool)
        .await?;
    Ok(())
}

async fn listen_forever(
    mut listener: PgListener,
    opts: PgConnectOptions,
    shared: Arc<Shared>,
    pool: PgPool,
) {
    loop {
        loop {
            match listener.try_recv().await {
                Ok(Some(n)) => deliver(&shared, &pool, n.payload()),
                Ok(None) => {
                    tracing::warn!("cluster events: the listener's connection was lost");
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cluster events: the listener failed");
                    break;
                }
            }
        }
        drop(listener);
        let mut delay = Duration::from_millis(100);
        listener = loop {
            if shared.left.load(Ordering::Acquire) {
                return;
            }
            match listen(&opts).await {
                Ok(l) => break l,
                Err(e) => {
                    tracing::debug!(error = %e, "cluster events: reconnecting");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
            }
        };
        tracing::info!("cluster events: listening again; caches resynchronise");
        // Listening again before this is sent, so nothing after it can be missed.
        let _ = shared.events.send(ClusterEvent::Resync);
    }
}

fn deliver(shared: &Shared, pool: &PgPool, payload: &str) {
    match serde_json::from_str::<Envelope>(payload) {
        Ok(e) if e.from == shared.holder => {}
        Ok(Envelope {
            event: ClusterEvent::Applied { node, to, seq },
            ..
        }) => {
            if to == shared.holder {
                if let Ok(mut acks) = shared.acks.lock()
                    && let Some(got) = acks.get_mut(&seq)
                {
                    got.insert(node);
                }
                shared.acked.notify_waiters();
            }
        }
        Ok(e) => {
            let hooks: Vec<crate::Hook> =
                shared.hooks.0.read().map(|h| h.clone()).unwrap_or_default();
            for hook in &hooks {
                hook(&e.event);
            }
            if let Some(seq) = e.seq {
                let ack = ClusterEvent::Applied {
                    node: shared.node.id.clone(),
                    to: e.from.clone(),
                    seq,
                };
                let (pool, holder) = (pool.clone(), shared.holder.clone());
                tokio::spawn(async move {
                    if let Err(err) = notify(&pool, &holder, &ack, None).await {
                        tracing::debug!(error = %err, "cluster events: acknowledgement not sent");
                    }
                });
            }
            let _ = shared.events.send(e.event);
        }
        Err(err) => {
            // An event this build does not know: whatever it invalidates, drop everything.
            tracing::warn!(error = %err, "cluster events: unreadable event; resynchronising");
            let _ = shared.events.send(ClusterEvent::Resync);
        }
    }
}
