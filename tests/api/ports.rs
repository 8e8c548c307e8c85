//! The ports API, against every backend and topology.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, api_tests, assert_problem, error_fields, event_tests};

api_tests!(
    creating_a_port_answers_201_with_location_etag_and_body,
    a_created_port_reads_back_with_the_same_etag,
    a_matching_if_none_match_answers_304,
    port_names_are_unique_ignoring_case,
    port_names_are_trimmed,
    every_broken_rule_is_listed,
    listing_pages_through_every_port_by_id,
    listing_filters_by_name_ignoring_case,
    put_replaces_and_changes_the_etag,
    a_stale_if_match_answers_412_and_changes_nothing,
    patch_merges_the_fields_it_names,
    patch_that_removes_a_required_field_is_rejected,
    renaming_onto_a_taken_name_answers_409,
    delete_answers_204_and_the_port_is_gone,
    delete_with_a_stale_if_match_answers_412,
    an_unknown_port_is_a_404_problem,
    listing_filters_by_ids,
    every_change_is_an_event_with_the_trace_of_its_request,
);

event_tests!(every_change_is_an_event_with_the_trace_of_its_request);

async fn creating_a_port_answers_201_with_location_etag_and_body(app: &TestApp) {
    let response = app.post("/api/v1/ports", &json!({"name": "USB-C"})).await;

    assert_eq!(response.status(), 201);
    assert!(response.headers().contains_key("etag"));
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let port: Value = response.json().await.unwrap();
    assert_eq!(location, format!("/api/v1/ports/{}", port["id"]));
    assert_eq!(port["name"], "USB-C");
    assert!(port["id"].as_i64().unwrap() > 0);
    for stamp in ["created_at", "updated_at"] {
        let text = port[stamp].as_str().unwrap();
        assert!(text.ends_with('Z'), "{stamp} is UTC: {text}");
        chrono::DateTime::parse_from_rfc3339(text).unwrap();
    }
    assert!(port.get("version").is_none());
}

async fn a_created_port_reads_back_with_the_same_etag(app: &TestApp) {
    let created = app.post("/api/v1/ports", &json!({"name": "HDMI"})).await;
    let etag = created.headers()["etag"].clone();
    let created: Value = created.json().await.unwrap();

    let read = app.get(&format!("/api/v1/ports/{}", created["id"])).await;

    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["etag"], etag);
    assert_eq!(read.json::<Value>().await.unwrap(), created);
}

async fn a_matching_if_none_match_answers_304(app: &TestApp) {
    let port = app.create("/api/v1/ports", &json!({"name": "HDMI"})).await;
    let path = format!("/api/v1/ports/{}", port["id"]);
    let etag = app.get(&path).await.headers()["etag"].clone();

    let unchanged = app
        .request(Method::GET, &path)
        .header("if-none-match", etag.clone())
        .send()
        .await
        .unwrap();
    let other = app
        .request(Method::GET, &path)
        .header("if-none-match", "\"nope\"")
        .send()
        .await
        .unwrap();

    assert_eq!(unchanged.status(), 304);
    assert_eq!(unchanged.headers()["etag"], etag);
    assert_eq!(other.status(), 200);
    let tag = etag.to_str().unwrap();
    for header in [format!("W/{tag}"), format!("\"x\", {tag}"), "*".to_owned()] {
        let response = app
            .request(Method::GET, &path)
            .header("if-none-match", &header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 304, "If-None-Match: {header}");
    }
}

async fn port_names_are_unique_ignoring_case(app: &TestApp) {
    app.create("/api/v1/ports", &json!({"name": "Thunderbolt 4"}))
        .await;

    let again = app
        .post("/api/v1/ports", &json!({"name": "THUNDERBOLT 4"}))
        .await;

    let problem = assert_problem(again, 409).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("THUNDERBOLT 4")
    );
    assert_eq!(app.list_all("/api/v1/ports").await.len(), 1);
}

