//! Size limits that keep the code readable in one sitting: no source file over 800 lines and
//! no function over 120 (test code aside). The functions that were longer when the limit came
//! are listed with the length they had: each may only shrink, and leaves the list once it is
//! within the limit, so the list cannot go stale.

use std::path::Path;

use syn::visit::Visit;

use crate::common::rust_files as files;

const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 120;

/// Functions over the limit when it was set (file, function, lines then), to be split.
const LONGER_WHEN_SET: &[(&str, &str, usize)] = &[
    ("report/mod.rs", "view", 229),
    ("report/svg.rs", "render_with", 210),
    ("report/table.rs", "render", 198),
    ("scenario/validate.rs", "check", 191),
    ("report/charts.rs", "capacity_charts", 167),
    ("scenario/schema.rs", "example", 127),
];

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("test")
            || (a.path().is_ident("cfg")
                && a.meta
                    .require_list()
                    .is_ok_and(|l| l.tokens.to_string().contains("test")))
    })
}

/// Every non-test function of a file and its length in lines, from `fn` to its closing brace.
#[derive(Default)]
struct Lengths(Vec<(String, usize)>);

impl Lengths {
    fn add(&mut self, sig: &syn::Signature, block: &syn::Block) {
        let start = sig.fn_token.span.start().line;
        let end = block.brace_token.span.close().end().line;
        self.0.push((sig.ident.to_string(), end + 1 - start));
    }
}

impl<'ast> Visit<'ast> for Lengths {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test(&f.attrs) {
            self.add(&f.sig, &f.block);
            syn::visit::visit_item_fn(self, f);
        }
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test(&f.attrs) {
            self.add(&f.sig, &f.block);
            syn::visit::visit_impl_item_fn(self, f);
        }
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.add(&f.sig, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

/// The problems of the tree under `src`, one line each.
fn problems(src: &Path, known: &[(&str, &str, usize)]) -> Vec<String> {
    let mut paths = Vec::new();
    files(src, &mut paths);
    paths.sort();
    let mut out = Vec::new();
    let mut still_long = Vec::new();
    for path in paths {
        let rel = path
            .strip_prefix(src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            out.push(format!("{rel}: {lines} lines, more than {MAX_FILE_LINES}"));
        }
        let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
        let mut lengths = Lengths::default();
        lengths.visit_file(&file);
        for (name, n) in lengths.0 {
            if n <= MAX_FN_LINES {
                continue;
            }
            match known.iter().find(|(f, k, _)| *f == rel && *k == name) {
                Some((_, _, then)) => {
                    if n > *then {
                        out.push(format!(
                            "{rel}: fn {name} is {n} lines, longer than the {then} it had (limit {MAX_FN_LINES}): split it, do not grow it"
                        ));
                    }
                    still_long.push((rel.clone(), name));
                }
                None => out.push(format!(
                    "{rel}: fn {name} is {n} lines, more than {MAX_FN_LINES}"
                )),
            }
        }
    }
    for (file, name, _) in known {
        if !still_long.iter().any(|(f, k)| f == file && k == name) {
            out.push(format!(
                "{file}: fn {name} is no longer over {MAX_FN_LINES} lines (or is gone): take it off LONGER_WHEN_SET"
            ));
        }
    }
    out
}

#[test]
fn no_file_over_800_lines_and_no_function_over_120() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let found = problems(&src, LONGER_WHEN_SET);
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Each rule fails on a planted tree: a long file, a new long function, a listed one grown,
/// and a listed one that was split (its entry is stale); test code is not counted.
#[test]
fn the_size_check_fails_on_each_planted_case() {
    let dir = tempfile::tempdir().unwrap();
    let body = |n: usize| "    let _ = 1;\n".repeat(n);
    let write = |name: &str, text: String| std::fs::write(dir.path().join(name), text).unwrap();
    write("long.rs", "// x\n".repeat(MAX_FILE_LINES + 1));
    write(
        "new.rs",
        format!("fn grown() {{\n{}}}\n", body(MAX_FN_LINES)),
    );
    write(
        "listed.rs",
        format!("impl X {{\n    fn old() {{\n{}    }}\n}}\n", body(150)),
    );
    write("split.rs", "fn short() {}\n".into());
    write(
        "tests_only.rs",
        format!(
            "#[cfg(test)]\nmod tests {{\n    fn long() {{\n{}    }}\n}}\n",
            body(200)
        ),
    );
    let found = problems(
        dir.path(),
        &[("listed.rs", "old", 140), ("split.rs", "short", 130)],
    );
    let has = |what: &str| found.iter().any(|p| p.contains(what));
    assert!(has("long.rs: 801 lines"), "{found:?}");
    assert!(has("new.rs: fn grown is 122 lines"), "{found:?}");
    assert!(
        has("listed.rs: fn old is 152 lines, longer than the 140"),
        "{found:?}"
    );
    assert!(has("split.rs: fn short is no longer over"), "{found:?}");
    assert!(!has("tests_only.rs"), "{found:?}");
    assert_eq!(found.len(), 4, "{found:?}");
}
