use app_kernel::ApiError;
use app_kernel::db::StoreError;

/// What can go wrong in the {{name}} module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no {{item}} has id {0}")]
    NotFound(i64),
    #[error("{{a}} {{item}} named {0:?} exists already (names are unique ignoring case)")]
    NameTaken(String),
    #[error(transparent)]
    Request(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::NotFound(_) => ApiError::NotFound(error.to_string()),
            Error::NameTaken(_) => ApiError::Conflict(error.to_string()),
            Error::Request(error) => error,
            Error::Store(error) => error.into(),
        }
    }
}
