//! OTLP over HTTP (protobuf), encoded straight from the SDK's spans.
//!
//! `opentelemetry-otlp` first copies each batch into the generated protobuf
//! types (every name, key and value a new `String`), then encodes and frees
//! them; here the bytes are written from the spans themselves into buffers
//! that are reused. Measured again against opentelemetry-otlp 0.33 (ADR 8),
//! the library adds 4 points to what 10%-sampled traces cost, so this
//! stays. The wire format is OTLP's `ExportTraceServiceRequest`, checked
//! against the generated types in the tests; the transport does what the
//! specification asks of an exporter: TLS to an `https://` collector (a CA
//! of its own, a client certificate), gzip, and waiting as long as a busy
//! collector's `Retry-After` says.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// How long one export may take, retries included, unless
/// `OTEL_EXPORTER_OTLP_TIMEOUT` says otherwise.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends spans to a collector: `POST {endpoint}` with a protobuf body.
#[derive(Debug)]
pub struct OtlpHttp {
    client: reqwest::blocking::Client,
    endpoint: reqwest::Url,
    headers: reqwest::header::HeaderMap,
    timeout: Duration,
    /// Whether bodies are sent gzipped (`OTEL_EXPORTER_OTLP_COMPRESSION=gzip`).
    gzip: bool,
    /// The resource, encoded once (field 1 of `ResourceSpans`), and its
    /// schema URL.
    resource: (Vec<u8>, Option<String>),
    buffers: Mutex<Buffers>,
}

/// What one export writes into, kept between exports.
#[derive(Debug, Default)]
struct Buffers {
    body: Vec<u8>,
    scope: Vec<u8>,
    span: Vec<u8>,
}

impl OtlpHttp {
    /// The exporter `endpoint` (`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, used
    /// as it is, or `OTEL_EXPORTER_OTLP_ENDPOINT` and `/v1/traces`), with
    /// the headers and timeout of the standard variables.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let endpoint = match var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(endpoint) => endpoint,
            None => {
                let base = var("OTEL_EXPORTER_OTLP_ENDPOINT").context("no OTLP endpoint")?;
                format!("{}/v1/traces", base.trim_end_matches('/'))
            }
        };
        let endpoint = reqwest::Url::parse(&endpoint)
            .with_context(|| format!("OTLP endpoint {endpoint} is not a URL"))?;
        let mut headers = reqwest::header::HeaderMap::new();
        let given = [
            var("OTEL_EXPORTER_OTLP_HEADERS"),
            var("OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
        ];
        for pair in given.iter().flatten().flat_map(|list| list.split(',')) {
            let Some((name, value)) = pair.split_once('=') else {
                anyhow::bail!("OTEL_EXPORTER_OTLP_HEADERS: {pair:?} is not name=value");
            };
            let value = percent_decode(value.trim());
            headers.insert(
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                    .with_context(|| format!("OTLP header name {:?}", name.trim()))?,
                reqwest::header::HeaderValue::from_str(&value).context("an OTLP header value")?,
            );
        }
        let setting = |name: &str| {
            let specific = format!("OTEL_EXPORTER_OTLP_TRACES_{name}");
            let general = format!("OTEL_EXPORTER_OTLP_{name}");
            (var(&specific).map(|value| (specific, value)))
                .or_else(|| var(&general).map(|value| (general, value)))
        };
        let timeout = match setting("TIMEOUT") {
            None => DEFAULT_TIMEOUT,
            Some((name, millis)) => millis
                .parse::<u64>()
                .map(Duration::from_millis)
                .with_context(|| format!("{name}={millis}: expected milliseconds"))?,
        };
        let gzip = match setting("COMPRESSION") {
            None => false,
            Some((_, value)) if value == "gzip" => true,
            Some((_, value)) if value == "none" => false,
            Some((name, value)) => anyhow::bail!("{name}={value}: expected gzip or none"),
        };
        Ok(Self {
            client: client(&setting, timeout)?,
            endpoint,
            headers,
            timeout,
            gzip,
            resource: (Vec::new(), None),
            buffers: Mutex::default(),
        })
    }

    /// Sends `body` (gzipped, if asked), again while the collector says it
    /// is busy or cannot be reached, until the timeout: after as long as
    /// its `Retry-After` says, or a wait that doubles from 100 ms.
    fn send(&self, body: Vec<u8>) -> Result<(), String> {
        let deadline = Instant::now() + self.timeout;
        let mut headers = self.headers.clone();
        headers.insert(
            reqwest::header::CONTENT_TYPE,
            reqwest::header::HeaderValue::from_static("application/x-protobuf"),
        );
        let body = if self.gzip {
            headers.insert(
                reqwest::header::CONTENT_ENCODING,
                reqwest::header::HeaderValue::from_static("gzip"),
            );
            let mut gzipped = GzEncoder::new(Vec::new(), Compression::default());
            gzipped.write_all(&body).map_err(|e| e.to_string())?;
            gzipped.finish().map_err(|e| e.to_string())?
        } else {
            body
        };
        let mut backoff = Duration::from_millis(100);
        loop {
            let sent = self
                .client
                .post(self.endpoint.clone())
                .headers(headers.clone())
                .body(body.clone())
                .send();
            let (retry, asked) = match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => {
                    let status = response.status().as_u16();
                    if !matches!(status, 429 | 502 | 503 | 504) {
                        return Err(format!("the collector answered {status}"));
                    }
                    let asked = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|value| retry_after(value.to_str().ok()?));
                    (format!("the collector answered {status}"), asked)
                }
                Err(error) => (format!("cannot reach the collector: {error}"), None),
            };
            let wait = asked.unwrap_or(backoff);
            if Instant::now() + wait >= deadline {
                return Err(retry);
            }
            std::thread::sleep(wait);
            backoff *= 2;
        }
    }
}

