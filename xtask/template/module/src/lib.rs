//! The `{{name}}` module.
//!
//! Its narrow door is [`MODULE`]: its name, its HTTP API and OpenAPI
//! operations, its migrations, and how it starts. It must never read or
//! write another module's tables. [`events`] declares the events it
//! publishes.

mod error;
pub mod events;
mod model;
mod routes;
mod service;
#[doc(hidden)]
pub mod store;

use actix_web::web;
use app_kernel::db::Backend;
use app_kernel::module::{Module, Start, Started};
use sqlx::migrate::Migrator;

pub use error::Error;
pub use model::{{{Item}}, New{{Item}}};
pub use service::{{Name}};

/// The module's name: its path segment, schema, database file and log field.
pub const NAME: &str = "{{name}}";
/// Where the module's HTTP API is mounted.
pub const PATH: &str = "/api/v1/{{name}}";

/// What the binary knows of the module.
pub static MODULE: Module = Module {
    name: NAME,
    summary: "{{name}}: each has a unique name",
    needs: &[],
    migrations: migrator,
    routes: routes::configure,
    start,
    events: &[
        events::CREATED.describe(),
        events::UPDATED.describe(),
        events::DELETED.describe(),
    ],
    follows: &[],
};

fn start(start: Start) -> anyhow::Result<Started> {
    let {{name}} = {{Name}}::new(start.db);
    Ok(Started::new().data(web::Data::new({{name}})))
}

static SQLITE: Migrator = sqlx::migrate!("../../migrations/{{name}}/sqlite");
static POSTGRES: Migrator = Migrator {
    table_name: std::borrow::Cow::Borrowed("{{name}}._sqlx_migrations"),
    create_schemas: std::borrow::Cow::Borrowed(&[std::borrow::Cow::Borrowed("{{name}}")]),
    ..sqlx::migrate!("../../migrations/{{name}}/postgres")
};

/// The module's migrations on a backend, with their own history table.
pub fn migrator(backend: Backend) -> &'static Migrator {
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}
