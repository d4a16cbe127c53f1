//! What a person reads: live [`progress`], the terminal `table`, the [`ci`] outputs (summary.md, junit.xml) and
//! the reports: the view model built from a [`RunResult`] (charts rendered to SVG, "how to read
//! this" notes), and its rendering through tera templates. The templates are embedded; a
//! directory or a file given by the user overrides them.

mod charts;
pub mod ci;
pub mod csv;
pub mod format;
pub mod progress;
pub(crate) mod svg;
pub(crate) mod table;

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;
use tera::{Context, Tera, Value};

use crate::output::result::RunResult;
use charts::{boundaries, capacity_charts, sweep_charts};
pub use charts::{CapacityCharts, Charts, ScenarioCharts};
use format::{fmt_ms, format_number};
use svg::{stacked_bars, Extras, LineChart, Series, XAxis};

/// The embedded HTML report template.
pub const HTML_TEMPLATE: &str = include_str!("../../templates/report.html.tera");
/// The embedded Markdown summary template.
pub const MARKDOWN_TEMPLATE: &str = include_str!("../../templates/summary.md.tera");

/// Output formats of `llm-bench report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Self-contained HTML with charts.
    Html,
    /// Markdown summary (pull-request comments, step summaries).
    Md,
    /// The result JSON itself, re-serialised.
    Json,
    /// One row per group and metric (percentiles in columns), for spreadsheets.
    Csv,
}

/// The templates in use: embedded, or overridden.
#[derive(Debug, Clone)]
pub struct Templates {
    /// `report.html.tera`.
    pub html: String,
    /// `summary.md.tera`.
    pub markdown: String,
}

impl Default for Templates {
    fn default() -> Self {
        Self {
            html: HTML_TEMPLATE.into(),
            markdown: MARKDOWN_TEMPLATE.into(),
        }
    }
}

impl Templates {
    /// The embedded templates, each replaced by `dir/<name>` when that file exists.
    pub fn load(dir: Option<&Path>) -> std::io::Result<Self> {
        let mut t = Self::default();
        if let Some(dir) = dir {
            for (name, slot) in [
                ("report.html.tera", &mut t.html),
                ("summary.md.tera", &mut t.markdown),
            ] {
                let path = dir.join(name);
                if path.exists() {
                    *slot = crate::input::read_to_string(&path)?;
                }
            }
        }
        Ok(t)
    }
}

/// One row of the results table, formatted for display ("-" where there is no data).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Scenario name.
    pub scenario: String,
    /// "level 4", "stage 2", "step 3" or "all".
    pub group: String,
    /// Requests that ended.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Arrivals skipped (open model).
    pub dropped: u64,
    /// Latency percentiles and rates, formatted ("850ms", "1.24s").
    pub e2e_p50: String,
    /// e2e p95.
    pub e2e_p95: String,
    /// e2e p99.
    pub e2e_p99: String,
    /// TTFT p50.
    pub ttft_p50: String,
    /// TTFT p95.
    pub ttft_p95: String,
    /// ITL p50.
    pub itl_p50: String,
    /// TPOT p50.
    pub tpot_p50: String,
    /// Open model: schedule lag p99.
    pub lag_p99: String,
    /// Open model: TTFT p95 from the intended start.
    pub ttft_p95_from_schedule: String,
    /// Open model: e2e p95 from the intended start.
    pub e2e_p95_from_schedule: String,
    /// Output tokens/s, one decimal.
    pub output_tps: String,
    /// Requests/s, two decimals.
    pub rps: String,
    /// Goodput requests/s, or "-".
    pub goodput: String,
    /// Whether the group has open-model (schedule) data.
    pub open_model: bool,
    /// A total row (a phase's, or the run's).
    pub total: bool,
}

