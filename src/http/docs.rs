//! The OpenAPI document of the modules a process serves, and the way to Swagger UI.

use actix_web::web::{self, Bytes, ServiceConfig};
use actix_web::{App, HttpResponse, http::header};
use app_kernel::module::Access;
use app_kernel::responses::{Forbidden, TooManyRequests, Unauthorized};
use app_kernel::{FieldError, Problem};
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::{IntoResponses as _, OpenApi as _};
use utoipa_actix_web::AppExt as _;
use utoipa_swagger_ui::{SwaggerUi, Url};

use crate::modules::{self, Module};

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
pub fn openapi(modules: &[&'static Module]) -> OpenApi {
    let (_, mut openapi) = App::new()
        .into_utoipa_app()
        .openapi(Base::openapi())
        .configure(|cfg| modules.iter().for_each(|m| (m.routes)(cfg)))
        .split_for_parts();
    secure(&mut openapi);
    openapi.tags = Some(
        modules
            .iter()
            .map(|m| {
                TagBuilder::new()
                    .name(m.name)
                    .description(Some(m.summary))
                    .build()
            })
            .collect(),
    );
    openapi
}

/// The bearer scheme, and on each module's operation the scope it needs:
/// `MODULE:write` for writes; `MODULE:read` for reads, which also go
/// without a token unless the process runs with `--auth-reads`. Swagger UI
/// sends the token of its Authorize dialog only where an operation names
/// the scheme. Each such operation may answer 401, 403 and 429.
fn secure(openapi: &mut OpenApi) {
    openapi
        .components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT whose `scope` claim grants `MODULE:write` (and \
                         `MODULE:read` where reads need a token). Locally: \
                         `app token`.",
                    ))
                    .build(),
            ),
        );
    let refusals: Vec<_> = [
        Unauthorized::responses(),
        Forbidden::responses(),
        TooManyRequests::responses(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (path, item) in openapi.paths.paths.iter_mut() {
        let Some(module) = modules::of_path(path) else {
            continue;
        };
        let operations = [
            (&mut item.get, Access::Read),
            (&mut item.head, Access::Read),
            (&mut item.post, Access::Write),
            (&mut item.put, Access::Write),
            (&mut item.patch, Access::Write),
            (&mut item.delete, Access::Write),
        ];
        for (operation, access) in operations {
            let Some(operation) = operation else {
                continue;
            };
            let bearer = SecurityRequirement::new(BEARER, [module.scope(access)]);
            operation.security = Some(match access {
                Access::Write => vec![bearer],
                Access::Read => vec![SecurityRequirement::default(), bearer],
            });
            for (status, response) in &refusals {
                operation
                    .responses
                    .responses
                    .entry(status.clone())
                    .or_insert_with(|| response.clone());
            }
        }
    }
}

/// The name of the bearer security scheme.
const BEARER: &str = "bearer";

pub async fn redirect_to_swagger_ui() -> HttpResponse {
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, "/swagger-ui/"))
        .finish()
}

/// Where a process serves the document of the modules it serves.
pub const OWN: &str = "/api-docs/openapi.json";

/// Where every process serves the document of every module, served here or
/// not: behind a gateway (nginx, an Ingress) every operation in it works.
pub const MERGED: &str = "/api-docs/all/openapi.json";

/// What a process serves of the documentation, built once.
#[derive(Clone)]
pub struct Docs {
    /// The document of the modules this process serves.
    pub own: OpenApi,
    merged: Merged,
}

/// The document of every module.
#[derive(Clone)]
enum Merged {
    /// This process serves every module, so it is `own`, serialized.
    Own(Bytes),
    /// This process serves only some modules.
    Every(Box<OpenApi>),
}

impl Docs {
    pub fn new(served: &[&'static Module]) -> anyhow::Result<Self> {
        let own = openapi(served);
        let merged = if served == modules::ALL {
            Merged::Own(Bytes::from(own.to_json()?))
        } else {
            Merged::Every(Box::new(openapi(modules::ALL)))
        };
        Ok(Self { own, merged })
    }

    /// Swagger UI and both documents. Where this process serves only some
    /// modules, Swagger UI opens on the document of every module, as a user
    /// behind the gateway needs, and offers this process's own beside it.
    pub fn configure(&self, cfg: &mut ServiceConfig) {
        let ui = SwaggerUi::new("/swagger-ui/{_:.*}");
        match &self.merged {
            Merged::Every(every) => {
                cfg.service(ui.urls(vec![
                    (
                        Url::with_primary("every module, through the gateway", MERGED, true),
                        (**every).clone(),
                    ),
                    (Url::new("this process only", OWN), self.own.clone()),
                ]));
            }
            Merged::Own(body) => {
                let body = body.clone();
                let merged = move || {
                    let response = HttpResponse::Ok()
                        .content_type("application/json")
                        .body(body.clone());
                    std::future::ready(response)
                };
                cfg.service(ui.url(OWN, self.own.clone()))
                    .route(MERGED, web::get().to(merged));
            }
        }
    }
}
