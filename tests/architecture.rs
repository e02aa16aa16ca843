//! The module graph of the library, read from the sources: no cycles, and every edge
//! points down the layers of docs/architecture.md (a module uses only its own layer and
//! those below). A new `use crate::…` that reaches up fails here, naming the edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// docs/architecture.md's layers, bottom first.
const LAYERS: &[&[&str]] = &[
    &["atomic", "rng", "metrics", "task", "jpeg"],
    &["model", "operators"],
    &["registry"],
    &["error", "device", "io"],
    &["diffusion", "solvers"],
    &["protocol", "pipeline"],
    &["app"],
];

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer of docs/architecture.md"))
}

/// The top-level modules `text` names through `crate::` paths (`crate::io::…` and
/// `use crate::{io, model::X}`).
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of a `use crate::{a, b::c, d::{e, f}}` group.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_ascii_alphabetic() || c == '_') => {
                        out.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            out.insert(ident(rest));
        }
    }
    out
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap();
        let first = rel.iter().next().unwrap().to_string_lossy();
        let top = first.trim_end_matches(".rs").to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        // Code only: comments may name any module.
        let text: String = std::fs::read_to_string(&f)
            .unwrap()
            .lines()
            .map(|l| l.split_once("//").map_or(l, |(code, _)| code))
            .collect::<Vec<_>>()
            .join("\n");
        let uses = g.entry(top.clone()).or_default();
        for m in referenced(&text) {
            // `crate::Error` / `crate::Result` are the re-exports of `error`.
            let m = match m.as_str() {
                "Error" | "Result" => "error".to_string(),
                _ => m,
            };
            if m != top {
                uses.insert(m);
            }
        }
    }
    g
}

#[test]
fn the_reader_sees_group_imports() {
    let r =
        referenced("use crate::{io::{self, Format}, model::X, rng};\nlet e = crate::Error::Usage;");
    assert_eq!(
        r.into_iter().collect::<Vec<_>>(),
        ["Error", "io", "model", "rng"]
    );
}

#[test]
fn dependencies_point_down_the_layers() {
    let g = graph();
    let mut up = Vec::new();
    for (from, tos) in &g {
        for to in tos {
            if layer_of(to) > layer_of(from) {
                up.push(format!("{from} → {to}"));
            }
        }
    }
    assert!(up.is_empty(), "edges up the layers: {up:?}");
    // The engine's layers never name the application.
    for (from, tos) in &g {
        assert!(from == "app" || !tos.contains("app"), "{from} uses app");
    }
}

#[test]
fn the_module_graph_has_no_cycles() {
    let g = graph();
    // Depth-first search with colours; a grey node reached again closes a cycle.
    fn visit<'a>(
        n: &'a str,
        g: &'a BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match colour.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = path.iter().position(|p| *p == n).unwrap();
                let mut cycle: Vec<String> = path[at..].iter().map(|s| s.to_string()).collect();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            _ => {}
        }
        colour.insert(n, 1);
        path.push(n);
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, colour, path) {
                return Some(c);
            }
        }
        path.pop();
        colour.insert(n, 2);
        None
    }
    let mut colour = BTreeMap::new();
    for n in g.keys() {
        if let Some(c) = visit(n, &g, &mut colour, &mut Vec::new()) {
            panic!("dependency cycle: {}", c.join(" → "));
        }
    }
}
