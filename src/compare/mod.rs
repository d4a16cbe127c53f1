//! `llm-bench compare BASE.json NEW.json`: pairs the two runs' groups by name and says, per
//! metric, whether the new run is better, worse, or indistinguishable from noise. Pure: two
//! results in, a [`Comparison`] out; [`render`] turns it into text, Markdown or HTML.
//!
//! Significance comes from the histograms the results carry: the Mann-Whitney U test (every
//! request of one run against every request of the other; histogram buckets are exact ties) and
//! a seeded bootstrap interval of the p95 difference. Every value shown and gated is read from
//! those same histograms, so the table, the tolerance and the test cannot disagree. A result
//! without histograms (format 1) is still compared, on its summary percentiles, without a
//! verdict; a gate given such a result, or too few requests, or no group in common, cannot
//! judge and fails (see [`Comparison::unjudged`]).

pub mod render;

mod error;
pub use error::{CompareError, GateError};

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::metrics::recorder::{GroupStats, Recorder};
use crate::metrics::registry::{Trend, Unit};
use crate::metrics::summary::{GroupSummary, Stats};
use crate::metrics::{Group, GroupKey};
use crate::output::result::{spectrum_of, RunResult, SpectrumPoint};
use crate::stats::{bootstrap_quantile_diff, mann_whitney};

/// Fewer requests than this in either run and no verdict is given.
pub const MIN_SAMPLES: u64 = 20;
/// Significance level of the tests.
pub const ALPHA: f64 = 0.05;
/// Smallest effect called a change: |Cliff's delta| = |2 P(new>base) − 1| below 0.147 is
/// "negligible" (Romano et al., 2006). With thousands of samples (ITL pools every gap of every
/// request) a p-value alone calls a 1% shift significant; this keeps the verdict practical.
pub const NEGLIGIBLE_DELTA: f64 = 0.147;
/// Bootstrap replicates (seeded, so a comparison is reproducible).
const RESAMPLES: usize = 2000;
const SEED: u64 = 0x5eed;

/// A metric compared, and which direction is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// Its name in results and on the command line.
    pub name: &'static str,
    /// The trend it reads, when it is a per-request distribution.
    trend: Option<Trend>,
    /// True when a larger value is worse (latencies), false when smaller is (tokens/s).
    pub higher_is_worse: bool,
}

/// The metrics `compare` reports, in this order.
pub const METRICS: [MetricDef; 8] = [
    MetricDef {
        name: "ttft",
        trend: Some(Trend::Ttft),
        higher_is_worse: true,
    },
    MetricDef {
        name: "ttfa",
        trend: Some(Trend::Ttfa),
        higher_is_worse: true,
    },
    MetricDef {
        name: "itl",
        trend: Some(Trend::Itl),
        higher_is_worse: true,
    },
    MetricDef {
        name: "tpot",
        trend: Some(Trend::Tpot),
        higher_is_worse: true,
    },
    MetricDef {
        name: "e2e_latency",
        trend: Some(Trend::E2e),
        higher_is_worse: true,
    },
    MetricDef {
        name: "request_tokens_per_second",
        trend: Some(Trend::RequestTokensPerSecond),
        higher_is_worse: false,
    },
    MetricDef {
        name: "throughput",
        trend: None,
        higher_is_worse: false,
    },
    // `api: embeddings`: compared only when a run returned embeddings.
    MetricDef {
        name: "embeddings_per_second",
        trend: None,
        higher_is_worse: false,
    },
];

impl MetricDef {
    /// The metric of this name.
    pub fn by_name(name: &str) -> Option<MetricDef> {
        METRICS.iter().copied().find(|m| m.name == name)
    }

    fn unit(self) -> &'static str {
        match self.trend.map(Trend::unit) {
            Some(Unit::Millis) => "ms",
            Some(_) => "tokens/s",
            None if self.name == "embeddings_per_second" => "embeddings/s",
            None => "output tokens/s",
        }
    }

    fn stats(self, s: &GroupSummary) -> Option<Stats> {
        match self.name {
            "ttft" => s.ttft_ms.clone(),
            "ttfa" => s.ttfa_ms.clone(),
            "itl" => s.itl_ms.clone(),
            "tpot" => s.tpot_ms.clone(),
            "e2e_latency" => s.e2e_latency_ms.clone(),
            "request_tokens_per_second" => s.request_tokens_per_second.clone(),
            _ => None,
        }
    }
}

