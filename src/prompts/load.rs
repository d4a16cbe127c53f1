//! Reading prompt sets: inline entries, and included files in YAML (a [`PromptSetFile`] or a
//! plain list), JSONL (one entry per line with `prompt` or `messages`; other fields are kept
//! when they are entry fields and ignored otherwise, as datasets carry ids and metadata), and
//! ShareGPT JSON (`conversations` of `from`/`value`: the first human turn is the prompt, as
//! vLLM's benchmark takes it).

use std::path::Path;

use serde_json::{Map, Value};

use super::{Entry, PromptSet};
use crate::scenario::{FullEntry, Message, PromptEntry, PromptItem, PromptSetFile, Prompts};
use crate::yaml::{self, Problem};

/// Resolves the scenario's `prompts` against `base_dir` (the scenario file's folder). Problems
/// are (JSON pointer in the scenario, message); a message about an included file names it.
pub fn resolve(
    prompts: &Prompts,
    base_dir: &Path,
    backend: crate::scenario::BackendKind,
    seed: u64,
) -> Result<Vec<PromptSet>, Vec<(String, String)>> {
    let items: Vec<(String, &PromptItem)>;
    let single;
    match prompts {
        Prompts::Include(include) => {
            single = PromptItem::Include(include.clone());
            items = vec![("/prompts".to_string(), &single)];
        }
        Prompts::List(list) => {
            items = list
                .iter()
                .enumerate()
                .map(|(i, item)| (format!("/prompts/{i}"), item))
                .collect()
        }
    }
    let mut sets = Vec::new();
    let mut inline = Vec::new();
    let mut problems = Vec::new();
    for (pointer, item) in items {
        match item {
            PromptItem::Entry(entry) => match Entry::from_written(entry) {
                Ok(entry) => inline.push(entry),
                Err(message) => problems.push((pointer, message)),
            },
            PromptItem::Synthetic(item) => {
                let set = super::synthetic::generate(&item.synthetic, backend, seed);
                sets.push(PromptSet {
                    weight: item.weight.unwrap_or(1.0),
                    ..set
                });
            }
            PromptItem::Include(include) => {
                let path = base_dir.join(&include.include);
                match load_set(&path) {
                    Ok((name, entries)) => sets.push(PromptSet {
                        name: name.into(),
                        weight: include.weight.unwrap_or(1.0),
                        entries,
                    }),
                    Err(problem) => {
                        problems.push((format!("{pointer}/include"), problem.to_string()))
                    }
                }
            }
        }
    }
    if !inline.is_empty() {
        sets.insert(
            0,
            PromptSet {
                name: "inline".into(),
                weight: 1.0,
                entries: inline,
            },
        );
    }
    if problems.is_empty() && sets.iter().all(|s| s.entries.is_empty()) {
        problems.push(("/prompts".into(), "at least one prompt is needed".into()));
    }
    if problems.is_empty() {
        Ok(sets)
    } else {
        Err(problems)
    }
}

fn file_name(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "prompts".into(), |s| s.to_string_lossy().into_owned())
}

