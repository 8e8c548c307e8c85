//! The module's public API ([`ports_api::PortsApi`]) for modules in this
//! process: the same service, checks and limits as its HTTP API.

use app_kernel::event::{Changes, Events};
use app_kernel::page::PageRequest;
use app_kernel::peer::PeerError;
use ports_api::{MAX_FIND, NAME, PortRef, PortsApi};

use crate::error::Error;
use crate::service::Ports;

#[async_trait::async_trait]
impl PortsApi for Ports {
    async fn find(&self, ids: &[i64]) -> Result<Vec<PortRef>, PeerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let page = PageRequest {
            after: 0,
            limit: MAX_FIND as i64,
        };
        let found = self
            .list(None, Some(ids.to_vec()), page)
            .await
            .map_err(peer_error)?;
        Ok(found
            .items
            .into_iter()
            .map(|port| PortRef {
                id: port.id,
                name: port.name,
            })
            .collect())
    }

    async fn events(&self, after: i64, limit: i64) -> Result<Events, PeerError> {
        Ports::events(self, after, limit).await.map_err(peer_error)
    }

    fn changes(&self) -> Option<Changes> {
        Some(Ports::changes(self))
    }
}

/// What a caller in another module sees of the service's errors, as it
/// would over HTTP: the database failing is the module being unavailable;
/// anything else is a call the contract does not allow.
fn peer_error(error: Error) -> PeerError {
    match error {
        Error::Store(error) => {
            tracing::warn!(module = NAME, error = %app_kernel::problem::Chain(&error), "ports store failed a peer call");
            PeerError::Unavailable {
                peer: NAME,
                reason: "its database is unavailable".to_owned(),
            }
        }
        other => PeerError::Unexpected {
            peer: NAME,
            reason: other.to_string(),
        },
    }
}
