//! A per-second time series of the run in bounded memory: at most [`MAX_BUCKETS`] buckets; past
//! that, neighbouring buckets merge and the width doubles, so a day-long soak costs the same as
//! an hour. TTFT percentiles are exact while a bucket is recent and merged conservatively after.

use std::time::Duration;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::registry::{micros, quantile, Unit};
use super::sample::{Outcome, Sample};

/// The most buckets kept before merging.
pub const MAX_BUCKETS: usize = 3600;
/// Buckets this far behind the newest keep their histogram; older ones keep only percentiles.
const OPEN_BUCKETS: usize = 8;

/// One bucket of the series.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct SeriesPoint {
    /// Start of the bucket, seconds from the run's start.
    pub t_secs: u64,
    /// Bucket width in seconds (1 unless the run was long enough to merge buckets).
    pub width_secs: u64,
    /// Most requests in flight at once (a closed-model VU has at most one).
    pub active_vus: u64,
    /// Requests sent.
    pub started: u64,
    /// Requests that completed without error.
    pub completed: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Output tokens that arrived in the bucket (spread over each answer's chunks).
    pub output_tokens: u64,
    /// Median TTFT of requests completed in the bucket, ms.
    pub ttft_p50_ms: Option<f64>,
    /// 95th percentile TTFT of requests completed in the bucket, ms (after merging: the larger
    /// of the merged buckets' values).
    pub ttft_p95_ms: Option<f64>,
    /// Open model: arrivals due in the bucket (sent or dropped): the offered load.
    #[serde(default, skip_serializing_if = "super::registry::is_zero")]
    pub scheduled: u64,
    /// Open model: arrivals due in the bucket that found every VU busy and were skipped.
    #[serde(default, skip_serializing_if = "super::registry::is_zero")]
    pub dropped: u64,
    /// Open model: 95th percentile schedule lag (actual send − intended) of requests completed
    /// in the bucket, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_p95_ms: Option<f64>,
}

impl SeriesPoint {
    /// Adds another point's counts (requests, tokens, arrivals) to this one's: neighbouring
    /// buckets merged, or the same second of two shards.
    pub fn add_counts(&mut self, other: &SeriesPoint) {
        self.started += other.started;
        self.completed += other.completed;
        self.errors += other.errors;
        self.output_tokens += other.output_tokens;
        self.scheduled += other.scheduled;
        self.dropped += other.dropped;
    }
}

/// Two open histograms as one (same bounds everywhere, so `add` cannot fail).
fn added(a: Option<Histogram<u64>>, b: &Option<Histogram<u64>>) -> Option<Histogram<u64>> {
    match (a, b) {
        (Some(mut h), Some(other)) => {
            let _ = h.add(other);
            Some(h)
        }
        (h, other) => h.or_else(|| other.clone()),
    }
}

/// The larger of two optional values, or the one there is: how a percentile of merged buckets
/// is bounded when only the buckets' own percentiles are left.
pub fn larger(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug, Clone, Default)]
struct Bucket {
    point: SeriesPoint,
    ttft: Option<Histogram<u64>>,
    lag: Option<Histogram<u64>>,
}

fn bucket_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("static bounds are valid")
}

impl Bucket {
    fn close(&mut self) {
        if let Some(h) = self.ttft.take() {
            if !h.is_empty() {
                self.point.ttft_p50_ms = Some(Unit::Millis.shown(quantile(&h, 0.5) as f64));
                self.point.ttft_p95_ms = Some(Unit::Millis.shown(quantile(&h, 0.95) as f64));
            }
        }
        if let Some(h) = self.lag.take() {
            if !h.is_empty() {
                self.point.lag_p95_ms = Some(Unit::Millis.shown(quantile(&h, 0.95) as f64));
            }
        }
    }
}

/// The series.
#[derive(Debug, Clone)]
pub struct TimeSeries {
    width_secs: u64,
    buckets: Vec<Bucket>,
}

