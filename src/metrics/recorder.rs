//! The single owner of every aggregate: HDR histograms per metric and group, counters, and the
//! time series. Memory depends on the number of groups, never on the number of requests.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::registry::{Request, Trend, CUSTOM_UNIT, REGISTRY};
use super::sample::{Event, Group, GroupKey, Outcome, Sample};
use super::timeseries::TimeSeries;
use crate::backend::{ErrorKind, Measurement};

/// Highest recordable value: one hour in microseconds (also ample for token counts and rates).
const HIGHEST: u64 = 3_600_000_000;

/// Aggregates of one group (a level, a stage, a phase or the whole run).
#[derive(Debug, Clone)]
pub struct GroupStats {
    pub(super) trends: Vec<Histogram<u64>>,
    /// Requests that completed without error.
    pub ok: u64,
    /// Failed requests by category.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Requests cut off by the end of the run.
    pub interrupted: u64,
    /// Arrivals that found every VU busy and were skipped.
    pub dropped: u64,
    /// Successful requests that met every per-request limit (goodput).
    pub good: u64,
    /// Hook checks by name: (passed, evaluated).
    pub checks: BTreeMap<String, (u64, u64)>,
    /// Custom trends from `metric(name, value)`, in thousandths (HDR records integers).
    pub custom: BTreeMap<String, Histogram<u64>>,
    /// Output tokens of successful requests.
    pub output_tokens: u64,
    /// Embeddings returned by successful requests (`api: embeddings`).
    pub embeddings: u64,
    /// Prompt tokens of successful requests (as the server counted them).
    pub prompt_tokens: u64,
    /// Successful requests whose token count is a chunk count.
    pub tokens_estimated: u64,
    /// Requests sent again after the server closed a kept-alive connection under them.
    pub reconnected: u64,
    /// Requests that waited for a new TCP connection (any outcome).
    pub connections_opened: u64,
    /// Earliest request start, from the run's start.
    pub first_start: Option<Duration>,
    /// Latest request end, from the run's start.
    pub last_end: Option<Duration>,
}

impl Default for GroupStats {
    fn default() -> Self {
        Self {
            trends: Trend::all().map(|_| new_histogram()).collect(),
            ok: 0,
            errors: BTreeMap::new(),
            interrupted: 0,
            dropped: 0,
            good: 0,
            checks: BTreeMap::new(),
            custom: BTreeMap::new(),
            output_tokens: 0,
            embeddings: 0,
            prompt_tokens: 0,
            tokens_estimated: 0,
            reconnected: 0,
            connections_opened: 0,
            first_start: None,
            last_end: None,
        }
    }
}

pub(super) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST, 3).expect("static histogram bounds are valid")
}

impl GroupStats {
    /// The histogram of one trend.
    pub fn trend(&self, trend: Trend) -> &Histogram<u64> {
        &self.trends[trend as usize]
    }

    /// Failed requests of every kind.
    pub fn error_count(&self) -> u64 {
        self.errors.values().fold(0, |a, b| a.saturating_add(*b))
    }

