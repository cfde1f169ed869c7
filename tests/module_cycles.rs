//! The module-cycle check (#17.1): inside every crate of the workspace, the top-level modules
//! (`src/foo.rs`, `src/foo/**`) import each other in one direction only. The test reads each
//! crate's `src/` files, builds the graph of `crate::` / `super::` / `self::` imports between its
//! top-level modules (a name re-exported by `lib.rs` counts as the module it comes from; test-only
//! modules, `#[cfg(test)] mod`, are left out), and fails naming every cycle it finds.
//!
//! Crates listed in `.ci/module-cycles.allow` are known offenders: their cycles are printed, not
//! failed on, while they are being removed. The list only shrinks: a listed crate that has no cycle
//! any more fails the check until its line is deleted, and an unlisted crate never gets a cycle.
//!
//! Nothing but the Rust standard library is used, so the check runs wherever `cargo test` does.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

#[test]
fn no_module_cycle_in_any_crate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let allow_path = root.join(".ci/module-cycles.allow");
    let allow_text = fs::read_to_string(&allow_path).unwrap_or_default();
    let allowed: BTreeSet<&str> = allow_text
        .lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .collect();

    let mut crates = vec![("weir-suite".to_owned(), root.to_path_buf())];
    let mut dirs: Vec<PathBuf> = fs::read_dir(root.join("crates"))
        .expect("crates/ is readable")
        .map(|entry| entry.expect("crates/ entry").path())
        .filter(|path| path.join("src").is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        crates.push((name, dir));
    }

    let mut failures = String::new();
    for (name, dir) in &crates {
        let graph = ModuleGraph::read(&dir.join("src"));
        let cycles = graph.cycles();
        let listed = allowed.contains(name.as_str());
        match (cycles.is_empty(), listed) {
            (true, false) => {}
            (true, true) => {
                let _ = writeln!(
                    failures,
                    "{name} has no module cycle any more: delete its line from .ci/module-cycles.allow"
                );
            }
            (false, true) => {
                eprintln!("{name} (allowed for now, in .ci/module-cycles.allow):");
                eprintln!("{}", graph.describe(&cycles));
            }
            (false, false) => {
                let _ = writeln!(failures, "{name} has a module cycle:");
                let _ = writeln!(failures, "{}", graph.describe(&cycles));
            }
        }
    }
    for name in &allowed {
        if !crates.iter().any(|(crate_name, _)| crate_name == name) {
            let _ = writeln!(
                failures,
                "{name} is in .ci/module-cycles.allow but is not a crate of the workspace"
            );
        }
    }
    assert!(
        failures.is_empty(),
        "module cycles (imports must run one way: builder -> layer -> service -> future -> shared \
         -> state / event / settings; see CONTRIBUTING.md):\n{failures}"
    );
}

#[test]
fn the_cyclic_fixture_fails_and_its_cycle_is_named() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/module_cycles/cyclic/src");
    let graph = ModuleGraph::read(&src);
    let cycles = graph.cycles();
    assert_eq!(
        cycles,
        vec![vec![
            "builder".to_owned(),
            "layer".to_owned(),
            "service".to_owned()
        ]],
        "one cycle, through three modules: {graph:?}"
    );
    let text = graph.describe(&cycles);
    // The loop, with the file and line of each import on it; `service` reaches `builder` only
    // through a name that `lib.rs` re-exports, and from a folder module.
    let expected = concat!(
        "  modules in one cycle: builder, layer, service\n",
        "    builder -> layer (src/builder.rs:1)\n",
        "    layer -> service (src/layer.rs:3)\n",
        "    service -> builder (src/service/mod.rs:6)\n",
    );
    assert_eq!(text, expected);
}

#[test]
fn the_acyclic_fixture_passes() {
    let src =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/module_cycles/acyclic/src");
    let graph = ModuleGraph::read(&src);
    assert_eq!(graph.cycles(), Vec::<Vec<String>>::new(), "{graph:?}");
    // The downward imports were seen (so a pass is not a parser that saw nothing) ...
    assert!(graph.edges["builder"].contains_key("layer"), "{graph:?}");
    assert!(graph.edges["layer"].contains_key("state"), "{graph:?}");
    // ... and the upward ones in comments, strings, test modules and `pub(in ...)` were not.
    assert!(!graph.edges["state"].contains_key("builder"), "{graph:?}");
    assert!(!graph.edges["state"].contains_key("layer"), "{graph:?}");
}

