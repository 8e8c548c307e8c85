//! Clients no one here wrote: openapi-python-client and openapi-typescript
//! (with openapi-fetch) generate clients from the live OpenAPI document,
//! and `tests/clients/` drives the API through them as a user would. Both
//! generators also run against two broken documents, to show these tests
//! fail when the document loses what they rely on.
//!
//! The generators are installed by `.ci/run`: the Python one into
//! `target/ci-tools`, the TypeScript ones by `npm ci --prefix
//! tests/clients/typescript`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use app::security::{Quota, Security};
use serde_json::Value;

use crate::auth::full_token;
use app_kernel::db::Backend;

use crate::helpers::{TestApp, security, spawn_app, spawn_secured};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Python tools' `bin`: the generator, ruff (which it runs on what it
/// writes) and the interpreter with httpx and attrs.
fn python_tools() -> PathBuf {
    let bin = root().join("target/ci-tools/bin");
    assert!(
        bin.join("openapi-python-client").exists(),
        "openapi-python-client is missing: `.ci/run` installs it into target/ci-tools"
    );
    bin
}

fn typescript_dir() -> PathBuf {
    let dir = root().join("tests/clients/typescript");
    assert!(
        dir.join("node_modules/.bin/openapi-typescript").exists(),
        "openapi-typescript is missing: run `npm ci --prefix tests/clients/typescript` (see .ci/run)"
    );
    dir
}

/// Runs `command` off the async runtime.
async fn run(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().expect("the command starts"))
        .await
        .unwrap()
}

fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Where a document comes from: the live server, or a file.
enum Source<'a> {
    Url(String),
    File(&'a Path),
}

/// A Python client generated from `source` into `dir`: its package's path.
async fn generate_python(source: &Source<'_>, dir: &Path) -> PathBuf {
    let bin = python_tools();
    let package = dir.join("app_client");
    let mut command = Command::new(bin.join("openapi-python-client"));
    command.arg("generate");
    match source {
        Source::Url(url) => command.args(["--url", url]),
        Source::File(path) => command.arg("--path").arg(path),
    };
    command
        .args(["--meta", "none", "--fail-on-warning", "--output-path"])
        .arg(&package)
        .env("PATH", path_with(&bin));
    let output = run(command).await;
    assert!(output.status.success(), "generate: {}", printed(&output));
    package
}

/// The Python scenario against `app`, with the client in `package`.
async fn python_scenario(app: &TestApp, package: &Path, rate_limited: bool) -> Output {
    let mut command = Command::new(python_tools().join("python"));
    command
        .arg(root().join("tests/clients/python/scenario.py"))
        .arg(&app.address)
        .arg(full_token())
        .arg(package);
    if rate_limited {
        command.arg("--rate-limited");
    }
    run(command).await
}

/// A TypeScript project in `dir`: the scenario, its configuration, and the
/// installed packages, with types generated from `source` into
/// `schema.d.ts`. Returns the generated declarations.
async fn generate_typescript(source: &Source<'_>, dir: &Path) -> String {
    let project = typescript_dir();
    for file in ["scenario.ts", "tsconfig.json", "package.json"] {
        std::fs::copy(project.join(file), dir.join(file)).unwrap();
    }
    std::os::unix::fs::symlink(project.join("node_modules"), dir.join("node_modules")).unwrap();
    let mut command = Command::new(dir.join("node_modules/.bin/openapi-typescript"));
    match source {
        Source::Url(url) => command.arg(url),
        Source::File(path) => command.arg(path),
    };
    command.args(["-o", "schema.d.ts"]).current_dir(dir);
    let output = run(command).await;
    assert!(
        output.status.success(),
        "openapi-typescript: {}",
        printed(&output)
    );
    std::fs::read_to_string(dir.join("schema.d.ts")).unwrap()
}

/// `tsc` over the project in `dir`: the scenario must compile against the
/// generated types (which includes the checks of declared response headers).
async fn compile_typescript(dir: &Path) -> Output {
    let mut command = Command::new(dir.join("node_modules/.bin/tsc"));
    command.args(["-p", "."]).current_dir(dir);
    run(command).await
}

