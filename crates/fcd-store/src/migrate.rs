//! The store's schema migrations for both SQL backends, as sqlx [`Migrator`]s built from the
//! SQL files under `migrations/{sqlite,postgres}/` (embedded at compile time), and the adoption
//! of a `meta.db` written before sqlx migrations (its own `schema_version` table).
//!
//! Versions stay below 1000: other layers keep their migrations in the same `_sqlx_migrations`
//! table of the same PostgreSQL database (the queue from 1000, the cluster layer from 2000). So
//! every migrator is built with `ignore_missing` — sqlx 0.9 otherwise refuses to run when the
//! table lists a version it does not know (`MigrateError::VersionMissing`); with it, each
//! migrator checks the checksums of its own versions and applies those not yet applied, and
//! leaves the others' rows alone. On PostgreSQL, `Migrator::run` holds a session advisory lock
//! (one per database, shared by all migrators) around everything it does, so nodes starting
//! at once migrate one after another.

use std::borrow::Cow;

use sqlx::migrate::{Migrate, MigrateError, Migration, MigrationType, Migrator};
use sqlx::{Row, SqlSafeStr};

use crate::StoreError;

/// The table sqlx keeps applied migrations in (its default).
const TABLE: &str = "_sqlx_migrations";

/// The highest version a store migration may have.
pub const STORE_VERSION_MAX: i64 = 999;

const SQLITE: &[(i64, &str, &str)] = &[
    (
        1,
        "services functions",
        include_str!("../migrations/sqlite/0001_services_functions.sql"),
    ),
    (
        2,
        "versions aliases",
        include_str!("../migrations/sqlite/0002_versions_aliases.sql"),
    ),
    (
        3,
        "configs",
        include_str!("../migrations/sqlite/0003_configs.sql"),
    ),
    (4, "iam", include_str!("../migrations/sqlite/0004_iam.sql")),
    (
        5,
        "triggers domains",
        include_str!("../migrations/sqlite/0005_triggers_domains.sql"),
    ),
    (
        6,
        "layers",
        include_str!("../migrations/sqlite/0006_layers.sql"),
    ),
    (
        7,
        "tags vpc bindings",
        include_str!("../migrations/sqlite/0007_tags_vpc.sql"),
    ),
    (
        8,
        "concurrency",
        include_str!("../migrations/sqlite/0008_concurrency.sql"),
    ),
];

const POSTGRES: &[(i64, &str, &str)] = &[
    (
        1,
        "schema",
        include_str!("../migrations/postgres/0001_schema.sql"),
    ),
    (
        2,
        "code packages",
        include_str!("../migrations/postgres/0002_code_packages.sql"),
    ),
    (
        3,
        "layers",
        include_str!("../migrations/postgres/0003_layers.sql"),
    ),
    (
        4,
        "tags vpc bindings",
        include_str!("../migrations/postgres/0004_tags_vpc.sql"),
    ),
    (
        5,
        "concurrency",
        include_str!("../migrations/postgres/0005_concurrency.sql"),
    ),
];

/// The steps the store applied through its own `schema_version` table before sqlx migrations:
/// they are the SQLite migrations 1 to 5, text for text.
const LEGACY_STEPS: i64 = 5;

fn migrator(steps: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations = steps
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                sql.into_sql_str(),
                false,
            )
        })
        .collect();
    let mut m = Migrator::with_migrations(migrations);
    m.set_ignore_missing(true);
    m
}

/// The SQLite store's migrator.
pub fn sqlite_migrator() -> Migrator {
    migrator(SQLITE)
}

/// The PostgreSQL store's migrator.
pub fn postgres_migrator() -> Migrator {
    migrator(POSTGRES)
}

impl From<MigrateError> for StoreError {
    fn from(e: MigrateError) -> Self {
        match e {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => e.into(),
            other => StoreError::Backend(format!("migration: {other}")),
        }
    }
}

/// Brings a `meta.db` from before sqlx migrations under them: the versions its
/// `schema_version` table records become rows of `_sqlx_migrations` (with the checksums of the
/// same steps as sqlx migrations), and `schema_version` goes — in one transaction, so a crash
/// leaves either the old bookkeeping or the new. Nothing to do for a new or already adopted file.
pub(crate) async fn adopt_legacy_sqlite(
    conn: &mut sqlx::SqliteConnection,
) -> Result<(), StoreError> {
    let mut tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
    let legacy =
        sqlx::query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'")
            .fetch_optional(&mut *tx)
            .await?;
    if legacy.is_none() {
        return Ok(());
    }
    let version: Option<i64> = sqlx::query("SELECT MAX(version) FROM schema_version")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let version = version.unwrap_or(0);
    if version > LEGACY_STEPS {
        return Err(StoreError::Backend(format!(
            "meta.db is at schema version {version}, newer than this fcd knows ({LEGACY_STEPS})"
        )));
    }
    tx.ensure_migrations_table(TABLE).await?;
    for m in sqlite_migrator().iter().filter(|m| m.version <= version) {
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES ($1, $2, TRUE, $3, 0)
             ON CONFLICT (version) DO NOTHING",
        )
        .bind(m.version)
        .bind(&*m.description)
        .bind(&*m.checksum)
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query("DROP TABLE schema_version")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_stay_below_the_other_layers() {
        for m in sqlite_migrator().iter().chain(postgres_migrator().iter()) {
            assert!(
                (1..=STORE_VERSION_MAX).contains(&m.version),
                "{}",
                m.version
            );
        }
        assert!(sqlite_migrator().ignore_missing && postgres_migrator().ignore_missing);
        // The legacy steps are exactly migrations 1 to 5 (later ones came after sqlx).
        let legacy: Vec<i64> = sqlite_migrator()
            .iter()
            .map(|m| m.version)
            .filter(|v| *v <= LEGACY_STEPS)
            .collect();
        assert_eq!(legacy, (1..=LEGACY_STEPS).collect::<Vec<_>>());
    }
}
