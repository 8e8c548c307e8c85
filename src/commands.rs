//! What each subcommand does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use app_kernel::db::{Storage, roles};

use crate::cli::{HealthcheckArgs, ModulesArgs, ServeArgs, TokenArgs};
use crate::modules::{self, Module, Running};
use crate::security::DevKey;
use crate::startup::{Application, Metrics, Settings};
use app_kernel::module::Access;

pub async fn serve(args: ServeArgs, storage: Storage, dev_key_file: PathBuf) -> anyhow::Result<()> {
    let settings = Settings {
        migrate: !args.no_migrate,
        modules: args.modules(),
        peers: args.peers().map_err(anyhow::Error::msg)?,
        security: args.security(dev_key_file).map_err(anyhow::Error::msg)?,
        cors_origins: args.cors_origin.clone(),
        tls: args.tls(),
        metrics: match (&args.metrics_bind, args.metrics) {
            (_, false) => Metrics::Off,
            (Some(address), true) => Metrics::Apart(address.clone()),
            (None, true) => Metrics::WithApi,
        },
        delivery: app_kernel::event::Delivery {
            max_attempts: args.event_max_attempts,
        },
        broker: args.broker.clone(),
        cache: args.cache(),
        storage,
        bind: args.bind,
        workers: None,
        handle_signals: true,
    };
    settings.security.warn_of_missing_checks();
    let shared = sharing_one_role(&settings.modules, &settings.storage);
    let application = Application::build(settings).await?;
    // Once the databases opened: a start that fails says only why.
    if !shared.is_empty() {
        tracing::warn!(
            modules = shared.join(","),
            "these modules connect as one role that can read and write every module's schema: \
             module boundaries are not enforced by the database (give each module its own URL, \
             and see `app db roles`)"
        );
    }
    application.run_until_stopped().await
}

