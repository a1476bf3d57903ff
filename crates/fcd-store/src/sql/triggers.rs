// [`TriggerStore`] on a SQL backend (included by both stores, like `metadata.rs`): triggers
// keyed by their function, custom domains keyed by name alone (one namespace for the whole
// server). Bodies are the `fcd_core` records as JSON; the columns beside them key, order and
// guard them.

use async_trait::async_trait;
use sqlx::Row;

use super::{DbRow, Store, Tx};
use crate::sql::{is_unique_violation, prefix_len};
use crate::triggers::{OwnedTrigger, StoredCustomDomain, StoredTrigger, TriggerStore};
use crate::{ListQuery, StoreError};

fn trigger_from_row(row: &DbRow) -> Result<StoredTrigger, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredTrigger {
        trigger: serde_json::from_str(&body)?,
        etag: row.try_get("etag")?,
    })
}

fn domain_from_row(row: &DbRow) -> Result<StoredCustomDomain, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredCustomDomain {
        domain: serde_json::from_str(&body)?,
        etag: row.try_get("etag")?,
    })
}

/// Inside `delete_function`'s transaction.
pub(super) async fn function_has_triggers(
    tx: &mut Tx<'_>,
    account: &str,
    service: &str,
    function: &str,
) -> Result<bool, StoreError> {
    Ok(sqlx::query(
        "SELECT 1 FROM triggers WHERE account_id = $1 AND service_name = $2 AND function_name = $3 LIMIT 1",
    )
    .bind(account)
    .bind(service)
    .bind(function)
    .fetch_optional(&mut **tx)
    .await?
    .is_some())
}

/// FC's rule, inside the write's transaction: one `http` trigger per function and qualifier.
/// A trigger of the same name is not counted: it is the one being replaced, or (on insert) the
/// insert fails with `AlreadyExists`, which says more.
async fn check_http_unique(
    tx: &mut Tx<'_>,
    account: &str,
    service: &str,
    function: &str,
    t: &StoredTrigger,
) -> Result<(), StoreError> {
    if t.trigger.trigger_type != "http" {
        return Ok(());
    }
    let other = sqlx::query(
        "SELECT name FROM triggers
         WHERE account_id = $1 AND service_name = $2 AND function_name = $3
           AND trigger_type = 'http' AND qualifier = $4 AND name <> $5
         ORDER BY name LIMIT 1",
    )
    .bind(account)
    .bind(service)
    .bind(function)
    .bind(&t.trigger.qualifier)
    .bind(&t.trigger.trigger_name)
    .fetch_optional(&mut **tx)
    .await?;
    match other {
        Some(row) => Err(StoreError::HttpTriggerExists(row.try_get("name")?)),
        None => Ok(()),
    }
}

