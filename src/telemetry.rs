//! Logging: JSON for machines, one line per event for people.

use std::io::IsTerminal as _;

use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

use crate::cli::LogFormat;

/// Installs the global subscriber; `RUST_LOG` sets the levels (default `info`).
///
/// Lines are written to stderr by a thread of their own, so a request never
/// waits on the terminal or the log collector; keep the guard alive until
/// exit, when it flushes what is left. A full buffer slows callers down
/// rather than dropping lines.
pub fn init(format: LogFormat) -> WorkerGuard {
    let (writer, guard) = NonBlockingBuilder::default()
        .lossy(false)
        // The default 128,000 lines would reserve megabytes up front.
        .buffered_lines_limit(8_192)
        .finish(std::io::stderr());
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours for a terminal, plain text for files and collectors.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
    guard
}
