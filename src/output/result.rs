//! The result document (`results/<name>-<timestamp>.json`), described by
//! `schemas/result.schema.json`, which is generated from these types.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::files::{self, WriteError};
use crate::backend::ErrorKind;
use crate::executor::open::CapacityReport;
use crate::metrics::knee::{self, Knee, LevelPoint};
use crate::metrics::recorder::{GroupStats, Recorder};
use crate::metrics::registry::{Trend, Unit};
use crate::metrics::summary::{quantile, summarize_with, GroupSummary};
use crate::metrics::timeseries::SeriesPoint;
use crate::metrics::Group;
use crate::scenario::{Phase, Scenario};
use crate::thresholds::eval::{evaluate_all, outcome, ThresholdOutcome};
use crate::thresholds::parse::TagKey;
use crate::thresholds::{Metric, Threshold};

/// Bumped whenever a field changes meaning or disappears, or a feature starts to need a new
/// one: 2 added the histograms (`aggregates`) and the scenario as run (`scenario.definition`),
/// which `compare`, `merge` and `check` read. Version 1 files still re-render and compare
/// without significance tests.
pub const FORMAT_VERSION: u32 = 2;

/// A whole run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunResult {
    /// Version of this document's layout.
    pub format_version: u32,
    /// The tool that wrote it.
    pub tool: ToolInfo,
    /// The scenario that ran.
    pub scenario: ScenarioInfo,
    /// What was benchmarked.
    pub target: TargetInfo,
    /// Start of the run, RFC 3339 UTC.
    pub started_at: String,
    /// End of the run, RFC 3339 UTC.
    pub ended_at: String,
    /// Wall time of the whole run including warm-up, seconds.
    pub duration_secs: f64,
    /// The machine that generated the load.
    pub host: HostInfo,
    /// True when the run was stopped early (Ctrl-C) and the results are partial.
    pub interrupted: bool,
    /// Warm-up requests, excluded from every metric.
    pub warmup: WarmupSummary,
    /// Each load phase with its levels or stages.
    pub scenarios: Vec<ScenarioResult>,
    /// All phases together.
    pub total: GroupSummary,
    /// Per-second series over the run.
    pub timeseries: Vec<SeriesPoint>,
    /// Every threshold with its measured value, evaluated at the end of the run.
    pub thresholds: Vec<ThresholdOutcome>,
    /// The `abort_on_fail` threshold that stopped the run early, if one did.
    pub aborted_by_threshold: Option<String>,
    /// The outcome of each capacity-search scenario.
    pub capacity: Vec<CapacityReport>,
    /// Percentile spectra of the whole run (capacity-search steps excluded), for the
    /// distribution chart.
    pub spectrum: Spectrum,
    /// Every prompt set's share of the run (capacity-search steps excluded). Absent in results
    /// written before prompt libraries existed, which still re-render.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prompt_sets: Vec<Breakdown>,
    /// Every entry tag's share of the run: requests whose prompt entry carries the tag.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_tags: Vec<Breakdown>,
    /// Which slice of the load this run was (`--shard i/n`), or how many shards were merged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardInfo>,
    /// Every histogram and counter of the run, per group, so later analysis (`compare`,
    /// `merge`, `check`) works from the file alone. Absent in format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregates: Option<Aggregates>,
}

impl RunResult {
    /// Why a result has no histograms, `missing` naming what is absent (`` `aggregates` are ``):
    /// written before results stored them (format 1), or edited since.
    pub fn why_no_histograms(&self, missing: &str) -> String {
        if self.format_version < 2 {
            format!(
                "result format {}, written before they were stored",
                self.format_version
            )
        } else {
            format!(
                "result format {} stores them, but its {missing} missing: the file was edited",
                self.format_version
            )
        }
    }
}

/// Which slice of a sharded load a result holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShardInfo {
    /// This shard, 0-based; absent in a merged result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// How many shards the load was split into.
    pub count: u32,
}

