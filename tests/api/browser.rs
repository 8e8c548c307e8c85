//! A real browser: Debian's Chromium, driven by playwright-core, uses Swagger
//! UI behind the gateway (nginx in front of the modules as separate
//! processes): a write without a token is refused; with a token from
//! `app token` given to Authorize, the example bodies as shown create a
//! port, read it back, patch it with `If-Match` (412 for a stale tag, 200
//! for the current one), and create a laptop listing it.

use std::process::Command;

use crate::auth::app_token;
use crate::helpers::spawn_split_with_dev_keys;

#[tokio::test]
async fn swagger_ui_behind_the_gateway_runs_operations_of_every_module_in_a_real_browser() {
    let keys = tempfile::tempdir().unwrap();
    let key_file = keys.path().join("dev-signing-key.pem");
    // Made first, so every process of the split reads the same key.
    let token = app_token(&key_file, &["ports:write", "laptops:write"]);
    let app = spawn_split_with_dev_keys(&key_file, &token).await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `npm ci --prefix tests/browser` (see .ci/run)"
    );
    let address = app.address.clone();
    let browser_token = token.clone();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(dir.join("swagger.mjs"))
            .arg(address)
            .arg(browser_token)
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
    assert!(stdout.contains("create_port: 401"), "{stdout}");
    assert!(stdout.contains("authorized"), "{stdout}");
    assert!(stdout.contains("create_port: 201"), "{stdout}");
    assert!(stdout.contains("get_port: 200"), "{stdout}");
    assert!(stdout.contains("patch_port: 412"), "{stdout}");
    assert!(stdout.contains("patch_port: 200"), "{stdout}");
    assert!(stdout.contains("create_laptop: 201"), "{stdout}");
    let ports = app.list_all("/api/v1/ports").await;
    assert_eq!(ports.len(), 1, "the browser's port is stored");
    let laptops = app.list_all("/api/v1/laptops").await;
    assert_eq!(laptops.len(), 1, "the browser's laptop is stored");
    assert_eq!(ports[0]["name"], "USB4", "the example port, patched once");
    assert_eq!(laptops[0]["port_ids"], serde_json::json!([ports[0]["id"]]));
}
