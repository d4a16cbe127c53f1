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
    /// The flags it was lowered from, when it was not written as `--set`.
    flags: Option<String>,
    /// Set `path` inside every scenario run by this executor instead of at the top
    /// (`--concurrency` sets `levels` of every `concurrency-levels` scenario).
    each_phase: Option<&'static str>,
}

/// The flags that replace a field of the scenario (`--model`), or of every scenario of one
/// executor (`--concurrency`, `--requests-per-level`), lowered to [`Set`]s so the schema checks
/// their values as it checks the file's: one path for every override.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Flags {
    /// `--concurrency`, repeated.
    pub concurrency: Vec<u32>,
    /// `--requests-per-level`.
    pub requests_per_level: Option<u32>,
    /// `--model`.
    pub model: Option<String>,
}

impl Flags {
    /// The sets, in the order results list them.
    pub fn lowered(&self) -> Vec<Set> {
        let mut out = Vec::new();
        if !self.concurrency.is_empty() {
            let levels: Vec<String> = self.concurrency.iter().map(u32::to_string).collect();
            out.push(Set::in_each_phase(
                "concurrency-levels",
                "levels",
                serde_json::json!(self.concurrency),
                format!("--concurrency {}", levels.join(",")),
            ));
        }
        if let Some(n) = self.requests_per_level {
            out.push(Set::in_each_phase(
                "concurrency-levels",
                "requests_per_level",
                serde_json::json!(n),
                format!("--requests-per-level {n}"),
            ));
        }
        if let Some(model) = &self.model {
            out.push(Set {
                path: "target.model".into(),
                text: model.clone(),
                value: serde_json::json!(model),
                flags: Some(format!("--model {model}")),
                each_phase: None,
            });
        }
        out
    }
}

/// vLLM's benchmark flags (`--num-prompts`, `--request-rate`, `--max-concurrency`,
/// `--burstiness`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OneLine {
    /// Requests in all (vLLM's default 1000).
    pub num_prompts: Option<u64>,
    /// Arrivals per second; infinite or unset: all at once.
    pub request_rate: Option<f64>,
    /// Most in flight.
    pub max_concurrency: Option<u32>,
    /// Gamma shape of the arrivals.
    pub burstiness: Option<f64>,
}

/// vLLM's default `--num-prompts`.
const VLLM_NUM_PROMPTS: u64 = 1000;

