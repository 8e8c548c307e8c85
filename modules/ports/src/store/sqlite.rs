use app_kernel::db::{Pool, StoreError, time_column};
use app_kernel::event::{self, Deleted, Events};
use app_kernel::page::PageRequest;
use ports_api::events;
use rusqlite::{OptionalExtension as _, params};
use sqlx::Sqlite;

use super::{Filter, PortStore};
use crate::model::{NewPort, Port};

pub(super) struct SqlitePorts(pub(super) Pool<Sqlite>);

/// Every column of a port.
macro_rules! columns {
    () => {
        "id, name, version, created_at, updated_at"
    };
}

#[async_trait::async_trait]
impl PortStore for SqlitePorts {
    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<Port>, StoreError> {
        Ok(sqlx::query_as(concat!("select ", columns!(), " from ports where id > ?1 and (?2 is null or name_key = ?2) and (?4 is null or id in (select value from json_each(?4))) order by id limit ?3"))
        .bind(page.after)
        .bind(&filter.name_key)
        .bind(page.fetch())
        .bind(filter.ids.as_ref().map(|ids| serde_json::Value::from(ids.clone()).to_string()))
        .fetch_all(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn get(&self, id: i64) -> Result<Option<Port>, StoreError> {
        Ok(
            sqlx::query_as(concat!("select ", columns!(), " from ports where id = ?1"))
                .bind(id)
                .fetch_optional(&mut *self.0.acquire().await?)
                .await?,
        )
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn insert(&self, port: &NewPort) -> Result<Port, StoreError> {
        let port = port.clone();
        // Committed with the writes waiting beside it: see `Pool::write`.
        self.0
            .write(move |write| {
                let created = write
                    .prepare_cached(concat!(
                        "insert into ports (name, name_key) values (?1, ?2) returning ",
                        columns!()
                    ))?
                    .query_row(params![port.name, port.name_key()], written)?;
                write.record(&events::CREATED.event(&created.data()))?;
                Ok(created)
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn update(
        &self,
        id: i64,
        version: i64,
        port: &NewPort,
    ) -> Result<Option<Port>, StoreError> {
        let port = port.clone();
        self.0
            .write(move |write| {
                let updated = write
                    .prepare_cached(concat!(
                        "update ports set name = ?3, name_key = ?4, version = version + 1, \
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                         where id = ?1 and version = ?2 returning ",
                        columns!()
                    ))?
                    .query_row(params![id, version, port.name, port.name_key()], written)
                    .optional()?;
                if let Some(port) = &updated {
                    write.record(&events::RENAMED.event(&port.data()))?;
                }
                Ok(updated)
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError> {
        self.0
            .write(move |write| {
                let deleted = write
                    .prepare_cached("delete from ports where id = ?1 and version = ?2")?
                    .execute([id, version])?
                    == 1;
                if deleted {
                    write.record(&events::DELETED.event(&Deleted { id, version }))?;
                }
                Ok(deleted)
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn events(&self, after: i64, limit: i64) -> Result<Events, StoreError> {
        Ok(
            event::sqlite::read(&mut *self.0.acquire().await?, ports_api::PATH, after, limit)
                .await?,
        )
    }
}

/// The port an insert or update returns, its [`columns`].
fn written(row: &rusqlite::Row<'_>) -> rusqlite::Result<Port> {
    Ok(Port {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        created_at: time_column(row, 3)?,
        updated_at: time_column(row, 4)?,
    })
}
