//! Rate limits per client: in one process's memory, and shared by the
//! replicas behind nginx through a real Redis, which a test hangs and
//! starts again. And the split's credentials: the caller's token passed on
//! to ports, the service token of what laptops do on their own.

use std::time::{Duration, Instant};

use app::security::Security;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::auth::{self, claims, test_key};
use crate::gateway::Split;
use crate::helpers::{assert_problem, json_at, security, spawn_secured};
use crate::redis::Redis;

/// A token of the test key for `subject`, with every scope.
fn token_of(subject: &str) -> String {
    let scopes = auth::every_scope();
    let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
    let mut claims = claims(&scopes);
    claims["sub"] = json!(subject);
    test_key().key.sign(&claims)
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers()[name].to_str().unwrap()
}

#[tokio::test]
async fn a_client_over_its_write_quota_gets_429_with_retry_after() {
    let app = spawn_secured(
        Security {
            write_limit: Some("3/min,burst=3".parse().unwrap()),
            ..security()
        },
        &[],
    )
    .await;
    let client = reqwest::Client::new();
    let post = |subject: &str, name: String| {
        client
            .post(format!("{}/api/v1/ports", app.address))
            .bearer_auth(token_of(subject))
            .json(&json!({ "name": name }))
            .send()
    };
    for remaining in [2, 1, 0] {
        let response = post("alice", format!("port {remaining}")).await.unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(header(&response, "ratelimit-policy"), "\"write\";q=3;w=60");
        let state = header(&response, "ratelimit");
        assert!(
            state.starts_with(&format!("\"write\";r={remaining};t=")),
            "{state}"
        );
    }
    let refused = post("alice", "one too many".into()).await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=20).contains(&wait), "Retry-After {wait}");
    assert!(header(&refused, "ratelimit").starts_with("\"write\";r=0;"));
    assert_problem(refused, 429).await;
    // Another subject has a bucket of its own; reads have no limit here.
    let bob = post("bob", "bob's".into()).await.unwrap();
    assert_eq!(bob.status(), 201);
    let read = app.get("/api/v1/ports").await;
    assert_eq!(read.status(), 200);
    assert!(read.headers().get("ratelimit").is_none());
    assert_eq!(
        app.list_all("/api/v1/ports").await.len(),
        4,
        "the refused write changed nothing"
    );
}

