//! `llm-bench report --format csv`: one row per group and metric, for spreadsheets. Groups are
//! each level, stage and step, each phase's total and the run's total; metrics are every
//! distribution (with its percentiles) and every rate or count (in `value`).

use crate::metrics::summary::{GroupSummary, Stats};
use crate::output::result::RunResult;

const HEADER: [&str; 14] = [
    "scenario", "group", "metric", "unit", "count", "value", "mean", "min", "p50", "p90", "p95",
    "p99", "p99_9", "max",
];

fn distributions(s: &GroupSummary) -> [(&'static str, &'static str, &Option<Stats>); 15] {
    [
        ("ttft", "ms", &s.ttft_ms),
        ("ttfa", "ms", &s.ttfa_ms),
        ("itl", "ms", &s.itl_ms),
        ("tpot", "ms", &s.tpot_ms),
        ("e2e_latency", "ms", &s.e2e_latency_ms),
        (
            "request_tokens_per_second",
            "tokens/s",
            &s.request_tokens_per_second,
        ),
        ("output_tokens", "tokens", &s.output_tokens),
        ("prompt_tokens", "tokens", &s.prompt_tokens),
        ("queue_wait", "ms", &s.queue_wait_ms),
        ("load", "ms", &s.load_ms),
        ("prefill", "ms", &s.prefill_ms),
        ("schedule_lag", "ms", &s.schedule_lag_ms),
        ("ttft_from_schedule", "ms", &s.ttft_from_schedule_ms),
        ("e2e_from_schedule", "ms", &s.e2e_from_schedule_ms),
        ("connect", "ms", &s.connect_ms),
    ]
}

fn scalars(s: &GroupSummary) -> Vec<(&'static str, &'static str, f64)> {
    let mut out = vec![
        ("requests", "requests", s.requests as f64),
        ("errors", "requests", s.errors as f64),
        ("error_rate", "ratio", s.error_rate),
        ("interrupted", "requests", s.interrupted as f64),
        (
            "dropped_iterations",
            "arrivals",
            s.dropped_iterations as f64,
        ),
        ("requests_per_second", "requests/s", s.requests_per_second),
        (
            "output_tokens_per_second",
            "tokens/s",
            s.output_tokens_per_second,
        ),
        (
            "prompt_tokens_per_second",
            "tokens/s",
            s.prompt_tokens_per_second,
        ),
        (
            "output_tokens_total",
            "tokens",
            s.output_tokens_total as f64,
        ),
        ("wall_time", "s", s.wall_time_secs),
    ];
    if let Some(g) = s.goodput_rps {
        out.push(("goodput", "requests/s", g));
    }
    if let Some(g) = s.goodput_ratio {
        out.push(("goodput_ratio", "ratio", g));
    }
    if s.embeddings_total > 0 {
        out.push(("embeddings_total", "embeddings", s.embeddings_total as f64));
        out.push((
            "embeddings_per_second",
            "embeddings/s",
            s.embeddings_per_second,
        ));
    }
    out
}

fn group_rows(
    w: &mut csv::Writer<Vec<u8>>,
    scenario: &str,
    group: &str,
    s: &GroupSummary,
) -> csv::Result<()> {
    let num = |v: f64| v.to_string();
    for (metric, unit, stats) in distributions(s) {
        if let Some(st) = stats {
            w.write_record([
                scenario,
                group,
                metric,
                unit,
                &st.count.to_string(),
                "",
                &num(st.mean),
                &num(st.min),
                &num(st.p50),
                &num(st.p90),
                &num(st.p95),
                &num(st.p99),
                &num(st.p99_9),
                &num(st.max),
            ])?;
        }
    }
    for (metric, unit, value) in scalars(s) {
        w.write_record([
            scenario,
            group,
            metric,
            unit,
            "",
            &num(value),
            "",
            "",
            "",
            "",
            "",
            "",
            "",
            "",
        ])?;
    }
    Ok(())
}

/// The CSV text of a result.
pub fn render(result: &RunResult) -> csv::Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(HEADER)?;
    for sc in &result.scenarios {
        for g in &sc.groups {
            group_rows(&mut w, &sc.name, &g.label, &g.summary)?;
        }
        group_rows(&mut w, &sc.name, "total", &sc.total)?;
    }
    group_rows(&mut w, "", "total", &result.total)?;
    let bytes = w.into_inner().map_err(|e| e.into_error())?;
    Ok(String::from_utf8(bytes).expect("the CSV writer writes the UTF-8 it is given"))
}
