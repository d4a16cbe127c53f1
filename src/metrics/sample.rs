//! What workers tell the recorder: a request started, a request finished, a group ended.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Measurement;

/// Which aggregate a request belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    /// The scenario (phase) name.
    pub scenario: Arc<str>,
    /// The level, stage or whole phase within it.
    pub group: Group,
}

/// The unit metrics are kept for within a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// A concurrency level of `concurrency-levels`.
    Level(u32),
    /// A stage (0-based) of `ramping-vus`.
    Stage(usize),
    /// The whole of a `constant-vus` or `constant-arrival-rate` phase.
    All,
    /// A step (0-based) of a capacity search.
    Step(usize),
    /// The discarded start of a capacity-search step: run, counted, but in no metric.
    Discarded(usize),
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::Level(n) => write!(f, "level {n}"),
            Group::Stage(i) => write!(f, "stage {}", i + 1),
            Group::All => f.write_str("all"),
            Group::Step(i) => write!(f, "step {}", i + 1),
            Group::Discarded(i) => write!(f, "step {} (discarded start)", i + 1),
        }
    }
}

/// How a request ended.
// Samples travel boxed inside `Event::Finished`, so the size difference costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Outcome {
    /// It completed or failed; the measurement says which.
    Done(Measurement),
    /// The run stopped (Ctrl-C, end of graceful stop) while it was in flight; not a server error.
    Interrupted,
}

/// One finished request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Its aggregate; `None` for warm-up requests, which no metric includes.
    pub key: Option<GroupKey>,
    /// Offset of t0 from the run's start.
    pub started: Duration,
    /// Offset of the intended start from the run's start (open-model executors only).
    pub intended: Option<Duration>,
    /// Offset of its end from the run's start.
    pub ended: Duration,
    /// How it ended.
    pub outcome: Outcome,
    /// The prompt set its prompt came from.
    pub prompt_set: Option<Arc<str>>,
    /// Named checks from the `after_response` hook.
    pub checks: Vec<(Arc<str>, bool)>,
    /// Tags of the prompt entry.
    pub tags: Arc<[Arc<str>]>,
    /// Custom metrics the hooks recorded with `metric(name, value)`.
    pub custom: Vec<(Arc<str>, f64)>,
    /// The prompt entry's name, when it has one.
    pub entry: Option<Arc<str>>,
    /// The virtual user that sent it (0 for warm-up).
    pub vu: u64,
    /// The request's number in the run (its prompt's index), from 0.
    pub iteration: u64,
    /// Its turn in a multi-turn session, from 1; 0 outside a conversation.
    pub turn: u32,
}

impl Sample {
    /// Actual send − intended start, for open-model arrivals.
    pub fn lag(&self) -> Option<Duration> {
        self.intended.map(|i| self.started.saturating_sub(i))
    }
}

#[cfg(test)]
impl Sample {
    /// A request sent at the run's start that ended at `ended` with `outcome`: no schedule,
    /// prompt set, checks, tags or custom metrics.
    pub(crate) fn plain(key: Option<GroupKey>, ended: Duration, outcome: Outcome) -> Sample {
        Sample {
            key,
            started: Duration::ZERO,
            intended: None,
            ended,
            outcome,
            prompt_set: None,
            checks: Vec::new(),
            tags: Arc::from([]),
            custom: Vec::new(),
            entry: None,
            vu: 0,
            iteration: 0,
            turn: 0,
        }
    }
}

/// A message to the recorder.
#[derive(Debug)]
pub enum Event {
    /// A request is about to be sent (for in-flight counts and progress).
    Started {
        /// Its aggregate; `None` for warm-up.
        key: Option<GroupKey>,
        /// Offset from the run's start.
        at: Duration,
    },
    /// A request ended.
    Finished(Box<Sample>),
    /// A level or stage sent its last request and all of them ended.
    GroupDone(GroupKey),
    /// Arrivals that could not start because every VU was busy (k6's dropped_iterations).
    Dropped {
        /// Their aggregate.
        key: GroupKey,
        /// How many.
        count: u64,
        /// When they were due, from the run's start.
        at: Duration,
    },
    /// Asks the recorder for the thresholds' verdict on one group (capacity-search steps).
    Evaluate {
        /// The group.
        key: GroupKey,
        /// Where the verdict goes.
        reply: tokio::sync::oneshot::Sender<Verdict>,
    },
}

/// The thresholds' verdict on one group.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// True when every threshold holds (no data counts as failing here: a step with no
    /// completed request has not shown that the load is sustainable).
    pub passed: bool,
    /// Labels of the thresholds that failed.
    pub failed: Vec<String>,
    /// Each threshold that judged the group, with what it measured.
    pub observed: Vec<StepThreshold>,
}

/// One threshold's reading of a group (a capacity-search step).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct StepThreshold {
    /// `ttft p(95)<500ms`.
    pub label: String,
    /// The measured value in `unit`; absent without data.
    pub observed: Option<f64>,
    /// The limit in `unit`.
    pub limit: f64,
    /// "ms" for time metrics, "" otherwise.
    pub unit: String,
    /// Whether it held.
    pub passed: bool,
}
