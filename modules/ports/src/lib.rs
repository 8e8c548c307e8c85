//! The `ports` module: the kinds of physical port a laptop can have.
//!
//! Its narrow door: [`configure`] mounts its HTTP API, [`openapi`] collects the
//! API's document, [`migrator`] owns its schema, and [`Ports`] is the state the
//! API runs on. It must never read or write another module's tables.

mod api;
mod error;
mod model;
mod routes;
mod service;
#[doc(hidden)]
pub mod store;

use app_kernel::db::Backend;
use sqlx::migrate::Migrator;

pub use error::Error;
pub use model::{NewPort, Port};
pub use routes::configure;
pub use service::Ports;

/// The module's name: its path segment, schema, database file and log field.
pub const NAME: &str = "ports";

static SQLITE: Migrator = sqlx::migrate!("../../migrations/ports/sqlite");
static POSTGRES: Migrator = Migrator {
    table_name: std::borrow::Cow::Borrowed("ports._sqlx_migrations"),
    create_schemas: std::borrow::Cow::Borrowed(&[std::borrow::Cow::Borrowed("ports")]),
    ..sqlx::migrate!("../../migrations/ports/postgres")
};

/// The module's migrations on a backend, with their own history table.
pub fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}
