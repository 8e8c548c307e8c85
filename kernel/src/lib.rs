//! The module runtime: what the binary knows of a module and how one
//! starts ([`module`]), and its caches of resources ([`cache`]). It also
//! re-exports the layers beneath, so a module names one crate:
//!
//! - `app-http`: the HTTP vocabulary (problems, bodies, pages, ETags);
//! - `app-calls`: calls between processes (peers, breaker, trace, contracts);
//! - `app-events`: the vocabulary of events (CloudEvents, typed kinds, feeds);
//! - `app-store`: storage (pools, the group commit, outboxes);
//! - `app-messaging`: events between modules (relay, queues, the follower).
//!
//! A contract crate depends on `app-events` and `app-calls` alone. It knows
//! no module, holds no domain rules and never touches a module's tables.

pub mod cache;
pub mod module;

pub use app_calls::{breaker, peer, trace};
pub use app_http::{
    ApiError, FieldError, Problem, body, etag, id, page, problem, query_config, responses, text,
    time, versions,
};
pub use app_messaging::{broker, follow};
pub use app_store::db;

/// Events: their vocabulary, and each module's outbox of them.
pub mod event {
    pub use app_events::*;
    pub use app_store::outbox::{changes, dead, last_seq, postgres, sqlite};
}
