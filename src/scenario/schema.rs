//! The scenario JSON Schema: generated from the Rust types, and the checker that turns schema
//! failures into messages a user can act on.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::ValidationError;
use serde_json::Value;

use super::Scenario;

/// The scenario schema as pretty JSON, exactly as committed in `schemas/scenario.schema.json`.
pub fn scenario_schema_json() -> serde_json::Result<String> {
    pretty(&generate::<Scenario>())
}

/// The prompt-set file schema, as committed in `schemas/prompt-set.schema.json`.
pub fn prompt_set_schema_json() -> serde_json::Result<String> {
    pretty(&generate::<super::PromptSetFile>())
}

/// Pretty JSON with a trailing newline, the form every committed schema file has.
pub fn pretty(schema: &schemars::Schema) -> serde_json::Result<String> {
    Ok(serde_json::to_string_pretty(schema)? + "\n")
}

/// The JSON Schema of `T` as every common validator reads it: schemars' integer and float
/// `format`s (`uint32`, `double`, ...) are not in the JSON Schema vocabulary and make strict
/// validators (ajv) refuse the schema, so they become the bounds they stand for; and each
/// property gets an example for the editor's hover, from [`example`].
pub fn generate<T: schemars::JsonSchema>() -> schemars::Schema {
    let mut schema = schemars::schema_for!(T);
    let root = T::schema_name().to_string();
    if let Some(map) = schema.as_object_mut() {
        let mut value = Value::Object(std::mem::take(map));
        portable(&mut value, &root);
        requirements_wait_for_extends(&mut value);
        if let Value::Object(done) = value {
            *map = done;
        }
    }
    schema
}

