//! Prompt libraries, resolved: named sets of entries, and the pure choice of each request's
//! prompt from its index and the seed (same seed, same sequence), with `{{ var }}` placeholders
//! filled by plain substitution (no template language: dataset text is sent verbatim).

pub mod load;
pub mod synthetic;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

use crate::scenario::{
    ChatPrompt, FullEntry, Message, Prompt, PromptEntry, PromptOrder, PromptWithSystem,
};

pub use load::resolve;

/// One entry, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The prompt, possibly with `{{ var }}` placeholders.
    pub prompt: Prompt,
    /// Its name.
    pub name: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Options merged over the target's for this entry.
    pub options: Option<Map<String, Value>>,
    /// Values for placeholders.
    pub vars: BTreeMap<String, Vec<String>>,
}

impl Entry {
    /// Reads one written entry; a full entry needs `prompt` or `messages`, not both.
    pub fn from_written(e: &PromptEntry) -> Result<Entry, String> {
        let full = match e {
            PromptEntry::Text(text) => return Ok(Entry::plain(Prompt::Text(text.clone()))),
            PromptEntry::Full(full) => full,
        };
        let FullEntry {
            prompt,
            system,
            messages,
            name,
            tags,
            options,
            vars,
        } = full.clone();
        let prompt = match (prompt, messages) {
            (Some(prompt), None) => match system {
                Some(system) => Prompt::WithSystem(PromptWithSystem {
                    prompt,
                    system: Some(system),
                }),
                None => Prompt::Text(prompt),
            },
            (None, Some(messages)) if system.is_none() => {
                if messages.is_empty() {
                    return Err("at least one message is needed".into());
                }
                Prompt::Chat(ChatPrompt { messages })
            }
            (None, Some(_)) => {
                return Err("give the system message as a `system` message in `messages`".into())
            }
            (None, None) => return Err("give `prompt` or `messages`".into()),
            (Some(_), Some(_)) => return Err("give `prompt` or `messages`, not both".into()),
        };
        if let Some((name, _)) = vars.iter().find(|(_, values)| values.is_empty()) {
            return Err(format!("vars.{name} needs at least one value"));
        }
        let entry = Entry {
            prompt,
            name,
            tags,
            options,
            vars,
        };
        // Fill every placeholder once now, so a template mistake is a scenario error.
        entry.render(&mut SmallRng::seed_from_u64(0)).map(|_| entry)
    }

    /// A bare prompt.
    pub fn plain(prompt: Prompt) -> Entry {
        Entry {
            prompt,
            name: None,
            tags: Vec::new(),
            options: None,
            vars: BTreeMap::new(),
        }
    }

    /// The prompt with placeholders filled, each var's value drawn from `rng`. Only entries
    /// that declare `vars` are templates: any other text (every dataset line) is sent verbatim,
    /// `{{` and all.
    fn render(&self, rng: &mut SmallRng) -> Result<(Prompt, BTreeMap<String, String>), String> {
        if self.vars.is_empty() {
            return Ok((self.prompt.clone(), BTreeMap::new()));
        }
        let mut chosen = BTreeMap::new();
        for (name, values) in &self.vars {
            let value = values[rng.random_range(0..values.len())].clone();
            chosen.insert(name.clone(), value);
        }
        let fill = |text: &str| fill(text, &chosen);
        let prompt = match &self.prompt {
            Prompt::Text(text) => Prompt::Text(fill(text)?),
            Prompt::WithSystem(p) => Prompt::WithSystem(PromptWithSystem {
                prompt: fill(&p.prompt)?,
                system: p.system.as_deref().map(fill).transpose()?,
            }),
            Prompt::Chat(chat) => Prompt::Chat(ChatPrompt {
                messages: chat
                    .messages
                    .iter()
                    .map(|m| {
                        Ok(Message {
                            role: m.role,
                            content: fill(&m.content)?,
                        })
                    })
                    .collect::<Result<_, String>>()?,
            }),
        };
        Ok((prompt, chosen))
    }
}

