//! Results read back: `merge` adds the shards of one `--shard i/n` run into one result, and
//! `check` evaluates a result's thresholds again from its histograms. Both work from files
//! alone (format 2), through the same code a run uses to write its verdict.
//!
//! Each shard's times are durations measured on its own clock from its own start; only those
//! are merged (histograms add, counters add, group spans take the widest), never wall-clock
//! timestamps from different machines, so clock skew between shards changes nothing but
//! `started_at` and `ended_at`.

use std::collections::BTreeMap;

use crate::metrics::recorder::WarmupStats;
use crate::metrics::timeseries::{larger, SeriesPoint};
use crate::metrics::Recorder;
use crate::output::result::{self, RunFacts, RunResult, ShardInfo};
use crate::scenario::Scenario;
use crate::thresholds::eval::ThresholdOutcome;
use crate::thresholds::{self, Threshold};

/// Most shards a load is split into. Far beyond any real split (a shard is a machine), and it
/// keeps the bookkeeping of a hand-edited `shard.count` bounded.
pub const MAX_SHARDS: u32 = 4096;

/// Why a result cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReadBackError {
    /// The files lack what is needed, or do not belong together.
    #[error("{0}")]
    Unusable(String),
    /// The scenario's thresholds do not compile (a renamed or unknown metric): the result is
    /// refused as `validate` refuses the scenario.
    #[error("{0}")]
    Thresholds(String),
}

use ReadBackError::Unusable;

/// The scenario a result ran, and its aggregates, or why the file has not got them.
fn readable<'a>(
    file: &str,
    r: &'a RunResult,
) -> Result<(Scenario, &'a crate::output::result::Aggregates), ReadBackError> {
    let (Some(aggregates), Some(definition)) = (&r.aggregates, &r.scenario.definition) else {
        let mut why = r.why_no_histograms("`aggregates` or `scenario.definition` are");
        if r.format_version < 2 {
            why.push_str(": run it again with this version");
        }
        return Err(Unusable(format!("{file} has no histograms ({why})")));
    };
    if r.format_version < 2 {
        return Err(Unusable(format!(
            "{file} is result format {}: only format 2 and later carry trustworthy histograms",
            r.format_version
        )));
    }
    let scenario: Scenario = serde_json::from_value(definition.clone())
        .map_err(|e| Unusable(format!("{file}: scenario.definition: {e}")))?;
    Ok((scenario, aggregates))
}

/// The custom metric names a threshold may use: those the run's hook script declared, as the
/// run stored them; for a result written before they were stored, the custom histograms it has.
/// Never the threshold keys themselves: a renamed key must fail as `validate` fails it.
fn custom_metrics(r: &RunResult) -> Vec<String> {
    let Some(aggregates) = &r.aggregates else {
        return Vec::new();
    };
    let mut names: Vec<String> = match &aggregates.custom_metrics {
        Some(names) => names.clone(),
        None => aggregates
            .groups
            .iter()
            .flat_map(|g| g.custom.keys().cloned())
            .collect(),
    };
    names.sort();
    names.dedup();
    names
}

/// The scenario's thresholds compiled again, with the names the run accepted.
fn compile_thresholds(
    file: &str,
    scenario: &Scenario,
    r: &RunResult,
) -> Result<Vec<Threshold>, ReadBackError> {
    let custom = custom_metrics(r);
    let sets: Vec<&str> = r.prompt_sets.iter().map(|s| s.name.as_str()).collect();
    thresholds::compile(scenario, &custom, &sets, false).map_err(|problems| {
        let list: Vec<String> = problems
            .iter()
            .map(|(at, m)| format!("{file}: scenario.definition{at}: {m}"))
            .collect();
        ReadBackError::Thresholds(format!(
            "the scenario's thresholds do not compile:\n{}",
            list.join("\n")
        ))
    })
}

