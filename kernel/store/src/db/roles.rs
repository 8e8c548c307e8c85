//! One PostgreSQL role per module, so that the database, not a convention,
//! keeps each module to its own data.
//!
//! In database `app`, module `laptops` has two roles:
//!
//! - `app_laptops_owner` (no login) owns schema `laptops` and everything in
//!   it, and is the role its migrations run as;
//! - `app_laptops` (login) is what the module's pool connects as: it may
//!   use the schema and select, insert, update and delete in its tables and
//!   use its sequences, nothing else. It cannot change the schema, and it
//!   has no rights in any other module's schema.
//!
//! [`set_up`] makes them; it needs only a login with `CREATEROLE` that owns
//! the database, as managed PostgreSQL services give. Role names start with
//! the database's name, so two databases on one server do not share roles.

use std::borrow::Cow;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{AssertSqlSafe, ConnectOptions as _, Connection as _, PgExecutor};

/// The roles of one module in one database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    /// Connects, and reads and writes the module's tables.
    pub login: String,
    /// Owns the module's schema, and runs its migrations.
    pub owner: String,
}

/// PostgreSQL's longest identifier, in bytes.
const MAX_NAME: usize = 63;

impl Roles {
    pub fn of(database: &str, module: &str) -> Result<Self, String> {
        let roles = Self {
            login: format!("{database}_{module}"),
            owner: format!("{database}_{module}_owner"),
        };
        if roles.owner.len() > MAX_NAME {
            return Err(format!(
                "role {} is longer than PostgreSQL's {MAX_NAME} bytes: use a shorter database name",
                roles.owner
            ));
        }
        Ok(roles)
    }
}

/// One module's part in [`set_up`].
#[derive(Debug)]
pub struct Module<'a> {
    pub name: &'a str,
    /// The user and password of the URL the module will connect with: the
    /// user must be the module's login role, and the password becomes that
    /// role's. None: the role is made without a password, or keeps its own.
    pub login: Option<(&'a str, &'a str)>,
}

/// Why [`set_up`] changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum RolesError {
    #[error("{0}")]
    Refused(String),
    #[error("{context}: {source}")]
    Database {
        context: String,
        source: sqlx::Error,
    },
}

