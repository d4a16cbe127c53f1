//! The original Python toolkit's `benchmark_config.yaml` (`ollama:`, `benchmark:`, `slo:`),
//! recognised by its keys and turned into the equivalent scenario text, so a config written
//! for the original runs as is and `llm-bench init --from-config` can write the scenario.
//! Pure: text in, text or located problems out.

use serde::Deserialize;
use serde_json::Value;

use super::starter::quoted;
use super::validate::Problem;
use super::{Slo, MAX_VUS};
use crate::yaml::Document;

/// The original layout. Unknown keys are problems: a setting silently dropped would make the
/// converted run measure something else than the user asked for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LegacyConfig {
    ollama: Ollama,
    #[serde(default)]
    benchmark: Benchmark,
    #[serde(default)]
    slo: Option<Slo>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Ollama {
    model: String,
    #[serde(default)]
    timeout_seconds: Option<f64>,
    /// Where Ollama listens; `host` is accepted too. Default: OLLAMA_HOST, else localhost.
    #[serde(default, alias = "host")]
    base_url: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Benchmark {
    #[serde(default = "default_levels")]
    concurrency_levels: Vec<u64>,
    #[serde(default = "default_requests")]
    requests_per_level: u64,
    #[serde(default = "default_warmup")]
    warmup_requests: u64,
    /// The prompts to send; default: three short chat prompts.
    #[serde(default)]
    prompts: Option<Vec<String>>,
}

impl Default for Benchmark {
    fn default() -> Self {
        Benchmark {
            concurrency_levels: default_levels(),
            requests_per_level: default_requests(),
            warmup_requests: default_warmup(),
            prompts: None,
        }
    }
}

fn default_levels() -> Vec<u64> {
    vec![1, 2, 4, 8]
}

fn default_requests() -> u64 {
    20
}

fn default_warmup() -> u64 {
    2
}

const DEFAULT_PROMPTS: [&str; 3] = [
    "Explain what a KV cache is, in three sentences.",
    "Write a haiku about latency.",
    "List three ways to reduce time to first token.",
];

/// True when a document has the original config's shape: `ollama:` or `benchmark:` at the top,
/// and none of the fields only a scenario has.
pub fn is_legacy(value: &Value) -> bool {
    let Value::Object(map) = value else {
        return false;
    };
    (map.contains_key("ollama") || map.contains_key("benchmark"))
        && !["target", "scenarios", "extends", "prompts"]
            .iter()
            .any(|k| map.contains_key(*k))
}

/// The scenario equivalent to an original config (`file` names it in the text and in
/// problems), or every problem, located in the config.
pub fn convert(doc: &Document, file: &str) -> Result<String, Vec<Problem>> {
    let config: LegacyConfig = serde_path_to_error::deserialize(&doc.value).map_err(|e| {
        let pointer: String = e
            .path()
            .iter()
            .map(|s| format!("/{s}"))
            .collect::<String>()
            .replace("/?", "");
        vec![doc.problem(file, &pointer, e.inner().to_string())]
    })?;
    let mut problems = Vec::new();
    let mut problem = |pointer: &str, message: &str| {
        problems.push(doc.problem(file, pointer, message.to_string()));
    };
    let bench = &config.benchmark;
    if config.ollama.model.trim().is_empty() {
        problem("/ollama/model", "a model must be set");
    }
    if bench.concurrency_levels.is_empty() {
        problem("/benchmark/concurrency_levels", "give at least one level");
    }
    for (i, level) in bench.concurrency_levels.iter().enumerate() {
        if *level == 0 || *level > u64::from(MAX_VUS) {
            problem(
                &format!("/benchmark/concurrency_levels/{i}"),
                &format!("must be between 1 and {MAX_VUS}"),
            );
        }
    }
    if bench.requests_per_level == 0 || bench.requests_per_level > u64::from(u32::MAX) {
        problem("/benchmark/requests_per_level", "must be at least 1");
    }
    if bench.warmup_requests > u64::from(u32::MAX) {
        problem("/benchmark/warmup_requests", "too many warm-up requests");
    }
    if let Some(t) = config.ollama.timeout_seconds {
        if !(t > 0.0 && t <= crate::duration::MAX.as_secs_f64()) {
            problem("/ollama/timeout_seconds", "must be greater than 0");
        }
    }
    if bench.prompts.as_ref().is_some_and(Vec::is_empty) {
        problem("/benchmark/prompts", "give at least one prompt");
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(scenario_text(&config, file))
}

fn scenario_text(config: &LegacyConfig, file: &str) -> String {
    let bench = &config.benchmark;
    let model = &config.ollama.model;
    let mut out = format!(
        "# yaml-language-server: $schema=schemas/scenario.schema.json\n\
         #\n\
         # The scenario equivalent to the original toolkit's config {file}: the same model,\n\
         # concurrency levels, requests per level, warm-up and SLOs (`slo:` gates the run's\n\
         # exit code: 99 when one fails).\n\
         name: {}\n\
         description: {}\n\
         target:\n  backend: ollama\n  model: {}\n",
        quoted(&super::starter::slug(model)),
        quoted(&format!("Concurrency sweep converted from {file}")),
        quoted(model),
    );
    if let Some(url) = &config.ollama.base_url {
        out.push_str(&format!("  url: {}\n", quoted(url)));
    }
    if let Some(t) = config.ollama.timeout_seconds {
        out.push_str(&format!("  timeout: {}\n", seconds(t)));
    }
    out.push_str("prompts:\n");
    let prompts: Vec<&str> = match &bench.prompts {
        Some(list) => list.iter().map(String::as_str).collect(),
        None => DEFAULT_PROMPTS.to_vec(),
    };
    for prompt in prompts {
        out.push_str(&format!("  - {}\n", quoted(prompt)));
    }
    let levels: Vec<String> = bench
        .concurrency_levels
        .iter()
        .map(u64::to_string)
        .collect();
    out.push_str(&format!(
        "warmup:\n  requests: {}\n\
         scenarios:\n  sweep:\n    executor: concurrency-levels\n    levels: [{}]\n    requests_per_level: {}\n",
        bench.warmup_requests,
        levels.join(", "),
        bench.requests_per_level
    ));
    if let Some(slo) = &config.slo {
        let fields = [
            ("p95_latency_ms", slo.p95_latency_ms),
            ("p99_latency_ms", slo.p99_latency_ms),
            ("min_throughput_tps", slo.min_throughput_tps),
        ];
        let set: Vec<String> = fields
            .iter()
            .filter_map(|(name, v)| v.map(|v| format!("  {name}: {v}\n")))
            .collect();
        if !set.is_empty() {
            out.push_str("slo:\n");
            out.extend(set);
        }
    }
    out
}

/// Seconds as a duration the scenario format reads: `120s`, `1500ms`.
fn seconds(t: f64) -> String {
    if t.fract() == 0.0 {
        format!("{t}s")
    } else {
        format!("{}ms", (t * 1000.0).round())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml;

    const ORIGINAL: &str = "ollama:\n  model: llama3.2:1b\n  timeout_seconds: 90\n\
        benchmark:\n  concurrency_levels: [1, 4]\n  requests_per_level: 12\n  warmup_requests: 3\n\
        slo:\n  p95_latency_ms: 4000\n  min_throughput_tps: 25.5\n";

    #[test]
    fn the_original_layout_is_recognised_and_nothing_else_is() {
        assert!(is_legacy(&yaml::parse(ORIGINAL).unwrap().value));
        assert!(is_legacy(
            &yaml::parse("benchmark: {requests_per_level: 2}\n")
                .unwrap()
                .value
        ));
        let scenario = include_str!("../../scenarios/quickstart.yaml");
        assert!(!is_legacy(&yaml::parse(scenario).unwrap().value));
        assert!(!is_legacy(&yaml::parse("- a list\n").unwrap().value));
    }

    #[test]
    fn conversion_keeps_every_setting_and_types_as_a_scenario() {
        let doc = yaml::parse(ORIGINAL).unwrap();
        let text = convert(&doc, "old.yaml").unwrap();
        let scenario: super::super::Scenario =
            serde_json::from_value(yaml::parse(&text).unwrap().value).unwrap();
        assert_eq!(scenario.target.model, "llama3.2:1b");
        assert_eq!(scenario.target.timeout.unwrap().get().as_secs(), 90);
        assert_eq!(scenario.warmup.unwrap().requests, 3);
        let super::super::Phase::ConcurrencyLevels(sweep) = &scenario.scenarios["sweep"] else {
            panic!("{text}")
        };
        assert_eq!(
            (sweep.levels.clone(), sweep.requests_per_level),
            (vec![1, 4], 12)
        );
        let slo = scenario.slo.unwrap();
        assert_eq!(slo.p95_latency_ms, Some(4000.0));
        assert_eq!(slo.p99_latency_ms, None);
        assert_eq!(slo.min_throughput_tps, Some(25.5));
        assert!(super::super::validate::check(&scenario_from(&text)).is_empty());
    }

    fn scenario_from(text: &str) -> super::super::Scenario {
        serde_json::from_value(yaml::parse(text).unwrap().value).unwrap()
    }

    #[test]
    fn bad_values_are_problems_at_their_line_in_the_config() {
        let text = "ollama:\n  model: m\n  timeout: 3\nbenchmark:\n  concurrency_levels: [1, 0]\n";
        let problems = convert(&yaml::parse(text).unwrap(), "old.yaml").unwrap_err();
        assert_eq!(problems[0].field, "ollama.timeout", "{problems:?}");
        assert_eq!(problems[0].line, 3);
        assert!(
            problems[0].message.contains("unknown field"),
            "{problems:?}"
        );
        let text = "ollama:\n  model: m\nbenchmark:\n  concurrency_levels: [1, 0]\n";
        let problems = convert(&yaml::parse(text).unwrap(), "old.yaml").unwrap_err();
        assert_eq!(
            (problems[0].field.as_str(), problems[0].line),
            ("benchmark.concurrency_levels[1]", 4)
        );
    }

    #[test]
    fn fractional_seconds_stay_exact() {
        assert_eq!(seconds(120.0), "120s");
        assert_eq!(seconds(1.5), "1500ms");
    }
}