fn path_with(bin: &Path) -> String {
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// What a list's items are typed as in generated TypeScript, for `model`.
fn items_of(model: &str) -> String {
    format!("items: components[\"schemas\"][\"{model}\"][];")
}

#[tokio::test]
async fn generated_python_and_typescript_clients_drive_the_whole_api() {
    // Rate limits on, high enough never to refuse, so every response says
    // `RateLimit` and the scenarios can require it.
    let quota: Quota = "1000/s".parse().unwrap();
    let app = spawn_secured(
        Security {
            read_limit: Some(quota),
            write_limit: Some(quota),
            ..security()
        },
        &[],
    )
    .await;
    let live = Source::Url(format!("{}/api-docs/openapi.json", app.address));

    let python = tempfile::tempdir().unwrap();
    let package = generate_python(&live, python.path()).await;
    let output = python_scenario(&app, &package, true).await;
    let said = printed(&output);
    assert!(output.status.success(), "python scenario: {said}");
    for step in [
        "ok: create laptop 201",
        "ok: get laptop expand=ports 200",
        "ok: list laptops, every page, limit=2",
        "ok: conditional patch 200",
        "ok: conditional patch 412",
        "ok: conditional get 304",
        "ok: create invalid laptop 422",
        "ok: get deleted laptop 404",
    ] {
        assert!(said.contains(step), "{step}: {said}");
    }

    let typescript = tempfile::tempdir().unwrap();
    let declarations = generate_typescript(&live, typescript.path()).await;
    assert_eq!(declarations.matches(&items_of("Laptop")).count(), 1);
    assert_eq!(declarations.matches(&items_of("Port")).count(), 1);
    let compiled = compile_typescript(typescript.path()).await;
    assert!(compiled.status.success(), "tsc: {}", printed(&compiled));
    let mut command = Command::new("node");
    command
        .arg(typescript.path().join("dist/scenario.js"))
        .arg(&app.address)
        .arg(full_token())
        .arg("--rate-limited");
    let output = run(command).await;
    let said = printed(&output);
    assert!(output.status.success(), "typescript scenario: {said}");
    for step in ["conditional patch 412", "conditional get 304", "422"] {
        assert!(said.contains(step), "{step}: {said}");
    }
}

/// Each module served alone has a document of its own; clients generated
/// from it type list items as the module's model and take the conditional
/// headers as arguments.
#[tokio::test]
async fn a_client_generated_from_one_module_alone_has_the_same_types() {
    for module in app::modules::ALL {
        let app = spawn_app(Backend::Sqlite, &[module]).await;
        let live = Source::Url(format!("{}/api-docs/openapi.json", app.address));
        let doc: Value = app.get_json("/api-docs/openapi.json").await;
        let list = module.path();
        let page =
            doc["paths"][&list]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
                ["$ref"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_owned();
        let model = page.strip_prefix("Page_").unwrap().to_owned();

        let python = tempfile::tempdir().unwrap();
        let package = generate_python(&live, python.path()).await;
        let models: Vec<String> = std::fs::read_dir(package.join("models"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            !models.iter().any(|file| file.contains("items_item")),
            "{}: a model of its own for list items: {models:?}",
            module.name
        );
        let api = package.join("api").join(module.name);
        let singular = module.name.trim_end_matches('s');
        for (operation, argument) in [
            (format!("get_{singular}"), "if_none_match"),
            (format!("replace_{singular}"), "if_match"),
            (format!("patch_{singular}"), "if_match"),
            (format!("delete_{singular}"), "if_match"),
        ] {
            let code = std::fs::read_to_string(api.join(format!("{operation}.py"))).unwrap();
            assert!(
                code.contains(&format!("{argument}: str | Unset = UNSET")),
                "{operation} takes {argument}"
            );
        }
        let page_model = std::fs::read_to_string(
            package
                .join("models")
                .join(format!("page_{}.py", model.to_lowercase())),
        )
        .unwrap();
        assert!(
            page_model.contains(&format!("items: list[{model}]")),
            "{page_model}"
        );

        let typescript = tempfile::tempdir().unwrap();
        let declarations = generate_typescript(&live, typescript.path()).await;
        assert_eq!(
            declarations.matches(&items_of(&model)).count(),
            1,
            "{}",
            module.name
        );
        for header in ["\"If-Match\"?: string;", "\"If-None-Match\"?: string;"] {
            assert!(declarations.contains(header), "{}: {header}", module.name);
        }
    }
}

/// The tests above fail when the document breaks as it once was: list
/// items inlined into each page, or `If-Match` described only in prose.
#[tokio::test]
async fn clients_generated_from_a_broken_document_fail_the_same_scenarios() {
    let app = spawn_secured(security(), &[]).await;
    let doc: Value = app.get_json("/api-docs/openapi.json").await;
    let dir = tempfile::tempdir().unwrap();

    let mut inlined = doc.clone();
    inlined["components"]["schemas"]["Page_Laptop"]["properties"]["items"]["items"] =
        doc["components"]["schemas"]["Laptop"].clone();
    let mut without_if_match = doc.clone();
    for item in without_if_match["paths"]
        .as_object_mut()
        .unwrap()
        .values_mut()
    {
        for operation in item.as_object_mut().unwrap().values_mut() {
            if let Some(parameters) = operation["parameters"].as_array_mut() {
                parameters.retain(|p| p["name"] != "If-Match");
            }
        }
    }

    for (name, broken, python_fails, typescript_fails) in [
        (
            "inlined",
            inlined,
            "page item is PageLaptopItemsItem, not Laptop",
            None,
        ),
        (
            "without-if-match",
            without_if_match,
            "unexpected keyword argument 'if_match'",
            Some("'{ \"If-Match\": string; }'"),
        ),
    ] {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, broken.to_string()).unwrap();
        let source = Source::File(&file);

        let python = dir.path().join(format!("{name}-python"));
        std::fs::create_dir(&python).unwrap();
        let package = generate_python(&source, &python).await;
        let output = python_scenario(&app, &package, false).await;
        assert!(!output.status.success(), "{name}: {}", printed(&output));
        assert!(
            printed(&output).contains(python_fails),
            "{name}: {}",
            printed(&output)
        );

        let typescript = dir.path().join(format!("{name}-typescript"));
        std::fs::create_dir(&typescript).unwrap();
        let declarations = generate_typescript(&source, &typescript).await;
        let compiled = compile_typescript(&typescript).await;
        match typescript_fails {
            // Structural typing: an inlined copy of Laptop is a Laptop to
            // tsc, so what tells is the declaration a user reads.
            None => {
                assert!(compiled.status.success(), "{name}: {}", printed(&compiled));
                assert_eq!(declarations.matches(&items_of("Laptop")).count(), 0);
            }
            Some(error) => {
                assert!(!compiled.status.success(), "{name}: tsc passed");
                assert!(printed(&compiled).contains(error), "{}", printed(&compiled));
            }
        }
    }
}
