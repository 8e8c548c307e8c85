//! The one place that knows every module: which exist, how each is mounted,
//! migrated and documented, and the state each runs on.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::Context as _;
use app_kernel::db::{Backend, Db, Storage};
use app_kernel::peer::Peer;
use clap::ValueEnum;
use ports_api::{HttpPorts, PortsApi, Unconfigured};
use sqlx::migrate::Migrator;
use tokio::task::AbortHandle;
use utoipa_actix_web::service_config::ServiceConfig;

/// A domain module of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum Module {
    Laptops,
    Ports,
}

impl Module {
    pub const ALL: [Module; 2] = [Module::Laptops, Module::Ports];

    pub fn name(self) -> &'static str {
        match self {
            Module::Laptops => laptops::NAME,
            Module::Ports => ports::NAME,
        }
    }

    pub fn summary(self) -> &'static str {
        match self {
            Module::Laptops => "laptop models: title (brand) and model",
            Module::Ports => "kinds of physical port: USB-C, HDMI, Thunderbolt 4 ...",
        }
    }

    /// The module named by the first segment after `/api/v1/`, if any.
    pub fn of_path(path: &str) -> Option<Module> {
        let rest = path.strip_prefix("/api/v1/")?;
        let segment = rest.split('/').next()?;
        Module::ALL.into_iter().find(|m| m.name() == segment)
    }

    pub fn migrator(self, backend: Backend) -> &'static Migrator {
        match self {
            Module::Laptops => laptops::migrator(backend),
            Module::Ports => ports::migrator(backend),
        }
    }

    /// Mounts the module's routes (documented in OpenAPI as they are mounted).
    pub fn configure(self, cfg: &mut ServiceConfig) {
        match self {
            Module::Laptops => laptops::configure(cfg),
            Module::Ports => ports::configure(cfg),
        }
    }
}

/// Where the modules this process needs but does not serve are found.
#[derive(Debug, Clone)]
pub struct Peers {
    /// Modules served by other processes, at these origins.
    pub urls: Vec<(Module, reqwest::Url)>,
    /// The longest a call to a peer may take, retries included.
    pub timeout: Duration,
    /// Reach even the modules of this process over HTTP, through its own
    /// listener: the split, tested without a second process.
    pub loopback: bool,
}

impl Default for Peers {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            timeout: Duration::from_secs(2),
            loopback: false,
        }
    }
}

impl Peers {
    fn url(&self, module: Module) -> Option<&reqwest::Url> {
        self.urls
            .iter()
            .find(|(m, _)| *m == module)
            .map(|(_, url)| url)
    }
}

/// How a module reaches a module it depends on.
#[derive(Debug, Clone)]
pub enum Link {
    InProcess(Module),
    Remote(Arc<Peer>),
    Missing(Module),
}

/// How often laptops look for deleted ports to drop.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// The modules a process runs, each with its open database and its state.
#[derive(Clone)]
pub struct Running {
    pub databases: Vec<(Module, Db)>,
    /// The modules the running ones depend on, and how they are reached.
    pub links: Vec<Link>,
    states: Vec<State>,
    tasks: Arc<Vec<AbortHandle>>,
}

/// What a module's handlers find in `web::Data`.
#[derive(Clone)]
enum State {
    Laptops(web::Data<laptops::Laptops>),
    Ports(web::Data<ports::Ports>),
}

impl Running {
    /// Opens (and, if `migrate`, migrates) the database of every module.
    pub async fn open(
        modules: &[Module],
        storage: &Storage,
        migrate: bool,
    ) -> anyhow::Result<Self> {
        let mut databases = Vec::with_capacity(modules.len());
        for &module in modules {
            let db = storage
                .open(module.name())
                .await
                .with_context(|| format!("cannot open the database of module {}", module.name()))?;
            if migrate {
                db.migrate(module.migrator(db.backend()))
                    .await
                    .with_context(|| format!("cannot migrate module {}", module.name()))?;
                tracing::info!(module = module.name(), "migrations applied");
            }
            databases.push((module, db));
        }
        Ok(Self {
            databases,
            links: Vec::new(),
            states: Vec::new(),
            tasks: Arc::default(),
        })
    }

    /// Builds every module's state, wiring each to the modules it needs: in
    /// this process, over HTTP, or nowhere. `origin` is this process's own
    /// address, for `Peers::loopback`. The one place that chooses.
    pub fn start(mut self, peers: &Peers, origin: &str) -> anyhow::Result<Self> {
        let ports = self
            .database(Module::Ports)
            .map(|db| web::Data::new(ports::Ports::new(db)));
        let mut tasks = Vec::new();
        if let Some(db) = self.database(Module::Laptops) {
            let (api, link) = ports_for_laptops(ports.clone(), peers, origin)?;
            let laptops = laptops::Laptops::new(db, api);
            let follower = tokio::spawn(laptops.clone().follow_port_deletions(FOLLOW_INTERVAL));
            tasks.push(follower.abort_handle());
            self.states.push(State::Laptops(web::Data::new(laptops)));
            self.links.push(link);
        }
        if let Some(ports) = ports {
            self.states.push(State::Ports(ports));
        }
        self.tasks = Arc::new(tasks);
        Ok(self)
    }

    fn database(&self, module: Module) -> Option<Db> {
        self.databases
            .iter()
            .find(|(m, _)| *m == module)
            .map(|(_, db)| db.clone())
    }

    /// Gives each module's handlers the state they run on.
    pub fn register(&self, cfg: &mut web::ServiceConfig) {
        for state in &self.states {
            match state {
                State::Laptops(data) => cfg.app_data(data.clone()),
                State::Ports(data) => cfg.app_data(data.clone()),
            };
        }
    }

    pub async fn close(&self) {
        self.tasks.iter().for_each(AbortHandle::abort);
        for (_, db) in &self.databases {
            db.close().await;
        }
    }
}

/// The ports module as laptops reach it.
fn ports_for_laptops(
    in_process: Option<web::Data<ports::Ports>>,
    peers: &Peers,
    origin: &str,
) -> anyhow::Result<(Arc<dyn PortsApi>, Link)> {
    let remote = |url: &str| -> anyhow::Result<(Arc<dyn PortsApi>, Link)> {
        let peer = Peer::new(ports_api::NAME, url, peers.timeout)
            .context("cannot build the HTTP client for the ports module")?;
        let peer = Arc::new(peer);
        Ok((Arc::new(HttpPorts(peer.clone())), Link::Remote(peer)))
    };
    match (in_process, peers.url(Module::Ports)) {
        (Some(_), _) if peers.loopback => remote(origin),
        (Some(ports), url) => {
            if url.is_some() {
                tracing::warn!("the ports module runs in this process; its --peer URL is not used");
            }
            Ok((ports.into_inner(), Link::InProcess(Module::Ports)))
        }
        (None, Some(url)) => remote(url.as_str()),
        (None, None) => Ok((Arc::new(Unconfigured), Link::Missing(Module::Ports))),
    }
}
