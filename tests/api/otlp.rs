//! An OTLP/HTTP receiver: what an OpenTelemetry collector does with
//! `POST /v1/traces`, decoded with the OpenTelemetry protobuf definitions,
//! the spans kept for the test to read. It can serve HTTPS (asking for a
//! client certificate or not), take gzip, and say it is busy.

use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use prost::Message as _;

/// One received span, with the service that sent it.
#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub kind: Kind,
    attributes: Vec<KeyValue>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Internal,
    Server,
    Client,
    Other,
}

impl Span {
    /// The attribute `key` as text (integers in decimal), if the span has it.
    pub fn attribute(&self, key: &str) -> Option<String> {
        let value = self.attributes.iter().find(|kv| kv.key == key)?;
        match value.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(text) => Some(text.clone()),
            any_value::Value::IntValue(number) => Some(number.to_string()),
            any_value::Value::BoolValue(flag) => Some(flag.to_string()),
            other => Some(format!("{other:?}")),
        }
    }
}

pub struct Collector {
    /// The base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub endpoint: String,
    spans: Arc<Mutex<Vec<Span>>>,
    requests: Arc<Mutex<Vec<Request>>>,
    handle: actix_web::dev::ServerHandle,
}

/// How a collector answers, beyond taking what it is sent.
#[derive(Default)]
pub struct Answers {
    /// Serve HTTPS with this configuration (which may ask for the client's
    /// certificate) rather than HTTP.
    pub tls: Option<rustls::ServerConfig>,
    /// Answer this many exports first with 429 and this `Retry-After`.
    pub busy: Option<(usize, &'static str)>,
}

/// One `POST /v1/traces` the collector was sent.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    /// Its `Content-Encoding`, if it had one.
    pub encoding: Option<String>,
    /// What the collector answered.
    pub status: u16,
}

impl Collector {
    pub async fn start() -> Collector {
        Self::start_with(Answers::default()).await
    }

    pub async fn start_with(answers: Answers) -> Collector {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let endpoint = match answers.tls {
            Some(_) => format!("https://localhost:{port}"),
            None => format!("http://127.0.0.1:{port}"),
        };
        let spans = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (kept, seen) = (spans.clone(), requests.clone());
        let busy = answers.busy.unwrap_or((0, ""));
        let server = HttpServer::new(move || {
            let (kept, seen) = (kept.clone(), seen.clone());
            App::new()
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route(
                    "/v1/traces",
                    web::post().to(move |request: HttpRequest, body: web::Bytes| {
                        let (kept, seen) = (kept.clone(), seen.clone());
                        async move {
                            let encoding = request
                                .headers()
                                .get(header::CONTENT_ENCODING)
                                .map(|value| value.to_str().unwrap().to_owned());
                            let mut seen = seen.lock().unwrap();
                            let answer = if seen.len() < busy.0 {
                                HttpResponse::TooManyRequests()
                                    .insert_header((header::RETRY_AFTER, busy.1))
                                    .finish()
                            } else {
                                match decode_body(encoding.as_deref(), &body) {
                                    Some(request) => {
                                        kept.lock().unwrap().extend(decode(request));
                                        HttpResponse::Ok()
                                            .content_type("application/x-protobuf")
                                            .body(
                                                ExportTraceServiceResponse::default()
                                                    .encode_to_vec(),
                                            )
                                    }
                                    None => HttpResponse::BadRequest().finish(),
                                }
                            };
                            seen.push(Request {
                                at: Instant::now(),
                                encoding,
                                status: answer.status().as_u16(),
                            });
                            answer
                        }
                    }),
                )
        })
        .workers(1)
        .disable_signals();
        let server = match answers.tls {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Collector {
            endpoint,
            spans,
            requests,
            handle,
        }
    }

    /// Every export request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }

    /// Waits until the spans received satisfy `done`, and returns them.
    pub async fn until(&self, what: &str, done: impl Fn(&[Span]) -> bool) -> Vec<Span> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "{what}; received: {spans:#?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops listening: exports to it fail from now on.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

/// The export request in `body`, gunzipped if it says it is gzip.
fn decode_body(encoding: Option<&str>, body: &[u8]) -> Option<ExportTraceServiceRequest> {
    match encoding {
        None => ExportTraceServiceRequest::decode(body).ok(),
        Some("gzip") => {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut plain)
                .ok()?;
            ExportTraceServiceRequest::decode(plain.as_slice()).ok()
        }
        Some(_) => None,
    }
}

fn decode(request: ExportTraceServiceRequest) -> Vec<Span> {
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(name) => Some(name.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(Span {
                    service: service.clone(),
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name,
                    kind: match span.kind {
                        1 => Kind::Internal,
                        2 => Kind::Server,
                        3 => Kind::Client,
                        _ => Kind::Other,
                    },
                    attributes: span.attributes,
                });
            }
        }
    }
    spans
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