/// One table row from a group's summary.
fn row(scenario: &str, group: &str, s: &crate::metrics::GroupSummary, total: bool) -> Row {
    let ms = |st: &Option<crate::metrics::Stats>, f: fn(&crate::metrics::Stats) -> f64| {
        st.as_ref()
            .map_or_else(|| "-".to_string(), |st| fmt_ms(f(st)))
    };
    Row {
        scenario: scenario.to_string(),
        group: group.to_string(),
        requests: s.requests,
        errors: s.errors,
        dropped: s.dropped_iterations,
        e2e_p50: ms(&s.e2e_latency_ms, |s| s.p50),
        e2e_p95: ms(&s.e2e_latency_ms, |s| s.p95),
        e2e_p99: ms(&s.e2e_latency_ms, |s| s.p99),
        ttft_p50: ms(&s.ttft_ms, |s| s.p50),
        ttft_p95: ms(&s.ttft_ms, |s| s.p95),
        itl_p50: ms(&s.itl_ms, |s| s.p50),
        tpot_p50: ms(&s.tpot_ms, |s| s.p50),
        lag_p99: ms(&s.schedule_lag_ms, |s| s.p99),
        ttft_p95_from_schedule: ms(&s.ttft_from_schedule_ms, |s| s.p95),
        e2e_p95_from_schedule: ms(&s.e2e_from_schedule_ms, |s| s.p95),
        // An embedding model's capacity is embeddings/s (`throughput_label` says which).
        output_tps: format!("{:.1}", s.throughput_per_second()),
        rps: format!("{:.2}", s.requests_per_second),
        goodput: s
            .goodput_rps
            .map_or_else(|| "-".into(), |g| format!("{g:.2}")),
        open_model: s.schedule_lag_ms.is_some(),
        total,
    }
}

/// Every level, stage and step.
fn rows(result: &RunResult) -> Vec<Row> {
    table_rows(result)
        .into_iter()
        .filter(|r| !r.total)
        .collect()
}

/// [`rows`] with a phase's total after its groups when it has several, and the run's total
/// when there are several phases (as the terminal table prints them).
fn table_rows(result: &RunResult) -> Vec<Row> {
    let mut out = Vec::new();
    for sc in &result.scenarios {
        out.extend(
            sc.groups
                .iter()
                .map(|g| row(&sc.name, &g.label, &g.summary, false)),
        );
        if sc.groups.len() > 1 {
            out.push(row(&sc.name, "total", &sc.total, true));
        }
    }
    if result.scenarios.len() > 1 {
        out.push(row("all phases", "total", &result.total, true));
    }
    out
}

/// A table of the run split by prompt set or entry tag.
#[derive(Debug, Clone, Serialize)]
pub struct Breakdown {
    /// "prompt set" or "entry tag".
    pub title: String,
    /// One row per set or tag (`scenario` holds its name).
    pub rows: Vec<Row>,
}

/// The per-prompt-set table (with two or more sets) and the per-tag table (with any tag).
fn breakdowns(result: &RunResult) -> Vec<Breakdown> {
    [
        ("prompt set", &result.prompt_sets, 2),
        ("entry tag", &result.entry_tags, 1),
    ]
    .into_iter()
    .filter(|(_, list, min)| list.len() >= *min)
    .map(|(title, list, _)| Breakdown {
        title: title.into(),
        rows: list
            .iter()
            .map(|b| row(&b.name, "", &b.summary, false))
            .collect(),
    })
    .collect()
}

/// The render context of every template: what template authors can use.
#[derive(Debug, Clone, Serialize)]
pub struct ReportView {
    /// The whole result document (every field of results/*.json).
    pub result: RunResult,
    /// The results table, one row per level, stage or step, formatted for display.
    pub rows: Vec<Row>,
    /// `rows` with total rows (`total: true`): each phase's after its groups when it has
    /// several, and the run's when there are several phases.
    pub table_rows: Vec<Row>,
    /// True when any row has open-model data.
    pub has_open_model: bool,
    /// The run split by prompt set and by entry tag (each only when it tells something).
    pub breakdowns: Vec<Breakdown>,
    /// Charts as inline SVG markup (insert with `| safe`).
    pub charts: Charts,
    /// Thresholds that failed.
    pub failed_thresholds: usize,
    /// Thresholds that are a verdict on the run (those that only judged capacity-search steps
    /// are not).
    pub gating_thresholds: usize,
    /// Short "how to read this" notes that apply to this run.
    pub notes: Vec<String>,
    /// The header of the rows' `output_tps` column: `output tok/s`, or `embeddings/s` for
    /// `api: embeddings`.
    pub throughput_label: String,
}

