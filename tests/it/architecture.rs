//! The layering stated in `src/lib.rs` holds: each top-level module uses only modules listed
//! before it (`crate::x` references outside test modules), so no import goes upward and no
//! circle can form.

use std::path::Path;

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

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_uses_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    files(&src, &mut paths);
    let mut upward = Vec::new();
    for path in paths {
        let rel = path.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" || rel.ends_with("fixture_tests.rs") {
            continue;
        }
        let Some(rank) = ORDER.iter().position(|m| *m == top) else {
            panic!(
                "src/{} is in no layer: add `{top}` to ORDER and to lib.rs",
                rel.display()
            );
        };
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if let Some(used) = ORDER.iter().position(|m| *m == name) {
                if used > rank {
                    upward.push(format!("src/{} uses crate::{name}", rel.display()));
                }
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports from a higher layer:\n{}",
        upward.join("\n")
    );
}
