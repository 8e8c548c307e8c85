//! SQLite's group commit: one thread per module holds the module's only
//! writing connection, takes every write waiting, runs each in a savepoint
//! of one transaction and commits them together, with one fsync.
//!
//! The thread drives SQLite itself, through rusqlite: a statement is a
//! call, not a round trip to a connection's thread as it is through sqlx,
//! so a group of writes costs what SQLite does for them, and the fsync.
//! Reads, and the writes of followers and relays, still go through the
//! module's sqlx pool; SQLite's lock orders them with the group's.

use std::ops::Deref;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::types::Type;
use rusqlite::{Connection, ErrorCode, OpenFlags};
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use app_events::Event;
use app_http::problem::Chain;

use crate::error::StoreError;

/// The most writes one group commit holds.
const MAX_GROUP: usize = 256;
/// How long a statement waits for SQLite's lock, held by another connection.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// The shortest time between two checkpoints of a busy module.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How long the WAL grows, in pages, before the group's connection itself
/// checkpoints what is left, so that the next group writes it from the
/// start again (16 MiB of SQLite's default pages).
const RESTART_FRAMES: i64 = 4096;
/// SQLite's default page size, which no module's database changes.
const PAGE_BYTES: i64 = 4096;

/// One write, as its work sees it: the group's connection, in a savepoint
/// of its own, and the request's trace for the events it records.
pub struct Write<'c> {
    conn: &'c Connection,
    traceparent: Option<String>,
}

impl Deref for Write<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Write<'_> {
    /// Records `event` with the write: committed with it, undone with it.
    ///
    /// The one way an event is written on SQLite, since every write goes
    /// through the group commit.
    pub fn record(&self, event: &Event) -> Result<(), StoreError> {
        // As sqlx writes a time, so events read back alike through it.
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
        self.conn
            .prepare_cached(
                "insert into events (id, type, subject, time, data, traceparent) \
                 values (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(rusqlite::params![
                app_events::new_id(),
                event.kind,
                event.subject,
                time,
                event.data.to_string(),
                self.traceparent,
            ])?;
        Ok(())
    }
}

/// Where a module's writes wait for the next group commit.
#[derive(Clone)]
pub(super) struct Writer(mpsc::UnboundedSender<Order>);

enum Order {
    Write(Job),
    /// Close the connection and end, then say so.
    Close(oneshot::Sender<()>),
}

/// A write as the group runs it: its work, then whom to tell the group's
/// outcome; and whether the work succeeded, so its savepoint is released
/// or rolled back.
type Job = Box<dyn FnOnce(&Connection) -> (Deliver, bool) + Send>;
/// Tells a writer how its group's commit went.
type Deliver = Box<dyn FnOnce(Result<(), &rusqlite::Error>) + Send>;

impl Writer {
    /// Starts the thread that commits the writes of `module`, kept in `file`.
    /// Group sizes are recorded in `app_db_group_commit_writes{module}`.
    pub(super) fn start(module: &str, file: PathBuf) -> std::io::Result<Self> {
        let (orders, waiting) = mpsc::unbounded_channel();
        let (committed, commits) = std::sync::mpsc::sync_channel(1);
        let sizes =
            metrics::histogram!("app_db_group_commit_writes", "module" => module.to_owned());
        let checkpointed = file.clone();
        std::thread::Builder::new()
            .name(format!("{module}-checkpoints"))
            .spawn(move || checkpoint_after_commits(&checkpointed, &commits))?;
        std::thread::Builder::new()
            .name(format!("{module}-commits"))
            .spawn(move || commit_in_groups(&file, waiting, &committed, &sizes))?;
        Ok(Self(orders))
    }

