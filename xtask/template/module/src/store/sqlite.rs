{{^follows}}
use app_kernel::db::{Pool, StoreError, time_column};
{{/follows}}
{{#follows}}
use app_kernel::db::{Pool, StoreError, Write, time_column};
{{/follows}}
use app_kernel::event::{self, Deleted, Events};
use app_kernel::page::PageRequest;
use rusqlite::{OptionalExtension as _, params};
use sqlx::Sqlite;
use {{name}}_api::events;

use super::{Filter, {{Item}}Store};
use crate::model::{New{{Item}}, {{Item}}};

pub(super) struct Sqlite{{Name}}(pub(super) Pool<Sqlite>);

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
impl {{Item}}Store for Sqlite{{Name}} {
    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<{{Item}}>, StoreError> {
        Ok(sqlx::query_as(concat!("select ", columns!(), " from {{name}} where id > ?1 and (?2 is null or name_key = ?2) order by id limit ?3"))
        .bind(page.after)
        .bind(&filter.name_key)
        .bind(page.fetch())
        .fetch_all(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn get(&self, id: i64) -> Result<Option<{{Item}}>, StoreError> {
        Ok(
            sqlx::query_as(concat!("select ", columns!(), " from {{name}} where id = ?1"))
                .bind(id)
                .fetch_optional(&mut *self.0.acquire().await?)
                .await?,
        )
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn insert(&self, {{item}}: &New{{Item}}) -> Result<{{Item}}, StoreError> {
        let {{item}} = {{item}}.clone();
        // Committed with the writes waiting beside it: see `Pool::write`.
        self.0
            .write(move |write| {
{{^needs}}
                let created = write
                    .prepare_cached(concat!(
                        "insert into {{name}} (name, name_key) values (?1, ?2) returning ",
                        columns!()
                    ))?
                    .query_row(params![{{item}}.name, {{item}}.name_key()], written)?;
{{/needs}}
{{#needs}}
                let created = write
                    .prepare_cached(concat!(
                        "insert into {{name}} (name, name_key, port_id) values (?1, ?2, ?3) returning ",
                        columns!()
                    ))?
                    .query_row(params![{{item}}.name, {{item}}.name_key(), {{item}}.port_id], written)?;
{{/needs}}
                write.record(&events::CREATED.event(&created.data()))?;
                Ok(created)
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn update(
        &self,
        id: i64,
        version: i64,
        {{item}}: &New{{Item}},
    ) -> Result<Option<{{Item}}>, StoreError> {
        let {{item}} = {{item}}.clone();
        self.0
            .write(move |write| {
{{^needs}}
                let updated = write
                    .prepare_cached(concat!(
                        "update {{name}} set name = ?3, name_key = ?4, version = version + 1, \
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                         where id = ?1 and version = ?2 returning ",
                        columns!()
                    ))?
                    .query_row(params![id, version, {{item}}.name, {{item}}.name_key()], written)
                    .optional()?;
{{/needs}}
{{#needs}}
                let updated = write
                    .prepare_cached(concat!(
                        "update {{name}} set name = ?3, name_key = ?4, port_id = ?5, version = version + 1, \
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                         where id = ?1 and version = ?2 returning ",
                        columns!()
                    ))?
                    .query_row(
                        params![id, version, {{item}}.name, {{item}}.name_key(), {{item}}.port_id],
                        written,
                    )
                    .optional()?;
{{/needs}}
                if let Some({{item}}) = &updated {
                    write.record(&events::UPDATED.event(&{{item}}.data()))?;
                }
                Ok(updated)
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError> {
        self.0
            .write(move |write| {
                let deleted = write
                    .prepare_cached("delete from {{name}} where id = ?1 and version = ?2")?
                    .execute([id, version])?
                    == 1;
                if deleted {
                    write.record(&events::DELETED.event(&Deleted { id, version }))?;
                }
                Ok(deleted)
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "{{name}}"))]
    async fn events(&self, after: i64, limit: i64) -> Result<Events, StoreError> {
        Ok(event::sqlite::read(&mut *self.0.acquire().await?, crate::PATH, after, limit).await?)
    }
}

/// The {{item}} an insert or update returns, its [`columns`].
fn written(row: &rusqlite::Row<'_>) -> rusqlite::Result<{{Item}}> {
    Ok({{Item}} {
        id: row.get(0)?,
        name: row.get(1)?,
        version: row.get(2)?,
        created_at: time_column(row, 3)?,
        updated_at: time_column(row, 4)?,
{{#needs}}
        port_id: row.get(5)?,
{{/needs}}
    })
}
{{#follows}}

/// Takes the deleted port `port_id` off every {{item}} that has it, each a
/// new version with its event; returns how many {{name}} changed.
pub(crate) fn forget_port(write: &Write<'_>, port_id: i64) -> Result<u64, StoreError> {
    let changed = write
        .prepare_cached(concat!(
            "update {{name}} set port_id = null, version = version + 1, \
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             where port_id = ?1 returning ",
            columns!()
        ))?
        .query_map([port_id], written)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for {{item}} in &changed {
        write.record(&events::UPDATED.event(&{{item}}.data()))?;
    }
    Ok(changed.len() as u64)
}
{{/follows}}
