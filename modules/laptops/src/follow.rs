//! Laptops keep what they need of ports from the ports module's events: a
//! port's name for `expand=ports`, and a deleted port leaves every laptop
//! that lists it.
//!
//! The feed is read the same way whether ports runs in this process or
//! another; in this process each commit of ports wakes the reader, else it
//! polls. Each event is applied with the record that it was, so a restart,
//! a replica or a dead peer loses nothing and applies nothing twice.

use std::sync::Arc;
use std::time::Duration;

use app_kernel::event::{CloudEvent, Delivery};
use ports_api::PortsApi;

use crate::error::Error;
use crate::store::{LaptopStore, PortChange, PortEvent};

/// How many events one read of the feed asks for.
const BATCH: i64 = 100;
/// The feed, as metrics name it.
const FEED: &str = "ports.events";

/// Follows the ports module's events into this module's store.
pub(crate) struct PortEvents {
    store: Arc<dyn LaptopStore>,
    ports: Arc<dyn PortsApi>,
    delivery: Delivery,
}

/// What `event` changes here: `None` for a type this module does not use;
/// an error for one it uses whose data it cannot read, a poison message.
fn change(event: &CloudEvent) -> Result<Option<PortChange>, String> {
    let broken = |field: &str| format!("{} event without a valid data.{field}", event.kind);
    let id = || event.data["id"].as_i64().ok_or_else(|| broken("id"));
    Ok(Some(match event.kind.as_str() {
        "port.created" | "port.renamed" => PortChange::Named {
            id: id()?,
            name: event.data["name"]
                .as_str()
                .ok_or_else(|| broken("name"))?
                .to_owned(),
            version: event.data["version"]
                .as_i64()
                .ok_or_else(|| broken("version"))?,
        },
        "port.deleted" => PortChange::Deleted { id: id()? },
        _ => return Ok(None),
    }))
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
        delivery: Delivery,
    ) -> Self {
        Self {
            store,
            ports,
            delivery,
        }
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
        log_applied(change.as_ref(), changed);
        Ok(())
    }

    /// Applies a page of events in one transaction (one commit, one sync
    /// to disk); if the page cannot be read or fails as a whole, one event
    /// at a time, so the one that fails is found and the others applied.
    async fn apply_page(&self, events: &[CloudEvent]) -> Result<(), Failure> {
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
                        log_applied(change.as_ref(), laptops);
                    }
                    return Ok(());
                }
                Err(app_kernel::db::StoreError::Unavailable(error)) => {
                    return Err(app_kernel::db::StoreError::Unavailable(error).into());
                }
                Err(_) => {}
            }
        }
        for event in events {
            self.apply_one(event).await?;
        }
        Ok(())
    }

    /// Applies the events not yet applied, and those `app events retry`
    /// asked for; returns how many there were.
    async fn apply(&self) -> Result<usize, Failure> {
        for event in self.store.retries().await? {
            self.apply_one(&event).await?;
            tracing::info!(module = crate::NAME, event = %event.id, "dead-lettered event applied on retry");
        }
        let mut applied = 0;
        loop {
            let read = self.store.ports_read().await?;
            let page = self.ports.events(read, BATCH).await.map_err(Error::from)?;
            let behind = |rows: i64| {
                metrics::gauge!("app_follower_behind_rows", "module" => crate::NAME, "feed" => FEED)
                    .set(rows as f64);
            };
            behind(page.remaining);
            self.apply_page(&page.items).await?;
            let count = page.items.len();
            applied += count;
            behind(page.remaining - count as i64);
            metrics::counter!("app_follower_applied_total", "module" => crate::NAME, "feed" => FEED)
                .increment(count as u64);
            if (count as i64) < BATCH {
                // Caught up: the lag is the time since, `time() - this`.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                metrics::gauge!(
                    "app_follower_caught_up_timestamp_seconds",
                    "module" => crate::NAME,
                    "feed" => FEED,
                )
                .set(now.as_secs_f64());
                return Ok(applied);
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
        let mut unavailable = false;
        let mut failing: Option<(String, u32)> = None;
        loop {
            let wait = match self.apply().await {
                Ok(_) => {
                    if unavailable {
                        unavailable = false;
                        tracing::info!(module = crate::NAME, "following port events again");
                    }
                    failing = None;
                    None
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
                    if failed >= self.delivery.max_attempts {
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
                        Some(self.delivery.backoff(failed))
                    }
                }
            };
            match (wait, &mut changes) {
                (Some(wait), _) => tokio::time::sleep(wait).await,
                (None, Some(changes)) => {
                    let _ = tokio::time::timeout(interval, changes.changed()).await;
                }
                (None, None) => tokio::time::sleep(interval).await,
            }
        }
    }
}
