//! `cargo xtask new-module` in a copy of the workspace: the module it writes
//! builds, is served alone and with the others, works through its API, is
//! in Swagger UI's document and in every deployment file; one that needs
//! and follows ports calls it through its contract and applies its events,
//! and the tests generated for both pass in every topology. The workspace
//! itself is left as it was.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// A copy of the workspace's files (those git tracks or would), with a
/// target directory seeded from the workspace's own build (timestamps
/// kept, so cargo trusts it), so that only the workspace's crates compile
/// again, and nothing is built over the workspace's binaries.
struct Copy {
    dir: tempfile::TempDir,
}

impl Copy {
    fn of(root: &Path) -> Copy {
        let dir = tempfile::tempdir().unwrap();
        let listed = run(Command::new("git")
            .args([
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ])
            .current_dir(root));
        for file in listed.stdout.split(|b| *b == 0).filter(|f| !f.is_empty()) {
            let file = Path::new(std::str::from_utf8(file).unwrap());
            let source = root.join(file);
            if source.is_file() {
                let target = dir.path().join(file);
                std::fs::create_dir_all(target.parent().unwrap()).unwrap();
                std::fs::copy(&source, &target).unwrap();
            }
        }
        let built = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"))
            .join("debug");
        let seeded = dir.path().join("target/debug");
        std::fs::create_dir_all(&seeded).unwrap();
        for part in ["deps", "build", ".fingerprint"] {
            if built.join(part).exists() {
                run(Command::new("cp")
                    .arg("-r")
                    .arg(built.join(part))
                    .arg(&seeded));
            }
        }
        Copy { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `cargo ARGS` in the copy, building into its own target directory,
    /// with the environment of a shell: what `cargo test` adds for its
    /// tests would make cargo rebuild everything.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("cargo");
        command
            .args(args)
            .current_dir(self.path())
            .env_clear()
            .envs(std::env::vars().filter(|(key, _)| SHELL.contains(&key.as_str())))
            .env("CARGO_TARGET_DIR", self.path().join("target"))
            .env("CARGO_NET_OFFLINE", "true");
        command
    }

    /// Runs `cargo ARGS`, its standard error shown as it comes.
    fn cargo(&self, args: &[&str]) -> Output {
        self.command(args)
            .stderr(Stdio::inherit())
            .output()
            .unwrap()
    }

    /// Runs `cargo ARGS`, its standard error kept.
    fn cargo_quiet(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn binary(&self) -> PathBuf {
        self.path().join("target/debug/app")
    }
}

/// What a shell passes on to cargo.
const SHELL: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "TERM",
    "TMPDIR",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
];

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    assert!(output.status.success(), "{command:?}: {output:?}");
    output
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// What the generator would write or edit in the workspace at `root` for
/// module `name`.
fn touched(root: &Path, name: &str) -> Vec<(PathBuf, Option<Vec<u8>>)> {
    let own = [
        format!("deploy/k8s/overlays/split/{name}.yaml"),
        format!("deploy/k8s/base/database-{name}.env"),
        format!("openapi/{name}.json"),
        format!("modules/{name}"),
        format!("migrations/{name}"),
        format!("tests/api/{name}.rs"),
    ];
    [
        "Cargo.toml",
        "Cargo.lock",
        "src/modules.rs",
        "tests/api/main.rs",
        "deploy/nginx/app.conf",
        "deploy/compose/compose.yaml",
        "deploy/k8s/base/kustomization.yaml",
        "deploy/k8s/base/migrate.yaml",
        "deploy/k8s/overlays/monolith/app.yaml",
        "deploy/observability/prometheus.yml",
        "deploy/k8s/overlays/split/kustomization.yaml",
        "openapi/all.json",
    ]
    .into_iter()
    .map(str::to_owned)
    .chain(own)
    .map(|file| {
        let path = root.join(file);
        (
            path.clone(),
            std::fs::read(&path)
                .ok()
                .or_else(|| path.exists().then(Vec::new)),
        )
    })
    .collect()
}

/// The copy's binary serving `args` on a free port, until dropped.
struct Server {
    child: Child,
    address: String,
    /// Every scope, signed with the development key it made on start.
    token: String,
    _data: tempfile::TempDir,
}

impl Server {
    async fn start(binary: &Path, args: &[&str]) -> Server {
        let data = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .arg("serve")
            .args(args)
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--database-url")
            .arg(format!("sqlite:{}", data.path().display()))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        // Made before the server makes it, so both sign with one key.
        let token = Command::new(binary)
            .arg("token")
            .arg("--database-url")
            .arg(format!("sqlite:{}", data.path().display()))
            .output()
            .unwrap();
        assert!(token.status.success(), "{token:?}");
        let server = Server {
            child,
            address: format!("http://127.0.0.1:{port}"),
            token: String::from_utf8(token.stdout).unwrap().trim().to_owned(),
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = reqwest::get(format!("{}/health/ready", server.address)).await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return server;
            }
            assert!(Instant::now() < deadline, "{args:?} gets ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client sending `server`'s token.
fn authorized(server: &Server) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    let bearer = format!("Bearer {}", server.token);
    headers.insert(reqwest::header::AUTHORIZATION, bearer.parse().unwrap());
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

/// Creates, reads, lists, updates and deletes one of module `name`'s
/// resources through `server`.
async fn assert_module_works(server: &Server, name: &str) {
    let client = authorized(server);
    let url = format!("{}/api/v1/{name}", server.address);
    let created = client
        .post(&url)
        .json(&json!({"name": "Sprocket"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let widget: Value = created.json().await.unwrap();
    assert_eq!(widget["name"], "Sprocket");
    let one = format!("{}{location}", server.address);

    let read: Value = client.get(&one).send().await.unwrap().json().await.unwrap();
    assert_eq!(read, widget);
    let list: Value = client.get(&url).send().await.unwrap().json().await.unwrap();
    assert_eq!(list["items"], json!([widget]));
    let patched = client
        .patch(&one)
        .header("content-type", "application/merge-patch+json")
        .body(r#"{"name": "Cog"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let taken = client
        .post(&url)
        .json(&json!({"name": "cog"}))
        .send()
        .await
        .unwrap();
    assert_eq!(taken.status(), 409, "names are unique, ignoring case");
    let invalid = client
        .post(&url)
        .json(&json!({"name": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(invalid.status(), 422);
    let deleted = client.delete(&one).send().await.unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(client.get(&one).send().await.unwrap().status(), 404);
    // Its writes went through the module's group commit: the create, the
    // patch and the delete (the refused create rolled back alone).
    let metrics = client
        .get(format!("{}/metrics", server.address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let writes = format!("app_db_group_commit_writes_sum{{module=\"{name}\"}} ");
    let committed = metrics
        .lines()
        .find_map(|line| line.strip_prefix(&writes))
        .unwrap_or_else(|| panic!("{writes}in {metrics}"));
    assert_eq!(committed, "4", "{metrics}");
}

async fn documented_paths(server: &Server) -> Vec<String> {
    let doc: Value = reqwest::get(format!("{}/api-docs/openapi.json", server.address))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    doc["paths"].as_object().unwrap().keys().cloned().collect()
}

#[tokio::test]
async fn a_new_module_is_built_served_documented_and_deployed_and_the_workspace_is_untouched() {
    let root = workspace();
    // Names no module of the workspace has: one module on its own, one
    // that needs and follows ports.
    let free = |names: [&'static str; 3]| {
        names
            .into_iter()
            .find(|name| !root.join("modules").join(name).exists())
            .unwrap()
    };
    let name = free(["widgets", "gizmos", "sprockets"]);
    let dependent = free(["orders", "bookings", "rentals"]);
    let before = [touched(&root, name), touched(&root, dependent)];
    let copy = Copy::of(&root);
    let mut modules: Vec<String> = std::fs::read_dir(root.join("modules"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .chain([name.to_owned(), dependent.to_owned()])
        .collect();
    modules.sort();

    let refused = copy.cargo(&["xtask", "new-module", "Bad_Name"]);
    assert!(!refused.status.success(), "an invalid name is refused");
    let refused = copy.cargo(&["xtask", "new-module", "ports"]);
    assert!(!refused.status.success(), "an existing module is refused");
    // A failure part-way leaves nothing behind: here, nginx lacks its anchor.
    let nginx = copy.path().join("deploy/nginx/app.conf");
    let conf = std::fs::read_to_string(&nginx).unwrap();
    let unanchored = conf.replace("upstream any_module {", "upstream every_module {");
    std::fs::write(&nginx, &unanchored).unwrap();
    let before_failure = touched(copy.path(), name);
    let failed = copy.cargo(&["xtask", "new-module", name]);
    assert!(!failed.status.success(), "a missing anchor fails");
    assert!(
        touched(copy.path(), name) == before_failure,
        "and changes nothing"
    );
    std::fs::write(&nginx, conf).unwrap();

    let refused = copy.cargo(&["xtask", "new-module", dependent, "--follows", "ports"]);
    assert!(
        !refused.status.success(),
        "following ports needs its contract"
    );
    let refused = copy.cargo(&["xtask", "new-module", dependent, "--needs", "laptops"]);
    assert!(
        !refused.status.success(),
        "laptops offers no contract to call"
    );

    let generated = copy.cargo(&["xtask", "new-module", name]);
    assert!(generated.status.success(), "{generated:?}");
    let report = String::from_utf8(generated.stdout).unwrap();
    assert!(
        report.contains(&format!("modules/{name}/src/lib.rs")),
        "{report}"
    );
    let generated = copy.cargo(&[
        "xtask",
        "new-module",
        dependent,
        "--needs",
        "ports",
        "--follows",
        "ports",
    ]);
    assert!(generated.status.success(), "{generated:?}");
    let report = String::from_utf8(generated.stdout).unwrap();
    assert!(
        report.contains(&format!("modules/{dependent}/src/follow.rs")),
        "{report}"
    );

    let formatted = copy.cargo(&["fmt", "--all", "--check"]);
    assert!(
        formatted.status.success(),
        "the generated code is formatted"
    );
    // Built as the workspace builds (so fresh but for the new crates);
    // cargo replays the warnings of crates built before.
    let built = copy.cargo_quiet(&["build", "--workspace", "--bins"]);
    let warnings = String::from_utf8(built.stderr).unwrap();
    assert!(
        built.status.success() && !warnings.contains("warning"),
        "the generated module builds without a warning: {warnings}"
    );
    let listed = run(Command::new(copy.binary()).args(["modules", "--json"]));
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, modules);
    let checked = copy.cargo(&["xtask", "check-deploy"]);
    assert!(checked.status.success(), "{checked:?}");
    assert!(
        String::from_utf8(checked.stdout)
            .unwrap()
            .contains(&format!("{} modules", modules.len()))
    );
    let document = std::fs::read_to_string(copy.path().join(format!("openapi/{name}.json")));
    assert!(
        document
            .unwrap()
            .contains(&format!("/api/v1/{name}/{{id}}"))
    );

    let all = Server::start(&copy.binary(), &["--all"]).await;
    assert_module_works(&all, name).await;
    let paths = documented_paths(&all).await;
    let own = [format!("/api/v1/{name}"), format!("/api/v1/{name}/{{id}}")];
    let others = ["/api/v1/laptops".to_owned(), "/api/v1/ports".to_owned()];
    for path in own.iter().chain(&others) {
        assert!(paths.iter().any(|p| p == path), "{path} in {paths:?}");
    }
    let swagger = reqwest::get(format!("{}/swagger-ui/", all.address))
        .await
        .unwrap();
    assert_eq!(swagger.status(), 200);

    let alone = Server::start(&copy.binary(), &["--module", name]).await;
    assert_module_works(&alone, name).await;
    let paths = documented_paths(&alone).await;
    assert!(paths.iter().all(|p| p.starts_with(&own[0])), "{paths:?}");
    let laptops = reqwest::get(format!("{}/api/v1/laptops", alone.address))
        .await
        .unwrap();
    assert_eq!(laptops.status(), 404);

    // The module that needs ports, alone, with ports down: what does not
    // name a port works; what does answers 503, at once.
    let down = format!("ports=http://127.0.0.1:{}", unused_port());
    let alone = Server::start(&copy.binary(), &["--module", dependent, "--peer", &down]).await;
    assert_module_works(&alone, dependent).await;
    let client = authorized(&alone);
    let started = Instant::now();
    let refused = client
        .post(format!("{}/api/v1/{dependent}", alone.address))
        .json(&json!({"name": "Linked", "port_id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(alone);

    // The tests generated for both, in every topology: in one process, over
    // loopback HTTP, and split into processes behind nginx; and the role
    // test, whose matrix now holds both.
    let tested = copy.cargo(&[
        "test",
        "--test",
        "api",
        "--",
        &format!("{name}::"),
        &format!("{dependent}::"),
        "roles::",
    ]);
    let output = String::from_utf8(tested.stdout).unwrap();
    assert!(
        tested.status.success(),
        "the generated tests pass: {output}"
    );
    // It runs over every module the binary lists, each against every schema.
    assert!(
        output.contains(
            "roles::each_module_role_can_do_its_own_work_and_nothing_in_any_other_schema ... ok"
        ),
        "the role test ran, and passed for the new modules too: {output}"
    );
    for topology in [
        "sqlite_all",
        "sqlite_loopback",
        "postgres_all",
        "postgres_split",
    ] {
        let test = format!(
            "{dependent}::{topology}::a_deleted_port_is_taken_off_the_{dependent}_that_named_it ... ok"
        );
        assert!(output.contains(&test), "{test} in {output}");
    }

    assert!(
        [touched(&root, name), touched(&root, dependent)] == before,
        "the workspace is left as it was"
    );
}

/// A port nothing listens on.
fn unused_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
