//! Pure knee detection on a concurrency sweep: where queueing starts (p95 TTFT pulls away from
//! the median) and where throughput stops growing.
//!
//! Rules, applied to levels in increasing order:
//! - **Latency knee**: the first level where the TTFT spread p95 − p50 is larger than twice the
//!   lowest level's spread plus half its p95 (the uncontended noise: prompt lengths differ), and
//!   also more than a quarter of that level's median. Before the knee every request waits about
//!   as long as the others; past it, some queue behind others and the tail separates from the
//!   median. A spread is used rather than the p95/p50 ratio, because at the lowest level both
//!   are a few milliseconds and their ratio is noise.
//! - **Queueing**: the first level where the TTFT median itself leaves its uncontended value:
//!   above twice the lowest level's p95. When every request waits about as long as the others
//!   (one slot, a uniform queue), the tail never separates from the median, yet all of them
//!   wait: the spread rule alone would call a 12 ms -> 3.6 s sweep knee-free.
//! - **Apart from the start**: the lowest level's own p95 is more than twice its median and
//!   more than 5 ms above it (a cold start, a noisy server). The rules above measure growth from
//!   that level, so "p95 stays with p50" would be false: the tail was apart all along.
//! - **Saturation**: the last level before throughput (output tokens/s) grows by less than 10 %
//!   from one level to the next. Adding users past it adds waiting, not tokens. A sweep that
//!   produced no tokens at any level says nothing about throughput.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How many times the lowest level's spread the tail must exceed.
pub const SPREAD_FACTOR: f64 = 2.0;
/// The share of the lowest level's p95 added to that, for noise.
pub const NOISE_SHARE: f64 = 0.5;
/// The share of the level's own median the spread must also exceed.
pub const MEDIAN_SHARE: f64 = 0.25;
/// How many times the lowest level's p95 the median must exceed for uniform queueing.
pub const MEDIAN_GROWTH: f64 = 2.0;
/// How many times its median the lowest level's p95 must exceed to be apart from the start.
pub const APART_RATIO: f64 = 2.0;
/// And by how many milliseconds at least (a 1 ms median doubled is not a tail).
pub const APART_MS: f64 = 5.0;
/// Throughput growth below which the server counts as saturated.
pub const MIN_THROUGHPUT_GAIN: f64 = 0.10;

/// One level of a sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelPoint {
    /// Concurrency.
    pub level: u32,
    /// TTFT median, ms.
    pub ttft_p50: f64,
    /// TTFT 95th percentile, ms.
    pub ttft_p95: f64,
    /// Output tokens per second.
    pub throughput: f64,
}

/// What the sweep shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Knee {
    /// The first level where TTFT p95 diverges from p50, if any.
    pub latency_knee_level: Option<u32>,
    /// The last level before throughput stops growing, if it does.
    pub saturation_level: Option<u32>,
    /// The first level where the TTFT median itself leaves its uncontended value (every request
    /// waits), if any. Absent in results written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queueing_level: Option<u32>,
    /// The lowest level, when its TTFT p95 is already far from its p50: the tail was apart
    /// before any growth the other rules look for. Absent when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub apart_from_level: Option<u32>,
    /// True when no level produced output tokens: nothing is said about throughput.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_throughput: bool,
}

