// [`IamStore`] on a SQL backend (included by the SQLite and the PostgreSQL store, which define
// `Store`, `DbRow` and `Tx` and how write and read transactions begin): one table per RAM
// entity (JSON bodies next to their keys, as the rest of the store), attachments as plain rows,
// and a one-row `iam_generation` that every write bumps inside its transaction.

use async_trait::async_trait;
use sqlx::Row;

use super::{DbRow, Store, Tx};
use crate::StoreError;
use crate::iam::{
    IamAccount, IamState, IamStore, IamStoreError, PolicyType, PrincipalKind, RamAccessKey,
    RamAttachment, RamPolicy, RamRole, RamUser,
};
use crate::sql::is_unique_violation;
use fcd_core::error::{RamConflict, RamEntity, RamLimit};

async fn bump(tx: &mut Tx<'_>) -> Result<(), IamStoreError> {
    sqlx::query("UPDATE iam_generation SET generation = generation + 1 WHERE id = 1")
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn exists(
    tx: &mut Tx<'_>,
    table: &'static str,
    account: &str,
    name: &str,
) -> Result<bool, IamStoreError> {
    // `table` is one of this module's constants, never input.
    let sql = format!("SELECT 1 FROM {table} WHERE account_id = $1 AND name = $2");
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
        .is_some())
}

async fn count(tx: &mut Tx<'_>, sql: &'static str, binds: &[&str]) -> Result<i64, IamStoreError> {
    let mut q = sqlx::query(sql);
    for b in binds {
        q = q.bind(*b);
    }
    Ok(q.fetch_one(&mut **tx).await?.try_get(0)?)
}

