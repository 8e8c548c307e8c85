//! The one list of modules, and what the binary derives from it: which
//! modules a process opens and migrates, and how each module it runs reaches
//! the modules it needs: in this process, over HTTP, or nowhere.

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use anyhow::Context as _;
use app_kernel::broker::{Broker, Relay};
use app_kernel::cache;
use app_kernel::db::{Db, Storage};
use app_kernel::event::{Delivery, Notifier};
pub use app_kernel::module::Module;
use app_kernel::module::{Api, Contract, Events, Start, State};
use app_kernel::peer::{Peer, TokenFile};
use tokio::task::AbortHandle;

/// Every module of the binary, by name. `cargo xtask new-module` adds here.
pub static ALL: &[&Module] = &[&laptops::MODULE, &ports::MODULE];

/// The module called `name`.
pub fn named(name: &str) -> Option<&'static Module> {
    ALL.iter().copied().find(|module| module.name == name)
}

/// The module named by the first segment after `/api/v1/`, if any.
pub fn of_path(path: &str) -> Option<&'static Module> {
    let rest = path.strip_prefix("/api/v1/")?;
    named(rest.split('/').next()?)
}

/// The environment variable that says where `module` runs, when this
/// process needs but does not serve it.
pub fn peer_variable(module: &Module) -> String {
    format!("APP_PEER_{}", module.name.to_uppercase())
}

/// Where the modules this process needs but does not serve are found.
#[derive(Debug, Clone)]
pub struct Peers {
    /// Modules served by other processes, at these origins.
    pub urls: Vec<(&'static Module, reqwest::Url)>,
    /// The longest a call to a peer may take, retries included.
    pub timeout: Duration,
    /// Reach even the modules of this process over HTTP, through its own
    /// listener: the split, tested without a second process.
    pub loopback: bool,
    /// The service token of calls a module makes with no request behind them.
    pub token_file: Option<std::path::PathBuf>,
}

impl Default for Peers {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            timeout: Duration::from_secs(2),
            loopback: false,
            token_file: None,
        }
    }
}

impl Peers {
    fn url(&self, name: &str) -> Option<&reqwest::Url> {
        self.urls
            .iter()
            .find(|(module, _)| module.name == name)
            .map(|(_, url)| url)
    }
}

