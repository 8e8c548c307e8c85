use app_kernel::ApiError;
use app_kernel::db::StoreError;
{{#needs}}
use app_kernel::FieldError;
use app_kernel::peer::PeerError;
{{/needs}}

/// What can go wrong in the {{name}} module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no {{item}} has id {0}")]
    NotFound(i64),
    #[error("{{a}} {{item}} named {0:?} exists already (names are unique ignoring case)")]
    NameTaken(String),
{{#needs}}
    /// A write names a port the ports module does not have.
    #[error("no port has id {0}")]
    UnknownPort(i64),
{{/needs}}
    #[error(transparent)]
    Request(#[from] ApiError),
    #[error(transparent)]
    Store(#[from] StoreError),
{{#needs}}
    /// The ports module cannot say (a 503 problem).
    #[error(transparent)]
    Peer(#[from] PeerError),
{{/needs}}
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::NotFound(_) => ApiError::NotFound(error.to_string()),
            Error::NameTaken(_) => ApiError::Conflict(error.to_string()),
{{#needs}}
            Error::UnknownPort(id) => ApiError::Validation(vec![FieldError::new(
                "port_id",
                format!("no port has id {id}"),
            )]),
{{/needs}}
            Error::Request(error) => error,
            Error::Store(error) => error.into(),
{{#needs}}
            Error::Peer(error) => error.into(),
{{/needs}}
        }
    }
}
