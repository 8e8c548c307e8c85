use app_kernel::db::{Group, Grouped, Pool, StoreError, Traced};
use app_kernel::event::{self, Deleted, Events};
use app_kernel::page::PageRequest;
use laptops_api::events;
use sqlx::types::Json;
use sqlx::{Connection as _, PgConnection, Postgres, Transaction};

use ports_api::PortRef;

use super::{Filter, LaptopStore, PortChange};
use crate::model::{Laptop, NewLaptop};

/// The module's schema.
const SCHEMA: &str = "laptops";

pub(super) struct PgLaptops {
    pool: Pool<Postgres>,
    /// New laptops wait here, to be written together.
    creates: Group<Creates>,
}

impl PgLaptops {
    pub(super) fn new(pool: Pool<Postgres>) -> Self {
        let creates = Group::start(SCHEMA, pool.clone(), Creates);
        Self { pool, creates }
    }
}

/// New laptops, written in groups: one statement for the rows, one for
/// their ports and one for their events, whatever the group's size.
struct Creates;

impl Grouped for Creates {
    type Item = NewLaptop;
    type Written = Laptop;

    async fn write(
        &self,
        conn: &mut PgConnection,
        laptops: &[Traced<NewLaptop>],
    ) -> Result<Vec<Laptop>, StoreError> {
        let (mut titles, mut keys, mut models, mut port_ids) = (vec![], vec![], vec![], vec![]);
        for Traced { item: laptop, .. } in laptops {
            titles.push(laptop.title.as_str());
            keys.push(laptop.title_key());
            models.push(laptop.model.as_str());
            port_ids.push(Json(&laptop.port_ids));
        }
        // PostgreSQL does not say in which order `returning` gives rows, so
        // each new row's id is drawn first, with its place in the group.
        let written: Vec<Laptop> = sqlx::query_as(
            "with new as (select * from unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) \
              with ordinality as t(title, title_key, model, port_ids, k)), \
             ids as materialized (select nextval('laptops.laptops_id_seq') as id, k from new), \
             written as (insert into laptops.laptops (id, title, title_key, model) overriding system value \
              select id, title, title_key, model from new join ids using (k) \
              returning id, title, model, version, created_at, updated_at) \
             select written.*, new.port_ids from written join ids using (id) join new using (k) order by k",
        )
        .bind(titles)
        .bind(keys)
        .bind(models)
        .bind(port_ids)
        .fetch_all(&mut *conn)
        .await?;
        let (mut listed_by, mut ports, mut positions) = (vec![], vec![], vec![]);
        for laptop in &written {
            for (position, port_id) in (1..).zip(&laptop.port_ids) {
                listed_by.push(laptop.id);
                ports.push(*port_id);
                positions.push(position);
            }
        }
        if !ports.is_empty() {
            sqlx::query(
                "insert into laptops.laptop_ports (laptop_id, port_id, position) \
                 select * from unnest($1::bigint[], $2::bigint[], $3::integer[])",
            )
            .bind(listed_by)
            .bind(ports)
            .bind::<Vec<i32>>(positions)
            .execute(&mut *conn)
            .await?;
        }
        let created: Vec<_> = written
            .iter()
            .map(|laptop| events::CREATED.event(&laptop.data()))
            .collect();
        let traces = laptops.iter().map(|laptop| laptop.traceparent.as_deref());
        event::postgres::record_all(conn, SCHEMA, created.iter().zip(traces)).await?;
        Ok(written)
    }
}

/// What an insert or update returns of the laptop it wrote: its port ids
/// are the parameter `$ports`, a JSON array, as written.
macro_rules! written_laptop {
    ($ports:literal) => {
        concat!(
            " returning id, title, model, version, created_at, updated_at, ",
            $ports,
            "::jsonb as port_ids"
        )
    };
}

/// Every column of a laptop, its port ids as a JSON array.
macro_rules! select_laptop {
    () => {
        "select id, title, model, version, created_at, updated_at, \
         coalesce((select json_agg(port_id order by position) from laptops.laptop_ports \
          where laptop_id = laptops.id), '[]'::json) as port_ids from laptops.laptops"
    };
}

