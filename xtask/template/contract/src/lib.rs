//! The {{name}} module's public face for other modules: its name, where its
//! API is mounted, and the events it publishes. A module that follows them
//! depends on this crate, never on the module.
//!
//! This crate holds no domain rules and depends on no module.

pub mod events;

/// The module's name: its path segment, schema, database file and log field.
pub const NAME: &str = "{{name}}";
/// Where the module's HTTP API is mounted.
pub const PATH: &str = "/api/v1/{{name}}";
