//! YAML text -> JSON value with the position of every value: the first loading stage, shared by
//! scenarios and prompt sets. A leaf: it knows nothing of what the documents mean.
//!
//! YAML is read with yaml-rust2's event parser rather than serde_yaml (archived upstream) so that
//! every value keeps its line and column: a schema error at `/scenarios/sweep/levels/2` is
//! reported at the line the user wrote it on.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One thing wrong with a YAML file (a scenario or a prompt set), located for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: String,
    /// 1-based line; 0 for a problem with the whole file.
    pub line: usize,
    /// 1-based column.
    pub col: usize,
    /// Dotted field path, e.g. `scenarios.sweep.levels[2]`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem with a whole file (unreadable, empty, of an unknown kind): no line to point at.
    pub fn whole_file(file: &str, message: String) -> Problem {
        Problem {
            file: file.to_string(),
            line: 0,
            col: 0,
            field: String::new(),
            message,
        }
    }

    pub(crate) fn in_file(mut self, file: &str) -> Self {
        self.file = file.to_string();
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.file)?;
        } else {
            write!(f, "{}:{}:{}: ", self.file, self.line, self.col)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// JSON pointer `/scenarios/sweep/levels/2` -> `scenarios.sweep.levels[2]`.
pub fn pointer_to_field(pointer: &str) -> String {
    let mut out = String::new();
    for segment in pointer.split('/').skip(1) {
        let segment = segment.replace("~1", "/").replace("~0", "~");
        if segment.chars().all(|c| c.is_ascii_digit()) && !segment.is_empty() {
            out.push_str(&format!("[{segment}]"));
        } else {
            if !out.is_empty() {
                out.push('.');
            }
            out.push_str(&segment);
        }
    }
    out
}

/// A YAML document as JSON, with the position of every value (and of every mapping key).
#[derive(Debug)]
pub struct Document {
    /// The document as JSON.
    pub value: Value,
    positions: HashMap<String, Position>,
}

/// Where a value was written: line and column, and the file when it is not the document's own
/// (a value inherited through [`Document::merge_onto`]).
#[derive(Debug, Clone)]
struct Position {
    line: usize,
    col: usize,
    file: Option<Arc<str>>,
}

impl Document {
    /// Line and column (both 1-based) of the value at a JSON pointer, falling back to the nearest
    /// enclosing value that exists (a missing field is reported where its parent starts).
    pub fn position(&self, pointer: &str) -> (usize, usize) {
        let at = self.located(pointer);
        (at.line, at.col)
    }

    /// Marks the value at `pointer` as written on the command line (`--set`): a problem at or
    /// below it is reported as `label`'s, with no file line, since no file holds the value.
    pub fn written_by(&mut self, pointer: &str, label: &str) {
        self.positions.retain(|p, _| !inside(p, pointer));
        self.positions.insert(
            pointer.to_string(),
            Position {
                line: 0,
                col: 0,
                file: Some(Arc::from(label)),
            },
        );
    }

    fn located(&self, pointer: &str) -> Position {
        let mut pointer = pointer;
        loop {
            if let Some(pos) = self.positions.get(pointer) {
                return pos.clone();
            }
            match pointer.rfind('/') {
                Some(cut) => pointer = &pointer[..cut],
                None => {
                    return Position {
                        line: 1,
                        col: 1,
                        file: None,
                    }
                }
            }
        }
    }

    /// A problem at a JSON pointer, located where the value (or its nearest parent) is written:
    /// in `file`, or in the base file it was inherited from.
    pub fn problem(&self, file: &str, pointer: &str, message: String) -> Problem {
        let at = self.located(pointer);
        Problem {
            file: at.file.as_deref().unwrap_or(file).to_string(),
            line: at.line,
            col: at.col,
            field: pointer_to_field(pointer),
            message,
        }
    }

    /// This document laid over `base` (written in `base_file`) as a JSON Merge Patch (RFC 7396):
    /// mappings merge key by key, anything else (lists, scalars) replaces what the base had, and
    /// a key set to null removes the inherited one. Inherited values keep their positions, in
    /// the base's file, so a problem is reported where its value was written.
    pub fn merge_onto(mut self, base: Document, base_file: &str) -> Document {
        let mut inherited = Vec::new();
        let value = std::mem::take(&mut self.value);
        self.value = merge(base.value, value, String::new(), &mut inherited);
        let base_file: Arc<str> = Arc::from(base_file);
        for (pointer, pos) in base.positions {
            if inherited.iter().any(|root| inside(&pointer, root)) {
                let file = Some(pos.file.unwrap_or_else(|| base_file.clone()));
                self.positions.insert(pointer, Position { file, ..pos });
            }
        }
        self
    }
}

/// RFC 7396 merge of `patch` over `base`; `inherited` collects the pointers whose values came
/// from the base whole.
fn merge(base: Value, patch: Value, pointer: String, inherited: &mut Vec<String>) -> Value {
    match (base, patch) {
        (Value::Object(mut base), Value::Object(patch)) => {
            let mut patched = Vec::new();
            for (key, value) in patch {
                let child = format!("{pointer}/{}", escape_pointer(&key));
                if value.is_null() {
                    base.remove(&key);
                    continue;
                }
                let merged = match base.remove(&key) {
                    Some(old) => merge(old, value, child, inherited),
                    None => value,
                };
                patched.push((key, merged));
            }
            for key in base.keys() {
                inherited.push(format!("{pointer}/{}", escape_pointer(key)));
            }
            base.extend(patched);
            Value::Object(base)
        }
        (_, patch) => patch,
    }
}

/// True when `pointer` is `root` or lies inside it.
fn inside(pointer: &str, root: &str) -> bool {
    pointer == root
        || pointer
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Parses YAML text into a [`Document`]. Scalars are typed by the YAML 1.2 core schema; quoted
/// scalars are always strings. Duplicate keys are errors: the second would silently win.
pub fn parse(text: &str) -> Result<Document, Problem> {
    // YAML admits no C0 control but tab and line ends (YAML 1.2, 5.1); the parser would stop
    // at a NUL and read the rest as nothing, so a binary file would pass as an empty one.
    if let Some((line, (col, c))) = text.lines().enumerate().find_map(|(i, l)| {
        l.chars()
            .enumerate()
            .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\r' | '\u{85}'))
            .map(|found| (i, found))
    }) {
        return Err(Problem {
            file: String::new(),
            line: line + 1,
            col: col + 1,
            field: String::new(),
            message: format!(
                "YAML does not allow the control character U+{:04X}: not a text file?",
                c as u32
            ),
        });
    }
    let mut builder = Builder {
        parser: Parser::new_from_str(text),
        positions: HashMap::new(),
        anchors: HashMap::new(),
        expanded: 0,
    };
    builder.document()
}

/// Values that aliases may copy into one document. Aliases are expanded by copying, so a few
/// hundred bytes of nested aliases (a "billion laughs") would otherwise allocate gigabytes.
pub const ALIAS_BUDGET: usize = 10_000;

struct Builder<'a> {
    parser: Parser<std::str::Chars<'a>>,
    positions: HashMap<String, Position>,
    /// Each anchored value with its size in values.
    anchors: HashMap<usize, (Value, usize)>,
    /// Values copied by aliases so far.
    expanded: usize,
}

/// How many values `v` holds, itself included.
fn size(v: &Value) -> usize {
    1 + match v {
        Value::Array(items) => items.iter().map(size).sum(),
        Value::Object(map) => map.values().map(size).sum(),
        _ => 0,
    }
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
        self.positions.entry(pointer.clone()).or_insert(Position {
            line: marker.line(),
            col: marker.col() + 1,
            file: None,
        });
        let (value, anchor) = match event {
            Event::Scalar(text, style, anchor, _) => (scalar(&text, style), anchor),
            Event::Alias(id) => {
                let (value, values) = self.anchors.get(&id).ok_or_else(|| {
                    syntax_problem(marker, "alias to an unknown anchor".to_string())
                })?;
                self.expanded += values;
                if self.expanded > ALIAS_BUDGET {
                    return Err(syntax_problem(
                        marker,
                        format!("aliases expand to more than {ALIAS_BUDGET} values; write the values out or use fewer nested aliases"),
                    ));
                }
                (value.clone(), 0)
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
            self.anchors.insert(anchor, (value.clone(), size(&value)));
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
            self.positions.insert(
                child.clone(),
                Position {
                    line: key_marker.line(),
                    col: key_marker.col() + 1,
                    file: None,
                },
            );
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
        let doc = parse("a: 5\nb: '5'\nc: true\nd: 1.5\ne: ~\nf: -3\ng: 10s\n").unwrap();
        assert_eq!(
            doc.value,
            json!({"a": 5, "b": "5", "c": true, "d": 1.5, "e": null, "f": -3, "g": "10s"})
        );
    }

    #[test]
    fn records_key_positions_one_based() {
        let doc = parse("name: x\nscenarios:\n  sweep:\n    levels: [1, 2]\n").unwrap();
        assert_eq!(doc.position("/name"), (1, 1));
        assert_eq!(doc.position("/scenarios/sweep/levels"), (4, 5));
        assert_eq!(doc.position("/scenarios/sweep/levels/1"), (4, 17));
        // Missing children fall back to their parent.
        assert_eq!(doc.position("/scenarios/sweep/missing"), (3, 3));
    }

    #[test]
    fn rejects_duplicate_keys_with_line() {
        let err = parse("name: a\nname: b\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("duplicate key `name`"));
    }

    #[test]
    fn reports_syntax_errors_with_line() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.message.starts_with("YAML syntax"), "{}", err.message);
        assert!(err.line >= 1);
    }

    #[test]
    fn an_alias_bomb_stops_at_the_budget_with_its_line() {
        // Nine levels of ten aliases each: 10^9 values if expanded.
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let err = parse(&text).unwrap_err();
        assert!(
            err.message
                .contains("aliases expand to more than 10000 values"),
            "{err}"
        );
        assert!(
            (3..=5).contains(&err.line),
            "the alias that crossed the budget: {err}"
        );
        // Ordinary reuse stays well inside it.
        let doc = parse("base: &b {x: 1, y: [1, 2, 3]}\none: *b\ntwo: *b\n").unwrap();
        assert_eq!(doc.value["two"]["y"][2], 3);
    }

    #[test]
    fn merging_follows_rfc_7396_and_inherited_values_keep_their_file_and_line() {
        let base =
            parse("name: base\ntarget:\n  model: a\n  url: http://x\nlist: [1, 2]\ngone: 1\n")
                .unwrap();
        let child = parse("target:\n  model: b\nlist: [3]\ngone: ~\n").unwrap();
        let merged = child.merge_onto(base, "base.yaml");
        assert_eq!(
            merged.value,
            json!({"name": "base", "target": {"model": "b", "url": "http://x"}, "list": [3]}),
            "maps merge, lists replace, null removes"
        );
        let at = |pointer| {
            let p = merged.problem("child.yaml", pointer, String::new());
            (p.file, p.line)
        };
        assert_eq!(at("/name"), ("base.yaml".into(), 1));
        assert_eq!(at("/target/url"), ("base.yaml".into(), 4));
        assert_eq!(at("/target/model"), ("child.yaml".into(), 2));
        assert_eq!(at("/list/0"), ("child.yaml".into(), 3));
        // A chain keeps the file of the first base the value was written in.
        let top = parse("seed: 3\n").unwrap().merge_onto(merged, "child.yaml");
        assert_eq!(
            top.problem("top.yaml", "/name", String::new()).file,
            "base.yaml"
        );
        assert_eq!(
            top.problem("top.yaml", "/target/model", String::new()).file,
            "child.yaml"
        );
        assert_eq!(
            top.problem("top.yaml", "/seed", String::new()).file,
            "top.yaml"
        );
    }

    #[test]
    fn resolves_aliases() {
        let doc = parse("base: &b {x: 1}\nother: *b\n").unwrap();
        assert_eq!(doc.value["other"], json!({"x": 1}));
    }

    #[test]
    fn pointer_becomes_dotted_field() {
        assert_eq!(
            pointer_to_field("/scenarios/sweep/levels/2"),
            "scenarios.sweep.levels[2]"
        );
        assert_eq!(pointer_to_field(""), "");
        assert_eq!(pointer_to_field("/a~1b"), "a/b");
    }

    proptest::proptest! {
        /// Whatever the text, parsing ends with a document or a problem at a real position, and
        /// aliases never expand past the budget.
        #[test]
        fn any_text_parses_or_names_a_position(text in "(\\PC|[\\n:&*\\[\\]{},-]){0,200}") {
            match parse(&text) {
                Ok(doc) => proptest::prop_assert!(size(&doc.value) <= text.len() + ALIAS_BUDGET + 1),
                Err(problem) => {
                    proptest::prop_assert!(problem.line >= 1 && problem.col >= 1, "{problem:?}");
                    proptest::prop_assert!(problem.line <= text.lines().count().max(1) + 1, "{problem:?}");
                }
            }
        }
    }
}
