//! Thresholds: pass/fail criteria on metrics, k6's grammar on LLM metrics. `parse` reads the
//! text, this module checks it against the metric table and compiles it, `eval` computes
//! outcomes from the recorder. All pure.

pub mod eval;
pub mod parse;

use std::time::Duration;

use parse::{parse_expression, parse_metric_key, Aggregation, Expression, MetricKey, TagKey, Unit};

use crate::metrics::registry::{self, Trend, REGISTRY};
use crate::scenario::{Phase, Scenario, ThresholdSpec};

/// What a metric name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// A per-request distribution.
    Trend(Trend),
    /// Requests that ended (counter: count, rate per second).
    Requests,
    /// Aggregate output tokens per second of wall time (value).
    OutputTokensPerSecond,
    /// Failed requests (rate: fraction failed; count: how many).
    Errors,
    /// Requests that succeeded and met every per-request limit of the other thresholds
    /// (rate: their share of all requests; count: how many).
    Goodput,
    /// Embeddings returned (`api: embeddings`; count: how many, rate: per second).
    Embeddings,
    /// Hook checks (rate); no data until hooks exist.
    Checks,
    /// Arrival-rate iterations that could not start because every VU was busy (counter).
    DroppedIterations,
    /// A trend the hook script records with `metric(name, value)`; the key's name says which.
    Custom,
    /// The capacity a capacity search found (value), in its unit; 0 when no step held.
    Capacity,
}

/// Metric names thresholds accept besides the trends of the registry.
const OTHER_METRICS: [(&str, Metric); 8] = [
    ("requests", Metric::Requests),
    ("output_tokens_per_second", Metric::OutputTokensPerSecond),
    ("errors", Metric::Errors),
    ("goodput", Metric::Goodput),
    ("embeddings", Metric::Embeddings),
    ("checks", Metric::Checks),
    ("dropped_iterations", Metric::DroppedIterations),
    ("capacity", Metric::Capacity),
];

/// Every metric name thresholds accept: the trends, then the rest.
pub fn metrics() -> impl Iterator<Item = (&'static str, Metric)> {
    REGISTRY
        .iter()
        .map(|d| (d.name, Metric::Trend(d.trend)))
        .chain(OTHER_METRICS)
}

impl Metric {
    /// Looks a name up.
    pub fn by_name(name: &str) -> Option<Metric> {
        metrics().find(|(n, _)| *n == name).map(|(_, m)| m)
    }

    /// True for metrics measured in time (limits in ms, units allowed).
    pub fn is_time(self) -> bool {
        matches!(self, Metric::Trend(trend) if trend.unit() == registry::Unit::Millis)
    }

    /// The aggregations that make sense for this metric, as written in messages.
    pub fn aggregations(self) -> &'static str {
        match self {
            Metric::Trend(Trend::OutputTokens) => {
                "avg, min, max, med, p(N), count (total tokens), rate (tokens per second)"
            }
            Metric::Trend(_) => "avg, min, max, med, p(N), count",
            Metric::Requests | Metric::DroppedIterations | Metric::Embeddings => "count, rate",
            Metric::OutputTokensPerSecond => "value, avg",
            Metric::Errors | Metric::Checks | Metric::Goodput => "rate, count",
            Metric::Custom => "avg, min, max, med, p(N), count",
            Metric::Capacity => "value",
        }
    }

    fn accepts(self, aggregation: Aggregation) -> bool {
        use Aggregation::*;
        match self {
            Metric::Trend(Trend::OutputTokens) => !matches!(aggregation, Value),
            Metric::Trend(_) => !matches!(aggregation, Value | Rate),
            Metric::Requests | Metric::DroppedIterations | Metric::Embeddings => {
                matches!(aggregation, Count | Rate)
            }
            Metric::OutputTokensPerSecond => matches!(aggregation, Value | Avg),
            Metric::Errors | Metric::Checks | Metric::Goodput => {
                matches!(aggregation, Rate | Count)
            }
            Metric::Custom => !matches!(aggregation, Value | Rate),
            Metric::Capacity => matches!(aggregation, Value),
        }
    }
}