/// A file that `extends` another holds only what it changes, so in the editor it must not be
/// told that `name` or `target` is missing: the top-level requirements apply only to a file
/// without `extends`. (`validate` checks the merged scenario, where they are all met.)
fn requirements_wait_for_extends(schema: &mut Value) {
    if schema.pointer("/properties/extends").is_none() {
        return;
    }
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(required)) = map.remove("required") {
        // Each `required` names its properties beside it, as strict validators (ajv) ask.
        let named = |names: &[Value]| -> Value {
            names
                .iter()
                .filter_map(|n| Some((n.as_str()?.to_string(), Value::Bool(true))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let extends = [Value::from("extends")];
        map.insert(
            "if".into(),
            serde_json::json!({"properties": named(&extends), "required": extends}),
        );
        map.insert("then".into(), serde_json::json!({}));
        map.insert(
            "else".into(),
            serde_json::json!({"properties": named(&required), "required": required}),
        );
    }
}

fn portable(node: &mut Value, owner: &str) {
    match node {
        Value::Object(map) => {
            if let Some(Value::String(format)) = map.get("format") {
                let bounds: Option<(i64, i64)> = match format.as_str() {
                    "uint8" => Some((0, u8::MAX.into())),
                    "uint16" => Some((0, u16::MAX.into())),
                    "uint32" => Some((0, u32::MAX.into())),
                    "int32" => Some((i32::MIN.into(), i32::MAX.into())),
                    _ => None,
                };
                if !STANDARD_FORMATS.contains(&format.as_str()) {
                    map.remove("format");
                    if let Some((min, max)) = bounds {
                        map.entry("minimum").or_insert(min.into());
                        map.entry("maximum").or_insert(max.into());
                    }
                }
            }
            if let Some(Value::Object(properties)) = map.get_mut("properties") {
                for (name, property) in properties.iter_mut() {
                    describe(property, owner, name);
                }
            }
            for (key, child) in map.iter_mut() {
                match (key.as_str(), child) {
                    ("$defs", Value::Object(defs)) => {
                        for (name, def) in defs.iter_mut() {
                            portable(def, name);
                        }
                    }
                    (_, child) => portable(child, owner),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| portable(item, owner)),
        _ => {}
    }
}

/// The `format` values of JSON Schema 2020-12 (validation vocabulary, section 7.3).
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// Adds what the editor shows on hover when the type does not say it: the description of a
/// tag field (`executor`), and an example.
fn describe(property: &mut Value, owner: &str, name: &str) {
    let Value::Object(map) = property else { return };
    let constant = map.get("const").cloned();
    if let (Some(value), "executor", false) = (&constant, name, map.contains_key("description")) {
        map.insert(
            "description".into(),
            format!(
                "The kind of load phase. This one is `{}`; the others: concurrency-levels, \
                 constant-vus, ramping-vus, constant-arrival-rate, ramping-arrival-rate, \
                 rate-levels, capacity-search.",
                value.as_str().unwrap_or_default()
            )
            .into(),
        );
    }
    if !map.contains_key("examples") {
        if let Some(example) = constant.or_else(|| example(owner, name)) {
            map.insert("examples".into(), Value::Array(vec![example]));
        }
    }
}

/// An example value of each scenario and prompt-set field, by owning type and field name.
/// A test checks that every field has one and that each is valid where it stands.
fn example(owner: &str, field: &str) -> Option<Value> {
    use serde_json::json;
    Some(match (owner, field) {
        ("Scenario", "name") => json!("llama3.2-1b-sweep"),
        ("Scenario" | "PromptSetFile", "description") => {
            json!("Chat prompts of medium length, for the nightly sweep")
        }
        ("Scenario", "target") => json!({"backend": "ollama", "model": "llama3.2:1b"}),
        ("Scenario", "prompts") => {
            json!(["Explain what a KV cache is.", {"include": "prompts/chat.yaml", "weight": 2}])
        }
        ("Scenario", "order") => json!("random"),
        ("Scenario" | "Phase", "seed") => json!(42),
        ("Scenario", "warmup") => json!({"requests": 3}),
        ("Scenario", "scenarios") => json!({"sweep": {
            "executor": "concurrency-levels", "levels": [1, 2, 4, 8], "requests_per_level": 20}}),
        ("Scenario", "thresholds") => {
            json!({"ttft": ["p(95)<500ms"], "errors": ["rate<0.01"]})
        }
        ("Scenario", "slo") => json!({"p95_latency_ms": 5000, "min_throughput_tps": 20}),
        ("Scenario", "conversation") => json!({"turns": 3}),
        ("Scenario", "hooks") => json!({"script": "scripts/hooks.rhai"}),
        ("Scenario", "outputs") => json!({"prometheus": {"listen": "127.0.0.1:9464"}}),
        ("Scenario", "simulator") => json!({"parallel": 2, "decode_per_token": "20ms"}),
        ("Conversation", "follow_ups") => json!(["Tell me more.", "Give an example."]),
        ("Conversation", "turns") => json!(3),
        ("DetailedThreshold", "threshold") => json!("p(99)<2s"),
        ("DetailedThreshold", "abort_on_fail") => json!(true),
        ("DetailedThreshold", "delay_abort_eval") => json!("30s"),
        ("Faults", "stall_duration") => json!("30s"),
        ("Faults", _) => json!(0.05),
        ("FullEntry", "messages") => json!([{"role": "user", "content": "What is a KV cache?"}]),
        ("FullEntry" | "PromptSetFile", "name") => json!("kv-cache"),
        ("FullEntry", "options") => json!({"num_predict": 128}),
        ("FullEntry", "prompt") => json!("Explain {{ topic }} to a new engineer."),
        ("FullEntry", "system") => json!("You are a concise performance engineer."),
        ("FullEntry", "tags") => json!(["short", "chat"]),
        ("FullEntry", "vars") => json!({"topic": ["caching", "queueing"]}),
        ("HooksConfig", "script") => json!("scripts/hooks.rhai"),
        ("HooksConfig", "timeout") => json!("100ms"),
        ("Include", "include") => json!("prompts/code-review.yaml"),
        ("Include" | "SyntheticItem", "weight") => json!(2),
        ("Message", "content") => json!("What is a KV cache?"),
        ("Message", "role") => json!("user"),
        ("OutputTokens", "min") => json!(16),
        ("OutputTokens", "max") => json!(64),
        ("Outputs", "prometheus") => json!({"listen": "127.0.0.1:9464"}),
        ("Phase", "levels") => json!([1, 2, 4, 8]),
        ("Phase", "rates") => json!([1, 2, 4, 8]),
        ("Phase", "requests_per_level") => json!(20),
        ("Phase", "start_time") => json!("30s"),
        ("Phase", "duration") => json!("5m"),
        ("Phase", "graceful_stop" | "graceful_ramp_down") => json!("30s"),
        ("Phase", "iterations") => json!(100),
        ("Phase", "vus") => json!(8),
        ("Phase", "stages") => {
            json!([{"target": 8, "duration": "1m"}, {"target": 0, "duration": "30s"}])
        }
        ("Phase", "start_vus") => json!(1),
        ("Phase", "arrivals") => json!("poisson"),
        ("Phase", "burstiness") => json!(0.5),
        ("Phase", "max_vus") => json!(64),
        ("Phase", "pre_allocated_vus") => json!(8),
        ("Phase", "rate") => json!(4),
        ("Phase", "time_unit") => json!("1s"),
        ("Phase", "when_busy") => json!("wait"),
        ("Phase", "start_rate") => json!(1),
        ("Phase", "discard") => json!("10s"),
        ("Phase", "growth") => json!(2),
        ("Phase", "max") => json!(64),
        ("Phase", "mode") => json!("rate"),
        ("Phase", "precision") => json!(0.5),
        ("Phase", "start") => json!(1),
        ("Phase", "step_duration") => json!("30s"),
        ("PrometheusOutput", "linger") => json!("15s"),
        ("PrometheusOutput", "listen") => json!("127.0.0.1:9464"),
        ("RateStage" | "Stage", "duration") => json!("1m"),
        ("RateStage" | "Stage", "target") => json!(8),
        ("SimConfig", "api_key") => json!("sk-test"),
        ("SimConfig", "guard_ollama") => json!(true),
        ("SimConfig", "decode_per_token") => json!("20ms"),
        ("SimConfig", "faults") => json!({"http_503": 0.05}),
        ("SimConfig", "first_token_delay") => json!("50ms"),
        ("SimConfig", "load_time") => json!("2s"),
        ("SimConfig", "max_decode_tokens_per_second") => json!(400),
        ("SimConfig", "models") => json!(["llama3.2:1b"]),
        ("SimConfig", "output_tokens") => json!({"min": 16, "max": 64}),
        ("SimConfig", "parallel") => json!(4),
        ("SimConfig", "prefill_per_token") => json!("500us"),
        ("SimConfig", "seed") => json!(7),
        ("Slo", "min_throughput_tps") => json!(20),
        ("Slo", "p95_latency_ms") => json!(5000),
        ("Slo", "p99_latency_ms") => json!(8000),
        ("Synthetic", "count") => json!(100),
        ("Synthetic", "input_tokens") => json!({"mean": 512, "stddev": 64}),
        ("Synthetic", "name") => json!("long-context"),
        ("Synthetic", "output_tokens") => json!(128),
        ("Synthetic", "shared_prefix") => json!({"tokens": 1024, "prefixes": 4}),
        ("SharedPrefix", "tokens") => json!(1024),
        ("SharedPrefix", "prefixes") => json!(4),
        ("SyntheticItem", "synthetic") => {
            json!({"input_tokens": {"mean": 512}, "output_tokens": 128})
        }
        ("Target", "api") => json!("chat"),
        ("Target", "api_key_env") => json!("OPENAI_API_KEY"),
        ("Target", "backend") => json!("openai"),
        ("Target", "first_token_timeout") => json!("10s"),
        ("Target", "idle_timeout") => json!("30s"),
        ("Target", "keep_alive") => json!("10m"),
        ("Target", "max_line_bytes") => json!(4194304),
        ("Target", "model") => json!("llama3.2:1b"),
        ("Target", "options") => json!({"temperature": 0, "num_predict": 256}),
        ("Target", "think_tags") => json!(["<think>", "</think>"]),
        ("Target", "tokenizer") => json!("server"),
        ("TokenizerFile", "file") => json!("tokenizers/llama-3.2.json"),
        ("Target", "timeout") => json!("120s"),
        ("Target", "url") => json!("http://localhost:11434"),
        ("TokenDistribution", "mean") => json!(512),
        ("TokenDistribution", "stddev") => json!(64),
        ("Warmup", "requests") => json!(3),
        ("PromptSetFile", "prompts") => json!([
            "Explain what a KV cache is.",
            {"prompt": "Review this diff for bugs.", "system": "You are a careful reviewer."}
        ]),
        _ => return None,
    })
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        jsonschema::validator_for(generate::<Scenario>().as_value())
            .expect("the generated schema compiles")
    })
}

/// The top-level fields of the scenario format.
pub fn top_level_fields() -> &'static [String] {
    static FIELDS: OnceLock<Vec<String>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        generate::<Scenario>()
            .as_value()
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default()
    })
}

