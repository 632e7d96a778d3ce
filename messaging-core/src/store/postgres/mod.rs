//! The PostgreSQL adapter: one database shared by any number of processes on any number of
//! machines (`DATABASE_URL=postgres://USER@HOST/DATABASE`).
//!
//! Times are `timestamptz` kept to the millisecond (as the SQLite adapter keeps them, so both
//! answer the same values), ids are `uuid`, attributes and other JSON are `jsonb`. Every call
//! takes a pooled connection ([deadpool-postgres](deadpool_postgres)) whose prepared statements
//! are cached, and every multi-row write is one transaction of set-based statements (arrays
//! passed as parameters, or binary `COPY`), never a round trip per row.
//!
//! Guarantees that rest on one writer in SQLite rest here on the statements themselves: claims
//! take rows `FOR UPDATE SKIP LOCKED`, every later update is conditional on the state it
//! expects, and the schema is migrated under an advisory lock, so processes starting together
//! on an empty database apply each migration once. See `docs/SCALING.md`.

mod campaigns;
mod catalog;
mod coordination;
mod dispatch;
mod events;
mod inbound;
mod ingestions;
mod migrations;
mod outbox;
mod poll_marks;
mod receipts;
mod scratch;
mod segment_params;
mod stats;
mod users;

use std::str::FromStr as _;
use std::time::Duration;

use chrono::{DateTime, SubsecRound as _, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

pub use scratch::{DEFAULT_SCRATCH_SERVER, SCRATCH_SERVER_VARIABLE, ScratchDatabase};

use super::StoreError;

/// Connections one process keeps open to the database at most. Calls beyond it wait for a
/// connection; several processes together should stay under the server's `max_connections`.
pub const POOL_SIZE: usize = 16;

/// How long a call waits for a free pooled connection (or a new one) before failing as busy.
const POOL_WAIT: Duration = Duration::from_secs(30);

/// A [`Store`](super::Store) on a PostgreSQL database.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("status", &self.pool.status())
            .finish()
    }
}

impl PgStore {
    /// Connects to the database a `postgres://` (or `postgresql://`) URL names and brings its
    /// schema up to date; the database itself must exist.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let config = parse_url(url)?;
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                // A connection that broke is found out by its next statement, which fails
                // as busy and is tried again by the caller; checking each one before use
                // would cost a round trip per call.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(POOL_WAIT))
            .build()
            .map_err(|error| StoreError::database(format!("cannot make a pool: {error}")))?;
        let store = Self { pool };
        let mut client = store.client().await.map_err(|error| {
            StoreError::database(format!(
                "cannot connect to the PostgreSQL database {}: {error}",
                redacted(url)
            ))
        })?;
        migrations::apply(&mut client).await?;
        Ok(store)
    }

    /// A pooled connection.
    pub(crate) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }
}

/// The schema version this build writes.
pub const SCHEMA_VERSION: usize = migrations::LATEST;

/// Reads a `postgres://` URL into the client's configuration (its scheme in any case).
fn parse_url(url: &str) -> Result<tokio_postgres::Config, StoreError> {
    let url = url.trim();
    let normalised = match url.split_once("://") {
        Some((scheme, rest)) => format!("{}://{rest}", scheme.to_ascii_lowercase()),
        None => url.to_owned(),
    };
    let mut config = tokio_postgres::Config::from_str(&normalised).map_err(|error| {
        StoreError::database(format!(
            "cannot read the database URL {}: {error}",
            redacted(url)
        ))
    })?;
    if config.get_application_name().is_none() {
        config.application_name("messaging-platform");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    Ok(config)
}

pub(crate) use crate::store::redact_url as redacted;

/// A time as the schema keeps it: to the millisecond, like the SQLite adapter, so a value
/// read back equals the one written on either backend.
pub(crate) fn ts(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(3)
}

#[allow(dead_code)] // used as the parts are written
pub(crate) fn corrupt(error: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(error.to_string())
}

/// Converts a driver error into the store's error: a unique key taken by another write is a
/// [`StoreError::Conflict`]; a serialisation failure, a deadlock, a lock not available, a
/// connection lost or refused are [`StoreError::Busy`], worth trying again.
pub(crate) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    let retryable = [
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CONNECTION_FAILURE,
        SqlState::CONNECTION_EXCEPTION,
    ];
    let message = match error.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {detail}", db.message()),
            None => db.message().to_owned(),
        },
        None => error.to_string(),
    };
    match error.code() {
        Some(code) if *code == SqlState::UNIQUE_VIOLATION => StoreError::Conflict {
            message,
            cause: Some(Box::new(error)),
        },
        Some(code) if retryable.contains(code) => StoreError::Busy(message),
        None if error.is_closed() => StoreError::Busy(message),
        _ => StoreError::Database {
            message,
            cause: Some(Box::new(error)),
        },
    }
}

fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match error {
        PoolError::Backend(error) => pg_error(error),
        PoolError::Timeout(_) => StoreError::Busy(
            "no database connection became free in time (every pooled connection is in use)"
                .to_owned(),
        ),
        other => StoreError::database(other.to_string()),
    }
}

/// A store on a scratch database of its own, for the adapter's tests (dropped with the
/// second value).
#[cfg(test)]
pub(crate) async fn scratch() -> (PgStore, ScratchDatabase) {
    let database = ScratchDatabase::create()
        .await
        .expect("a PostgreSQL server for the adapter's tests (see TEST_DATABASE_URL)");
    let store = PgStore::connect(database.url()).await.unwrap();
    (store, database)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Processes starting together on an empty database: each migration is applied once and
    /// every one of them opens the database.
    #[tokio::test(flavor = "multi_thread")]
    async fn processes_starting_together_migrate_once() {
        let database = ScratchDatabase::create().await.unwrap();
        let opens = (0..4).map(|_| {
            let url = database.url().to_owned();
            tokio::spawn(async move { PgStore::connect(&url).await.map(|_| ()) })
        });
        for open in opens {
            open.await
                .unwrap()
                .expect("every process opens the database");
        }
        let store = PgStore::connect(database.url()).await.unwrap();
        let client = store.client().await.unwrap();
        let versions: Vec<i32> = client
            .query(
                "SELECT version FROM schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(versions, (1..=SCHEMA_VERSION as i32).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_database_that_is_not_there_is_named_in_the_error() {
        let error = PgStore::connect("postgres://postgres@127.0.0.1:5432/no_such_database_here")
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("no_such_database_here"),
            "{error}"
        );
    }

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redacted("postgres://app:s3cret@db.internal:5432/messaging"),
            "postgres://app:***@db.internal:5432/messaging"
        );
        assert_eq!(
            redacted("postgres://app@db.internal/messaging"),
            "postgres://app@db.internal/messaging"
        );
    }

    #[test]
    fn urls_are_read_whatever_the_scheme_case() {
        let config = parse_url("PostgreSQL://app@db.internal:6543/messaging").unwrap();
        assert_eq!(config.get_dbname(), Some("messaging"));
        assert_eq!(config.get_ports(), &[6543]);
        assert!(parse_url("postgres://app@db/x?nonsense=1").is_err());
    }

    #[test]
    fn times_keep_milliseconds() {
        let at = DateTime::parse_from_rfc3339("2026-11-24T10:00:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(ts(at).timestamp_subsec_nanos(), 123_000_000);
    }
}
