//! Span and event fields as one line shows them, `name="value"`, written
//! straight to the line when there is no colour to add.
//!
//! tracing-subscriber's own formatter styles every field name, as a no-op
//! style when the line has no colour, and writes every string through
//! `Debug`, which looks at it one character at a time. A request's span has
//! five fields, formatted once per request: that took about a sixth of a
//! cached GET's instructions. This writes the same bytes for the fields a
//! request has, and hands everything else (colour, the message, errors,
//! `log` metadata, raw identifiers) to tracing-subscriber's formatter.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

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

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::FormatFields;
    use tracing_subscriber::fmt::format::DefaultFields;

    use super::*;

    /// The lines a one-line log with these fields writes for `emit`.
    fn lines<F>(fields: F, ansi: bool, emit: fn()) -> String
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
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
        let sink = Sink::default();
        let written = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(ansi)
            .without_time()
            .with_writer(move || written.clone())
            .fmt_fields(fields)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
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
}