    /// Runs `work` in the next group, and returns what it did once the
    /// group is committed; an error undoes `work` alone, at once.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Write<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (tell, told) = oneshot::channel();
        // The write runs on the group's thread, but as part of this request.
        let span = tracing::Span::current();
        let traceparent = app_calls::trace::traceparent();
        let job: Job = Box::new(move |conn| {
            // A panic fails this write alone: its savepoint is rolled back,
            // its writer told, and the group's thread goes on.
            let done = span.in_scope(|| {
                let write = Write { conn, traceparent };
                std::panic::catch_unwind(AssertUnwindSafe(|| work(&write)))
                    .unwrap_or_else(|panic| Err(panicked(&*panic)))
            });
            let succeeded = done.is_ok();
            let deliver: Deliver = Box::new(move |committed| {
                let _ = tell.send(match committed {
                    Ok(()) => done,
                    Err(error) => Err(group_failed(error)),
                });
            });
            (deliver, succeeded)
        });
        let ended = || StoreError::Unavailable("the group commit has ended".into());
        self.0.send(Order::Write(job)).map_err(|_| ended())?;
        // Dropped untold: the group had no connection, or the writer closed.
        let dropped = || StoreError::Unavailable("the write was not run: no connection".into());
        told.await.map_err(|_| dropped())?
    }

    /// Whether the group's thread has ended (closed, or stopped by a fault):
    /// no write can be committed any more.
    pub(super) fn stopped(&self) -> bool {
        self.0.is_closed()
    }

    /// Ends the thread once the writes before this call are committed; the
    /// writes after it answer 503.
    pub(super) async fn close(&self) {
        let (closed, done) = oneshot::channel();
        if self.0.send(Order::Close(closed)).is_ok() {
            let _ = done.await;
        }
    }
}

/// Every write of the group failed with the group's commit.
/// The error of a write whose work panicked, logged with the panic's message.
fn panicked(panic: &(dyn std::any::Any + Send)) -> StoreError {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic");
    tracing::error!(
        panic = message,
        "a write panicked; it is undone, and others go on"
    );
    StoreError::Other(format!("the write panicked: {message}").into())
}

fn group_failed(error: &rusqlite::Error) -> StoreError {
    StoreError::Unavailable(format!("the group's commit failed: {error}").into())
}

/// A connection of the module's own, as the pool's are: WAL, every commit
/// on disk before it is acknowledged, foreign keys enforced. The pool made
/// the file; one gone since is not made again, empty: writes answer 503.
fn open(file: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch(
        "pragma journal_mode = wal; pragma synchronous = full; pragma foreign_keys = on;",
    )?;
    conn.trace_v2(
        rusqlite::trace::TraceEventCodes::SQLITE_TRACE_PROFILE,
        Some(report_statement),
    );
    Ok(conn)
}

/// Reports a statement the group's connection ran as sqlx reports its own,
/// so a write's statements become database spans of its request, as its
/// reads do: the write's work runs in the request's span.
fn report_statement(event: rusqlite::trace::TraceEvent<'_>) {
    if let rusqlite::trace::TraceEvent::Profile(statement, elapsed) = event {
        let sql = statement.sql();
        tracing::event!(
            target: "sqlx::query",
            tracing::Level::DEBUG,
            elapsed_secs = elapsed.as_secs_f64(),
            db.statement = &*sql,
        );
    }
}

/// The group commit: takes every write waiting (up to [`MAX_GROUP`]), runs
/// each in savepoint `w` of one transaction, commits once, then tells each
/// writer. Writes wait while a commit runs, so the busier the module, the
/// larger its groups.
///
/// The group's connection leaves checkpoints to another: copying the WAL
/// into the database file, with its fsync, would hold up the writes
/// waiting. Each commit tells `committed`, and [`checkpoint_after_commits`]
/// copies. But a checkpoint running beside a busy writer never catches up
/// with it, and SQLite writes the WAL from its start again only once one
/// has: so once the WAL holds [`RESTART_FRAMES`] pages, the group's
/// connection checkpoints what is left itself, between two groups, and
/// truncates the file to that size when it starts over.
fn commit_in_groups(
    file: &Path,
    mut waiting: mpsc::UnboundedReceiver<Order>,
    committed: &SyncSender<()>,
    sizes: &metrics::Histogram,
) {
    let mut conn: Option<Connection> = None;
    let mut jobs = Vec::with_capacity(MAX_GROUP);
    loop {
        let mut closing = None;
        match waiting.blocking_recv() {
            Some(Order::Write(job)) => jobs.push(job),
            Some(Order::Close(closed)) => closing = Some(closed),
            None => return,
        }
        while closing.is_none() && jobs.len() < MAX_GROUP {
            match waiting.try_recv() {
                Ok(Order::Write(job)) => jobs.push(job),
                Ok(Order::Close(closed)) => closing = Some(closed),
                Err(_) => break,
            }
        }
        if !jobs.is_empty() {
            sizes.record(jobs.len() as f64);
            if conn.is_none() {
                let opened = open(file).and_then(|conn| {
                    conn.pragma_update(None, "wal_autocheckpoint", RESTART_FRAMES)?;
                    conn.pragma_update(None, "journal_size_limit", RESTART_FRAMES * PAGE_BYTES)?;
                    Ok(conn)
                });
                match opened {
                    Ok(opened) => conn = Some(opened),
                    Err(error) => {
                        tracing::warn!(error = %Chain(&error), writes = jobs.len(), "no connection for a group commit");
                        // Dropped untold, their writers answer 503.
                        jobs.clear();
                    }
                }
            }
            if let Some(open) = &conn {
                match commit(open, &mut jobs) {
                    // Full: a checkpoint is due already.
                    Ok(()) => drop(committed.try_send(())),
                    Err(error) => {
                        tracing::warn!(error = %Chain(&error), "a group commit failed");
                        // Whatever state it is in, it is not reused.
                        let _ = open.execute_batch("rollback");
                        conn = None;
                    }
                }
            }
        }
        if let Some(closed) = closing {
            // Writes sent after the close answer 503.
            waiting.close();
            drop(conn);
            let _ = closed.send(());
            return;
        }
    }
}

