//! The `laptops` module: the laptop models of the catalogue.
//!
//! Its narrow door: [`configure`] mounts its HTTP API, [`openapi`] collects the
//! API's document, [`migrator`] owns its schema, and [`Laptops`] is the state the
//! API runs on. It must never read or write another module's tables.

mod error;
mod follow;
mod model;
mod routes;
mod service;
#[doc(hidden)]
pub mod store;

use app_kernel::db::Backend;
use sqlx::migrate::Migrator;

pub use error::Error;
pub use model::{Laptop, NewLaptop};
pub use routes::configure;
pub use service::Laptops;

/// The module's name: its path segment, schema, database file and log field.
pub const NAME: &str = "laptops";

static SQLITE: Migrator = sqlx::migrate!("../../migrations/laptops/sqlite");
static POSTGRES: Migrator = Migrator {
    table_name: std::borrow::Cow::Borrowed("laptops._sqlx_migrations"),
    create_schemas: std::borrow::Cow::Borrowed(&[std::borrow::Cow::Borrowed("laptops")]),
    ..sqlx::migrate!("../../migrations/laptops/postgres")
};

/// The module's migrations on a backend, with their own history table.
pub fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}
