//! Where laptops are kept: one trait, one implementation per backend, and one
//! conformance suite (in `tests/`) that both must pass.

mod postgres;
mod sqlite;

use std::sync::Arc;

use app_kernel::db::{Db, StoreError};
use app_kernel::event::{CloudEvent, Events};
use app_kernel::page::PageRequest;

use ports_api::PortRef;

use crate::model::{Laptop, NewLaptop};

/// What an event of the ports module changes here.
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

/// An event of the ports module, as this module applies it.
#[derive(Debug, Clone, Copy)]
pub struct PortEvent<'a> {
    /// The event's id.
    pub id: &'a str,
    /// Its place in the feed.
    pub seq: i64,
    /// What it changes here, if anything.
    pub change: Option<&'a PortChange>,
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
    /// Applies the ports module's events, each unless it was applied
    /// before, in one transaction: their changes, the record that they
    /// were applied and the feed's new position (and, for one that was
    /// dead-lettered, its leaving `events_dead`). A deleted port leaves
    /// every laptop that lists it (a new version of each). Returns, for
    /// each, how many laptops changed, or `None` if it was applied before.
    async fn apply_port_events(
        &self,
        events: &[PortEvent<'_>],
    ) -> Result<Vec<Option<u64>>, StoreError>;

    /// [`LaptopStore::apply_port_events`] for one event.
    async fn apply_port_event(
        &self,
        id: &str,
        seq: i64,
        change: Option<&PortChange>,
    ) -> Result<Option<u64>, StoreError> {
        let applied = self
            .apply_port_events(&[PortEvent { id, seq, change }])
            .await?;
        Ok(applied.into_iter().next().flatten())
    }
    /// Keeps `event` of the ports feed apart, failed `attempts` times
    /// with `error`, and moves the feed's position past it, at once.
    async fn dead_letter(
        &self,
        event: &CloudEvent,
        error: &str,
        attempts: u32,
    ) -> Result<(), StoreError>;
    /// The dead-lettered events `app events retry` asked for again, by seq.
    async fn retries(&self) -> Result<Vec<CloudEvent>, StoreError>;
    /// The `seq` of the last event of the ports module applied; 0 at first.
    async fn ports_read(&self) -> Result<i64, StoreError>;
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
        Db::Postgres(pool) => Arc::new(postgres::PgLaptops(pool)),
    }
}
