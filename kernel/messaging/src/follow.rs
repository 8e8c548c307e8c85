//! Following another module's events: the one way a module reacts to
//! what another did, and the way a module's cache hears of its other
//! replicas' writes.
//!
//! A [`Follower`] reads the producer's [`Feed`] (woken by each commit when
//! the producer runs in this process, polled otherwise) and, given a
//! broker, consumes a queue instead: it reads the feed when it subscribes,
//! while the broker is down, every [`RECHECK`], and whenever the queue
//! skips events. It hands what it reads to a [`Ledger`], which applies
//! them and keeps the follower's place. An event that fails is tried again
//! after a growing wait, and after `max_attempts` failures is dead-lettered,
//! so the events after it flow on.
//!
//! [`Inbox`] is the ledger of a module that keeps what it applies: each
//! event is applied by the module's [`Handler`] inside the module's own
//! transaction, with the record that it was and the feed's new position,
//! so a restart, a replica or a dead peer loses nothing and applies
//! nothing twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::{Connection as _, PgConnection};

use app_events::{CloudEvent, Delivery, Notifier, Unreadable};
pub use app_events::{Feed, FeedError};
use app_http::versions;
use app_store::db::{Db, StoreError, Write};

use crate::broker::{self, Broker, Received};

/// How many events one read of the feed, or of the queue, takes at most.
pub const BATCH: i64 = 100;
/// How often a follower that consumes a queue reads the feed too.
pub const RECHECK: Duration = Duration::from_secs(5);
/// The shortest wait before subscribing again to a broker found down.
const RESUBSCRIBE: Duration = Duration::from_secs(1);

/// What a module does with the events it follows: one event at a time,
/// inside the module's transaction.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// What an event changes here, read from it before any transaction.
    type Change: Send + Sync + 'static;
    /// What applying a change did, for [`Handler::applied`].
    type Outcome: Send + 'static;

    /// What `event` changes here: `None` for a kind this module does not
    /// use; an error for one whose data does not read (a poison message).
    fn change(&self, event: &CloudEvent) -> Result<Option<Self::Change>, Unreadable>;

    /// Applies `change` in the write of a module on SQLite.
    fn sqlite(&self, write: &Write<'_>, change: &Self::Change)
    -> Result<Self::Outcome, StoreError>;

    /// Applies `change` in the transaction of a module on PostgreSQL. An
    /// event it records follows the write of its resource's row there.
    async fn postgres(
        &self,
        tx: &mut PgConnection,
        change: &Self::Change,
    ) -> Result<Self::Outcome, StoreError>;

    /// Once committed: `change` did `outcome` (what it made stale goes).
    fn applied(&self, _change: &Self::Change, _outcome: &Self::Outcome) {}
}

/// Why events were not applied.
#[derive(Debug)]
pub enum Failure {
    /// The producer or this module's database cannot be reached: the same
    /// events are tried again when they are back, however long that takes.
    Unavailable(FeedError),
    /// The event itself failed: it counts towards `max_attempts`.
    Event(Box<CloudEvent>, String),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Unavailable(Box::new(error))
    }
}

/// Where a follower keeps its place in a feed, and how it applies what it
/// reads there.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync {
    /// The `seq` of the last event applied or dead-lettered.
    async fn position(&self) -> Result<i64, StoreError>;

    /// Applies `events`, each unless it was applied before, and moves the
    /// position past them, all at once.
    async fn apply(&self, events: &[CloudEvent]) -> Result<(), Failure>;

    /// Keeps `event` apart, failed `attempts` times with `error`, and moves
    /// the position past it, at once.
    async fn dead_letter(
        &self,
        event: &CloudEvent,
        error: &str,
        attempts: u32,
    ) -> Result<(), StoreError>;

    /// The dead-lettered events `app events retry` asked for again, by seq.
    async fn retries(&self) -> Result<Vec<CloudEvent>, StoreError>;
}

/// Where a follower takes events from, besides the feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Queue {
    /// The feed alone, even with a broker.
    None,
    /// The follower module's durable queue, shared by its replicas (one
    /// consumes it at a time), bound to the kinds it follows.
    Shared(&'static [&'static str]),
    /// A queue of this process's own, bound to every kind, gone with it.
    PerReplica,
}