/// Whether the run that wrote `r` failed thresholds without data (`--no-data-fails`): the only
/// way a stored outcome has no data and did not pass.
pub fn stored_no_data_fails(r: &RunResult) -> bool {
    r.thresholds
        .iter()
        .any(|t| t.no_data && !t.passed && !t.judges_steps)
}

/// `llm-bench check`: the thresholds of `r` evaluated again on its histograms.
pub fn check(
    file: &str,
    r: &RunResult,
    no_data_fails: bool,
) -> Result<Vec<ThresholdOutcome>, ReadBackError> {
    let (scenario, aggregates) = readable(file, r)?;
    let recorder = aggregates
        .recorder()
        .map_err(|e| Unusable(format!("{file}: aggregates: {e}")))?;
    let thresholds = compile_thresholds(file, &scenario, r)?;
    Ok(result::verdict(
        &thresholds,
        &recorder,
        &scenario,
        &r.capacity,
        no_data_fails,
    ))
}

/// Where the stored verdict and the one computed again disagree, one line each; empty when
/// they agree (same thresholds, same pass or fail, same observed value).
pub fn verdict_differences(stored: &[ThresholdOutcome], now: &[ThresholdOutcome]) -> Vec<String> {
    let same_value = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0),
        (a, b) => a.is_none() && b.is_none(),
    };
    let shown = |t: &ThresholdOutcome| {
        let value = t.observed.map_or("no data".into(), |v| format!("{v}"));
        let verdict = if t.passed { "passed" } else { "failed" };
        format!("{verdict}, observed {value}")
    };
    let mut out = Vec::new();
    for s in stored {
        match now.iter().find(|n| n.label() == s.label()) {
            None => out.push(format!(
                "{}: stored ({}), not in the scenario's thresholds",
                s.label(),
                shown(s)
            )),
            Some(n) if n.passed != s.passed || !same_value(n.observed, s.observed) => out.push(
                format!("{}: stored {}, computed {}", s.label(), shown(s), shown(n)),
            ),
            Some(_) => {}
        }
    }
    for n in now {
        if !stored.iter().any(|s| s.label() == n.label()) {
            out.push(format!(
                "{}: computed ({}), not in the stored verdict",
                n.label(),
                shown(n)
            ));
        }
    }
    out
}

