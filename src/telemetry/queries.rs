//! One span per database query. sqlx reports every statement it ran as a
//! `sqlx::query` event with its text and duration; this layer turns each
//! into a client span under the sampled span of the work that ran it, named
//! and attributed as OpenTelemetry's database conventions say.
//!
//! It is also the subscriber's filter while spans are exported, RUST_LOG's
//! with two additions: the requests' spans, always (their extensions hold
//! the sampled span, see [`follow`]), and sqlx's queries, when the work
//! running them is sampled. It must be a global filter: under a per-layer
//! filter, `tracing::enabled!` says yes to whatever one layer might want,
//! and sqlx would describe every query (a summary, its text, an event) only
//! for the layers to drop it.

use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _};
use opentelemetry_sdk::trace::SdkTracer;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};
use tracing_subscriber::filter::{EnvFilter, LevelFilter};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use app_kernel::db::Backend;

/// The target of sqlx's query events.
const QUERY: &str = "sqlx::query";
/// The target of the requests' spans, which the request middleware makes.
pub const REQUEST_TARGET: &str = "app::http::request";

pub struct Queries {
    tracer: SdkTracer,
    /// `db.system.name`.
    system: &'static str,
    /// What RUST_LOG lets through.
    logs: EnvFilter,
    /// Whether RUST_LOG might show sqlx's queries (at DEBUG) itself.
    queries_logged: bool,
}

impl Queries {
    pub fn new(tracer: SdkTracer, backend: Backend, logs: EnvFilter) -> Self {
        let system = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        };
        let queries_logged = logs
            .max_level_hint()
            .is_some_and(|level| level >= LevelFilter::DEBUG);
        Self {
            tracer,
            system,
            logs,
            queries_logged,
        }
    }
}

/// The exported, sampled span of some work, kept with its `tracing` span.
struct Work(opentelemetry::Context);

/// Marks `span` as the `tracing` span of the sampled work `trace`: the
/// queries run within it become spans under `trace`.
pub fn follow(span: &tracing::Span, trace: &opentelemetry::Context) {
    span.with_subscriber(|(id, dispatch)| {
        if let Some(span) = dispatch
            .downcast_ref::<tracing_subscriber::Registry>()
            .and_then(|registry| registry.span(id))
        {
            span.extensions_mut().insert(Work(trace.clone()));
        }
    });
}

/// The sampled work running now, if any: the innermost entered span that
/// [`follow`] marked (sqlx enters the caller's span on the thread that runs
/// a SQLite query).
fn current_work<S>(cx: &Context<'_, S>) -> Option<opentelemetry::Context>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    cx.lookup_current()?
        .scope()
        .find_map(|span| span.extensions().get::<Work>().map(|work| work.0.clone()))
}

/// Whether sampled work is running now: [`current_work`] without the clone.
fn in_work<S>(cx: &Context<'_, S>) -> bool
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    cx.lookup_current().is_some_and(|span| {
        span.scope()
            .any(|span| span.extensions().get::<Work>().is_some())
    })
}

fn is_request(meta: &Metadata<'_>) -> bool {
    meta.is_span() && meta.target() == REQUEST_TARGET
}