/// The run's aggregates, as `llm-bench merge` and `check` read them back.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Aggregates {
    /// Whether goodput was measured (the thresholds set per-request limits).
    pub goodput: bool,
    /// Every group with samples, and its per-prompt-set and per-tag shares.
    pub groups: Vec<crate::metrics::snapshot::GroupSnapshot>,
    /// The hook script's custom metrics that thresholds name, so `check` accepts exactly
    /// those names again. Absent in results written before it was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_metrics: Option<Vec<String>>,
}

impl Aggregates {
    /// The recorder's aggregates, for a result file, with the custom metrics `thresholds` name.
    pub fn of(recorder: &Recorder, thresholds: &[Threshold]) -> Aggregates {
        let mut custom: Vec<String> = thresholds
            .iter()
            .filter(|t| t.metric == Metric::Custom)
            .map(|t| t.key.name.clone())
            .collect();
        custom.sort();
        custom.dedup();
        Aggregates {
            custom_metrics: Some(custom),
            goodput: recorder.has_limits(),
            groups: recorder
                .all_groups()
                .filter_map(|(split, key, stats)| {
                    crate::metrics::snapshot::snapshot(&split, key, stats)
                })
                .collect(),
        }
    }

    /// A recorder holding these aggregates again.
    pub fn recorder(&self) -> Result<Recorder, crate::metrics::snapshot::SnapshotError> {
        let groups = self
            .groups
            .iter()
            .map(crate::metrics::snapshot::restore)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Recorder::from_groups(groups, self.goodput))
    }
}

/// One prompt set, or one entry tag, over the whole run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Breakdown {
    /// The set's name (`inline` for prompts written in the scenario), or the tag.
    pub name: String,
    /// Its requests' metrics.
    #[serde(flatten)]
    pub summary: GroupSummary,
}

/// Merges a split (per prompt set or per entry tag) over every measured group.
pub fn summarize_split(
    recorder: &Recorder,
    split: &BTreeMap<(crate::metrics::GroupKey, std::sync::Arc<str>), GroupStats>,
) -> Vec<Breakdown> {
    let mut sets: BTreeMap<String, GroupStats> = BTreeMap::new();
    for ((key, name), stats) in split {
        if !matches!(key.group, Group::Step(_) | Group::Discarded(_)) {
            sets.entry(name.to_string()).or_default().merge(stats);
        }
    }
    sets.into_iter()
        .map(|(name, stats)| Breakdown {
            name,
            summary: summarize_with(&stats, recorder.has_limits()),
        })
        .collect()
}

/// HDR percentile spectra: value at percentiles 0, 50, 75, 87.5, ... (1 − 1/2^k), 100.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Spectrum {
    /// Time to first token.
    pub ttft_ms: Vec<SpectrumPoint>,
    /// End-to-end latency.
    pub e2e_ms: Vec<SpectrumPoint>,
    /// Inter-token latency (every gap). Absent in results written before it existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub itl_ms: Vec<SpectrumPoint>,
}

/// One point of a spectrum.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
pub struct SpectrumPoint {
    /// Percentile, 0 to 100.
    pub percentile: f64,
    /// Value at it, ms.
    pub value: f64,
}

/// The spectrum of one histogram in µs, as ms: 1 − 1/2^k for k = 0..=16, then the maximum.
pub fn spectrum_of(h: &hdrhistogram::Histogram<u64>) -> Vec<SpectrumPoint> {
    if h.is_empty() {
        return Vec::new();
    }
    let mut points: Vec<SpectrumPoint> = (0..=16)
        .map(|k| 1.0 - 0.5f64.powi(k))
        .map(|q| SpectrumPoint {
            percentile: q * 100.0,
            value: Unit::Millis.shown(quantile(h, q) as f64),
        })
        .collect();
    points.push(SpectrumPoint {
        percentile: 100.0,
        value: Unit::Millis.shown(h.median_equivalent(h.max()) as f64),
    });
    points
}

