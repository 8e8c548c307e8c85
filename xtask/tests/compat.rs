//! `cargo xtask compat --old OLD --new NEW`, as a script calls it: one line
//! per break and exit status 1; 0 when compatible; 2 when it cannot compare.

use std::process::{Command, Output};

fn compat(old: &std::path::Path, new: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["compat", "--old"])
        .arg(old)
        .arg("--new")
        .arg(new)
        .output()
        .unwrap()
}

#[test]
fn compat_prints_one_line_per_break_and_exits_one() {
    let root = xtask::root();
    let old = root.join("openapi/laptops.json");
    let same = compat(&old, &old);
    assert_eq!(same.status.code(), Some(0), "{same:?}");

    let mut document: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&old).unwrap()).unwrap();
    let paths = document["paths"].as_object_mut().unwrap();
    paths.remove("/api/v1/laptops/events");
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("new.json");
    std::fs::write(&new, document.to_string()).unwrap();
    let broken = compat(&old, &new);
    assert_eq!(broken.status.code(), Some(1), "{broken:?}");
    let stdout = String::from_utf8(broken.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    assert!(
        lines[0].starts_with("GET /api/v1/laptops/events: ")
            && lines[0].ends_with("[api-path-removed-without-deprecation]"),
        "{stdout}"
    );
    let stderr = String::from_utf8(broken.stderr).unwrap();
    assert!(stderr.contains("expand/contract"), "{stderr}");

    let events = root.join("asyncapi/laptops.json");
    let mixed = compat(&old, &events);
    assert_eq!(mixed.status.code(), Some(2), "{mixed:?}");
}
