//! Loading, stage one: a scenario file -> YAML with positions ([`crate::yaml`]) -> schema check
//! -> typed [`Scenario`] -> the semantic checks that need nothing but the scenario. Every problem
//! is kept with its position; the second stage (`compile.rs`) adds what compiling the
//! runnable parts finds, then decides. All scenario file I/O lives here.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::set::Set;
use super::validate::{self, Problem};
use super::Scenario;
use crate::yaml::{self, Document};

/// Why a scenario could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read scenario {}", path.display())]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// A `--set` could not be applied.
    #[error("{0}")]
    Set(String),
    /// The file was read but has problems; every one is listed.
    #[error("{} problem(s) in {}", problems.len(), file)]
    Invalid {
        /// The file the problems are in.
        file: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

/// A scenario file after stage one: typed where possible, with every problem found so far.
#[derive(Debug)]
pub struct Checked {
    /// The typed scenario; `None` when what the schema rejected leaves nothing that types.
    pub scenario: Option<Scenario>,
    /// Where it came from (a path, or `<built-in quickstart>`).
    pub source: String,
    /// SHA-256 of the file text, so two results can be checked for the same scenario.
    pub content_sha256: String,
    doc: Document,
    /// Parts the schema rejected, removed so the rest could be typed.
    removed: Vec<String>,
    problems: Vec<Problem>,
}

impl Checked {
    /// Adds problems found later, at JSON pointers. What is said at, above or below a part the
    /// schema rejected is left out: it would be about the removal.
    pub fn report(&mut self, found: impl IntoIterator<Item = (String, String)>) {
        for (pointer, message) in found {
            if !self.removed.iter().any(|r| related(&pointer, r)) {
                let problem = self.doc.problem(&self.source, &pointer, message);
                self.problems.push(problem);
            }
        }
    }

    /// The scenario (and its positions, to locate later problems) when nothing was found
    /// wrong, or every problem in file order.
    pub fn finish(self) -> Result<(Scenario, Document), LoadError> {
        match self.scenario {
            Some(scenario) if self.problems.is_empty() => Ok((scenario, self.doc)),
            _ => {
                let mut problems = self.problems;
                problems.sort_by_key(|p| (p.line, p.col));
                Err(LoadError::Invalid {
                    file: self.source,
                    problems,
                })
            }
        }
    }
}

/// Reads and checks the scenario at `path`, with `sets` applied.
pub fn check_file(path: &Path, sets: &[Set]) -> Result<Checked, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    check_str(&text, &path.display().to_string(), sets)
}

/// Checks scenario text with `sets` applied; `source` names it in error messages.
pub fn check_str(text: &str, source: &str, sets: &[Set]) -> Result<Checked, LoadError> {
    let mut doc = yaml::parse(text).map_err(|p| LoadError::Invalid {
        file: source.to_string(),
        problems: vec![p.in_file(source)],
    })?;
    // `${NAME}` and `${NAME:-default}` are replaced before anything is checked.
    let env_problems = super::env::interpolate(&mut doc.value, &|name| std::env::var(name).ok());
    // Command-line values replace written ones before the schema types them.
    for set in sets {
        set.apply(&mut doc.value).map_err(LoadError::Set)?;
    }
    let schema_problems = crate::scenario::schema::check(&doc.value);
    // The semantic checks need typed values. When the schema found problems, they still run on
    // the document without the offending parts, so one `validate` lists both kinds.
    let mut removed = removal_points(
        &doc.value,
        env_problems
            .iter()
            .chain(&schema_problems)
            .map(|(p, _)| p.as_str()),
    );
    let problems: Vec<Problem> = env_problems
        .into_iter()
        .chain(schema_problems)
        .map(|(pointer, message)| doc.problem(source, &pointer, message))
        .collect();
    let mut value = doc.value.clone();
    for pointer in &removed {
        remove(&mut value, pointer);
    }
    let mut typed = serde_path_to_error::deserialize::<_, Scenario>(&value);
    let schema_removed = removed.clone();
    let mut problems = problems;
    // A removal can leave a required field missing: remove its owner too, until the rest types.
    // A typing error elsewhere (a duration the schema's pattern admits but the parser refuses)
    // is a problem of its own, reported before its node is removed.
    while let Err(err) = &typed {
        if removed.is_empty() {
            break;
        }
        let at = path_to_pointer(err.path());
        if !schema_removed.iter().any(|r| related(&at, r)) {
            problems.push(doc.problem(source, &at, err.inner().to_string()));
        }
        let pointer = removal_points(&value, std::iter::once(at.as_str())).remove(0);
        if pointer.is_empty() || removed.contains(&pointer) {
            break;
        }
        remove(&mut value, &pointer);
        removed.push(pointer);
        typed = serde_path_to_error::deserialize::<_, Scenario>(&value);
    }
    let mut checked = Checked {
        scenario: None,
        source: source.to_string(),
        content_sha256: sha256_hex(text.as_bytes()),
        doc,
        removed,
        problems,
    };
    match typed {
        Ok(scenario) => {
            checked.report(validate::check(&scenario));
            checked.scenario = Some(scenario);
        }
        // With schema problems, the typing error is one of them seen again.
        Err(err) if checked.removed.is_empty() => {
            let pointer = path_to_pointer(err.path());
            let problem = checked
                .doc
                .problem(source, &pointer, err.inner().to_string());
            checked.problems.push(problem);
        }
        Err(_) => {}
    }
    Ok(checked)
}

/// Where to cut the document so it can be typed despite schema problems: each problem's node,
/// or the whole list it sits in (removing one item would renumber the others).
fn removal_points<'a>(value: &Value, pointers: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = pointers
        .map(|pointer| {
            let mut at = pointer;
            while let Some((parent, _)) = at.rsplit_once('/') {
                if !value.pointer(parent).is_some_and(Value::is_array) {
                    break;
                }
                at = parent;
            }
            at.to_string()
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Removes the node at `pointer` (the whole document for "").
fn remove(value: &mut Value, pointer: &str) {
    let Some((parent, key)) = pointer.rsplit_once('/') else {
        *value = Value::Null;
        return;
    };
    let key = key.replace("~1", "/").replace("~0", "~");
    if let Some(Value::Object(map)) = value.pointer_mut(parent) {
        map.remove(&key);
    }
}

/// True when one pointer is the other or lies inside it.
fn related(a: &str, b: &str) -> bool {
    let inside = |inner: &str, outer: &str| {
        inner == outer
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// serde_path_to_error's `a.b[0].c` -> JSON pointer `/a/b/0/c`.
fn path_to_pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        out.push('/');
        match segment {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            Segment::Map { key } | Segment::Enum { variant: key } => out.push_str(key),
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cuts_whole_lists_and_relates_pointers_by_nesting() {
        let value = json!({"a": {"b": [1, [2, 3]]}, "c": 1});
        let points = removal_points(&value, ["/a/b/1/0", "/c", "/c"].into_iter());
        assert_eq!(points, ["/a/b", "/c"], "an item takes its list with it");
        let mut cut = value.clone();
        points.iter().for_each(|p| remove(&mut cut, p));
        assert_eq!(cut, json!({"a": {}}));
        assert!(related("/a/b", "/a") && related("/a", "/a/b/0") && related("/a", "/a"));
        assert!(!related("/ab", "/a") && !related("/c", "/a/b"));
        assert!(related("/anything", ""), "the root holds everything");
    }
}
