//! The command line. Every flag also reads an `APP_` environment variable.

use std::path::PathBuf;
use std::time::Duration;

use app_kernel::broker::Broker;
use app_kernel::cache;
use app_kernel::db::{DEFAULT_MAX_CONNECTIONS, Storage};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use reqwest::Url;

use crate::modules::{self, Module, Peers};
use crate::security::{self, KeySource, Quota, Security, TrustedProxies};
use crate::startup::{Tls, reachable};
use crate::telemetry::LogFormat;

/// A laptop catalogue built as domain modules: run them all in one process,
/// or any one alone as its own service.
#[derive(Debug, Parser)]
#[command(name = "app", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Where modules keep their data: `sqlite:DIR` (one file per module) or
    /// `postgres://user:password@host/db` (one schema per module) [default:
    /// sqlite:./data]. On PostgreSQL a module with a URL of its own in
    /// `APP_DATABASE_URL_<MODULE>`, or in the file
    /// `APP_DATABASE_URL_<MODULE>_FILE` names, connects with that (its own
    /// role: `app db roles`); a postgres:// URL here is then the database
    /// owner's, which `app migrate` and `app db roles` use, and a sqlite:
    /// one goes unused.
    #[arg(long, global = true, env = "APP_DATABASE_URL")]
    pub database_url: Option<Storage>,

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

    /// The development signing key, made on first start when no JWKS or
    /// public key is given [default: dev-signing-key.pem in the SQLite
    /// directory, else in ./data].
    #[arg(long, global = true, env = "APP_DEV_KEY_FILE", value_name = "FILE")]
    pub dev_key_file: Option<PathBuf>,
}

impl Cli {
    /// Where the development key is: `--dev-key-file`, else beside the data.
    pub fn dev_key_file(&self) -> PathBuf {
        self.dev_key_file.clone().unwrap_or_else(|| {
            let dir = match &self.database_url {
                Some(Storage::Sqlite(dir)) => dir.clone(),
                _ => PathBuf::from("./data"),
            };
            dir.join(security::DEV_KEY_FILE)
        })
    }
}

impl Cli {
    /// Where each module keeps its data: `--database-url`, and each
    /// module's URL of its own.
    pub fn storage(&self) -> Result<Storage, String> {
        let own = own_database_urls()?
            .into_iter()
            .map(|(module, url)| (module.to_owned(), url));
        Storage::with_own_urls(self.database_url.clone(), own.collect())
            .map(|storage| storage.with_max_connections(self.database_max_connections))
    }
}

/// The variable holding `module`'s own database URL; with `_FILE` after
/// it, the variable naming a file that holds it.
pub fn own_url_variable(module: &Module) -> String {
    format!("APP_DATABASE_URL_{}", module.name.to_uppercase())
}

