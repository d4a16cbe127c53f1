//! Pure load plans: what should run when, computed from the scenario before anything is sent.
//! Executors only follow a plan; the arithmetic (k6's `GetExecutionRequirements`) is tested here.

pub mod arrivals;

use std::time::Duration;

use arrivals::{Process, RateSegment};

use crate::scenario::{Arrivals, OpenModel, Phase, SearchMode, Stage, WhenBusy};

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
    Levels(Vec<LevelPlan>),
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
    /// Open model: requests start on a schedule.
    ArrivalRate(ArrivalPlan),
    /// Step up, then bisect, until the thresholds' limit is found.
    CapacitySearch(CapacityPlan),
}

/// One level of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelPlan {
    /// The level as the scenario names it (its group in the results).
    pub level: u32,
    /// VUs this run holds at it: the level itself, or a shard's slice of it.
    pub vus: u32,
    /// Requests this run completes at it.
    pub requests: u64,
}

/// An open-model phase.
#[derive(Debug, Clone, PartialEq)]
pub struct ArrivalPlan {
    /// The rate over time, in requests per second.
    pub segments: Vec<RateSegment>,
    /// Spacing of arrivals.
    pub process: Process,
    /// Schedule seed.
    pub seed: u64,
    /// Most requests in flight.
    pub max_vus: u32,
    /// What an arrival does when all VUs are busy.
    pub when_busy: WhenBusy,
    /// Grace for requests in flight at the end.
    pub graceful_stop: Duration,
    /// Stage boundaries (ramping) for per-stage metrics; empty for one group.
    pub stage_ends: Vec<Duration>,
    /// No more arrivals than this (`iterations`), even before the segments end.
    pub max_arrivals: Option<u64>,
}

/// A capacity search.
#[derive(Debug, Clone, PartialEq)]
pub struct CapacityPlan {
    /// Rate or concurrency.
    pub mode: SearchMode,
    /// First value.
    pub start: f64,
    /// Factor while passing.
    pub growth: f64,
    /// Relative precision of the answer.
    pub precision: f64,
    /// Highest value to try.
    pub max: Option<f64>,
    /// Length of each step.
    pub step_duration: Duration,
    /// Excluded start of each step.
    pub discard: Duration,
    /// Seconds per `time_unit`: values are per time unit, the executor works per second.
    pub time_unit_secs: f64,
    /// Rate mode: most requests in flight.
    pub max_vus: u32,
    /// Rate mode: spacing of arrivals.
    pub process: Process,
    /// Schedule seed.
    pub seed: u64,
}

fn process(arrivals: Option<Arrivals>, burstiness: Option<f64>, default: Arrivals) -> Process {
    match arrivals.unwrap_or(default) {
        Arrivals::Uniform => Process::Uniform,
        Arrivals::Poisson => Process::Poisson,
        Arrivals::Gamma => Process::Gamma(burstiness.unwrap_or(1.0)),
    }
}

fn time_unit_secs(unit: Option<crate::duration::HumanDuration>) -> f64 {
    unit.map_or(1.0, |u| u.get().as_secs_f64())
}

fn arrival_plan(
    open: &OpenModel,
    segments: Vec<RateSegment>,
    stage_ends: Vec<Duration>,
) -> ArrivalPlan {
    let max_vus = open.max_vus.or(open.pre_allocated_vus).unwrap_or(100);
    ArrivalPlan {
        segments,
        process: process(open.arrivals, open.burstiness, Arrivals::Uniform),
        seed: open.seed.unwrap_or(1),
        max_vus,
        when_busy: open.when_busy.unwrap_or_default(),
        graceful_stop: open
            .graceful_stop
            .map_or(DEFAULT_GRACEFUL_STOP, |d| d.get()),
        stage_ends,
        max_arrivals: None,
    }
}

