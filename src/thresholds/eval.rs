//! Pure evaluation of thresholds against the recorder: select the groups a key's tags name,
//! merge them, reduce to one number, compare.

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::parse::{Aggregation, MetricKey, TagKey};
use super::{Metric, Threshold};
use crate::metrics::recorder::{GroupStats, Recorder};
use crate::metrics::registry::{Trend, Unit, CUSTOM_UNIT};
use crate::metrics::summary::quantile;
use crate::metrics::{Group, GroupKey};

/// The outcome of one threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ThresholdOutcome {
    /// The metric key as written, e.g. `ttft{level:10}`.
    pub metric: String,
    /// The expression as written, e.g. `p(95)<500ms`.
    pub expression: String,
    /// The `slo:` entry it came from, when it is sugar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_slo: Option<String>,
    /// True when it holds, or when there was no data (as in k6).
    pub passed: bool,
    /// True when no sample matched.
    pub no_data: bool,
    /// The measured value in the metric's unit (ms for times), when there was data.
    pub observed: Option<f64>,
    /// The comparison, e.g. `<`.
    pub operator: String,
    /// The limit in the same unit.
    pub limit: f64,
    /// "ms" for time metrics, "" otherwise.
    pub unit: String,
    /// Whether a failure stops the run.
    pub abort_on_fail: bool,
    /// True for a threshold that only capacity-search steps ever feed: it judged each step (see
    /// `capacity`), not the run, so it is no verdict on the run. Gate a search with
    /// `capacity: ["value>=N"]`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub judges_steps: bool,
}

impl ThresholdOutcome {
    /// `ttft p(95)<500ms`.
    pub fn label(&self) -> String {
        format!("{} {}", self.metric, self.expression)
    }
}

fn matches(key: &GroupKey, tags: &[(TagKey, String)]) -> bool {
    tags.iter().all(|(tag, value)| match (tag, key.group) {
        (TagKey::Scenario, _) => &*key.scenario == value.as_str(),
        (TagKey::Level, Group::Level(n)) => value.parse() == Ok(n),
        (TagKey::Stage, Group::Stage(i)) => value.parse() == Ok(i + 1),
        // Handled by `selected` (the per-set split) and by `observe` (the named check).
        (TagKey::PromptSet | TagKey::Check, _) => true,
        _ => false,
    })
}

/// The merged aggregates of every group the tags select; a `prompt_set` tag selects within the
/// per-set split. Capacity-search steps are left out: the thresholds are the search's pass
/// criteria there, judged per step, and its steps above capacity fail them by design.
fn selected(recorder: &Recorder, key: &MetricKey) -> GroupStats {
    let mut merged = GroupStats::default();
    let counted = |k: &GroupKey| {
        !matches!(k.group, Group::Step(_) | Group::Discarded(_)) && matches(k, &key.tags)
    };
    let set = key.tag(TagKey::PromptSet);
    match set {
        Some(set) => {
            for ((key, name), stats) in recorder.by_prompt_set() {
                if &**name == set && counted(key) {
                    merged.merge(stats);
                }
            }
        }
        None => {
            for (_, stats) in recorder.groups().iter().filter(|(k, _)| counted(k)) {
                merged.merge(stats);
            }
        }
    }
    merged
}

/// An aggregation over one histogram, in shown units; `None` for those that need more than a
/// distribution (rate, value).
fn distribution(h: &Histogram<u64>, aggregation: Aggregation, unit: Unit) -> Option<f64> {
    let recorded = match aggregation {
        Aggregation::Count => return Some(h.len() as f64),
        Aggregation::Avg => h.mean(),
        Aggregation::Min => h.median_equivalent(h.min()) as f64,
        Aggregation::Max => h.median_equivalent(h.max()) as f64,
        Aggregation::Med => quantile(h, 0.5) as f64,
        Aggregation::Percentile(p) => quantile(h, p / 100.0) as f64,
        Aggregation::Rate | Aggregation::Value => return None,
    };
    Some(unit.shown(recorded))
}