    /// Wall time from the first start to the last end.
    pub fn wall_time(&self) -> Duration {
        match (self.first_start, self.last_end) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => Duration::ZERO,
        }
    }

    /// Folds one finished request in; `limits` decides whether a success counts as good.
    pub fn record(&mut self, sample: &Sample, limits: &Limits) {
        for (name, value) in &sample.custom {
            let h = self
                .custom
                .entry(name.to_string())
                .or_insert_with(new_histogram);
            h.saturating_record(CUSTOM_UNIT.recorded(*value).min(HIGHEST));
        }
        for (name, ok) in &sample.checks {
            let entry = self.checks.entry(name.to_string()).or_default();
            entry.0 += u64::from(*ok);
            entry.1 += 1;
        }
        self.first_start = Some(
            self.first_start
                .map_or(sample.started, |t| t.min(sample.started)),
        );
        self.last_end = Some(self.last_end.map_or(sample.ended, |t| t.max(sample.ended)));
        match &sample.outcome {
            Outcome::Interrupted => self.interrupted += 1,
            Outcome::Done(m) => {
                self.reconnected += u64::from(m.reconnected);
                self.connections_opened += u64::from(m.connect.is_some());
                match &m.error {
                    Some(error) => *self.errors.entry(error.kind).or_default() += 1,
                    None => {
                        self.record_success(m, sample.lag());
                        self.good += u64::from(limits.met_by(sample));
                    }
                }
            }
        }
    }

    fn record_success(&mut self, m: &Measurement, lag: Option<Duration>) {
        self.ok += 1;
        self.output_tokens += m.output_tokens;
        self.embeddings += m.embeddings;
        self.tokens_estimated += u64::from(m.tokens_estimated);
        if let Some(p) = m.prompt_tokens {
            self.prompt_tokens += p;
        }
        let request = Request { m, lag };
        for (def, histogram) in REGISTRY.iter().zip(&mut self.trends) {
            def.record(&request, &mut |v| {
                histogram.saturating_record(v.min(HIGHEST));
            });
        }
    }

    /// Adds another group's aggregates (for phase and run totals). Counts saturate instead of
    /// wrapping: a run cannot reach `u64::MAX`, and counts read from files are bounded by
    /// [`crate::metrics::snapshot::MAX_COUNT`] before they get here, so saturation only keeps
    /// a damaged input from turning into a small, plausible number.
    pub fn merge(&mut self, other: &GroupStats) {
        fn add(a: &mut u64, b: u64) {
            *a = a.saturating_add(b);
        }
        for (mine, theirs) in self.trends.iter_mut().zip(&other.trends) {
            // Both were built with the same bounds, so `add` cannot fail; its counts saturate.
            let _ = mine.add(theirs);
        }
        add(&mut self.ok, other.ok);
        for (kind, n) in &other.errors {
            add(self.errors.entry(*kind).or_default(), *n);
        }
        add(&mut self.interrupted, other.interrupted);
        add(&mut self.dropped, other.dropped);
        add(&mut self.good, other.good);
        for (name, h) in &other.custom {
            let mine = self
                .custom
                .entry(name.clone())
                .or_insert_with(new_histogram);
            // Same bounds everywhere, so `add` cannot fail.
            let _ = mine.add(h);
        }
        for (name, (pass, total)) in &other.checks {
            let entry = self.checks.entry(name.clone()).or_default();
            add(&mut entry.0, *pass);
            add(&mut entry.1, *total);
        }
        add(&mut self.output_tokens, other.output_tokens);
        add(&mut self.embeddings, other.embeddings);
        add(&mut self.prompt_tokens, other.prompt_tokens);
        add(&mut self.tokens_estimated, other.tokens_estimated);
        add(&mut self.reconnected, other.reconnected);
        add(&mut self.connections_opened, other.connections_opened);
        self.first_start = match (self.first_start, other.first_start) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.last_end = match (self.last_end, other.last_end) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }
}

/// Per-request limits that define a good request for goodput: each trend threshold read as a
/// limit on one request's value (`ttft p(95)<500ms` -> this request's TTFT < 500 ms).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    limits: Vec<Limit>,
}

/// One per-request bound: `holds(value, limit)` on a trend's value for one request.
#[derive(Debug, Clone, Copy)]
struct Limit {
    trend: Trend,
    holds: fn(f64, f64) -> bool,
    limit: f64,
}

impl Limits {
    /// Adds a limit on `trend` (in ms for times, tokens otherwise).
    pub fn push(&mut self, trend: Trend, holds: fn(f64, f64) -> bool, limit: f64) {
        self.limits.push(Limit {
            trend,
            holds,
            limit,
        });
    }

    /// True when no limit is set.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty()
    }

    /// Whether a successful request meets every limit.
    pub fn met_by(&self, sample: &Sample) -> bool {
        let Outcome::Done(m) = &sample.outcome else {
            return false;
        };
        let request = Request {
            m,
            lag: sample.lag(),
        };
        self.limits.iter().all(
            |Limit {
                 trend,
                 holds,
                 limit,
             }| {
                trend
                    .def()
                    .limit_value(&request)
                    .is_none_or(|v| holds(v, *limit))
            },
        )
    }
}

/// Warm-up requests: counted apart, in no metric.
#[derive(Debug, Clone, Default)]
pub struct WarmupStats {
    /// Warm-up requests that ended.
    pub requests: u64,
    /// Requests in the discarded start of capacity-search steps.
    pub discarded: u64,
    /// Of which failed, by category.
    pub errors: BTreeMap<ErrorKind, u64>,
}

/// Which view of the requests an aggregate belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Split {
    /// The group itself: every request of it.
    Group,
    /// The group's requests from one prompt set.
    PromptSet(std::sync::Arc<str>),
    /// The group's requests whose prompt entry carries one tag.
    EntryTag(std::sync::Arc<str>),
}

