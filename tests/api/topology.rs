//! One module alone serves only itself; every process serves its docs.

use app_kernel::db::Backend;
use serde_json::{Value, json};

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test]
async fn a_module_alone_serves_only_its_own_api_and_docs() {
    for &alone in app::modules::ALL {
        let app = spawn_app(Backend::Sqlite, &[alone]).await;

        let mine = app.get(&alone.path()).await;
        assert_eq!(mine.status(), 200);
        for other in app::modules::ALL.iter().filter(|m| **m != alone) {
            let theirs = app.get(&other.path()).await;
            let theirs_one = app.get(&format!("{}/1", other.path())).await;
            assert_problem(theirs, 404).await;
            assert_problem(theirs_one, 404).await;
        }
        let doc: Value = app.get_json("/api-docs/openapi.json").await;
        let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        assert!(!paths.is_empty());
        assert!(
            paths.iter().all(|p| p.starts_with(&alone.path())),
            "{paths:?}"
        );
        let health: Value = app.get_json("/health/ready").await;
        assert_eq!(
            health["checks"],
            json!([{"name": format!("{}.database", alone.name), "status": "up"}])
        );
    }
}

#[tokio::test]
async fn swagger_ui_and_the_document_are_served_and_root_redirects() {
    let app = spawn_app(Backend::Sqlite, app::modules::ALL).await;

    let root = app.get("/").await;
    let ui = app.get("/swagger-ui/").await;
    let doc: Value = app.get_json("/api-docs/openapi.json").await;

    assert!(root.status().is_redirection());
    assert_eq!(root.headers()["location"], "/swagger-ui/");
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger-ui"));
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/api/v1/ports",
        "/api/v1/ports/{id}",
        "/api/v1/laptops",
        "/api/v1/laptops/{id}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app(Backend::Sqlite, app::modules::ALL).await;

    let given = app
        .request(reqwest::Method::GET, "/api/v1/ports")
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    let fresh = app.get("/api/v1/nowhere").await;
    let insane = app
        .request(reqwest::Method::GET, "/health/live")
        .header("x-request-id", "a b")
        .send()
        .await
        .unwrap();

    assert_eq!(given.headers()["x-request-id"], "abc-123");
    let fresh_id = fresh.headers()["x-request-id"].to_str().unwrap();
    assert_eq!(fresh_id.len(), 36, "a new UUID: {fresh_id}");
    assert_ne!(insane.headers()["x-request-id"], "a b");
}

#[tokio::test]
async fn head_answers_like_get_without_a_body() {
    let app = spawn_app(Backend::Sqlite, app::modules::ALL).await;
    let port = app.create("/api/v1/ports", &json!({"name": "USB-C"})).await;
    let path = format!("/api/v1/ports/{}", port["id"]);
    let get = app.get(&path).await;

    let head = app
        .request(reqwest::Method::HEAD, &path)
        .send()
        .await
        .unwrap();

    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["etag"], get.headers()["etag"]);
    assert_eq!(
        head.headers()["content-length"],
        get.headers()["content-length"]
    );
    assert!(head.bytes().await.unwrap().is_empty());
    let missing = app
        .request(reqwest::Method::HEAD, "/api/v1/ports/999")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let live = app
        .request(reqwest::Method::HEAD, "/health/live")
        .send()
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
}
