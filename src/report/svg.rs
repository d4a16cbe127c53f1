//! Small, dependency-free SVG charts for the HTML report, rendered in Rust (pure: data in,
//! markup out). Every piece of text is XML-escaped here, since the report inserts the markup
//! as-is.

use std::fmt::Write;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 320.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 78.0;
/// Colour-blind-safe palette (Okabe-Ito).
pub const PALETTE: [&str; 7] = [
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
];

/// Escapes text for SVG/XML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// (x, y) points; x in data units.
    pub points: Vec<(f64, f64)>,
    /// Dashed line.
    pub dashed: bool,
}

/// How the x axis reads.
#[derive(Debug, Clone)]
pub enum XAxis {
    /// Evenly spaced categories (concurrency levels): x values are indexes into the labels.
    Categories(Vec<String>),
    /// A linear axis with this title.
    Linear(String),
    /// HdrHistogram's percentile axis: x is a percentile, placed by log10(1 / (1 − p)).
    Percentile,
}

/// A line chart; `marker` draws a labelled vertical line at an x value.
pub struct LineChart<'a> {
    /// Chart title.
    pub title: &'a str,
    /// Y-axis title (with unit).
    pub y_label: &'a str,
    /// X axis.
    pub x: XAxis,
    /// The lines.
    pub series: Vec<Series>,
    /// A vertical marker: (x, label).
    pub marker: Option<(f64, String)>,
}

/// Ends a chart that has nothing to draw with a centred "no data".
fn close_without_data(mut svg: String) -> String {
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" class="no-data">no data</text></svg>"#,
        WIDTH / 2.0 - 24.0,
        HEIGHT / 2.0
    );
    svg
}

/// A horizontal grid line at height `y` with its tick label on the left axis.
fn y_grid_line(svg: &mut String, y: f64, tick: f64) {
    let _ = write!(
        svg,
        r#"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" class="grid"/><text x="{:.1}" y="{:.1}" class="tick" text-anchor="end">{}</text>"#,
        WIDTH - RIGHT,
        LEFT - 6.0,
        y + 4.0,
        fmt_tick(tick)
    );
}

/// Round tick values covering [0, max].
fn ticks(max: f64) -> Vec<f64> {
    if max <= 0.0 || !max.is_finite() {
        return vec![0.0, 1.0];
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| max / s <= 6.0)
        .unwrap_or(magnitude * 10.0);
    (0..=((max / step).ceil() as usize))
        .map(|i| i as f64 * step)
        .collect()
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.abs() >= 1000.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
    }
}

fn percentile_position(p: f64) -> f64 {
    // 0 → 0, 90 → 1, 99 → 2, 99.9 → 3 ...; 100 is drawn one decade past the last finite point.
    let tail = (1.0 - p / 100.0).max(1e-6);
    (1.0 / tail).log10()
}

/// What some charts add to a [`LineChart`].
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// A logarithmic y axis, for values that span decades (TTFT in ms next to e2e in s).
    pub log_y: bool,
    /// Labelled vertical lines: where a level, stage or phase begins (x in data units).
    pub boundaries: Vec<(f64, String)>,
}

/// Round ticks at 1, 2 and 5 times the powers of ten covering [lo, hi] (both > 0).
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut out = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi * 1.0001 {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if t >= lo * 0.9999 && t <= hi * 1.0001 {
                out.push(t);
            }
        }
        decade *= 10.0;
    }
    out
}

