//! Schema migrations: a `meta.db` from before sqlx migrations is adopted with its data, nodes
//! starting at once migrate one database once, other layers' migrations in the same table are
//! left alone, and an unreachable engine is `Unavailable`.

use std::borrow::Cow;
use std::str::FromStr;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row, SqlSafeStr};

use super::metadata::{func, svc};
use crate::migrate::sqlite_migrator;
use crate::triggers::TriggerStore;
use crate::{MetadataStore, PgStore, SqliteStore, StoreError};

#[tokio::test]
async fn survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    {
        let s = SqliteStore::open(&path).await.unwrap();
        s.insert_service("acc", &svc("keep")).await.unwrap();
        s.insert_function("acc", "keep", &func("f")).await.unwrap();
    }
    let s = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        s.get_service("acc", "keep").await.unwrap().unwrap().etag,
        "e-keep"
    );
    assert_eq!(
        s.get_function("acc", "keep", "f")
            .await
            .unwrap()
            .unwrap()
            .function
            .runtime,
        "custom"
    );
}

/// Writes a file as the store did before sqlx migrations: the first `steps` schema steps, each
/// recorded in `schema_version`, plus a service and a function.
async fn legacy_file(path: &std::path::Path, steps: i64) {
    let opts = SqliteConnectOptions::from_str("sqlite://")
        .unwrap()
        .filename(path)
        .create_if_missing(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
    sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        .execute(&mut conn)
        .await
        .unwrap();
    for m in sqlite_migrator().iter().filter(|m| m.version <= steps) {
        sqlx::raw_sql(m.sql.clone())
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
            .bind(m.version)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let s = svc("old");
    sqlx::query("INSERT INTO services (account_id, name, etag, body) VALUES ('acc', 'old', ?, ?)")
        .bind(&s.etag)
        .bind(serde_json::to_string(&s.service).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
    let f = func("f");
    sqlx::query(
        "INSERT INTO functions (account_id, service_name, name, etag, code_digest, body)
         VALUES ('acc', 'old', 'f', ?, ?, ?)",
    )
    .bind(&f.etag)
    .bind(&f.code_digest)
    .bind(serde_json::to_string(&f.function).unwrap())
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
}

#[tokio::test]
async fn a_file_from_before_sqlx_migrations_keeps_its_data() {
    // A file as old as the configs (triggers came later) and one with every old step.
    for steps in [3, 5] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("meta.db");
        legacy_file(&path, steps).await;
        let s = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            s.get_service("acc", "old").await.unwrap().unwrap().etag,
            "e-old"
        );
        assert!(s.get_function("acc", "old", "f").await.unwrap().is_some());
        // The steps it did not have were applied: triggers work.
        assert!(s.all_triggers("timer").await.unwrap().is_empty());
        s.insert_service("acc", &svc("new")).await.unwrap();
        drop(s);

        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        let versions: Vec<i64> =
            sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&mut conn)
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
        // Every migration, the legacy steps adopted and the later ones applied.
        let all: Vec<i64> = sqlite_migrator().iter().map(|m| m.version).collect();
        assert_eq!(versions, all, "from {steps} old steps");
        let legacy = sqlx::query("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'")
            .fetch_optional(&mut conn)
            .await
            .unwrap();
        assert!(legacy.is_none());
        conn.close().await.unwrap();
        // And it opens again, unchanged.
        let s = SqliteStore::open(&path).await.unwrap();
        assert_eq!(s.list_services("acc", &q()).await.unwrap().len(), 2);
    }
}

/// An on-demand config stored before 0007 is listed by its new key
/// (`{service}#{qualifier}#{function}`), so paging and prefixes keep working on old rows.
#[tokio::test]
async fn old_on_demand_rows_take_the_new_list_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    legacy_file(&path, 5).await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let body = serde_json::json!({
        "serviceName": "old", "qualifier": "LATEST", "functionName": "f", "maximumInstanceCount": 1
    });
    sqlx::query(
        "INSERT INTO on_demand_configs
             (account_id, service_name, qualifier, function_name, resource, etag, body)
         VALUES ('acc', 'old', 'LATEST', 'f', 'services/old.LATEST/functions/f', 'e', ?)",
    )
    .bind(body.to_string())
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let s = SqliteStore::open(&path).await.unwrap();
    let listed = s
        .list_on_demand_configs(
            "acc",
            &crate::ListQuery {
                prefix: Some("old#".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].config.list_key(), "old#LATEST#f");
}

#[tokio::test]
async fn a_file_from_a_newer_fcd_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    legacy_file(&path, 5).await;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("INSERT INTO schema_version (version) VALUES (6)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let r = SqliteStore::open(&path).await;
    assert!(
        matches!(r, Err(StoreError::Backend(ref m)) if m.contains("newer")),
        "{r:?}"
    );
}

fn q() -> crate::ListQuery {
    crate::ListQuery {
        limit: 10,
        ..Default::default()
    }
}

/// Another layer's migrator in the same table, as the queue's (versions from 1000).
fn other_layer() -> Migrator {
    let mut m = Migrator::with_migrations(vec![Migration::new(
        1000,
        Cow::Borrowed("queue"),
        MigrationType::Simple,
        "CREATE TABLE other_layer (id BIGINT PRIMARY KEY)".into_sql_str(),
        false,
    )]);
    m.set_ignore_missing(true);
    m
}

#[tokio::test]
async fn nodes_starting_at_once_migrate_once_beside_other_layers() {
    let Some(url) = super::pg_database().await else {
        return;
    };
    // The other layer first: the store's migrator must not mind its version.
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    other_layer().run(&mut conn).await.unwrap();
    let starts: Vec<_> = (0..6)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { PgStore::connect(&url).await })
        })
        .collect();
    let mut stores = Vec::new();
    for s in starts {
        stores.push(s.await.unwrap().unwrap());
    }
    stores[0].insert_service("acc", &svc("s")).await.unwrap();
    assert!(stores[5].get_service("acc", "s").await.unwrap().is_some());
    // And the other layer still runs after the store's migrations.
    other_layer().run(&mut conn).await.unwrap();
    let versions: Vec<i64> = sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Every store step, then the other layer's.
    let mut want: Vec<i64> = crate::migrate::postgres_migrator()
        .iter()
        .map(|m| m.version)
        .collect();
    want.push(1000);
    assert_eq!(versions, want);
    conn.close().await.unwrap();
    drop(stores);
    super::drop_database(&url).await;
}

#[tokio::test]
async fn an_unreachable_engine_is_unavailable() {
    // Port 1 on loopback: nothing listens there.
    let r = PgStore::connect("postgres://postgres@127.0.0.1:1/none").await;
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
}