impl Default for TimeSeries {
    fn default() -> Self {
        Self {
            width_secs: 1,
            buckets: Vec::new(),
        }
    }
}

impl TimeSeries {
    fn bucket(&mut self, at: Duration) -> &mut Bucket {
        let mut index = (at.as_secs() / self.width_secs) as usize;
        while index >= MAX_BUCKETS {
            self.coarsen();
            index = (at.as_secs() / self.width_secs) as usize;
        }
        while self.buckets.len() <= index {
            let t_secs = self.buckets.len() as u64 * self.width_secs;
            self.buckets.push(Bucket {
                point: SeriesPoint {
                    t_secs,
                    width_secs: self.width_secs,
                    ..SeriesPoint::default()
                },
                ttft: None,
                lag: None,
            });
            let newest = self.buckets.len();
            if newest > OPEN_BUCKETS {
                self.buckets[newest - 1 - OPEN_BUCKETS].close();
            }
        }
        &mut self.buckets[index]
    }

    fn coarsen(&mut self) {
        self.width_secs *= 2;
        let old = std::mem::take(&mut self.buckets);
        let mut merged: Vec<Bucket> = Vec::with_capacity(old.len() / 2 + 1);
        for pair in old.chunks(2) {
            let mut b = pair[0].clone();
            b.point.width_secs = self.width_secs;
            b.point.t_secs = merged.len() as u64 * self.width_secs;
            if let Some(second) = pair.get(1) {
                let (x, y) = (&mut b.point, &second.point);
                x.active_vus = x.active_vus.max(y.active_vus);
                let total = (x.completed + y.completed).max(1) as f64;
                x.ttft_p50_ms = match (x.ttft_p50_ms, y.ttft_p50_ms) {
                    (Some(a), Some(c)) => {
                        Some((a * x.completed as f64 + c * y.completed as f64) / total)
                    }
                    (a, c) => a.or(c),
                };
                x.ttft_p95_ms = larger(x.ttft_p95_ms, y.ttft_p95_ms);
                x.lag_p95_ms = larger(x.lag_p95_ms, y.lag_p95_ms);
                x.add_counts(y);
                b.lag = added(b.lag.take(), &second.lag);
                b.ttft = added(b.ttft.take(), &second.ttft);
            }
            merged.push(b);
        }
        self.buckets = merged;
    }

    /// A request was sent at `at` with `in_flight` requests now in flight.
    pub fn started(&mut self, at: Duration, in_flight: u64) {
        let b = &mut self.bucket(at).point;
        b.started += 1;
        b.active_vus = b.active_vus.max(in_flight);
    }

    /// `count` arrivals due at `at` were dropped.
    pub fn dropped(&mut self, at: Duration, count: u64) {
        let b = &mut self.bucket(at).point;
        b.dropped += count;
        b.scheduled += count;
    }

    /// A request ended.
    pub fn finished(&mut self, sample: &Sample) {
        if let Some(intended) = sample.intended {
            self.bucket(intended).point.scheduled += 1;
        }
        let bucket = self.bucket(sample.ended);
        if let Some(lag) = sample.lag() {
            bucket
                .lag
                .get_or_insert_with(bucket_histogram)
                .saturating_record(micros(lag).clamp(1, 3_600_000_000));
        }
        let Outcome::Done(m) = &sample.outcome else {
            return;
        };
        if m.error.is_some() {
            bucket.point.errors += 1;
            return;
        }
        bucket.point.completed += 1;
        if let Some(ttft) = m.ttft {
            let h = bucket.ttft.get_or_insert_with(bucket_histogram);
            h.saturating_record(micros(ttft).min(3_600_000_000));
        }
        self.tokens_as_they_arrived(sample, m);
    }

