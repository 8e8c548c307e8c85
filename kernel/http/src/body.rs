//! Request bodies: read within a size limit, parsed as JSON, then checked
//! field by field so that a 422 lists every broken rule at once.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::{Method, header};
use actix_web::{FromRequest, HttpRequest, dev::Payload, web::BytesMut};
use serde_json::{Map, Value};

use crate::{ApiError, FieldError};

/// The largest body the API accepts.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request body that is a well-formed JSON document of an accepted media type.
///
/// Answers 415 for another media type, 413 past [`MAX_BODY_BYTES`] and 400 for
/// malformed JSON (including invalid UTF-8 and nesting deeper than 128).
#[derive(Debug)]
pub struct JsonBody(pub Value);

impl FromRequest for JsonBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = check_media_type(req).and_then(|()| check_length(req));
        let mut payload = payload.take();
        Box::pin(async move {
            checked?;
            let bytes = read_limited(&mut payload).await?;
            serde_json::from_slice(&bytes).map(JsonBody).map_err(|e| {
                ApiError::BadRequest(format!("the request body is not valid JSON: {e}"))
            })
        })
    }
}

/// POST and PUT take `application/json`; PATCH takes a JSON Merge Patch,
/// as `application/merge-patch+json` or plain `application/json`.
fn check_media_type(req: &HttpRequest) -> Result<(), ApiError> {
    let patch = req.method() == Method::PATCH;
    let unsupported = || {
        ApiError::UnsupportedMediaType(if patch {
            "a PATCH body must be application/merge-patch+json (or application/json)".into()
        } else {
            "the request body must be application/json".into()
        })
    };
    let value = req
        .headers()
        .get(header::CONTENT_TYPE)
        .ok_or_else(unsupported)?;
    let mime: mime::Mime = value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(unsupported)?;
    let json = mime.type_() == mime::APPLICATION && mime.subtype() == mime::JSON;
    let merge_patch = mime.type_() == mime::APPLICATION
        && mime.subtype() == "merge-patch"
        && mime.suffix() == Some(mime::JSON);
    if json || (patch && merge_patch) {
        Ok(())
    } else {
        Err(unsupported())
    }
}

fn check_length(req: &HttpRequest) -> Result<(), ApiError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(length) if length > MAX_BODY_BYTES => Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES)),
        _ => Ok(()),
    }
}

async fn read_limited(payload: &mut Payload) -> Result<BytesMut, ApiError> {
    use futures_util::StreamExt as _;
    let mut body = BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            ApiError::BadRequest(format!("the request body could not be read: {e}"))
        })?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge(MAX_BODY_BYTES));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// Reads the fields of a JSON object, collecting every broken rule.
///
/// Take each known field, then call [`Fields::finish`]: it reports the fields
/// nobody took as unknown, and every error found along the way.
pub struct Fields {
    object: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    pub fn new(body: Value) -> Result<Self, ApiError> {
        match body {
            Value::Object(object) => Ok(Self {
                object,
                errors: Vec::new(),
            }),
            _ => Err(ApiError::Validation(vec![FieldError::new(
                "",
                "the body must be a JSON object",
            )])),
        }
    }

    /// A required string, checked by [`crate::text::Text`].
    pub fn text(&mut self, field: &str, rule: crate::text::Text) -> Option<String> {
        match self.object.remove(field) {
            None | Some(Value::Null) => self.error(field, "is required"),
            Some(Value::String(raw)) => match rule.check(&raw) {
                Ok(clean) => Some(clean),
                Err(message) => self.error(field, message),
            },
            Some(_) => self.error(field, "must be a string"),
        }
    }

    /// An optional list of at most `max` distinct positive ids; absent is
    /// the empty list. (A merge patch's `null` removes the field: absent.)
    pub fn ids(&mut self, field: &str, max: usize) -> Option<Vec<i64>> {
        let items = match self.object.remove(field) {
            None => return Some(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return self.error(field, "must be an array of ids"),
        };
        if items.len() > max {
            return self.error(
                field,
                format!("may hold at most {max} ids, not {}", items.len()),
            );
        }
        let mut ids = Vec::with_capacity(items.len());
        for item in &items {
            match item.as_i64().filter(|id| *id > 0) {
                Some(id) if ids.contains(&id) => {
                    return self.error(field, format!("holds {id} twice"));
                }
                Some(id) => ids.push(id),
                None => {
                    return self.error(
                        field,
                        format!("must hold positive 64-bit integers, not {item}"),
                    );
                }
            }
        }
        Some(ids)
    }

    /// An optional positive id: `Some(None)` when absent or `null`.
    pub fn id(&mut self, field: &str) -> Option<Option<i64>> {
        match self.object.remove(field) {
            None | Some(Value::Null) => Some(None),
            Some(value) => match value.as_i64().filter(|id| *id > 0) {
                Some(id) => Some(Some(id)),
                None => self.error(
                    field,
                    format!("must be a positive 64-bit integer, not {value}"),
                ),
            },
        }
    }

    fn error<T>(&mut self, field: &str, message: impl Into<String>) -> Option<T> {
        self.errors.push(FieldError::new(field, message));
        None
    }

    /// Succeeds when every field was known and valid; `value` is then `Some`.
    pub fn finish<T>(mut self, value: Option<T>) -> Result<T, ApiError> {
        let mut unknown: Vec<_> = self.object.keys().cloned().collect();
        unknown.sort();
        for field in unknown {
            self.errors
                .push(FieldError::new(field, "is not a known field"));
        }
        match value {
            Some(value) if self.errors.is_empty() => Ok(value),
            _ => Err(ApiError::Validation(self.errors)),
        }
    }
}

/// Applies a JSON Merge Patch (RFC 7396) to the writable fields of a resource.
/// A patch that names a field the resource does not have is refused, even
/// when it sets it to `null`: it is almost surely a typing mistake.
pub fn merge_patch(mut writable: Value, patch: &Value) -> Result<Value, ApiError> {
    if let (Value::Object(fields), Value::Object(changes)) = (&writable, patch) {
        let mut unknown: Vec<FieldError> = changes
            .keys()
            .filter(|field| !fields.contains_key(*field))
            .map(|field| FieldError::new(field, "is not a known field"))
            .collect();
        if !unknown.is_empty() {
            unknown.sort_by(|a, b| a.field.cmp(&b.field));
            return Err(ApiError::Validation(unknown));
        }
    }
    json_patch::merge(&mut writable, patch);
    Ok(writable)
}
