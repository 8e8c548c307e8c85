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

use std::process::ExitCode;

use anyhow::bail;
use xtask::scaffold::{self, Names};
use xtask::{deploy, imports};

const USAGE: &str = "usage: cargo xtask new-module NAME [--item ITEM] [--needs MODULE] [--follows MODULE] | check-deploy | budget | imports";

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
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
        _ => bail!("{USAGE}"),
    }
}