/// The tool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolInfo {
    /// "llm-bench".
    pub name: String,
    /// Its version.
    pub version: String,
    /// The git commit it was built from ("unknown" outside a checkout). Absent in results
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

/// The scenario.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioInfo {
    /// `name` from the file.
    pub name: String,
    /// `description` from the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The file path, or `<built-in quickstart>`.
    pub source: String,
    /// SHA-256 of the file text (and of every file it extends): two results with the same hash
    /// ran the same scenario, unless `overrides` says otherwise.
    pub content_sha256: String,
    /// The files the scenario extends, nearest first. Absent when it extends none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extends: Vec<String>,
    /// The scenario as it ran (files merged, variables and overrides applied), which `check`
    /// and `merge` compile the thresholds from. Absent in format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<serde_json::Value>,
    /// What the command line changed (`--set path=value`, `--concurrency 4`, `--model m`,
    /// `--target-url …`, `--requests-per-level 10`). Absent when nothing was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<String>,
}

/// The server under test.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TargetInfo {
    /// API family (`ollama`).
    pub backend: String,
    /// Base URL called.
    pub url: String,
    /// Model name.
    pub model: String,
    /// Endpoint family (`chat` or `generate`).
    pub api: String,
    /// True when the target was the built-in simulator.
    pub simulated: bool,
    /// How token counts the server did not give were made: `estimate` (4 characters per
    /// token, and answers counted in chunks), `server` (its `/tokenize`), `file` (a local
    /// `tokenizer.json`), or `mixed` (a real tokenizer's, with some answers it could not count
    /// estimated). Absent in older
    /// results, which all estimated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_counts: Option<String>,
    /// Which clock stamped the reads every time is computed from: `kernel` (the socket's
    /// receive time, Linux `SO_TIMESTAMPNS`), `user` (the instant each read returned), or
    /// `mixed`. Absent when the transport does not say (older results, reqwest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_clock: Option<String>,
}

/// The load generator's machine.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct HostInfo {
    /// Logical CPUs available.
    pub cores: usize,
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub arch: String,
}

impl HostInfo {
    /// This machine.
    pub fn current() -> Self {
        Self {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            os: std::env::consts::OS.to_string(),
            arch: std::env::consts::ARCH.to_string(),
        }
    }
}

/// Warm-up counts.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct WarmupSummary {
    /// Warm-up requests sent.
    pub requests: u64,
    /// Requests in the discarded start of capacity-search steps (also in no metric).
    pub discarded: u64,
    /// Of which failed.
    pub errors: u64,
    /// Failures by category.
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
    /// Connections opened (and kept alive) after the warm-up and before the measured load, so
    /// no measured request pays for connection setup. Absent in older results.
    #[serde(default, skip_serializing_if = "crate::metrics::registry::is_zero")]
    pub connections_opened: u64,
}

/// One load phase.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ScenarioResult {
    /// Its name in the file.
    pub name: String,
    /// Its executor.
    pub executor: String,
    /// Its levels (concurrency-levels), stages (ramping-vus) or single group (constant-vus).
    pub groups: Vec<GroupResult>,
    /// The phase as a whole.
    pub total: GroupSummary,
    /// Concurrency sweeps: where queueing starts and throughput stops growing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub knee: Option<Knee>,
}

/// One level or stage.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct GroupResult {
    /// "level 5", "stage 2" or "all".
    pub label: String,
    /// The concurrency level, for concurrency-levels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<u32>,
    /// The 1-based stage, for ramping-vus and ramping-arrival-rate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
    /// The 1-based step, for capacity-search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step: Option<usize>,
    /// The offered rate (per time unit), for rate-levels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Its metrics.
    #[serde(flatten)]
    pub summary: GroupSummary,
}

