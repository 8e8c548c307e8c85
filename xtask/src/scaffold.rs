//! `cargo xtask new-module NAME`: a module with one resource, laid out and
//! named as the hand-written modules are, entered in the binary's list, the
//! workspace, the tests and the deployment files.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail, ensure};

use crate::deploy::{self, ModuleInfo};

/// Names the binary, the tests or the HTTP API use already, and Rust's
/// keywords: none can be a module's.
const TAKEN: &[&str] = &[
    // The binary's paths, variables (`APP_PEER_<NAME>`), services and schemas.
    "all",
    "api",
    "app",
    "contracts",
    "docs",
    "gateway",
    "health",
    "helpers",
    "kernel",
    "loopback",
    "main",
    "metrics",
    "migrate",
    "openapi",
    "postgres",
    "public",
    "swagger",
    "timeout",
    "xtask",
    // Crates and modules the generated code names.
    "actix",
    "anyhow",
    "chrono",
    "error",
    "model",
    "routes",
    "serde",
    "service",
    "sqlx",
    "std",
    "store",
    "stores",
    "thiserror",
    "tokio",
    "tracing",
    "utoipa",
    "web",
    // Rust's keywords, reserved ones included.
    "abstract",
    "as",
    "async",
    "await",
    "become",
    "box",
    "break",
    "const",
    "continue",
    "crate",
    "do",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "final",
    "fn",
    "for",
    "gen",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "macro",
    "match",
    "mod",
    "move",
    "mut",
    "override",
    "priv",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "try",
    "type",
    "typeof",
    "unsafe",
    "unsized",
    "use",
    "virtual",
    "where",
    "while",
    "yield",
];

/// Types the generated code imports: neither the module's nor its
/// resource's type may be called so.
const TYPES: &[&str] = &[
    "ApiError",
    "Arc",
    "Backend",
    "BadRequest",
    "Conflict",
    "DateTime",
    "Db",
    "Deleted",
    "Deserialize",
    "Error",
    "Event",
    "Events",
    "FeedQuery",
    "Fields",
    "Filter",
    "HttpRequest",
    "HttpResponse",
    "Id",
    "IfMatch",
    "IntoParams",
    "JsonBody",
    "Kind",
    "Migrator",
    "Module",
    "NotFound",
    "Page",
    "PageRequest",
    "Payload",
    "PayloadTooLarge",
    "Pool",
    "Postgres",
    "PreconditionFailed",
    "Serialize",
    "ServiceConfig",
    "Sqlite",
    "Start",
    "Started",
    "StoreError",
    "Text",
    "ToSchema",
    "Unavailable",
    "Unprocessable",
    "UnsupportedMediaType",
    "Utc",
    "Value",
    "Versioned",
];

