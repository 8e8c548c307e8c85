//! One span per database query. sqlx reports every statement it ran as a
//! `sqlx::query` event with its text and duration; this layer turns each
//! into a client span under the span of the work that ran it, named and
//! attributed as OpenTelemetry's database conventions say. Queries of work
//! whose trace is not sampled cost no span.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt as _, Tracer as _};
use opentelemetry_sdk::trace::SdkTracer;
use tracing::dispatcher::{Dispatch, WeakDispatch};
use tracing::field::{Field, Visit};
use tracing_subscriber::Registry;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan as _;

use app_kernel::db::Backend;

pub struct Queries {
    tracer: SdkTracer,
    /// `db.system.name`.
    system: &'static str,
}

impl Queries {
    pub fn new(tracer: SdkTracer, backend: Backend) -> Self {
        let system = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        };
        Self { tracer, system }
    }
}

/// The process's subscriber, to find the span a query runs in.
static DISPATCH: OnceLock<WeakDispatch> = OnceLock::new();

/// Queries are looked up in `dispatch` from now on; set once, at start.
pub fn register(dispatch: &Dispatch) {
    let _ = DISPATCH.set(dispatch.downgrade());
}

/// The exported span of the work running now: the innermost span the
/// OpenTelemetry layer follows, entered on this thread (sqlx enters the
/// caller's span on the thread that runs a SQLite query).
pub fn current_work() -> Option<opentelemetry::Context> {
    let dispatch = DISPATCH.get()?.upgrade()?;
    let current = dispatch.current_span();
    let registry = dispatch.downcast_ref::<Registry>()?;
    let ids: Vec<_> = registry
        .span(current.id()?)?
        .scope()
        .map(|span| span.id())
        .collect();
    ids.iter()
        .find_map(|id| tracing_opentelemetry::get_otel_context(id, &dispatch))
}

/// Whether the work running now is sampled: only then is a query described.
pub fn sampled() -> bool {
    current_work().is_some_and(|cx| cx.span().span_context().is_sampled())
}

impl<S: tracing::Subscriber> Layer<S> for Queries {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let Some(parent) = current_work() else {
            return;
        };
        if !parent.span().span_context().is_sampled() {
            return;
        }
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
            KeyValue::new("db.query.summary", summary.clone()),
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
    let mut operation = None;
    let mut want_table = false;
    let mut start = None;
    let words = sql.char_indices().chain([(sql.len(), ' ')]);
    for (at, c) in words {
        let boundary = c.is_whitespace() || c == '(' || c == ')' || c == ',' || c == ';';
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
            let keyword = word.to_ascii_uppercase();
            want_table = matches!(keyword.as_str(), "FROM" | "INTO" | "UPDATE");
            operation.get_or_insert(keyword);
        }
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
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
