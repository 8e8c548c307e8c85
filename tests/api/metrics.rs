//! `/metrics`, scraped by a real Prometheus and read back through its API.

use std::process::Stdio;
use std::time::Duration;

use crate::gateway::{Split, deploy_dir};
use crate::process::{Process, free_port};
use crate::prometheus::Prometheus;

#[tokio::test]
async fn prometheus_scrapes_serve_all_and_a_routes_count_rises_by_the_requests_sent() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("sqlite:{}", dir.path().display());
    let app = Process::start_with(&data, &[], "warn", Stdio::inherit()).await;
    let target = app.address.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&[target]).await;
    prometheus.until("up{job=\"app\"}", 1.0).await;
    let route =
        "sum(http_server_request_duration_seconds_count{http_route=\"/api/v1/ports/{id}\"})";
    assert_eq!(prometheus.value(route).await, None, "no request yet");
    for id in 1..=7 {
        let status = reqwest::get(format!("{}/api/v1/ports/{id}", app.address))
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404);
    }
    prometheus.until(route, 7.0).await;
    let not_found = "sum(http_server_request_duration_seconds_count{http_route=\"/api/v1/ports/{id}\",http_response_status_code=\"404\",module=\"ports\",http_request_method=\"GET\"})";
    prometheus.until(not_found, 7.0).await;
    // Each of those waited for a connection of ports' pool, and was timed.
    prometheus
        .until(
            "sum(app_db_pool_wait_seconds_count{module=\"ports\"}) >= bool 7",
            1.0,
        )
        .await;
    // A write with no token: refused, and counted by reason.
    let refused = reqwest::Client::new()
        .post(format!("{}/api/v1/ports", app.address))
        .json(&serde_json::json!({"name": "USB-C"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    prometheus
        .until("sum(app_auth_failures_total{reason=\"missing\"})", 1.0)
        .await;
    prometheus
        .until("app_build_info{modules=\"laptops,ports\"}", 1.0)
        .await;
    let memory = prometheus.value("process_resident_memory_bytes").await;
    assert!(memory.is_some_and(|bytes| bytes > 1e6), "{memory:?}");
    let idle = prometheus
        .value("sum(app_db_pool_connections{state=\"idle\"})")
        .await;
    assert!(idle.is_some_and(|n| n >= 1.0), "{idle:?}");
    let lag = prometheus
        .value("time() - app_follower_caught_up_timestamp_seconds{feed=\"ports.events\"}")
        .await;
    assert!(
        lag.is_some_and(|s| s < 30.0),
        "the deletion follower keeps up: {lag:?}"
    );
    let behind = prometheus
        .value("app_follower_behind_rows{feed=\"ports.events\"}")
        .await;
    assert_eq!(behind, Some(0.0), "nothing left to apply");
}

#[tokio::test]
async fn metrics_bind_serves_metrics_apart_from_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("sqlite:{}", dir.path().display());
    let metrics_port = free_port();
    let app = Process::start_with(
        &data,
        &["--metrics-bind", &format!("127.0.0.1:{metrics_port}")],
        "warn",
        Stdio::inherit(),
    )
    .await;
    let own = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap();
    assert_eq!(
        own.status(),
        404,
        "the API listener does not expose metrics"
    );
    let apart = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap();
    assert_eq!(apart.status(), 200);
    assert!(
        apart.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = apart.text().await.unwrap();
    assert!(
        text.contains("# TYPE http_server_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(text.contains("process_start_time_seconds"), "{text}");
}

#[tokio::test]
async fn metrics_false_serves_and_records_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("sqlite:{}", dir.path().display());
    let metrics_port = free_port();
    let metrics_bind = format!("127.0.0.1:{metrics_port}");
    let app = Process::start_with(
        &data,
        &["--metrics", "false", "--metrics-bind", &metrics_bind],
        "warn",
        Stdio::inherit(),
    )
    .await;
    let ports = reqwest::get(format!("{}/api/v1/ports", app.address))
        .await
        .unwrap();
    assert_eq!(ports.status(), 200, "the API is served");
    let own = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap();
    assert_eq!(own.status(), 404);
    assert!(
        reqwest::get(format!("http://{metrics_bind}/metrics"))
            .await
            .is_err(),
        "no listener of its own either"
    );
}

#[tokio::test]
async fn split_is_scraped_behind_nginx_and_stopping_ports_fires_the_checked_in_circuit_alert() {
    let url = crate::postgres::shared().fresh_database().await;
    let mut split = Split::start(&url).await;
    // Every replica of every module: three processes.
    let targets: Vec<String> = split
        .modules
        .iter()
        .flat_map(|(_, replicas)| replicas.iter())
        .map(|p| p.address.trim_start_matches("http://").to_owned())
        .collect();
    let rules = deploy_dir().join("observability/alerts.yml");
    let prometheus = Prometheus::start_with_rules(&targets, &[&rules]).await;
    prometheus
        .until("count(up{job=\"app\"} == 1)", targets.len() as f64)
        .await;
    // Through nginx, the route's count rises by the requests sent.
    for id in 1..=5 {
        let url = format!("{}/api/v1/ports/{id}", split.nginx.address);
        assert_eq!(reqwest::get(url).await.unwrap().status(), 404);
    }
    prometheus
        .until(
            "sum(http_server_request_duration_seconds_count{module=\"ports\",http_route=\"/api/v1/ports/{id}\"})",
            5.0,
        )
        .await;
    prometheus
        .until("max(app_peer_breaker_state{peer=\"ports\"})", 0.0)
        .await;
    assert_eq!(prometheus.alert("AppPeerCircuitOpen").await, None);

    let ports = split.take("ports").remove(0);
    let port = ports.port;
    ports.kill();
    // The deletion follower keeps calling ports: its breaker opens.
    prometheus
        .until_alert(
            "AppPeerCircuitOpen",
            Some("firing"),
            Duration::from_secs(60),
        )
        .await;
    let opened = prometheus
        .value("sum(app_peer_breaker_transitions_total{peer=\"ports\",to=\"open\"})")
        .await;
    assert!(
        opened.is_some_and(|n| n >= 2.0),
        "each replica's breaker opened: {opened:?}"
    );

    let _ports = Process::serve(
        port,
        &["--module", "ports", "--database-url", &url],
        "warn",
        Stdio::inherit(),
    )
    .await;
    prometheus
        .until_alert("AppPeerCircuitOpen", None, Duration::from_secs(60))
        .await;
}
