use app_kernel::db::{Pool, StoreError};
use app_kernel::page::PageRequest;
use sqlx::Postgres;

use ports_api::Deletions;

use super::{Filter, PortStore};
use crate::model::{NewPort, Port};

pub(super) struct PgPorts(pub(super) Pool<Postgres>);

#[async_trait::async_trait]
impl PortStore for PgPorts {
    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<Port>, StoreError> {
        Ok(sqlx::query_as("select id, name, version, created_at, updated_at from ports.ports where id > $1 and ($2::text is null or name_key = $2) and ($4::bigint[] is null or id = any($4)) order by id limit $3")
        .bind(page.after)
        .bind(&filter.name_key)
        .bind(page.fetch())
        .bind(&filter.ids)
        .fetch_all(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn get(&self, id: i64) -> Result<Option<Port>, StoreError> {
        Ok(sqlx::query_as(
            "select id, name, version, created_at, updated_at from ports.ports where id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn insert(&self, port: &NewPort) -> Result<Port, StoreError> {
        Ok(sqlx::query_as("insert into ports.ports (name, name_key) values ($1, $2) returning id, name, version, created_at, updated_at")
        .bind(&port.name)
        .bind(port.name_key())
        .fetch_one(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn update(
        &self,
        id: i64,
        version: i64,
        port: &NewPort,
    ) -> Result<Option<Port>, StoreError> {
        Ok(sqlx::query_as("update ports.ports set name = $3, name_key = $4, version = version + 1, updated_at = now() where id = $1 and version = $2 returning id, name, version, created_at, updated_at")
        .bind(id)
        .bind(version)
        .bind(&port.name)
        .bind(port.name_key())
        .fetch_optional(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("delete from ports.ports where id = $1 and version = $2")
            .bind(id)
            .bind(version)
            .execute(&mut *self.0.acquire().await?)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "ports"))]
    async fn deletions(&self, after: i64, limit: i64) -> Result<Deletions, StoreError> {
        // The count is of every row after `after`: windows come before limits.
        let rows: Vec<(i64, i64, i64)> = sqlx::query_as(
            "select seq, port_id, count(*) over () from ports.port_deletions where seq > $1 order by seq limit $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *self.0.acquire().await?)
        .await?;
        Ok(super::deletions(rows))
    }
}
