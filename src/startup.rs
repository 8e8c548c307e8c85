//! The application: binds first, exposes the port it got, then runs until stopped.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::Server;
use actix_web::http::{Method, header};
use actix_web::middleware::Condition;
use actix_web::{App, HttpServer, middleware::from_fn, web};
use anyhow::Context as _;
use app_kernel::db::Storage;
use utoipa_actix_web::AppExt as _;

use crate::http::{docs, fallback, guard, health, metrics, request};
use crate::modules::{Module, Peers, Running};
use crate::security::{Guard, KeySource, Security};
use app_kernel::broker::Broker;
use app_kernel::cache;
use app_kernel::event::Delivery;

/// How long an idle client connection stays open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(75);
/// How long a client may take to send a request's head.
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a closing connection may take to shut down.
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A certificate chain and its key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What `serve` runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub modules: Vec<&'static Module>,
    pub storage: Storage,
    /// `host:port`; port 0 picks a free one.
    pub bind: String,
    /// HTTP worker threads; default one per core.
    pub workers: Option<usize>,
    /// Stop gracefully on SIGTERM and SIGINT.
    pub handle_signals: bool,
    /// Where the modules it needs but does not run are.
    pub peers: Peers,
    /// Apply pending migrations before serving.
    pub migrate: bool,
    /// Who may call what, and how often.
    pub security: Security,
    /// Origins whose pages may call the API; none by default.
    pub cors_origins: Vec<String>,
    /// Serve HTTPS instead of HTTP.
    pub tls: Option<Tls>,
    /// Where `/metrics` is served, if it is.
    pub metrics: Metrics,
    /// How modules treat the events they follow that fail.
    pub delivery: Delivery,
    /// The broker events go through between processes, if any.
    pub broker: Option<Broker>,
    /// How big each module's caches may grow, and how old what they serve.
    pub cache: cache::Settings,
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Metrics {
    /// On the API's listener.
    WithApi,
    /// On a listener of its own at this address, not on the API's.
    Apart(String),
    /// Nowhere, and nothing is recorded: no recorder is installed, and
    /// every request skips the measuring middleware.
    Off,
}

pub struct Application {
    port: u16,
    server: Server,
    /// The listener of `/metrics` alone, with `--metrics-bind`.
    metrics: Option<(u16, Server)>,
    running: Running,
}

impl Application {
    /// Opens (and migrates) every module's database and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let origin = own_origin(&listener)?;
        // Requests carry their callers' W3C trace context on to the calls
        // and events they make, exported or not.
        opentelemetry::global::set_text_map_propagator(
            opentelemetry_sdk::propagation::TraceContextPropagator::new(),
        );
        let names: Vec<&'static str> = crate::modules::ALL.iter().map(|m| m.name).collect();
        app_kernel::versions::configure(&names);
        // Before the pools open: each keeps a handle on the recorder.
        let measured = settings.metrics != Metrics::Off;
        if measured {
            metrics::announce(&settings.modules);
        }
        let running = Running::open(&settings.modules, &settings.storage, settings.migrate)
            .await?
            .start(
                &settings.peers,
                &origin,
                settings.delivery,
                settings.broker.as_ref(),
                settings.cache,
            )?;
        let port = listener.local_addr()?.port();
        let guard = web::Data::new(Guard::open(&settings.security).await?);
        if let KeySource::Development(path) = &settings.security.keys {
            tracing::info!(
                key = %path.display(),
                "development keys are in use: get a token with `app token --scope laptops:write` \
                 (or give --jwt-jwks-url or --jwt-public-key)"
            );
        }
        let limiter = guard.limiter.clone();
        let metrics_here = settings.metrics == Metrics::WithApi;
        let cors_origins = settings.cors_origins.clone();
        let docs = docs::Docs::new(&settings.modules)?;
        let mut own_routes = vec![
            "/",
            "/health/live",
            "/health/ready",
            docs::OWN,
            docs::MERGED,
            "/swagger-ui/{_:.*}",
        ];
        if metrics_here {
            own_routes.push(metrics::PATH);
        }
        let routes = fallback::Routes::from_openapi(&docs.own).with_get(&own_routes);
        let routes = web::Data::new(routes);
        let modules = settings.modules.clone();
        let state = running.clone();
        let mut server = HttpServer::new(move || {
            let modules = modules.clone();
            App::new()
                .wrap(from_fn(guard::guard))
                .wrap(Condition::new(
                    !cors_origins.is_empty(),
                    cors(&cors_origins),
                ))
                .wrap(Condition::new(measured, from_fn(metrics::record)))
                .wrap(from_fn(request::context))
                .app_data(app_kernel::query_config())
                .app_data(routes.clone())
                .app_data(guard.clone())
                .configure(|cfg| state.register(cfg))
                .configure(|cfg| health::configure(cfg, state.clone(), limiter.clone()))
                .into_utoipa_app()
                .configure(move |cfg| modules.iter().for_each(|m| (m.routes)(cfg)))
                .into_app()
                .configure(|cfg| docs.configure(cfg))
                .route("/", web::get().to(docs::redirect_to_swagger_ui))
                .configure(|cfg| {
                    if metrics_here {
                        cfg.route(metrics::PATH, web::get().to(metrics::serve));
                    }
                })
                .default_service(web::to(fallback::not_found_or_not_allowed))
        })
        // Longer than the idle timeout of the proxies in front (nginx, an
        // Ingress controller, a cloud load balancer: 60 s), so none sends a
        // request on a connection this server is closing.
        .keep_alive(KEEP_ALIVE)
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT);
        server = match &settings.tls {
            Some(tls) => server.listen_rustls_0_23(listener, tls.server_config()?)?,
            None => server.listen(listener)?,
        };
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        if !settings.handle_signals {
            server = server.disable_signals();
        }
        tracing::info!(
            address = %settings.bind, port,
            scheme = if settings.tls.is_some() { "https" } else { "http" },
            modules = ?settings.modules.iter().map(|m| m.name).collect::<Vec<_>>(),
            "listening"
        );
        let metrics = match &settings.metrics {
            Metrics::Apart(address) => Some(metrics_server(address, &running)?),
            Metrics::WithApi | Metrics::Off => None,
        };
        Ok(Self {
            port,
            server: server.run(),
            metrics,
            running,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of `/metrics` alone, with `--metrics-bind`.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics.as_ref().map(|(port, _)| *port)
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM, SIGINT or the handle), finishing
    /// requests in flight, then closes every pool.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let metrics = self.metrics.map(|(_, server)| {
            let handle = server.handle();
            (handle, tokio::spawn(server))
        });
        let served = self.server.await.context("the server failed");
        if let Some((handle, task)) = metrics {
            handle.stop(true).await;
            let _ = task.await;
        }
        served?;
        self.running.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// A listener of its own that serves `/metrics` and nothing else, so the
