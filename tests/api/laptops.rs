//! The laptops API, against every backend and topology.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, api_tests, assert_problem, error_fields, event_tests};

api_tests!(
    a_laptop_is_created_read_replaced_patched_and_deleted,
    laptops_list_by_id_and_filter_by_title_ignoring_case,
    every_broken_laptop_rule_is_listed,
    laptop_writes_honour_if_match,
    concurrent_patches_of_different_fields_both_land,
    a_laptop_lists_existing_ports_in_order_and_expands_them,
    writing_a_laptop_with_unknown_ports_is_rejected_naming_each,
    broken_port_ids_are_rejected,
    a_laptops_ports_can_be_added_reordered_and_removed,
    laptops_filter_by_port_id,
    deleting_a_port_removes_it_from_every_laptop,
    every_laptop_change_is_an_event,
    an_expanded_laptop_learns_a_ports_new_name_from_its_event,
    a_list_expands_the_ports_of_every_laptop,
);

event_tests!(
    deleting_a_port_removes_it_from_every_laptop,
    every_laptop_change_is_an_event,
    an_expanded_laptop_learns_a_ports_new_name_from_its_event,
    a_list_expands_the_ports_of_every_laptop,
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

/// Creates a laptop of brand `title` listing `port_ids`, and returns it.
async fn laptop(app: &TestApp, title: &str, port_ids: &[i64]) -> Value {
    let body = json!({"title": title, "model": "Model", "port_ids": port_ids});
    app.create("/api/v1/laptops", &body).await
}

/// Creates a port named `name` and returns its id.
async fn port(app: &TestApp, name: &str) -> i64 {
    app.create("/api/v1/ports", &json!({ "name": name })).await["id"]
        .as_i64()
        .unwrap()
}

async fn a_laptop_lists_existing_ports_in_order_and_expands_them(app: &TestApp) {
    let usb = port(app, "USB-C").await;
    let hdmi = port(app, "HDMI").await;

    let laptop = laptop(app, "Framework", &[hdmi, usb]).await;
    assert_eq!(laptop["port_ids"], json!([hdmi, usb]));
    assert!(laptop.get("ports").is_none(), "ports only when expanded");
    let path = format!("/api/v1/laptops/{}", laptop["id"]);
    assert_eq!(app.get_json(&path).await, laptop);

    let expanded = app.get(&format!("{path}?expand=ports")).await;
    assert_eq!(expanded.status(), 200);
    assert!(
        expanded.headers().get("etag").is_none(),
        "an expanded laptop holds another module's data: no ETag"
    );
    let expanded: Value = expanded.json().await.unwrap();
    assert_eq!(
        expanded["ports"],
        json!([{"id": hdmi, "name": "HDMI"}, {"id": usb, "name": "USB-C"}])
    );
    assert_eq!(expanded["port_ids"], laptop["port_ids"]);

    let none = app
        .create("/api/v1/laptops", &json!({"title": "Dell", "model": "XPS"}))
        .await;
    assert_eq!(none["port_ids"], json!([]));
    let expanded = app
        .get_json(&format!("/api/v1/laptops/{}?expand=ports", none["id"]))
        .await;
    assert_eq!(expanded["ports"], json!([]));
    assert_problem(app.get(&format!("{path}?expand=everything")).await, 400).await;
}

async fn writing_a_laptop_with_unknown_ports_is_rejected_naming_each(app: &TestApp) {
    let usb = port(app, "USB-C").await;
    let body = json!({"title": "Dell", "model": "XPS", "port_ids": [usb, 999_001, 999_002]});

    let problem = assert_problem(app.post("/api/v1/laptops", &body).await, 422).await;

    assert_eq!(error_fields(&problem), ["port_ids", "port_ids"]);
    let messages: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["no port has id 999001", "no port has id 999002"]);
    assert!(
        app.list_all("/api/v1/laptops").await.is_empty(),
        "nothing written"
    );

    let laptop = laptop(app, "Dell", &[usb]).await;
    let path = format!("/api/v1/laptops/{}", laptop["id"]);
    let put = app.send_json(Method::PUT, &path, &body).await;
    assert_problem(put, 422).await;
    let patch = app
        .send_json(Method::PATCH, &path, &json!({"port_ids": [999_003]}))
        .await;
    let problem = assert_problem(patch, 422).await;
    assert_eq!(problem["errors"][0]["message"], "no port has id 999003");
    assert_eq!(app.get_json(&path).await, laptop, "nothing changed");
}

