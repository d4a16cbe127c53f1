//! Pure arrival schedules for open-model executors: the intended start time of every request,
//! computed before anything is sent and unit-tested without a clock.
//!
//! Arrivals come from time-rescaling: a unit-rate renewal process (gaps of exactly 1 for
//! `uniform`, Exp(1) for `poisson`, Gamma(b, 1/b) for `gamma` with burstiness b) is drawn in
//! "expected arrivals" space and mapped to time through the cumulative rate Λ(t) = ∫ r. With a
//! constant rate this is the familiar schedule (Poisson gaps of mean 1/r; vLLM's gamma with
//! shape b and scale 1/(r·b)); with piecewise-linear ramps the same draw bends to follow r(t), so
//! a ramp from r0 to r1 over T produces (r0 + r1)·T/2 arrivals on average.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Exp1, Gamma};

/// How arrivals are spaced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Process {
    /// Evenly spaced.
    Uniform,
    /// Exponential gaps (Poisson arrivals).
    Poisson,
    /// Gamma gaps with this burstiness (shape): 1 is Poisson, below 1 burstier, above 1 smoother.
    Gamma(f64),
}

/// A stretch of time over which the rate moves linearly from `from` to `to` (requests/s).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateSegment {
    /// Length of the stretch.
    pub duration: Duration,
    /// Rate at its start, requests per second.
    pub from: f64,
    /// Rate at its end, requests per second.
    pub to: f64,
}

impl RateSegment {
    /// Expected arrivals in the segment: the area under the rate.
    pub fn expected(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.duration.as_secs_f64()
    }

    /// Seconds into the segment at which `area` expected arrivals have accumulated.
    fn time_for(&self, area: f64) -> f64 {
        let len = self.duration.as_secs_f64();
        let slope = (self.to - self.from) / len;
        if slope.abs() < 1e-12 {
            return area / self.from;
        }
        // Solve from·τ + slope·τ²/2 = area for the root in [0, len].
        let disc = (self.from * self.from + 2.0 * slope * area).max(0.0);
        ((disc.sqrt() - self.from) / slope).clamp(0.0, len)
    }
}

/// The schedule: an iterator of intended offsets from the phase start, in order. Lazy, so a
/// long run at thousands of requests per second costs no memory.
#[derive(Debug, Clone)]
pub struct Schedule {
    segments: Vec<RateSegment>,
    process: Process,
    rng: SmallRng,
    segment: usize,
    segment_start: Duration,
    area_in_segment: f64,
    first: bool,
    /// Arrivals still allowed (`None`: as many as the segments hold).
    left: Option<u64>,
}

impl Schedule {
    /// A schedule over `segments` with the given process, reproducible from `seed`.
    pub fn new(segments: Vec<RateSegment>, process: Process, seed: u64) -> Self {
        Self {
            segments,
            process,
            rng: SmallRng::seed_from_u64(seed),
            segment: 0,
            segment_start: Duration::ZERO,
            area_in_segment: 0.0,
            first: true,
            left: None,
        }
    }

    /// The same schedule, ending after at most `n` arrivals.
    pub fn limit(mut self, n: u64) -> Self {
        self.left = Some(n);
        self
    }

    /// How long the schedule lasts at most (the segments' total).
    pub fn duration(&self) -> Duration {
        self.segments.iter().map(|s| s.duration).sum()
    }

    fn gap(&mut self) -> f64 {
        match self.process {
            Process::Uniform => 1.0,
            Process::Poisson => Exp1.sample(&mut self.rng),
            Process::Gamma(b) => Gamma::new(b, 1.0 / b).map_or(1.0, |g| g.sample(&mut self.rng)),
        }
    }
}

