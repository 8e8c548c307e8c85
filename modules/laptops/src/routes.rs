//! The HTTP face of the module: `/api/v1/laptops`.

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
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::model::{Laptop, LaptopPatch, NewLaptop};
use crate::service::Laptops;

/// Mounts the module's API. Needs `web::Data<Laptops>` in the app.
pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(
        utoipa_actix_web::scope(crate::PATH)
            .service(list_laptops)
            .service(list_laptop_events)
            // Else `/{id}` would answer other methods here with a 400.
            .route("/events", web::route().to(app_kernel::problem::only_get))
            .service(create_laptop)
            .service(get_laptop)
            .service(replace_laptop)
            .service(patch_laptop)
            .service(delete_laptop),
    );
}

/// List the module's events, oldest first: every change to a laptop, as a
/// CloudEvent, in the order the changes committed.
#[utoipa::path(
    tag = "laptops",
    params(FeedQuery),
    responses((status = 200, description = "Events after `after`.", body = Events), BadRequest, Unavailable)
)]
#[get("/events")]
async fn list_laptop_events(
    laptops: web::Data<Laptops>,
    query: web::Query<FeedQuery>,
) -> Result<HttpResponse, ApiError> {
    let (after, limit) = query.checked()?;
    Ok(HttpResponse::Ok().json(laptops.events(after, limit).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// How many laptops a page holds.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]{11}$")]
    cursor: Option<String>,
    /// Only laptops of this brand, ignoring case.
    title: Option<String>,
    /// Only laptops that list this port.
    #[param(minimum = 1)]
    port_id: Option<i64>,
    /// `ports` embeds each laptop's `ports: [{id, name}]`, from what this
    /// module knows of ports.
    #[param(inline)]
    expand: Option<Expand>,
}

/// List laptops, by id.
#[utoipa::path(
    tag = "laptops",
    params(ListQuery),
    responses((status = 200, description = "A page of laptops.", body = Page<Laptop>), BadRequest, Unavailable)
)]
#[get("")]
async fn list_laptops(
    laptops: web::Data<Laptops>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = PageRequest::parse(query.limit, query.cursor.as_deref())?;
    if query.port_id.is_some_and(|id| id < 1) {
        return Err(ApiError::BadRequest(
            "port_id must be a positive 64-bit integer".to_owned(),
        ));
    }
    let mut found = laptops
        .list(query.title.as_deref(), query.port_id, page)
        .await?;
    if let Some(Expand::Ports) = query.expand {
        laptops.expand(&mut found.items).await?;
    }
    Ok(HttpResponse::Ok().json(found))
}

/// Create a laptop.
#[utoipa::path(
    tag = "laptops",
    request_body(content = NewLaptop, content_type = "application/json"),
    responses(
        (status = 201, description = "Created.", body = Laptop, headers(
            ("Location" = String),
            ("ETag" = String),
        )),
        BadRequest, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
#[post("")]
async fn create_laptop(
    req: HttpRequest,
    laptops: web::Data<Laptops>,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let laptop = laptops.create(NewLaptop::from_json(body.0)?).await?;
    let mut response = HttpResponse::Created();
    response.insert_header((header::LOCATION, format!("{}/{}", req.path(), laptop.id)));
    Ok(etag::tagged(response, laptop.version, &laptop))
}

/// What `expand` may embed.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum Expand {
    Ports,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct GetQuery {
    /// `ports` embeds `ports: [{id, name}]`, from what this module knows of
    /// ports. An expanded laptop has no ETag: it holds another module's data.
    #[param(inline)]
    expand: Option<Expand>,
}

/// Get a laptop.
#[utoipa::path(
    tag = "laptops",
    params(("id" = i64, Path, description = "The laptop's id.", minimum = 1), IfNoneMatchHeader, GetQuery),
    responses(
        (status = 200, description = "The laptop.", body = Laptop, headers(("ETag" = String, description = "The laptop's entity tag; not sent with `expand`."))),
        (status = 304, description = "`If-None-Match` names the current ETag.", headers(("ETag" = String))),
        BadRequest, NotFound, Unavailable,
    )
)]
#[get("/{id}")]
async fn get_laptop(
    req: HttpRequest,
    laptops: web::Data<Laptops>,
    id: Id,
    query: web::Query<GetQuery>,
) -> Result<HttpResponse, ApiError> {
    etag::check_if_none_match(&req)?;
    if let Some(Expand::Ports) = query.expand {
        return Ok(laptops.read_expanded(id.0, &req).await?.respond_untagged());
    }
    Ok(laptops.read(id.0, &req).await?.respond(&req))
}

/// Replace a laptop.
///
/// Send `If-Match` with the ETag you read to write only if nobody wrote since.
#[utoipa::path(
    tag = "laptops",
    params(("id" = i64, Path, description = "The laptop's id.", minimum = 1), IfMatchHeader),
    request_body(content = NewLaptop, content_type = "application/json"),
    responses(
        (status = 200, description = "Replaced.", body = Laptop, headers(("ETag" = String))),
        BadRequest, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
#[put("/{id}")]
async fn replace_laptop(
    req: HttpRequest,
    laptops: web::Data<Laptops>,
    id: Id,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let if_match = IfMatch::from_request(&req)?;
    let laptop = laptops
        .replace(id.0, &if_match, NewLaptop::from_json(body.0)?)
        .await?;
    Ok(etag::tagged(HttpResponse::Ok(), laptop.version, &laptop))
}

/// Change some fields of a laptop (JSON Merge Patch, RFC 7396).
///
/// Send `If-Match` with the ETag you read to write only if nobody wrote since.
#[utoipa::path(
    tag = "laptops",
    params(("id" = i64, Path, description = "The laptop's id.", minimum = 1), IfMatchHeader),
    request_body(content = LaptopPatch, content_type = "application/merge-patch+json"),
    responses(
        (status = 200, description = "Changed.", body = Laptop, headers(("ETag" = String))),
        BadRequest, NotFound, Conflict, PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable, Unavailable,
    )
)]
#[patch("/{id}")]
async fn patch_laptop(
    req: HttpRequest,
    laptops: web::Data<Laptops>,
    id: Id,
    body: JsonBody,
) -> Result<HttpResponse, ApiError> {
    let if_match = IfMatch::from_request(&req)?;
    let laptop = laptops.patch(id.0, &if_match, &body.0).await?;
    Ok(etag::tagged(HttpResponse::Ok(), laptop.version, &laptop))
}

/// Delete a laptop.
///
/// Send `If-Match` with the ETag you read to delete only if nobody wrote since.
#[utoipa::path(
    tag = "laptops",
    params(("id" = i64, Path, description = "The laptop's id.", minimum = 1), IfMatchHeader),
    responses(
        (status = 204, description = "Deleted."),
        BadRequest, NotFound, Conflict, PreconditionFailed, Unavailable,
    )
)]
#[delete("/{id}")]
async fn delete_laptop(
    req: HttpRequest,
    laptops: web::Data<Laptops>,
    id: Id,
) -> Result<HttpResponse, ApiError> {
    let if_match = IfMatch::from_request(&req)?;
    laptops.delete(id.0, &if_match).await?;
    Ok(HttpResponse::NoContent().finish())
}