#[test]
fn tokens_skip_comments_strings_chars_and_lifetimes() {
    let text = r####"
        // crate::a::X
        /* crate::b /* nested crate::c */ crate::d */
        fn fun<'a>(x: &'a str) -> char { let _ = "crate::e \" crate::f"; let _ = r#"crate::g"#;
            let _ = b'"'; let _ = '\''; let _ = 'z'; crate::h::go(); '{' }
    "####;
    let idents: Vec<String> = tokenize(text)
        .into_iter()
        .filter_map(|(token, _)| match token {
            Token::Ident(ident) => Some(ident),
            _ => None,
        })
        .collect();
    let hidden = ["a", "b", "c", "d", "e", "f", "g"];
    assert!(
        !idents.iter().any(|i| hidden.contains(&i.as_str())),
        "{idents:?}"
    );
    assert!(idents.contains(&"h".to_owned()), "{idents:?}");
    assert!(!idents.iter().any(|i| i == "z"), "{idents:?}");
}

// ---------------------------------------------------------------------------------------------
// The checker.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    PathSep,
    Punct(char),
}

/// Rust source to tokens (identifiers, `::`, punctuation) with their line, leaving out comments,
/// string, char and number literals and lifetimes.
fn tokenize(text: &str) -> Vec<(Token, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            i = skip_string(&chars, i + 1, &mut line);
        } else if c == '\'' {
            if at(i + 1) == '\\' {
                // An escaped char literal: '\n', '\'', '\u{1F600}'.
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3; // 'x'
            } else {
                // A lifetime or label: 'a, 'static.
                i += 1;
                while is_ident_char(at(i)) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() {
            while is_ident_char(at(i)) {
                i += 1;
            }
        } else if is_ident_start(c) {
            // Literal prefixes: r"..", r#".."#, br"..", cr#".."# (raw), b"..", c"..", b'x'.
            let (raw, prefix_len) = match (c, at(i + 1), at(i + 2)) {
                ('r', '"', _) | ('r', '#', '"' | '#') => (true, 1),
                ('b' | 'c', 'r', '"' | '#') => (true, 2),
                ('b' | 'c', '"', _) => (false, 1),
                ('b', '\'', _) => {
                    i += 2;
                    if at(i) == '\\' {
                        i += 1;
                    }
                    i += 1;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                    continue;
                }
                _ => (false, 0),
            };
            if raw {
                i += prefix_len;
                let mut hashes = 0;
                while at(i) == '#' {
                    hashes += 1;
                    i += 1;
                }
                i += 1; // the opening quote
                while i < chars.len() {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    if chars[i] == '"' && (1..=hashes).all(|k| at(i + k) == '#') {
                        i += 1 + hashes;
                        break;
                    }
                    i += 1;
                }
                continue;
            }
            if prefix_len > 0 {
                i = skip_string(&chars, i + prefix_len + 1, &mut line);
                continue;
            }
            if c == 'r' && at(i + 1) == '#' {
                i += 2; // a raw identifier, r#type
            }
            let start = i;
            while is_ident_char(at(i)) {
                i += 1;
            }
            tokens.push((Token::Ident(chars[start..i].iter().collect()), line));
        } else if c == ':' && at(i + 1) == ':' {
            tokens.push((Token::PathSep, line));
            i += 2;
        } else {
            tokens.push((Token::Punct(c), line));
            i += 1;
        }
    }
    tokens
}

