//! The command line. Every flag also reads an `APP_` environment variable.

use std::time::Duration;

use app_kernel::db::{DEFAULT_MAX_CONNECTIONS, Storage};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;

use crate::modules::{self, Module, Peers};
use crate::startup::reachable;

/// A laptop catalogue built as domain modules: run them all in one process,
/// or any one alone as its own service.
#[derive(Debug, Parser)]
#[command(name = "app", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Where modules keep their data: `sqlite:DIR` (one file per module) or
    /// `postgres://user:password@host/db` (one schema per module).
    #[arg(
        long,
        global = true,
        env = "APP_DATABASE_URL",
        default_value = "sqlite:./data"
    )]
    pub database_url: Storage,

    /// The most PostgreSQL connections each module of this process opens.
    /// Keep replicas × modules × this below the server's `max_connections`.
    #[arg(
        long,
        global = true,
        env = "APP_DATABASE_MAX_CONNECTIONS",
        default_value_t = DEFAULT_MAX_CONNECTIONS,
        value_parser = clap::value_parser!(u32).range(1..=1000)
    )]
    pub database_max_connections: u32,

    /// How log lines look: `json` for machines, `pretty` for people.
    #[arg(long, global = true, env = "APP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API of every module (`--all`) or of some (`--module`).
    Serve(ServeArgs),
    /// Apply migrations and exit.
    Migrate(ModuleArgs),
    /// Print the OpenAPI document.
    Openapi(ModuleArgs),
    /// List the modules.
    Modules(ModulesArgs),
    /// Ask a running instance whether it is ready: exit 0 if its
    /// `/health/ready` answers 200, 1 if not. Needs no curl in a container.
    Healthcheck(HealthcheckArgs),
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Serve every module in this process.
    #[arg(
        long,
        env = "APP_ALL",
        conflicts_with = "module",
        required_unless_present = "module"
    )]
    pub all: bool,

    /// Serve this module; repeat for several.
    #[arg(long, env = "APP_MODULE", value_parser = module_name(), value_delimiter = ',')]
    pub module: Vec<&'static Module>,

    /// The address to listen on.
    #[arg(long, env = "APP_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Where a module this process needs but does not serve runs, as
    /// `MODULE=http://host:port` (for laptops: `ports=...`); repeat for
    /// several, the last for a module winning. A module no `--peer` names is
    /// looked up in `APP_PEER_<MODULE>` (`APP_PEER_PORTS=URL`), then in
    /// `APP_PEER` (`ports=URL,other=URL`).
    #[arg(long, value_name = "MODULE=URL", value_parser = parse_peer)]
    pub peer: Vec<(&'static Module, Url)>,

    /// How long one call to a peer may take, retries included, in milliseconds.
    #[arg(long, env = "APP_PEER_TIMEOUT_MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub peer_timeout_ms: u64,

    /// Reach even the modules of this process over HTTP, through its own
    /// listener, as if they ran apart: tests the split in one process.
    #[arg(long, env = "APP_PEER_LOOPBACK")]
    pub peer_loopback: bool,

    /// Do not apply migrations at start: `app migrate` does, once (a
    /// Kubernetes Job, say). Until then `/health/ready` answers 503.
    #[arg(long, env = "APP_NO_MIGRATE")]
    pub no_migrate: bool,
}

impl ServeArgs {
    pub fn modules(&self) -> Vec<&'static Module> {
        selected(self.all, &self.module)
    }

    /// Each module's peer from `--peer` (the last given), else
    /// `APP_PEER_<MODULE>`, else `APP_PEER`: the specific before the general.
    pub fn peers(&self) -> Result<Peers, String> {
        let mut urls: Vec<(&'static Module, Url)> = Vec::new();
        let mut add = |module: &'static Module, url: Url| {
            if !urls.iter().any(|(named, _)| *named == module) {
                urls.push((module, url));
            }
        };
        for (module, url) in self.peer.iter().rev() {
            add(module, url.clone());
        }
        for &module in modules::ALL {
            let variable = modules::peer_variable(module);
            if let Ok(raw) = std::env::var(&variable) {
                add(
                    module,
                    parse_url(&raw).map_err(|e| format!("{variable}: {e}"))?,
                );
            }
        }
        if let Ok(list) = std::env::var("APP_PEER") {
            for peer in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (module, url) = parse_peer(peer).map_err(|e| format!("APP_PEER: {e}"))?;
                add(module, url);
            }
        }
        Ok(Peers {
            urls,
            timeout: Duration::from_millis(self.peer_timeout_ms),
            loopback: self.peer_loopback,
        })
    }
}

/// A module's name, one of the list's; `--help` shows each with its summary.
fn module_name() -> impl TypedValueParser<Value = &'static Module> {
    let names = modules::ALL
        .iter()
        .map(|module| PossibleValue::new(module.name).help(module.summary));
    PossibleValuesParser::new(names)
        .map(|name| modules::named(&name).expect("a possible value is a module's name"))
}

/// `MODULE=URL`.
fn parse_peer(raw: &str) -> Result<(&'static Module, Url), String> {
    let (name, url) = raw.split_once('=').ok_or_else(|| {
        format!("expected MODULE=URL, as in ports=http://ports:8080, not {raw:?}")
    })?;
    let module = modules::named(name).ok_or_else(|| {
        let names: Vec<&str> = modules::ALL.iter().map(|m| m.name).collect();
        format!("no module is named {name:?}: one of {}", names.join(", "))
    })?;
    Ok((module, parse_url(url)?))
}

/// An `http://host[:port]` origin: calls between modules use plain HTTP.
fn parse_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if url.scheme() != "http" || url.host().is_none() {
        return Err(format!("{raw:?} must be an http://host:port URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{raw:?} must have no query or fragment"));
    }
    Ok(url)
}

#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The address the instance listens on, as given to `serve --bind`; an
    /// unspecified one (`0.0.0.0`) is asked on loopback.
    #[arg(long, env = "APP_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Ask `/health/live` instead: is the process serving at all?
    #[arg(long)]
    pub live: bool,

    /// How long to wait for the answer, in milliseconds.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub timeout_ms: u64,
}

impl HealthcheckArgs {
    /// The health endpoint to ask.
    pub fn url(&self) -> Result<Url, String> {
        let address = match self.bind.parse() {
            Ok(address) => reachable(address).to_string(),
            Err(_) => self.bind.clone(),
        };
        let path = if self.live { "live" } else { "ready" };
        parse_url(&format!("http://{address}/health/{path}"))
    }
}

#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// Only this module; repeat for several. Default: every module.
    #[arg(long, env = "APP_MODULE", value_parser = module_name(), value_delimiter = ',')]
    pub module: Vec<&'static Module>,
}

impl ModuleArgs {
    pub fn modules(&self) -> Vec<&'static Module> {
        selected(self.module.is_empty(), &self.module)
    }
}

#[derive(Debug, Args)]
pub struct ModulesArgs {
    /// One JSON array, for scripts and tests: each module's name, path,
    /// summary and the modules it needs.
    #[arg(long)]
    pub json: bool,
}

/// The modules chosen, in the list's order, each once.
fn selected(all: bool, chosen: &[&'static Module]) -> Vec<&'static Module> {
    modules::ALL
        .iter()
        .copied()
        .filter(|module| all || chosen.contains(module))
        .collect()
}
