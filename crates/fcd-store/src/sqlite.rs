//! The embedded metadata store: one SQLite file in WAL mode inside the data dir.
//!
//! Records are stored as JSON documents next to the columns that key, order and guard them, so
//! adding a config field never needs a migration. The SQL stays within what PostgreSQL also
//! accepts, to keep a second backend a matter of connection setup.

use std::path::Path;
use std::str::FromStr;

use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::{
    ListQuery, MetadataStore, ProvisionQuery, SnapshotFunction, StoreError, StoredAlias,
    StoredFunction, StoredOnDemandConfig, StoredService, VersionSnapshot,
};
use fcd_core::configs::{LATEST, ProvisionConfig};
use fcd_core::limits::FUNCTIONS_PER_SERVICE_MAX;
use fcd_core::versions::{Alias, VersionInfo};
use sha2::{Digest, Sha256};

mod iam;
mod triggers;

/// Schema steps, applied in order once each; `schema_version` records how far a file has come.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE services (
        account_id TEXT NOT NULL,
        name TEXT NOT NULL,
        etag TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, name)
    );
    CREATE TABLE functions (
        account_id TEXT NOT NULL,
        service_name TEXT NOT NULL,
        name TEXT NOT NULL,
        etag TEXT NOT NULL,
        code_digest TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, service_name, name),
        FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
    );",
    "ALTER TABLE services ADD COLUMN last_version INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE service_versions (
        account_id TEXT NOT NULL,
        service_name TEXT NOT NULL,
        version_id INTEGER NOT NULL,
        fingerprint TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, service_name, version_id),
        FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
    );
    CREATE TABLE aliases (
        account_id TEXT NOT NULL,
        service_name TEXT NOT NULL,
        name TEXT NOT NULL,
        etag TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, service_name, name),
        FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
    );",
    // `resource` is FC's name of an on-demand config, which ListOnDemandConfigs orders and
    // pages by; `target` lets deletes find provisioned capacity without parsing bodies.
    "CREATE TABLE on_demand_configs (
        account_id TEXT NOT NULL,
        service_name TEXT NOT NULL,
        qualifier TEXT NOT NULL,
        function_name TEXT NOT NULL,
        resource TEXT NOT NULL,
        etag TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, service_name, qualifier, function_name),
        FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
    );
    CREATE INDEX on_demand_configs_by_resource ON on_demand_configs (account_id, resource);
    CREATE TABLE provision_configs (
        account_id TEXT NOT NULL,
        service_name TEXT NOT NULL,
        qualifier TEXT NOT NULL,
        function_name TEXT NOT NULL,
        target INTEGER NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, service_name, qualifier, function_name),
        FOREIGN KEY (account_id, service_name) REFERENCES services (account_id, name)
    );",
    iam::MIGRATION,
    triggers::MIGRATION,
];

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
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .execute(&mut *tx)
            .await?;
        let current: Option<i64> = sqlx::query("SELECT MAX(version) FROM schema_version")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let current = current.unwrap_or(0);
        for (i, step) in MIGRATIONS.iter().enumerate() {
            let version = i as i64 + 1;
            if version <= current {
                continue;
            }
            sqlx::raw_sql(*step).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_version (version) VALUES (?)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

// Write transactions start with `BEGIN IMMEDIATE`: they read before they write, and a deferred
// transaction whose read lock cannot be upgraded fails with SQLITE_BUSY at once instead of
// waiting for the other writer (busy_timeout does not apply to that case).
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn service_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredService, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredService {
        service: serde_json::from_str(&body)?,
        etag: row.try_get("etag")?,
    })
}

fn alias_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredAlias, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredAlias {
        alias: serde_json::from_str(&body)?,
        etag: row.try_get("etag")?,
    })
}

/// Inside the alias write's transaction, so a version cannot vanish between check and write.
async fn check_versions_exist(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    account: &str,
    service: &str,
    alias: &Alias,
) -> Result<(), StoreError> {
    for v in alias.versions() {
        let id: i64 = v
            .parse()
            .map_err(|_| StoreError::VersionMissing(v.to_owned()))?;
        let found = sqlx::query(
            "SELECT 1 FROM service_versions WHERE account_id = ? AND service_name = ? AND version_id = ?",
        )
        .bind(account)
        .bind(service)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
        if found.is_none() {
            return Err(StoreError::VersionMissing(v.to_owned()));
        }
    }
    Ok(())
}

fn on_demand_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredOnDemandConfig, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredOnDemandConfig {
        config: serde_json::from_str(&body)?,
        etag: row.try_get("etag")?,
    })
}

fn provision_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<ProvisionConfig, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(serde_json::from_str(&body)?)
}

async fn service_exists(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    account: &str,
    service: &str,
) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 FROM services WHERE account_id = ? AND name = ?")
            .bind(account)
            .bind(service)
            .fetch_optional(&mut **tx)
            .await?
            .is_some(),
    )
}

