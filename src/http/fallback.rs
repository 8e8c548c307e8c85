//! What a request that matches no route gets: 405 with `Allow` when the path
//! exists with other methods, else 404; both as problems. The same table
//! names a request's route template, for metrics and traces.

use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, web};
use app_kernel::Problem;
use utoipa::openapi::OpenApi;
use utoipa::openapi::path::HttpMethod;

/// Every documented path and its methods, to tell 404 from 405.
pub struct Routes {
    /// Tells one table from another, for caches keyed by a route's index.
    id: u64,
    routes: Vec<(Template, Vec<Method>)>,
}

/// A route's path template, matched a segment at a time: `name`, `{id}`
/// (any one segment) or, last, `{_:.*}` (the rest of the path). Far cheaper
/// than matching the router's regular expressions again.
struct Template {
    text: String,
    segments: Vec<Segment>,
    /// Whether it ends in `{_:.*}`: if not, a path matches only with as
    /// many segments.
    rest: bool,
}

enum Segment {
    Literal(String),
    One,
    Rest,
}

impl Template {
    fn parse(text: &str) -> Self {
        let segments = text
            .trim_start_matches('/')
            .split('/')
            .map(|segment| match segment.strip_prefix('{') {
                Some(param) if param.ends_with(":.*}") => Segment::Rest,
                Some(_) => Segment::One,
                None => Segment::Literal(segment.to_owned()),
            })
            .collect::<Vec<_>>();
        Self {
            text: text.to_owned(),
            rest: matches!(segments.last(), Some(Segment::Rest)),
            segments,
        }
    }

    /// How many literal segments a path of `parts` matches, if it matches.
    fn score(&self, parts: &[&str]) -> Option<usize> {
        if !self.rest && parts.len() != self.segments.len() {
            return None;
        }
        let mut literals = 0;
        for (at, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Rest => return Some(literals),
                Segment::One if parts.get(at)?.is_empty() => return None,
                Segment::One => {}
                Segment::Literal(literal) if parts.get(at)? != literal => return None,
                Segment::Literal(_) => literals += 1,
            }
        }
        (parts.len() == self.segments.len()).then_some(literals)
    }
}

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
                (Template::parse(path), methods)
            })
            .collect();
        static TABLES: AtomicU64 = AtomicU64::new(0);
        Self {
            id: TABLES.fetch_add(1, Ordering::Relaxed),
            routes,
        }
    }

    /// Adds paths served outside the API document, such as health and docs.
    pub fn with_get(mut self, paths: &[&str]) -> Self {
        for path in paths {
            self.routes
                .push((Template::parse(path), vec![Method::GET, Method::HEAD]));
        }
        self
    }

    /// The route `path` matches, the most literal one if several do: its
    /// index in this table, and its template.
    pub fn route(&self, path: &str) -> Option<(usize, &str)> {
        // No route has more segments than this; a longer path may still
        // match a template that ends in `{_:.*}`.
        const MOST: usize = 16;
        let mut parts = [""; MOST];
        let mut count = 0;
        for part in path.strip_prefix('/')?.split('/').take(MOST) {
            parts[count] = part;
            count += 1;
        }
        let parts = &parts[..count];
        self.routes
            .iter()
            .enumerate()
            .filter_map(|(at, (template, _))| Some((template.score(parts)?, at, template)))
            .max_by_key(|(score, at, _)| (*score, std::cmp::Reverse(*at)))
            .map(|(_, at, template)| (at, template.text.as_str()))
    }

    /// Tells this table from any other.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn allowed(&self, path: &str) -> Option<&[Method]> {
        self.route(path).map(|(at, _)| self.routes[at].1.as_slice())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_named_by_its_most_literal_template() {
        let routes = Routes::from_openapi(&OpenApi::default()).with_get(&[
            "/",
            "/api/v1/ports/{id}",
            "/api/v1/ports/events",
            "/api/v1/ports",
            "/swagger-ui/{_:.*}",
        ]);
        let template = |path: &str| routes.route(path).map(|(_, template)| template);
        assert_eq!(template("/"), Some("/"));
        assert_eq!(template("/api/v1/ports"), Some("/api/v1/ports"));
        assert_eq!(template("/api/v1/ports/7"), Some("/api/v1/ports/{id}"));
        assert_eq!(
            template("/api/v1/ports/events"),
            Some("/api/v1/ports/events")
        );
        assert_eq!(template("/swagger-ui/"), Some("/swagger-ui/{_:.*}"));
        assert_eq!(template("/swagger-ui/a/b.js"), Some("/swagger-ui/{_:.*}"));
        for unmatched in [
            "",
            "/api/v1/ports/",
            "/api/v1/ports/7/x",
            "/api/v1",
            "/nope",
        ] {
            assert_eq!(template(unmatched), None, "{unmatched}");
        }
    }
}
