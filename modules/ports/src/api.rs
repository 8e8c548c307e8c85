//! The module's public API ([`ports_api::PortsApi`]) for modules in this process.

use app_kernel::db::StoreError;
use app_kernel::page::PageRequest;
use app_kernel::peer::PeerError;
use ports_api::{MAX_FIND, NAME, PortDeletion, PortRef, PortsApi};

use crate::service::Ports;
use crate::store::Filter;

#[async_trait::async_trait]
impl PortsApi for Ports {
    async fn find(&self, ids: &[i64]) -> Result<Vec<PortRef>, PeerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let filter = Filter {
            name_key: None,
            ids: Some(ids.iter().copied().take(MAX_FIND).collect()),
        };
        let page = PageRequest {
            after: 0,
            limit: MAX_FIND as i64,
        };
        let rows = self
            .store()
            .list(&filter, page)
            .await
            .map_err(unavailable)?;
        Ok(rows
            .into_iter()
            .map(|port| PortRef {
                id: port.id,
                name: port.name,
            })
            .collect())
    }

    async fn deletions(&self, after: i64, limit: i64) -> Result<Vec<PortDeletion>, PeerError> {
        self.store()
            .deletions(after, limit)
            .await
            .map_err(unavailable)
    }
}

/// In one process the module's store failing is the module being unavailable.
fn unavailable(error: StoreError) -> PeerError {
    tracing::warn!(module = NAME, error = %app_kernel::problem::Chain(&error), "ports store failed a peer call");
    PeerError::Unavailable {
        peer: NAME,
        reason: "its database is unavailable".to_owned(),
    }
}