fn notes(result: &RunResult) -> Vec<String> {
    let mut notes = Vec::new();
    for s in result
        .scenarios
        .iter()
        .filter(|s| s.executor == "concurrency-levels")
    {
        let points: Vec<(f64, f64)> = s
            .groups
            .iter()
            .filter_map(|g| Some((f64::from(g.level?), g.summary.e2e_latency_ms.as_ref()?.p50)))
            .collect();
        if let (Some(first), Some(last)) = (points.first(), points.last()) {
            let concurrency = last.0 / first.0;
            let latency = last.1 / first.1;
            if concurrency >= 2.0 && latency >= 0.7 * concurrency {
                notes.push(format!(
                    "{}: median latency grows about in proportion to concurrency ({}× users, {:.1}× latency): requests are served one after another, without batching. More parallel slots (OLLAMA_NUM_PARALLEL) or a batching server raise throughput.",
                    s.name, format_number(concurrency), latency
                ));
            }
        }
        let widening = s.groups.windows(2).any(|w| {
            let ratio = |g: &crate::output::result::GroupResult| {
                g.summary.e2e_latency_ms.as_ref().map(|e| e.p99 / e.p95)
            };
            matches!((ratio(&w[0]), ratio(&w[1])), (Some(a), Some(b)) if b > a * 1.2 && b > 1.2)
        });
        if widening {
            notes.push(format!("{}: the p99 pulls away from the p95 at higher levels: the signature of queueing, where an unlucky request waits behind several others.", s.name));
        }
    }
    if result.scenarios.iter().flat_map(|s| &s.groups).any(|g| {
        g.summary
            .schedule_lag_ms
            .as_ref()
            .is_some_and(|l| l.p95 > 100.0)
    }) {
        notes.push("Open model: latency from the intended start is well above latency from the actual send. That gap is queueing on the client, which a closed-loop tool would not report (coordinated omission).".into());
    }
    let reconnected = result.total.reconnected_requests;
    if reconnected > 0 {
        notes.push(format!("{reconnected} request(s) were sent again because the server closed its kept-alive connection before answering (llama-server does after every streamed answer). They are not errors; their latency includes the lost attempt."));
    }
    let opened = result.total.connections_opened;
    if opened > 0 {
        let connect = result.total.connect_ms.as_ref().map_or(String::new(), |c| {
            format!(" (connect p50 {:.2} ms, p99 {:.2} ms)", c.p50, c.p99)
        });
        notes.push(format!("{opened} request(s) waited for a new TCP connection{connect}: their TTFT and e2e include it. The run opens one per VU before the load; more mean the server closed connections or more requests were in flight than were opened."));
    }
    notes
}

