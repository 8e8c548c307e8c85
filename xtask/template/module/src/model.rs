use app_kernel::ApiError;
use app_kernel::body::Fields;
use app_kernel::text::Text;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

const NAME: Text = Text { max: 64 };

/// {{A}} {{item}}.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
#[schema(example = json!({
    "id": 1, "name": "First",
    "created_at": "2026-11-23T12:00:00.000Z", "updated_at": "2026-11-23T12:00:00.000Z"
}))]
pub struct {{Item}} {
    #[schema(minimum = 1)]
    pub id: i64,
    /// Unique, ignoring case.
    pub name: String,
{{#needs}}
    /// The port it is for, if any: one the ports module has, until it is deleted.
    #[schema(minimum = 1)]
    pub port_id: Option<i64>,
{{/needs}}
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

/// What a client writes: the whole of {{a}} {{item}} (POST, PUT).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
// Unknown fields are refused; saying so makes the schema say `additionalProperties: false`.
#[serde(deny_unknown_fields)]
#[schema(as = {{Item}}Write, example = json!({"name": "First"}))]
pub struct New{{Item}} {
    #[schema(schema_with = name_schema)]
    pub name: String,
{{#needs}}
    /// A port the ports module has, or none.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub port_id: Option<i64>,
{{/needs}}
}

/// A JSON Merge Patch of {{a}} {{item}} (PATCH): the fields to change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = {{Item}}Patch, example = json!({"name": "Second"}))]
#[allow(dead_code)] // documents the PATCH body; the patch itself is applied as JSON
pub(crate) struct {{Item}}Patch {
    #[schema(schema_with = name_schema)]
    name: Option<String>,
{{#needs}}
    /// A port the ports module has; `null` for none.
    #[schema(minimum = 1)]
    port_id: Option<i64>,
{{/needs}}
}

fn name_schema() -> utoipa::openapi::schema::Object {
    NAME.schema("First")
}

impl New{{Item}} {
    /// Validates a request body, reporting every broken rule.
    pub fn from_json(body: Value) -> Result<Self, ApiError> {
        let mut fields = Fields::new(body)?;
        let name = fields.text("name", NAME);
{{^needs}}
        fields.finish(name.map(|name| Self { name }))
{{/needs}}
{{#needs}}
        let port_id = fields.id("port_id");
        fields.finish(name.zip(port_id).map(|(name, port_id)| Self { name, port_id }))
{{/needs}}
    }

    /// The name as uniqueness and the `name` filter compare it.
    pub(crate) fn name_key(&self) -> String {
        self.name.to_lowercase()
    }
}

impl {{Item}} {
    /// The {{item}} as its events carry it.
    pub(crate) fn data(&self) -> {{name}}_api::events::{{Item}}Data {
        {{name}}_api::events::{{Item}}Data {
            id: self.id,
            name: self.name.clone(),
{{#needs}}
            port_id: self.port_id,
{{/needs}}
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The writable part of the {{item}}, which a merge patch applies to.
    pub(crate) fn writable(&self) -> Value {
{{^needs}}
        json!({ "name": self.name })
{{/needs}}
{{#needs}}
        json!({ "name": self.name, "port_id": self.port_id })
{{/needs}}
    }
}
