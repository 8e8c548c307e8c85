//! On PostgreSQL each module connects as a role of its own, and the
//! database refuses it everything outside its own schema: `app db roles`
//! sets the roles up as a database owner that is no superuser, as on
//! managed PostgreSQL, and `app migrate` runs each module's migrations as
//! its owner role.

use std::fmt::Write as _;
use std::process::{Command, Output, Stdio};

use sqlx::Connection as _;

use crate::process::Process;
use crate::split::{create_port, port_and_laptop, rename_port};

/// A fresh database owned by a login with CREATEROLE and nothing more.
struct Database {
    name: String,
    port: u16,
    /// The owner's URL: APP_DATABASE_URL of `db roles` and `migrate`.
    admin: String,
    /// Each module's own URL, with its password.
    modules: Vec<(&'static str, String, String)>,
}

impl Database {
    async fn new() -> Database {
        let superuser = crate::postgres::shared().fresh_database().await;
        let (server, name) = superuser.rsplit_once('/').unwrap();
        let port: u16 = server.rsplit_once(':').unwrap().1.parse().unwrap();
        let admin_role = format!("{name}_admin");
        let mut conn = sqlx::PgConnection::connect(&superuser).await.unwrap();
        for sql in [
            format!("create role {admin_role} login createrole password 'owner-secret'"),
            format!("alter database {name} owner to {admin_role}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        let modules = app::modules::ALL
            .iter()
            .map(|module| {
                // Characters a URL must escape, which the role's password keeps.
                let password = format!("{}/p@ss:{}", module.name, uuid::Uuid::new_v4().simple());
                let escaped = password
                    .replace('/', "%2F")
                    .replace('@', "%40")
                    .replace(':', "%3A");
                let url = format!(
                    "postgres://{name}_{}:{escaped}@127.0.0.1:{port}/{name}",
                    module.name
                );
                (module.name, url, password)
            })
            .collect();
        Database {
            admin: format!("postgres://{admin_role}:owner-secret@127.0.0.1:{port}/{name}"),
            name: name.to_owned(),
            port,
            modules,
        }
    }

    fn superuser(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, self.name)
    }

    /// Each module's URL from its variable, but the last one's from a file.
    fn module_env(&self, dir: &std::path::Path) -> Vec<(String, String)> {
        let last = self.modules.len() - 1;
        self.modules
            .iter()
            .enumerate()
            .map(|(i, (module, url, _))| {
                let variable = format!("APP_DATABASE_URL_{}", module.to_uppercase());
                if i < last {
                    return (variable, url.clone());
                }
                let file = dir.join(module);
                std::fs::write(&file, format!("{url}\n")).unwrap();
                (format!("{variable}_FILE"), file.display().to_string())
            })
            .collect()
    }

    /// `app args...` with exactly `env`.
    fn app(&self, args: &[&str], env: &[(String, String)]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_app"))
            .args(args)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("the binary runs")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The statement of an operation on a table (`schema.table`) and a column of it.
type Statement = fn(&str, &str) -> String;

/// The SQLSTATE of `sql` run as `conn`'s role: "ok" when it succeeds.
async fn attempt(conn: &mut sqlx::PgConnection, sql: &str) -> String {
    match sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut *conn)
        .await
    {
        Ok(_) => "ok".into(),
        Err(sqlx::Error::Database(error)) => error.code().unwrap_or_default().into_owned(),
        Err(error) => panic!("{sql}: {error}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_module_role_can_do_its_own_work_and_nothing_in_any_other_schema() {
    let database = Database::new().await;
    let dir = tempfile::tempdir().unwrap();
    let modules = database.module_env(dir.path());
    let mut owner_env = modules.clone();
    owner_env.push(("APP_DATABASE_URL".into(), database.admin.clone()));
    let name = &database.name;

    // A URL naming another role is refused, and changes nothing.
    let (first, _, _) = database.modules[0];
    let variable = format!("APP_DATABASE_URL_{}", first.to_uppercase());
    let mut wrong: Vec<(String, String)> = owner_env
        .iter()
        .filter(|(k, _)| !k.starts_with(&variable))
        .cloned()
        .collect();
    wrong.push((
        variable.clone(),
        format!("postgres://someone:pw@127.0.0.1:{}/{name}", database.port),
    ));
    let refused = database.app(&["db", "roles"], &wrong);
    let err = text(&refused.stderr);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "connects as someone, but its role in database {name} is {name}_{first}"
        )),
        "{err}"
    );
    let mut superuser = sqlx::PgConnection::connect(&database.superuser())
        .await
        .unwrap();
    let made: i64 = sqlx::query_scalar(
        "select count(*) from pg_roles where starts_with(rolname, $1) and rolname <> $1 || '_admin'",
    )
    .bind(name)
    .fetch_one(&mut superuser)
    .await
    .unwrap();
    assert_eq!(made, 0, "a refused run makes no role");

    // The roles, made by the database's owner, which is no superuser.
    let made = database.app(&["db", "roles"], &owner_env);
    let (out, err) = (text(&made.stdout), text(&made.stderr));
    assert!(made.status.success(), "{out}{err}");
    eprintln!("app db roles, on a fresh database:\n{out}");
    for (module, _, password) in &database.modules {
        for line in [
            format!("create role \"{name}_{module}_owner\" nologin;"),
            format!("create role \"{name}_{module}\" login;"),
            format!("alter role \"{name}_{module}\" password '…';"),
            format!("create schema \"{module}\" authorization \"{name}_{module}_owner\";"),
            format!("grant usage on schema \"{module}\" to \"{name}_{module}\";"),
            format!("revoke all on schema \"{module}\" from public;"),
        ] {
            assert!(out.lines().any(|l| l == line), "no `{line}` in:\n{out}");
        }
        assert!(!out.contains(password.as_str()) && !err.contains(password.as_str()));
        assert!(!out.contains("SCRAM-SHA-256"), "{out}");
    }
    // Again: nothing to make, the passwords set anew.
    let again = database.app(&["db", "roles"], &owner_env);
    let again_out = text(&again.stdout);
    assert!(again.status.success(), "{again_out}{}", text(&again.stderr));
    assert!(
        !again_out.contains("create role") && !again_out.contains("create schema"),
        "{again_out}"
    );
    assert!(
        again_out.contains(&format!("-- role \"{name}_{first}\" exists")),
        "{again_out}"
    );

    // Served before the migrations are in: up, but not ready.
    let log = dir.path().join("serve.log");
    let port = crate::process::free_port();
    let mut serve_env: Vec<(String, String)> = modules.clone();
    serve_env.extend([
        ("APP_BIND".into(), format!("127.0.0.1:{port}")),
        (
            "APP_JWT_PUBLIC_KEY".into(),
            crate::auth::public_key_path().display().to_string(),
        ),
        ("RUST_LOG".into(), "info".into()),
    ]);
    let mut command = crate::process::as_container(&["serve".into(), "--all".into()], &serve_env);
    command.stderr(Stdio::from(std::fs::File::create(&log).unwrap()));
    crate::process::die_with_parent(&mut command, libc::SIGKILL);
    let mut child = command.spawn().unwrap();
    let server = format!("http://127.0.0.1:{port}");
    let ready = async || -> Option<u16> {
        let response = reqwest::get(format!("{server}/health/ready")).await;
        response.ok().map(|response| response.status().as_u16())
    };
    crate::helpers::until("up, and not ready: no migrations", async || {
        ready().await == Some(503)
    })
    .await;

    let migrated = database.app(&["migrate"], &owner_env);
    assert!(migrated.status.success(), "{}", text(&migrated.stderr));
    crate::helpers::until("ready once migrated", async || ready().await == Some(200)).await;

    // Every module's own work, each as its role: writes, and an event from
    // ports applied by laptops.
    let client = crate::auth::client();
    let (usb, laptop) = port_and_laptop(&client, &server).await;
    rename_port(&client, &server, usb, "USB4").await;
    let expand = format!("{server}{laptop}?expand=ports");
    crate::helpers::until("laptops apply ports' rename", async || {
        crate::helpers::json_at(&client, expand.clone()).await["ports"][0]["name"] == "USB4"
    })
    .await;
    let deleted = client
        .delete(format!("{server}{laptop}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    child.wait().unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(!logged.contains("not enforced"), "{logged}");
    assert!(!logged.contains("permission denied"), "{logged}");

    // What each schema holds belongs to its owner role.
    for (module, _, _) in &database.modules {
        let strays: Vec<String> = sqlx::query_scalar(
            "select c.relname::text from pg_class c join pg_namespace n on n.oid = c.relnamespace \
             where n.nspname = $1 and pg_get_userbyid(c.relowner) <> $2",
        )
        .bind(module)
        .bind(format!("{name}_{module}_owner"))
        .fetch_all(&mut superuser)
        .await
        .unwrap();
        assert!(strays.is_empty(), "{module}: not the owner's: {strays:?}");
    }

    // A table of each schema, and a column to write, to aim at; and one in
    // public that the database's owner made.
    let mut admin = sqlx::PgConnection::connect(&database.admin).await.unwrap();
    sqlx::query("create table public.probe (id int, note text)")
        .execute(&mut admin)
        .await
        .unwrap();
    let mut targets = vec![("public".to_owned(), "probe".to_owned(), "note".to_owned())];
    for (module, _, _) in &database.modules {
        let (table, column): (String, String) = sqlx::query_as(
            "select c.relname::text, a.attname::text from pg_class c \
             join pg_namespace n on n.oid = c.relnamespace \
             join pg_attribute a on a.attrelid = c.oid \
             where n.nspname = $1 and c.relkind = 'r' and c.relname <> '_sqlx_migrations' \
               and a.attnum > 0 and not a.attisdropped and a.attidentity = '' and a.attgenerated = '' \
             order by c.relname, a.attnum limit 1",
        )
        .bind(module)
        .fetch_one(&mut superuser)
        .await
        .unwrap();
        targets.push((module.to_string(), table, column));
    }

    let operations: [(&str, Statement); 6] = [
        ("select", |t, _| format!("select * from {t} where false")),
        ("insert", |t, c| {
            format!("insert into {t} ({c}) select {c} from {t} where false")
        }),
        ("update", |t, c| {
            format!("update {t} set {c} = {c} where false")
        }),
        ("delete", |t, _| format!("delete from {t} where false")),
        ("create", |t, _| {
            let schema = t.split('.').next().unwrap();
            format!("create table {schema}.intruder (id int)")
        }),
        ("alter", |t, _| {
            format!("alter table {t} add column intruder int")
        }),
    ];
    let mut matrix = String::new();
    let (mut cells, mut wrong) = (0, Vec::new());
    for (module, _, password) in &database.modules {
        // With the password, over SCRAM: the verifier `db roles` stored works.
        let options = sqlx::postgres::PgConnectOptions::new()
            .host("127.0.0.1")
            .port(database.port)
            .database(name)
            .username(&format!("{name}_{module}"))
            .password(password);
        let mut conn = sqlx::PgConnection::connect_with(&options).await.unwrap();
        for (schema, table, column) in &targets {
            let target = format!("{schema}.{table}");
            let _ = write!(matrix, "{module:>10} in {schema:<10}");
            for (operation, sql) in &operations {
                let got = attempt(&mut conn, &sql(&target, column)).await;
                let own = schema == module;
                let expected = match *operation {
                    "select" | "insert" | "update" | "delete" if own => "ok",
                    _ => "42501",
                };
                if got != expected {
                    wrong.push(format!(
                        "{module} {operation} on {target}: {got}, not {expected}"
                    ));
                }
                cells += 1;
                let _ = write!(matrix, " {operation}={got}");
            }
            matrix.push('\n');
        }
    }
    eprintln!("{matrix}");
    let expected_cells = database.modules.len() * targets.len() * operations.len();
    assert!(expected_cells >= 2 * 3 * 6);
    assert_eq!(cells, expected_cells);
    assert!(wrong.is_empty(), "{wrong:#?}\n{matrix}");
}

#[tokio::test]
async fn one_role_for_every_module_still_serves_with_one_warning() {
    let url = crate::postgres::shared().fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let server = Process::start_with(
        &url,
        &[],
        "warn",
        Stdio::from(std::fs::File::create(&log).unwrap()),
    )
    .await;
    let client = crate::auth::client();
    create_port(&client, &server.address, "USB-C").await;
    server.terminate();
    server.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = logged
        .lines()
        .filter(|line| line.contains("module boundaries are not enforced by the database"))
        .collect();
    assert_eq!(warnings.len(), 1, "{logged}");
    let every: Vec<&str> = app::modules::ALL.iter().map(|m| m.name).collect();
    let named = format!("modules=\"{}\"", every.join(","));
    assert!(warnings[0].contains(&named), "{named} in {logged}");
}

#[test]
fn a_module_url_given_wrong_is_one_line_that_names_it_and_shows_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing").display().to_string();
    let url = "postgres://app_laptops:hush-hush@127.0.0.1:1/app";
    // The command, its environment, and what its error says.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        (
            &["serve", "--all"],
            &[("APP_DATABASE_URL_LAPTOPS", "mysql://app:hush-hush@h/app")],
            "the database URL of module laptops is not a PostgreSQL URL",
        ),
        (
            &["serve", "--all"],
            &[
                ("APP_DATABASE_URL_LAPTOPS", url),
                ("APP_DATABASE_URL_LAPTOPS_FILE", &missing),
            ],
            "give APP_DATABASE_URL_LAPTOPS or APP_DATABASE_URL_LAPTOPS_FILE, not both",
        ),
        (
            &["serve", "--all"],
            &[("APP_DATABASE_URL_PORTS_FILE", &missing)],
            "cannot read APP_DATABASE_URL_PORTS_FILE",
        ),
        (
            // A URL of its own means PostgreSQL: an image's SQLite default goes unused.
            &["serve", "--module", "ports"],
            &[
                ("APP_DATABASE_URL_LAPTOPS", url),
                ("APP_DATABASE_URL", "sqlite:./x"),
            ],
            "no database URL for module ports: give APP_DATABASE_URL_PORTS or --database-url",
        ),
        (
            &["db", "roles"],
            &[("APP_DATABASE_URL_LAPTOPS", url)],
            "app db roles connects as the database's owner",
        ),
        (
            &["migrate"],
            &[("APP_DATABASE_URL_LAPTOPS", url)],
            "module laptops connects as a role of its own, which cannot change its schema",
        ),
    ];
    for (args, env, says) in cases {
        let output = Command::new(env!("CARGO_BIN_EXE_app"))
            .args(*args)
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let err = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} {env:?} fails");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.starts_with("error: ") && err.contains(says), "{err}");
        assert!(!err.contains("hush-hush"), "{err}");
    }
}
