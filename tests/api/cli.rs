//! The command line, as a user runs it.

use std::process::{Command, Output};

/// Runs the binary with `args`, as a user would, without the test's environment.
pub fn app(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_app"))
        .args(args)
        .env_remove("APP_DATABASE_URL")
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_explains_every_command_and_its_environment_variables() {
    let help = app(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for command in ["serve", "migrate", "openapi", "modules", "healthcheck"] {
        assert!(text.contains(command), "--help names {command}");
    }
    let serve = String::from_utf8_lossy(&app(&["serve", "--help"]).stdout).into_owned();
    for flag in [
        "--all",
        "--module",
        "--bind",
        "--database-url",
        "--log-format",
        "APP_BIND",
        "APP_DATABASE_URL",
        "--peer",
        "APP_PEER_TIMEOUT_MS",
        "--peer-loopback",
        "--no-migrate",
        "APP_DATABASE_MAX_CONNECTIONS",
    ] {
        assert!(serve.contains(flag), "serve --help names {flag}");
    }
}

#[test]
fn bad_command_lines_fail_with_one_line_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().display());
    let cases: &[&[&str]] = &[
        &["serve", "--bogus"],
        &["serve"],
        &["serve", "--module", "printers"],
        &[
            "serve",
            "--all",
            "--bind",
            "not-an-address",
            "--database-url",
            &sqlite,
        ],
        &["serve", "--all", "--database-url", "mysql://localhost/app"],
        &[
            "serve",
            "--all",
            "--database-url",
            "postgres://user@127.0.0.1:1/app",
        ],
        &[
            "migrate",
            "--database-url",
            "postgres://user@127.0.0.1:1/app",
        ],
        &["serve", "--all", "--log-format", "xml"],
        &["serve", "--all", "--database-max-connections", "0"],
        &["healthcheck", "--timeout-ms", "0"],
        &["serve", "--module", "laptops", "--peer", "ports"],
        &[
            "serve",
            "--module",
            "laptops",
            "--peer",
            "printers=http://h:1",
        ],
        &["serve", "--module", "laptops", "--peer", "ports=ftp://h:1"],
        &["serve", "--module", "laptops", "--peer", "ports=not a url"],
        &[
            "serve",
            "--module",
            "laptops",
            "--peer",
            "ports=http://h:1/?q=1",
        ],
        &["serve", "--all", "--peer-timeout-ms", "0"],
    ];
    for args in cases {
        let output = app(args);
        let err = stderr(&output);
        assert!(!output.status.success(), "{args:?} fails");
        assert_eq!(
            err.trim_end().lines().count(),
            1,
            "{args:?}: one line, got {err:?}"
        );
        assert!(err.starts_with("error"), "{args:?}: {err:?}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{args:?}: {err:?}"
        );
    }
}