impl SpanExporter for OtlpHttp {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let body = {
            let mut buffers = self.buffers.lock().unwrap_or_else(|e| e.into_inner());
            let (resource, schema_url) = &self.resource;
            encode_request(resource, schema_url.as_deref(), &batch, &mut buffers);
            buffers.body.clone()
        };
        drop(batch);
        self.send(body).map_err(OTelSdkError::InternalFailure)
    }

    fn set_resource(&mut self, resource: &Resource) {
        let mut encoded = Vec::new();
        encode_resource(resource, &mut encoded);
        self.resource = (encoded, resource.schema_url().map(str::to_owned));
    }
}

/// `%XX` decoded, as the OTLP exporter specification asks of header values.
/// The exporter's HTTP client: one attempt may take the export's timeout,
/// and an `https://` collector is verified against the CA file of
/// `OTEL_EXPORTER_OTLP_CERTIFICATE` (else the system's roots), with the
/// client certificate and key of `OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE`
/// and `OTEL_EXPORTER_OTLP_CLIENT_KEY` when the collector asks for one.
/// `setting(NAME)` is the variable that sets NAME, and its value.
fn client(
    setting: &impl Fn(&str) -> Option<(String, String)>,
    timeout: Duration,
) -> anyhow::Result<reqwest::blocking::Client> {
    let read = |(name, path): (String, String)| {
        std::fs::read(&path).with_context(|| format!("{name}={path}: cannot read it"))
    };
    let mut client = reqwest::blocking::Client::builder().timeout(timeout);
    if let Some(ca) = setting("CERTIFICATE") {
        let name = ca.0.clone();
        let roots = reqwest::Certificate::from_pem_bundle(&read(ca)?)
            .with_context(|| format!("{name}: not PEM certificates"))?;
        client = client.tls_certs_only(roots);
    }
    match (setting("CLIENT_CERTIFICATE"), setting("CLIENT_KEY")) {
        (None, None) => {}
        (Some(certificate), Some(key)) => {
            let mut pem = read(certificate)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let identity = reqwest::Identity::from_pem(&pem).context(
                "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _KEY: not a PEM certificate and key",
            )?;
            client = client.identity(identity);
        }
        _ => bail!(
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together"
        ),
    }
    client.build().context("cannot build the OTLP HTTP client")
}