/// Folds events into per-group aggregates and the time series.
#[derive(Debug, Default)]
pub struct Recorder {
    groups: BTreeMap<GroupKey, GroupStats>,
    /// The same requests again, split by the prompt set they came from.
    by_prompt_set: BTreeMap<(GroupKey, std::sync::Arc<str>), GroupStats>,
    /// And split by the tags of their prompt entries.
    by_entry_tag: BTreeMap<(GroupKey, std::sync::Arc<str>), GroupStats>,
    limits: Limits,
    /// Warm-up counts.
    pub warmup: WarmupStats,
    /// Per-second series.
    pub series: TimeSeries,
    in_flight: u64,
    /// Goodput was measured (set from `limits`, or read back from a result).
    goodput: bool,
}

impl Recorder {
    /// An empty recorder that counts requests meeting `limits` as good (goodput).
    pub fn with_limits(limits: Limits) -> Self {
        Self {
            goodput: !limits.is_empty(),
            limits,
            ..Self::default()
        }
    }

    /// Whether goodput is measured.
    pub fn has_limits(&self) -> bool {
        self.goodput
    }

    /// A recorder holding aggregates read back from result files (`check`, `merge`).
    pub fn from_groups(groups: Vec<(Split, GroupKey, GroupStats)>, goodput: bool) -> Self {
        let mut recorder = Self {
            goodput,
            ..Self::default()
        };
        for (split, key, stats) in groups {
            let slot = match split {
                Split::Group => recorder.groups.entry(key),
                Split::PromptSet(name) => {
                    recorder
                        .by_prompt_set
                        .entry((key, name))
                        .or_default()
                        .merge(&stats);
                    continue;
                }
                Split::EntryTag(name) => {
                    recorder
                        .by_entry_tag
                        .entry((key, name))
                        .or_default()
                        .merge(&stats);
                    continue;
                }
            };
            slot.or_default().merge(&stats);
        }
        recorder
    }

    /// Every aggregate with the split it belongs to, for a result file.
    pub fn all_groups(&self) -> impl Iterator<Item = (Split, &GroupKey, &GroupStats)> {
        let groups = self.groups.iter().map(|(k, s)| (Split::Group, k, s));
        let sets = self
            .by_prompt_set
            .iter()
            .map(|((k, n), s)| (Split::PromptSet(n.clone()), k, s));
        let tags = self
            .by_entry_tag
            .iter()
            .map(|((k, n), s)| (Split::EntryTag(n.clone()), k, s));
        groups.chain(sets).chain(tags)
    }

    /// Folds one event in.
    pub fn record(&mut self, event: &Event) {
        match event {
            Event::Started { key, at } => {
                self.in_flight += 1;
                if key.is_some() {
                    self.series.started(*at, self.in_flight);
                }
            }
            Event::Finished(sample) => {
                self.in_flight = self.in_flight.saturating_sub(1);
                match &sample.key {
                    None => {
                        self.warmup.requests += 1;
                        if let Outcome::Done(Measurement { error: Some(e), .. }) = &sample.outcome {
                            *self.warmup.errors.entry(e.kind).or_default() += 1;
                        }
                    }
                    Some(GroupKey {
                        group: Group::Discarded(_),
                        ..
                    }) => self.warmup.discarded += 1,
                    Some(key) => {
                        self.groups
                            .entry(key.clone())
                            .or_default()
                            .record(sample, &self.limits);
                        if let Some(set) = &sample.prompt_set {
                            self.by_prompt_set
                                .entry((key.clone(), set.clone()))
                                .or_default()
                                .record(sample, &self.limits);
                        }
                        for tag in sample.tags.iter() {
                            self.by_entry_tag
                                .entry((key.clone(), tag.clone()))
                                .or_default()
                                .record(sample, &self.limits);
                        }
                        self.series.finished(sample);
                    }
                }
            }
            Event::Dropped { key, count, at } => {
                self.groups.entry(key.clone()).or_default().dropped += count;
                self.series.dropped(*at, *count);
            }
            Event::GroupDone(_) | Event::Evaluate { .. } => {}
        }
    }

    /// Every group, ordered by scenario then group.
    pub fn groups(&self) -> &BTreeMap<GroupKey, GroupStats> {
        &self.groups
    }

    /// Aggregates per (group, prompt set).
    pub fn by_prompt_set(&self) -> &BTreeMap<(GroupKey, std::sync::Arc<str>), GroupStats> {
        &self.by_prompt_set
    }

    /// Aggregates per (group, entry tag).
    pub fn by_entry_tag(&self) -> &BTreeMap<(GroupKey, std::sync::Arc<str>), GroupStats> {
        &self.by_entry_tag
    }