/// Inserts a JSON-bodied record keyed by (account, name); a taken name is `entity` existing.
async fn insert_named(
    store: &Store,
    table: &'static str,
    entity: RamEntity,
    account: &str,
    name: &str,
    body: String,
) -> Result<(), IamStoreError> {
    let mut tx = store.write_tx().await?;
    let sql = format!("INSERT INTO {table} (account_id, name, body) VALUES ($1, $2, $3)");
    let res = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(account)
        .bind(name)
        .bind(body)
        .execute(&mut *tx)
        .await;
    match res {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => return Err(IamStoreError::AlreadyExists(entity)),
        Err(e) => return Err(e.into()),
    }
    bump(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

fn body<T: serde::de::DeserializeOwned>(row: &DbRow) -> Result<T, StoreError> {
    let text: String = row.try_get("body")?;
    Ok(serde_json::from_str(&text)?)
}

#[async_trait]
impl IamStore for Store {
    async fn iam_generation(&self) -> Result<u64, StoreError> {
        let g: i64 = sqlx::query("SELECT generation FROM iam_generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(g as u64)
    }

    async fn iam_state(&self) -> Result<IamState, StoreError> {
        // One read transaction: the generation and the records agree.
        let mut tx = self.read_tx().await?;
        let generation: i64 = sqlx::query("SELECT generation FROM iam_generation WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let mut state = IamState {
            generation: generation as u64,
            ..IamState::default()
        };
        fn account<'a>(
            state: &'a mut IamState,
            row: &DbRow,
        ) -> Result<&'a mut IamAccount, StoreError> {
            let id: String = row.try_get("account_id")?;
            Ok(state.accounts.entry(id).or_default())
        }
        for row in sqlx::query("SELECT account_id, body FROM ram_users ORDER BY account_id, name")
            .fetch_all(&mut *tx)
            .await?
        {
            let user: RamUser = body(&row)?;
            account(&mut state, &row)?.users.push(user);
        }
        for row in sqlx::query("SELECT account_id, body FROM ram_access_keys ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
        {
            let key: RamAccessKey = body(&row)?;
            account(&mut state, &row)?.access_keys.push(key);
        }
        for row in
            sqlx::query("SELECT account_id, body FROM ram_policies ORDER BY account_id, name")
                .fetch_all(&mut *tx)
                .await?
        {
            let policy: RamPolicy = body(&row)?;
            account(&mut state, &row)?.policies.push(policy);
        }
        for row in sqlx::query("SELECT account_id, body FROM ram_roles ORDER BY account_id, name")
            .fetch_all(&mut *tx)
            .await?
        {
            let role: RamRole = body(&row)?;
            account(&mut state, &row)?.roles.push(role);
        }
        for row in sqlx::query(
            "SELECT account_id, principal_kind, principal_name, policy_type, policy_name, attach_date
             FROM ram_attachments ORDER BY account_id, seq",
        )
        .fetch_all(&mut *tx)
        .await?
        {
            let kind: String = row.try_get("principal_kind")?;
            let policy_type: String = row.try_get("policy_type")?;
            let attachment = RamAttachment {
                kind: PrincipalKind::parse(&kind)
                    .ok_or_else(|| StoreError::Backend(format!("bad principal kind {kind}")))?,
                principal: row.try_get("principal_name")?,
                policy_type: PolicyType::parse(&policy_type)
                    .ok_or_else(|| StoreError::Backend(format!("bad policy type {policy_type}")))?,
                policy_name: row.try_get("policy_name")?,
                attach_date: row.try_get("attach_date")?,
            };
            account(&mut state, &row)?.attachments.push(attachment);
        }
        tx.commit().await?;
        Ok(state)
    }

    async fn create_ram_user(&self, account: &str, user: &RamUser) -> Result<(), IamStoreError> {
        let body = serde_json::to_string(user)?;
        insert_named(
            self,
            "ram_users",
            RamEntity::User,
            account,
            &user.user_name,
            body,
        )
        .await
    }

    async fn delete_ram_user(&self, account: &str, name: &str) -> Result<(), IamStoreError> {
        let mut tx = self.write_tx().await?;
        if !exists(&mut tx, "ram_users", account, name).await? {
            return Err(IamStoreError::NotFound(RamEntity::User));
        }
        let keys = count(
            &mut tx,
            "SELECT COUNT(*) FROM ram_access_keys WHERE account_id = $1 AND user_name = $2",
            &[account, name],
        )
        .await?;
        if keys > 0 {
            return Err(IamStoreError::DeleteConflict(RamConflict::UserAccessKey));
        }
        let policies = count(
            &mut tx,
            "SELECT COUNT(*) FROM ram_attachments
             WHERE account_id = $1 AND principal_kind = 'User' AND principal_name = $2",
            &[account, name],
        )
        .await?;
        if policies > 0 {
            return Err(IamStoreError::DeleteConflict(RamConflict::UserPolicy));
        }
        sqlx::query("DELETE FROM ram_users WHERE account_id = $1 AND name = $2")
            .bind(account)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_ram_access_key(
        &self,
        account: &str,
        key: &RamAccessKey,
        max_per_user: usize,
    ) -> Result<(), IamStoreError> {
        let body = serde_json::to_string(key)?;
        let mut tx = self.write_tx().await?;
        if !exists(&mut tx, "ram_users", account, &key.user_name).await? {
            return Err(IamStoreError::NotFound(RamEntity::User));
        }
        let keys = count(
            &mut tx,
            "SELECT COUNT(*) FROM ram_access_keys WHERE account_id = $1 AND user_name = $2",
            &[account, &key.user_name],
        )
        .await?;
        if keys as usize >= max_per_user {
            return Err(IamStoreError::LimitExceeded(RamLimit::UserAccessKey));
        }
        let res = sqlx::query(
            "INSERT INTO ram_access_keys (id, account_id, user_name, body) VALUES ($1, $2, $3, $4)",
        )
        .bind(&key.access_key_id)
        .bind(account)
        .bind(&key.user_name)
        .bind(body)
        .execute(&mut *tx)
        .await;
        match res {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(IamStoreError::AlreadyExists(RamEntity::UserAccessKey));
            }
            Err(e) => return Err(e.into()),
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_ram_access_key(
        &self,
        account: &str,
        user_name: &str,
        access_key_id: &str,
    ) -> Result<(), IamStoreError> {
        let mut tx = self.write_tx().await?;
        if !exists(&mut tx, "ram_users", account, user_name).await? {
            return Err(IamStoreError::NotFound(RamEntity::User));
        }
        let res = sqlx::query(
            "DELETE FROM ram_access_keys WHERE id = $1 AND account_id = $2 AND user_name = $3",
        )
        .bind(access_key_id)
        .bind(account)
        .bind(user_name)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(IamStoreError::NotFound(RamEntity::UserAccessKey));
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_ram_policy(
        &self,
        account: &str,
        policy: &RamPolicy,
    ) -> Result<(), IamStoreError> {
        let body = serde_json::to_string(policy)?;
        insert_named(
            self,
            "ram_policies",
            RamEntity::Policy,
            account,
            &policy.policy_name,
            body,
        )
        .await
    }

    async fn delete_ram_policy(
        &self,
        account: &str,
        name: &str,
        cascade: bool,
    ) -> Result<(), IamStoreError> {
        let mut tx = self.write_tx().await?;
        if !exists(&mut tx, "ram_policies", account, name).await? {
            return Err(IamStoreError::NotFound(RamEntity::Policy));
        }
        if !cascade {
            for (kind, conflict) in [
                ("User", RamConflict::PolicyUser),
                ("Role", RamConflict::PolicyRole),
            ] {
                let n = count(
                    &mut tx,
                    "SELECT COUNT(*) FROM ram_attachments
                     WHERE account_id = $1 AND policy_type = 'Custom' AND policy_name = $2
                       AND principal_kind = $3",
                    &[account, name, kind],
                )
                .await?;
                if n > 0 {
                    return Err(IamStoreError::DeleteConflict(conflict));
                }
            }
        }
        sqlx::query(
            "DELETE FROM ram_attachments
             WHERE account_id = $1 AND policy_type = 'Custom' AND policy_name = $2",
        )
        .bind(account)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM ram_policies WHERE account_id = $1 AND name = $2")
            .bind(account)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn create_ram_role(&self, account: &str, role: &RamRole) -> Result<(), IamStoreError> {
        let body = serde_json::to_string(role)?;
        insert_named(
            self,
            "ram_roles",
            RamEntity::Role,
            account,
            &role.role_name,
            body,
        )
        .await
    }

    async fn delete_ram_role(&self, account: &str, name: &str) -> Result<(), IamStoreError> {
        let mut tx = self.write_tx().await?;
        if !exists(&mut tx, "ram_roles", account, name).await? {
            return Err(IamStoreError::NotFound(RamEntity::Role));
        }
        let policies = count(
            &mut tx,
            "SELECT COUNT(*) FROM ram_attachments
             WHERE account_id = $1 AND principal_kind = 'Role' AND principal_name = $2",
            &[account, name],
        )
        .await?;
        if policies > 0 {
            return Err(IamStoreError::DeleteConflict(RamConflict::RolePolicy));
        }
        sqlx::query("DELETE FROM ram_roles WHERE account_id = $1 AND name = $2")
            .bind(account)
            .bind(name)
            .execute(&mut *tx)
            .await?;
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn attach_ram_policy(
        &self,
        account: &str,
        a: &RamAttachment,
        max_custom_per_user: usize,
    ) -> Result<(), IamStoreError> {
        let (table, missing, taken) = match a.kind {
            PrincipalKind::User => ("ram_users", RamEntity::User, RamEntity::UserPolicy),
            PrincipalKind::Role => ("ram_roles", RamEntity::Role, RamEntity::RolePolicy),
        };
        let mut tx = self.write_tx().await?;
        if !exists(&mut tx, table, account, &a.principal).await? {
            return Err(IamStoreError::NotFound(missing));
        }
        if a.policy_type == PolicyType::Custom
            && !exists(&mut tx, "ram_policies", account, &a.policy_name).await?
        {
            return Err(IamStoreError::NotFound(RamEntity::Policy));
        }
        let attached = count(
            &mut tx,
            "SELECT COUNT(*) FROM ram_attachments
             WHERE account_id = $1 AND principal_kind = $2 AND principal_name = $3
               AND policy_type = $4 AND policy_name = $5",
            &[
                account,
                a.kind.as_str(),
                &a.principal,
                a.policy_type.as_str(),
                &a.policy_name,
            ],
        )
        .await?;
        if attached > 0 {
            return Err(IamStoreError::AlreadyExists(taken));
        }
        if a.kind == PrincipalKind::User && a.policy_type == PolicyType::Custom {
            let custom = count(
                &mut tx,
                "SELECT COUNT(*) FROM ram_attachments
                 WHERE account_id = $1 AND principal_kind = 'User' AND principal_name = $2
                   AND policy_type = 'Custom'",
                &[account, &a.principal],
            )
            .await?;
            if custom as usize >= max_custom_per_user {
                return Err(IamStoreError::LimitExceeded(RamLimit::UserPolicy));
            }
        }
        bump(&mut tx).await?;
        sqlx::query(
            "INSERT INTO ram_attachments
             (account_id, principal_kind, principal_name, policy_type, policy_name, attach_date, seq)
             VALUES ($1, $2, $3, $4, $5, $6, (SELECT generation FROM iam_generation WHERE id = 1))",
        )
        .bind(account)
        .bind(a.kind.as_str())
        .bind(&a.principal)
        .bind(a.policy_type.as_str())
        .bind(&a.policy_name)
        .bind(&a.attach_date)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn detach_ram_policy(
        &self,
        account: &str,
        kind: PrincipalKind,
        principal: &str,
        policy_type: PolicyType,
        policy_name: &str,
    ) -> Result<(), IamStoreError> {
        let (table, missing, unattached) = match kind {
            PrincipalKind::User => ("ram_users", RamEntity::User, RamEntity::UserPolicy),
            PrincipalKind::Role => ("ram_roles", RamEntity::Role, RamEntity::RolePolicy),
        };
        let mut tx = self.write_tx().await?;
        if !exists(&mut tx, table, account, principal).await? {
            return Err(IamStoreError::NotFound(missing));
        }
        if policy_type == PolicyType::Custom
            && !exists(&mut tx, "ram_policies", account, policy_name).await?
        {
            return Err(IamStoreError::NotFound(RamEntity::Policy));
        }
        let res = sqlx::query(
            "DELETE FROM ram_attachments
             WHERE account_id = $1 AND principal_kind = $2 AND principal_name = $3
               AND policy_type = $4 AND policy_name = $5",
        )
        .bind(account)
        .bind(kind.as_str())
        .bind(principal)
        .bind(policy_type.as_str())
        .bind(policy_name)
        .execute(&mut *tx)
        .await?;
        if res.rows_affected() == 0 {
            return Err(IamStoreError::NotFound(unattached));
        }
        bump(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
