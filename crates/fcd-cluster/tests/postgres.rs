//! Two (or three) `Cluster`s in one process on a real PostgreSQL, each test in a database of
//! its own. Gated on `FCD_TEST_POSTGRES` (see `scripts/services`); with
//! `FCD_REQUIRE_SERVICES=1` a missing database fails instead of skipping.

use std::time::{Duration, Instant};

use fcd_cluster::{Cluster, ClusterEvent, JOBS, LEASE_TTL, NodeInfo, NodeState, Route, WarmPool};
use sqlx::Connection;
use sqlx::postgres::PgConnection;

async fn database(test: &str) -> Option<String> {
    fcd_cluster::testing::postgres_database(test).await
}

async fn join(url: &str, id: &str) -> Cluster {
    Cluster::postgres(url, NodeInfo::new(id, format!("http://{id}.test:9000")))
        .await
        .expect("join the cluster")
}

/// Polls `cond` every 50 ms until it holds or `within` passed.
async fn eventually(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn sees(c: &Cluster, id: &str, live: bool) -> bool {
    c.nodes().iter().any(|n| n.id == id && n.live == live)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_see_each_other_and_each_others_state() {
    let Some(url) = database("two_nodes_see_each_other").await else {
        return;
    };
    let a = join(&url, "a").await;
    let b = join(&url, "b").await;
    // b joined after a's first heartbeat: b sees a at once, a within a heartbeat.
    assert!(sees(&b, "a", true));
    eventually("a sees b", Duration::from_secs(3), || sees(&a, "b", true)).await;
    let nodes = a.nodes();
    assert!(nodes[0].is_self && nodes[0].id == "a");
    let nb = nodes.iter().find(|n| n.id == "b").unwrap();
    assert_eq!(nb.url, "http://b.test:9000");
    assert!(!nb.is_self && !nb.draining);

    let mut state = NodeState::default();
    state.warm.insert(
        "acct/svc/f/1".into(),
        WarmPool {
            instances: 1,
            free_slots: 3,
            ..WarmPool::default()
        },
    );
    b.set_local_state(state.clone());
    eventually("a sees b's state", Duration::from_secs(3), || {
        a.nodes().iter().any(|n| n.id == "b" && n.state == state)
    })
    .await;
    // a has no slot of its own: b has a warm instance with room, so a routes there.
    assert_eq!(
        a.route("acct/svc/f/1", false),
        Route::Remote {
            node_id: "b".into(),
            url: "http://b.test:9000".into()
        }
    );
    assert_eq!(a.route("acct/svc/f/1", true), Route::Local);
    // Nobody warm for a key: its home among the two, which may be a itself.
    let home = fcd_cluster::rendezvous::rank("acct/svc/other/1", ["a", "b"])[0];
    assert_eq!(
        a.route("acct/svc/other/1", false) == Route::Local,
        home == "a"
    );

    // Shares: the same answer on both nodes, summing to the target.
    for target in 0..9 {
        assert_eq!(
            a.share("acct/svc/f/1", target) + b.share("acct/svc/f/1", target),
            target
        );
    }

    // Leaving removes the row: the other no longer lists it.
    let mut membership = a.membership();
    b.leave().await.unwrap();
    eventually("a forgets b", Duration::from_secs(3), || {
        !a.nodes().iter().any(|n| n.id == "b")
    })
    .await;
    assert!(membership.has_changed().unwrap());
    membership.borrow_and_update();
    assert_eq!(a.share("acct/svc/f/1", 5), 5);
    a.leave().await.unwrap();
}

/// Samples both nodes until `until` holds, asserting that no job is ever believed held by both.
async fn never_both(a: &Cluster, b: &Cluster, within: Duration, mut until: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        for j in JOBS {
            assert!(!(a.holds(j) && b.holds(j)), "both hold {j}");
        }
        if until() {
            return;
        }
        assert!(start.elapsed() < within, "not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_held_by_one_node_and_taken_over() {
    let Some(url) = database("a_lease_is_held_by_one_node").await else {
        return;
    };
    let a = join(&url, "a").await;
    let b = join(&url, "b").await;
    // a was first: it took every free lease when it joined.
    for j in JOBS {
        assert!(a.holds(j), "{j}");
        assert!(!b.holds(j), "{j}");
    }
    // Across several renewals, still a's alone.
    never_both(&a, &b, Duration::from_secs(5), {
        let start = Instant::now();
        move || start.elapsed() > Duration::from_millis(2500)
    })
    .await;
    assert!(JOBS.iter().all(|j| a.holds(j)));
    let custom = b.lease("custom-job");

    // The holder leaves: its leases are released, b takes them at its next heartbeat.
    a.leave().await.unwrap();
    never_both(&a, &b, Duration::from_secs(3), || {
        JOBS.iter().all(|j| b.holds(j))
    })
    .await;
    eventually(
        "b takes a job it registered",
        Duration::from_secs(3),
        || custom.held(),
    )
    .await;

    // A third node joins; b stops heartbeating (dropped, not left): c takes over only after
    // b's leases expire in the database.
    let c = join(&url, "c").await;
    assert!(JOBS.iter().all(|j| !c.holds(j)));
    let stopped = Instant::now();
    drop(b);
    eventually(
        "c takes the jobs of a node that stopped heartbeating",
        LEASE_TTL + Duration::from_secs(4),
        || JOBS.iter().all(|j| c.holds(j)),
    )
    .await;
    // Not before b's last renewal could have expired (at most a heartbeat before the drop).
    assert!(
        stopped.elapsed() >= LEASE_TTL - Duration::from_millis(1100),
        "{:?}",
        stopped.elapsed()
    );
    eventually("c sees b as dead", Duration::from_secs(8), || {
        sees(&c, "b", false)
    })
    .await;
    c.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_gives_up_leases_shares_and_routes() {
    let Some(url) = database("draining").await else {
        return;
    };
    let a = join(&url, "a").await;
    let b = join(&url, "b").await;
    eventually("a sees b", Duration::from_secs(3), || sees(&a, "b", true)).await;
    let mut warm = NodeState::default();
    warm.warm.insert(
        "k/s/f/1".into(),
        WarmPool {
            instances: 1,
            free_slots: 1,
            ..WarmPool::default()
        },
    );
    a.set_local_state(warm);
    eventually("b routes to a", Duration::from_secs(3), || {
        matches!(b.route("k/s/f/1", false), Route::Remote { .. })
    })
    .await;
    a.drain().await.unwrap();
    assert!(JOBS.iter().all(|j| !a.holds(j)));
    assert_eq!(a.share("k/s/f/1", 4), 0);
    // b sees a draining at its next heartbeat: no more routes or shares for a; b takes the jobs.
    eventually("b sees a draining", Duration::from_secs(3), || {
        b.nodes().iter().any(|n| n.id == "a" && n.draining)
    })
    .await;
    assert_eq!(b.route("k/s/f/1", false), Route::Local);
    assert_eq!(b.share("k/s/f/1", 4), 4);
    eventually("b takes the jobs", Duration::from_secs(3), || {
        JOBS.iter().all(|j| b.holds(j))
    })
    .await;
    a.leave().await.unwrap();
    b.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_cross_and_a_dropped_listener_resyncs() {
    let Some(url) = database("events_cross").await else {
        return;
    };
    let a = join(&url, "a").await;
    let b = join(&url, "b").await;
    let mut at_a = a.subscribe();
    let mut at_b = b.subscribe();
    let ev = ClusterEvent::Invalidate {
        account: "123".into(),
        service: Some("svc".into()),
    };
    a.publish(ev.clone()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(1), at_b.recv()).await;
    assert_eq!(got.expect("within a second").unwrap(), ev);
    // The sender does not hear its own events.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(at_a.try_recv().is_err());

    let stop = ClusterEvent::StopInvocation {
        account: "123".into(),
        service: "svc".into(),
        function: "f".into(),
        invocation_id: "inv-1".into(),
    };
    b.publish(stop.clone()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(1), at_a.recv()).await;
    assert_eq!(got.expect("within a second").unwrap(), stop);

    // Too large for NOTIFY: refused, not truncated.
    let huge = ClusterEvent::Invalidate {
        account: "x".repeat(9000),
        service: None,
    };
    assert!(matches!(
        a.publish(huge).await,
        Err(fcd_cluster::ClusterError::EventTooLarge(_))
    ));

    // Cut b's listener connection: b reconnects and tells its subscribers to resync.
    assert_eq!(fcd_cluster::testing::cut_listener(&url, &b).await, 1);
    let got = tokio::time::timeout(Duration::from_secs(5), at_b.recv()).await;
    assert_eq!(
        got.expect("resync within 5 s").unwrap(),
        ClusterEvent::Resync
    );
    // And it listens again.
    a.publish(ev.clone()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(1), at_b.recv()).await;
    assert_eq!(got.expect("within a second").unwrap(), ev);
    a.leave().await.unwrap();
    b.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_share_the_database_with_other_migrators() {
    let Some(url) = database("migrations_share").await else {
        return;
    };
    // Another migrator (the store's, say) applied a version this one does not know.
    let mut conn = PgConnection::connect(&url).await.unwrap();
    let other = sqlx::migrate::Migrator::with_migrations(vec![sqlx::migrate::Migration::new(
        1,
        "someone else's".into(),
        sqlx::migrate::MigrationType::Simple,
        sqlx::SqlSafeStr::into_sql_str("CREATE TABLE other_table (x INT)"),
        false,
    )]);
    other.run(&mut conn).await.unwrap();
    let a = join(&url, "a").await;
    a.leave().await.unwrap();
    // And joining again (migration already applied) works.
    let a = join(&url, "a").await;
    let versions: Vec<(i64,)> =
        sqlx::query_as("SELECT version FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(versions, [(1,), (2000,)]);
    a.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_event_has_been_applied_everywhere_when_publishing_returns() {
    let Some(url) = database("acknowledged_events").await else {
        return;
    };
    let a = join(&url, "a").await;
    let b = join(&url, "b").await;
    let c = join(&url, "c").await;
    eventually("a sees b and c", Duration::from_secs(3), || {
        sees(&a, "b", true) && sees(&a, "c", true)
    })
    .await;
    let applied = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    for (node, id) in [(&b, "b"), (&c, "c")] {
        let applied = applied.clone();
        node.add_hook(std::sync::Arc::new(move |event| {
            if matches!(event, ClusterEvent::Invalidate { .. }) {
                applied.lock().unwrap().push(id.to_owned());
            }
        }));
    }
    for round in 0..20 {
        applied.lock().unwrap().clear();
        let event = ClusterEvent::Invalidate {
            account: "acct".into(),
            service: Some(format!("svc{round}")),
        };
        let all = a
            .publish_acknowledged(event, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(all, "round {round}: not every node acknowledged");
        // Both hooks ran before the publish returned: no waiting here.
        let mut got = applied.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, ["b", "c"], "round {round}");
    }
    // A node that left is not waited for.
    c.leave().await.unwrap();
    eventually("a no longer counts c", Duration::from_secs(8), || {
        !sees(&a, "c", true)
    })
    .await;
    let event = ClusterEvent::Invalidate {
        account: "acct".into(),
        service: None,
    };
    assert!(
        a.publish_acknowledged(event, Duration::from_secs(5))
            .await
            .unwrap()
    );
    drop(b);
}
