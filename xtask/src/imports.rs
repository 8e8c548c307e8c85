//! `cargo xtask imports`: finds files that import each other in a circle,
//! in every crate of the workspace.
//!
//! Each crate's module tree is read from its root (`src/lib.rs`,
//! `src/main.rs`) by following `mod` declarations, with syn; a module
//! declared inline belongs to its file. A file imports another when one of
//! its `use` declarations, or a path in its code, names an item of the
//! other through `crate::`, `super::`, `self::` or a child module. What a
//! module names of the modules enclosing it (`super::Filter`,
//! `crate::NAME`) is not counted: a module's submodules may use what it
//! declares, as it uses them. Test modules (`#[cfg(test)]`) are left out:
//! a test may use what it tests.
//!
//! cargo-modules draws the same graph from rust-analyzer, but its
//! `--acyclic` check works on items, where every method refers to its own
//! type, and it takes twenty minutes to build: see ADR 16.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use syn::visit::Visit;

/// A module's path in its crate: `["db", "commit"]`; empty for the root.
type ModulePath = Vec<String>;

/// One crate's modules, by path, with the file each is written in.
struct Tree {
    files: BTreeMap<ModulePath, PathBuf>,
    /// The paths each module names, as written: `crate::db::Db`.
    names: BTreeMap<ModulePath, Vec<Vec<String>>>,
}

/// The circles of imports among the files of the crate whose root is
/// `root` (a `lib.rs` or `main.rs`): each as the files in it, from the
/// crate's directory.
pub fn circles(root: &Path) -> anyhow::Result<Vec<Vec<PathBuf>>> {
    let mut tree = Tree {
        files: BTreeMap::new(),
        names: BTreeMap::new(),
    };
    read_file(&mut tree, root, Vec::new())?;
    let mut imports: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for (module, names) in &tree.names {
        let from = &tree.files[module];
        let edges = imports.entry(from.clone()).or_default();
        for name in names {
            let Some(target) = resolve(&tree, module, name) else {
                continue;
            };
            // A module's own submodules may use what it declares.
            if module.starts_with(&target) {
                continue;
            }
            let to = &tree.files[&target];
            if to != from {
                edges.insert(to.clone());
            }
        }
    }
    let base = root.parent().unwrap_or(root);
    Ok(strongly_connected(&imports)
        .into_iter()
        .map(|files| {
            files
                .into_iter()
                .map(|file| file.strip_prefix(base).unwrap_or(&file).to_owned())
                .collect()
        })
        .collect())
}

/// The module `name` refers to from `module`: the longest prefix of the
/// path it resolves to that is a module of the crate. `None` for a name
/// outside the crate.
fn resolve(tree: &Tree, module: &ModulePath, name: &[String]) -> Option<ModulePath> {
    let (mut path, rest): (ModulePath, &[String]) = match name.first()?.as_str() {
        "crate" => (Vec::new(), &name[1..]),
        "self" => (module.clone(), &name[1..]),
        "super" => (module.clone(), name),
        first => {
            let mut child = module.clone();
            child.push(first.to_owned());
            if !tree.files.contains_key(&child) {
                return None;
            }
            (module.clone(), name)
        }
    };
    let mut rest = rest.iter().peekable();
    while rest.peek().is_some_and(|segment| *segment == "super") {
        path.pop()?;
        rest.next();
    }
    let mut found = tree.files.contains_key(&path).then(|| path.clone());
    for segment in rest {
        path.push(segment.clone());
        if tree.files.contains_key(&path) {
            found = Some(path.clone());
        } else {
            break;
        }
    }
    found
}

/// Reads the module `module`, written in `file`, and the modules it declares.
fn read_file(tree: &mut Tree, file: &Path, module: ModulePath) -> anyhow::Result<()> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let parsed =
        syn::parse_file(&text).with_context(|| format!("cannot parse {}", file.display()))?;
    // Where the files of its child modules are.
    let stem = file
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let dir = file.parent().unwrap_or(Path::new("."));
    let children = if matches!(stem, "lib" | "main" | "mod") {
        dir.to_owned()
    } else {
        dir.join(stem)
    };
    read_items(tree, file, &children, module, &parsed.items)
}

fn read_items(
    tree: &mut Tree,
    file: &Path,
    children: &Path,
    module: ModulePath,
    items: &[syn::Item],
) -> anyhow::Result<()> {
    tree.files.insert(module.clone(), file.to_owned());
    let mut names = Names::default();
    for item in items {
        if is_test(item) {
            continue;
        }
        match item {
            syn::Item::Mod(declared) => {
                let mut child = module.clone();
                child.push(declared.ident.to_string());
                match &declared.content {
                    Some((_, inner)) => {
                        let within = children.join(declared.ident.to_string());
                        read_items(tree, file, &within, child, inner)?;
                    }
                    None => {
                        let name = declared.ident.to_string();
                        let flat = children.join(format!("{name}.rs"));
                        let nested = children.join(&name).join("mod.rs");
                        let found = if flat.exists() { flat } else { nested };
                        read_file(tree, &found, child)?;
                    }
                }
            }
            syn::Item::Use(declared) => use_tree(&declared.tree, Vec::new(), &mut names.0),
            other => names.visit_item(other),
        }
    }
    tree.names.entry(module).or_default().extend(names.0);
    Ok(())
}

