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

use app_kernel::event::CloudEvent;
use ports_api::PortsApi;

use crate::error::Error;
use crate::store::{LaptopStore, PortChange};

/// How many events one read of the feed asks for.
const BATCH: i64 = 100;
/// The feed, as metrics name it.
const FEED: &str = "ports.events";

/// Follows the ports module's events into this module's store.
pub(crate) struct PortEvents {
    store: Arc<dyn LaptopStore>,
    ports: Arc<dyn PortsApi>,
}

/// What `event` changes here; `None` for a type this module does not use.
fn change(event: &CloudEvent) -> Option<PortChange> {
    let id = event.data["id"].as_i64()?;
    match event.kind.as_str() {
        "port.created" | "port.renamed" => Some(PortChange::Named {
            id,
            name: event.data["name"].as_str()?.to_owned(),
            version: event.data["version"].as_i64()?,
        }),
        "port.deleted" => Some(PortChange::Deleted { id }),
        _ => None,
    }
}

impl PortEvents {
    pub(crate) fn new(store: Arc<dyn LaptopStore>, ports: Arc<dyn PortsApi>) -> Self {
        Self { store, ports }
    }

    /// Applies the events not yet applied; returns how many there were.
    async fn apply(&self) -> Result<usize, Error> {
        let mut applied = 0;
        loop {
            let read = self.store.ports_read().await?;
            let page = self.ports.events(read, BATCH).await?;
            let behind = |rows: i64| {
                metrics::gauge!("app_follower_behind_rows", "module" => crate::NAME, "feed" => FEED)
                    .set(rows as f64);
            };
            behind(page.remaining);
            for event in &page.items {
                let change = change(event);
                let changed = self
                    .store
                    .apply_port_event(&event.id, event.seq, change.as_ref())
                    .await?;
                if let (Some(PortChange::Deleted { id }), Some(laptops)) = (&change, changed) {
                    tracing::info!(
                        module = crate::NAME,
                        port_id = id,
                        laptops,
                        "deleted port removed from laptops"
                    );
                }
            }
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
    /// runs in this process, and every `interval` in any case. Failures
    /// (ports or the database down) are logged once and retried.
    pub(crate) async fn follow(self, interval: Duration) {
        let mut changes = self.ports.changes();
        let mut failing = false;
        loop {
            match self.apply().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!(module = crate::NAME, "following port events again");
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(module = crate::NAME, %error, "cannot follow port events; will retry");
                }
                Err(_) => {}
            }
            match &mut changes {
                Some(changes) if !failing => {
                    let _ = tokio::time::timeout(interval, changes.changed()).await;
                }
                _ => tokio::time::sleep(interval).await,
            }
        }
    }
}
