use app_kernel::db::{Pool, StoreError};
use app_kernel::event::{self, Deleted, Events};
use app_kernel::page::PageRequest;
use ports_api::events;
use sqlx::{Connection as _, Postgres};

use super::{Filter, PortStore};
use crate::model::{NewPort, Port};

/// The module's schema.
const SCHEMA: &str = "ports";

pub(super) struct PgPorts(pub(super) Pool<Postgres>);

/// Every column of a port.
macro_rules! columns {
    () => {
        "id, name, version, created_at, updated_at"
    };
}

#[async_trait::async_trait]
impl PortStore for PgPorts {
    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<Port>, StoreError> {
        Ok(sqlx::query_as(concat!("select ", columns!(), " from ports.ports where id > $1 and ($2::text is null or name_key = $2) and ($4::bigint[] is null or id = any($4)) order by id limit $3"))
        .bind(page.after)
        .bind(&filter.name_key)
        .bind(page.fetch())
        .bind(&filter.ids)
        .fetch_all(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn get(&self, id: i64) -> Result<Option<Port>, StoreError> {
        Ok(sqlx::query_as(concat!(
            "select ",
            columns!(),
            " from ports.ports where id = $1"
        ))
        .bind(id)
        .fetch_optional(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn insert(&self, port: &NewPort) -> Result<Port, StoreError> {
        let mut conn = self.0.acquire().await?;
        let mut tx = conn.begin().await?;
        let created: Port = sqlx::query_as(concat!(
            "insert into ports.ports (name, name_key) values ($1, $2) returning ",
            columns!()
        ))
        .bind(&port.name)
        .bind(port.name_key())
        .fetch_one(&mut *tx)
        .await?;
        event::postgres::record(&mut tx, SCHEMA, &events::CREATED.event(&created.data())).await?;
        tx.commit().await?;
        Ok(created)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn update(
        &self,
        id: i64,
        version: i64,
        port: &NewPort,
    ) -> Result<Option<Port>, StoreError> {
        let mut conn = self.0.acquire().await?;
        let mut tx = conn.begin().await?;
        let updated: Option<Port> = sqlx::query_as(concat!("update ports.ports set name = $3, name_key = $4, version = version + 1, updated_at = now() where id = $1 and version = $2 returning ", columns!()))
        .bind(id)
        .bind(version)
        .bind(&port.name)
        .bind(port.name_key())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(port) = &updated {
            event::postgres::record(&mut tx, SCHEMA, &events::RENAMED.event(&port.data())).await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError> {
        let mut conn = self.0.acquire().await?;
        let mut tx = conn.begin().await?;
        let done = sqlx::query("delete from ports.ports where id = $1 and version = $2")
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        let deleted = done.rows_affected() == 1;
        if deleted {
            event::postgres::record(
                &mut tx,
                SCHEMA,
                &events::DELETED.event(&Deleted { id, version }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn events(&self, after: i64, limit: i64) -> Result<Events, StoreError> {
        Ok(event::postgres::read(
            &mut *self.0.acquire().await?,
            SCHEMA,
            ports_api::PATH,
            after,
            limit,
        )
        .await?)
    }
}
