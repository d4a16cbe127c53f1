//! The `scenarios:` section: each load phase's executor and its settings, with k6's names.
//! Field doc comments become the JSON Schema's descriptions (hover help in editors).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

/// The most virtual users (requests in flight) any setting may ask for: far beyond what one
/// load generator holds open, and small enough that bookkeeping per VU stays cheap.
pub const MAX_VUS: u32 = 100_000;

/// A load phase and its executor, with k6's semantics and option names.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "executor", rename_all = "kebab-case")]
pub enum Phase {
    /// Closed-model sweep: at each level exactly N requests are in flight until the level's
    /// requests are done; levels run one after another.
    ConcurrencyLevels(ConcurrencyLevels),
    /// A fixed number of virtual users, each sending its next request as soon as its last ends.
    ConstantVus(ConstantVus),
    /// Virtual users following linear stages, as k6's ramping-vus.
    RampingVus(RampingVus),
    /// Open model: requests start at a fixed rate whether or not earlier ones finished.
    ConstantArrivalRate(ConstantArrivalRate),
    /// Open model: the request rate follows linear stages.
    RampingArrivalRate(RampingArrivalRate),
    /// Open-model sweep: each rate in turn for `duration`, metrics per rate (the open-model twin
    /// of concurrency-levels, guidellm's sweep).
    RateLevels(RateLevels),
    /// Finds the highest rate (or concurrency) at which every threshold still holds.
    CapacitySearch(CapacitySearch),
}

impl Phase {
    /// The delay after the run's start before this phase begins.
    pub fn start_time(&self) -> Option<HumanDuration> {
        match self {
            Phase::ConcurrencyLevels(p) => p.start_time,
            Phase::ConstantVus(p) => p.start_time,
            Phase::RampingVus(p) => p.start_time,
            Phase::ConstantArrivalRate(p) => p.open.start_time,
            Phase::RampingArrivalRate(p) => p.open.start_time,
            Phase::RateLevels(p) => p.open.start_time,
            Phase::CapacitySearch(p) => p.start_time,
        }
    }

    /// The executor's name as written in the file.
    pub fn executor_name(&self) -> &'static str {
        match self {
            Phase::ConcurrencyLevels(_) => "concurrency-levels",
            Phase::ConstantVus(_) => "constant-vus",
            Phase::RampingVus(_) => "ramping-vus",
            Phase::ConstantArrivalRate(_) => "constant-arrival-rate",
            Phase::RampingArrivalRate(_) => "ramping-arrival-rate",
            Phase::RateLevels(_) => "rate-levels",
            Phase::CapacitySearch(_) => "capacity-search",
        }
    }
}

/// `executor: concurrency-levels`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyLevels {
    /// Concurrency levels, run in order, e.g. [1, 5, 10, 20].
    #[schemars(length(min = 1), inner(range(min = 1, max = MAX_VUS)))]
    pub levels: Vec<u32>,
    /// Requests completed at each level.
    #[schemars(range(min = 1))]
    pub requests_per_level: u32,
    /// Delay from the start of the run before this phase begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<HumanDuration>,
}

/// `executor: constant-vus`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConstantVus {
    /// Number of virtual users, each with one request in flight.
    #[schemars(range(min = 1, max = MAX_VUS))]
    pub vus: u32,
    /// How long to keep sending. Give `duration` or `iterations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<HumanDuration>,
    /// Total requests shared by all VUs. Give `duration` or `iterations`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub iterations: Option<u64>,
    /// How long requests still in flight at the end may finish. Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_stop: Option<HumanDuration>,
    /// Delay from the start of the run before this phase begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<HumanDuration>,
}

/// `executor: ramping-vus`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RampingVus {
    /// VUs at the start. Default 1, as in k6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_VUS))]
    pub start_vus: Option<u32>,
    /// The VU count moves linearly to each stage's target over its duration.
    #[schemars(length(min = 1))]
    pub stages: Vec<Stage>,
    /// How long a VU above the target may finish its current request before it is stopped.
    /// Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_ramp_down: Option<HumanDuration>,
    /// How long requests still in flight at the end may finish. Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_stop: Option<HumanDuration>,
    /// Delay from the start of the run before this phase begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<HumanDuration>,
}

/// One ramping stage.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stage {
    /// How long the stage lasts.
    pub duration: HumanDuration,
    /// VUs at the end of the stage.
    #[schemars(range(max = MAX_VUS))]
    pub target: u32,
}

/// How arrivals are spaced in open-model executors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Arrivals {
    /// Evenly spaced (k6's behaviour).
    #[default]
    Uniform,
    /// Exponential gaps: independent users, as real chat traffic.
    Poisson,
    /// Gamma gaps with `burstiness` as shape (1 = Poisson, below 1 burstier), as vLLM's benchmark.
    Gamma,
}

