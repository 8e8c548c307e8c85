{{#follows}}
//! {{Name}} follow the ports module's events: a deleted port leaves every
//! {{item}} that has it. The kernel's follower brings the events (from the
//! broker, or ports' feed in this process or another) and keeps the record
//! of what was applied; this is what applying one means here.

use std::sync::Arc;

use app_kernel::db::{Db, StoreError, Write};
use app_kernel::event::{CloudEvent, Unreadable};
use app_kernel::follow::{Handler, Inbox};
use ports_api::events::DELETED;
use sqlx::PgConnection;

use crate::store;

/// Applies ports' events to this module's store.
pub struct PortEvents;

/// This module's record of ports' events, applied by [`PortEvents`].
pub fn inbox(db: Db) -> Inbox<PortEvents> {
    Inbox::new(db, crate::NAME, ports_api::NAME, Arc::new(PortEvents))
}

#[async_trait::async_trait]
impl Handler for PortEvents {
    /// The id of a deleted port.
    type Change = i64;
    /// How many {{name}} changed.
    type Outcome = u64;

    fn change(&self, event: &CloudEvent) -> Result<Option<i64>, Unreadable> {
        Ok(DELETED.read(event).transpose()?.map(|deleted| deleted.id))
    }

    fn sqlite(&self, write: &Write<'_>, port_id: &i64) -> Result<u64, StoreError> {
        store::sqlite::forget_port(write, *port_id)
    }

    async fn postgres(&self, tx: &mut PgConnection, port_id: &i64) -> Result<u64, StoreError> {
        store::postgres::forget_port(tx, *port_id).await
    }

    fn applied(&self, port_id: &i64, changed: &u64) {
        if *changed > 0 {
            tracing::info!(module = crate::NAME, port_id, {{name}} = changed, "deleted port taken off {{name}}");
        }
    }
}
{{/follows}}
