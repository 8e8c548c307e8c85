//! Laptops keep what they need of ports from the ports module's events: a
//! port's name for `expand=ports`, and a deleted port leaves every laptop
//! that lists it.
//!
//! With a broker (`--broker`), they come from this module's queue on it,
//! acknowledged once applied. Without one, or while it is down, they are
//! read from ports' feed, the same way whether ports runs in this process
//! or another: in this process each commit of ports wakes the reader, else
//! it polls. Each event is applied with the record that it was, so a
//! restart, a replica or a dead peer loses nothing and applies nothing
//! twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use app_kernel::broker::{self, Broker, Inbox, Received};
use app_kernel::event::{CloudEvent, Notifier};
use app_kernel::module::Events;
use ports_api::PortsApi;

use crate::error::Error;
use crate::service::Caches;
use crate::store::{LaptopStore, PortChange, PortEvent};

/// How many events one read of the feed asks for.
const BATCH: i64 = 100;
/// How often a module that consumes its queue reads the feed too.
const RECHECK: Duration = Duration::from_secs(5);
/// The feed, as metrics name it.
const FEED: &str = "ports.events";

/// Follows the ports module's events into this module's store.
pub(crate) struct PortEvents {
    store: Arc<dyn LaptopStore>,
    ports: Arc<dyn PortsApi>,
    events: Events,
    caches: Caches,
}

/// Where the follower takes ports' events from.
enum Source {
    /// Ports' feed.
    Feed,
    /// This module's queue on the broker, once subscribed; the feed is read
    /// while it cannot be.
    Queue {
        broker: Broker,
        inbox: Option<Box<Inbox>>,
        /// Received and not yet acknowledged: what the next attempt applies.
        received: Received,
        /// When `received` came.
        received_at: Instant,
        /// When the feed was last read to its end since subscribing. Until
        /// it is, the queue waits, so an event that fails in the feed is
        /// tried again there, not passed over; and it is read again every
        /// [`RECHECK`], for what the queue never got (a producer serving
        /// without the broker, a message an operator purged).
        checked: Option<Instant>,
        /// Whether the broker was found down, and said so.
        down: bool,
    },
}

/// What `event` changes here: `None` for a kind this module does not use;
/// an error for one it uses whose data it cannot read, a poison message.
fn change(event: &CloudEvent) -> Result<Option<PortChange>, String> {
    use ports_api::events::{CREATED, DELETED, RENAMED};
    let named = CREATED.read(event).or_else(|| RENAMED.read(event));
    if let Some(port) = named {
        let port = port.map_err(|error| error.to_string())?;
        return Ok(Some(PortChange::Named {
            id: port.id,
            name: port.name,
            version: port.version,
        }));
    }
    match DELETED.read(event) {
        Some(deleted) => Ok(Some(PortChange::Deleted {
            id: deleted.map_err(|error| error.to_string())?.id,
        })),
        None => Ok(None),
    }
}

/// Says what applying a deletion did: how many laptops it changed (`None`:
/// it was applied before).
fn log_applied(change: Option<&PortChange>, laptops: Option<u64>) {
    if let (Some(PortChange::Deleted { id }), Some(laptops)) = (change, laptops) {
        tracing::info!(
            module = crate::NAME,
            port_id = id,
            laptops,
            "deleted port removed from laptops"
        );
    }
}

/// Why an event was not applied.
enum Failure {
    /// Ports or this module's database cannot be reached: the same event
    /// is tried again when they are back, however long that takes.
    Unavailable(Error),
    /// The event itself failed: it counts towards `max_attempts`.
    Event(CloudEvent, String),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Unavailable(error)
    }
}

impl From<app_kernel::db::StoreError> for Failure {
    fn from(error: app_kernel::db::StoreError) -> Self {
        Failure::Unavailable(error.into())
    }
}

impl PortEvents {
    pub(crate) fn new(
        store: Arc<dyn LaptopStore>,
        ports: Arc<dyn PortsApi>,
        events: Events,
        caches: Caches,
    ) -> Self {
        Self {
            store,
            ports,
            events,
            caches,
        }
    }