async fn port_names_are_trimmed(app: &TestApp) {
    let port = app
        .create("/api/v1/ports", &json!({"name": "  USB-A \t"}))
        .await;
    assert_eq!(port["name"], "USB-A");

    let exactly_64 = format!("  {}  ", "x".repeat(64));
    let port = app
        .create("/api/v1/ports", &json!({"name": exactly_64}))
        .await;
    assert_eq!(port["name"].as_str().unwrap().len(), 64);
}

async fn every_broken_rule_is_listed(app: &TestApp) {
    let response = app
        .post(
            "/api/v1/ports",
            &json!({"name": "x".repeat(65), "colour": "red"}),
        )
        .await;

    let problem = assert_problem(response, 422).await;
    let fields: Vec<&str> = error_fields(&problem);
    assert_eq!(fields, ["name", "colour"]);
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({"name": 7}), "name"),
    ] {
        let problem = assert_problem(app.post("/api/v1/ports", &body).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    assert!(app.list_all("/api/v1/ports").await.is_empty());
}

async fn listing_pages_through_every_port_by_id(app: &TestApp) {
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(
            app.create("/api/v1/ports", &json!({"name": format!("port {n}")}))
                .await["id"]
                .clone(),
        );
    }

    let mut seen = Vec::new();
    let mut path = "/api/v1/ports?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page: Value = app.get_json(&path).await;
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|p| p["id"].clone()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/ports?limit=2&cursor={cursor}"),
            None => break,
        }
    }

    assert_eq!(seen, created);
    assert_eq!(pages, 3);
    let default: Value = app.get_json("/api/v1/ports").await;
    assert_eq!(default["items"].as_array().unwrap().len(), 5);
    assert!(default["next_cursor"].is_null());
}

async fn listing_filters_by_name_ignoring_case(app: &TestApp) {
    app.create("/api/v1/ports", &json!({"name": "USB-C"})).await;
    let hdmi = app.create("/api/v1/ports", &json!({"name": "HDMI"})).await;

    let page: Value = app.get_json("/api/v1/ports?name=hdmi").await;

    assert_eq!(page["items"], json!([hdmi]));
}

async fn put_replaces_and_changes_the_etag(app: &TestApp) {
    let port = app.create("/api/v1/ports", &json!({"name": "USB"})).await;
    let path = format!("/api/v1/ports/{}", port["id"]);
    let before = app.get(&path).await.headers()["etag"].clone();

    let response = app
        .request(Method::PUT, &path)
        .header("content-type", "application/json")
        .header("if-match", before.clone())
        .body(json!({"name": "USB4"}).to_string())
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let after = response.headers()["etag"].clone();
    assert_ne!(after, before);
    let replaced: Value = response.json().await.unwrap();
    assert_eq!(replaced["name"], "USB4");
    assert_eq!(replaced["created_at"], port["created_at"]);
    assert_eq!(app.get_json(&path).await, replaced);
}

async fn a_stale_if_match_answers_412_and_changes_nothing(app: &TestApp) {
    let port = app.create("/api/v1/ports", &json!({"name": "VGA"})).await;
    let path = format!("/api/v1/ports/{}", port["id"]);
    let stale = app.get(&path).await.headers()["etag"].clone();
    app.send_json(Method::PUT, &path, &json!({"name": "DVI"}))
        .await;

    for method in [Method::PUT, Method::PATCH] {
        let response = app
            .request(method.clone(), &path)
            .header("content-type", "application/json")
            .header("if-match", stale.clone())
            .body(json!({"name": "S-Video"}).to_string())
            .send()
            .await
            .unwrap();
        assert_problem(response, 412).await;
    }
    assert_eq!(app.get_json(&path).await["name"], "DVI");
}

async fn patch_merges_the_fields_it_names(app: &TestApp) {
    let port = app
        .create("/api/v1/ports", &json!({"name": "Ethernet"}))
        .await;
    let path = format!("/api/v1/ports/{}", port["id"]);

    let unchanged = app.send_json(Method::PATCH, &path, &json!({})).await;
    assert_eq!(unchanged.status(), 200);
    let unchanged: Value = unchanged.json().await.unwrap();
    assert_eq!(unchanged["name"], "Ethernet");
    let renamed = app
        .send_json(Method::PATCH, &path, &json!({"name": "RJ45"}))
        .await;

    assert_eq!(renamed.status(), 200);
    assert_eq!(renamed.json::<Value>().await.unwrap()["name"], "RJ45");
    assert_eq!(app.get_json(&path).await["name"], "RJ45");
}

