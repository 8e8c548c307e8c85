//! `app`: parses the command line, sets up logging and hands over to the library.

use std::process::ExitCode;

use app::cli::{Cli, Command, DbCommand, EventsCommand};
use app::{commands, telemetry};
use clap::Parser as _;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let rendered = error.to_string();
            let first = rendered
                .lines()
                .next()
                .unwrap_or("error: invalid arguments");
            // A rejected URL is quoted: not its password.
            eprintln!("{} (try 'app --help')", app::cli::redact_passwords(first));
            return ExitCode::from(2);
        }
    };
    let storage = match cli.storage() {
        Ok(storage) => storage,
        Err(error) => {
            eprintln!("error: {}", app::cli::redact_passwords(&error));
            return ExitCode::from(2);
        }
    };
    // Only a server exports spans.
    let traced = match &cli.command {
        Command::Serve(args) => Some(telemetry::Service {
            name: args.service_name(),
            backend: storage.backend(),
        }),
        _ => None,
    };
    let _flush_on_exit = match telemetry::init(cli.log_format, traced) {
        Ok(telemetry) => telemetry,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, storage)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", one_line(&error));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, without the repeats of causes
/// whose message already includes their source's.
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain().map(ToString::to_string) {
        if !line.contains(&cause) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&cause);
        }
    }
    line.replace('\n', " ")
}

async fn run(cli: Cli, storage: app_kernel::db::Storage) -> anyhow::Result<()> {
    let dev_key_file = cli.dev_key_file();
    match cli.command {
        Command::Serve(args) => commands::serve(*args, storage, dev_key_file).await,
        Command::Token(args) => commands::token(&args, &dev_key_file),
        Command::Migrate(args) => {
            let modules = args.modules.modules();
            if args.roles {
                commands::db_roles(&modules, &storage).await?;
            }
            commands::migrate(&modules, &storage).await
        }
        Command::Db(DbCommand::Roles(args)) => commands::db_roles(&args.modules(), &storage).await,
        Command::Openapi(args) => commands::openapi(&args.modules()),
        Command::Asyncapi(args) => commands::asyncapi(&args.modules()),
        Command::Events(EventsCommand::Dead(args)) => {
            commands::dead_events(&args.modules(), &storage).await
        }
        Command::Events(EventsCommand::Retry { id }) => commands::retry_event(&id, &storage).await,
        Command::Modules(args) => commands::modules(&args),
        Command::Healthcheck(args) => commands::healthcheck(&args).await,
    }
}