/// Applies the rules to a sweep; points need not be sorted.
pub fn find(points: &[LevelPoint]) -> Knee {
    let no_throughput = points.iter().all(|p| p.throughput <= 0.0);
    let mut points: Vec<LevelPoint> = points
        .iter()
        .copied()
        .filter(|p| p.ttft_p50 > 0.0)
        .collect();
    points.sort_by_key(|p| p.level);
    let Some(first) = points.first() else {
        return Knee {
            no_throughput,
            ..Knee::default()
        };
    };
    let floor = SPREAD_FACTOR * (first.ttft_p95 - first.ttft_p50) + NOISE_SHARE * first.ttft_p95;
    let latency_knee_level = points
        .iter()
        .skip(1)
        .find(|p| {
            let spread = p.ttft_p95 - p.ttft_p50;
            spread > floor && spread > MEDIAN_SHARE * p.ttft_p50
        })
        .map(|p| p.level);
    let queueing_level = points
        .iter()
        .skip(1)
        .find(|p| p.ttft_p50 > MEDIAN_GROWTH * first.ttft_p95)
        .map(|p| p.level);
    let saturation_level = points
        .windows(2)
        .find(|w| w[1].throughput < w[0].throughput * (1.0 + MIN_THROUGHPUT_GAIN))
        .map(|w| w[0].level)
        .filter(|_| !no_throughput);
    let apart_from_level = (first.ttft_p95 > APART_RATIO * first.ttft_p50
        && first.ttft_p95 - first.ttft_p50 > APART_MS)
        .then_some(first.level);
    Knee {
        latency_knee_level,
        saturation_level,
        queueing_level,
        apart_from_level,
        no_throughput,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(level: u32, p50: f64, p95: f64, throughput: f64) -> LevelPoint {
        LevelPoint {
            level,
            ttft_p50: p50,
            ttft_p95: p95,
            throughput,
        }
    }

    #[test]
    fn a_two_slot_server_queues_past_two_users() {
        // Throughput doubles to 2 users, then flattens; the TTFT tail separates at 4.
        let sweep = [
            p(1, 10.0, 12.0, 100.0),
            p(2, 11.0, 14.0, 195.0),
            p(4, 150.0, 300.0, 200.0),
            p(8, 450.0, 640.0, 201.0),
        ];
        assert_eq!(
            find(&sweep),
            Knee {
                latency_knee_level: Some(4),
                saturation_level: Some(2),
                queueing_level: Some(4),
                ..Knee::default()
            }
        );
    }

    /// A lowest level whose tail is already far from its median (13 ms against 602 ms) is said
    /// to be apart, not "staying with p50".
    #[test]
    fn a_tail_apart_at_the_lowest_level_is_named() {
        let k = find(&[
            p(1, 13.0, 602.0, 40.0),
            p(2, 14.0, 600.0, 80.0),
            p(4, 15.0, 610.0, 160.0),
        ]);
        assert_eq!(k.apart_from_level, Some(1));
        assert_eq!(k.latency_knee_level, None);
        let calm = find(&[p(1, 13.0, 15.0, 40.0), p(2, 14.0, 16.0, 80.0)]);
        assert_eq!(calm.apart_from_level, None);
        let tiny = find(&[p(1, 1.0, 3.0, 40.0), p(2, 1.0, 3.0, 80.0)]);
        assert_eq!(tiny.apart_from_level, None, "2 ms is no tail");
    }

    #[test]
    fn linear_scaling_has_no_knee() {
        let sweep: Vec<_> = [1, 2, 4, 8, 16]
            .iter()
            .map(|&c| p(c, 20.0, 25.0, 50.0 * f64::from(c)))
            .collect();
        assert_eq!(find(&sweep), Knee::default());
    }

    #[test]
    fn unsorted_input_and_empty_levels_are_handled() {
        let sweep = [
            p(8, 400.0, 900.0, 100.0),
            p(1, 10.0, 11.0, 60.0),
            p(4, 0.0, 0.0, 0.0),
            p(2, 12.0, 13.0, 100.0),
        ];
        assert_eq!(
            find(&sweep),
            Knee {
                latency_knee_level: Some(8),
                saturation_level: Some(2),
                queueing_level: Some(8),
                ..Knee::default()
            }
        );
        assert!(find(&[]).no_throughput, "no level, no tokens");
    }

    #[test]
    fn a_noisy_lowest_level_does_not_hide_the_knee() {
        // The quickstart's numbers: 6/9 ms at level 1 (prompt lengths differ), 144/297 at 4.
        let sweep = [
            p(1, 6.0, 9.0, 190.0),
            p(2, 6.0, 10.0, 317.0),
            p(4, 144.0, 297.0, 327.0),
            p(8, 433.0, 629.0, 318.0),
        ];
        assert_eq!(
            find(&sweep),
            Knee {
                latency_knee_level: Some(4),
                saturation_level: Some(2),
                queueing_level: Some(4),
                ..Knee::default()
            }
        );
    }

    #[test]
    fn a_single_slot_queue_keeps_its_ratio_but_saturates_at_once() {
        // One slot: every request after the first waits about equally long, so the tail does not
        // separate, but throughput is flat from the first level.
        let sweep = [
            p(1, 30.0, 31.0, 100.0),
            p(2, 230.0, 240.0, 101.0),
            p(4, 630.0, 650.0, 100.0),
        ];
        assert_eq!(
            find(&sweep),
            Knee {
                latency_knee_level: None,
                saturation_level: Some(1),
                queueing_level: Some(2),
                ..Knee::default()
            }
        );
    }

    #[test]
    fn uniform_queueing_is_a_knee_even_when_the_tail_stays_with_the_median() {
        // Every request waits: the median goes from 12 ms to 3.59 s with p95 right beside it.
        let sweep = [
            p(1, 12.0, 13.0, 80.0),
            p(2, 230.0, 240.0, 81.0),
            p(4, 900.0, 930.0, 80.0),
            p(8, 1800.0, 1850.0, 80.0),
            p(16, 3590.0, 3640.0, 80.0),
        ];
        let knee = find(&sweep);
        assert_eq!(knee.latency_knee_level, None, "the tail never separates");
        assert_eq!(knee.queueing_level, Some(2));
    }

    #[test]
    fn no_tokens_at_any_level_says_nothing_about_throughput() {
        let sweep = [
            p(1, 12.0, 13.0, 0.0),
            p(2, 13.0, 14.0, 0.0),
            p(4, 14.0, 15.0, 0.0),
        ];
        let knee = find(&sweep);
        assert!(knee.no_throughput);
        assert_eq!(knee.saturation_level, None);
        // Nor when every request failed and no level has a TTFT either.
        assert!(find(&[p(1, 0.0, 0.0, 0.0), p(2, 0.0, 0.0, 0.0)]).no_throughput);
    }
}
