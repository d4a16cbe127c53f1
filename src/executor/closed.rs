//! Closed-model executors: each VU has one request in flight and sends the next when it ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::{Runner, VU_ID};
use crate::metrics::{Event, Group, GroupKey};
use crate::plan::{stage_at, VuStep, DEFAULT_GRACEFUL_STOP};

/// Cancels `hard` once `grace` has passed after `soft` was cancelled, unless `done` first.
/// (The run uses it too: after Ctrl-C, requests in flight get a grace period.)
pub fn arm_grace(
    soft: CancellationToken,
    hard: CancellationToken,
    grace: Duration,
    done: CancellationToken,
) {
    tokio::spawn(async move {
        tokio::select! {
            _ = soft.cancelled() => {}
            _ = done.cancelled() => return,
        }
        tokio::select! {
            _ = sleep(grace) => hard.cancel(),
            _ = done.cancelled() => {}
        }
    });
}

/// A shared budget of requests: `take` succeeds `limit` times in all.
struct Tickets {
    taken: AtomicU64,
    limit: u64,
}

impl Tickets {
    fn new(limit: u64) -> Self {
        Self {
            taken: AtomicU64::new(0),
            limit,
        }
    }

    fn take(&self) -> bool {
        self.taken.fetch_add(1, Ordering::Relaxed) < self.limit
    }
}

/// `concurrency-levels`: at each level, exactly `vus` VUs (the level, or a shard's slice of it)
/// share its requests.
pub async fn levels(runner: &Runner, name: Arc<str>, levels: &[crate::plan::LevelPlan]) {
    for level in levels {
        if runner.stop.is_cancelled() {
            break;
        }
        let key = GroupKey {
            scenario: name.clone(),
            group: Group::Level(level.level),
        };
        let tickets = Arc::new(Tickets::new(level.requests));
        let mut vus = JoinSet::new();
        for vu in 1..=u64::from(level.vus) {
            let (runner, key, tickets) = (runner.clone(), key.clone(), tickets.clone());
            vus.spawn(VU_ID.scope(vu, async move {
                while !runner.stop.is_cancelled() && tickets.take() {
                    runner.request(Some(key.clone()), None, &runner.abort).await;
                }
            }));
        }
        vus.join_all().await;
        let _ = runner.events.send(Event::GroupDone(key)).await;
    }
}

/// `constant-vus`: `vus` VUs until `duration` passes or `iterations` requests were sent.
pub async fn constant_vus(
    runner: &Runner,
    name: Arc<str>,
    vus: u32,
    duration: Option<Duration>,
    iterations: Option<u64>,
    graceful_stop: Duration,
) {
    let key = GroupKey {
        scenario: name,
        group: Group::All,
    };
    let soft = runner.stop.child_token();
    let hard = runner.abort.child_token();
    let done = CancellationToken::new();
    arm_grace(soft.clone(), hard.clone(), graceful_stop, done.clone());
    if let Some(d) = duration {
        let (soft, done) = (soft.clone(), done.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = sleep(d) => soft.cancel(),
                _ = done.cancelled() => {}
            }
        });
    }
    let tickets = Arc::new(Tickets::new(iterations.unwrap_or(u64::MAX)));
    let mut set = JoinSet::new();
    for vu in 0..vus {
        let (runner, key, tickets, soft, hard) = (
            runner.clone(),
            key.clone(),
            tickets.clone(),
            soft.clone(),
            hard.clone(),
        );
        set.spawn(VU_ID.scope(u64::from(vu) + 1, async move {
            while !soft.is_cancelled() && tickets.take() {
                runner.request(Some(key.clone()), None, &hard).await;
            }
        }));
    }
    set.join_all().await;
    done.cancel();
    let _ = runner.events.send(Event::GroupDone(key)).await;
}

struct Vu {
    soft: CancellationToken,
    hard: CancellationToken,
}

/// `ramping-vus`: the VU count follows `steps`; a VU above the target finishes its request
/// (or is cut after `graceful_ramp_down`) and stops. Requests belong to the stage they start in.
pub async fn ramping_vus(
    runner: &Runner,
    name: Arc<str>,
    steps: &[VuStep],
    stage_ends: &[Duration],
    graceful_ramp_down: Duration,
    graceful_stop: Duration,
) {
    let phase_start = Instant::now();
    let phase_soft = runner.stop.child_token();
    let phase_hard = runner.abort.child_token();
    let done = CancellationToken::new();
    arm_grace(
        phase_soft.clone(),
        phase_hard.clone(),
        graceful_stop,
        done.clone(),
    );
    let stage_ends: Arc<[Duration]> = stage_ends.into();
    let mut active: Vec<Vu> = Vec::new();
    let mut next_vu = 0u64;
    let mut set = JoinSet::new();
    let end = phase_start + stage_ends.last().copied().unwrap_or_default();
    for step in steps {
        tokio::select! {
            _ = sleep_until(phase_start + step.at) => {}
            _ = phase_soft.cancelled() => break,
        }
        while active.len() < step.vus as usize {
            next_vu += 1;
            let vu = Vu {
                soft: phase_soft.child_token(),
                hard: phase_hard.child_token(),
            };
            let (runner, name, ends, soft, hard) = (
                runner.clone(),
                name.clone(),
                stage_ends.clone(),
                vu.soft.clone(),
                vu.hard.clone(),
            );
            set.spawn(VU_ID.scope(next_vu, async move {
                while !soft.is_cancelled() && Instant::now() < end {
                    let stage = stage_at(&ends, phase_start.elapsed());
                    let key = GroupKey {
                        scenario: name.clone(),
                        group: Group::Stage(stage),
                    };
                    runner.request(Some(key), None, &hard).await;
                }
            }));
            active.push(vu);
        }
        while active.len() > step.vus as usize {
            if let Some(vu) = active.pop() {
                vu.soft.cancel();
                arm_grace(vu.soft, vu.hard, graceful_ramp_down, done.clone());
            }
        }
    }
    tokio::select! {
        _ = sleep_until(end) => {}
        _ = phase_soft.cancelled() => {}
    }
    phase_soft.cancel();
    set.join_all().await;
    done.cancel();
    for stage in 0..stage_ends.len() {
        let key = GroupKey {
            scenario: name.clone(),
            group: Group::Stage(stage),
        };
        let _ = runner.events.send(Event::GroupDone(key)).await;
    }
}

/// `vus` closed-model VUs for `duration`; requests started in the first `discard` are run but
/// kept out of every metric (capacity search in concurrency mode).
pub async fn constant_vus_step(
    runner: &Runner,
    vus: u32,
    duration: Duration,
    discard: Duration,
    key: GroupKey,
    discarded: GroupKey,
) {
    let start = Instant::now();
    let soft = runner.stop.child_token();
    let hard = runner.abort.child_token();
    let done = CancellationToken::new();
    arm_grace(
        soft.clone(),
        hard.clone(),
        DEFAULT_GRACEFUL_STOP,
        done.clone(),
    );
    let mut set = JoinSet::new();
    for vu in 1..=u64::from(vus.max(1)) {
        let (runner, soft, hard, key, discarded) = (
            runner.clone(),
            soft.clone(),
            hard.clone(),
            key.clone(),
            discarded.clone(),
        );
        set.spawn(VU_ID.scope(vu, async move {
            while !soft.is_cancelled() && start.elapsed() < duration {
                let group = if start.elapsed() >= discard {
                    key.clone()
                } else {
                    discarded.clone()
                };
                runner.request(Some(group), None, &hard).await;
            }
        }));
    }
    set.join_all().await;
    done.cancel();
}
