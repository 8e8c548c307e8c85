//! The command line. Every flag also reads an `APP_` environment variable.

use std::time::Duration;

use app_kernel::db::{DEFAULT_MAX_CONNECTIONS, Storage};
use clap::{Args, Parser, Subcommand, ValueEnum};
use reqwest::Url;

use crate::modules::{Module, Peers};
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
    Modules,
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
    #[arg(long, env = "APP_MODULE", value_enum, value_delimiter = ',')]
    pub module: Vec<Module>,

    /// The address to listen on.
    #[arg(long, env = "APP_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// Where a module this process needs but does not serve runs, as
    /// `MODULE=http://host:port` (for laptops: `ports=...`); repeat for several.
    #[arg(long, value_name = "MODULE=URL", value_parser = parse_peer)]
    pub peer: Vec<(Module, Url)>,

    /// The same as `--peer ports=URL`.
    #[arg(long, env = "APP_PEER_PORTS", value_name = "URL", value_parser = parse_url, hide_short_help = true)]
    pub peer_ports: Option<Url>,

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
    pub fn modules(&self) -> Vec<Module> {
        selected(self.all, &self.module)
    }

    pub fn peers(&self) -> Peers {
        let mut urls = self.peer.clone();
        if let Some(url) = &self.peer_ports
            && !urls.iter().any(|(module, _)| *module == Module::Ports)
        {
            urls.push((Module::Ports, url.clone()));
        }
        Peers {
            urls,
            timeout: Duration::from_millis(self.peer_timeout_ms),
            loopback: self.peer_loopback,
        }
    }
}

/// `MODULE=URL`.
fn parse_peer(raw: &str) -> Result<(Module, Url), String> {
    let (name, url) = raw.split_once('=').ok_or_else(|| {
        format!("expected MODULE=URL, as in ports=http://ports:8080, not {raw:?}")
    })?;
    let module = Module::from_str(name, false)?;
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
    #[arg(long, env = "APP_MODULE", value_enum, value_delimiter = ',')]
    pub module: Vec<Module>,
}

impl ModuleArgs {
    pub fn modules(&self) -> Vec<Module> {
        selected(self.module.is_empty(), &self.module)
    }
}

fn selected(all: bool, chosen: &[Module]) -> Vec<Module> {
    let mut modules = if all {
        Module::ALL.to_vec()
    } else {
        chosen.to_vec()
    };
    modules.sort();
    modules.dedup();
    modules
}
