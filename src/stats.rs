//! Two-sample statistics on histograms, for `compare`: is the difference between a base run and
//! a new one real, or noise? Pure. Samples come as (value, count) pairs in increasing value
//! order, which is what an HDR histogram is: equal values are exact ties.

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Beta, Distribution};

/// The Mann-Whitney U test of `new` against `base`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the new sample: pairs (base, new) with new > base, plus half the ties.
    pub u_new: f64,
    /// Two-sided p-value, normal approximation with tie and continuity correction (as SciPy's
    /// `mannwhitneyu(new, base, method="asymptotic")`).
    pub p_value: f64,
    /// Probability that a new request's value exceeds a base one's (ties count half):
    /// 0.5 is no difference; above 0.5, new is larger (slower, for a latency).
    pub effect: f64,
}

/// The test, or `None` when a sample is empty.
pub fn mann_whitney(base: &[(u64, u64)], new: &[(u64, u64)]) -> Option<MannWhitney> {
    // Counts are summed in f64: a damaged or hand-made histogram can hold counts whose u64
    // sum wraps, and the statistic must stay a probability whatever the input.
    let n1f: f64 = base.iter().map(|&(_, c)| c as f64).sum();
    let n2f: f64 = new.iter().map(|&(_, c)| c as f64).sum();
    if n1f == 0.0 || n2f == 0.0 {
        return None;
    }
    let (mut i, mut j) = (0, 0);
    // U of the new sample counted directly, pair by pair in tie groups (each new value beats
    // every base value below it and half of those equal to it): the same number as the rank
    // sum minus n2(n2+1)/2, without the cancellation of two large sums.
    let mut u_new = 0.0;
    let mut ties = 0.0;
    let mut base_below = 0.0;
    while i < base.len() || j < new.len() {
        let value = match (base.get(i), new.get(j)) {
            (Some(&(a, _)), Some(&(b, _))) => a.min(b),
            (Some(&(a, _)), None) => a,
            (None, Some(&(b, _))) => b,
            (None, None) => unreachable!(),
        };
        let take = |list: &[(u64, u64)], at: &mut usize| match list.get(*at) {
            Some(&(v, c)) if v == value => {
                *at += 1;
                c as f64
            }
            _ => 0.0,
        };
        let in_base = take(base, &mut i);
        let in_new = take(new, &mut j);
        let t = in_base + in_new;
        u_new += in_new * (base_below + in_base / 2.0);
        ties += t * t * t - t;
        base_below += in_base;
    }
    let n = n1f + n2f;
    let mu = n1f * n2f / 2.0;
    let variance = n1f * n2f / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    let u = u_new.max(n1f * n2f - u_new);
    let p_value = if variance <= 0.0 {
        1.0
    } else {
        let z = (u - mu - 0.5) / variance.sqrt();
        (2.0 * normal_sf(z)).clamp(0.0, 1.0)
    };
    Some(MannWhitney {
        u_new,
        p_value,
        effect: (u_new / (n1f * n2f)).clamp(0.0, 1.0),
    })
}

/// The upper tail of the standard normal distribution.
fn normal_sf(z: f64) -> f64 {
    0.5 * libm::erfc(z / std::f64::consts::SQRT_2)
}

/// A bootstrap confidence interval of `quantile(new) - quantile(base)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantileDiff {
    /// The difference on the samples themselves.
    pub estimate: f64,
    /// Lower bound of the 95% interval.
    pub low: f64,
    /// Upper bound of the 95% interval.
    pub high: f64,
}

/// The nearest-rank quantile of a sample (`q` in 0..=1).
pub fn quantile(sample: &[(u64, u64)], q: f64) -> Option<u64> {
    let n = total(sample);
    if n == 0 {
        return None;
    }
    let rank = ((q * n as f64).ceil() as u64).clamp(1, n);
    at_rank(sample, rank)
}

/// The sample's size; saturating, so a damaged histogram cannot wrap it to a small number.
fn total(sample: &[(u64, u64)]) -> u64 {
    sample.iter().fold(0, |n, &(_, c)| n.saturating_add(c))
}

