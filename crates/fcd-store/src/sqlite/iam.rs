//! [`IamStore`] on SQLite: one table per RAM entity (JSON bodies next to their keys, as the
//! rest of the store), attachments as plain rows, and a one-row `iam_generation` that every
//! write bumps inside its transaction.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, is_unique_violation};
use crate::StoreError;
use crate::iam::{
    IamAccount, IamState, IamStore, IamStoreError, PolicyType, PrincipalKind, RamAccessKey,
    RamAttachment, RamPolicy, RamRole, RamUser,
};
use fcd_core::error::{RamConflict, RamEntity, RamLimit};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

/// The schema step that creates the IAM tables (appended to the store's migrations).
pub(super) const MIGRATION: &str = "CREATE TABLE ram_users (
        account_id TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, name)
    );
    CREATE TABLE ram_access_keys (
        id TEXT NOT NULL PRIMARY KEY,
        account_id TEXT NOT NULL,
        user_name TEXT NOT NULL,
        body TEXT NOT NULL,
        FOREIGN KEY (account_id, user_name) REFERENCES ram_users (account_id, name)
    );
    CREATE TABLE ram_policies (
        account_id TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, name)
    );
    CREATE TABLE ram_roles (
        account_id TEXT NOT NULL,
        name TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, name)
    );
    CREATE TABLE ram_attachments (
        account_id TEXT NOT NULL,
        principal_kind TEXT NOT NULL,
        principal_name TEXT NOT NULL,
        policy_type TEXT NOT NULL,
        policy_name TEXT NOT NULL,
        attach_date TEXT NOT NULL,
        -- The generation the attachment was made in: lists keep the order of attaching.
        seq INTEGER NOT NULL,
        PRIMARY KEY (account_id, principal_kind, principal_name, policy_type, policy_name)
    );
    CREATE INDEX ram_attachments_by_policy ON ram_attachments (account_id, policy_type, policy_name);
    CREATE TABLE iam_generation (
        id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
        generation INTEGER NOT NULL
    );
    INSERT INTO iam_generation (id, generation) VALUES (1, 0);";

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
    let sql = format!("SELECT 1 FROM {table} WHERE account_id = ? AND name = ?");
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
    store: &SqliteStore,
    table: &'static str,
    entity: RamEntity,
    account: &str,
    name: &str,
    body: String,
) -> Result<(), IamStoreError> {
    let mut tx = store.pool.begin_with("BEGIN IMMEDIATE").await?;
    let sql = format!("INSERT INTO {table} (account_id, name, body) VALUES (?, ?, ?)");
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

fn body<T: serde::de::DeserializeOwned>(row: &sqlx::sqlite::SqliteRow) -> Result<T, StoreError> {
    let text: String = row.try_get("body")?;
    Ok(serde_json::from_str(&text)?)
}

#[async_trait]
impl IamStore for SqliteStore {
    async fn iam_generation(&self) -> Result<u64, StoreError> {
        let g: i64 = sqlx::query("SELECT generation FROM iam_generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?;
        Ok(g as u64)
    }

    async fn iam_state(&self) -> Result<IamState, StoreError> {
        // One read transaction: the generation and the records agree.
        let mut tx = self.pool.begin().await?;
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
            row: &sqlx::sqlite::SqliteRow,
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !exists(&mut tx, "ram_users", account, name).await? {
            return Err(IamStoreError::NotFound(RamEntity::User));
        }
        let keys = count(
            &mut tx,
            "SELECT COUNT(*) FROM ram_access_keys WHERE account_id = ? AND user_name = ?",
            &[account, name],
        )
        .await?;
        if keys > 0 {
            return Err(IamStoreError::DeleteConflict(RamConflict::UserAccessKey));
        }
        let policies = count(
            &mut tx,
            "SELECT COUNT(*) FROM ram_attachments
             WHERE account_id = ? AND principal_kind = 'User' AND principal_name = ?",
            &[account, name],
        )
        .await?;
        if policies > 0 {
            return Err(IamStoreError::DeleteConflict(RamConflict::UserPolicy));
        }
        sqlx::query("DELETE FROM ram_users WHERE account_id = ? AND name = ?")
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !exists(&mut tx, "ram_users", account, &key.user_name).await? {
            return Err(IamStoreError::NotFound(RamEntity::User));
        }
        let keys = count(
            &mut tx,
            "SELECT COUNT(*) FROM ram_access_keys WHERE account_id = ? AND user_name = ?",
            &[account, &key.user_name],
        )
        .await?;
        if keys as usize >= max_per_user {
            return Err(IamStoreError::LimitExceeded(RamLimit::UserAccessKey));
        }
        let res = sqlx::query(
            "INSERT INTO ram_access_keys (id, account_id, user_name, body) VALUES (?, ?, ?, ?)",
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !exists(&mut tx, "ram_users", account, user_name).await? {
            return Err(IamStoreError::NotFound(RamEntity::User));
        }
        let res = sqlx::query(
            "DELETE FROM ram_access_keys WHERE id = ? AND account_id = ? AND user_name = ?",
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
                     WHERE account_id = ? AND policy_type = 'Custom' AND policy_name = ?
                       AND principal_kind = ?",
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
             WHERE account_id = ? AND policy_type = 'Custom' AND policy_name = ?",
        )
        .bind(account)
        .bind(name)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM ram_policies WHERE account_id = ? AND name = ?")
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        if !exists(&mut tx, "ram_roles", account, name).await? {
            return Err(IamStoreError::NotFound(RamEntity::Role));
        }
        let policies = count(
            &mut tx,
            "SELECT COUNT(*) FROM ram_attachments
             WHERE account_id = ? AND principal_kind = 'Role' AND principal_name = ?",
            &[account, name],
        )
        .await?;
        if policies > 0 {
            return Err(IamStoreError::DeleteConflict(RamConflict::RolePolicy));
        }
        sqlx::query("DELETE FROM ram_roles WHERE account_id = ? AND name = ?")
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
             WHERE account_id = ? AND principal_kind = ? AND principal_name = ?
               AND policy_type = ? AND policy_name = ?",
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
                 WHERE account_id = ? AND principal_kind = 'User' AND principal_name = ?
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
             VALUES (?, ?, ?, ?, ?, ?, (SELECT generation FROM iam_generation WHERE id = 1))",
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
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
             WHERE account_id = ? AND principal_kind = ? AND principal_name = ?
               AND policy_type = ? AND policy_name = ?",
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    async fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("meta.db"))
            .await
            .unwrap();
        (dir, store)
    }

    fn user(name: &str) -> RamUser {
        RamUser {
            user_id: format!("id-{name}"),
            user_name: name.into(),
            display_name: name.into(),
            comments: String::new(),
            email: String::new(),
            mobile_phone: String::new(),
            create_date: "2024-01-01T00:00:00Z".into(),
            update_date: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn key(id: &str, user: &str) -> RamAccessKey {
        RamAccessKey {
            access_key_id: id.into(),
            access_key_secret: format!("secret-{id}"),
            user_name: user.into(),
            status: "Active".into(),
            create_date: "2024-01-01T00:00:00Z".into(),
        }
    }

    fn policy(name: &str) -> RamPolicy {
        RamPolicy {
            policy_name: name.into(),
            description: String::new(),
            document: "{}".into(),
            default_version: "v1".into(),
            create_date: "t".into(),
            update_date: "t".into(),
        }
    }

    fn role(name: &str) -> RamRole {
        RamRole {
            role_id: format!("rid-{name}"),
            role_name: name.into(),
            arn: format!("acs:ram::1:role/{name}"),
            assume_role_policy_document: "{}".into(),
            description: String::new(),
            max_session_duration: 3600,
            create_date: "t".into(),
            update_date: "t".into(),
        }
    }

    fn attach(kind: PrincipalKind, who: &str, t: PolicyType, name: &str) -> RamAttachment {
        RamAttachment {
            kind,
            principal: who.into(),
            policy_type: t,
            policy_name: name.into(),
            attach_date: "t".into(),
        }
    }

    fn is<T: std::fmt::Debug>(r: Result<T, IamStoreError>, want: &str) {
        let got = format!("{:?}", r.map(|_| ()).unwrap_err());
        assert!(got.contains(want), "{got} should be {want}");
    }

    #[tokio::test]
    async fn every_write_bumps_the_generation_and_the_state_reads_back() {
        let (_d, s) = open().await;
        let g0 = s.iam_generation().await.unwrap();
        s.create_ram_user("a", &user("ci")).await.unwrap();
        s.create_ram_access_key("a", &key("K1", "ci"), 2)
            .await
            .unwrap();
        s.create_ram_policy("a", &policy("p")).await.unwrap();
        s.create_ram_role("a", &role("r")).await.unwrap();
        s.attach_ram_policy(
            "a",
            &attach(PrincipalKind::User, "ci", PolicyType::Custom, "p"),
            5,
        )
        .await
        .unwrap();
        s.attach_ram_policy(
            "a",
            &attach(
                PrincipalKind::Role,
                "r",
                PolicyType::System,
                "AliyunFCFullAccess",
            ),
            5,
        )
        .await
        .unwrap();
        let g1 = s.iam_generation().await.unwrap();
        assert_eq!(g1, g0 + 6);
        // A refused write changes nothing.
        is(
            s.create_ram_user("a", &user("ci")).await,
            "AlreadyExists(User)",
        );
        assert_eq!(s.iam_generation().await.unwrap(), g1);

        let state = s.iam_state().await.unwrap();
        assert_eq!(state.generation, g1);
        let acct = &state.accounts["a"];
        assert_eq!(acct.users, vec![user("ci")]);
        assert_eq!(acct.access_keys, vec![key("K1", "ci")]);
        assert_eq!(acct.policies, vec![policy("p")]);
        assert_eq!(acct.roles, vec![role("r")]);
        assert_eq!(acct.attachments.len(), 2);
        assert!(!state.accounts.contains_key("b"));
        // Accounts are separate namespaces.
        s.create_ram_user("b", &user("ci")).await.unwrap();
    }

    #[tokio::test]
    async fn quotas_and_conflicts() {
        let (_d, s) = open().await;
        is(
            s.create_ram_access_key("a", &key("K0", "nobody"), 2).await,
            "NotFound(User)",
        );
        s.create_ram_user("a", &user("u")).await.unwrap();
        s.create_ram_access_key("a", &key("K1", "u"), 2)
            .await
            .unwrap();
        is(
            s.create_ram_access_key("a", &key("K1", "u"), 2).await,
            "AlreadyExists(UserAccessKey)",
        );
        s.create_ram_access_key("a", &key("K2", "u"), 2)
            .await
            .unwrap();
        is(
            s.create_ram_access_key("a", &key("K3", "u"), 2).await,
            "LimitExceeded(UserAccessKey)",
        );
        is(
            s.delete_ram_user("a", "u").await,
            "DeleteConflict(UserAccessKey)",
        );
        is(
            s.delete_ram_access_key("a", "u", "K9").await,
            "NotFound(UserAccessKey)",
        );
        is(
            s.delete_ram_access_key("a", "x", "K1").await,
            "NotFound(User)",
        );
        s.delete_ram_access_key("a", "u", "K1").await.unwrap();
        s.delete_ram_access_key("a", "u", "K2").await.unwrap();

        for i in 0..6 {
            s.create_ram_policy("a", &policy(&format!("p{i}")))
                .await
                .unwrap();
        }
        for i in 0..5 {
            let a = attach(
                PrincipalKind::User,
                "u",
                PolicyType::Custom,
                &format!("p{i}"),
            );
            s.attach_ram_policy("a", &a, 5).await.unwrap();
        }
        let sixth = attach(PrincipalKind::User, "u", PolicyType::Custom, "p5");
        is(
            s.attach_ram_policy("a", &sixth, 5).await,
            "LimitExceeded(UserPolicy)",
        );
        // System policies do not count against the custom quota.
        let sys = attach(
            PrincipalKind::User,
            "u",
            PolicyType::System,
            "AdministratorAccess",
        );
        s.attach_ram_policy("a", &sys, 5).await.unwrap();
        is(
            s.attach_ram_policy("a", &sys, 5).await,
            "AlreadyExists(UserPolicy)",
        );
        let ghost = attach(PrincipalKind::User, "u", PolicyType::Custom, "ghost");
        is(
            s.attach_ram_policy("a", &ghost, 5).await,
            "NotFound(Policy)",
        );
        let nobody = attach(PrincipalKind::Role, "r", PolicyType::Custom, "p0");
        is(s.attach_ram_policy("a", &nobody, 5).await, "NotFound(Role)");

        is(
            s.delete_ram_user("a", "u").await,
            "DeleteConflict(UserPolicy)",
        );
        is(
            s.delete_ram_policy("a", "p0", false).await,
            "DeleteConflict(PolicyUser)",
        );
        s.create_ram_role("a", &role("r")).await.unwrap();
        s.attach_ram_policy(
            "a",
            &attach(PrincipalKind::Role, "r", PolicyType::Custom, "p5"),
            5,
        )
        .await
        .unwrap();
        is(
            s.delete_ram_policy("a", "p5", false).await,
            "DeleteConflict(PolicyRole)",
        );
        is(
            s.delete_ram_role("a", "r").await,
            "DeleteConflict(RolePolicy)",
        );
        // Cascading delete detaches everywhere.
        s.delete_ram_policy("a", "p5", true).await.unwrap();
        s.delete_ram_role("a", "r").await.unwrap();

        is(
            s.detach_ram_policy("a", PrincipalKind::User, "u", PolicyType::Custom, "p5")
                .await,
            "NotFound(Policy)",
        );
        for i in 0..5 {
            s.detach_ram_policy(
                "a",
                PrincipalKind::User,
                "u",
                PolicyType::Custom,
                &format!("p{i}"),
            )
            .await
            .unwrap();
        }
        is(
            s.detach_ram_policy("a", PrincipalKind::User, "u", PolicyType::Custom, "p0")
                .await,
            "NotFound(UserPolicy)",
        );
        s.detach_ram_policy(
            "a",
            PrincipalKind::User,
            "u",
            PolicyType::System,
            "AdministratorAccess",
        )
        .await
        .unwrap();
        s.delete_ram_user("a", "u").await.unwrap();
        is(s.delete_ram_user("a", "u").await, "NotFound(User)");
        let state = s.iam_state().await.unwrap();
        let acct = &state.accounts["a"];
        assert!(acct.users.is_empty() && acct.attachments.is_empty() && acct.roles.is_empty());
        assert_eq!(acct.policies.len(), 5);
    }
}
