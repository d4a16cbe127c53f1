//! Live progress: a bar per level/stage on a terminal, one plain line per finished group
//! otherwise (`--quiet` prints nothing).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::format::fmt_ms;
use crate::metrics::summary::GroupSummary;
use crate::metrics::GroupKey;

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

/// Progress display state, owned by the recorder task.
pub struct Progress {
    mode: ProgressMode,
    multi: MultiProgress,
    bars: HashMap<GroupKey, ProgressBar>,
    totals: HashMap<GroupKey, u64>,
}

impl Progress {
    /// `totals` gives the expected request count of groups that have one (levels).
    pub fn new(mode: ProgressMode, totals: HashMap<GroupKey, u64>) -> Self {
        let multi = MultiProgress::with_draw_target(if mode == ProgressMode::Bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        Self {
            mode,
            multi,
            bars: HashMap::new(),
            totals,
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

    /// A request of `key` ended; `errors` is the group's error count so far.
    pub fn finished(&mut self, key: &GroupKey, errors: u64) {
        if let Some(bar) = self.bar(key) {
            bar.inc(1);
            if errors > 0 {
                bar.set_message(format!("{errors} errors"));
            }
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
