//! The problem responses operations declare in OpenAPI, one type per status,
//! so an operation lists what it can answer as `responses(..., NotFound, Unavailable)`.

use std::collections::BTreeMap;

use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use crate::problem::PROBLEM_JSON;

fn problem(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    )
}

macro_rules! problem_responses {
    ($($(#[$doc:meta])* $name:ident = $status:literal, $description:literal;)*) => {$(
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                let mut response = problem($description).build();
                let sent = match $status {
                    401 | 403 => Some(WWW_AUTHENTICATE),
                    429 | 503 => Some(RETRY_AFTER),
                    _ => None,
                };
                if let Some(name) = sent {
                    response.headers.insert(name.to_owned(), header(name));
                }
                BTreeMap::from([($status.to_string(), response.into())])
            }
        }
    )*};
}

problem_responses! {
    BadRequest = 400, "Malformed JSON, a bad query parameter or cursor, or an id that is not a positive 64-bit integer.";
    Unauthorized = 401, "No bearer token, or one that is not accepted (expired, wrong issuer or audience, bad signature); `WWW-Authenticate` says why.";
    Forbidden = 403, "The token lacks the scope this operation needs; `WWW-Authenticate` names it.";
    NotFound = 404, "No such resource.";
    Conflict = 409, "The write conflicts with another resource, or lost every race with concurrent writes.";
    PreconditionFailed = 412, "`If-Match` does not match the current ETag.";
    PayloadTooLarge = 413, "The body is over 64 KiB.";
    UnsupportedMediaType = 415, "The body is not JSON.";
    Unprocessable = 422, "Well-formed JSON that breaks a rule; `errors` lists every field.";
    TooManyRequests = 429, "This client's rate limit is spent; retry after `Retry-After` seconds. `RateLimit` and `RateLimit-Policy` describe the limit.";
    Unavailable = 503, "A database or module this request needs is unavailable; retry after `Retry-After` seconds.";
}

pub const ETAG: &str = "ETag";
pub const LOCATION: &str = "Location";
pub const RATELIMIT: &str = "RateLimit";
pub const RATELIMIT_POLICY: &str = "RateLimit-Policy";
pub const RETRY_AFTER: &str = "Retry-After";
pub const WWW_AUTHENTICATE: &str = "WWW-Authenticate";

/// A reference to the response header `name` of [`headers`].
pub fn header(name: &str) -> RefOr<Header> {
    RefOr::Ref(Ref::new(format!("#/components/headers/{name}")))
}

/// The response headers that clients act on, each declared once, for
/// `components/headers`; responses refer to them with [`header`].
pub fn headers() -> BTreeMap<String, RefOr<Header>> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let declared = |schema: ObjectBuilder, description: &str| {
        HeaderBuilder::new()
            .schema(Some(schema.build()))
            .description(Some(description))
            .build()
    };
    [
        (
            ETAG,
            declared(
                // The opaque part as `etag::CONDITION_PATTERN` has it.
                string().pattern(Some(r#"^(W/)?"[!#-+\--~]*"$"#)),
                "The entity tag of the version sent: give it back in `If-Match` to \
                 write only that version, or in `If-None-Match` to get 304 while it \
                 is current.",
            ),
        ),
        (
            LOCATION,
            declared(
                string().format(Some(SchemaFormat::Custom("uri-reference".into()))),
                "The URL of the resource created.",
            ),
        ),
        (
            RATELIMIT,
            declared(
                string(),
                "What is left of this client's quota (draft-ietf-httpapi-ratelimit-headers): \
                 `\"write\";r=150;t=1` is 150 requests left, the quota full again in 1 s. \
                 Sent on every response of a module's API when rate limits are on.",
            ),
        ),
        (
            RATELIMIT_POLICY,
            declared(
                string(),
                "The quota in force: `\"write\";q=200;w=2` is 200 requests each 2 s. \
                 Sent with `RateLimit`.",
            ),
        ),
        (
            RETRY_AFTER,
            declared(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(0)),
                "Seconds to wait before trying again.",
            ),
        ),
        (
            WWW_AUTHENTICATE,
            declared(
                string(),
                "The bearer challenge (RFC 6750): `error` and `error_description` say \
                 why a token was refused; on 403, `scope` names the scope needed.",
            ),
        ),
    ]
    .into_iter()
    .map(|(name, declared)| (name.to_owned(), RefOr::T(declared)))
    .collect()
}
