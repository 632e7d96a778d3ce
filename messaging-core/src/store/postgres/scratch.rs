//! Throw-away databases for tests and benchmarks: each run gets a fresh, empty database on a
//! PostgreSQL server, dropped when the run is done, so runs never see each other's rows.

use tokio_postgres::NoTls;

use super::{parse_url, pg_error, redacted};
use crate::store::StoreError;

/// The variable that names the server scratch databases are made on, as a URL of a database
/// that exists there (the connection creates and drops the others).
pub const SCRATCH_SERVER_VARIABLE: &str = "TEST_DATABASE_URL";

/// Where scratch databases are made when [`SCRATCH_SERVER_VARIABLE`] is not set: the local
/// server's `postgres` database, as user `postgres`.
pub const DEFAULT_SCRATCH_SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, dropped (with any connections still open to it) when this value is.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates an empty database on the server [`SCRATCH_SERVER_VARIABLE`] names (or
    /// [`DEFAULT_SCRATCH_SERVER`]).
    pub async fn create() -> Result<Self, StoreError> {
        let admin_url = std::env::var(SCRATCH_SERVER_VARIABLE)
            .unwrap_or_else(|_| DEFAULT_SCRATCH_SERVER.to_owned());
        Self::create_on(&admin_url).await
    }

    /// Creates an empty database on the server `admin_url` reaches (a URL of any database
    /// there whose user may create databases).
    pub async fn create_on(admin_url: &str) -> Result<Self, StoreError> {
        let name = format!("scratch_{}", uuid::Uuid::now_v7().simple());
        execute(admin_url, &format!("CREATE DATABASE {name}")).await?;
        let url = match admin_url.split_once('?') {
            Some((base, query)) => format!("{}/{name}?{query}", parent(base)),
            None => format!("{}/{name}", parent(admin_url)),
        };
        Ok(Self {
            admin_url: admin_url.to_owned(),
            name,
            url,
        })
    }

    /// The database's URL, for [`PgStore::connect`](super::PgStore::connect) or
    /// `DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The URL up to its database name.
fn parent(url: &str) -> &str {
    match url.find("://") {
        Some(scheme_end) => match url[scheme_end + 3..].find('/') {
            Some(slash) => &url[..scheme_end + 3 + slash],
            None => url,
        },
        None => url,
    }
}

async fn execute(admin_url: &str, sql: &str) -> Result<(), StoreError> {
    let config = parse_url(admin_url)?;
    let (client, connection) = config.connect(NoTls).await.map_err(|error| {
        StoreError::database(format!(
            "cannot connect to {} to make a scratch database: {error}",
            redacted(admin_url)
        ))
    })?;
    let driver = tokio::spawn(connection);
    let result = client.batch_execute(sql).await.map_err(pg_error);
    drop(client);
    let _ = driver.await;
    result
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a runtime (which must not be blocked on) or outside any: a
        // thread of its own with its own runtime works in both.
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| StoreError::database(error.to_string()))?
                .block_on(execute(&admin_url, &sql))
        })
        .join();
        if let Ok(Err(error)) = dropped {
            tracing::warn!(database = %self.name, %error, "could not drop a scratch database");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parent;

    #[test]
    fn a_scratch_url_names_its_database_on_the_same_server() {
        assert_eq!(
            parent("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432"
        );
        assert_eq!(parent("postgres://u@h"), "postgres://u@h");
    }
}