impl OneLine {
    /// The `scenarios` these flags stand for, as a `--set` that replaces the file's: `None`
    /// when none was given. With a finite rate, a constant-arrival-rate phase that stops after
    /// exactly N arrivals (Poisson, or gamma with the burstiness) and waits for a slot when
    /// `max_concurrency` are in flight, as vLLM does: every prompt is sent however slow the
    /// server, so `duration` is only a backstop (a day). Without a rate, N requests on
    /// `max_concurrency` VUs (all N at once when unset).
    pub fn lowered(&self) -> Option<Set> {
        if *self == OneLine::default() {
            return None;
        }
        let n = self.num_prompts.unwrap_or(VLLM_NUM_PROMPTS);
        let most = u64::from(crate::scenario::MAX_VUS);
        let slots = self.max_concurrency.map_or(n.min(most), u64::from);
        let phase = match self.request_rate.filter(|r| r.is_finite()) {
            Some(rate) => {
                let mut phase = serde_json::json!({
                    "executor": "constant-arrival-rate",
                    "rate": rate,
                    "duration": "24h",
                    "iterations": n,
                    "arrivals": "poisson",
                    "pre_allocated_vus": slots,
                    "max_vus": slots,
                    "when_busy": "wait",
                });
                if let Some(b) = self.burstiness {
                    phase["arrivals"] = "gamma".into();
                    phase["burstiness"] = b.into();
                }
                phase
            }
            None => serde_json::json!({"executor": "constant-vus", "vus": slots, "iterations": n}),
        };
        let mut flags = vec![format!("--num-prompts {n}")];
        if let Some(r) = self.request_rate {
            flags.push(format!("--request-rate {r}"));
        }
        if let Some(c) = self.max_concurrency {
            flags.push(format!("--max-concurrency {c}"));
        }
        if let Some(b) = self.burstiness {
            flags.push(format!("--burstiness {b}"));
        }
        let value = serde_json::json!({ "serve": phase });
        Some(Set {
            path: "scenarios".into(),
            text: value.to_string(),
            value,
            flags: Some(flags.join(" ")),
            each_phase: None,
        })
    }
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
            flags: None,
            each_phase: None,
        })
    }

    /// The JSON pointer of the path: `scenarios.sweep.levels` -> `/scenarios/sweep/levels`.
    pub fn pointer(&self) -> String {
        self.path
            .split('.')
            .map(|name| format!("/{}", name.replace('~', "~0").replace('/', "~1")))
            .collect()
    }

    /// `field` = `value` in every scenario whose executor is `executor`, recorded as `flags`.
    fn in_each_phase(executor: &'static str, field: &str, value: Value, flags: String) -> Set {
        Set {
            path: field.to_string(),
            text: value.to_string(),
            value,
            flags: Some(flags),
            each_phase: Some(executor),
        }
    }

    /// True for the `scenarios` that one-line flags (`--num-prompts`) stand for.
    pub fn replaces_scenarios(&self) -> bool {
        self.flags.is_some() && self.path == "scenarios"
    }

    /// How it is recorded in results: `--set path=value`.
    pub fn label(&self) -> String {
        match &self.flags {
            Some(flags) => flags.clone(),
            None => format!("--set {}={}", self.path, self.text),
        }
    }

    /// Puts the value at the path in `doc`, creating maps on the way, and returns the JSON
    /// pointers it wrote; a path through a value that is neither a map nor a list is an error,
    /// as is a flag for an executor no scenario runs.
    pub fn apply(&self, doc: &mut Value) -> Result<Vec<String>, String> {
        let Some(executor) = self.each_phase else {
            self.apply_at(doc)?;
            return Ok(vec![self.pointer()]);
        };
        let mut written = Vec::new();
        if let Some(Value::Object(phases)) = doc.get_mut("scenarios") {
            for (name, phase) in phases {
                if phase["executor"] == executor {
                    self.apply_at(phase)?;
                    let name = name.replace('~', "~0").replace('/', "~1");
                    written.push(format!("/scenarios/{name}{}", self.pointer()));
                }
            }
        }
        if written.is_empty() {
            return Err(format!(
                "{} applies to {executor} scenarios, and this file has none",
                self.label()
            ));
        }
        Ok(written)
    }

    fn apply_at(&self, doc: &mut Value) -> Result<(), String> {
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
    fn level_flags_set_every_level_sweep_and_only_those() {
        let flags = Flags {
            concurrency: vec![2, 8],
            requests_per_level: Some(9),
            model: Some("big:70b".into()),
        };
        let mut doc = json!({"target": {"model": "m"}, "scenarios": {
            "a": {"executor": "concurrency-levels", "levels": [1], "requests_per_level": 2},
            "b/c": {"executor": "concurrency-levels", "levels": [4], "requests_per_level": 2},
            "ramp": {"executor": "ramping-vus", "stages": []}}});
        let sets = flags.lowered();
        let labels: Vec<String> = sets.iter().map(Set::label).collect();
        assert_eq!(
            labels,
            [
                "--concurrency 2,8",
                "--requests-per-level 9",
                "--model big:70b"
            ]
        );
        let written: Vec<Vec<String>> = sets.iter().map(|s| s.apply(&mut doc).unwrap()).collect();
        assert_eq!(
            written[0],
            ["/scenarios/a/levels", "/scenarios/b~1c/levels"]
        );
        assert_eq!(written[2], ["/target/model"]);
        assert_eq!(doc["scenarios"]["a"]["levels"], json!([2, 8]));
        assert_eq!(doc["scenarios"]["b/c"]["requests_per_level"], 9);
        assert_eq!(
            doc["scenarios"]["ramp"],
            json!({"executor": "ramping-vus", "stages": []})
        );
        assert_eq!(doc["target"]["model"], "big:70b");
        let mut none = json!({"scenarios": {"ramp": {"executor": "ramping-vus"}}});
        assert_eq!(
            sets[1].apply(&mut none).unwrap_err(),
            "--requests-per-level 9 applies to concurrency-levels scenarios, and this file has none"
        );
    }

    #[test]
    fn vllm_flags_lower_to_one_phase_with_vllms_defaults() {
        assert_eq!(OneLine::default().lowered(), None);
        let rated = OneLine {
            num_prompts: Some(100),
            request_rate: Some(4.0),
            max_concurrency: Some(8),
            burstiness: None,
        }
        .lowered()
        .unwrap();
        let phase = &rated.value["serve"];
        assert_eq!(phase["executor"], "constant-arrival-rate");
        assert_eq!(
            (phase["iterations"].as_u64(), phase["max_vus"].as_u64()),
            (Some(100), Some(8))
        );
        assert_eq!(
            (phase["arrivals"].as_str(), phase["when_busy"].as_str()),
            (Some("poisson"), Some("wait"))
        );
        assert_eq!(
            phase["duration"], "24h",
            "a backstop: N arrivals end the phase"
        );
        assert_eq!(
            rated.label(),
            "--num-prompts 100 --request-rate 4 --max-concurrency 8"
        );
        assert_eq!(rated.pointer(), "/scenarios");

        let at_once = OneLine {
            request_rate: Some(f64::INFINITY),
            ..OneLine::default()
        }
        .lowered()
        .unwrap();
        assert_eq!(
            at_once.value,
            json!({"serve": {"executor": "constant-vus", "vus": 1000, "iterations": 1000}})
        );
        let bursty = OneLine {
            num_prompts: Some(10),
            request_rate: Some(2.0),
            burstiness: Some(0.5),
            ..OneLine::default()
        }
        .lowered()
        .unwrap();
        assert_eq!(bursty.value["serve"]["arrivals"], "gamma");
        assert_eq!(bursty.value["serve"]["burstiness"], 0.5);
        assert_eq!(bursty.value["serve"]["max_vus"], 10);
    }

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
