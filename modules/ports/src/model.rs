use app_kernel::ApiError;
use app_kernel::body::Fields;
use app_kernel::text::Text;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

const NAME: Text = Text { max: 64 };

/// A kind of physical port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
#[schema(example = json!({
    "id": 1, "name": "USB-C",
    "created_at": "2026-11-23T12:00:00.000Z", "updated_at": "2026-11-23T12:00:00.000Z"
}))]
pub struct Port {
    #[schema(minimum = 1)]
    pub id: i64,
    /// Unique, ignoring case.
    pub name: String,
    /// Counts writes; the ETag is derived from it.
    #[serde(skip)]
    pub version: i64,
    #[serde(serialize_with = "app_kernel::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "app_kernel::time::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: DateTime<Utc>,
}

/// What a client writes: the whole of a port (POST, PUT).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
// Unknown fields are refused; saying so makes the schema say `additionalProperties: false`.
#[serde(deny_unknown_fields)]
#[schema(as = PortWrite, example = json!({"name": "USB-C"}))]
pub struct NewPort {
    #[schema(schema_with = name_schema)]
    pub name: String,
}

/// A JSON Merge Patch of a port (PATCH): the fields to change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PortPatch, example = json!({"name": "USB4"}))]
#[allow(dead_code)] // documents the PATCH body; the patch itself is applied as JSON
pub(crate) struct PortPatch {
    #[schema(schema_with = name_schema)]
    name: Option<String>,
}

fn name_schema() -> utoipa::openapi::schema::Object {
    NAME.schema("USB-C")
}

impl NewPort {
    /// Validates a request body, reporting every broken rule.
    pub fn from_json(body: Value) -> Result<Self, ApiError> {
        let mut fields = Fields::new(body)?;
        let name = fields.text("name", NAME);
        fields.finish(name.map(|name| Self { name }))
    }

    /// The name as uniqueness and the `name` filter compare it.
    pub(crate) fn name_key(&self) -> String {
        self.name.to_lowercase()
    }
}

impl Port {
    /// The port as its events carry it.
    pub(crate) fn data(&self) -> ports_api::events::PortData {
        ports_api::events::PortData {
            id: self.id,
            name: self.name.clone(),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The writable part of the port, which a merge patch applies to.
    pub(crate) fn writable(&self) -> Value {
        json!({ "name": self.name })
    }
}
