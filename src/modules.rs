//! The one place that knows every module: which exist, how each is mounted,
//! migrated and documented, and the state each runs on.

use actix_web::web;
use app_kernel::db::{Backend, Db, Storage};
use clap::ValueEnum;
use sqlx::migrate::Migrator;
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

/// The modules a process runs, each with its open database and its state.
#[derive(Clone)]
pub struct Running {
    pub databases: Vec<(Module, Db)>,
    states: Vec<State>,
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
        use anyhow::Context as _;
        let mut databases = Vec::with_capacity(modules.len());
        let mut states = Vec::with_capacity(modules.len());
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
            states.push(match module {
                Module::Laptops => {
                    State::Laptops(web::Data::new(laptops::Laptops::new(db.clone())))
                }
                Module::Ports => State::Ports(web::Data::new(ports::Ports::new(db.clone()))),
            });
            databases.push((module, db));
        }
        Ok(Self { databases, states })
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
        for (_, db) in &self.databases {
            db.close().await;
        }
    }
}
