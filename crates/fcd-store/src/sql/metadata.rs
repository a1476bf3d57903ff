// [`MetadataStore`] on a SQL backend. This file is not a module of its own: `sqlite.rs` and
// `postgres.rs` each include it into a submodule, after defining `Store` (the store type, with a
// `pool`), `DbRow` and `Tx`, and `write_tx`/`read_tx` (how a write transaction serialises with
// every other write, and how a read transaction sees one snapshot). The SQL is the dialect both
// engines accept: `$n` parameters, `ON CONFLICT ... DO UPDATE`, row-value comparisons.

use std::collections::HashSet;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use sqlx::Row;

use super::{DbRow, Store, Tx};
use crate::sql::{is_unique_violation, prefix_len};
use crate::{
    ListQuery, MetadataStore, ProvisionQuery, SnapshotFunction, StoreError, StoredAlias,
    StoredFunction, StoredOnDemandConfig, StoredService, VersionSnapshot,
};
use fcd_core::configs::{LATEST, ProvisionConfig};
use fcd_core::limits::FUNCTIONS_PER_SERVICE_MAX;
use fcd_core::versions::{Alias, VersionInfo};

/// Only the `layers` of a stored function's body.
#[derive(serde::Deserialize)]
struct NamedLayers {
    #[serde(default)]
    layers: Vec<String>,
}

fn service_from_row(row: &DbRow) -> Result<StoredService, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredService {
        service: serde_json::from_str(&body)?,
        etag: row.try_get("etag")?,
    })
}

fn alias_from_row(row: &DbRow) -> Result<StoredAlias, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredAlias {
        alias: serde_json::from_str(&body)?,
        etag: row.try_get("etag")?,
    })
}

/// Inside the alias write's transaction, so a version cannot vanish between check and write.
async fn check_versions_exist(
    tx: &mut Tx<'_>,
    account: &str,
    service: &str,
    alias: &Alias,
) -> Result<(), StoreError> {
    for v in alias.versions() {
        let id: i64 = v
            .parse()
            .map_err(|_| StoreError::VersionMissing(v.to_owned()))?;
        let found = sqlx::query(
            "SELECT 1 FROM service_versions WHERE account_id = $1 AND service_name = $2 AND version_id = $3",
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

fn on_demand_from_row(row: &DbRow) -> Result<StoredOnDemandConfig, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredOnDemandConfig {
        config: serde_json::from_str(&body)?,
        etag: row.try_get("etag")?,
    })
}

fn provision_from_row(row: &DbRow) -> Result<ProvisionConfig, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(serde_json::from_str(&body)?)
}