/// How long a `Retry-After` asks to wait: seconds, or until an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    match value.trim().parse::<u64>() {
        Ok(seconds) => Some(Duration::from_secs(seconds)),
        Err(_) => httpdate::parse_http_date(value.trim())
            .ok()
            .map(|at| at.duration_since(SystemTime::now()).unwrap_or_default()),
    }
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap() * 16 + hex(l).unwrap()) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `Resource` message: its attributes.
fn encode_resource(resource: &Resource, out: &mut Vec<u8>) {
    for (key, value) in resource.iter() {
        key_value(1, key.as_str(), value, out);
    }
}

/// An `ExportTraceServiceRequest` of `spans` into `buffers.body`: one
/// `ResourceSpans` (this process has one resource), with a `ScopeSpans`
/// per instrumentation scope, in the order scopes first appear.
fn encode_request(
    resource: &[u8],
    schema_url: Option<&str>,
    spans: &[SpanData],
    buffers: &mut Buffers,
) {
    let Buffers { body, scope, span } = buffers;
    body.clear();
    // ResourceSpans, written into `span` first: its length comes before it.
    let resource_spans = span;
    resource_spans.clear();
    bytes(1, resource, resource_spans);
    let mut scopes: Vec<&InstrumentationScope> = Vec::new();
    for data in spans {
        if !scopes.contains(&&data.instrumentation_scope) {
            scopes.push(&data.instrumentation_scope);
        }
    }
    let mut one = Vec::new();
    for instrumentation in scopes {
        scope.clear();
        one.clear();
        encode_scope(instrumentation, &mut one);
        bytes(1, &one, scope);
        for data in spans
            .iter()
            .filter(|s| &s.instrumentation_scope == instrumentation)
        {
            one.clear();
            encode_span(data, &mut one);
            bytes(2, &one, scope);
        }
        if let Some(url) = instrumentation.schema_url() {
            string(3, url, scope);
        }
        bytes(2, scope, resource_spans);
    }
    if let Some(url) = schema_url {
        string(3, url, resource_spans);
    }
    bytes(1, resource_spans, body);
}

fn encode_scope(scope: &InstrumentationScope, out: &mut Vec<u8>) {
    string(1, scope.name(), out);
    if let Some(version) = scope.version() {
        string(2, version, out);
    }
    for attribute in scope.attributes() {
        key_value(3, attribute.key.as_str(), &attribute.value, out);
    }
}

fn encode_span(span: &SpanData, out: &mut Vec<u8>) {
    let context = &span.span_context;
    bytes(1, &context.trace_id().to_bytes(), out);
    bytes(2, &context.span_id().to_bytes(), out);
    let trace_state = context.trace_state().header();
    if !trace_state.is_empty() {
        string(3, &trace_state, out);
    }
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        bytes(4, &span.parent_span_id.to_bytes(), out);
    }
    string(5, &span.name, out);
    let kind = match span.span_kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    };
    varint(6, kind, out);
    fixed64(7, nanos(span.start_time), out);
    fixed64(8, nanos(span.end_time), out);
    for attribute in &span.attributes {
        key_value(9, attribute.key.as_str(), &attribute.value, out);
    }
    if span.dropped_attributes_count > 0 {
        varint(10, span.dropped_attributes_count.into(), out);
    }
    for event in span.events.iter() {
        let mut message = Vec::new();
        fixed64(1, nanos(event.timestamp), &mut message);
        string(2, &event.name, &mut message);
        for attribute in &event.attributes {
            key_value(3, attribute.key.as_str(), &attribute.value, &mut message);
        }
        if event.dropped_attributes_count > 0 {
            varint(4, event.dropped_attributes_count.into(), &mut message);
        }
        bytes(11, &message, out);
    }
    if span.events.dropped_count > 0 {
        varint(12, span.events.dropped_count.into(), out);
    }
    for link in span.links.iter() {
        let mut message = Vec::new();
        bytes(1, &link.span_context.trace_id().to_bytes(), &mut message);
        bytes(2, &link.span_context.span_id().to_bytes(), &mut message);
        let state = link.span_context.trace_state().header();
        if !state.is_empty() {
            string(3, &state, &mut message);
        }
        for attribute in &link.attributes {
            key_value(4, attribute.key.as_str(), &attribute.value, &mut message);
        }
        if link.dropped_attributes_count > 0 {
            varint(5, link.dropped_attributes_count.into(), &mut message);
        }
        let flags = flags(
            link.span_context.is_remote(),
            link.span_context.trace_flags().to_u8(),
        );
        fixed32(6, flags, &mut message);
        bytes(13, &message, out);
    }
    if span.links.dropped_count > 0 {
        varint(14, span.links.dropped_count.into(), out);
    }
    let mut status = Vec::new();
    match &span.status {
        Status::Unset => {}
        Status::Ok => varint(3, 1, &mut status),
        Status::Error { description } => {
            if !description.is_empty() {
                string(2, description, &mut status);
            }
            varint(3, 2, &mut status);
        }
    }
    bytes(15, &status, out);
    let flags = flags(span.parent_span_is_remote, context.trace_flags().to_u8());
    fixed32(16, flags, out);
}

