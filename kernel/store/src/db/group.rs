//! PostgreSQL's group commit: writes of one kind that wait at the same
//! time go to the database together, in one transaction whose statements
//! each take every write's rows at once, as arrays (`unnest`).
//!
//! A write on its own costs PostgreSQL a transaction, a statement per row
//! and a commit; a group costs the same for all of its writes. No timer
//! forms a group: a few groups are written at once, and the writes that
//! arrive meanwhile wait for the next, so an idle module writes each at
//! once and a busy one writes in larger groups (ADR 18).
//!
//! A group fails as a whole, so the writes of a group that the database
//! refused are written again one by one, each in a transaction of its own:
//! each gets its own answer, as if it had been alone. A fault (the database
//! gone, a deadlock) fails every write of the group with 503, as it would
//! have failed each.

use std::sync::Arc;
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Connection as _, PgConnection, Postgres};
use tokio::sync::{Mutex, mpsc, oneshot};

use app_http::problem::Chain;

use super::Pool;
use crate::error::StoreError;

/// The most writes one group holds: at most half of what 64 connections
/// ask at once, so that the two groups in flight share the load.
const MAX_GROUP: usize = 32;
/// How many groups of one kind are written at once, each on a connection
/// of the module's pool.
const IN_FLIGHT: usize = 2;
/// How long a group's connection is kept for the next group; after that
/// it goes back to the pool, which checks it before it gives it again.
const KEEP_CONNECTION: Duration = Duration::from_secs(1);

/// Writes of one kind, as a group writes them.
pub trait Grouped: Send + Sync + 'static {
    /// What one write is given.
    type Item: Send + Sync + 'static;
    /// What one write returns.
    type Written: Send + 'static;

    /// Writes every one of `items` in the transaction `conn` holds, with a
    /// fixed number of statements; returns what each wrote, in the order of
    /// `items`. No two of `items` touch the same row. An error undoes them
    /// all: the group then writes each again alone.
    fn write(
        &self,
        conn: &mut PgConnection,
        items: &[Traced<Self::Item>],
    ) -> impl Future<Output = Result<Vec<Self::Written>, StoreError>> + Send;
}

/// A write, and the `traceparent` of the request that asked for it, for
/// the events it records.
pub struct Traced<T> {
    pub item: T,
    pub traceparent: Option<String>,
}

/// Where the writes of one kind of a module wait for their group.
pub struct Group<G: Grouped> {
    queue: mpsc::UnboundedSender<Waiting<G>>,
}

#[derive(Clone)]
struct Counts {
    sizes: metrics::Histogram,
    refused: metrics::Counter,
}

struct Waiting<G: Grouped> {
    write: Traced<G::Item>,
    tell: oneshot::Sender<Result<G::Written, StoreError>>,
}

impl<G: Grouped> Group<G> {
    /// Starts the tasks that write groups of `grouped` on `pool`. Group
    /// sizes are recorded in `app_db_group_commit_writes{module}`, and the
    /// groups refused, then written one by one, counted in
    /// `app_db_group_commit_refused_total{module}`. The tasks end once the
    /// group is dropped and every write waiting is written.
    pub fn start(module: &str, pool: Pool<Postgres>, grouped: G) -> Self {
        let (queue, waiting) = mpsc::unbounded_channel();
        let waiting = Arc::new(Mutex::new(waiting));
        let grouped = Arc::new(grouped);
        let module = module.to_owned();
        let counts = Counts {
            sizes: metrics::histogram!("app_db_group_commit_writes", "module" => module.clone()),
            refused: metrics::counter!("app_db_group_commit_refused_total", "module" => module),
        };
        for _ in 0..IN_FLIGHT {
            tokio::spawn(commit_in_groups(
                Arc::clone(&waiting),
                pool.clone(),
                Arc::clone(&grouped),
                counts.clone(),
            ));
        }
        Self { queue }
    }

    /// Writes `item` in the next group, and returns what it wrote once
    /// that is committed.
    pub async fn write(&self, item: G::Item) -> Result<G::Written, StoreError> {
        let (tell, told) = oneshot::channel();
        let write = Traced {
            item,
            traceparent: app_calls::trace::traceparent(),
        };
        self.queue
            .send(Waiting { write, tell })
            .map_err(|_| StoreError::Unavailable("the group commit has ended".into()))?;
        told.await
            .map_err(|_| StoreError::Unavailable("the write was not run".into()))?
    }
}