/// Skips a (non-raw) string body starting after its opening quote; returns the index after the
/// closing quote.
fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            '\n' => {
                *line += 1;
                i += 1;
            }
            _ => i += 1,
        }
    }
    i
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_char(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// One leaf of a `use` tree or one path in code: its segments, the name it binds (a `use`
/// leaf's alias or last segment) and its line.
#[derive(Debug)]
struct PathRef {
    segments: Vec<String>,
    binds: Option<String>,
    line: usize,
}

/// Parses a use tree (or a plain path) starting at `tokens[i]`; pushes its leaves; returns the
/// index after it.
fn parse_tree(
    tokens: &[(Token, usize)],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<PathRef>,
) -> usize {
    let line = tokens.get(i).map_or(0, |(_, line)| *line);
    loop {
        match tokens.get(i).map(|(token, _)| token) {
            Some(Token::PathSep) if prefix.is_empty() => i += 1, // `::std::x`
            Some(Token::Ident(ident)) => {
                prefix.push(ident.clone());
                i += 1;
                if tokens.get(i).map(|(t, _)| t) == Some(&Token::PathSep) {
                    i += 1;
                    continue;
                }
                let mut binds = Some(ident.clone());
                if matches!(tokens.get(i), Some((Token::Ident(kw), _)) if kw == "as") {
                    binds = match tokens.get(i + 1) {
                        Some((Token::Ident(alias), _)) => Some(alias.clone()),
                        _ => None,
                    };
                    i += 2;
                }
                out.push(PathRef {
                    segments: prefix,
                    binds,
                    line,
                });
                return i;
            }
            Some(Token::Punct('{')) => {
                i += 1;
                loop {
                    match tokens.get(i).map(|(t, _)| t) {
                        None => return i,
                        Some(Token::Punct('}')) => return i + 1,
                        Some(Token::Punct(',')) => i += 1,
                        Some(_) => {
                            let before = i;
                            i = parse_tree(tokens, i, prefix.clone(), out);
                            if i == before {
                                i += 1;
                            }
                        }
                    }
                }
            }
            Some(Token::Punct('*')) => {
                prefix.push("*".to_owned());
                out.push(PathRef {
                    segments: prefix,
                    binds: None,
                    line,
                });
                return i + 1;
            }
            _ => {
                if !prefix.is_empty() {
                    out.push(PathRef {
                        segments: prefix,
                        binds: None,
                        line,
                    });
                }
                return i;
            }
        }
    }
}

/// What one file says: the paths it uses (outside test-only code) from inside which inline
/// module, and the child modules it declares test-only (`#[cfg(test)] mod tests;`).
#[derive(Debug, Default)]
struct FileScan {
    /// (the inline module path inside the file, the path, whether it came from a `use` item)
    paths: Vec<(Vec<String>, PathRef, bool)>,
    test_children: Vec<String>,
}

fn scan(tokens: &[(Token, usize)]) -> FileScan {
    let mut scan = FileScan::default();
    let mut depth = 0usize;
    // Inline modules: (name, the brace depth inside them, test-only).
    let mut mods: Vec<(String, usize, bool)> = Vec::new();
    let mut pending_test = false;
    let mut i = 0;
    let ident = |i: usize| match tokens.get(i) {
        Some((Token::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let punct = |i: usize| match tokens.get(i) {
        Some((Token::Punct(c), _)) => Some(*c),
        _ => None,
    };
    while i < tokens.len() {
        let in_test = pending_test || mods.iter().any(|(_, _, test)| *test);
        let inline: Vec<String> = mods.iter().map(|(name, _, _)| name.clone()).collect();
        match &tokens[i].0 {
            Token::Punct('#') => {
                // An attribute: `#[...]` or `#![...]`; notes `#[cfg(test)]`.
                let mut j = i + 1;
                if punct(j) == Some('!') {
                    j += 1;
                }
                if punct(j) != Some('[') {
                    i += 1;
                    continue;
                }
                let start = j + 1;
                let mut brackets = 0;
                while j < tokens.len() {
                    match punct(j) {
                        Some('[') => brackets += 1,
                        Some(']') => {
                            brackets -= 1;
                            if brackets == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                let body: Vec<&Token> = tokens[start..j].iter().map(|(t, _)| t).collect();
                let cfg_test = [
                    Token::Ident("cfg".to_owned()),
                    Token::Punct('('),
                    Token::Ident("test".to_owned()),
                    Token::Punct(')'),
                ];
                if body.len() == 4 && body.iter().zip(&cfg_test).all(|(a, b)| *a == b) {
                    pending_test = true;
                }
                i = j + 1;
            }
            Token::Ident(kw) if kw == "mod" && ident(i + 1).is_some() => {
                let name = ident(i + 1).unwrap().to_owned();
                match punct(i + 2) {
                    Some('{') => {
                        depth += 1;
                        mods.push((name, depth, in_test));
                        i += 3;
                    }
                    Some(';') => {
                        if in_test {
                            scan.test_children.push(name);
                        }
                        i += 3;
                    }
                    _ => i += 2,
                }
                pending_test = false;
            }
            Token::Ident(kw) if kw == "use" => {
                let mut leaves = Vec::new();
                i = parse_tree(tokens, i + 1, Vec::new(), &mut leaves);
                if !in_test {
                    for leaf in leaves {
                        scan.paths.push((inline.clone(), leaf, true));
                    }
                }
            }
            Token::Ident(kw)
                if matches!(kw.as_str(), "crate" | "super" | "self")
                    && tokens.get(i + 1).map(|(t, _)| t) == Some(&Token::PathSep)
                    && punct(i.wrapping_sub(1)) != Some('$')
                    && ident(i.wrapping_sub(1)) != Some("in") =>
            {
                let mut leaves = Vec::new();
                i = parse_tree(tokens, i, Vec::new(), &mut leaves);
                if !in_test {
                    for leaf in leaves {
                        scan.paths.push((inline.clone(), leaf, false));
                    }
                }
            }
            Token::Punct('{') => {
                depth += 1;
                pending_test = false;
                i += 1;
            }
            Token::Punct('}') => {
                if mods.last().is_some_and(|(_, d, _)| *d == depth) {
                    mods.pop();
                }
                depth = depth.saturating_sub(1);
                pending_test = false;
                i += 1;
            }
            Token::Punct(';') => {
                pending_test = false;
                i += 1;
            }
            _ => i += 1,
        }
    }
    scan
}

/// The graph of imports between one crate's top-level modules: `edges[from][to]` is where (file
/// and line) `from` first imports `to`.
#[derive(Debug, Default)]
struct ModuleGraph {
    edges: BTreeMap<String, BTreeMap<String, String>>,
}

impl ModuleGraph {
    fn read(src: &Path) -> Self {
        let mut files = Vec::new();
        collect_rs(src, &mut files);
        files.sort();
        let relative = |path: &Path| -> Vec<String> {
            path.strip_prefix(src)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        };
        // A file's module path: src/a.rs -> [a], src/a/mod.rs -> [a], src/a/b.rs -> [a, b].
        let module_of = |path: &Path| -> Vec<String> {
            let mut parts = relative(path);
            let file = parts.pop().unwrap();
            let root_file = parts.is_empty() && (file == "lib.rs" || file == "main.rs");
            if !root_file && file != "mod.rs" {
                parts.push(file.trim_end_matches(".rs").to_owned());
            }
            parts
        };

        let mut scans = Vec::new();
        for path in &files {
            let text = fs::read_to_string(path).expect("a readable source file");
            scans.push((path.clone(), module_of(path), scan(&tokenize(&text))));
        }
        let is_root = |module: &[String]| module.is_empty();

        // Test-only modules (`#[cfg(test)] mod x;`) and everything under them are left out.
        let mut test_modules: Vec<Vec<String>> = Vec::new();
        for (_, module, scan) in &scans {
            for child in &scan.test_children {
                let mut path = module.clone();
                path.push(child.clone());
                test_modules.push(path);
            }
        }
        let is_test = |module: &[String]| test_modules.iter().any(|t| module.starts_with(t));

        let top_modules: BTreeSet<String> = scans
            .iter()
            .filter(|(_, module, _)| !is_root(module) && !is_test(module))
            .map(|(_, module, _)| module[0].clone())
            .collect();

        // Names the crate root binds with `use` (re-exports): name -> the top module it is from.
        let mut root_names: BTreeMap<String, String> = BTreeMap::new();
        for (_, module, scan) in &scans {
            if !is_root(module) {
                continue;
            }
            for (inline, path, is_use) in &scan.paths {
                if !inline.is_empty() || !is_use {
                    continue;
                }
                let mut segments = path.segments.as_slice();
                if segments
                    .first()
                    .is_some_and(|s| s == "crate" || s == "self")
                {
                    segments = &segments[1..];
                }
                if let (Some(first), Some(name)) = (segments.first(), &path.binds)
                    && top_modules.contains(first)
                    && segments.len() > 1
                {
                    root_names.insert(name.clone(), first.clone());
                }
            }
        }

        let mut graph = Self::default();
        for module in &top_modules {
            graph.edges.entry(module.clone()).or_default();
        }
        for (path, module, scan) in &scans {
            if is_root(module) || is_test(module) {
                continue;
            }
            let from = &module[0];
            let shown = format!("src/{}", relative(path).join("/"));
            for (inline, reference, _) in &scan.paths {
                let mut here = module.clone();
                here.extend(inline.iter().cloned());
                let Some(to) = resolve(&here, &reference.segments, &top_modules, &root_names)
                else {
                    continue;
                };
                if &to != from {
                    graph
                        .edges
                        .get_mut(from)
                        .unwrap()
                        .entry(to)
                        .or_insert_with(|| format!("{shown}:{}", reference.line));
                }
            }
        }
        graph
    }

    /// The strongly connected components with more than one module (Tarjan), each sorted, in
    /// order of their first module.
    fn cycles(&self) -> Vec<Vec<String>> {
        struct Tarjan<'g> {
            graph: &'g ModuleGraph,
            index: BTreeMap<&'g str, usize>,
            low: BTreeMap<&'g str, usize>,
            stack: Vec<&'g str>,
            on_stack: BTreeSet<&'g str>,
            components: Vec<Vec<String>>,
        }
        impl<'g> Tarjan<'g> {
            fn visit(&mut self, v: &'g str) {
                let n = self.index.len();
                self.index.insert(v, n);
                self.low.insert(v, n);
                self.stack.push(v);
                self.on_stack.insert(v);
                for w in self.graph.edges[v].keys() {
                    let w = w.as_str();
                    if !self.index.contains_key(w) {
                        self.visit(w);
                        let low = self.low[v].min(self.low[w]);
                        self.low.insert(v, low);
                    } else if self.on_stack.contains(w) {
                        let low = self.low[v].min(self.index[w]);
                        self.low.insert(v, low);
                    }
                }
                if self.low[v] == self.index[v] {
                    let mut component = Vec::new();
                    loop {
                        let w = self.stack.pop().unwrap();
                        self.on_stack.remove(w);
                        component.push(w.to_owned());
                        if w == v {
                            break;
                        }
                    }
                    if component.len() > 1 {
                        component.sort();
                        self.components.push(component);
                    }
                }
            }
        }
        let mut tarjan = Tarjan {
            graph: self,
            index: BTreeMap::new(),
            low: BTreeMap::new(),
            stack: Vec::new(),
            on_stack: BTreeSet::new(),
            components: Vec::new(),
        };
        for v in self.edges.keys() {
            if !tarjan.index.contains_key(v.as_str()) {
                tarjan.visit(v);
            }
        }
        tarjan.components.sort();
        tarjan.components
    }

    /// For each cycle: its modules, then its shortest loop through the first of them, with the
    /// file and line of each import on the loop.
    fn describe(&self, cycles: &[Vec<String>]) -> String {
        let mut text = String::new();
        for component in cycles {
            let _ = writeln!(text, "  modules in one cycle: {}", component.join(", "));
            let start = &component[0];
            // Breadth-first from `start`'s successors back to `start`, inside the component.
            let mut previous: BTreeMap<&str, &str> = BTreeMap::new();
            let mut queue: VecDeque<&str> = VecDeque::new();
            queue.push_back(start);
            let mut found = false;
            while let Some(v) = queue.pop_front() {
                for w in self.edges[v].keys() {
                    if !component.contains(w) || previous.contains_key(w.as_str()) {
                        continue;
                    }
                    previous.insert(w, v);
                    if w == start {
                        found = true;
                        break;
                    }
                    queue.push_back(w);
                }
                if found {
                    break;
                }
            }
            let mut loop_path = vec![start.as_str()];
            let mut v = previous[start.as_str()];
            while v != start {
                loop_path.push(v);
                v = previous[v];
            }
            loop_path.push(start);
            loop_path.reverse();
            for pair in loop_path.windows(2) {
                let _ = writeln!(
                    text,
                    "    {} -> {} ({})",
                    pair[0], pair[1], self.edges[pair[0]][pair[1]]
                );
            }
        }
        text
    }
}

/// The top-level module a path in module `here` points into, if it is one of this crate's.
fn resolve(
    here: &[String],
    segments: &[String],
    top_modules: &BTreeSet<String>,
    root_names: &BTreeMap<String, String>,
) -> Option<String> {
    let (first, mut rest) = segments.split_first()?;
    let mut path: Vec<String> = match first.as_str() {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        "super" => {
            let mut path = here.to_vec();
            path.pop()?;
            path
        }
        _ => return None,
    };
    while rest.first().is_some_and(|s| s == "super") {
        path.pop()?;
        rest = &rest[1..];
    }
    if let Some(top) = path.first() {
        return Some(top.clone());
    }
    let next = rest.first()?;
    if top_modules.contains(next) {
        Some(next.clone())
    } else {
        root_names.get(next).cloned()
    }
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a readable source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