/// One module following one feed.
pub struct Follower<L> {
    /// The following module, as in `laptops`.
    pub module: &'static str,
    pub feed: Arc<dyn Feed>,
    pub ledger: L,
    pub queue: Queue,
    pub broker: Option<Broker>,
    pub delivery: Delivery,
    /// Told after each page applied: applying may have recorded events.
    pub committed: Option<Notifier>,
    /// How often the feed is read when nothing wakes the follower, and
    /// how long it waits before trying a producer or database found down.
    pub interval: Duration,
    /// Whether to report `app_follower_*` metrics and log at INFO and above.
    pub reported: bool,
}

/// The broker side of a follower that consumes a queue.
struct Consuming {
    broker: Broker,
    inbox: Option<Box<broker::Inbox>>,
    /// Received and not yet acknowledged: what the next attempt applies.
    received: Received,
    /// When `received` came.
    received_at: Instant,
    /// When the feed was last read to its end since subscribing. Until it
    /// is, the queue waits, so an event that fails in the feed is tried
    /// again there, not passed over; and it is read again every
    /// [`RECHECK`], for what the queue never got (a producer serving
    /// without the broker, a message an operator purged).
    checked: Option<Instant>,
    /// When the broker was found down, if it was.
    down_at: Option<Instant>,
}

impl<L: Ledger> Follower<L> {
    /// The feed's name in metrics and logs, as in `ports.events`.
    fn feed_name(&self) -> String {
        format!("{}.events", self.feed.producer())
    }

    fn notify(&self) {
        if let Some(committed) = &self.committed {
            committed.notify();
        }
    }

    /// Records the versions of the producer that published `events`.
    fn hear_producer(&self, events: &[CloudEvent]) {
        let mut last: Option<&str> = None;
        for version in events.iter().filter_map(|e| e.producerversion.as_deref()) {
            if last != Some(version) {
                versions::heard(self.feed.producer(), version, versions::Via::Events);
                last = Some(version);
            }
        }
    }

    /// Applies a page of events at once; if that fails, one at a time, so
    /// the one that fails is found and those before it applied.
    async fn apply_page(&self, events: &[CloudEvent]) -> Result<(), Failure> {
        if events.is_empty() {
            // An idle poll: no transaction.
            return Ok(());
        }
        self.hear_producer(events);
        let applied = match self.ledger.apply(events).await {
            Err(Failure::Event(..)) if events.len() > 1 => {
                let mut each = Ok(());
                for event in events {
                    each = self.ledger.apply(std::slice::from_ref(event)).await;
                    if each.is_err() {
                        break;
                    }
                }
                each
            }
            applied => applied,
        };
        self.notify();
        applied
    }

    /// Applies the events of the feed not yet applied.
    async fn catch_up(&self) -> Result<(), Failure> {
        loop {
            let read = self.ledger.position().await?;
            let page = self
                .feed
                .read(read, BATCH)
                .await
                .map_err(Failure::Unavailable)?;
            self.behind(page.remaining);
            self.apply_page(&page.items).await?;
            let count = page.items.len();
            self.behind(page.remaining - count as i64);
            self.applied(count);
            if (count as i64) < BATCH {
                self.caught_up();
                return Ok(());
            }
        }
    }

