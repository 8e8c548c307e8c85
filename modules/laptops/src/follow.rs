//! Deleting a port removes it from every laptop that lists it: this module
//! follows the ports module's feed of deletions and applies each one.
//!
//! The feed is read the same way whether ports runs in this process or
//! another; what was applied is recorded with the change itself, so a
//! restart, a replica or a dead peer loses nothing and applies nothing twice
//! to any effect.

use std::sync::Arc;
use std::time::Duration;

use ports_api::PortsApi;

use crate::error::Error;
use crate::store::LaptopStore;

/// How many deletions one read of the feed asks for.
const BATCH: i64 = 100;
/// The feed, as metrics name it.
const FEED: &str = "ports.deletions";

/// Follows the feed of port deletions into this module's store.
pub(crate) struct PortDeletions {
    store: Arc<dyn LaptopStore>,
    ports: Arc<dyn PortsApi>,
}

impl PortDeletions {
    pub(crate) fn new(store: Arc<dyn LaptopStore>, ports: Arc<dyn PortsApi>) -> Self {
        Self { store, ports }
    }

    /// Applies the deletions not yet applied; returns how many there were.
    async fn apply(&self) -> Result<usize, Error> {
        let mut applied = 0;
        loop {
            let seen = self.store.port_deletions_seen().await?;
            let page = self.ports.deletions(seen, BATCH).await?;
            let behind = |rows: i64| {
                metrics::gauge!("app_follower_behind_rows", "module" => crate::NAME, "feed" => FEED)
                    .set(rows as f64);
            };
            behind(page.remaining);
            let deletions = page.items;
            for deletion in &deletions {
                let changed = self
                    .store
                    .remove_port(deletion.port_id, deletion.seq)
                    .await?;
                tracing::info!(
                    module = crate::NAME,
                    port_id = deletion.port_id,
                    laptops = changed,
                    "deleted port removed from laptops"
                );
            }
            applied += deletions.len();
            behind(page.remaining - deletions.len() as i64);
            metrics::counter!("app_follower_applied_total", "module" => crate::NAME, "feed" => FEED)
                .increment(deletions.len() as u64);
            if (deletions.len() as i64) < BATCH {
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

    /// Applies port deletions every `interval`, for as long as the task runs.
    /// Failures (ports or the database down) are logged once and retried.
    pub(crate) async fn follow(self, interval: Duration) {
        let mut failing = false;
        loop {
            match self.apply().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!(module = crate::NAME, "following port deletions again");
                }
                Ok(_) => {}
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(module = crate::NAME, %error, "cannot follow port deletions; will retry");
                }
                Err(_) => {}
            }
            tokio::time::sleep(interval).await;
        }
    }
}