    /// `change` was applied, changing `laptops`: what the caches showed of
    /// it goes. Laptops changed by a deleted port are not named here (their
    /// own events name them), so every laptop goes.
    fn applied(&self, change: Option<&PortChange>, laptops: Option<u64>) {
        log_applied(change, laptops);
        if laptops.is_some() {
            self.caches.expanded.clear();
        }
        if laptops.is_some_and(|changed| changed > 0) {
            self.caches.laptop.clear();
        }
    }

    fn committed(&self) -> &Notifier {
        &self.events.committed
    }

    /// Applies one event, unless applied before.
    async fn apply_one(&self, event: &CloudEvent) -> Result<(), Failure> {
        let change = change(event).map_err(|error| Failure::Event(event.clone(), error))?;
        let changed = match self
            .store
            .apply_port_event(&event.id, event.seq, change.as_ref())
            .await
        {
            Ok(changed) => changed,
            Err(app_kernel::db::StoreError::Unavailable(error)) => {
                return Err(Failure::Unavailable(
                    app_kernel::db::StoreError::Unavailable(error).into(),
                ));
            }
            Err(error) => return Err(Failure::Event(event.clone(), error.to_string())),
        };
        self.applied(change.as_ref(), changed);
        Ok(())
    }

    /// Applies a page of events in one transaction (one commit, one sync
    /// to disk); if the page cannot be read or fails as a whole, one event
    /// at a time, so the one that fails is found and the others applied.
    async fn apply_page(&self, events: &[CloudEvent]) -> Result<(), Failure> {
        if events.is_empty() {
            // An idle poll: no transaction (on PostgreSQL, no events lock).
            return Ok(());
        }
        let changes: Result<Vec<Option<PortChange>>, String> = events.iter().map(change).collect();
        if let Ok(changes) = changes {
            let batch: Vec<PortEvent<'_>> = events
                .iter()
                .zip(&changes)
                .map(|(event, change)| PortEvent {
                    id: &event.id,
                    seq: event.seq,
                    change: change.as_ref(),
                })
                .collect();
            match self.store.apply_port_events(&batch).await {
                Ok(applied) => {
                    for (change, laptops) in changes.iter().zip(applied) {
                        self.applied(change.as_ref(), laptops);
                    }
                    self.committed().notify();
                    return Ok(());
                }
                Err(app_kernel::db::StoreError::Unavailable(error)) => {
                    return Err(app_kernel::db::StoreError::Unavailable(error).into());
                }
                Err(_) => {}
            }
        }
        let applied = self.apply_each(events).await;
        self.committed().notify();
        applied
    }

    async fn apply_each(&self, events: &[CloudEvent]) -> Result<(), Failure> {
        for event in events {
            self.apply_one(event).await?;
        }
        Ok(())
    }