/// Whether `item` is compiled only for tests.
fn is_test(item: &syn::Item) -> bool {
    let attrs = match item {
        syn::Item::Mod(item) => &item.attrs,
        syn::Item::Fn(item) => &item.attrs,
        syn::Item::Use(item) => &item.attrs,
        syn::Item::Impl(item) => &item.attrs,
        _ => return false,
    };
    attrs.iter().any(is_cfg_test)
}

fn is_cfg_test(attr: &syn::Attribute) -> bool {
    attr.path().is_ident("cfg")
        && attr
            .parse_args::<syn::Path>()
            .is_ok_and(|path| path.is_ident("test"))
}

/// Every path a `use` tree names, from its root.
fn use_tree(tree: &syn::UseTree, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let with = |ident: &syn::Ident| {
        let mut path = prefix.clone();
        path.push(ident.to_string());
        path
    };
    match tree {
        syn::UseTree::Path(path) => use_tree(&path.tree, with(&path.ident), out),
        syn::UseTree::Name(name) if name.ident == "self" => out.push(prefix),
        syn::UseTree::Name(name) => out.push(with(&name.ident)),
        syn::UseTree::Rename(rename) => out.push(with(&rename.ident)),
        syn::UseTree::Glob(_) => out.push(prefix),
        syn::UseTree::Group(group) => {
            for tree in &group.items {
                use_tree(tree, prefix.clone(), out);
            }
        }
    }
}

/// The paths of two segments or more named in code.
#[derive(Default)]
struct Names(Vec<Vec<String>>);

impl<'ast> Visit<'ast> for Names {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        if path.segments.len() > 1 {
            self.0.push(
                path.segments
                    .iter()
                    .map(|segment| segment.ident.to_string())
                    .collect(),
            );
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, declared: &'ast syn::ItemUse) {
        use_tree(&declared.tree, Vec::new(), &mut self.0);
    }

    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {
        // Modules are read on their own.
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        if !item.attrs.iter().any(is_cfg_test) {
            syn::visit::visit_item_fn(self, item);
        }
    }
}

/// The strongly connected components of more than one node (Tarjan).
fn strongly_connected(graph: &BTreeMap<PathBuf, BTreeSet<PathBuf>>) -> Vec<Vec<PathBuf>> {
    struct State<'g> {
        graph: &'g BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        index: BTreeMap<&'g PathBuf, (usize, usize)>,
        stack: Vec<&'g PathBuf>,
        next: usize,
        found: Vec<Vec<PathBuf>>,
    }
    fn visit<'g>(state: &mut State<'g>, node: &'g PathBuf) {
        let order = state.next;
        state.next += 1;
        state.index.insert(node, (order, order));
        state.stack.push(node);
        for next in state.graph.get(node).into_iter().flatten() {
            match state.index.get(next) {
                None => {
                    visit(state, next);
                    let low = state.index[next].1;
                    let entry = state.index.get_mut(node).expect("visited");
                    entry.1 = entry.1.min(low);
                }
                Some(&(seen, _)) if state.stack.contains(&next) => {
                    let entry = state.index.get_mut(node).expect("visited");
                    entry.1 = entry.1.min(seen);
                }
                Some(_) => {}
            }
        }
        let (order, low) = state.index[node];
        if order == low {
            let at = state
                .stack
                .iter()
                .position(|n| *n == node)
                .expect("on the stack");
            let component: Vec<PathBuf> = state.stack.drain(at..).cloned().collect();
            if component.len() > 1 {
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        stack: Vec::new(),
        next: 0,
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node) {
            visit(&mut state, node);
        }
    }
    state.found
}

/// The roots of every crate of the workspace at `root`: each member's
/// `src/lib.rs` and `src/main.rs`, as `cargo metadata` lists them.
pub fn crate_roots(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let metadata =
        crate::scaffold::cargo(root, &["metadata", "--no-deps", "--format-version", "1"])?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)?;
    let mut roots = Vec::new();
    for package in metadata["packages"].as_array().into_iter().flatten() {
        for target in package["targets"].as_array().into_iter().flatten() {
            let kinds = target["kind"].as_array().into_iter().flatten();
            if kinds
                .filter_map(|k| k.as_str())
                .any(|k| k == "lib" || k == "bin")
            {
                roots.push(PathBuf::from(
                    target["src_path"].as_str().unwrap_or_default(),
                ));
            }
        }
    }
    roots.sort();
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_of(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let root = dir.path().join("lib.rs");
        (dir, root)
    }

    #[test]
    fn a_circle_through_use_and_paths_is_found_and_tests_and_inline_modules_are_not() {
        let (_dir, root) = crate_of(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\nmod d;\n"),
            ("a.rs", "use crate::b::{self, B};\npub struct A;\n"),
            ("b.rs", "pub struct B;\nfn f() -> super::c::C { todo!() }\n"),
            (
                "c.rs",
                "pub struct C(crate::a::A);\nmod inner { use super::C; }\n",
            ),
            (
                "d.rs",
                "use crate::a::A;\n#[cfg(test)]\nmod tests { use crate::d; }\n",
            ),
        ]);
        let found = circles(&root).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        let mut files: Vec<_> = found[0].iter().map(|f| f.display().to_string()).collect();
        files.sort();
        assert_eq!(files, ["a.rs", "b.rs", "c.rs"]);
    }

    #[test]
    fn no_file_of_the_workspace_imports_one_that_imports_it_back() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let roots = crate_roots(workspace).unwrap();
        assert!(roots.len() >= 12, "every crate: {roots:?}");
        for root in roots {
            let found = circles(&root).unwrap();
            assert!(found.is_empty(), "{}: {found:?}", root.display());
        }
    }
}
