//! Open-model executors: requests start on a schedule (a pure [`Schedule`]) whether or not
//! earlier ones finished, and capacity search, which runs steps of load and asks the recorder
//! whether the thresholds held.

use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, Semaphore};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::closed::arm_grace;
use super::{Runner, VU_ID};
use crate::metrics::{Event, Group, GroupKey};
use crate::plan::arrivals::{RateSegment, Schedule};
use crate::plan::{next_capacity_step, stage_at, ArrivalPlan, CapacityPlan, DEFAULT_GRACEFUL_STOP};
use crate::scenario::{SearchMode, WhenBusy};

/// Tokio's timer wheel ticks in milliseconds; the last stretch before an arrival is spun.
const SPIN_WINDOW: Duration = Duration::from_millis(2);

/// Waits until `target`. Precise mode sleeps to within [`SPIN_WINDOW`] on the timer wheel, then
/// yields in a loop on the monotonic clock, so dispatch is accurate to well under a millisecond
/// while other tasks keep running. Tests under tokio's paused clock use plain sleeps, since
/// virtual time only advances through timers.
async fn pace(target: Instant, precise: bool) {
    if !precise {
        sleep_until(target).await;
        return;
    }
    if let Some(coarse) = target.checked_sub(SPIN_WINDOW) {
        if Instant::now() < coarse {
            sleep_until(coarse).await;
        }
    }
    while Instant::now() < target {
        tokio::task::yield_now().await;
    }
}

/// Follows `schedule` from now on. `key_for(t)` names the group of an arrival at offset `t`.
async fn run_schedule(
    runner: &Runner,
    schedule: Schedule,
    max_vus: u32,
    when_busy: WhenBusy,
    graceful_stop: Duration,
    key_for: impl Fn(Duration) -> Option<GroupKey>,
) {
    let phase_start = Instant::now();
    let offset = phase_start.saturating_duration_since(runner.run_start);
    let end = phase_start + schedule.duration();
    let vus = Arc::new(Semaphore::new(max_vus as usize));
    let ids = VuIds::new();
    let soft = runner.stop.child_token();
    let hard = runner.abort.child_token();
    let done = CancellationToken::new();
    arm_grace(soft.clone(), hard.clone(), graceful_stop, done.clone());
    let ender = soft.clone();
    let ended = done.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = sleep_until(end) => ender.cancel(),
            _ = ended.cancelled() => {}
        }
    });
    let mut schedule = schedule;
    let drop = |key: Option<GroupKey>, count: u64, due: Duration| {
        let events = runner.events.clone();
        let at = (phase_start + due).saturating_duration_since(runner.run_start);
        async move {
            if let Some(key) = key {
                let _ = events.send(Event::Dropped { key, count, at }).await;
            }
        }
    };
    while let Some(t) = schedule.next() {
        let key = key_for(t);
        tokio::select! {
            _ = pace(phase_start + t, runner.precise_timer) => {}
            _ = soft.cancelled() => break,
        }
        let permit = match when_busy {
            WhenBusy::Drop => match vus.clone().try_acquire_owned() {
                Ok(permit) => permit,
                Err(_) => {
                    drop(key, 1, t).await;
                    continue;
                }
            },
            WhenBusy::Wait => tokio::select! {
                permit = vus.clone().acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = soft.cancelled() => {
                    // The phase ended with arrivals still waiting for a VU: they never started.
                    if !runner.stop.is_cancelled() {
                        // Counted at the first of them: when the phase stopped serving.
                        drop(key, 1 + schedule.by_ref().count() as u64, t).await;
                    }
                    break;
                }
            },
        };
        let (runner, hard, ids) = (runner.clone(), hard.clone(), ids.clone());
        let intended = offset + t;
        // A permit guarantees a free id: there are as many ids as permits.
        let vu = ids.take();
        tokio::spawn(VU_ID.scope(u64::from(vu), async move {
            runner.request(key, Some(intended), &hard).await;
            ids.give_back(vu);
            drop_permit(permit);
        }));
    }
    // Every permit back means every request ended; nothing per request is kept meanwhile.
    let _ = vus.acquire_many(max_vus).await;
    done.cancel();
}

/// VU numbers 1..=max_vus for the arrivals in flight, as k6 numbers the VUs of its open-model
/// executors: an arrival takes the number given back last (1, 2, ... at first), so hooks can
/// tell VUs apart (`ctx.vu`) and no two requests in flight share one.
/// Numbers are handed out lazily: memory follows the VUs in flight, not `max_vus`.
#[derive(Clone)]
struct VuIds(Arc<std::sync::Mutex<Numbers>>);

#[derive(Default)]
struct Numbers {
    /// Numbers given back, the last one on top.
    free: Vec<u32>,
    /// Numbers handed out so far (the next new one is this plus 1).
    issued: u32,
}

impl VuIds {
    fn new() -> Self {
        Self(Arc::new(std::sync::Mutex::new(Numbers::default())))
    }

    fn take(&self) -> u32 {
        let mut numbers = self.numbers();
        numbers.free.pop().unwrap_or_else(|| {
            // The semaphore admits at most max_vus at once, so this stays within 1..=max_vus.
            numbers.issued += 1;
            numbers.issued
        })
    }

    fn give_back(&self, vu: u32) {
        self.numbers().free.push(vu);
    }

