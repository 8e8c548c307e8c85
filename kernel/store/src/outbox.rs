//! Each module's outbox: its `events` table, written by its store beside
//! the change itself (an event exists if and only if its change
//! committed), read back as its feed; and its `events_dead` table of the
//! events it failed to apply.

use app_events::{CloudEvent, DATA_CONTENT_TYPE, DeadEvent, Events, SPEC_VERSION};
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, SqliteConnection};

pub use app_events::{Change, Event};

/// One row of an `events` table, with the count of rows after `after`.
type Row = (
    i64,
    String,
    String,
    String,
    DateTime<Utc>,
    serde_json::Value,
    Option<String>,
    i64,
);

fn page(rows: Vec<Row>, source: &str) -> Events {
    Events {
        remaining: rows.first().map_or(0, |row| row.7),
        items: rows
            .into_iter()
            .map(
                |(seq, id, kind, subject, time, data, traceparent, _)| CloudEvent {
                    specversion: SPEC_VERSION.to_owned(),
                    id,
                    source: source.to_owned(),
                    kind,
                    subject,
                    time,
                    datacontenttype: DATA_CONTENT_TYPE.to_owned(),
                    data,
                    traceparent,
                    seq,
                },
            )
            .collect(),
    }
}

/// Up to `limit` changes of `module`'s events after `after`, oldest first:
/// its feed, without what only a follower needs. One row, however many
/// changes: each row is a round trip from SQLite's thread.
pub async fn changes(
    db: &crate::db::Db,
    module: &'static str,
    after: i64,
    limit: i64,
) -> Result<Vec<Change>, sqlx::Error> {
    let (changes,): (String,) = match db {
        crate::db::Db::Sqlite(pool) => {
            sqlx::query_as(
                "select json_group_array(json_object('kind', type, 'subject', subject, \
                 'version', json_extract(data, '$.version'), 'seq', seq)) from \
                 (select seq, type, subject, data from events where seq > ?1 order by seq limit ?2)",
            )
            .bind(after)
            .bind(limit)
            .fetch_one(&mut *pool.acquire().await?)
            .await?
        }
        crate::db::Db::Postgres(pool) => {
            let select = format!(
                "select coalesce(json_agg(json_build_object('kind', type, 'subject', subject, \
                 'version', (data->>'version')::bigint, 'seq', seq) order by seq), '[]')::text from \
                 (select seq, type, subject, data from {module}.events where seq > $1 \
                 order by seq limit $2) page"
            );
            sqlx::query_as(sqlx::AssertSqlSafe(select))
                .bind(after)
                .bind(limit)
                .fetch_one(&mut *pool.acquire().await?)
                .await?
        }
    };
    serde_json::from_str(&changes).map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

/// The `seq` of `module`'s last event; 0 if none.
pub async fn last_seq(db: &crate::db::Db, module: &'static str) -> Result<i64, sqlx::Error> {
    let (seq,): (Option<i64>,) = match db {
        crate::db::Db::Sqlite(pool) => {
            sqlx::query_as("select max(seq) from events")
                .fetch_one(&mut *pool.acquire().await?)
                .await?
        }
        crate::db::Db::Postgres(pool) => {
            let select = format!("select max(seq) from {module}.events");
            sqlx::query_as(sqlx::AssertSqlSafe(select))
                .fetch_one(&mut *pool.acquire().await?)
                .await?
        }
    };
    Ok(seq.unwrap_or(0))
}

/// The `events` table of a module on SQLite: one file per module, so the
/// table needs no schema, and writes are serialized by the database, so
/// `seq` is commit order.
pub mod sqlite {
    use super::*;

    /// Up to `limit` events with `seq` above `after`, oldest first.
    pub async fn read(
        conn: &mut SqliteConnection,
        source: &str,
        after: i64,
        limit: i64,
    ) -> Result<Events, sqlx::Error> {
        let rows: Vec<Row> = sqlx::query_as(
            "select seq, id, type, subject, time, data, traceparent, count(*) over () \
             from events where seq > ?1 order by seq limit ?2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(conn)
        .await?;
        Ok(page(rows, source))
    }
}

/// The `events` table of a module on PostgreSQL, in the module's schema.
pub mod postgres {
    use super::*;

    /// Takes the module's events lock, first thing in a transaction that
    /// will record events.
    ///
    /// It makes events commit in the order of their `seq`: a reader that
    /// has seen `seq` N never later finds a smaller one appear. Taken
    /// before any row, it is every writer's first lock, so writers that
    /// then lock rows in different orders never deadlock. It is held to
    /// the commit: one module's writes on PostgreSQL take turns.
    pub async fn lock(conn: &mut PgConnection, schema: &'static str) -> Result<(), sqlx::Error> {
        let lock = format!("lock table {schema}.events in share row exclusive mode");
        sqlx::query(sqlx::AssertSqlSafe(lock)).execute(conn).await?;
        Ok(())
    }

    /// Records `event` on `conn`, which holds the change's transaction and
    /// took the events lock first ([`lock`]): without it `seq` would not be
    /// commit order.
    pub async fn record(
        conn: &mut PgConnection,
        schema: &'static str,
        event: &Event,
    ) -> Result<(), sqlx::Error> {
        let insert = format!(
            "insert into {schema}.events (id, type, subject, time, data, traceparent) \
             values ($1::uuid, $2, $3, $4, $5, $6)"
        );
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(app_events::new_id())
            .bind(event.kind)
            .bind(&event.subject)
            .bind(Utc::now())
            .bind(&event.data)
            .bind(app_calls::trace::traceparent())
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Up to `limit` events with `seq` above `after`, oldest first.
    pub async fn read(
        conn: &mut PgConnection,
        schema: &'static str,
        source: &str,
        after: i64,
        limit: i64,
    ) -> Result<Events, sqlx::Error> {
        let select = format!(
            "select seq, id::text, type, subject, time, data, traceparent, count(*) over () \
             from {schema}.events where seq > $1 order by seq limit $2"
        );
        let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(select))
            .bind(after)
            .bind(limit)
            .fetch_all(conn)
            .await?;
        Ok(page(rows, source))
    }
}

/// The dead-lettered events of a module, and asking for one again. The
/// table is every following module's, in its schema (or file).
pub mod dead {
    use super::*;
    use crate::db::Db;

    type Row = (
        String,
        String,
        i64,
        serde_json::Value,
        String,
        i64,
        DateTime<Utc>,
        bool,
    );

    /// Every event `module` dead-lettered, oldest failure first.
    pub async fn list(db: &Db, module: &'static str) -> Result<Vec<DeadEvent>, sqlx::Error> {
        let rows: Vec<Row> = match db {
            Db::Sqlite(pool) => {
                sqlx::query_as("select id, feed, seq, event, error, attempts, failed_at, retry from events_dead order by failed_at, seq")
                    .fetch_all(pool.sqlx())
                    .await?
            }
            Db::Postgres(pool) => {
                let select = format!("select id, feed, seq, event, error, attempts, failed_at, retry from {module}.events_dead order by failed_at, seq");
                sqlx::query_as(sqlx::AssertSqlSafe(select))
                    .fetch_all(pool.sqlx())
                    .await?
            }
        };
        rows.into_iter()
            .map(|(_, feed, _, event, error, attempts, failed_at, retry)| {
                let event =
                    serde_json::from_value(event).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
                Ok(DeadEvent {
                    module: module.to_owned(),
                    feed,
                    event,
                    error,
                    attempts,
                    failed_at,
                    retry,
                })
            })
            .collect()
    }

    /// Marks the dead event `id` of `module` for its follower to apply
    /// again; `false` if `module` has no such event.
    pub async fn retry(db: &Db, module: &'static str, id: &str) -> Result<bool, sqlx::Error> {
        let done = match db {
            Db::Sqlite(pool) => sqlx::query("update events_dead set retry = 1 where id = ?1")
                .bind(id)
                .execute(pool.sqlx())
                .await?
                .rows_affected(),
            Db::Postgres(pool) => {
                let update = format!("update {module}.events_dead set retry = true where id = $1");
                sqlx::query(sqlx::AssertSqlSafe(update))
                    .bind(id)
                    .execute(pool.sqlx())
                    .await?
                    .rows_affected()
            }
        };
        Ok(done == 1)
    }
}
