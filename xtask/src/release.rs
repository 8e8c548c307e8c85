//! Releases: what each module promised at a version, kept under
//! `releases/VERSION/` so that a fresh clone finds the last one without
//! tags; the gate that holds the workspace to it; and `cargo xtask
//! release`, which records the next.
//!
//! `releases/VERSION/release.json` names the version, the commit it was
//! cut at and its modules; beside it, each module's `openapi.json`,
//! `asyncapi.json` and `migrations.json` (each migration's file and
//! SHA-384). The last release is the greatest version recorded below the
//! workspace's own.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha384};

use crate::compat::{self, Tools};

/// What `release.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub version: String,
    /// The commit the release was built from, in full.
    pub commit: String,
    /// The day of that commit.
    pub date: String,
    pub modules: Vec<String>,
}

/// One migration as a release applied it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// `postgres` or `sqlite`.
    pub backend: String,
    pub file: String,
    pub sha384: String,
}

/// A recorded release.
#[derive(Debug, Clone)]
pub struct Release {
    pub dir: PathBuf,
    pub record: Record,
}

impl Release {
    /// Module `module`'s document `name` (`openapi.json`, `asyncapi.json`).
    pub fn document(&self, module: &str, name: &str) -> anyhow::Result<Value> {
        read_json(&self.dir.join(module).join(name))
    }

    pub fn migrations(&self, module: &str) -> anyhow::Result<Vec<Migration>> {
        let path = self.dir.join(module).join("migrations.json");
        Ok(serde_json::from_value(read_json(&path)?)?)
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("{}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The workspace's version, `[workspace.package]`'s in `Cargo.toml`.
pub fn version(root: &Path) -> anyhow::Result<semver::Version> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let line = manifest
        .split("[workspace.package]")
        .nth(1)
        .and_then(|section| section.lines().find(|l| l.starts_with("version = ")))
        .context("Cargo.toml has no [workspace.package] version")?;
    let version = line.trim_start_matches("version = ").trim_matches('"');
    Ok(semver::Version::parse(version)?)
}

/// The last release before the workspace's version, if there is one.
pub fn last(root: &Path) -> anyhow::Result<Option<Release>> {
    let this = version(root)?;
    let Ok(entries) = std::fs::read_dir(root.join("releases")) else {
        return Ok(None);
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(version) = entry
            .file_name()
            .to_str()
            .and_then(|name| semver::Version::parse(name).ok())
            .filter(|version| *version < this)
        {
            found.push((version, entry.path()));
        }
    }
    let Some((_, dir)) = found.into_iter().max() else {
        return Ok(None);
    };
    let record: Record = serde_json::from_value(read_json(&dir.join("release.json"))?)?;
    Ok(Some(Release { dir, record }))
}

/// The modules of the workspace: those with an OpenAPI document.
pub fn modules(root: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("openapi"))?
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".json")
                .filter(|module| *module != "all")
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    Ok(names)
}

/// Module `module`'s migrations in the workspace, by backend and file.
pub fn migrations(root: &Path, module: &str) -> anyhow::Result<Vec<Migration>> {
    let mut found = Vec::new();
    for backend in ["postgres", "sqlite"] {
        let dir = root.join("migrations").join(module).join(backend);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "sql") {
                let sql = std::fs::read(&path)?;
                found.push(Migration {
                    backend: backend.to_owned(),
                    file: path.file_name().unwrap().to_string_lossy().into_owned(),
                    sha384: format!("{:x}", Sha384::digest(&sql)),
                });
            }
        }
    }
    found.sort_by(|a, b| (&a.backend, &a.file).cmp(&(&b.backend, &b.file)));
    Ok(found)
}

fn git(root: &Path, args: &[&str]) -> anyhow::Result<std::process::Output> {
    Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .context("cannot run git")
}

/// What the gate found: the release it compared with, and each break.
pub struct Verdict {
    pub release: Option<Record>,
    pub breaks: Vec<String>,
    /// How many documents and new migrations were compared.
    pub checked: usize,
}

