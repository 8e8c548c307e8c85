//! The application: binds first, exposes the port it got, then runs until stopped.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware::from_fn, web};
use anyhow::Context as _;
use app_kernel::db::Storage;
use utoipa_actix_web::AppExt as _;

use crate::http::{docs, fallback, health, request};
use crate::modules::{Module, Peers, Running};

/// How long an idle client connection stays open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(75);

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
}

pub struct Application {
    port: u16,
    server: Server,
    running: Running,
}

impl Application {
    /// Opens (and migrates) every module's database and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("cannot listen on {}", settings.bind))?;
        let origin = own_origin(&listener)?;
        let running = Running::open(&settings.modules, &settings.storage, settings.migrate)
            .await?
            .start(&settings.peers, &origin)?;
        let port = listener.local_addr()?.port();
        let docs = docs::Docs::new(&settings.modules)?;
        let routes = fallback::Routes::from_openapi(&docs.own).with_get(&[
            "/",
            "/health/live",
            "/health/ready",
            docs::OWN,
            docs::MERGED,
            "/swagger-ui/{_:.*}",
        ]);
        let routes = web::Data::new(routes);
        let modules = settings.modules.clone();
        let state = running.clone();
        let mut server = HttpServer::new(move || {
            let modules = modules.clone();
            App::new()
                .wrap(from_fn(request::context))
                .app_data(app_kernel::query_config())
                .app_data(routes.clone())
                .configure(|cfg| state.register(cfg))
                .configure(|cfg| health::configure(cfg, state.clone()))
                .into_utoipa_app()
                .configure(move |cfg| modules.iter().for_each(|m| (m.routes)(cfg)))
                .into_app()
                .configure(|cfg| docs.configure(cfg))
                .route("/", web::get().to(docs::redirect_to_swagger_ui))
                .default_service(web::to(fallback::not_found_or_not_allowed))
        })
        // Longer than the idle timeout of the proxies in front (nginx, an
        // Ingress controller, a cloud load balancer: 60 s), so none sends a
        // request on a connection this server is closing.
        .keep_alive(KEEP_ALIVE)
        .listen(listener)?;
        if let Some(workers) = settings.workers {
            server = server.workers(workers);
        }
        if !settings.handle_signals {
            server = server.disable_signals();
        }
        tracing::info!(
            address = %settings.bind, port,
            modules = ?settings.modules.iter().map(|m| m.name).collect::<Vec<_>>(),
            "listening"
        );
        Ok(Self {
            port,
            server: server.run(),
            running,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Serves until stopped (SIGTERM, SIGINT or the handle), finishing
    /// requests in flight, then closes every pool.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        self.server.await.context("the server failed")?;
        self.running.close().await;
        tracing::info!("stopped");
        Ok(())
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