    /// Applies the events `app events retry` asked for, then the next
    /// ones; `true` if more may be there at once.
    async fn step(
        &self,
        consuming: &mut Option<Consuming>,
        interval: Duration,
    ) -> Result<bool, Failure> {
        for event in self.ledger.retries().await? {
            self.apply_page(std::slice::from_ref(&event)).await?;
            tracing::info!(module = self.module, event = %event.id, "dead-lettered event applied on retry");
        }
        let Some(Consuming {
            broker,
            inbox,
            received,
            received_at,
            checked,
            down_at,
        }) = consuming
        else {
            self.catch_up().await?;
            return Ok(false);
        };
        let Some(queue) = inbox else {
            if down_at.is_some_and(|at| at.elapsed() < RESUBSCRIBE) {
                self.catch_up().await?;
                return Ok(false);
            }
            let producer = self.feed.producer();
            let subscribed = match self.queue {
                Queue::Shared(kinds) => {
                    broker
                        .subscribe(self.module, producer, kinds, BATCH as u16)
                        .await
                }
                _ => broker.watch(producer, BATCH as u16).await,
            };
            match subscribed {
                Ok(subscribed) => {
                    if self.reported {
                        tracing::info!(module = self.module, feed = %self.feed_name(), "consuming events from the broker");
                    }
                    broker::connected(self.module, self.role(), true);
                    *down_at = None;
                    *checked = None;
                    *inbox = Some(Box::new(subscribed));
                    return Ok(true);
                }
                Err(error) => {
                    if down_at.is_none() && self.reported {
                        tracing::warn!(module = self.module, feed = %self.feed_name(), broker = %broker.redacted(), %error, "cannot reach the broker; reading the feed meanwhile");
                    }
                    *down_at = Some(Instant::now());
                    self.catch_up().await?;
                    return Ok(false);
                }
            }
        };
        if checked.is_none_or(|at| at.elapsed() >= RECHECK) {
            // What was published before the queue was bound, or while this
            // module read no queue, is only in the feed.
            self.catch_up().await?;
            *checked = Some(Instant::now());
            return Ok(true);
        }
        if received.is_empty() {
            match queue.receive(BATCH as usize, interval).await {
                Ok(messages) => {
                    *received = messages;
                    *received_at = Instant::now();
                }
                Err(error) => {
                    self.lost(&error);
                    *inbox = None;
                    return Ok(false);
                }
            }
            if received.is_empty() {
                return Ok(true);
            }
        }
        // Those at or before the position were applied, read from the
        // feed, or dead-lettered: the queue gives events in order.
        let read = self.ledger.position().await?;
        let fresh: Vec<CloudEvent> = received
            .events
            .iter()
            .filter(|event| event.seq > read)
            .cloned()
            .collect();
        let gap = fresh.first().is_some_and(|event| event.seq > read + 1);
        if gap && checked.is_some_and(|at| at < *received_at) {
            // Events the queue does not have: in the feed, if anywhere (a
            // PostgreSQL sequence skips the numbers of rolled-back writes).
            *checked = None;
            return Ok(true);
        }
        self.apply_page(&fresh).await?;
        self.applied(fresh.len());
        let drained = received.len() < BATCH as usize;
        if let Err(error) = queue.ack(received).await {
            // Unacknowledged, they are delivered again, and skipped then.
            self.lost(&error);
            *inbox = None;
        }
        *received = Received::default();
        if drained {
            self.caught_up();
        }
        Ok(true)
    }

    fn lost(&self, error: &broker::BrokerError) {
        if self.reported {
            tracing::warn!(module = self.module, feed = %self.feed_name(), %error, "lost the broker; will subscribe again");
        }
        broker::connected(self.module, self.role(), false);
    }

