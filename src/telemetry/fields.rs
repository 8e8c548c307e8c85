//! Span and event fields as one line shows them, `name="value"`, written
//! straight to the line when there is no colour to add; and a span's fields
//! in JSON lines, written as one object without building a map first.
//!
//! tracing-subscriber's own formatter styles every field name, as a no-op
//! style when the line has no colour, and writes every string through
//! `Debug`, which looks at it one character at a time. A request's span has
//! five fields, formatted once per request: that took about a sixth of a
//! cached GET's instructions. This writes the same bytes for the fields a
//! request has, and hands everything else (colour, the message, errors,
//! `log` metadata, raw identifiers) to tracing-subscriber's formatter.
//!
//! In JSON lines, tracing-subscriber keeps a span's fields as the text of a
//! JSON object, parsed again for each line the span is shown on. Its own
//! formatter gathers the fields into a map of owned JSON values first, which
//! made the span cost 40% more than in one-line logs. [`Json`] writes the
//! object directly; what a line shows is the same.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing_subscriber::field::{MakeVisitor, RecordFields, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::{FormatFields, FormattedFields};

/// The fields' format of one-line logs; with colour, tracing-subscriber's.
#[derive(Debug, Default)]
pub struct Fields;

impl<'a> MakeVisitor<Writer<'a>> for Fields {
    type Visitor = Visitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> Self::Visitor {
        Visitor {
            writer,
            is_empty: true,
            result: Ok(()),
        }
    }
}

/// Writes one span's or event's fields, separated by spaces.
pub struct Visitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Whether a field is written here as `name=value`: the rest, and every
    /// field of a coloured line, are tracing-subscriber's to write.
    fn plain(&self, name: &str) -> bool {
        !self.writer.has_ansi_escapes()
            && name != "message"
            && !name.starts_with("log.")
            && !name.starts_with("r#")
    }

    /// `name=`, after a space if a field came before.
    fn name(&mut self, name: &str) -> fmt::Result {
        if !std::mem::take(&mut self.is_empty) {
            self.writer.write_char(' ')?;
        }
        self.writer.write_str(name)?;
        self.writer.write_char('=')
    }

    /// The field as tracing-subscriber writes it.
    fn delegate(&mut self, field: &Field, visit: impl FnOnce(&mut DefaultVisitor<'_>)) {
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        visit(&mut default);
        self.result = default.finish();
        // It writes every field but `log` metadata.
        self.is_empty &= field.name().starts_with("log.");
    }
}

/// Whether `Debug` would write the string as it is, between quotes.
fn unescaped(value: &str) -> bool {
    value
        .bytes()
        .all(|byte| (b' '..=b'~').contains(&byte) && byte != b'"' && byte != b'\\')
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if self.result.is_err() {
            return;
        }
        if !self.plain(field.name()) {
            return self.delegate(field, |default| default.record_str(field, value));
        }
        self.result = self.name(field.name()).and_then(|()| {
            if unescaped(value) {
                self.writer.write_char('"')?;
                self.writer.write_str(value)?;
                self.writer.write_char('"')
            } else {
                write!(self.writer, "{value:?}")
            }
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if self.result.is_err() {
            return;
        }
        self.delegate(field, |default| default.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if self.result.is_err() {
            return;
        }
        if !self.plain(field.name()) {
            return self.delegate(field, |default| default.record_debug(field, value));
        }
        self.result = self
            .name(field.name())
            .and_then(|()| write!(self.writer, "{value:?}"));
    }
}

impl VisitOutput<fmt::Result> for Visitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for Visitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

/// A span's fields in JSON lines: one object, `{"name":value,...}`.
#[derive(Debug, Default)]
pub struct Json;

impl<'w> FormatFields<'w> for Json {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        writer.write_char('{')?;
        let mut object = Object {
            writer: writer.by_ref(),
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut object);
        object.result?;
        writer.write_char('}')
    }

    /// Fields recorded after the span began: the object is read, the new
    /// fields replace any of the same name, and it is written again. Spans
    /// seldom do this, and tracing-subscriber's formatter does the same.
    fn add_fields(
        &self,
        current: &'w mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        type Map = serde_json::Map<String, serde_json::Value>;
        let mut added = String::new();
        self.format_fields(Writer::new(&mut added), fields)?;
        // A span's fields are an object from its start, `{}` when it has none.
        let mut object: Map = serde_json::from_str(&current.fields).map_err(|_| fmt::Error)?;
        object.extend(serde_json::from_str::<Map>(&added).map_err(|_| fmt::Error)?);
        current.fields = serde_json::to_string(&object).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

/// Writes fields as the members of a JSON object, its braces left out.
struct Object<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: fmt::Result,
}

impl Object<'_> {
    /// `"name":`, after a comma if a member came before.
    fn name(&mut self, name: &str) -> fmt::Result {
        if !std::mem::take(&mut self.is_empty) {
            self.writer.write_char(',')?;
        }
        self.string(|text| text.write_str(name))?;
        self.writer.write_char(':')
    }

    /// A JSON string of what `write` writes.
    fn string(&mut self, write: impl FnOnce(&mut Escaped<'_, '_>) -> fmt::Result) -> fmt::Result {
        self.writer.write_char('"')?;
        write(&mut Escaped(&mut self.writer))?;
        self.writer.write_char('"')
    }

    fn member(&mut self, field: &Field, value: impl FnOnce(&mut Self) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.name(field.name()).and_then(|()| value(self));
        }
    }
}

