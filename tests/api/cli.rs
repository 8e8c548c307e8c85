//! The command line, as a user runs it.

use std::process::{Command, Output};

fn app(args: &[&str]) -> Output {
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
        &[
            "serve",
            "--module",
            "laptops",
            "--peer-ports",
            "https://h:1",
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
fn modules_lists_every_module() {
    let output = app(&["modules"]);
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("laptops") && text.contains("ports"));
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
            "/api/v1/ports/deletions",
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
