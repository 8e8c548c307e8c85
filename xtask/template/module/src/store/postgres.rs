use app_kernel::db::{Pool, StoreError};
use app_kernel::event::{self, Deleted, Events};
use app_kernel::page::PageRequest;
{{^follows}}
use sqlx::{Connection as _, Postgres};
{{/follows}}
{{#follows}}
use sqlx::{Connection as _, PgConnection, Postgres};
{{/follows}}
use {{name}}_api::events;

use super::{Filter, {{Item}}Store};
use crate::model::{New{{Item}}, {{Item}}};

/// The module's schema.
const SCHEMA: &str = "{{name}}";

pub(super) struct Pg{{Name}}(pub(super) Pool<Postgres>);

/// Every column of {{a}} {{item}}.
macro_rules! columns {
    () => {
{{^needs}}
        "id, name, version, created_at, updated_at"
{{/needs}}
{{#needs}}
        "id, name, version, created_at, updated_at, port_id"
{{/needs}}
    };
}

#[async_trait::async_trait]
impl {{Item}}Store for Pg{{Name}} {
    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<{{Item}}>, StoreError> {
        Ok(sqlx::query_as(concat!("select ", columns!(), " from {{name}}.{{name}} where id > $1 and ($2::text is null or name_key = $2) order by id limit $3"))
        .bind(page.after)
        .bind(&filter.name_key)
        .bind(page.fetch())
        .fetch_all(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn get(&self, id: i64) -> Result<Option<{{Item}}>, StoreError> {
        Ok(
            sqlx::query_as(concat!("select ", columns!(), " from {{name}}.{{name}} where id = $1"))
                .bind(id)
                .fetch_optional(&mut *self.0.acquire().await?)
                .await?,
        )
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn insert(&self, {{item}}: &New{{Item}}) -> Result<{{Item}}, StoreError> {
        let mut conn = self.0.acquire().await?;
        let mut tx = conn.begin().await?;
{{^needs}}
        let created: {{Item}} = sqlx::query_as(concat!("insert into {{name}}.{{name}} (name, name_key) values ($1, $2) returning ", columns!()))
        .bind(&{{item}}.name)
        .bind({{item}}.name_key())
        .fetch_one(&mut *tx)
        .await?;
{{/needs}}
{{#needs}}
        let created: {{Item}} = sqlx::query_as(concat!("insert into {{name}}.{{name}} (name, name_key, port_id) values ($1, $2, $3) returning ", columns!()))
        .bind(&{{item}}.name)
        .bind({{item}}.name_key())
        .bind({{item}}.port_id)
        .fetch_one(&mut *tx)
        .await?;
{{/needs}}
        event::postgres::record(&mut tx, SCHEMA, &events::CREATED.event(&created.data())).await?;
        tx.commit().await?;
        Ok(created)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn update(
        &self,
        id: i64,
        version: i64,
        {{item}}: &New{{Item}},
    ) -> Result<Option<{{Item}}>, StoreError> {
        let mut conn = self.0.acquire().await?;
        let mut tx = conn.begin().await?;
{{^needs}}
        let updated: Option<{{Item}}> = sqlx::query_as(concat!("update {{name}}.{{name}} set name = $3, name_key = $4, version = version + 1, updated_at = now() where id = $1 and version = $2 returning ", columns!()))
        .bind(id)
        .bind(version)
        .bind(&{{item}}.name)
        .bind({{item}}.name_key())
        .fetch_optional(&mut *tx)
        .await?;
{{/needs}}
{{#needs}}
        let updated: Option<{{Item}}> = sqlx::query_as(concat!("update {{name}}.{{name}} set name = $3, name_key = $4, port_id = $5, version = version + 1, updated_at = now() where id = $1 and version = $2 returning ", columns!()))
        .bind(id)
        .bind(version)
        .bind(&{{item}}.name)
        .bind({{item}}.name_key())
        .bind({{item}}.port_id)
        .fetch_optional(&mut *tx)
        .await?;
{{/needs}}
        if let Some({{item}}) = &updated {
            event::postgres::record(&mut tx, SCHEMA, &events::UPDATED.event(&{{item}}.data())).await?;
        }
        tx.commit().await?;
        Ok(updated)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError> {
        let mut conn = self.0.acquire().await?;
        let mut tx = conn.begin().await?;
        let done = sqlx::query("delete from {{name}}.{{name}} where id = $1 and version = $2")
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        let deleted = done.rows_affected() == 1;
        if deleted {
            event::postgres::record(&mut tx, SCHEMA, &events::DELETED.event(&Deleted { id, version })).await?;
        }
        tx.commit().await?;
        Ok(deleted)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn events(&self, after: i64, limit: i64) -> Result<Events, StoreError> {
        Ok(event::postgres::read(&mut *self.0.acquire().await?, SCHEMA, crate::PATH, after, limit).await?)
    }
}
{{#follows}}

/// Takes the deleted port `port_id` off every {{item}} that has it, each a
/// new version with its event, in the follower's transaction; returns how
/// many {{name}} changed.
pub(crate) async fn forget_port(conn: &mut PgConnection, port_id: i64) -> Result<u64, StoreError> {
    let changed: Vec<{{Item}}> = sqlx::query_as(concat!("update {{name}}.{{name}} set port_id = null, version = version + 1, updated_at = now() where port_id = $1 returning ", columns!()))
        .bind(port_id)
        .fetch_all(&mut *conn)
        .await?;
    for {{item}} in &changed {
        event::postgres::record(conn, SCHEMA, &events::UPDATED.event(&{{item}}.data())).await?;
    }
    Ok(changed.len() as u64)
}
{{/follows}}
