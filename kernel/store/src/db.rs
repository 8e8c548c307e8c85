//! Storage handles: which backend a module's data lives on, how to open it,
//! migrate it and tell whether it is ready, and how its errors reach clients.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use sqlx::migrate::{Migrate, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPoolOptions, Postgres};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Database, Sqlite};

pub use crate::error::{Cause, StoreError};

mod commit;
mod group;
pub mod roles;
pub use commit::{Write, json_column, time_column};
pub use group::{Group, Grouped, Traced};

/// How long a request waits for a connection before it answers 503.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(1);
/// The most PostgreSQL connections a module's pool opens, unless told.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 16;
/// How long start-up waits for PostgreSQL to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// PostgreSQL's `statement_timeout`: the longest a query may run.
const STATEMENT_TIMEOUT: &str = "5s";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where every module keeps its data, from `--database-url`.
#[derive(Debug, Clone)]
pub enum Storage {
    /// One SQLite file per module in this directory.
    Sqlite(PathBuf),
    /// One PostgreSQL database, one schema per module.
    Postgres {
        /// The URL of modules with none of their own: in development, one
        /// role for every module; in production, the database's owner,
        /// which sets up roles and migrates.
        shared: Option<Box<PgConnectOptions>>,
        /// Modules that connect as a role of their own ([`roles`]).
        own: Vec<(String, Box<PgConnectOptions>)>,
        /// The most connections each module's pool opens.
        max_connections: u32,
    },
}

impl FromStr for Storage {
    type Err = String;

