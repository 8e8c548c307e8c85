//! The ports module's public API: what another module may ask of it, and
//! nothing more. The ports module implements [`PortsApi`] in process;
//! [`HttpPorts`] implements it over HTTP for a ports module that runs
//! elsewhere; [`Unconfigured`] answers for one that runs nowhere known.
//! [`CONTRACT`] tells the binary how to build the last two. Callers hold a
//! `dyn PortsApi` and cannot tell which they have.
//!
//! [`events`] declares the events ports publish.
//!
//! This crate holds no domain rules and depends on no module.

pub mod events;

use std::sync::Arc;

use app_calls::contract::{Api, Contract};
use app_calls::peer::{Peer, PeerError};
use app_events::{Changes, Events};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The module's name, as in `--peer ports=URL`.
pub const NAME: &str = "ports";
/// Where the module's HTTP API is mounted.
pub const PATH: &str = "/api/v1/ports";
/// The most ids one [`PortsApi::find`] may ask for.
pub const MAX_FIND: usize = 100;

/// How other modules reach the ports module.
pub static CONTRACT: Contract = Contract {
    module: NAME,
    over_http: |peer| api(HttpPorts(peer)),
    missing: |hint| api(Unconfigured { hint }),
};

/// `ports` as the [`Api`] other modules are handed.
pub fn api(ports: impl PortsApi + 'static) -> Api {
    Api::new::<Arc<dyn PortsApi>>(Arc::new(ports))
}

/// A port as other modules see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": 1, "name": "USB-C"}))]
pub struct PortRef {
    pub id: i64,
    pub name: String,
}

#[async_trait::async_trait]
pub trait PortsApi: Send + Sync {
    /// The ports among `ids` (at most [`MAX_FIND`]) that exist, in no order.
    async fn find(&self, ids: &[i64]) -> Result<Vec<PortRef>, PeerError>;

    /// Up to `limit` (1-100) of the module's events with `seq` above
    /// `after`, oldest first: `port.created`, `port.renamed` and
    /// `port.deleted`, each with the port (id, name, version) as `data`.
    async fn events(&self, after: i64, limit: i64) -> Result<Events, PeerError>;

    /// When ports run in this process: what to wait on for new events.
    /// Elsewhere, `None`: the feed is polled.
    fn changes(&self) -> Option<Changes> {
        None
    }
}

/// Ports' events, as a follower reads them: from `ports`, wherever it runs.
pub struct Feed(pub Arc<dyn PortsApi>);

#[async_trait::async_trait]
impl app_events::Feed for Feed {
    fn producer(&self) -> &'static str {
        NAME
    }

    async fn read(&self, after: i64, limit: i64) -> Result<Events, app_events::FeedError> {
        Ok(self.0.events(after, limit).await?)
    }

    fn changes(&self) -> Option<Changes> {
        self.0.changes()
    }
}

/// The ports module of another process.
pub struct HttpPorts(pub Arc<Peer>);

#[derive(Deserialize)]
struct Items<T> {
    items: Vec<T>,
}

#[async_trait::async_trait]
impl PortsApi for HttpPorts {
    async fn find(&self, ids: &[i64]) -> Result<Vec<PortRef>, PeerError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        let path = format!("{PATH}?limit={MAX_FIND}&id={}", ids.join(","));
        Ok(self.0.get::<Items<PortRef>>(&path).await?.items)
    }

    async fn events(&self, after: i64, limit: i64) -> Result<Events, PeerError> {
        let path = format!("{PATH}/events?after={after}&limit={limit}");
        self.0.get::<Events>(&path).await
    }
}

/// The ports module when this process neither runs it nor knows where it runs.
pub struct Unconfigured {
    /// How to tell this process where ports run.
    pub hint: String,
}

impl Unconfigured {
    fn error(&self) -> PeerError {
        PeerError::NotConfigured {
            peer: NAME,
            hint: self.hint.clone(),
        }
    }
}

#[async_trait::async_trait]
impl PortsApi for Unconfigured {
    async fn find(&self, _: &[i64]) -> Result<Vec<PortRef>, PeerError> {
        Err(self.error())
    }

    async fn events(&self, _: i64, _: i64) -> Result<Events, PeerError> {
        Err(self.error())
    }
}