/// The template: where each file goes, and its text.
const TEMPLATE: &[(&str, &str)] = &[
    (
        "contracts/{{name}}/Cargo.toml",
        include_str!("../template/contract/Cargo.toml"),
    ),
    (
        "contracts/{{name}}/src/lib.rs",
        include_str!("../template/contract/src/lib.rs"),
    ),
    (
        "contracts/{{name}}/src/events.rs",
        include_str!("../template/contract/src/events.rs"),
    ),
    (
        "modules/{{name}}/Cargo.toml",
        include_str!("../template/module/Cargo.toml"),
    ),
    (
        "modules/{{name}}/src/lib.rs",
        include_str!("../template/module/src/lib.rs"),
    ),
    (
        "modules/{{name}}/src/follow.rs",
        include_str!("../template/module/src/follow.rs"),
    ),
    (
        "modules/{{name}}/src/error.rs",
        include_str!("../template/module/src/error.rs"),
    ),
    (
        "modules/{{name}}/src/model.rs",
        include_str!("../template/module/src/model.rs"),
    ),
    (
        "modules/{{name}}/src/routes.rs",
        include_str!("../template/module/src/routes.rs"),
    ),
    (
        "modules/{{name}}/src/service.rs",
        include_str!("../template/module/src/service.rs"),
    ),
    (
        "modules/{{name}}/src/store/mod.rs",
        include_str!("../template/module/src/store/mod.rs"),
    ),
    (
        "modules/{{name}}/src/store/sqlite.rs",
        include_str!("../template/module/src/store/sqlite.rs"),
    ),
    (
        "modules/{{name}}/src/store/postgres.rs",
        include_str!("../template/module/src/store/postgres.rs"),
    ),
    (
        "migrations/{{name}}/sqlite/0001_create_{{name}}.sql",
        include_str!("../template/migrations/sqlite/0001_create.sql"),
    ),
    (
        "migrations/{{name}}/postgres/0001_create_{{name}}.sql",
        include_str!("../template/migrations/postgres/0001_create.sql"),
    ),
    (
        "tests/api/{{name}}.rs",
        include_str!("../template/tests/api.rs"),
    ),
    (
        "deploy/k8s/overlays/split/{{name}}.yaml",
        include_str!("../template/deploy/k8s.yaml"),
    ),
    (
        "deploy/k8s/base/database-{{name}}.env",
        include_str!("../template/deploy/database.env"),
    ),
];
const NGINX_UPSTREAM: &str = include_str!("../template/deploy/nginx-upstream.conf");
const NGINX_LOCATIONS: &str = include_str!("../template/deploy/nginx-locations.conf");
const COMPOSE_SERVICE: &str = include_str!("../template/deploy/compose-service.yaml");
const COMPOSE_DATABASE: &str = include_str!("../template/deploy/compose-database.yaml");
const DATABASE_SECRET: &str = include_str!("../template/deploy/database-secret.yaml");
/// The module's own database URL, from its Secret, in a container's env.
const DATABASE_ENV: &str = include_str!("../template/deploy/database-env.yaml");

/// The modules whose contract the template knows how to call (its
/// `find`) and whose events it knows how to apply (a deleted one).
const CONTRACTS: &[&str] = &["ports"];

/// What the module and its one resource are called, and which modules it
/// calls and follows.
#[derive(Debug, Clone)]
pub struct Names {
    /// The module, in the plural: `orders`.
    pub name: String,
    /// One of its resources: `order`.
    pub item: String,
    /// The modules it calls through their contracts: its resource names one
    /// of theirs, checked on every write.
    pub needs: Vec<String>,
    /// The modules whose events it applies: one deleted leaves its resources.
    pub follows: Vec<String>,
}

impl Names {
    /// `name` checked; `item` given, or `name` less its plural ending.
    pub fn new(name: &str, item: Option<&str>) -> anyhow::Result<Self> {
        check_identifier(name)?;
        let item = match item {
            Some(item) => item.to_owned(),
            None => singular(name).with_context(|| {
                format!("cannot tell one of {name} from its name: give --item NAME")
            })?,
        };
        check_identifier(&item)?;
        ensure!(
            item != name,
            "the module and its resource need two names: give --item NAME"
        );
        for type_name in [capitalized(name), capitalized(&item)] {
            ensure!(
                !TYPES.contains(&type_name.as_str()),
                "the generated code would have two types named {type_name}: choose another name"
            );
        }
        Ok(Self {
            name: name.to_owned(),
            item,
            needs: Vec::new(),
            follows: Vec::new(),
        })
    }

    /// The module calling `needs` through their contracts and applying the
    /// events of `follows`, each one of [`CONTRACTS`]; a module followed
    /// is also needed (its feed is read through its contract).
    pub fn with_peers(mut self, needs: &[&str], follows: &[&str]) -> anyhow::Result<Self> {
        for peer in needs.iter().chain(follows) {
            ensure!(
                CONTRACTS.contains(peer),
                "--needs and --follows take a module whose contract the template knows: {}, not {peer:?}",
                CONTRACTS.join(", ")
            );
        }
        for peer in follows {
            ensure!(
                needs.contains(peer),
                "following {peer} reads its events through its contract: give --needs {peer} too"
            );
        }
        self.needs = needs.iter().map(|peer| (*peer).to_owned()).collect();
        self.follows = follows.iter().map(|peer| (*peer).to_owned()).collect();
        Ok(self)
    }