/// Holds the workspace at `root` to the last release: the breaks of each
/// module's API, events and migrations for what that release runs.
pub fn gate(root: &Path, tools: &Tools) -> anyhow::Result<Verdict> {
    let Some(release) = last(root)? else {
        return Ok(Verdict {
            release: None,
            breaks: Vec::new(),
            checked: 0,
        });
    };
    let commit = &release.record.commit;
    let present = git(root, &["cat-file", "-e", &format!("{commit}^{{commit}}")])?;
    if !present.status.success() {
        bail!(
            "the last release, {}, was cut at commit {commit}, which this clone lacks \
             (a shallow clone?): fetch the whole history (git fetch --unshallow)",
            release.record.version
        );
    }
    let now = modules(root)?;
    let mut breaks = Vec::new();
    let mut checked = 0;
    for module in &release.record.modules {
        if !now.contains(module) {
            breaks.push(format!(
                "module {module}: removed, while the last release's modules call it or follow its events"
            ));
            continue;
        }
        for (name, dir) in [("openapi.json", "openapi"), ("asyncapi.json", "asyncapi")] {
            let old = release.document(module, name)?;
            let new = read_json(&root.join(dir).join(format!("{module}.json")))?;
            checked += 1;
            breaks.extend(
                compat::documents(tools, &old, &new)?
                    .into_iter()
                    .map(|line| format!("{module}: {line}")),
            );
        }
        let applied = release.migrations(module)?;
        let present = migrations(root, module)?;
        for old in &applied {
            match present
                .iter()
                .find(|m| m.backend == old.backend && m.file == old.file)
            {
                None => breaks.push(format!(
                    "{module}: migration {}/{} was removed: databases the last release migrated hold it [migration-removed]",
                    old.backend, old.file
                )),
                Some(new) if new.sha384 != old.sha384 => breaks.push(format!(
                    "{module}: migration {}/{} was changed after the last release applied it: its checksum no longer matches, and migrating refuses [migration-changed]",
                    old.backend, old.file
                )),
                Some(_) => {}
            }
        }
        for new in present.iter().filter(|m| {
            !applied
                .iter()
                .any(|a| a.backend == m.backend && a.file == m.file)
        }) {
            checked += 1;
            let file = Path::new("migrations")
                .join(module)
                .join(&new.backend)
                .join(&new.file);
            let found = match new.backend.as_str() {
                "postgres" => compat::postgres(tools, &root.join(&file))?,
                _ => compat::sqlite(&root.join(&file))?,
            };
            let prefix = format!("{}/", root.display());
            breaks.extend(
                found
                    .into_iter()
                    .map(|line| format!("{module}: {}", line.trim_start_matches(&prefix))),
            );
        }
    }
    Ok(Verdict {
        release: Some(release.record),
        breaks,
        checked,
    })
}

/// Records the workspace's version as a release cut at `HEAD`, with a
/// changelog entry of `notes` (else the commit subjects since the last
/// release), then moves the workspace (and the image its Kubernetes
/// manifests deploy) on to the next minor version's `-dev`. Refuses with uncommitted changes, or if the gate finds a break.
pub fn cut(root: &Path, tools: &Tools, notes: Option<String>) -> anyhow::Result<Record> {
    let status = git(root, &["status", "--porcelain"])?;
    if !status.stdout.is_empty() {
        bail!("commit or stash your changes first: a release is cut at a commit");
    }
    let verdict = gate(root, tools)?;
    if !verdict.breaks.is_empty() {
        bail!(
            "the gate refuses this release:\n{}\n{}",
            verdict.breaks.join("\n"),
            compat::EXPAND_CONTRACT
        );
    }
    let version = version(root)?;
    let dir = root.join("releases").join(version.to_string());
    if dir.exists() {
        bail!("{} exists: {version} was released", dir.display());
    }
    let head = git(root, &["log", "-1", "--format=%H %cs"])?;
    let head = String::from_utf8(head.stdout)?;
    let (commit, date) = head.trim().split_once(' ').context("git log")?;
    let modules = modules(root)?;
    for module in &modules {
        let into = dir.join(module);
        std::fs::create_dir_all(&into)?;
        for (dir, name) in [("openapi", "openapi.json"), ("asyncapi", "asyncapi.json")] {
            std::fs::copy(
                root.join(dir).join(format!("{module}.json")),
                into.join(name),
            )?;
        }
        let migrations = serde_json::to_string_pretty(&migrations(root, module)?)?;
        std::fs::write(into.join("migrations.json"), migrations + "\n")?;
    }
    let record = Record {
        version: version.to_string(),
        commit: commit.to_owned(),
        date: date.to_owned(),
        modules,
    };
    std::fs::write(
        dir.join("release.json"),
        serde_json::to_string_pretty(&record)? + "\n",
    )?;

    let notes = match notes {
        Some(notes) => notes,
        None => {
            let since = verdict
                .release
                .map(|last| format!("{}..HEAD", last.commit))
                .unwrap_or_else(|| "HEAD".to_owned());
            let log = git(root, &["log", "--no-merges", "--format=- %s", &since])?;
            String::from_utf8(log.stdout)?
        }
    };
    let changelog = root.join("CHANGELOG.md");
    let before = std::fs::read_to_string(&changelog).unwrap_or_else(|_| {
        "# Changelog\n\nEach release, newest first: what changed, and the commit it was cut at. \
         What each module promised at a release is under `releases/VERSION/`.\n"
            .to_owned()
    });
    let (head, rest) = before.split_at(before.find("\n## ").map_or(before.len(), |i| i + 1));
    let entry = format!(
        "## {version} ({date}, commit {})\n\n{}\n",
        &commit[..12],
        notes.trim_end()
    );
    let separator = if head.ends_with("\n\n") { "" } else { "\n" };
    std::fs::write(&changelog, format!("{head}{separator}{entry}\n{rest}"))?;

    let next = semver::Version {
        minor: version.minor + 1,
        patch: 0,
        pre: semver::Prerelease::new("dev")?,
        ..version.clone()
    };
    let manifest = std::fs::read_to_string(root.join("Cargo.toml"))?;
    let old_line = format!("\nversion = \"{version}\"\n");
    if !manifest.contains(&old_line) {
        bail!("Cargo.toml's version line is not `version = \"{version}\"`");
    }
    std::fs::write(
        root.join("Cargo.toml"),
        manifest.replacen(&old_line, &format!("\nversion = \"{next}\"\n"), 1),
    )?;
    // The Kubernetes manifests deploy the workspace's version.
    let image = root.join("deploy/k8s/components/app-pod/kustomization.yaml");
    if let Ok(text) = std::fs::read_to_string(&image) {
        let tag = format!("newTag: \"{version}\"");
        if !text.contains(&tag) {
            bail!("{} does not tag the image {version}", image.display());
        }
        std::fs::write(&image, text.replace(&tag, &format!("newTag: \"{next}\"")))?;
    }
    if root.join("Cargo.lock").exists() {
        crate::scaffold::cargo(root, &["update", "--workspace", "--offline", "--quiet"])?;
    }
    Ok(record)
}