/// A percentile the gate can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Percentile {
    /// Median.
    P50,
    /// 95th.
    P95,
    /// 99th.
    P99,
    /// The mean.
    Mean,
}

impl Percentile {
    fn of(self, v: &Values) -> Option<f64> {
        match self {
            Percentile::P50 => v.p50,
            Percentile::P95 => v.p95,
            Percentile::P99 => v.p99,
            Percentile::Mean => v.mean,
        }
    }

    fn quantile(self) -> Option<f64> {
        match self {
            Percentile::P50 => Some(0.5),
            Percentile::P95 => Some(0.95),
            Percentile::P99 => Some(0.99),
            Percentile::Mean => None,
        }
    }

    /// `p95`.
    pub fn name(self) -> &'static str {
        match self {
            Percentile::P50 => "p50",
            Percentile::P95 => "p95",
            Percentile::P99 => "p99",
            Percentile::Mean => "mean",
        }
    }
}

/// `--fail-on-regression 10% --regression-on ttft:p95`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gate {
    /// Largest tolerated relative change for the worse, e.g. 0.10.
    pub tolerance: f64,
    /// What is watched; default ttft p95 and e2e_latency p95.
    pub watch: Vec<(MetricDef, Percentile)>,
}

impl Gate {
    /// Parses `10%` (or `0.1`) and `METRIC:PERCENTILE` selectors.
    pub fn parse(tolerance: &str, watch: &[String]) -> Result<Gate, GateError> {
        let tolerance = match tolerance.trim().strip_suffix('%') {
            Some(pct) => pct.trim().parse::<f64>().map(|v| v / 100.0),
            None => tolerance.trim().parse::<f64>(),
        }
        .map_err(|_| GateError::Tolerance(tolerance.to_string()))?;
        if !(0.0..10.0).contains(&tolerance) {
            return Err(GateError::ToleranceRange);
        }
        let watch = if watch.is_empty() {
            vec![
                (MetricDef::by_name("ttft").expect("known"), Percentile::P95),
                (
                    MetricDef::by_name("e2e_latency").expect("known"),
                    Percentile::P95,
                ),
            ]
        } else {
            watch
                .iter()
                .map(|w| parse_watch(w))
                .collect::<Result<_, _>>()?
        };
        Ok(Gate { tolerance, watch })
    }
}

fn parse_watch(text: &str) -> Result<(MetricDef, Percentile), GateError> {
    let (metric, pct) = text.split_once(':').unwrap_or((text, "p95"));
    let names: Vec<&str> = METRICS.iter().map(|m| m.name).collect();
    let metric = MetricDef::by_name(metric)
        .filter(|m| m.trend.is_some())
        .ok_or_else(|| GateError::UnknownMetric {
            text: text.to_string(),
            known: names[..6].join(", "),
        })?;
    let pct = match pct {
        "p50" | "med" => Percentile::P50,
        "p95" => Percentile::P95,
        "p99" => Percentile::P99,
        "mean" | "avg" => Percentile::Mean,
        other => {
            return Err(GateError::UnknownPercentile {
                text: text.to_string(),
                percentile: other.to_string(),
            })
        }
    };
    Ok((metric, pct))
}

/// The whole comparison.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    /// The base run.
    pub base: RunLabel,
    /// The new run.
    pub new: RunLabel,
    /// Groups present in both, in the new run's order.
    pub groups: Vec<GroupComparison>,
    /// Groups present in only one run (`base: sweep level 16`).
    pub unmatched: Vec<String>,
    /// What a reader must know: format 1 results, different scenarios or models.
    pub notes: Vec<String>,
    /// The regressions the gate found (empty without a gate, or when none).
    pub regressions: Vec<String>,
    /// Why the gate could not judge a watched metric (no histograms, too few requests, no
    /// group in common). A gate that cannot judge fails: a pass must mean "compared, and no
    /// regression", never "nothing was compared".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unjudged: Vec<String>,
    /// The gate, as asked: `ttft p95, e2e_latency p95 worse by more than 10%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
}