    /// `text` with the template's placeholders filled in, and its sections
    /// kept or left out: see [`sections`].
    pub fn fill(&self, text: &str) -> String {
        let text = sections(text, &|section| match section {
            "needs" => self.needs.iter().any(|peer| peer == "ports"),
            "follows" => self.follows.iter().any(|peer| peer == "ports"),
            other => panic!("the template has no section {other:?}"),
        });
        let article = if self.item.starts_with(['a', 'e', 'i', 'o', 'u']) {
            "an"
        } else {
            "a"
        };
        text.replace("{{a}}", article)
            .replace("{{A}}", &capitalized(article))
            .replace("{{name}}", &self.name)
            .replace("{{NAME}}", &self.name.to_uppercase())
            .replace("{{Name}}", &capitalized(&self.name))
            .replace("{{item}}", &self.item)
            .replace("{{Item}}", &capitalized(&self.item))
    }
}

/// `text` less the sections `on` leaves out: the lines between `{{#NAME}}`
/// and `{{/NAME}}` stay when `on(NAME)`, those between `{{^NAME}}` and
/// `{{/NAME}}` when not. The lines of the markers go. Sections nest.
fn sections(text: &str, on: &dyn Fn(&str) -> bool) -> String {
    let mut kept = String::with_capacity(text.len());
    // Whether each open section shows its lines.
    let mut open: Vec<bool> = Vec::new();
    let marker = |line: &str, start: &str| {
        let name = line.trim().strip_prefix(start)?.strip_suffix("}}")?;
        Some(name.to_owned())
    };
    for line in text.split_inclusive('\n') {
        if let Some(name) = marker(line, "{{#") {
            open.push(on(&name));
        } else if let Some(name) = marker(line, "{{^") {
            open.push(!on(&name));
        } else if marker(line, "{{/").is_some() {
            open.pop().expect("a section ends after it starts");
        } else if open.iter().all(|shown| *shown) {
            kept.push_str(line);
        }
    }
    assert!(open.is_empty(), "every section of the template ends");
    kept
}

/// The template's files for `names`, where each goes: those its options
/// leave empty are not written.
pub fn render(names: &Names) -> Vec<(PathBuf, String)> {
    TEMPLATE
        .iter()
        .map(|(target, text)| (PathBuf::from(names.fill(target)), names.fill(text)))
        .filter(|(_, text)| !text.trim().is_empty())
        .collect()
}

/// A lower-case identifier that can also be a path segment, a PostgreSQL
/// schema, an environment variable's suffix and a Kubernetes name (so no
/// `_` or `-`), and names nothing that exists.
fn check_identifier(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let well_formed = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 30;
    ensure!(
        well_formed,
        "{name:?} is not a module name: a lower-case letter, then lower-case letters and digits, \
         30 at most (it becomes a path, a schema, a crate and a Kubernetes name)"
    );
    ensure!(
        !TAKEN.contains(&name),
        "{name:?} is taken by the binary or by Rust"
    );
    Ok(())
}

fn singular(name: &str) -> Option<String> {
    if let Some(stem) = name.strip_suffix("ies") {
        return Some(format!("{stem}y"));
    }
    let stem = name.strip_suffix('s')?;
    (!stem.is_empty() && !stem.ends_with('s')).then(|| stem.to_owned())
}

