//! llm-bench: load testing and SLO gates for LLM inference servers.
//!
//! `main.rs` parses the command line and calls [`run`]; tests drive the same entry point, or
//! [`execute`] for a run they control (with [`execute_on`] and a [`Target`] around a backend
//! double when they want no server at all).
//!
//! # Layers
//! Each module uses only modules listed before it, so nothing imports upward and no circle can
//! form (`tests/it/architecture.rs` checks this list against the code):
//!
//! 1. Leaves: `duration` (the duration format), `input` (bounded reads of input files), `yaml`
//!    (text -> value with positions, used by scenarios and prompt sets alike), `stats`
//!    (two-sample tests on histograms).
//! 2. `sim`: the built-in server, whose settings are part of the scenario format.
//! 3. `scenario`: the file format (types, schema, semantic checks, loading stage one).
//! 4. The domain, pure where it can be, in this order: `plan` (load plans), `prompts`,
//!    `backend` (the [`backend::Backend`] seam and the stream folds), `metrics` (the trend
//!    registry, the recorder, summaries), `thresholds`, `hooks`.
//! 5. `compile` (loading stage two: prompt sets, hook script and thresholds, once), then
//!    `executor` (VUs following a plan).
//! 6. `output` (the result document and its saving, raw log, live `/metrics`), then `report`
//!    (what a person reads: progress, table, CI outputs, HTML and Markdown), then `compare`
//!    (two results, with significance tests, and its renderings).
//! 7. The edge: `cli` (clap types), `error` (typed errors, exit codes), `run` (a run: config
//!    resolved once, target, recorder task, `execute`), `init` (starter scenarios written to a
//!    folder), `commands` (one function per subcommand).

pub mod backend;
mod cli;
mod commands;
mod compare;
mod compile;
pub mod duration;
pub mod error;
mod executor;
mod hooks;
mod init;
pub mod input;
mod metrics;
mod output;
pub mod plan;
mod prompts;
pub mod report;
mod run;
pub mod scenario;
pub mod sim;
pub mod stats;
mod thresholds;
pub mod yaml;

pub use cli::Cli;
pub use commands::{load_scenario, run, QUICKSTART};
pub use compile::{load_file, load_file_with, load_str, load_str_with, Loaded};
pub use error::Error;
pub use output::result;
pub use prompts::load::load_set as load_prompt_set;
pub use run::{execute, execute_on, RunConfig, RunOptions, RunOutcome, Status, Stop, Target};
pub use scenario::{LoadError, Problem};
