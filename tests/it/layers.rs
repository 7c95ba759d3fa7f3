//! The layer rule, read from the code: every `crate::…` path in `src/` names a module of the
//! same layer or one below, and no two top-level modules import each other, even through
//! others. The layers are the ones `architecture.md` describes.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of `src/` and its layer, top (edge) to bottom (storage and kernels).
/// A new module must be added here, in the layer `architecture.md` gives it.
const LAYERS: &[(&str, &[&str])] = &[
    ("edge", &["cli", "console", "http", "mcp", "sandbox"]),
    ("composition root", &["app"]),
    ("use cases", &["admin", "call", "docs"]),
    (
        "domain",
        &["accounts", "audit", "auth", "catalog", "forward", "limits"],
    ),
    (
        "storage and kernels",
        &["error", "kernel", "secret", "store", "telemetry"],
    ),
];

/// The layer of a top-level module: 0 is the top.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`src/call/args.rs` → `call`); `None` for the crate
/// root and the binary.
fn owner(src: &Path, file: &Path) -> Option<String> {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_owned())
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The top-level modules a piece of code names through `crate::`, including each item of a
/// grouped `use crate::{a::X, b}`. Comments are skipped: a doc line may name a module freely.
fn named_modules(code: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for line in code.lines() {
        let line = line.split("//").next().unwrap_or_default();
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = rest[..at].chars().next_back();
            rest = &rest[at + "crate::".len()..];
            if before.is_some_and(is_ident) {
                continue; // `crisp_gateway::` or another path ending in `crate`
            }
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0usize;
                let mut item = String::new();
                let mut items = Vec::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                        _ if depth == 0 => item.push(c),
                        _ => {}
                    }
                }
                items.push(item);
                for item in items {
                    let name: String = item.trim().chars().take_while(|&c| is_ident(c)).collect();
                    if !name.is_empty() && name != "self" {
                        found.insert(name);
                    }
                }
            } else {
                let name: String = rest.chars().take_while(|&c| is_ident(c)).collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        }
    }
    found
}

/// Every import between two top-level modules: (from, to) → the files that make it.
fn imports(src: &Path) -> BTreeMap<(String, String), BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut edges: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = owner(src, &file) else {
            continue;
        };
        let code = std::fs::read_to_string(&file).expect("read a source file");
        for to in named_modules(&code) {
            if to != from {
                let shown = file.strip_prefix(src).expect("under src").display();
                edges
                    .entry((from.clone(), to))
                    .or_default()
                    .insert(format!("src/{shown}"));
            }
        }
    }
    edges
}

/// The problems: unknown modules, imports that point up a layer, and circles.
fn violations(src: &Path) -> Vec<String> {
    let edges = imports(src);
    let mut problems = Vec::new();
    let mut modules = BTreeSet::new();
    for ((from, to), files) in &edges {
        modules.insert(from.clone());
        modules.insert(to.clone());
        match (layer_of(from), layer_of(to)) {
            (Some(a), Some(b)) if b < a => problems.push(format!(
                "{from} ({}) imports {to} ({}), a layer above it, in {files:?}",
                LAYERS[a].0, LAYERS[b].0
            )),
            (Some(_), Some(_)) => {}
            _ => problems.push(format!(
                "{from} → {to} ({files:?}): a module missing from the layer list"
            )),
        }
    }
    for cycle in cycles(&modules, &edges) {
        problems.push(format!("import circle: {}", cycle.join(" → ")));
    }
    problems
}

/// The strongly connected groups of more than one module (Tarjan's algorithm, small input).
fn cycles(
    modules: &BTreeSet<String>,
    edges: &BTreeMap<(String, String), BTreeSet<String>>,
) -> Vec<Vec<String>> {
    struct Walk<'a> {
        next: BTreeMap<&'a str, Vec<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        groups: Vec<Vec<String>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, at: &'a str) {
        let n = walk.index.len();
        walk.index.insert(at, n);
        walk.low.insert(at, n);
        walk.stack.push(at);
        walk.on_stack.insert(at);
        for to in walk.next.get(at).cloned().unwrap_or_default() {
            if !walk.index.contains_key(to) {
                visit(walk, to);
                let low = walk.low[at].min(walk.low[to]);
                walk.low.insert(at, low);
            } else if walk.on_stack.contains(to) {
                let low = walk.low[at].min(walk.index[to]);
                walk.low.insert(at, low);
            }
        }
        if walk.low[at] == walk.index[at] {
            let mut group = Vec::new();
            while let Some(top) = walk.stack.pop() {
                walk.on_stack.remove(top);
                group.push(top.to_owned());
                if top == at {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                walk.groups.push(group);
            }
        }
    }
    let mut walk = Walk {
        next: BTreeMap::new(),
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        groups: Vec::new(),
    };
    for (from, to) in edges.keys() {
        walk.next.entry(from).or_default().push(to);
    }
    for module in modules {
        if !walk.index.contains_key(module.as_str()) {
            visit(&mut walk, module);
        }
    }
    walk.groups
}

#[test]
fn no_import_points_up_a_layer_and_none_goes_round() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let problems = violations(&src);
    assert!(
        problems.is_empty(),
        "{} layer problems (see architecture.md):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn the_reader_sees_grouped_and_plain_paths_but_not_comments() {
    let code = "use crate::{store::Store, error::ApiError, kernel};\n\
                let x = crate::clock::now(); // crate::http is only named here\n\
                /// see `crate::mcp`\n\
                use crisp_gateway::cli;";
    let found: Vec<_> = named_modules(code).into_iter().collect();
    assert_eq!(found, ["clock", "error", "kernel", "store"]);
}

#[test]
fn a_circle_is_found_through_a_third_module() {
    let edges: BTreeMap<_, _> = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]
        .into_iter()
        .map(|(f, t)| ((f.to_owned(), t.to_owned()), BTreeSet::new()))
        .collect();
    let modules = ["a", "b", "c", "d"]
        .map(str::to_owned)
        .into_iter()
        .collect();
    assert_eq!(cycles(&modules, &edges), [["a", "b", "c"]]);
}

#[test]
fn the_forwarder_knows_no_database_and_no_web_framework() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src.join("forward"), &mut files);
    for file in files {
        let code = std::fs::read_to_string(&file).expect("read a source file");
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            for banned in ["axum", "sqlx", "crate::store"] {
                assert!(
                    !line.contains(banned),
                    "{} uses `{banned}`: {line}",
                    file.display()
                );
            }
        }
    }
}

#[test]
fn the_kernels_and_the_domain_below_auth_know_no_web_framework() {
    // `auth/` is the auth layer (axum middleware) and stays out of this list.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("error.rs")];
    for dir in [
        "kernel",
        "store",
        "secret",
        "telemetry",
        "accounts",
        "limits",
        "catalog",
        "audit",
    ] {
        rust_files(&src.join(dir), &mut files);
    }
    for file in files {
        let code = std::fs::read_to_string(&file).expect("read a source file");
        for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
            assert!(
                !line.contains("axum"),
                "{} uses `axum`: {line}",
                file.display()
            );
        }
    }
}
