//! For tests (feature `testing`): a fresh PostgreSQL database per test on the server
//! `FCD_TEST_POSTGRES` names (`scripts/services` starts one). Unset, the test is skipped with a
//! visible line on stderr — unless `FCD_REQUIRE_SERVICES=1` (CI), when it panics.

use sqlx::Connection;
use sqlx::postgres::PgConnection;

/// The URL of a new, empty database for `test`, or `None` when the test is to be skipped.
/// Panics when the server is configured but unusable: a test must not pass by not running.
pub async fn postgres_database(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("FCD_TEST_POSTGRES") else {
        if std::env::var("FCD_REQUIRE_SERVICES").as_deref() == Ok("1") {
            panic!("{test}: FCD_TEST_POSTGRES is not set and FCD_REQUIRE_SERVICES=1");
        }
        eprintln!("{test}: SKIPPED (set FCD_TEST_POSTGRES; scripts/services starts one)");
        return None;
    };
    let mut b = [0u8; 8];
    if let Err(e) = getrandom::fill(&mut b) {
        panic!("{test}: no randomness for a database name: {e}");
    }
    let name = format!(
        "t_{}",
        b.iter().map(|x| format!("{x:02x}")).collect::<String>()
    );
    let mut conn = match PgConnection::connect(&base).await {
        Ok(c) => c,
        Err(e) => panic!("{test}: cannot connect to FCD_TEST_POSTGRES ({base}): {e}"),
    };
    if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
    {
        panic!("{test}: cannot create a test database: {e}");
    }
    let _ = conn.close().await;
    let (head, query) = base
        .split_once('?')
        .map_or((base.as_str(), None), |(h, q)| (h, Some(q)));
    let server = head.rsplit_once('/').map_or(head, |(s, _)| s);
    Some(match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    })
}

/// Terminates `cluster`'s event-listener connection (database at `url`), as a network cut
/// would; returns how many backends were terminated (1 when it was connected).
pub async fn cut_listener(url: &str, cluster: &crate::Cluster) -> usize {
    let mut conn = match PgConnection::connect(url).await {
        Ok(c) => c,
        Err(e) => panic!("cannot connect to {url}: {e}"),
    };
    let killed: Vec<(bool,)> = match sqlx::query_as(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(cluster.listener_application_name())
    .fetch_all(&mut conn)
    .await
    {
        Ok(k) => k,
        Err(e) => panic!("cannot terminate the listener: {e}"),
    };
    let _ = conn.close().await;
    killed.iter().filter(|(k,)| *k).count()
}
