//! Laptops keep what they need of ports from the ports module's events: a
//! port's name for `expand=ports`, and a deleted port leaves every laptop
//! that lists it. The kernel's follower brings the events (from the broker,
//! or ports' feed in this process or another) and keeps the record of what
//! was applied; this is what applying one means here.

use std::sync::Arc;

use app_kernel::db::{Db, StoreError, Write};
use app_kernel::event::{CloudEvent, Unreadable};
use app_kernel::follow::{Handler, Inbox};
use ports_api::events::{CREATED, DELETED, RENAMED};
use sqlx::PgConnection;

use crate::service::Caches;
use crate::store::{self, PortChange};

/// Applies ports' events to this module's store.
pub struct PortEvents {
    caches: Caches,
}

/// Laptops' record of ports' events, applying them with `caches` kept true.
pub(crate) fn inbox(db: Db, caches: Caches) -> Inbox<PortEvents> {
    Inbox::new(
        db,
        crate::NAME,
        ports_api::NAME,
        Arc::new(PortEvents { caches }),
    )
}

/// [`inbox`] for a store on its own, with no caches: for its tests.
#[doc(hidden)]
pub fn store_inbox(db: Db) -> Inbox<PortEvents> {
    inbox(db, Caches::off())
}

#[async_trait::async_trait]
impl Handler for PortEvents {
    type Change = PortChange;
    /// How many laptops changed.
    type Outcome = u64;

    fn change(&self, event: &CloudEvent) -> Result<Option<PortChange>, Unreadable> {
        if let Some(port) = CREATED.read(event).or_else(|| RENAMED.read(event)) {
            let port = port?;
            return Ok(Some(PortChange::Named {
                id: port.id,
                name: port.name,
                version: port.version,
            }));
        }
        let deleted = DELETED.read(event).transpose()?;
        Ok(deleted.map(|deleted| PortChange::Deleted { id: deleted.id }))
    }

    fn sqlite(&self, write: &Write<'_>, change: &PortChange) -> Result<u64, StoreError> {
        store::sqlite::apply_port_change(write, change)
    }

    async fn postgres(
        &self,
        tx: &mut PgConnection,
        change: &PortChange,
    ) -> Result<u64, StoreError> {
        store::postgres::apply_port_change(tx, change).await
    }

    /// What the caches showed of the change goes. Laptops changed by a
    /// deleted port are not named here (their own events name them), so
    /// every laptop goes.
    fn applied(&self, change: &PortChange, laptops: &u64) {
        if let PortChange::Deleted { id } = change {
            tracing::info!(
                module = crate::NAME,
                port_id = id,
                laptops,
                "deleted port removed from laptops"
            );
        }
        self.caches.expanded.clear();
        if *laptops > 0 {
            self.caches.laptop.clear();
        }
    }
}
