//! Aggregates -> the statistics users read: counts, rates and percentiles, in milliseconds and
//! tokens, serialisable for the result file.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::recorder::GroupStats;
use super::registry::{Trend, CUSTOM_UNIT};
use crate::backend::ErrorKind;

/// Distribution statistics of one metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Stats {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Standard deviation.
    pub stddev: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// Largest.
    pub max: f64,
}

impl Stats {
    /// Statistics of `h`, each value divided by `scale` (1000 turns µs into ms). `None` when empty.
    pub fn from_histogram(h: &Histogram<u64>, scale: f64) -> Option<Stats> {
        if h.is_empty() {
            return None;
        }
        let q = |q: f64| quantile(h, q) as f64 / scale;
        Some(Stats {
            count: h.len(),
            min: h.median_equivalent(h.min()) as f64 / scale,
            mean: h.mean() / scale,
            stddev: h.stdev() / scale,
            p50: q(0.5),
            p90: q(0.9),
            p95: q(0.95),
            p99: q(0.99),
            p99_9: q(0.999),
            max: h.median_equivalent(h.max()) as f64 / scale,
        })
    }
}

pub use super::registry::quantile;

/// Everything measured for one group (a level, stage, phase or the whole run).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupSummary {
    /// Requests that ended (succeeded + failed; interrupted ones are apart).
    pub requests: u64,
    /// Requests that completed without error.
    pub successes: u64,
    /// Requests that failed.
    pub errors: u64,
    /// errors / requests.
    pub error_rate: f64,
    /// Failed requests by category.
    pub errors_by_kind: BTreeMap<ErrorKind, u64>,
    /// Requests cut off when the run stopped (not server errors).
    pub interrupted: u64,
    /// Arrivals skipped because every VU was busy (open-model executors).
    pub dropped_iterations: u64,
    /// Successful requests per second that met every per-request limit of the thresholds; absent
    /// when no threshold sets one.
    pub goodput_rps: Option<f64>,
    /// The share of requests (failed ones included) that succeeded and met every per-request
    /// limit: the `goodput` threshold's rate. Absent when no threshold sets a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub goodput_ratio: Option<f64>,
    /// From the first request's start to the last one's end, seconds.
    pub wall_time_secs: f64,
    /// When the first request started, seconds from the start of the run (for the boundary
    /// marks on time charts). Absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_start_secs: Option<f64>,
    /// Successful requests per second of wall time.
    pub requests_per_second: f64,
    /// Output tokens of successful requests per second of wall time: the capacity figure.
    pub output_tokens_per_second: f64,
    /// Prompt tokens per second of wall time.
    pub prompt_tokens_per_second: f64,
    /// Output tokens of successful requests.
    pub output_tokens_total: u64,
    /// Embeddings returned by successful requests (`api: embeddings`); absent otherwise.
    #[serde(default, skip_serializing_if = "super::registry::is_zero")]
    pub embeddings_total: u64,
    /// Embeddings per second of wall time (`api: embeddings`): the capacity figure of an
    /// embedding model, as output tokens/s is a generator's.
    #[serde(default, skip_serializing_if = "is_zero_f64")]
    pub embeddings_per_second: f64,
    /// Prompt tokens of successful requests (server counts).
    pub prompt_tokens_total: u64,
    /// Successful requests whose output tokens are a chunk count (no server count).
    pub tokens_estimated_requests: u64,
    /// Requests sent a second time because the server closed the kept-alive connection they were
    /// written to before answering (llama-server after every streamed answer); their latency
    /// includes the lost attempt.
    #[serde(default)]
    pub reconnected_requests: u64,
    /// Requests that waited for a new TCP connection (after the pre-opened ones: a server
    /// that closes connections, or more requests in flight than were opened).
    #[serde(default, skip_serializing_if = "super::registry::is_zero")]
    pub connections_opened: u64,
    /// Time to first token, ms.
    pub ttft_ms: Option<Stats>,
    /// Time to first answer token (text or tool call, not reasoning), ms.
    pub ttfa_ms: Option<Stats>,
    /// Inter-token latency: every gap between content chunks, pooled, ms.
    pub itl_ms: Option<Stats>,
    /// Time per output token: (e2e − ttft) / (output tokens − 1), ms.
    pub tpot_ms: Option<Stats>,
    /// End-to-end latency, ms.
    pub e2e_latency_ms: Option<Stats>,
    /// Output tokens / e2e latency of each request, tokens per second.
    pub request_tokens_per_second: Option<Stats>,
    /// Output tokens per request.
    pub output_tokens: Option<Stats>,
    /// Prompt tokens per request.
    pub prompt_tokens: Option<Stats>,
    /// Server-side queue wait (total − load − prefill − decode), ms.
    pub queue_wait_ms: Option<Stats>,
    /// Server-side model load / scheduler wait, ms.
    pub load_ms: Option<Stats>,
    /// Server-side prefill (prompt evaluation), ms.
    pub prefill_ms: Option<Stats>,
    /// Open model: actual send − intended start, ms.
    pub schedule_lag_ms: Option<Stats>,
    /// Open model: TTFT measured from the intended start, ms.
    pub ttft_from_schedule_ms: Option<Stats>,
    /// Open model: e2e latency measured from the intended start, ms.
    pub e2e_from_schedule_ms: Option<Stats>,
    /// Waiting for a new TCP connection, of the successful requests that did, ms (part of
    /// their TTFT and e2e).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_ms: Option<Stats>,
    /// Hook checks by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, CheckSummary>,
    /// Custom trends recorded by the hook script with `metric(name, value)`, in its units.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, Stats>,
}

