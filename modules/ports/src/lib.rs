//! The `ports` module: the kinds of physical port a laptop can have.
//!
//! Its narrow door is [`MODULE`]: its name, its HTTP API and OpenAPI
//! operations, its migrations, and how it starts. Other modules reach it
//! only through its contract, `ports-api`. It must never read or write
//! another module's tables.

mod api;
mod error;
mod model;
mod routes;
mod service;
#[doc(hidden)]
pub mod store;

use actix_web::web;
use app_kernel::db::Backend;
use app_kernel::module::{Module, Start, Started};
use ports_api::events;
use sqlx::migrate::Migrator;

pub use error::Error;
pub use model::{NewPort, Port};
pub use service::Ports;

/// The module's name: its path segment, schema, database file and log field.
pub const NAME: &str = ports_api::NAME;

/// What the binary knows of the module.
pub static MODULE: Module = Module {
    name: NAME,
    summary: "kinds of physical port: USB-C, HDMI, Thunderbolt 4 ...",
    needs: &[],
    migrations: migrator,
    routes: routes::configure,
    start,
    events: &[
        events::CREATED.describe(),
        events::RENAMED.describe(),
        events::DELETED.describe(),
    ],
    follows: &[],
};

fn start(start: Start) -> anyhow::Result<Started> {
    let ([cache], invalidator) = start.caches(NAME, ["port"]);
    let ports = Ports::new(start.db, cache, start.events.committed);
    Ok(Started::new()
        .provides(ports_api::api(ports.clone()))
        .data(web::Data::new(ports))
        .task(invalidator))
}

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
