//! The code's shape, read from its text: imports point one way. A module stands above what it
//! uses; no chain of imports among `src/` (the room) or `engine/src/` (the call engine) comes back
//! to where it started; and the engine imports nothing of the room (nor Bevy).
//!
//! A file's imports are its `crate::…`, `super::…` and `child::…` paths (a child being a module
//! the file declares), each resolved to the deepest module file it names (`crate::call::Call` is
//! `src/call/mod.rs`). A file may use what its own parent modules define (a platform twin, say,
//! the types of the folder it sits in); every other import counts, and none may lead back.
//!
//! Run it alone with `cargo test --test structure`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's modules, by path (`call::native`), each with the modules it imports.
struct Graph {
    crate_name: &'static str,
    files: BTreeMap<Vec<String>, PathBuf>,
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

#[test]
fn the_rooms_modules_import_in_one_direction() {
    let graph = Graph::read("rotunda", Path::new("src"));
    assert!(graph.files.len() > 20, "the room's files were read");
    assert_acyclic(&graph);
}

#[test]
fn the_engines_modules_import_in_one_direction() {
    let graph = Graph::read("rotunda_engine", Path::new("engine/src"));
    assert!(graph.files.len() > 30, "the engine's files were read");
    assert_acyclic(&graph);
}

#[test]
fn the_engine_knows_nothing_of_the_room() {
    let graph = Graph::read("rotunda_engine", Path::new("engine/src"));
    for path in graph.files.values() {
        let text = std::fs::read_to_string(path).expect("readable");
        for forbidden in ["bevy", "rotunda::", "bevy_egui"] {
            assert!(
                !text.contains(forbidden),
                "{} mentions {forbidden}: the engine stands below the room",
                path.display()
            );
        }
    }
    let manifest = std::fs::read_to_string("engine/Cargo.toml").expect("the engine's manifest");
    assert!(!manifest.contains("bevy"), "the engine depends on no Bevy");
}

#[test]
fn the_checker_sees_a_cycle_when_there_is_one() {
    let mut graph = Graph {
        crate_name: "example",
        files: BTreeMap::new(),
        edges: BTreeMap::new(),
    };
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .edges
            .entry(vec![from.to_owned()])
            .or_default()
            .insert(vec![to.to_owned()]);
    }
    let cycles = graph.cycles();
    assert_eq!(cycles.len(), 1);
    assert_eq!(cycles[0].len(), 3);
}

fn assert_acyclic(graph: &Graph) {
    let cycles = graph.cycles();
    let described: Vec<String> = cycles
        .iter()
        .map(|cycle| {
            let members: BTreeSet<&Vec<String>> = cycle.iter().collect();
            let mut lines = vec![format!(
                "a cycle of {} modules in {}:",
                cycle.len(),
                graph.crate_name
            )];
            for module in cycle {
                let uses: Vec<String> = graph.edges[module]
                    .iter()
                    .filter(|to| members.contains(to))
                    .map(|to| name(to))
                    .collect();
                lines.push(format!("  {} uses {}", name(module), uses.join(", ")));
            }
            lines.join("\n")
        })
        .collect();
    assert!(cycles.is_empty(), "{}", described.join("\n"));
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "(crate root)".to_owned()
    } else {
        module.join("::")
    }
}

impl Graph {
    /// Reads every `.rs` file under `root` (the crate root is `lib.rs`).
    fn read(crate_name: &'static str, root: &Path) -> Self {
        let mut files = BTreeMap::new();
        collect(root, root, &mut files);
        let modules: BTreeSet<Vec<String>> = files.keys().cloned().collect();
        let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (module, path) in &files {
            let text = std::fs::read_to_string(path).expect("readable");
            let uses = edges.entry(module.clone()).or_default();
            let children: Vec<String> = modules
                .iter()
                .filter(|m| m.len() == module.len() + 1 && m.starts_with(module))
                .filter_map(|m| m.last().cloned())
                .collect();
            let mut heads = vec!["crate".to_owned(), "super".to_owned(), "self".to_owned()];
            heads.extend(children);
            for reference in references(&text, &heads) {
                let absolute = match reference.first().map(String::as_str) {
                    Some("crate") => reference[1..].to_vec(),
                    Some("self") => {
                        let mut base = module.clone();
                        base.extend(reference[1..].iter().cloned());
                        base
                    }
                    Some("super") => {
                        let mut base = module.clone();
                        let mut rest = &reference[..];
                        while rest.first().map(String::as_str) == Some("super") {
                            base.pop();
                            rest = &rest[1..];
                        }
                        base.extend(rest.iter().cloned());
                        base
                    }
                    Some(_) => {
                        // A child of this module.
                        let mut base = module.clone();
                        base.extend(reference.iter().cloned());
                        base
                    }
                    None => continue,
                };
                let target = deepest(&modules, &absolute);
                // What the file's own parents define is its context, not an import.
                if module.starts_with(&target) {
                    continue;
                }
                uses.insert(target);
            }
        }
        Self {
            crate_name,
            files,
            edges,
        }
    }

