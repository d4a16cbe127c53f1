//! The layering stated in `src/lib.rs` holds: each top-level module uses only modules listed
//! before it, and inside a top-level module no two files use each other, directly or through
//! others. The source is read as Rust (syn), so every path counts: grouped imports
//! (`use crate::{a, b}`), `super::super::`, paths in expressions and types, serde's
//! `skip_serializing_if = "path"` strings, and code after a test module; only `#[cfg(test)]`
//! items are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

use crate::common::rust_files as files;

/// The layers, lowest first, as `src/lib.rs` documents them.
const ORDER: [&str; 22] = [
    "duration",
    "input",
    "yaml",
    "stats",
    "sim",
    "scenario",
    "plan",
    "prompts",
    "backend",
    "metrics",
    "thresholds",
    "hooks",
    "compile",
    "executor",
    "output",
    "report",
    "compare",
    "cli",
    "error",
    "run",
    "init",
    "commands",
];

/// The module path of a file: `src/metrics/summary.rs` -> [metrics, summary], `mod.rs` -> its
/// folder's.
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| {
            c.as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string()
        })
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.parse_args::<syn::Expr>()
                .is_ok_and(|e| quote_free(&e).contains("test"))
    })
}

/// The text of a `cfg(...)` expression, enough to see `test` in `test` or `all(test, ...)`.
fn quote_free(e: &syn::Expr) -> String {
    match e {
        syn::Expr::Path(p) => p
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect(),
        syn::Expr::Call(c) => c.args.iter().map(quote_free).collect::<Vec<_>>().join(","),
        _ => String::new(),
    }
}

/// Every module path (absolute, from the crate root) one file refers to.
struct Uses {
    /// The module the visitor is in (the file's, plus inline modules).
    here: Vec<String>,
    /// Child modules declared in the file being read (`mod x;`), by their module path.
    children: BTreeSet<Vec<String>>,
    found: BTreeSet<Vec<String>>,
}