async fn broken_port_ids_are_rejected(app: &TestApp) {
    let usb = port(app, "USB-C").await;
    let too_many: Vec<i64> = (1..=33).collect();
    for port_ids in [
        json!("1,2"),
        json!({"id": 1}),
        json!([usb, usb]),
        json!([0]),
        json!([-1]),
        json!([1.5]),
        json!(["1"]),
        json!([null]),
        json!(null),
        json!(too_many),
    ] {
        let body = json!({"title": "Dell", "model": "XPS", "port_ids": port_ids});
        let problem = assert_problem(app.post("/api/v1/laptops", &body).await, 422).await;
        assert_eq!(error_fields(&problem), ["port_ids"], "{port_ids}");
    }
    assert!(app.list_all("/api/v1/laptops").await.is_empty());
}

async fn a_laptops_ports_can_be_added_reordered_and_removed(app: &TestApp) {
    let usb = port(app, "USB-C").await;
    let hdmi = port(app, "HDMI").await;
    let laptop = laptop(app, "Dell", &[usb]).await;
    let path = format!("/api/v1/laptops/{}", laptop["id"]);

    let added = app
        .send_json(Method::PATCH, &path, &json!({"port_ids": [usb, hdmi]}))
        .await;
    assert_eq!(added.status(), 200);
    let reordered = app
        .send_json(
            Method::PUT,
            &path,
            &json!({"title": "Dell", "model": "XPS 13", "port_ids": [hdmi, usb]}),
        )
        .await;
    assert_eq!(reordered.status(), 200);
    let stored = app.get_json(&path).await;
    assert_eq!(stored["port_ids"], json!([hdmi, usb]));
    assert_eq!(stored["model"], "XPS 13");

    let removed = app
        .send_json(Method::PATCH, &path, &json!({"port_ids": []}))
        .await;
    assert_eq!(removed.status(), 200);
    assert_eq!(app.get_json(&path).await["port_ids"], json!([]));
    app.send_json(Method::PATCH, &path, &json!({"port_ids": [usb]}))
        .await;
    let nulled = app
        .send_json(Method::PATCH, &path, &json!({"port_ids": null}))
        .await;
    assert_eq!(
        nulled.status(),
        200,
        "a merge patch's null removes: no ports"
    );
    assert_eq!(app.get_json(&path).await["port_ids"], json!([]));
}

async fn laptops_filter_by_port_id(app: &TestApp) {
    let usb = port(app, "USB-C").await;
    let hdmi = port(app, "HDMI").await;
    let both = laptop(app, "A", &[usb, hdmi]).await;
    let hdmi_only = laptop(app, "B", &[hdmi]).await;
    app.create("/api/v1/laptops", &json!({"title": "C", "model": "3"}))
        .await;

    let page = app
        .get_json(&format!("/api/v1/laptops?port_id={hdmi}"))
        .await;
    assert_eq!(page["items"], json!([both, hdmi_only]));
    let page = app
        .get_json(&format!("/api/v1/laptops?port_id={usb}&title=a"))
        .await;
    assert_eq!(page["items"], json!([both]));
    let page = app.get_json("/api/v1/laptops?port_id=999999").await;
    assert_eq!(page["items"], json!([]));
    let page = app
        .get_json(&format!("/api/v1/laptops?port_id={hdmi}&limit=1"))
        .await;
    assert_eq!(page["items"], json!([both]));
    assert!(page["next_cursor"].is_string());

    for bad in ["0", "-1", "x", "1.5"] {
        assert_problem(
            app.get(&format!("/api/v1/laptops?port_id={bad}")).await,
            400,
        )
        .await;
    }
}

