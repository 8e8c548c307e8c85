//! The OpenAPI document of the modules a process serves, and the way to Swagger UI.

use actix_web::web::{self, Bytes, ServiceConfig};
use actix_web::{App, HttpResponse, http::header};
use app_kernel::module::Access;
use app_kernel::responses::{self, Forbidden, TooManyRequests, Unauthorized};
use app_kernel::{FieldError, Problem};
use utoipa::openapi::schema::{ArrayItems, Schema};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{OpenApi, Ref, RefOr};
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
    refer_page_items(&mut openapi);
    secure(&mut openapi);
    declare_headers(&mut openapi);
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

/// Makes the items of each `Page_T` refer to `T`. utoipa inlines a type
/// parameter's schema (juhaku/utoipa#1586, with `inline = false` too), and
/// a client generated from that has a list item type of its own
/// (`PageLaptopItemsItem`) beside the `Laptop` that a single read returns.
fn refer_page_items(openapi: &mut OpenApi) {
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let items: Vec<(String, String)> = components
        .schemas
        .keys()
        .filter_map(|name| Some((name.clone(), name.strip_prefix("Page_")?.to_owned())))
        .filter(|(_, item)| components.schemas.contains_key(item))
        .collect();
    for (page, item) in items {
        let Some(RefOr::T(Schema::Object(page))) = components.schemas.get_mut(&page) else {
            continue;
        };
        if let Some(RefOr::T(Schema::Array(list))) = page.properties.get_mut("items") {
            list.items = ArrayItems::RefOrSchema(Box::new(Ref::from_schema_name(item).into()));
        }
    }
}

/// Response headers are declared once, under `components/headers`: an
/// operation's own (`ETag`, `Location`) become references to them, with
/// the operation's description where it gives one, and every response of
/// a module's API may carry `RateLimit` and `RateLimit-Policy`.
fn declare_headers(openapi: &mut OpenApi) {
    let declared = responses::headers();
    for (path, item) in openapi.paths.paths.iter_mut() {
        let limited = modules::of_path(path).is_some();
        let operations = [
            &mut item.get,
            &mut item.head,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in operations.into_iter().flatten() {
            for response in operation.responses.responses.values_mut() {
                let RefOr::T(response) = response else {
                    continue;
                };
                for (name, header) in response.headers.iter_mut() {
                    assert!(
                        declared.contains_key(name),
                        "{path} sends {name}: declare it in app_kernel::responses::headers"
                    );
                    if let RefOr::T(inline) = header {
                        let description = inline.description.take();
                        *header = responses::header(name);
                        if let (RefOr::Ref(reference), Some(description)) = (header, description) {
                            reference.description = description;
                        }
                    }
                }
                if limited {
                    for name in [responses::RATELIMIT, responses::RATELIMIT_POLICY] {
                        response
                            .headers
                            .insert(name.to_owned(), responses::header(name));
                    }
                }
            }
        }
    }
    openapi
        .components
        .get_or_insert_with(Default::default)
        .headers
        .extend(declared);
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
