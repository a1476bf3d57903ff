// [`TagStore`] on a SQL backend (included by both stores, like `metadata.rs`): tags keyed by
// (account, ARN, key) with their owning service and function beside them ('' for a service's
// own tags), and VPC bindings keyed by (account, service, VPC id).

use async_trait::async_trait;
use sqlx::Row;

use super::{Store, Tx};
use crate::StoreError;
use crate::tags::{TagKind, TagOwner, TagStore, TaggedResource};

/// Inside `delete_service`'s transaction: the tags of the service and of its functions, and
/// its VPC bindings.
pub(super) async fn drop_service_tags(
    tx: &mut Tx<'_>,
    account: &str,
    service: &str,
) -> Result<(), StoreError> {
    for sql in [
        "DELETE FROM resource_tags WHERE account_id = $1 AND service_name = $2",
        "DELETE FROM vpc_bindings WHERE account_id = $1 AND service_name = $2",
    ] {
        sqlx::query(sql)
            .bind(account)
            .bind(service)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Inside `delete_function`'s transaction: the function's tags.
pub(super) async fn drop_function_tags(
    tx: &mut Tx<'_>,
    account: &str,
    service: &str,
    function: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM resource_tags WHERE account_id = $1 AND service_name = $2 AND function_name = $3",
    )
    .bind(account)
    .bind(service)
    .bind(function)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn owner_exists(tx: &mut Tx<'_>, account: &str, owner: &TagOwner) -> Result<bool, StoreError> {
    let row = match &owner.function {
        None => {
            sqlx::query("SELECT 1 FROM services WHERE account_id = $1 AND name = $2")
                .bind(account)
                .bind(&owner.service)
                .fetch_optional(&mut **tx)
                .await?
        }
        Some(f) => {
            sqlx::query(
                "SELECT 1 FROM functions WHERE account_id = $1 AND service_name = $2 AND name = $3",
            )
            .bind(account)
            .bind(&owner.service)
            .bind(f)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    Ok(row.is_some())
}

#[async_trait]
impl TagStore for Store {
    async fn tag_resource(
        &self,
        account: &str,
        arn: &str,
        owner: &TagOwner,
        tags: &[(String, String)],
        max_tags: usize,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        if !owner_exists(&mut tx, account, owner).await? {
            return Err(StoreError::ParentNotFound);
        }
        for (k, v) in tags {
            sqlx::query(
                "INSERT INTO resource_tags
                     (account_id, resource_arn, service_name, function_name, tag_key, tag_value)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (account_id, resource_arn, tag_key)
                 DO UPDATE SET tag_value = excluded.tag_value",
            )
            .bind(account)
            .bind(arn)
            .bind(&owner.service)
            .bind(owner.function.as_deref().unwrap_or(""))
            .bind(k)
            .bind(v)
            .execute(&mut *tx)
            .await?;
        }
        let count: i64 = sqlx::query(
            "SELECT COUNT(*) FROM resource_tags WHERE account_id = $1 AND resource_arn = $2",
        )
        .bind(account)
        .bind(arn)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if usize::try_from(count).unwrap_or(usize::MAX) > max_tags {
            // Dropping the transaction rolls the new tags back.
            return Err(StoreError::LimitExceeded(format!(
                "a resource carries at most {max_tags} tags; {arn} would carry {count}"
            )));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn untag_resource(
        &self,
        account: &str,
        arn: &str,
        keys: Option<&[String]>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        match keys {
            None => {
                sqlx::query("DELETE FROM resource_tags WHERE account_id = $1 AND resource_arn = $2")
                    .bind(account)
                    .bind(arn)
                    .execute(&mut *tx)
                    .await?;
            }
            Some(keys) => {
                for k in keys {
                    sqlx::query(
                        "DELETE FROM resource_tags
                         WHERE account_id = $1 AND resource_arn = $2 AND tag_key = $3",
                    )
                    .bind(account)
                    .bind(arn)
                    .bind(k)
                    .execute(&mut *tx)
                    .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn resource_tags(
        &self,
        account: &str,
        arn: &str,
    ) -> Result<Vec<(String, String)>, StoreError> {
        let rows = sqlx::query(
            "SELECT tag_key, tag_value FROM resource_tags
             WHERE account_id = $1 AND resource_arn = $2 ORDER BY tag_key",
        )
        .bind(account)
        .bind(arn)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("tag_key")?, r.try_get("tag_value")?)))
            .collect()
    }

    async fn list_tagged_resources(
        &self,
        account: &str,
        kind: TagKind,
        from: Option<&str>,
        limit: u32,
    ) -> Result<Vec<TaggedResource>, StoreError> {
        // A service's own tags have no function; a function's always have one.
        let sql = match kind {
            TagKind::Services => {
                "SELECT resource_arn, tag_key, tag_value FROM resource_tags
                 WHERE account_id = $1 AND resource_arn IN (
                     SELECT DISTINCT resource_arn FROM resource_tags
                     WHERE account_id = $1 AND function_name = '' AND resource_arn >= $2
                     ORDER BY resource_arn LIMIT $3)
                 ORDER BY resource_arn, tag_key"
            }
            TagKind::Functions => {
                "SELECT resource_arn, tag_key, tag_value FROM resource_tags
                 WHERE account_id = $1 AND resource_arn IN (
                     SELECT DISTINCT resource_arn FROM resource_tags
                     WHERE account_id = $1 AND function_name <> '' AND resource_arn >= $2
                     ORDER BY resource_arn LIMIT $3)
                 ORDER BY resource_arn, tag_key"
            }
        };
        let rows = sqlx::query(sql)
            .bind(account)
            .bind(from.unwrap_or(""))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<TaggedResource> = Vec::new();
        for r in &rows {
            let arn: String = r.try_get("resource_arn")?;
            let tag = (r.try_get("tag_key")?, r.try_get("tag_value")?);
            match out.last_mut() {
                Some(last) if last.arn == arn => last.tags.push(tag),
                _ => out.push(TaggedResource {
                    arn,
                    tags: vec![tag],
                }),
            }
        }
        Ok(out)
    }

    async fn put_vpc_binding(
        &self,
        account: &str,
        service: &str,
        vpc_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let owner = TagOwner {
            service: service.to_owned(),
            function: None,
        };
        if !owner_exists(&mut tx, account, &owner).await? {
            return Err(StoreError::ParentNotFound);
        }
        sqlx::query(
            "INSERT INTO vpc_bindings (account_id, service_name, vpc_id) VALUES ($1, $2, $3)
             ON CONFLICT (account_id, service_name, vpc_id) DO NOTHING",
        )
        .bind(account)
        .bind(service)
        .bind(vpc_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_vpc_binding(
        &self,
        account: &str,
        service: &str,
        vpc_id: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let res = sqlx::query(
            "DELETE FROM vpc_bindings WHERE account_id = $1 AND service_name = $2 AND vpc_id = $3",
        )
        .bind(account)
        .bind(service)
        .bind(vpc_id)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_vpc_bindings(
        &self,
        account: &str,
        service: &str,
    ) -> Result<Vec<String>, StoreError> {
        let rows = sqlx::query(
            "SELECT vpc_id FROM vpc_bindings
             WHERE account_id = $1 AND service_name = $2 ORDER BY vpc_id",
        )
        .bind(account)
        .bind(service)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get("vpc_id")?))
            .collect()
    }
}
