//! One span per request, carrying its id, trace id and module, and
//! `X-Request-Id` on every response: the caller's when it sent a sane one,
//! else a new one. A valid `traceparent` continues the caller's trace.
//! When spans are exported, each request is a server span as OpenTelemetry's
//! HTTP conventions describe it, and the `trace_id` of its log lines is the
//! exported trace's.
//!
//! Every event logged while serving a request carries the span's fields.
//! The access line of each request is a `debug` event of target `access`
//! (`RUST_LOG=info,access=debug`): at the default level a request costs no
//! log write, which keeps the whole stack within a few percent of a bare
//! handler (see `bench/run`).
//!
//! Request headers over 16 KiB in all get a 431 problem here, and a URL
//! over 8 KiB a 414: actix-web refuses a head over 128 KiB only when it
//! arrives in more than one read. Every response says `nosniff`; an API
//! response without an ETag says `Cache-Control: no-store`.

use std::time::Instant;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use app_kernel::Problem;
use app_kernel::trace::{self, Context, Credentials};
use app_kernel::versions;
use opentelemetry::KeyValue;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{
    Span as _, SpanKind, SpanRef, Status, TraceContextExt as _, Tracer as _,
};
use tracing::Instrument as _;

pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The target of the requests' spans.
pub const TARGET: &str = crate::telemetry::REQUEST_TARGET;

/// The longest caller-chosen request id we pass on.
const MAX_REQUEST_ID: usize = 128;
/// The most bytes a request's headers may take, names and values.
const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The most bytes of a request's path and query.
const MAX_TARGET_BYTES: usize = 8 * 1024;

pub async fn context(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .filter(|value| acceptable(value.as_bytes()))
        .cloned()
        .unwrap_or_else(new_id);
    let module = crate::modules::of_path(req.path());
    let parent = trace::extract(&Headers(req.headers()));
    // Exported, the request is a server span, the caller's span its parent
    // whatever this process samples; only a sampled one is described.
    let exported = trace::tracer().map(|tracer| {
        let server = tracer
            .span_builder("request")
            .with_kind(SpanKind::Server)
            .start_with_context(tracer, &parent);
        let sampled = server.span_context().is_sampled();
        (parent.with_span(server), sampled)
    });
    let trace = match &exported {
        Some((trace, _)) => trace.clone(),
        None => trace::continued(parent),
    };
    // Every field given at once: each one recorded later is formatted again.
    let span = tracing::info_span!(
        target: TARGET,
        "request",
        request_id = id.to_str().unwrap_or_default(),
        trace_id = %trace.span().span_context().trace_id(),
        module = module.map(|m| m.name),
        method = req.method().as_str(),
        path = req.path(),
    );
    if let Some((trace, true)) = &exported {
        describe(&trace.span(), &req, module);
        crate::telemetry::follow(&span, trace);
    }
    let mut trace = Context::new(id.to_str().unwrap_or_default().to_owned(), trace);
    trace.authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .map(|value| Credentials(value.to_owned()));
    // Another module calling: which version it runs.
    if let Some((caller, version)) = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .and_then(versions::parse_user_agent)
    {
        versions::heard(caller, version, versions::Via::Http);
    }
    // HEAD is GET without the body, which the HTTP layer leaves out for HEAD.
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    let started = Instant::now();
    let header_bytes: usize = req
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    let target_bytes = req.uri().path_and_query().map_or(0, |p| p.as_str().len());
    let too_large = if header_bytes > MAX_HEADER_BYTES {
        Some(Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request's headers take {header_bytes} bytes; at most {MAX_HEADER_BYTES} are read"
            ),
        ))
    } else if target_bytes > MAX_TARGET_BYTES {
        Some(Problem::new(
            StatusCode::URI_TOO_LONG,
            format!("the URL takes {target_bytes} bytes; at most {MAX_TARGET_BYTES} are read"),
        ))
    } else {
        None
    };
    let mut response = if let Some(problem) = too_large {
        req.into_response(problem.response()).map_into_right_body()
    } else {
        // Handlers and extractors turn their errors into responses
        // themselves, so what comes back here is a response that can carry
        // the id. Calls to peers made while serving it carry its id and trace.
        trace
            .scope(next.call(req).instrument(span.clone()))
            .await?
            .map_into_left_body()
    };
    if let Some((trace, sampled)) = &exported {
        let span = trace.span();
        if *sampled {
            let status = response.status();
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status.as_u16()),
            ));
            if status.is_server_error() {
                span.set_attribute(KeyValue::new("error.type", status.as_str().to_owned()));
                span.set_status(Status::error(""));
            }
        }
        span.end();
    }
    span.in_scope(|| {
        tracing::debug!(
            target: "access",
            status = response.status().as_u16(),
            micros = started.elapsed().as_micros() as u64,
            "handled"
        );
    });
    let headers = response.headers_mut();
    headers.insert(REQUEST_ID.clone(), id);
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // An API answer is for this caller, now: no cache keeps it, unless it
    // carries an ETag a cache can check it with.
    if module.is_some()
        && !headers.contains_key(header::ETAG)
        && !headers.contains_key(header::CACHE_CONTROL)
    {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    Ok(response)
}

/// Names and describes a sampled request's span as OpenTelemetry's HTTP
/// server conventions do.
fn describe(span: &SpanRef<'_>, req: &ServiceRequest, module: Option<&crate::modules::Module>) {
    let route = req
        .app_data::<actix_web::web::Data<crate::http::fallback::Routes>>()
        .and_then(|routes| routes.route(req.path()))
        .map(|(_, template)| template.to_owned());
    span.update_name(match &route {
        Some(route) => format!("{} {route}", req.method()),
        None => req.method().to_string(),
    });
    let scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let version = match req.version() {
        actix_web::http::Version::HTTP_2 => "2",
        actix_web::http::Version::HTTP_10 => "1.0",
        _ => "1.1",
    };
    let mut attributes = vec![
        KeyValue::new("http.request.method", req.method().to_string()),
        KeyValue::new("url.path", req.path().to_owned()),
        KeyValue::new("url.scheme", scheme),
        KeyValue::new("network.protocol.version", version),
    ];
    if let Some(module) = module {
        attributes.push(KeyValue::new("app.module", module.name));
    }
    if let Some(route) = route {
        attributes.push(KeyValue::new("http.route", route));
    }
    if let Some(agent) = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
    {
        attributes.push(KeyValue::new("user_agent.original", agent.to_owned()));
    }
    span.set_attributes(attributes);
}

const TRACEPARENT: header::HeaderName = header::HeaderName::from_static("traceparent");
const TRACESTATE: header::HeaderName = header::HeaderName::from_static("tracestate");

/// A request's headers, as the OpenTelemetry propagator reads them.
struct Headers<'a>(&'a header::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // The propagator's two names are known: they need no parsing.
        let value = match key {
            "traceparent" => self.0.get(TRACEPARENT),
            "tracestate" => self.0.get(TRACESTATE),
            other => self.0.get(other),
        };
        value.and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|name| name.as_str()).collect()
    }
}

/// Visible ASCII, 1 to 128 bytes: safe to log and to pass on.
fn acceptable(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.iter().all(|b| b.is_ascii_graphic())
}

fn new_id() -> HeaderValue {
    let id = uuid::Uuid::new_v4();
    HeaderValue::from_str(
        id.hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer()),
    )
    .expect("a UUID is a valid header value")
}