/// Inside the delete of an alias or version: refuses while it has provisioned capacity, else
/// drops every config stored under that qualifier.
async fn drop_qualifier_configs(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    account: &str,
    service: &str,
    qualifier: &str,
) -> Result<(), StoreError> {
    let provisioned = sqlx::query(
        "SELECT function_name FROM provision_configs
         WHERE account_id = ? AND service_name = ? AND qualifier = ? AND target > 0
         ORDER BY function_name LIMIT 1",
    )
    .bind(account)
    .bind(service)
    .bind(qualifier)
    .fetch_optional(&mut **tx)
    .await?;
    if let Some(row) = provisioned {
        return Err(StoreError::Provisioned(row.try_get("function_name")?));
    }
    for sql in [
        "DELETE FROM on_demand_configs WHERE account_id = ? AND service_name = ? AND qualifier = ?",
        "DELETE FROM provision_configs WHERE account_id = ? AND service_name = ? AND qualifier = ?",
    ] {
        sqlx::query(sql)
            .bind(account)
            .bind(service)
            .bind(qualifier)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn function_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredFunction, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredFunction {
        function: serde_json::from_str(&body)?,
        code_digest: row.try_get("code_digest")?,
        etag: row.try_get("etag")?,
    })
}

#[async_trait]
impl MetadataStore for SqliteStore {
    async fn insert_service(&self, account: &str, svc: &StoredService) -> Result<(), StoreError> {
        let body = serde_json::to_string(&svc.service)?;
        let res =
            sqlx::query("INSERT INTO services (account_id, name, etag, body) VALUES (?, ?, ?, ?)")
                .bind(account)
                .bind(&svc.service.service_name)
                .bind(&svc.etag)
                .bind(body)
                .execute(&self.pool)
                .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_service(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<StoredService>, StoreError> {
        let row = sqlx::query("SELECT etag, body FROM services WHERE account_id = ? AND name = ?")
            .bind(account)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(service_from_row).transpose()
    }

    async fn replace_service(
        &self,
        account: &str,
        svc: &StoredService,
        expected_etag: &str,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(&svc.service)?;
        let res = sqlx::query(
            "UPDATE services SET etag = ?, body = ? WHERE account_id = ? AND name = ? AND etag = ?",
        )
        .bind(&svc.etag)
        .bind(body)
        .bind(account)
        .bind(&svc.service.service_name)
        .bind(expected_etag)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 1 {
            return Ok(());
        }
        match self.get_service(account, &svc.service.service_name).await? {
            None => Err(StoreError::NotFound),
            Some(_) => Err(StoreError::Conflict),
        }
    }

    async fn delete_service(&self, account: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let count: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM functions WHERE account_id = ?1 AND service_name = ?2)
                  + (SELECT COUNT(*) FROM service_versions WHERE account_id = ?1 AND service_name = ?2)
                  + (SELECT COUNT(*) FROM aliases WHERE account_id = ?1 AND service_name = ?2)",
        )
        .bind(account)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if count > 0 {
            return Err(StoreError::NotEmpty);
        }
        for sql in [
            "DELETE FROM on_demand_configs WHERE account_id = ? AND service_name = ?",
            "DELETE FROM provision_configs WHERE account_id = ? AND service_name = ?",
        ] {
            sqlx::query(sql)
                .bind(account)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        let res = sqlx::query("DELETE FROM services WHERE account_id = ? AND name = ?")
            .bind(account)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_services(
        &self,
        account: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredService>, StoreError> {
        let prefix = q.prefix.clone().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT etag, body FROM services
             WHERE account_id = ? AND substr(name, 1, ?) = ? AND name >= ?
             ORDER BY name LIMIT ?",
        )
        .bind(account)
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .bind(q.from.clone().unwrap_or_default())
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(service_from_row).collect()
    }

    async fn insert_function(
        &self,
        account: &str,
        service: &str,
        f: &StoredFunction,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(&f.function)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists = sqlx::query("SELECT 1 FROM services WHERE account_id = ? AND name = ?")
            .bind(account)
            .bind(service)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::ParentNotFound);
        }
        let count: i64 =
            sqlx::query("SELECT COUNT(*) FROM functions WHERE account_id = ? AND service_name = ?")
                .bind(account)
                .bind(service)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
        if count as usize >= FUNCTIONS_PER_SERVICE_MAX {
            return Err(StoreError::LimitExceeded(format!(
                "a service holds at most {FUNCTIONS_PER_SERVICE_MAX} functions"
            )));
        }
        let res = sqlx::query(
            "INSERT INTO functions (account_id, service_name, name, etag, code_digest, body)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(account)
        .bind(service)
        .bind(&f.function.function_name)
        .bind(&f.etag)
        .bind(&f.code_digest)
        .bind(body)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_function(
        &self,
        account: &str,
        service: &str,
        name: &str,
    ) -> Result<Option<StoredFunction>, StoreError> {
        let row = sqlx::query(
            "SELECT etag, code_digest, body FROM functions
             WHERE account_id = ? AND service_name = ? AND name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(function_from_row).transpose()
    }

    async fn replace_function(
        &self,
        account: &str,
        service: &str,
        f: &StoredFunction,
        expected_etag: &str,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(&f.function)?;
        let res = sqlx::query(
            "UPDATE functions SET etag = ?, code_digest = ?, body = ?
             WHERE account_id = ? AND service_name = ? AND name = ? AND etag = ?",
        )
        .bind(&f.etag)
        .bind(&f.code_digest)
        .bind(body)
        .bind(account)
        .bind(service)
        .bind(&f.function.function_name)
        .bind(expected_etag)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 1 {
            return Ok(());
        }
        match self
            .get_function(account, service, &f.function.function_name)
            .await?
        {
            None => Err(StoreError::NotFound),
            Some(_) => Err(StoreError::Conflict),
        }
    }

    async fn delete_function(
        &self,
        account: &str,
        service: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if triggers::function_has_triggers(&mut tx, account, service, name).await? {
            return Err(StoreError::NotEmpty);
        }
        let res = sqlx::query(
            "DELETE FROM functions WHERE account_id = ? AND service_name = ? AND name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "DELETE FROM on_demand_configs
             WHERE account_id = ? AND service_name = ? AND qualifier = ? AND function_name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(LATEST)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_functions(
        &self,
        account: &str,
        service: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredFunction>, StoreError> {
        let prefix = q.prefix.clone().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT etag, code_digest, body FROM functions
             WHERE account_id = ? AND service_name = ? AND substr(name, 1, ?) = ? AND name >= ?
             ORDER BY name LIMIT ?",
        )
        .bind(account)
        .bind(service)
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .bind(q.from.clone().unwrap_or_default())
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(function_from_row).collect()
    }

    async fn publish_version(
        &self,
        account: &str,
        service: &str,
        description: &str,
        now: &str,
        expected_etag: Option<&str>,
    ) -> Result<VersionInfo, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT etag, body, last_version FROM services WHERE account_id = ? AND name = ?",
        )
        .bind(account)
        .bind(service)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        let svc = service_from_row(&row)?;
        let last_version: i64 = row.try_get("last_version")?;
        if expected_etag.is_some_and(|e| !e.is_empty() && e.trim_matches('"') != svc.etag) {
            return Err(StoreError::Conflict);
        }
        let rows = sqlx::query(
            "SELECT etag, code_digest, body FROM functions
             WHERE account_id = ? AND service_name = ? ORDER BY name",
        )
        .bind(account)
        .bind(service)
        .fetch_all(&mut *tx)
        .await?;
        let functions: Vec<StoredFunction> = rows
            .iter()
            .map(function_from_row)
            .collect::<Result<_, _>>()?;
        // Every write changes an etag, so the etags of the service and its functions say
        // exactly whether anything changed since the newest version.
        let mut h = Sha256::new();
        h.update(svc.etag.as_bytes());
        for f in &functions {
            h.update(b"\n");
            h.update(f.function.function_name.as_bytes());
            h.update(b"=");
            h.update(f.etag.as_bytes());
        }
        let fingerprint = hex::encode(h.finalize());
        let newest = sqlx::query(
            "SELECT version_id, fingerprint FROM service_versions
             WHERE account_id = ? AND service_name = ? ORDER BY version_id DESC LIMIT 1",
        )
        .bind(account)
        .bind(service)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(newest) = newest {
            let prev: String = newest.try_get("fingerprint")?;
            if prev == fingerprint {
                let id: i64 = newest.try_get("version_id")?;
                return Err(StoreError::NotChanged(id.to_string()));
            }
        }
        let version = last_version + 1;
        let info = VersionInfo {
            version_id: version.to_string(),
            description: description.to_owned(),
            created_time: now.to_owned(),
            last_modified_time: now.to_owned(),
        };
        let snapshot = VersionSnapshot {
            info: info.clone(),
            service: svc.service,
            functions: functions
                .into_iter()
                .map(|f| SnapshotFunction {
                    function: f.function,
                    code_digest: f.code_digest,
                })
                .collect(),
        };
        sqlx::query(
            "INSERT INTO service_versions (account_id, service_name, version_id, fingerprint, body)
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(account)
        .bind(service)
        .bind(version)
        .bind(&fingerprint)
        .bind(serde_json::to_string(&snapshot)?)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE services SET last_version = ? WHERE account_id = ? AND name = ?")
            .bind(version)
            .bind(account)
            .bind(service)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(info)
    }

    async fn get_version(
        &self,
        account: &str,
        service: &str,
        version: u64,
    ) -> Result<Option<VersionSnapshot>, StoreError> {
        let row = sqlx::query(
            "SELECT body FROM service_versions
             WHERE account_id = ? AND service_name = ? AND version_id = ?",
        )
        .bind(account)
        .bind(service)
        .bind(version as i64)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => {
                let body: String = r.try_get("body")?;
                Ok(Some(serde_json::from_str(&body)?))
            }
            None => Ok(None),
        }
    }

    async fn list_versions(
        &self,
        account: &str,
        service: &str,
        from: Option<u64>,
        limit: u32,
        descending: bool,
    ) -> Result<Vec<VersionInfo>, StoreError> {
        let sql = if descending {
            "SELECT body FROM service_versions
             WHERE account_id = ? AND service_name = ? AND version_id <= ?
             ORDER BY version_id DESC LIMIT ?"
        } else {
            "SELECT body FROM service_versions
             WHERE account_id = ? AND service_name = ? AND version_id >= ?
             ORDER BY version_id ASC LIMIT ?"
        };
        let bound = match (from, descending) {
            // A bound past every stored id stays one (never wraps negative).
            (Some(v), _) => i64::try_from(v).unwrap_or(i64::MAX),
            (None, true) => i64::MAX,
            (None, false) => 0,
        };
        let rows = sqlx::query(sql)
            .bind(account)
            .bind(service)
            .bind(bound)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let body: String = r.try_get("body")?;
                let snap: VersionSnapshot = serde_json::from_str(&body)?;
                Ok(snap.info)
            })
            .collect()
    }

    async fn delete_version(
        &self,
        account: &str,
        service: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let rows =
            sqlx::query("SELECT body FROM aliases WHERE account_id = ? AND service_name = ?")
                .bind(account)
                .bind(service)
                .fetch_all(&mut *tx)
                .await?;
        let id = version.to_string();
        for r in &rows {
            let body: String = r.try_get("body")?;
            let alias: Alias = serde_json::from_str(&body)?;
            if alias.versions().any(|v| v == id) {
                return Err(StoreError::InUse(alias.alias_name));
            }
        }
        let res = sqlx::query(
            "DELETE FROM service_versions WHERE account_id = ? AND service_name = ? AND version_id = ?",
        )
        .bind(account)
        .bind(service)
        .bind(version as i64)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        drop_qualifier_configs(&mut tx, account, service, &id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_alias(
        &self,
        account: &str,
        service: &str,
        alias: &StoredAlias,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists = sqlx::query("SELECT 1 FROM services WHERE account_id = ? AND name = ?")
            .bind(account)
            .bind(service)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::ParentNotFound);
        }
        check_versions_exist(&mut tx, account, service, &alias.alias).await?;
        let res = sqlx::query(
            "INSERT INTO aliases (account_id, service_name, name, etag, body) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(account)
        .bind(service)
        .bind(&alias.alias.alias_name)
        .bind(&alias.etag)
        .bind(serde_json::to_string(&alias.alias)?)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Err(StoreError::AlreadyExists),
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_alias(
        &self,
        account: &str,
        service: &str,
        name: &str,
    ) -> Result<Option<StoredAlias>, StoreError> {
        let row = sqlx::query(
            "SELECT etag, body FROM aliases WHERE account_id = ? AND service_name = ? AND name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(alias_from_row).transpose()
    }

    async fn replace_alias(
        &self,
        account: &str,
        service: &str,
        alias: &StoredAlias,
        expected_etag: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        check_versions_exist(&mut tx, account, service, &alias.alias).await?;
        let res = sqlx::query(
            "UPDATE aliases SET etag = ?, body = ?
             WHERE account_id = ? AND service_name = ? AND name = ? AND etag = ?",
        )
        .bind(&alias.etag)
        .bind(serde_json::to_string(&alias.alias)?)
        .bind(account)
        .bind(service)
        .bind(&alias.alias.alias_name)
        .bind(expected_etag)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(());
        }
        drop(tx);
        match self
            .get_alias(account, service, &alias.alias.alias_name)
            .await?
        {
            None => Err(StoreError::NotFound),
            Some(_) => Err(StoreError::Conflict),
        }
    }

    async fn delete_alias(
        &self,
        account: &str,
        service: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let res = sqlx::query(
            "DELETE FROM aliases WHERE account_id = ? AND service_name = ? AND name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        drop_qualifier_configs(&mut tx, account, service, name).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_aliases(
        &self,
        account: &str,
        service: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredAlias>, StoreError> {
        let prefix = q.prefix.clone().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT etag, body FROM aliases
             WHERE account_id = ? AND service_name = ? AND substr(name, 1, ?) = ? AND name >= ?
             ORDER BY name LIMIT ?",
        )
        .bind(account)
        .bind(service)
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .bind(q.from.clone().unwrap_or_default())
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alias_from_row).collect()
    }

    async fn put_on_demand_config(
        &self,
        account: &str,
        cfg: &StoredOnDemandConfig,
        expected_etag: Option<&str>,
    ) -> Result<(), StoreError> {
        let c = &cfg.config;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !service_exists(&mut tx, account, &c.service_name).await? {
            return Err(StoreError::ParentNotFound);
        }
        if let Some(expected) = expected_etag {
            let current: Option<String> = sqlx::query(
                "SELECT etag FROM on_demand_configs
                 WHERE account_id = ? AND service_name = ? AND qualifier = ? AND function_name = ?",
            )
            .bind(account)
            .bind(&c.service_name)
            .bind(&c.qualifier)
            .bind(&c.function_name)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get("etag"))
            .transpose()?;
            if current.as_deref() != Some(expected) {
                return Err(StoreError::Conflict);
            }
        }
        sqlx::query(
            "INSERT INTO on_demand_configs
                (account_id, service_name, qualifier, function_name, resource, etag, body)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (account_id, service_name, qualifier, function_name)
             DO UPDATE SET resource = excluded.resource, etag = excluded.etag, body = excluded.body",
        )
        .bind(account)
        .bind(&c.service_name)
        .bind(&c.qualifier)
        .bind(&c.function_name)
        .bind(c.resource())
        .bind(&cfg.etag)
        .bind(serde_json::to_string(c)?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn get_on_demand_config(
        &self,
        account: &str,
        service: &str,
        qualifier: &str,
        function: &str,
    ) -> Result<Option<StoredOnDemandConfig>, StoreError> {
        let row = sqlx::query(
            "SELECT etag, body FROM on_demand_configs
             WHERE account_id = ? AND service_name = ? AND qualifier = ? AND function_name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(qualifier)
        .bind(function)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(on_demand_from_row).transpose()
    }

    async fn delete_on_demand_config(
        &self,
        account: &str,
        service: &str,
        qualifier: &str,
        function: &str,
        expected_etag: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: String = sqlx::query(
            "SELECT etag FROM on_demand_configs
             WHERE account_id = ? AND service_name = ? AND qualifier = ? AND function_name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(qualifier)
        .bind(function)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?
        .try_get("etag")?;
        if expected_etag.is_some_and(|e| e != current) {
            return Err(StoreError::Conflict);
        }
        sqlx::query(
            "DELETE FROM on_demand_configs
             WHERE account_id = ? AND service_name = ? AND qualifier = ? AND function_name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(qualifier)
        .bind(function)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_on_demand_configs(
        &self,
        account: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredOnDemandConfig>, StoreError> {
        let prefix = q.prefix.clone().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT etag, body FROM on_demand_configs
             WHERE account_id = ? AND substr(resource, 1, ?) = ? AND resource >= ?
             ORDER BY resource LIMIT ?",
        )
        .bind(account)
        .bind(prefix.chars().count() as i64)
        .bind(&prefix)
        .bind(q.from.clone().unwrap_or_default())
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(on_demand_from_row).collect()
    }

    async fn put_provision_config(
        &self,
        account: &str,
        cfg: &ProvisionConfig,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !service_exists(&mut tx, account, &cfg.service_name).await? {
            return Err(StoreError::ParentNotFound);
        }
        if cfg.is_empty() {
            sqlx::query(
                "DELETE FROM provision_configs
                 WHERE account_id = ? AND service_name = ? AND qualifier = ? AND function_name = ?",
            )
            .bind(account)
            .bind(&cfg.service_name)
            .bind(&cfg.qualifier)
            .bind(&cfg.function_name)
            .execute(&mut *tx)
            .await?;
        } else {
            sqlx::query(
                "INSERT INTO provision_configs
                    (account_id, service_name, qualifier, function_name, target, body)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (account_id, service_name, qualifier, function_name)
                 DO UPDATE SET target = excluded.target, body = excluded.body",
            )
            .bind(account)
            .bind(&cfg.service_name)
            .bind(&cfg.qualifier)
            .bind(&cfg.function_name)
            .bind(i64::from(cfg.target))
            .bind(serde_json::to_string(cfg)?)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn get_provision_config(
        &self,
        account: &str,
        service: &str,
        qualifier: &str,
        function: &str,
    ) -> Result<Option<ProvisionConfig>, StoreError> {
        let row = sqlx::query(
            "SELECT body FROM provision_configs
             WHERE account_id = ? AND service_name = ? AND qualifier = ? AND function_name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(qualifier)
        .bind(function)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(provision_from_row).transpose()
    }

    async fn list_provision_configs(
        &self,
        account: &str,
        q: &ProvisionQuery,
    ) -> Result<Vec<ProvisionConfig>, StoreError> {
        let (fs, fq, ff) = q.from.clone().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT body FROM provision_configs
             WHERE account_id = ?1
               AND (?2 IS NULL OR service_name = ?2)
               AND (?3 IS NULL OR qualifier = ?3)
               AND (service_name, qualifier, function_name) >= (?4, ?5, ?6)
             ORDER BY service_name, qualifier, function_name LIMIT ?7",
        )
        .bind(account)
        .bind(q.service.as_deref())
        .bind(q.qualifier.as_deref())
        .bind(fs)
        .bind(fq)
        .bind(ff)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(provision_from_row).collect()
    }

    async fn all_provision_configs(&self) -> Result<Vec<(String, ProvisionConfig)>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_id, body FROM provision_configs
             ORDER BY account_id, service_name, qualifier, function_name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("account_id")?, provision_from_row(r)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fcd_core::model::{CodeRef, Function, FunctionUpdate, Service, ServiceUpdate};

    fn svc(name: &str) -> StoredService {
        StoredService {
            service: Service::create(
                "id".into(),
                name.into(),
                ServiceUpdate::default(),
                "t".into(),
            )
            .unwrap(),
            etag: format!("e-{name}"),
        }
    }

    fn func(name: &str) -> StoredFunction {
        let u = FunctionUpdate {
            runtime: Some("custom".into()),
            ..Default::default()
        };
        let code = CodeRef {
            checksum: "1".into(),
            size: 1,
        };
        StoredFunction {
            function: Function::create("fid".into(), name.into(), u, code, "t".into()).unwrap(),
            code_digest: "d".into(),
            etag: "e1".into(),
        }
    }

    async fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("meta.db"))
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn services_crud_and_paging() {
        let (_d, s) = open().await;
        for n in ["b", "a", "c", "ab", "x_y"] {
            s.insert_service("acc", &svc(n)).await.unwrap();
        }
        assert!(matches!(
            s.insert_service("acc", &svc("a")).await,
            Err(StoreError::AlreadyExists)
        ));
        // Accounts are separate namespaces.
        s.insert_service("other", &svc("a")).await.unwrap();
        let q = ListQuery {
            prefix: Some("a".into()),
            from: None,
            limit: 10,
        };
        let names: Vec<_> = s
            .list_services("acc", &q)
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.service.service_name)
            .collect();
        assert_eq!(names, ["a", "ab"]);
        // '_' is not a wildcard.
        let q = ListQuery {
            prefix: Some("x_".into()),
            from: None,
            limit: 10,
        };
        assert_eq!(s.list_services("acc", &q).await.unwrap().len(), 1);
        let q = ListQuery {
            prefix: None,
            from: Some("b".into()),
            limit: 2,
        };
        let names: Vec<_> = s
            .list_services("acc", &q)
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.service.service_name)
            .collect();
        assert_eq!(names, ["b", "c"]);
    }

    #[tokio::test]
    async fn compare_and_swap_and_non_empty_delete() {
        let (_d, s) = open().await;
        s.insert_service("acc", &svc("s")).await.unwrap();
        let mut updated = svc("s");
        updated.etag = "e2".into();
        assert!(matches!(
            s.replace_service("acc", &updated, "stale").await,
            Err(StoreError::Conflict)
        ));
        s.replace_service("acc", &updated, "e-s").await.unwrap();
        s.insert_function("acc", "s", &func("f")).await.unwrap();
        assert!(matches!(
            s.insert_function("acc", "s", &func("f")).await,
            Err(StoreError::AlreadyExists)
        ));
        assert!(matches!(
            s.insert_function("acc", "nope", &func("f")).await,
            Err(StoreError::ParentNotFound)
        ));
        assert!(matches!(
            s.delete_service("acc", "s").await,
            Err(StoreError::NotEmpty)
        ));
        assert!(s.get_function("acc", "s", "f").await.unwrap().is_some());
        s.delete_function("acc", "s", "f").await.unwrap();
        s.delete_service("acc", "s").await.unwrap();
        assert!(s.get_service("acc", "s").await.unwrap().is_none());
    }

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

    fn alias(name: &str, version: &str, extra: Option<(&str, f64)>) -> StoredAlias {
        let u = fcd_core::versions::AliasUpdate {
            version_id: Some(version.into()),
            additional_version_weight: extra.map(|(v, w)| [(v.to_string(), w)].into()),
            ..Default::default()
        };
        StoredAlias {
            alias: Alias::create(name.into(), u, "t".into()).unwrap(),
            etag: format!("a-{name}-{version}"),
        }
    }

    #[tokio::test]
    async fn versions_snapshot_and_aliases_guard_them() {
        let (_d, s) = open().await;
        let r = s.publish_version("acc", "s", "", "t", None).await;
        assert!(matches!(r, Err(StoreError::NotFound)), "{r:?}");
        s.insert_service("acc", &svc("s")).await.unwrap();
        s.insert_function("acc", "s", &func("f")).await.unwrap();
        assert!(matches!(
            s.publish_version("acc", "s", "", "t", Some("stale")).await,
            Err(StoreError::Conflict)
        ));
        let v1 = s
            .publish_version("acc", "s", "first", "t", Some("e-s"))
            .await
            .unwrap();
        assert_eq!(v1.version_id, "1");
        assert!(
            matches!(s.publish_version("acc", "s", "", "t", None).await, Err(StoreError::NotChanged(v)) if v == "1")
        );
        let mut changed = func("f");
        changed.etag = "e2".into();
        changed.function.description = "v2".into();
        s.replace_function("acc", "s", &changed, "e1")
            .await
            .unwrap();
        let v2 = s.publish_version("acc", "s", "", "t", None).await.unwrap();
        assert_eq!(v2.version_id, "2");
        // The snapshot keeps what the function was.
        let snap = s.get_version("acc", "s", 1).await.unwrap().unwrap();
        assert_eq!(snap.functions[0].function.description, "");
        assert_eq!(snap.info.description, "first");

        assert!(matches!(
            s.insert_alias("acc", "s", &alias("prod", "3", None)).await,
            Err(StoreError::VersionMissing(v)) if v == "3"
        ));
        s.insert_alias("acc", "s", &alias("prod", "1", Some(("2", 0.1))))
            .await
            .unwrap();
        assert!(matches!(
            s.insert_alias("acc", "s", &alias("prod", "1", None)).await,
            Err(StoreError::AlreadyExists)
        ));
        assert!(
            matches!(s.delete_version("acc", "s", 2).await, Err(StoreError::InUse(a)) if a == "prod")
        );
        assert!(matches!(
            s.delete_service("acc", "s").await,
            Err(StoreError::NotEmpty)
        ));

        let updated = alias("prod", "2", None);
        assert!(matches!(
            s.replace_alias("acc", "s", &updated, "wrong").await,
            Err(StoreError::Conflict)
        ));
        s.replace_alias("acc", "s", &updated, "a-prod-1")
            .await
            .unwrap();
        s.delete_version("acc", "s", 1).await.unwrap();
        let listed = s.list_versions("acc", "s", None, 10, true).await.unwrap();
        assert_eq!(
            listed
                .iter()
                .map(|v| v.version_id.as_str())
                .collect::<Vec<_>>(),
            ["2"]
        );

        // Numbers are never reused, even after a delete.
        let mut again = func("f");
        again.etag = "e3".into();
        s.replace_function("acc", "s", &again, "e2").await.unwrap();
        assert_eq!(
            s.publish_version("acc", "s", "", "t", None)
                .await
                .unwrap()
                .version_id,
            "3"
        );
        let asc = s
            .list_versions("acc", "s", Some(3), 10, false)
            .await
            .unwrap();
        assert_eq!(asc.len(), 1);
    }

    fn on_demand(service: &str, q: &str, f: &str, n: u32, etag: &str) -> StoredOnDemandConfig {
        StoredOnDemandConfig {
            config: fcd_core::configs::OnDemandConfig {
                service_name: service.into(),
                qualifier: q.into(),
                function_name: f.into(),
                maximum_instance_count: n,
            },
            etag: etag.into(),
        }
    }

    fn provision(service: &str, q: &str, f: &str, target: u32) -> ProvisionConfig {
        fcd_core::configs::ProvisionConfigUpdate {
            target: Some(i64::from(target)),
            ..Default::default()
        }
        .into_config(service, q, f)
        .unwrap()
    }

    #[tokio::test]
    async fn on_demand_configs_put_get_list_delete() {
        let (_d, s) = open().await;
        assert!(matches!(
            s.put_on_demand_config("acc", &on_demand("s", "LATEST", "f", 1, "e1"), None)
                .await,
            Err(StoreError::ParentNotFound)
        ));
        s.insert_service("acc", &svc("s")).await.unwrap();
        s.insert_service("acc", &svc("s-b")).await.unwrap();
        s.put_on_demand_config("acc", &on_demand("s", "LATEST", "f", 1, "e1"), None)
            .await
            .unwrap();
        let got = s
            .get_on_demand_config("acc", "s", "LATEST", "f")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.config.maximum_instance_count, 1);
        assert_eq!(got.etag, "e1");
        // Replace, guarded by the etag.
        assert!(matches!(
            s.put_on_demand_config("acc", &on_demand("s", "LATEST", "f", 2, "e2"), Some("old"))
                .await,
            Err(StoreError::Conflict)
        ));
        assert!(matches!(
            s.put_on_demand_config("acc", &on_demand("s", "prod", "f", 2, "e2"), Some("e1"))
                .await,
            Err(StoreError::Conflict)
        ));
        s.put_on_demand_config("acc", &on_demand("s", "LATEST", "f", 2, "e2"), Some("e1"))
            .await
            .unwrap();
        s.put_on_demand_config("acc", &on_demand("s", "prod", "f", 0, "e3"), None)
            .await
            .unwrap();
        s.put_on_demand_config("acc", &on_demand("s-b", "LATEST", "g", 5, "e4"), None)
            .await
            .unwrap();
        assert!(
            s.get_on_demand_config("other", "s", "LATEST", "f")
                .await
                .unwrap()
                .is_none()
        );

        // Listed by resource name: "s-b." sorts before "s." ('-' < '.').
        let all = |q: ListQuery| {
            let s = s.clone();
            async move {
                s.list_on_demand_configs("acc", &q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| c.config.resource())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            all(ListQuery {
                limit: 10,
                ..Default::default()
            })
            .await,
            [
                "services/s-b.LATEST/functions/g",
                "services/s.LATEST/functions/f",
                "services/s.prod/functions/f"
            ]
        );
        assert_eq!(
            all(ListQuery {
                prefix: Some("services/s.".into()),
                from: Some("services/s.m".into()),
                limit: 10,
            })
            .await,
            ["services/s.prod/functions/f"]
        );
        assert_eq!(
            all(ListQuery {
                limit: 1,
                ..Default::default()
            })
            .await
            .len(),
            1
        );

        assert!(matches!(
            s.delete_on_demand_config("acc", "s", "LATEST", "f", Some("e1"))
                .await,
            Err(StoreError::Conflict)
        ));
        s.delete_on_demand_config("acc", "s", "LATEST", "f", Some("e2"))
            .await
            .unwrap();
        assert!(matches!(
            s.delete_on_demand_config("acc", "s", "LATEST", "f", None)
                .await,
            Err(StoreError::NotFound)
        ));
    }

    #[tokio::test]
    async fn provision_configs_put_get_list() {
        let (_d, s) = open().await;
        assert!(matches!(
            s.put_provision_config("acc", &provision("s", "prod", "f", 1))
                .await,
            Err(StoreError::ParentNotFound)
        ));
        s.insert_service("acc", &svc("s")).await.unwrap();
        s.insert_service("acc", &svc("t")).await.unwrap();
        s.insert_service("acc2", &svc("s")).await.unwrap();
        let mut with_actions = provision("s", "prod", "f", 2);
        with_actions.scheduled_actions = vec![fcd_core::configs::ScheduledAction {
            name: Some("morning".into()),
            target: Some(4),
            ..Default::default()
        }];
        with_actions.always_allocate_cpu = false;
        s.put_provision_config("acc", &with_actions).await.unwrap();
        assert_eq!(
            s.get_provision_config("acc", "s", "prod", "f")
                .await
                .unwrap()
                .unwrap(),
            with_actions
        );
        // A put replaces the whole config.
        s.put_provision_config("acc", &provision("s", "prod", "f", 3))
            .await
            .unwrap();
        let got = s
            .get_provision_config("acc", "s", "prod", "f")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.target, 3);
        assert!(got.scheduled_actions.is_empty());
        for (svc_name, q, f) in [("s", "1", "f"), ("s", "prod", "g"), ("t", "prod", "f")] {
            s.put_provision_config("acc", &provision(svc_name, q, f, 1))
                .await
                .unwrap();
        }
        s.put_provision_config("acc2", &provision("s", "prod", "f", 1))
            .await
            .unwrap();
        let list = |q: ProvisionQuery| {
            let s = s.clone();
            async move {
                s.list_provision_configs("acc", &q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|c| c.resource("acc"))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            list(ProvisionQuery {
                limit: 10,
                ..Default::default()
            })
            .await,
            ["acc#s#1#f", "acc#s#prod#f", "acc#s#prod#g", "acc#t#prod#f"]
        );
        assert_eq!(
            list(ProvisionQuery {
                service: Some("s".into()),
                qualifier: Some("prod".into()),
                limit: 10,
                ..Default::default()
            })
            .await,
            ["acc#s#prod#f", "acc#s#prod#g"]
        );
        assert_eq!(
            list(ProvisionQuery {
                from: Some(("s".into(), "prod".into(), "g".into())),
                limit: 1,
                ..Default::default()
            })
            .await,
            ["acc#s#prod#g"]
        );
        let all = s.all_provision_configs().await.unwrap();
        assert_eq!(all.len(), 5);
        assert_eq!(all.iter().filter(|(a, _)| a == "acc2").count(), 1);

        // Target 0 without actions or policies removes the config.
        s.put_provision_config("acc", &provision("s", "1", "f", 0))
            .await
            .unwrap();
        assert!(
            s.get_provision_config("acc", "s", "1", "f")
                .await
                .unwrap()
                .is_none()
        );
        let mut kept = provision("s", "1", "f", 0);
        kept.scheduled_actions = vec![Default::default()];
        s.put_provision_config("acc", &kept).await.unwrap();
        assert_eq!(
            s.get_provision_config("acc", "s", "1", "f")
                .await
                .unwrap()
                .unwrap()
                .target,
            0
        );
    }

    #[tokio::test]
    async fn deletes_take_their_configs_along_or_refuse() {
        let (_d, s) = open().await;
        s.insert_service("acc", &svc("s")).await.unwrap();
        s.insert_function("acc", "s", &func("f")).await.unwrap();
        s.publish_version("acc", "s", "", "t", None).await.unwrap();
        s.insert_alias("acc", "s", &alias("prod", "1", None))
            .await
            .unwrap();
        for q in ["LATEST", "prod", "1"] {
            s.put_on_demand_config("acc", &on_demand("s", q, "f", 1, "e"), None)
                .await
                .unwrap();
        }
        s.put_provision_config("acc", &provision("s", "prod", "f", 2))
            .await
            .unwrap();
        s.put_provision_config("acc", &provision("s", "1", "f", 1))
            .await
            .unwrap();

        // Deleting LATEST takes only its LATEST on-demand config.
        s.delete_function("acc", "s", "f").await.unwrap();
        let left = |s: SqliteStore| async move {
            s.list_on_demand_configs(
                "acc",
                &ListQuery {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.config.qualifier)
            .collect::<Vec<_>>()
        };
        assert_eq!(left(s.clone()).await, ["1", "prod"]);

        // Provisioned capacity blocks deleting the alias or version it is kept for.
        assert!(
            matches!(s.delete_alias("acc", "s", "prod").await, Err(StoreError::Provisioned(f)) if f == "f")
        );
        assert!(s.get_alias("acc", "s", "prod").await.unwrap().is_some());
        s.put_provision_config("acc", &provision("s", "prod", "f", 0))
            .await
            .unwrap();
        s.delete_alias("acc", "s", "prod").await.unwrap();
        assert_eq!(left(s.clone()).await, ["1"]);
        assert!(matches!(
            s.delete_version("acc", "s", 1).await,
            Err(StoreError::Provisioned(_))
        ));
        assert!(s.get_version("acc", "s", 1).await.unwrap().is_some());
        s.put_provision_config("acc", &provision("s", "1", "f", 0))
            .await
            .unwrap();
        s.delete_version("acc", "s", 1).await.unwrap();
        assert!(left(s.clone()).await.is_empty());

        // A service delete sweeps whatever configs remain under it.
        let mut leftover = provision("s", "9", "f", 0);
        leftover.target_tracking_policies = vec![Default::default()];
        s.put_provision_config("acc", &leftover).await.unwrap();
        s.put_on_demand_config("acc", &on_demand("s", "gone", "f", 1, "e"), None)
            .await
            .unwrap();
        s.delete_service("acc", "s").await.unwrap();
        assert!(s.all_provision_configs().await.unwrap().is_empty());
        s.insert_service("acc", &svc("s")).await.unwrap();
        assert!(left(s.clone()).await.is_empty());
    }
}