    /// `sqlite:DIR` (or `sqlite://DIR`) or `postgres://...` (`postgresql://...`).
    fn from_str(url: &str) -> Result<Self, String> {
        if let Some(dir) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if dir.is_empty() {
                return Err("a sqlite URL names a directory, as in sqlite:./data".into());
            }
            return Ok(Self::Sqlite(PathBuf::from(dir)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return PgConnectOptions::from_str(url)
                .map(|options| Self::Postgres {
                    shared: Some(Box::new(options)),
                    own: Vec::new(),
                    max_connections: DEFAULT_MAX_CONNECTIONS,
                })
                .map_err(|e| format!("not a valid PostgreSQL URL: {e}"));
        }
        Err("expected sqlite:DIR or postgres://user:password@host/database".into())
    }
}

impl Storage {
    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres { .. } => Backend::Postgres,
        }
    }

    /// Storage where each module in `own` connects with its own URL (a
    /// role of its own), and the others with `shared`. A URL of its own
    /// means PostgreSQL: a SQLite `shared` (an image's default) then goes
    /// unused, and a module with no URL has none. With no URL at all, SQLite
    /// in `./data`.
    pub fn with_own_urls(
        shared: Option<Storage>,
        own: Vec<(String, String)>,
    ) -> Result<Self, String> {
        let own = own
            .into_iter()
            .map(|(module, url)| match url.parse::<Storage>() {
                Ok(Self::Postgres { shared: Some(options), .. }) => Ok((module, options)),
                _ => Err(format!(
                    "the database URL of module {module} is not a PostgreSQL URL (postgres://user:password@host/database)"
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        match (shared, own.is_empty()) {
            (shared, true) => Ok(shared.unwrap_or_else(|| Self::Sqlite(PathBuf::from("./data")))),
            (Some(Self::Postgres { shared, .. }), false) => Ok(Self::Postgres {
                shared,
                own,
                max_connections: DEFAULT_MAX_CONNECTIONS,
            }),
            (None | Some(Self::Sqlite(_)), false) => Ok(Self::Postgres {
                shared: None,
                own,
                max_connections: DEFAULT_MAX_CONNECTIONS,
            }),
        }
    }

    /// Whether `module` connects as a role of its own, which cannot
    /// migrate its schema.
    pub fn has_own_role(&self, module: &str) -> bool {
        match self {
            Self::Sqlite(_) => false,
            Self::Postgres { own, .. } => own.iter().any(|(name, _)| name == module),
        }
    }

    /// Whether this process can migrate `module`: not when it has only the
    /// module's own role, which cannot change its schema.
    pub fn may_migrate(&self, module: &str) -> bool {
        !self.has_own_role(module) || self.shared_postgres().is_some()
    }

    /// The shared URL's options, on PostgreSQL.
    pub fn shared_postgres(&self) -> Option<&PgConnectOptions> {
        match self {
            Self::Postgres { shared, .. } => shared.as_deref(),
            Self::Sqlite(_) => None,
        }
    }

    /// The options `module` connects with on PostgreSQL: its own URL, else the shared one.
    pub fn postgres_for(&self, module: &str) -> Option<&PgConnectOptions> {
        match self {
            Self::Sqlite(_) => None,
            Self::Postgres { shared, own, .. } => own
                .iter()
                .find(|(name, _)| name == module)
                .map(|(_, options)| options.as_ref())
                .or(shared.as_deref()),
        }
    }

    /// Applies `migrator` to `module`'s data in `db`: on PostgreSQL over a
    /// connection of its own, with the shared URL, as the module's owner
    /// role where it has one.
    pub async fn migrate(
        &self,
        module: &str,
        db: &Db,
        migrator: &Migrator,
    ) -> Result<(), sqlx::migrate::MigrateError> {
        match (self, db) {
            (Self::Postgres { shared: Some(options), .. }, Db::Postgres(_)) => {
                let migrated = roles::migrate(options, module, migrator).await?;
                if let roles::MigratedAs::Owner(owner) = migrated {
                    tracing::debug!(module, owner, "migrated as the module's owner role");
                }
                Ok(())
            }
            (Self::Postgres { shared: None, .. }, _) => Err(sqlx::migrate::MigrateError::Source(
                format!(
                    "module {module} connects as a role of its own, which cannot change its schema: \
                     migrate with the database owner's URL (APP_DATABASE_URL)"
                )
                .into(),
            )),
            _ => db.migrate(migrator).await,
        }
    }

    /// At most `max` PostgreSQL connections per module; SQLite's pools are fixed.
    pub fn with_max_connections(mut self, max: u32) -> Self {
        if let Self::Postgres {
            max_connections, ..
        } = &mut self
        {
            *max_connections = max;
        }
        self
    }

    /// Opens the pool of one module, failing fast when the database is unreachable.
    pub async fn open(&self, module: &str) -> Result<Db, sqlx::Error> {
        match self {
            Self::Sqlite(dir) => {
                std::fs::create_dir_all(dir)?;
                let file = dir.join(format!("{module}.db"));
                let options = SqliteConnectOptions::new()
                    .filename(&file)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    // An acknowledged write is on disk before the response leaves.
                    .synchronous(SqliteSynchronous::Full)
                    .busy_timeout(Duration::from_secs(5));
                let pool = SqlitePoolOptions::new()
                    .max_connections(8)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?;
                // SQLite commits one writer at a time, each with an fsync:
                // writes that wait are committed together.
                let mut pool = Pool::new(pool, module);
                pool.writer = Some(commit::Writer::start(module, file)?);
                Ok(Db::Sqlite(pool))
            }
            Self::Postgres {
                max_connections, ..
            } => {
                let Some(options) = self.postgres_for(module) else {
                    return Err(sqlx::Error::Configuration(
                        format!(
                            "no database URL for module {module}: give APP_DATABASE_URL_{} or --database-url",
                            module.to_uppercase()
                        )
                        .into(),
                    ));
                };
                // One direct connection first: a pool that cannot connect only
                // says it timed out, this says why (refused, unknown host, auth).
                let options = options
                    .clone()
                    .application_name(&format!("app-{module}"))
                    // A query never holds a request longer than this.
                    .options([("statement_timeout", STATEMENT_TIMEOUT)]);
                let probe =
                    tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options));
                let no_answer =
                    || std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer within 5 s");
                probe.await.map_err(|_| no_answer())??.close().await?;
                let pool = PgPoolOptions::new()
                    .max_connections(*max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?;
                Ok(Db::Postgres(Pool::new(pool, module)))
            }
        }
    }
}

/// A module's connection pool, which times every wait for a connection in
/// `app_db_pool_wait_seconds{module}`.
///
/// It is not an executor: a store asks for a connection here, and begins
/// its transactions on that, so no wait goes unmeasured; or, on SQLite, it
/// hands a write to [`Pool::write`].
pub struct Pool<DB: Database> {
    pool: sqlx::Pool<DB>,
    wait: metrics::Histogram,
    /// SQLite's group commit, where a module's writes wait.
    writer: Option<commit::Writer>,
}

impl<DB: Database> Pool<DB> {
    /// The wait is recorded where the process's recorder is, so that is
    /// installed first; without one, recording costs a clock read.
    fn new(pool: sqlx::Pool<DB>, module: &str) -> Self {
        let wait = metrics::histogram!("app_db_pool_wait_seconds", "module" => module.to_owned());
        Self {
            pool,
            wait,
            writer: None,
        }
    }

    /// A connection of the pool, after at most the acquire timeout.
    pub async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        let asked = Instant::now();
        let connection = self.pool.acquire().await;
        self.wait.record(asked.elapsed());
        connection
    }

    /// The pool itself, for migrations and checks outside requests.
    pub fn sqlx(&self) -> &sqlx::Pool<DB> {
        &self.pool
    }
}

impl<DB: Database> Clone for Pool<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            wait: self.wait.clone(),
            writer: self.writer.clone(),
        }
    }
}