impl Iterator for Schedule {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        if let Some(left) = &mut self.left {
            *left = left.checked_sub(1)?;
        }
        // The first uniform arrival is at t = 0 as in k6; random processes draw their first gap.
        let mut need = if self.first && self.process == Process::Uniform {
            0.0
        } else {
            self.gap()
        };
        self.first = false;
        loop {
            let seg = *self.segments.get(self.segment)?;
            let left = seg.expected() - self.area_in_segment;
            // The end of a segment is exclusive (k6: 4/s for 2 s is 8 arrivals, the last at
            // 1.75 s); the epsilon absorbs floating-point residue in the accumulated area.
            if seg.duration.is_zero() || need >= left - 1e-9 {
                need -= left.max(0.0);
                self.segment_start += seg.duration;
                self.segment += 1;
                self.area_in_segment = 0.0;
                continue;
            }
            self.area_in_segment += need;
            let t = self.segment_start.as_secs_f64() + seg.time_for(self.area_in_segment);
            return Some(Duration::from_secs_f64(t));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constant(rate: f64, secs: u64) -> Vec<RateSegment> {
        vec![RateSegment {
            duration: Duration::from_secs(secs),
            from: rate,
            to: rate,
        }]
    }

    fn gaps(s: Schedule) -> (usize, f64, f64) {
        let times: Vec<f64> = s.map(|d| d.as_secs_f64()).collect();
        let g: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        let mean = g.iter().sum::<f64>() / g.len() as f64;
        let var = g.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / g.len() as f64;
        (times.len(), mean, var.sqrt() / mean)
    }

    #[test]
    fn uniform_is_evenly_spaced_from_zero() {
        let times: Vec<Duration> = Schedule::new(constant(4.0, 2), Process::Uniform, 1).collect();
        assert_eq!(times.len(), 8);
        assert_eq!(times[0], Duration::ZERO);
        assert!((times[1].as_secs_f64() - 0.25).abs() < 1e-9);
        assert!((times[7].as_secs_f64() - 1.75).abs() < 1e-9);
    }

    #[test]
    fn poisson_counts_and_gaps_match_the_distribution() {
        // 100/s for 200 s: 20,000 expected, sd 141; exponential gaps have CV 1.
        let (n, mean, cv) = gaps(Schedule::new(constant(100.0, 200), Process::Poisson, 7));
        assert!((n as f64 - 20_000.0).abs() < 4.0 * 141.0, "{n}");
        assert!((mean - 0.01).abs() < 0.0003, "{mean}");
        assert!((cv - 1.0).abs() < 0.03, "{cv}");
    }

    #[test]
    fn gamma_burstiness_sets_the_variability() {
        // Gamma(b) gaps have CV 1/sqrt(b): b = 0.25 -> 2, b = 4 -> 0.5.
        for (b, want_cv) in [(0.25, 2.0), (1.0, 1.0), (4.0, 0.5)] {
            let (n, mean, cv) = gaps(Schedule::new(constant(50.0, 400), Process::Gamma(b), 3));
            assert!((n as f64 / 20_000.0 - 1.0).abs() < 0.05, "b={b}: {n}");
            assert!((mean - 0.02).abs() < 0.001, "b={b}: {mean}");
            assert!((cv - want_cv).abs() < want_cv * 0.06, "b={b}: cv {cv}");
        }
    }

    #[test]
    fn a_limit_ends_the_schedule_after_exactly_that_many_arrivals() {
        let all: Vec<_> = Schedule::new(constant(10.0, 10), Process::Poisson, 42).collect();
        let first: Vec<_> = Schedule::new(constant(10.0, 10), Process::Poisson, 42)
            .limit(25)
            .collect();
        assert_eq!(first, all[..25]);
        // A limit beyond what the segments hold changes nothing.
        let more = Schedule::new(constant(10.0, 10), Process::Poisson, 42).limit(1_000_000);
        assert_eq!(more.count(), all.len());
    }

    #[test]
    fn same_seed_same_schedule_other_seed_other_schedule() {
        let a: Vec<_> = Schedule::new(constant(10.0, 10), Process::Poisson, 42).collect();
        let b: Vec<_> = Schedule::new(constant(10.0, 10), Process::Poisson, 42).collect();
        let c: Vec<_> = Schedule::new(constant(10.0, 10), Process::Poisson, 43).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn ramps_integrate_to_the_expected_number_and_follow_the_rate() {
        // 0 -> 10/s over 10 s, then 10/s for 5 s: 50 + 50 arrivals.
        let segs = vec![
            RateSegment {
                duration: Duration::from_secs(10),
                from: 0.0,
                to: 10.0,
            },
            RateSegment {
                duration: Duration::from_secs(5),
                from: 10.0,
                to: 10.0,
            },
        ];
        let times: Vec<f64> = Schedule::new(segs.clone(), Process::Uniform, 1)
            .map(|d| d.as_secs_f64())
            .collect();
        assert_eq!(times.len(), 100);
        // Λ(t) = t²/2 on the ramp: the 8th arrival (index 8, area 8) is at t = 4 s.
        assert!((times[8] - 4.0).abs() < 1e-9, "{}", times[8]);
        assert!(times.iter().all(|t| *t < 15.0));
        let poisson = Schedule::new(segs, Process::Poisson, 9).count();
        assert!((poisson as f64 - 100.0).abs() < 40.0, "{poisson}");
        let first_half = Schedule::new(
            vec![RateSegment {
                duration: Duration::from_secs(100),
                from: 0.0,
                to: 100.0,
            }],
            Process::Poisson,
            5,
        )
        .filter(|t| t.as_secs_f64() < 50.0)
        .count();
        // A quarter of the ramp's 5,000 arrivals fall in its first half.
        assert!(
            (first_half as f64 - 1250.0).abs() < 4.0 * 35.0,
            "{first_half}"
        );
    }

    #[test]
    fn zero_rate_and_empty_schedules_end() {
        assert_eq!(
            Schedule::new(constant(0.0, 10), Process::Poisson, 1).count(),
            0
        );
        assert_eq!(Schedule::new(vec![], Process::Uniform, 1).count(), 0);
    }
}