fn at(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> RolesError {
    let context = context.into();
    move |source| RolesError::Database { context, source }
}

/// Gives every module in `modules` its owner and login roles, its schema
/// owned by the owner and its grants, connected with `admin`: a role with
/// `CREATEROLE` that owns the database. Returns each statement it ran, in
/// order (a password as `'…'`), and what it found already so. It is
/// idempotent, and one transaction: when it fails, nothing changed.
pub async fn set_up(
    admin: &PgConnectOptions,
    modules: &[Module<'_>],
) -> Result<Vec<String>, RolesError> {
    // The statements carry password verifiers: never logged.
    let admin = admin.clone().disable_statement_logging();
    let mut conn = PgConnection::connect_with(&admin)
        .await
        .map_err(at("cannot connect with the database owner's URL"))?;
    let (database, version): (String, i32) =
        sqlx::query_as("select current_database(), current_setting('server_version_num')::int")
            .fetch_one(&mut conn)
            .await
            .map_err(at("cannot ask the server its version"))?;
    let mut run = Run {
        conn: conn.begin().await.map_err(at("cannot begin"))?,
        done: Vec::new(),
        version,
    };
    // Two runs at once queue instead of racing to create the same roles.
    run.quiet("select pg_advisory_xact_lock(hashtext('app db roles'))")
        .await?;
    if version >= 160_000 {
        // Roles this login creates, it may also SET to (PostgreSQL 16+).
        run.quiet("set local createrole_self_grant = 'set'").await?;
    }
    for module in modules {
        let roles = Roles::of(&database, module.name).map_err(RolesError::Refused)?;
        if let Some((user, _)) = module.login
            && user != roles.login
        {
            return Err(RolesError::Refused(format!(
                "the URL of module {} connects as {user}, but its role in database {database} is {}",
                module.name, roles.login
            )));
        }
        run.module(module, &roles).await?;
    }
    run.public_schema().await?;
    let Run { conn, done, .. } = run;
    conn.commit().await.map_err(at("cannot commit"))?;
    Ok(done)
}

/// [`set_up`]'s transaction, and what it has done so far.
struct Run<'c> {
    conn: sqlx::Transaction<'c, sqlx::Postgres>,
    done: Vec<String>,
    version: i32,
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl Run<'_> {
    async fn quiet(&mut self, sql: &str) -> Result<(), RolesError> {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(&mut *self.conn)
            .await
            .map_err(at(sql))?;
        Ok(())
    }

    /// Runs `sql` and reports it, as `shown` if given.
    async fn statement(&mut self, sql: String, shown: Option<String>) -> Result<(), RolesError> {
        let report = shown.unwrap_or_else(|| sql.clone());
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *self.conn)
            .await
            .map_err(at(report.clone()))?;
        self.done.push(format!("{report};"));
        Ok(())
    }

    fn already(&mut self, what: String) {
        self.done.push(format!("-- {what}"));
    }

    async fn module(&mut self, module: &Module<'_>, roles: &Roles) -> Result<(), RolesError> {
        let schema = quoted(module.name);
        let (owner, login) = (quoted(&roles.owner), quoted(&roles.login));
        self.role(&roles.owner, false).await?;
        self.role(&roles.login, true).await?;
        if let Some((_, password)) = module.login {
            let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
            self.statement(
                format!(
                    "alter role {login} password '{}'",
                    verifier.replace('\'', "''")
                ),
                Some(format!("alter role {login} password '…'")),
            )
            .await?;
        }
        self.may_set_role(&roles.owner).await?;
        let schema_owner: Option<String> = sqlx::query_scalar(
            "select pg_get_userbyid(nspowner)::text from pg_namespace where nspname = $1",
        )
        .bind(module.name)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(at("cannot read the schemas"))?;
        match schema_owner {
            None => {
                self.statement(
                    format!("create schema {schema} authorization {owner}"),
                    None,
                )
                .await?
            }
            Some(current) if current == roles.owner => {
                self.already(format!("schema {schema} is owned by {owner}"))
            }
            Some(_) => {
                self.statement(format!("alter schema {schema} owner to {owner}"), None)
                    .await?
            }
        }
        self.adopt(module.name, roles).await?;
        // The rest as the owner, whose objects these are.
        self.quiet(&format!("set local role {owner}")).await?;
        for sql in [
            format!("revoke all on schema {schema} from public"),
            format!("grant usage on schema {schema} to {login}"),
            format!(
                "grant select, insert, update, delete on all tables in schema {schema} to {login}"
            ),
            format!("grant usage on all sequences in schema {schema} to {login}"),
            format!(
                "alter default privileges in schema {schema} grant select, insert, update, delete on tables to {login}"
            ),
            format!(
                "alter default privileges in schema {schema} grant usage on sequences to {login}"
            ),
            // Functions the owner makes run for no one else unless granted.
            "alter default privileges revoke execute on routines from public".to_owned(),
        ] {
            self.statement(sql, None).await?;
        }
        self.quiet("reset role").await
    }

    /// Makes role `name` unless it exists, and refuses one with more rights
    /// than a module's role may have.
    async fn role(&mut self, name: &str, login: bool) -> Result<(), RolesError> {
        let found: Option<(bool, bool, bool, bool, bool)> = sqlx::query_as(
            "select rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls \
             from pg_roles where rolname = $1",
        )
        .bind(name)
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(at("cannot read the roles"))?;
        let Some((can_login, superuser, createrole, createdb, bypassrls)) = found else {
            let kind = if login { "login" } else { "nologin" };
            return self
                .statement(format!("create role {} {kind}", quoted(name)), None)
                .await;
        };
        let mut excess: Vec<&str> = [
            (superuser, "superuser"),
            (createrole, "createrole"),
            (createdb, "createdb"),
            (bypassrls, "bypassrls"),
            (can_login && !login, "login"),
        ]
        .into_iter()
        .filter_map(|(has, what)| has.then_some(what))
        .collect();
        let granted: Vec<String> = sqlx::query_scalar(
            "select r.rolname::text from pg_auth_members m \
             join pg_roles r on r.oid = m.roleid join pg_roles u on u.oid = m.member \
             where u.rolname = $1",
        )
        .bind(name)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(at("cannot read the roles' memberships"))?;
        let granted = granted.join(", ");
        if !granted.is_empty() {
            excess.push(&granted);
        }
        if !excess.is_empty() {
            return Err(RolesError::Refused(format!(
                "role {name} exists with more than a module's role may have ({}): alter or drop it",
                excess.join(", ")
            )));
        }
        if login && !can_login {
            return self
                .statement(format!("alter role {} login", quoted(name)), None)
                .await;
        }
        self.already(format!("role {} exists", quoted(name)));
        Ok(())
    }

    /// Lets this login act as `owner`: make its schema, and run its
    /// migrations. PostgreSQL 16 asks for the SET option, 15 for membership.
    async fn may_set_role(&mut self, owner: &str) -> Result<(), RolesError> {
        let privilege = if self.version >= 160_000 {
            "SET"
        } else {
            "MEMBER"
        };
        let may: bool = sqlx::query_scalar("select pg_has_role(current_user, $1, $2)")
            .bind(owner)
            .bind(privilege)
            .fetch_one(&mut *self.conn)
            .await
            .map_err(at("cannot read the roles' memberships"))?;
        if may {
            return Ok(());
        }
        let with = if self.version >= 160_000 {
            " with inherit false, set true"
        } else {
            ""
        };
        self.statement(
            format!("grant {} to current_user{with}", quoted(owner)),
            None,
        )
        .await
    }

    /// Hands the owner what another role made in the schema: the tables a
    /// database migrated before there were module roles.
    async fn adopt(&mut self, schema: &str, roles: &Roles) -> Result<(), RolesError> {
        // Sequences of identity and serial columns follow their tables.
        let strays: Vec<(String, String)> = sqlx::query_as(
            "select c.relname::text, c.relkind::text from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = $1 and c.relkind in ('r', 'p', 'v', 'm', 'f', 'S') \
               and pg_get_userbyid(c.relowner) <> $2 \
               and not exists (select from pg_depend d where d.classid = 'pg_class'::regclass \
                               and d.objid = c.oid and d.deptype in ('a', 'i')) \
             order by c.relname",
        )
        .bind(schema)
        .bind(&roles.owner)
        .fetch_all(&mut *self.conn)
        .await
        .map_err(at("cannot read the schema's tables"))?;
        for (name, kind) in strays {
            let kind = match kind.as_str() {
                "v" => "view",
                "m" => "materialized view",
                "f" => "foreign table",
                "S" => "sequence",
                _ => "table",
            };
            self.statement(
                format!(
                    "alter {kind} {}.{} owner to {}",
                    quoted(schema),
                    quoted(&name),
                    quoted(&roles.owner)
                ),
                None,
            )
            .await?;
        }
        Ok(())
    }

    /// No one may create in `public` but its owner: PostgreSQL 15's default
    /// for a new database, not for one upgraded or restored from an older.
    async fn public_schema(&mut self) -> Result<(), RolesError> {
        let (open, ours): (bool, bool) = sqlx::query_as(
            "select has_schema_privilege('public', n.oid, 'CREATE'), \
                    pg_has_role(current_user, n.nspowner, 'USAGE') \
             from pg_namespace n where n.nspname = 'public'",
        )
        .fetch_optional(&mut *self.conn)
        .await
        .map_err(at("cannot read schema public"))?
        .unwrap_or((false, false));
        match (open, ours) {
            (false, _) => {
                self.already("no one but its owner may create in schema public".into());
                Ok(())
            }
            (true, true) => {
                self.statement("revoke create on schema public from public".into(), None)
                    .await
            }
            (true, false) => Err(RolesError::Refused(
                "anyone may create in schema public, and this login cannot revoke that: \
                 have its owner run `revoke create on schema public from public`"
                    .into(),
            )),
        }
    }
}

