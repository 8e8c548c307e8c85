//! What a module tells the binary about itself. Each module crate exports one
//! [`Module`]; the binary keeps the list of them and derives the rest from
//! it: routes, documents, migrations, health checks, peers and state.
//!
//! A module that others call has a contract crate, which exports a
//! [`Contract`]: how to reach the module over HTTP, and what answers when it
//! runs nowhere known. The module itself provides the in-process answer when
//! it starts ([`Started::provides`]). Which of the three a caller gets is the
//! binary's choice, made once at start; the caller holds an [`Api`] and
//! cannot tell.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::web;
use sqlx::migrate::Migrator;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::broker::Broker;
use crate::cache;
use crate::db::{Backend, Db};
use crate::event::{Delivery, EventType, Notifier};
pub use app_calls::contract::{Api, Contract};

/// A domain module, as the binary sees it.
pub struct Module {
    /// Its path segment (`/api/v1/NAME`), database schema and file, log
    /// field, peer name (`--peer NAME=URL`) and scope prefix.
    pub name: &'static str,
    /// One line: `app modules`, the OpenAPI tag, Swagger UI.
    pub summary: &'static str,
    /// The modules it calls, through their contracts.
    pub needs: &'static [&'static Contract],
    /// Its migrations on a backend, with their own history table.
    pub migrations: fn(Backend) -> &'static Migrator,
    /// Mounts its HTTP API, documented in OpenAPI as it is mounted.
    pub routes: fn(&mut ServiceConfig),
    /// Builds its state on its database and the modules it needs.
    pub start: fn(Start) -> anyhow::Result<Started>,
    /// The events it records of its changes.
    pub events: &'static [EventType],
    /// The events of other modules it follows, by type.
    pub follows: &'static [&'static str],
}

impl Module {
    /// Where its HTTP API is mounted.
    pub fn path(&self) -> String {
        format!("/api/v1/{}", self.name)
    }

    /// The OAuth scope a caller needs for `access` to its API:
    /// `laptops:read`, `laptops:write`.
    pub fn scope(&self, access: Access) -> String {
        format!("{}:{}", self.name, access.as_str())
    }
}

/// What an operation does to a module's data: GET and HEAD read, every
/// other method writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::Write => "write",
        }
    }
}

impl PartialEq for Module {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Module {}

impl fmt::Debug for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// What a module starts with.
pub struct Start {
    /// Its own database, opened and migrated.
    pub db: Db,
    needs: Vec<(&'static str, Api)>,
    /// How it treats the events it follows.
    pub events: Events,
    /// How big its caches of resources may grow, and how old what they
    /// serve may be.
    pub cache: cache::Settings,
}

/// How a module's events travel.
#[derive(Debug, Clone, Default)]
pub struct Events {
    /// How its followers treat events that fail.
    pub delivery: Delivery,
    /// What it tells after each commit of events: the relay and the
    /// followers of this process wait on it.
    pub committed: Notifier,
    /// The broker it follows others' events from, if any; without one, it
    /// reads their feeds.
    pub broker: Option<Broker>,
}

impl Start {
    /// `needs`: the API of every module named in [`Module::needs`].
    pub fn new(
        db: Db,
        needs: Vec<(&'static str, Api)>,
        events: Events,
        cache: cache::Settings,
    ) -> Self {
        Self {
            db,
            needs,
            events,
            cache,
        }
    }

    /// A cache of each of `views` of `module`'s resources, and the task
    /// that keeps them true to the writes of the module's other replicas:
    /// run it with [`Started::task`].
    pub fn caches<const N: usize>(
        &self,
        module: &'static str,
        views: [&'static str; N],
    ) -> ([cache::Cache; N], impl Future<Output = ()> + Send + 'static) {
        let caches = views.map(|view| cache::Cache::new(module, view, &self.cache));
        let invalidator = cache::Invalidator {
            db: self.db.clone(),
            module,
            broker: self.events.broker.clone(),
            caches: caches.to_vec(),
        };
        (caches, invalidator.run())
    }

    /// The API of the module `contract` is for, as `T`.
    pub fn api<T: Any + Clone>(&self, contract: &Contract) -> anyhow::Result<T> {
        let (_, api) = self
            .needs
            .iter()
            .find(|(name, _)| *name == contract.module)
            .ok_or_else(|| {
                anyhow::anyhow!("the {} module was not listed in needs", contract.module)
            })?;
        api.get().ok_or_else(|| {
            anyhow::anyhow!(
                "the {} module's API is not of the contract's type",
                contract.module
            )
        })
    }
}

/// Work a module runs in the background for as long as the process serves.
pub type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

type Register = Arc<dyn Fn(&mut web::ServiceConfig) + Send + Sync>;

/// What a started module hands the binary.
#[derive(Default)]
pub struct Started {
    state: State,
    tasks: Vec<Task>,
    provides: Option<Api>,
}

/// The state a module's handlers find in `web::Data`.
#[derive(Clone, Default)]
pub struct State(Vec<Register>);

impl State {
    /// Gives the module's handlers their state.
    pub fn register(&self, cfg: &mut web::ServiceConfig) {
        self.0.iter().for_each(|register| register(cfg));
    }
}

impl Started {
    pub fn new() -> Self {
        Self::default()
    }

    /// State its handlers find as `web::Data<T>`.
    pub fn data<T: Send + Sync + 'static>(mut self, data: web::Data<T>) -> Self {
        self.state.0.push(Arc::new(move |cfg| {
            cfg.app_data(data.clone());
        }));
        self
    }

    /// Work to run in the background; it is stopped when the server stops.
    pub fn task(mut self, task: impl Future<Output = ()> + Send + 'static) -> Self {
        self.tasks.push(Box::pin(task));
        self
    }

    /// Its contract's API, answered in this process, for the modules of
    /// this process that need it.
    pub fn provides(mut self, api: Api) -> Self {
        self.provides = Some(api);
        self
    }

    /// Its state, its background work, and the API it provides.
    pub fn into_parts(self) -> (State, Vec<Task>, Option<Api>) {
        (self.state, self.tasks, self.provides)
    }
}
