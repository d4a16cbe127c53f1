//! The end-of-run summary table, as plain text (pure).

use std::fmt::Write;

use super::format::{fmt_ms, format_number};
use crate::metrics::summary::{GroupSummary, Stats};
use crate::output::result::RunResult;

fn stat(s: &Option<Stats>, pick: fn(&Stats) -> f64) -> String {
    s.as_ref()
        .map_or_else(|| "-".to_string(), |s| fmt_ms(pick(s)))
}

const HEADER: [&str; 12] = [
    "scenario",
    "group",
    "reqs",
    "errors",
    "e2e p50",
    "e2e p95",
    "e2e p99",
    "ttft p50",
    "ttft p95",
    "itl p50",
    "out tok/s",
    "req/s",
];

fn row(scenario: &str, group: &str, s: &GroupSummary) -> [String; 12] {
    [
        scenario.to_string(),
        group.to_string(),
        s.requests.to_string(),
        if s.errors == 0 {
            "0".into()
        } else {
            format!("{} ({:.1}%)", s.errors, s.error_rate * 100.0)
        },
        stat(&s.e2e_latency_ms, |s| s.p50),
        stat(&s.e2e_latency_ms, |s| s.p95),
        stat(&s.e2e_latency_ms, |s| s.p99),
        stat(&s.ttft_ms, |s| s.p50),
        stat(&s.ttft_ms, |s| s.p95),
        stat(&s.itl_ms, |s| s.p50),
        format!("{:.1}", s.throughput_per_second()),
        format!("{:.2}", s.requests_per_second),
    ]
}

