use app_kernel::db::StoreError;
use app_kernel::peer::PeerError;
use app_kernel::{ApiError, FieldError};

/// What can go wrong in the laptops module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no laptop has id {0}")]
    NotFound(i64),
    /// A write names ports that do not exist.
    #[error("no port has id {0:?}")]
    UnknownPorts(Vec<i64>),
    #[error(transparent)]
    Request(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Peer(#[from] PeerError),
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::NotFound(_) => ApiError::NotFound(error.to_string()),
            Error::UnknownPorts(ids) => ApiError::Validation(
                ids.iter()
                    .map(|id| FieldError::new("port_ids", format!("no port has id {id}")))
                    .collect(),
            ),
            Error::Request(error) => error,
            Error::Store(error) => error.into(),
            Error::Peer(error) => error.into(),
        }
    }
}
