//! The command line. Every flag also reads an `APP_` environment variable.

use app_kernel::db::Storage;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::modules::Module;

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
}

impl ServeArgs {
    pub fn modules(&self) -> Vec<Module> {
        selected(self.all, &self.module)
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