/// One compiled threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// The metric key as written (`ttft{level:10}`).
    pub key_text: String,
    /// Parsed key.
    pub key: MetricKey,
    /// What the name refers to.
    pub metric: Metric,
    /// The expression as written.
    pub expression_text: String,
    /// Parsed expression.
    pub expression: Expression,
    /// Stop the run when this fails.
    pub abort_on_fail: bool,
    /// Do not abort before this much of the run has passed.
    pub delay_abort_eval: Duration,
    /// Where an `slo:` entry it was generated from, e.g. `slo.p95_latency_ms`.
    pub from_slo: Option<&'static str>,
}

/// Where a threshold key is written in the scenario, as a JSON pointer.
fn key_pointer(key_text: &str) -> String {
    format!(
        "/thresholds/{}",
        key_text.replace('~', "~0").replace('/', "~1")
    )
}

impl Threshold {
    /// Whether it judges the scenario (phase) `name` on its own, as capacity-search steps are
    /// judged: untagged, or tagged with that scenario only. Thresholds on `capacity` judge the
    /// search's result instead.
    pub fn applies_to_scenario(&self, name: &str) -> bool {
        self.metric != Metric::Capacity
            && self
                .key
                .tags
                .iter()
                .all(|(tag, v)| *tag == TagKey::Scenario && v == name)
    }

    /// Where it is written in the scenario (its key, or the `slo:` entry it stands for).
    pub fn pointer(&self) -> String {
        match self.from_slo {
            Some(slo) => format!("/{}", slo.replace('.', "/")),
            None => key_pointer(&self.key_text),
        }
    }
}

/// The per-request limits the thresholds imply, for goodput: every trend threshold with an
/// upper (`<`, `<=`) or lower (`>`, `>=`) bound, read as a bound on one request's value.
pub fn request_limits(thresholds: &[Threshold]) -> crate::metrics::recorder::Limits {
    use parse::Operator;
    let mut limits = crate::metrics::recorder::Limits::default();
    for t in thresholds {
        let Metric::Trend(trend) = t.metric else {
            continue;
        };
        if !t.key.tags.is_empty()
            || matches!(
                t.expression.aggregation,
                Aggregation::Count | Aggregation::Rate
            )
        {
            continue;
        }
        let holds: fn(f64, f64) -> bool = match t.expression.operator {
            Operator::Lt => |v, l| v < l,
            Operator::Le => |v, l| v <= l,
            Operator::Gt => |v, l| v > l,
            Operator::Ge => |v, l| v >= l,
            Operator::Eq | Operator::Ne => continue,
        };
        limits.push(trend, holds, t.expression.limit());
    }
    limits
}

