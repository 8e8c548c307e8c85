//! Events a module cannot apply: retried, dead-lettered after
//! --event-max-attempts while the events after them flow on, listed by
//! `app events dead` and applied again after `app events retry`.

use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::cli::app;
use crate::helpers::{metric_sum, until};
use crate::process::Process;

/// `app events dead` on `data`, parsed.
fn dead(data: &str) -> Vec<Value> {
    let output = app(&["events", "dead", "--database-url", data]);
    assert!(output.status.success(), "{output:?}");
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_the_rest_flow_on_and_a_retry_applies_it() {
    poison_is_dead_lettered(&[]).await;
}

#[tokio::test]
async fn a_poison_event_from_the_broker_is_dead_lettered_and_the_rest_flow_on() {
    let broker = crate::rabbitmq::shared().fresh_url();
    poison_is_dead_lettered(&[("APP_BROKER_URL", &broker)]).await;
}

/// A process of every module, with `env`.
async fn poison_is_dead_lettered(env: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("sqlite:{}", dir.path().display());
    let server = Process::start_with_env(&data, &["--event-max-attempts", "2"], "warn", env).await;
    let client = crate::auth::client();
    let base = &server.address;
    let port: Value = client
        .post(format!("{base}/api/v1/ports"))
        .json(&json!({"name": "USB-C"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let laptop: Value = client
        .post(format!("{base}/api/v1/laptops"))
        .json(&json!({"title": "Lenovo", "model": "X1", "port_ids": [port["id"]]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let expand = format!("{base}/api/v1/laptops/{}?expand=ports", laptop["id"]);
    let name = async || -> Value {
        let laptop: Value = client
            .get(&expand)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        laptop["ports"][0]["name"].clone()
    };

    // Laptops know the port from its event, not from asking ports.
    until("laptops apply port.created", async || {
        metric_sum(&client, base, "app_follower_applied_total").await >= 1.0
    })
    .await;

    // A port.renamed with no name, as a broken producer might write it.
    let poison = uuid::Uuid::new_v4().to_string();
    let mut ports_db =
        sqlx::SqliteConnection::connect(&format!("sqlite:{}/ports.db", dir.path().display()))
            .await
            .unwrap();
    sqlx::query("insert into events (id, type, subject, time, data) values (?1, 'port.renamed', ?2, '2026-12-01T00:00:00Z', ?3)")
        .bind(&poison)
        .bind(port["id"].to_string())
        .bind(json!({"id": port["id"], "version": 7, "created_at": port["created_at"], "updated_at": port["updated_at"]}).to_string())
        .execute(&mut ports_db)
        .await
        .unwrap();
    // And a good change after it.
    crate::split::rename_port(&client, base, port["id"].as_i64().unwrap(), "USB4").await;
    until("the change after the poison arrives", async || {
        name().await == "USB4"
    })
    .await;

    let listed = dead(&data);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let letter = &listed[0];
    assert_eq!(letter["module"], "laptops");
    assert_eq!(letter["feed"], "ports");
    assert_eq!(letter["event"]["id"], poison.as_str());
    assert_eq!(letter["event"]["type"], "port.renamed");
    assert_eq!(letter["attempts"], 2);
    assert_eq!(letter["retry"], false);
    let error = letter["error"].as_str().unwrap();
    assert!(error.contains("missing field `name`"), "{error}");

    // The operator mends the letter, and asks for it again.
    let mut laptops_db =
        sqlx::SqliteConnection::connect(&format!("sqlite:{}/laptops.db", dir.path().display()))
            .await
            .unwrap();
    sqlx::query("update events_dead set event = json_set(event, '$.data.name', 'USB4 v2', '$.data.version', 99) where id = ?1")
        .bind(&poison)
        .execute(&mut laptops_db)
        .await
        .unwrap();
    let retried = app(&["events", "retry", &poison, "--database-url", &data]);
    assert!(retried.status.success(), "{retried:?}");
    until("the mended event is applied", async || {
        name().await == "USB4 v2"
    })
    .await;
    until("and leaves the dead letters", async || {
        dead(&data).is_empty()
    })
    .await;

    let unknown = app(&[
        "events",
        "retry",
        &uuid::Uuid::new_v4().to_string(),
        "--database-url",
        &data,
    ]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no module holds"));
}