    fn numbers(&self) -> std::sync::MutexGuard<'_, Numbers> {
        // A panic while holding the lock cannot leave the list half-changed (push and pop only).
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn drop_permit(permit: tokio::sync::OwnedSemaphorePermit) {
    std::mem::drop(permit);
}

/// `constant-arrival-rate` and `ramping-arrival-rate`.
pub async fn arrival_rate(runner: &Runner, name: Arc<str>, plan: ArrivalPlan) {
    let mut schedule = Schedule::new(plan.segments.clone(), plan.process, plan.seed);
    if let Some(n) = plan.max_arrivals {
        schedule = schedule.limit(n);
    }
    let ends = plan.stage_ends.clone();
    let key_for = |t: Duration| {
        let group = if ends.is_empty() {
            Group::All
        } else {
            Group::Stage(stage_at(&ends, t))
        };
        Some(GroupKey {
            scenario: name.clone(),
            group,
        })
    };
    run_schedule(
        runner,
        schedule,
        plan.max_vus,
        plan.when_busy,
        plan.graceful_stop,
        key_for,
    )
    .await;
    let groups: Vec<Group> = if ends.is_empty() {
        vec![Group::All]
    } else {
        (0..ends.len()).map(Group::Stage).collect()
    };
    for group in groups {
        let _ = runner
            .events
            .send(Event::GroupDone(GroupKey {
                scenario: name.clone(),
                group,
            }))
            .await;
    }
}

/// The outcome of a capacity search.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CapacityReport {
    /// The scenario name.
    pub scenario: String,
    /// `rate` or `concurrency`.
    pub mode: String,
    /// What `capacity` and step values count: "requests per 1s" or "VUs".
    pub unit: String,
    /// The highest value at which every threshold held; `None` if none did.
    pub capacity: Option<f64>,
    /// The lowest value at which a threshold failed, when one did.
    pub first_failure: Option<f64>,
    /// The requested relative precision.
    pub precision: f64,
    /// Seconds per time unit of rate values (rate mode), to compare them with achieved
    /// requests per second. Absent in older results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_unit_secs: Option<f64>,
    /// Every step in the order run.
    pub steps: Vec<CapacityStep>,
}

/// One step of a capacity search; its metrics are the group `step N` of the scenario.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CapacityStep {
    /// 1-based step number, as in the group label.
    pub step: usize,
    /// Rate (per time unit) or VUs.
    pub value: f64,
    /// Whether every threshold held.
    pub passed: bool,
    /// Labels of the thresholds that failed.
    pub failed: Vec<String>,
    /// Every threshold that judged the step, with its measured value. Absent in older results.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<crate::metrics::sample::StepThreshold>,
}

/// `capacity-search`.
pub async fn capacity_search(
    runner: &Runner,
    name: Arc<str>,
    plan: CapacityPlan,
) -> CapacityReport {
    let mut history = Vec::new();
    let mut steps = Vec::new();
    while let Some(value) = next_capacity_step(&plan, &history) {
        if runner.stop.is_cancelled() {
            break;
        }
        let index = steps.len();
        let key = GroupKey {
            scenario: name.clone(),
            group: Group::Step(index),
        };
        let discard = plan.discard;
        let discarded = GroupKey {
            scenario: name.clone(),
            group: Group::Discarded(index),
        };
        let key_for = |t: Duration| {
            Some(if t >= discard {
                key.clone()
            } else {
                discarded.clone()
            })
        };
        match plan.mode {
            SearchMode::Rate => {
                let per_second = value / plan.time_unit_secs;
                let segment = RateSegment {
                    duration: plan.step_duration,
                    from: per_second,
                    to: per_second,
                };
                let schedule = Schedule::new(
                    vec![segment],
                    plan.process,
                    plan.seed.wrapping_add(index as u64),
                );
                run_schedule(
                    runner,
                    schedule,
                    plan.max_vus,
                    WhenBusy::Drop,
                    DEFAULT_GRACEFUL_STOP,
                    key_for,
                )
                .await;
            }
            SearchMode::Concurrency => {
                super::closed::constant_vus_step(
                    runner,
                    value as u32,
                    plan.step_duration,
                    discard,
                    key.clone(),
                    discarded.clone(),
                )
                .await;
            }
        }
        let _ = runner.events.send(Event::GroupDone(key.clone())).await;
        let (reply, verdict) = oneshot::channel();
        let _ = runner.events.send(Event::Evaluate { key, reply }).await;
        let Ok(verdict) = verdict.await else { break };
        history.push((value, verdict.passed));
        steps.push(CapacityStep {
            step: index + 1,
            value,
            passed: verdict.passed,
            failed: verdict.failed,
            thresholds: verdict.observed,
        });
    }
    let capacity = history
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(v, _)| *v)
        .reduce(f64::max);
    let first_failure = history
        .iter()
        .filter(|(v, ok)| !*ok && capacity.is_none_or(|c| *v > c))
        .map(|(v, _)| *v)
        .reduce(f64::min);
    let (mode, unit) = match plan.mode {
        SearchMode::Rate => (
            "rate",
            format!(
                "requests per {}",
                crate::duration::format(Duration::from_secs_f64(plan.time_unit_secs))
            ),
        ),
        SearchMode::Concurrency => ("concurrency", "VUs".to_string()),
    };
    CapacityReport {
        time_unit_secs: (plan.mode == SearchMode::Rate).then_some(plan.time_unit_secs),
        scenario: name.to_string(),
        mode: mode.into(),
        unit,
        capacity,
        first_failure,
        precision: plan.precision,
        steps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vu_numbers_are_reused_last_given_back_first() {
        let ids = VuIds::new();
        assert_eq!([ids.take(), ids.take(), ids.take()], [1, 2, 3]);
        ids.give_back(2);
        ids.give_back(1);
        assert_eq!([ids.take(), ids.take()], [1, 2]);
    }
}