/// Checks every threshold of `scenario` against the metric table (and `custom`, the metric
/// names its hook script records) and compiles it; every problem is returned at its pointer.
/// `overridden`: the command line changed the scenario, so a tag it left without data says so
/// (`-c 4` takes `level:16` away, and the file's own levels would seem to contradict it).
pub fn compile(
    scenario: &Scenario,
    custom: &[String],
    prompt_sets: &[&str],
    overridden: bool,
) -> Result<Vec<Threshold>, Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (key_text, specs) in scenario.thresholds.iter().flatten() {
        let pointer = key_pointer(key_text);
        let key = match check_key(key_text, scenario, custom) {
            Ok(key) => key,
            Err(message) => {
                problems.push((pointer, message));
                continue;
            }
        };
        if let Some(message) = unreachable(&key, scenario, prompt_sets) {
            let message = if overridden {
                format!("{message} (after command-line overrides)")
            } else {
                message
            };
            problems.push((pointer, message));
            continue;
        }
        let metric = Metric::by_name(&key.name).unwrap_or(Metric::Custom);
        for (i, spec) in specs.iter().enumerate() {
            let (text, abort_on_fail, delay) = match spec {
                ThresholdSpec::Expression(text) => (text.as_str(), false, None),
                ThresholdSpec::Detailed(d) => {
                    (d.threshold.as_str(), d.abort_on_fail, d.delay_abort_eval)
                }
            };
            match check_expression(text, metric) {
                Ok(expression) => out.push(Threshold {
                    key_text: key_text.clone(),
                    key: key.clone(),
                    metric,
                    expression_text: text.trim().to_string(),
                    expression,
                    abort_on_fail,
                    delay_abort_eval: delay.map_or(Duration::ZERO, |d| d.get()),
                    from_slo: None,
                }),
                Err(message) => problems.push((format!("{pointer}/{i}"), message)),
            }
        }
    }
    if let Some(slo) = &scenario.slo {
        let sugar = [
            (
                "slo.p95_latency_ms",
                "e2e_latency",
                slo.p95_latency_ms.map(|v| format!("p(95)<{v}")),
            ),
            (
                "slo.p99_latency_ms",
                "e2e_latency",
                slo.p99_latency_ms.map(|v| format!("p(99)<{v}")),
            ),
            (
                "slo.min_throughput_tps",
                "output_tokens_per_second",
                slo.min_throughput_tps.map(|v| format!("value>={v}")),
            ),
        ];
        for (from, name, text) in sugar {
            let Some(text) = text else { continue };
            let metric = Metric::by_name(name).expect("a known metric");
            let expression = parse_expression(&text).expect("generated expressions parse");
            out.push(Threshold {
                key_text: name.to_string(),
                key: MetricKey {
                    name: name.to_string(),
                    tags: Vec::new(),
                },
                metric,
                expression_text: text,
                expression,
                abort_on_fail: false,
                delay_abort_eval: Duration::ZERO,
                from_slo: Some(from),
            });
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn check_key(text: &str, scenario: &Scenario, custom: &[String]) -> Result<MetricKey, String> {
    let key = parse_metric_key(text).map_err(|e| e.to_string())?;
    if Metric::by_name(&key.name).is_none() && !custom.contains(&key.name) {
        let names: Vec<&str> = metrics().map(|(n, _)| n).collect();
        return Err(format!(
            "unknown metric {:?}; valid metrics: {}",
            key.name,
            names.join(", ")
        ));
    }
    for (tag, value) in &key.tags {
        match tag {
            TagKey::Level | TagKey::Stage if value.parse::<u32>().is_err() => {
                return Err(format!("tag value {value:?} must be a whole number"));
            }
            TagKey::Scenario if !scenario.scenarios.contains_key(value) => {
                let names: Vec<&str> = scenario.scenarios.keys().map(String::as_str).collect();
                return Err(format!(
                    "no scenario named {value:?}; scenarios: {}",
                    names.join(", ")
                ));
            }
            _ => {}
        }
    }
    Ok(key)
}

/// Takes out of `scenario` the thresholds whose tags can never have data in it, and says which
/// and why: for a run whose scenarios the command line replaced (`--num-prompts`), where the
/// file's `level:1` no longer names anything and failing the whole run for it would make the
/// one-line form unusable with any file that tags a threshold.
pub fn set_aside_unreachable(scenario: &mut Scenario, prompt_sets: &[&str]) -> Vec<String> {
    let Some(map) = &scenario.thresholds else {
        return Vec::new();
    };
    let gone: Vec<(String, String)> = map
        .keys()
        .filter_map(|text| {
            let key = parse_metric_key(text).ok()?;
            unreachable(&key, scenario, prompt_sets).map(|why| (text.clone(), why))
        })
        .collect();
    if let Some(map) = &mut scenario.thresholds {
        for (text, _) in &gone {
            map.remove(text);
        }
    }
    gone.into_iter()
        .map(|(text, why)| format!("threshold `{text}` set aside: {why}"))
        .collect()
}

/// Why a key's tags can never receive data from `scenario` (with its prompt sets named
/// `prompt_sets`): a level no concurrency-levels scenario runs, a stage past the last one, a
/// prompt set that does not exist. Checked at load time, on the scenario with the command
/// line's overrides already in it (`-c 4` takes `level:16` away), because a threshold that can
/// only be "no data" passes silently.
pub fn unreachable(key: &MetricKey, scenario: &Scenario, prompt_sets: &[&str]) -> Option<String> {
    let named = key.tag(TagKey::Scenario);
    let phases = || {
        scenario
            .scenarios
            .iter()
            .filter(move |(name, _)| named.is_none_or(|n| n == name.as_str()))
            .map(|(_, phase)| phase)
    };
    let within = named.map_or(String::new(), |n| format!(" of scenario {n:?}"));
    if key.name == "capacity" && !phases().any(|p| matches!(p, Phase::CapacitySearch(_))) {
        return Some(format!(
            "capacity can never have data: no capacity-search scenario{within}"
        ));
    }
    for (tag, value) in &key.tags {
        match tag {
            TagKey::Level => {
                let levels: Vec<u32> = phases()
                    .filter_map(|p| match p {
                        Phase::ConcurrencyLevels(c) => Some(c.levels.iter().copied()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                if !levels.iter().any(|l| l.to_string() == *value) {
                    let listed: Vec<String> = levels.iter().map(u32::to_string).collect();
                    return Some(match listed.is_empty() {
                        true => format!("level:{value} can never have data: no concurrency-levels scenario{within}"),
                        false => format!("level:{value} can never have data: the levels{within} are {}", listed.join(", ")),
                    });
                }
            }
            TagKey::Stage => {
                let stages = phases()
                    .map(|p| match p {
                        Phase::RampingVus(r) => r.stages.len(),
                        Phase::RampingArrivalRate(r) => r.stages.len(),
                        Phase::RateLevels(r) => r.rates.len(),
                        _ => 0,
                    })
                    .max()
                    .unwrap_or(0);
                let n: usize = value.parse().unwrap_or(0);
                if n == 0 || n > stages {
                    return Some(match stages {
                        0 => format!(
                            "stage:{value} can never have data: no ramping scenario{within}"
                        ),
                        _ => format!(
                            "stage:{value} can never have data: stages{within} are 1 to {stages}"
                        ),
                    });
                }
            }
            TagKey::PromptSet if !prompt_sets.contains(&value.as_str()) => {
                return Some(format!(
                    "prompt_set:{value} can never have data: the prompt sets are {}",
                    prompt_sets.join(", ")
                ));
            }
            _ => {}
        }
    }
    None
}

fn check_expression(text: &str, metric: Metric) -> Result<Expression, String> {
    let expression = parse_expression(text).map_err(|e| e.to_string())?;
    if !metric.accepts(expression.aggregation) {
        return Err(format!(
            "{} does not apply to this metric; use {}",
            expression.aggregation,
            metric.aggregations()
        ));
    }
    if expression.unit.is_some() && !metric.is_time() {
        let unit = if expression.unit == Some(Unit::Ms) {
            "ms"
        } else {
            "s"
        };
        return Err(format!(
            "unit {unit:?} on a metric that is not a time in {text:?}"
        ));
    }
    Ok(expression)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(thresholds: &str) -> Scenario {
        let yaml = format!("name: t\ntarget: {{model: m}}\nprompts: [hi]\nscenarios:\n  sweep: {{executor: concurrency-levels, levels: [1, 10], requests_per_level: 1}}\n  ramp: {{executor: ramping-vus, stages: [{{duration: 1s, target: 2}}, {{duration: 1s, target: 0}}]}}\n{thresholds}");
        let doc = crate::yaml::parse(&yaml).unwrap();
        serde_json::from_value(doc.value).unwrap()
    }

    #[test]
    fn compiles_plain_detailed_and_tagged_thresholds() {
        let s = scenario("thresholds:\n  ttft: [\"p(95)<500ms\", \"med<200\"]\n  \"ttft{level:10}\": [\"p(95)<1s\"]\n  itl:\n    - {threshold: \"p(99)<50ms\", abort_on_fail: true, delay_abort_eval: 30s}\n");
        let t = compile(&s, &[], &["inline"], false).unwrap();
        assert_eq!(t.len(), 4);
        let itl = t.iter().find(|t| t.key_text == "itl").unwrap();
        assert!(itl.abort_on_fail);
        assert_eq!(itl.delay_abort_eval, Duration::from_secs(30));
        let tagged = t.iter().find(|t| t.key_text == "ttft{level:10}").unwrap();
        assert_eq!(tagged.key.tags, vec![(TagKey::Level, "10".to_string())]);
        assert_eq!(tagged.expression.limit(), 1000.0);
    }

    #[test]
    fn a_tag_value_the_scenario_never_produces_is_a_problem() {
        let s = scenario("thresholds:\n  \"ttft{level:15}\": [\"p(95)<1\"]\n  \"ttft{scenario:ramp,level:1}\": [\"p(95)<1\"]\n  \"ttft{stage:3}\": [\"p(95)<1\"]\n  \"ttft{prompt_set:rga}\": [\"p(95)<1\"]\n  \"ttft{stage:2}\": [\"p(95)<1\"]\n  \"ttft{prompt_set:rag,level:10}\": [\"p(95)<1\"]\n  capacity: [\"value>=3\"]\n");
        let problems = compile(&s, &[], &["inline", "rag"], false).unwrap_err();
        let said = |key: &str| {
            problems
                .iter()
                .find(|(p, _)| p == &format!("/thresholds/{key}"))
                .map(|(_, m)| m.clone())
        };
        assert_eq!(
            said("ttft{level:15}").unwrap(),
            "level:15 can never have data: the levels are 1, 10"
        );
        assert_eq!(
            said("ttft{scenario:ramp,level:1}").unwrap(),
            "level:1 can never have data: no concurrency-levels scenario of scenario \"ramp\""
        );
        assert_eq!(
            said("ttft{stage:3}").unwrap(),
            "stage:3 can never have data: stages are 1 to 2"
        );
        assert_eq!(
            said("ttft{prompt_set:rga}").unwrap(),
            "prompt_set:rga can never have data: the prompt sets are inline, rag"
        );
        assert_eq!(
            said("capacity").unwrap(),
            "capacity can never have data: no capacity-search scenario"
        );
        assert_eq!(said("ttft{stage:2}"), None);
        assert_eq!(said("ttft{prompt_set:rag,level:10}"), None);
        assert_eq!(problems.len(), 5);
    }

    #[test]
    fn every_time_trend_takes_units_and_no_other_metric_does() {
        for (name, metric) in metrics() {
            let with_unit = check_expression("p(95)<2s", metric)
                .or_else(|_| check_expression("count<2s", metric));
            let timed = !matches!(
                metric,
                Metric::Trend(
                    Trend::OutputTokens | Trend::PromptTokens | Trend::RequestTokensPerSecond
                )
            ) && matches!(metric, Metric::Trend(_));
            assert_eq!(with_unit.is_ok(), timed, "{name}");
        }
    }

    #[test]
    fn slo_sugar_becomes_equivalent_thresholds() {
        let s = scenario(
            "slo: {p95_latency_ms: 30000, p99_latency_ms: 60000, min_throughput_tps: 2}\n",
        );
        let t = compile(&s, &[], &["inline"], false).unwrap();
        let shown: Vec<_> = t
            .iter()
            .map(|t| {
                (
                    t.key_text.as_str(),
                    t.expression_text.as_str(),
                    t.from_slo.unwrap(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            vec![
                ("e2e_latency", "p(95)<30000", "slo.p95_latency_ms"),
                ("e2e_latency", "p(99)<60000", "slo.p99_latency_ms"),
                (
                    "output_tokens_per_second",
                    "value>=2",
                    "slo.min_throughput_tps"
                ),
            ]
        );
    }

    #[test]
    fn every_mistake_is_reported_where_it_is() {
        let s = scenario("thresholds:\n  ttfb: [\"p(95)<1\"]\n  errors: [\"avg<0.1\", \"rate<1ms\"]\n  \"ttft{lvl:1}\": [\"p(95)<1\"]\n  \"ttft{scenario:nope}\": [\"p(95)<1\"]\n  ttft: [\"p(95)<<1\"]\n");
        let problems = compile(&s, &[], &["inline"], false).unwrap_err();
        let find = |p: &str| {
            problems
                .iter()
                .find(|(ptr, _)| ptr == p)
                .map(|(_, m)| m.as_str())
                .unwrap_or_else(|| panic!("no problem at {p}: {problems:?}"))
        };
        assert!(find("/thresholds/ttfb")
            .contains("unknown metric \"ttfb\"; valid metrics: ttft, ttfa, itl"));
        assert!(find("/thresholds/errors/0")
            .contains("avg does not apply to this metric; use rate, count"));
        assert!(find("/thresholds/errors/1").contains("unit \"ms\" on a metric that is not a time"));
        assert!(find("/thresholds/ttft{lvl:1}").contains("unknown tag \"lvl\""));
        assert!(find("/thresholds/ttft{scenario:nope}")
            .contains("no scenario named \"nope\"; scenarios: ramp, sweep"));
        assert!(find("/thresholds/ttft/0").contains("unknown operator"));
        assert_eq!(problems.len(), 6);
    }
}
