//! The laptops module's public face for other modules: its name, where its
//! API is mounted, and the events it publishes. No module calls laptops
//! yet, so there is no trait to call it through.
//!
//! This crate holds no domain rules and depends on no module.

pub mod events;

/// The module's name: its path segment, schema, database file and log field.
pub const NAME: &str = "laptops";
/// Where the module's HTTP API is mounted.
pub const PATH: &str = "/api/v1/laptops";