async fn patch_that_removes_a_required_field_is_rejected(app: &TestApp) {
    let port = app.create("/api/v1/ports", &json!({"name": "SD"})).await;
    let path = format!("/api/v1/ports/{}", port["id"]);

    let problem = assert_problem(
        app.send_json(Method::PATCH, &path, &json!({"name": null}))
            .await,
        422,
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "name");
    let problem = assert_problem(
        app.send_json(Method::PATCH, &path, &json!({"id": 9})).await,
        422,
    )
    .await;
    assert_eq!(problem["errors"][0]["field"], "id");
    assert_eq!(app.get_json(&path).await, port);
}

async fn renaming_onto_a_taken_name_answers_409(app: &TestApp) {
    app.create("/api/v1/ports", &json!({"name": "USB-C"})).await;
    let hdmi = app.create("/api/v1/ports", &json!({"name": "HDMI"})).await;
    let path = format!("/api/v1/ports/{}", hdmi["id"]);

    assert_problem(
        app.send_json(Method::PUT, &path, &json!({"name": "usb-c"}))
            .await,
        409,
    )
    .await;
    assert_problem(
        app.send_json(Method::PATCH, &path, &json!({"name": "USB-c"}))
            .await,
        409,
    )
    .await;
    assert_eq!(app.get_json(&path).await, hdmi);
}

async fn delete_answers_204_and_the_port_is_gone(app: &TestApp) {
    let port = app
        .create("/api/v1/ports", &json!({"name": "FireWire"}))
        .await;
    let path = format!("/api/v1/ports/{}", port["id"]);

    let deleted = app.request(Method::DELETE, &path).send().await.unwrap();

    assert_eq!(deleted.status(), 204);
    assert_problem(app.get(&path).await, 404).await;
    assert_problem(
        app.request(Method::DELETE, &path).send().await.unwrap(),
        404,
    )
    .await;
    // The name is free again.
    app.create("/api/v1/ports", &json!({"name": "FireWire"}))
        .await;
}

async fn delete_with_a_stale_if_match_answers_412(app: &TestApp) {
    let port = app
        .create("/api/v1/ports", &json!({"name": "DisplayPort"}))
        .await;
    let path = format!("/api/v1/ports/{}", port["id"]);

    let stale = app
        .request(Method::DELETE, &path)
        .header("if-match", "\"999\"")
        .send()
        .await
        .unwrap();
    assert_problem(stale, 412).await;
    let current = app.get(&path).await.headers()["etag"].clone();
    let fresh = app
        .request(Method::DELETE, &path)
        .header("if-match", current)
        .send()
        .await
        .unwrap();
    assert_eq!(fresh.status(), 204);
}

async fn an_unknown_port_is_a_404_problem(app: &TestApp) {
    let problem = assert_problem(app.get("/api/v1/ports/424242").await, 404).await;
    assert!(problem["detail"].as_str().unwrap().contains("424242"));
    let response = app
        .send_json(Method::PUT, "/api/v1/ports/424242", &json!({"name": "x"}))
        .await;
    assert_problem(response, 404).await;
}

#[tokio::test]
async fn a_patch_naming_an_unknown_field_is_rejected_even_as_null() {
    let app = crate::helpers::spawn_app(app_kernel::db::Backend::Sqlite, &[&ports::MODULE]).await;
    let port = app.create("/api/v1/ports", &json!({"name": "USB-C"})).await;
    let path = format!("/api/v1/ports/{}", port["id"]);

    let problem = assert_problem(
        app.send_json(Method::PATCH, &path, &json!({"colour": null}))
            .await,
        422,
    )
    .await;

    assert_eq!(
        problem["errors"],
        json!([{"field": "colour", "message": "is not a known field"}])
    );
}

