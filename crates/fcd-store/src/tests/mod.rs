//! Tests of the metadata store, each body written once and run against both backends
//! ([`both_backends!`]): SQLite in a temporary file, and PostgreSQL in a database of its own
//! created on the server `FCD_TEST_POSTGRES` names (skipped with a visible line when it is unset,
//! unless `FCD_REQUIRE_SERVICES=1`).

mod availability;
mod code;
mod concurrency;
mod iam;
mod layers;
mod metadata;
mod migrations;
mod tags;
mod triggers;

use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Connection;

use crate::{PgStore, SqliteStore};

/// A new SQLite store in a temporary directory (kept alive by the returned guard).
pub(crate) async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("meta.db"))
        .await
        .unwrap();
    (dir, store)
}

/// The URL of a new, empty database on the test server, or `None` (after saying so) when no
/// server is configured.
pub(crate) async fn pg_database() -> Option<String> {
    let Ok(base) = std::env::var("FCD_TEST_POSTGRES") else {
        if std::env::var("FCD_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
            panic!("FCD_REQUIRE_SERVICES=1 but FCD_TEST_POSTGRES is unset");
        }
        eprintln!("SKIPPED (set FCD_TEST_POSTGRES; scripts/services starts one)");
        return None;
    };
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let name = format!(
        "t_store_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.unwrap();
    let (server, _) = base.rsplit_once('/').unwrap();
    Some(format!("{server}/{name}"))
}

/// Drops a database [`pg_database`] made (`FORCE`: the store's pool may still hold
/// connections). A test that fails leaves its database behind to be looked at.
pub(crate) async fn drop_database(url: &str) {
    let (server, name) = url.rsplit_once('/').unwrap();
    let mut admin = sqlx::PgConnection::connect(&format!("{server}/postgres"))
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
}

/// A new PostgreSQL store in a database of its own (and that database's URL), or `None` when
/// no server is configured.
pub(crate) async fn postgres() -> Option<(String, PgStore)> {
    let url = pg_database().await?;
    let store = PgStore::connect(&url).await.unwrap();
    Some((url, store))
}

/// Runs each named `async fn(store)` (generic over the store) against SQLite and PostgreSQL,
/// as the tests `<name>::sqlite` and `<name>::postgres`.
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                let (_dir, store) = crate::tests::sqlite().await;
                super::$name(store).await;
            }

            #[tokio::test]
            async fn postgres() {
                if let Some((url, store)) = crate::tests::postgres().await {
                    super::$name(store).await;
                    crate::tests::drop_database(&url).await;
                }
            }
        }
    )*};
}
pub(crate) use both_backends;
