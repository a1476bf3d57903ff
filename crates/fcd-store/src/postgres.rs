//! The metadata store on PostgreSQL, shared by every node of a cluster, and the code packages
//! those nodes share ([`PgPackages`]).
//!
//! The store's logic is the SQLite store's, text for text (see `sql.rs`); what is PostgreSQL's
//! own is here. SQLite runs one writer at a time, and every check a write makes inside its
//! transaction (a service has room for one more function, a version is not routed to, a
//! user's quota of keys) relies on that. PostgreSQL's default isolation would let two such
//! writes check, then both write; so every write transaction first takes one
//! transaction-scoped advisory lock, which gives the same one-writer order across all nodes
//! (metadata writes are rare; reads take no lock). Reads that must agree with each other run
//! in a REPEATABLE READ transaction, which is one snapshot like SQLite's.

use std::str::FromStr;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, Row};

use crate::StoreError;
use crate::code::{SharedPackage, SharedPackages};
use crate::migrate;

type Store = PgStore;
type DbRow = sqlx::postgres::PgRow;
type Tx<'a> = sqlx::Transaction<'a, Postgres>;

/// The advisory lock every write transaction holds ("fcd meta" in ASCII).
const WRITE_LOCK: i64 = 0x6663_6420_6d65_7461;

/// Connections per node: enough for concurrent control-plane requests and cache refreshes.
const POOL_SIZE: u32 = 16;

/// How long a request waits for a pooled connection before it is answered 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:pass@host:port/db`) and brings the
    /// store's schema up to date. Safe when many nodes start at once: sqlx's migrator holds an
    /// advisory lock while it checks and applies migrations.
    pub async fn connect(url: &str) -> Result<PgStore, StoreError> {
        let opts = PgConnectOptions::from_str(url)?;
        // Migrations run on a connection of their own, closed afterwards: sqlx's migrator takes
        // a session-level lock and does not release it when a migration fails, and such a
        // connection must not go back to a pool.
        let mut conn = sqlx::PgConnection::connect_with(&opts).await?;
        // `run_direct` rather than `run`: `run`'s future is not `Send` over a borrowed connection
        // (sqlx's "`Acquire` is not general enough").
        migrate::postgres_migrator()
            .run_direct(None, &mut conn, false)
            .await?;
        conn.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(opts)
            .await?;
        Ok(PgStore { pool })
    }

    /// The code packages kept in the same database, over the same pool.
    pub fn packages(&self) -> PgPackages {
        PgPackages {
            pool: self.pool.clone(),
        }
    }

    /// See the module docs: one writer at a time, across every node.
    async fn write_tx(&self) -> Result<Tx<'static>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(WRITE_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn read_tx(&self) -> Result<Tx<'static>, sqlx::Error> {
        self.pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
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

/// Code packages in PostgreSQL: a row per package and its bytes in chunks of
/// [`PgPackages::CHUNK`], so no statement (and no buffer of the server's) holds more than one
/// chunk. A package's row is written in the same transaction as its chunks, so a package that
/// is listed is complete.
#[derive(Debug, Clone)]
pub struct PgPackages {
    pool: PgPool,
}

impl PgPackages {
    /// The most bytes one chunk row holds.
    pub const CHUNK: usize = 1 << 20;
}

#[async_trait]
impl SharedPackages for PgPackages {
    async fn put(&self, digest: &str, zip: &[u8]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        // Put again: only refresh the time, which keeps the collector's grace period from
        // taking a package a create or update is about to reference.
        let touched = sqlx::query(
            "UPDATE code_packages SET created_ms = (extract(epoch FROM now()) * 1000)::bigint
             WHERE digest = $1",
        )
        .bind(digest)
        .execute(&mut *tx)
        .await?;
        if touched.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(());
        }
        let inserted = sqlx::query(
            "INSERT INTO code_packages (digest, size, created_ms)
             VALUES ($1, $2, (extract(epoch FROM now()) * 1000)::bigint)",
        )
        .bind(digest)
        .bind(zip.len() as i64)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {}
            // Another node put the same package at the same moment; its copy is complete
            // (the key only became visible when its transaction committed) and fresh.
            Err(e) if crate::sql::is_unique_violation(&e) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        for (seq, chunk) in zip.chunks(Self::CHUNK).enumerate() {
            sqlx::query("INSERT INTO code_package_chunks (digest, seq, data) VALUES ($1, $2, $3)")
                .bind(digest)
                .bind(seq as i32)
                .bind(chunk)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get(&self, digest: &str) -> Result<Option<Vec<u8>>, StoreError> {
        // One snapshot, so a concurrent delete cannot leave us half a package.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await?;
        let Some(row) = sqlx::query("SELECT size FROM code_packages WHERE digest = $1")
            .bind(digest)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let size: i64 = row.try_get("size")?;
        let mut zip = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        // Chunk by chunk: one chunk in flight at a time.
        for seq in 0i32.. {
            let Some(row) =
                sqlx::query("SELECT data FROM code_package_chunks WHERE digest = $1 AND seq = $2")
                    .bind(digest)
                    .bind(seq)
                    .fetch_optional(&mut *tx)
                    .await?
            else {
                break;
            };
            let data: Vec<u8> = row.try_get("data")?;
            zip.extend_from_slice(&data);
        }
        tx.commit().await?;
        if zip.len() as i64 != size {
            return Err(StoreError::Backend(format!(
                "code package {digest} has {} of its {size} bytes",
                zip.len()
            )));
        }
        Ok(Some(zip))
    }

    async fn delete(&self, digest: &str) -> Result<bool, StoreError> {
        // The chunks go with the row (ON DELETE CASCADE), in the same statement.
        let res = sqlx::query("DELETE FROM code_packages WHERE digest = $1")
            .bind(digest)
            .execute(&self.pool)
            .await?;
        Ok(res.rows_affected() == 1)
    }

    async fn list(&self) -> Result<Vec<SharedPackage>, StoreError> {
        let rows = sqlx::query("SELECT digest, created_ms FROM code_packages ORDER BY digest")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let ms: i64 = r.try_get("created_ms")?;
                Ok(SharedPackage {
                    digest: r.try_get("digest")?,
                    created: UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0)),
                })
            })
            .collect()
    }
}
