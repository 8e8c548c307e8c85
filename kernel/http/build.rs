//! Finds the last release recorded under `releases/` at the workspace's
//! root (the greatest version below this one), for `versions::LAST_RELEASE`.

use std::path::Path;

fn main() {
    let releases = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../releases");
    println!("cargo::rerun-if-changed={}", releases.display());
    let this = semver::Version::parse(env!("CARGO_PKG_VERSION")).expect("the crate's version");
    let last = std::fs::read_dir(&releases)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| semver::Version::parse(entry.file_name().to_str()?).ok())
        .filter(|version| *version < this)
        .max();
    let last = last.map(|v| v.to_string()).unwrap_or_default();
    println!("cargo::rustc-env=APP_LAST_RELEASE={last}");
}
