//! Logging, JSON for machines and one line per event for people, and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` asks for them, OpenTelemetry traces.

mod queries;
mod traces;

use std::io::IsTerminal as _;

use tracing::Level;
use tracing::Metadata;
use tracing::subscriber::Interest;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::filter::{EnvFilter, dynamic_filter_fn, filter_fn};
use tracing_subscriber::layer::{self, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Layer as _, Registry};

use crate::cli::LogFormat;
use app_kernel::db::Backend;

pub use traces::Traces;

/// What must outlive the work: it flushes spans and log lines when dropped.
pub struct Telemetry {
    // Spans first: their exporter may still log.
    _traces: Option<Traces>,
    _logs: WorkerGuard,
}

/// What a process exports its spans as, when it does.
pub struct Service {
    /// `service.name`, unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` name one.
    pub name: String,
    /// The database its queries go to.
    pub backend: Backend,
}

/// Installs the global subscriber; `RUST_LOG` sets the log levels (default
/// `info`). `traced` is the service of a process that may export spans: it
/// does if the standard `OTEL_*` variables ask for it.
///
/// Lines are written to stderr by a thread of their own, so a request never
/// waits on the terminal or the log collector. A full buffer slows callers
/// down rather than dropping lines. Spans are exported in batches by a
/// thread of their own too, and dropped (and counted) rather than waited for.
pub fn init(format: LogFormat, traced: Option<Service>) -> anyhow::Result<Telemetry> {
    let (writer, logs) = NonBlockingBuilder::default()
        .lossy(false)
        // The default 128,000 lines would reserve megabytes up front.
        .buffered_lines_limit(8_192)
        .finish(std::io::stderr());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer()
        // Colours for a terminal, plain text for files and collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let lines = match format {
        LogFormat::Json => lines
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => lines.boxed(),
    };
    let traces = match traced {
        Some(service) => Traces::from_env(&service)?,
        None => None,
    };
    // Spans of the app's own work become OpenTelemetry spans; each query
    // sqlx reports becomes a database span under the request's.
    let spans = traces.as_ref().map(|traces| {
        tracing_opentelemetry::layer()
            .with_tracer(traces.tracer())
            .with_location(false)
            .with_target(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            // Nothing reads the current context: spans are found through
            // the registry (see queries), so entering a span stays cheap.
            .with_context_activation(false)
            .with_filter(filter_fn(|meta| {
                meta.is_span() && *meta.level() <= Level::INFO
            }))
    });
    // sqlx describes a query only when someone listens: here, only when
    // the work that runs it is sampled.
    let queries = traces.as_ref().map(|traces| {
        let sampled = |_: &Metadata<'_>, _: &layer::Context<'_, _>| queries::sampled();
        let queries = dynamic_filter_fn(sampled).with_callsite_filter(|meta| {
            if meta.target() == "sqlx::query" {
                Interest::sometimes()
            } else {
                Interest::never()
            }
        });
        traces.queries().with_filter(queries)
    });
    let _ = Registry::default()
        .with(lines.with_filter(filter))
        .with(spans)
        .with(queries)
        .try_init();
    tracing::dispatcher::get_default(queries::register);
    Ok(Telemetry {
        _traces: traces,
        _logs: logs,
    })
}
