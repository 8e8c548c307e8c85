//! Readiness follows the database: 503 while it is gone, 200 when it is back.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{assert_problem, spawn_on};
use crate::postgres::PgServer;

#[tokio::test]
async fn readiness_follows_the_database_without_a_restart() {
    let mut server = PgServer::start();
    let app = spawn_on(&server.url("postgres"), app::modules::ALL).await;
    assert_eq!(app.get("/health/ready").await.status(), 200);
    assert_eq!(app.get("/health/live").await.status(), 200);

    server.stop();

    let started = Instant::now();
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    let report: Value = ready.json().await.unwrap();
    assert_eq!(report["status"], "down");
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    let every: Vec<String> = app::modules::ALL
        .iter()
        .map(|m| format!("{}.database", m.name))
        .collect();
    assert_eq!(names, every);
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["status"] == "down")
    );
    let api = app.get("/api/v1/ports").await;
    assert!(api.headers().contains_key("retry-after"));
    assert_problem(api, 503).await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answers come without a long hang"
    );
    assert_eq!(app.get("/health/live").await.status(), 200);

    server.resume();

    let deadline = Instant::now() + Duration::from_secs(15);
    while app.get("/health/ready").await.status() != 200 {
        assert!(
            Instant::now() < deadline,
            "ready again once the database is back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.get("/api/v1/ports").await.status(), 200);
}