/// `llm-bench merge`: the shards of one run as one result. Refuses results of different
/// scenarios, definitions, targets or splits, without histograms, an incomplete or repeated set
/// of shards, and (unless `allow_partial`) a shard that was interrupted, naming the files and
/// shards concerned.
pub fn merge(
    shards: &[(String, RunResult)],
    allow_partial: bool,
) -> Result<RunResult, ReadBackError> {
    let Some((first_file, first)) = shards.first() else {
        return Err(Unusable("no shard results given".into()));
    };
    let (_, count) = shard_of(first_file, first)?;
    let mut by_index: BTreeMap<u32, &str> = BTreeMap::new();
    let mut groups = Vec::new();
    let mut scenario = None;
    for (file, r) in shards {
        let index = one_run(file, r, (first_file, first), count, allow_partial)?;
        if let Some(other) = by_index.insert(index, file) {
            return Err(Unusable(format!(
                "shard {index}/{count} is given twice: {other} and {file}"
            )));
        }
        let (defined, aggregates) = readable(file, r)?;
        if index == 0 {
            scenario = Some(defined);
        }
        for snapshot in &aggregates.groups {
            groups.push(
                crate::metrics::snapshot::restore(snapshot)
                    .map_err(|e| Unusable(format!("{file}: aggregates: {e}")))?,
            );
        }
    }
    all_there(&by_index, count)?;
    let Some(scenario) = scenario else {
        return Err(Unusable("shard 0 is missing".into()));
    };
    let goodput = shards
        .iter()
        .any(|(_, r)| r.aggregates.as_ref().is_some_and(|a| a.goodput));
    let mut recorder = Recorder::from_groups(groups, goodput);
    for (_, key, stats) in recorder.all_groups() {
        crate::metrics::snapshot::within_bounds(stats).map_err(|e| {
            Unusable(format!(
                "the shards' {} {:?} added together: {e}",
                key.scenario, key.group
            ))
        })?;
    }
    recorder.warmup = warmup(shards.iter().map(|(_, r)| r));
    let thresholds = compile_thresholds(first_file, &scenario, first)?;
    let no_data_fails = stored_no_data_fails(first);
    let earliest = shards.iter().map(|(_, r)| r.started_at.clone()).min();
    let facts = RunFacts {
        scenario: &scenario,
        source: &first.scenario.source,
        content_sha256: &first.scenario.content_sha256,
        extends: &first.scenario.extends,
        overrides: unsharded(first),
        url: first.target.url.clone(),
        simulated: first.target.simulated,
        started_at: earliest.unwrap_or_default(),
        duration: std::time::Duration::from_secs_f64(
            shards
                .iter()
                .map(|(_, r)| r.duration_secs)
                .fold(0.0, f64::max),
        ),
        interrupted: shards.iter().any(|(_, r)| r.interrupted),
        aborted_by: shards
            .iter()
            .find_map(|(_, r)| r.aborted_by_threshold.clone()),
        capacity: Vec::new(),
        thresholds: &thresholds,
        no_data_fails,
        shard: Some(ShardInfo { index: None, count }),
        preconnected: shards
            .iter()
            .map(|(_, r)| r.warmup.connections_opened)
            .fold(0, u64::saturating_add),
        receive_clock: first.target.receive_clock.clone(),
    };
    let mut merged = result::assemble(facts, &recorder);
    merged.ended_at = shards
        .iter()
        .map(|(_, r)| r.ended_at.clone())
        .max()
        .unwrap_or_default();
    merged.host = first.host.clone();
    merged.target = first.target.clone();
    if let (Some(merged), Some(first)) = (&mut merged.aggregates, &first.aggregates) {
        merged.custom_metrics = first.custom_metrics.clone();
    }
    merged.timeseries = timeseries(shards.iter().map(|(_, r)| r.timeseries.as_slice()));
    Ok(merged)
}

/// `file`'s place in its split: (index, count).
fn shard_of(file: &str, r: &RunResult) -> Result<(u32, u32), ReadBackError> {
    match r.shard {
        Some(ShardInfo {
            index: Some(index),
            count,
        }) if count > 0 && count <= MAX_SHARDS && index < count => Ok((index, count)),
        Some(ShardInfo {
            index: Some(index),
            count,
        }) => Err(Unusable(format!(
            "{file} says it is shard {index}/{count}: expected 0 <= index < count <= {MAX_SHARDS}"
        ))),
        _ => Err(Unusable(format!(
            "{file} is not a shard result (it was not run with --shard I/N)"
        ))),
    }
}

/// The command-line overrides of a run but its `--shard`.
fn unsharded(r: &RunResult) -> Vec<String> {
    r.scenario
        .overrides
        .iter()
        .filter(|o| !o.starts_with("--shard "))
        .cloned()
        .collect()
}