fn at_rank(sample: &[(u64, u64)], rank: u64) -> Option<u64> {
    let mut seen = 0u64;
    for &(v, c) in sample {
        seen = seen.saturating_add(c);
        if seen >= rank {
            return Some(v);
        }
    }
    None
}

/// A percentile bootstrap (`resamples` replicates, seeded, so the interval is reproducible) of
/// the difference of the `q`-quantiles. Each replicate's quantile is drawn exactly, without
/// drawing the n values: the k-th smallest of n draws from a sample is the sample's quantile
/// function at the k-th smallest of n uniforms, which is Beta(k, n - k + 1). A replicate costs
/// O(log buckets) instead of O(n), so 100,000-request runs bootstrap in milliseconds.
pub fn bootstrap_quantile_diff(
    base: &[(u64, u64)],
    new: &[(u64, u64)],
    q: f64,
    resamples: usize,
    seed: u64,
) -> Option<QuantileDiff> {
    let estimate = quantile(new, q)? as f64 - quantile(base, q)? as f64;
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut draw = Resampler::new(base, q)?;
    let mut draw_new = Resampler::new(new, q)?;
    let mut diffs: Vec<f64> = (0..resamples.max(1))
        .map(|_| draw_new.next(&mut rng) as f64 - draw.next(&mut rng) as f64)
        .collect();
    diffs.sort_by(f64::total_cmp);
    let at = |p: f64| diffs[((p * (diffs.len() - 1) as f64).round() as usize).min(diffs.len() - 1)];
    Some(QuantileDiff {
        estimate,
        low: at(0.025),
        high: at(0.975),
    })
}

/// Draws the q-quantile of a bootstrap replicate of one sample.
struct Resampler<'a> {
    sample: &'a [(u64, u64)],
    n: u64,
    order: Beta<f64>,
}

impl<'a> Resampler<'a> {
    fn new(sample: &'a [(u64, u64)], q: f64) -> Option<Self> {
        let n = total(sample);
        if n == 0 {
            return None;
        }
        let k = ((q * n as f64).ceil() as u64).clamp(1, n);
        let order = Beta::new(k as f64, (n - k + 1) as f64).ok()?;
        Some(Resampler { sample, n, order })
    }

