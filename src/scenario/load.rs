//! Reading a scenario file: YAML text -> JSON value with a position index -> schema check ->
//! typed [`Scenario`] -> semantic checks. All scenario I/O lives here.
//!
//! YAML is read with yaml-rust2's event parser rather than serde_yaml (archived upstream) so that
//! every value keeps its line and column: a schema error at `/scenarios/sweep/levels/2` is
//! reported at the line the user wrote it on.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::validate::{self, Problem};
use super::Scenario;

/// A scenario that passed every check, with what reports need to identify it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The typed scenario.
    pub scenario: Scenario,
    /// Where it came from (a path, or `<built-in quickstart>`).
    pub source: String,
    /// SHA-256 of the file text, so two results can be checked for the same scenario.
    pub content_sha256: String,
    /// The prompts, with included sets read.
    pub prompt_sets: Vec<crate::prompts::PromptSet>,
    /// The compiled hook script.
    pub hooks: Option<std::sync::Arc<crate::hooks::Hooks>>,
}

/// Why a scenario could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The path given.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file was read but has problems; every one is listed.
    #[error("{} problem(s) in {}", problems.len(), file)]
    Invalid {
        /// The file the problems are in.
        file: String,
        /// Every problem found, in file order.
        problems: Vec<Problem>,
    },
}

/// Loads, checks and types the scenario at `path`.
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, &path.display().to_string())
}

/// Loads, checks and types scenario text; `source` names it in error messages.
pub fn load_str(text: &str, source: &str) -> Result<Loaded, LoadError> {
    let invalid = |problems: Vec<Problem>| LoadError::Invalid {
        file: source.to_string(),
        problems,
    };
    let doc = parse_yaml(text).map_err(|p| invalid(vec![p.in_file(source)]))?;
    let schema_problems = crate::scenario::schema::check(&doc.value);
    // The semantic checks need typed values. When the schema found problems, they still run on
    // the document without the offending parts, so one `validate` lists both kinds; what they
    // say at, above or below a removed part is left out, as it would be about the removal.
    let mut removed = removal_points(&doc.value, schema_problems.iter().map(|(p, _)| p.as_str()));
    let mut problems: Vec<Problem> = schema_problems
        .into_iter()
        .map(|(pointer, message)| doc.problem(source, &pointer, message))
        .collect();
    let mut value = doc.value.clone();
    for pointer in &removed {
        remove(&mut value, pointer);
    }
    let mut typed = serde_path_to_error::deserialize::<_, Scenario>(&value);
    // A removal can leave a required field missing: remove its owner too, until the rest types.
    while let Err(err) = &typed {
        if removed.is_empty() {
            break;
        }
        let at = path_to_pointer(err.path());
        let pointer = removal_points(&value, std::iter::once(at.as_str())).remove(0);
        if pointer.is_empty() || removed.contains(&pointer) {
            break;
        }
        remove(&mut value, &pointer);
        removed.push(pointer);
        typed = serde_path_to_error::deserialize::<_, Scenario>(&value);
    }
    match typed {
        Ok(scenario) => {
            let (found, prompt_sets, hooks) = check_semantics(&scenario, source);
            problems.extend(
                found
                    .into_iter()
                    .filter(|(pointer, _)| !removed.iter().any(|r| related(pointer, r)))
                    .map(|(pointer, message)| doc.problem(source, &pointer, message)),
            );
            if problems.is_empty() {
                return Ok(Loaded {
                    scenario,
                    source: source.to_string(),
                    content_sha256: sha256_hex(text.as_bytes()),
                    prompt_sets,
                    hooks,
                });
            }
        }
        // With schema problems, the typing error is one of them seen again.
        Err(err) if removed.is_empty() => {
            let pointer = path_to_pointer(err.path());
            problems.push(doc.problem(source, &pointer, err.inner().to_string()));
        }
        Err(_) => {}
    }
    problems.sort_by_key(|p| (p.line, p.col));
    Err(invalid(problems))
}

type Checked = (
    Vec<(String, String)>,
    Vec<crate::prompts::PromptSet>,
    Option<std::sync::Arc<crate::hooks::Hooks>>,
);

/// Semantic problems of a typed scenario as (JSON pointer, message), with the prompt sets it
/// includes and its compiled hook script.
fn check_semantics(scenario: &Scenario, source: &str) -> Checked {
    let mut problems = validate::check(scenario);
    let base = crate::prompts::load::base_dir(source);
    let prompt_sets = crate::prompts::resolve(
        &scenario.prompts,
        &base,
        scenario.target.backend,
        scenario.seed.unwrap_or(1),
    )
    .unwrap_or_else(|found| {
        problems.extend(found);
        Vec::new()
    });
    let hooks = match &scenario.hooks {
        Some(h) => match crate::hooks::Hooks::load(&base.join(&h.script)) {
            Ok(hooks) => Some(std::sync::Arc::new(hooks)),
            Err(message) => {
                problems.push(("/hooks/script".into(), message));
                None
            }
        },
        None => None,
    };
    if let Some(hooks) = &hooks {
        if let Err(found) = crate::thresholds::compile_with(scenario, hooks.custom_metrics()) {
            problems.extend(found);
        }
    }
    (problems, prompt_sets, hooks)
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

/// A YAML document as JSON, with the position of every value (and of every mapping key).
#[derive(Debug)]
pub struct Document {
    /// The document as JSON.
    pub value: Value,
    positions: HashMap<String, (usize, usize)>,
}

impl Document {
    /// Line and column (both 1-based) of the value at a JSON pointer, falling back to the nearest
    /// enclosing value that exists (a missing field is reported where its parent starts).
    pub fn position(&self, pointer: &str) -> (usize, usize) {
        let mut pointer = pointer;
        loop {
            if let Some(&pos) = self.positions.get(pointer) {
                return pos;
            }
            match pointer.rfind('/') {
                Some(cut) => pointer = &pointer[..cut],
                None => return (1, 1),
            }
        }
    }

    fn problem(&self, file: &str, pointer: &str, message: String) -> Problem {
        let (line, col) = self.position(pointer);
        Problem {
            file: file.to_string(),
            line,
            col,
            field: validate::pointer_to_field(pointer),
            message,
        }
    }
}

/// Parses YAML text into a [`Document`]. Scalars are typed by the YAML 1.2 core schema; quoted
/// scalars are always strings. Duplicate keys are errors: the second would silently win.
pub fn parse_yaml(text: &str) -> Result<Document, Problem> {
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        positions: HashMap::new(),
        anchors: HashMap::new(),
    };
    builder.document()
}