/// The measured value of `aggregation` over `g`, or `None` when there is no data. `check`
/// narrows `checks` to one named check, and names the metric of a `Custom` threshold.
pub fn observe(
    metric: Metric,
    aggregation: Aggregation,
    g: &GroupStats,
    check: Option<&str>,
) -> Option<f64> {
    if let (Metric::Custom, Some(name)) = (metric, check) {
        return distribution(g.custom.get(name)?, aggregation, CUSTOM_UNIT);
    }
    if metric == Metric::Checks {
        let (pass, total) = g
            .checks
            .iter()
            .filter(|(name, _)| check.is_none_or(|c| c == name.as_str()))
            .fold((0, 0), |(p, t), (_, &(pass, total))| (p + pass, t + total));
        if total == 0 {
            return None;
        }
        return Some(if aggregation == Aggregation::Count {
            (total - pass) as f64
        } else {
            pass as f64 / total as f64
        });
    }
    let requests = g.ok + g.error_count();
    let wall = g.wall_time().as_secs_f64();
    let per_second = |n: f64| if wall > 0.0 { n / wall } else { 0.0 };
    match metric {
        Metric::Trend(trend) => {
            let h = g.trend(trend);
            let total = matches!(aggregation, Aggregation::Rate)
                || (aggregation == Aggregation::Count && trend == Trend::OutputTokens);
            if h.is_empty() {
                // Tokens over a run whose every request failed are 0, not "no data": a
                // throughput gate must not pass on a run that produced nothing.
                return (total && requests > 0).then_some(0.0);
            }
            match aggregation {
                // Over output tokens, count and rate are totals, not counts of requests.
                Aggregation::Count if trend == Trend::OutputTokens => Some(g.output_tokens as f64),
                Aggregation::Rate => Some(per_second(g.output_tokens as f64)),
                _ => distribution(h, aggregation, trend.unit()),
            }
        }
        Metric::DroppedIterations if requests + g.dropped > 0 => {
            Some(if aggregation == Aggregation::Rate {
                per_second(g.dropped as f64)
            } else {
                g.dropped as f64
            })
        }
        // Evaluated from the capacity-search reports when the result is assembled.
        Metric::Capacity => None,
        _ if requests == 0 => None,
        Metric::Requests => Some(if aggregation == Aggregation::Rate {
            per_second(requests as f64)
        } else {
            requests as f64
        }),
        // 0 when every request failed: only a trend without samples is "no data".
        Metric::OutputTokensPerSecond => Some(per_second(g.output_tokens as f64)),
        Metric::Errors => Some(if aggregation == Aggregation::Count {
            g.error_count() as f64
        } else {
            g.error_count() as f64 / requests as f64
        }),
        Metric::Goodput => Some(if aggregation == Aggregation::Count {
            g.good as f64
        } else {
            g.good as f64 / requests as f64
        }),
        Metric::Embeddings => Some(if aggregation == Aggregation::Rate {
            per_second(g.embeddings as f64)
        } else {
            g.embeddings as f64
        }),
        Metric::DroppedIterations => None,
        // Answered above.
        Metric::Checks | Metric::Custom => None,
    }
}

/// Evaluates one threshold.
pub fn evaluate(threshold: &Threshold, recorder: &Recorder) -> ThresholdOutcome {
    evaluate_on(threshold, &selected(recorder, &threshold.key))
}

/// Evaluates one threshold on given aggregates, ignoring its tags (capacity-search steps).
pub fn evaluate_on(threshold: &Threshold, g: &GroupStats) -> ThresholdOutcome {
    // `check` narrows `checks` to one check; for a custom metric it carries the metric's name.
    let check = match threshold.metric {
        Metric::Custom => Some(threshold.key.name.as_str()),
        _ => threshold.key.tag(TagKey::Check),
    };
    let observed = observe(threshold.metric, threshold.expression.aggregation, g, check);
    outcome(threshold, observed)
}

