//! The end-of-run summary table, as plain text (pure).

use std::fmt::Write;

use super::result::RunResult;
use crate::metrics::summary::{GroupSummary, Stats};

/// `850ms`, `1.24s`, `2m05s`: compact and unambiguous.
pub fn fmt_ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{:.0}µs", ms * 1000.0)
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else if ms < 60_000.0 {
        format!("{:.2}s", ms / 1000.0)
    } else {
        let secs = (ms / 1000.0).round() as u64;
        format!("{}m{:02}s", secs / 60, secs % 60)
    }
}

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
        format!("{:.1}", s.output_tokens_per_second),
        format!("{:.2}", s.requests_per_second),
    ]
}

/// The table of every level/stage, each phase's total when it has several groups, and notes on
/// warm-up, errors and interruption.
pub fn render(result: &RunResult) -> String {
    let mut rows = vec![HEADER.map(String::from)];
    for phase in &result.scenarios {
        for g in &phase.groups {
            rows.push(row(&phase.name, &g.label, &g.summary));
        }
        if phase.groups.len() > 1 {
            rows.push(row(&phase.name, "total", &phase.total));
        }
    }
    let widths: Vec<usize> = (0..HEADER.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
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
    let w = &result.warmup;
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
    if let Some(label) = &result.aborted_by_threshold {
        let _ = writeln!(
            out,
            "stopped early: threshold {label} failed (abort_on_fail)"
        );
    }
    if !result.thresholds.is_empty() {
        let _ = writeln!(out, "\nthresholds:");
        let labels: Vec<String> = result.thresholds.iter().map(|t| t.label()).collect();
        let width = labels.iter().map(|l| l.chars().count()).max().unwrap_or(0);
        for (t, label) in result.thresholds.iter().zip(&labels) {
            let mark = if !t.passed { '✗' } else { '✓' };
            let measured = match t.observed {
                None => "no data".to_string(),
                Some(v) if t.unit == "ms" => fmt_ms(v),
                Some(v) => super::ci::format_number(v),
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