/// Copies what the group commits from the WAL into the database file, on a
/// connection of its own, after a commit and at most every
/// [`CHECKPOINT_EVERY`]. Passive, it waits for no reader and no writer;
/// pages a reader still needs are copied by a later one. It ends with the
/// group commit.
fn checkpoint_after_commits(file: &Path, commits: &Receiver<()>) {
    let mut conn: Option<Connection> = None;
    while commits.recv().is_ok() {
        let began = Instant::now();
        if conn.is_none() {
            conn = open(file)
                .inspect_err(
                    |error| tracing::warn!(error = %Chain(error), "no connection for a checkpoint"),
                )
                .ok();
        }
        if let Some(open) = &conn
            && let Err(error) = open.query_row("pragma wal_checkpoint(passive)", [], |_| Ok(()))
        {
            tracing::warn!(error = %Chain(&error), "a checkpoint failed");
            conn = None;
        }
        std::thread::sleep(CHECKPOINT_EVERY.saturating_sub(began.elapsed()));
    }
}

/// Runs `jobs` in one transaction and commits it; tells each writer how
/// it went. Fails if the group's own statements do.
fn commit(conn: &Connection, jobs: &mut Vec<Job>) -> rusqlite::Result<()> {
    let mut told = Vec::with_capacity(jobs.len());
    let run = |sql| conn.prepare_cached(sql)?.execute([]).map(drop);
    let ran = (|| {
        run("begin immediate")?;
        for job in jobs.drain(..) {
            run("savepoint w")?;
            let (deliver, succeeded) = job(conn);
            if succeeded {
                run("release w")?;
                told.push(deliver);
            } else {
                run("rollback to w")?;
                run("release w")?;
                // Its writer is told its own error, whatever the group's fate.
                deliver(Ok(()));
            }
        }
        run("commit")
    })();
    // Jobs never run are dropped here, and their writers told so.
    jobs.clear();
    for deliver in told {
        deliver(ran.as_ref().map(|_| ()));
    }
    ran
}

impl From<rusqlite::Error> for StoreError {
    /// As for sqlx's errors: a unique constraint, a transient failure (busy,
    /// locked, read-only, I/O, full, can't open), or anything else.
    fn from(error: rusqlite::Error) -> Self {
        match error.sqlite_error() {
            Some(e)
                if matches!(
                    e.extended_code,
                    rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                        | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                ) =>
            {
                Self::Unique(error.into())
            }
            Some(e)
                if matches!(
                    e.code,
                    ErrorCode::DatabaseBusy
                        | ErrorCode::DatabaseLocked
                        | ErrorCode::ReadOnly
                        | ErrorCode::SystemIoFailure
                        | ErrorCode::DiskFull
                        | ErrorCode::CannotOpen
                ) =>
            {
                Self::Unavailable(error.into())
            }
            _ => Self::Other(error.into()),
        }
    }
}