    fn next(&mut self, rng: &mut SmallRng) -> u64 {
        let u: f64 = self.order.sample(rng);
        let rank = ((u * self.n as f64).ceil() as u64).clamp(1, self.n);
        at_rank(self.sample, rank).expect("rank within the sample")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(value: &serde_json::Value) -> Vec<(u64, u64)> {
        value
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_u64().unwrap(), p[1].as_u64().unwrap()))
            .collect()
    }

    /// Against SciPy's mannwhitneyu on the same samples (tests/data/stats_reference.json, made
    /// by scripts/stats_reference.py).
    /// Counts whose u64 sums wrap (a damaged or hand-made histogram) still give a probability
    /// and a p-value, never 4e18.
    #[test]
    fn huge_counts_stay_probabilities() {
        let big = u64::MAX / 2;
        let got = mann_whitney(&[(1, big), (2, big)], &[(2, big), (3, big)]).unwrap();
        assert!((0.0..=1.0).contains(&got.effect), "{got:?}");
        assert!((got.effect - 0.875).abs() < 1e-9, "{got:?}");
        assert!((0.0..=1.0).contains(&got.p_value), "{got:?}");
        assert_eq!(quantile(&[(5, u64::MAX), (9, u64::MAX)], 0.99), Some(5));
    }

    #[test]
    fn mann_whitney_matches_scipy() {
        let text = include_str!("../tests/data/stats_reference.json");
        let reference: serde_json::Value = serde_json::from_str(text).unwrap();
        let cases = reference["cases"].as_array().unwrap();
        assert!(cases.len() >= 5);
        for case in cases {
            let name = case["name"].as_str().unwrap();
            let got = mann_whitney(&pairs(&case["base"]), &pairs(&case["new"])).unwrap();
            let want_u = case["u_new"].as_f64().unwrap();
            let want_p = case["p_value"].as_f64().unwrap();
            assert!(
                (got.u_new - want_u).abs() < 1e-9,
                "{name}: U {} vs {want_u}",
                got.u_new
            );
            let relative = (got.p_value - want_p).abs() / want_p.max(1e-300);
            assert!(relative < 1e-9, "{name}: p {} vs {want_p}", got.p_value);
            assert!(
                (got.effect - case["effect"].as_f64().unwrap()).abs() < 1e-12,
                "{name}"
            );
        }
    }

    #[test]
    fn an_empty_sample_has_no_test() {
        assert!(mann_whitney(&[], &[(1, 3)]).is_none());
        assert!(bootstrap_quantile_diff(&[(1, 1)], &[], 0.95, 10, 1).is_none());
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let sample: Vec<(u64, u64)> = (1..=100).map(|v| (v, 1)).collect();
        assert_eq!(quantile(&sample, 0.95), Some(95));
        assert_eq!(quantile(&sample, 0.0), Some(1));
        assert_eq!(quantile(&sample, 1.0), Some(100));
        assert_eq!(quantile(&[(7, 3)], 0.5), Some(7));
    }

    /// The order-statistic shortcut agrees with resampling the values one by one.
    #[test]
    fn the_bootstrap_shortcut_matches_plain_resampling() {
        use rand::Rng;
        let base: Vec<(u64, u64)> = (0..60).map(|i| (1000 + i * 37 % 500, 1 + i % 3)).collect();
        let mut base = base;
        base.sort();
        base.dedup_by_key(|p| p.0);
        let new: Vec<(u64, u64)> = base.iter().map(|&(v, c)| (v + 40, c)).collect();
        let fast = bootstrap_quantile_diff(&base, &new, 0.95, 4000, 7).unwrap();
        // Plain bootstrap: draw n values with replacement, take the nearest-rank quantile.
        let flat = |s: &[(u64, u64)]| -> Vec<u64> {
            s.iter()
                .flat_map(|&(v, c)| std::iter::repeat_n(v, c as usize))
                .collect()
        };
        let (fb, fnew) = (flat(&base), flat(&new));
        let mut rng = SmallRng::seed_from_u64(99);
        let mut replicate = |values: &[u64]| {
            let mut draw: Vec<u64> = (0..values.len())
                .map(|_| values[rng.random_range(0..values.len())])
                .collect();
            draw.sort();
            let k = ((0.95 * draw.len() as f64).ceil() as usize).clamp(1, draw.len());
            draw[k - 1] as f64
        };
        let mut diffs: Vec<f64> = (0..4000)
            .map(|_| replicate(&fnew) - replicate(&fb))
            .collect();
        diffs.sort_by(f64::total_cmp);
        let (low, high) = (diffs[100], diffs[3899]);
        assert_eq!(fast.estimate, 40.0);
        assert!((fast.low - low).abs() <= 40.0, "{fast:?} vs {low}..{high}");
        assert!(
            (fast.high - high).abs() <= 40.0,
            "{fast:?} vs {low}..{high}"
        );
    }

    #[test]
    fn the_bootstrap_interval_finds_a_shift_and_not_noise() {
        let base: Vec<(u64, u64)> = (0..200).map(|i| (50_000 + i * 100, 5)).collect();
        let same = bootstrap_quantile_diff(&base, &base, 0.95, 2000, 1).unwrap();
        assert!(same.low <= 0.0 && same.high >= 0.0, "{same:?}");
        let slower: Vec<(u64, u64)> = base.iter().map(|&(v, c)| (v + 5_000, c)).collect();
        let shifted = bootstrap_quantile_diff(&base, &slower, 0.95, 2000, 1).unwrap();
        assert!(
            shifted.low > 0.0 && shifted.estimate == 5_000.0,
            "{shifted:?}"
        );
        // Seeded: the same call gives the same interval.
        assert_eq!(
            shifted,
            bootstrap_quantile_diff(&base, &slower, 0.95, 2000, 1).unwrap()
        );
    }
}
