//! The report's charts: the sweep charts of each scenario (latency and throughput against
//! concurrency or rate), the capacity search's steps, and the level boundaries drawn on the
//! time charts.

use serde::Serialize;

use super::format::format_number;
use super::svg::{stacked_bars, Extras, LineChart, Series, XAxis};
use crate::output::result::{RunResult, ScenarioResult};

/// One chart of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioCharts {
    /// The scenario.
    pub scenario: String,
    /// "Concurrency sweep" or "Rate sweep".
    pub kind: String,
    /// p50/p95/p99 of e2e per level.
    pub latency: String,
    /// p50/p95/p99 of TTFT per level, knee marked.
    pub ttft: String,
    /// Output tokens/s per level, saturation marked.
    pub throughput: String,
    /// Requests/s per level.
    pub requests: String,
    /// Ollama: TTFT decomposed into queue wait, load and prefill per level (medians).
    pub ttft_breakdown: Option<String>,
}

/// Charts of the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Charts {
    /// Sweeps, one set per `concurrency-levels` or `rate-levels` scenario.
    pub sweeps: Vec<ScenarioCharts>,
    /// TTFT and e2e percentile spectra.
    pub spectrum: String,
    /// The inter-token latency spectrum (absent without a token stream).
    pub itl_spectrum: Option<String>,
    /// Active VUs, completed requests/s and errors/s over time.
    pub load_over_time: String,
    /// Output tokens/s and TTFT p95 per second over time.
    pub tokens_over_time: String,
    /// TTFT p95 per second over time.
    pub ttft_over_time: String,
    /// Errors by kind.
    pub errors: String,
    /// Hook checks by name, passed and failed (absent without checks).
    pub checks: Option<String>,
    /// Each capacity search: what was offered and achieved per step, and its latency.
    pub capacity: Vec<CapacityCharts>,
    /// Open model: offered vs sent (and dropped) per second over time.
    pub offered_over_time: Option<String>,
    /// Open model: schedule lag p95 per second over time.
    pub lag_over_time: Option<String>,
}

/// The charts of one capacity search.
#[derive(Debug, Clone, Serialize)]
pub struct CapacityCharts {
    /// The scenario.
    pub scenario: String,
    /// Offered vs achieved (rate mode), or VUs and requests/s (concurrency mode), per step.
    pub load: String,
    /// Each threshold's value per step against its limit (TTFT and e2e p95 for older
    /// results), failed steps marked.
    pub latency: String,
}