impl Uses {
    /// Resolves `segments` (a path as written) to an absolute module path, when it names the
    /// crate's own modules.
    fn resolve(&mut self, segments: &[String]) {
        let Some(first) = segments.first() else {
            return;
        };
        let mut at = match first.as_str() {
            "crate" => Vec::new(),
            "self" => self.here.clone(),
            "super" => self.here.clone(),
            _ => {
                let mut child = self.here.clone();
                child.push(first.clone());
                if !self.children.contains(&child) {
                    return;
                }
                self.here.clone()
            }
        };
        let mut rest = segments;
        if first == "crate" || first == "self" {
            rest = &segments[1..];
        }
        while rest.first().is_some_and(|s| s == "super") {
            at.pop();
            rest = &rest[1..];
        }
        at.extend(rest.iter().cloned());
        if !at.is_empty() {
            self.found.insert(at);
        }
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                prefix.push(n.ident.to_string());
                let path = prefix.clone();
                self.resolve(&path);
                prefix.pop();
            }
            syn::UseTree::Rename(r) => {
                prefix.push(r.ident.to_string());
                let path = prefix.clone();
                self.resolve(&path);
                prefix.pop();
            }
            syn::UseTree::Glob(_) => {
                let path = prefix.clone();
                self.resolve(&path);
            }
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.use_tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs = match item {
            syn::Item::Mod(m) => &m.attrs,
            syn::Item::Fn(f) => &f.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Use(u) => &u.attrs,
            syn::Item::Struct(s) => &s.attrs,
            syn::Item::Enum(e) => &e.attrs,
            syn::Item::Const(c) => &c.attrs,
            syn::Item::Static(s) => &s.attrs,
            _ => return syn::visit::visit_item(self, item),
        };
        if is_test(attrs) {
            return;
        }
        syn::visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if m.content.is_some() {
            self.here.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            self.here.pop();
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &u.tree);
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 {
            self.resolve(&segments);
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
        // Attribute arguments are raw tokens to syn: read the string literals in them.
        if let syn::Meta::List(list) = &a.meta {
            let mut stack: Vec<proc_macro2::TokenStream> = vec![list.tokens.clone()];
            while let Some(tokens) = stack.pop() {
                for t in tokens {
                    match t {
                        proc_macro2::TokenTree::Group(g) => stack.push(g.stream()),
                        proc_macro2::TokenTree::Literal(l) => {
                            if let Ok(s) = syn::parse_str::<syn::LitStr>(&l.to_string()) {
                                self.visit_lit_str(&s);
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn visit_lit_str(&mut self, s: &'ast syn::LitStr) {
        // serde's `skip_serializing_if = "super::x::f"`, `with = "..."`, `default = "..."`.
        if let Ok(p) = syn::parse_str::<syn::Path>(&s.value()) {
            self.visit_path(&p);
        }
    }
}

/// The file each module path lives in, and the modules each file refers to.
struct Tree {
    file_of: BTreeMap<Vec<String>, PathBuf>,
    uses: BTreeMap<PathBuf, BTreeSet<Vec<String>>>,
}

fn read_tree(src: &Path) -> Tree {
    let mut paths = Vec::new();
    files(src, &mut paths);
    let file_of: BTreeMap<Vec<String>, PathBuf> = paths
        .iter()
        .map(|p| {
            (
                module_of(p.strip_prefix(src).unwrap()),
                p.strip_prefix(src).unwrap().to_path_buf(),
            )
        })
        .collect();
    let mut uses = BTreeMap::new();
    for path in &paths {
        let rel = path.strip_prefix(src).unwrap().to_path_buf();
        let text = std::fs::read_to_string(path).unwrap();
        let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", rel.display()));
        let here = module_of(&rel);
        let children = file
            .items
            .iter()
            .filter_map(|i| match i {
                syn::Item::Mod(m) if m.content.is_none() => {
                    let mut child = here.clone();
                    child.push(m.ident.to_string());
                    Some(child)
                }
                _ => None,
            })
            .collect();
        let mut visitor = Uses {
            here,
            children,
            found: BTreeSet::new(),
        };
        visitor.visit_file(&file);
        uses.insert(rel, visitor.found);
    }
    Tree { file_of, uses }
}

impl Tree {
    /// The file a module path refers into: the longest prefix that is a file's module.
    fn file_for(&self, module: &[String]) -> Option<&PathBuf> {
        (1..=module.len())
            .rev()
            .find_map(|n| self.file_of.get(&module[..n]))
    }

    /// Every violation: a file using a higher layer, and each circle between the files of one
    /// top-level module.
    fn violations(&self) -> Vec<String> {
        let rank = |top: &str| ORDER.iter().position(|m| *m == top);
        let mut out = BTreeSet::new();
        let mut edges: BTreeMap<&PathBuf, BTreeSet<&PathBuf>> = BTreeMap::new();
        for (file, used) in &self.uses {
            let here = module_of(file);
            let Some(top) = here.first() else { continue };
            if top == "main" || file.ends_with("fixture_tests.rs") {
                continue;
            }
            let Some(own) = rank(top) else {
                out.insert(format!(
                    "src/{} is in no layer: add `{top}` to ORDER and to lib.rs",
                    file.display()
                ));
                continue;
            };
            for module in used {
                if let Some(theirs) = rank(&module[0]) {
                    if theirs > own {
                        out.insert(format!(
                            "src/{} uses crate::{}",
                            file.display(),
                            module.join("::")
                        ));
                    }
                }
                if let Some(target) = self.file_for(module) {
                    let same_top = module_of(target).first() == Some(top);
                    // A module's mod.rs declares and re-exports its files: that is not a use.
                    let parent = file.ends_with("mod.rs") && module_of(target).starts_with(&here);
                    if target != file && same_top && !parent {
                        edges.entry(file).or_default().insert(target);
                    }
                }
            }
        }
        for start in edges.keys() {
            // A circle through `start`: a path from one of its uses back to it.
            let mut seen = BTreeSet::new();
            let mut todo: Vec<(&PathBuf, Vec<&PathBuf>)> = vec![(start, vec![start])];
            while let Some((at, trail)) = todo.pop() {
                for next in edges.get(at).into_iter().flatten() {
                    if next == start {
                        let names: Vec<String> = trail
                            .iter()
                            .chain([start])
                            .map(|p| p.display().to_string())
                            .collect();
                        let mut key = names.clone();
                        key.pop();
                        key.sort();
                        out.insert(format!(
                            "circle: {} ({})",
                            names.join(" -> "),
                            key.join(",")
                        ));
                    } else if seen.insert(*next) {
                        let mut t = trail.clone();
                        t.push(next);
                        todo.push((next, t));
                    }
                }
            }
        }
        // One line per circle, whichever file it was found from.
        let mut circles = BTreeMap::new();
        let mut lines = Vec::new();
        for v in out {
            match v.rsplit_once(" (") {
                Some((line, key)) if v.starts_with("circle: ") => {
                    circles.entry(key.to_string()).or_insert(line.to_string());
                }
                _ => lines.push(v),
            }
        }
        lines.extend(circles.into_values());
        lines
    }
}

#[test]
fn no_module_uses_one_above_it_and_no_files_go_round_in_a_circle() {
    let tree = read_tree(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(tree.uses.len() > 50, "the source was read");
    let violations = tree.violations();
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

/// The four ways a text scan was fooled, planted in a tree of their own: each is found.
#[test]
fn the_check_sees_grouped_imports_super_paths_code_after_tests_and_circles() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    let write = |rel: &str, text: &str| {
        let path = src.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "lib.rs",
        "pub mod duration; pub mod yaml; pub mod metrics; pub mod report;\n",
    );
    // A grouped import of a higher layer.
    write("duration.rs", "use crate::{yaml, report::table};\n");
    // `super::super::` out of an inline module, into a higher layer.
    write(
        "yaml.rs",
        "mod inner { mod deeper { fn f() { super::super::super::report::render(); } } }\n",
    );
    // An upward use after a test module, and one inside it (allowed).
    write("stats.rs", "");
    write("metrics/mod.rs", "pub mod a; pub mod b; pub mod c;\n");
    write(
        "metrics/a.rs",
        "use super::b::B;\n#[cfg(test)]\nmod tests { use crate::report::X; }\nfn after() { crate::report::render(); }\n",
    );
    // A circle a -> b -> c -> a, the last one through a serde attribute string.
    write("metrics/b.rs", "pub struct B; use super::c::C;\n");
    write(
        "metrics/c.rs",
        "#[derive(serde::Serialize)] pub struct C { #[serde(skip_serializing_if = \"super::a::is_zero\")] n: u64 }\n",
    );
    write("report/mod.rs", "pub mod table; pub fn render() {}\n");
    write("report/table.rs", "");
    let violations = read_tree(src).violations();
    let text = violations.join("\n");
    for wanted in [
        "src/duration.rs uses crate::yaml",
        "src/duration.rs uses crate::report::table",
        "src/yaml.rs uses crate::report::render",
        "src/metrics/a.rs uses crate::report::render",
        "circle: metrics/a.rs -> metrics/b.rs -> metrics/c.rs -> metrics/a.rs",
    ] {
        assert!(text.contains(wanted), "{wanted} not found in:\n{text}");
    }
    assert!(
        !text.contains("crate::report::X"),
        "test modules may use anything:\n{text}"
    );
    assert_eq!(violations.len(), 5, "{text}");
}