/// W3C trace flags, and whether the parent is known to be remote.
fn flags(remote: bool, trace_flags: u8) -> u32 {
    // SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
    u32::from(trace_flags) | 0x100 | if remote { 0x200 } else { 0 }
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// A `KeyValue` message as field `tag`.
fn key_value(tag: u32, key: &str, value: &Value, out: &mut Vec<u8>) {
    let value_len = any_value_len(value);
    let len = field_len(1, key.len()) + field_len(2, value_len);
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(len as u64, out);
    string(1, key, out);
    encode_key(2, WireType::LengthDelimited, out);
    encode_varint(value_len as u64, out);
    any_value(value, out);
}

/// The bytes of field `tag` holding `len` bytes of a length-delimited value.
fn field_len(tag: u32, len: usize) -> usize {
    prost::encoding::key_len(tag) + encoded_len_varint(len as u64) + len
}

fn any_value_len(value: &Value) -> usize {
    match value {
        Value::Bool(_) => 2,
        Value::I64(n) => 1 + encoded_len_varint(*n as u64),
        Value::F64(_) => 9,
        Value::String(text) => field_len(1, text.as_str().len()),
        Value::Array(array) => field_len(5, array_len(array)),
        _ => field_len(1, value.as_str().len()),
    }
}

fn array_len(array: &Array) -> usize {
    match array {
        Array::Bool(items) => items.iter().map(|_| field_len(1, 2)).sum(),
        Array::I64(items) => items
            .iter()
            .map(|n| field_len(1, 1 + encoded_len_varint(*n as u64)))
            .sum(),
        Array::F64(items) => items.iter().map(|_| field_len(1, 9)).sum(),
        Array::String(items) => items
            .iter()
            .map(|s| field_len(1, field_len(1, s.as_str().len())))
            .sum(),
        _ => 0,
    }
}

/// The body of an `AnyValue` message.
fn any_value(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Bool(b) => varint(2, u64::from(*b), out),
        Value::I64(n) => varint(3, *n as u64, out),
        Value::F64(x) => {
            encode_key(4, WireType::SixtyFourBit, out);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::String(text) => string(1, text.as_str(), out),
        Value::Array(array) => {
            encode_key(5, WireType::LengthDelimited, out);
            encode_varint(array_len(array) as u64, out);
            let item = |value: Value, out: &mut Vec<u8>| {
                encode_key(1, WireType::LengthDelimited, out);
                encode_varint(any_value_len(&value) as u64, out);
                any_value(&value, out);
            };
            match array {
                Array::Bool(items) => items.iter().for_each(|b| item(Value::Bool(*b), out)),
                Array::I64(items) => items.iter().for_each(|n| item(Value::I64(*n), out)),
                Array::F64(items) => items.iter().for_each(|x| item(Value::F64(*x), out)),
                Array::String(items) => items
                    .iter()
                    .for_each(|s| item(Value::String(s.clone()), out)),
                _ => {}
            }
        }
        _ => string(1, &value.as_str(), out),
    }
}

fn string(tag: u32, text: &str, out: &mut Vec<u8>) {
    bytes(tag, text.as_bytes(), out);
}

fn bytes(tag: u32, data: &[u8], out: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, out);
    encode_varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

fn varint(tag: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::Varint, out);
    encode_varint(value, out);
}

