//! The embedded metadata store: one SQLite file in WAL mode inside the data dir.
//!
//! Records are stored as JSON documents next to the columns that key, order and guard them, so
//! adding a config field never needs a migration. The store's logic is shared with
//! [`crate::PgStore`] (see `sql.rs`); what is SQLite's own is here: the file's connection
//! settings, its migrations (and adopting a file from before them), and how transactions begin.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Connection, Sqlite};

use crate::StoreError;
use crate::migrate;

type Store = SqliteStore;
type DbRow = sqlx::sqlite::SqliteRow;
type Tx<'a> = sqlx::Transaction<'a, Sqlite>;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL syncs the WAL on every commit: an acknowledged write survives even an OS crash.
            // Metadata writes are rare and never on the invoke path, so the fsync is affordable.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        // Migrations run on a connection of their own, closed afterwards, before the pool opens.
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await?;
        migrate::adopt_legacy_sqlite(&mut conn).await?;
        migrate::sqlite_migrator()
            .run_direct(None, &mut conn, false)
            .await?;
        conn.close().await?;
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// Write transactions start with `BEGIN IMMEDIATE`: they read before they write, and a
    /// deferred transaction whose read lock cannot be upgraded fails with SQLITE_BUSY at once
    /// instead of waiting for the other writer (busy_timeout does not apply to that case). One
    /// writer at a time is also what every check made inside a write relies on.
    async fn write_tx(&self) -> Result<Tx<'static>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// A deferred transaction: its reads see one snapshot of the WAL.
    async fn read_tx(&self) -> Result<Tx<'static>, sqlx::Error> {
        self.pool.begin().await
    }
}

mod metadata {
    include!("sql/metadata.rs");
}

mod iam {
    include!("sql/iam.rs");
}

mod triggers {
    include!("sql/triggers.rs");
}

mod layers {
    include!("sql/layers.rs");
}

mod concurrency {
    include!("sql/concurrency.rs");
}
mod tags {
    include!("sql/tags.rs");
}
