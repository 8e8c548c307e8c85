//! The last release and this version side by side, as a team that ships
//! one module at a time runs them: on PostgreSQL, with RabbitMQ, behind
//! nginx. The last release's binary is built from its recorded commit by
//! `cargo xtask previous` (`.ci/run` does, before the tests).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use app_kernel::versions::{LAST_RELEASE, VERSION};
use serde_json::{Value, json};

use crate::gateway::{Nginx, Split};
use crate::helpers::{json_at, until};
use crate::process::{Process, free_port};
use crate::split::{
    create_laptop, create_port, deletion_applied_once, laptop_requests, port_and_laptop,
    rename_port,
};

/// The last release's version.
fn last_release() -> &'static str {
    LAST_RELEASE.expect("a release is recorded under releases/")
}

/// The last release's binary, as `cargo xtask previous` builds it.
pub fn previous() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    let binary = target.join(format!("previous/{}/out/debug/app", last_release()));
    assert!(
        binary.is_file(),
        "{} is missing: build the last release's binary with `cargo xtask previous` (.ci/run does)",
        binary.display()
    );
    binary
}

fn this() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_app"))
}

#[test]
fn the_previous_binary_is_the_last_release() {
    let output = std::process::Command::new(previous())
        .arg("--version")
        .output()
        .unwrap();
    let said = String::from_utf8(output.stdout).unwrap();
    assert_eq!(said.trim(), format!("app {}", last_release()));
    assert_ne!(last_release(), VERSION);
}

/// The version the module `name` runs when `old` runs the last release.
fn version_of(name: &str, old: &str) -> &'static str {
    if name == old { last_release() } else { VERSION }
}

/// What `ready` says it heard of `module`, over `via`.
fn heard_version(ready: &Value, module: &str, via: &str) -> Vec<(String, bool)> {
    ready["heard"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["module"] == module && entry["via"] == via)
        .map(|entry| {
            (
                entry["version"].as_str().unwrap().to_owned(),
                entry["supported"] == true,
            )
        })
        .collect()
}

