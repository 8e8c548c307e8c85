//! Logging, JSON for machines and one line per event for people, and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` asks for them, OpenTelemetry traces.

mod fields;
mod otlp;
mod queries;
mod traces;

use std::io::IsTerminal as _;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_log::AsLog as _;
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{Layer as _, Registry};

pub use queries::{REQUEST_TARGET, follow};
pub use traces::{Service, Traces};

/// What must outlive the work: it flushes spans and log lines when dropped.
pub struct Telemetry {
    // Spans first: their exporter may still log.
    _traces: Option<Traces>,
    _logs: WorkerGuard,
}

/// How log lines are written: JSON objects, one per line, for collectors;
/// or text for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
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
    let shown = logs_filter();
    let logged = shown.max_level_hint().unwrap_or(LevelFilter::TRACE);
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
            .fmt_fields(fields::Json)
            .boxed(),
        LogFormat::Pretty => lines.fmt_fields(fields::Fields).boxed(),
    };
    let traces = match traced {
        Some(service) => Traces::from_env(&service)?,
        None => None,
    };
    let installed = match &traces {
        // Each query sqlx reports becomes a database span under the sampled
        // request's; that layer filters for every layer (see queries).
        Some(traces) => tracing::subscriber::set_global_default(
            Registry::default()
                .with(lines.with_filter(shown))
                .with(traces.queries(logs_filter())),
        ),
        // Lines alone: one filter for the whole subscriber, which spares
        // every span it refuses the per-layer bookkeeping.
        None => {
            tracing::subscriber::set_global_default(Registry::default().with(lines).with(shown))
        }
    };
    if installed.is_ok() {
        // Records of crates that log with `log` (rustls, redis), at the
        // levels RUST_LOG shows: below them, `log` drops a record before
        // building it.
        let _ = tracing_log::LogTracer::builder()
            .with_max_level(logged.as_log())
            .init();
    }
    Ok(Telemetry {
        _traces: traces,
        _logs: logs,
    })
}

/// What RUST_LOG asks for, `info` by default.
fn logs_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
}
