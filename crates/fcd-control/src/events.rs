//! The control plane's side of the cluster's event bus: what a write here tells the other
//! nodes, and what this node does with what they tell it.
//!
//! Events are scoped as the local invalidations are, only coarser where finer scopes would not
//! pay: a write to anything of a service (the service, a function, a config, an alias, a version,
//! a trigger) is `Invalidate { account, service }`, and the receiver drops every cache entry of
//! that service (specs, aliases, HTTP-trigger answers) and reloads the timers; a custom domain
//! write is `Invalidate { account, service: None }`, which drops the account's entries and the
//! domain map. An update or delete that stops instances here (LATEST of a function, a deleted
//! version) also sends `Retire`, so the other nodes stop theirs. `Resync` (the listener
//! reconnected, or this node fell behind the bus) drops everything. RAM needs no event: each
//! non-root request reads the store's IAM generation, which every RAM write on any node bumps
//! in the shared database.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use fcd_cluster::ClusterEvent;
use tokio::sync::broadcast::error::RecvError;

use super::Control;

/// How long a write waits for the other nodes to acknowledge its invalidation.
const ACK_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

impl Control {
    /// Tells the other nodes; a failure (the database unreachable) is logged, not returned:
    /// the write it follows has happened, and the other nodes resynchronise when their
    /// listeners reconnect.
    pub(crate) async fn publish(&self, event: ClusterEvent) {
        if self.cluster.is_single() {
            return;
        }
        // Answered only once every other live node dropped what the change makes stale (or
        // after a second: a node that does not answer is dead or cut off, and drops all its
        // caches when its listener is back), so the next request sees the write on any node.
        match self
            .cluster
            .publish_acknowledged(event.clone(), ACK_WAIT)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                ?event,
                "not every node acknowledged a change within {ACK_WAIT:?}; a late one serves the old state until it applies it"
            ),
            Err(e) => {
                tracing::error!(error = %e, ?event, "cannot tell the other nodes of a change; their caches may serve the old state until they resynchronise")
            }
        }
    }

    /// `Invalidate { account, service }`.
    pub(crate) async fn publish_invalidation(&self, account: &str, service: Option<&str>) {
        self.publish(ClusterEvent::Invalidate {
            account: account.to_owned(),
            service: service.map(str::to_owned),
        })
        .await;
    }

    /// Drops what another node's event makes stale — synchronously, so that it can run in the
    /// cluster's listener before the event is acknowledged (see `publish`).
    pub fn drop_stale(&self, event: &ClusterEvent) {
        match event {
            ClusterEvent::Invalidate {
                account,
                service: Some(service),
            } => {
                self.forget_service(account, service);
                self.triggers_changed();
            }
            ClusterEvent::Invalidate {
                account,
                service: None,
            } => self.forget_account(Some(account)),
            ClusterEvent::Resync => self.forget_account(None),
            ClusterEvent::Retire { .. }
            | ClusterEvent::StopInvocation { .. }
            | ClusterEvent::Applied { .. } => {}
        }
    }

    /// Applies one event from another node: what it makes stale is dropped, then the work it
    /// asks for is done.
    pub async fn apply_cluster_event(&self, event: ClusterEvent) {
        self.drop_stale(&event);
        self.follow_up(event).await;
    }

    /// The work another node's event asks for beyond dropping caches (which the cluster's
    /// listener already did, in `drop_stale`, before acknowledging it).
    async fn follow_up(&self, event: ClusterEvent) {
        match event {
            // A provision config may have changed: reconcile now, not at the next pass. A
            // function may name a new image: pull it here too, ahead of a first call.
            ClusterEvent::Invalidate { account, service } => {
                self.provisioning.kick();
                if let Some(service) = service {
                    self.prefetch_images(&account, &service).await;
                }
            }
            ClusterEvent::Retire {
                account,
                service,
                function,
                version,
            } => {
                self.runtime
                    .retire(&account, &service, function.as_deref(), version.as_deref())
                    .await;
            }
            // The async engine subscribes to these itself; acknowledgements never arrive here.
            ClusterEvent::StopInvocation { .. } | ClusterEvent::Applied { .. } => {}
            ClusterEvent::Resync => self.provisioning.kick(),
        }
    }

    /// Applies other nodes' events as they arrive, until the cluster goes away. Spawned once by
    /// `fcd serve` in cluster mode (a single node receives none).
    pub async fn apply_cluster_events_forever(self: Arc<Control>) {
        let me = Arc::downgrade(&self);
        self.cluster.add_hook(Arc::new(move |event| {
            if let Some(c) = me.upgrade() {
                c.drop_stale(event);
            }
        }));
        let mut rx = self.cluster.subscribe();
        loop {
            match rx.recv().await {
                // A resync comes from the listener itself (its connection was lost, or an
                // event was unreadable), never through the hooks: dropped here.
                Ok(ClusterEvent::Resync) => self.apply_cluster_event(ClusterEvent::Resync).await,
                Ok(event) => self.follow_up(event).await,
                Err(RecvError::Lagged(n)) => {
                    tracing::warn!(
                        missed = n,
                        "cluster events came faster than they were applied; dropping every cache"
                    );
                    self.apply_cluster_event(ClusterEvent::Resync).await;
                }
                Err(RecvError::Closed) => return,
            }
        }
    }

    /// Drops every cached spec, alias and HTTP-trigger answer of `account` (`None`: of every
    /// account), the custom domains, and reloads the timers.
    fn forget_account(&self, account: Option<&str>) {
        let of = |a: &String| account.is_none_or(|x| x == a);
        self.forget_specs(|(a, ..)| of(a));
        self.reserved.forget(account, None, None);
        if let Ok(mut c) = self.aliases.write() {
            self.alias_gen.fetch_add(1, Ordering::AcqRel);
            c.retain(|(a, _, _), _| !of(a));
        }
        self.forget_http_triggers_of(account);
        self.forget_domains();
        self.triggers_changed();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::time::{Duration, Instant};

    use fcd_cluster::{Cluster, NodeInfo};
    use fcd_core::FcError;
    use fcd_core::domains::{CustomDomainInput, PathConfig, RouteConfig};
    use fcd_core::model::{CodeRef, Function, FunctionUpdate, ServiceUpdate};
    use fcd_core::triggers::TriggerInput;
    use fcd_store::{MetadataStore, SqliteStore, StoredFunction};
    use serde_json::json;

    use super::*;
    use crate::timers::TimerSource;

    const ACC: &str = "1234";

    /// A control plane on `store` (shared by the "nodes", as the PostgreSQL store would be)
    /// joined to the cluster at `url` as `id`, applying the others' events.
    async fn node(
        dir: &std::path::Path,
        store: Arc<dyn MetadataStore>,
        url: &str,
        id: &str,
    ) -> Arc<Control> {
        let cluster = Cluster::postgres(url, NodeInfo::new(id, format!("http://{id}")))
            .await
            .unwrap();
        let control =
            Arc::new(crate::testkit::control(dir, store, id).with_cluster(Arc::new(cluster)));
        tokio::spawn(control.clone().apply_cluster_events_forever());
        control
    }

    /// Polls until `check` of the answer holds, at most `within`.
    async fn within<T, F>(
        what: &str,
        within: Duration,
        mut probe: impl FnMut() -> F,
        check: impl Fn(&T) -> bool,
    ) where
        F: std::future::Future<Output = T>,
        T: std::fmt::Debug,
    {
        let start = Instant::now();
        loop {
            let got = probe().await;
            if check(&got) {
                return;
            }
            assert!(
                start.elapsed() < within,
                "{what}: still {got:?} after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn http_trigger_input() -> TriggerInput {
        TriggerInput {
            trigger_name: Some("web".into()),
            trigger_type: Some("http".into()),
            trigger_config: Some(json!(r#"{"authType":"anonymous","methods":["GET"]}"#)),
            ..TriggerInput::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_on_one_node_reaches_the_caches_of_another_within_a_second() {
        let Some(url) = fcd_cluster::testing::postgres_database("control_cluster_events").await
        else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let a = node(dir.path(), store.clone(), &url, "a").await;
        let b = node(dir.path(), store.clone(), &url, "b").await;
        let second = Duration::from_secs(1);

        // b caches "no such service"; a creates it: b's answer follows.
        assert!(matches!(
            b.http_trigger(ACC, "s", None, "fn").await,
            Err(FcError::ServiceNotFound(_))
        ));
        a.create_service(
            ACC,
            ServiceUpdate {
                service_name: Some("s".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        within(
            "b sees the service",
            second,
            || b.http_trigger(ACC, "s", None, "fn"),
            |r| matches!(r, Err(FcError::FunctionNotFound { .. })),
        )
        .await;

        // A function stored behind everyone's back (no event: b keeps its cached answer), then
        // an HTTP trigger created on a: b serves the trigger.
        let function = StoredFunction {
            function: Function::create(
                "fid".into(),
                "fn".into(),
                FunctionUpdate {
                    runtime: Some("custom".into()),
                    ..Default::default()
                },
                CodeRef {
                    checksum: "1".into(),
                    size: 1,
                },
                "t".into(),
            )
            .unwrap(),
            code_digest: "d".into(),
            etag: "fe".into(),
        };
        store.insert_function(ACC, "s", &function).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(matches!(
            b.http_trigger(ACC, "s", None, "fn").await,
            Err(FcError::FunctionNotFound { .. })
        ));
        let generation = b.triggers_generation();
        a.create_trigger(ACC, "s", "fn", http_trigger_input())
            .await
            .unwrap();
        within(
            "b serves the trigger",
            second,
            || b.http_trigger(ACC, "s", None, "fn"),
            |r| r.as_ref().is_ok_and(|t| t.trigger.trigger_name == "web"),
        )
        .await;
        // b's timer scheduler re-reads the triggers.
        assert!(b.triggers_generation() > generation);

        // Custom domains: b holds the map in memory; a's write reaches it.
        assert!(b.custom_domain("a.example.test").await.is_none());
        a.create_custom_domain(
            ACC,
            CustomDomainInput {
                domain_name: Some("a.example.test".into()),
                protocol: Some("HTTP".into()),
                route_config: Some(RouteConfig {
                    routes: vec![PathConfig {
                        path: "/*".into(),
                        service_name: "s".into(),
                        function_name: "fn".into(),
                        qualifier: String::new(),
                        methods: Vec::new(),
                        rewrite_config: None,
                    }],
                }),
                ..CustomDomainInput::default()
            },
        )
        .await
        .unwrap();
        within(
            "b sees the domain",
            second,
            || b.custom_domain("a.example.test"),
            |d| d.is_some(),
        )
        .await;

        // The domain write dropped b's answers of the account; b caches the trigger again.
        assert!(b.http_trigger(ACC, "s", None, "fn").await.is_ok());
        // The trigger deleted behind everyone's back, then b's listener cut: b resynchronises
        // (drops everything) and reads the truth.
        store
            .delete_trigger(ACC, "s", "fn", "web", None)
            .await
            .unwrap();
        assert!(
            b.http_trigger(ACC, "s", None, "fn").await.is_ok(),
            "still cached"
        );
        assert_eq!(
            fcd_cluster::testing::cut_listener(&url, b.cluster()).await,
            1
        );
        within(
            "b resynchronises",
            Duration::from_secs(5),
            || b.http_trigger(ACC, "s", None, "fn"),
            |r| matches!(r, Err(FcError::TriggerNotFound { .. })),
        )
        .await;

        // One timer scheduler: a joined first and holds the lease.
        assert!(TimerSource::active(&*a));
        assert!(!TimerSource::active(&*b));
        a.cluster().leave().await.unwrap();
        b.cluster().leave().await.unwrap();
    }

    #[tokio::test]
    async fn a_single_node_needs_no_lease_and_publishes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let c = crate::testkit::control(dir.path(), store, "single");
        assert!(c.cluster().is_single());
        assert!(
            c.status().get("cluster").is_none(),
            "a single server's status is as before"
        );
        assert!(TimerSource::active(&c));
        let mut rx = c.cluster().subscribe();
        c.create_service(
            ACC,
            ServiceUpdate {
                service_name: Some("s".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert!(rx.try_recv().is_err());
        // A Resync applied by hand drops the caches without harm.
        c.apply_cluster_event(ClusterEvent::Resync).await;
        assert!(c.get_service(ACC, "s").await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn provisioning_keeps_this_nodes_share_and_current_sums_every_node() {
        let Some(url) = fcd_cluster::testing::postgres_database("control_provision_shares").await
        else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn MetadataStore> = Arc::new(
            SqliteStore::open(&dir.path().join("meta.db"))
                .await
                .unwrap(),
        );
        let a = node(dir.path(), store.clone(), &url, "a").await;
        let b = node(dir.path(), store.clone(), &url, "b").await;
        within(
            "a sees b",
            Duration::from_secs(3),
            || async { a.cluster().nodes().iter().any(|n| n.id == "b" && n.live) },
            |seen| *seen,
        )
        .await;
        a.create_service(
            ACC,
            ServiceUpdate {
                service_name: Some("s".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        a.create_function(
            ACC,
            "s",
            FunctionUpdate {
                function_name: Some("f".into()),
                runtime: Some("custom".into()),
                // An empty zip: its instances never start here, which is fine for shares.
                code: Some(fcd_core::model::CodeInput {
                    zip_file: Some("UEsFBgAAAAAAAAAAAAAAAAAAAAAAAA==".into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
        a.publish_version(ACC, "s", "", None).await.unwrap();
        let target = 5;
        a.put_provision_config(
            ACC,
            "s",
            "f",
            Some("1"),
            fcd_core::configs::ProvisionConfigUpdate {
                target: Some(target),
                ..Default::default()
            },
        )
        .await
        .unwrap();

        let key = fcd_cluster::route_key(ACC, "s", "f", "1");
        let pool = (
            ACC.to_owned(),
            "s".to_owned(),
            "f".to_owned(),
            "1".to_owned(),
        );
        let (share_a, share_b) = (a.cluster().share(&key, 5), b.cluster().share(&key, 5));
        assert_eq!(share_a + share_b, 5);
        assert_eq!(
            share_a,
            fcd_cluster::rendezvous::share(&key, 5, &["a", "b"], "a")
        );
        // a's reconciler asks its instance manager for its share only (the spec's limit too).
        a.clone().reconcile_once().await;
        assert_eq!(a.provisioning.target(&pool), share_a);

        // b reports instances up (as its reconciler would once they started): a's `current`
        // counts them, though none runs on a.
        b.cluster().update_local_state(|s| {
            s.provisioned.insert(key.clone(), share_b);
        });
        within(
            "a's current includes b's instances",
            Duration::from_secs(3),
            || a.get_provision_config(ACC, "s", "f", Some("1")),
            |r| r.as_ref().is_ok_and(|(_, st)| st.current == share_b),
        )
        .await;
        // b leaves: its instances stop counting, and a's share becomes the whole target.
        b.cluster().leave().await.unwrap();
        within(
            "b's instances stop counting",
            Duration::from_secs(3),
            || a.get_provision_config(ACC, "s", "f", Some("1")),
            |r| r.as_ref().is_ok_and(|(_, st)| st.current == 0),
        )
        .await;
        assert_eq!(a.cluster().share(&key, 5), 5);
        let status = a.status();
        let nodes = status["cluster"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 1, "{status}");
        assert_eq!(nodes[0]["id"], "a");
        assert_eq!(nodes[0]["self"], true);
        a.clone().reconcile_once().await;
        assert_eq!(a.provisioning.target(&pool), 5);
        a.cluster().leave().await.unwrap();
    }
}
