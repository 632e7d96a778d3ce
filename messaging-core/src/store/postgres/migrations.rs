//! Versioned schema migrations, kept in code, recorded in `schema_migrations`. They run in
//! one transaction under an advisory lock: processes that start together on an empty
//! database wait for each other, and each migration is applied once; a failed upgrade
//! changes nothing.
//!
//! The first migration is the schema of every part, each module owning its tables' DDL (in
//! the order their foreign keys need). Never edit a migration that has shipped: add one.

use super::{
    campaigns, catalog, coordination, dispatch, events, inbound, ingestions, outbox, pg_error,
};
use super::{poll_marks, receipts, users};
use crate::store::StoreError;

/// The advisory lock key migrations hold (any constant unlikely to be used by another
/// program on the same database: "msgplat" in ASCII).
const MIGRATION_LOCK: i64 = 0x006d_7367_706c_6174;

/// Every migration, in order, each as the DDL of its parts.
const MIGRATIONS: &[&[&str]] = &[
    &[
        users::SCHEMA,
        catalog::SCHEMA,
        events::SCHEMA,
        campaigns::SCHEMA,
        inbound::SCHEMA,
        outbox::SCHEMA,
        receipts::SCHEMA,
        dispatch::SCHEMA,
        coordination::SCHEMA,
        ingestions::SCHEMA,
        poll_marks::SCHEMA,
    ],
    &[outbox::FAN_OUT_LEASES],
];

/// How many migrations this build knows.
pub(crate) const LATEST: usize = MIGRATIONS.len();

/// Applies every migration the database has not seen yet (see the module docs).
pub(crate) async fn apply(client: &mut deadpool_postgres::Object) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(pg_error)?;
    let applied: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(pg_error)?
        .get(0);
    let applied = usize::try_from(applied).unwrap_or(0);
    if applied > LATEST {
        return Err(StoreError::database(format!(
            "the database is at schema version {applied}, newer than this build's {LATEST}; \
             upgrade the program"
        )));
    }
    for (index, parts) in MIGRATIONS.iter().enumerate().skip(applied) {
        let version = index as i32 + 1;
        for part in parts.iter().filter(|part| !part.trim().is_empty()) {
            tx.batch_execute(part).await.map_err(|error| {
                let error = pg_error(error);
                StoreError::database(format!("migration {version} failed: {error}"))
            })?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(pg_error)?;
        tracing::info!(version, "applied database migration");
    }
    tx.commit().await.map_err(pg_error)?;
    Ok(())
}