    /// The group of `key`, if it recorded anything.
    pub fn group(&self, key: &GroupKey) -> Option<&GroupStats> {
        self.groups.get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{RequestError, ServerTimings};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn key() -> GroupKey {
        GroupKey {
            scenario: "s".into(),
            group: Group::Level(1),
        }
    }

    fn ok(ttft: u64, e2e: u64, tokens: u64) -> Box<Sample> {
        Box::new(Sample::plain(
            Some(key()),
            ms(e2e),
            Outcome::Done(Measurement {
                ttft: Some(ms(ttft)),
                e2e: ms(e2e),
                itl: vec![ms(10); tokens.saturating_sub(1) as usize],
                output_tokens: tokens,
                prompt_tokens: Some(7),
                server: ServerTimings {
                    total: Some(ms(e2e - 1)),
                    load: Some(ms(1)),
                    prompt_eval: Some(ms(2)),
                    eval: Some(ms(3)),
                },
                ..Measurement::default()
            }),
        ))
    }

    #[test]
    fn records_trends_in_microseconds_and_derives_tpot() {
        let mut r = Recorder::default();
        r.record(&Event::Finished(ok(100, 1100, 11)));
        let g = r.group(&key()).unwrap();
        assert_eq!(g.ok, 1);
        assert_eq!(
            g.trend(Trend::Ttft).max(),
            g.trend(Trend::Ttft).highest_equivalent(100_000)
        );
        // (1100 - 100) ms over 10 tokens after the first = 100 ms.
        assert_eq!(
            g.trend(Trend::Tpot).value_at_quantile(0.5),
            g.trend(Trend::Tpot).highest_equivalent(100_000)
        );
        assert_eq!(g.trend(Trend::Itl).len(), 10);
        assert_eq!(
            g.trend(Trend::QueueWait).value_at_quantile(0.5),
            g.trend(Trend::QueueWait).highest_equivalent(1_093_000)
        );
        assert_eq!(g.prompt_tokens, 7);
    }

    #[test]
    fn warmup_is_counted_apart_from_every_metric() {
        let mut r = Recorder::default();
        let mut warm = ok(5, 10, 2);
        warm.key = None;
        r.record(&Event::Finished(warm));
        assert_eq!(r.warmup.requests, 1);
        assert!(r.groups().is_empty());
    }

    #[test]
    fn errors_and_interruptions_are_counted_not_measured() {
        let mut r = Recorder::default();
        let mut failed = ok(5, 10, 2);
        failed.outcome = Outcome::Done(Measurement {
            error: Some(RequestError::new(ErrorKind::Timeout, "t")),
            ..Measurement::default()
        });
        r.record(&Event::Finished(failed));
        let mut cut = ok(5, 10, 2);
        cut.outcome = Outcome::Interrupted;
        r.record(&Event::Finished(cut));
        let g = r.group(&key()).unwrap();
        assert_eq!(g.errors[&ErrorKind::Timeout], 1);
        assert_eq!(g.interrupted, 1);
        assert_eq!(g.ok, 0);
        assert!(g.trend(Trend::E2e).is_empty());
    }

    #[test]
    fn schedule_relative_latency_adds_the_lag_and_goodput_applies_the_limits() {
        let mut limits = Limits::default();
        limits.push(Trend::E2eFromSchedule, |v, l| v < l, 100.0);
        let mut r = Recorder::with_limits(limits);
        for (intended, started) in [(0, 0), (0, 70)] {
            let mut s = ok(5, 50, 2);
            s.intended = Some(ms(intended));
            s.started = ms(started);
            r.record(&Event::Finished(s));
        }
        let g = r.group(&key()).unwrap();
        assert_eq!(
            g.trend(Trend::ScheduleLag).max(),
            g.trend(Trend::ScheduleLag).highest_equivalent(70_000)
        );
        assert_eq!(
            g.trend(Trend::E2eFromSchedule).max(),
            g.trend(Trend::E2eFromSchedule).highest_equivalent(120_000)
        );
        assert_eq!(
            g.trend(Trend::E2e).max(),
            g.trend(Trend::E2e).highest_equivalent(50_000)
        );
        // 50 ms from schedule is good; 120 ms is not.
        assert_eq!((g.ok, g.good), (2, 1));
    }

    #[test]
    fn merge_adds_counts_and_widens_the_window() {
        let mut a = GroupStats::default();
        a.record(&ok(1, 10, 2), &Limits::default());
        let mut b = GroupStats::default();
        let mut late = ok(1, 50, 2);
        late.started = ms(30);
        b.record(&late, &Limits::default());
        a.merge(&b);
        assert_eq!(a.ok, 2);
        assert_eq!(a.trend(Trend::E2e).len(), 2);
        assert_eq!(a.wall_time(), ms(50));
    }
}