/// `text` with every `{{ name }}` replaced by `values[name]`. Nothing else is evaluated (no
/// expressions, filters, loops), so a prompt is its text plus the values and rendering can
/// neither loop nor grow without bound.
fn fill(text: &str, values: &BTreeMap<String, String>) -> Result<String, String> {
    if text.contains("{%") {
        return Err(format!(
            "template {text:?}: only {{{{ name }}}} placeholders are filled; `{{%` statements are not supported"
        ));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| format!("template {text:?}: `{{{{` without `}}}}`"))?;
        let name = after[..close].trim();
        let value = values.get(name).ok_or_else(|| {
            let known: Vec<&str> = values.keys().map(String::as_str).collect();
            format!(
                "template {text:?}: no var named {name:?}; vars: {}",
                known.join(", ")
            )
        })?;
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A named set of entries.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptSet {
    /// Its name in metrics (`ttft{prompt_set:NAME}`).
    pub name: Arc<str>,
    /// Its weight with `order: weighted`.
    pub weight: f64,
    /// Its entries, never empty.
    pub entries: Vec<Entry>,
}

/// What one request sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Picked {
    /// The prompt, placeholders filled.
    pub prompt: Prompt,
    /// Entry options, merged over the target's by the backend.
    pub options: Option<Map<String, Value>>,
    /// The set it came from.
    pub set: Arc<str>,
    /// The request's number in the run, from 0.
    pub index: u64,
    /// The values drawn for the entry's placeholders.
    pub vars: BTreeMap<String, String>,
    /// The entry's tags.
    pub tags: Arc<[Arc<str>]>,
    /// The entry's name, when it has one.
    pub entry: Option<Arc<str>>,
}

/// Chooses each request's prompt.
#[derive(Debug)]
pub struct Picker {
    sets: Vec<PromptSet>,
    order: PromptOrder,
    seed: u64,
    next: AtomicU64,
}

impl Picker {
    /// A picker over `sets` (validation guarantees at least one entry).
    pub fn new(sets: Vec<PromptSet>, order: PromptOrder, seed: u64) -> Self {
        Self {
            sets,
            order,
            seed,
            next: AtomicU64::new(0),
        }
    }

