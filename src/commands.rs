//! What each subcommand does.

use app_kernel::db::Storage;

use crate::cli::ServeArgs;
use crate::modules::{Module, Running};
use crate::startup::{Application, Settings};

pub async fn serve(args: ServeArgs, storage: Storage) -> anyhow::Result<()> {
    let settings = Settings {
        modules: args.modules(),
        peers: args.peers(),
        storage,
        bind: args.bind,
        workers: None,
        handle_signals: true,
    };
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await
}

pub async fn migrate(modules: &[Module], storage: &Storage) -> anyhow::Result<()> {
    let running = Running::open(modules, storage, true).await?;
    running.close().await;
    Ok(())
}

pub fn openapi(modules: &[Module]) -> anyhow::Result<()> {
    println!("{}", crate::http::docs::openapi(modules).to_pretty_json()?);
    Ok(())
}

pub fn modules() -> anyhow::Result<()> {
    for module in Module::ALL {
        println!(
            "{:<10} /api/v1/{:<10} {}",
            module.name(),
            module.name(),
            module.summary()
        );
    }
    Ok(())
}
