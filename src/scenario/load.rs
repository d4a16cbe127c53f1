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
    /// SHA-256 of the file text (and of the texts it extends), so two results can be checked
    /// for the same scenario.
    pub content_sha256: String,
    /// The files this one extends, nearest first.
    pub bases: Vec<String>,
    /// When the file is the original toolkit's config: the scenario it was read as.
    pub converted: Option<String>,
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

/// Reads and checks the scenario at `path`, with `sets` applied. The original toolkit's
/// `benchmark_config.yaml` is recognised and checked as the scenario it converts to.
pub fn check_file(path: &Path, sets: &[Set]) -> Result<Checked, LoadError> {
    let text = crate::input::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let source = path.display().to_string();
    match yaml::parse(&text) {
        Ok(doc) if super::legacy::is_legacy(&doc.value) => {
            let converted =
                super::legacy::convert(&doc, &source).map_err(|problems| LoadError::Invalid {
                    file: source.clone(),
                    problems,
                })?;
            let mut checked = check_str(&converted, &source, sets)?;
            checked.content_sha256 = sha256_hex(text.as_bytes());
            checked.converted = Some(converted);
            Ok(checked)
        }
        _ => check_str(&text, &source, sets),
    }
}

/// Checks scenario text with `sets` applied; `source` names it in error messages, and
/// `extends:` is read relative to its folder.
pub fn check_str(text: &str, source: &str, sets: &[Set]) -> Result<Checked, LoadError> {
    let invalid = |p: Problem| LoadError::Invalid {
        file: source.to_string(),
        problems: vec![p],
    };
    let doc = yaml::parse(text).map_err(|p| invalid(p.in_file(source)))?;
    if let Some(why) = not_a_scenario(&doc.value) {
        return Err(invalid(Problem::whole_file(source, why)));
    }
    let mut chain = Chain::new(source);
    let mut doc = chain
        .extend(doc, source, &base_dir(source))
        .map_err(invalid)?;
    // Merged: the scenario is whole now, and checked as one that extends nothing.
    if let Value::Object(map) = &mut doc.value {
        map.remove("extends");
    }
    // `${NAME}` and `${NAME:-default}` are replaced before anything is checked.
    let env_problems = super::env::interpolate(&mut doc.value, &|name| std::env::var(name).ok());
    // Command-line values replace written ones before the schema types them.
    for set in sets {
        for pointer in set.apply(&mut doc.value).map_err(LoadError::Set)? {
            doc.written_by(&pointer, &format!("{} (command line)", set.label()));
        }
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
        content_sha256: chain.sha256(text),
        bases: chain.files.split_off(1),
        converted: None,
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

/// The folder a scenario's relative paths (`extends`, prompt files, hook script) are read from.
pub fn base_dir(source: &str) -> PathBuf {
    Path::new(source)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The files an `extends:` chain has read so far, to refuse a cycle and to hash them all.
struct Chain {
    /// Display names, the scenario itself first.
    files: Vec<String>,
    /// Canonical paths of the bases read, to recognise one seen before.
    seen: Vec<PathBuf>,
    texts: Vec<String>,
}

impl Chain {
    fn new(source: &str) -> Chain {
        Chain {
            files: vec![source.to_string()],
            seen: std::fs::canonicalize(source).into_iter().collect(),
            texts: Vec::new(),
        }
    }

    /// `doc` (written in `file`) laid over the scenario it `extends`, recursively. Relative
    /// paths in a base are read from the base's folder: a base elsewhere keeps working.
    fn extend(&mut self, doc: Document, file: &str, dir: &Path) -> Result<Document, Problem> {
        let Some(Value::String(name)) = doc.value.get("extends") else {
            return Ok(doc);
        };
        let path = dir.join(name);
        let at = |message: String| doc.problem(file, "/extends", message);
        let canonical = std::fs::canonicalize(&path)
            .map_err(|e| at(format!("cannot read {}: {e}", path.display())))?;
        if let Some(first) = self.seen.iter().position(|p| *p == canonical) {
            let mut cycle: Vec<&str> = self.files[first..].iter().map(String::as_str).collect();
            let shown = path.display().to_string();
            cycle.push(&shown);
            return Err(at(format!("makes a cycle: {}", cycle.join(" -> "))));
        }
        let text = crate::input::read_to_string(&path)
            .map_err(|e| at(format!("cannot read {}: {e}", path.display())))?;
        let shown = path.display().to_string();
        let base = yaml::parse(&text).map_err(|_| not_yaml(&shown))?;
        if let Some(why) = not_a_scenario(&base.value) {
            return Err(Problem::whole_file(&shown, why));
        }
        self.seen.push(canonical);
        self.files.push(shown.clone());
        self.texts.push(text);
        let base_dir = base_dir(&shown);
        let mut base = self.extend(base, &shown, &base_dir)?;
        if base_dir != dir {
            anchor_paths(&mut base.value, &base_dir);
        }
        Ok(doc.merge_onto(base, &shown))
    }

    /// One hash over the scenario's text and every base's, so a changed base changes it.
    fn sha256(&self, text: &str) -> String {
        let mut all = text.to_string();
        for base in &self.texts {
            all.push('\0');
            all.push_str(base);
        }
        sha256_hex(all.as_bytes())
    }
}

/// Makes the relative file paths of a base (prompt files, hook script) absolute, so they are
/// read from the base's folder rather than from the folder of the scenario extending it.
fn anchor_paths(value: &mut Value, dir: &Path) {
    let anchor = |v: &mut Value| {
        if let Value::String(p) = v {
            if Path::new(p.as_str()).is_relative() {
                if let Ok(abs) = std::path::absolute(dir.join(p.as_str())) {
                    *p = abs.display().to_string();
                }
            }
        }
    };
    if let Some(script) = value.pointer_mut("/hooks/script") {
        anchor(script);
    }
    match value.get_mut("prompts") {
        Some(Value::Array(items)) => {
            for item in items {
                if let Some(include) = item.get_mut("include") {
                    anchor(include);
                }
            }
        }
        Some(prompts @ Value::Object(_)) => {
            if let Some(include) = prompts.get_mut("include") {
                anchor(include);
            }
        }
        _ => {}
    }
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
/// A base that does not parse: named, not quoted (`extends: /etc/shadow` must not print the
/// file's first line). The scenario's own YAML errors keep their position and words: the user
/// wrote that file.
fn not_yaml(file: &str) -> Problem {
    Problem::whole_file(
        file,
        "is not YAML, so not a scenario (its content is not shown)".into(),
    )
}

/// Why `value` cannot be a scenario at all, without quoting it: not a mapping, or a mapping of
/// which no key is a scenario field (a file given by mistake, or one that is not meant to be
/// read). `None` for anything that looks like a scenario, right or wrong in its details.
fn not_a_scenario(value: &Value) -> Option<String> {
    let kind = match value {
        Value::Object(map) => {
            let fields = crate::scenario::schema::top_level_fields();
            if map.is_empty() || map.keys().any(|k| fields.contains(k)) {
                return None;
            }
            return Some(format!(
                "is not a scenario: none of its {} top-level key(s) is a scenario field (name, target, scenarios, prompts, …); its content is not shown",
                map.len()
            ));
        }
        Value::Null => return None,
        Value::Array(_) => "a list",
        Value::String(_) => "text",
        Value::Number(_) | Value::Bool(_) => "a single value",
    };
    Some(format!(
        "is not a scenario: it holds {kind}, not a mapping of fields; its content is not shown"
    ))
}

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

#[cfg(test)]
mod extends_tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    const BASE: &str = "name: base\ntarget:\n  model: m\n  timeout: 30s\nprompts: [hi]\n\
                        scenarios:\n  one:\n    executor: concurrency-levels\n    levels: [1]\n    requests_per_level: 2\n";

    #[test]
    fn a_chain_merges_and_every_file_counts_in_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base.yaml", BASE);
        write(
            dir.path(),
            "mid.yaml",
            "extends: base.yaml\ntarget:\n  model: mid\n",
        );
        let top = write(dir.path(), "top.yaml", "extends: mid.yaml\nname: top\n");
        let checked = check_file(&top, &[]).unwrap();
        assert_eq!(checked.bases.len(), 2, "{:?}", checked.bases);
        let (scenario, _) = checked.finish().unwrap();
        assert_eq!(
            (scenario.name.as_str(), scenario.target.model.as_str()),
            ("top", "mid")
        );
        assert!(
            scenario.target.timeout.is_some(),
            "inherited from two levels down"
        );
        let before = check_file(&top, &[]).unwrap().content_sha256;
        write(dir.path(), "base.yaml", &BASE.replace("30s", "31s"));
        let after = check_file(&top, &[]).unwrap().content_sha256;
        assert_ne!(before, after, "a changed base changes the scenario's hash");
    }

    #[test]
    fn a_cycle_is_a_problem_naming_every_file_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = write(dir.path(), "a.yaml", "extends: b.yaml\nname: a\n");
        write(dir.path(), "b.yaml", "name: b\nextends: a.yaml\n");
        let Err(LoadError::Invalid { problems, .. }) = check_file(&a, &[]) else {
            panic!("a cycle must not load")
        };
        let text = problems[0].to_string();
        assert!(
            text.contains("b.yaml:2:1: extends: makes a cycle"),
            "{text}"
        );
        assert!(
            text.contains("a.yaml -> ") && text.ends_with("a.yaml"),
            "{text}"
        );
        let itself = write(dir.path(), "self.yaml", "extends: self.yaml\n");
        assert!(check_file(&itself, &[]).is_err(), "a file extending itself");
    }

    #[test]
    fn a_bad_inherited_value_is_reported_in_the_base_at_its_line() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "common/base.yaml",
            &BASE.replace("30s", "30 parsecs"),
        );
        let child = write(
            dir.path(),
            "models/m.yaml",
            "extends: ../common/base.yaml\nname: m\n",
        );
        let checked = check_file(&child, &[]).unwrap();
        let Err(LoadError::Invalid { problems, .. }) = checked.finish() else {
            panic!("the base's bad timeout must be found")
        };
        let text = problems[0].to_string();
        assert!(
            text.contains("common/base.yaml:4:3: target.timeout"),
            "{text}"
        );
        let missing = write(dir.path(), "orphan.yaml", "extends: nowhere.yaml\n");
        let Err(LoadError::Invalid { problems, .. }) = check_file(&missing, &[]) else {
            panic!()
        };
        assert!(problems[0]
            .to_string()
            .contains("orphan.yaml:1:1: extends: cannot read"));
    }

    #[test]
    fn a_base_elsewhere_keeps_its_relative_paths() {
        let mut value = serde_json::json!({
            "prompts": [{"include": "sets/a.yaml"}, "inline", {"include": "/abs.yaml"}],
            "hooks": {"script": "h.rhai"}
        });
        anchor_paths(&mut value, Path::new("/srv/common"));
        assert_eq!(value["prompts"][0]["include"], "/srv/common/sets/a.yaml");
        assert_eq!(value["prompts"][1], "inline");
        assert_eq!(value["prompts"][2]["include"], "/abs.yaml");
        assert_eq!(value["hooks"]["script"], "/srv/common/h.rhai");
    }
}
