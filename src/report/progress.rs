//! Live progress: a bar per level/stage on a terminal, one plain line per finished group
//! otherwise (`--quiet` prints nothing).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

use super::format::fmt_ms;
use crate::metrics::recorder::GroupStats;
use crate::metrics::registry::{Trend, Unit};
use crate::metrics::summary::{quantile, GroupSummary};
use crate::metrics::GroupKey;

/// How often a bar's message (errors, tokens/s, TTFT p95 so far) is recomputed.
const MESSAGE_EVERY: Duration = Duration::from_millis(250);

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// indicatif bars (stderr is a terminal).
    Bars,
    /// A line per finished group on stderr.
    Lines,
    /// Nothing.
    Quiet,
}

impl ProgressMode {
    /// Bars on a terminal, lines otherwise, nothing when quiet.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            ProgressMode::Quiet
        } else if std::io::stderr().is_terminal() {
            ProgressMode::Bars
        } else {
            ProgressMode::Lines
        }
    }
}

/// The ETA shown: none can be told before the first request ends (indicatif says `0s` then).
fn eta_text(done: u64, eta: Duration) -> String {
    if done == 0 {
        "estimating".into()
    } else {
        format!("{:#}", indicatif::HumanDuration(eta))
    }
}

/// Progress display state, owned by the recorder task.
pub struct Progress {
    mode: ProgressMode,
    multi: MultiProgress,
    bars: HashMap<GroupKey, ProgressBar>,
    totals: HashMap<GroupKey, u64>,
    /// Every request the run expects (warm-up and groups with a known count), with its ETA.
    overall: Option<ProgressBar>,
    warmup: Option<ProgressBar>,
    warmup_total: u64,
    warmup_done: u64,
    warmup_errors: u64,
    started: Instant,
    updated: HashMap<GroupKey, Instant>,
}