/// What an arrival does when all `max_vus` are busy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WhenBusy {
    /// Skip it and count it in `dropped_iterations` (k6's behaviour).
    #[default]
    Drop,
    /// Wait for a free VU (vLLM's `--max-concurrency`). The wait shows as `schedule_lag` and in
    /// the schedule-relative latencies, which is what coordinated omission hides elsewhere.
    Wait,
}

/// Options shared by the open-model executors (flattened into each).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenModel {
    /// The unit `rate` is counted in. Default 1s: `rate: 5` is 5 requests per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_unit: Option<HumanDuration>,
    /// VUs ready at the start. Default: max_vus, or 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = MAX_VUS))]
    pub pre_allocated_vus: Option<u32>,
    /// Most requests in flight at once. Default: pre_allocated_vus, or 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_VUS))]
    pub max_vus: Option<u32>,
    /// Spacing of arrivals. Default uniform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<Arrivals>,
    /// Shape of the gamma process (`arrivals: gamma`). 1 = Poisson. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
    /// Seed of the arrival schedule, so two runs send at the same instants. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// When all max_vus are busy: `drop` (k6, default) or `wait` (vLLM's max-concurrency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_busy: Option<WhenBusy>,
    /// How long requests still in flight at the end may finish. Default 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_stop: Option<HumanDuration>,
    /// Delay from the start of the run before this phase begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<HumanDuration>,
}

/// `executor: constant-arrival-rate`.
// serde cannot deny unknown fields through `flatten`; the schema does, and it runs first.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("additionalProperties" = false))]
pub struct ConstantArrivalRate {
    /// Requests started per `time_unit`.
    #[schemars(range(min = 0))]
    pub rate: f64,
    /// How long to keep the rate.
    pub duration: HumanDuration,
    /// Stop after this many arrivals even if `duration` has not passed (vLLM's
    /// `--num-prompts`): with random arrivals the count is exact, the length is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub iterations: Option<u64>,
    /// Shared open-model options.
    #[serde(flatten)]
    pub open: OpenModel,
}

/// `executor: rate-levels`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("additionalProperties" = false))]
pub struct RateLevels {
    /// The rates to run, per `time_unit`, one after another; each is a group of its own
    /// (`rate 4` in tables; `stage:N` selects the N-th in thresholds).
    #[schemars(length(min = 1))]
    pub rates: Vec<f64>,
    /// How long each rate runs.
    pub duration: HumanDuration,
    /// Shared open-model options.
    #[serde(flatten)]
    pub open: OpenModel,
}

/// `executor: ramping-arrival-rate`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[schemars(extend("additionalProperties" = false))]
pub struct RampingArrivalRate {
    /// Rate at the start, per `time_unit`. Default 0.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub start_rate: f64,
    /// The rate moves linearly to each stage's target (per `time_unit`) over its duration.
    #[schemars(length(min = 1))]
    pub stages: Vec<RateStage>,
    /// Shared open-model options.
    #[serde(flatten)]
    pub open: OpenModel,
}

/// One stage of a ramping arrival rate.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateStage {
    /// How long the stage lasts.
    pub duration: HumanDuration,
    /// Rate at the end of the stage, per `time_unit`.
    #[schemars(range(min = 0))]
    pub target: f64,
}

/// What a capacity search varies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SearchMode {
    /// The arrival rate (open model): the answer is in requests per `time_unit`.
    #[default]
    Rate,
    /// The number of concurrent users (closed model): the answer is a VU count.
    Concurrency,
}

/// `executor: capacity-search`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CapacitySearch {
    /// `rate` (default) or `concurrency`.
    #[serde(default)]
    pub mode: SearchMode,
    /// First value tried (rate per time_unit, or VUs).
    #[schemars(range(min = 0))]
    pub start: f64,
    /// Factor between steps while every step passes. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub growth: Option<f64>,
    /// Stop bisecting when (first fail − last pass) / last pass is at most this. Default 0.1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<f64>,
    /// Highest value to try. Default unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// How long each step runs; long enough to reach steady state.
    pub step_duration: HumanDuration,
    /// The first part of each step, excluded from its metrics. Default: a fifth of the step.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard: Option<HumanDuration>,
    /// Rate mode: the unit of `start`, `max` and the answer. Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_unit: Option<HumanDuration>,
    /// Rate mode: most requests in flight. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_VUS))]
    pub max_vus: Option<u32>,
    /// Rate mode: spacing of arrivals. Default poisson.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals: Option<Arrivals>,
    /// Rate mode, gamma arrivals: the shape. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burstiness: Option<f64>,
    /// Seed of the arrival schedules. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Delay from the start of the run before this phase begins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<HumanDuration>,
}
