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
                    producerversion: Some(app_http::versions::VERSION.to_owned()),
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
            let mut conn = pool.acquire().await?;
            postgres::sequence(&mut conn, module).await?;
            let select = format!(
                "select coalesce(json_agg(json_build_object('kind', type, 'subject', subject, \
                 'version', (data->>'version')::bigint, 'seq', seq) order by seq), '[]')::text from \
                 (select seq, type, subject, data from {module}.events where seq > $1 \
                 order by seq limit $2) page"
            );
            sqlx::query_as(sqlx::AssertSqlSafe(select))
                .bind(after)
                .bind(limit)
                .fetch_one(&mut *conn)
                .await?
        }
    };
    serde_json::from_str(&changes).map_err(|error| sqlx::Error::Decode(Box::new(error)))
}

/// The `seq` of `module`'s last event in its feed; 0 if none.
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

/// The `events` table of a module on PostgreSQL, in the module's schema,
/// written by transactions that run side by side (ADR 17).
///
/// A writer's event gets its insert order, `n`, but no place in the feed:
/// `seq` is given after the writer commits, by [`sequence`], which every
/// reader of the feed runs before it reads by `seq`. That is the one
/// reading rule, and it is here.
///
/// Why no reader skips an event: [`sequence`] runs one at a time and
/// numbers only committed events, each once, after every `seq` given
/// before. So `seq` values appear in the order they are given, with no
/// gaps, and a reader that has seen `seq` N never finds a smaller one
/// appear. (Had `seq` been drawn at insert, as `n` is, a writer that drew
/// N and commits after the writer that drew N + 1 would show N after a
/// reader moved past N + 1.)
///
/// Why one resource's events keep their order: a store records a
/// resource's event after it wrote the resource's row, in the same
/// transaction, so the next writer of that row waits for this one to
/// commit (and be seen) before it inserts its own event. Its event comes
/// later in `n`, and no [`sequence`] can see it without this one:
/// [`sequence`] numbers what it sees in `n` order.
pub mod postgres {
    use super::*;

    /// How many events one [`sequence`] numbers at most.
    const SEQUENCE_BATCH: i64 = 1000;

    /// Records `event` on `conn`, which holds the transaction that wrote
    /// the row of the event's resource (see the module's documentation).
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

    /// Records the events of a group commit (see [`crate::db::Group`]) in
    /// one statement, in their order, each with the trace of the write
    /// that made it; as [`record`] does for one.
    pub async fn record_all<'e>(
        conn: &mut PgConnection,
        schema: &'static str,
        events: impl IntoIterator<Item = (&'e Event, Option<&'e str>)>,
    ) -> Result<(), sqlx::Error> {
        let (mut ids, mut kinds, mut subjects, mut data, mut traceparents) =
            (vec![], vec![], vec![], vec![], vec![]);
        for (event, traceparent) in events {
            ids.push(app_events::new_id());
            kinds.push(event.kind);
            subjects.push(event.subject.as_str());
            data.push(&event.data);
            traceparents.push(traceparent);
        }
        let insert = format!(
            "insert into {schema}.events (id, type, subject, time, data, traceparent) \
             select id::uuid, type, subject, $6, data, traceparent \
             from unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[]) \
             with ordinality as e(id, type, subject, data, traceparent, k) order by k"
        );
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(ids)
            .bind(kinds)
            .bind(subjects)
            .bind(data)
            .bind(traceparents)
            .bind(Utc::now())
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Gives each committed event of `schema` that has no place in the feed
    /// yet its `seq`, in the order the events were inserted, after the last
    /// `seq` given; returns how many. `conn` must not be in a transaction.
    ///
    /// Only readers take turns here, on an advisory lock held to the end
    /// of this transaction of its own: the lock and the numbering go in one
    /// message, and the numbering's snapshot, taken once it holds the lock,
    /// sees every `seq` given before.
    pub async fn sequence(
        conn: &mut PgConnection,
        schema: &'static str,
    ) -> Result<u64, sqlx::Error> {
        let sequence = format!(
            "select pg_advisory_xact_lock(hashtext('{schema}.events')); \
             update {schema}.events e set seq = head.seq + next.k \
             from (select coalesce(max(seq), 0) as seq from {schema}.events) head, \
                  (select n, row_number() over (order by n) as k from {schema}.events \
                   where seq is null order by n limit {SEQUENCE_BATCH}) next \
             where e.n = next.n"
        );
        // Statements sent in one message run as one transaction, each with
        // a snapshot of its own; a failure rolls all of them back.
        let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sequence))
            .execute(conn)
            .await?;
        Ok(done.rows_affected())
    }

    /// Up to `limit` events with `seq` above `after`, oldest first, once
    /// [`sequence`] gave what it could: on `conn`, not in a transaction.
    pub async fn read(
        conn: &mut PgConnection,
        schema: &'static str,
        source: &str,
        after: i64,
        limit: i64,
    ) -> Result<Events, sqlx::Error> {
        sequence(conn, schema).await?;
        read_sequenced(conn, schema, source, after, limit).await
    }

    /// [`read`] without sequencing first: for a reader that did, and then
    /// began a transaction (the relay).
    pub async fn read_sequenced(
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