#[test]
fn a_bad_peer_variable_fails_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().display());
    for (variable, value) in [
        ("APP_PEER_PORTS", "https://h:1"),
        ("APP_PEER", "ports=ftp://h:1"),
        ("APP_PEER", "printers=http://h:1"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_app"))
            .args(["serve", "--module", "laptops", "--database-url", &sqlite])
            .env(variable, value)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = stderr(&output);
        assert!(!output.status.success(), "{variable}={value} fails");
        assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
        assert!(
            err.starts_with("error") && err.contains(variable),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn a_peer_is_named_by_the_last_flag_else_its_own_variable_else_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite:{}", dir.path().display());
    let wanted = "http://127.0.0.1:9";
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 4] = [
        (&[("APP_PEER", "ports=http://127.0.0.1:9")], &[]),
        (&[("APP_PEER_PORTS", "http://127.0.0.1:9")], &[]),
        (
            &[
                ("APP_PEER", "ports=http://127.0.0.1:8"),
                ("APP_PEER_PORTS", "http://127.0.0.1:9"),
            ],
            &[],
        ),
        (
            &[("APP_PEER_PORTS", "http://127.0.0.1:8")],
            &[
                "--peer",
                "ports=http://127.0.0.1:7",
                "--peer",
                "ports=http://127.0.0.1:9",
            ],
        ),
    ];
    for (env, flags) in cases {
        let port = crate::process::free_port();
        let mut args = vec!["serve", "--module", "laptops", "--database-url", &database];
        args.extend_from_slice(flags);
        let args: Vec<String> = args.into_iter().map(String::from).collect();
        let mut env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        env.push(("APP_BIND".into(), format!("127.0.0.1:{port}")));
        // Quiet: nothing answers at the peer's address.
        env.push(("RUST_LOG".into(), "error".into()));
        let server = crate::process::Process::spawn_as(port, &args, &env);
        server.ready().await;
        let ready = crate::helpers::json_at(
            &crate::auth::client(),
            format!("{}/health/ready", server.address),
        )
        .await;
        assert_eq!(ready["peers"][0]["url"], wanted, "{env:?} {flags:?}");
        assert_eq!(ready["peers"][0]["via"], "http");
    }
}

#[test]
fn modules_lists_every_module() {
    let output = app(&["modules"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for module in app::modules::ALL {
        assert!(text.contains(module.name) && text.contains(module.summary));
    }
    let json = app(&["modules", "--json"]);
    let listed: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let expected: Vec<serde_json::Value> = app::modules::ALL
        .iter()
        .map(|module| {
            let needs: Vec<&str> = module.needs.iter().map(|c| c.module).collect();
            serde_json::json!({
                "name": module.name,
                "path": format!("/api/v1/{}", module.name),
                "summary": module.summary,
                "needs": needs,
            })
        })
        .collect();
    assert_eq!(listed, serde_json::Value::from(expected));
    let laptops = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "laptops")
        .unwrap();
    assert_eq!(laptops["needs"], serde_json::json!(["ports"]));
}

#[test]
fn asyncapi_prints_the_events_document_of_the_chosen_modules() {
    let output = app(&["asyncapi", "--module", "ports"]);
    assert!(output.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(doc["asyncapi"], "3.0.0");
    let channels: Vec<&String> = doc["channels"].as_object().unwrap().keys().collect();
    assert_eq!(channels, ["ports"]);
    assert_eq!(doc["channels"]["ports"]["address"], "ports.events");
}

#[test]
fn openapi_prints_the_document_of_the_chosen_modules() {
    let output = app(&["openapi", "--module", "ports"]);
    assert!(output.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let paths: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
    assert_eq!(
        paths,
        [
            "/api/v1/ports",
            "/api/v1/ports/events",
            "/api/v1/ports/{id}"
        ]
    );
}

#[test]
fn migrate_creates_one_database_per_module_and_can_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().display());
    for _ in 0..2 {
        let output = app(&["migrate", "--database-url", &url]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert!(dir.path().join("ports.db").exists());
    assert!(dir.path().join("laptops.db").exists());
    let only = tempfile::tempdir().unwrap();
    let output = app(&[
        "migrate",
        "--module",
        "ports",
        "--database-url",
        &format!("sqlite:{}", only.path().display()),
    ]);
    assert!(output.status.success());
    assert!(only.path().join("ports.db").exists() && !only.path().join("laptops.db").exists());
}

#[test]
fn a_broker_url_is_refused_without_showing_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().display());
    for url in [
        "amqps://app:hunter2@broker:5671/%2f",
        "http://app:hunter2@broker:5672/",
        "amqp://app:hunter2@[broken",
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_app"))
            .args(["serve", "--all", "--database-url", &sqlite])
            .env("APP_BROKER_URL", url)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let err = stderr(&output);
        assert_eq!(output.status.code(), Some(2), "{url}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
        assert!(err.contains("--broker"), "{err:?}");
        assert!(!err.contains("hunter2"), "the password is shown: {err:?}");
    }
}

#[tokio::test]
async fn an_unreachable_broker_is_logged_without_its_password_and_serving_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = format!("sqlite:{}", dir.path().display());
    let nobody = crate::process::free_port();
    let url = format!("amqp://app:hunter2@127.0.0.1:{nobody}/%2f");
    let mut process = crate::process::Process::spawn_with_env(
        crate::process::free_port(),
        &["--all", "--database-url", &sqlite],
        "warn",
        std::process::Stdio::piped(),
        &[("APP_BROKER_URL", &url)],
    );
    process.ready().await;
    let ports = reqwest::get(format!("{}/api/v1/ports", process.address))
        .await
        .unwrap();
    assert_eq!(ports.status(), 200, "serves with the broker down");
    process.terminate();
    let mut logs = String::new();
    use std::io::Read as _;
    process
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut logs)
        .unwrap();
    assert!(logs.contains("cannot reach the broker"), "{logs}");
    assert!(logs.contains("app:***@"), "{logs}");
    assert!(!logs.contains("hunter2"), "the password is logged: {logs}");
}
