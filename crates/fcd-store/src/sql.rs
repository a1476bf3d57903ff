//! What the two SQL backends share beyond the SQL itself. The store's logic is written once, in
//! `sql/metadata.rs`, `sql/iam.rs`, `sql/triggers.rs`, `sql/layers.rs` and `sql/concurrency.rs`, which `sqlite.rs` and `postgres.rs`
//! each `include!` into a submodule of their own after naming their database types
//! (`Store`, `DbRow`, `Tx`) and how their transactions begin — sqlx's traits are generic over
//! the database, but code written generically against them drowns in bounds, and the only
//! differences between the backends are those few names and connection setup.

/// A write lost to a unique key (both engines report it the same way through sqlx).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// The length bound to `substr(name, 1, $n)` in prefix listings, as an `INTEGER` (PostgreSQL's
/// `substr` takes `integer`, and a bound `bigint` would not resolve to it).
pub(crate) fn prefix_len(prefix: &str) -> i32 {
    i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX)
}

/// Whether a failure is the engine's rather than the request's: the database cannot be
/// reached, the connection broke, the pool had no connection to give in time, or the server
/// refuses work for now (SQLSTATE classes 08 connection exception, 53 insufficient resources,
/// 57P operator intervention such as a shutdown).
pub(crate) fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("53") || c.starts_with("57P")),
        _ => false,
    }
}