struct Builder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    positions: HashMap<String, (usize, usize)>,
    anchors: HashMap<usize, Value>,
}

fn syntax_problem(marker: Marker, message: String) -> Problem {
    Problem {
        file: String::new(),
        line: marker.line(),
        col: marker.col() + 1,
        field: String::new(),
        message,
    }
}

impl Builder<'_> {
    fn next(&mut self) -> Result<(Event, Marker), Problem> {
        self.parser.next_token().map_err(|e| {
            let marker = *e.marker();
            syntax_problem(marker, format!("YAML syntax: {}", e.info()))
        })
    }

    fn document(&mut self) -> Result<Document, Problem> {
        let mut value = Value::Null;
        loop {
            let (event, marker) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentStart => {}
                Event::StreamEnd => break,
                Event::DocumentEnd => {
                    let (next, marker) = self.next()?;
                    if !matches!(next, Event::StreamEnd) {
                        return Err(syntax_problem(
                            marker,
                            "a scenario file holds one YAML document".into(),
                        ));
                    }
                    break;
                }
                other => value = self.node(other, marker, String::new())?,
            }
        }
        Ok(Document {
            value,
            positions: std::mem::take(&mut self.positions),
        })
    }

    fn node(&mut self, event: Event, marker: Marker, pointer: String) -> Result<Value, Problem> {
        self.positions
            .entry(pointer.clone())
            .or_insert((marker.line(), marker.col() + 1));
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, _) => (scalar(&text, style), anchor),
            Event::Alias(id) => {
                let value = self.anchors.get(&id).cloned().ok_or_else(|| {
                    syntax_problem(marker, "alias to an unknown anchor".to_string())
                })?;
                (value, 0)
            }
            Event::SequenceStart(anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, marker) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    let item_pointer = format!("{pointer}/{}", items.len());
                    items.push(self.node(event, marker, item_pointer)?);
                }
                (Value::Array(items), anchor)
            }
            Event::MappingStart(anchor, _) => (Value::Object(self.mapping(&pointer)?), anchor),
            other => {
                return Err(syntax_problem(
                    marker,
                    format!("unexpected YAML event {other:?}"),
                ))
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, value.clone());
        }
        Ok(value)
    }

    fn mapping(&mut self, pointer: &str) -> Result<Map<String, Value>, Problem> {
        let mut map = Map::new();
        loop {
            let (event, key_marker) = self.next()?;
            let key = match event {
                Event::MappingEnd => return Ok(map),
                Event::Scalar(text, ..) => text,
                _ => {
                    return Err(syntax_problem(
                        key_marker,
                        "mapping keys must be plain text".into(),
                    ))
                }
            };
            let child = format!("{pointer}/{}", escape_pointer(&key));
            if map.contains_key(&key) {
                return Err(syntax_problem(key_marker, format!("duplicate key `{key}`")));
            }
            // Report problems about a field where its key is written, which is where the user looks.
            self.positions
                .insert(child.clone(), (key_marker.line(), key_marker.col() + 1));
            let (event, marker) = self.next()?;
            let value = self.node(event, marker, child)?;
            map.insert(key, value);
        }
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// YAML 1.2 core schema resolution of an untagged scalar.
fn scalar(text: &str, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text.to_string());
    }
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let looks_numeric = text
        .trim_start_matches(['-', '+'])
        .starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if looks_numeric {
        if let Ok(i) = text.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = text.parse::<u64>() {
            return Value::Number(u.into());
        }
        if let Some(n) = text.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn types_plain_scalars_by_core_schema_and_keeps_quoted_strings() {
        let doc = parse_yaml("a: 5\nb: '5'\nc: true\nd: 1.5\ne: ~\nf: -3\ng: 10s\n").unwrap();
        assert_eq!(
            doc.value,
            json!({"a": 5, "b": "5", "c": true, "d": 1.5, "e": null, "f": -3, "g": "10s"})
        );
    }

    #[test]
    fn records_key_positions_one_based() {
        let doc = parse_yaml("name: x\nscenarios:\n  sweep:\n    levels: [1, 2]\n").unwrap();
        assert_eq!(doc.position("/name"), (1, 1));
        assert_eq!(doc.position("/scenarios/sweep/levels"), (4, 5));
        assert_eq!(doc.position("/scenarios/sweep/levels/1"), (4, 17));
        // Missing children fall back to their parent.
        assert_eq!(doc.position("/scenarios/sweep/missing"), (3, 3));
    }

    #[test]
    fn rejects_duplicate_keys_with_line() {
        let err = parse_yaml("name: a\nname: b\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("duplicate key `name`"));
    }

    #[test]
    fn reports_syntax_errors_with_line() {
        let err = parse_yaml("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("YAML syntax"), "{}", err.message);
        assert!(err.line >= 1);
    }

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

    #[test]
    fn resolves_aliases() {
        let doc = parse_yaml("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(doc.value["other"], json!({"x": 1}));
    }
}
