use app_kernel::db::{Pool, StoreError, Write, json_column, time_column};
use app_kernel::event::{self, Deleted, Events};
use app_kernel::page::PageRequest;
use laptops_api::events;
use rusqlite::{OptionalExtension as _, params};
use sqlx::Sqlite;

use ports_api::PortRef;

use super::{Filter, LaptopStore, PortChange};
use crate::model::{Laptop, NewLaptop};

pub(super) struct SqliteLaptops(pub(super) Pool<Sqlite>);

/// What an insert or update returns of the laptop it wrote: its columns,
/// and its port ids as written, parameter `$ports`, so no read follows.
macro_rules! written_laptop {
    ($ports:literal) => {
        concat!(
            "id, title, model, version, created_at, updated_at, ",
            $ports,
            " as port_ids"
        )
    };
}

/// Every column of a laptop, its port ids as a JSON array.
macro_rules! select_laptop {
    () => {
        "select id, title, model, version, created_at, updated_at, \
         (select json_group_array(port_id order by position) from laptop_ports \
          where laptop_id = laptops.id) as port_ids from laptops"
    };
}

#[async_trait::async_trait]
impl LaptopStore for SqliteLaptops {
    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<Laptop>, StoreError> {
        Ok(sqlx::query_as(concat!(
            select_laptop!(),
            " where id > ?1 and (?2 is null or title_key = ?2) \
             and (?4 is null or id in (select laptop_id from laptop_ports where port_id = ?4)) \
             order by id limit ?3"
        ))
        .bind(page.after)
        .bind(&filter.title_key)
        .bind(page.fetch())
        .bind(filter.port_id)
        .fetch_all(&mut *self.0.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn get(&self, id: i64) -> Result<Option<Laptop>, StoreError> {
        Ok(sqlx::query_as(concat!(select_laptop!(), " where id = ?1"))
            .bind(id)
            .fetch_optional(&mut *self.0.acquire().await?)
            .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn insert(&self, laptop: &NewLaptop) -> Result<Laptop, StoreError> {
        let laptop = laptop.clone();
        self.0
            .write(move |write| {
                let port_ids = serde_json::Value::from(laptop.port_ids.as_slice()).to_string();
                let written = write
                    .prepare_cached(concat!(
                        "insert into laptops (title, title_key, model) values (?1, ?2, ?3) returning ",
                        written_laptop!("?4")
                    ))?
                    .query_row(
                        params![laptop.title, laptop.title_key(), laptop.model, port_ids],
                        written,
                    )?;
                write_ports(write, written.id, &port_ids)?;
                write.record(&events::CREATED.event(&written.data()))?;
                Ok(written)
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn update(
        &self,
        id: i64,
        version: i64,
        laptop: &NewLaptop,
    ) -> Result<Option<Laptop>, StoreError> {
        let laptop = laptop.clone();
        self.0
            .write(move |write| {
                let port_ids = serde_json::Value::from(laptop.port_ids.as_slice()).to_string();
                let updated = write
                    .prepare_cached(concat!(
                        "update laptops set title = ?3, title_key = ?4, model = ?5, version = version + 1, \
                         updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') where id = ?1 and version = ?2 returning ",
                        written_laptop!("?6")
                    ))?
                    .query_row(
                        params![id, version, laptop.title, laptop.title_key(), laptop.model, port_ids],
                        written,
                    )
                    .optional()?;
                let Some(written) = updated else {
                    return Ok(None);
                };
                write
                    .prepare_cached("delete from laptop_ports where laptop_id = ?1")?
                    .execute([id])?;
                write_ports(write, id, &port_ids)?;
                write.record(&events::UPDATED.event(&written.data()))?;
                Ok(Some(written))
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError> {
        self.0
            .write(move |write| {
                let deleted = write
                    .prepare_cached("delete from laptops where id = ?1 and version = ?2")?
                    .execute([id, version])?
                    == 1;
                if deleted {
                    write.record(&events::DELETED.event(&Deleted { id, version }))?;
                }
                Ok(deleted)
            })
            .await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn port_refs(&self, ids: &[i64]) -> Result<Vec<PortRef>, StoreError> {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "select id, name from port_refs where id in (select value from json_each(?1))",
        )
        .bind(serde_json::Value::from(ids).to_string())
        .fetch_all(&mut *self.0.acquire().await?)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| PortRef { id, name })
            .collect())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn events(&self, after: i64, limit: i64) -> Result<Events, StoreError> {
        Ok(event::sqlite::read(&mut *self.0.acquire().await?, crate::PATH, after, limit).await?)
    }
}

/// Applies a change of ports, in the follower's write: a port's name is
/// kept at its newest version; a deleted port leaves every laptop that
/// lists it. How many laptops changed.
pub(crate) fn apply_port_change(write: &Write<'_>, change: &PortChange) -> Result<u64, StoreError> {
    match change {
        PortChange::Named { id, name, version } => {
            write
                .prepare_cached("insert into port_refs (id, name, version) values (?1, ?2, ?3) on conflict (id) do update set name = excluded.name, version = excluded.version where excluded.version > port_refs.version")?
                .execute(params![id, name, version])?;
            Ok(0)
        }
        PortChange::Deleted { id } => {
            write
                .prepare_cached("delete from port_refs where id = ?1")?
                .execute([id])?;
            remove_port(write, *id)
        }
    }
}

/// Drops `port_id` from every laptop that lists it, each a new version
/// with its event; returns how many laptops changed.
fn remove_port(write: &Write<'_>, port_id: i64) -> Result<u64, StoreError> {
    let changed: Vec<i64> = write
        .prepare_cached("update laptops set version = version + 1, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') where id in (select laptop_id from laptop_ports where port_id = ?1) returning id")?
        .query_map([port_id], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    write
        .prepare_cached("delete from laptop_ports where port_id = ?1")?
        .execute([port_id])?;
    for &id in &changed {
        let laptop = write
            .prepare_cached(concat!(select_laptop!(), " where id = ?1"))?
            .query_row([id], written)?;
        write.record(&events::UPDATED.event(&laptop.data()))?;
    }
    Ok(changed.len() as u64)
}

/// Lists `port_ids`, a JSON array, for the laptop, in order.
fn write_ports(write: &Write<'_>, id: i64, port_ids: &str) -> Result<(), StoreError> {
    if port_ids != "[]" {
        write
            .prepare_cached("insert into laptop_ports (laptop_id, port_id, position) select ?1, value, key from json_each(?2)")?
            .execute(params![id, port_ids])?;
    }
    Ok(())
}

/// The laptop an insert or update returns, as [`written_laptop`] lists it,
/// or a select as [`select_laptop`] does.
fn written(row: &rusqlite::Row<'_>) -> rusqlite::Result<Laptop> {
    Ok(Laptop {
        id: row.get(0)?,
        title: row.get(1)?,
        model: row.get(2)?,
        version: row.get(3)?,
        created_at: time_column(row, 4)?,
        updated_at: time_column(row, 5)?,
        port_ids: json_column(row, 6)?,
        ports: None,
    })
}
