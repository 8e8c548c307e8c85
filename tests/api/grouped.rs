//! New laptops on PostgreSQL are written in groups (ADR 18): the creates
//! that wait together share a transaction and its statements, and each
//! still gets the answer it would have got alone.

use std::process::Stdio;
use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};
use sqlx::Connection as _;

use crate::helpers::{json_at, metric_sum, until};
use crate::process::Process;
use crate::split::create_port;

/// Creates sent while the first groups are held, to wait together.
const WAITING: usize = 40;

async fn create(client: &reqwest::Client, base: &str, laptop: Value) -> (u16, Value) {
    let response = client
        .post(format!("{base}/api/v1/laptops"))
        .json(&laptop)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_that_wait_together_are_written_together_and_each_answered_as_if_alone() {
    let url = crate::postgres::shared().fresh_database().await;
    let server = Process::start_with(&url, &[], "warn", Stdio::inherit()).await;
    let base = server.address.clone();
    let client = crate::auth::client();
    let usb = create_port(&client, &base, "USB-C").await;
    let hdmi = create_port(&client, &base, "HDMI").await;

    // A laptop the database refuses, as an operator's check might, and a
    // lock that holds the first groups until every create is waiting.
    let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query("alter table laptops.laptops add constraint no_doomed check (title <> 'Doomed')")
        .execute(&mut admin)
        .await
        .unwrap();
    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut hold = holder.begin().await.unwrap();
    sqlx::query("lock table laptops.laptops in exclusive mode")
        .execute(&mut *hold)
        .await
        .unwrap();
    // One at a time, so that each of the two groups in flight holds one.
    let mut first = Vec::new();
    for n in 0..2 {
        let (client, base) = (client.clone(), base.clone());
        let laptop = json!({"title": format!("First {n}"), "model": "X1"});
        first.push(tokio::spawn(
            async move { create(&client, &base, laptop).await },
        ));
        until("the group waits for the lock", async || {
            let waiting: i64 = sqlx::query_scalar(
                "select count(*) from pg_stat_activity \
                 where wait_event_type = 'Lock' and query like 'with new as%'",
            )
            .fetch_one(&mut admin)
            .await
            .unwrap();
            waiting == n + 1
        })
        .await;
    }

    // Then many at once: some list ports, one is refused.
    let laptops: Vec<Value> = (0..WAITING)
        .map(|n| match n {
            17 => json!({"title": "Doomed", "model": "Z"}),
            n if n % 3 == 0 => {
                json!({"title": format!("Laptop {n}"), "model": format!("M{n}"), "port_ids": [hdmi, usb]})
            }
            n => json!({"title": format!("Laptop {n}"), "model": format!("M{n}")}),
        })
        .collect();
    let rest: Vec<_> = laptops
        .iter()
        .map(|laptop| {
            let (client, base, laptop) = (client.clone(), base.clone(), laptop.clone());
            tokio::spawn(async move { create(&client, &base, laptop).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    hold.rollback().await.unwrap();

    for answer in join_all(first).await {
        assert_eq!(answer.unwrap().0, 201);
    }
    let mut ids = Vec::new();
    for (sent, answer) in laptops.iter().zip(join_all(rest).await) {
        let (status, body) = answer.unwrap();
        if sent["title"] == "Doomed" {
            assert_eq!(status, 500, "the refused laptop fails alone: {body}");
            continue;
        }
        assert_eq!(status, 201, "{body}");
        // Each answer is its own laptop, as written.
        assert_eq!(body["title"], sent["title"]);
        assert_eq!(body["model"], sent["model"]);
        assert_eq!(
            body["port_ids"],
            sent.get("port_ids").cloned().unwrap_or(json!([]))
        );
        let id = body["id"].as_i64().unwrap();
        let read = json_at(&client, format!("{base}/api/v1/laptops/{id}")).await;
        assert_eq!(read, body, "laptop {id} reads back as answered");
        ids.push(id);
    }
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), WAITING - 1, "every laptop has an id of its own");

    // They were written in groups, and the refused one's group was
    // written again one by one.
    let writes = metric_sum(&client, &base, "app_db_group_commit_writes_sum").await;
    let groups = metric_sum(&client, &base, "app_db_group_commit_writes_count").await;
    assert_eq!(writes as usize, WAITING + 2);
    assert!(groups < writes, "{writes} writes in {groups} groups");
    let refused = metric_sum(&client, &base, "app_db_group_commit_refused_total").await;
    assert_eq!(refused, 1.0);

    // One event for each laptop written, none for the refused one, each
    // with its laptop's data and its own request's trace.
    let feed = json_at(&client, format!("{base}/api/v1/laptops/events?limit=100")).await;
    let events = feed["items"].as_array().unwrap();
    assert_eq!(events.len(), WAITING + 1);
    let mut traces: Vec<&str> = events
        .iter()
        .map(|event| event["traceparent"].as_str().expect("a trace"))
        .collect();
    traces.sort_unstable();
    traces.dedup();
    assert_eq!(
        traces.len(),
        events.len(),
        "each event has its request's trace"
    );
    for id in &ids {
        let event = events
            .iter()
            .find(|event| event["data"]["id"] == *id)
            .unwrap_or_else(|| panic!("no event for laptop {id}"));
        assert_eq!(event["type"], "laptop.created");
        assert_eq!(event["subject"], id.to_string());
    }
    assert!(
        events
            .iter()
            .all(|event| event["data"]["title"] != "Doomed")
    );

    // A group keeps its connection while writes keep coming, and gives it
    // back when the server stops, which waits for it: one write after
    // another, so that each of the group's tasks keeps one.
    for n in 0..3 {
        let last = json!({"title": format!("Last {n}"), "model": "L"});
        assert_eq!(create(&client, &base, last).await.0, 201);
    }
    server.terminate();
    assert!(server.wait().success(), "the server stops cleanly");
}