#[async_trait]
impl TriggerStore for Store {
    async fn insert_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        t: &StoredTrigger,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(&t.trigger)?;
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query(
            "SELECT 1 FROM functions WHERE account_id = $1 AND service_name = $2 AND name = $3",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Err(StoreError::ParentNotFound);
        }
        check_http_unique(&mut tx, account, service, function, t).await?;
        let res = sqlx::query(
            "INSERT INTO triggers
                (account_id, service_name, function_name, name, trigger_type, qualifier, etag, body)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(&t.trigger.trigger_name)
        .bind(&t.trigger.trigger_type)
        .bind(&t.trigger.qualifier)
        .bind(&t.etag)
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

    async fn get_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        name: &str,
    ) -> Result<Option<StoredTrigger>, StoreError> {
        let row = sqlx::query(
            "SELECT etag, body FROM triggers
             WHERE account_id = $1 AND service_name = $2 AND function_name = $3 AND name = $4",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(trigger_from_row).transpose()
    }

    async fn replace_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        t: &StoredTrigger,
        expected_etag: &str,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(&t.trigger)?;
        let name = &t.trigger.trigger_name;
        let mut tx = self.write_tx().await?;
        let current: Option<String> = sqlx::query(
            "SELECT etag FROM triggers
             WHERE account_id = $1 AND service_name = $2 AND function_name = $3 AND name = $4",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| r.try_get("etag"))
        .transpose()?;
        match current {
            None => return Err(StoreError::NotFound),
            Some(e) if e != expected_etag => return Err(StoreError::Conflict),
            Some(_) => {}
        }
        check_http_unique(&mut tx, account, service, function, t).await?;
        sqlx::query(
            "UPDATE triggers SET trigger_type = $1, qualifier = $2, etag = $3, body = $4
             WHERE account_id = $5 AND service_name = $6 AND function_name = $7 AND name = $8",
        )
        .bind(&t.trigger.trigger_type)
        .bind(&t.trigger.qualifier)
        .bind(&t.etag)
        .bind(body)
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        name: &str,
        expected_etag: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let current: String = sqlx::query(
            "SELECT etag FROM triggers
             WHERE account_id = $1 AND service_name = $2 AND function_name = $3 AND name = $4",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?
        .try_get("etag")?;
        if expected_etag.is_some_and(|e| e != current) {
            return Err(StoreError::Conflict);
        }
        sqlx::query(
            "DELETE FROM triggers
             WHERE account_id = $1 AND service_name = $2 AND function_name = $3 AND name = $4",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_triggers(
        &self,
        account: &str,
        service: &str,
        function: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredTrigger>, StoreError> {
        let prefix = q.prefix.clone().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT etag, body FROM triggers
             WHERE account_id = $1 AND service_name = $2 AND function_name = $3
               AND substr(name, 1, $4) = $5 AND name >= $6
             ORDER BY name LIMIT $7",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(prefix_len(&prefix))
        .bind(&prefix)
        .bind(q.from.clone().unwrap_or_default())
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(trigger_from_row).collect()
    }

    async fn find_triggers(
        &self,
        account: &str,
        service: &str,
        function: &str,
        trigger_type: &str,
        qualifier: &str,
    ) -> Result<Vec<StoredTrigger>, StoreError> {
        let rows = sqlx::query(
            "SELECT etag, body FROM triggers
             WHERE account_id = $1 AND service_name = $2 AND function_name = $3
               AND trigger_type = $4 AND qualifier = $5
             ORDER BY name",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(trigger_type)
        .bind(qualifier)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(trigger_from_row).collect()
    }

    async fn all_triggers(&self, trigger_type: &str) -> Result<Vec<OwnedTrigger>, StoreError> {
        let rows = sqlx::query(
            "SELECT account_id, service_name, function_name, etag, body FROM triggers
             WHERE trigger_type = $1
             ORDER BY account_id, service_name, function_name, name",
        )
        .bind(trigger_type)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OwnedTrigger {
                    account: r.try_get("account_id")?,
                    service: r.try_get("service_name")?,
                    function: r.try_get("function_name")?,
                    trigger: trigger_from_row(r)?,
                })
            })
            .collect()
    }

    async fn insert_custom_domain(&self, d: &StoredCustomDomain) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "INSERT INTO custom_domains (name, account_id, etag, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(&d.domain.domain_name)
        .bind(&d.domain.account_id)
        .bind(&d.etag)
        .bind(serde_json::to_string(&d.domain)?)
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

    async fn get_custom_domain(
        &self,
        name: &str,
    ) -> Result<Option<StoredCustomDomain>, StoreError> {
        let row = sqlx::query("SELECT etag, body FROM custom_domains WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(domain_from_row).transpose()
    }

    async fn replace_custom_domain(
        &self,
        d: &StoredCustomDomain,
        expected_etag: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "UPDATE custom_domains SET etag = $1, body = $2
             WHERE name = $3 AND account_id = $4 AND etag = $5",
        )
        .bind(&d.etag)
        .bind(serde_json::to_string(&d.domain)?)
        .bind(&d.domain.domain_name)
        .bind(&d.domain.account_id)
        .bind(expected_etag)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 1 {
            tx.commit().await?;
            return Ok(());
        }
        drop(tx);
        match self.get_custom_domain(&d.domain.domain_name).await? {
            Some(cur) if cur.domain.account_id == d.domain.account_id => Err(StoreError::Conflict),
            _ => Err(StoreError::NotFound),
        }
    }

    async fn delete_custom_domain(
        &self,
        account: &str,
        name: &str,
        expected_etag: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let current: String =
            sqlx::query("SELECT etag FROM custom_domains WHERE name = $1 AND account_id = $2")
                .bind(name)
                .bind(account)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?
                .try_get("etag")?;
        if expected_etag.is_some_and(|e| e != current) {
            return Err(StoreError::Conflict);
        }
        sqlx::query("DELETE FROM custom_domains WHERE name = $1 AND account_id = $2")
            .bind(name)
            .bind(account)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_custom_domains(
        &self,
        account: &str,
        q: &ListQuery,
    ) -> Result<Vec<StoredCustomDomain>, StoreError> {
        let prefix = q.prefix.clone().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT etag, body FROM custom_domains
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
        rows.iter().map(domain_from_row).collect()
    }

    async fn all_custom_domains(&self) -> Result<Vec<StoredCustomDomain>, StoreError> {
        let rows = sqlx::query("SELECT etag, body FROM custom_domains ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(domain_from_row).collect()
    }
}
