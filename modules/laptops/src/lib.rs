//! The `laptops` module: the laptop models of the catalogue.
//!
//! Its narrow door is [`MODULE`]: its name, its HTTP API and OpenAPI
//! operations, its migrations, the modules it needs (ports, through their
//! contract) and how it starts. It must never read or write another
//! module's tables.

mod error;
#[doc(hidden)]
pub mod follow;
mod model;
mod routes;
mod service;
#[doc(hidden)]
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use app_kernel::db::Backend;
use app_kernel::follow::{Follower, Queue};
use app_kernel::module::{Module, Start, Started};
use laptops_api::events;
use ports_api::PortsApi;
use sqlx::migrate::Migrator;

pub use error::Error;
pub use model::{Laptop, NewLaptop};
pub use service::Laptops;

/// The module's name: its path segment, schema, database file and log field.
pub const NAME: &str = laptops_api::NAME;
/// Where the module's HTTP API is mounted.
pub const PATH: &str = laptops_api::PATH;

/// How often laptops read the ports module's events when no commit wakes them.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// What the binary knows of the module.
pub static MODULE: Module = Module {
    name: NAME,
    summary: "laptop models: title (brand) and model",
    needs: &[&ports_api::CONTRACT],
    migrations: migrator,
    routes: routes::configure,
    start,
    events: &[
        events::CREATED.describe(),
        events::UPDATED.describe(),
        events::DELETED.describe(),
    ],
    follows: &[
        ports_api::events::CREATED.name,
        ports_api::events::RENAMED.name,
        ports_api::events::DELETED.name,
    ],
};

fn start(start: Start) -> anyhow::Result<Started> {
    let ports: Arc<dyn PortsApi> = start.api(&ports_api::CONTRACT)?;
    let ([laptop, expanded], invalidator) = start.caches(NAME, ["laptop", "laptop_expanded"]);
    let caches = service::Caches { laptop, expanded };
    let port_events = Follower {
        module: NAME,
        feed: Arc::new(ports_api::Feed(ports.clone())),
        ledger: follow::inbox(start.db.clone(), caches.clone()),
        queue: Queue::Shared(MODULE.follows),
        broker: start.events.broker.clone(),
        delivery: start.events.delivery,
        committed: Some(start.events.committed.clone()),
        interval: FOLLOW_INTERVAL,
        reported: true,
    };
    let store = store::open(start.db);
    Ok(Started::new()
        .data(web::Data::new(Laptops::new(
            store,
            caches,
            ports,
            start.events.committed,
        )))
        .task(port_events.run())
        .task(invalidator))
}

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