/// Every schema problem in `value`, as (JSON pointer, message).
pub fn check(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for error in validator().iter_errors(value) {
        explain(&error, &mut out);
    }
    out
}

/// Turns one validation error into messages. For `oneOf`/`anyOf` it reports the branch the user
/// evidently meant (the one whose type and discriminator match) instead of "not valid under any
/// of the given schemas", which names neither the field nor the fix.
fn explain(error: &ValidationError<'_>, out: &mut Vec<(String, String)>) {
    let pointer = error.instance_path().as_str().to_string();
    match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            let relevant: Vec<_> = context
                .iter()
                .filter(|branch| !branch.iter().any(|e| is_mismatch(e, &pointer)))
                .collect();
            match relevant.iter().min_by_key(|branch| branch.len()) {
                Some(branch) => branch.iter().for_each(|e| explain(e, out)),
                None => {
                    // Point at the discriminator (`executor:`) when that is what matched nothing.
                    let at = context
                        .iter()
                        .flatten()
                        .find(|e| matches!(e.kind(), ValidationErrorKind::Constant { .. }))
                        .map_or(pointer.clone(), |e| e.instance_path().as_str().to_string());
                    out.push((at, no_branch_message(error, context)));
                }
            }
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for key in unexpected {
                out.push((format!("{pointer}/{key}"), format!("unknown field `{key}`")));
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push((pointer, format!("missing required field `{name}`")));
        }
        ValidationErrorKind::Pattern { pattern } if pattern == crate::duration::PATTERN => {
            let text = error.instance().as_str().unwrap_or_default();
            let message = crate::duration::parse(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| error.to_string());
            out.push((pointer, message));
        }
        _ => out.push((pointer, error.to_string())),
    }
}

