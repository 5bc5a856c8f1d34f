//! The house stays without circles: within each crate of the workspace, no module imports a
//! module that imports it back, directly or round a longer loop.
//!
//! A module's imports are the paths it names through `crate::`, `super::` and `self::` (in `use`
//! declarations and inline), each taken to the longest module it reaches. The crate root (which
//! declares and re-exports everything), a module's own descendants (which it declares), its unit
//! tests (after `#[cfg(test)]`) and comments do not count.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// The workspace's member crates, from its `Cargo.toml`.
fn members(workspace: &Path) -> Vec<String> {
    let manifest: toml::Table = std::fs::read_to_string(workspace.join("Cargo.toml")).unwrap().parse().unwrap();
    let members = manifest["workspace"]["members"].as_array().unwrap();
    members.iter().map(|m| m.as_str().unwrap().to_string()).collect()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// The module a file under `src` holds: `a/b.rs` and `a/b/mod.rs` are `a::b`; `lib.rs` and
/// `main.rs` the root.
fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if matches!(parts.last().map(String::as_str), Some("lib" | "main" | "mod")) {
        parts.pop();
    }
    parts
}

/// The code of a file without its comments and unit tests.
fn code(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap();
    text.lines().map(|line| line.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// The paths of the use tree that starts at `text` (after `crate::` and the like): `a::b`,
/// `{a, b::{c, d}}`, `a::{self, B}`.
fn use_tree(text: &[u8], at: &mut usize, prefix: &Module, paths: &mut Vec<Module>) {
    let skip = |at: &mut usize| {
        while *at < text.len() && (text[*at].is_ascii_whitespace() || text[*at] == b',') {
            *at += 1;
        }
    };
    skip(at);
    if text.get(*at) == Some(&b'{') {
        *at += 1;
        loop {
            skip(at);
            match text.get(*at) {
                None => return,
                Some(b'}') => return *at += 1,
                Some(_) => use_tree(text, at, prefix, paths),
            }
        }
    }
    let start = *at;
    while *at < text.len() && (text[*at].is_ascii_alphanumeric() || text[*at] == b'_') {
        *at += 1;
    }
    let name = std::str::from_utf8(&text[start..*at]).unwrap();
    if name.is_empty() {
        paths.push(prefix.clone());
        *at += 1;
        return;
    }
    let mut path = prefix.clone();
    path.push(name.to_string());
    if text[*at..].starts_with(b"::") {
        *at += 2;
        use_tree(text, at, &path, paths);
    } else {
        paths.push(path);
    }
}

/// Which modules of the crate in `src` each module imports.
fn imports(src: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let modules: BTreeMap<Module, String> =
        files.iter().map(|f| (module_of(src, f), code(&std::fs::read_to_string(f).unwrap()))).collect();
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, text) in modules.iter().filter(|(m, _)| !m.is_empty()) {
        let bytes = text.as_bytes();
        for (keyword, base) in
            [("crate::", Vec::new()), ("super::", module[..module.len() - 1].to_vec()), ("self::", module.clone())]
        {
            for (found, _) in text.match_indices(keyword) {
                // Part of a longer path (`a::self::`, `super::super::`), or `$crate::`.
                let preceded = found > 0
                    && matches!(bytes[found - 1], b'_' | b':' | b'$' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z');
                if preceded {
                    continue;
                }
                let (mut base, mut at) = (base.clone(), found + keyword.len());
                while keyword == "super::" && text[at..].starts_with("super::") {
                    base.pop();
                    at += "super::".len();
                }
                let mut paths = Vec::new();
                use_tree(bytes, &mut at, &base, &mut paths);
                for path in paths {
                    let target = modules.keys().filter(|m| path.starts_with(m)).max_by_key(|m| m.len()).unwrap();
                    let own = target.starts_with(module);
                    if !target.is_empty() && !own {
                        graph.entry(module.clone()).or_default().insert(target.clone());
                    }
                }
            }
        }
    }
    graph
}

/// The loops of `graph`: each strongly connected set of more than one module (Tarjan).
fn circles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct Search<'g> {
        graph: &'g BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'g Module, (usize, usize)>,
        stack: Vec<&'g Module>,
        found: Vec<Vec<Module>>,
    }
    impl<'g> Search<'g> {
        fn visit(&mut self, v: &'g Module) -> usize {
            let order = self.index.len();
            self.index.insert(v, (order, order));
            self.stack.push(v);
            let mut low = order;
            for w in self.graph.get(v).into_iter().flatten() {
                low = match self.index.get(w) {
                    None => low.min(self.visit(w)),
                    Some(&(index, _)) if self.stack.contains(&w) => low.min(index),
                    Some(_) => low,
                };
            }
            self.index.insert(v, (order, low));
            if low == order {
                let at = self.stack.iter().position(|m| *m == v).unwrap();
                let loop_: Vec<Module> = self.stack.drain(at..).cloned().collect();
                if loop_.len() > 1 {
                    self.found.push(loop_);
                }
            }
            low
        }
    }
    let mut search = Search { graph, index: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in graph.keys() {
        if !search.index.contains_key(v) {
            search.visit(v);
        }
    }
    search.found
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut found = Vec::new();
    let mut checked = 0;
    for crate_dir in members(workspace) {
        let graph = imports(&workspace.join(&crate_dir).join("src"));
        checked += graph.len();
        for circle in circles(&graph) {
            let names: Vec<String> = circle.iter().map(|m| m.join("::")).collect();
            found.push(format!("{crate_dir}: {}", names.join(" ⇄ ")));
        }
    }
    println!("{checked} modules that import others, in {} crates: {} circles", members(workspace).len(), found.len());
    assert!(found.is_empty(), "modules that import each other:\n{}", found.join("\n"));
}

#[test]
fn the_check_finds_a_circle_and_reads_use_trees() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("live")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\nmod live;\nuse crate::a::X;").unwrap();
    std::fs::write(src.join("a.rs"), "use crate::{b::{self, Y}, live::board::Z};\n// crate::c::W\n").unwrap();
    std::fs::write(src.join("b.rs"), "fn f() { crate::a::g() }\n#[cfg(test)]\nmod tests { use crate::live::V; }")
        .unwrap();
    std::fs::write(src.join("live/mod.rs"), "mod board;\npub use board::Z;\nuse self::board::Q;").unwrap();
    std::fs::write(src.join("live/board.rs"), "use super::super::b::Y;").unwrap();
    let graph = imports(src);
    let m = |path: &str| path.split("::").map(String::from).collect::<Module>();
    assert_eq!(graph[&m("a")], BTreeSet::from([m("b"), m("live::board")]));
    assert_eq!(graph[&m("b")], BTreeSet::from([m("a")]), "tests and comments do not count");
    assert!(!graph.contains_key(&m("live")), "a module's own children are not imports");
    assert_eq!(graph[&m("live::board")], BTreeSet::from([m("b")]));
    // a ⇄ b, and a → live::board → b → a round the longer loop: one circle of three.
    assert_eq!(circles(&graph), vec![vec![m("a"), m("b"), m("live::board")]]);
}
