//! Nothing acknowledged is lost: across restarts, and when SIGTERM arrives
//! while writes are in flight. These run the real binary.

use std::process::Stdio;

use app_kernel::db::Backend;
use serde_json::{Value, json};

use crate::helpers::fresh_storage;
use crate::process::Process;

impl Process {
    async fn start(database_url: &str) -> Process {
        Process::start_with(database_url, &[], "warn", Stdio::inherit()).await
    }
}

async fn acknowledged_writes_survive_sigterm_and_restart(backend: Backend) {
    let (url, _dir) = fresh_storage(backend).await;
    let first = Process::start(&url).await;
    let client = crate::auth::client();
    let before = client
        .post(format!("{}/api/v1/ports", first.address))
        .json(&json!({"name": "before restart"}))
        .send()
        .await
        .unwrap();
    assert_eq!(before.status(), 201);

    // A burst of writes; SIGTERM lands as soon as the first is acknowledged.
    let writes: Vec<_> = (0..40)
        .map(|n| {
            let request = client
                .post(format!("{}/api/v1/laptops", first.address))
                .json(&json!({"title": "Burst", "model": format!("model {n}")}));
            tokio::spawn(async move { request.send().await })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for (n, write) in writes.into_iter().enumerate() {
        if let Ok(Ok(response)) = write.await
            && response.status() == 201
        {
            acknowledged.push(response.json::<Value>().await.unwrap()["id"].clone());
        }
        if n == 0 {
            first.terminate();
        }
    }
    assert!(!acknowledged.is_empty());
    assert!(
        first.wait().success(),
        "SIGTERM stops the process with status 0"
    );

    let second = Process::start(&url).await;
    let laptops: Value = reqwest::get(format!("{}/api/v1/laptops?limit=100", second.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: Vec<&Value> = laptops["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["id"])
        .collect();
    for id in &acknowledged {
        assert!(stored.contains(&id), "acknowledged laptop {id} survived");
    }
    let ports: Value = reqwest::get(format!(
        "{}/api/v1/ports?name=before%20restart",
        second.address
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(ports["items"].as_array().unwrap().len(), 1);
    second.terminate();
    assert!(second.wait().success());
}

/// A crash gives no chance to flush: what was acknowledged must already be on disk.
async fn acknowledged_writes_survive_sigkill(backend: Backend) {
    let (url, _dir) = fresh_storage(backend).await;
    let first = Process::start(&url).await;
    let client = crate::auth::client();
    let mut acknowledged = Vec::new();
    for n in 0..20 {
        let response = client
            .post(format!("{}/api/v1/ports", first.address))
            .json(&json!({"name": format!("port {n}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        acknowledged.push(response.json::<Value>().await.unwrap()["id"].clone());
    }
    first.signal(libc::SIGKILL);
    assert!(!first.wait().success());

    let second = Process::start(&url).await;
    let ports: Value = reqwest::get(format!("{}/api/v1/ports?limit=100", second.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let stored: Vec<Value> = ports["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(stored, acknowledged);
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_on_sqlite() {
    acknowledged_writes_survive_sigkill(Backend::Sqlite).await;
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill_on_postgres() {
    acknowledged_writes_survive_sigkill(Backend::Postgres).await;
}

#[tokio::test]
async fn acknowledged_writes_survive_sigterm_and_restart_on_sqlite() {
    acknowledged_writes_survive_sigterm_and_restart(Backend::Sqlite).await;
}

#[tokio::test]
async fn acknowledged_writes_survive_sigterm_and_restart_on_postgres() {
    acknowledged_writes_survive_sigterm_and_restart(Backend::Postgres).await;
}