/// Column `idx` of `row`: a time as SQLite keeps it, RFC 3339 text.
pub fn time_column(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let text: String = row.get(idx)?;
    DateTime::parse_from_rfc3339(&text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

/// Column `idx` of `row`: JSON text, as `T`.
pub fn json_column<T: DeserializeOwned>(
    row: &rusqlite::Row<'_>,
    idx: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(idx)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(idx, Type::Text, Box::new(e)))
}

#[cfg(test)]
mod tests {
    use crate::db::{Db, Storage, StoreError};

    /// A write whose work panics is undone and answered with an error of
    /// its own; the group's thread goes on committing the writes after it.
    #[tokio::test]
    async fn a_write_that_panics_fails_alone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::Sqlite(dir.path().into())
            .open("panics")
            .await
            .unwrap();
        let Db::Sqlite(pool) = &db else {
            unreachable!("a sqlite URL opens SQLite")
        };
        sqlx::query("create table notes (text text not null)")
            .execute(pool.sqlx())
            .await
            .unwrap();
        let failed = pool
            .write(|write| -> Result<(), StoreError> {
                write.execute("insert into notes values ('half done')", [])?;
                panic!("a bug in one write")
            })
            .await;
        match failed {
            Err(StoreError::Other(cause)) => {
                assert_eq!(cause.to_string(), "the write panicked: a bug in one write")
            }
            other => panic!("a panicked write answers its own error, not {other:?}"),
        }
        pool.write(|write| {
            write.execute("insert into notes values ('next')", [])?;
            Ok(())
        })
        .await
        .expect("the writer goes on");
        let notes: Vec<String> = sqlx::query_scalar("select text from notes")
            .fetch_all(pool.sqlx())
            .await
            .unwrap();
        assert_eq!(notes, ["next"], "the panicked write is undone");
        assert!(!pool.writer.as_ref().unwrap().stopped());
    }

    /// Once the group's thread has ended, readiness says so: every write
    /// would answer 503.
    #[tokio::test]
    async fn readiness_fails_once_the_group_commit_has_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let db = Storage::Sqlite(dir.path().into())
            .open("stops")
            .await
            .unwrap();
        let Db::Sqlite(pool) = &db else {
            unreachable!("a sqlite URL opens SQLite")
        };
        let migrator = sqlx::migrate::Migrator::DEFAULT;
        let before = db.check_ready(&migrator).await;
        assert!(!format!("{before:?}").contains("stopped"), "{before:?}");
        pool.writer.as_ref().unwrap().close().await;
        assert_eq!(
            db.check_ready(&migrator).await,
            Err("the group commit has stopped: writes cannot be committed".to_owned())
        );
    }

    /// Writes that never pause still leave a WAL of bounded size: the
    /// group's connection checkpoints what is left once the WAL holds
    /// [`super::RESTART_FRAMES`] pages, and the next group writes it from
    /// the start again. Without that, no checkpoint ever catches up with a
    /// busy writer, and the WAL grows for as long as the writes go on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_without_a_pause_leave_a_wal_of_bounded_size() {
        let dir = tempfile::tempdir().unwrap();
        let Db::Sqlite(pool) = Storage::Sqlite(dir.path().into())
            .open("bulk")
            .await
            .unwrap()
        else {
            unreachable!("a sqlite URL opens SQLite")
        };
        sqlx::query("create table blobs (id integer primary key, data blob not null)")
            .execute(pool.sqlx())
            .await
            .unwrap();
        // 64 writers of 47 rows of 16 KiB each: 48 MiB of pages at least,
        // three times the WAL's bound.
        let writers: Vec<_> = (0..64)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    for _ in 0..47 {
                        pool.write(|write| {
                            write
                                .execute("insert into blobs (data) values (zeroblob(16384))", [])?;
                            Ok(())
                        })
                        .await
                        .unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        let rows: i64 = sqlx::query_scalar("select count(*) from blobs")
            .fetch_one(pool.sqlx())
            .await
            .unwrap();
        assert_eq!(rows, 64 * 47, "every acknowledged write is there");
        let wal = std::fs::metadata(dir.path().join("bulk.db-wal"))
            .unwrap()
            .len();
        let bound = 2 * (super::RESTART_FRAMES * super::PAGE_BYTES) as u64;
        assert!(
            wal <= bound,
            "the WAL takes {wal} bytes after 48 MiB of writes, more than {bound}"
        );
    }
}
