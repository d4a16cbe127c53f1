//! llm-bench: load testing and SLO gates for LLM inference servers.
//!
//! `main.rs` parses the command line and calls [`run`]; tests drive the same entry point, or
//! [`app::execute`] for a run they control.

pub mod app;
pub mod backend;
pub mod cli;
pub mod duration;
pub mod error;
pub mod executor;
pub mod hooks;
pub mod metrics;
pub mod output;
pub mod plan;
pub mod prompts;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod thresholds;

pub use app::run;
pub use cli::Cli;
pub use error::Error;
