//! `spawn_app`: the real application on port 0 with a fresh database, and a
//! client that speaks to it.

use app::modules::{Module, Peers};
use app::security::{KeySource, Security};
use app::startup::{Application, Metrics, Settings};
use app_kernel::db::Backend;
use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

use crate::gateway::Split;

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    handle: Option<actix_web::dev::ServerHandle>,
    _dir: Option<tempfile::TempDir>,
    _split: Option<Split>,
}

/// A database URL for a fresh, empty store on `backend`, and what keeps it alive.
pub async fn fresh_storage(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().unwrap();
            (format!("sqlite:{}", dir.path().display()), Some(dir))
        }
        Backend::Postgres => (crate::postgres::shared().fresh_database().await, None),
    }
}

/// Starts `modules` on a fresh database of `backend`.
pub async fn spawn_app(backend: Backend, modules: &[&'static Module]) -> TestApp {
    let (url, dir) = fresh_storage(backend).await;
    let mut app = spawn_on(&url, modules).await;
    app._dir = dir;
    app
}

/// Starts every module on a fresh database of `backend`, each module
/// calling the others over HTTP through the process's own listener.
pub async fn spawn_loopback(backend: Backend) -> TestApp {
    let (url, dir) = fresh_storage(backend).await;
    let peers = Peers {
        loopback: true,
        ..Peers::default()
    };
    let mut app = spawn_configured(&url, app::modules::ALL, peers).await;
    app._dir = dir;
    app
}

/// Starts ports and two laptops replicas as processes on a fresh PostgreSQL
/// database, behind nginx; the app's address is nginx's.
pub async fn spawn_split() -> TestApp {
    let url = crate::postgres::shared().fresh_database().await;
    let split = Split::start(&url).await;
    TestApp {
        address: split.nginx.address.clone(),
        client: client(),
        handle: None,
        _dir: None,
        _split: Some(split),
    }
}

/// The split on a fresh database of `backend`, its events carried by
/// the shared RabbitMQ (a virtual host of its own) when `broker`, else read
/// from the feeds.
pub async fn spawn_split_on(backend: Backend, broker: bool) -> TestApp {
    let (url, dir) = fresh_storage(backend).await;
    // Migrated once before the replicas start: SQLite has no lock that
    // would keep two processes from migrating one file at once.
    let migrated = std::process::Command::new(env!("CARGO_BIN_EXE_app"))
        .args(["migrate", "--database-url", &url])
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(migrated.success(), "app migrate");
    let broker_url = broker.then(|| crate::rabbitmq::shared().fresh_url());
    let env: Vec<(&str, &str)> = broker_url
        .iter()
        .map(|url| ("APP_BROKER_URL", url.as_str()))
        .collect();
    let split = Split::start_with_env(&url, &[], &env).await;
    TestApp {
        address: split.nginx.address.clone(),
        client: client(),
        handle: None,
        _dir: dir,
        _split: Some(split),
    }
}

/// The split, every process signing with one development key at
/// `key_file`, as `app token` does; the client sends `token`.
pub async fn spawn_split_with_dev_keys(key_file: &std::path::Path, token: &str) -> TestApp {
    let url = crate::postgres::shared().fresh_database().await;
    let key = key_file.to_str().unwrap();
    let split = Split::start_with(&url, &["--dev-key-file", key]).await;
    TestApp {
        address: split.nginx.address.clone(),
        client: crate::auth::client_with(token),
        handle: None,
        _dir: None,
        _split: Some(split),
    }
}

/// Starts `modules` on an existing database.
pub async fn spawn_on(database_url: &str, modules: &[&'static Module]) -> TestApp {
    spawn_configured(database_url, modules, Peers::default()).await
}

/// Starts `modules` on an existing database, with `peers` for the others.
pub async fn spawn_configured(
    database_url: &str,
    modules: &[&'static Module],
    peers: Peers,
) -> TestApp {
    spawn_settings(Settings {
        modules: modules.to_vec(),
        storage: database_url.parse().unwrap(),
        bind: "127.0.0.1:0".into(),
        workers: Some(1),
        handle_signals: false,
        peers,
        migrate: true,
        security: security(),
        cors_origins: Vec::new(),
        tls: None,
        metrics: Metrics::WithApi,
        delivery: Default::default(),
        broker: None,
        cache: Default::default(),
    })
    .await
}

/// Every module on a fresh SQLite store, checking callers as `security`
/// says, pages of `cors_origins` allowed.
pub async fn spawn_secured(security: Security, cors_origins: &[&str]) -> TestApp {
    let (url, dir) = fresh_storage(Backend::Sqlite).await;
    let mut app = spawn_settings(Settings {
        modules: app::modules::ALL.to_vec(),
        storage: url.parse().unwrap(),
        bind: "127.0.0.1:0".into(),
        workers: Some(1),
        handle_signals: false,
        peers: Peers::default(),
        migrate: true,
        security,
        cors_origins: cors_origins.iter().map(|o| o.to_string()).collect(),
        tls: None,
        metrics: Metrics::WithApi,
        delivery: Default::default(),
        broker: None,
        cache: Default::default(),
    })
    .await;
    app._dir = dir;
    app
}

async fn spawn_settings(settings: Settings) -> TestApp {
    let app = Application::build(settings)
        .await
        .expect("the application starts");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: client(),
        handle: Some(handle),
        _dir: None,
        _split: None,
    }
}

/// Tokens of the test key, writes open to a token with the scope.
pub fn security() -> Security {
    Security {
        keys: KeySource::PublicKey(crate::auth::public_key_path().to_owned()),
        ..Security::development(Default::default())
    }
}

/// A client with every scope.
fn client() -> reqwest::Client {
    crate::auth::client()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            drop(handle.stop(false));
        }
    }
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
    }

    pub async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path)
            .send()
            .await
            .expect("request sent")
    }

    /// GETs `path` and returns the body as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        self.get(path).await.json().await.expect("a JSON body")
    }

    pub async fn send_json(&self, method: Method, path: &str, body: &Value) -> Response {
        let content_type = if method == Method::PATCH {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        self.request(method, path)
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.send_json(Method::POST, path, body).await
    }

    /// Creates a resource, asserting 201, and returns its body.
    pub async fn create(&self, path: &str, body: &Value) -> Value {
        let response = self.post(path, body).await;
        assert_eq!(response.status(), 201, "creating {body} at {path}");
        response.json().await.unwrap()
    }

    /// Every item of a list, following cursors.
    pub async fn list_all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut next = format!("{path}?limit=100");
        loop {
            let page: Value = self.get(&next).await.json().await.unwrap();
            items.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => next = format!("{path}?limit=100&cursor={cursor}"),
                None => return items,
            }
        }
    }
}