impl LineChart<'_> {
    /// Renders the chart; an empty chart says "no data" instead of drawing axes over nothing.
    pub fn render(&self) -> String {
        self.render_with(&Extras::default())
    }

    /// Renders the chart with `extras`.
    pub fn render_with(&self, extras: &Extras) -> String {
        let all: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .collect();
        let mut svg = format!(
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}"><title>{}</title>"#,
            escape(self.title),
            escape(self.title)
        );
        let _ = write!(
            svg,
            r#"<text x="{LEFT}" y="18" class="chart-title">{}</text>"#,
            escape(self.title)
        );
        if all.is_empty() {
            return close_without_data(svg);
        }
        let x_pos = |x: f64| match &self.x {
            XAxis::Percentile => percentile_position(x),
            _ => x,
        };
        let (x_min, x_max) = match &self.x {
            XAxis::Categories(labels) => (-0.5, labels.len() as f64 - 0.5),
            _ => {
                let xs = all.iter().map(|(x, _)| x_pos(*x));
                let (lo, hi) = xs.fold((f64::MAX, f64::MIN), |(lo, hi), x| (lo.min(x), hi.max(x)));
                if hi > lo {
                    (lo, hi)
                } else {
                    (lo - 1.0, hi + 1.0)
                }
            }
        };
        let top_value = all.iter().map(|(_, y)| *y).fold(0.0, f64::max);
        let positive = all
            .iter()
            .map(|(_, y)| *y)
            .filter(|y| *y > 0.0)
            .fold(f64::MAX, f64::min);
        // A log axis needs positive values; without any, the linear axis is drawn.
        let log = extras.log_y && positive < f64::MAX && top_value > 0.0;
        let (y_ticks, y_lo, y_hi) = if log {
            let lo = 10f64.powf(positive.log10().floor());
            let hi = 10f64.powf(top_value.log10().ceil()).max(lo * 10.0);
            (log_ticks(lo, hi), lo, hi)
        } else {
            let t = ticks(top_value);
            let hi = *t.last().unwrap_or(&1.0);
            (t, 0.0, hi)
        };
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let sx = |x: f64| LEFT + (x_pos(x) - x_min) / (x_max - x_min) * plot_w;
        let sx_raw = |pos: f64| LEFT + (pos - x_min) / (x_max - x_min) * plot_w;
        let sy = |y: f64| {
            let share = if log {
                (y.max(y_lo).log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10())
            } else {
                y / y_hi
            };
            TOP + plot_h - share * plot_h
        };
        for t in &y_ticks {
            y_grid_line(&mut svg, sy(*t), *t);
        }
        let base = TOP + plot_h;
        match &self.x {
            XAxis::Categories(labels) => {
                for (i, label) in labels.iter().enumerate() {
                    let _ = write!(
                        svg,
                        r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
                        sx(i as f64),
                        base + 16.0,
                        escape(label)
                    );
                }
            }
            XAxis::Linear(title) => {
                for t in ticks(x_max) {
                    if t >= x_min && t <= x_max {
                        let _ = write!(
                            svg,
                            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
                            sx(t),
                            base + 16.0,
                            fmt_tick(t)
                        );
                    }
                }
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">{}</text>"#,
                    LEFT + plot_w / 2.0,
                    base + 32.0,
                    escape(title)
                );
            }
            XAxis::Percentile => {
                for (label, p) in [
                    ("0%", 0.0),
                    ("90%", 90.0),
                    ("99%", 99.0),
                    ("99.9%", 99.9),
                    ("99.99%", 99.99),
                ] {
                    let pos = percentile_position(p);
                    if pos >= x_min - 1e-9 && pos <= x_max + 1e-9 {
                        let _ = write!(
                            svg,
                            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{label}</text>"#,
                            sx_raw(pos),
                            base + 16.0
                        );
                    }
                }
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" class="axis" text-anchor="middle">percentile (log scale of 1/(1−p): the tail gets the room)</text>"#,
                    LEFT + plot_w / 2.0,
                    base + 32.0
                );
            }
        }
        let _ = write!(
            svg,
            r#"<text x="14" y="{:.1}" class="axis" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            TOP + plot_h / 2.0,
            escape(self.y_label)
        );
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}" class="axis-line"/>"#,
            WIDTH - RIGHT
        );
        for (x, label) in &extras.boundaries {
            let px = sx(*x);
            let _ = write!(
                svg,
                r#"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{base:.1}" class="boundary"/><text x="{:.1}" y="{:.1}" class="boundary-label">{}</text>"#,
                px + 2.0,
                base - 4.0,
                escape(label)
            );
        }
        if log {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" class="tick">log scale</text>"#,
                LEFT + 4.0,
                TOP + 10.0
            );
        }
        if let Some((x, label)) = &self.marker {
            let px = sx(*x);
            let _ = write!(
                svg,
                r#"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{base:.1}" class="marker"/><text x="{:.1}" y="{:.1}" class="marker-label">{}</text>"#,
                px + 4.0,
                TOP + 12.0,
                escape(label)
            );
        }
        let count = self.series.len();
        for (i, s) in self.series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            // Earlier lines are wider, so a later one drawn on top of it stays visible inside
            // it: percentiles that coincide read as nested strokes, not one line.
            let width = 2.0 + 1.5 * (count - 1 - i) as f64 / count.max(1) as f64 * 2.0;
            let path: Vec<String> = s
                .points
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            let dash = if s.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                svg,
                r#"<polyline class="series" points="{}" fill="none" stroke="{color}" stroke-width="{width:.1}"{dash}/>"#,
                path.join(" ")
            );
            if s.points.len() <= 40 {
                for (x, y) in &s.points {
                    let _ = write!(
                        svg,
                        r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                        sx(*x),
                        sy(*y)
                    );
                }
            }
            let lx = LEFT + (i % 4) as f64 * (plot_w / 4.0);
            let ly = base + 50.0 + if i >= 4 { 14.0 } else { 0.0 };
            let _ = write!(
                svg,
                r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{color}"/><text x="{:.1}" y="{ly:.1}" class="legend">{}</text>"#,
                ly - 9.0,
                lx + 14.0,
                escape(&s.name)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

/// Stacked bars per category: `stacks` are (name, one value per category).
pub fn stacked_bars(
    title: &str,
    y_label: &str,
    categories: &[String],
    stacks: &[(String, Vec<f64>)],
) -> String {
    let mut svg = format!(
        r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}"><title>{}</title>"#,
        escape(title),
        escape(title)
    );
    let _ = write!(
        svg,
        r#"<text x="{LEFT}" y="18" class="chart-title">{}</text>"#,
        escape(title)
    );
    let totals: Vec<f64> = (0..categories.len())
        .map(|c| {
            stacks
                .iter()
                .map(|(_, v)| v.get(c).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().fold(0.0, f64::max);
    if categories.is_empty() || max <= 0.0 {
        return close_without_data(svg);
    }
    let y_ticks = ticks(max);
    let y_max = *y_ticks.last().unwrap_or(&1.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let base = TOP + plot_h;
    let sy = |y: f64| y / y_max * plot_h;
    for t in &y_ticks {
        y_grid_line(&mut svg, base - sy(*t), *t);
    }
    let slot = plot_w / categories.len() as f64;
    for (c, label) in categories.iter().enumerate() {
        let x = LEFT + slot * c as f64 + slot * 0.2;
        let mut top = base;
        for (i, (name, values)) in stacks.iter().enumerate() {
            let h = sy(values.get(c).copied().unwrap_or(0.0));
            if h > 0.0 {
                top -= h;
                let _ = write!(
                    svg,
                    r#"<rect class="bar" x="{x:.1}" y="{top:.1}" width="{:.1}" height="{h:.1}" fill="{}"><title>{}: {:.1}</title></rect>"#,
                    slot * 0.6,
                    PALETTE[i % PALETTE.len()],
                    escape(name),
                    values[c]
                );
            }
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="tick" text-anchor="middle">{}</text>"#,
            x + slot * 0.3,
            base + 16.0,
            escape(label)
        );
    }
    let _ = write!(
        svg,
        r#"<text x="14" y="{:.1}" class="axis" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0,
        escape(y_label)
    );
    for (i, (name, _)) in stacks.iter().enumerate() {
        let lx = LEFT + (i % 4) as f64 * (plot_w / 4.0);
        let ly = HEIGHT - 10.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx:.1}" y="{:.1}" width="10" height="10" fill="{}"/><text x="{:.1}" y="{ly:.1}" class="legend">{}</text>"#,
            ly - 9.0,
            PALETTE[i % PALETTE.len()],
            lx + 14.0,
            escape(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_cover_the_maximum() {
        assert_eq!(ticks(9.0), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert_eq!(ticks(640.0), vec![0.0, 200.0, 400.0, 600.0, 800.0]);
        assert_eq!(ticks(0.0), vec![0.0, 1.0]);
    }

    #[test]
    fn text_is_escaped_and_empty_charts_say_no_data() {
        let chart = LineChart {
            title: "<script>alert(1)</script>",
            y_label: "ms",
            x: XAxis::Categories(vec!["<b>".into()]),
            series: vec![Series {
                name: "a&b".into(),
                points: vec![(0.0, 1.0)],
                dashed: false,
            }],
            marker: None,
        };
        let svg = chart.render();
        assert!(
            !svg.contains("<script>")
                && svg.contains("&lt;script&gt;")
                && svg.contains("a&amp;b")
                && svg.contains("&lt;b&gt;")
        );
        assert!(svg.contains("<polyline"));
        let empty = LineChart {
            title: "t",
            y_label: "y",
            x: XAxis::Linear("s".into()),
            series: vec![],
            marker: None,
        }
        .render();
        assert!(empty.contains("no data") && !empty.contains("<polyline"));
        assert!(stacked_bars("t", "ms", &[], &[]).contains("no data"));
    }

    #[test]
    fn the_percentile_axis_gives_the_tail_room() {
        assert_eq!(percentile_position(0.0), 0.0);
        assert!((percentile_position(90.0) - 1.0).abs() < 1e-9);
        assert!((percentile_position(99.9) - 3.0).abs() < 1e-9);
    }
}