/// Module `old` at the last release, the other at this version: calls
/// across the two, events from ports to laptops (renames, then deletions)
/// through RabbitMQ, each applied once; each side hears the other's version.
async fn across_versions(old: &str) {
    let previous = previous();
    let url = crate::postgres::shared().fresh_database().await;
    let broker = crate::rabbitmq::shared().fresh_url();
    let split = Split::start_mixed(
        &url,
        &[],
        &[("APP_BROKER_URL", &broker)],
        &[(old, previous.as_path())],
    )
    .await;
    let base = &split.nginx.address;
    let client = crate::auth::client();
    for name in ["laptops", "ports"] {
        for replica in split.replicas(name) {
            let ready = json_at(&client, format!("{}/health/ready", replica.address)).await;
            assert_eq!(ready["version"], version_of(name, old), "{name}: {ready}");
        }
    }

    // Laptops checks each port with ports, over HTTP.
    let port_id = create_port(&client, base, "USB-C").await;
    let mut paths = Vec::new();
    for n in 0..4 {
        paths.push(create_laptop(&client, base, &format!("XPS {n}"), port_id).await);
    }
    let unknown = client
        .post(format!("{base}/api/v1/laptops"))
        .json(&json!({"title": "Dell", "model": "XPS", "port_ids": [port_id + 1000]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        unknown.status(),
        422,
        "a port ports does not know is refused"
    );

    // A rename, then the deletion: events from one version to the other.
    rename_port(&client, base, port_id, "USB4").await;
    for path in &paths {
        until(&format!("the rename reaches {path}"), async || {
            let laptop = json_at(&client, format!("{base}{path}?expand=ports")).await;
            laptop["ports"][0]["name"] == "USB4"
        })
        .await;
    }
    let deleted = client
        .delete(format!("{base}/api/v1/ports/{port_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    deletion_applied_once(&client, base, &paths).await;
    let events = json_at(&client, format!("{base}/api/v1/laptops/events?limit=100")).await;
    let produced: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["producerversion"].as_str())
        .collect();
    assert!(
        !produced.is_empty() && produced.iter().all(|v| *v == version_of("laptops", old)),
        "laptops' events say which version published them: {produced:?}"
    );

    // Each side heard the other's version, and finds it supported.
    let ports = json_at(
        &client,
        format!("{}/health/ready", split.replica("ports").address),
    )
    .await;
    assert_eq!(
        heard_version(&ports, "laptops", "http"),
        [(version_of("laptops", old).to_owned(), true)],
        "{ports}"
    );
    for replica in split.replicas("laptops") {
        let laptops = json_at(&client, format!("{}/health/ready", replica.address)).await;
        let heard = heard_version(&laptops, "ports", "events");
        assert!(
            heard
                .iter()
                .all(|(v, supported)| v == version_of("ports", old) && *supported),
            "{laptops}"
        );
    }
}

#[tokio::test]
async fn the_last_releases_ports_with_this_versions_laptops() {
    across_versions("ports").await;
}

#[tokio::test]
async fn the_last_releases_laptops_with_this_versions_ports() {
    across_versions("laptops").await;
}

/// One request of the load and how it ended.
#[derive(Debug)]
pub struct Seen {
    pub what: &'static str,
    /// The status, or why there was none (a connection error, a timeout).
    pub outcome: Result<u16, String>,
    pub took: Duration,
}

/// Reads and writes through `base` until `stop`, each request on a
/// connection of its own (as many clients do), with a 10 s deadline.
pub async fn load(base: String, path: String, port_id: i64, stop: Arc<AtomicBool>) -> Vec<Seen> {
    let client = crate::auth::builder_with(&crate::auth::full_token())
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut seen = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let requests = laptop_requests(&client, &base, &path, port_id, n);
        for (what, request) in requests {
            let started = Instant::now();
            let outcome = match request.send().await {
                Ok(response) => Ok(response.status().as_u16()),
                Err(error) if error.is_timeout() => Err(format!("timeout: {error}")),
                Err(error) => Err(format!("connection: {error}")),
            };
            seen.push(Seen {
                what,
                outcome,
                took: started.elapsed(),
            });
        }
    }
    seen
}

/// Laptops, two replicas at the last release, replaced one at a time by
/// this version under steady reads and writes: each replica is taken out
/// of the gateway (nginx reloads, as an Ingress controller does when a pod
/// leaves its Service), drains, stops on SIGTERM, and its replacement
/// joins once ready. The load sees no 5xx, no connection error, no timeout.
#[tokio::test]
async fn laptops_replaced_one_replica_at_a_time_under_load() {
    let previous = previous();
    let url = crate::postgres::shared().fresh_database().await;
    let broker = crate::rabbitmq::shared().fresh_url();
    let env = [("APP_BROKER_URL", broker.as_str())];
    let ports_port = free_port();
    let ports = Process::spawn_binary(
        this(),
        ports_port,
        &["--module", "ports", "--database-url", &url],
        "warn",
        Stdio::inherit(),
        &env,
    );
    ports.ready().await;
    let peer = format!("ports={}", ports.address);
    let laptops_args = [
        "--module",
        "laptops",
        "--database-url",
        &url,
        "--peer",
        &peer,
    ];
    let laptops_ports = [free_port(), free_port()];
    let mut replicas: Vec<Option<Process>> = laptops_ports
        .iter()
        .map(|&port| {
            let args = &laptops_args;
            Some(Process::spawn_binary(
                &previous,
                port,
                args,
                "warn",
                Stdio::inherit(),
                &env,
            ))
        })
        .collect();
    for replica in replicas.iter().flatten() {
        replica.ready().await;
    }
    let both = [
        ("laptops", &laptops_ports[..]),
        ("ports", std::slice::from_ref(&ports_port)),
    ];
    let nginx = Nginx::start_reloadable(&both).await;
    let base = nginx.address.clone();
    let client = crate::auth::client();
    let (port_id, path) = port_and_laptop(&client, &base).await;

    let stop = Arc::new(AtomicBool::new(false));
    let loads: Vec<_> = (0..2)
        .map(|_| tokio::spawn(load(base.clone(), path.clone(), port_id, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    for (i, &port) in laptops_ports.iter().enumerate() {
        let staying = [laptops_ports[1 - i]];
        nginx
            .reload(&[
                ("laptops", &staying[..]),
                ("ports", std::slice::from_ref(&ports_port)),
            ])
            .await;
        let leaving = replicas[i].take().unwrap();
        leaving.terminate();
        assert!(leaving.wait().success(), "the old replica stops cleanly");
        let joining =
            Process::spawn_binary(this(), port, &laptops_args, "warn", Stdio::inherit(), &env);
        joining.ready().await;
        replicas[i] = Some(joining);
        nginx.reload(&both).await;
        // Both versions serve side by side for a while.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    for task in loads {
        seen.extend(task.await.unwrap());
    }

    let failed: Vec<&Seen> = seen
        .iter()
        .filter(|s| !matches!(s.outcome, Ok(status) if status < 500))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {}: {failed:#?}",
        failed.len(),
        seen.len()
    );
    let writes = seen
        .iter()
        .filter(|s| matches!(s.what, "patch" | "create"))
        .filter(|s| matches!(s.outcome, Ok(status) if status < 300))
        .count();
    let slowest = seen.iter().map(|s| s.took).max().unwrap();
    eprintln!(
        "rolling replacement: {} requests ({writes} writes acknowledged), slowest {slowest:?}",
        seen.len()
    );
    assert!(
        writes >= 20,
        "writes went on through the replacement: {writes}"
    );
    for replica in replicas.iter().flatten() {
        let ready = json_at(&client, format!("{}/health/ready", replica.address)).await;
        assert_eq!(ready["version"], VERSION, "{ready}");
    }
    // Every acknowledged write is there.
    let created = seen
        .iter()
        .filter(|s| s.what == "create" && s.outcome == Ok(201))
        .count();
    let mut listed = 0;
    let mut next = "/api/v1/laptops?limit=100".to_owned();
    loop {
        let page = json_at(&client, format!("{base}{next}")).await;
        listed += page["items"].as_array().unwrap().len();
        match page["next_cursor"].as_str() {
            Some(cursor) => next = format!("/api/v1/laptops?limit=100&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(listed, created + 1, "every laptop acknowledged is listed");
}

/// The last release's binary serving on a database this version migrated,
/// one migration further than it knows (as the next migration will be):
/// it serves, reads and writes.
#[tokio::test]
async fn the_last_release_serves_on_the_schema_this_version_migrated() {
    use sqlx::Connection as _;
    let url = crate::postgres::shared().fresh_database().await;
    let migrated = std::process::Command::new(this())
        .args(["migrate", "--database-url", &url])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{migrated:?}");
    let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
    for module in ["laptops", "ports"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "insert into {module}._sqlx_migrations \
             (version, description, success, checksum, execution_time) \
             values (99990101000000, 'a newer release', true, '\\x00'::bytea, 1)"
        )))
        .execute(&mut conn)
        .await
        .unwrap();
    }
    let old = Process::spawn_binary(
        &previous(),
        free_port(),
        &["--all", "--database-url", &url],
        "warn",
        Stdio::inherit(),
        &[],
    );
    old.ready().await;
    let client = crate::auth::client();
    let ready = json_at(&client, format!("{}/health/ready", old.address)).await;
    assert_eq!(ready["version"], last_release());
    let (port_id, path) = port_and_laptop(&client, &old.address).await;
    let read = json_at(&client, format!("{}{path}", old.address)).await;
    assert_eq!(read["port_ids"], json!([port_id]));
}