/// Builds per-phase and total summaries from the recorder; `phases` gives each phase's name and
/// executor in display order (phases that recorded nothing still appear).
pub fn summarize_phases(
    recorder: &Recorder,
    phases: &[(String, String)],
) -> (Vec<ScenarioResult>, GroupSummary, Spectrum) {
    let mut run_total = GroupStats::default();
    let mut scenarios = Vec::new();
    for (name, executor) in phases {
        let mut phase_total = GroupStats::default();
        let mut groups = Vec::new();
        for (key, stats) in recorder
            .groups()
            .iter()
            .filter(|(k, _)| &*k.scenario == name)
        {
            phase_total.merge(stats);
            let (level, stage, step) = match key.group {
                Group::Level(n) => (Some(n), None, None),
                Group::Stage(i) => (None, Some(i + 1), None),
                Group::Step(i) | Group::Discarded(i) => (None, None, Some(i + 1)),
                Group::All => (None, None, None),
            };
            groups.push(GroupResult {
                label: key.group.to_string(),
                level,
                stage,
                step,
                rate: None,
                summary: summarize_with(stats, recorder.has_limits()),
            });
        }
        run_total.merge(&phase_total);
        // A sweep without a TTFT (embeddings, or every request failed) has no knee to speak of.
        let knee = (executor == "concurrency-levels"
            && groups
                .iter()
                .filter(|g| g.summary.ttft_ms.is_some())
                .count()
                > 1)
        .then(|| knee_of(&groups));
        scenarios.push(ScenarioResult {
            name: name.clone(),
            executor: executor.clone(),
            groups,
            total: summarize_with(&phase_total, recorder.has_limits()),
            knee,
        });
    }
    let mut measured = GroupStats::default();
    for (_, stats) in recorder
        .groups()
        .iter()
        .filter(|(k, _)| !matches!(k.group, Group::Step(_) | Group::Discarded(_)))
    {
        measured.merge(stats);
    }
    let spectrum = Spectrum {
        ttft_ms: spectrum_of(measured.trend(Trend::Ttft)),
        e2e_ms: spectrum_of(measured.trend(Trend::E2e)),
        itl_ms: spectrum_of(measured.trend(Trend::Itl)),
    };
    (
        scenarios,
        summarize_with(&run_total, recorder.has_limits()),
        spectrum,
    )
}

/// The groups of a rate-levels phase are its stages: each is named and marked by its rate.
fn name_rate_levels(results: &mut [ScenarioResult], scenario: &Scenario) {
    for result in results {
        let Some(Phase::RateLevels(p)) = scenario.scenarios.get(&result.name) else {
            continue;
        };
        for g in &mut result.groups {
            if let Some(&rate) = g.stage.and_then(|s| p.rates.get(s - 1)) {
                g.rate = Some(rate);
                g.label = format!("rate {}", fmt_rate(rate));
            }
        }
    }
}