    /// What the follower is, as `app_broker_connected` names it.
    fn role(&self) -> &'static str {
        match self.queue {
            Queue::PerReplica => "cache",
            Queue::Shared(_) | Queue::None => "consumer",
        }
    }

    /// Follows the feed for as long as the process serves.
    pub async fn run(self) {
        let mut changes = self.feed.changes();
        let interval = self.interval;
        let mut consuming = match (&self.broker, self.queue) {
            (Some(broker), Queue::Shared(_) | Queue::PerReplica) => Some(Consuming {
                broker: broker.clone(),
                inbox: None,
                received: Received::default(),
                received_at: Instant::now(),
                checked: None,
                down_at: None,
            }),
            _ => None,
        };
        let mut unavailable = false;
        let mut failing: Option<(String, u32)> = None;
        loop {
            let wait = match self.step(&mut consuming, interval).await {
                Ok(more) => {
                    if unavailable {
                        unavailable = false;
                        if self.reported {
                            tracing::info!(module = self.module, feed = %self.feed_name(), "following events again");
                        }
                    }
                    failing = None;
                    more.then_some(Duration::ZERO)
                }
                Err(Failure::Unavailable(error)) => {
                    if !unavailable {
                        unavailable = true;
                        if self.reported {
                            tracing::warn!(module = self.module, feed = %self.feed_name(), %error, "cannot follow events; will retry");
                        } else {
                            tracing::debug!(module = self.module, feed = %self.feed_name(), %error, "cannot follow events; will retry");
                        }
                    }
                    Some(interval)
                }
                Err(Failure::Event(event, error)) => {
                    let (wait, still) = self.failed(*event, error, failing.take()).await;
                    failing = still;
                    Some(wait)
                }
            };
            match (wait, &mut changes) {
                (Some(Duration::ZERO), _) => {}
                (Some(wait), _) => tokio::time::sleep(wait).await,
                (None, Some(changes)) => {
                    let _ = tokio::time::timeout(interval, changes.changed()).await;
                }
                (None, None) => tokio::time::sleep(interval).await,
            }
        }
    }

    /// `event` failed with `error`, after the failures of `failing`: the
    /// wait before the next attempt, and the failures to count then.
    async fn failed(
        &self,
        event: CloudEvent,
        error: String,
        failing: Option<(String, u32)>,
    ) -> (Duration, Option<(String, u32)>) {
        let failed = match failing {
            Some((id, failed)) if id == event.id => failed + 1,
            _ => 1,
        };
        if failed < self.delivery.max_attempts {
            tracing::warn!(module = self.module, event = %event.id, kind = %event.kind, %error, attempt = failed, "event failed; will retry");
            return (self.delivery.backoff(failed), Some((event.id, failed)));
        }
        match self.ledger.dead_letter(&event, &error, failed).await {
            Ok(()) => {
                tracing::error!(module = self.module, event = %event.id, kind = %event.kind, %error, attempts = failed, "event dead-lettered");
                metrics::counter!("app_events_dead_lettered_total", "module" => self.module, "feed" => self.feed_name())
                    .increment(1);
                (Duration::ZERO, None)
            }
            Err(store) => {
                // Kept as failing: the next failure tries to dead-letter it
                // again, not to start over.
                tracing::warn!(module = self.module, event = %event.id, error = %store, "cannot dead-letter an event; will retry");
                (self.interval, Some((event.id, failed)))
            }
        }
    }

    fn behind(&self, rows: i64) {
        if self.reported {
            metrics::gauge!("app_follower_behind_rows", "module" => self.module, "feed" => self.feed_name())
                .set(rows as f64);
        }
    }

    fn applied(&self, count: usize) {
        if self.reported {
            metrics::counter!("app_follower_applied_total", "module" => self.module, "feed" => self.feed_name())
                .increment(count as u64);
        }
    }

    /// Caught up: the lag is the time since, `time() - this`.
    fn caught_up(&self) {
        if self.reported {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            metrics::gauge!(
                "app_follower_caught_up_timestamp_seconds",
                "module" => self.module,
                "feed" => self.feed_name(),
            )
            .set(now.as_secs_f64());
        }
    }
}

/// What applying one event did.
#[derive(Debug, PartialEq, Eq)]
pub enum Applied<T> {
    /// It was applied before: nothing changed.
    Before,
    /// Its kind is not one the module uses: only its record was kept.
    Unused,
    /// Applied now, doing this.
    Now(T),
}

/// The ledger of a module that keeps what it follows: its `events_handled`
/// (what it applied), `feeds_read` (how far it read each feed) and
/// `events_dead` tables, written in one transaction with what `handler`
/// does.
pub struct Inbox<H> {
    db: Db,
    /// The following module: its PostgreSQL schema.
    module: &'static str,
    /// The producer, as `feeds_read` and `events_dead` name its feed.
    feed: &'static str,
    handler: Arc<H>,
}

impl<H: Handler> Inbox<H> {
    pub fn new(db: Db, module: &'static str, feed: &'static str, handler: Arc<H>) -> Self {
        Self {
            db,
            module,
            feed,
            handler,
        }
    }