async fn deleting_a_port_removes_it_from_every_laptop(app: &TestApp) {
    let usb = port(app, "USB-C").await;
    let hdmi = port(app, "HDMI").await;
    let a = laptop(app, "A", &[usb, hdmi]).await;
    let b = laptop(app, "B", &[usb]).await;
    let a_path = format!("/api/v1/laptops/{}", a["id"]);
    let b_path = format!("/api/v1/laptops/{}", b["id"]);
    let a_etag = app.get(&a_path).await.headers()["etag"].clone();

    let deleted = app
        .request(Method::DELETE, &format!("/api/v1/ports/{usb}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);

    // Laptops follow the ports module's deletions: soon, not at once.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (a_now, b_now) = (app.get_json(&a_path).await, app.get_json(&b_path).await);
        if a_now["port_ids"] == json!([hdmi]) && b_now["port_ids"] == json!([]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "port {usb} is still listed: {a_now} {b_now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let a_response = app.get(&a_path).await;
    assert_ne!(a_response.headers()["etag"], a_etag, "a new version");
    let expanded = app.get_json(&format!("{a_path}?expand=ports")).await;
    assert_eq!(expanded["ports"], json!([{"id": hdmi, "name": "HDMI"}]));
    let listed = app
        .get_json(&format!("/api/v1/laptops?port_id={usb}"))
        .await;
    assert_eq!(listed["items"], json!([]));
}

async fn every_laptop_change_is_an_event(app: &TestApp) {
    let port = app.create("/api/v1/ports", &json!({"name": "USB-C"})).await;
    let laptop = app
        .create(
            "/api/v1/laptops",
            &json!({"title": "Lenovo", "model": "ThinkPad X1", "port_ids": [port["id"]]}),
        )
        .await;
    let path = format!("/api/v1/laptops/{}", laptop["id"]);
    let unknown = app
        .send_json(Method::PATCH, &path, &json!({"port_ids": [999_999]}))
        .await;
    assert_eq!(unknown.status(), 422, "a refused write leaves no event");
    let patched = app
        .send_json(
            Method::PATCH,
            &path,
            &json!({"model": "ThinkPad X1 Carbon"}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    let deleted = app.request(Method::DELETE, &path).send().await.unwrap();
    assert_eq!(deleted.status(), 204);

    let feed = app.get_json("/api/v1/laptops/events").await;
    let events = feed["items"].as_array().unwrap();
    let kinds: Vec<&Value> = events.iter().map(|e| &e["type"]).collect();
    assert_eq!(
        kinds,
        ["laptop.created", "laptop.updated", "laptop.deleted"]
    );
    let subject = laptop["id"].to_string();
    assert!(events.iter().all(|e| e["source"] == "/api/v1/laptops"));
    assert!(events.iter().all(|e| e["subject"] == subject.as_str()));
    assert_eq!(events[0]["data"]["port_ids"], json!([port["id"]]));
    assert_eq!(events[1]["data"]["model"], "ThinkPad X1 Carbon");
    assert_eq!(events[1]["data"]["version"], 2);
    assert_eq!(events[2]["data"], json!({"id": laptop["id"], "version": 2}));
    let bad = app.get("/api/v1/laptops/events?limit=0").await;
    assert_problem(bad, 400).await;
}

async fn an_expanded_laptop_learns_a_ports_new_name_from_its_event(app: &TestApp) {
    let port = app.create("/api/v1/ports", &json!({"name": "USB-C"})).await;
    let laptop = app
        .create(
            "/api/v1/laptops",
            &json!({"title": "Lenovo", "model": "X1", "port_ids": [port["id"]]}),
        )
        .await;
    let expand = format!("/api/v1/laptops/{}?expand=ports", laptop["id"]);
    let port_path = format!("/api/v1/ports/{}", port["id"]);
    let renamed = app
        .send_json(Method::PATCH, &port_path, &json!({"name": "USB4"}))
        .await;
    assert_eq!(renamed.status(), 200);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let ports = &app.get_json(&expand).await["ports"];
        if ports == &json!([{"id": port["id"], "name": "USB4"}]) {
            break;
        }
        assert_eq!(
            ports[0]["name"], "USB-C",
            "the old name until the event arrives"
        );
        assert!(std::time::Instant::now() < deadline, "the rename arrives");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn a_list_expands_the_ports_of_every_laptop(app: &TestApp) {
    let usb = app.create("/api/v1/ports", &json!({"name": "USB-C"})).await;
    let hdmi = app.create("/api/v1/ports", &json!({"name": "HDMI"})).await;
    let both = app
        .create(
            "/api/v1/laptops",
            &json!({"title": "Both", "model": "1", "port_ids": [hdmi["id"], usb["id"]]}),
        )
        .await;
    let none = app
        .create("/api/v1/laptops", &json!({"title": "None", "model": "2"}))
        .await;
    let page = app.get_json("/api/v1/laptops?expand=ports").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["id"], both["id"]);
    assert_eq!(
        items[0]["ports"],
        json!([{"id": hdmi["id"], "name": "HDMI"}, {"id": usb["id"], "name": "USB-C"}]),
        "in the laptop's order"
    );
    assert_eq!(
        (&items[1]["id"], &items[1]["ports"]),
        (&none["id"], &json!([]))
    );
    let plain = app.get_json("/api/v1/laptops").await;
    assert!(plain["items"][0].get("ports").is_none(), "only when asked");
    let filtered = app
        .get_json(&format!(
            "/api/v1/laptops?port_id={}&expand=ports",
            usb["id"]
        ))
        .await;
    assert_eq!(filtered["items"].as_array().unwrap().len(), 1);
    let bad = app.get("/api/v1/laptops?expand=everything").await;
    assert_problem(bad, 400).await;
}