impl<S> Layer<S> for Queries
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.target() == QUERY {
            Interest::sometimes()
        } else if is_request(meta) {
            Interest::always()
        } else {
            Layer::<S>::register_callsite(&self.logs, meta)
        }
    }

    fn enabled(&self, meta: &Metadata<'_>, cx: Context<'_, S>) -> bool {
        if meta.target() == QUERY {
            in_work(&cx) || (self.queries_logged && self.logs.enabled(meta, cx))
        } else {
            is_request(meta) || self.logs.enabled(meta, cx)
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        // sqlx reports queries at DEBUG.
        let logs = Layer::<S>::max_level_hint(&self.logs).unwrap_or(LevelFilter::TRACE);
        Some(logs.max(LevelFilter::DEBUG))
    }

    // RUST_LOG may filter by span (`[request{module=ports}]=debug`).
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        self.logs.on_new_span(attrs, id, cx);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, cx: Context<'_, S>) {
        self.logs.on_record(id, values, cx);
    }

    fn on_enter(&self, id: &Id, cx: Context<'_, S>) {
        self.logs.on_enter(id, cx);
    }

    fn on_exit(&self, id: &Id, cx: Context<'_, S>) {
        self.logs.on_exit(id, cx);
    }

    fn on_close(&self, id: Id, cx: Context<'_, S>) {
        self.logs.on_close(id, cx);
    }

    fn on_event(&self, event: &Event<'_>, cx: Context<'_, S>) {
        if event.metadata().target() != QUERY {
            return;
        }
        let Some(parent) = current_work(&cx) else {
            return;
        };
        let mut query = Query::default();
        event.record(&mut query);
        let Some(elapsed) = query.elapsed else {
            return;
        };
        // The whole statement when sqlx shortened its summary.
        let text = if query.statement.trim().is_empty() {
            query.summary
        } else {
            query.statement.trim().to_owned()
        };
        let (operation, collection) = summarize(&text);
        let summary = match collection {
            Some(collection) => format!("{operation} {collection}"),
            None => operation.clone(),
        };
        let mut attributes = vec![
            KeyValue::new("db.system.name", self.system),
            KeyValue::new("db.operation.name", operation),
        ];
        if let Some(collection) = collection {
            attributes.push(KeyValue::new("db.collection.name", collection.to_owned()));
        }
        if let Some(rows) = query.rows_returned.filter(|&rows| rows > 0) {
            attributes.push(KeyValue::new("db.response.returned_rows", rows as i64));
        }
        attributes.push(KeyValue::new("db.query.text", text));
        let end = SystemTime::now();
        let mut span = self
            .tracer
            .span_builder(summary)
            .with_kind(SpanKind::Client)
            .with_start_time(end - elapsed)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &parent);
        span.end_with_timestamp(end);
    }
}

/// The fields of sqlx's query event.
#[derive(Default)]
struct Query {
    summary: String,
    statement: String,
    rows_returned: Option<u64>,
    elapsed: Option<Duration>,
}

impl Visit for Query {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.clone_into(&mut self.statement),
            _ => {}
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "rows_returned" {
            self.rows_returned = Some(value);
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        if field.name() == "elapsed_secs" {
            self.elapsed = Duration::try_from_secs_f64(value).ok();
        }
    }

    fn record_debug(&mut self, _: &Field, _: &dyn std::fmt::Debug) {}
}

/// The operation of a statement (`SELECT`) and the table it names first
/// outside parentheses: after `FROM`, `INTO` or `UPDATE`.
fn summarize(sql: &str) -> (String, Option<&str>) {
    let mut depth = 0usize;
    let mut operation: Option<String> = None;
    let mut want_table = false;
    let mut start = None;
    // Bytes, not characters: every boundary is ASCII, so the words between
    // boundaries are whole characters, and a query is summarized in a pass.
    let bytes = sql.as_bytes();
    for at in 0..=bytes.len() {
        let byte = bytes.get(at).copied().unwrap_or(b' ');
        let boundary = byte.is_ascii_whitespace() || matches!(byte, b'(' | b')' | b',' | b';');
        if !boundary {
            if depth == 0 && start.is_none() {
                start = Some(at);
            }
            continue;
        }
        if let Some(from) = start.take() {
            let word = &sql[from..at];
            if want_table {
                return (operation.unwrap_or_default(), Some(word));
            }
            want_table = ["FROM", "INTO", "UPDATE"]
                .iter()
                .any(|keyword| word.eq_ignore_ascii_case(keyword));
            if operation.is_none() {
                operation = Some(word.to_ascii_uppercase());
            }
        }
        match byte {
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    (operation.unwrap_or_default(), None)
}

#[cfg(test)]
mod tests {
    use super::summarize;

    #[test]
    fn a_statement_is_summarized_by_its_operation_and_main_table() {
        let cases = [
            (
                "select id, coalesce((select json_agg(port_id) from laptops.laptop_ports where laptop_id = laptops.id), '[]'::json) as port_ids from laptops.laptops where id = $1",
                ("SELECT", Some("laptops.laptops")),
            ),
            (
                "insert into laptop_ports (laptop_id, port_id) select ?, value from json_each(?)",
                ("INSERT", Some("laptop_ports")),
            ),
            (
                "update ports set name = ? where id = ?",
                ("UPDATE", Some("ports")),
            ),
            (
                "DELETE FROM ports.ports WHERE id = $1",
                ("DELETE", Some("ports.ports")),
            ),
            ("BEGIN", ("BEGIN", None)),
            ("", ("", None)),
        ];
        for (sql, (operation, table)) in cases {
            let (got_operation, got_table) = summarize(sql);
            assert_eq!(
                (got_operation.as_str(), got_table),
                (operation, table),
                "{sql}"
            );
        }
    }
}