    /// Applies the events `app events retry` asked for, then the next from
    /// `source`; `true` if more may be there at once.
    async fn apply(&self, source: &mut Source, interval: Duration) -> Result<bool, Failure> {
        for event in self.store.retries().await? {
            self.apply_one(&event).await?;
            self.committed().notify();
            tracing::info!(module = crate::NAME, event = %event.id, "dead-lettered event applied on retry");
        }
        let Source::Queue {
            broker,
            inbox,
            received,
            received_at,
            checked,
            down,
        } = source
        else {
            self.catch_up().await?;
            return Ok(false);
        };
        let Some(queue) = inbox else {
            match broker
                .subscribe(
                    crate::NAME,
                    ports_api::NAME,
                    crate::MODULE.follows,
                    BATCH as u16,
                )
                .await
            {
                Ok(subscribed) => {
                    tracing::info!(
                        module = crate::NAME,
                        "consuming port events from the broker"
                    );
                    broker::connected(crate::NAME, "consumer", true);
                    *down = false;
                    *checked = None;
                    *inbox = Some(Box::new(subscribed));
                }
                Err(error) => {
                    if !*down {
                        *down = true;
                        tracing::warn!(module = crate::NAME, broker = %broker.redacted(), %error, "cannot reach the broker; reading the feed of port events meanwhile");
                    }
                    self.catch_up().await?;
                    return Ok(false);
                }
            }
            return Ok(true);
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
                    tracing::warn!(module = crate::NAME, %error, "lost the broker; will subscribe again");
                    broker::connected(crate::NAME, "consumer", false);
                    *inbox = None;
                    return Ok(false);
                }
            }
            if received.is_empty() {
                return Ok(true);
            }
        }
        // Those at or before the feed's position were applied, read from
        // the feed, or dead-lettered: the queue gives events in order.
        let read = self.store.ports_read().await?;
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
        applied(fresh.len());
        let drained = received.len() < BATCH as usize;
        if let Err(error) = queue.ack(received).await {
            // Unacknowledged, they are delivered again, and skipped then.
            tracing::warn!(module = crate::NAME, %error, "lost the broker; will subscribe again");
            broker::connected(crate::NAME, "consumer", false);
            *inbox = None;
        }
        *received = Received::default();
        if drained {
            mark_caught_up();
        }
        Ok(true)
    }

    /// Applies the events of ports' feed not yet applied.
    async fn catch_up(&self) -> Result<(), Failure> {
        loop {
            let read = self.store.ports_read().await?;
            let page = self.ports.events(read, BATCH).await.map_err(Error::from)?;
            behind(page.remaining);
            self.apply_page(&page.items).await?;
            let count = page.items.len();
            behind(page.remaining - count as i64);
            applied(count);
            if (count as i64) < BATCH {
                mark_caught_up();
                return Ok(());
            }
        }
    }

    /// Applies ports' events as they come: woken by each commit when ports
    /// runs in this process, and every `interval` in any case. When ports
    /// or the database is down, it tries again every `interval`, logging
    /// once. An event that fails is tried again after a growing wait, and
    /// after `max_attempts` failures is dead-lettered, so the events after
    /// it flow on.
    pub(crate) async fn follow(self, interval: Duration) {
        let mut changes = self.ports.changes();
        let mut source = match &self.events.broker {
            Some(broker) => Source::Queue {
                broker: broker.clone(),
                inbox: None,
                received: Received::default(),
                received_at: Instant::now(),
                checked: None,
                down: false,
            },
            None => Source::Feed,
        };
        let mut unavailable = false;
        let mut failing: Option<(String, u32)> = None;
        loop {
            let wait = match self.apply(&mut source, interval).await {
                Ok(more) => {
                    if unavailable {
                        unavailable = false;
                        tracing::info!(module = crate::NAME, "following port events again");
                    }
                    failing = None;
                    more.then_some(Duration::ZERO)
                }
                Err(Failure::Unavailable(error)) => {
                    if !unavailable {
                        unavailable = true;
                        tracing::warn!(module = crate::NAME, %error, "cannot follow port events; will retry");
                    }
                    Some(interval)
                }
                Err(Failure::Event(event, error)) => {
                    let failed = match &failing {
                        Some((id, failed)) if *id == event.id => failed + 1,
                        _ => 1,
                    };
                    if failed >= self.events.delivery.max_attempts {
                        match self.store.dead_letter(&event, &error, failed).await {
                            Ok(()) => {
                                tracing::error!(module = crate::NAME, event = %event.id, kind = %event.kind, %error, attempts = failed, "event dead-lettered");
                                metrics::counter!("app_events_dead_lettered_total", "module" => crate::NAME, "feed" => FEED)
                                    .increment(1);
                                failing = None;
                                Some(Duration::ZERO)
                            }
                            Err(store) => {
                                // Kept as failing: the next failure tries to
                                // dead-letter it again, not to start over.
                                tracing::warn!(module = crate::NAME, event = %event.id, error = %store, "cannot dead-letter an event; will retry");
                                failing = Some((event.id, failed));
                                Some(interval)
                            }
                        }
                    } else {
                        tracing::warn!(module = crate::NAME, event = %event.id, kind = %event.kind, %error, attempt = failed, "event failed; will retry");
                        failing = Some((event.id, failed));
                        Some(self.events.delivery.backoff(failed))
                    }
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
}

fn behind(rows: i64) {
    metrics::gauge!("app_follower_behind_rows", "module" => crate::NAME, "feed" => FEED)
        .set(rows as f64);
}

fn applied(count: usize) {
    metrics::counter!("app_follower_applied_total", "module" => crate::NAME, "feed" => FEED)
        .increment(count as u64);
}

/// Caught up: the lag is the time since, `time() - this`.
fn mark_caught_up() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    metrics::gauge!(
        "app_follower_caught_up_timestamp_seconds",
        "module" => crate::NAME,
        "feed" => FEED,
    )
    .set(now.as_secs_f64());
}
