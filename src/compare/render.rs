//! A [`Comparison`] for people: a terminal table, a Markdown pull-request comment, an HTML
//! page from `templates/compare.html.tera` (with the base and new percentile spectra of each
//! group overlaid).

use std::fmt::Write;

use serde::Serialize;
use tera::{Context, Tera};

use super::{fmt_value, Comparison, MetricComparison, Values, Verdict};
use crate::output::result::SpectrumPoint;
use crate::report::svg::{LineChart, Series, XAxis};

/// The built-in HTML comparison template.
pub const HTML_TEMPLATE: &str = include_str!("../../templates/compare.html.tera");

fn change(c: Option<f64>) -> String {
    c.map_or_else(|| "-".into(), |c| format!("{:+.1}%", c * 100.0))
}

fn pair(m: &MetricComparison, pick: fn(&Values) -> Option<f64>) -> String {
    let v = |x: Option<f64>| x.map_or_else(|| "-".into(), |v| fmt_value(v, &m.unit));
    format!(
        "{} → {} ({})",
        v(pick(&m.base)),
        v(pick(&m.new)),
        change(pick(&m.change))
    )
}

fn p_value(m: &MetricComparison) -> String {
    m.p_value.map_or_else(|| "-".into(), |p| format!("{p:.2e}"))
}

fn effect(m: &MetricComparison) -> String {
    m.prob_new_larger
        .map_or_else(|| "-".into(), |e| format!("{e:.2}"))
}

/// One row per metric: (metric, p50, p95, p99, mean, p, P(new>base), verdict).
fn rows(metrics: &[MetricComparison]) -> Vec<[String; 8]> {
    metrics
        .iter()
        .map(|m| {
            [
                m.metric.clone(),
                pair(m, |v| v.p50),
                pair(m, |v| v.p95),
                pair(m, |v| v.p99),
                pair(m, |v| v.mean),
                p_value(m),
                effect(m),
                m.verdict.text().to_string(),
            ]
        })
        .collect()
}

const HEADER: [&str; 8] = [
    "metric",
    "p50",
    "p95",
    "p99",
    "mean / value",
    "p (MW)",
    "P(new>base)",
    "verdict",
];

fn header_lines(c: &Comparison, out: &mut String) {
    let side = |name: &str, l: &super::RunLabel| {
        format!(
            "{name}: {} ({}, {}, {})",
            l.file, l.scenario, l.model, l.started_at
        )
    };
    let _ = writeln!(out, "{}", side("base", &c.base));
    let _ = writeln!(out, "{}", side("new ", &c.new));
}

/// The terminal table.
pub fn text(c: &Comparison) -> String {
    let mut out = String::new();
    header_lines(c, &mut out);
    for g in &c.groups {
        let _ = writeln!(out, "\n{} {}", g.scenario, g.group);
        let rows = rows(&g.metrics);
        let mut widths = HEADER.map(str::len);
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut l = String::new();
            for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w - cell.chars().count();
                if i == 0 || i == 7 {
                    let _ = write!(l, "{cell}{}  ", " ".repeat(pad));
                } else {
                    let _ = write!(l, "{}{cell}  ", " ".repeat(pad));
                }
            }
            l.trim_end().to_string()
        };
        let _ = writeln!(out, "  {}", line(&HEADER.map(String::from)));
        for row in &rows {
            let _ = writeln!(out, "  {}", line(row));
        }
    }
    footer(c, &mut out, "");
    out
}

fn footer(c: &Comparison, out: &mut String, bullet: &str) {
    if !c.unmatched.is_empty() {
        let _ = writeln!(out, "\n{bullet}only in one run: {}", c.unmatched.join(", "));
    }
    for note in &c.notes {
        let _ = writeln!(out, "{bullet}note: {note}");
    }
    let _ = writeln!(
        out,
        "\n{bullet}p (MW): two-sided Mann-Whitney U on every request of both runs; P(new>base): the chance a new request's value exceeds a base one's (0.5 = no difference). A change needs p < {} and |2 P(new>base) - 1| >= {} (not negligible); fewer than {} requests in a run gives no verdict.",
        super::ALPHA,
        super::NEGLIGIBLE_DELTA,
        super::MIN_SAMPLES
    );
    if let Some(gate) = &c.gate {
        if !c.regressed() {
            let _ = writeln!(out, "{bullet}gate ({gate}): passed");
        } else {
            let why = if c.regressions.is_empty() {
                "FAILED, it cannot judge"
            } else {
                "FAILED"
            };
            let _ = writeln!(out, "{bullet}gate ({gate}): {why}");
            for r in &c.regressions {
                let _ = writeln!(out, "{bullet}  regression: {r}");
            }
            for u in &c.unjudged {
                let _ = writeln!(out, "{bullet}  cannot judge: {u}");
            }
        }
    }
}

