//! HTTP plumbing shared by every module: request context, docs, health, fallback.

pub mod docs;
pub mod fallback;
pub mod guard;
pub mod health;
pub mod metrics;
pub mod request;