#[async_trait::async_trait]
impl LaptopStore for PgLaptops {
    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn list(&self, filter: &Filter, page: PageRequest) -> Result<Vec<Laptop>, StoreError> {
        Ok(sqlx::query_as(concat!(
            select_laptop!(),
            " where id > $1 and ($2::text is null or title_key = $2) \
             and ($4::bigint is null or id in (select laptop_id from laptops.laptop_ports where port_id = $4)) \
             order by id limit $3"
        ))
        .bind(page.after)
        .bind(&filter.title_key)
        .bind(page.fetch())
        .bind(filter.port_id)
        .fetch_all(&mut *self.pool.acquire().await?)
        .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn get(&self, id: i64) -> Result<Option<Laptop>, StoreError> {
        Ok(sqlx::query_as(concat!(select_laptop!(), " where id = $1"))
            .bind(id)
            .fetch_optional(&mut *self.pool.acquire().await?)
            .await?)
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn insert(&self, laptop: &NewLaptop) -> Result<Laptop, StoreError> {
        self.creates.write(laptop.clone()).await
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn update(
        &self,
        id: i64,
        version: i64,
        laptop: &NewLaptop,
    ) -> Result<Option<Laptop>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let written: Option<Laptop> = sqlx::query_as(concat!(
            "update laptops.laptops set title = $3, title_key = $4, model = $5, \
             version = version + 1, updated_at = now() where id = $1 and version = $2",
            written_laptop!("$6")
        ))
        .bind(id)
        .bind(version)
        .bind(&laptop.title)
        .bind(laptop.title_key())
        .bind(&laptop.model)
        .bind(Json(&laptop.port_ids))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(written) = written else {
            return Ok(None);
        };
        sqlx::query("delete from laptops.laptop_ports where laptop_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        write_ports(&mut tx, id, &laptop.port_ids).await?;
        event::postgres::record(&mut tx, SCHEMA, &events::UPDATED.event(&written.data())).await?;
        tx.commit().await?;
        Ok(Some(written))
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn delete(&self, id: i64, version: i64) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let done = sqlx::query("delete from laptops.laptops where id = $1 and version = $2")
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

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn port_refs(&self, ids: &[i64]) -> Result<Vec<PortRef>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("select id, name from laptops.port_refs where id = any($1)")
                .bind(ids)
                .fetch_all(&mut *self.pool.acquire().await?)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| PortRef { id, name })
            .collect())
    }

    #[tracing::instrument(level = "debug", skip(self), fields(module = "laptops"))]
    async fn events(&self, after: i64, limit: i64) -> Result<Events, StoreError> {
        Ok(event::postgres::read(
            &mut *self.pool.acquire().await?,
            SCHEMA,
            crate::PATH,
            after,
            limit,
        )
        .await?)
    }
}

/// Applies a change of ports, in the follower's transaction: a port's name is kept at its newest version; a
/// deleted port leaves every laptop that lists it. How many laptops changed.
pub(crate) async fn apply_port_change(
    conn: &mut PgConnection,
    change: &PortChange,
) -> Result<u64, StoreError> {
    match change {
        PortChange::Named { id, name, version } => {
            sqlx::query("insert into laptops.port_refs (id, name, version) values ($1, $2, $3) on conflict (id) do update set name = excluded.name, version = excluded.version where excluded.version > laptops.port_refs.version")
                .bind(id)
                .bind(name)
                .bind(version)
                .execute(&mut *conn)
                .await?;
            Ok(0)
        }
        PortChange::Deleted { id } => {
            sqlx::query("delete from laptops.port_refs where id = $1")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            remove_port(conn, *id).await
        }
    }
}

/// Drops `port_id` from every laptop that lists it, each a new version
/// with its event; returns how many laptops changed.
async fn remove_port(conn: &mut PgConnection, port_id: i64) -> Result<u64, StoreError> {
    // The bumped laptops, and only they, lose the port, so a laptop that
    // gained it meanwhile never changes without a new version. Each laptop's
    // row is locked before its event is recorded, as every writer does
    // (the order of one laptop's events rests on it).
    let bumped: Vec<(i64,)> = sqlx::query_as("update laptops.laptops set version = version + 1, updated_at = now() where id in (select laptop_id from laptops.laptop_ports where port_id = $1) returning id")
        .bind(port_id)
        .fetch_all(&mut *conn)
        .await?;
    let bumped: Vec<i64> = bumped.into_iter().map(|(id,)| id).collect();
    sqlx::query("delete from laptops.laptop_ports where port_id = $1 and laptop_id = any($2)")
        .bind(port_id)
        .bind(&bumped)
        .execute(&mut *conn)
        .await?;
    for &id in &bumped {
        let laptop = read(conn, id).await?;
        event::postgres::record(conn, SCHEMA, &events::UPDATED.event(&laptop.data())).await?;
    }
    Ok(bumped.len() as u64)
}

/// Lists `port_ids` for the laptop, in order.
async fn write_ports(
    tx: &mut Transaction<'_, Postgres>,
    id: i64,
    port_ids: &[i64],
) -> Result<(), StoreError> {
    if !port_ids.is_empty() {
        sqlx::query("insert into laptops.laptop_ports (laptop_id, port_id, position) select $1, port_id, position from unnest($2::bigint[]) with ordinality as t(port_id, position)")
            .bind(id)
            .bind(port_ids)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The laptop as the transaction sees it.
async fn read(conn: &mut PgConnection, id: i64) -> Result<Laptop, StoreError> {
    Ok(sqlx::query_as(concat!(select_laptop!(), " where id = $1"))
        .bind(id)
        .fetch_one(conn)
        .await?)
}
