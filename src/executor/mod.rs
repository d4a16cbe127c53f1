//! Following a plan: VUs send requests through the [`Backend`] and report [`Event`]s. Executors
//! never aggregate; they only decide when requests start and stop.
//!
//! Two tokens stop a run: `stop` ends the sending of new requests (Ctrl-C, end of a phase),
//! `abort` cuts off requests still in flight (after a grace period), which are then counted as
//! interrupted rather than failed.

mod closed;
pub use closed::arm_grace;
pub mod open;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::backend::{ErrorKind, Measurement, RequestError};
use crate::hooks::{Before, HookError, Hooks, Observed, RequestInfo};
use crate::metrics::Group;
use crate::metrics::{Event, GroupKey, Outcome, Sample};
use crate::plan::{PhasePlan, PlanKind};
use crate::prompts::{Picked, Picker};
use crate::scenario::{ChatPrompt, Conversation, Message, Prompt, Role};

tokio::task_local! {
    /// The number (from 1) of the closed-model VU running the current task, for hooks' `ctx.vu`.
    pub static VU_ID: u64;
}

/// What every executor shares.
#[derive(Clone)]
pub struct Runner {
    /// The server API.
    pub backend: Arc<dyn Backend>,
    /// Chooses each request's prompt.
    pub prompts: Arc<Picker>,
    /// Where samples go.
    pub events: mpsc::Sender<Event>,
    /// t = 0 of the run.
    pub run_start: Instant,
    /// Cancelled to stop starting requests.
    pub stop: CancellationToken,
    /// Cancelled to cut off requests in flight.
    pub abort: CancellationToken,
    /// The compiled hook script, if the scenario has one.
    pub hooks: Option<Arc<Hooks>>,
    /// Multi-turn sessions, if the scenario asks for them.
    pub conversation: Option<Arc<Conversation>>,
    /// The real tokenizer (`target.tokenizer`): counts the answers the server gave
    /// no token count for, after their measurement ended.
    pub tokenizer: Option<Arc<crate::backend::tokenize::Tokenizer>>,
    /// Spin the last 2 ms before each scheduled arrival for sub-millisecond dispatch (off in
    /// tests under tokio's paused clock, where only timers advance time).
    pub precise_timer: bool,
}

/// Runs a hook call on tokio's blocking pool: a slow script (up to its `hooks.timeout`) then
/// holds one pool thread, never one of the runtime's workers that read every other stream.
async fn off_the_runtime<I: Send + 'static, T: Send + 'static>(
    hooks: &Arc<Hooks>,
    input: I,
    call: impl FnOnce(&Hooks, I) -> Result<T, HookError> + Send + 'static,
) -> Result<T, HookError> {
    let hooks = hooks.clone();
    tokio::task::spawn_blocking(move || call(&hooks, input))
        .await
        .unwrap_or_else(|panic| {
            Err(HookError {
                script: String::new(),
                function: "hook",
                message: format!("the hook call panicked: {panic}"),
            })
        })
}

/// What `before_request` left for the request it let through.
#[derive(Default)]
struct Prelude {
    /// The hook failed: the request is not sent and counts as a `hook` error.
    failure: Option<RequestError>,
    /// Custom metrics the hook recorded with `metric()`.
    metrics: Vec<(Arc<str>, f64)>,
}