/// Each module's own PostgreSQL URL, from its variable or its file: never
/// from the command line, where every user of the machine could read it.
pub fn own_database_urls() -> Result<Vec<(&'static str, String)>, String> {
    let mut urls = Vec::new();
    for module in modules::ALL {
        let variable = own_url_variable(module);
        let file_variable = format!("{variable}_FILE");
        let url = match (std::env::var(&variable), std::env::var_os(&file_variable)) {
            (Ok(_), Some(_)) => {
                return Err(format!("give {variable} or {file_variable}, not both"));
            }
            (Ok(url), None) => url,
            (Err(_), Some(file)) => std::fs::read_to_string(&file)
                .map_err(|e| {
                    format!(
                        "cannot read {file_variable} ({}): {e}",
                        file.to_string_lossy()
                    )
                })?
                .trim()
                .to_owned(),
            (Err(_), None) => continue,
        };
        urls.push((module.name, url));
    }
    Ok(urls)
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API of every module (`--all`) or of some (`--module`).
    Serve(Box<ServeArgs>),
    /// Apply migrations and exit; on PostgreSQL, with `--database-url`,
    /// as each module's owner role where `app db roles` made one.
    Migrate(MigrateArgs),
    /// Set up the database: `app db roles`.
    #[command(subcommand)]
    Db(DbCommand),
    /// Print the OpenAPI document.
    Openapi(ModuleArgs),
    /// Print the AsyncAPI document of the modules' events.
    Asyncapi(ModuleArgs),
    /// The events modules failed to apply: list them, or ask for one again.
    #[command(subcommand)]
    Events(EventsCommand),
    /// List the modules.
    Modules(ModulesArgs),
    /// Ask a running instance whether it is ready: exit 0 if its
    /// `/health/ready` answers 200, 1 if not. Needs no curl in a container.
    Healthcheck(HealthcheckArgs),
    /// Print a bearer token signed with the development key, for trying the
    /// API (`Authorization: Bearer ...`, or Swagger UI's Authorize).
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// A scope the token grants, like `ports:write`; repeat for several.
    /// Default: every module's read and write scopes.
    #[arg(long)]
    pub scope: Vec<String>,

    /// How long the token is valid: `90s`, `15m`, `1h`, `7d`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,

    /// The token's subject (`sub`): whom rate limits count it as.
    #[arg(long, default_value = "developer")]
    pub subject: String,
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

    /// The bearer token of calls a module makes on its own (following
    /// another's changes), kept in this file and read again when it changes.
    #[arg(long, env = "APP_PEER_TOKEN_FILE", value_name = "FILE")]
    pub peer_token_file: Option<PathBuf>,

    #[command(flatten)]
    pub auth: AuthArgs,

    #[command(flatten)]
    pub limits: LimitArgs,

    /// Let browser pages of this origin call the API (CORS), like
    /// `https://app.example.com`; repeat or separate with commas. Default: none.
    #[arg(long, env = "APP_CORS_ORIGIN", value_delimiter = ',', value_parser = parse_origin)]
    pub cors_origin: Vec<String>,

    /// Serve `/metrics` on this address alone (`0.0.0.0:9090`), not on
    /// --bind, so a gateway in front of the API never exposes it.
    #[arg(long, env = "APP_METRICS_BIND", value_name = "ADDRESS")]
    pub metrics_bind: Option<String>,

    /// Record and serve metrics; `--metrics false` records nothing and
    /// serves no `/metrics`, wherever --metrics-bind says.
    #[arg(
        long,
        env = "APP_METRICS",
        value_name = "BOOL",
        default_value_t = true,
        action = clap::ArgAction::Set
    )]
    pub metrics: bool,

    /// Attempts at an event a module follows before it is dead-lettered
    /// (`app events dead` lists them); each retry waits twice as long, from
    /// 100 ms to 10 s.
    #[arg(
        long,
        env = "APP_EVENT_MAX_ATTEMPTS",
        value_name = "N",
        default_value_t = 5,
        value_parser = clap::value_parser!(u32).range(1..=100)
    )]
    pub event_max_attempts: u32,

    /// Carry events between processes through this RabbitMQ,
    /// `amqp://user:password@host:5672/vhost`: each module publishes its
    /// events to it, and follows others' from its own queue on it. Without
    /// one, a module reads the feeds of the modules it follows. Give a URL
    /// with a password through the variable, not the command line.
    #[arg(
        long,
        env = "APP_BROKER_URL",
        value_name = "URL",
        hide_env_values = true,
        value_parser = parse_broker
    )]
    pub broker: Option<Broker>,

    /// Resources each module keeps in memory for `GET` of one (and as many
    /// again with `expand=ports`); 0 turns the cache off.
    #[arg(
        long,
        env = "APP_CACHE_MAX_ENTRIES",
        value_name = "N",
        default_value_t = cache::Settings::default().max_entries
    )]
    pub cache_max_entries: u64,

    /// The most bytes of JSON each of those caches holds.
    #[arg(
        long,
        env = "APP_CACHE_MAX_BYTES",
        value_name = "BYTES",
        default_value_t = cache::Settings::default().max_bytes,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub cache_max_bytes: u64,

    /// The longest a replica serves a resource from memory after reading
    /// it, if the event of a write made elsewhere never reaches it (events
    /// usually drop it within milliseconds); older entries are read again.
    #[arg(
        long,
        env = "APP_CACHE_MAX_STALENESS",
        value_name = "DURATION",
        default_value = "1s",
        value_parser = humantime::parse_duration
    )]
    pub cache_max_staleness: Duration,

    /// Serve HTTPS (TLS 1.2 and 1.3) with this certificate chain, PEM; needs --tls-key.
    #[arg(long, env = "APP_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert, PEM.
    #[arg(long, env = "APP_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[group(id = "auth")]
