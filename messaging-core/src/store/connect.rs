//! Which store a database URL names: the one place that knows the adapters. The engine, the
//! server and the desktop app open a database by its URL (`DATABASE_URL`) through
//! [`connect`], never by naming an adapter.

use std::sync::Arc;

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::{Store, StoreError};

/// The storage backends a database URL can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file: `sqlite://PATH` (`sqlite:PATH` and a bare path work too).
    Sqlite,
    /// A PostgreSQL database shared by many processes: `postgres://…` or `postgresql://…`.
    Postgres,
}

impl Backend {
    /// The backend `url` names, or why it names none.
    pub fn of(url: &str) -> Result<Self, StoreError> {
        let url = url.trim();
        match url
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase())
        {
            Some(scheme) if scheme == "postgres" || scheme == "postgresql" => Ok(Self::Postgres),
            Some(scheme) if scheme == "sqlite" => Ok(Self::Sqlite),
            Some(_) => Err(StoreError::UnsupportedUrl(url.to_owned())),
            None if url.is_empty() => Err(StoreError::UnsupportedUrl(url.to_owned())),
            // `sqlite:PATH` and a plain file path.
            None => Ok(Self::Sqlite),
        }
    }

    /// `sqlite` or `postgres`, for logs and settings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

/// The database URL with its password hidden (`postgres://app:***@db/messaging`), for logs,
/// messages and settings shown to people.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

/// Opens the store `url` names, creating its schema or bringing it up to date.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    match Backend::of(url)? {
        Backend::Sqlite => Ok(Arc::new(SqliteStore::open_url(url).await?)),
        Backend::Postgres => Ok(Arc::new(PgStore::connect(url).await?)),
    }
}

#[cfg(test)]
mod tests {
    use super::{Backend, connect};
    use crate::store::StoreError;

    #[tokio::test]
    async fn urls_of_unknown_backends_are_refused_with_what_works() {
        let unknown = connect("mysql://app@db/messaging").await.err().unwrap();
        assert!(matches!(unknown, StoreError::UnsupportedUrl(_)));
        assert!(
            unknown.to_string().contains("expected sqlite://PATH"),
            "{unknown}"
        );
    }

    #[test]
    fn a_url_names_its_backend() {
        assert_eq!(
            Backend::of("sqlite://messaging.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(Backend::of("sqlite:messaging.db").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::of("/var/lib/messaging.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(
            Backend::of("postgres://u@db/app").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::of("PostgreSQL://u@db/app").unwrap(),
            Backend::Postgres
        );
        assert!(Backend::of("mysql://u@db/app").is_err());
        assert!(Backend::of("").is_err());
    }
}
