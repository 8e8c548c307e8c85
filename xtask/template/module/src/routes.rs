//! The HTTP face of the module: `/api/v1/{{name}}`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use app_kernel::ApiError;
use app_kernel::body::JsonBody;
use app_kernel::etag::{self, IfMatch, IfMatchHeader, IfNoneMatchHeader};
use app_kernel::event::{Events, FeedQuery};
use app_kernel::id::Id;
use app_kernel::page::{Page, PageRequest};
use app_kernel::responses::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, PreconditionFailed, Unavailable,
    Unprocessable, UnsupportedMediaType,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::model::{New{{Item}}, {{Item}}, {{Item}}Patch};
use crate::service::{{Name}};

/// Mounts the module's API. Needs `web::Data<{{Name}}>` in the app.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        utoipa_actix_web::scope(crate::PATH)
            .service(list_{{name}})
            .service(list_{{item}}_events)
            // Else `/{id}` would answer other methods here with a 400.
            .route("/events", web::route().to(app_kernel::problem::only_get))
            .service(create_{{item}})
            .service(get_{{item}})
            .service(replace_{{item}})
            .service(patch_{{item}})
            .service(delete_{{item}}),
    );
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// How many {{name}} a page holds.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{11}$")]
    cursor: Option<String>,
    /// Only the {{item}} of this name, ignoring case.
    name: Option<String>,
}

/// List {{name}}, by id.
#[utoipa::path(
    tag = "{{name}}",
    params(ListQuery),
    responses((status = 200, description = "A page of {{name}}.", body = Page<{{Item}}>), BadRequest, Unavailable)
)]
#[get("")]
async fn list_{{name}}(
    {{name}}: web::Data<{{Name}}>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
    let found = {{name}}.list(query.name.as_deref(), page).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// List the module's events, oldest first: every change, as a CloudEvent,
/// in the order the changes committed.
#[utoipa::path(
    tag = "{{name}}",
    params(FeedQuery),
    responses((status = 200, description = "Events after `after`.", body = Events), BadRequest, Unavailable)
)]
#[get("/events")]
async fn list_{{item}}_events(
    {{name}}: web::Data<{{Name}}>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let (after, limit) = query.checked()?;
    Ok(HttpResponse::Ok().json({{name}}.events(after, limit).await?))
}

/// Create {{a}} {{item}}.
#[utoipa::path(
    tag = "{{name}}",
    request_body(content = New{{Item}}, content_type = "application/json"),
    responses(
        (status = 201, description = "Created.", body = {{Item}}, headers(
            ("Location" = String),
            ("ETag" = String),
        )),
        BadRequest, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
#[post("")]
async fn create_{{item}}(
    req: HttpRequest,
    {{name}}: web::Data<{{Name}}>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let {{item}} = {{name}}.create(New{{Item}}::from_json(body.0)?).await?;
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, format!("{}/{}", req.path(), {{item}}.id)));
    Ok(etag::tagged(response, {{item}}.version, &{{item}}))
}

/// Get {{a}} {{item}}.
#[utoipa::path(
    tag = "{{name}}",
    params(("id" = i64, Path, description = "The {{item}}'s id.", minimum = 1), IfNoneMatchHeader),
    responses(
        (status = 200, description = "The {{item}}.", body = {{Item}}, headers(("ETag" = String))),
        (status = 304, description = "`If-None-Match` names the current ETag.", headers(("ETag" = String))),
        BadRequest, NotFound, Unavailable,
    )
)]
#[get("/{id}")]
async fn get_{{item}}(
    req: HttpRequest,
    {{name}}: web::Data<{{Name}}>,
    id: Id,
) -> Result<HttpResponse, ApiError> {
    etag::check_if_none_match(&req)?;
    let {{item}} = {{name}}.get(id.0).await?;
    if etag::not_modified(&req, {{item}}.version) {
        return Ok(etag::unchanged({{item}}.version));
    }
    Ok(etag::tagged(HttpResponse::Ok(), {{item}}.version, &{{item}}))
}

/// Replace {{a}} {{item}}.
///
/// Send `If-Match` with the ETag you read to write only if nobody wrote since.
#[utoipa::path(
    tag = "{{name}}",
    params(("id" = i64, Path, description = "The {{item}}'s id.", minimum = 1), IfMatchHeader),
    request_body(content = New{{Item}}, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced.", body = {{Item}}, headers(("ETag" = String))),
        BadRequest, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
#[put("/{id}")]
async fn replace_{{item}}(
    req: HttpRequest,
    {{name}}: web::Data<{{Name}}>,
    id: Id,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let if_match = IfMatch::from_request(&req)?;
    let {{item}} = {{name}}
        .replace(id.0, &if_match, New{{Item}}::from_json(body.0)?)
        .await?;
    Ok(etag::tagged(HttpResponse::Ok(), {{item}}.version, &{{item}}))
}

/// Change some fields of {{a}} {{item}} (JSON Merge Patch, RFC 7396).
///
/// Send `If-Match` with the ETag you read to write only if nobody wrote since.
#[utoipa::path(
    tag = "{{name}}",
    params(("id" = i64, Path, description = "The {{item}}'s id.", minimum = 1), IfMatchHeader),
    request_body(content = {{Item}}Patch, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "Changed.", body = {{Item}}, headers(("ETag" = String))),
        BadRequest, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
#[patch("/{id}")]
async fn patch_{{item}}(
    req: HttpRequest,
    {{name}}: web::Data<{{Name}}>,
    id: Id,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let if_match = IfMatch::from_request(&req)?;
    let {{item}} = {{name}}.patch(id.0, &if_match, &body.0).await?;
    Ok(etag::tagged(HttpResponse::Ok(), {{item}}.version, &{{item}}))
}

/// Delete {{a}} {{item}}.
///
/// Send `If-Match` with the ETag you read to delete only if nobody wrote since.
#[utoipa::path(
    tag = "{{name}}",
    params(("id" = i64, Path, description = "The {{item}}'s id.", minimum = 1), IfMatchHeader),
    responses(
        (status = 204, description = "Deleted."),
        BadRequest, NotFound, Conflict, PreconditionFailed, Unavailable,
    )
)]
#[delete("/{id}")]
async fn delete_{{item}}(
    req: HttpRequest,
    {{name}}: web::Data<{{Name}}>,
    id: Id,
) -> Result<HttpResponse, ApiError> {
    let if_match = IfMatch::from_request(&req)?;
    {{name}}.delete(id.0, &if_match).await?;
    Ok(HttpResponse::NoContent().finish())
}
