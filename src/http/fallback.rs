//! What a request that matches no route gets: 405 with `Allow` when the path
//! exists with other methods, else 404; both as problems.

use actix_web::dev::ResourceDef;
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use app_kernel::Problem;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::HttpMethod;

/// Every documented path and its methods, to tell 404 from 405.
pub struct Routes(Vec<(ResourceDef, Vec<Method>)>);

impl Routes {
    pub fn from_openapi(openapi: &OpenApi) -> Self {
        let routes = openapi
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods: Vec<Method> = [
                    (HttpMethod::Get, &item.get),
                    (HttpMethod::Put, &item.put),
                    (HttpMethod::Post, &item.post),
                    (HttpMethod::Delete, &item.delete),
                    (HttpMethod::Patch, &item.patch),
                ]
                .into_iter()
                .filter(|(_, operation)| operation.is_some())
                .map(|(method, _)| method_of(method))
                .collect();
                if methods.contains(&Method::GET) {
                    methods.push(Method::HEAD);
                }
                methods.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self(routes)
    }

    /// Adds paths served outside the API document, such as health and docs.
    pub fn with_get(mut self, paths: &[&str]) -> Self {
        for path in paths {
            self.0
                .push((ResourceDef::new(*path), vec![Method::GET, Method::HEAD]));
        }
        self
    }

    fn allowed(&self, path: &str) -> Option<&[Method]> {
        self.0
            .iter()
            .find(|(resource, _)| resource.is_match(path))
            .map(|(_, methods)| methods.as_slice())
    }
}

fn method_of(method: HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Post => Method::POST,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Trace => Method::TRACE,
    }
}

pub async fn not_found_or_not_allowed(req: HttpRequest, routes: web::Data<Routes>) -> HttpResponse {
    match routes.allowed(req.path()) {
        Some(methods) => {
            let allow = methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            app_kernel::problem::method_not_allowed(req.method(), &allow)
        }
        None => Problem::new(
            StatusCode::NOT_FOUND,
            format!("no route matches {}", req.path()),
        )
        .response(),
    }
}