    /// Adds a request's output tokens to the seconds its content chunks arrived in (the first
    /// at TTFT, each next one an ITL gap later), spread evenly over the chunks, so a long
    /// answer shows as a steady stream rather than a spike at its end. Without a first-token
    /// time, all of them count at the end.
    fn tokens_as_they_arrived(&mut self, sample: &Sample, m: &crate::backend::Measurement) {
        let Some(ttft) = m.ttft else {
            self.bucket(sample.ended).point.output_tokens += m.output_tokens;
            return;
        };
        let arrivals = 1 + m.itl.len() as u64;
        let (each, mut extra) = (m.output_tokens / arrivals, m.output_tokens % arrivals);
        let mut at = sample.started + ttft;
        let mut second = at.as_secs();
        let mut pending = 0;
        for gap in std::iter::once(Duration::ZERO).chain(m.itl.iter().copied()) {
            at += gap;
            if at.as_secs() != second {
                self.bucket(Duration::from_secs(second)).point.output_tokens += pending;
                second = at.as_secs();
                pending = 0;
            }
            pending += each + u64::from(extra > 0);
            extra = extra.saturating_sub(1);
        }
        self.bucket(Duration::from_secs(second)).point.output_tokens += pending;
    }

    /// The finished series.
    pub fn points(&self) -> Vec<SeriesPoint> {
        self.buckets
            .iter()
            .map(|b| {
                let mut b = b.clone();
                b.close();
                b.point
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Measurement;

    /// A request whose one chunk (3 tokens) arrives as it ends.
    fn done(ended_ms: u64, ttft_ms: u64) -> Sample {
        Sample {
            started: Duration::from_millis(ended_ms.saturating_sub(ttft_ms)),
            ..Sample::plain(
                None,
                Duration::from_millis(ended_ms),
                Outcome::Done(Measurement {
                    ttft: Some(Duration::from_millis(ttft_ms)),
                    output_tokens: 3,
                    ..Measurement::default()
                }),
            )
        }
    }

    #[test]
    fn buckets_by_second_with_percentiles() {
        let mut s = TimeSeries::default();
        s.started(Duration::from_millis(10), 2);
        s.finished(&done(500, 100));
        s.finished(&done(1500, 300));
        let p = s.points();
        assert_eq!(p.len(), 2);
        assert_eq!(
            (
                p[0].started,
                p[0].active_vus,
                p[0].completed,
                p[0].output_tokens
            ),
            (1, 2, 1, 3)
        );
        assert!((p[1].ttft_p50_ms.unwrap() - 300.0).abs() < 3.0);
    }

    #[test]
    fn stays_bounded_by_merging_buckets() {
        let mut s = TimeSeries::default();
        for sec in 0..(3 * MAX_BUCKETS as u64) {
            s.finished(&done(sec * 1000 + 1, 10));
        }
        let p = s.points();
        assert!(p.len() <= MAX_BUCKETS, "{}", p.len());
        assert_eq!(p[0].width_secs, 4);
        assert_eq!(
            p.iter().map(|b| b.completed).sum::<u64>(),
            3 * MAX_BUCKETS as u64
        );
        assert!((p[0].ttft_p95_ms.unwrap() - 10.0).abs() < 0.5);
    }

    #[test]
    fn tokens_count_in_the_seconds_they_arrived() {
        let mut s = TimeSeries::default();
        // 5 chunks, one every 500 ms from 0.5 s: seconds 0, 1, 1, 2, 2; 10 tokens, 2 each.
        let sample = Sample {
            started: Duration::ZERO,
            ..Sample::plain(
                None,
                Duration::from_millis(2600),
                Outcome::Done(Measurement {
                    ttft: Some(Duration::from_millis(500)),
                    itl: vec![Duration::from_millis(500); 4],
                    output_tokens: 10,
                    ..Measurement::default()
                }),
            )
        };
        s.finished(&sample);
        let tokens: Vec<u64> = s.points().iter().map(|p| p.output_tokens).collect();
        assert_eq!(tokens, [2, 4, 4]);
        assert_eq!(
            s.points()[2].completed,
            1,
            "the request completes in its last second"
        );
    }
}