/// `4`, `0.5`, `2.25`: a rate as the scenario would write it.
fn fmt_rate(rate: f64) -> String {
    let text = format!("{rate:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A run that is only capacity searches has no group outside their steps: its spectrum is the
/// steps at which every threshold held, the latency the found capacity delivers.
fn passing_steps_spectrum(recorder: &Recorder, reports: &[CapacityReport]) -> Spectrum {
    let mut held = GroupStats::default();
    for report in reports {
        for step in report.steps.iter().filter(|s| s.passed) {
            let key = crate::metrics::GroupKey {
                scenario: report.scenario.as_str().into(),
                group: Group::Step(step.step - 1),
            };
            if let Some(stats) = recorder.group(&key) {
                held.merge(stats);
            }
        }
    }
    Spectrum {
        ttft_ms: spectrum_of(held.trend(Trend::Ttft)),
        e2e_ms: spectrum_of(held.trend(Trend::E2e)),
        itl_ms: spectrum_of(held.trend(Trend::Itl)),
    }
}

fn knee_of(groups: &[GroupResult]) -> Knee {
    let points: Vec<LevelPoint> = groups
        .iter()
        .filter_map(|g| {
            let ttft = g.summary.ttft_ms.as_ref()?;
            Some(LevelPoint {
                level: g.level?,
                ttft_p50: ttft.p50,
                ttft_p95: ttft.p95,
                throughput: g.summary.output_tokens_per_second,
            })
        })
        .collect();
    knee::find(&points)
}

/// What a run knew besides its aggregates, for [`assemble`].
#[derive(Debug)]
pub struct RunFacts<'a> {
    /// The scenario as run (after command-line overrides).
    pub scenario: &'a Scenario,
    /// Where the scenario came from.
    pub source: &'a str,
    /// SHA-256 of the scenario file's text (and its bases').
    pub content_sha256: &'a str,
    /// The files the scenario extends.
    pub extends: &'a [String],
    /// What the command line changed.
    pub overrides: Vec<String>,
    /// The URL requests went to.
    pub url: String,
    /// True when that URL is the built-in simulator's.
    pub simulated: bool,
    /// Start of the run, RFC 3339 UTC (also in the file names).
    pub started_at: String,
    /// Wall time of the whole run including warm-up.
    pub duration: Duration,
    /// Ctrl-C stopped the run.
    pub interrupted: bool,
    /// The `abort_on_fail` threshold that stopped the run, if one did.
    pub aborted_by: Option<String>,
    /// Each capacity search's outcome.
    pub capacity: Vec<CapacityReport>,
    /// The compiled thresholds, evaluated here on the final aggregates.
    pub thresholds: &'a [Threshold],
    /// A threshold without data fails (`--no-data-fails`) instead of passing as in k6.
    pub no_data_fails: bool,
    /// The slice of a sharded load this run was.
    pub shard: Option<ShardInfo>,
    /// Connections opened before the measured load.
    pub preconnected: u64,
    /// Which clock stamped the answers' reads (`kernel`, `user`, `mixed`), when known.
    pub receive_clock: Option<String>,
}

/// The result document of a run from its facts and its aggregates.
pub fn assemble(facts: RunFacts<'_>, recorder: &Recorder) -> RunResult {
    let scenario = facts.scenario;
    let phase_names: Vec<(String, String)> = scenario
        .scenarios
        .iter()
        .map(|(n, p)| (n.clone(), p.executor_name().to_string()))
        .collect();
    let (mut scenarios, total, mut spectrum) = summarize_phases(recorder, &phase_names);
    name_rate_levels(&mut scenarios, scenario);
    if spectrum.ttft_ms.is_empty() && spectrum.e2e_ms.is_empty() {
        spectrum = passing_steps_spectrum(recorder, &facts.capacity);
    }
    RunResult {
        format_version: FORMAT_VERSION,
        tool: ToolInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            commit: Some(env!("LLM_BENCH_GIT_COMMIT").into()),
        },
        scenario: ScenarioInfo {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            source: facts.source.to_string(),
            content_sha256: facts.content_sha256.to_string(),
            extends: facts.extends.to_vec(),
            definition: serde_json::to_value(scenario).ok(),
            overrides: facts.overrides,
        },
        target: TargetInfo {
            backend: scenario.target.backend.as_str().into(),
            url: facts.url,
            model: scenario.target.model.clone(),
            api: scenario.target.api.as_str().into(),
            simulated: facts.simulated,
            // `server` only when the server counted every answer: one it could not count
            // (it failed, or answered an impossible count) was estimated.
            token_counts: Some(
                match (&scenario.target.tokenizer, total.tokens_estimated_requests) {
                    (Some(crate::scenario::TokenizerKind::Named(_)), 0) => "server",
                    (Some(crate::scenario::TokenizerKind::File(_)), 0) => "file",
                    (Some(_), _) => "mixed",
                    (None, _) => "estimate",
                }
                .into(),
            ),
            receive_clock: facts.receive_clock.clone(),
        },
        started_at: facts.started_at,
        ended_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        duration_secs: facts.duration.as_secs_f64(),
        host: HostInfo::current(),
        interrupted: facts.interrupted,
        warmup: WarmupSummary {
            requests: recorder.warmup.requests,
            discarded: recorder.warmup.discarded,
            errors: recorder.warmup.errors.values().sum(),
            errors_by_kind: recorder.warmup.errors.clone(),
            connections_opened: facts.preconnected,
        },
        scenarios,
        total,
        timeseries: recorder.series.points(),
        thresholds: verdict(
            facts.thresholds,
            recorder,
            scenario,
            &facts.capacity,
            facts.no_data_fails,
        ),
        aborted_by_threshold: facts.aborted_by,
        capacity: facts.capacity,
        spectrum,
        prompt_sets: summarize_split(recorder, recorder.by_prompt_set()),
        entry_tags: summarize_split(recorder, recorder.by_entry_tag()),
        shard: facts.shard,
        aggregates: Some(Aggregates::of(recorder, facts.thresholds)),
    }
}

