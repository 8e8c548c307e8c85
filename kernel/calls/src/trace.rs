//! The request a piece of work serves, for the calls it makes to peers: its
//! `X-Request-Id`, its caller's credentials and its place in a W3C trace
//! (`traceparent`, `tracestate`) travel with every call, so one request's
//! log lines, and its spans when they are exported, can be followed across
//! processes.
//!
//! The request middleware sets it for the task that serves the request;
//! [`Context::current`] reads it anywhere below, without threading it through
//! every signature. The propagator is OpenTelemetry's global one, which the
//! binary sets to the W3C trace context's at start (so this layer needs
//! only OpenTelemetry's API, not its SDK); spans are made only when the
//! process exports them ([`export_with`]): otherwise a call carries the
//! caller's trace on unchanged, and nothing is recorded.

use std::future::Future;
use std::sync::OnceLock;

use opentelemetry::global::{self, BoxedTracer};
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};

tokio::task_local! {
    static CURRENT: Context;
}

/// The tracer of the spans this process exports, if it exports any.
static TRACER: OnceLock<BoxedTracer> = OnceLock::new();

/// Spans are made and exported with `tracer` from now on; set once, at start.
pub fn export_with(tracer: BoxedTracer) {
    let _ = TRACER.set(tracer);
}

/// The tracer of exported spans, or `None`: then no span is made.
pub fn tracer() -> Option<&'static BoxedTracer> {
    TRACER.get()
}

/// The request id, trace and credentials of the request being served.
#[derive(Debug, Clone)]
pub struct Context {
    pub request_id: String,
    /// Where the request sits in its trace: its own server span when spans
    /// are exported, else its caller's span, or a new trace's if it has none.
    pub trace: opentelemetry::Context,
    /// The caller's `Authorization`, passed on to the peers called on its
    /// behalf, so they check the caller, not this process.
    pub authorization: Option<Credentials>,
}

/// A credential, never shown: `Debug` prints no part of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials(pub String);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(..)")
    }
}

impl Context {
    pub fn new(request_id: String, trace: opentelemetry::Context) -> Self {
        Self {
            request_id,
            trace,
            authorization: None,
        }
    }

    /// The context of the request this task serves, if it serves one.
    pub fn current() -> Option<Context> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `work` with this context as the current one.
    pub async fn scope<F: Future>(self, work: F) -> F::Output {
        CURRENT.scope(self, work).await
    }
}

/// The caller's trace from its `traceparent` and `tracestate` headers; an
/// empty context when they are missing or invalid.
pub fn extract(headers: &dyn Extractor) -> opentelemetry::Context {
    global::get_text_map_propagator(|propagator| propagator.extract(headers))
}

/// `parent` if it holds a valid trace, else a new trace of its own, not
/// sampled: what a process that exports no spans continues.
pub fn continued(parent: opentelemetry::Context) -> opentelemetry::Context {
    if parent.span().span_context().is_valid() {
        return parent;
    }
    // Random, as the W3C trace context asks: a version 4 UUID's 122 random
    // bits, never all zero.
    let random = || uuid::Uuid::new_v4().as_u128();
    parent.with_remote_span_context(SpanContext::new(
        TraceId::from(random()),
        SpanId::from(random() as u64 | 1),
        TraceFlags::default(),
        false,
        TraceState::default(),
    ))
}

/// The `traceparent` of the request this task serves, if it serves one.
pub fn traceparent() -> Option<String> {
    let context = Context::current()?;
    let span = context.trace.span();
    let span = span.span_context();
    span.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span.trace_id(),
            span.span_id(),
            span.trace_flags().to_u8()
        )
    })
}

/// Writes the `traceparent` (and `tracestate`) of `trace` into `headers`.
pub fn inject(trace: &opentelemetry::Context, headers: &mut reqwest::header::HeaderMap) {
    global::get_text_map_propagator(|propagator| {
        propagator.inject_context(trace, &mut opentelemetry_http::HeaderInjector(headers));
    });
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn headers(traceparent: &str) -> HashMap<String, String> {
        // As the binary does at start.
        global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        headers_of(traceparent)
    }

    fn headers_of(traceparent: &str) -> HashMap<String, String> {
        HashMap::from([("traceparent".to_owned(), traceparent.to_owned())])
    }

    fn sent(trace: &opentelemetry::Context) -> String {
        let mut headers = reqwest::header::HeaderMap::new();
        inject(trace, &mut headers);
        headers["traceparent"].to_str().unwrap().to_owned()
    }

    #[test]
    fn a_valid_traceparent_is_passed_on_when_no_span_is_made() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let trace = continued(extract(&headers(incoming)));
        assert_eq!(
            trace.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sent(&trace), incoming);
    }

    #[test]
    fn a_broken_traceparent_starts_a_new_trace() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let trace = continued(extract(&headers(bad)));
            let id = trace.span().span_context().trace_id().to_string();
            assert_ne!(id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
            let outgoing = sent(&trace);
            assert!(outgoing.starts_with(&format!("00-{id}-")), "{outgoing}");
            assert!(outgoing.ends_with("-00"), "not sampled: {outgoing}");
        }
    }
}
