//! Where ports are kept: one trait, one implementation per backend, and one
//! conformance suite (in `tests/`) that both must pass.

mod postgres;
mod sqlite;

use std::sync::Arc;

use app_kernel::db::{Db, StoreError};
use app_kernel::event::Events;
use app_kernel::page::PageRequest;

use crate::model::{NewPort, Port};

/// Filters of the list operation.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only the port whose `name_key` (its name in lower case) is this.
    pub name_key: Option<String>,
    /// Only ports with these ids.
    pub ids: Option<Vec<i64>>,
}

#[async_trait::async_trait]
pub trait PortStore: Send + Sync {
    /// Up to `page.fetch()` ports after `page.after`, by id.
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<Port>, StoreError>;
    async fn get(&self, id: i64) -> Result<Option<Port>, StoreError>;
    async fn insert(&self, port: &NewPort) -> Result<Port, StoreError>;
    /// Writes `port` if the row is still at `version`; `None` if it is gone or has moved on.
    async fn update(
        &self,
        id: i64,
        version: i64,
        port: &NewPort,
    ) -> Result<Option<Port>, StoreError>;
    /// Deletes the row if it is still at `version`, and records the deletion.
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError>;
    /// Up to `limit` events with `seq` above `after`, oldest first, and how
    /// many there are after `after` in all.
    async fn events(&self, after: i64, limit: i64) -> Result<Events, StoreError>;
}

/// The store for a module's database.
pub fn open(db: Db) -> Arc<dyn PortStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(sqlite::SqlitePorts(pool)),
        Db::Postgres(pool) => Arc::new(postgres::PgPorts(pool)),
    }
}
