//! The {{name}} API, against every backend and topology.
{{#needs}}
//! {{A}} {{item}} names a port of the ports module, through its contract:
//! in this process, or over HTTP in the split.
{{/needs}}

use reqwest::Method;
use serde_json::{Value, json};

{{^follows}}
use crate::helpers::{TestApp, api_tests, assert_problem, error_fields};
{{/follows}}
{{#follows}}
use crate::helpers::{TestApp, api_tests, assert_problem, error_fields, until};
{{/follows}}

api_tests!(
    {{a}}_{{item}}_is_created_read_replaced_patched_and_deleted,
    {{item}}_names_are_unique_ignoring_case,
    every_broken_rule_is_listed,
    listing_pages_by_id_and_filters_by_name,
    a_stale_if_match_answers_412_and_changes_nothing,
    an_unknown_{{item}}_is_a_404_problem,
{{#needs}}
    {{a}}_{{item}}_names_a_port_the_ports_module_has,
{{/needs}}
{{#follows}}
    a_deleted_port_is_taken_off_the_{{name}}_that_named_it,
{{/follows}}
);

const PATH: &str = "/api/v1/{{name}}";

async fn {{a}}_{{item}}_is_created_read_replaced_patched_and_deleted(app: &TestApp) {
    let created = app.post(PATH, &json!({"name": "First"})).await;
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let etag = created.headers()["etag"].clone();
    let {{item}}: Value = created.json().await.unwrap();
    assert_eq!(location, format!("{PATH}/{}", {{item}}["id"]));
    assert_eq!({{item}}["name"], "First");

    let read = app.get(&location).await;
    assert_eq!(read.status(), 200);
    assert_eq!(read.headers()["etag"], etag);
    assert_eq!(read.json::<Value>().await.unwrap(), {{item}});

    let replaced = app
        .request(Method::PUT, &location)
        .header("content-type", "application/json")
        .header("if-match", etag.clone())
        .body(json!({"name": "Second"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(replaced.status(), 200);
    assert_ne!(replaced.headers()["etag"], etag);
    let patched = app
        .send_json(Method::PATCH, &location, &json!({"name": "Third"}))
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(app.get_json(&location).await["name"], "Third");

    let deleted = app.request(Method::DELETE, &location).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_problem(app.get(&location).await, 404).await;
    assert!(app.list_all(PATH).await.is_empty());
}

async fn {{item}}_names_are_unique_ignoring_case(app: &TestApp) {
    app.create(PATH, &json!({"name": "First"})).await;

    let again = app.post(PATH, &json!({"name": "FIRST"})).await;

    let problem = assert_problem(again, 409).await;
    assert!(problem["detail"].as_str().unwrap().contains("FIRST"));
    assert_eq!(app.list_all(PATH).await.len(), 1);
}

async fn every_broken_rule_is_listed(app: &TestApp) {
    let response = app
        .post(PATH, &json!({"name": "x".repeat(65), "colour": "red"}))
        .await;

    let problem = assert_problem(response, 422).await;
    assert_eq!(error_fields(&problem), ["name", "colour"]);
    for body in [json!({}), json!({"name": "   "}), json!({"name": 7})] {
        let problem = assert_problem(app.post(PATH, &body).await, 422).await;
        assert_eq!(problem["errors"][0]["field"], "name", "{body}");
    }
    assert!(app.list_all(PATH).await.is_empty());
}

async fn listing_pages_by_id_and_filters_by_name(app: &TestApp) {
    let mut created = Vec::new();
    for n in 0..3 {
        let name = format!("{{item}} {n}");
        created.push(app.create(PATH, &json!({ "name": name })).await);
    }

    let first: Value = app.get_json(&format!("{PATH}?limit=2")).await;
    let cursor = first["next_cursor"].as_str().expect("a second page");
    let second: Value = app
        .get_json(&format!("{PATH}?limit=2&cursor={cursor}"))
        .await;
    let named: Value = app.get_json(&format!("{PATH}?name={{item}}%201")).await;

    assert_eq!(first["items"], json!(created[..2]));
    assert_eq!(second["items"], json!(created[2..]));
    assert!(second["next_cursor"].is_null());
    assert_eq!(named["items"], json!([created[1]]));
}

async fn a_stale_if_match_answers_412_and_changes_nothing(app: &TestApp) {
    let {{item}} = app.create(PATH, &json!({"name": "First"})).await;
    let path = format!("{PATH}/{}", {{item}}["id"]);

    let stale = app
        .request(Method::PATCH, &path)
        .header("content-type", "application/merge-patch+json")
        .header("if-match", "\"stale\"")
        .body(json!({"name": "Second"}).to_string())
        .send()
        .await
        .unwrap();

    assert_problem(stale, 412).await;
    assert_eq!(app.get_json(&path).await, {{item}});
}

async fn an_unknown_{{item}}_is_a_404_problem(app: &TestApp) {
    assert_problem(app.get(&format!("{PATH}/999999")).await, 404).await;
    let bad = app.get(&format!("{PATH}/nope")).await;
    assert_problem(bad, 400).await;
}
{{#needs}}

const PORTS: &str = "/api/v1/ports";

async fn {{a}}_{{item}}_names_a_port_the_ports_module_has(app: &TestApp) {
    let port = app.create(PORTS, &json!({"name": "USB-C"})).await;
    let created = app
        .create(PATH, &json!({"name": "First", "port_id": port["id"]}))
        .await;
    assert_eq!(created["port_id"], port["id"]);

    let unknown = app
        .post(PATH, &json!({"name": "Second", "port_id": 999999}))
        .await;
    let problem = assert_problem(unknown, 422).await;
    assert_eq!(error_fields(&problem), ["port_id"]);
    let zero = app.post(PATH, &json!({"name": "Second", "port_id": 0})).await;
    assert_problem(zero, 422).await;
    assert_eq!(app.list_all(PATH).await.len(), 1, "nothing else was written");

    let path = format!("{PATH}/{}", created["id"]);
    let unlinked = app
        .send_json(Method::PATCH, &path, &json!({"port_id": null}))
        .await;
    assert_eq!(unlinked.status(), 200);
    assert!(app.get_json(&path).await["port_id"].is_null());
}
{{/needs}}
{{#follows}}

async fn a_deleted_port_is_taken_off_the_{{name}}_that_named_it(app: &TestApp) {
    let port = app.create(PORTS, &json!({"name": "HDMI"})).await;
    let named = app
        .create(PATH, &json!({"name": "First", "port_id": port["id"]}))
        .await;
    let other = app.create(PATH, &json!({"name": "Second"})).await;
    let path = format!("{PATH}/{}", named["id"]);
    let etag = app.get(&path).await.headers()["etag"].clone();

    let port_path = format!("{PORTS}/{}", port["id"]);
    let deleted = app.request(Method::DELETE, &port_path).send().await.unwrap();
    assert_eq!(deleted.status(), 204);

    until("the port's deletion reaches {{name}}", async || {
        app.get_json(&path).await["port_id"].is_null()
    })
    .await;
    let read = app.get(&path).await;
    assert_ne!(read.headers()["etag"], etag, "a new version");
    let other_path = format!("{PATH}/{}", other["id"]);
    assert_eq!(app.get_json(&other_path).await, other, "untouched");
    let events = app.get_json(&format!("{PATH}/events")).await;
    let kinds: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["{{item}}.created", "{{item}}.created", "{{item}}.updated"],
        "the change is published as {{a}} {{item}}'s"
    );
}
{{/follows}}