/// `file`'s shard index, once it is shown to be part of the same run as the first shard:
/// the same split, scenario, target and definition, and not interrupted unless allowed.
fn one_run(
    file: &str,
    r: &RunResult,
    (first_file, first): (&str, &RunResult),
    count: u32,
    allow_partial: bool,
) -> Result<u32, ReadBackError> {
    let (index, n) = shard_of(file, r)?;
    if n != count {
        return Err(Unusable(format!(
            "{file} is shard {index}/{n}, {first_file} is one of {count}: not the same split"
        )));
    }
    if r.scenario.name != first.scenario.name
        || r.scenario.content_sha256 != first.scenario.content_sha256
        || unsharded(r) != unsharded(first)
    {
        return Err(Unusable(format!(
            "{file} ran scenario `{}` (sha256 {}, overrides {:?}), {first_file} ran `{}` (sha256 {}, overrides {:?}): shards of different scenarios do not merge",
            r.scenario.name,
            short(&r.scenario.content_sha256),
            unsharded(r),
            first.scenario.name,
            short(&first.scenario.content_sha256),
            unsharded(first),
        )));
    }
    // The same file text can resolve to other targets (`${VAR}`), and a result can be
    // edited: what ran, not what was written, must agree.
    let target = |r: &RunResult| {
        format!(
            "{} {} at {} ({})",
            r.target.backend, r.target.model, r.target.url, r.target.api
        )
    };
    if target(r) != target(first) {
        return Err(Unusable(format!(
            "{file} ran against {}, {first_file} against {}: shards of different targets do not merge",
            target(r),
            target(first)
        )));
    }
    if definition(r) != definition(first) {
        return Err(Unusable(format!(
            "{file} and {first_file} hold different scenario definitions (thresholds, load or target edited, or resolved from other variables): shards of different runs do not merge"
        )));
    }
    if r.interrupted && !allow_partial {
        return Err(Unusable(format!(
            "{file} was interrupted: its shard is part of its load, so the merged result would be too; --allow-partial merges it anyway and marks the result interrupted"
        )));
    }
    Ok(index)
}

/// `Err` naming the shards of `count` that are not in `by_index`.
fn all_there(by_index: &BTreeMap<u32, &str>, count: u32) -> Result<(), ReadBackError> {
    // `count` is bounded, and only the first few gaps are named.
    if by_index.len() != count as usize {
        let missing: Vec<String> = (0..count)
            .filter(|i| !by_index.contains_key(i))
            .take(10)
            .map(|i| i.to_string())
            .collect();
        let more = count as usize - by_index.len() - missing.len();
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return Err(Unusable(format!(
            "shard(s) {}{more} of {count} missing: the merged result would be part of the load",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// The scenario as run, less what differs between shards by design (each draws prompts from
/// a seed of its own).
fn definition(r: &RunResult) -> Option<serde_json::Value> {
    let mut d = r.scenario.definition.clone()?;
    if let Some(map) = d.as_object_mut() {
        map.remove("seed");
    }
    Some(d)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn warmup<'a>(results: impl Iterator<Item = &'a RunResult>) -> WarmupStats {
    let mut out = WarmupStats::default();
    for r in results {
        out.requests = out.requests.saturating_add(r.warmup.requests);
        out.discarded = out.discarded.saturating_add(r.warmup.discarded);
        for (kind, n) in &r.warmup.errors_by_kind {
            let total = out.errors.entry(*kind).or_default();
            *total = total.saturating_add(*n);
        }
    }
    out
}

/// Per-second series added point by point (each from its own shard's start). Counts add;
/// the TTFT percentiles of a second are the largest any shard saw, an upper bound.
fn timeseries<'a>(series: impl Iterator<Item = &'a [SeriesPoint]>) -> Vec<SeriesPoint> {
    let mut by_second: BTreeMap<u64, SeriesPoint> = BTreeMap::new();
    for points in series {
        for p in points {
            let at = by_second.entry(p.t_secs).or_insert_with(|| SeriesPoint {
                t_secs: p.t_secs,
                width_secs: p.width_secs,
                ..SeriesPoint::default()
            });
            at.width_secs = at.width_secs.max(p.width_secs);
            at.active_vus += p.active_vus;
            at.add_counts(p);
            at.ttft_p50_ms = larger(at.ttft_p50_ms, p.ttft_p50_ms);
            at.ttft_p95_ms = larger(at.ttft_p95_ms, p.ttft_p95_ms);
            at.lag_p95_ms = larger(at.lag_p95_ms, p.lag_p95_ms);
        }
    }
    by_second.into_values().collect()
}
