//! Calls to another module's HTTP API, for modules that run in other
//! processes: pooled connections, one deadline per call, retries with
//! jittered backoff (reads only: this client has no other verb), and a
//! circuit breaker that turns a dead peer into an immediate 503.
//!
//! Every call carries the `X-Request-Id` and `traceparent` of the request it
//! serves (see [`crate::trace`]), and its caller's `Authorization`: the peer
//! checks the caller, not this process. Work of a module's own, with no
//! request behind it, sends the service token of [`TokenFile`], if any.
//! When spans are exported, each attempt is a client span of its own, and
//! the peer's server span its child.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use backon::{ExponentialBuilder, Retryable as _};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt as _, Tracer as _};
use serde::de::DeserializeOwned;

use crate::breaker::Breaker;
use crate::trace::{self, Context, Credentials};
use app_http::ApiError;

/// Failures in a row that open the breaker.
const BREAKER_THRESHOLD: u32 = 5;
/// How long an open breaker fails calls before it lets a probe through.
const BREAKER_COOL_DOWN: Duration = Duration::from_secs(2);

/// Why a call to another module gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// `hint` says how to tell this process where the module runs.
    #[error("the {peer} module is not served here and no peer is configured: {hint}")]
    NotConfigured { peer: &'static str, hint: String },
    #[error("the {peer} module is unavailable: {reason}")]
    Unavailable { peer: &'static str, reason: String },
    /// The peer refused the caller's credentials (401, 403).
    #[error("the {peer} module refused this call: {reason}")]
    Refused { peer: &'static str, reason: String },
    /// The peer answered, but not as its API says it would.
    #[error("the {peer} module gave an unexpected answer: {reason}")]
    Unexpected { peer: &'static str, reason: String },
}

/// Whatever went wrong, the module this request needs cannot serve it now:
/// 503. An unexpected answer (a wrong `--peer` URL, say) is logged as an error.
impl From<PeerError> for ApiError {
    fn from(error: PeerError) -> Self {
        match error {
            PeerError::Refused { .. } => ApiError::Forbidden(error.to_string()),
            PeerError::Unexpected { .. } => {
                tracing::error!(%error, "peer call failed");
                ApiError::Unavailable(error.to_string())
            }
            _ => ApiError::Unavailable(error.to_string()),
        }
    }
}

/// Another module, reached over HTTP.
#[derive(Debug)]
pub struct Peer {
    name: &'static str,
    base: String,
    client: reqwest::Client,
    timeout: Duration,
    breaker: Breaker,
    /// Why the last call failed; `None` once one succeeds.
    last_failure: Mutex<Option<String>>,
    /// The service token of calls no request is behind.
    token: Option<TokenFile>,
}

enum Failure {
    /// Worth another try: no connection, no answer, or a 5xx.
    Transient(String),
    Unexpected(String),
    Refused(String),
    Open,
}

/// A bearer token kept in a file, as Kubernetes mounts a Secret: read again
/// whenever the file changes, so a rotated token is used from the next call.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    /// The token as last read, and the file's state when it was.
    read: Mutex<Option<((SystemTime, u64), Credentials)>>,
}

impl TokenFile {
    pub fn new(path: PathBuf) -> Self {
        Self {
            path,
            read: Mutex::new(None),
        }
    }

    /// `Bearer <token>`, or `None` if the file cannot be read now.
    pub fn current(&self) -> Option<Credentials> {
        let metadata = std::fs::metadata(&self.path).ok()?;
        let stamp = (metadata.modified().ok()?, metadata.len());
        let mut read = self.read.lock().expect("token file lock");
        if let Some((seen, credentials)) = read.as_ref()
            && *seen == stamp
        {
            return Some(credentials.clone());
        }
        let token = std::fs::read_to_string(&self.path).ok()?;
        let token = token.trim();
        if token.is_empty() {
            return None;
        }
        let credentials = Credentials(format!("Bearer {token}"));
        *read = Some((stamp, credentials.clone()));
        Some(credentials)
    }
}

impl Peer {
    /// `base` is the peer's origin, `http://host:port`; `timeout` bounds each
    /// call, retries included. Calls say they come from module `caller`, at
    /// this binary's version, in their `User-Agent`.
    pub fn new(
        name: &'static str,
        caller: &str,
        base: &str,
        timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .user_agent(app_http::versions::user_agent(caller))
            .connect_timeout(timeout)
            .timeout(timeout)
            .pool_max_idle_per_host(64)
            // Below the 75 s a module keeps an idle connection open, so a
            // call never goes out on one the peer is closing.
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            name,
            base: base.trim_end_matches('/').to_owned(),
            client,
            timeout,
            breaker: Breaker::new(BREAKER_THRESHOLD, BREAKER_COOL_DOWN, timeout).for_peer(name),
            last_failure: Mutex::new(None),
            token: None,
        })
    }

    /// Calls made with no request behind them send this file's token.
    pub fn with_token_file(mut self, token: TokenFile) -> Self {
        self.token = Some(token);
        self
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// `closed`, `open` or `half-open`.
    pub fn circuit(&self) -> &'static str {
        self.breaker.state()
    }

    /// Why the last call failed, if it did; a call that answers clears it.
    /// Read by health checks, which must not wait on the peer themselves.
    pub fn last_failure(&self) -> Option<String> {
        self.last_failure.lock().expect("peer lock").clone()
    }

    /// GETs `path` (with its query) and decodes the JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, PeerError> {
        let url = format!("{}{path}", self.base);
        let context = Context::current().unwrap_or_else(|| {
            let trace = trace::continued(opentelemetry::Context::new());
            let mut own = Context::new(uuid::Uuid::new_v4().to_string(), trace);
            own.authorization = self.token.as_ref().and_then(TokenFile::current);
            own
        });
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(200))
            .with_max_times(2)
            .with_jitter();
        let started = Instant::now();
        let sent = AtomicU32::new(0);
        let call = (|| self.attempt::<T>(&url, &context, sent.fetch_add(1, Ordering::Relaxed)))
            .retry(backoff)
            .when(|failure| matches!(failure, Failure::Transient(_)))
            .notify(|_, _| {
                metrics::counter!("app_peer_retries_total", "peer" => self.name).increment(1);
            });
        let outcome = match tokio::time::timeout(self.timeout, call).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.breaker.failed();
                Err(Failure::Transient(format!(
                    "no answer within {:?}",
                    self.timeout
                )))
            }
        };
        tracing::debug!(peer = self.name, %url, ok = outcome.is_ok(), micros = started.elapsed().as_micros() as u64, "peer call");
        let outcome = outcome.map_err(|failure| self.error(failure));
        let label = match &outcome {
            Ok(_) => "ok",
            Err(PeerError::Unavailable { .. }) => "unavailable",
            Err(PeerError::Refused { .. }) => "refused",
            Err(PeerError::Unexpected { .. }) => "unexpected",
            Err(PeerError::NotConfigured { .. }) => "not_configured",
        };
        metrics::histogram!(
            "app_peer_request_duration_seconds",
            "peer" => self.name,
            "outcome" => label,
        )
        .record(started.elapsed().as_secs_f64());
        *self.last_failure.lock().expect("peer lock") = match &outcome {
            Err(PeerError::Unavailable { reason, .. }) => Some(reason.clone()),
            _ => None,
        };
        outcome
    }

    /// Try number `resend` (0 for the first) of a call to `url`.
    async fn attempt<T: DeserializeOwned>(
        &self,
        url: &str,
        context: &Context,
        resend: u32,
    ) -> Result<T, Failure> {
        if !self.breaker.allow() {
            return Err(Failure::Open);
        }
        let trace = match trace::tracer() {
            Some(tracer) => {
                let span = self.client_span(tracer, url, resend, &context.trace);
                context.trace.with_span(span)
            }
            None => context.trace.clone(),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        trace::inject(&trace, &mut headers);
        let mut request = self
            .client
            .get(url)
            .headers(headers)
            .header("x-request-id", &context.request_id);
        if let Some(Credentials(authorization)) = &context.authorization {
            request = request.header("authorization", authorization);
        }
        let sent = request.send().await;
        let span = trace.span();
        if span.is_recording() {
            match &sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    span.set_attribute(KeyValue::new("http.response.status_code", status as i64));
                    if status >= 400 {
                        span.set_attribute(KeyValue::new("error.type", status.to_string()));
                        span.set_status(Status::error(""));
                    }
                }
                Err(error) => {
                    let kind = if error.is_timeout() {
                        "timeout"
                    } else {
                        "connect"
                    };
                    span.set_attribute(KeyValue::new("error.type", kind));
                    span.set_status(Status::error(""));
                }
            }
        }
        span.end();
        let response = match sent {
            Ok(response) if response.status().is_server_error() => Err(Failure::Transient(
                format!("it answered {}", response.status()),
            )),
            Ok(response) if matches!(response.status().as_u16(), 401 | 403) => {
                Err(Failure::Refused(format!(
                    "it answered {} to the caller's credentials",
                    response.status()
                )))
            }
            Ok(response) if !response.status().is_success() => Err(Failure::Unexpected(format!(
                "{} from GET {url}",
                response.status()
            ))),
            Ok(response) => Ok(response),
            Err(error) => {
                tracing::warn!(peer = self.name, error = %app_http::problem::Chain(&error), "peer call failed");
                Err(Failure::Transient(if error.is_timeout() {
                    format!("no answer within {:?}", self.timeout)
                } else {
                    "it cannot be reached".to_owned()
                }))
            }
        };
        let decoded = match response {
            Ok(response) => response.json::<T>().await.map_err(|error| {
                Failure::Unexpected(format!("GET {url}: {}", app_http::problem::Chain(&error)))
            }),
            Err(failure) => Err(failure),
        };
        match &decoded {
            Err(Failure::Transient(_)) => self.breaker.failed(),
            Err(Failure::Open) => {}
            _ => self.breaker.succeeded(),
        }
        decoded
    }

    /// The span of one attempt, under the request's, as the HTTP client
    /// conventions of OpenTelemetry name it.
    fn client_span(
        &self,
        tracer: &opentelemetry::global::BoxedTracer,
        url: &str,
        resend: u32,
        parent: &opentelemetry::Context,
    ) -> opentelemetry::global::BoxedSpan {
        let mut attributes = vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("url.full", url.to_owned()),
            KeyValue::new("peer.service", self.name),
        ];
        if let Ok(parsed) = reqwest::Url::parse(url) {
            if let Some(host) = parsed.host_str() {
                attributes.push(KeyValue::new("server.address", host.to_owned()));
            }
            if let Some(port) = parsed.port_or_known_default() {
                attributes.push(KeyValue::new("server.port", i64::from(port)));
            }
        }
        if resend > 0 {
            attributes.push(KeyValue::new(
                "http.request.resend_count",
                i64::from(resend),
            ));
        }
        tracer
            .span_builder("GET")
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(tracer, parent)
    }

    fn error(&self, failure: Failure) -> PeerError {
        let peer = self.name;
        match failure {
            Failure::Open => PeerError::Unavailable {
                peer,
                reason: "calls are paused after repeated failures (circuit open)".to_owned(),
            },
            Failure::Transient(reason) => PeerError::Unavailable { peer, reason },
            Failure::Unexpected(reason) => PeerError::Unexpected { peer, reason },
            Failure::Refused(reason) => PeerError::Refused { peer, reason },
        }
    }
}
