//! The shared kernel: what every domain module needs to speak HTTP and store
//! data the same way. It knows no module, holds no domain rules and never
//! touches a module's tables.

pub mod body;
pub mod breaker;
pub mod broker;
pub mod cache;
pub mod db;
pub mod etag;
pub mod event;
pub mod follow;
pub mod id;
pub mod module;
pub mod page;
pub mod peer;
pub mod problem;
pub mod responses;
pub mod text;
pub mod time;
pub mod trace;

pub use problem::{ApiError, FieldError, Problem};

/// Answers a query string that does not parse with a 400 problem; install with `App::app_data`.
pub fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|error, _| {
        ApiError::BadRequest(format!("bad query parameter: {error}")).into()
    })
}