/// Builds the view model.
pub fn view(result: &RunResult) -> ReportView {
    let sweeps = result
        .scenarios
        .iter()
        .filter(|s| matches!(s.executor.as_str(), "concurrency-levels" | "rate-levels"))
        .map(sweep_charts)
        .collect();
    let spectrum_series = |name: &str, points: &[crate::output::result::SpectrumPoint]| Series {
        name: name.into(),
        points: points
            .iter()
            .filter(|p| p.percentile < 100.0)
            .map(|p| (p.percentile, p.value))
            .collect(),
        dashed: false,
    };
    let spectrum = LineChart {
        title: "Latency by percentile (HDR percentile spectrum)",
        y_label: "ms",
        x: XAxis::Percentile,
        series: vec![
            spectrum_series("TTFT", &result.spectrum.ttft_ms),
            spectrum_series("e2e", &result.spectrum.e2e_ms),
        ],
        marker: None,
    }
    .render();
    let itl_spectrum = (!result.spectrum.itl_ms.is_empty()).then(|| {
        LineChart {
            title: "Inter-token latency by percentile",
            y_label: "ms",
            x: XAxis::Percentile,
            series: vec![spectrum_series("ITL", &result.spectrum.itl_ms)],
            marker: None,
        }
        .render()
    });
    let ts = &result.timeseries;
    let per_second =
        |f: &dyn Fn(&crate::metrics::timeseries::SeriesPoint) -> f64| -> Vec<(f64, f64)> {
            ts.iter()
                .map(|p| (p.t_secs as f64, f(p) / p.width_secs.max(1) as f64))
                .collect()
        };
    // Where each level, stage and phase began, marked on every time chart.
    let time_marks = Extras {
        boundaries: boundaries(result),
        ..Extras::default()
    };
    let load_over_time = LineChart {
        title: "Load over time",
        y_label: "per second / VUs",
        x: XAxis::Linear("seconds since start".into()),
        series: vec![
            Series {
                name: "active VUs".into(),
                points: ts
                    .iter()
                    .map(|p| (p.t_secs as f64, p.active_vus as f64))
                    .collect(),
                dashed: false,
            },
            Series {
                name: "completed/s".into(),
                points: per_second(&|p| p.completed as f64),
                dashed: false,
            },
            Series {
                name: "errors/s".into(),
                points: per_second(&|p| p.errors as f64),
                dashed: true,
            },
        ],
        marker: None,
    }
    .render_with(&time_marks);
    let tokens_over_time = LineChart {
        title: "Output tokens/s over time",
        y_label: "output tokens/s",
        x: XAxis::Linear("seconds since start".into()),
        series: vec![Series {
            name: "output tokens/s".into(),
            points: per_second(&|p| p.output_tokens as f64),
            dashed: false,
        }],
        marker: None,
    }
    .render_with(&time_marks);
    let ttft_over_time = LineChart {
        title: "TTFT p50 and p95 over time (requests completed each second)",
        y_label: "ms",
        x: XAxis::Linear("seconds since start".into()),
        series: vec![
            Series {
                name: "TTFT p50".into(),
                points: ts
                    .iter()
                    .filter_map(|p| Some((p.t_secs as f64, p.ttft_p50_ms?)))
                    .collect(),
                dashed: false,
            },
            Series {
                name: "TTFT p95".into(),
                points: ts
                    .iter()
                    .filter_map(|p| Some((p.t_secs as f64, p.ttft_p95_ms?)))
                    .collect(),
                dashed: false,
            },
        ],
        marker: None,
    }
    .render_with(&time_marks);
    let open_model = ts.iter().any(|p| p.scheduled > 0);
    let offered_over_time = open_model.then(|| {
        LineChart {
            title: "Open model: offered vs sent over time",
            y_label: "per second",
            x: XAxis::Linear("seconds since start".into()),
            series: vec![
                Series {
                    name: "offered (due)".into(),
                    points: per_second(&|p| p.scheduled as f64),
                    dashed: true,
                },
                Series {
                    name: "sent".into(),
                    points: per_second(&|p| p.started as f64),
                    dashed: false,
                },
                Series {
                    name: "dropped".into(),
                    points: per_second(&|p| p.dropped as f64),
                    dashed: false,
                },
            ],
            marker: None,
        }
        .render_with(&time_marks)
    });
    let lag_over_time = open_model.then(|| {
        LineChart {
            title: "Open model: schedule lag p95 over time",
            y_label: "ms",
            x: XAxis::Linear("seconds since start".into()),
            series: vec![Series {
                name: "schedule lag p95".into(),
                points: ts
                    .iter()
                    .filter_map(|p| Some((p.t_secs as f64, p.lag_p95_ms?)))
                    .collect(),
                dashed: false,
            }],
            marker: None,
        }
        .render_with(&time_marks)
    });
    let kinds: Vec<String> = result
        .total
        .errors_by_kind
        .keys()
        .map(|k| k.to_string())
        .collect();
    let counts: Vec<f64> = result
        .total
        .errors_by_kind
        .values()
        .map(|n| *n as f64)
        .collect();
    let errors = stacked_bars(
        "Errors by kind",
        "requests",
        &kinds,
        &[("errors".to_string(), counts)],
    );
    let checks = (!result.total.checks.is_empty()).then(|| {
        let names: Vec<String> = result.total.checks.keys().cloned().collect();
        let passed = result
            .total
            .checks
            .values()
            .map(|c| c.passes as f64)
            .collect();
        let failed = result
            .total
            .checks
            .values()
            .map(|c| c.fails as f64)
            .collect();
        stacked_bars(
            "Checks by name",
            "requests",
            &names,
            &[
                ("passed".to_string(), passed),
                ("failed".to_string(), failed),
            ],
        )
    });
    let rows = rows(result);
    ReportView {
        throughput_label: if result.target.api == "embeddings" {
            "embeddings/s".into()
        } else {
            "output tok/s".into()
        },
        has_open_model: rows.iter().any(|r| r.open_model),
        breakdowns: breakdowns(result),
        table_rows: table_rows(result),
        rows,
        result: result.clone(),
        charts: Charts {
            sweeps,
            spectrum,
            itl_spectrum,
            load_over_time,
            tokens_over_time,
            ttft_over_time,
            errors,
            checks,
            capacity: capacity_charts(result),
            offered_over_time,
            lag_over_time,
        },
        failed_thresholds: result.thresholds.iter().filter(|t| !t.passed).count(),
        gating_thresholds: result.thresholds.iter().filter(|t| !t.judges_steps).count(),
        notes: notes(result),
    }
}