/// Charts of every capacity search of the run.
pub(super) fn capacity_charts(result: &RunResult) -> Vec<CapacityCharts> {
    result
        .capacity
        .iter()
        .map(|c| {
            let groups = result
                .scenarios
                .iter()
                .find(|s| s.name == c.scenario)
                .map(|s| s.groups.as_slice())
                .unwrap_or_default();
            let summary = |step: usize| {
                groups
                    .iter()
                    .find(|g| g.step == Some(step))
                    .map(|g| &g.summary)
            };
            let cats: Vec<String> = c.steps.iter().map(|s| format_number(s.value)).collect();
            let at = |f: &dyn Fn(&crate::metrics::GroupSummary) -> Option<f64>| -> Vec<(f64, f64)> {
                c.steps
                    .iter()
                    .enumerate()
                    .filter_map(|(i, st)| Some((i as f64, f(summary(st.step)?)?)))
                    .collect()
            };
            let offered = Series {
                name: format!("offered ({})", c.unit),
                points: c
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i as f64, s.value))
                    .collect(),
                dashed: true,
            };
            let (title, y_label, achieved) = match c.time_unit_secs {
                Some(unit) => (
                    "offered vs achieved rate",
                    c.unit.clone(),
                    Series {
                        name: "achieved".into(),
                        points: at(&|g| Some(g.requests_per_second * unit)),
                        dashed: false,
                    },
                ),
                None => (
                    "VUs and requests/s",
                    "VUs / requests/s".to_string(),
                    Series {
                        name: "requests/s".into(),
                        points: at(&|g| Some(g.requests_per_second)),
                        dashed: false,
                    },
                ),
            };
            let failed: Vec<(f64, String)> = c
                .steps
                .iter()
                .enumerate()
                .filter(|(_, s)| !s.passed)
                .map(|(i, _)| (i as f64, "fail".to_string()))
                .collect();
            let marks = Extras {
                boundaries: failed.clone(),
                ..Extras::default()
            };
            let capacity_at = c.capacity.and_then(|cap| {
                c.steps
                    .iter()
                    .position(|s| s.passed && s.value == cap)
                    .map(|i| (i as f64, format!("capacity {}", format_number(cap))))
            });
            let load = LineChart {
                title: &format!("{}: {title} per step", c.scenario),
                y_label: &y_label,
                x: XAxis::Categories(cats.clone()),
                series: vec![offered, achieved],
                marker: capacity_at.clone(),
            }
            .render_with(&marks);
            // What the search was judged by: each threshold's value per step against its limit
            // (those in the first threshold's unit, so they share an axis); TTFT and e2e p95 for
            // results written before steps kept their readings.
            let unit = c
                .steps
                .iter()
                .flat_map(|s| s.thresholds.iter())
                .map(|t| t.unit.clone())
                .next();
            let latency = match unit {
                Some(unit) => {
                    let mut labels: Vec<&str> = Vec::new();
                    for t in c.steps.iter().flat_map(|s| s.thresholds.iter()) {
                        if t.unit == unit && !labels.contains(&t.label.as_str()) {
                            labels.push(&t.label);
                        }
                    }
                    let mut series = Vec::new();
                    for label in labels {
                        let reading =
                            |i: usize| c.steps[i].thresholds.iter().find(|t| t.label == label);
                        series.push(Series {
                            name: label.to_string(),
                            points: (0..c.steps.len())
                                .filter_map(|i| Some((i as f64, reading(i)?.observed?)))
                                .collect(),
                            dashed: false,
                        });
                        series.push(Series {
                            name: "limit".into(),
                            points: (0..c.steps.len())
                                .filter_map(|i| Some((i as f64, reading(i)?.limit)))
                                .collect(),
                            dashed: true,
                        });
                    }
                    let y_label = if unit.is_empty() {
                        "value"
                    } else {
                        unit.as_str()
                    };
                    LineChart {
                        title: &format!(
                            "{}: thresholds per step (failed steps marked)",
                            c.scenario
                        ),
                        y_label,
                        x: XAxis::Categories(cats),
                        series,
                        marker: capacity_at,
                    }
                    .render_with(&Extras {
                        log_y: unit == "ms",
                        boundaries: failed,
                    })
                }
                None => LineChart {
                    title: &format!("{}: latency per step (failed steps marked)", c.scenario),
                    y_label: "ms",
                    x: XAxis::Categories(cats),
                    series: vec![
                        Series {
                            name: "TTFT p95".into(),
                            points: at(&|g| Some(g.ttft_ms.as_ref()?.p95)),
                            dashed: true,
                        },
                        Series {
                            name: "e2e p95".into(),
                            points: at(&|g| Some(g.e2e_latency_ms.as_ref()?.p95)),
                            dashed: false,
                        },
                    ],
                    marker: capacity_at,
                }
                .render_with(&Extras {
                    log_y: true,
                    boundaries: failed,
                }),
            };
            CapacityCharts {
                scenario: c.scenario.clone(),
                load,
                latency,
            }
        })
        .collect()
}

fn level_categories(s: &ScenarioResult) -> Vec<String> {
    s.groups
        .iter()
        .map(|g| match (g.level, g.rate) {
            (Some(l), _) => l.to_string(),
            (None, Some(r)) => format_number(r),
            _ => g.label.clone(),
        })
        .collect()
}