/// The modules served on PostgreSQL with one role for them all: nothing
/// but the code keeps each to its own schema.
fn sharing_one_role(modules: &[&'static Module], storage: &Storage) -> Vec<&'static str> {
    if storage.backend() != app_kernel::db::Backend::Postgres {
        return Vec::new();
    }
    modules
        .iter()
        .filter(|module| !storage.has_own_role(module.name))
        .map(|module| module.name)
        .collect()
}

pub async fn migrate(modules: &[&'static Module], storage: &Storage) -> anyhow::Result<()> {
    if let Some(module) = modules.iter().find(|m| !storage.may_migrate(m.name)) {
        anyhow::bail!(
            "module {} connects as a role of its own, which cannot change its schema: \
             give the database owner's URL in APP_DATABASE_URL to migrate",
            module.name
        );
    }
    let running = Running::open(modules, storage, true).await?;
    running.close().await;
    Ok(())
}

pub async fn db_roles(modules: &[&'static Module], storage: &Storage) -> anyhow::Result<()> {
    let Some(admin) = storage.shared_postgres() else {
        anyhow::bail!(
            "app db roles connects as the database's owner: give its postgres:// URL in APP_DATABASE_URL"
        );
    };
    let own = crate::cli::own_database_urls().map_err(anyhow::Error::msg)?;
    let mut logins = Vec::with_capacity(modules.len());
    for module in modules {
        let login = match own.iter().find(|(name, _)| *name == module.name) {
            Some((_, url)) => {
                let url = reqwest::Url::parse(url).map_err(|e| {
                    anyhow::anyhow!(
                        "the database URL of module {} is not a URL: {e}",
                        module.name
                    )
                })?;
                let decode = |part: &str| {
                    percent_encoding::percent_decode_str(part)
                        .decode_utf8()
                        .map(|decoded| decoded.into_owned())
                };
                let user = decode(url.username())?;
                let password = decode(url.password().unwrap_or_default())?;
                anyhow::ensure!(
                    !password.is_empty(),
                    "the database URL of module {} has no password",
                    module.name
                );
                Some((user, password))
            }
            None => None,
        };
        logins.push((module.name, login));
    }
    let modules: Vec<roles::Module<'_>> = logins
        .iter()
        .map(|(name, login)| roles::Module {
            name,
            login: login
                .as_ref()
                .map(|(user, password)| (user.as_str(), password.as_str())),
        })
        .collect();
    for module in modules.iter().filter(|m| m.login.is_none()) {
        println!(
            "-- module {}: no URL of its own ({}): its login role gets no password",
            module.name,
            crate::cli::own_url_variable(modules::named(module.name).expect("a module"))
        );
    }
    for line in roles::set_up(admin, &modules).await? {
        println!("{line}");
    }
    Ok(())
}

pub fn openapi(modules: &[&'static Module]) -> anyhow::Result<()> {
    println!("{}", crate::http::docs::openapi(modules).to_pretty_json()?);
    Ok(())
}

pub fn asyncapi(modules: &[&'static Module]) -> anyhow::Result<()> {
    let document = crate::asyncapi::asyncapi(modules);
    println!("{}", serde_json::to_string_pretty(&document)?);
    Ok(())
}

/// The databases of the modules among `modules` that follow events, and
/// so keep dead letters, opened without migrating.
async fn followers(
    modules: &[&'static Module],
    storage: &Storage,
) -> anyhow::Result<Vec<(&'static Module, app_kernel::db::Db)>> {
    let mut open = Vec::new();
    for &module in modules.iter().filter(|m| !m.follows.is_empty()) {
        let db = storage
            .open(module.name)
            .await
            .with_context(|| format!("cannot open the database of {}", module.name))?;
        open.push((module, db));
    }
    Ok(open)
}

pub async fn dead_events(modules: &[&'static Module], storage: &Storage) -> anyhow::Result<()> {
    let mut dead = Vec::new();
    for (module, db) in followers(modules, storage).await? {
        dead.extend(app_kernel::event::dead::list(&db, module.name).await?);
        db.close().await;
    }
    println!("{}", serde_json::to_string_pretty(&dead)?);
    Ok(())
}

pub async fn retry_event(id: &str, storage: &Storage) -> anyhow::Result<()> {
    for (module, db) in followers(modules::ALL, storage).await? {
        let found = app_kernel::event::dead::retry(&db, module.name, id).await?;
        db.close().await;
        if found {
            println!("{}: event {id} will be applied again", module.name);
            return Ok(());
        }
    }
    anyhow::bail!("no module holds a dead-lettered event {id}")
}

pub fn modules(args: &ModulesArgs) -> anyhow::Result<()> {
    if args.json {
        let list: Vec<serde_json::Value> = modules::ALL
            .iter()
            .map(|module| {
                let needs: Vec<&str> = module.needs.iter().map(|c| c.module).collect();
                serde_json::json!({
                    "name": module.name,
                    "path": module.path(),
                    "summary": module.summary,
                    "needs": needs,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for module in modules::ALL {
        println!(
            "{:<10} {:<18} {}",
            module.name,
            module.path(),
            module.summary
        );
    }
    Ok(())
}

/// Asks a running instance's health endpoint; an error unless it answers 2xx.
pub async fn healthcheck(args: &HealthcheckArgs) -> anyhow::Result<()> {
    let url = args.url().map_err(anyhow::Error::msg)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_millis(args.timeout_ms))
        .build()
        .context("cannot build an HTTP client")?;
    let response = client
        .get(url.clone())
        .send()
        .await
        .map_err(reqwest::Error::without_url)
        .with_context(|| format!("{url} did not answer"))?;
    let status = response.status();
    anyhow::ensure!(status.is_success(), "{url} answered {status}");
    println!("{url} answered {status}");
    Ok(())
}

/// Prints a token signed with the development key, making the key if this
/// is the first start.
pub fn token(args: &TokenArgs, dev_key_file: &Path) -> anyhow::Result<()> {
    let scopes: Vec<String> = if args.scope.is_empty() {
        modules::ALL
            .iter()
            .flat_map(|module| [Access::Read, Access::Write].map(|access| module.scope(access)))
            .collect()
    } else {
        args.scope.clone()
    };
    let key = DevKey::open(dev_key_file)?;
    println!("{}", key.token(&args.subject, &scopes, args.ttl)?);
    Ok(())
}