fn ms_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(
        value.as_f64().map_or_else(|| "-".into(), fmt_ms),
    ))
}

fn measure_filter(value: &Value, args: &HashMap<String, Value>) -> tera::Result<Value> {
    let Some(v) = value.as_f64() else {
        return Ok(Value::String("-".into()));
    };
    let is_time = args.get("unit").and_then(Value::as_str) == Some("ms");
    Ok(Value::String(if is_time {
        fmt_ms(v)
    } else {
        format_number(v)
    }))
}

/// A value for a Markdown table cell inside a code span (`` `{{ x | cell }}` ``): one line, no
/// column break, and no backtick that would end the span early.
fn cell_text(value: &Value) -> String {
    let text = value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_string);
    text.replace('|', "\\|")
        .replace(['\n', '\r'], " ")
        .replace('`', "'")
}

fn cell_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(cell_text(value)))
}

/// A value for Markdown text outside code spans: as `cell`, and HTML's special characters
/// escaped, since GitHub renders some raw HTML in comments and step summaries.
fn md_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(
        cell_text(value)
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;"),
    ))
}

/// Renders `template` (named `name`: names ending in `.html` are auto-escaped) over the view of
/// `result`. The context has the [`ReportView`] fields at the top level, and for Markdown
/// templates also every field of the result at the top level (as `summary.md.tera` expects).
pub fn render(result: &RunResult, name: &str, template: &str) -> tera::Result<String> {
    let mut tera = Tera::default();
    tera.register_filter("ms", ms_filter);
    tera.register_filter("measure", measure_filter);
    tera.register_filter("cell", cell_filter);
    tera.register_filter("md", md_filter);
    tera.add_raw_template(name, template)?;
    let view = view(result);
    let mut context = Context::from_serialize(result)?;
    context.extend(Context::from_serialize(&view)?);
    tera.render(name, &context)
}

/// The HTML report.
pub fn render_html(result: &RunResult, templates: &Templates) -> tera::Result<String> {
    render(result, "report.html", &templates.html)
}

/// The Markdown summary.
pub fn render_markdown(result: &RunResult, templates: &Templates) -> tera::Result<String> {
    render(result, "summary.md", &templates.markdown)
}
