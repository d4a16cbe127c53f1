//! The documentation as a reader meets it: a short README, every page reachable from it, and no
//! link (file or `#anchor`) that leads nowhere.

use std::collections::{BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown text (headings outside code fences).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fence = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fence = !fence;
        } else if !fence && line.starts_with('#') {
            let heading = line.trim_start_matches('#');
            if heading.starts_with(' ') {
                out.insert(slug(heading));
            }
        }
    }
    out
}

/// The targets of the inline links `[text](target)` outside code fences.
fn links(text: &str) -> Vec<String> {
    let mut fence = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fence = !fence;
            continue;
        }
        if fence {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            rest = &rest[at + 2..];
            if let Some(end) = rest.find(')') {
                out.push(rest[..end].to_string());
                rest = &rest[end..];
            }
        }
    }
    out
}

fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Every problem of the Markdown tree under `root`, starting at its README: broken links,
/// missing anchors, pages no link reaches.
fn check(root: &Path) -> Vec<String> {
    let mut pages: Vec<PathBuf> = vec![root.join("ARCHITECTURE.md")];
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    walk(&root.join("docs"), &mut pages);
    let texts: HashMap<PathBuf, String> = pages
        .iter()
        .chain([&root.join("README.md")])
        .filter_map(|p| Some((normalize(p), std::fs::read_to_string(p).ok()?)))
        .collect();
    let mut problems = Vec::new();
    let mut reached = BTreeSet::new();
    let mut todo = vec![normalize(&root.join("README.md"))];
    while let Some(page) = todo.pop() {
        if !reached.insert(page.clone()) {
            continue;
        }
        let Some(text) = texts.get(&page) else {
            continue;
        };
        for target in links(text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                page.clone()
            } else {
                normalize(&page.parent().unwrap().join(path))
            };
            let name = format!("{}: {target}", page.strip_prefix(root).unwrap().display());
            if !file.exists() {
                problems.push(format!("{name}: no such file"));
                continue;
            }
            if let Some(linked) = texts.get(&file) {
                if !anchor.is_empty() && !anchors(linked).contains(anchor) {
                    problems.push(format!("{name}: no heading with that anchor"));
                }
                todo.push(file);
            }
        }
    }
    for page in texts.keys() {
        if !reached.contains(page) {
            problems.push(format!(
                "{}: no link from README reaches it",
                page.strip_prefix(root).unwrap().display()
            ));
        }
    }
    problems.sort();
    problems
}

#[test]
fn the_readme_is_short_and_every_page_is_reachable_with_no_broken_link() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= 150,
        "README.md has {lines} lines; the rest belongs in docs/"
    );
    let problems = check(root());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker finds what it is for: a broken file link, a missing anchor and an orphan page.
#[test]
fn the_link_checker_finds_broken_links_missing_anchors_and_orphans() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("docs/guide")).unwrap();
    std::fs::write(
        dir.path().join("README.md"),
        "# T\n[a](docs/guide/a.md#its-part) [gone](docs/gone.md) [arch](ARCHITECTURE.md#nope)\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("docs/guide/a.md"),
        "# A\n## Its part\n```\n[x](inside-a-fence.md)\n```\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("docs/orphan.md"), "# O\n").unwrap();
    std::fs::write(dir.path().join("ARCHITECTURE.md"), "# Architecture\n").unwrap();
    let problems = check(dir.path());
    assert_eq!(
        problems,
        [
            "README.md: ARCHITECTURE.md#nope: no heading with that anchor",
            "README.md: docs/gone.md: no such file",
            "docs/orphan.md: no link from README reaches it",
        ],
        "{problems:?}"
    );
    assert_eq!(
        slug("Comparing runs: did it get slower, or is it noise?"),
        "comparing-runs-did-it-get-slower-or-is-it-noise"
    );
    assert_eq!(
        slug("Writing scenarios: from `init` to a CI gate"),
        "writing-scenarios-from-init-to-a-ci-gate"
    );
}