/// Reads one prompt-set file: (set name, entries), or the first problem, located in the file.
pub fn load_set(path: &Path) -> Result<(String, Vec<Entry>), Problem> {
    let file = path.display().to_string();
    let whole = |message: String| Problem::whole_file(&file, message);
    let text = crate::input::read_to_string(path)
        .map_err(|e| whole(format!("cannot read prompt set {}: {e}", path.display())))?;
    let at = |line: usize, message: String| Problem {
        file: file.clone(),
        line,
        col: 1,
        field: String::new(),
        message,
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("yaml" | "yml") => {
            let doc = yaml::parse(&text).map_err(|p| p.in_file(&file))?;
            let set: PromptSetFile = match &doc.value {
                Value::Array(_) => PromptSetFile {
                    name: None,
                    description: None,
                    prompts: typed(&doc, path)?,
                },
                _ => typed(&doc, path)?,
            };
            let entries = set
                .prompts
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let pointer = if doc.value.is_array() {
                        format!("/{i}")
                    } else {
                        format!("/prompts/{i}")
                    };
                    Entry::from_written(e).map_err(|m| doc.problem(&file, &pointer, m))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((
                set.name.unwrap_or_else(|| file_name(path)),
                non_empty(entries, path)?,
            ))
        }
        Some("jsonl") => {
            let mut entries = Vec::new();
            for (i, line) in text
                .lines()
                .enumerate()
                .filter(|(_, l)| !l.trim().is_empty())
            {
                let v: Value =
                    serde_json::from_str(line).map_err(|e| at(i + 1, format!("not JSON: {e}")))?;
                let entry = jsonl_entry(&v)
                    .and_then(|e| Entry::from_written(&e))
                    .map_err(|m| at(i + 1, m))?;
                entries.push(entry);
            }
            Ok((file_name(path), non_empty(entries, path)?))
        }
        Some("json") => {
            let v: Value =
                serde_json::from_str(&text).map_err(|e| at(1, format!("not JSON: {e}")))?;
            let conversations = v
                .as_array()
                .ok_or_else(|| whole("a ShareGPT file is a JSON array of conversations".into()))?;
            let entries: Vec<Entry> = conversations
                .iter()
                .filter_map(sharegpt_prompt)
                .map(|p| Entry::plain(crate::scenario::Prompt::Text(p)))
                .collect();
            Ok((file_name(path), non_empty(entries, path)?))
        }
        _ => Err(whole(
            "a prompt set is .yaml, .yml, .jsonl or .json (ShareGPT)".into(),
        )),
    }
}

fn non_empty(entries: Vec<Entry>, path: &Path) -> Result<Vec<Entry>, Problem> {
    if entries.is_empty() {
        Err(Problem::whole_file(
            &path.display().to_string(),
            "no prompts".into(),
        ))
    } else {
        Ok(entries)
    }
}

fn typed<T: serde::de::DeserializeOwned>(doc: &yaml::Document, path: &Path) -> Result<T, Problem> {
    serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        let pointer: String = e.path().iter().map(|s| format!("/{s}")).collect();
        doc.problem(&path.display().to_string(), &pointer, e.inner().to_string())
    })
}

/// True when a file is evidently a prompt set rather than a scenario: JSONL or JSON data, a
/// `$schema` modeline naming the prompt-set schema, a YAML list, or a mapping with `prompts`
/// but none of the fields only a scenario has.
pub fn looks_like_prompt_set(path: &Path, text: &str) -> bool {
    if matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("jsonl" | "json")
    ) {
        return true;
    }
    let modeline = text
        .lines()
        .take_while(|l| l.trim_start().starts_with('#') || l.trim().is_empty())
        .find(|l| l.contains("$schema="));
    if let Some(line) = modeline {
        return line.contains("prompt-set.schema.json");
    }
    match yaml::parse(text).map(|d| d.value) {
        Ok(Value::Array(_)) => true,
        Ok(Value::Object(map)) => {
            map.contains_key("prompts")
                && !["target", "scenarios", "extends"]
                    .iter()
                    .any(|k| map.contains_key(*k))
        }
        _ => false,
    }
}

/// A JSONL record as an entry: `prompt` (with optional `system`) or `messages`, plus the entry
/// fields it has; anything else on the line is ignored.
fn jsonl_entry(v: &Value) -> Result<PromptEntry, String> {
    let obj = v.as_object().ok_or("each line is a JSON object")?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    let messages = match obj.get("messages") {
        Some(m) => Some(
            serde_json::from_value::<Vec<Message>>(m.clone())
                .map_err(|e| format!("messages: {e}"))?,
        ),
        None => None,
    };
    if text("prompt").is_none() && messages.is_none() {
        return Err("a line needs a `prompt` or a `messages` field".into());
    }
    Ok(PromptEntry::Full(FullEntry {
        prompt: text("prompt"),
        system: text("system"),
        messages,
        name: text("name"),
        tags: obj
            .get("tags")
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default(),
        options: obj
            .get("options")
            .and_then(Value::as_object)
            .cloned()
            .map(Map::from_iter),
        vars: obj
            .get("vars")
            .and_then(|t| serde_json::from_value(t.clone()).ok())
            .unwrap_or_default(),
    }))
}

