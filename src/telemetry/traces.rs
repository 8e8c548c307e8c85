//! OpenTelemetry traces over OTLP/HTTP (protobuf), configured by the
//! standard variables: `OTEL_EXPORTER_OTLP_ENDPOINT` (or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) turns them on; `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` and its argument,
//! `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT` and `OTEL_BSP_*`
//! are read by the SDK as they are everywhere else.
//!
//! Spans are exported in batches by a thread of their own; a full queue
//! drops spans rather than slowing a request. What is handed to export and
//! what arrives are counted: `app_trace_spans_ended_total`, and
//! `app_trace_spans_exported_total{outcome="exported"|"failed"}`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracer, SdkTracerProvider, Span, SpanData, SpanExporter, SpanProcessor,
};

use super::queries::Queries;
use app_kernel::db::Backend;
use tracing_subscriber::EnvFilter;

/// What a process exports its spans as, when it does.
pub struct Service {
    /// `service.name`, unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` name one.
    pub name: String,
    /// The database its queries go to.
    pub backend: Backend,
}

/// How long shutdown waits for the last spans to leave.
const FLUSH_ON_EXIT: Duration = Duration::from_secs(5);

/// The provider of exported spans; shut down (the last batch flushed) on drop.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    backend: Backend,
}

impl Traces {
    /// The traces the `OTEL_*` variables ask for, or `None` when they ask
    /// for none (no endpoint, `OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
    pub fn from_env(service: &Service) -> anyhow::Result<Option<Traces>> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            return Ok(None);
        }
        match var("OTEL_TRACES_EXPORTER").as_deref() {
            None | Some("otlp") => {}
            Some("none") => return Ok(None),
            Some(other) => bail!("OTEL_TRACES_EXPORTER={other}: only otlp (or none) is built in"),
        }
        let Some(endpoint) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
        else {
            return Ok(None);
        };
        let protocol = var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(protocol) = protocol.filter(|p| p != "http/protobuf") {
            bail!("OTLP protocol {protocol}: only http/protobuf is built in");
        }
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            bail!("OTLP endpoint {endpoint}: expected http://host:port or https://host:port");
        }
        let exporter =
            super::otlp::OtlpHttp::from_env(var).context("cannot set up the OTLP span exporter")?;
        let batches = BatchSpanProcessor::builder(Counted::new(exporter)).build();
        let provider = SdkTracerProvider::builder()
            .with_resource(resource(&service.name))
            .with_span_processor(Ended(batches))
            .build();
        let scope = InstrumentationScope::builder("app")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let tracer = provider.tracer_with_scope(scope);
        app_kernel::trace::export_with(opentelemetry::global::BoxedTracer::new(Box::new(
            tracer.clone(),
        )));
        Ok(Some(Traces {
            provider,
            tracer,
            backend: service.backend,
        }))
    }

    /// The layer that turns the queries sqlx reports into database spans,
    /// and lets through what `logs` does.
    pub fn queries(&self, logs: EnvFilter) -> Queries {
        Queries::new(self.tracer.clone(), self.backend, logs)
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        let _ = self.provider.shutdown_with_timeout(FLUSH_ON_EXIT);
    }
}

/// The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, the
/// SDK's own), named `default_name` if neither variable names the service.
fn resource(default_name: &str) -> Resource {
    let detected = Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::new("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    let mut resource = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if !named {
        resource = resource.with_service_name(default_name.to_owned());
    }
    resource.build()
}

/// The batch processor, counting the spans handed to it.
#[derive(Debug)]
struct Ended(BatchSpanProcessor);

impl SpanProcessor for Ended {
    fn on_start(&self, span: &mut Span, cx: &opentelemetry::Context) {
        self.0.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        metrics::counter!("app_trace_spans_ended_total").increment(1);
        self.0.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.0.set_resource(resource);
    }
}

/// Lowers the priority of the thread that exports (the batch processor's,
/// the only one that calls the exporter) below the workers', once, so
/// encoding and sending a batch waits for the requests that are being
/// served rather than the other way round.
fn yield_to_requests() {
    thread_local! {
        static LOWERED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if !LOWERED.replace(true) {
        // SAFETY: setpriority reads no memory; on Linux, a thread id names
        // that one thread.
        let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
    }
}

/// An exporter that counts what it delivers and what it loses, and says
/// once when export starts failing and once when it works again.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    failing: AtomicBool,
}

impl<E> Counted<E> {
    fn new(inner: E) -> Self {
        Self {
            inner,
            failing: AtomicBool::new(false),
        }
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        yield_to_requests();
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        let outcome = if result.is_ok() { "exported" } else { "failed" };
        metrics::counter!("app_trace_spans_exported_total", "outcome" => outcome).increment(spans);
        let was_failing = self.failing.swap(result.is_err(), Ordering::Relaxed);
        match &result {
            Err(error) if !was_failing => tracing::warn!(
                %error,
                "spans cannot be exported: they are dropped, and counted in app_trace_spans_exported_total{{outcome=\"failed\"}}"
            ),
            Ok(()) if was_failing => tracing::info!("spans are exported again"),
            _ => {}
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
