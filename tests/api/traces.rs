//! OpenTelemetry traces, exported over OTLP to a receiver the test reads:
//! a request that crosses from laptops to ports is one trace, and a
//! collector that is down costs no request anything.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::otlp::{Answers, Collector, Kind, Span};
use crate::process::{Process, free_port};
use crate::split::create_port;

/// The OTLP variables of a process exporting everything to `collector`, soon.
fn exporting(collector: &Collector) -> [(&str, &str); 3] {
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
        ("OTEL_TRACES_SAMPLER", "parentbased_always_on"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ]
}

fn one<'a>(spans: &'a [Span], what: &str, matches: impl Fn(&Span) -> bool) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| matches(s)).collect();
    assert_eq!(found.len(), 1, "one {what} in {spans:#?}");
    found[0]
}

/// The names of the threads of process `pid`.
fn threads(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .map(|name| name.trim().to_owned())
        .collect()
}

/// The value of the sample `series` (name and labels, as printed) in `/metrics`.
async fn sample(address: &str, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn a_request_across_the_split_is_one_trace_and_a_dead_collector_fails_no_request() {
    let collector = Collector::start().await;
    let env = exporting(&collector);
    let dir = tempfile::tempdir().unwrap();
    let data = format!("sqlite:{}", dir.path().display());
    let (ports_port, laptops_port) = (free_port(), free_port());
    let ports = Process::spawn_with_env(
        ports_port,
        &["--module", "ports", "--database-url", &data],
        "warn",
        Stdio::inherit(),
        &env,
    );
    let peer = format!("ports=http://127.0.0.1:{ports_port}");
    let mut laptops = Process::spawn_with_env(
        laptops_port,
        &[
            "--module",
            "laptops",
            "--database-url",
            &data,
            "--peer",
            &peer,
            "--log-format",
            "json",
        ],
        "info,access=debug",
        Stdio::piped(),
        &env,
    );
    ports.ready().await;
    laptops.ready().await;
    let client = crate::auth::client();
    let port_id = create_port(&client, &ports.address, "USB-C").await;
    let laptop = client
        .post(format!("{}/api/v1/laptops", laptops.address))
        .json(&serde_json::json!({"title": "Dell", "model": "XPS", "port_ids": [port_id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(laptop.status(), 201);
    let path = laptop.headers()["location"].to_str().unwrap().to_owned();
    let expanded = client
        .get(format!("{}{path}?expand=ports", laptops.address))
        .header("x-request-id", "traced-1")
        .send()
        .await
        .unwrap();
    assert_eq!(expanded.status(), 200);

    let route = "/api/v1/laptops/{id}";
    let is_request = |s: &Span| {
        s.kind == Kind::Server
            && s.attribute("http.route").as_deref() == Some(route)
            && s.attribute("http.request.method").as_deref() == Some("GET")
    };
    // The request's spans: its server span, its queries, its call to ports,
    // ports' server span and ports' query.
    let spans = collector
        .until("the spans of the expanded GET", |spans| {
            let Some(request) = spans.iter().find(|s| is_request(s)) else {
                return false;
            };
            let trace: Vec<&Span> = spans
                .iter()
                .filter(|s| s.trace_id == request.trace_id)
                .collect();
            trace
                .iter()
                .any(|s| s.service == "app-ports" && s.kind == Kind::Client)
        })
        .await;
    let request = one(&spans, "laptop GET", is_request);
    let trace: Vec<Span> = spans
        .iter()
        .filter(|s| s.trace_id == request.trace_id)
        .cloned()
        .collect();
    assert_eq!(request.name, "GET /api/v1/laptops/{id}");
    assert_eq!(request.service, "app-laptops");
    assert_eq!(request.parent_span_id, "", "the caller sent no traceparent");
    assert_eq!(
        request.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        request.attribute("url.path").as_deref(),
        Some(path.as_str())
    );

    let call = one(&trace, "call to ports", |s| {
        s.kind == Kind::Client && s.attribute("peer.service").as_deref() == Some("ports")
    });
    assert_eq!(call.name, "GET");
    assert_eq!(call.service, "app-laptops");
    assert_eq!(
        call.parent_span_id, request.span_id,
        "the call is the request's child"
    );
    assert_eq!(
        call.attribute("http.response.status_code").as_deref(),
        Some("200")
    );
    assert_eq!(
        call.attribute("server.port").as_deref(),
        Some(ports_port.to_string().as_str())
    );

    let served = one(&trace, "ports' server span", |s| {
        s.service == "app-ports" && s.kind == Kind::Server
    });
    assert_eq!(served.name, "GET /api/v1/ports");
    assert_eq!(
        served.attribute("http.route").as_deref(),
        Some("/api/v1/ports")
    );
    assert_eq!(
        served.parent_span_id, call.span_id,
        "ports serves laptops' call"
    );

    for (server, table) in [(request, "laptops"), (served, "ports")] {
        let queries: Vec<&Span> = trace
            .iter()
            .filter(|s| s.kind == Kind::Client && s.parent_span_id == server.span_id)
            .filter(|s| s.attribute("db.system.name").as_deref() == Some("sqlite"))
            .collect();
        assert!(
            queries.iter().any(|q| q.name == format!("SELECT {table}")
                && q.attribute("db.collection.name").as_deref() == Some(table)
                && q.attribute("db.query.text")
                    .is_some_and(|text| text.contains(table))),
            "a query of {table} under {}: {trace:#?}",
            server.name
        );
    }

    // A write's statements are spans of its request too, though SQLite's
    // writes run on the group commit's thread: the laptop, its ports and
    // its event.
    let is_create = |s: &Span| {
        s.kind == Kind::Server
            && s.attribute("http.route").as_deref() == Some("/api/v1/laptops")
            && s.attribute("http.request.method").as_deref() == Some("POST")
    };
    let spans = collector
        .until("the spans of the POST's statements", |spans| {
            spans.iter().find(|s| is_create(s)).is_some_and(|post| {
                spans
                    .iter()
                    .filter(|q| q.parent_span_id == post.span_id)
                    .any(|q| q.name == "INSERT events")
            })
        })
        .await;
    let post = one(&spans, "laptop POST", is_create);
    let statements: Vec<&Span> = spans
        .iter()
        .filter(|s| s.parent_span_id == post.span_id && s.kind == Kind::Client)
        .collect();
    for table in ["laptops", "laptop_ports", "events"] {
        assert!(
            statements
                .iter()
                .any(|q| q.name == format!("INSERT {table}")
                    && q.attribute("db.system.name").as_deref() == Some("sqlite")
                    && q.attribute("db.collection.name").as_deref() == Some(table)
                    && q.attribute("db.query.text")
                        .is_some_and(|text| text.contains(table))),
            "an insert into {table} under the POST: {statements:#?}"
        );
    }

    // The collector goes away: requests answer as before, the spans that
    // cannot leave are counted, and laptops keeps its exporting thread.
    collector.stop().await;
    let before = sample(
        &laptops.address,
        "app_trace_spans_exported_total{outcome=\"failed\"}",
    )
    .await;
    for _ in 0..20 {
        let started = Instant::now();
        let status = client
            .get(format!("{}{path}?expand=ports", laptops.address))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let failed = sample(
            &laptops.address,
            "app_trace_spans_exported_total{outcome=\"failed\"}",
        )
        .await;
        if failed > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "failed exports are counted: {failed:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ended = sample(&laptops.address, "app_trace_spans_ended_total").await;
    assert!(ended.is_some_and(|n| n >= 20.0 * 3.0), "{ended:?}");
    assert!(
        threads(laptops.child.id())
            .iter()
            .any(|t| t.starts_with("OpenTelemetry")),
        "spans are exported by a thread of their own"
    );

    // The log lines of the traced request carry the exported trace's id.
    let mut stderr = laptops.child.stderr.take().unwrap();
    laptops.terminate();
    assert!(laptops.wait().success());
    let mut output = String::new();
    stderr.read_to_string(&mut output).unwrap();
    let line: Value = output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["span"]["request_id"] == "traced-1")
        .unwrap_or_else(|| panic!("an access line of traced-1 in {output}"));
    assert_eq!(line["span"]["trace_id"], request.trace_id.as_str());
}

/// A certificate authority, a server certificate it signs for `localhost`
/// and a client certificate, as PEM files in `dir`.
struct Pki {
    ca: String,
    client_cert: String,
    client_key: String,
    server: rustls::ServerConfig,
}

impl Pki {
    fn new(dir: &std::path::Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let signed = |name: &str| {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(vec![name.to_owned()])
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            (cert, key)
        };
        let (server_cert, server_key) = signed("localhost");
        let (client_cert, client_key) = signed("exporter");
        let write = |name: &str, pem: String| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path.display().to_string()
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(clients)
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
            )
            .unwrap();
        Pki {
            ca: write("ca.pem", ca.pem()),
            client_cert: write("client.pem", client_cert.pem()),
            client_key: write("client.key", client_key.serialize_pem()),
            server,
        }
    }
}

#[tokio::test]
async fn spans_reach_an_https_collector_gzipped_and_wait_as_long_as_a_busy_one_asks() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    // The collector asks for a client certificate, and answers the first
    // export "429, retry after 2 seconds".
    let collector = Collector::start_with(Answers {
        tls: Some(pki.server.clone()),
        busy: Some((1, "2")),
    })
    .await;
    let data = format!("sqlite:{}", dir.path().display());
    let exporting = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", collector.endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", &pki.ca),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", &pki.client_cert),
        ("OTEL_EXPORTER_OTLP_CLIENT_KEY", &pki.client_key),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let app = Process::start_with_env(&data, &[], "warn", &exporting).await;
    let status = reqwest::get(format!("{}/api/v1/laptops/1", app.address))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    collector
        .until("the request's span arrives", |spans| {
            spans.iter().any(|s| {
                s.kind == Kind::Server
                    && s.attribute("http.route").as_deref() == Some("/api/v1/laptops/{id}")
            })
        })
        .await;
    let requests = collector.requests();
    assert_eq!(requests[0].status, 429, "{requests:#?}");
    assert_eq!(requests[1].status, 200, "{requests:#?}");
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_secs(2), "retried after {waited:?}");
    assert!(
        requests
            .iter()
            .all(|r| r.encoding.as_deref() == Some("gzip")),
        "{requests:#?}"
    );
    assert_eq!(
        sample(
            &app.address,
            "app_trace_spans_exported_total{outcome=\"failed\"}"
        )
        .await,
        None
    );

    // Without a client certificate the same collector turns the exporter
    // away, and the spans are counted as lost: the one above was checked.
    let trusting = [&exporting[0], &exporting[1], &exporting[4], &exporting[5]].map(|e| *e);
    let stranger = Process::start_with_env(&data, &[], "warn", &trusting).await;
    reqwest::get(format!("{}/api/v1/laptops/1", stranger.address))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let failed = "app_trace_spans_exported_total{outcome=\"failed\"}";
    while sample(&stranger.address, failed).await.is_none() {
        assert!(
            Instant::now() < deadline,
            "exports without a client certificate fail"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_exported_and_no_thread_waits_to() {
    let dir = tempfile::tempdir().unwrap();
    let data = format!("sqlite:{}", dir.path().display());
    let app = Process::start_with(&data, &[], "warn", Stdio::inherit()).await;
    let status = reqwest::get(format!("{}/api/v1/ports/1", app.address))
        .await
        .unwrap()
        .status();
    assert_eq!(status, 404);
    let text = reqwest::get(format!("{}/metrics", app.address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!text.contains("app_trace_spans"), "{text}");
    assert!(
        !threads(app.child.id())
            .iter()
            .any(|t| t.starts_with("OpenTelemetry")),
        "{:?}",
        threads(app.child.id())
    );
}

#[test]
fn an_endpoint_this_build_cannot_reach_is_refused_at_start() {
    for (name, value, says) in [
        (
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "grpc",
            "only http/protobuf is built in",
        ),
        (
            "OTEL_TRACES_EXPORTER",
            "zipkin",
            "only otlp (or none) is built in",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_app"))
            .args(["serve", "--all", "--bind", "127.0.0.1:0"])
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
            .env(name, value)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{name}={value}: {stderr}");
    }
    for (env, says) in [
        (
            vec![("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector.example.com")],
            "expected http://host:port or https://host:port",
        ),
        (
            vec![
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://collector.example.com",
                ),
                ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem"),
            ],
            "OTEL_EXPORTER_OTLP_CERTIFICATE=/nonexistent/ca.pem: cannot read it",
        ),
        (
            vec![
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://collector.example.com",
                ),
                ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"),
            ],
            "OTEL_EXPORTER_OTLP_COMPRESSION=zstd: expected gzip or none",
        ),
        (
            vec![
                (
                    "OTEL_EXPORTER_OTLP_ENDPOINT",
                    "https://collector.example.com",
                ),
                ("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/nonexistent/client.key"),
            ],
            "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and OTEL_EXPORTER_OTLP_CLIENT_KEY go together",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_app"))
            .args(["serve", "--all", "--bind", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{env:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{env:?}: {stderr}");
    }
}