/// A branch error that shows the branch is not the one meant: the wrong JSON type for the value
/// itself, or a wrong discriminator (`executor: ...`) right below it.
fn is_mismatch(error: &ValidationError<'_>, branch_pointer: &str) -> bool {
    let at = error.instance_path().as_str();
    let is_self = at == branch_pointer;
    let is_child = at
        .strip_prefix(branch_pointer)
        .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'));
    match error.kind() {
        ValidationErrorKind::Type { .. } => is_self,
        ValidationErrorKind::Constant { .. } | ValidationErrorKind::Enum { .. } => {
            is_self || is_child
        }
        _ => false,
    }
}

fn no_branch_message(error: &ValidationError<'_>, context: &[Vec<ValidationError<'_>>]) -> String {
    let expected: Vec<String> = context
        .iter()
        .flatten()
        .filter_map(|e| match e.kind() {
            ValidationErrorKind::Constant { expected_value } => {
                expected_value.as_str().map(str::to_string)
            }
            _ => None,
        })
        .collect();
    if expected.is_empty() {
        return format!("{} does not match any allowed form", error.instance());
    }
    let given = context
        .iter()
        .flatten()
        .find(|e| matches!(e.kind(), ValidationErrorKind::Constant { .. }))
        .map(|e| e.instance().to_string())
        .unwrap_or_default();
    format!(
        "unknown value {given}; expected one of: {}",
        expected.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "name": "t",
            "target": {"model": "m"},
            "prompts": ["hi"],
            "scenarios": {"sweep": {"executor": "concurrency-levels", "levels": [1], "requests_per_level": 2}}
        })
    }

    #[test]
    fn valid_scenario_has_no_problems() {
        assert_eq!(check(&base()), Vec::<(String, String)>::new());
    }

    #[test]
    fn typo_inside_an_executor_names_the_key() {
        let mut v = base();
        v["scenarios"]["sweep"] =
            json!({"executor": "concurrency-levels", "levls": [1], "requests_per_level": 2});
        let problems = check(&v);
        assert!(problems.contains(&(
            "/scenarios/sweep/levls".into(),
            "unknown field `levls`".into()
        )));
        assert!(problems.contains(&(
            "/scenarios/sweep".into(),
            "missing required field `levels`".into()
        )));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn unknown_executor_lists_the_executors() {
        let mut v = base();
        v["scenarios"]["sweep"]["executor"] = json!("constant-rate");
        let problems = check(&v);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "/scenarios/sweep/executor");
        assert!(problems[0].1.contains("concurrency-levels"), "{problems:?}");
        assert!(problems[0].1.contains("ramping-vus"), "{problems:?}");
    }

    #[test]
    fn prompt_forms_report_the_meant_form() {
        let mut v = base();
        v["prompts"] = json!([{"prompt": "x", "sytem": "y"}]);
        assert_eq!(
            check(&v),
            vec![("/prompts/0/sytem".into(), "unknown field `sytem`".into())]
        );
    }

    #[test]
    fn bad_duration_uses_the_duration_message() {
        let mut v = base();
        v["target"]["timeout"] = json!("10 sec");
        let problems = check(&v);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].1.starts_with("invalid duration \"10 sec\""),
            "{problems:?}"
        );
    }
}