impl Comparison {
    /// True when the gate failed: it found a significant regression beyond its tolerance, or
    /// it could not judge a watched metric.
    pub fn regressed(&self) -> bool {
        !self.regressions.is_empty() || !self.unjudged.is_empty()
    }
}

/// Which run a side is.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunLabel {
    /// The file it was read from.
    pub file: String,
    /// The scenario's name.
    pub scenario: String,
    /// The model.
    pub model: String,
    /// When it started.
    pub started_at: String,
    /// Whether the file carries histograms (format 2 and later).
    pub histograms: bool,
}

/// One group of both runs.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GroupComparison {
    /// The phase.
    pub scenario: String,
    /// `level 4`, `stage 2`, `all`.
    pub group: String,
    /// Each metric with data in both.
    pub metrics: Vec<MetricComparison>,
    /// TTFT percentile spectra (ms), base and new, for the overlaid chart.
    pub ttft_spectrum: [Vec<SpectrumPoint>; 2],
    /// End-to-end latency spectra (ms), base and new.
    pub e2e_spectrum: [Vec<SpectrumPoint>; 2],
}

/// One metric of one group.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct MetricComparison {
    /// Its name.
    pub metric: String,
    /// `ms`, `tokens/s`.
    pub unit: String,
    /// True when larger is worse.
    pub higher_is_worse: bool,
    /// The base run's values.
    pub base: Values,
    /// The new run's values.
    pub new: Values,
    /// Relative change of each, (new − base) / base.
    pub change: Values,
    /// Two-sided Mann-Whitney p-value, when both runs have histograms.
    pub p_value: Option<f64>,
    /// Probability that a new request's value is larger than a base request's (0.5: none).
    pub prob_new_larger: Option<f64>,
    /// 95% bootstrap interval of p95(new) − p95(base), in `unit`.
    pub p95_difference: Option<Interval>,
    /// `improved`, `regressed`, `no significant change`, `too few samples`, or `no test`.
    pub verdict: Verdict,
}

/// p50, p95, p99 and mean (a throughput has only `mean`: its one value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Values {
    /// Samples (requests); absent for a throughput.
    pub count: Option<u64>,
    /// Median.
    pub p50: Option<f64>,
    /// 95th percentile.
    pub p95: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Mean, or the throughput.
    pub mean: Option<f64>,
}

/// A confidence interval with its point estimate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Interval {
    /// The difference measured.
    pub estimate: f64,
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

/// What the statistics say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Significantly better.
    Improved,
    /// Significantly worse.
    Regressed,
    /// The difference is within noise.
    NoSignificantChange,
    /// Fewer than [`MIN_SAMPLES`] requests in a run.
    TooFewSamples,
    /// No histograms (format 1), or a metric with one value per run (throughput).
    NoTest,
}

impl Verdict {
    /// As shown to a reader.
    pub fn text(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Regressed => "regressed",
            Verdict::NoSignificantChange => "no significant change",
            Verdict::TooFewSamples => "too few samples",
            Verdict::NoTest => "no test",
        }
    }
}

fn label(file: &str, r: &RunResult) -> RunLabel {
    RunLabel {
        file: file.to_string(),
        scenario: r.scenario.name.clone(),
        model: r.target.model.clone(),
        started_at: r.started_at.clone(),
        histograms: r.aggregates.is_some(),
    }
}

fn group_of(scenario: &str, r: &crate::output::result::GroupResult) -> GroupKey {
    let group = match (r.level, r.stage, r.step) {
        (Some(level), _, _) => Group::Level(level),
        (_, Some(stage), _) => Group::Stage(stage.saturating_sub(1)),
        (_, _, Some(step)) => Group::Step(step.saturating_sub(1)),
        _ => Group::All,
    };
    GroupKey {
        scenario: scenario.into(),
        group,
    }
}

/// A histogram as the (value, count) pairs the tests take, values at bucket middles.
fn pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| {
            (
                h.median_equivalent(v.value_iterated_to()),
                v.count_at_value(),
            )
        })
        .collect()
}

/// The stored histograms of a result, if it has them.
fn histograms(file: &str, r: &RunResult) -> Result<Option<Recorder>, CompareError> {
    r.aggregates
        .as_ref()
        .map(|a| a.recorder())
        .transpose()
        .map_err(|source| CompareError::Histograms {
            file: file.to_string(),
            source,
        })
}

