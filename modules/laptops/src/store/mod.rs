//! Where laptops are kept: one trait, one implementation per backend, and one
//! conformance suite (in `tests/`) that both must pass.

pub(crate) mod postgres;
pub(crate) mod sqlite;

use std::sync::Arc;

use app_kernel::db::{Db, StoreError};
use app_kernel::event::Events;
use app_kernel::page::PageRequest;

use ports_api::PortRef;

use crate::model::{Laptop, NewLaptop};

/// What an event of the ports module changes here, applied by
/// `apply_port_change` of each backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortChange {
    /// The port exists, so named, at `version`.
    Named {
        id: i64,
        name: String,
        version: i64,
    },
    Deleted {
        id: i64,
    },
}

/// Filters of the list operation.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only laptops whose `title_key` (their title in lower case) is this.
    pub title_key: Option<String>,
    /// Only laptops that list this port.
    pub port_id: Option<i64>,
}

#[async_trait::async_trait]
pub trait LaptopStore: Send + Sync {
    /// Up to `page.fetch()` laptops after `page.after`, by id.
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<Laptop>, StoreError>;
    async fn get(&self, id: i64) -> Result<Option<Laptop>, StoreError>;
    async fn insert(&self, laptop: &NewLaptop) -> Result<Laptop, StoreError>;
    /// Writes `laptop` if the row is still at `version`; `None` if it is gone or has moved on.
    async fn update(
        &self,
        id: i64,
        version: i64,
        laptop: &NewLaptop,
    ) -> Result<Option<Laptop>, StoreError>;
    /// Deletes the row if it is still at `version`.
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError>;
    /// The ports among `ids` this module knows of, in no order.
    async fn port_refs(&self, ids: &[i64]) -> Result<Vec<PortRef>, StoreError>;
    /// Up to `limit` events with `seq` above `after`, oldest first, and how
    /// many there are after `after` in all.
    async fn events(&self, after: i64, limit: i64) -> Result<Events, StoreError>;
}

/// The store for a module's database.
pub fn open(db: Db) -> Arc<dyn LaptopStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(sqlite::SqliteLaptops(pool)),
        Db::Postgres(pool) => Arc::new(postgres::PgLaptops::new(pool)),
    }
}
