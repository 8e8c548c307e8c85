//! The events the {{name}} module publishes: each kind's name and the type
//! of its data. Its stores record them; any module may read them as these
//! types.

use app_events::{Deleted, Kind, Payload};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// {{A}} {{item}} was created.
pub const CREATED: Kind<{{Item}}Data> = Kind::new("{{item}}.created", "{{A}} {{item}} was created.");
/// {{A}} {{item}} changed.
pub const UPDATED: Kind<{{Item}}Data> = Kind::new("{{item}}.updated", "{{A}} {{item}} changed.");
/// {{A}} {{item}} was deleted.
pub const DELETED: Kind<Deleted> = Kind::new("{{item}}.deleted", "{{A}} {{item}} was deleted.");

/// {{A}} {{item}} after the change: as clients read it, with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 1, "name": "First", "version": 1,
    "created_at": "2026-11-23T12:00:00.000Z", "updated_at": "2026-11-23T12:00:00.000Z"
}))]
pub struct {{Item}}Data {
    #[schema(minimum = 1)]
    pub id: i64,
    pub name: String,
{{#needs}}
    /// The port it is for, if any.
    pub port_id: Option<i64>,
{{/needs}}
    /// Counts the {{item}}'s writes: orders the events of one {{item}}.
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(serialize_with = "app_http::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "app_http::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl Payload for {{Item}}Data {
    fn subject(&self) -> i64 {
        self.id
    }
}
