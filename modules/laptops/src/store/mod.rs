//! Where laptops are kept: one trait, one implementation per backend, and one
//! conformance suite (in `tests/`) that both must pass.

mod postgres;
mod sqlite;

use std::sync::Arc;

use app_kernel::db::{Db, StoreError};
use app_kernel::page::PageRequest;

use crate::model::{Laptop, NewLaptop};

/// Filters of the list operation.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only laptops whose `title_key` (their title in lower case) is this.
    pub title_key: Option<String>,
}

#[async_trait::async_trait]
pub trait LaptopStore: Send + Sync {
    /// Up to `page.fetch()` laptops after `page.after`, by id.
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<Laptop>, StoreError>;
    async fn get(&self, id: i64) -> Result<Option<Laptop>, StoreError>;
    async fn insert(&self, laptop: &NewLaptop) -> Result<Laptop, StoreError>;
    /// Writes `port` if the row is still at `version`; `None` if it is gone or has moved on.
    async fn update(
        &self,
        id: i64,
        version: i64,
        laptop: &NewLaptop,
    ) -> Result<Option<Laptop>, StoreError>;
    /// Deletes the row if it is still at `version`.
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError>;
}

/// The store for a module's database.
pub fn open(db: Db) -> Arc<dyn LaptopStore> {
    match db {
        Db::Sqlite(pool) => Arc::new(sqlite::SqliteLaptops(pool)),
        Db::Postgres(pool) => Arc::new(postgres::PgLaptops(pool)),
    }
}
