//! Events over a real RabbitMQ when it fails: stopped while ports change,
//! and ports killed between a commit and its publishing. Each test has a
//! broker of its own, since it stops it; nothing may be lost, nothing
//! applied twice.

use std::process::Stdio;
use std::time::Duration;

use app_kernel::db::Backend;
use serde_json::{Value, json};

use crate::gateway::Split;
use crate::helpers::{json_at, metric_sum, until};
use crate::process::{Process, free_port};
use crate::rabbitmq::RabbitMq;
use crate::split::{create_port, port_and_laptop, rename_port};

/// The sum over `addresses` of counter `name`.
async fn counted_at(client: &reqwest::Client, addresses: &[String], name: &str) -> f64 {
    let mut sum = 0.0;
    for address in addresses {
        sum += metric_sum(client, address, name).await;
    }
    sum
}

/// Waits until the relays of `producers` and the consumers of `consumers`
/// hold a connection to the broker (so no event is published before the
/// queue is bound).
async fn connected(client: &reqwest::Client, producers: &[String], consumers: &[String]) {
    let at = async |address: &String, role: &str| -> bool {
        let Ok(response) = client.get(format!("{address}/metrics")).send().await else {
            return false;
        };
        let text = response.text().await.unwrap_or_default();
        text.lines().any(|line| {
            line.starts_with("app_broker_connected{")
                && line.contains(&format!("role=\"{role}\""))
                && line.ends_with(" 1")
        })
    };
    until("the modules connect to the broker", async || {
        for address in producers {
            if !at(address, "relay").await {
                return false;
            }
        }
        let mut consuming = false;
        for address in consumers {
            consuming |= at(address, "consumer").await;
        }
        consuming
    })
    .await;
}

#[tokio::test]
async fn events_wait_in_the_outbox_while_the_broker_is_down_and_arrive_once_after() {
    let mut broker = RabbitMq::start();
    let url = crate::postgres::shared().fresh_database().await;
    let amqp = broker.url("v1");
    let split = Split::start_with_env(&url, &[], &[("APP_BROKER_URL", &amqp)]).await;
    let base = &split.nginx.address;
    let ports = split.addresses_of("ports");
    let laptops = split.addresses_of("laptops");
    let client = crate::auth::client();
    connected(&client, &ports, &laptops).await;
    let (port_id, path) = port_and_laptop(&client, base).await;
    until(
        "port.created reaches laptops through the broker",
        async || counted_at(&client, &laptops, "app_events_received_total").await >= 1.0,
    )
    .await;

    broker.stop();
    let deleted = client
        .delete(format!("{base}/api/v1/ports/{port_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204, "ports write with the broker down");
    // Laptops keep working: they read ports' feed meanwhile.
    until("laptops apply the deletion from the feed", async || {
        json_at(&client, format!("{base}{path}")).await["port_ids"] == json!([])
    })
    .await;
    let published = counted_at(&client, &ports, "app_events_published_total").await;
    let received = counted_at(&client, &laptops, "app_events_received_total").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        counted_at(&client, &ports, "app_events_published_total").await,
        published,
        "nothing is published while the broker is down"
    );

    let applied = counted_at(&client, &laptops, "app_follower_applied_total").await;
    broker.restart();
    until(
        "the deletion leaves the outbox once the broker is back",
        async || counted_at(&client, &ports, "app_events_published_total").await > published,
    )
    .await;
    until("and reaches laptops through it", async || {
        counted_at(&client, &laptops, "app_events_received_total").await > received
    })
    .await;
    // Delivered twice (feed, then broker), applied once.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        counted_at(&client, &laptops, "app_follower_applied_total").await,
        applied,
        "the redelivered deletion is not applied again"
    );
    let laptop = client.get(format!("{base}{path}")).send().await.unwrap();
    assert_eq!(laptop.headers()["etag"], "\"2\"", "one new version");
    let events = json_at(&client, format!("{base}/api/v1/laptops/events?limit=100")).await;
    let updated = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "laptop.updated")
        .count();
    assert_eq!(updated, 1, "{events}");
}

#[tokio::test]
async fn an_event_committed_just_before_ports_was_killed_is_published_after_its_restart() {
    let mut broker = RabbitMq::start();
    let (url, _dir) = crate::helpers::fresh_storage(Backend::Sqlite).await;
    let amqp = broker.url("v1");
    let env = [("APP_BROKER_URL", amqp.as_str())];
    let serve = async |port: u16, args: &[&str]| {
        let process = Process::spawn_with_env(port, args, "error", Stdio::inherit(), &env);
        process.ready().await;
        process
    };
    let ports_port = free_port();
    let ports_args = ["--module", "ports", "--database-url", &url];
    let ports = serve(ports_port, &ports_args).await;
    let peer = format!("ports={}", ports.address);
    let laptops_args = [
        "--module",
        "laptops",
        "--database-url",
        &url,
        "--peer",
        &peer,
    ];
    let laptops = serve(free_port(), &laptops_args).await;
    let client = crate::auth::client();
    let laptops_at = vec![laptops.address.clone()];
    connected(&client, std::slice::from_ref(&ports.address), &laptops_at).await;
    let port_id = create_port(&client, &ports.address, "USB-C").await;
    let created = client
        .post(format!("{}/api/v1/laptops", laptops.address))
        .json(&json!({"title": "Dell", "model": "XPS", "port_ids": [port_id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let laptop: Value = created.json().await.unwrap();
    let expand = format!(
        "{}/api/v1/laptops/{}?expand=ports",
        laptops.address, laptop["id"]
    );
    let laptops_at = vec![laptops.address.clone()];
    until(
        "port.created reaches laptops through the broker",
        async || counted_at(&client, &laptops_at, "app_events_received_total").await >= 1.0,
    )
    .await;

    // Confirmed (a consumer may get a message before its publisher has the
    // broker's confirm, which waits for the disk).
    let first_ports = vec![ports.address.clone()];
    until("the broker confirms port.created", async || {
        counted_at(&client, &first_ports, "app_events_published_total").await >= 1.0
    })
    .await;

    // Committed, then the process dies before the broker could take it.
    broker.stop();
    rename_port(&client, &ports.address, port_id, "USB4").await;
    ports.kill();
    broker.restart();
    let received = counted_at(&client, &laptops_at, "app_events_received_total").await;

    let ports = serve(ports_port, &ports_args).await;
    let ports_at = vec![ports.address.clone()];
    until("the restarted ports publishes the rename", async || {
        counted_at(&client, &ports_at, "app_events_published_total").await >= 1.0
    })
    .await;
    until("laptops receive it from the broker", async || {
        counted_at(&client, &laptops_at, "app_events_received_total").await > received
    })
    .await;
    until("and show the new name", async || {
        json_at(&client, expand.clone()).await["ports"][0]["name"] == "USB4"
    })
    .await;
    assert_eq!(
        counted_at(&client, &ports_at, "app_events_published_total").await,
        1.0,
        "only what was not confirmed is published again"
    );
}