    /// Every strongly connected group of two or more modules (Tarjan's algorithm).
    fn cycles(&self) -> Vec<Vec<Vec<String>>> {
        struct State<'a> {
            graph: &'a Graph,
            index: BTreeMap<&'a Vec<String>, usize>,
            low: BTreeMap<&'a Vec<String>, usize>,
            stack: Vec<&'a Vec<String>>,
            on_stack: BTreeSet<&'a Vec<String>>,
            next: usize,
            found: Vec<Vec<Vec<String>>>,
        }
        fn visit<'a>(state: &mut State<'a>, node: &'a Vec<String>) {
            state.index.insert(node, state.next);
            state.low.insert(node, state.next);
            state.next += 1;
            state.stack.push(node);
            state.on_stack.insert(node);
            let graph = state.graph;
            for to in graph.edges.get(node).into_iter().flatten() {
                if !state.index.contains_key(to) {
                    visit(state, to);
                    let low = state.low[node].min(state.low[to]);
                    state.low.insert(node, low);
                } else if state.on_stack.contains(to) {
                    let low = state.low[node].min(state.index[to]);
                    state.low.insert(node, low);
                }
            }
            if state.low[node] == state.index[node] {
                let mut group = Vec::new();
                while let Some(member) = state.stack.pop() {
                    state.on_stack.remove(member);
                    group.push(member.clone());
                    if member == node {
                        break;
                    }
                }
                if group.len() > 1 {
                    group.sort();
                    state.found.push(group);
                }
            }
        }
        let mut state = State {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            next: 0,
            found: Vec::new(),
        };
        for node in self.edges.keys() {
            if !state.index.contains_key(node) {
                visit(&mut state, node);
            }
        }
        state.found
    }
}

/// The module files under `dir`, by module path relative to `root`.
fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<Vec<String>, PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e} (run from the repository root)", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(root, &path, files);
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let relative = path.strip_prefix(root).expect("under the root");
        let mut module: Vec<String> = relative
            .with_extension("")
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        match module.last().map(String::as_str) {
            Some("lib") if module.len() == 1 => module.clear(),
            // The binary's root is a crate of its own.
            Some("main") if module.len() == 1 => continue,
            Some("mod") => {
                module.pop();
            }
            _ => {}
        }
        files.insert(module, path);
    }
}

/// The deepest module that is a prefix of `path` (the crate root when none is).
fn deepest(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|len| path[..len].to_vec())
        .find(|prefix| modules.contains(prefix))
        .unwrap_or_default()
}

/// Every path in `text` that starts with one of `heads` (`crate`, `super`, `self`, the file's
/// child modules), brace groups expanded (`crate::a::{b, c::D}` is `crate::a::b` and
/// `crate::a::c::D`). Comments and strings are not told apart from code, which only adds arrows.
fn references(text: &str, heads: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for head in heads {
        let start = format!("{head}::");
        let mut at = 0;
        while let Some(offset) = text[at..].find(&start) {
            let begin = at + offset;
            at = begin + start.len();
            // Only whole words, and not a path's later segment: not `mycrate::`, not `a::b::`.
            let before = text[..begin].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            expand(vec![head.clone()], &text[at..], &mut found);
        }
    }
    found
}

/// Reads a path (and any brace group) from `rest`, after the segments in `prefix`.
fn expand(mut prefix: Vec<String>, rest: &str, found: &mut Vec<Vec<String>>) {
    let mut rest = rest;
    loop {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if word.is_empty() {
            if let Some(group) = rest.strip_prefix('{') {
                let body = group_body(group);
                for item in split_top(body) {
                    expand(prefix.clone(), item.trim(), found);
                }
                return;
            }
            found.push(prefix);
            return;
        }
        prefix.push(word.clone());
        rest = &rest[word.len()..];
        match rest.strip_prefix("::") {
            Some(after) => rest = after,
            None => {
                found.push(prefix);
                return;
            }
        }
    }
}

/// What is inside a brace group whose opening brace was just read.
fn group_body(text: &str) -> &str {
    let mut depth = 1;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &text[..i];
                }
            }
            _ => {}
        }
    }
    text
}

/// The comma-separated items of a group, nested groups kept whole.
fn split_top(body: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in body.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&body[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&body[start..]);
    items
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .collect()
}