async fn service_exists(tx: &mut Tx<'_>, account: &str, service: &str) -> Result<bool, StoreError> {
    Ok(
        sqlx::query("SELECT 1 FROM services WHERE account_id = $1 AND name = $2")
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
    tx: &mut Tx<'_>,
    account: &str,
    service: &str,
    qualifier: &str,
) -> Result<(), StoreError> {
    let provisioned = sqlx::query(
        "SELECT function_name FROM provision_configs
         WHERE account_id = $1 AND service_name = $2 AND qualifier = $3 AND target > 0
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
        "DELETE FROM on_demand_configs WHERE account_id = $1 AND service_name = $2 AND qualifier = $3",
        "DELETE FROM provision_configs WHERE account_id = $1 AND service_name = $2 AND qualifier = $3",
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

fn function_from_row(row: &DbRow) -> Result<StoredFunction, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredFunction {
        function: serde_json::from_str(&body)?,
        code_digest: row.try_get("code_digest")?,
        etag: row.try_get("etag")?,
    })
}

#[async_trait]
impl MetadataStore for Store {
    async fn insert_service(&self, account: &str, svc: &StoredService) -> Result<(), StoreError> {
        let body = serde_json::to_string(&svc.service)?;
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "INSERT INTO services (account_id, name, etag, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(account)
        .bind(&svc.service.service_name)
        .bind(&svc.etag)
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

    async fn get_service(
        &self,
        account: &str,
        name: &str,
    ) -> Result<Option<StoredService>, StoreError> {
        let row =
            sqlx::query("SELECT etag, body FROM services WHERE account_id = $1 AND name = $2")
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
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE services SET etag = $1, body = $2 WHERE account_id = $3 AND name = $4 AND etag = $5",
        )
        .bind(&svc.etag)
        .bind(body)
        .bind(account)
        .bind(&svc.service.service_name)
        .bind(expected_etag)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(());
        }
        drop(tx);
        match self.get_service(account, &svc.service.service_name).await? {
            None => Err(StoreError::NotFound),
            Some(_) => Err(StoreError::Conflict),
        }
    }

    async fn delete_service(&self, account: &str, name: &str) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let count: i64 = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM functions WHERE account_id = $1 AND service_name = $2)
                  + (SELECT COUNT(*) FROM service_versions WHERE account_id = $1 AND service_name = $2)
                  + (SELECT COUNT(*) FROM aliases WHERE account_id = $1 AND service_name = $2)",
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
            "DELETE FROM on_demand_configs WHERE account_id = $1 AND service_name = $2",
            "DELETE FROM provision_configs WHERE account_id = $1 AND service_name = $2",
        ] {
            sqlx::query(sql)
                .bind(account)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        super::tags::drop_service_tags(&mut tx, account, name).await?;
        let res = sqlx::query("DELETE FROM services WHERE account_id = $1 AND name = $2")
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
             WHERE account_id = $1 AND substr(name, 1, $2) = $3 AND name >= $4
             ORDER BY name LIMIT $5",
        )
        .bind(account)
        .bind(prefix_len(&prefix))
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
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 FROM services WHERE account_id = $1 AND name = $2")
            .bind(account)
            .bind(service)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::ParentNotFound);
        }
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM functions WHERE account_id = $1 AND service_name = $2",
        )
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
             VALUES ($1, $2, $3, $4, $5, $6)",
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
             WHERE account_id = $1 AND service_name = $2 AND name = $3",
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
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE functions SET etag = $1, code_digest = $2, body = $3
             WHERE account_id = $4 AND service_name = $5 AND name = $6 AND etag = $7",
        )
        .bind(&f.etag)
        .bind(&f.code_digest)
        .bind(body)
        .bind(account)
        .bind(service)
        .bind(&f.function.function_name)
        .bind(expected_etag)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(());
        }
        drop(tx);
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
        let mut tx = self.write_tx().await?;
        if super::triggers::function_has_triggers(&mut tx, account, service, name).await? {
            return Err(StoreError::NotEmpty);
        }
        let res = sqlx::query(
            "DELETE FROM functions WHERE account_id = $1 AND service_name = $2 AND name = $3",
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
             WHERE account_id = $1 AND service_name = $2 AND qualifier = $3 AND function_name = $4",
        )
        .bind(account)
        .bind(service)
        .bind(LATEST)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        super::tags::drop_function_tags(&mut tx, account, service, name).await?;
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
             WHERE account_id = $1 AND service_name = $2 AND substr(name, 1, $3) = $4 AND name >= $5
             ORDER BY name LIMIT $6",
        )
        .bind(account)
        .bind(service)
        .bind(prefix_len(&prefix))
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
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "SELECT etag, body, last_version FROM services WHERE account_id = $1 AND name = $2",
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
             WHERE account_id = $1 AND service_name = $2 ORDER BY name",
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
             WHERE account_id = $1 AND service_name = $2 ORDER BY version_id DESC LIMIT 1",
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
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(account)
        .bind(service)
        .bind(version)
        .bind(&fingerprint)
        .bind(serde_json::to_string(&snapshot)?)
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE services SET last_version = $1 WHERE account_id = $2 AND name = $3")
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
             WHERE account_id = $1 AND service_name = $2 AND version_id = $3",
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
             WHERE account_id = $1 AND service_name = $2 AND version_id <= $3
             ORDER BY version_id DESC LIMIT $4"
        } else {
            "SELECT body FROM service_versions
             WHERE account_id = $1 AND service_name = $2 AND version_id >= $3
             ORDER BY version_id ASC LIMIT $4"
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
        let mut tx = self.write_tx().await?;
        let rows =
            sqlx::query("SELECT body FROM aliases WHERE account_id = $1 AND service_name = $2")
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
            "DELETE FROM service_versions WHERE account_id = $1 AND service_name = $2 AND version_id = $3",
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
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query("SELECT 1 FROM services WHERE account_id = $1 AND name = $2")
            .bind(account)
            .bind(service)
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_none() {
            return Err(StoreError::ParentNotFound);
        }
        check_versions_exist(&mut tx, account, service, &alias.alias).await?;
        let res = sqlx::query(
            "INSERT INTO aliases (account_id, service_name, name, etag, body) VALUES ($1, $2, $3, $4, $5)",
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
            "SELECT etag, body FROM aliases WHERE account_id = $1 AND service_name = $2 AND name = $3",
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
        let mut tx = self.write_tx().await?;
        check_versions_exist(&mut tx, account, service, &alias.alias).await?;
        let res = sqlx::query(
            "UPDATE aliases SET etag = $1, body = $2
             WHERE account_id = $3 AND service_name = $4 AND name = $5 AND etag = $6",
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
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "DELETE FROM aliases WHERE account_id = $1 AND service_name = $2 AND name = $3",
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
             WHERE account_id = $1 AND service_name = $2 AND substr(name, 1, $3) = $4 AND name >= $5
             ORDER BY name LIMIT $6",
        )
        .bind(account)
        .bind(service)
        .bind(prefix_len(&prefix))
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
        let mut tx = self.write_tx().await?;
        if !service_exists(&mut tx, account, &c.service_name).await? {
            return Err(StoreError::ParentNotFound);
        }
        if let Some(expected) = expected_etag {
            let current: Option<String> = sqlx::query(
                "SELECT etag FROM on_demand_configs
                 WHERE account_id = $1 AND service_name = $2 AND qualifier = $3 AND function_name = $4",
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
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (account_id, service_name, qualifier, function_name)
             DO UPDATE SET resource = excluded.resource, etag = excluded.etag, body = excluded.body",
        )
        .bind(account)
        .bind(&c.service_name)
        .bind(&c.qualifier)
        .bind(&c.function_name)
        .bind(c.list_key())
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
             WHERE account_id = $1 AND service_name = $2 AND qualifier = $3 AND function_name = $4",
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
        let mut tx = self.write_tx().await?;
        let current: String = sqlx::query(
            "SELECT etag FROM on_demand_configs
             WHERE account_id = $1 AND service_name = $2 AND qualifier = $3 AND function_name = $4",
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
             WHERE account_id = $1 AND service_name = $2 AND qualifier = $3 AND function_name = $4",
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
             WHERE account_id = $1 AND substr(resource, 1, $2) = $3 AND resource >= $4
             ORDER BY resource LIMIT $5",
        )
        .bind(account)
        .bind(prefix_len(&prefix))
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
        let mut tx = self.write_tx().await?;
        if !service_exists(&mut tx, account, &cfg.service_name).await? {
            return Err(StoreError::ParentNotFound);
        }
        if cfg.is_empty() {
            sqlx::query(
                "DELETE FROM provision_configs
                 WHERE account_id = $1 AND service_name = $2 AND qualifier = $3 AND function_name = $4",
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
                 VALUES ($1, $2, $3, $4, $5, $6)
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
             WHERE account_id = $1 AND service_name = $2 AND qualifier = $3 AND function_name = $4",
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
             WHERE account_id = $1
               AND ($2 IS NULL OR service_name = $2)
               AND ($3 IS NULL OR qualifier = $3)
               AND (service_name, qualifier, function_name) >= ($4, $5, $6)
             ORDER BY service_name, qualifier, function_name LIMIT $7",
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

    async fn referenced_code(&self) -> Result<HashSet<String>, StoreError> {
        // One snapshot: a function updated meanwhile is seen either before or after, never
        // with neither its old nor its new digest.
        let mut tx = self.read_tx().await?;
        let mut digests = HashSet::new();
        // The layers each function and version names, with the account that owns them: a
        // deleted layer version's package is kept while anything names it.
        let mut layers: Vec<(String, Vec<String>)> = Vec::new();
        for row in sqlx::query("SELECT account_id, code_digest, body FROM functions")
            .fetch_all(&mut *tx)
            .await?
        {
            digests.insert(row.try_get("code_digest")?);
            let body: String = row.try_get("body")?;
            let named: NamedLayers = serde_json::from_str(&body)?;
            if !named.layers.is_empty() {
                layers.push((row.try_get("account_id")?, named.layers));
            }
        }
        for row in sqlx::query("SELECT account_id, body FROM service_versions")
            .fetch_all(&mut *tx)
            .await?
        {
            let body: String = row.try_get("body")?;
            let snap: VersionSnapshot = serde_json::from_str(&body)?;
            let account: String = row.try_get("account_id")?;
            for f in snap.functions {
                digests.insert(f.code_digest);
                if !f.function.layers.is_empty() {
                    layers.push((account.clone(), f.function.layers));
                }
            }
        }
        digests.extend(super::layers::referenced_layer_code(&mut tx, &layers).await?);
        tx.commit().await?;
        Ok(digests)
    }

    async fn referenced_images(&self) -> Result<HashSet<String>, StoreError> {
        fn image_of(f: &fcd_core::model::Function) -> Option<String> {
            if f.runtime != "custom-container" {
                return None;
            }
            let image = f.custom_container_config.as_ref()?.get("image")?.as_str()?;
            Some(image.trim().to_owned())
        }
        let mut tx = self.read_tx().await?;
        let mut images = HashSet::new();
        for row in sqlx::query("SELECT body FROM functions")
            .fetch_all(&mut *tx)
            .await?
        {
            let body: String = row.try_get("body")?;
            let f: fcd_core::model::Function = serde_json::from_str(&body)?;
            images.extend(image_of(&f));
        }
        for row in sqlx::query("SELECT body FROM service_versions")
            .fetch_all(&mut *tx)
            .await?
        {
            let body: String = row.try_get("body")?;
            let snap: VersionSnapshot = serde_json::from_str(&body)?;
            images.extend(snap.functions.iter().filter_map(|f| image_of(&f.function)));
        }
        tx.commit().await?;
        Ok(images)
    }
}
