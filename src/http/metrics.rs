//! `/metrics`, in the Prometheus text format: the recorder of the `metrics`
//! crate and its Prometheus exporter (nothing here formats the exposition
//! text). Names and labels follow the OpenTelemetry HTTP semantic
//! conventions as Prometheus spells them; a request is labelled by its route
//! template, never its raw path, so a client cannot grow the label set.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use metrics::{Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::http::fallback::Routes;
use crate::modules::Running;

/// Where the metrics are served.
pub const PATH: &str = "/metrics";

/// Histogram buckets of durations, in seconds: 0.5 ms to 10 s.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Buckets of the wait for a database connection: 0.1 ms to the 1 s after
/// which a request gives up.
const WAIT_BUCKETS: &[f64] = &[
    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Buckets of the writes one group commit holds, up to its most (256).
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];
/// How often histograms drop what a scrape no longer needs.
const UPKEEP: Duration = Duration::from_secs(5);

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), BUCKETS)
            .expect("the buckets are not empty")
            .set_buckets_for_metric(
                Matcher::Full("app_db_pool_wait_seconds".into()),
                WAIT_BUCKETS,
            )
            .expect("the buckets are not empty")
            .set_buckets_for_metric(
                Matcher::Full("app_db_group_commit_writes".into()),
                GROUP_BUCKETS,
            )
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed");
        describe();
        // Upkeep is ours to run: without it histograms grow without bound.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP);
                    upkeep.run_upkeep();
                }
            })
            .expect("a thread for metrics upkeep");
        handle
    })
}

fn process() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(|| {
        let collector = metrics_process::Collector::default();
        collector.describe();
        collector
    })
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        "http_server_request_duration_seconds",
        Unit::Seconds,
        "Duration of HTTP server requests, by method, route template, status and module."
    );
    describe_gauge!(
        "http_server_active_requests",
        "HTTP server requests being served now."
    );
    describe_gauge!(
        "app_db_pool_connections",
        "Database connections of each module's pool, by state (used, idle)."
    );
    describe_histogram!(
        "app_db_pool_wait_seconds",
        Unit::Seconds,
        "How long each module's work waited for a database connection."
    );
    describe_histogram!(
        "app_db_group_commit_writes",
        "Writes each group commit held: one transaction, and one sync to disk, for all."
    );
    describe_counter!(
        "app_db_group_commit_refused_total",
        "PostgreSQL group commits the database refused, whose writes were then each written alone."
    );
    describe_counter!(
        "app_cache_hits_total",
        "GETs of one resource answered from a module's cache, by view."
    );
    describe_counter!(
        "app_cache_misses_total",
        "GETs of one resource a module's cache could not answer, read from its database, by view."
    );
    describe_counter!(
        "app_auth_failures_total",
        "Requests refused for their credentials, by reason."
    );
    describe_counter!(
        "app_rate_limit_decisions_total",
        "Rate-limit decisions, by policy and decision (allowed, limited)."
    );
    describe_histogram!(
        "app_peer_request_duration_seconds",
        Unit::Seconds,
        "Calls to a module in another process, retries included, by peer and outcome."
    );
    describe_counter!(
        "app_peer_retries_total",
        "Retries of calls to a module in another process."
    );
    describe_gauge!(
        "app_peer_breaker_state",
        "The circuit breaker of calls to a peer: 0 closed, 1 half-open, 2 open."
    );
    describe_counter!(
        "app_peer_breaker_transitions_total",
        "Changes of a peer's circuit breaker, by the state entered."
    );
    describe_gauge!(
        "app_follower_caught_up_timestamp_seconds",
        Unit::Seconds,
        "When a module last applied everything of a feed it follows: the lag is time() minus this."
    );
    describe_gauge!(
        "app_follower_behind_rows",
        "Entries of a followed feed not yet applied, as of the follower's last read."
    );
    describe_counter!(
        "app_follower_applied_total",
        "Entries of a followed feed applied."
    );
    describe_gauge!(
        "app_broker_connected",
        "1 while a module's relay, consumer or cache holds a connection to the broker, else 0."
    );
    describe_counter!(
        "app_events_published_total",
        "Events of a module's outbox the broker confirmed."
    );
    describe_gauge!(
        "app_relay_behind_rows",
        "Events of a module's outbox not yet confirmed by the broker, as of the relay's last read."
    );
    describe_counter!(
        "app_events_received_total",
        "Events received from the broker, by queue."
    );
    describe_counter!(
        "app_broker_dropped_total",
        "Messages received from the broker that were not events, dropped, by queue."
    );
    describe_counter!(
        "app_trace_spans_ended_total",
        "Sampled spans handed to the OTLP exporter's queue."
    );
    describe_counter!(
        "app_trace_spans_exported_total",
        "Spans sent to the OTLP collector, by outcome (exported, failed: lost)."
    );
    describe_gauge!(
        "app_peer_build_info",
        "1 per version of another module heard lately (by its calls' User-Agent, its events' \
         producerversion), labelled supported=\"false\" unless it is this version or the last \
         release; 0 once not heard for ten minutes."
    );
    describe_gauge!(
        "app_build_info",
        "1, labelled with the version, the last release before it and the modules this process serves."
    );
}