/// gateway in front of the API never exposes it.
fn metrics_server(address: &str, running: &Running) -> anyhow::Result<(u16, Server)> {
    let listener = TcpListener::bind(address)
        .with_context(|| format!("cannot listen on --metrics-bind {address}"))?;
    let port = listener.local_addr()?.port();
    let running = web::Data::new(running.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(running.clone())
            .route(metrics::PATH, web::get().to(metrics::serve))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    tracing::info!(address, port, "serving /metrics");
    Ok((port, server))
}

/// CORS for `origins`: the API's methods, the headers a client sends, and
/// the ones it may read.
fn cors(origins: &[String]) -> Cors {
    let cors = origins
        .iter()
        .fold(Cors::default(), |cors, origin| cors.allowed_origin(origin));
    cors.allowed_methods([
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ])
    .allowed_headers([
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::IF_MATCH,
        header::IF_NONE_MATCH,
        header::HeaderName::from_static("x-request-id"),
    ])
    .expose_headers([
        header::ETAG,
        header::LOCATION,
        header::RETRY_AFTER,
        header::HeaderName::from_static("x-request-id"),
        header::HeaderName::from_static("ratelimit"),
        header::HeaderName::from_static("ratelimit-policy"),
    ])
    .max_age(3600)
}

impl Tls {
    /// rustls with TLS 1.2 and 1.3 only, on aws-lc.
    fn server_config(&self) -> anyhow::Result<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cannot read --tls-cert {}", self.cert.display()))?;
        anyhow::ensure!(
            !certs.is_empty(),
            "--tls-cert {} holds no certificate",
            self.cert.display()
        );
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .with_context(|| format!("cannot read --tls-key {}", self.key.display()))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .context("--tls-cert and --tls-key do not make a pair")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// This process's own origin, as modules of it reach one another in loopback.
fn own_origin(listener: &TcpListener) -> anyhow::Result<String> {
    Ok(format!("http://{}", reachable(listener.local_addr()?)))
}

/// Where a client on this host reaches a listener bound to `address`:
/// loopback for an unspecified address (`0.0.0.0`, `[::]`).
pub fn reachable(mut address: SocketAddr) -> SocketAddr {
    if address.ip().is_unspecified() {
        address.set_ip(match address {
            SocketAddr::V4(_) => Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => Ipv6Addr::LOCALHOST.into(),
        });
    }
    address
}