async fn listing_filters_by_ids(app: &TestApp) {
    let mut ids = Vec::new();
    for name in ["A", "B", "C"] {
        ids.push(app.create("/api/v1/ports", &json!({ "name": name })).await["id"].clone());
    }

    let page = app
        .get_json(&format!("/api/v1/ports?id={},{},999999", ids[2], ids[0]))
        .await;
    let found: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(found, [&ids[0], &ids[2]], "by id, unknown ids left out");
    let page = app
        .get_json(&format!("/api/v1/ports?id={}&name=b", ids[1]))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    let too_many = vec!["1"; 101].join(",");
    for bad in ["", "0", "1,,2", "a", "1;2", "-1", too_many.as_str()] {
        let response = app.get(&format!("/api/v1/ports?id={bad}")).await;
        assert_problem(response, 400).await;
    }
}

async fn every_change_is_an_event_with_the_trace_of_its_request(app: &TestApp) {
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let created = app
        .request(Method::POST, "/api/v1/ports")
        .header("content-type", "application/json")
        .header("traceparent", format!("00-{trace}-00f067aa0ba902b7-01"))
        .body(json!({"name": "USB-C"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let port: Value = created.json().await.unwrap();
    let path = format!("/api/v1/ports/{}", port["id"]);
    // Refused writes leave no event.
    let taken = app.post("/api/v1/ports", &json!({"name": "usb-c"})).await;
    assert_eq!(taken.status(), 409);
    let stale = app
        .request(Method::DELETE, &path)
        .header("if-match", "\"0\"")
        .send()
        .await
        .unwrap();
    assert_eq!(stale.status(), 412);
    let renamed = app
        .send_json(Method::PATCH, &path, &json!({"name": "USB4"}))
        .await;
    assert_eq!(renamed.status(), 200);
    let deleted = app.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(deleted.status(), 204);

    let feed = app.get_json("/api/v1/ports/events").await;
    let events = feed["items"].as_array().unwrap();
    let kinds: Vec<&Value> = events.iter().map(|e| &e["type"]).collect();
    assert_eq!(kinds, ["port.created", "port.renamed", "port.deleted"]);
    let declared: Vec<&str> = ports::MODULE.events.iter().map(|e| e.kind).collect();
    assert!(
        kinds
            .iter()
            .all(|kind| declared.contains(&kind.as_str().unwrap())),
        "the AsyncAPI document names every type recorded: {declared:?}"
    );
    assert_eq!(feed["remaining"], 3);
    let first = &events[0];
    assert_eq!(first["specversion"], "1.0");
    assert_eq!(first["source"], "/api/v1/ports");
    assert_eq!(first["subject"], port["id"].to_string());
    assert_eq!(first["datacontenttype"], "application/json");
    assert_eq!(first["data"]["name"], "USB-C");
    assert_eq!(first["data"]["version"], 1);
    let traceparent = first["traceparent"].as_str().unwrap();
    assert!(
        traceparent.starts_with(&format!("00-{trace}-")),
        "the event carries its request's trace: {traceparent}"
    );
    assert_eq!(events[1]["data"]["name"], "USB4");
    assert_eq!(events[2]["data"], json!({"id": port["id"], "version": 2}));
    let time = first["time"].as_str().unwrap();
    chrono::DateTime::parse_from_rfc3339(time).unwrap();
    assert!(time.ends_with('Z'), "{time}");

    let seq = events[0]["seq"].as_i64().unwrap();
    let rest = app
        .get_json(&format!("/api/v1/ports/events?after={seq}&limit=1"))
        .await;
    assert_eq!(rest["items"], json!([events[1]]));
    assert_eq!(rest["remaining"], 2);
    for bad in ["after=-1", "limit=0", "limit=101", "after=x"] {
        let response = app.get(&format!("/api/v1/ports/events?{bad}")).await;
        assert_problem(response, 400).await;
    }
    let post = app.post("/api/v1/ports/events", &json!({})).await;
    assert_problem(post, 405).await;
}