pub struct AuthArgs {
    /// Reads need a token too, with `MODULE:read`; by default only writes
    /// (POST, PUT, PATCH, DELETE) do, with `MODULE:write`.
    #[arg(long, env = "APP_AUTH_READS")]
    pub auth_reads: bool,

    /// Check tokens against the keys an identity provider publishes (its
    /// JWKS URL: Keycloak, Auth0, Entra ID). Each key verifies the one
    /// algorithm its `alg` names, else RS256, ES256/ES384 or EdDSA by kind.
    #[arg(
        long,
        env = "APP_JWT_JWKS_URL",
        value_name = "URL",
        conflicts_with = "jwt_public_key"
    )]
    pub jwt_jwks_url: Option<Url>,

    /// Check tokens against this public key, PEM: RSA (RS256), EC (ES256
    /// or ES384 by curve) or Ed25519 (EdDSA).
    #[arg(long, env = "APP_JWT_PUBLIC_KEY", value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,

    /// The issuer (`iss`) a token must name. Without it, a token that
    /// names any issuer is refused.
    #[arg(long, env = "APP_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The audience (`aud`) a token must name. Without it, a token that
    /// names any audience is refused, and one naming none is believed.
    #[arg(long, env = "APP_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Serve with development keys although the address is reachable from
    /// other hosts. Without a JWKS or a public key, a process bound to a
    /// non-loopback address refuses to start unless this is given.
    #[arg(long, env = "APP_DEV_KEYS")]
    pub dev_keys: bool,
}

#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Reads each client may make: `100/s`, `6000/min`, `100/s,burst=200`.
    /// A client is its token's `sub`, else its address. Default: no limit.
    #[arg(long, env = "APP_RATE_LIMIT_READ", value_name = "RATE")]
    pub rate_limit_read: Option<Quota>,

    /// Writes each client may make, as for --rate-limit-read.
    #[arg(long, env = "APP_RATE_LIMIT_WRITE", value_name = "RATE")]
    pub rate_limit_write: Option<Quota>,

    /// Keep the buckets in this Redis, `redis://host:6379`, shared by every
    /// replica; alone, each process counts for itself. Give a URL with a
    /// password through the variable, not the command line.
    #[arg(
        long,
        env = "APP_RATE_LIMIT_REDIS",
        value_name = "URL",
        hide_env_values = true
    )]
    pub rate_limit_redis: Option<String>,

    /// The proxies (CIDRs or addresses, comma-separated) whose
    /// `X-Forwarded-For` names the client; from anyone else it is ignored.
    #[arg(long, env = "APP_TRUSTED_PROXIES", value_delimiter = ',', value_parser = security::client::parse_proxy)]
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl ServeArgs {
    pub fn modules(&self) -> Vec<&'static Module> {
        selected(self.all, &self.module)
    }

    /// How big each module's caches may grow, and how old what they serve.
    pub fn cache(&self) -> cache::Settings {
        cache::Settings {
            max_entries: self.cache_max_entries,
            max_bytes: self.cache_max_bytes,
            max_staleness: self.cache_max_staleness,
        }
    }

    /// The `service.name` of exported spans, unless the environment gives
    /// one: `app` for every module, else `app-` and the modules served.
    pub fn service_name(&self) -> String {
        if self.all {
            return "app".to_owned();
        }
        let names: Vec<&str> = self.modules().iter().map(|m| m.name).collect();
        format!("app-{}", names.join("-"))
    }

    /// How callers are checked, with the development key at `dev_key_file`
    /// when no JWKS or public key is given. Development keys on an address
    /// other hosts reach are refused unless `--dev-keys` says so.
    pub fn security(&self, dev_key_file: PathBuf) -> Result<Security, String> {
        let auth = &self.auth;
        let keys = match (&auth.jwt_jwks_url, &auth.jwt_public_key) {
            (Some(url), _) => KeySource::Jwks(url.clone()),
            (None, Some(path)) => KeySource::PublicKey(path.clone()),
            (None, None) => {
                if !auth.dev_keys && !loopback(&self.bind) {
                    return Err(format!(
                        "{} is reachable from other hosts, and no --jwt-jwks-url or \
                         --jwt-public-key is given: give one, or --dev-keys to serve with \
                         development keys on purpose",
                        self.bind
                    ));
                }
                KeySource::Development(dev_key_file)
            }
        };
        Ok(Security {
            keys,
            issuer: auth.jwt_issuer.clone(),
            audience: auth.jwt_audience.clone(),
            auth_reads: auth.auth_reads,
            read_limit: self.limits.rate_limit_read,
            write_limit: self.limits.rate_limit_write,
            redis: self.limits.rate_limit_redis.clone(),
            trusted_proxies: TrustedProxies(self.limits.trusted_proxies.clone()),
        })
    }

    pub fn tls(&self) -> Option<Tls> {
        Some(Tls {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
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
            token_file: self.peer_token_file.clone(),
        })
    }
}