/// How a module reaches a module it depends on.
#[derive(Debug, Clone)]
pub enum Link {
    InProcess(&'static str),
    Remote(Arc<Peer>),
    /// Not served here and nowhere known; `hint` says which flag to give.
    Missing {
        name: &'static str,
        hint: String,
    },
}

/// The modules a process runs, each with its open database and its state.
#[derive(Clone)]
pub struct Running {
    pub databases: Vec<(&'static Module, Db)>,
    /// The modules the running ones depend on, and how they are reached.
    pub links: Vec<Link>,
    states: Vec<State>,
    tasks: Arc<Vec<AbortHandle>>,
}

impl Running {
    /// Opens (and, if `migrate`, migrates) the database of every module.
    pub async fn open(
        modules: &[&'static Module],
        storage: &Storage,
        migrate: bool,
    ) -> anyhow::Result<Self> {
        let mut databases = Vec::with_capacity(modules.len());
        for &module in modules {
            let db = storage
                .open(module.name)
                .await
                .with_context(|| format!("cannot open the database of module {}", module.name))?;
            if migrate && storage.may_migrate(module.name) {
                storage
                    .migrate(module.name, &db, (module.migrations)(db.backend()))
                    .await
                    .with_context(|| format!("cannot migrate module {}", module.name))?;
                tracing::info!(module = module.name, "migrations applied");
            } else if migrate {
                tracing::info!(
                    module = module.name,
                    "not migrating: the module's own role cannot; `app migrate` does, as its owner"
                );
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

    /// Starts every module, each after the modules of this process it
    /// needs, handing it the API of each: the module itself when it runs
    /// here, an HTTP client when `peers` says where it runs, or one that
    /// answers 503 naming the missing flag. `origin` is this process's own
    /// address, for `Peers::loopback`. The one place that chooses. With a
    /// `broker`, each module's relay publishes its events there.
    pub fn start(
        mut self,
        peers: &Peers,
        origin: &str,
        delivery: Delivery,
        broker: Option<&Broker>,
        cache: cache::Settings,
    ) -> anyhow::Result<Self> {
        // The API each started module provides in this process.
        let mut provided: Vec<(&'static str, Api)> = Vec::new();
        // The API of each module needed, as first resolved: one HTTP client
        // (and one circuit breaker) per peer, whoever needs it.
        let mut resolved: Vec<(&'static str, Api)> = Vec::new();
        let mut tasks = Vec::new();
        for (module, db) in self.in_start_order(peers)? {
            let mut needs = Vec::new();
            for contract in module.needs {
                let name = contract.module;
                let api = match resolved.iter().find(|(needed, _)| *needed == name) {
                    Some((_, api)) => api.clone(),
                    None => {
                        let (api, link) =
                            self.reach(module.name, contract, &provided, peers, origin)?;
                        self.links.push(link);
                        resolved.push((name, api.clone()));
                        api
                    }
                };
                needs.push((name, api));
            }
            let committed = Notifier::default();
            if let Some(broker) = broker.filter(|_| !module.events.is_empty()) {
                let relay = Relay {
                    broker: broker.clone(),
                    module: module.name,
                    source: module.path(),
                    db: db.clone(),
                    changes: committed.subscribe(),
                };
                tasks.push(tokio::spawn(relay.run()).abort_handle());
            }
            let events = Events {
                delivery,
                committed,
                broker: broker.cloned(),
            };
            let started = (module.start)(Start::new(db, needs, events, cache))
                .with_context(|| format!("cannot start module {}", module.name))?;
            let (state, module_tasks, api) = started.into_parts();
            if let Some(api) = api {
                provided.push((module.name, api));
            }
            tasks.extend(
                module_tasks
                    .into_iter()
                    .map(|task| tokio::spawn(task).abort_handle()),
            );
            self.states.push(state);
        }
        self.tasks = Arc::new(tasks);
        Ok(self)
    }

    /// The modules, each after those of this process it calls in process.
    fn in_start_order(&self, peers: &Peers) -> anyhow::Result<Vec<(&'static Module, Db)>> {
        let mut waiting = self.databases.clone();
        let mut ordered: Vec<(&'static Module, Db)> = Vec::with_capacity(waiting.len());
        while !waiting.is_empty() {
            let ready = waiting.iter().position(|(module, _)| {
                peers.loopback
                    || module
                        .needs
                        .iter()
                        .all(|contract| !waiting.iter().any(|(m, _)| m.name == contract.module))
            });
            let Some(ready) = ready else {
                let names: Vec<&str> = waiting.iter().map(|(m, _)| m.name).collect();
                anyhow::bail!("modules {names:?} need one another in a cycle");
            };
            ordered.push(waiting.remove(ready));
        }
        Ok(ordered)
    }

    /// The API of the module `contract` is for: `provided` by it in this
    /// process, over HTTP (as a call from `caller`), or missing.
    fn reach(
        &self,
        caller: &'static str,
        contract: &Contract,
        provided: &[(&'static str, Api)],
        peers: &Peers,
        origin: &str,
    ) -> anyhow::Result<(Api, Link)> {
        let name = contract.module;
        let here = self.databases.iter().any(|(m, _)| m.name == name);
        let url = match peers.url(name) {
            _ if here && peers.loopback => origin.to_owned(),
            url if here => {
                if url.is_some() {
                    tracing::warn!(
                        "the {name} module runs in this process; its --peer URL is not used"
                    );
                }
                let (_, api) = provided
                    .iter()
                    .find(|(provider, _)| *provider == name)
                    .with_context(|| format!("module {name} provides no API to call"))?;
                return Ok((api.clone(), Link::InProcess(name)));
            }
            Some(url) => url.as_str().to_owned(),
            None => {
                let module = named(name).with_context(|| format!("no module is named {name}"))?;
                let hint = format!("give --peer {name}=URL (or {}=URL)", peer_variable(module));
                let link = Link::Missing {
                    name,
                    hint: hint.clone(),
                };
                return Ok(((contract.missing)(hint), link));
            }
        };
        let mut peer = Peer::new(name, caller, &url, peers.timeout)
            .with_context(|| format!("cannot build the HTTP client for the {name} module"))?;
        if let Some(path) = &peers.token_file {
            peer = peer.with_token_file(TokenFile::new(path.clone()));
        }
        let peer = Arc::new(peer);
        Ok(((contract.over_http)(peer.clone()), Link::Remote(peer)))
    }

    /// Gives each module's handlers the state they run on.
    pub fn register(&self, cfg: &mut web::ServiceConfig) {
        self.states.iter().for_each(|state| state.register(cfg));
    }

    pub async fn close(&self) {
        self.tasks.iter().for_each(AbortHandle::abort);
        for (_, db) in &self.databases {
            db.close().await;
        }
    }
}
