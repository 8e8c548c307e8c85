//! The OpenAPI document of the modules a process serves, and the way to Swagger UI.

use actix_web::{App, HttpResponse, http::header};
use app_kernel::{FieldError, Problem};
use utoipa::OpenApi as _;
use utoipa::openapi::OpenApi;
use utoipa::openapi::tag::TagBuilder;
use utoipa_actix_web::AppExt as _;

use crate::modules::Module;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "app",
        description = "A laptop catalogue built as domain modules. Errors are RFC 9457 problems \
                       (`application/problem+json`); every response carries `X-Request-Id`."
    ),
    components(schemas(Problem, FieldError))
)]
struct Base;

/// The document of `modules`, collected from their routes as they are mounted.
pub fn openapi(modules: &[Module]) -> OpenApi {
    let (_, mut openapi) = App::new()
        .into_utoipa_app()
        .openapi(Base::openapi())
        .configure(|cfg| modules.iter().for_each(|m| m.configure(cfg)))
        .split_for_parts();
    openapi.tags = Some(
        modules
            .iter()
            .map(|m| {
                TagBuilder::new()
                    .name(m.name())
                    .description(Some(m.summary()))
                    .build()
            })
            .collect(),
    );
    openapi
}

pub async fn redirect_to_swagger_ui() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, "/swagger-ui/"))
        .finish()
}

/// Where every process serves the document of every module, served here or
/// not: behind a gateway, Swagger UI shows this one (see `deploy/nginx`).
pub const MERGED: &str = "/api-docs/all/openapi.json";

/// A handler answering with `document`, serialized once.
pub fn serve(
    document: &OpenApi,
) -> anyhow::Result<impl Fn() -> std::future::Ready<HttpResponse> + Clone + 'static> {
    let body = actix_web::web::Bytes::from(document.to_json()?);
    Ok(move || {
        std::future::ready(
            HttpResponse::Ok()
                .content_type("application/json")
                .body(body.clone()),
        )
    })
}