fn capitalized(name: &str) -> String {
    let mut chars = name.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// What `new_module` wrote and changed, from the workspace's root.
#[derive(Debug, Default)]
pub struct Report {
    pub written: Vec<PathBuf>,
    pub edited: Vec<PathBuf>,
}

/// Scaffolds module `names` in the workspace at `root`, of `modules`. On
/// failure, the workspace is left as it was.
pub fn new_module(root: &Path, names: &Names, modules: &[ModuleInfo]) -> anyhow::Result<Report> {
    let name = names.name.as_str();
    if modules.iter().any(|m| m.name == name) {
        bail!("module {name} exists already");
    }
    let lock = std::fs::read_to_string(root.join("Cargo.lock")).unwrap_or_default();
    for crate_name in [name.to_owned(), format!("{name}-api")] {
        ensure!(
            !lock.contains(&format!("name = \"{crate_name}\"\n")),
            "a crate named {crate_name} is in Cargo.lock already"
        );
    }
    let created: Vec<String> = [
        format!("modules/{name}"),
        format!("contracts/{name}"),
        format!("migrations/{name}"),
    ]
    .into_iter()
    .chain(
        render(names)
            .into_iter()
            .map(|(target, _)| target.display().to_string()),
    )
    .chain([format!("openapi/{name}.json")])
    .collect();
    for path in &created {
        ensure!(!root.join(path).exists(), "{path} exists already");
    }
    // What a failure part-way puts back: every file it may edit, as it was.
    let edited = [
        "Cargo.toml",
        "Cargo.lock",
        "src/modules.rs",
        "tests/api/main.rs",
        deploy::NGINX,
        deploy::COMPOSE,
        &format!("{}/kustomization.yaml", deploy::SPLIT),
        deploy::BASE,
        deploy::MIGRATE_JOB,
        deploy::MONOLITH_APP,
        deploy::PROMETHEUS,
        "openapi/all.json",
    ]
    .map(|file| (root.join(file), std::fs::read(root.join(file)).ok()));
    scaffold(root, names, modules).inspect_err(|_| {
        for path in &created {
            let path = root.join(path);
            let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
        }
        for (path, original) in &edited {
            if let Some(original) = original {
                let _ = std::fs::write(path, original);
            }
        }
    })
}

/// Writes and edits what `new_module` checked it may.
fn scaffold(root: &Path, names: &Names, modules: &[ModuleInfo]) -> anyhow::Result<Report> {
    let name = names.name.as_str();
    let mut report = Report::default();
    for (target, text) in render(names) {
        let path = root.join(&target);
        std::fs::create_dir_all(path.parent().expect("a file in a folder"))?;
        std::fs::write(&path, text)?;
        report.written.push(target);
    }

    let mut edit = |file: &str, change: &dyn Fn(&str) -> anyhow::Result<String>| {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let changed = change(&text).with_context(|| format!("cannot edit {file}"))?;
        std::fs::write(&path, changed)?;
        report.edited.push(PathBuf::from(file));
        anyhow::Ok(())
    };
    edit("Cargo.toml", &|text| add_to_workspace(text, name, modules))?;
    edit("src/modules.rs", &|text| add_to_list(text, name))?;
    edit("tests/api/main.rs", &|text| add_test_module(text, name))?;
    edit(deploy::NGINX, &|text| add_to_nginx(text, names))?;
    edit(deploy::COMPOSE, &|text| add_to_compose(text, names))?;
    edit(deploy::PROMETHEUS, &|text| {
        insert_before(text, "]\n        type: A", &format!(", {name}"))
    })?;
    edit(&format!("{}/kustomization.yaml", deploy::SPLIT), &|text| {
        insert_before(text, "  - route.yaml\n", &format!("  - {name}.yaml\n"))
    })?;
    // Its own database role: a Secret with its URL, which the migration
    // Job (to make the role) and the monolith's pods mount too.
    edit(deploy::BASE, &|text| {
        insert_before(
            text,
            "  # Where events travel",
            &names.fill(DATABASE_SECRET),
        )
    })?;
    edit(deploy::MIGRATE_JOB, &|text| {
        Ok(format!("{text}{}", names.fill(DATABASE_ENV)))
    })?;
    edit(deploy::MONOLITH_APP, &|text| {
        insert_before(text, "---\n", &names.fill(DATABASE_ENV))
    })?;

    // Fewer connections per module and pod, if the new pods need them.
    let mut all = modules.to_vec();
    all.push(ModuleInfo {
        name: name.to_owned(),
        needs: names.needs.clone(),
    });
    let budget = deploy::budget(root, &all)?;
    ensure!(
        budget.per_module > 0,
        "no PostgreSQL connection is left for module {name}: {budget}"
    );
    if !budget.fits() {
        deploy::set_connections(root, budget.per_module)?;
        report.edited.push(PathBuf::from(deploy::BASE));
    }

    cargo(root, &["fmt", "--all"])?;
    let documents = [
        ("all".to_owned(), Vec::new()),
        (name.to_owned(), vec!["--module", name]),
    ];
    for (file, only) in documents {
        let mut args = vec!["openapi"];
        args.extend(only);
        let document = crate::app(root, &args)?;
        std::fs::write(root.join(format!("openapi/{file}.json")), document)?;
        let path = PathBuf::from(format!("openapi/{file}.json"));
        if file == "all" {
            report.edited.push(path);
        } else {
            report.written.push(path);
        }
    }
    Ok(report)
}

/// Runs cargo in `root`; its standard output.
pub fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(args)
        .current_dir(root)
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("cannot run cargo {}", args.join(" ")))?;
    ensure!(output.status.success(), "cargo {} failed", args.join(" "));
    Ok(String::from_utf8(output.stdout)?)
}

