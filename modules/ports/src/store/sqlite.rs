use app_kernel::db::{Pool, StoreError};
use app_kernel::event::{self, Event, Events};
use app_kernel::page::PageRequest;
use sqlx::Sqlite;

use super::{Filter, PortStore};
use crate::model::{NewPort, Port};

pub(super) struct SqlitePorts(pub(super) Pool<Sqlite>);

#[async_trait::async_trait]
impl PortStore for SqlitePorts {
    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<Port>, StoreError> {
        Ok(sqlx::query_as("select id, name, version, created_at, updated_at from ports where id > ?1 and (?2 is null or name_key = ?2) and (?4 is null or id in (select value from json_each(?4))) order by id limit ?3")
        .bind(page.after)
        .bind(&filter.name_key)
        .bind(page.fetch())
        .bind(filter.ids.as_ref().map(|ids| serde_json::Value::from(ids.clone()).to_string()))
        .fetch_all(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn get(&self, id: i64) -> Result<Option<Port>, StoreError> {
        Ok(sqlx::query_as(
            "select id, name, version, created_at, updated_at from ports where id = ?1",
        )
        .bind(id)
        .fetch_optional(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn insert(&self, port: &NewPort) -> Result<Port, StoreError> {
        let port = port.clone();
        self.0
            .write(move |conn| {
                Box::pin(async move {
                    let created: Port = sqlx::query_as("insert into ports (name, name_key) values (?1, ?2) returning id, name, version, created_at, updated_at")
                        .bind(&port.name)
                        .bind(port.name_key())
                        .fetch_one(&mut *conn)
                        .await?;
                    event::sqlite::record(
                        conn,
                        &Event::new("port.created", created.id, &created, created.version),
                    )
                    .await?;
                    Ok(created)
                })
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
            .write(move |conn| {
                Box::pin(async move {
                    let updated: Option<Port> = sqlx::query_as("update ports set name = ?3, name_key = ?4, version = version + 1, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') where id = ?1 and version = ?2 returning id, name, version, created_at, updated_at")
                        .bind(id)
                        .bind(version)
                        .bind(&port.name)
                        .bind(port.name_key())
                        .fetch_optional(&mut *conn)
                        .await?;
                    if let Some(port) = &updated {
                        event::sqlite::record(
                            conn,
                            &Event::new("port.renamed", port.id, port, port.version),
                        )
                        .await?;
                    }
                    Ok(updated)
                })
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError> {
        self.0
            .write(move |conn| {
                Box::pin(async move {
                    let done = sqlx::query("delete from ports where id = ?1 and version = ?2")
                        .bind(id)
                        .bind(version)
                        .execute(&mut *conn)
                        .await?;
                    let deleted = done.rows_affected() == 1;
                    if deleted {
                        event::sqlite::record(conn, &Event::deleted("port.deleted", id, version))
                            .await?;
                    }
                    Ok(deleted)
                })
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