/// What [`migrate`] ran the migrations as.
#[derive(Debug, PartialEq, Eq)]
pub enum MigratedAs {
    /// The module's owner role: [`set_up`] has been run.
    Owner(String),
    /// The login of the URL, where the module has no roles of its own.
    Login,
}

/// Applies `migrator` to `module`'s schema on a connection of its own
/// with `options`, as the module's owner role if it has one (so what the
/// migrations make is the owner's, and granted to the login role), else as
/// the URL's login.
pub async fn migrate(
    options: &PgConnectOptions,
    module: &str,
    migrator: &Migrator,
) -> Result<MigratedAs, MigrateError> {
    let mut conn = PgConnection::connect_with(options).await?;
    let database: String = sqlx::query_scalar("select current_database()")
        .fetch_one(&mut conn)
        .await?;
    let roles = Roles::of(&database, module).map_err(|e| MigrateError::Source(e.into()))?;
    let as_owner = if has_role(&mut conn, &roles.owner).await? {
        sqlx::raw_sql(AssertSqlSafe(format!("set role {}", quoted(&roles.owner))))
            .execute(&mut conn)
            .await?;
        true
    } else {
        false
    };
    // The owner may not create schemas; `set_up` made its own.
    let schemas = match as_owner {
        true => Cow::Borrowed(&[][..]),
        false => migrator.create_schemas.clone(),
    };
    let result = super::tolerant(migrator, schemas).run(&mut conn).await;
    conn.close().await?;
    result.map(|()| match as_owner {
        true => MigratedAs::Owner(roles.owner),
        false => MigratedAs::Login,
    })
}

async fn has_role(conn: impl PgExecutor<'_>, name: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("select exists (select from pg_roles where rolname = $1)")
        .bind(name)
        .fetch_one(conn)
        .await
}