impl Pool<Sqlite> {
    /// Runs `work` in a transaction of its own, and returns what it did
    /// once that is on disk. The transaction is a savepoint in a group
    /// commit's (see [`commit`]): an error undoes `work` alone, and the
    /// result waits for the group's commit. `work` returning an error
    /// changes nothing; it must not begin transactions itself.
    pub async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Write<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        match &self.writer {
            Some(writer) => writer.write(work).await,
            None => Err(StoreError::Unavailable("the pool takes no writes".into())),
        }
    }
}

impl<DB: Database> std::fmt::Debug for Pool<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.pool.fmt(f)
    }
}

/// One module's connection pool.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite(Pool<Sqlite>),
    Postgres(Pool<Postgres>),
}

impl Db {
    /// Connections open, and of those idle: for metrics.
    pub fn connections(&self) -> (u32, usize) {
        match self {
            Self::Sqlite(pool) => (pool.pool.size(), pool.pool.num_idle()),
            Self::Postgres(pool) => (pool.pool.size(), pool.pool.num_idle()),
        }
    }

    pub fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(_) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Applies the migrations of `migrator` not yet applied. Those applied
    /// by a newer release, unknown to this binary, are left alone (modules
    /// are deployed one at a time: the last release keeps serving on the
    /// schema the next migrated to); a known one whose checksum changed is
    /// still refused.
    pub async fn migrate(&self, migrator: &Migrator) -> Result<(), sqlx::migrate::MigrateError> {
        let migrator = tolerant(migrator, migrator.create_schemas.clone());
        match self {
            Self::Sqlite(pool) => migrator.run(&pool.pool).await,
            Self::Postgres(pool) => migrator.run(&pool.pool).await,
        }
    }

    /// Whether the database answers and holds every migration of `migrator`.
    pub async fn check_ready(&self, migrator: &Migrator) -> Result<(), String> {
        let applied = match self {
            Self::Sqlite(pool) => {
                if pool.writer.as_ref().is_some_and(commit::Writer::stopped) {
                    return Err("the group commit has stopped: writes cannot be committed".into());
                }
                let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
                conn.list_applied_migrations(&migrator.table_name).await
            }
            Self::Postgres(pool) => {
                let mut conn = pool.acquire().await.map_err(|e| e.to_string())?;
                conn.list_applied_migrations(&migrator.table_name).await
            }
        }
        .map_err(|e| e.to_string())?;
        let pending = migrator
            .iter()
            .filter(|m| m.migration_type.is_up_migration())
            .filter(|m| !applied.iter().any(|a| a.version == m.version))
            .count();
        match pending {
            0 => Ok(()),
            n => Err(format!("{n} migration(s) not applied")),
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(pool) => {
                if let Some(writer) = &pool.writer {
                    writer.close().await;
                }
                pool.pool.close().await
            }
            Self::Postgres(pool) => pool.pool.close().await,
        }
    }
}

/// `migrator`, creating `create_schemas`, that leaves alone the migrations
/// applied by a newer binary.
pub(crate) fn tolerant(
    migrator: &Migrator,
    create_schemas: std::borrow::Cow<'static, [std::borrow::Cow<'static, str>]>,
) -> Migrator {
    Migrator {
        migrations: migrator.migrations.clone(),
        ignore_missing: true,
        locking: migrator.locking,
        no_tx: migrator.no_tx,
        table_name: migrator.table_name.clone(),
        create_schemas,
    }
}