/// Sets what does not change while the process runs.
pub fn announce(modules: &[&'static crate::modules::Module]) {
    handle();
    let served: Vec<&str> = modules.iter().map(|m| m.name).collect();
    metrics::gauge!(
        "app_build_info",
        "version" => app_kernel::versions::VERSION,
        "last_release" => app_kernel::versions::LAST_RELEASE.unwrap_or(""),
        "commit" => option_env!("APP_COMMIT").unwrap_or("unknown"),
        "modules" => served.join(","),
    )
    .set(1.0);
}

/// The method as a label: the standard ones by name, any other as `_OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "_OTHER",
    }
}

/// The series one request is counted in: its method, its route in a route
/// table, its status and its module. Looking a series up by its labels
/// costs more than recording into it, so each worker thread keeps the
/// handles of the series it has seen, keyed by what the labels are made of.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Series {
    /// The method's label, and the module's name: static strings, told
    /// apart by where they are.
    method: *const u8,
    module: *const u8,
    /// The table's id and the route's index in it.
    route: Option<(u64, usize)>,
    status: u16,
}

/// Hashes a [`Series`] with FNV-1a: a handful of words need nothing stronger,
/// and no client chooses them.
#[derive(Default)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        if self.0 == 0 {
            self.0 = 0xcbf2_9ce4_8422_2325;
        }
        for byte in bytes {
            self.0 = (self.0 ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

type Handles<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

thread_local! {
    static DURATIONS: RefCell<Handles<Series, Histogram>> = RefCell::default();
    static ACTIVE: RefCell<Handles<(*const u8, *const u8), Gauge>> = RefCell::default();
}

/// Records every request's duration and the requests in flight.
pub async fn record(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let method = method_label(req.method());
    let module = crate::modules::of_path(req.path()).map(|m| m.name);
    let routes = req.app_data::<web::Data<Routes>>().cloned();
    let route = routes.as_ref().and_then(|routes| routes.route(req.path()));
    let module_name = module.unwrap_or("none");
    let active = ACTIVE.with_borrow_mut(|active| {
        active
            .entry((method.as_ptr(), module_name.as_ptr()))
            .or_insert_with(|| {
                metrics::gauge!(
                    "http_server_active_requests",
                    "http_request_method" => method,
                    "module" => module_name,
                )
            })
            .clone()
    });
    active.increment(1.0);
    let started = Instant::now();
    let response = next.call(req).await;
    active.decrement(1.0);
    let status = match &response {
        Ok(response) => response.status(),
        Err(error) => error.as_response_error().status_code(),
    };
    let series = Series {
        method: method.as_ptr(),
        module: module_name.as_ptr(),
        route: routes
            .as_ref()
            .zip(route)
            .map(|(routes, (at, _))| (routes.id(), at)),
        status: status.as_u16(),
    };
    let elapsed = started.elapsed().as_secs_f64();
    DURATIONS.with_borrow_mut(|durations| {
        durations
            .entry(series)
            .or_insert_with(|| {
                metrics::histogram!(
                    "http_server_request_duration_seconds",
                    "http_request_method" => method,
                    "http_route" => route.map_or("unmatched", |(_, template)| template).to_owned(),
                    "http_response_status_code" => status.as_str().to_owned(),
                    "module" => module_name,
                )
            })
            .record(elapsed);
    });
    response
}

/// `GET /metrics`: what the recorder holds, with the process's own
/// figures, each pool's connections and each peer's breaker read now.
pub async fn serve(running: web::Data<Running>) -> HttpResponse {
    process().collect();
    for (module, db) in &running.databases {
        let (open, idle) = db.connections();
        let used = (open as usize).saturating_sub(idle);
        metrics::gauge!("app_db_pool_connections", "module" => module.name, "state" => "used")
            .set(used as f64);
        metrics::gauge!("app_db_pool_connections", "module" => module.name, "state" => "idle")
            .set(idle as f64);
    }
    for link in &running.links {
        if let crate::modules::Link::Remote(peer) = link {
            let state = match peer.circuit() {
                "closed" => 0.0,
                "half-open" => 1.0,
                _ => 2.0,
            };
            metrics::gauge!("app_peer_breaker_state", "peer" => peer.name()).set(state);
        }
    }
    app_kernel::versions::sweep();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(handle().render())
}
