//! The external services of the cluster tests, found through `FCD_TEST_POSTGRES` and
//! `FCD_TEST_NATS` (scripts/services starts them). Unset: the test says SKIPPED on stderr and
//! returns — unless `FCD_REQUIRE_SERVICES=1`, then it fails.

use sqlx::Connection;

fn service(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            if std::env::var("FCD_REQUIRE_SERVICES").as_deref() == Ok("1") {
                panic!("{var} is not set and FCD_REQUIRE_SERVICES=1");
            }
            eprintln!("SKIPPED (set {var}; scripts/services starts one)");
            None
        }
    }
}

fn random_suffix() -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{:x}{:x}", n, std::process::id())
}

/// A fresh database of its own on the test PostgreSQL: its URL.
pub(crate) async fn postgres() -> Option<String> {
    let base = service("FCD_TEST_POSTGRES")?;
    let name = format!("t_{}", random_suffix());
    let mut conn = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .unwrap();
    let (head, _) = base.rsplit_once('/').unwrap();
    Some(format!("{head}/{name}"))
}

/// The test NATS server with stream and consumer names of this test's own.
pub(crate) fn nats(ack_wait: std::time::Duration) -> Option<crate::NatsConfig> {
    let url = service("FCD_TEST_NATS")?;
    let s = random_suffix();
    Some(crate::NatsConfig {
        url,
        stream: format!("T_{s}"),
        subject: format!("t.{s}.work"),
        consumer: format!("w{s}"),
        ack_wait,
    })
}