/// The next value a capacity search tries after `history` (value, passed), or `None` when the
/// search is over: grow geometrically while every step passes (up to `max`), step down while
/// every step fails (at most six times), then bisect between the highest pass and the lowest
/// fail until they are within `precision` (one VU in concurrency mode).
pub fn next_capacity_step(plan: &CapacityPlan, history: &[(f64, bool)]) -> Option<f64> {
    let Some(&(last, _)) = history.last() else {
        return Some(plan.start);
    };
    let pass = history
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(v, _)| *v)
        .reduce(f64::max);
    let fail = history
        .iter()
        .filter(|(v, ok)| !*ok && pass.is_none_or(|p| *v > p))
        .map(|(v, _)| *v)
        .reduce(f64::min);
    let round = |v: f64| {
        if plan.mode == SearchMode::Concurrency {
            v.round().max(1.0)
        } else {
            v
        }
    };
    let next = match (pass, fail) {
        (_, None) => {
            if plan.max.is_some_and(|max| last >= max) {
                return None;
            }
            let grown = round(last * plan.growth).max(
                last + if plan.mode == SearchMode::Concurrency {
                    1.0
                } else {
                    0.0
                },
            );
            plan.max.map_or(grown, |max| grown.min(max))
        }
        (None, Some(_)) => {
            if history.len() > 6 {
                return None;
            }
            round(last / plan.growth)
        }
        (Some(pass), Some(fail)) => {
            if (fail - pass) / pass <= plan.precision
                || (plan.mode == SearchMode::Concurrency && fail - pass <= 1.0)
            {
                return None;
            }
            round((pass + fail) / 2.0)
        }
    };
    (!history.iter().any(|(v, _)| *v == next)).then_some(next)
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
        Phase::ConcurrencyLevels(p) => PlanKind::Levels(
            p.levels
                .iter()
                .map(|&level| LevelPlan {
                    level,
                    vus: level,
                    requests: u64::from(p.requests_per_level),
                })
                .collect(),
        ),
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
        Phase::ConstantArrivalRate(p) => {
            let per_second = p.rate / time_unit_secs(p.open.time_unit);
            let segment = RateSegment {
                duration: p.duration.get(),
                from: per_second,
                to: per_second,
            };
            let mut plan = arrival_plan(&p.open, vec![segment], Vec::new());
            plan.max_arrivals = p.iterations;
            PlanKind::ArrivalRate(plan)
        }
        Phase::RampingArrivalRate(p) => {
            let unit = time_unit_secs(p.open.time_unit);
            let mut from = p.start_rate / unit;
            let segments = p
                .stages
                .iter()
                .map(|stage| {
                    let to = stage.target / unit;
                    let segment = RateSegment {
                        duration: stage.duration.get(),
                        from,
                        to,
                    };
                    from = to;
                    segment
                })
                .collect();
            let ends = p
                .stages
                .iter()
                .scan(Duration::ZERO, |end, s| {
                    *end += s.duration.get();
                    Some(*end)
                })
                .collect();
            PlanKind::ArrivalRate(arrival_plan(&p.open, segments, ends))
        }
        Phase::RateLevels(p) => {
            let unit = time_unit_secs(p.open.time_unit);
            let segments: Vec<RateSegment> = p
                .rates
                .iter()
                .map(|rate| RateSegment {
                    duration: p.duration.get(),
                    from: rate / unit,
                    to: rate / unit,
                })
                .collect();
            let ends = (1..=segments.len() as u32)
                .map(|i| p.duration.get() * i)
                .collect();
            PlanKind::ArrivalRate(arrival_plan(&p.open, segments, ends))
        }
        Phase::CapacitySearch(p) => {
            let step = p.step_duration.get();
            PlanKind::CapacitySearch(CapacityPlan {
                mode: p.mode,
                start: p.start,
                growth: p.growth.unwrap_or(2.0),
                precision: p.precision.unwrap_or(0.1),
                max: p.max,
                step_duration: step,
                discard: p.discard.map_or(step / 5, |d| d.get()),
                time_unit_secs: time_unit_secs(p.time_unit),
                max_vus: p.max_vus.unwrap_or(1000),
                process: process(p.arrivals, p.burstiness, Arrivals::Poisson),
                seed: p.seed.unwrap_or(1),
            })
        }
    };
    PhasePlan {
        name: name.to_string(),
        start_time,
        kind,
    }
}

/// The `index`-th of `count` near-equal integer parts of `total`: the first `total % count`
/// parts get one more, so the parts add up to `total` exactly.
pub fn part(total: u64, index: u32, count: u32) -> u64 {
    let (index, count) = (u64::from(index), u64::from(count));
    total / count + u64::from(index < total % count)
}