    /// The prompt of the next request.
    pub fn next(&self) -> Picked {
        self.pick(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// The prompt of request `index`: a pure function of the index, the order and the seed.
    pub fn pick(&self, index: u64) -> Picked {
        let mut rng =
            SmallRng::seed_from_u64(self.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let total: usize = self.sets.iter().map(|s| s.entries.len()).sum();
        let (set, entry) = match self.order {
            PromptOrder::Sequential => self.nth((index % total as u64) as usize),
            PromptOrder::Random => self.nth(rng.random_range(0..total)),
            PromptOrder::Weighted => {
                let sum: f64 = self.sets.iter().map(|s| s.weight).sum();
                let mut x = rng.random::<f64>() * sum;
                let set = self.sets.iter().position(|s| {
                    x -= s.weight;
                    x < 0.0
                });
                let set = set.unwrap_or(self.sets.len() - 1);
                (set, rng.random_range(0..self.sets[set].entries.len()))
            }
        };
        let chosen = &self.sets[set].entries[entry];
        // Validated at load, so rendering cannot fail here; keep the raw prompt if it did.
        let (prompt, vars) = chosen
            .render(&mut rng)
            .unwrap_or_else(|_| (chosen.prompt.clone(), BTreeMap::new()));
        Picked {
            prompt,
            options: chosen.options.clone(),
            set: self.sets[set].name.clone(),
            index,
            vars,
            tags: chosen.tags.iter().map(|t| Arc::from(t.as_str())).collect(),
            entry: chosen.name.as_deref().map(Arc::from),
        }
    }

    fn nth(&self, mut n: usize) -> (usize, usize) {
        for (i, set) in self.sets.iter().enumerate() {
            if n < set.entries.len() {
                return (i, n);
            }
            n -= set.entries.len();
        }
        (0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(name: &str, weight: f64, texts: &[&str]) -> PromptSet {
        PromptSet {
            name: name.into(),
            weight,
            entries: texts
                .iter()
                .map(|t| Entry::plain(Prompt::Text(t.to_string())))
                .collect(),
        }
    }

    fn text(p: &Picked) -> String {
        match &p.prompt {
            Prompt::Text(t) => t.clone(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn sequential_walks_every_entry_across_sets() {
        let picker = Picker::new(
            vec![set("a", 1.0, &["a1", "a2"]), set("b", 1.0, &["b1"])],
            PromptOrder::Sequential,
            1,
        );
        let seq: Vec<String> = (0..5).map(|i| text(&picker.pick(i))).collect();
        assert_eq!(seq, ["a1", "a2", "b1", "a1", "a2"]);
        assert_eq!(&*picker.pick(2).set, "b");
    }

    #[test]
    fn same_seed_same_sequence_other_seed_other_sequence() {
        let sets = || vec![set("a", 1.0, &["1", "2", "3", "4", "5", "6", "7", "8"])];
        let run = |seed| {
            (0..50)
                .map(|i| text(&Picker::new(sets(), PromptOrder::Random, seed).pick(i)))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn weighted_order_follows_the_weights() {
        let picker = Picker::new(
            vec![set("a", 3.0, &["a"]), set("b", 1.0, &["b1", "b2"])],
            PromptOrder::Weighted,
            9,
        );
        let a = (0..20_000).filter(|&i| &*picker.pick(i).set == "a").count() as f64;
        assert!((a / 20_000.0 - 0.75).abs() < 0.015, "{a}");
    }

    #[test]
    fn vars_fill_placeholders_with_seeded_choices() {
        let entry = Entry::from_written(&PromptEntry::Full(FullEntry {
            prompt: Some("Write about {{ topic }} in {{ words }} words.".into()),
            vars: BTreeMap::from([
                ("topic".into(), vec!["tea".into(), "rust".into()]),
                ("words".into(), vec!["50".into()]),
            ]),
            options: Some(Map::from_iter([(
                "num_predict".to_string(),
                Value::from(64),
            )])),
            ..FullEntry::default()
        }))
        .unwrap();
        let picker = Picker::new(
            vec![PromptSet {
                name: "s".into(),
                weight: 1.0,
                entries: vec![entry],
            }],
            PromptOrder::Sequential,
            5,
        );
        let texts: Vec<String> = (0..40).map(|i| text(&picker.pick(i))).collect();
        assert!(
            texts.iter().all(
                |t| t == "Write about tea in 50 words." || t == "Write about rust in 50 words."
            ),
            "{texts:?}"
        );
        assert!(
            texts.iter().any(|t| t.contains("tea")) && texts.iter().any(|t| t.contains("rust"))
        );
        assert_eq!(picker.pick(0).options.unwrap()["num_predict"], 64);
    }

    #[test]
    fn text_without_vars_is_sent_verbatim() {
        for text in [
            "Compute {{ 7*7 }}",
            "{{ message }}",
            "{% for i in range(end=3) %}",
        ] {
            let entry = Entry::from_written(&PromptEntry::Text(text.into())).unwrap();
            let (prompt, _) = entry.render(&mut SmallRng::seed_from_u64(1)).unwrap();
            assert_eq!(prompt, Prompt::Text(text.into()));
        }
    }

    #[test]
    fn written_mistakes_are_errors() {
        let full = |f: FullEntry| Entry::from_written(&PromptEntry::Full(f)).unwrap_err();
        assert!(full(FullEntry::default()).contains("give `prompt` or `messages`"));
        assert!(full(FullEntry {
            prompt: Some("x".into()),
            messages: Some(vec![]),
            ..FullEntry::default()
        })
        .contains("not both"));
        assert!(full(FullEntry {
            prompt: Some("{{ nope }}".into()),
            vars: BTreeMap::from([("t".into(), vec!["x".into()])]),
            ..FullEntry::default()
        })
        .contains("no var named \"nope\"; vars: t"));
        assert!(full(FullEntry {
            prompt: Some("{% for i in range(end=30000000) %}x{% endfor %}{{ t }}".into()),
            vars: BTreeMap::from([("t".into(), vec!["x".into()])]),
            ..FullEntry::default()
        })
        .contains("statements are not supported"));
        assert!(full(FullEntry {
            prompt: Some("{{ t }}".into()),
            vars: BTreeMap::from([("t".into(), vec![])]),
            ..FullEntry::default()
        })
        .contains("at least one value"));
    }
}
