//! The events the laptops module publishes: each kind's name and the type
//! of its data.

use app_events::{Deleted, Kind, Payload};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A laptop was created.
pub const CREATED: Kind<LaptopData> = Kind::new("laptop.created", "A laptop was created.");
/// A laptop changed.
pub const UPDATED: Kind<LaptopData> = Kind::new(
    "laptop.updated",
    "A laptop changed: by a write, or by a port it listed being deleted.",
);
/// A laptop was deleted.
pub const DELETED: Kind<Deleted> = Kind::new("laptop.deleted", "A laptop was deleted.");

/// A laptop after the change: as clients read it, with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 1, "title": "Lenovo", "model": "ThinkPad X1 Carbon Gen 12", "port_ids": [1],
    "version": 1, "created_at": "2026-11-23T12:00:00.000Z", "updated_at": "2026-11-23T12:00:00.000Z"
}))]
pub struct LaptopData {
    #[schema(minimum = 1)]
    pub id: i64,
    /// The brand.
    pub title: String,
    pub model: String,
    /// The ports the laptop lists, in the order they were written.
    pub port_ids: Vec<i64>,
    /// Counts the laptop's writes: orders the events of one laptop.
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(serialize_with = "app_http::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "app_http::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl Payload for LaptopData {
    fn subject(&self) -> i64 {
        self.id
    }
}