/// The outcome of `threshold` for a measured value (`None`: no data).
pub fn outcome(threshold: &Threshold, observed: Option<f64>) -> ThresholdOutcome {
    let limit = threshold.expression.limit();
    ThresholdOutcome {
        metric: threshold.key_text.clone(),
        expression: threshold.expression_text.clone(),
        from_slo: threshold.from_slo.map(String::from),
        passed: observed.is_none_or(|v| threshold.expression.operator.holds(v, limit)),
        no_data: observed.is_none(),
        observed,
        operator: threshold.expression.operator.to_string(),
        limit,
        unit: if threshold.metric.is_time() {
            "ms".into()
        } else {
            String::new()
        },
        abort_on_fail: threshold.abort_on_fail,
        judges_steps: false,
    }
}

/// Evaluates every threshold.
pub fn evaluate_all(thresholds: &[Threshold], recorder: &Recorder) -> Vec<ThresholdOutcome> {
    thresholds.iter().map(|t| evaluate(t, recorder)).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::{ErrorKind, Measurement, RequestError};
    use crate::metrics::{Event, Outcome, Sample};
    use crate::thresholds::parse::{parse_expression, parse_metric_key};

    fn threshold(key: &str, expr: &str) -> Threshold {
        let key = parse_metric_key(key).unwrap();
        Threshold {
            key_text: key.name.clone(),
            metric: Metric::by_name(&key.name).unwrap(),
            key,
            expression_text: expr.into(),
            expression: parse_expression(expr).unwrap(),
            abort_on_fail: false,
            delay_abort_eval: Duration::ZERO,
            from_slo: None,
        }
    }

    /// Level 1: ttft 1..=100 ms, 10 tokens each, over 10 s. Level 8: ttft 1000 ms, 2 errors.
    fn recorder() -> Recorder {
        let mut r = Recorder::default();
        let mut push = |level: u32, ttft_ms: u64, end_s: u64, error: Option<ErrorKind>| {
            let m = Measurement {
                ttft: Some(Duration::from_millis(ttft_ms)),
                e2e: Duration::from_millis(ttft_ms * 2),
                output_tokens: 10,
                error: error.map(|k| RequestError::new(k, "x")),
                ..Measurement::default()
            };
            let key = GroupKey {
                scenario: "sweep".into(),
                group: Group::Level(level),
            };
            let sample = Sample::plain(Some(key), Duration::from_secs(end_s), Outcome::Done(m));
            r.record(&Event::Finished(Box::new(sample)));
        };
        for i in 1..=100 {
            push(1, i, 10, None);
        }
        for _ in 0..8 {
            push(8, 1000, 10, None);
        }
        push(8, 1000, 10, Some(ErrorKind::Timeout));
        push(8, 1000, 10, Some(ErrorKind::Refused));
        r
    }

    #[test]
    fn trend_aggregations_read_the_histogram() {
        let r = recorder();
        let level1 = |expr: &str| evaluate(&threshold("ttft{level:1}", expr), &r);
        assert!((level1("p(95)<1").observed.unwrap() - 95.0).abs() < 0.1);
        assert!((level1("med<1").observed.unwrap() - 50.0).abs() < 0.1);
        assert!((level1("avg<1").observed.unwrap() - 50.5).abs() < 0.1);
        assert_eq!(level1("count<1").observed, Some(100.0));
        assert!(level1("p(95)<96").passed);
        assert!(!level1("p(95)<94").passed);
        assert!(level1("max<=100.1").passed);
    }

    #[test]
    fn tags_select_the_right_level_and_no_tags_merge_all() {
        let r = recorder();
        assert!(
            (evaluate(&threshold("ttft{level:8}", "min>1"), &r)
                .observed
                .unwrap()
                - 1000.0)
                .abs()
                < 1.0
        );
        assert_eq!(
            evaluate(&threshold("ttft", "count>1"), &r).observed,
            Some(108.0)
        );
        assert_eq!(
            evaluate(&threshold("ttft{scenario:sweep,level:1}", "count>1"), &r).observed,
            Some(100.0)
        );
    }

    #[test]
    fn counters_rates_and_values() {
        let r = recorder();
        let obs = |key: &str, expr: &str| evaluate(&threshold(key, expr), &r).observed.unwrap();
        assert_eq!(obs("errors", "rate<0.01"), 2.0 / 110.0);
        assert_eq!(obs("errors{level:8}", "count<1"), 2.0);
        assert_eq!(obs("requests", "count>1"), 110.0);
        assert_eq!(obs("requests", "rate>1"), 11.0); // over 10 s
        assert_eq!(obs("output_tokens_per_second", "value>1"), 108.0); // 1080 tokens / 10 s
        assert_eq!(obs("output_tokens", "count>1"), 1080.0);
        assert_eq!(obs("output_tokens", "rate>1"), 108.0);
        assert_eq!(obs("output_tokens", "avg>1"), 10.0);
    }

    #[test]
    fn goodput_is_the_share_of_all_requests_meeting_every_limit() {
        let mut limits = crate::metrics::recorder::Limits::default();
        limits.push(Trend::Ttft, |v, l| v < l, 50.5); // TTFT < 50.5 ms
        let mut r = Recorder::with_limits(limits);
        let key = GroupKey {
            scenario: "sweep".into(),
            group: Group::Level(1),
        };
        for ttft_ms in 1..=100 {
            let m = Measurement {
                ttft: Some(Duration::from_millis(ttft_ms)),
                e2e: Duration::from_millis(ttft_ms),
                embeddings: 3,
                error: (ttft_ms == 1).then(|| RequestError::new(ErrorKind::Timeout, "x")),
                ..Measurement::default()
            };
            let sample =
                Sample::plain(Some(key.clone()), Duration::from_secs(10), Outcome::Done(m));
            r.record(&Event::Finished(Box::new(sample)));
        }
        let obs = |key: &str, expr: &str| evaluate(&threshold(key, expr), &r);
        // 2..=50 ms met the limit (1 ms failed): 49 of 100 requests.
        assert_eq!(obs("goodput", "rate>0.9").observed, Some(0.49));
        assert!(!obs("goodput", "rate>0.9").passed);
        assert!(obs("goodput", "rate>0.4").passed);
        assert_eq!(obs("goodput", "count>1").observed, Some(49.0));
        // 99 successes × 3 embeddings over the 10 s window.
        assert_eq!(obs("embeddings", "count>1").observed, Some(297.0));
        assert_eq!(obs("embeddings", "rate>1").observed, Some(29.7));
        assert!(threshold("goodput", "p(95)<1")
            .metric
            .accepts(Aggregation::Rate));
        assert!(!Metric::Goodput.accepts(Aggregation::Percentile(95.0)));
    }

    #[test]
    fn a_run_whose_every_request_failed_produced_zero_tokens_not_no_data() {
        let mut r = Recorder::default();
        for end_s in 1..=4 {
            let m = Measurement {
                e2e: Duration::from_millis(5),
                error: Some(RequestError::new(ErrorKind::Refused, "x")),
                ..Measurement::default()
            };
            let key = GroupKey {
                scenario: "sweep".into(),
                group: Group::Level(1),
            };
            let sample = Sample::plain(Some(key), Duration::from_secs(end_s), Outcome::Done(m));
            r.record(&Event::Finished(Box::new(sample)));
        }
        for (key, expr) in [
            ("output_tokens_per_second", "value>50"),
            ("output_tokens", "rate>1"),
            ("output_tokens", "count>1"),
        ] {
            let o = evaluate(&threshold(key, expr), &r);
            assert!(
                !o.passed && !o.no_data && o.observed == Some(0.0),
                "{key} {expr}: {o:?}"
            );
        }
        // A latency trend has no sample at all: that is what "no data" means.
        assert!(evaluate(&threshold("ttft", "p(95)<1"), &r).no_data);
    }

    #[test]
    fn no_data_passes_and_says_so() {
        let r = recorder();
        for (key, expr) in [
            ("ttft{level:99}", "p(95)<1"),
            ("checks", "rate>0.99"),
            ("ttft{stage:1}", "avg<1"),
            ("queue_wait", "p(95)<1"),
        ] {
            let o = evaluate(&threshold(key, expr), &r);
            assert!(
                o.passed && o.no_data && o.observed.is_none(),
                "{key} {expr}: {o:?}"
            );
        }
    }
}