pub(super) fn sweep_charts(s: &ScenarioResult) -> ScenarioCharts {
    let cats = level_categories(s);
    // A rate sweep (rate-levels) is drawn like a concurrency sweep, against the offered rate.
    let against = if s.executor == "rate-levels" {
        "offered rate"
    } else {
        "concurrency"
    };
    let at = |f: &dyn Fn(&crate::output::result::GroupResult) -> Option<f64>| -> Vec<(f64, f64)> {
        s.groups
            .iter()
            .enumerate()
            .filter_map(|(i, g)| f(g).map(|v| (i as f64, v)))
            .collect()
    };
    // One chart per trend, each on its own linear axis: on a shared log axis e2e p50, p95 and
    // p99 drew as one band, and TTFT's tail, the knee's subject, was squeezed beside it.
    let percentiles =
        |name: &str, pick: fn(&crate::metrics::GroupSummary) -> Option<&crate::metrics::Stats>| {
            [("p50", 0), ("p95", 1), ("p99", 2)]
                .into_iter()
                .map(|(p, i)| Series {
                    name: format!("{name} {p}"),
                    points: at(&|g| {
                        let stats = pick(&g.summary)?;
                        Some([stats.p50, stats.p95, stats.p99][i])
                    }),
                    dashed: i == 0,
                })
                .collect::<Vec<_>>()
        };
    let index_of =
        |level: Option<u32>| level.and_then(|l| s.groups.iter().position(|g| g.level == Some(l)));
    let knee = s.knee.unwrap_or_default();
    let latency = LineChart {
        title: &format!("{}: e2e latency vs {against}", s.name),
        y_label: "ms",
        x: XAxis::Categories(cats.clone()),
        series: percentiles("e2e", |s| s.e2e_latency_ms.as_ref()),
        marker: None,
    }
    .render();
    let ttft = LineChart {
        title: &format!("{}: TTFT vs {against}", s.name),
        y_label: "ms",
        x: XAxis::Categories(cats.clone()),
        series: percentiles("TTFT", |s| s.ttft_ms.as_ref()),
        marker: index_of(knee.latency_knee_level)
            .map(|i| (i as f64, "knee: TTFT tail separates".to_string())),
    }
    .render();
    let throughput = LineChart {
        title: &format!("{}: output tokens/s vs {against}", s.name),
        y_label: "output tokens/s",
        x: XAxis::Categories(cats.clone()),
        series: vec![Series {
            name: "output tokens/s".into(),
            points: at(&|g| Some(g.summary.output_tokens_per_second)),
            dashed: false,
        }],
        marker: index_of(knee.saturation_level).map(|i| (i as f64, "saturation".to_string())),
    }
    .render();
    let requests = LineChart {
        title: &format!("{}: requests/s vs {against}", s.name),
        y_label: "requests/s",
        x: XAxis::Categories(cats.clone()),
        series: vec![Series {
            name: "requests/s".into(),
            points: at(&|g| Some(g.summary.requests_per_second)),
            dashed: false,
        }],
        marker: None,
    }
    .render();
    let has_server = s.groups.iter().any(|g| g.summary.queue_wait_ms.is_some());
    let ttft_breakdown = has_server.then(|| {
        let median = |f: fn(&crate::metrics::GroupSummary) -> Option<&crate::metrics::Stats>| {
            s.groups
                .iter()
                .map(|g| f(&g.summary).map_or(0.0, |v| v.p50))
                .collect::<Vec<_>>()
        };
        stacked_bars(
            &format!("{}: where TTFT goes (server medians)", s.name),
            "ms",
            &cats,
            &[
                (
                    "queue wait".to_string(),
                    median(|g| g.queue_wait_ms.as_ref()),
                ),
                ("model load".to_string(), median(|g| g.load_ms.as_ref())),
                ("prefill".to_string(), median(|g| g.prefill_ms.as_ref())),
            ],
        )
    });
    ScenarioCharts {
        kind: if s.executor == "rate-levels" {
            "Rate sweep".into()
        } else {
            "Concurrency sweep".into()
        },
        scenario: s.name.clone(),
        latency,
        ttft,
        throughput,
        requests,
        ttft_breakdown,
    }
}

/// (seconds since start, label) of each level, stage and phase start, for the time charts.
pub(super) fn boundaries(result: &RunResult) -> Vec<(f64, String)> {
    let mut out: Vec<(f64, String)> = result
        .scenarios
        .iter()
        .flat_map(|s| {
            s.groups.iter().filter_map(move |g| {
                let at = g.summary.first_start_secs?;
                let label = if g.label == "all" {
                    s.name.clone()
                } else {
                    g.label.clone()
                };
                Some((at, label))
            })
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}
