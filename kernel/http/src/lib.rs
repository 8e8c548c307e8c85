//! The HTTP vocabulary every module speaks: problems (RFC 9457), JSON
//! bodies checked field by field, pages with cursors, ids in paths, ETags
//! and conditional requests, and the responses OpenAPI documents. Knows no
//! module, and nothing of storage or events.

pub mod body;
pub mod etag;
pub mod id;
pub mod page;
pub mod problem;
pub mod responses;
pub mod text;
pub mod time;
pub mod versions;

pub use problem::{ApiError, FieldError, Problem};

/// Answers a query string that does not parse with a 400 problem; install with `App::app_data`.
pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|error, _| {
        ApiError::BadRequest(format!("bad query parameter: {error}")).into()
    })
}