/// Lays out rows under a header, first two columns left-aligned, the rest right-aligned.
fn layout(out: &mut String, rows: &[Vec<String>]) {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                if c < 2 {
                    format!("{cell:<w$}")
                } else {
                    format!("{cell:>w$}")
                }
            })
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        if i == 0 {
            let _ = writeln!(
                out,
                "{}",
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
}

/// Open-model groups: service latency next to latency from the intended start.
fn open_model_rows(result: &RunResult) -> Vec<Vec<String>> {
    let mut rows = vec![[
        "scenario",
        "group",
        "sent",
        "dropped",
        "lag p99",
        "ttft p95",
        "from sched",
        "e2e p95",
        "from sched",
        "goodput/s",
    ]
    .map(String::from)
    .to_vec()];
    for phase in &result.scenarios {
        for g in phase
            .groups
            .iter()
            .filter(|g| g.summary.schedule_lag_ms.is_some())
        {
            let s = &g.summary;
            rows.push(vec![
                phase.name.clone(),
                g.label.clone(),
                s.requests.to_string(),
                s.dropped_iterations.to_string(),
                stat(&s.schedule_lag_ms, |s| s.p99),
                stat(&s.ttft_ms, |s| s.p95),
                stat(&s.ttft_from_schedule_ms, |s| s.p95),
                stat(&s.e2e_latency_ms, |s| s.p95),
                stat(&s.e2e_from_schedule_ms, |s| s.p95),
                s.goodput_rps
                    .map_or_else(|| "-".into(), |g| format!("{g:.2}")),
            ]);
        }
    }
    rows
}

/// A warning when the run sent requests and not one succeeded: its latencies are then "no data"
/// and only throughput and error thresholds can catch it.
pub fn every_request_failed(result: &RunResult) -> Option<String> {
    let t = &result.total;
    (t.requests > 0 && t.successes == 0).then(|| {
        let kinds: Vec<String> = t
            .errors_by_kind
            .iter()
            .map(|(kind, n)| format!("{kind} {n}"))
            .collect();
        format!(
            "warning: every request failed ({} of {}: {}); no latency was measured",
            t.errors,
            t.requests,
            kinds.join(", ")
        )
    })
}

/// One row per run of `llm-bench run a.yaml b.yaml …`: which scenario (model) met its gate,
/// and at what latency and throughput.
pub fn side_by_side(results: &[RunResult]) -> String {
    let mut rows = vec![[
        "scenario",
        "model",
        "reqs",
        "errors",
        "ttft p50",
        "ttft p95",
        "e2e p95",
        "out tok/s",
        "thresholds",
    ]
    .map(String::from)
    .to_vec()];
    for r in results {
        let t = &r.total;
        let failed = r.thresholds.iter().filter(|t| !t.passed).count();
        let gating = r.thresholds.iter().filter(|t| !t.judges_steps).count();
        let verdict = match (gating, failed) {
            (0, _) => "-".to_string(),
            (n, 0) => format!("✓ {n} passed"),
            (n, f) => format!("✗ {f} of {n} failed"),
        };
        rows.push(vec![
            r.scenario.name.clone(),
            r.target.model.clone(),
            t.requests.to_string(),
            t.errors.to_string(),
            stat(&t.ttft_ms, |s| s.p50),
            stat(&t.ttft_ms, |s| s.p95),
            stat(&t.e2e_latency_ms, |s| s.p95),
            format!("{:.1}", t.output_tokens_per_second),
            verdict,
        ]);
    }
    let mut out = String::new();
    layout(&mut out, &rows);
    out
}

/// The run's title line and its table, as printed at the end of `llm-bench run`.
pub fn summary(r: &RunResult) -> String {
    let target = if r.target.simulated {
        "built-in simulator"
    } else {
        r.target.backend.as_str()
    };
    format!(
        "\n{} — {} on {} ({target})\n{}",
        r.scenario.name,
        r.target.model,
        r.target.url,
        render(r)
    )
}

/// The table of every level/stage, each phase's total when it has several groups, and notes on
/// warm-up, errors and interruption.
pub fn render(result: &RunResult) -> String {
    let mut header = HEADER.map(String::from);
    if result.target.api == "embeddings" {
        // An embedding model's capacity is embeddings/s; it streams no tokens.
        header[10] = "emb/s".into();
    }
    let mut rows = vec![header];
    for phase in &result.scenarios {
        for g in &phase.groups {
            rows.push(row(&phase.name, &g.label, &g.summary));
        }
        if phase.groups.len() > 1 {
            rows.push(row(&phase.name, "total", &phase.total));
        }
    }
    let mut out = String::new();
    layout(
        &mut out,
        &rows.iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
    );
    let open = open_model_rows(result);
    if open.len() > 1 {
        let _ = writeln!(out, "\nopen model: latency from the actual send and from the intended start (the difference is queueing that a closed-loop tool would not see)");
        layout(&mut out, &open);
    }
    if !result.total.custom.is_empty() {
        let lines: Vec<String> = result
            .total
            .custom
            .iter()
            .map(|(name, s)| {
                format!(
                    "{name} avg {} p95 {}",
                    format_number(s.mean),
                    format_number(s.p95)
                )
            })
            .collect();
        let _ = writeln!(out, "custom metrics: {}", lines.join(", "));
    }
    if !result.total.checks.is_empty() {
        let lines: Vec<String> = result
            .total
            .checks
            .iter()
            .map(|(name, c)| {
                format!(
                    "{name} {:.1}% ({}/{})",
                    c.rate * 100.0,
                    c.passes,
                    c.passes + c.fails
                )
            })
            .collect();
        let _ = writeln!(out, "checks: {}", lines.join(", "));
    }
    for (title, list, min) in [
        ("prompt set", &result.prompt_sets, 2),
        ("entry tag", &result.entry_tags, 1),
    ] {
        if list.len() < min {
            continue;
        }
        let mut rows = vec![[
            title,
            "",
            "reqs",
            "errors",
            "ttft p50",
            "ttft p95",
            "e2e p95",
            "out tok/s",
        ]
        .map(String::from)
        .to_vec()];
        for p in list {
            let s = &p.summary;
            rows.push(vec![
                p.name.clone(),
                String::new(),
                s.requests.to_string(),
                s.errors.to_string(),
                stat(&s.ttft_ms, |s| s.p50),
                stat(&s.ttft_ms, |s| s.p95),
                stat(&s.e2e_latency_ms, |s| s.p95),
                format!("{:.1}", s.output_tokens_per_second),
            ]);
        }
        let _ = writeln!(out);
        layout(&mut out, &rows);
    }
    for phase in &result.scenarios {
        if let Some(knee) = &phase.knee {
            let latency = match (knee.latency_knee_level, knee.queueing_level) {
                (Some(l), _) => format!("TTFT p95 diverges from p50 at level {l}"),
                (None, Some(l)) => format!(
                    "TTFT p95 stays with p50, but from level {l} the median itself grows: every request queues"
                ),
                (None, None) => match knee.apart_from_level {
                    Some(l) => format!(
                        "TTFT p95 is far from p50 already at level {l}, and pulls no further away"
                    ),
                    None => "TTFT p95 stays with p50 at every level".to_string(),
                },
            };
            let saturation = match knee.saturation_level {
                _ if knee.no_throughput => String::new(),
                Some(l) => format!("; throughput stops growing after level {l}"),
                None => "; throughput grows at every level".to_string(),
            };
            let _ = writeln!(out, "knee ({}): {latency}{saturation}", phase.name);
        }
    }
    for c in &result.capacity {
        let found = c
            .capacity
            .map_or("none: the first step already failed".to_string(), |v| {
                format!("{} {}", format_number(v), c.unit)
            });
        let bound = c.first_failure.map_or(String::new(), |v| {
            format!(", first failure at {}", format_number(v))
        });
        let _ = writeln!(
            out,
            "capacity ({}): {found}{bound} (precision {:.0}%)",
            c.scenario,
            c.precision * 100.0
        );
        for step in &c.steps {
            let verdict = if step.passed {
                "pass".to_string()
            } else {
                format!("fail: {}", step.failed.join("; "))
            };
            let _ = writeln!(
                out,
                "  step {:>2}  {:>10}  {verdict}",
                step.step,
                format_number(step.value)
            );
        }
    }
    let t = &result.total;
    if !t.errors_by_kind.is_empty() {
        let kinds: Vec<String> = t
            .errors_by_kind
            .iter()
            .map(|(k, n)| format!("{k}={n}"))
            .collect();
        let _ = writeln!(out, "errors by kind: {}", kinds.join(", "));
    }
    if t.tokens_estimated_requests > 0 {
        let _ = writeln!(
            out,
            "note: {} request(s) had no server token count; their tokens are chunk counts",
            t.tokens_estimated_requests
        );
    }
    if t.reconnected_requests > 0 {
        let _ = writeln!(
            out,
            "note: {} request(s) sent again: the server closed a kept-alive connection before answering",
            t.reconnected_requests
        );
    }
    let w = &result.warmup;
    if w.discarded > 0 {
        let _ = writeln!(out, "discarded: {} request(s) in the warm-up part of capacity-search steps, excluded from all metrics", w.discarded);
    }
    if w.requests > 0 {
        let _ = writeln!(
            out,
            "warm-up: {} request(s), {} error(s), excluded from all metrics",
            w.requests, w.errors
        );
    }
    if t.interrupted > 0 {
        let _ = writeln!(
            out,
            "interrupted: {} request(s) cut off when the run stopped",
            t.interrupted
        );
    }
    if result.interrupted {
        let _ = writeln!(out, "the run was interrupted: these results are partial");
    }
    if let Some(warning) = every_request_failed(result) {
        let _ = writeln!(out, "{warning}");
    }
    if let Some(label) = &result.aborted_by_threshold {
        let _ = writeln!(
            out,
            "stopped early: threshold {label} failed (abort_on_fail)"
        );
    }
    out.push_str(&thresholds(&result.thresholds));
    out
}

/// The thresholds block: each with its mark and measured value.
pub fn thresholds(outcomes: &[crate::thresholds::eval::ThresholdOutcome]) -> String {
    let mut out = String::new();
    if !outcomes.is_empty() {
        let _ = writeln!(out, "\nthresholds:");
        let labels: Vec<String> = outcomes.iter().map(|t| t.label()).collect();
        let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        for (t, label) in outcomes.iter().zip(&labels) {
            let mark = if t.judges_steps {
                '↪'
            } else if !t.passed {
                '✗'
            } else {
                '✓'
            };
            let measured = match t.observed {
                None if t.judges_steps => {
                    "judged each capacity-search step, not the run (gate it with capacity: [\"value>=N\"])".to_string()
                }
                None => "no data".to_string(),
                Some(v) if t.unit == "ms" => fmt_ms(v),
                Some(v) => format_number(v),
            };
            let from = t
                .from_slo
                .as_deref()
                .map(|s| format!("  (from {s})"))
                .unwrap_or_default();
            let _ = writeln!(out, "  {mark} {label:<width$}  {measured}{from}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_durations_by_magnitude() {
        assert_eq!(fmt_ms(0.25), "250µs");
        assert_eq!(fmt_ms(850.4), "850ms");
        assert_eq!(fmt_ms(1240.0), "1.24s");
        assert_eq!(fmt_ms(125_000.0), "2m05s");
    }
}