/// Every threshold evaluated on the run's aggregates: the verdict of a run, and of `check` on
/// a result read back.
pub fn verdict(
    thresholds: &[Threshold],
    recorder: &Recorder,
    scenario: &Scenario,
    capacity: &[CapacityReport],
    no_data_fails: bool,
) -> Vec<ThresholdOutcome> {
    thresholds
        .iter()
        .zip(evaluate_all(thresholds, recorder))
        .map(|(threshold, mut t)| {
            if threshold.metric == Metric::Capacity {
                t = outcome(threshold, found_capacity(threshold, capacity));
            } else if t.no_data {
                t.judges_steps = judges_capacity_steps(threshold, scenario);
            }
            t.passed &= !(no_data_fails && t.no_data && !t.judges_steps);
            t
        })
        .collect()
}

/// The capacity a threshold on `capacity` reads: the lowest found by the searches it names (by
/// its `scenario` tag, or all), 0 for a search where no step held; no data without a search.
fn found_capacity(threshold: &Threshold, reports: &[CapacityReport]) -> Option<f64> {
    let named = threshold.key.tag(TagKey::Scenario);
    reports
        .iter()
        .filter(|r| named.is_none_or(|n| n == r.scenario))
        .map(|r| r.capacity.unwrap_or(0.0))
        .reduce(f64::min)
}

/// Whether a threshold without data for the run is one a capacity search uses to judge its
/// steps (the rule the searches themselves apply).
fn judges_capacity_steps(threshold: &Threshold, scenario: &Scenario) -> bool {
    scenario.scenarios.iter().any(|(name, phase)| {
        matches!(phase, Phase::CapacitySearch(_)) && threshold.applies_to_scenario(name)
    })
}

/// The JSON Schema of [`RunResult`] as committed in `schemas/result.schema.json`.
pub fn result_schema_json() -> serde_json::Result<String> {
    crate::scenario::schema::pretty(&crate::scenario::schema::generate::<RunResult>())
}

/// `name` made safe for a file name.
pub fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if stem.is_empty() {
        "run".into()
    } else {
        stem
    }
}

/// `2026-11-28T08:05:03.123Z` -> `20261128T080503.123Z`, for file names.
pub fn compact_timestamp(rfc3339: &str) -> String {
    rfc3339
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '.')
        .collect()
}

/// The result as pretty JSON with a trailing newline.
pub fn to_json(result: &RunResult) -> serde_json::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(result)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Writes `json` as `<dir>/<stem>.json` (or `<stem>-2.json`, … if taken) and then as
/// `<dir>/benchmark_latest.json`, each whole or not at all; returns the first and its stem.
pub fn save(json: &[u8], dir: &Path, stem: &str) -> Result<(PathBuf, String), WriteError> {
    let (path, stem) = files::create_unique(dir, stem, ".json", json)?;
    files::replace(&dir.join("benchmark_latest.json"), json)?;
    Ok((path, stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe() {
        assert_eq!(file_stem("llama3.2:1b sweep"), "llama3.2-1b-sweep");
        assert_eq!(file_stem(""), "run");
        assert_eq!(
            compact_timestamp("2026-11-28T08:05:03.012Z"),
            "20261128T080503.012Z"
        );
    }
}