/// The `field` of every entry of a 422 problem's `errors`, in order.
pub fn error_fields(problem: &Value) -> Vec<&str> {
    problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["field"].as_str().expect("a field name"))
        .collect()
}

/// Asserts an RFC 9457 problem of `status` and returns its body.
pub async fn assert_problem(response: Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string() && body["type"].is_string() && body["detail"].is_string());
    body
}

/// Generates one test per topology and backend for each named test
/// function, which takes the `&TestApp` it runs against: every module in one
/// process (SQLite, PostgreSQL), the same calling its modules over HTTP
/// (loopback), and the modules as processes behind nginx (PostgreSQL, two
/// laptops replicas).
macro_rules! api_tests {
    ($($test:ident),* $(,)?) => {
        mod sqlite_all {
            $(#[tokio::test] async fn $test() {
                let app = $crate::helpers::spawn_app(app_kernel::db::Backend::Sqlite, app::modules::ALL).await;
                super::$test(&app).await;
            })*
        }
        mod sqlite_loopback {
            $(#[tokio::test] async fn $test() {
                let app = $crate::helpers::spawn_loopback(app_kernel::db::Backend::Sqlite).await;
                super::$test(&app).await;
            })*
        }
        mod postgres_all {
            $(#[tokio::test] async fn $test() {
                let app = $crate::helpers::spawn_app(app_kernel::db::Backend::Postgres, app::modules::ALL).await;
                super::$test(&app).await;
            })*
        }
        mod postgres_split {
            $(#[tokio::test] async fn $test() {
                let app = $crate::helpers::spawn_split().await;
                super::$test(&app).await;
            })*
        }
    };
}
pub(crate) use api_tests;

/// Generates one test per split topology for each named test of events:
/// the feeds read over HTTP on SQLite (PostgreSQL is in [`api_tests`]),
/// and RabbitMQ carrying the events on both backends.
macro_rules! event_tests {
    ($($test:ident),* $(,)?) => {
        mod sqlite_split {
            $(#[tokio::test] async fn $test() {
                let app = $crate::helpers::spawn_split_on(app_kernel::db::Backend::Sqlite, false).await;
                super::$test(&app).await;
            })*
        }
        mod sqlite_split_broker {
            $(#[tokio::test] async fn $test() {
                let app = $crate::helpers::spawn_split_on(app_kernel::db::Backend::Sqlite, true).await;
                super::$test(&app).await;
            })*
        }
        mod postgres_split_broker {
            $(#[tokio::test] async fn $test() {
                let app = $crate::helpers::spawn_split_on(app_kernel::db::Backend::Postgres, true).await;
                super::$test(&app).await;
            })*
        }
    };
}
pub(crate) use event_tests;

/// GETs `url` and decodes its JSON body.
pub async fn json_at(client: &reqwest::Client, url: String) -> Value {
    client.get(url).send().await.unwrap().json().await.unwrap()
}

/// The status `url` answers a GET with.
pub async fn status_at(url: String) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

/// Polls `check` every 50 ms until it holds, for up to 30 s; `what` says
/// what did not happen.
pub async fn until<F: AsyncFnMut() -> bool>(what: &str, mut check: F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The sum of every series of metric `name` at `address`'s `/metrics`; 0
/// while it does not answer.
pub async fn metric_sum(client: &reqwest::Client, address: &str, name: &str) -> f64 {
    let Ok(response) = client.get(format!("{address}/metrics")).send().await else {
        return 0.0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