/// What differs between the runs besides their numbers: scenario, its text, model.
fn what_differs(base: &RunResult, new: &RunResult) -> Vec<String> {
    let mut notes = Vec::new();
    if base.scenario.name != new.scenario.name {
        notes.push(format!(
            "different scenarios: {} (base) and {} (new); groups are paired by name, so they may not be the same load",
            base.scenario.name, new.scenario.name
        ));
    } else if base.scenario.content_sha256 != new.scenario.content_sha256 {
        notes.push(format!(
            "scenario {} was edited between the runs (sha256 {} -> {}): the load may differ",
            new.scenario.name,
            &base.scenario.content_sha256[..base.scenario.content_sha256.len().min(12)],
            &new.scenario.content_sha256[..new.scenario.content_sha256.len().min(12)]
        ));
    }
    if base.target.model != new.target.model {
        notes.push(format!(
            "model: {} -> {}",
            base.target.model, new.target.model
        ));
    }
    notes
}

/// The gate's reading of one group's metrics: why a watched one cannot be judged, and which
/// regressed beyond the tolerance, each line starting with `group`.
fn judge(
    gate: &Gate,
    group: &str,
    compared: &[MetricComparison],
    (base, new): (Option<&GroupStats>, Option<&GroupStats>),
) -> (Vec<String>, Vec<String>) {
    let (mut unjudged, mut regressions) = (Vec::new(), Vec::new());
    for (metric, pct) in &gate.watch {
        let at = format!("{group}: {} {}", metric.name, pct.name());
        let Some(m) = compared.iter().find(|m| m.metric == metric.name) else {
            unjudged.push(format!("{at}: no data in one run or both"));
            continue;
        };
        match m.verdict {
            Verdict::TooFewSamples | Verdict::NoTest => {
                unjudged.push(format!("{at}: {}", unjudged_why(m)));
            }
            _ => {
                if let Some(why) = regression(m, *pct, gate.tolerance, base, new, metric) {
                    regressions.push(format!("{group}: {} {why}", metric.name));
                }
            }
        }
    }
    (unjudged, regressions)
}

/// Compares `new` against `base`; `gate` decides which changes are regressions.
pub fn compare(
    (base_file, base): (&str, &RunResult),
    (new_file, new): (&str, &RunResult),
    gate: Option<&Gate>,
) -> Result<Comparison, CompareError> {
    let base_rec = histograms(base_file, base)?;
    let new_rec = histograms(new_file, new)?;
    let mut notes = Vec::new();
    let mut unjudged = Vec::new();
    for (file, r, rec) in [(base_file, base, &base_rec), (new_file, new, &new_rec)] {
        if rec.is_none() {
            let why = r.why_no_histograms("`aggregates` are");
            notes.push(format!(
                "{file} has no histograms ({why}): summary percentiles are compared, without significance tests"
            ));
            if gate.is_some() {
                unjudged.push(format!("{file} has no histograms ({why})"));
            }
        }
    }
    notes.extend(what_differs(base, new));
    let mut groups = Vec::new();
    let mut unmatched = Vec::new();
    let mut base_groups: BTreeMap<(String, String), (&GroupSummary, GroupKey)> = BTreeMap::new();
    for s in &base.scenarios {
        for g in &s.groups {
            base_groups.insert(
                (s.name.clone(), g.label.clone()),
                (&g.summary, group_of(&s.name, g)),
            );
        }
    }
    let mut regressions = Vec::new();
    for s in &new.scenarios {
        for g in &s.groups {
            let Some((base_summary, base_key)) =
                base_groups.remove(&(s.name.clone(), g.label.clone()))
            else {
                unmatched.push(format!("new: {} {}", s.name, g.label));
                continue;
            };
            let stats = |rec: &Option<Recorder>, key: &GroupKey| {
                rec.as_ref().and_then(|r| r.group(key)).cloned()
            };
            let base_stats = stats(&base_rec, &base_key);
            let new_stats = stats(&new_rec, &group_of(&s.name, g));
            let compared = compare_group(
                base_summary,
                &g.summary,
                base_stats.as_ref(),
                new_stats.as_ref(),
            );
            if let (Some(gate), Some(_), Some(_)) = (gate, &base_rec, &new_rec) {
                let group = format!("{} {}", s.name, g.label);
                let stats = (base_stats.as_ref(), new_stats.as_ref());
                let (why_not, worse) = judge(gate, &group, &compared, stats);
                unjudged.extend(why_not);
                regressions.extend(worse);
            }
            let spectrum = |st: &Option<GroupStats>, t: Trend| {
                st.as_ref()
                    .map(|st| spectrum_of(st.trend(t)))
                    .unwrap_or_default()
            };
            groups.push(GroupComparison {
                scenario: s.name.clone(),
                group: g.label.clone(),
                metrics: compared,
                ttft_spectrum: [
                    spectrum(&base_stats, Trend::Ttft),
                    spectrum(&new_stats, Trend::Ttft),
                ],
                e2e_spectrum: [
                    spectrum(&base_stats, Trend::E2e),
                    spectrum(&new_stats, Trend::E2e),
                ],
            });
        }
    }
    unmatched.extend(base_groups.keys().map(|(s, g)| format!("base: {s} {g}")));
    if groups.is_empty() {
        notes.push("no group is in both runs: nothing to compare".into());
        if gate.is_some() {
            unjudged.push("no group is in both runs: nothing was compared".into());
        }
    }
    Ok(Comparison {
        base: label(base_file, base),
        new: label(new_file, new),
        groups,
        unmatched,
        notes,
        regressions,
        unjudged,
        gate: gate.map(|g| {
            let watched: Vec<String> = g
                .watch
                .iter()
                .map(|(m, p)| format!("{} {}", m.name, p.name()))
                .collect();
            format!(
                "{} worse by more than {}%",
                watched.join(", "),
                g.tolerance * 100.0
            )
        }),
    })
}

