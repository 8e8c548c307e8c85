//! The HTTP face of the module: `/api/v1/ports`.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, delete, get, patch, post, put, web};
use app_kernel::ApiError;
use app_kernel::body::JsonBody;
use app_kernel::etag::{self, IfMatch, IfMatchHeader, IfNoneMatchHeader};
use app_kernel::event::{Events, FeedQuery};
use app_kernel::id::{self, Id};
use app_kernel::page::{Page, PageRequest};
use app_kernel::responses::{
    BadRequest, Conflict, NotFound, PayloadTooLarge, PreconditionFailed, Unavailable,
    Unprocessable, UnsupportedMediaType,
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::model::{NewPort, Port, PortPatch};
use crate::service::Ports;

/// Mounts the module's API. Needs `web::Data<Ports>` in the app.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        utoipa_actix_web::scope(ports_api::PATH)
            .service(list_ports)
            .service(list_port_events)
            // Else `/{id}` would answer other methods here with a 400.
            .route("/events", web::route().to(app_kernel::problem::only_get))
            .service(create_port)
            .service(get_port)
            .service(replace_port)
            .service(patch_port)
            .service(delete_port),
    );
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// How many ports a page holds.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{11}$")]
    cursor: Option<String>,
    /// Only the port of this name, ignoring case.
    name: Option<String>,
    /// Only ports with these ids: up to 100, comma-separated.
    #[param(
        pattern = "^[1-9][0-9]{0,17}(,[1-9][0-9]{0,17}){0,99}$",
        example = "1,2,3"
    )]
    id: Option<String>,
}

/// List ports, by id.
#[utoipa::path(
    tag = "ports",
    params(ListQuery),
    responses((status = 200, description = "A page of ports.", body = Page<Port>), BadRequest, Unavailable)
)]
#[get("")]
async fn list_ports(
    ports: web::Data<Ports>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
    let ids = query
        .id
        .as_deref()
        .map(|raw| id::parse_list("id", raw, ports_api::MAX_FIND))
        .transpose()?;
    let found = ports.list(query.name.as_deref(), ids, page).await?;
    Ok(HttpResponse::Ok().json(found))
}

/// List the module's events, oldest first: every change to a port, as a
/// CloudEvent, in the order the changes committed.
#[utoipa::path(
    tag = "ports",
    params(FeedQuery),
    responses((status = 200, description = "Events after `after`.", body = Events), BadRequest, Unavailable)
)]
#[get("/events")]
async fn list_port_events(
    ports: web::Data<Ports>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let (after, limit) = query.checked()?;
    Ok(HttpResponse::Ok().json(ports.events(after, limit).await?))
}

/// Create a port.
#[utoipa::path(
    tag = "ports",
    request_body(content = NewPort, content_type = "application/json"),
    responses(
        (status = 201, description = "Created.", body = Port, headers(
            ("Location" = String),
            ("ETag" = String),
        )),
        BadRequest, Conflict, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
#[post("")]
async fn create_port(
    req: HttpRequest,
    ports: web::Data<Ports>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let port = ports.create(NewPort::from_json(body.0)?).await?;
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, format!("{}/{}", req.path(), port.id)));
    Ok(etag::tagged(response, port.version, &port))
}

/// Get a port.
#[utoipa::path(
    tag = "ports",
    params(("id" = i64, Path, description = "The port's id.", minimum = 1), IfNoneMatchHeader),
    responses(
        (status = 200, description = "The port.", body = Port, headers(("ETag" = String))),
        (status = 304, description = "`If-None-Match` names the current ETag.", headers(("ETag" = String))),
        BadRequest, NotFound, Unavailable,
    )
)]
#[get("/{id}")]
async fn get_port(
    req: HttpRequest,
    ports: web::Data<Ports>,
    id: Id,
) -> Result<HttpResponse, ApiError> {
    etag::check_if_none_match(&req)?;
    Ok(ports.read(id.0, &req).await?.respond(&req))
}

/// Replace a port.
///
/// Send `If-Match` with the ETag you read to write only if nobody wrote since.
#[utoipa::path(
    tag = "ports",
    params(("id" = i64, Path, description = "The port's id.", minimum = 1), IfMatchHeader),
    request_body(content = NewPort, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced.", body = Port, headers(("ETag" = String))),
        BadRequest, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
#[put("/{id}")]
async fn replace_port(
    req: HttpRequest,
    ports: web::Data<Ports>,
    id: Id,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let if_match = IfMatch::from_request(&req)?;
    let port = ports
        .replace(id.0, &if_match, NewPort::from_json(body.0)?)
        .await?;
    Ok(etag::tagged(HttpResponse::Ok(), port.version, &port))
}

/// Change some fields of a port (JSON Merge Patch, RFC 7396).
///
/// Send `If-Match` with the ETag you read to write only if nobody wrote since.
#[utoipa::path(
    tag = "ports",
    params(("id" = i64, Path, description = "The port's id.", minimum = 1), IfMatchHeader),
    request_body(content = PortPatch, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "Changed.", body = Port, headers(("ETag" = String))),
        BadRequest, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
#[patch("/{id}")]
async fn patch_port(
    req: HttpRequest,
    ports: web::Data<Ports>,
    id: Id,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let if_match = IfMatch::from_request(&req)?;
    let port = ports.patch(id.0, &if_match, &body.0).await?;
    Ok(etag::tagged(HttpResponse::Ok(), port.version, &port))
}

/// Delete a port.
///
/// Send `If-Match` with the ETag you read to delete only if nobody wrote since.
#[utoipa::path(
    tag = "ports",
    params(("id" = i64, Path, description = "The port's id.", minimum = 1), IfMatchHeader),
    responses(
        (status = 204, description = "Deleted."),
        BadRequest, NotFound, Conflict, PreconditionFailed, Unavailable,
    )
)]
#[delete("/{id}")]
async fn delete_port(
    req: HttpRequest,
    ports: web::Data<Ports>,
    id: Id,
) -> Result<HttpResponse, ApiError> {
    let if_match = IfMatch::from_request(&req)?;
    ports.delete(id.0, &if_match).await?;
    Ok(HttpResponse::NoContent().finish())
}