/// The module and its contract in the workspace's members and
/// dependencies, and the module in the binary's, each after the modules
/// there.
fn add_to_workspace(text: &str, name: &str, modules: &[ModuleInfo]) -> anyhow::Result<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let members = lines
        .iter()
        .position(|l| l.starts_with("members = [") && l.ends_with(']'))
        .context("workspace.members is a list on one line")?;
    let list = lines[members].trim_end_matches(']').to_owned();
    lines[members] = format!("{list}, \"contracts/{name}\", \"modules/{name}\"]");
    let path = lines
        .iter()
        .rposition(|l| {
            l.contains(" = { path = \"modules/") || l.contains(" = { path = \"contracts/")
        })
        .context("[workspace.dependencies] lists the modules")?;
    lines.insert(
        path + 1,
        format!("{name} = {{ path = \"modules/{name}\" }}"),
    );
    lines.insert(
        path + 2,
        format!("{name}-api = {{ path = \"contracts/{name}\" }}"),
    );
    let package = lines
        .iter()
        .position(|l| l == "[dependencies]")
        .context("the binary has [dependencies]")?;
    let last_module = lines
        .iter()
        .enumerate()
        .skip(package)
        .take_while(|(_, l)| !l.starts_with("[dev-dependencies]"))
        .filter(|(_, l)| {
            modules
                .iter()
                .any(|m| **l == format!("{}.workspace = true", m.name))
        })
        .map(|(at, _)| at)
        .last()
        .context("the binary depends on the modules")?;
    lines.insert(last_module + 1, format!("{name}.workspace = true"));
    Ok(lines.join("\n") + "\n")
}

/// `&NAME::MODULE` in `ALL`, in order of name.
fn add_to_list(text: &str, name: &str) -> anyhow::Result<String> {
    let start_marker = "pub static ALL: &[&Module] = &[";
    let start = text.find(start_marker).context("src/modules.rs has ALL")? + start_marker.len();
    let end = start + text[start..].find("];").context("ALL ends")?;
    let mut entries: Vec<String> = text[start..end]
        .split(',')
        .map(|entry| entry.trim().to_owned())
        .filter(|entry| !entry.is_empty())
        .collect();
    entries.push(format!("&{name}::MODULE"));
    entries.sort();
    Ok(format!(
        "{}{}{}",
        &text[..start],
        entries.join(", "),
        &text[end..]
    ))
}

/// `mod NAME;` among the test modules, in order.
fn add_test_module(text: &str, name: &str) -> anyhow::Result<String> {
    let line = format!("mod {name};");
    let mut lines: Vec<&str> = text.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("mod ") && *l > line.as_str())
        .or_else(|| {
            lines
                .iter()
                .rposition(|l| l.starts_with("mod "))
                .map(|i| i + 1)
        })
        .context("tests/api/main.rs has test modules")?;
    lines.insert(at, &line);
    Ok(lines.join("\n") + "\n")
}

/// An upstream of its own, a server in `any_module`, and its two routes.
fn add_to_nginx(text: &str, names: &Names) -> anyhow::Result<String> {
    let name = names.name.as_str();
    let text = insert_before(text, "upstream any_module {\n", &names.fill(NGINX_UPSTREAM))?;
    let any = text
        .find("upstream any_module {\n")
        .expect("inserted before it");
    let close = any
        + text[any..]
            .find("\n    keepalive")
            .context("any_module keeps connections")?;
    let text = format!(
        "{}\n    server {name}:8080 max_fails=3 fail_timeout=10s;{}",
        &text[..close],
        &text[close..]
    );
    let marker = "\n\n    # Swagger UI reads this document";
    insert_before(
        &text,
        marker,
        &format!("\n{}", names.fill(NGINX_LOCATIONS).trim_end()),
    )
}

