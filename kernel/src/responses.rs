//! The problem responses operations declare in OpenAPI, one type per status,
//! so an operation lists what it can answer as `responses(..., NotFound, Unavailable)`.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::schema::{Object, Type};
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
                let mut response = problem($description);
                if $status == 503 || $status == 429 {
                    response = response.header(
                        "Retry-After",
                        HeaderBuilder::new()
                            .schema(Some(Object::with_type(Type::Integer)))
                            .description(Some("Seconds to wait before trying again."))
                            .build(),
                    );
                }
                BTreeMap::from([($status.to_string(), response.build().into())])
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
