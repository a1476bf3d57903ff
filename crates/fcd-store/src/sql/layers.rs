// [`LayerStore`] on a SQL backend (included by both stores, like `metadata.rs`): a row per
// layer (ACL, highest version ever) and a row per version, whose body is the `fcd_core` record
// as JSON; the layer's ACL is read from the layer's row, not the body.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::Row;

use super::{DbRow, Store, Tx};
use crate::layers::LayerStore;
use crate::sql::prefix_len;
use crate::{ListQuery, StoreError};
use fcd_core::layers::{LayerVersion, parse_layer_arn};

fn version_from_row(row: &DbRow) -> Result<LayerVersion, StoreError> {
    let body: String = row.try_get("body")?;
    let mut v: LayerVersion = serde_json::from_str(&body)?;
    let acl: i64 = row.try_get("acl")?;
    v.acl = u8::from(acl != 0);
    Ok(v)
}

fn as_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Inside `referenced_code`'s snapshot: the packages of layer versions that must be kept —
/// every live version's, and a deleted version's while a function or published version (their
/// `layers`, given here with the account that owns them) still names it.
pub(super) async fn referenced_layer_code(
    tx: &mut Tx<'_>,
    named_by: &[(String, Vec<String>)],
) -> Result<HashSet<String>, StoreError> {
    let mut named: HashSet<(String, String, i64)> = HashSet::new();
    for (account, arns) in named_by {
        for arn in arns {
            // Malformed entries (stored before layers were checked) name nothing.
            if let Ok((_, r)) = parse_layer_arn(arn) {
                let owner = r.account.unwrap_or_else(|| account.clone());
                named.insert((owner, r.name, as_i64(r.version)));
            }
        }
    }
    let mut digests = HashSet::new();
    for row in sqlx::query("SELECT account_id, name, version, deleted, code_digest FROM layer_versions")
        .fetch_all(&mut **tx)
        .await?
    {
        let deleted: i64 = row.try_get("deleted")?;
        let keep = deleted == 0
            || named.contains(&(
                row.try_get("account_id")?,
                row.try_get("name")?,
                row.try_get("version")?,
            ));
        if keep {
            digests.insert(row.try_get("code_digest")?);
        }
    }
    Ok(digests)
}

#[async_trait]
impl LayerStore for Store {
    async fn publish_layer_version(
        &self,
        account: &str,
        v: &LayerVersion,
    ) -> Result<LayerVersion, StoreError> {
        let mut tx = self.write_tx().await?;
        let row = sqlx::query(
            "INSERT INTO layers (account_id, name, last_version, acl) VALUES ($1, $2, 1, 0)
             ON CONFLICT (account_id, name) DO UPDATE SET last_version = layers.last_version + 1
             RETURNING last_version, acl",
        )
        .bind(account)
        .bind(&v.layer_name)
        .fetch_one(&mut *tx)
        .await?;
        let version: i64 = row.try_get("last_version")?;
        let acl: i64 = row.try_get("acl")?;
        let mut stored = v.clone();
        stored.version = u64::try_from(version)
            .map_err(|_| StoreError::Backend(format!("layer version {version}")))?;
        stored.acl = u8::from(acl != 0);
        sqlx::query(
            "INSERT INTO layer_versions (account_id, name, version, deleted, code_digest, body)
             VALUES ($1, $2, $3, 0, $4, $5)",
        )
        .bind(account)
        .bind(&v.layer_name)
        .bind(version)
        .bind(&v.code_digest)
        .bind(serde_json::to_string(&stored)?)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn get_layer_version(
        &self,
        account: &str,
        name: &str,
        version: u64,
        deleted_too: bool,
    ) -> Result<Option<LayerVersion>, StoreError> {
        let row = sqlx::query(
            "SELECT v.body, l.acl FROM layer_versions v
             JOIN layers l ON l.account_id = v.account_id AND l.name = v.name
             WHERE v.account_id = $1 AND v.name = $2 AND v.version = $3
               AND (v.deleted = 0 OR $4)",
        )
        .bind(account)
        .bind(name)
        .bind(as_i64(version))
        .bind(deleted_too)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(version_from_row).transpose()
    }

    async fn list_layer_versions(
        &self,
        account: &str,
        name: &str,
        start: u64,
        limit: u32,
    ) -> Result<Vec<LayerVersion>, StoreError> {
        let rows = sqlx::query(
            "SELECT v.body, l.acl FROM layer_versions v
             JOIN layers l ON l.account_id = v.account_id AND l.name = v.name
             WHERE v.account_id = $1 AND v.name = $2 AND v.version >= $3 AND v.deleted = 0
             ORDER BY v.version LIMIT $4",
        )
        .bind(account)
        .bind(name)
        .bind(as_i64(start))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn list_layers(
        &self,
        account: &str,
        q: &ListQuery,
        public_only: bool,
    ) -> Result<Vec<LayerVersion>, StoreError> {
        let prefix = q.prefix.clone().unwrap_or_default();
        let rows = sqlx::query(
            "SELECT v.body, l.acl FROM layer_versions v
             JOIN layers l ON l.account_id = v.account_id AND l.name = v.name
             WHERE v.account_id = $1 AND v.deleted = 0
               AND substr(v.name, 1, $2) = $3 AND v.name >= $4
               AND (l.acl <> 0 OR NOT $5)
               AND v.version = (SELECT max(w.version) FROM layer_versions w
                                WHERE w.account_id = v.account_id AND w.name = v.name
                                  AND w.deleted = 0)
             ORDER BY v.name LIMIT $6",
        )
        .bind(account)
        .bind(prefix_len(&prefix))
        .bind(&prefix)
        .bind(q.from.clone().unwrap_or_default())
        .bind(public_only)
        .bind(i64::from(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(version_from_row).collect()
    }

    async fn delete_layer_version(
        &self,
        account: &str,
        name: &str,
        version: u64,
    ) -> Result<(), StoreError> {
        let res = sqlx::query(
            "UPDATE layer_versions SET deleted = 1
             WHERE account_id = $1 AND name = $2 AND version = $3 AND deleted = 0",
        )
        .bind(account)
        .bind(name)
        .bind(as_i64(version))
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn set_layer_acl(&self, account: &str, name: &str, acl: u8) -> Result<(), StoreError> {
        let mut tx = self.write_tx().await?;
        let live = sqlx::query(
            "SELECT 1 FROM layer_versions WHERE account_id = $1 AND name = $2 AND deleted = 0 LIMIT 1",
        )
        .bind(account)
        .bind(name)
        .fetch_optional(&mut *tx)
        .await?;
        if live.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query("UPDATE layers SET acl = $3 WHERE account_id = $1 AND name = $2")
            .bind(account)
            .bind(name)
            .bind(i64::from(acl))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
