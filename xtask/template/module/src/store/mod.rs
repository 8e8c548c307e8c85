//! Where {{name}} are kept: one trait, one implementation per backend; the
//! API tests (`tests/api/{{name}}.rs`) run against both.

{{^follows}}
mod postgres;
mod sqlite;
{{/follows}}
{{#follows}}
pub(crate) mod postgres;
pub(crate) mod sqlite;
{{/follows}}

use std::sync::Arc;

use app_kernel::db::{Db, StoreError};
use app_kernel::event::Events;
use app_kernel::page::PageRequest;

use crate::model::{New{{Item}}, {{Item}}};

/// Filters of the list operation.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// Only the {{item}} whose `name_key` (its name in lower case) is this.
    pub name_key: Option<String>,
}

#[async_trait::async_trait]
pub trait {{Item}}Store: Send + Sync {
    /// Up to `page.fetch()` {{name}} after `page.after`, by id.
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<{{Item}}>, StoreError>;
    async fn get(&self, id: i64) -> Result<Option<{{Item}}>, StoreError>;
    async fn insert(&self, {{item}}: &New{{Item}}) -> Result<{{Item}}, StoreError>;
    /// Writes `{{item}}` if the row is still at `version`; `None` if it is gone or has moved on.
    async fn update(
        &self,
        id: i64,
        version: i64,
        {{item}}: &New{{Item}},
    ) -> Result<Option<{{Item}}>, StoreError>;
    /// Deletes the row if it is still at `version`.
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError>;
    /// Up to `limit` events with `seq` above `after`, oldest first, and how
    /// many there are after `after` in all.
    async fn events(&self, after: i64, limit: i64) -> Result<Events, StoreError>;
}

/// The store for a module's database.
pub fn open(db: Db) -> Arc<dyn {{Item}}Store> {
    match db {
        Db::Sqlite(pool) => Arc::new(sqlite::Sqlite{{Name}}(pool)),
        Db::Postgres(pool) => Arc::new(postgres::Pg{{Name}}(pool)),
    }
}
