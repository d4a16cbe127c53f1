//! `--set path=value`: any field of a scenario from the command line, applied to the document
//! before it is checked, so the schema types the value and reports it like one written in the
//! file. Paths are dotted (`scenarios.steady.rate`, `target.options.temperature`), list items by
//! number (`scenarios.sweep.levels.0`); values are YAML (`4`, `true`, `[1, 2]`, `text`).

use serde_json::{Map, Value};

/// One `path=value`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Set {
    /// The dotted path as written.
    pub path: String,
    /// The value as written.
    pub text: String,
    value: Value,
}

impl Set {
    /// Reads `path=value`; the value is typed as YAML types it.
    pub fn parse(arg: &str) -> Result<Set, String> {
        let (path, text) = arg
            .split_once('=')
            .ok_or_else(|| format!("--set {arg:?}: expected path=value"))?;
        let path = path.trim();
        if path.is_empty() || path.split('.').any(str::is_empty) {
            return Err(format!(
                "--set {arg:?}: the path needs names between its dots"
            ));
        }
        if path == "extends" || path.starts_with("extends.") {
            return Err(format!(
                "--set {arg:?}: `extends` is read from the file before any --set applies, so it cannot be set here; write it in the scenario, or pass the base's scenario instead"
            ));
        }
        let value = crate::yaml::parse(text)
            .map(|doc| doc.value)
            .map_err(|p| format!("--set {arg:?}: the value is not YAML: {}", p.message))?;
        Ok(Set {
            path: path.to_string(),
            text: text.to_string(),
            value,
        })
    }

    /// The JSON pointer of the path: `scenarios.sweep.levels` -> `/scenarios/sweep/levels`.
    pub fn pointer(&self) -> String {
        self.path
            .split('.')
            .map(|name| format!("/{}", name.replace('~', "~0").replace('/', "~1")))
            .collect()
    }

    /// How it is recorded in results: `--set path=value`.
    pub fn label(&self) -> String {
        format!("--set {}={}", self.path, self.text)
    }

    /// Puts the value at the path in `doc`, creating maps on the way; a path through a value
    /// that is neither a map nor a list is an error.
    pub fn apply(&self, doc: &mut Value) -> Result<(), String> {
        let names: Vec<&str> = self.path.split('.').collect();
        let mut at = doc;
        for (i, name) in names.iter().enumerate() {
            let last = i + 1 == names.len();
            if at.is_null() {
                *at = Value::Object(Map::new());
            }
            let slot = match at {
                Value::Object(map) => map.entry(name.to_string()).or_insert(Value::Null),
                Value::Array(items) => {
                    let index: usize = name.parse().map_err(|_| {
                        format!("--set {}: {name:?} is not an item number", self.path)
                    })?;
                    let len = items.len();
                    items.get_mut(index).ok_or_else(|| {
                        format!("--set {}: no item {index} (the list has {len})", self.path)
                    })?
                }
                _ => {
                    return Err(format!(
                        "--set {}: {} is not a map or a list",
                        self.path,
                        names[..i].join(".")
                    ))
                }
            };
            if last {
                *slot = self.value.clone();
                return Ok(());
            }
            at = slot;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_are_typed_and_placed_at_their_path() {
        let mut doc = json!({"scenarios": {"steady": {"rate": 1}}, "target": {"model": "m"}});
        for arg in [
            "scenarios.steady.rate=4",
            "target.options.temperature=0",
            "target.model=qwen3:0.6b",
            "scenarios.steady.levels=[1, 2]",
            "scenarios.steady.levels.1=8",
        ] {
            Set::parse(arg).unwrap().apply(&mut doc).unwrap();
        }
        assert_eq!(
            doc,
            json!({"scenarios": {"steady": {"rate": 4, "levels": [1, 8]}}, "target": {"model": "qwen3:0.6b", "options": {"temperature": 0}}})
        );
    }

    #[test]
    fn mistakes_say_what_is_wrong() {
        assert!(Set::parse("no-equals").unwrap_err().contains("path=value"));
        assert!(Set::parse("a..b=1")
            .unwrap_err()
            .contains("between its dots"));
        let mut doc = json!({"name": "x", "levels": [1]});
        let err = Set::parse("name.first=1")
            .unwrap()
            .apply(&mut doc)
            .unwrap_err();
        assert!(err.contains("name is not a map or a list"), "{err}");
        let err = Set::parse("levels.3=1")
            .unwrap()
            .apply(&mut doc)
            .unwrap_err();
        assert!(err.contains("no item 3"), "{err}");
        let err = Set::parse("extends=other.yaml").unwrap_err();
        assert!(err.contains("cannot be set here"), "{err}");
        assert_eq!(
            Set::parse("scenarios.a/b.rate=1").unwrap().pointer(),
            "/scenarios/a~1b/rate"
        );
    }
}
