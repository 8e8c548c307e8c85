//! The `{{name}}` module.
//!
//! Its narrow door is [`MODULE`]: its name, its HTTP API and OpenAPI
//! operations, its migrations, and how it starts. It must never read or
//! write another module's tables. Its contract, `{{name}}-api`, declares
//! the events it publishes.
{{#needs}}
//!
//! It calls the ports module through its contract, `ports-api`, in this
//! process or over HTTP (`--peer ports=URL`).
{{/needs}}
{{#follows}}
//! It follows ports' events: [`follow`] says what applying one means here.
{{/follows}}

mod error;
{{#follows}}
#[doc(hidden)]
pub mod follow;
{{/follows}}
mod model;
mod routes;
mod service;
#[doc(hidden)]
pub mod store;

{{#needs}}
use std::sync::Arc;
{{/needs}}
{{#follows}}
use std::time::Duration;
{{/follows}}

use actix_web::web;
use app_kernel::db::Backend;
{{#follows}}
use app_kernel::follow::{Follower, Queue};
{{/follows}}
use app_kernel::module::{Module, Start, Started};
use {{name}}_api::events;
{{#needs}}
use ports_api::PortsApi;
{{/needs}}
use sqlx::migrate::Migrator;

pub use error::Error;
pub use model::{{{Item}}, New{{Item}}};
pub use service::{{Name}};

pub const NAME: &str = {{name}}_api::NAME;
pub const PATH: &str = {{name}}_api::PATH;
{{#follows}}

/// How often ports' feed is read when no broker brings its events.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);
{{/follows}}

/// What the binary knows of the module.
pub static MODULE: Module = Module {
    name: NAME,
    summary: "{{name}}: each has a unique name",
{{^needs}}
    needs: &[],
{{/needs}}
{{#needs}}
    needs: &[&ports_api::CONTRACT],
{{/needs}}
    migrations: migrator,
    routes: routes::configure,
    start,
    events: &[
        events::CREATED.describe(),
        events::UPDATED.describe(),
        events::DELETED.describe(),
    ],
{{^follows}}
    follows: &[],
{{/follows}}
{{#follows}}
    follows: &[ports_api::events::DELETED.name],
{{/follows}}
};

fn start(start: Start) -> anyhow::Result<Started> {
{{^needs}}
    let {{name}} = {{Name}}::new(start.db);
    Ok(Started::new().data(web::Data::new({{name}})))
{{/needs}}
{{#needs}}
    let ports: Arc<dyn PortsApi> = start.api(&ports_api::CONTRACT)?;
{{^follows}}
    let {{name}} = {{Name}}::new(start.db, ports);
    Ok(Started::new().data(web::Data::new({{name}})))
{{/follows}}
{{#follows}}
    let port_events = Follower {
        module: NAME,
        feed: Arc::new(ports_api::Feed(ports.clone())),
        ledger: follow::inbox(start.db.clone()),
        queue: Queue::Shared(MODULE.follows),
        broker: start.events.broker.clone(),
        delivery: start.events.delivery,
        committed: Some(start.events.committed.clone()),
        interval: FOLLOW_INTERVAL,
        reported: true,
    };
    let {{name}} = {{Name}}::new(start.db, ports);
    Ok(Started::new()
        .data(web::Data::new({{name}}))
        .task(port_events.run()))
{{/follows}}
{{/needs}}
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
