//! The events the ports module publishes: each kind's name and the type of
//! its data. Ports records them; laptops (and any module) read them as
//! these types.

use app_events::{Deleted, Kind, Payload};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A port was created.
pub const CREATED: Kind<PortData> = Kind::new("port.created", "A port was created.");
/// A port's name changed.
pub const RENAMED: Kind<PortData> = Kind::new("port.renamed", "A port was renamed.");
/// A port was deleted.
pub const DELETED: Kind<Deleted> = Kind::new("port.deleted", "A port was deleted.");

/// A port after the change: as clients read it, with its version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({
    "id": 3, "name": "USB-C", "version": 2,
    "created_at": "2026-12-01T13:00:00.000Z", "updated_at": "2026-12-01T14:00:00.000Z"
}))]
pub struct PortData {
    #[schema(minimum = 1)]
    pub id: i64,
    pub name: String,
    /// Counts the port's writes: orders the events of one port.
    #[schema(minimum = 1)]
    pub version: i64,
    #[serde(serialize_with = "app_http::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "app_http::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

impl Payload for PortData {
    fn subject(&self) -> i64 {
        self.id
    }
}

#[cfg(test)]
mod tests {
    use app_events::CloudEvent;
    use serde_json::json;

    use super::*;

    fn event(kind: &str, data: serde_json::Value) -> CloudEvent {
        serde_json::from_value(json!({
            "specversion": "1.0", "id": "e", "source": crate::PATH, "type": kind,
            "subject": "3", "time": "2026-12-01T14:00:00.000Z",
            "datacontenttype": "application/json", "data": data, "seq": 1
        }))
        .unwrap()
    }

    #[test]
    fn a_consumer_reads_what_the_producer_writes() {
        let port = PortData {
            id: 3,
            name: "USB-C".into(),
            version: 2,
            created_at: "2026-12-01T13:00:00Z".parse().unwrap(),
            updated_at: "2026-12-01T14:00:00Z".parse().unwrap(),
        };
        let recorded = RENAMED.event(&port);
        assert_eq!(
            (recorded.kind, recorded.subject.as_str()),
            ("port.renamed", "3")
        );
        let received = event(recorded.kind, recorded.data);
        assert_eq!(RENAMED.read(&received).unwrap().unwrap(), port);
        assert!(CREATED.read(&received).is_none(), "another kind is skipped");
    }

    #[test]
    fn a_newer_producer_s_fields_are_ignored_and_missing_ones_are_poison() {
        let newer = event(
            "port.renamed",
            json!({"id": 3, "name": "USB4", "version": 3, "speed_gbps": 40,
                   "created_at": "2026-12-01T13:00:00.000Z", "updated_at": "2026-12-01T15:00:00.000Z"}),
        );
        assert_eq!(RENAMED.read(&newer).unwrap().unwrap().name, "USB4");
        let broken = event("port.renamed", json!({"id": 3, "version": 3}));
        let error = RENAMED.read(&broken).unwrap().unwrap_err();
        assert!(error.to_string().contains("name"), "{error}");
        let deleted = event("port.deleted", json!({"id": 3, "version": 4}));
        assert_eq!(
            DELETED.read(&deleted).unwrap().unwrap(),
            Deleted { id: 3, version: 4 }
        );
    }
}