/// Three anonymous reads, each claiming another `X-Forwarded-For`.
async fn statuses_with_forwarded_for(address: &str, forwarded: [&str; 3]) -> Vec<u16> {
    let mut statuses = Vec::new();
    for hop in forwarded {
        let response = reqwest::Client::new()
            .get(format!("{address}/api/v1/laptops"))
            .header("x-forwarded-for", hop)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    statuses
}

#[tokio::test]
async fn forwarded_for_chooses_the_bucket_only_from_a_trusted_proxy() {
    let limited = |trusted: &str| Security {
        read_limit: Some("2/min".parse().unwrap()),
        trusted_proxies: app::security::TrustedProxies(
            trusted
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect(),
        ),
        ..security()
    };
    let untrusting = spawn_secured(limited(""), &[]).await;
    assert_eq!(
        statuses_with_forwarded_for(&untrusting.address, ["1.1.1.1", "2.2.2.2", "3.3.3.3"]).await,
        [200, 200, 429],
        "a client cannot pick its own bucket"
    );
    let behind_proxy = spawn_secured(limited("127.0.0.1/32"), &[]).await;
    assert_eq!(
        statuses_with_forwarded_for(&behind_proxy.address, ["1.1.1.1", "2.2.2.2", "3.3.3.3"]).await,
        [200, 200, 200],
        "each client its own bucket, as the trusted proxy says"
    );
    assert_eq!(
        statuses_with_forwarded_for(&behind_proxy.address, ["9.9.9.9", "9.9.9.9", "9.9.9.9"]).await,
        [200, 200, 429]
    );
}

/// Ten reads of laptops through nginx as `subject`: how many were let
/// through, and the slowest answer.
async fn allowed_of_ten(split: &Split, subject: &str) -> (usize, Duration) {
    let client = reqwest::Client::new();
    let (mut allowed, mut slowest) = (0, Duration::ZERO);
    for _ in 0..10 {
        let started = Instant::now();
        let response = client
            .get(format!("{}/api/v1/laptops", split.nginx.address))
            .bearer_auth(token_of(subject))
            .send()
            .await
            .unwrap();
        assert!(
            matches!(
                response.status(),
                StatusCode::OK | StatusCode::TOO_MANY_REQUESTS
            ),
            "{}",
            response.status()
        );
        // Far above the 50 ms a decision waits for Redis; loose, so a busy
        // machine does not fail it.
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
        allowed += usize::from(response.status() == StatusCode::OK);
        slowest = slowest.max(started.elapsed());
    }
    (allowed, slowest)
}

/// Where each laptops replica counts, from its `/health/ready`.
async fn stores(split: &Split) -> Vec<String> {
    let mut stores = Vec::new();
    for (module, processes) in &split.modules {
        if module.name != "laptops" {
            continue;
        }
        for process in processes {
            let url = format!("{}/health/ready", process.address);
            let report = json_at(&reqwest::Client::new(), url).await;
            stores.push(report["rate_limits"]["store"].as_str().unwrap().to_owned());
        }
    }
    stores
}

async fn until_stores(split: &Split, store: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while stores(split).await.iter().any(|s| s != store) {
        assert!(Instant::now() < deadline, "every replica counts in {store}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn redis_shares_one_quota_between_two_replicas_and_falls_back_while_it_is_down() {
    let mut redis = Redis::start().await;
    let database = crate::postgres::shared().fresh_database().await;
    let url = redis.url();
    let split = Split::start_with(
        &database,
        &["--rate-limit-read", "5/min", "--rate-limit-redis", &url],
    )
    .await;
    assert_eq!(
        split
            .modules
            .iter()
            .find(|(m, _)| m.name == "laptops")
            .unwrap()
            .1
            .len(),
        2
    );
    assert_eq!(stores(&split).await, ["redis", "redis"]);
    assert_eq!(
        allowed_of_ten(&split, "carol").await.0,
        5,
        "two replicas allow the quota once, not twice"
    );

    redis.hang();
    // Every answer is still a 200 or a 429, and quick: each replica counts alone.
    let (alone, slowest) = allowed_of_ten(&split, "dave").await;
    assert!((5..=10).contains(&alone), "{alone}");
    println!("while Redis hangs: {alone} of 10 allowed, slowest answer {slowest:?}");
    until_stores(&split, "fallen-back").await;

    redis.restart().await;
    until_stores(&split, "redis").await;
    assert_eq!(
        allowed_of_ten(&split, "erin").await.0,
        5,
        "shared again once Redis is back"
    );
}

#[tokio::test]
async fn split_laptops_pass_the_callers_token_to_ports_and_follow_with_the_service_token() {
    let database = crate::postgres::shared().fresh_database().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("peer-token");
    // A service token that ports refuses: it lacks ports:read.
    std::fs::write(&token_file, auth::token(&["laptops:read"])).unwrap();
    let split = Split::start_with(
        &database,
        &[
            "--auth-reads",
            "--peer-token-file",
            token_file.to_str().unwrap(),
        ],
    )
    .await;
    let base = &split.nginx.address;
    let client = auth::client();
    let port: Value = client
        .post(format!("{base}/api/v1/ports"))
        .json(&json!({"name": "USB-C"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let laptop = client
        .post(format!("{base}/api/v1/laptops"))
        .json(&json!({"title": "Dell", "model": "XPS", "port_ids": [port["id"]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(laptop.status(), 201, "the caller's token checked the ports");
    let path = laptop.headers()["location"].to_str().unwrap().to_owned();
    let expand = format!("{base}{path}?expand=ports");
    // Ports check the caller, not the laptops process.
    let without_ports = reqwest::Client::new()
        .get(&expand)
        .bearer_auth(auth::token(&["laptops:read"]))
        .send()
        .await
        .unwrap();
    assert_problem(without_ports, 403).await;
    let with_ports = client.get(&expand).send().await.unwrap();
    assert_eq!(with_ports.status(), 200);

    let deleted = client
        .delete(format!("{base}/api/v1/ports/{}", port["id"]))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let port_ids = || async { json_at(&client, format!("{base}{path}")).await["port_ids"].clone() };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        port_ids().await,
        json!([port["id"]]),
        "the follower's token is refused"
    );
    // The secret is rotated in place, as Kubernetes does: the next poll uses it.
    std::fs::write(&token_file, auth::token(&["ports:read"])).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while port_ids().await != json!([]) {
        assert!(
            Instant::now() < deadline,
            "the deletion follows with the new token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn redis_leases_cost_fewer_round_trips_than_requests_and_never_allow_more_than_the_quota() {
    let redis = Redis::start().await;
    let database = crate::postgres::shared().fresh_database().await;
    // A burst of 200 (no refill during the test): leases of 2.
    let split = Split::start_with(
        &database,
        &[
            "--rate-limit-read",
            "200/h",
            "--rate-limit-redis",
            &redis.url(),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let token = token_of("frank");
    let before = redis.scripts_run();
    let mut allowed = 0;
    for _ in 0..300 {
        let response = client
            .get(format!("{}/api/v1/laptops", split.nginx.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        allowed += usize::from(response.status() == StatusCode::OK);
    }
    let scripts = redis.scripts_run() - before;
    assert!(
        (196..=200).contains(&allowed),
        "{allowed} of the quota of 200 allowed"
    );
    assert!(scripts <= 110, "{scripts} round trips for 300 requests");
}