    /// Applies `events`, each unless applied before, in one transaction
    /// with the record that they were and the feed's new position (and,
    /// for one that was dead-lettered, its leaving `events_dead`); then
    /// tells the handler what each did. What each did, in order.
    pub async fn apply_all(
        &self,
        events: &[CloudEvent],
    ) -> Result<Vec<Applied<H::Outcome>>, Failure> {
        let changes = events
            .iter()
            .map(|event| {
                let change = self
                    .handler
                    .change(event)
                    .map_err(|error| Failure::Event(Box::new(event.clone()), error.to_string()))?;
                Ok((event.id.clone(), change))
            })
            .collect::<Result<Vec<_>, Failure>>()?;
        let seq = events.iter().map(|event| event.seq).max().unwrap_or(0);
        let (done, changes) = match &self.db {
            Db::Sqlite(pool) => {
                let (handler, feed) = (self.handler.clone(), self.feed);
                pool.write(move |write| {
                    let done = changes
                        .iter()
                        .map(|(id, change)| sqlite::apply(write, &*handler, id, change.as_ref()))
                        .collect::<Result<Vec<_>, _>>()?;
                    sqlite::moved_past(write, feed, seq)?;
                    Ok((done, changes))
                })
                .await
            }
            Db::Postgres(pool) => {
                let applied = async {
                    let mut conn = pool.acquire().await?;
                    let mut tx = conn.begin().await?;
                    let mut done = Vec::with_capacity(changes.len());
                    for (id, change) in &changes {
                        done.push(
                            postgres::apply(
                                &mut tx,
                                self.module,
                                &*self.handler,
                                id,
                                change.as_ref(),
                            )
                            .await?,
                        );
                    }
                    postgres::moved_past(&mut tx, self.module, self.feed, seq).await?;
                    tx.commit().await?;
                    Ok((done, changes))
                };
                applied.await
            }
        }
        .map_err(|error| match error {
            StoreError::Unavailable(_) => Failure::from(error),
            error => Failure::Event(Box::new(events[0].clone()), error.to_string()),
        })?;
        for (applied, (_, change)) in done.iter().zip(&changes) {
            if let (Applied::Now(outcome), Some(change)) = (applied, change) {
                self.handler.applied(change, outcome);
            }
        }
        Ok(done)
    }
}

#[async_trait::async_trait]
impl<H: Handler> Ledger for Inbox<H> {
    async fn position(&self) -> Result<i64, StoreError> {
        let (seq,): (i64,) = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_as("select coalesce((select seq from feeds_read where feed = ?1), 0)")
                    .bind(self.feed)
                    .fetch_one(&mut *pool.acquire().await?)
                    .await?
            }
            Db::Postgres(pool) => {
                let select = format!(
                    "select coalesce((select seq from {}.feeds_read where feed = $1), 0)",
                    self.module
                );
                sqlx::query_as(sqlx::AssertSqlSafe(select))
                    .bind(self.feed)
                    .fetch_one(&mut *pool.acquire().await?)
                    .await?
            }
        };
        Ok(seq)
    }

    async fn apply(&self, events: &[CloudEvent]) -> Result<(), Failure> {
        self.apply_all(events).await.map(drop)
    }

    async fn dead_letter(
        &self,
        event: &CloudEvent,
        error: &str,
        attempts: u32,
    ) -> Result<(), StoreError> {
        match &self.db {
            Db::Sqlite(pool) => {
                let (feed, id, seq, error) =
                    (self.feed, event.id.clone(), event.seq, error.to_owned());
                let event = serde_json::to_string(event).expect("an event is JSON");
                let failed_at =
                    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false);
                pool.write(move |write| {
                    write
                        .prepare_cached("insert into events_dead (id, feed, seq, event, error, attempts, failed_at, retry) values (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0) on conflict (id) do update set error = excluded.error, attempts = events_dead.attempts + excluded.attempts, failed_at = excluded.failed_at, retry = 0")?
                        .execute(rusqlite::params![id, feed, seq, event, error, attempts, failed_at])?;
                    sqlite::moved_past(write, feed, seq)
                })
                .await
            }
            Db::Postgres(pool) => {
                let schema = self.module;
                let mut conn = pool.acquire().await?;
                let mut tx = conn.begin().await?;
                let insert = format!(
                    "insert into {schema}.events_dead (id, feed, seq, event, error, attempts, failed_at, retry) values ($1, $2, $3, $4, $5, $6, $7, false) on conflict (id) do update set error = excluded.error, attempts = {schema}.events_dead.attempts + excluded.attempts, failed_at = excluded.failed_at, retry = false"
                );
                sqlx::query(sqlx::AssertSqlSafe(insert))
                    .bind(&event.id)
                    .bind(self.feed)
                    .bind(event.seq)
                    .bind(serde_json::to_value(event).expect("an event is JSON"))
                    .bind(error)
                    .bind(i64::from(attempts))
                    .bind(chrono::Utc::now())
                    .execute(&mut *tx)
                    .await?;
                postgres::moved_past(&mut tx, schema, self.feed, event.seq).await?;
                tx.commit().await?;
                Ok(())
            }
        }
    }

    async fn retries(&self) -> Result<Vec<CloudEvent>, StoreError> {
        let rows: Vec<(serde_json::Value,)> = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_as(
                    "select event from events_dead where retry = 1 and feed = ?1 order by seq",
                )
                .bind(self.feed)
                .fetch_all(&mut *pool.acquire().await?)
                .await?
            }
            Db::Postgres(pool) => {
                let select = format!(
                    "select event from {}.events_dead where retry = true and feed = $1 order by seq",
                    self.module
                );
                sqlx::query_as(sqlx::AssertSqlSafe(select))
                    .bind(self.feed)
                    .fetch_all(&mut *pool.acquire().await?)
                    .await?
            }
        };
        rows.into_iter()
            .map(|(event,)| {
                serde_json::from_value(event).map_err(|e| StoreError::Other(Box::new(e)))
            })
            .collect()
    }
}

