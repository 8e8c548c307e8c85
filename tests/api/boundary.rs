//! Module crates never depend on each other: they meet only in the binary,
//! or through another module's contract crate (`contracts/`), which in turn
//! depends on no module.

use std::process::Command;

use serde_json::Value;

#[test]
fn no_module_crate_depends_on_another_module_crate() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let packages_under = |dir: &str| -> Vec<&Value> {
        metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| {
                std::path::Path::new(p["manifest_path"].as_str().unwrap())
                    .starts_with(root.join(dir))
            })
            .collect()
    };
    let modules = packages_under("modules");
    let names: Vec<&str> = modules
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names.len(),
        app::modules::ALL.len(),
        "one crate per module: {names:?}"
    );
    let contracts = packages_under("contracts");
    assert!(!contracts.is_empty(), "the ports contract is a crate");
    for package in modules.iter().chain(&contracts) {
        for dependency in package["dependencies"].as_array().unwrap() {
            let dependency = dependency["name"].as_str().unwrap();
            assert!(
                !names.contains(&dependency),
                "{} depends on module {dependency}",
                package["name"]
            );
        }
    }
    let laptops = modules.iter().find(|p| p["name"] == "laptops").unwrap();
    assert!(
        laptops["dependencies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["name"] == "ports-api"),
        "laptops reach ports through its contract"
    );
}