/// The Markdown comment for a pull request.
pub fn markdown(c: &Comparison) -> String {
    let mut out = String::from("### llm-bench: new run against the base\n\n");
    let cell = |s: &str| s.replace('|', "\\|");
    let _ = writeln!(
        out,
        "base `{}` ({}, {}) → new `{}` ({}, {})\n",
        cell(&c.base.file),
        cell(&c.base.model),
        c.base.started_at,
        cell(&c.new.file),
        cell(&c.new.model),
        c.new.started_at
    );
    if let Some(gate) = &c.gate {
        let verdict = match (c.regressions.is_empty(), c.unjudged.is_empty()) {
            (true, true) => "✅ no regression",
            (true, false) => "❌ the gate cannot judge",
            (false, _) => "❌ regression",
        };
        let _ = writeln!(out, "**{verdict}** (gate: {gate})\n");
        for r in &c.regressions {
            let _ = writeln!(out, "- {}", cell(r));
        }
        for u in &c.unjudged {
            let _ = writeln!(out, "- cannot judge: {}", cell(u));
        }
        if c.regressed() {
            out.push('\n');
        }
    }
    for g in &c.groups {
        let _ = writeln!(out, "#### {} {}\n", cell(&g.scenario), cell(&g.group));
        let _ = writeln!(out, "| {} |", HEADER.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(HEADER.len()));
        for row in rows(&g.metrics) {
            let marked: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(i, s)| match (i, s.as_str()) {
                    (7, "regressed") => "**regressed**".into(),
                    _ => cell(s),
                })
                .collect();
            let _ = writeln!(out, "| {} |", marked.join(" | "));
        }
        out.push('\n');
    }
    let mut rest = String::new();
    footer(c, &mut rest, "");
    for line in rest
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.contains("gate ("))
    {
        let _ = writeln!(out, "<sub>{}</sub><br>", line.trim().replace('<', "&lt;"));
    }
    out
}

/// The view the HTML template reads: the comparison, and one overlaid spectrum chart per group.
#[derive(Serialize)]
struct View<'a> {
    comparison: &'a Comparison,
    groups: Vec<GroupView>,
    explanation: String,
}

#[derive(Serialize)]
struct GroupView {
    title: String,
    rows: Vec<RowView>,
    chart: String,
}

#[derive(Serialize)]
struct RowView {
    cells: [String; 8],
    /// CSS class of the verdict cell.
    class: &'static str,
}

fn series(name: &str, points: &[SpectrumPoint], dashed: bool) -> Series {
    Series {
        name: name.into(),
        points: points.iter().map(|p| (p.percentile, p.value)).collect(),
        dashed,
    }
}

/// The HTML comparison report; `template` replaces the built-in one.
pub fn html(c: &Comparison, template: Option<&str>) -> tera::Result<String> {
    let groups = c
        .groups
        .iter()
        .map(|g| {
            let title = format!("{} {}", g.scenario, g.group);
            let chart = LineChart {
                title: &format!("{title}: latency by percentile, base (dashed) vs new"),
                y_label: "ms",
                x: XAxis::Percentile,
                series: vec![
                    series("TTFT base", &g.ttft_spectrum[0], true),
                    series("TTFT new", &g.ttft_spectrum[1], false),
                    series("e2e base", &g.e2e_spectrum[0], true),
                    series("e2e new", &g.e2e_spectrum[1], false),
                ]
                .into_iter()
                .filter(|s| !s.points.is_empty())
                .collect(),
                marker: None,
            }
            .render();
            GroupView {
                title,
                rows: rows(&g.metrics)
                    .into_iter()
                    .zip(&g.metrics)
                    .map(|(cells, m)| RowView {
                        cells,
                        class: verdict_class(m.verdict),
                    })
                    .collect(),
                chart,
            }
        })
        .collect();
    let mut explanation = String::new();
    footer(c, &mut explanation, "");
    let view = View {
        comparison: c,
        groups,
        explanation,
    };
    let mut tera = Tera::default();
    tera.add_raw_template("compare.html", template.unwrap_or(HTML_TEMPLATE))?;
    tera.render("compare.html", &Context::from_serialize(&view)?)
}

fn verdict_class(v: Verdict) -> &'static str {
    match v {
        Verdict::Improved => "pass",
        Verdict::Regressed => "fail",
        _ => "nodata",
    }
}