impl GroupSummary {
    /// The group's capacity figure: embeddings per second for an embedding model (it streams
    /// no tokens), output tokens per second otherwise.
    pub fn throughput_per_second(&self) -> f64 {
        if self.embeddings_total > 0 {
            self.embeddings_per_second
        } else {
            self.output_tokens_per_second
        }
    }
}

fn is_zero_f64(x: &f64) -> bool {
    *x == 0.0
}

/// One named check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CheckSummary {
    /// Times it held.
    pub passes: u64,
    /// Times it did not.
    pub fails: u64,
    /// passes / (passes + fails).
    pub rate: f64,
}

/// Summarises one group; `goodput` says whether per-request limits were applied.
pub fn summarize_with(g: &GroupStats, goodput: bool) -> GroupSummary {
    let mut s = summarize(g);
    if goodput {
        let wall = g.wall_time().as_secs_f64();
        s.goodput_rps = Some(if wall > 0.0 {
            g.good as f64 / wall
        } else {
            0.0
        });
        let requests = g.ok + g.error_count();
        s.goodput_ratio = (requests > 0).then(|| g.good as f64 / requests as f64);
    }
    s
}

/// Summarises one group.
pub fn summarize(g: &GroupStats) -> GroupSummary {
    let errors = g.error_count();
    let requests = g.ok + errors;
    let wall = g.wall_time().as_secs_f64();
    let per_second = |n: u64| if wall > 0.0 { n as f64 / wall } else { 0.0 };
    let stats = |t: Trend| Stats::from_histogram(g.trend(t), t.unit().scale());
    GroupSummary {
        requests,
        successes: g.ok,
        errors,
        error_rate: if requests > 0 {
            errors as f64 / requests as f64
        } else {
            0.0
        },
        errors_by_kind: g.errors.clone(),
        interrupted: g.interrupted,
        dropped_iterations: g.dropped,
        goodput_rps: None,
        goodput_ratio: None,
        wall_time_secs: wall,
        first_start_secs: g.first_start.map(|d| d.as_secs_f64()),
        requests_per_second: per_second(g.ok),
        output_tokens_per_second: per_second(g.output_tokens),
        prompt_tokens_per_second: per_second(g.prompt_tokens),
        output_tokens_total: g.output_tokens,
        embeddings_total: g.embeddings,
        embeddings_per_second: per_second(g.embeddings),
        prompt_tokens_total: g.prompt_tokens,
        tokens_estimated_requests: g.tokens_estimated,
        reconnected_requests: g.reconnected,
        connections_opened: g.connections_opened,
        ttft_ms: stats(Trend::Ttft),
        ttfa_ms: stats(Trend::Ttfa),
        itl_ms: stats(Trend::Itl),
        tpot_ms: stats(Trend::Tpot),
        e2e_latency_ms: stats(Trend::E2e),
        request_tokens_per_second: stats(Trend::RequestTokensPerSecond),
        output_tokens: stats(Trend::OutputTokens),
        prompt_tokens: stats(Trend::PromptTokens),
        queue_wait_ms: stats(Trend::QueueWait),
        load_ms: stats(Trend::Load),
        prefill_ms: stats(Trend::Prefill),
        schedule_lag_ms: stats(Trend::ScheduleLag),
        ttft_from_schedule_ms: stats(Trend::TtftFromSchedule),
        e2e_from_schedule_ms: stats(Trend::E2eFromSchedule),
        connect_ms: stats(Trend::Connect),
        custom: g
            .custom
            .iter()
            .filter_map(|(name, h)| {
                Some((name.clone(), Stats::from_histogram(h, CUSTOM_UNIT.scale())?))
            })
            .collect(),
        checks: g
            .checks
            .iter()
            .map(|(name, &(pass, total))| {
                let rate = if total > 0 {
                    pass as f64 / total as f64
                } else {
                    0.0
                };
                (
                    name.clone(),
                    CheckSummary {
                        passes: pass,
                        fails: total - pass,
                        rate,
                    },
                )
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_of_a_known_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        for v in 1..=100u64 {
            h.record(v * 1000).unwrap();
        }
        let s = Stats::from_histogram(&h, 1000.0).unwrap();
        assert_eq!(s.count, 100);
        assert!((s.p50 - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p95 - 95.0).abs() < 0.1, "{s:?}");
        assert!((s.p99 - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.mean - 50.5).abs() < 0.1);
        assert!((s.min - 1.0).abs() < 0.01 && (s.max - 100.0).abs() < 0.1);
    }

    #[test]
    fn percentiles_read_the_middle_of_their_bucket() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
        // About 10 s in µs, at the bottom of its bucket (8,192 µs wide there).
        let v = h.lowest_equivalent(10_000_000);
        for _ in 0..100 {
            h.record(v).unwrap();
        }
        let top = h.value_at_quantile(0.99).abs_diff(v);
        let middle = quantile(&h, 0.99).abs_diff(v);
        assert_eq!(top, 8_191, "the top of the bucket reads 8 ms high");
        assert_eq!(middle, 4_096, "the middle reads at most half a bucket off");
    }

    #[test]
    fn empty_histogram_has_no_stats_and_rates_need_wall_time() {
        let g = GroupStats::default();
        let s = summarize(&g);
        assert_eq!(s.ttft_ms, None);
        assert_eq!(s.requests_per_second, 0.0);
        assert_eq!(s.error_rate, 0.0);
    }
}
