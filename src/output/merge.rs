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

/// The scenario a result ran, and its aggregates, or why the file has not got them.
fn readable<'a>(
    file: &str,
    r: &'a RunResult,
) -> Result<(Scenario, &'a crate::output::result::Aggregates), String> {
    let (Some(aggregates), Some(definition)) = (&r.aggregates, &r.scenario.definition) else {
        return Err(format!(
            "{file} has no histograms (result format {}, written by an llm-bench before they were stored): run it again with this version",
            r.format_version
        ));
    };
    let scenario: Scenario = serde_json::from_value(definition.clone())
        .map_err(|e| format!("{file}: scenario.definition: {e}"))?;
    Ok((scenario, aggregates))
}

/// The scenario's thresholds compiled again. Metric names the checks accepted when the run was
/// written (a hook's custom metrics) are accepted again.
fn compile_thresholds(scenario: &Scenario, r: &RunResult) -> Result<Vec<Threshold>, String> {
    let mut custom: Vec<String> = scenario
        .thresholds
        .iter()
        .flatten()
        .map(|(key, _)| key.split('{').next().unwrap_or(key).to_string())
        .collect();
    custom.sort();
    custom.dedup();
    let sets: Vec<&str> = r.prompt_sets.iter().map(|s| s.name.as_str()).collect();
    thresholds::compile(scenario, &custom, &sets).map_err(|problems| {
        let list: Vec<String> = problems
            .iter()
            .map(|(at, m)| format!("{at}: {m}"))
            .collect();
        format!(
            "the scenario's thresholds do not compile: {}",
            list.join("; ")
        )
    })
}

/// `llm-bench check`: the thresholds of `r` evaluated again on its histograms.
pub fn check(file: &str, r: &RunResult) -> Result<Vec<ThresholdOutcome>, String> {
    let (scenario, aggregates) = readable(file, r)?;
    let recorder = aggregates
        .recorder()
        .map_err(|e| format!("{file}: aggregates: {e}"))?;
    let thresholds = compile_thresholds(&scenario, r)?;
    Ok(result::verdict(
        &thresholds,
        &recorder,
        &scenario,
        &r.capacity,
        false,
    ))
}

/// `llm-bench merge`: the shards of one run as one result. Refuses results of different
/// scenarios, of different splits, without histograms, and an incomplete or repeated set of
/// shards, naming the files and shards concerned.
pub fn merge(shards: &[(String, RunResult)]) -> Result<RunResult, String> {
    let Some((first_file, first)) = shards.first() else {
        return Err("no shard results given".into());
    };
    let info = |file: &str, r: &RunResult| match r.shard {
        Some(ShardInfo {
            index: Some(index),
            count,
        }) => Ok((index, count)),
        _ => Err(format!(
            "{file} is not a shard result (it was not run with --shard I/N)"
        )),
    };
    let (_, count) = info(first_file, first)?;
    let unsharded = |r: &RunResult| -> Vec<String> {
        r.scenario
            .overrides
            .iter()
            .filter(|o| !o.starts_with("--shard "))
            .cloned()
            .collect()
    };
    let mut by_index: BTreeMap<u32, &str> = BTreeMap::new();
    let mut groups = Vec::new();
    let mut scenario = None;
    for (file, r) in shards {
        let (index, n) = info(file, r)?;
        if n != count {
            return Err(format!(
                "{file} is shard {index}/{n}, {first_file} is one of {count}: not the same split"
            ));
        }
        if r.scenario.name != first.scenario.name
            || r.scenario.content_sha256 != first.scenario.content_sha256
            || unsharded(r) != unsharded(first)
        {
            return Err(format!(
                "{file} ran scenario `{}` (sha256 {}, overrides {:?}), {first_file} ran `{}` (sha256 {}, overrides {:?}): shards of different scenarios do not merge",
                r.scenario.name,
                short(&r.scenario.content_sha256),
                unsharded(r),
                first.scenario.name,
                short(&first.scenario.content_sha256),
                unsharded(first),
            ));
        }
        if let Some(other) = by_index.insert(index, file) {
            return Err(format!(
                "shard {index}/{count} is given twice: {other} and {file}"
            ));
        }
        let (defined, aggregates) = readable(file, r)?;
        if index == 0 {
            scenario = Some(defined);
        }
        for snapshot in &aggregates.groups {
            groups.push(
                crate::metrics::snapshot::restore(snapshot)
                    .map_err(|e| format!("{file}: aggregates: {e}"))?,
            );
        }
    }
    let missing: Vec<String> = (0..count)
        .filter(|i| !by_index.contains_key(i))
        .map(|i| i.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "shard(s) {} of {count} missing: the merged result would be part of the load",
            missing.join(", ")
        ));
    }
    let scenario = scenario.expect("shard 0 is among the shards: none is missing");
    let goodput = shards
        .iter()
        .any(|(_, r)| r.aggregates.as_ref().is_some_and(|a| a.goodput));
    let mut recorder = Recorder::from_groups(groups, goodput);
    recorder.warmup = warmup(shards.iter().map(|(_, r)| r));
    let thresholds = compile_thresholds(&scenario, first)?;
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
        no_data_fails: false,
        shard: Some(ShardInfo { index: None, count }),
        preconnected: shards
            .iter()
            .map(|(_, r)| r.warmup.connections_opened)
            .sum(),
    };
    let mut merged = result::assemble(facts, &recorder);
    merged.ended_at = shards
        .iter()
        .map(|(_, r)| r.ended_at.clone())
        .max()
        .unwrap_or_default();
    merged.host = first.host.clone();
    merged.timeseries = timeseries(shards.iter().map(|(_, r)| r.timeseries.as_slice()));
    Ok(merged)
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn warmup<'a>(results: impl Iterator<Item = &'a RunResult>) -> WarmupStats {
    let mut out = WarmupStats::default();
    for r in results {
        out.requests += r.warmup.requests;
        out.discarded += r.warmup.discarded;
        for (kind, n) in &r.warmup.errors_by_kind {
            *out.errors.entry(*kind).or_default() += n;
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