/// Whether `bind` is reachable only from this host.
fn loopback(bind: &str) -> bool {
    match bind.parse::<std::net::SocketAddr>() {
        Ok(address) => address.ip().is_loopback(),
        Err(_) => bind
            .rsplit_once(':')
            .is_some_and(|(host, _)| host == "localhost"),
    }
}

/// `https://host[:port]`, as browsers send `Origin`.
fn parse_origin(raw: &str) -> Result<String, String> {
    let url = Url::parse(raw).map_err(|e| format!("{raw:?} is not an origin: {e}"))?;
    let origin = url.origin();
    if !origin.is_tuple() || url.path() != "/" || url.query().is_some() {
        return Err(format!(
            "{raw:?} is not an origin like https://app.example.com"
        ));
    }
    Ok(origin.ascii_serialization())
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
pub struct MigrateArgs {
    #[command(flatten)]
    pub modules: ModuleArgs,

    /// First set up each module's roles, as `app db roles` does: one step
    /// for a deployment's migration job.
    #[arg(long)]
    pub roles: bool,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Give each module PostgreSQL roles of its own, so that the database
    /// keeps it to its own schema: DATABASE_MODULE_owner (no login) owns
    /// the schema and runs its migrations; DATABASE_MODULE logs in, with
    /// the password of the module's URL, and may only read and write the
    /// schema's tables. Connects with `--database-url` (APP_DATABASE_URL),
    /// a role with CREATEROLE that owns the database; prints each statement
    /// it runs. Safe to run again: it changes only what is not so, and sets
    /// the passwords anew (to rotate them). Run `app migrate` after it.
    Roles(ModuleArgs),
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// List the dead-lettered events of the modules that follow events,
    /// as one JSON array: each with the module, feed, event, last error,
    /// attempts, when it failed and whether a retry was asked for.
    Dead(ModuleArgs),
    /// Ask the module that dead-lettered event ID to apply it again: its
    /// running follower does so within a second, and drops it from the
    /// list when that works. Exit 1 if no module holds the event.
    Retry {
        /// The event's `id`, as `app events dead` lists it.
        id: String,
    },
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

fn parse_broker(url: &str) -> Result<Broker, String> {
    Broker::parse(url)
}

/// `text` with the password of every `scheme://user:password@` in it
/// replaced by `***`: error messages quote the values they reject.
pub fn redact_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (head, tail) = rest.split_at(at + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || "'\"/@".contains(c))
            .unwrap_or(tail.len());
        let userinfo = &tail[..end];
        match (tail[end..].starts_with('@'), userinfo.split_once(':')) {
            (true, Some((user, _))) => {
                out.push_str(user);
                out.push_str(":***");
            }
            _ => out.push_str(userinfo),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}