impl Runner {
    /// Sends one request (or, with `conversation`, one session of several turns) and reports
    /// it; `intended` is its scheduled start (open model), `cut` cancels it mid-flight. Hooks run
    /// around it: `before_request` may rewrite or skip it, `after_response` returns checks; a
    /// hook error fails the request with kind `hook`.
    pub async fn request(
        &self,
        key: Option<GroupKey>,
        intended: Option<Duration>,
        cut: &CancellationToken,
    ) {
        // Starting a request (prompt, body, connection, write) is the most work a VU does at
        // once, and streams end in waves: yielding first lets the tasks already woken, whose
        // answers are arriving, take their timestamps before this work delays them.
        tokio::task::yield_now().await;
        let mut picked = self.prompts.next();
        let info = self.hooks.as_ref().map(|_| RequestInfo {
            vu: VU_ID.try_with(|vu| *vu).unwrap_or(0),
            vars: picked.vars.clone(),
            iteration: picked.index,
            scenario: key
                .as_ref()
                .map(|k| k.scenario.to_string())
                .unwrap_or_else(|| "warmup".into()),
            group: key
                .as_ref()
                .map(|k| k.group.to_string())
                .unwrap_or_default(),
            level: key.as_ref().and_then(|k| match k.group {
                Group::Level(n) => Some(n),
                _ => None,
            }),
        });
        let mut prelude = Prelude::default();
        if let (Some(hooks), Some(info)) = (&self.hooks, &info) {
            let decided = off_the_runtime(hooks, (picked.clone(), info.clone()), |h, (p, i)| {
                h.before_request(&p, &i)
            })
            .await;
            match decided {
                Ok(Before::Send(rewritten, metrics)) => {
                    picked = rewritten;
                    prelude.metrics = metrics
                        .into_iter()
                        .map(|(name, value)| (Arc::from(name.as_str()), value))
                        .collect();
                }
                Ok(Before::Skip) => return,
                Err(err) => {
                    prelude.failure = Some(RequestError::new(ErrorKind::Hook, err.to_string()));
                    self.send_one(
                        &key,
                        intended,
                        cut,
                        (&picked, 0),
                        info,
                        picked.tags.clone(),
                        prelude,
                    )
                    .await;
                    return;
                }
            }
        }
        let info = info.unwrap_or_default();
        let Some(conversation) = self.conversation.as_deref() else {
            self.send_one(
                &key,
                intended,
                cut,
                (&picked, 0),
                &info,
                picked.tags.clone(),
                prelude,
            )
            .await;
            return;
        };
        // A session: each turn carries the history so far, so the context (and the server's KV
        // cache) grows; every turn is measured on its own and tagged `turn N`.
        let mut history = messages_of(&picked.prompt);
        for turn in 1..=conversation.turns {
            let mut tags: Vec<Arc<str>> = picked.tags.to_vec();
            tags.push(Arc::from(format!("turn {turn}").as_str()));
            let this = Picked {
                prompt: Prompt::Chat(ChatPrompt {
                    messages: history.clone(),
                }),
                ..picked.clone()
            };
            // The hook ran once for the session: its metrics go with the first turn.
            let (scheduled, prelude) = if turn == 1 {
                (intended, std::mem::take(&mut prelude))
            } else {
                (None, Prelude::default())
            };
            let Some(reply) = self
                .send_one(
                    &key,
                    scheduled,
                    cut,
                    (&this, turn),
                    &info,
                    tags.into(),
                    prelude,
                )
                .await
            else {
                break;
            };
            let follow_up =
                &conversation.follow_ups[(turn as usize - 1) % conversation.follow_ups.len()];
            history.push(Message {
                role: Role::Assistant,
                content: reply,
            });
            history.push(Message {
                role: Role::User,
                content: follow_up.clone(),
            });
        }
    }

