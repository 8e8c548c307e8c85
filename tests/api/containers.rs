//! The image as users build it (`tests/containers/build`: the Dockerfile,
//! on base images made from Debian's packages), run with podman: the
//! monolith on a named volume, a start-up error, and the split of
//! deploy/compose/compose.yaml under podman-compose, with the README's
//! commands. podman's settings are tests/containers/containers.conf.
//!
//! These tests fail, never skip, without podman or the image.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::json_at;

/// The Compose project the split runs as.
const PROJECT: &str = "app-test";

/// The image `tests/containers/build` tags.
fn image() -> String {
    std::env::var("APP_TEST_IMAGE").unwrap_or_else(|_| "localhost/app:test".to_owned())
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_owned()
}

/// One podman command at a time: podman 4 serialises on its own lock, and
/// two at once on two cores only time each other out.
static PODMAN: Mutex<()> = Mutex::new(());

fn command(program: &str, args: &[&str]) -> Output {
    let _one = PODMAN.lock().unwrap_or_else(|e| e.into_inner());
    let conf = root().join("tests/containers/containers.conf");
    Command::new(program)
        .args(args)
        .current_dir(root())
        .env(
            "CONTAINERS_CONF",
            std::env::var_os("CONTAINERS_CONF").unwrap_or(conf.into()),
        )
        .env("APP_IMAGE", image())
        // A project of its own: `down --volumes` never touches yours.
        .env("COMPOSE_PROJECT_NAME", PROJECT)
        .output()
        .unwrap_or_else(|e| panic!("{program} is missing ({e}): .ci/run installs it"))
}

