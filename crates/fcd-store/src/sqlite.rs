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
    ListQuery, MetadataStore, SnapshotFunction, StoreError, StoredAlias, StoredFunction,
    StoredService, VersionSnapshot,
};
use fcd_core::limits::FUNCTIONS_PER_SERVICE_MAX;
use fcd_core::versions::{Alias, VersionInfo};
use sha2::{Digest, Sha256};

/// Schema steps, applied in order once each; `schema_version` records how far a file has come.
const MIGRATIONS: &[&str] = &["CREATE TABLE services (
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
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
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
        let res = sqlx::query(
            "DELETE FROM functions WHERE account_id = ? AND service_name = ? AND name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(name)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
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
        let mut tx = self.pool.begin().await?;
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
            (Some(v), _) => v as i64,
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
        let mut tx = self.pool.begin().await?;
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
        tx.commit().await?;
        Ok(())
    }

    async fn insert_alias(
        &self,
        account: &str,
        service: &str,
        alias: &StoredAlias,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
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
        let mut tx = self.pool.begin().await?;
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
        let res = sqlx::query(
            "DELETE FROM aliases WHERE account_id = ? AND service_name = ? AND name = ?",
        )
        .bind(account)
        .bind(service)
        .bind(name)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
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
}