    /// Sends one request (turn `turn` of a session, 0 outside one) and reports it; returns the
    /// answer text when it succeeded.
    #[allow(clippy::too_many_arguments)]
    async fn send_one(
        &self,
        key: &Option<GroupKey>,
        intended: Option<Duration>,
        cut: &CancellationToken,
        (picked, turn): (&Picked, u32),
        info: &RequestInfo,
        tags: Arc<[Arc<str>]>,
        prelude: Prelude,
    ) -> Option<String> {
        let at = self.run_start.elapsed();
        // A closed channel means the recorder is gone (the run is ending); nothing to report to.
        let _ = self
            .events
            .send(Event::Started {
                key: key.clone(),
                at,
            })
            .await;
        let (started, mut outcome) = match prelude.failure {
            Some(error) => (
                at,
                Outcome::Done(Measurement {
                    error: Some(error),
                    ..Measurement::default()
                }),
            ),
            None => tokio::select! {
                exchange = self.backend.send(picked) => (
                    exchange.sent_at.saturating_duration_since(self.run_start),
                    Outcome::Done(exchange.measurement),
                ),
                _ = cut.cancelled() => (at, Outcome::Interrupted),
            },
        };
        // An answer without a server count was counted in chunks: count it exactly, now that
        // its timing is taken (this request to the server is outside every measured interval).
        if let (Some(tokenizer), Outcome::Done(m)) = (&self.tokenizer, &mut outcome) {
            if m.tokens_estimated && m.error.is_none() {
                if let Ok(n) = tokenizer.count(&m.text).await {
                    m.output_tokens = n;
                    m.tokens_estimated = false;
                }
            }
        }
        let mut checks = Vec::new();
        let mut custom = prelude.metrics;
        if let (Some(hooks), Outcome::Done(m)) = (&self.hooks, &mut outcome) {
            if hooks.checks_responses()
                && m.error.as_ref().is_none_or(|e| e.kind != ErrorKind::Hook)
            {
                let observed = off_the_runtime(
                    hooks,
                    (picked.clone(), info.clone(), m.clone()),
                    |h, (p, i, m)| h.after_response(&p, &i, &m),
                )
                .await;
                match observed {
                    Ok(Observed {
                        checks: found,
                        metrics: recorded,
                    }) => {
                        checks = found
                            .into_iter()
                            .map(|(name, ok)| (Arc::from(name.as_str()), ok))
                            .collect();
                        custom.extend(
                            recorded
                                .into_iter()
                                .map(|(name, value)| (Arc::from(name.as_str()), value)),
                        );
                    }
                    Err(err) => {
                        if m.error.is_none() {
                            m.error = Some(RequestError::new(ErrorKind::Hook, err.to_string()));
                        }
                    }
                }
            }
        }
        let reply = match &outcome {
            Outcome::Done(m) if m.error.is_none() => Some(m.text.clone()),
            _ => None,
        };
        let ended = self.run_start.elapsed();
        let sample = Sample {
            key: key.clone(),
            started,
            intended,
            ended,
            outcome,
            prompt_set: Some(picked.set.clone()),
            checks,
            tags,
            custom,
            entry: picked.entry.clone(),
            vu: VU_ID.try_with(|vu| *vu).unwrap_or(0),
            iteration: picked.index,
            turn,
        };
        let _ = self.events.send(Event::Finished(Box::new(sample))).await;
        reply
    }

    /// Sends `n` warm-up requests one at a time; they are reported without a group.
    pub async fn warmup(&self, n: u32) {
        for _ in 0..n {
            if self.stop.is_cancelled() {
                break;
            }
            self.request(None, None, &self.abort).await;
        }
    }

    /// Runs one phase to its end (or until stopped); a capacity search returns its report.
    pub async fn phase(&self, plan: PhasePlan) -> Option<open::CapacityReport> {
        let begin = self.run_start + plan.start_time;
        tokio::select! {
            _ = tokio::time::sleep_until(begin) => {}
            _ = self.stop.cancelled() => return None,
        }
        let name: Arc<str> = plan.name.as_str().into();
        match plan.kind {
            PlanKind::Levels(levels) => {
                closed::levels(self, name, &levels).await;
            }
            PlanKind::ConstantVus {
                vus,
                duration,
                iterations,
                graceful_stop,
            } => {
                closed::constant_vus(self, name, vus, duration, iterations, graceful_stop).await;
            }
            PlanKind::RampingVus {
                steps,
                stage_ends,
                graceful_ramp_down,
                graceful_stop,
            } => {
                closed::ramping_vus(
                    self,
                    name,
                    &steps,
                    &stage_ends,
                    graceful_ramp_down,
                    graceful_stop,
                )
                .await;
            }
            PlanKind::ArrivalRate(plan) => open::arrival_rate(self, name, plan).await,
            PlanKind::CapacitySearch(plan) => {
                return Some(open::capacity_search(self, name, plan).await);
            }
        }
        None
    }
}

/// A prompt as chat messages, the start of a conversation.
fn messages_of(prompt: &Prompt) -> Vec<Message> {
    match prompt {
        Prompt::Text(text) => vec![Message {
            role: Role::User,
            content: text.clone(),
        }],
        Prompt::WithSystem(p) => {
            let mut messages = Vec::new();
            if let Some(system) = &p.system {
                messages.push(Message {
                    role: Role::System,
                    content: system.clone(),
                });
            }
            messages.push(Message {
                role: Role::User,
                content: p.prompt.clone(),
            });
            messages
        }
        Prompt::Chat(chat) => chat.messages.clone(),
    }
}
