//! [`TriggerStore`] on SQLite: triggers keyed by their function, custom domains keyed by name
//! alone (one namespace for the whole server). Bodies are the `fcd_core` records as JSON; the
//! columns beside them key, order and guard them.

use async_trait::async_trait;
use sqlx::Row;

use super::{SqliteStore, is_unique_violation};
use crate::triggers::{OwnedTrigger, StoredCustomDomain, StoredTrigger, TriggerStore};
use crate::{ListQuery, StoreError};

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

/// The schema step that creates the trigger and custom-domain tables (migration 6). The
/// foreign key to `functions` is a second line of defence: `delete_function` refuses on its
/// own, with a typed error, before the key would.
pub(super) const MIGRATION: &str = "CREATE TABLE triggers (
        account_id TEXT NOT NULL,
        service_name TEXT NOT NULL,
        function_name TEXT NOT NULL,
        name TEXT NOT NULL,
        trigger_type TEXT NOT NULL,
        qualifier TEXT NOT NULL,
        etag TEXT NOT NULL,
        body TEXT NOT NULL,
        PRIMARY KEY (account_id, service_name, function_name, name),
        FOREIGN KEY (account_id, service_name, function_name)
            REFERENCES functions (account_id, service_name, name)
    );
    CREATE INDEX triggers_by_type ON triggers (trigger_type);
    CREATE TABLE custom_domains (
        name TEXT NOT NULL PRIMARY KEY,
        account_id TEXT NOT NULL,
        etag TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX custom_domains_by_account ON custom_domains (account_id, name);";

fn trigger_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredTrigger, StoreError> {
    let body: String = row.try_get("body")?;
    Ok(StoredTrigger {
        trigger: serde_json::from_str(&body)?,
        etag: row.try_get("etag")?,
    })
}

fn domain_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredCustomDomain, StoreError> {
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
        "SELECT 1 FROM triggers WHERE account_id = ? AND service_name = ? AND function_name = ? LIMIT 1",
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
         WHERE account_id = ? AND service_name = ? AND function_name = ?
           AND trigger_type = 'http' AND qualifier = ? AND name <> ?
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
impl TriggerStore for SqliteStore {
    async fn insert_trigger(
        &self,
        account: &str,
        service: &str,
        function: &str,
        t: &StoredTrigger,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(&t.trigger)?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists = sqlx::query(
            "SELECT 1 FROM functions WHERE account_id = ? AND service_name = ? AND name = ?",
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
             WHERE account_id = ? AND service_name = ? AND function_name = ? AND name = ?",
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<String> = sqlx::query(
            "SELECT etag FROM triggers
             WHERE account_id = ? AND service_name = ? AND function_name = ? AND name = ?",
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
            "UPDATE triggers SET trigger_type = ?, qualifier = ?, etag = ?, body = ?
             WHERE account_id = ? AND service_name = ? AND function_name = ? AND name = ?",
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: String = sqlx::query(
            "SELECT etag FROM triggers
             WHERE account_id = ? AND service_name = ? AND function_name = ? AND name = ?",
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
             WHERE account_id = ? AND service_name = ? AND function_name = ? AND name = ?",
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
             WHERE account_id = ? AND service_name = ? AND function_name = ?
               AND substr(name, 1, ?) = ? AND name >= ?
             ORDER BY name LIMIT ?",
        )
        .bind(account)
        .bind(service)
        .bind(function)
        .bind(prefix.chars().count() as i64)
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
             WHERE account_id = ? AND service_name = ? AND function_name = ?
               AND trigger_type = ? AND qualifier = ?
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
             WHERE trigger_type = ?
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
        let res = sqlx::query(
            "INSERT INTO custom_domains (name, account_id, etag, body) VALUES (?, ?, ?, ?)",
        )
        .bind(&d.domain.domain_name)
        .bind(&d.domain.account_id)
        .bind(&d.etag)
        .bind(serde_json::to_string(&d.domain)?)
        .execute(&self.pool)
        .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::AlreadyExists),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_custom_domain(
        &self,
        name: &str,
    ) -> Result<Option<StoredCustomDomain>, StoreError> {
        let row = sqlx::query("SELECT etag, body FROM custom_domains WHERE name = ?")
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
        let res = sqlx::query(
            "UPDATE custom_domains SET etag = ?, body = ?
             WHERE name = ? AND account_id = ? AND etag = ?",
        )
        .bind(&d.etag)
        .bind(serde_json::to_string(&d.domain)?)
        .bind(&d.domain.domain_name)
        .bind(&d.domain.account_id)
        .bind(expected_etag)
        .execute(&self.pool)
        .await?;
        if res.rows_affected() == 1 {
            return Ok(());
        }
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
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: String =
            sqlx::query("SELECT etag FROM custom_domains WHERE name = ? AND account_id = ?")
                .bind(name)
                .bind(account)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?
                .try_get("etag")?;
        if expected_etag.is_some_and(|e| e != current) {
            return Err(StoreError::Conflict);
        }
        sqlx::query("DELETE FROM custom_domains WHERE name = ? AND account_id = ?")
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
        rows.iter().map(domain_from_row).collect()
    }

    async fn all_custom_domains(&self) -> Result<Vec<StoredCustomDomain>, StoreError> {
        let rows = sqlx::query("SELECT etag, body FROM custom_domains ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(domain_from_row).collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{MetadataStore, StoredFunction, StoredService};
    use fcd_core::domains::{CustomDomainInput, PathConfig, RouteConfig};
    use fcd_core::model::{CodeRef, Function, FunctionUpdate, Service, ServiceUpdate};
    use fcd_core::triggers::{Trigger, TriggerInput};
    use serde_json::json;

    async fn open() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("meta.db"))
            .await
            .unwrap();
        (dir, store)
    }

    async fn with_function(s: &SqliteStore, account: &str, service: &str, function: &str) {
        let svc = StoredService {
            service: Service::create(
                "id".into(),
                service.into(),
                ServiceUpdate::default(),
                "t".into(),
            )
            .unwrap(),
            etag: "se".into(),
        };
        // The service may already be there.
        let _ = s.insert_service(account, &svc).await;
        let u = FunctionUpdate {
            runtime: Some("custom".into()),
            ..Default::default()
        };
        let code = CodeRef {
            checksum: "1".into(),
            size: 1,
        };
        let f = StoredFunction {
            function: Function::create("fid".into(), function.into(), u, code, "t".into()).unwrap(),
            code_digest: "d".into(),
            etag: "fe".into(),
        };
        s.insert_function(account, service, &f).await.unwrap();
    }

    fn trigger(name: &str, kind: &str, qualifier: &str, etag: &str) -> StoredTrigger {
        let config = match kind {
            "http" => json!({"authType": "anonymous", "methods": ["GET"]}),
            _ => json!({"cronExpression": "@every 1m", "enable": true}),
        };
        let t = Trigger::create(
            format!("id-{name}"),
            TriggerInput {
                trigger_name: Some(name.into()),
                trigger_type: Some(kind.into()),
                qualifier: Some(qualifier.into()),
                trigger_config: Some(config),
                ..TriggerInput::default()
            },
            "t".into(),
        )
        .unwrap();
        StoredTrigger {
            trigger: t,
            etag: etag.into(),
        }
    }

    #[tokio::test]
    async fn triggers_crud_paging_and_rules() {
        let (_d, s) = open().await;
        assert!(matches!(
            s.insert_trigger("acc", "s", "f", &trigger("h", "http", "LATEST", "e1"))
                .await,
            Err(StoreError::ParentNotFound)
        ));
        with_function(&s, "acc", "s", "f").await;
        with_function(&s, "acc", "s", "g").await;
        s.insert_trigger("acc", "s", "f", &trigger("h", "http", "LATEST", "e1"))
            .await
            .unwrap();
        for kind in ["timer", "http"] {
            assert!(matches!(
                s.insert_trigger("acc", "s", "f", &trigger("h", kind, "LATEST", "e"))
                    .await,
                Err(StoreError::AlreadyExists)
            ));
        }
        // One http trigger per qualifier; another qualifier or another function is fine.
        assert!(matches!(
            s.insert_trigger("acc", "s", "f", &trigger("h2", "http", "LATEST", "e"))
                .await,
            Err(StoreError::HttpTriggerExists(n)) if n == "h"
        ));
        s.insert_trigger("acc", "s", "f", &trigger("h2", "http", "prod", "e2"))
            .await
            .unwrap();
        s.insert_trigger("acc", "s", "g", &trigger("h", "http", "LATEST", "e3"))
            .await
            .unwrap();
        for n in ["t1", "t2", "t3"] {
            s.insert_trigger("acc", "s", "f", &trigger(n, "timer", "LATEST", "et"))
                .await
                .unwrap();
        }

        let got = s.get_trigger("acc", "s", "f", "h").await.unwrap().unwrap();
        assert_eq!(got.etag, "e1");
        assert_eq!(got.trigger.trigger_type, "http");
        assert!(
            s.get_trigger("other", "s", "f", "h")
                .await
                .unwrap()
                .is_none()
        );

        let names = |v: Vec<StoredTrigger>| {
            v.into_iter()
                .map(|t| t.trigger.trigger_name)
                .collect::<Vec<_>>()
        };
        let q = |prefix: Option<&str>, from: Option<&str>, limit| ListQuery {
            prefix: prefix.map(Into::into),
            from: from.map(Into::into),
            limit,
        };
        assert_eq!(
            names(
                s.list_triggers("acc", "s", "f", &q(None, None, 10))
                    .await
                    .unwrap()
            ),
            ["h", "h2", "t1", "t2", "t3"]
        );
        assert_eq!(
            names(
                s.list_triggers("acc", "s", "f", &q(Some("t"), Some("t2"), 1))
                    .await
                    .unwrap()
            ),
            ["t2"]
        );
        assert_eq!(
            names(
                s.find_triggers("acc", "s", "f", "http", "prod")
                    .await
                    .unwrap()
            ),
            ["h2"]
        );

        // Replace: etag-guarded, and moving h2 onto LATEST would give LATEST two http triggers.
        let moved = trigger("h2", "http", "LATEST", "e4");
        assert!(matches!(
            s.replace_trigger("acc", "s", "f", &moved, "stale").await,
            Err(StoreError::Conflict)
        ));
        assert!(matches!(
            s.replace_trigger("acc", "s", "f", &moved, "e2").await,
            Err(StoreError::HttpTriggerExists(n)) if n == "h"
        ));
        // Replacing a trigger with itself on its own qualifier is no clash.
        s.replace_trigger("acc", "s", "f", &trigger("h", "http", "LATEST", "e5"), "e1")
            .await
            .unwrap();
        assert!(matches!(
            s.replace_trigger(
                "acc",
                "s",
                "f",
                &trigger("nope", "timer", "LATEST", "x"),
                "x"
            )
            .await,
            Err(StoreError::NotFound)
        ));

        let timers = s.all_triggers("timer").await.unwrap();
        assert_eq!(timers.len(), 3);
        assert!(
            timers
                .iter()
                .all(|t| t.account == "acc" && t.service == "s" && t.function == "f")
        );

        // A function with triggers cannot be deleted; without them it can.
        assert!(matches!(
            s.delete_function("acc", "s", "f").await,
            Err(StoreError::NotEmpty)
        ));
        assert!(s.get_function("acc", "s", "f").await.unwrap().is_some());
        assert!(matches!(
            s.delete_trigger("acc", "s", "f", "h", Some("e1")).await,
            Err(StoreError::Conflict)
        ));
        s.delete_trigger("acc", "s", "f", "h", Some("e5"))
            .await
            .unwrap();
        for n in ["h2", "t1", "t2", "t3"] {
            s.delete_trigger("acc", "s", "f", n, None).await.unwrap();
        }
        assert!(matches!(
            s.delete_trigger("acc", "s", "f", "h", None).await,
            Err(StoreError::NotFound)
        ));
        s.delete_function("acc", "s", "f").await.unwrap();
        assert!(s.all_triggers("timer").await.unwrap().is_empty());
    }

    fn domain(account: &str, name: &str, etag: &str) -> StoredCustomDomain {
        let d = fcd_core::domains::CustomDomain::create(
            account.into(),
            CustomDomainInput {
                domain_name: Some(name.into()),
                route_config: Some(RouteConfig {
                    routes: vec![PathConfig {
                        path: "/*".into(),
                        service_name: "s".into(),
                        function_name: "f".into(),
                        qualifier: String::new(),
                        methods: vec![],
                        rewrite_config: None,
                    }],
                }),
                ..CustomDomainInput::default()
            },
            "t".into(),
        )
        .unwrap();
        StoredCustomDomain {
            domain: d,
            etag: etag.into(),
        }
    }

    #[tokio::test]
    async fn custom_domains_are_one_namespace() {
        let (_d, s) = open().await;
        s.insert_custom_domain(&domain("acc", "a.example.test", "e1"))
            .await
            .unwrap();
        s.insert_custom_domain(&domain("acc", "b.example.test", "e2"))
            .await
            .unwrap();
        s.insert_custom_domain(&domain("acc2", "c.example.test", "e3"))
            .await
            .unwrap();
        // Another account cannot take a name already in use.
        assert!(matches!(
            s.insert_custom_domain(&domain("acc2", "a.example.test", "e"))
                .await,
            Err(StoreError::AlreadyExists)
        ));
        let got = s
            .get_custom_domain("a.example.test")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.domain.account_id, "acc");
        assert_eq!(got.domain.route_config.routes[0].qualifier, "LATEST");

        let names = |v: Vec<StoredCustomDomain>| {
            v.into_iter()
                .map(|d| d.domain.domain_name)
                .collect::<Vec<_>>()
        };
        let all = ListQuery {
            limit: 10,
            ..Default::default()
        };
        assert_eq!(
            names(s.list_custom_domains("acc", &all).await.unwrap()),
            ["a.example.test", "b.example.test"]
        );
        let paged = ListQuery {
            prefix: Some("b.".into()),
            from: Some("b".into()),
            limit: 1,
        };
        assert_eq!(
            names(s.list_custom_domains("acc", &paged).await.unwrap()),
            ["b.example.test"]
        );
        assert_eq!(s.all_custom_domains().await.unwrap().len(), 3);

        // Replace is etag-guarded and cannot touch another account's domain.
        let mut changed = domain("acc", "a.example.test", "e4");
        changed.domain.route_config.routes[0].function_name = "g".into();
        assert!(matches!(
            s.replace_custom_domain(&changed, "stale").await,
            Err(StoreError::Conflict)
        ));
        s.replace_custom_domain(&changed, "e1").await.unwrap();
        assert!(matches!(
            s.replace_custom_domain(&domain("acc2", "a.example.test", "x"), "e4")
                .await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            s.delete_custom_domain("acc2", "a.example.test", None).await,
            Err(StoreError::NotFound)
        ));
        assert!(matches!(
            s.delete_custom_domain("acc", "a.example.test", Some("e1"))
                .await,
            Err(StoreError::Conflict)
        ));
        s.delete_custom_domain("acc", "a.example.test", Some("e4"))
            .await
            .unwrap();
        assert!(
            s.get_custom_domain("a.example.test")
                .await
                .unwrap()
                .is_none()
        );
        // The name is free again, for any account.
        s.insert_custom_domain(&domain("acc2", "a.example.test", "e5"))
            .await
            .unwrap();
    }
}