impl Visit for Object<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.member(field, |object| object.string(|text| text.write_str(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.member(field, |object| write!(object.writer, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.member(field, |object| write!(object.writer, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.member(field, |object| write!(object.writer, "{value}"));
    }

    // Fractions and bytes are serde_json's to write: it writes what no JSON
    // number can hold (NaN, infinities) as null. Integers wider than 64 bits
    // are strings, as tracing-subscriber writes them.
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.member(field, |object| json(object, &value));
    }

    fn record_bytes(&mut self, field: &Field, value: &[u8]) {
        self.member(field, |object| json(object, &value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let name = field.name();
        // `log` metadata is the line's own, and tracing-subscriber shows a
        // raw identifier without its `r#`.
        if name.starts_with("log.") || self.result.is_err() {
            return;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        self.result = self
            .name(name)
            .and_then(|()| self.string(|text| write!(text, "{value:?}")));
    }
}

/// What serde_json writes for `value`.
fn json(object: &mut Object<'_>, value: &impl serde::Serialize) -> fmt::Result {
    let text = serde_json::to_string(value).map_err(|_| fmt::Error)?;
    object.writer.write_str(&text)
}

/// The inside of a JSON string: quotes, backslashes and control characters
/// escaped.
struct Escaped<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Escaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0..0x20 => "",
                _ => continue,
            };
            self.0.write_str(&text[plain..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain = at + 1;
        }
        self.0.write_str(&text[plain..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::FormatFields;
    use tracing_subscriber::fmt::format::DefaultFields;

    use super::*;

    /// Where a test's subscriber writes its lines.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        /// What `subscriber`, writing here, writes for `emit`.
        fn lines(&self, subscriber: impl tracing::Subscriber + Send + Sync, emit: fn()) -> String {
            tracing::subscriber::with_default(subscriber, emit);
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    /// The lines a one-line log with these fields writes for `emit`.
    fn lines<F>(fields: F, ansi: bool, emit: fn()) -> String
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let sink = Sink::default();
        let written = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(ansi)
            .without_time()
            .with_writer(move || written.clone())
            .fmt_fields(fields)
            .finish();
        sink.lines(subscriber, emit)
    }

    /// The JSON lines `init` writes for `emit`, a span's fields written by `fields`.
    fn json_lines<F>(fields: F, emit: fn()) -> String
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let sink = Sink::default();
        let written = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .without_time()
            .with_writer(move || written.clone())
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .fmt_fields(fields)
            .finish();
        sink.lines(subscriber, emit)
    }

    #[derive(Debug)]
    struct Failure(Option<Box<Failure>>);
    impl fmt::Display for Failure {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("failed")
        }
    }
    impl std::error::Error for Failure {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.0.as_deref().map(|e| e as _)
        }
    }

    fn request() {
        let span = tracing::info_span!(
            "request",
            request_id = "0af7651916cd43dd",
            trace_id = %"4bf92f3577b34da6a3ce929d0e0e4736",
            module = Some("laptops"),
            method = "GET",
            path = "/api/v1/laptops/7",
        );
        span.in_scope(|| tracing::info!(status = 200u16, micros = 41u64, "handled"));
    }

    #[test]
    fn lines_are_what_tracing_subscriber_writes() {
        let events: [fn(); 7] = [
            request,
            // Each string one character away from being written as it is.
            || {
                tracing::info!(
                    quote = "a\"b",
                    backslash = "a\\b",
                    tab = "a\tb",
                    delete = "a\u{7f}b",
                    accent = "caf\u{e9}",
                    escape = "\u{1b}[31m",
                    edges = " ~",
                )
            },
            || {
                let span =
                    tracing::info_span!("odd", path = "/a b\"c\\d\u{e9}\n\u{1b}[31m", empty = "");
                span.in_scope(|| tracing::warn!(absent = None::<&str>, "shown {}", "\u{1b}[2J"));
            },
            || tracing::info!(micros = -3i64, ok = true, ratio = 0.5, bytes = ?b"ab"),
            || tracing::info!(r#type = "laptop", id = ?"x\"y", "log.target" = "rustls", after = 1),
            || {
                let error = Failure(Some(Box::new(Failure(None))));
                tracing::error!(
                    error = &error as &(dyn std::error::Error + 'static),
                    then = "x"
                )
            },
            || {
                let span =
                    tracing::info_span!("later", first = "a", second = tracing::field::Empty);
                span.record("second", "b c");
                span.in_scope(|| tracing::info!(message = "only a message"));
            },
        ];
        for emit in events {
            for ansi in [false, true] {
                let ours = lines(Fields, ansi, emit);
                assert_eq!(ours, lines(DefaultFields::new(), ansi, emit), "ansi {ansi}");
                assert!(ours.ends_with('\n'));
            }
        }
        assert_eq!(
            lines(Fields, false, request),
            format!(
                " INFO request{{request_id=\"0af7651916cd43dd\" trace_id=4bf92f3577b34da6a3ce929d0e0e4736 \
                 module=\"laptops\" method=\"GET\" path=\"/api/v1/laptops/7\"}}: {}: handled status=200 micros=41\n",
                module_path!()
            )
        );
    }

    #[test]
    fn json_lines_show_a_span_as_tracing_subscriber_does() {
        let spans: [fn(); 5] = [
            request,
            || {
                let span = tracing::info_span!(
                    "odd",
                    quote = "a\"b",
                    backslash = "a\\b",
                    controls = "\n\r\t\u{0}\u{1f}\u{7f}",
                    unicode = "caf\u{e9} \u{1f600}",
                    r#type = "laptop",
                    "log.target" = "rustls",
                    id = ?"x\"y",
                    "r#raw" = ?1,
                    "log.file" = ?"main.rs",
                    "odd \"name\"" = 1,
                );
                span.in_scope(|| tracing::warn!("inside"));
            },
            || {
                let error = Failure(Some(Box::new(Failure(None))));
                let span = tracing::info_span!(
                    "numbers",
                    negative = -3i64,
                    large = u64::MAX,
                    wide = i128::MIN,
                    wider = u128::MAX,
                    ratio = 0.1,
                    nan = f64::NAN,
                    infinite = f64::INFINITY,
                    ok = true,
                    bytes = &b"ab"[..],
                    error = &error as &(dyn std::error::Error + 'static),
                );
                span.in_scope(|| tracing::info!(status = 200u16, "handled"));
            },
            || {
                let span = tracing::info_span!(
                    "later",
                    first = "a",
                    second = tracing::field::Empty,
                    third = tracing::field::Empty
                );
                span.in_scope(|| tracing::info!("before"));
                span.record("second", "b c");
                span.in_scope(|| tracing::info!("between"));
                span.record("first", 2);
                span.record("third", "\"d\"");
                span.in_scope(|| tracing::info!("after"));
            },
            || {
                let span = tracing::info_span!("bare");
                span.in_scope(|| tracing::info!("no fields"));
                span.record("nothing", "here");
                span.in_scope(|| tracing::info!("still none"));
            },
        ];
        for emit in spans {
            let ours = json_lines(Json, emit);
            assert_eq!(
                ours,
                json_lines(tracing_subscriber::fmt::format::JsonFields::new(), emit)
            );
            assert!(ours.ends_with('\n'));
        }
        let line: serde_json::Value = serde_json::from_str(&json_lines(Json, request)).unwrap();
        assert_eq!(
            line["span"],
            serde_json::json!({
                "name": "request",
                "request_id": "0af7651916cd43dd",
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
                "module": "laptops",
                "method": "GET",
                "path": "/api/v1/laptops/7",
            })
        );
    }
}
