// [`ConcurrencyStore`] on a SQL backend (included by both stores, like `metadata.rs`): one row
// per function, plain columns (there is nothing else to keep).

use async_trait::async_trait;
use sqlx::Row;

use super::{DbRow, Store};
use crate::StoreError;
use crate::concurrency::{ConcurrencyConfig, ConcurrencyQuery, ConcurrencyStore};

fn from_row(row: &DbRow) -> Result<ConcurrencyConfig, StoreError> {
    let reserved: i64 = row.try_get("reserved_concurrency")?;
    Ok(ConcurrencyConfig {
        service: row.try_get("service_name")?,
        function: row.try_get("function_name")?,
        reserved_concurrency: u32::try_from(reserved)
            .map_err(|_| StoreError::Backend(format!("corrupt reserved_concurrency {reserved}")))?,
        created_time: row.try_get("created_time")?,
        last_modified_time: row.try_get("last_modified_time")?,
    })
}

const COLUMNS: &str =
    "service_name, function_name, reserved_concurrency, created_time, last_modified_time";

#[async_trait]
impl ConcurrencyStore for Store {
    async fn put_concurrency_config(
        &self,
        account: &str,
        cfg: &ConcurrencyConfig,
    ) -> Result<ConcurrencyConfig, StoreError> {
        let mut tx = self.write_tx().await?;
        let exists = sqlx::query(
            "SELECT 1 FROM functions WHERE account_id = $1 AND service_name = $2 AND name = $3",
        )
        .bind(account)
        .bind(&cfg.service)
        .bind(&cfg.function)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !exists {
            return Err(StoreError::ParentNotFound);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO concurrency_configs
                (account_id, service_name, function_name, reserved_concurrency, created_time, last_modified_time)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (account_id, service_name, function_name)
             DO UPDATE SET reserved_concurrency = excluded.reserved_concurrency,
                           last_modified_time = excluded.last_modified_time
             RETURNING {COLUMNS}"
        )))
        .bind(account)
        .bind(&cfg.service)
        .bind(&cfg.function)
        .bind(i64::from(cfg.reserved_concurrency))
        .bind(&cfg.created_time)
        .bind(&cfg.last_modified_time)
        .fetch_one(&mut *tx)
        .await?;
        let stored = from_row(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn get_concurrency_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<Option<ConcurrencyConfig>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM concurrency_configs
             WHERE account_id = $1 AND service_name = $2 AND function_name = $3"
        )))
        .bind(account)
        .bind(service)
        .bind(function)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    async fn delete_concurrency_config(
        &self,
        account: &str,
        service: &str,
        function: &str,
    ) -> Result<(), StoreError> {
        let res = sqlx::query(
            "DELETE FROM concurrency_configs
             WHERE account_id = $1 AND service_name = $2 AND function_name = $3",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn list_concurrency_configs(
        &self,
        account: &str,
        q: &ConcurrencyQuery,
    ) -> Result<Vec<ConcurrencyConfig>, StoreError> {
        let (fs, ff) = q.from.clone().unwrap_or_default();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM concurrency_configs
             WHERE account_id = $1
               AND ($2 IS NULL OR service_name = $2)
               AND ($3 IS NULL OR function_name = $3)
               AND (service_name, function_name) >= ($4, $5)
             ORDER BY service_name, function_name LIMIT $6"
        )))
        .bind(account)
        .bind(q.service.as_deref())
        .bind(q.function.as_deref())
        .bind(fs)
        .bind(ff)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(from_row).collect()
    }
}
