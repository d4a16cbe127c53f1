//! Pure load plans: what should run when, computed from the scenario before anything is sent.
//! Executors only follow a plan; the arithmetic (k6's `GetExecutionRequirements`) is tested here.

use std::time::Duration;

use crate::scenario::{Phase, Stage};

/// Default time VUs get to finish requests at the end (k6's gracefulStop).
pub const DEFAULT_GRACEFUL_STOP: Duration = Duration::from_secs(30);

/// One phase, ready to execute.
#[derive(Debug, Clone, PartialEq)]
pub struct PhasePlan {
    /// The scenario's name in the file.
    pub name: String,
    /// Delay after the run's start.
    pub start_time: Duration,
    /// What the executor does.
    pub kind: PlanKind,
}

/// The executor-specific plan.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanKind {
    /// Closed-model sweep, one level after another.
    Levels {
        /// Concurrency of each level.
        levels: Vec<u32>,
        /// Requests completed per level.
        requests_per_level: u64,
    },
    /// Fixed VUs for a duration or a shared number of iterations.
    ConstantVus {
        /// VUs.
        vus: u32,
        /// Stop starting requests after this long.
        duration: Option<Duration>,
        /// Stop after this many requests in total.
        iterations: Option<u64>,
        /// Grace for requests in flight at the end.
        graceful_stop: Duration,
    },
    /// VUs following stages.
    RampingVus {
        /// VU count changes, in time order, starting with the count at 0s.
        steps: Vec<VuStep>,
        /// Stage boundaries as offsets from the phase start: stage i runs until `stage_ends[i]`.
        stage_ends: Vec<Duration>,
        /// Grace for VUs ramped down mid-request.
        graceful_ramp_down: Duration,
        /// Grace for requests in flight at the end.
        graceful_stop: Duration,
    },
}

/// At `at` after the phase start, `vus` VUs should be active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VuStep {
    /// Offset from the phase start.
    pub at: Duration,
    /// Target VU count from then on.
    pub vus: u32,
}

/// Builds a plan for one scenario phase.
pub fn build(name: &str, phase: &Phase) -> PhasePlan {
    let start_time = phase.start_time().map_or(Duration::ZERO, |d| d.get());
    let grace =
        |d: Option<crate::duration::HumanDuration>| d.map_or(DEFAULT_GRACEFUL_STOP, |d| d.get());
    let kind = match phase {
        Phase::ConcurrencyLevels(p) => PlanKind::Levels {
            levels: p.levels.clone(),
            requests_per_level: u64::from(p.requests_per_level),
        },
        Phase::ConstantVus(p) => PlanKind::ConstantVus {
            vus: p.vus,
            duration: p.duration.map(|d| d.get()),
            iterations: p.iterations,
            graceful_stop: grace(p.graceful_stop),
        },
        Phase::RampingVus(p) => {
            let start = p.start_vus.unwrap_or(1);
            PlanKind::RampingVus {
                steps: ramping_steps(start, &p.stages),
                stage_ends: stage_ends(&p.stages),
                graceful_ramp_down: grace(p.graceful_ramp_down),
                graceful_stop: grace(p.graceful_stop),
            }
        }
    };
    PhasePlan {
        name: name.to_string(),
        start_time,
        kind,
    }
}

/// Cumulative stage end offsets.
pub fn stage_ends(stages: &[Stage]) -> Vec<Duration> {
    stages
        .iter()
        .scan(Duration::ZERO, |end, s| {
            *end += s.duration.get();
            Some(*end)
        })
        .collect()
}

/// The stage index a request started at `offset` belongs to (the last stage past the end).
pub fn stage_at(stage_ends: &[Duration], offset: Duration) -> usize {
    stage_ends
        .iter()
        .position(|end| offset < *end)
        .unwrap_or(stage_ends.len().saturating_sub(1))
}

