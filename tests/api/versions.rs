//! Versions side by side: each process says its own, and which versions of
//! other modules it hears from, by their calls and by their events.

use std::process::Stdio;

use app_kernel::db::Backend;
use app_kernel::versions::{LAST_RELEASE, VERSION};
use serde_json::Value;

use crate::helpers::{json_at, until};
use crate::process::{Process, free_port};
use crate::split::{create_laptop, create_port};

/// The entry of `ready`'s `heard` for `module` at `version` over `via`.
fn heard<'a>(ready: &'a Value, module: &str, version: &str, via: &str) -> Option<&'a Value> {
    ready["heard"].as_array()?.iter().find(|entry| {
        entry["module"] == module && entry["version"] == version && entry["via"] == via
    })
}

#[tokio::test]
async fn each_process_says_its_version_and_the_versions_it_hears_from() {
    let (url, _dir) = crate::helpers::fresh_storage(Backend::Sqlite).await;
    let ports = Process::serve(
        free_port(),
        &["--module", "ports", "--database-url", &url],
        "warn",
        Stdio::inherit(),
    )
    .await;
    let peer = format!("ports={}", ports.address);
    let laptops = Process::serve(
        free_port(),
        &[
            "--module",
            "laptops",
            "--database-url",
            &url,
            "--peer",
            &peer,
        ],
        "warn",
        Stdio::inherit(),
    )
    .await;
    let client = crate::auth::client();
    // A laptop listing a port: laptops calls ports, and follows its events.
    let port = create_port(&client, &ports.address, "USB-C").await;
    create_laptop(&client, &laptops.address, "XPS", port).await;

    let ready = json_at(&client, format!("{}/health/ready", ports.address)).await;
    assert_eq!(ready["version"], VERSION);
    assert_eq!(ready["last_release"].as_str(), LAST_RELEASE);
    let caller = heard(&ready, "laptops", VERSION, "http").expect("ports heard laptops call");
    assert_eq!(caller["supported"], true, "{ready}");
    until("laptops hears ports' version on its events", async || {
        let ready = json_at(&client, format!("{}/health/ready", laptops.address)).await;
        heard(&ready, "ports", VERSION, "events").is_some()
    })
    .await;

    // A caller two releases behind: heard, and flagged.
    let old = client
        .get(format!("{}/api/v1/ports", ports.address))
        .header("user-agent", "app-laptops/0.0.1")
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 200);
    let ready = json_at(&client, format!("{}/health/ready", ports.address)).await;
    let skewed = heard(&ready, "laptops", "0.0.1", "http").expect("the old caller is heard");
    assert_eq!(skewed["supported"], false, "{ready}");
    let metrics = client
        .get(format!("{}/metrics", ports.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let unsupported = metrics
        .lines()
        .filter(|l| l.starts_with("app_peer_build_info{"))
        .filter(|l| l.contains("supported=\"false\"") && l.ends_with(" 1"))
        .collect::<Vec<_>>();
    assert_eq!(unsupported.len(), 1, "{metrics}");
    assert!(unsupported[0].contains("version=\"0.0.1\""), "{metrics}");
    let build = metrics
        .lines()
        .find(|l| l.starts_with("app_build_info{"))
        .expect("app_build_info");
    assert!(build.contains(&format!("version=\"{VERSION}\"")), "{build}");

    // Not a module: not recorded, whatever it claims.
    client
        .get(format!("{}/api/v1/ports", ports.address))
        .header("user-agent", "app-printers/0.0.1")
        .send()
        .await
        .unwrap();
    let ready = json_at(&client, format!("{}/health/ready", ports.address)).await;
    assert!(
        heard(&ready, "printers", "0.0.1", "http").is_none(),
        "{ready}"
    );
}

#[test]
fn the_binary_says_its_version() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_app"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        format!("app {VERSION}")
    );
}

/// `app` with `args`, for its exit status and what it says on stderr.
fn app(args: &[&str]) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_app"))
        .args(args)
        .env_remove("APP_DATABASE_URL")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// Runs `sql` on the database of ports at `url`.
async fn execute(url: &str, sql: &str) {
    use sqlx::Connection as _;
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    if let Some(dir) = url.strip_prefix("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite:{dir}/ports.db"))
            .await
            .unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    }
}

/// A binary migrating, then serving, on a database a newer release has
/// migrated further: the newer migrations are left alone. A migration it
/// knows whose checksum changed is still refused, naming it.
async fn newer_migrations_are_left_alone_and_changed_ones_refused(url: &str, table: &str) {
    let (migrated, err) = app(&["migrate", "--module", "ports", "--database-url", url]);
    assert!(migrated, "{err}");
    let checksum = if url.starts_with("sqlite:") {
        "x'00'"
    } else {
        "'\\x00'::bytea"
    };
    execute(
        url,
        &format!(
            "insert into {table} (version, description, success, checksum, execution_time) \
             values (99990101000000, 'from a newer release', true, {checksum}, 1)"
        ),
    )
    .await;
    let (migrated, err) = app(&["migrate", "--module", "ports", "--database-url", url]);
    assert!(migrated, "a newer release's migration stops nothing: {err}");
    let ports = Process::serve(
        free_port(),
        &["--module", "ports", "--database-url", url],
        "warn",
        Stdio::inherit(),
    )
    .await;
    let ready = json_at(
        &reqwest::Client::new(),
        format!("{}/health/ready", ports.address),
    )
    .await;
    assert_eq!(ready["status"], "up", "{ready}");
    drop(ports);

    execute(
        url,
        &format!(
            "update {table} set checksum = {checksum} \
             where version = (select min(version) from {table})"
        ),
    )
    .await;
    let (migrated, err) = app(&["migrate", "--module", "ports", "--database-url", url]);
    assert!(!migrated, "a changed migration is refused");
    assert!(err.contains("modified"), "{err}");
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_release_serves_on_sqlite() {
    let (url, _dir) = crate::helpers::fresh_storage(Backend::Sqlite).await;
    newer_migrations_are_left_alone_and_changed_ones_refused(&url, "_sqlx_migrations").await;
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_release_serves_on_postgres() {
    let url = crate::postgres::shared().fresh_database().await;
    newer_migrations_are_left_alone_and_changed_ones_refused(&url, "ports._sqlx_migrations").await;
}
