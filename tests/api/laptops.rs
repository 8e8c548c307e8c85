//! The laptops API, against every backend and topology.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, api_tests, assert_problem, error_fields};

api_tests!(app::modules::Module::Laptops =>
    a_laptop_is_created_read_replaced_patched_and_deleted,
    laptops_list_by_id_and_filter_by_title_ignoring_case,
    every_broken_laptop_rule_is_listed,
    laptop_writes_honour_if_match,
    concurrent_patches_of_different_fields_both_land,
);

async fn a_laptop_is_created_read_replaced_patched_and_deleted(app: &TestApp) {
    let created = app
        .post(
            "/api/v1/laptops",
            &json!({"title": "Lenovo", "model": "ThinkPad X1"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let laptop: Value = created.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/laptops/{}", laptop["id"]));
    assert_eq!(
        (laptop["title"].as_str(), laptop["model"].as_str()),
        (Some("Lenovo"), Some("ThinkPad X1"))
    );

    assert_eq!(app.get_json(&location).await, laptop);

    let replaced = app
        .send_json(
            Method::PUT,
            &location,
            &json!({"title": "Lenovo", "model": "ThinkPad T14"}),
        )
        .await;
    assert_eq!(replaced.status(), 200);
    let patched = app
        .send_json(Method::PATCH, &location, &json!({"title": "LENOVO"}))
        .await;
    assert_eq!(patched.status(), 200);
    let patched: Value = patched.json().await.unwrap();
    assert_eq!(
        (patched["title"].as_str(), patched["model"].as_str()),
        (Some("LENOVO"), Some("ThinkPad T14"))
    );

    assert_eq!(
        app.request(Method::DELETE, &location)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_problem(app.get(&location).await, 404).await;
}

async fn laptops_list_by_id_and_filter_by_title_ignoring_case(app: &TestApp) {
    let dell = app
        .create(
            "/api/v1/laptops",
            &json!({"title": "Dell", "model": "XPS 13"}),
        )
        .await;
    app.create(
        "/api/v1/laptops",
        &json!({"title": "Apple", "model": "MacBook Air"}),
    )
    .await;
    let dell_too = app
        .create(
            "/api/v1/laptops",
            &json!({"title": "DELL", "model": "Latitude"}),
        )
        .await;

    let page: Value = app.get_json("/api/v1/laptops?title=dell&limit=1").await;
    assert_eq!(page["items"], json!([dell]));
    let cursor = page["next_cursor"].as_str().unwrap();
    let page: Value = app
        .get_json(&format!(
            "/api/v1/laptops?title=dell&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(page["items"], json!([dell_too]));
    assert!(page["next_cursor"].is_null());
    assert_eq!(app.list_all("/api/v1/laptops").await.len(), 3);
}

async fn every_broken_laptop_rule_is_listed(app: &TestApp) {
    let response = app
        .post(
            "/api/v1/laptops",
            &json!({"title": "x".repeat(101), "port_ids": "no"}),
        )
        .await;

    let problem = assert_problem(response, 422).await;
    let fields: Vec<&str> = error_fields(&problem);
    assert_eq!(fields, ["title", "model", "port_ids"]);
    let exactly_100 = json!({"title": "t".repeat(100), "model": "m".repeat(100)});
    app.create("/api/v1/laptops", &exactly_100).await;
    assert_eq!(app.list_all("/api/v1/laptops").await.len(), 1);
}

async fn laptop_writes_honour_if_match(app: &TestApp) {
    let laptop = app
        .create(
            "/api/v1/laptops",
            &json!({"title": "HP", "model": "EliteBook"}),
        )
        .await;
    let path = format!("/api/v1/laptops/{}", laptop["id"]);
    let etag = app.get(&path).await.headers()["etag"].clone();

    let stale = app
        .request(Method::PATCH, &path)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", "\"0\"")
        .body(r#"{"model":"ZBook"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(stale, 412).await;
    let put = app
        .request(Method::PUT, &path)
        .header("content-type", "application/json")
        .header("if-match", "\"0\"")
        .body(r#"{"title": "HP", "model": "Spectre"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(put, 412).await;
    let delete = app
        .request(Method::DELETE, &path)
        .header("if-match", "\"0\"")
        .send()
        .await
        .unwrap();
    assert_problem(delete, 412).await;
    assert_eq!(app.get_json(&path).await, laptop, "412s change nothing");
    let fresh = app
        .request(Method::PATCH, &path)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", etag)
        .body(r#"{"model":"ZBook"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 200);
    let any = app
        .request(Method::DELETE, &path)
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    assert_eq!(any.status(), 204);
}

async fn concurrent_patches_of_different_fields_both_land(app: &TestApp) {
    for round in 0..10 {
        let laptop = app
            .create(
                "/api/v1/laptops",
                &json!({"title": "Asus", "model": "Zenbook"}),
            )
            .await;
        let path = format!("/api/v1/laptops/{}", laptop["id"]);
        let title = json!({"title": format!("Asus {round}")});
        let model = json!({"model": format!("Zenbook {round}")});

        let (a, b) = tokio::join!(
            app.send_json(Method::PATCH, &path, &title),
            app.send_json(Method::PATCH, &path, &model)
        );

        assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
        let stored: Value = app.get_json(&path).await;
        assert_eq!(
            stored["title"], title["title"],
            "no lost update in round {round}"
        );
        assert_eq!(
            stored["model"], model["model"],
            "no lost update in round {round}"
        );
    }
}