mod sqlite {
    use super::*;

    /// Applies one event with the record that it was, unless it was before.
    pub(super) fn apply<H: Handler>(
        write: &Write<'_>,
        handler: &H,
        id: &str,
        change: Option<&H::Change>,
    ) -> Result<Applied<H::Outcome>, StoreError> {
        let fresh = write
            .prepare_cached("insert into events_handled (id) values (?1) on conflict do nothing")?
            .execute([id])?
            == 1;
        // Applied now or before: it is no longer dead either way.
        write
            .prepare_cached("delete from events_dead where id = ?1")?
            .execute([id])?;
        Ok(match change {
            _ if !fresh => Applied::Before,
            None => Applied::Unused,
            Some(change) => Applied::Now(handler.sqlite(write, change)?),
        })
    }

    /// Moves the position in `feed` to `seq`, unless it is past it.
    pub(super) fn moved_past(write: &Write<'_>, feed: &str, seq: i64) -> Result<(), StoreError> {
        write
            .prepare_cached("insert into feeds_read (feed, seq) values (?1, ?2) on conflict (feed) do update set seq = max(seq, excluded.seq)")?
            .execute(rusqlite::params![feed, seq])?;
        Ok(())
    }
}

mod postgres {
    use super::*;

    /// Applies one event with the record that it was, unless it was before.
    pub(super) async fn apply<H: Handler>(
        tx: &mut PgConnection,
        schema: &str,
        handler: &H,
        id: &str,
        change: Option<&H::Change>,
    ) -> Result<Applied<H::Outcome>, StoreError> {
        let insert =
            format!("insert into {schema}.events_handled (id) values ($1) on conflict do nothing");
        let fresh = sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
        // Applied now or before: it is no longer dead either way.
        let delete = format!("delete from {schema}.events_dead where id = $1");
        sqlx::query(sqlx::AssertSqlSafe(delete))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        Ok(match change {
            _ if !fresh => Applied::Before,
            None => Applied::Unused,
            Some(change) => Applied::Now(handler.postgres(tx, change).await?),
        })
    }

    /// Moves the position in `feed` to `seq`, unless it is past it.
    pub(super) async fn moved_past(
        tx: &mut PgConnection,
        schema: &str,
        feed: &str,
        seq: i64,
    ) -> Result<(), StoreError> {
        let upsert = format!(
            "insert into {schema}.feeds_read (feed, seq) values ($1, $2) \
             on conflict (feed) do update set seq = greatest({schema}.feeds_read.seq, excluded.seq)"
        );
        sqlx::query(sqlx::AssertSqlSafe(upsert))
            .bind(feed)
            .bind(seq)
            .execute(tx)
            .await?;
        Ok(())
    }
}
