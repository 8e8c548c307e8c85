//! A real browser: Debian's Chromium, driven by playwright-core, uses Swagger
//! UI to create a port and read it back.

use std::process::Command;

use app::modules::Module;
use app_kernel::db::Backend;

use crate::helpers::spawn_app;

#[tokio::test]
async fn swagger_ui_tries_out_create_and_get_in_a_real_browser() {
    let app = spawn_app(Backend::Sqlite, &Module::ALL).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix tests/browser` (see .ci/run)"
    );
    let address = app.address.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(dir.join("swagger.mjs"))
            .arg(address)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("create_port: 201"), "{stdout}");
    assert!(stdout.contains("get_port: 200"), "{stdout}");
    let created = app.list_all("/api/v1/ports").await;
    assert_eq!(created.len(), 1, "the browser's port is stored");
}