/// A service in the split profile, and the gateway waiting for it.
fn add_to_compose(text: &str, names: &Names) -> anyhow::Result<String> {
    let name = names.name.as_str();
    let text = insert_before(text, "  # nginx resolves", &names.fill(COMPOSE_SERVICE))?;
    // Its role's URL, and the migration service making the role with it.
    let text = insert_before(
        &text,
        "\n# What every serving process",
        &names.fill(COMPOSE_DATABASE),
    )?;
    let migrate = text
        .find("\n  migrate:")
        .context("compose has the migrate service")?;
    let merged = migrate
        + text[migrate..]
            .find("      <<: [*postgres-url")
            .context("migrate merges the database URLs")?;
    let end = merged + text[merged..].find(']').context("the merge list ends")?;
    let text = format!("{}, *database-{name}{}", &text[..end], &text[end..]);
    let gateway = text
        .find("\n  gateway:")
        .context("compose has the gateway")?;
    let depends = gateway
        + text[gateway..]
            .find("    depends_on:\n")
            .context("the gateway depends on modules")?;
    let end = depends + text[depends..].find("\n\n").context("the gateway ends")?;
    Ok(format!(
        "{}\n      {name}: {{ condition: service_healthy, restart: true }}{}",
        &text[..end],
        &text[end..]
    ))
}

