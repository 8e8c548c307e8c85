//! `cargo xtask TASK`: the workspace's own tasks.
//!
//! - `new-module NAME [--item ITEM] [--needs ports [--follows ports]]`:
//!   scaffolds a module with one resource (named ITEM, by default NAME
//!   less its plural ending) and enters it in the binary, the workspace,
//!   the tests and the deployment files. With `--needs ports`, its resource
//!   names a port, checked through ports' contract on every write; with
//!   `--follows ports`, a port's deletion (its event) takes it off them.
//! - `check-deploy`: says which entry a deployment file lacks for which
//!   module, and whether the database connection budget holds.
//! - `budget`: the PostgreSQL connections each module may open per pod.
//! - `compat --old OLD.json --new NEW.json`: the breaks of NEW (an OpenAPI
//!   or AsyncAPI document) for the callers of OLD, one line each; exit
//!   status 1 if there are any.
//! - `gate`: the same for every module's API, events and migrations
//!   against the last release recorded under `releases/`.
//! - `previous`: builds the last release's binary from its recorded commit,
//!   for the tests of versions side by side.
//! - `release [--notes FILE]`: records this version as a release cut at
//!   `HEAD` (if the gate passes) and moves on to the next `-dev` version.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use xtask::scaffold::{self, Names};
use xtask::{compat, deploy, imports, release};

const USAGE: &str = "usage: cargo xtask new-module NAME [--item ITEM] [--needs MODULE] [--follows MODULE] | check-deploy | budget | imports | compat --old OLD.json --new NEW.json | gate | previous | release [--notes FILE]";

/// A task's failure: 1, as for a break the gate found; 2 for a task that
/// could not run.
fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Prints `breaks`, one per line, and what to do about them.
fn refuse(breaks: &[String]) -> ExitCode {
    for line in breaks {
        println!("{line}");
    }
    eprintln!("\n{} break(s).\n{}", breaks.len(), compat::EXPAND_CONTRACT);
    ExitCode::FAILURE
}

fn run(args: Vec<String>) -> anyhow::Result<ExitCode> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let root = xtask::root();
    match args.as_slice() {
        ["new-module", name, rest @ ..] => {
            let (mut item, mut needs, mut follows) = (None, Vec::new(), Vec::new());
            for option in rest.chunks(2) {
                match option {
                    ["--item", value] => item = Some(*value),
                    ["--needs", value] => needs.push(*value),
                    ["--follows", value] => follows.push(*value),
                    _ => bail!("{USAGE}"),
                }
            }
            let names = Names::new(name, item)?.with_peers(&needs, &follows)?;
            let modules = xtask::modules(&root)?;
            let report = scaffold::new_module(&root, &names, &modules)?;
            println!(
                "module {name}: wrote {} files, edited {}",
                report.written.len(),
                report.edited.len()
            );
            for path in &report.written {
                println!("  new     {}", path.display());
            }
            for path in &report.edited {
                println!("  edited  {}", path.display());
            }
            println!("then: bash .ci/run (or cargo test --workspace)");
            Ok(())
        }
        ["check-deploy"] => {
            let modules = xtask::modules(&root)?;
            let budget = deploy::check(&root, &modules)?;
            println!("the deployment files cover every module; {budget}");
            Ok(())
        }
        ["imports"] => {
            let mut circles = 0;
            let roots = imports::crate_roots(&root)?;
            for crate_root in &roots {
                for circle in imports::circles(crate_root)? {
                    circles += 1;
                    let files: Vec<String> =
                        circle.iter().map(|f| f.display().to_string()).collect();
                    println!("{}: {}", crate_root.display(), files.join(" <-> "));
                }
            }
            if circles > 0 {
                bail!("{circles} circles of imports");
            }
            println!(
                "no file imports one that imports it back, in {} crates",
                roots.len()
            );
            Ok(())
        }
        ["budget"] => {
            let modules = xtask::modules(&root)?;
            println!("{}", deploy::budget(&root, &modules)?);
            Ok(())
        }
        ["compat", "--old", old, "--new", new] => {
            let tools = compat::Tools::find(&root)?;
            let read = |path: &str| -> anyhow::Result<serde_json::Value> {
                let text = std::fs::read_to_string(path).with_context(|| path.to_owned())?;
                serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))
            };
            let breaks = compat::documents(&tools, &read(old)?, &read(new)?)?;
            if !breaks.is_empty() {
                return Ok(refuse(&breaks));
            }
            println!("compatible: {new} keeps what {old} promised");
            Ok(())
        }
        ["gate"] => {
            let tools = compat::Tools::find(&root)?;
            let verdict = release::gate(&root, &tools)?;
            let Some(release) = verdict.release else {
                println!("no release is recorded under releases/: nothing to hold this version to");
                return Ok(ExitCode::SUCCESS);
            };
            if !verdict.breaks.is_empty() {
                eprintln!(
                    "against release {} (commit {}):",
                    release.version, release.commit
                );
                return Ok(refuse(&verdict.breaks));
            }
            println!(
                "compatible with release {} (commit {}): {} documents and new migrations of {} modules checked",
                release.version,
                &release.commit[..12],
                verdict.checked,
                release.modules.len()
            );
            Ok(())
        }
        ["previous"] => {
            let started = std::time::Instant::now();
            let (record, binary) = release::build_previous(&root)?;
            println!(
                "release {} (commit {}) built in {} s: {}",
                record.version,
                &record.commit[..12],
                started.elapsed().as_secs(),
                binary.display()
            );
            Ok(())
        }
        ["release", rest @ ..] => {
            let notes = match rest {
                [] => None,
                ["--notes", file] => Some(std::fs::read_to_string(file).with_context(|| file.to_string())?),
                _ => bail!("{USAGE}"),
            };
            let tools = compat::Tools::find(&root)?;
            let record = release::cut(&root, &tools, notes)?;
            let next = release::version(&root)?;
            println!(
                "released {} at {}: recorded in releases/{}/ and CHANGELOG.md; the workspace is now {next}",
                record.version, record.commit, record.version
            );
            println!(
                "then: git add releases CHANGELOG.md Cargo.toml Cargo.lock deploy && git commit -m \"Release {}\"",
                record.version
            );
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
    .map(|()| ExitCode::SUCCESS)
}