/// `podman args`, which must succeed: its output.
fn podman(args: &[&str]) -> String {
    let output = command("podman", args);
    assert!(
        output.status.success(),
        "podman {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn podman_logs(container: &str) -> String {
    let output = command("podman", &["logs", container]);
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

fn require_image() {
    let found = command("podman", &["image", "exists", &image()]);
    assert!(
        found.status.success(),
        "no image {}: build it with tests/containers/build",
        image()
    );
}

/// A unique name for a container or volume of this test process.
fn unique(what: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("app-test-{what}-{}-{n}", std::process::id())
}

/// A container (and its named volume), removed when dropped.
struct Container {
    name: String,
    volume: Option<String>,
}

impl Container {
    fn run(args: &[&str], volume: Option<String>) -> Container {
        let name = unique("app");
        let mut all = vec!["run", "-d", "--name", &name];
        all.extend_from_slice(args);
        podman(&all);
        Container { name, volume }
    }

    fn inspect(&self, format: &str) -> String {
        podman(&["inspect", "--format", format, &self.name])
    }

    /// Runs the image's health check until it passes (podman schedules
    /// none without systemd); how long that took.
    fn until_healthy(&self, within: Duration) -> Duration {
        let start = Instant::now();
        loop {
            if command("podman", &["healthcheck", "run", &self.name])
                .status
                .success()
            {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{} healthy within {within:?}: {}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The host address port 8080 is published on.
    fn address(&self) -> String {
        format!("http://{}", podman(&["port", &self.name, "8080/tcp"]))
    }

    fn logs(&self) -> String {
        podman_logs(&self.name)
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        command(
            "podman",
            &["rm", "--force", "--volumes", "--time", "0", &self.name],
        );
        if let Some(volume) = &self.volume {
            command("podman", &["volume", "rm", "--force", volume]);
        }
    }
}

/// The user the container's first process runs as, from the host's /proc
/// (rootful podman maps no user ids).
fn process_uid(container: &Container) -> u32 {
    let pid = container.inspect("{{.State.Pid}}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    uid.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A port (USB-C) and a laptop naming it, made at `base`: their paths.
async fn laptop_with_a_port(client: &reqwest::Client, base: &str) -> (String, String) {
    let port = created(
        client,
        format!("{base}/api/v1/ports"),
        json!({"name": "USB-C"}),
    )
    .await;
    let port_id: i64 = port.rsplit('/').next().unwrap().parse().unwrap();
    let laptop = json!({"title": "Dell", "model": "XPS 13", "port_ids": [port_id]});
    let laptop = created(client, format!("{base}/api/v1/laptops"), laptop).await;
    (port, laptop)
}

async fn created(client: &reqwest::Client, url: String, body: Value) -> String {
    let response = client.post(url).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.headers()["location"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_monolith_goes_healthy_as_nonroot_drains_on_sigterm_and_keeps_its_data() {
    require_image();
    let volume = unique("data");
    podman(&["volume", "create", &volume]);
    let started = Instant::now();
    let app = Container::run(
        &[
            "-p",
            "127.0.0.1::8080",
            "-v",
            &format!("{volume}:/var/lib/app"),
            "-e",
            "APP_DEV_KEYS=true",
            &image(),
        ],
        Some(volume.clone()),
    );
    app.until_healthy(Duration::from_secs(60));
    eprintln!("start to healthy: {} ms", started.elapsed().as_millis());
    assert_eq!(app.inspect("{{.State.Health.Status}}"), "healthy");
    assert_eq!(process_uid(&app), 65532, "the nonroot user");

    let token = podman(&["exec", &app.name, "/app", "token"]);
    let client = timed_client(&token);
    let base = app.address();
    // The image says which version it is, and which release came before.
    let ready = json_at(&client, format!("{base}/health/ready")).await;
    assert_eq!(ready["version"], app_kernel::versions::VERSION, "{ready}");
    assert_eq!(
        ready["last_release"].as_str(),
        app_kernel::versions::LAST_RELEASE,
        "{ready}"
    );
    let (port, laptop) = laptop_with_a_port(&client, &base).await;

    // Writers keep writing while SIGTERM arrives: whatever was answered 201
    // must be there after the restart.
    let acknowledged = std::sync::Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, base, acknowledged) = (client.clone(), base.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for n in 0.. {
                    let body = json!({"name": format!("Port {w}-{n}")});
                    let response = client
                        .post(format!("{base}/api/v1/ports"))
                        .json(&body)
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status() == 201 => acknowledged
                            .lock()
                            .unwrap()
                            .push(r.headers()["location"].to_str().unwrap().to_owned()),
                        // Draining: refused, or 503 while it closes.
                        _ => break,
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        writers.iter().all(|w| !w.is_finished()),
        "every writer still writing when SIGTERM comes: {}",
        app.logs()
    );
    let stopping = app.name.clone();
    tokio::task::spawn_blocking(move || podman(&["stop", "--time", "30", &stopping]))
        .await
        .unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(app.inspect("{{.State.ExitCode}}"), "0", "{}", app.logs());
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 10,
        "writes before SIGTERM: {}",
        acknowledged.len()
    );

    podman(&["start", &app.name]);
    app.until_healthy(Duration::from_secs(60));
    let base = app.address();
    for path in acknowledged.iter().chain([&port, &laptop]) {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path} after the restart");
    }
    let expanded = json_at(&client, format!("{base}{laptop}?expand=ports")).await;
    assert_eq!(expanded["ports"][0]["name"], "USB-C", "{expanded}");
}

#[test]
fn a_start_up_error_is_one_line_in_the_logs() {
    require_image();
    // Every module on 0.0.0.0 with development keys and no --dev-keys.
    let app = Container::run(&[&image()], None);
    let exit = podman(&["wait", &app.name]);
    assert_ne!(exit, "0", "it refuses to start");
    let logs = app.logs();
    let lines: Vec<&str> = logs.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{logs}");
    assert!(
        lines[0].contains("0.0.0.0:8080 is reachable from other hosts")
            && lines[0].contains("--dev-keys"),
        "{logs}"
    );
}

/// The README's Compose commands: the split on the stand-ins of the
/// services Debian packages (Jaeger and Grafana left out). `--no-deps`:
/// podman 4.3 cannot start a container whose dependency has exited
/// (`migrate`) while that one's own (`postgres`) is not being started too.
const COMPOSE: &[&str] = &[
    "-f",
    "deploy/compose/compose.yaml",
    "-f",
    "tests/containers/standins/compose.yaml",
    "--profile",
    "split",
];
const SERVICES: &[&str] = &[
    "postgres",
    "redis",
    "rabbitmq",
    "migrate",
    "ports",
    "laptops",
    "gateway",
    "prometheus",
];

/// The containers of the split's `service`, running or not.
fn service_containers(service: &str) -> Vec<String> {
    let project = format!("label=io.podman.compose.project={PROJECT}");
    let service = format!("label=io.podman.compose.service={service}");
    let names = podman(
        &["ps", "--all", "--filter", &project, "--filter", &service]
            .into_iter()
            .chain(["--format", "{{.Names}}"])
            .collect::<Vec<_>>(),
    );
    names.lines().map(str::to_owned).collect()
}

/// A client with `token` whose requests give up after 10 s.
fn timed_client(token: &str) -> reqwest::Client {
    crate::auth::builder_with(token)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn compose(args: &[&str]) -> Output {
    let mut all = COMPOSE.to_vec();
    all.extend_from_slice(args);
    command("podman-compose", &all)
}

/// The split's containers, taken down with their volumes when dropped.
struct Split;

impl Drop for Split {
    fn drop(&mut self) {
        compose(&["down", "--volumes", "--timeout", "5"]);
    }
}

#[tokio::test]
async fn the_compose_split_serves_the_cross_module_scenario_through_the_gateway() {
    require_image();
    let tls = root().join("deploy/compose/tls");
    if !tls.join("tls.crt").exists() {
        // As the README says to, once.
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "90", "-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost"])
            .arg("-keyout")
            .arg(tls.join("tls.key"))
            .arg("-out")
            .arg(tls.join("tls.crt"))
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
    }
    compose(&["down", "--volumes", "--timeout", "5"]);
    let split = Split;
    let mut up = vec!["up", "-d", "--no-deps"];
    up.extend_from_slice(SERVICES);
    let output = compose(&up);
    assert!(
        output.status.success(),
        "podman-compose up: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let laptops = service_containers("laptops");
    assert_eq!(laptops.len(), 2, "two laptops replicas: {laptops:?}");

    // Every service is up once ports answers through the gateway (they
    // converge by restarting, as podman 4 cannot wait for health).
    let gateway = "http://127.0.0.1:8081";
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let ready = async {
            let ports = client.get(format!("{gateway}/api/v1/ports")).send().await;
            let laptops = client.get(format!("{gateway}/api/v1/laptops")).send().await;
            matches!((ports, laptops), (Ok(p), Ok(l)) if p.status() == 200 && l.status() == 200)
        };
        if ready.await {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the split serves through the gateway within 180 s: {}",
            String::from_utf8_lossy(&compose(&["ps"]).stdout)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let token = podman(&["exec", &service_containers("ports")[0], "/app", "token"]);
    let client = timed_client(&token);
    let (port, laptop) = laptop_with_a_port(&client, gateway).await;
    let expanded = json_at(&client, format!("{gateway}{laptop}?expand=ports")).await;
    assert_eq!(expanded["ports"][0]["name"], "USB-C", "{expanded}");

    // Both replicas follow ports' events over RabbitMQ once it is up.
    for replica in &laptops {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !podman_logs(replica).contains("consuming events from the broker") {
            assert!(
                Instant::now() < deadline,
                "{replica} consumes from RabbitMQ"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let deleted = client
        .delete(format!("{gateway}{port}"))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    // To whichever laptops replica takes the event.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = json_at(&client, format!("{gateway}{laptop}")).await;
        if seen["port_ids"] == json!([]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deletion reaches laptops: {seen}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The HTTPS listener, with the certificate made above.
    let over_tls = Command::new("curl")
        .args([
            "--silent",
            "--show-error",
            "--output",
            "/dev/null",
            "--write-out",
            "%{http_code}",
        ])
        .arg("--cacert")
        .arg(tls.join("tls.crt"))
        .arg(format!("https://localhost:8443{laptop}"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&over_tls.stdout),
        "200",
        "{over_tls:?}"
    );

    // Prometheus finds and scrapes every replica by Compose's DNS.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up =
            crate::prometheus::value_at("http://127.0.0.1:9090", r#"sum(up{job="app"})"#).await;
        if up == Some(3.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus scrapes three replicas: {up:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop(split);
}
