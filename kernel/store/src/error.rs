//! How storage fails, sorted by what the client should hear.

use app_http::ApiError;
use app_http::problem::Chain;

/// What a storage failure holds: sqlx's error or rusqlite's, or what
/// went wrong around them.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A storage failure, sorted by what the client should hear.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is overloaded: try again later.
    #[error("the database is unavailable")]
    Unavailable(#[source] Cause),
    /// A unique constraint refused the write.
    #[error("a unique constraint refused the write")]
    Unique(#[source] Cause),
    #[error("database error")]
    Other(#[source] Cause),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &error {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::Protocol(_) => {
                Self::Unavailable(error.into())
            }
            E::Database(db) if db.is_unique_violation() => Self::Unique(error.into()),
            E::Database(db) if is_transient(db.as_ref()) => Self::Unavailable(error.into()),
            _ => Self::Other(error.into()),
        }
    }
}

/// SQLite busy, locked, read-only, I/O error, full, can't open; PostgreSQL
/// connection exceptions (08), shutdown and start-up (57P0x), too many
/// connections (53300), a statement cancelled by `statement_timeout`
/// (57014), and a transaction chosen as a deadlock's victim (40P01) or
/// failed to serialize (40001): tried again, it goes through.
fn is_transient(error: &dyn sqlx::error::DatabaseError) -> bool {
    let code = error.code().unwrap_or_default();
    if error
        .try_downcast_ref::<sqlx::sqlite::SqliteError>()
        .is_some()
    {
        let primary = code.parse::<i32>().map(|c| c & 0xff).unwrap_or_default();
        return matches!(primary, 5 | 6 | 8 | 10 | 13 | 14);
    }
    code.starts_with("08")
        || code.starts_with("57P0")
        || code == "53300"
        || code == "57014"
        || code == "40P01"
        || code == "40001"
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => {
                tracing::warn!(error = %Chain(cause.as_ref()), "database unavailable");
                ApiError::Unavailable("the database is unavailable; try again shortly".into())
            }
            other => ApiError::internal(other),
        }
    }
}