/// The first human turn of a ShareGPT conversation.
fn sharegpt_prompt(conversation: &Value) -> Option<String> {
    let turns = conversation
        .get("conversations")
        .or_else(|| conversation.get("conversation"))?
        .as_array()?;
    turns
        .iter()
        .find(|t| {
            matches!(
                t.get("from").and_then(Value::as_str),
                Some("human" | "user")
            )
        })
        .and_then(|t| t.get("value").and_then(Value::as_str))
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{Include, Prompt};
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn yaml_sets_with_names_entries_and_errors_at_their_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "code.yaml", "name: code\nprompts:\n  - Write a binary search in Rust.\n  - {prompt: \"Explain {{ x }}.\", vars: {x: [closures]}, tags: [explain]}\n");
        let (name, entries) = load_set(&dir.path().join("code.yaml")).unwrap();
        assert_eq!((name.as_str(), entries.len()), ("code", 2));
        assert_eq!(entries[1].tags, vec!["explain".to_string()]);
        write(
            dir.path(),
            "bad.yaml",
            "prompts:\n  - ok\n  - {system: only a system}\n",
        );
        let err = load_set(&dir.path().join("bad.yaml")).unwrap_err();
        assert!(
            err.to_string()
                .contains("bad.yaml:3:5: prompts[1]: give `prompt` or `messages`"),
            "{err}"
        );
    }

    #[test]
    fn jsonl_and_sharegpt_imports() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "d.jsonl", "{\"id\": 1, \"prompt\": \"hi\", \"system\": \"be brief\"}\n\n{\"messages\": [{\"role\": \"user\", \"content\": \"yo\"}]}\n");
        let (_, entries) = load_set(&dir.path().join("d.jsonl")).unwrap();
        assert!(matches!(&entries[0].prompt, Prompt::WithSystem(p) if p.prompt == "hi"));
        assert!(matches!(&entries[1].prompt, Prompt::Chat(c) if c.messages.len() == 1));
        write(
            dir.path(),
            "bad.jsonl",
            "{\"prompt\": \"a\"}\n{\"text\": \"b\"}\n",
        );
        assert!(load_set(&dir.path().join("bad.jsonl"))
            .unwrap_err()
            .to_string()
            .contains("bad.jsonl:2:1: a line needs a `prompt`"));
        write(
            dir.path(),
            "sg.json",
            r#"[{"id":"a","conversations":[{"from":"system","value":"s"},{"from":"human","value":"What is 2+2?"},{"from":"gpt","value":"4"}]},{"conversations":[{"from":"gpt","value":"no human"}]}]"#,
        );
        let (name, entries) = load_set(&dir.path().join("sg.json")).unwrap();
        assert_eq!((name.as_str(), entries.len()), ("sg", 1));
        assert_eq!(entries[0].prompt, Prompt::Text("What is 2+2?".into()));
    }

    #[test]
    fn resolve_mixes_inline_entries_and_weighted_includes() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a.yaml", "- one\n- two\n");
        let prompts = Prompts::List(vec![
            PromptItem::Entry(PromptEntry::Text("inline one".into())),
            PromptItem::Include(Include {
                include: "a.yaml".into(),
                weight: Some(3.0),
            }),
            PromptItem::Include(Include {
                include: "missing.yaml".into(),
                weight: None,
            }),
        ]);
        let problems = resolve(
            &prompts,
            dir.path(),
            crate::scenario::BackendKind::Ollama,
            1,
        )
        .unwrap_err();
        assert_eq!(problems[0].0, "/prompts/2/include");
        assert!(problems[0].1.contains("cannot read prompt set"));
        let Prompts::List(mut list) = prompts else {
            unreachable!()
        };
        list.pop();
        let sets = resolve(
            &Prompts::List(list),
            dir.path(),
            crate::scenario::BackendKind::Ollama,
            1,
        )
        .unwrap();
        let summary: Vec<(String, f64, usize)> = sets
            .iter()
            .map(|s| (s.name.to_string(), s.weight, s.entries.len()))
            .collect();
        assert_eq!(
            summary,
            vec![("inline".into(), 1.0, 1), ("a".into(), 3.0, 2)]
        );
    }
}