/// Turns the plans of a whole run into those of shard `index` of `count`, so that the shards
/// together are the run: VUs, request budgets and arrival rates are split (a level or phase a
/// shard gets no VU of is left out of that shard), group names stay the scenario's, and each
/// shard's arrival schedule gets its own seed. A capacity search adapts to what it measures,
/// so it cannot be split.
pub fn shard(plans: Vec<PhasePlan>, index: u32, count: u32) -> Result<Vec<PhasePlan>, ShardError> {
    let mut out = Vec::new();
    for mut plan in plans {
        let kept = match &mut plan.kind {
            PlanKind::Levels(levels) => {
                levels.retain_mut(|l| {
                    let active = l.vus.min(count);
                    if index >= active {
                        return false;
                    }
                    l.vus = part(u64::from(l.vus), index, count) as u32;
                    l.requests = part(l.requests, index, active);
                    l.requests > 0
                });
                !levels.is_empty()
            }
            PlanKind::ConstantVus {
                vus, iterations, ..
            } => {
                let active = (*vus).min(count);
                *vus = part(u64::from(*vus), index, count) as u32;
                if let Some(n) = iterations {
                    *n = if index < active {
                        part(*n, index, active)
                    } else {
                        0
                    };
                }
                *vus > 0 && *iterations != Some(0)
            }
            PlanKind::RampingVus { steps, .. } => {
                for step in steps.iter_mut() {
                    step.vus = part(u64::from(step.vus), index, count) as u32;
                }
                steps.iter().any(|s| s.vus > 0)
            }
            PlanKind::ArrivalRate(a) => {
                for segment in &mut a.segments {
                    segment.from /= f64::from(count);
                    segment.to /= f64::from(count);
                }
                a.max_arrivals = a.max_arrivals.map(|n| part(n, index, count));
                a.max_vus = a.max_vus.div_ceil(count).max(1);
                a.seed = a
                    .seed
                    .wrapping_add(u64::from(index).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                true
            }
            PlanKind::CapacitySearch(_) => return Err(ShardError::Adaptive(plan.name)),
        };
        if kept {
            out.push(plan);
        }
    }
    Ok(out)
}

/// Why a run cannot be split into shards.
#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// A capacity search chooses its next load from what it measured.
    #[error("scenario `{0}` is a capacity search, which adapts to what it measures: it cannot be split into shards")]
    Adaptive(String),
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
#[cfg(test)]
fn vus_at(steps: &[VuStep], offset: Duration) -> u32 {
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

    fn search(mode: SearchMode) -> CapacityPlan {
        CapacityPlan {
            mode,
            start: 1.0,
            growth: 2.0,
            precision: 0.1,
            max: None,
            step_duration: Duration::from_secs(10),
            discard: Duration::from_secs(2),
            time_unit_secs: 1.0,
            max_vus: 100,
            process: Process::Poisson,
            seed: 1,
        }
    }

    /// Runs the search against a server whose true capacity is `capacity`.
    fn trace(plan: &CapacityPlan, capacity: f64) -> Vec<(f64, bool)> {
        let mut history = Vec::new();
        while let Some(v) = next_capacity_step(plan, &history) {
            history.push((v, v <= capacity));
            assert!(history.len() < 40, "search does not end: {history:?}");
        }
        history
    }

    #[test]
    fn capacity_search_steps_up_then_bisects_to_the_precision() {
        let plan = search(SearchMode::Rate);
        let h = trace(&plan, 11.3);
        let values: Vec<f64> = h.iter().map(|(v, _)| *v).collect();
        assert_eq!(&values[..5], &[1.0, 2.0, 4.0, 8.0, 16.0]);
        let best = h
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(v, _)| *v)
            .fold(0.0, f64::max);
        let worst = h
            .iter()
            .filter(|(_, ok)| !*ok)
            .map(|(v, _)| *v)
            .fold(f64::MAX, f64::min);
        assert!(best <= 11.3 && (worst - best) / best <= 0.1, "{h:?}");
    }

    #[test]
    fn capacity_search_in_concurrency_mode_ends_on_adjacent_integers() {
        let h = trace(&search(SearchMode::Concurrency), 6.0);
        let best = h
            .iter()
            .filter(|(_, ok)| *ok)
            .map(|(v, _)| *v)
            .fold(0.0, f64::max);
        assert_eq!(best, 6.0, "{h:?}");
        assert!(h.iter().all(|(v, _)| v.fract() == 0.0));
        assert!(h.contains(&(7.0, false)), "{h:?}");
    }

    #[test]
    fn capacity_search_respects_max_and_steps_down_when_the_start_fails() {
        let mut plan = search(SearchMode::Rate);
        plan.max = Some(5.0);
        assert_eq!(trace(&plan, 100.0).last(), Some(&(5.0, true)));
        plan.max = None;
        plan.start = 8.0;
        let h = trace(&plan, 1.5);
        assert_eq!(&h[..3], &[(8.0, false), (4.0, false), (2.0, false)]);
        assert!(h.iter().any(|(v, ok)| *ok && *v <= 1.5), "{h:?}");
    }

    #[test]
    fn requests_belong_to_the_stage_they_started_in() {
        let ends = stage_ends(&[stage(5, 1), stage(5, 2)]);
        assert_eq!(stage_at(&ends, Duration::from_secs(0)), 0);
        assert_eq!(stage_at(&ends, Duration::from_secs(5)), 1);
        assert_eq!(stage_at(&ends, Duration::from_secs(50)), 1);
    }

    fn levels_plan(levels: &[u32], requests: u64) -> PhasePlan {
        PhasePlan {
            name: "sweep".into(),
            start_time: Duration::ZERO,
            kind: PlanKind::Levels(
                levels
                    .iter()
                    .map(|&level| LevelPlan {
                        level,
                        vus: level,
                        requests,
                    })
                    .collect(),
            ),
        }
    }

    #[test]
    fn shards_of_a_sweep_add_up_to_the_sweep_and_keep_its_level_names() {
        for count in 1..=5u32 {
            let shards: Vec<Vec<PhasePlan>> = (0..count)
                .map(|i| shard(vec![levels_plan(&[1, 2, 8, 16], 10)], i, count).unwrap())
                .collect();
            for level in [1u32, 2, 8, 16] {
                let (mut vus, mut requests) = (0, 0);
                for plans in &shards {
                    for p in plans {
                        let PlanKind::Levels(ls) = &p.kind else {
                            panic!()
                        };
                        for l in ls.iter().filter(|l| l.level == level) {
                            assert!(l.vus > 0 && l.requests > 0, "{l:?}");
                            vus += l.vus;
                            requests += l.requests;
                        }
                    }
                }
                assert_eq!(
                    (vus, requests),
                    (level, 10),
                    "level {level} in {count} shards"
                );
            }
        }
    }

    #[test]
    fn shards_split_vus_iterations_and_rates() {
        let constant = |vus, iterations| PhasePlan {
            name: "c".into(),
            start_time: Duration::ZERO,
            kind: PlanKind::ConstantVus {
                vus,
                duration: None,
                iterations,
                graceful_stop: DEFAULT_GRACEFUL_STOP,
            },
        };
        let mut total = (0, 0);
        for i in 0..3 {
            for p in shard(vec![constant(5, Some(7))], i, 3).unwrap() {
                let PlanKind::ConstantVus {
                    vus, iterations, ..
                } = p.kind
                else {
                    panic!()
                };
                total = (total.0 + vus, total.1 + iterations.unwrap());
            }
        }
        assert_eq!(total, (5, 7));
        // One VU cannot be split: the other shards leave the phase out.
        assert_eq!(shard(vec![constant(1, None)], 1, 2).unwrap().len(), 0);
        let open = PhasePlan {
            name: "o".into(),
            start_time: Duration::ZERO,
            kind: PlanKind::ArrivalRate(ArrivalPlan {
                segments: vec![RateSegment {
                    duration: Duration::from_secs(10),
                    from: 12.0,
                    to: 12.0,
                }],
                process: Process::Poisson,
                seed: 1,
                max_vus: 10,
                when_busy: WhenBusy::default(),
                graceful_stop: DEFAULT_GRACEFUL_STOP,
                stage_ends: Vec::new(),
                max_arrivals: Some(25),
            }),
        };
        let parts: Vec<ArrivalPlan> = (0..4)
            .map(
                |i| match shard(vec![open.clone()], i, 4).unwrap().remove(0).kind {
                    PlanKind::ArrivalRate(a) => a,
                    _ => panic!(),
                },
            )
            .collect();
        assert!(parts
            .iter()
            .all(|a| a.segments[0].from == 3.0 && a.max_vus == 3));
        assert_ne!(parts[0].seed, parts[1].seed, "each shard its own schedule");
        let arrivals: Vec<u64> = parts.iter().map(|a| a.max_arrivals.unwrap()).collect();
        assert_eq!(
            arrivals,
            [7, 6, 6, 6],
            "`iterations` split to add up to the whole"
        );
        let search = PhasePlan {
            name: "s".into(),
            start_time: Duration::ZERO,
            kind: PlanKind::CapacitySearch(search(SearchMode::Rate)),
        };
        let err = shard(vec![search], 0, 2).unwrap_err();
        assert!(
            matches!(&err, ShardError::Adaptive(name) if name == "s"),
            "{err}"
        );
        assert!(err.to_string().contains("capacity search"), "{err}");
    }
}