fn fixed64(tag: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(tag, WireType::SixtyFourBit, out);
    out.extend_from_slice(&value.to_le_bytes());
}

fn fixed32(tag: u32, value: u32, out: &mut Vec<u8>) {
    encode_key(tag, WireType::ThirtyTwoBit, out);
    out.extend_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use opentelemetry::{KeyValue, StringValue};
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;

    use super::*;

    fn span(name: &'static str, parent: u64, scope: &InstrumentationScope) -> SpanData {
        let state = TraceState::from_key_value([("vendor", "x")]).unwrap();
        let context = |span: u64, remote| {
            SpanContext::new(
                TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
                SpanId::from(span),
                TraceFlags::SAMPLED,
                remote,
                state.clone(),
            )
        };
        let mut events = SpanEvents::default();
        events.events.push(opentelemetry::trace::Event::new(
            "retry",
            SystemTime::UNIX_EPOCH + Duration::from_millis(1_500),
            vec![KeyValue::new("attempt", 2)],
            1,
        ));
        let mut links = SpanLinks::default();
        links.links.push(opentelemetry::trace::Link::new(
            context(9, true),
            vec![KeyValue::new("why", "caused by")],
            0,
        ));
        SpanData {
            span_context: context(parent + 1, false),
            parent_span_id: SpanId::from(parent),
            parent_span_is_remote: parent == 1,
            span_kind: if parent == 0 {
                SpanKind::Server
            } else {
                SpanKind::Client
            },
            name: name.into(),
            start_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_123_456_789),
            end_time: SystemTime::UNIX_EPOCH + Duration::from_nanos(1_700_000_000_223_456_789),
            attributes: vec![
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.response.status_code", 200),
                KeyValue::new("negative", -3),
                KeyValue::new("ratio", 0.25),
                KeyValue::new("ok", true),
                KeyValue::new(
                    "list",
                    Value::Array(Array::String(vec![StringValue::from("a"), "b".into()])),
                ),
                KeyValue::new("numbers", Value::Array(Array::I64(vec![1, -2, 300]))),
                KeyValue::new("é", "ünïcode ".repeat(40)),
            ],
            dropped_attributes_count: parent as u32,
            events,
            links,
            status: match parent {
                0 => Status::Unset,
                1 => Status::Ok,
                _ => Status::error("boom"),
            },
            instrumentation_scope: scope.clone(),
        }
    }

    #[test]
    fn a_batch_encodes_as_the_generated_types_do() {
        let resource = Resource::builder()
            .with_service_name("app-laptops")
            .with_attribute(KeyValue::new("service.version", "0.1.0"))
            .with_schema_url([], "https://opentelemetry.io/schemas/1.30.0")
            .build();
        let app = InstrumentationScope::builder("app")
            .with_version("0.1.0")
            .build();
        let other = InstrumentationScope::builder("other")
            .with_schema_url("https://example.com/schema")
            .with_attributes([KeyValue::new("k", "v")])
            .build();
        let batch = vec![
            span("GET /api/v1/laptops/{id}", 0, &app),
            span("SELECT laptops", 1, &other),
            span("SELECT ports", 2, &app),
        ];

        let mut encoded = Vec::new();
        encode_resource(&resource, &mut encoded);
        let mut buffers = Buffers::default();
        encode_request(&encoded, resource.schema_url(), &batch, &mut buffers);
        let ours = ExportTraceServiceRequest::decode(buffers.body.as_slice()).unwrap();
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                batch,
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };

        assert_eq!(ours, theirs);
        assert_eq!(buffers.body, theirs.encode_to_vec(), "byte for byte");
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        assert_eq!(retry_after("2"), Some(Duration::from_secs(2)));
        let soon = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        let wait = retry_after(&soon).unwrap();
        assert!(
            wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(30));
        assert_eq!(retry_after(&past), Some(Duration::ZERO));
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn header_values_are_percent_decoded() {
        assert_eq!(percent_decode("Bearer%20abc%3D"), "Bearer abc=");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