fn values(s: &Stats) -> Values {
    Values {
        count: Some(s.count),
        p50: Some(s.p50),
        p95: Some(s.p95),
        p99: Some(s.p99),
        mean: Some(s.mean),
    }
}

fn relative(base: Option<f64>, new: Option<f64>) -> Option<f64> {
    match (base, new) {
        (Some(b), Some(n)) if b != 0.0 => Some((n - b) / b),
        _ => None,
    }
}

fn compare_group(
    base: &GroupSummary,
    new: &GroupSummary,
    base_stats: Option<&GroupStats>,
    new_stats: Option<&GroupStats>,
) -> Vec<MetricComparison> {
    let mut out = Vec::new();
    let histograms = base_stats.zip(new_stats);
    for metric in METRICS {
        let (b, n) = match metric.trend {
            // With histograms on both sides, every value comes from them: the summary of a
            // file can be edited apart from its histograms, and the test reads the histograms.
            Some(trend) => match histograms {
                Some((bs, ns)) => {
                    let of = |st: &GroupStats| {
                        Stats::from_histogram(st.trend(trend), trend.unit().scale())
                    };
                    match (of(bs), of(ns)) {
                        (Some(b), Some(n)) => (values(&b), values(&n)),
                        _ => continue,
                    }
                }
                None => match (metric.stats(base), metric.stats(new)) {
                    (Some(b), Some(n)) => (values(&b), values(&n)),
                    _ => continue,
                },
            },
            None => {
                if base.requests == 0 || new.requests == 0 {
                    continue;
                }
                let embeddings = metric.name == "embeddings_per_second";
                if embeddings && base.embeddings_total == 0 && new.embeddings_total == 0 {
                    continue;
                }
                let one = |s: &GroupSummary| Values {
                    mean: Some(if embeddings {
                        s.embeddings_per_second
                    } else {
                        s.output_tokens_per_second
                    }),
                    ..Values::default()
                };
                match histograms {
                    Some((bs, ns)) => (
                        one(&crate::metrics::summary::summarize(bs)),
                        one(&crate::metrics::summary::summarize(ns)),
                    ),
                    None => (one(base), one(new)),
                }
            }
        };
        let change = Values {
            count: None,
            p50: relative(b.p50, n.p50),
            p95: relative(b.p95, n.p95),
            p99: relative(b.p99, n.p99),
            mean: relative(b.mean, n.mean),
        };
        let mut m = MetricComparison {
            metric: metric.name.into(),
            unit: metric.unit().into(),
            higher_is_worse: metric.higher_is_worse,
            base: b,
            new: n,
            change,
            p_value: None,
            prob_new_larger: None,
            p95_difference: None,
            verdict: Verdict::NoTest,
        };
        if let (Some(trend), Some((bs, ns))) = (metric.trend, histograms) {
            test(&mut m, trend, bs.trend(trend), ns.trend(trend));
        }
        out.push(m);
    }
    out
}

