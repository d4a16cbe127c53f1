//! llm-bench: load testing and SLO gates for LLM inference servers.
//!
//! `main.rs` parses the command line and calls [`run`]; tests drive the same entry point, or
//! [`execute`] for a run they control (with [`execute_on`] and a [`Target`] around a backend
//! double when they want no server at all).
//!
//! # Layers
//! Each module imports only from its own layer or the layers below it; nothing imports upward.
//!
//! 1. Leaves: `duration` (the duration format), `yaml` (text -> value with positions).
//! 2. The scenario format: `scenario` (types, schema, semantic checks, loading stage one).
//!    The simulator's settings (`sim::SimConfig`) are part of it.
//! 3. The domain, pure where it can be: `prompts`, `plan`, `backend` (the [`Backend`] seam and
//!    the stream folds), `metrics` (the trend registry, the recorder, summaries), `thresholds`,
//!    `hooks`, `sim` (the built-in server).
//! 4. `compile` (loading stage two: prompt sets, hook script, thresholds, once) and `executor`
//!    (VUs following a plan).
//! 5. Outputs: `output` (result document and its saving, raw log, progress, live metrics) and
//!    `report` (renderers: table, CI outputs, HTML and Markdown).
//! 6. The run: `run` (config resolved once, target, recorder task, `execute`).
//! 7. The edge: `cli` (clap types), `commands` (one function per subcommand), `error`.

pub mod backend;
mod cli;
mod commands;
mod compile;
pub mod duration;
pub mod error;
mod executor;
mod hooks;
mod metrics;
mod output;
pub mod plan;
mod prompts;
pub mod report;
mod run;
pub mod scenario;
pub mod sim;
mod thresholds;
pub mod yaml;

pub use cli::Cli;
pub use commands::{load_scenario, run, QUICKSTART};
pub use compile::{load_file, load_str, Loaded};
pub use error::Error;
pub use output::result;
pub use prompts::load::load_set as load_prompt_set;
pub use run::{execute, execute_on, RunConfig, RunOptions, RunOutcome, Status, Target};
pub use scenario::{LoadError, Problem};