impl Progress {
    /// `totals` gives the expected request count of groups that have one (levels, iterations);
    /// `warmup` the warm-up requests, shown as a step of their own.
    pub fn new(mode: ProgressMode, totals: HashMap<GroupKey, u64>, warmup: u64) -> Self {
        let multi = MultiProgress::with_draw_target(if mode == ProgressMode::Bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let bar_style = |template: &str| {
            ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ")
        };
        let expected: u64 = totals.values().sum::<u64>() + warmup;
        let overall = (mode == ProgressMode::Bars && !totals.is_empty()).then(|| {
            let style =
                bar_style("{prefix:>24} [{bar:30}] {pos}/{len} (elapsed {elapsed}, ETA {eta})")
                    .with_key(
                        "eta",
                        |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                            let _ = w.write_str(&eta_text(state.pos(), state.eta()));
                        },
                    );
            let bar = multi.add(ProgressBar::new(expected).with_style(style));
            bar.set_prefix("overall");
            bar
        });
        let warm = (mode == ProgressMode::Bars && warmup > 0).then(|| {
            let bar = multi.add(ProgressBar::new(warmup).with_style(bar_style(
                "{prefix:>24} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
            )));
            bar.set_prefix("warm-up");
            bar.set_message("first request may load the model");
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        if mode == ProgressMode::Lines && warmup > 0 {
            eprintln!("warm-up: {warmup} request(s), one at a time, excluded from every metric");
        }
        Self {
            mode,
            multi,
            bars: HashMap::new(),
            totals,
            overall,
            warmup: warm,
            warmup_total: warmup,
            warmup_done: 0,
            warmup_errors: 0,
            started: Instant::now(),
            updated: HashMap::new(),
        }
    }

    /// A warm-up request ended.
    pub fn warmup_finished(&mut self, failed: bool) {
        self.warmup_done += 1;
        self.warmup_errors += u64::from(failed);
        if let Some(bar) = &self.overall {
            bar.inc(1);
        }
        if let Some(bar) = &self.warmup {
            bar.inc(1);
            if self.warmup_errors > 0 {
                bar.set_message(format!("{} errors", self.warmup_errors));
            }
            if self.warmup_done >= self.warmup_total {
                bar.finish();
            }
        }
        if self.mode == ProgressMode::Lines && self.warmup_done == self.warmup_total {
            eprintln!(
                "warm-up done: {} request(s), {} error(s) in {:.1}s",
                self.warmup_done,
                self.warmup_errors,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    fn bar(&mut self, key: &GroupKey) -> Option<&ProgressBar> {
        if self.mode != ProgressMode::Bars {
            return None;
        }
        if !self.bars.contains_key(key) {
            let bar = match self.totals.get(key) {
                Some(&n) => ProgressBar::new(n).with_style(
                    ProgressStyle::with_template(
                        "{prefix:>24} [{bar:30}] {pos}/{len} {msg} ({elapsed})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                ),
                None => ProgressBar::new_spinner().with_style(
                    ProgressStyle::with_template(
                        "{prefix:>24} {spinner} {pos} done {msg} ({elapsed})",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                ),
            };
            let bar = self.multi.add(bar);
            bar.set_prefix(format!("{} {}", key.scenario, key.group));
            bar.enable_steady_tick(Duration::from_millis(200));
            self.bars.insert(key.clone(), bar);
        }
        self.bars.get(key)
    }

    /// A request of `key` ended; `so_far` is its group's aggregates.
    pub fn finished(&mut self, key: &GroupKey, so_far: Option<&GroupStats>) {
        if self.totals.contains_key(key) {
            if let Some(bar) = &self.overall {
                bar.inc(1);
            }
        }
        let due = self
            .updated
            .get(key)
            .is_none_or(|at| at.elapsed() >= MESSAGE_EVERY);
        let message = match (due, so_far) {
            (true, Some(g)) => Some(live_message(g)),
            _ => None,
        };
        if let Some(bar) = self.bar(key) {
            bar.inc(1);
            if let Some(message) = message {
                bar.set_message(message);
            }
        }
        if due {
            self.updated.insert(key.clone(), Instant::now());
        }
    }

    /// A group is complete.
    pub fn group_done(&mut self, key: &GroupKey, summary: Option<&GroupSummary>) {
        match self.mode {
            ProgressMode::Bars => {
                if let Some(bar) = self.bars.get(key) {
                    bar.finish();
                }
            }
            ProgressMode::Lines => {
                let Some(s) = summary else { return };
                let p95 = |s: &Option<crate::metrics::Stats>| {
                    s.as_ref().map_or("-".to_string(), |s| fmt_ms(s.p95))
                };
                eprintln!(
                    "{} {}: {} requests, {} errors, e2e p95 {}, ttft p95 {}, {:.1} output tok/s",
                    key.scenario,
                    key.group,
                    s.requests,
                    s.errors,
                    p95(&s.e2e_latency_ms),
                    p95(&s.ttft_ms),
                    s.output_tokens_per_second
                );
            }
            ProgressMode::Quiet => {}
        }
    }

    /// Clears the bars before the summary is printed.
    pub fn finish(&self) {
        let _ = self.multi.clear();
    }
}

/// `3 errors · 412 tok/s · TTFT p95 230ms`: what a group has shown so far.
fn live_message(g: &GroupStats) -> String {
    let mut parts = Vec::new();
    if g.error_count() > 0 {
        parts.push(format!("{} errors", g.error_count()));
    }
    let wall = g.wall_time().as_secs_f64();
    if wall > 0.0 && g.output_tokens > 0 {
        parts.push(format!("{:.0} tok/s", g.output_tokens as f64 / wall));
    }
    let ttft = g.trend(Trend::Ttft);
    if !ttft.is_empty() {
        let p95 = Unit::Millis.shown(quantile(ttft, 0.95) as f64);
        parts.push(format!("TTFT p95 {}", fmt_ms(p95)));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_eta_is_claimed_before_the_first_request_ends() {
        assert_eq!(eta_text(0, Duration::ZERO), "estimating");
        assert_eq!(eta_text(3, Duration::from_secs(40)), "40s");
    }

    use crate::backend::Measurement;
    use crate::metrics::recorder::Limits;
    use crate::metrics::{Group, Outcome, Sample};

    #[test]
    fn the_live_message_says_errors_tokens_per_second_and_ttft_p95() {
        let mut g = GroupStats::default();
        for ms in [100u64, 200] {
            let m = Measurement {
                ttft: Some(Duration::from_millis(ms)),
                e2e: Duration::from_millis(1000),
                output_tokens: 50,
                ..Measurement::default()
            };
            let key = GroupKey {
                scenario: "s".into(),
                group: Group::All,
            };
            let sample = Sample::plain(Some(key), Duration::from_secs(1), Outcome::Done(m));
            g.record(&sample, &Limits::default());
        }
        assert_eq!(live_message(&g), "100 tok/s · TTFT p95 200ms");
        assert_eq!(live_message(&GroupStats::default()), "");
    }
}
