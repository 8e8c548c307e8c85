use app_kernel::db::StoreError;
use app_kernel::page::PageRequest;
use sqlx::SqlitePool;

use super::{Filter, LaptopStore};
use crate::model::{Laptop, NewLaptop};

pub(super) struct SqliteLaptops(pub(super) SqlitePool);

#[async_trait::async_trait]
impl LaptopStore for SqliteLaptops {
    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<Laptop>, StoreError> {
        Ok(sqlx::query_as("select id, title, model, version, created_at, updated_at from laptops where id > ?1 and (?2 is null or title_key = ?2) order by id limit ?3")
        .bind(page.after)
        .bind(&filter.title_key)
        .bind(page.fetch())
        .fetch_all(&self.0)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn get(&self, id: i64) -> Result<Option<Laptop>, StoreError> {
        Ok(sqlx::query_as(
            "select id, title, model, version, created_at, updated_at from laptops where id = ?1",
        )
        .bind(id)
        .fetch_optional(&self.0)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn insert(&self, laptop: &NewLaptop) -> Result<Laptop, StoreError> {
        Ok(sqlx::query_as("insert into laptops (title, title_key, model) values (?1, ?2, ?3) returning id, title, model, version, created_at, updated_at")
        .bind(&laptop.title)
        .bind(laptop.title_key())
        .bind(&laptop.model)
        .fetch_one(&self.0)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn update(
        &self,
        id: i64,
        version: i64,
        laptop: &NewLaptop,
    ) -> Result<Option<Laptop>, StoreError> {
        Ok(sqlx::query_as("update laptops set title = ?3, title_key = ?4, model = ?5, version = version + 1, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') where id = ?1 and version = ?2 returning id, title, model, version, created_at, updated_at")
        .bind(id)
        .bind(version)
        .bind(&laptop.title)
        .bind(laptop.title_key())
        .bind(&laptop.model)
        .fetch_optional(&self.0)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("delete from laptops where id = ?1 and version = ?2")
            .bind(id)
            .bind(version)
            .execute(&self.0)
            .await?;
        Ok(done.rows_affected() == 1)
    }
}