fn insert_before(text: &str, marker: &str, insertion: &str) -> anyhow::Result<String> {
    let at = text
        .find(marker)
        .with_context(|| format!("no {marker:?} to insert before"))?;
    Ok(format!("{}{insertion}{}", &text[..at], &text[at..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where the template, rendered for ports, differs from `modules/ports`
    /// and `contracts/ports`, on purpose.
    const PORTS_PATCH: &str = "xtask/template/ports.patch";

    /// `source` as `cargo fmt` leaves it, for a file that is Rust.
    fn formatted(path: &Path, source: String) -> String {
        if path.extension().is_none_or(|extension| extension != "rs") {
            return source;
        }
        let mut rustfmt = Command::new("rustfmt")
            .args(["--edition", "2024", "--emit", "stdout"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("rustfmt runs");
        std::io::Write::write_all(&mut rustfmt.stdin.take().unwrap(), source.as_bytes()).unwrap();
        let output = rustfmt.wait_with_output().unwrap();
        assert!(output.status.success(), "{} formats", path.display());
        String::from_utf8(output.stdout).unwrap()
    }

    /// Every file under `dir`, from `root`.
    fn files(root: &Path, dir: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut folders = vec![root.join(dir)];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                } else {
                    found.push(path.strip_prefix(root).unwrap().to_owned());
                }
            }
        }
        found
    }

    #[test]
    fn the_template_for_ports_is_modules_ports_but_for_the_intended_differences() {
        let root = crate::root();
        let ports = Names::new("ports", Some("port")).unwrap();
        let mine =
            |path: &Path| path.starts_with("modules/ports") || path.starts_with("contracts/ports");
        let mut pairs: Vec<(Option<PathBuf>, Option<PathBuf>)> = render(&ports)
            .into_iter()
            .filter(|(target, _)| mine(target))
            .map(|(target, _)| (Some(target.clone()), Some(target)))
            .collect();
        for file in [
            files(&root, "modules/ports"),
            files(&root, "contracts/ports"),
        ]
        .concat()
        {
            if !pairs
                .iter()
                .any(|(_, actual)| actual.as_ref() == Some(&file))
            {
                pairs.push((None, Some(file)));
            }
        }
        pairs.sort();
        let rendered: std::collections::HashMap<PathBuf, String> =
            render(&ports).into_iter().collect();
        let mut patch = String::new();
        for (template, actual) in &pairs {
            let old = template
                .as_ref()
                .map(|path| formatted(path, rendered[path].clone()))
                .unwrap_or_default();
            let new = actual
                .as_ref()
                .and_then(|path| std::fs::read_to_string(root.join(path)).ok())
                .unwrap_or_default();
            let name = |path: &Option<PathBuf>, side: &str| match path {
                Some(path) if side == "a" || root.join(path).exists() => {
                    format!("{side}/{}", path.display())
                }
                _ => "/dev/null".to_owned(),
            };
            let diff = similar::TextDiff::from_lines(&old, &new);
            let text = diff
                .unified_diff()
                .header(&name(template, "a"), &name(actual, "b"))
                .to_string();
            patch.push_str(&text);
        }
        let path = root.join(PORTS_PATCH);
        if std::env::var_os("UPDATE_TEMPLATE_PATCH").is_some() {
            std::fs::write(&path, &patch).unwrap();
        }
        let intended = std::fs::read_to_string(&path).unwrap_or_default();
        if patch != intended {
            let change = similar::TextDiff::from_lines(&intended, &patch)
                .unified_diff()
                .header(PORTS_PATCH, "now")
                .to_string();
            panic!(
                "the template rendered for ports and modules/ports differ other than as \
                 {PORTS_PATCH} says: change one to match the other, or, if the difference \
                 is meant, run UPDATE_TEMPLATE_PATCH=1 cargo test -p xtask template_for_ports \
                 and commit the patch. What changed:\n{change}"
            );
        }
    }

    #[test]
    fn sections_stay_or_go_with_their_options() {
        let text = "a\n{{#needs}}\nb\n{{#follows}}\nc\n{{/follows}}\n{{/needs}}\n{{^needs}}\nd\n{{/needs}}\ne\n";
        assert_eq!(sections(text, &|_| false), "a\nd\ne\n");
        assert_eq!(sections(text, &|s| s == "needs"), "a\nb\ne\n");
        assert_eq!(sections(text, &|_| true), "a\nb\nc\ne\n");
        let plain = Names::new("orders", None).unwrap();
        assert!(
            plain.clone().with_peers(&["laptops"], &[]).is_err(),
            "no known contract"
        );
        assert!(
            plain.clone().with_peers(&[], &["ports"]).is_err(),
            "follows without needs"
        );
        let rendered = render(&plain.with_peers(&["ports"], &["ports"]).unwrap());
        assert!(
            rendered
                .iter()
                .any(|(path, _)| path.ends_with("src/follow.rs"))
        );
        let plain = render(&Names::new("orders", None).unwrap());
        assert!(
            !plain
                .iter()
                .any(|(path, _)| path.ends_with("src/follow.rs"))
        );
        assert!(
            plain
                .iter()
                .all(|(_, text)| !text.contains("{{") && !text.contains("port_id"))
        );
    }

    #[test]
    fn names_are_lower_case_identifiers_that_name_nothing_else() {
        for bad in [
            "",
            "Orders",
            "order_items",
            "order-items",
            "9lives",
            "kernel",
            "type",
            "ports!",
            "pages",
            "web",
            "loopback",
            "try",
        ] {
            assert!(Names::new(bad, None).is_err(), "{bad:?}");
        }
        let orders = Names::new("orders", None).unwrap();
        assert_eq!(
            (orders.name.as_str(), orders.item.as_str()),
            ("orders", "order")
        );
        assert_eq!(Names::new("categories", None).unwrap().item, "category");
        assert!(
            Names::new("glass", None).is_err(),
            "no singular: ask for --item"
        );
        assert_eq!(Names::new("stock", Some("item")).unwrap().item, "item");
        assert_eq!(
            orders.fill("{{Name}} of {{Item}}: /{{name}}/{{item}}"),
            "Orders of Order: /orders/order"
        );
        assert_eq!(
            orders.fill("{{A}} {{item}}, {{a}} {{item}}"),
            "An order, an order"
        );
        let widgets = Names::new("widgets", None).unwrap();
        assert_eq!(widgets.fill("{{a}} {{item}}"), "a widget");
    }

    #[test]
    fn the_list_stays_in_order_of_name() {
        let text = "pub static ALL: &[&Module] = &[&laptops::MODULE, &ports::MODULE];\n";
        assert_eq!(
            add_to_list(text, "orders").unwrap(),
            "pub static ALL: &[&Module] = &[&laptops::MODULE, &orders::MODULE, &ports::MODULE];\n"
        );
    }
}