/// One of the group's tasks: takes every write waiting, up to a group,
/// while the others write theirs.
async fn commit_in_groups<G: Grouped>(
    waiting: Arc<Mutex<mpsc::UnboundedReceiver<Waiting<G>>>>,
    pool: Pool<Postgres>,
    grouped: Arc<G>,
    counts: Counts,
) {
    // The connection of the last group, kept while writes keep coming:
    // the pool would check it again (a round trip) to give it back.
    let mut kept: Option<PoolConnection<Postgres>> = None;
    loop {
        let take = take_group(&waiting);
        let group = match kept {
            None => take.await,
            // The kept connection goes back to the pool once writes stop
            // coming, or the pool closes (which waits for it).
            Some(_) => {
                tokio::pin!(take);
                tokio::select! {
                    group = &mut take => group,
                    () = tokio::time::sleep(KEEP_CONNECTION) => {
                        kept = None;
                        take.await
                    }
                    () = pool.sqlx().close_event() => {
                        kept = None;
                        take.await
                    }
                }
            }
        };
        let Some(group) = group else {
            return;
        };
        counts.sizes.record(group.len() as f64);
        let (writes, tells): (Vec<_>, Vec<_>) = group
            .into_iter()
            .map(|waiting| (waiting.write, waiting.tell))
            .unzip();
        let conn = kept.take();
        // Its own task, so that a panic fails this group alone.
        let (pool, grouped, refused) = (pool.clone(), Arc::clone(&grouped), counts.refused.clone());
        let run = async move { write_group(&pool, conn, &*grouped, writes, &refused).await };
        match tokio::spawn(run).await {
            Ok((answers, conn)) => {
                kept = conn;
                for (tell, answer) in tells.into_iter().zip(answers) {
                    let _ = tell.send(answer);
                }
            }
            Err(panic) => {
                tracing::error!(error = %panic, "a group of writes panicked; it is undone");
                for tell in tells {
                    let _ = tell.send(Err(StoreError::Other("the write panicked".into())));
                }
            }
        }
    }
}

/// The next group: every write waiting, once this task's turn comes, up
/// to a group; `None` once the group is dropped. Cancelled, it loses no
/// write: the queue is read without a wait in between.
async fn take_group<G: Grouped>(
    waiting: &Mutex<mpsc::UnboundedReceiver<Waiting<G>>>,
) -> Option<Vec<Waiting<G>>> {
    let mut waiting = waiting.lock().await;
    let mut group = vec![waiting.recv().await?];
    while group.len() < MAX_GROUP {
        match waiting.try_recv() {
            Ok(next) => group.push(next),
            Err(_) => break,
        }
    }
    Some(group)
}

/// Writes a group, and answers each of its writes.
async fn write_group<G: Grouped>(
    pool: &Pool<Postgres>,
    conn: Option<PoolConnection<Postgres>>,
    grouped: &G,
    writes: Vec<Traced<G::Item>>,
    refused_groups: &metrics::Counter,
) -> (
    Vec<Result<G::Written, StoreError>>,
    Option<PoolConnection<Postgres>>,
) {
    let mut conn = match conn {
        Some(conn) => conn,
        None => match pool.acquire().await {
            Ok(conn) => conn,
            Err(error) => return (unavailable(&error.into(), writes.len()), None),
        },
    };
    let answers = match commit(&mut conn, grouped, &writes).await {
        // Only a connection that just committed is kept.
        Ok(written) => return (written.into_iter().map(Ok).collect(), Some(conn)),
        Err(error @ StoreError::Unavailable(_)) => unavailable(&error, writes.len()),
        Err(refused) if writes.len() == 1 => vec![Err(refused)],
        Err(refused) => {
            refused_groups.increment(1);
            tracing::debug!(error = %refused, writes = writes.len(), "a group was refused: each of its writes again, alone");
            let mut answers = Vec::with_capacity(writes.len());
            for write in writes.chunks(1) {
                let alone = commit(&mut conn, grouped, write).await;
                answers.push(alone.map(|mut written| written.remove(0)));
            }
            answers
        }
    };
    (answers, None)
}

/// The fault of a group, for each of its `writes`.
fn unavailable<T>(fault: &StoreError, writes: usize) -> Vec<Result<T, StoreError>> {
    let message = match fault {
        StoreError::Unavailable(cause) => Chain(cause.as_ref()).to_string(),
        other => other.to_string(),
    };
    (0..writes)
        .map(|_| Err(StoreError::Unavailable(message.clone().into())))
        .collect()
}

/// Writes `writes` in one transaction, and commits it.
async fn commit<G: Grouped>(
    conn: &mut PgConnection,
    grouped: &G,
    writes: &[Traced<G::Item>],
) -> Result<Vec<G::Written>, StoreError> {
    let mut tx = conn.begin().await?;
    let written = grouped.write(&mut tx, writes).await?;
    if written.len() != writes.len() {
        return Err(StoreError::Other(
            format!(
                "a group of {} writes returned {} rows",
                writes.len(),
                written.len()
            )
            .into(),
        ));
    }
    tx.commit().await?;
    Ok(written)
}
