use app_kernel::ApiError;
use app_kernel::body::Fields;
use app_kernel::text::Text;
use chrono::{DateTime, Utc};
use ports_api::PortRef;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

const TITLE: Text = Text { max: 100 };
const MODEL: Text = Text { max: 100 };
/// The most ports a laptop may list.
pub(crate) const MAX_PORTS: usize = 32;

/// A laptop model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, sqlx::FromRow)]
#[schema(example = json!({
    "id": 1, "title": "Lenovo", "model": "ThinkPad X1 Carbon Gen 12", "port_ids": [1],
    "created_at": "2026-11-23T12:00:00.000Z", "updated_at": "2026-11-23T12:00:00.000Z"
}))]
pub struct Laptop {
    #[schema(minimum = 1)]
    pub id: i64,
    /// The brand.
    pub title: String,
    pub model: String,
    /// The ports the laptop has, in the order they were written.
    #[sqlx(json)]
    pub port_ids: Vec<i64>,
    /// The ports of `port_ids`, with `expand=ports` only.
    #[sqlx(skip)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PortRef>>,
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

/// What a client writes: the whole of a laptop (POST, PUT).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, ToSchema)]
// Unknown fields are refused; saying so makes the schema say `additionalProperties: false`.
#[serde(deny_unknown_fields)]
#[schema(as = LaptopWrite, example = json!({"title": "Lenovo", "model": "ThinkPad X1 Carbon Gen 12", "port_ids": [1]}))]
pub struct NewLaptop {
    /// The brand.
    #[schema(schema_with = title_schema)]
    pub title: String,
    #[schema(schema_with = model_schema)]
    pub model: String,
    /// Ids of existing ports, each at most once; none if left out.
    #[serde(default)]
    #[schema(schema_with = port_ids_schema)]
    pub port_ids: Vec<i64>,
}

/// A JSON Merge Patch of a laptop (PATCH): the fields to change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = LaptopPatch, example = json!({"model": "ThinkPad X1 Carbon Gen 13"}))]
#[allow(dead_code)] // documents the PATCH body; the patch itself is applied as JSON
pub(crate) struct LaptopPatch {
    #[schema(schema_with = title_schema)]
    title: Option<String>,
    #[schema(schema_with = model_schema)]
    model: Option<String>,
    /// `null` lists no ports.
    #[schema(schema_with = port_ids_patch_schema)]
    port_ids: Option<Vec<i64>>,
}

fn title_schema() -> utoipa::openapi::schema::Object {
    TITLE.schema("Lenovo")
}

fn model_schema() -> utoipa::openapi::schema::Object {
    MODEL.schema("ThinkPad X1 Carbon Gen 12")
}

fn port_ids_array() -> utoipa::openapi::schema::ArrayBuilder {
    use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
    let id = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1));
    ArrayBuilder::new()
        .items(id)
        .max_items(Some(MAX_PORTS))
        .unique_items(true)
}

fn port_ids_schema() -> utoipa::openapi::schema::Array {
    port_ids_array().build()
}

fn port_ids_patch_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{SchemaType, Type};
    port_ids_array()
        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
        .build()
}

impl NewLaptop {
    /// Validates a request body, reporting every broken rule.
    pub fn from_json(body: Value) -> Result<Self, ApiError> {
        let mut fields = Fields::new(body)?;
        let title = fields.text("title", TITLE);
        let model = fields.text("model", MODEL);
        let port_ids = fields.ids("port_ids", MAX_PORTS);
        let laptop = match (title, model, port_ids) {
            (Some(title), Some(model), Some(port_ids)) => Some(Self {
                title,
                model,
                port_ids,
            }),
            _ => None,
        };
        fields.finish(laptop)
    }

    /// The title as the `title` filter compares it.
    pub(crate) fn title_key(&self) -> String {
        self.title.to_lowercase()
    }
}

impl Laptop {
    /// The laptop as its events carry it.
    pub(crate) fn data(&self) -> laptops_api::events::LaptopData {
        laptops_api::events::LaptopData {
            id: self.id,
            title: self.title.clone(),
            model: self.model.clone(),
            port_ids: self.port_ids.clone(),
            version: self.version,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// The writable part of the laptop, which a merge patch applies to.
    pub(crate) fn writable(&self) -> Value {
        json!({ "title": self.title, "model": self.model, "port_ids": self.port_ids })
    }
}