/// Builds the last release's binary from its recorded commit, in the
/// workspace's build directory (so that only the workspace's own crates
/// build again: their sources are elsewhere, the dependencies' are the
/// same), into `target/previous/VERSION/debug/app`, and returns its path.
/// The release's sources are taken from git once per commit.
pub fn build_previous(root: &Path) -> anyhow::Result<(Record, PathBuf)> {
    let release = last(root)?.context("no release is recorded under releases/")?;
    let record = release.record;
    let commit = &record.commit;
    let present = git(root, &["cat-file", "-e", &format!("{commit}^{{commit}}")])?;
    if !present.status.success() {
        bail!(
            "the last release, {}, was cut at commit {commit}, which this clone lacks \
             (a shallow clone?): fetch the whole history (git fetch --unshallow)",
            record.version
        );
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let target = std::path::absolute(target)?;
    let home = target.join("previous").join(&record.version);
    let sources = home.join("src");
    let stamp = home.join("commit");
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(commit.as_str()) {
        let _ = std::fs::remove_dir_all(&sources);
        std::fs::create_dir_all(&sources)?;
        let archive = git(root, &["archive", "--format=tar", commit])?;
        if !archive.status.success() {
            bail!(
                "git archive {commit}: {}",
                String::from_utf8_lossy(&archive.stderr)
            );
        }
        let mut tar = Command::new("tar")
            .arg("-x")
            .arg("-C")
            .arg(&sources)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .context("cannot run tar")?;
        use std::io::Write as _;
        tar.stdin.take().unwrap().write_all(&archive.stdout)?;
        if !tar.wait()?.success() {
            bail!("tar could not unpack release {}", record.version);
        }
        std::fs::write(&stamp, commit)?;
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let built = Command::new(cargo)
        .args(["build", "--workspace", "--bins", "--locked", "--quiet"])
        .current_dir(&sources)
        .env("CARGO_TARGET_DIR", home.join("out"))
        .env("CARGO_BUILD_BUILD_DIR", &target)
        .status()
        .context("cannot run cargo")?;
    if !built.success() {
        bail!("the release {} does not build", record.version);
    }
    let binary = home.join("out/debug/app");
    let said = Command::new(&binary).arg("--version").output()?;
    let said = String::from_utf8_lossy(&said.stdout);
    if said.trim() != format!("app {}", record.version) {
        bail!(
            "{} says it is {said:?}, not app {}",
            binary.display(),
            record.version
        );
    }
    Ok((record, binary))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }

    fn commit(root: &Path, message: &str) {
        for args in [
            &["add", "-A"][..],
            &[
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.com",
                "commit",
                "-qm",
                message,
            ],
        ] {
            let output = git(root, args).unwrap();
            assert!(output.status.success(), "{output:?}");
        }
    }

    /// A workspace at 0.1.0 with this one's documents and migrations, in git.
    fn workspace() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let here = crate::root();
        std::fs::write(
            root.join("Cargo.toml"),
            "[workspace]\nmembers = []\n\n[workspace.package]\nversion = \"0.1.0\"\n",
        )
        .unwrap();
        for tree in ["openapi", "asyncapi", "migrations"] {
            copy_tree(&here.join(tree), &root.join(tree));
        }
        assert!(git(root, &["init", "-q"]).unwrap().status.success());
        commit(root, "first");
        dir
    }

    fn tools() -> Tools {
        Tools::find(&crate::root()).expect("the gate's tools are installed (.ci/run installs them)")
    }

    #[test]
    fn a_release_is_recorded_then_holds_the_next_version_to_it() {
        let dir = workspace();
        let root = dir.path();
        let tools = tools();
        assert!(gate(root, &tools).unwrap().release.is_none());

        let record = cut(root, &tools, Some("- The first.\n".into())).unwrap();
        let head = git(root, &["rev-parse", "HEAD"]).unwrap();
        assert_eq!(
            record.commit,
            String::from_utf8(head.stdout).unwrap().trim()
        );
        assert_eq!(record.modules, ["laptops", "ports"]);
        assert_eq!(version(root).unwrap().to_string(), "0.2.0-dev");
        for file in ["openapi.json", "asyncapi.json", "migrations.json"] {
            assert!(
                root.join("releases/0.1.0/laptops").join(file).is_file(),
                "{file}"
            );
        }
        let changelog = std::fs::read_to_string(root.join("CHANGELOG.md")).unwrap();
        assert!(
            changelog.contains("## 0.1.0 (") && changelog.contains("- The first."),
            "{changelog}"
        );
        commit(root, "Release 0.1.0");

        let verdict = gate(root, &tools).unwrap();
        assert_eq!(verdict.release.unwrap().version, "0.1.0");
        assert_eq!(verdict.breaks, Vec::<String>::new());
        assert_eq!(verdict.checked, 4, "two documents of two modules");

        // Breaks of each kind, each named.
        let applied = root.join("migrations/laptops/postgres/0001_create_laptops.sql");
        let mut sql = std::fs::read_to_string(&applied).unwrap();
        sql.push_str("\n-- edited\n");
        std::fs::write(&applied, sql).unwrap();
        std::fs::write(
            root.join("migrations/ports/postgres/0099_drop_name.sql"),
            "alter table ports.ports drop column name;\n",
        )
        .unwrap();
        std::fs::write(
            root.join("migrations/ports/sqlite/0099_drop_name.sql"),
            "alter table ports drop column name;\n",
        )
        .unwrap();
        let openapi = root.join("openapi/laptops.json");
        let mut document: Value = read_json(&openapi).unwrap();
        document["paths"]
            .as_object_mut()
            .unwrap()
            .remove("/api/v1/laptops/events");
        std::fs::write(&openapi, document.to_string()).unwrap();
        let breaks = gate(root, &tools).unwrap().breaks;
        let expected = [
            "laptops: GET /api/v1/laptops/events: ",
            "laptops: migration postgres/0001_create_laptops.sql was changed",
            "ports: migrations/ports/postgres/0099_drop_name.sql:1: ",
            "ports: migrations/ports/sqlite/0099_drop_name.sql: drops a column",
        ];
        assert_eq!(breaks.len(), expected.len(), "{breaks:#?}");
        for start in expected {
            assert!(
                breaks.iter().any(|b| b.starts_with(start)),
                "{start}: {breaks:#?}"
            );
        }

        let dirty = cut(root, &tools, None).unwrap_err().to_string();
        assert!(dirty.contains("commit or stash"), "{dirty}");
        commit(root, "breaking");
        let refused = cut(root, &tools, None).unwrap_err().to_string();
        assert!(
            refused.contains("the gate refuses") && refused.contains("expand/contract"),
            "{refused}"
        );
        assert!(!root.join("releases/0.2.0-dev").exists());
    }

    #[test]
    fn a_release_whose_commit_this_clone_lacks_fails_the_gate() {
        let dir = workspace();
        let root = dir.path();
        let tools = tools();
        cut(root, &tools, None).unwrap();
        let record = root.join("releases/0.1.0/release.json");
        let text = std::fs::read_to_string(&record).unwrap();
        let head = String::from_utf8(git(root, &["rev-parse", "HEAD"]).unwrap().stdout).unwrap();
        std::fs::write(&record, text.replace(head.trim(), &"0".repeat(40))).unwrap();
        let error = gate(root, &tools)
            .err()
            .expect("the gate fails")
            .to_string();
        assert!(error.contains("shallow clone"), "{error}");
        assert!(error.contains(&"0".repeat(40)), "{error}");
    }
}