/// VU count as a function of time, linear within each stage, as k6's ramping-vus: the instants
/// at which the integer VU count changes. The first step is the start count at 0s; a stage of
/// zero duration jumps at once. Unit steps are emitted so a ramp from 0 to 100 over 100 s adds
/// one VU per second.
pub fn ramping_steps(start_vus: u32, stages: &[Stage]) -> Vec<VuStep> {
    let mut steps = vec![VuStep {
        at: Duration::ZERO,
        vus: start_vus,
    }];
    let mut from = start_vus;
    let mut t0 = Duration::ZERO;
    for stage in stages {
        let len = stage.duration.get();
        let to = stage.target;
        if len.is_zero() {
            steps.push(VuStep { at: t0, vus: to });
        } else if to != from {
            let span = f64::from(to.abs_diff(from));
            for k in 1..=to.abs_diff(from) {
                // A count is reached when the line crosses it: going up at k/span of the stage,
                // going down once the line falls below the previous integer.
                let fraction = f64::from(k) / span;
                let at = t0 + len.mul_f64(fraction);
                let vus = if to > from { from + k } else { from - k };
                steps.push(VuStep { at, vus });
            }
        }
        from = to;
        t0 += len;
    }
    steps.dedup_by(|later, earlier| {
        if later.at == earlier.at {
            earlier.vus = later.vus;
            true
        } else {
            false
        }
    });
    steps
}

/// The VU count the plan asks for at `offset`.
pub fn vus_at(steps: &[VuStep], offset: Duration) -> u32 {
    steps
        .iter()
        .take_while(|s| s.at <= offset)
        .last()
        .map_or(0, |s| s.vus)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::duration::HumanDuration;

    fn stage(secs: u64, target: u32) -> Stage {
        Stage {
            duration: HumanDuration(Duration::from_secs(secs)),
            target,
        }
    }

    #[test]
    fn ramp_up_adds_one_vu_per_interval() {
        let steps = ramping_steps(0, &[stage(10, 5)]);
        assert_eq!(steps.len(), 6);
        assert_eq!(
            steps[0],
            VuStep {
                at: Duration::ZERO,
                vus: 0
            }
        );
        assert_eq!(
            steps[1],
            VuStep {
                at: Duration::from_secs(2),
                vus: 1
            }
        );
        assert_eq!(
            steps[5],
            VuStep {
                at: Duration::from_secs(10),
                vus: 5
            }
        );
    }

    #[test]
    fn hold_and_ramp_down_follow_the_stages() {
        let steps = ramping_steps(2, &[stage(5, 2), stage(4, 0)]);
        assert_eq!(vus_at(&steps, Duration::from_secs(4)), 2);
        assert_eq!(vus_at(&steps, Duration::from_secs(7)), 1);
        assert_eq!(vus_at(&steps, Duration::from_secs(9)), 0);
    }

    #[test]
    fn zero_length_stage_jumps_at_once() {
        let steps = ramping_steps(1, &[stage(0, 8), stage(2, 8)]);
        assert_eq!(
            steps,
            vec![VuStep {
                at: Duration::ZERO,
                vus: 8
            }]
        );
    }

    #[test]
    fn linear_ramp_integrates_to_the_trapezoid() {
        // ∫ vus dt over a 0→10 ramp in 10 s is 45 VU·s with integer steps (0+1+...+9).
        let steps = ramping_steps(0, &[stage(10, 10)]);
        let area: f64 = (0..100)
            .map(|i| f64::from(vus_at(&steps, Duration::from_millis(i * 100))) * 0.1)
            .sum();
        assert!((area - 45.0).abs() < 1.0, "{area}");
    }

    #[test]
    fn requests_belong_to_the_stage_they_started_in() {
        let ends = stage_ends(&[stage(5, 1), stage(5, 2)]);
        assert_eq!(stage_at(&ends, Duration::from_secs(0)), 0);
        assert_eq!(stage_at(&ends, Duration::from_secs(5)), 1);
        assert_eq!(stage_at(&ends, Duration::from_secs(50)), 1);
    }
}
