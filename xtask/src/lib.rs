//! The workspace's own tasks, as a library so the tests can call them.

pub mod compat;
pub mod deploy;
pub mod imports;
pub mod release;
pub mod scaffold;

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::deploy::ModuleInfo;

/// The workspace's root: the folder above this crate's, as `cargo run`
/// says it is (a copy of the workspace may share this build).
pub fn root() -> PathBuf {
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest
        .parent()
        .expect("xtask lies in the workspace")
        .to_owned()
}

/// The modules of the binary built from the workspace at `root`, as
/// `app modules --json` lists them.
pub fn modules(root: &Path) -> anyhow::Result<Vec<ModuleInfo>> {
    let listed = app(root, &["modules", "--json"])?;
    serde_json::from_str(&listed).context("app modules --json lists modules")
}

/// Builds the workspace's binaries and runs `app ARGS`; its standard output.
/// Built as `cargo test --workspace` and `cargo clippy --workspace` build,
/// with the features of the whole workspace, so their artifacts serve.
pub fn app(root: &Path, args: &[&str]) -> anyhow::Result<String> {
    scaffold::cargo(root, &["build", "--quiet", "--workspace", "--bins"])?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let binary = target.join("debug/app");
    let output = std::process::Command::new(&binary)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    anyhow::ensure!(output.status.success(), "app {} failed", args.join(" "));
    Ok(String::from_utf8(output.stdout)?)
}