/// Why a watched metric got no verdict, for the gate's message.
fn unjudged_why(m: &MetricComparison) -> String {
    match (m.verdict, m.base.count, m.new.count) {
        (Verdict::TooFewSamples, Some(b), Some(n)) => format!(
            "{b} request(s) in the base and {n} in the new run, fewer than the {MIN_SAMPLES} a verdict needs: run more requests per group"
        ),
        _ => "no significance test was possible".into(),
    }
}

/// Fills in the tests and the verdict from the two histograms of `trend`.
fn test(m: &mut MetricComparison, trend: Trend, base: &Histogram<u64>, new: &Histogram<u64>) {
    if base.len() < MIN_SAMPLES || new.len() < MIN_SAMPLES {
        m.verdict = Verdict::TooFewSamples;
        return;
    }
    let (b, n) = (pairs(base), pairs(new));
    let Some(mw) = mann_whitney(&b, &n) else {
        return;
    };
    m.p_value = Some(mw.p_value);
    m.prob_new_larger = Some(mw.effect);
    let unit = trend.unit();
    m.p95_difference = bootstrap_quantile_diff(&b, &n, 0.95, RESAMPLES, SEED).map(|d| Interval {
        estimate: unit.shown(d.estimate),
        low: unit.shown(d.low),
        high: unit.shown(d.high),
    });
    let delta = 2.0 * mw.effect - 1.0;
    m.verdict = if mw.p_value >= ALPHA || delta.abs() < NEGLIGIBLE_DELTA {
        Verdict::NoSignificantChange
    } else if (mw.effect > 0.5) == m.higher_is_worse {
        Verdict::Regressed
    } else {
        Verdict::Improved
    };
}

/// Why a watched value is a regression, or `None`: it is worse by more than `tolerance`, and
/// the difference is significant (the Mann-Whitney verdict is "regressed" and, for a
/// percentile, the bootstrap interval of that percentile's difference excludes 0).
fn regression(
    m: &MetricComparison,
    pct: Percentile,
    tolerance: f64,
    base: Option<&GroupStats>,
    new: Option<&GroupStats>,
    metric: &MetricDef,
) -> Option<String> {
    let change = pct.of(&m.change)?;
    let worse = if m.higher_is_worse { change } else { -change };
    if worse <= tolerance || m.verdict != Verdict::Regressed {
        return None;
    }
    if let (Some(q), Some(trend), Some(b), Some(n)) = (pct.quantile(), metric.trend, base, new) {
        // The p95 interval is already in the comparison; others are drawn here.
        let (low, high) = match (pct, m.p95_difference) {
            (Percentile::P95, Some(d)) => (d.low, d.high),
            _ => {
                let d = bootstrap_quantile_diff(
                    &pairs(b.trend(trend)),
                    &pairs(n.trend(trend)),
                    q,
                    RESAMPLES,
                    SEED,
                )?;
                (d.low, d.high)
            }
        };
        let excludes_zero = if m.higher_is_worse {
            low > 0.0
        } else {
            high < 0.0
        };
        if !excludes_zero {
            return None;
        }
    }
    Some(format!(
        "{} {} -> {} ({:+.1}%, p = {:.2e})",
        pct.name(),
        fmt_value(pct.of(&m.base)?, &m.unit),
        fmt_value(pct.of(&m.new)?, &m.unit),
        change * 100.0,
        m.p_value.unwrap_or(f64::NAN)
    ))
}

/// A value with its unit, for messages.
pub fn fmt_value(v: f64, unit: &str) -> String {
    if unit == "ms" {
        crate::report::format::fmt_ms(v)
    } else {
        crate::report::format::format_number(v)
    }
}
