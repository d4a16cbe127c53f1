//! The top-level error and the exit-code table, which matches k6's so CI scripts written for k6
//! keep working: 0 passed, 1 runtime error, 2 usage, 99 thresholds failed, 104 invalid scenario,
//! 105 interrupted.

use crate::scenario::{LoadError, Problem};

/// Exit code for a runtime or I/O error.
pub const EXIT_RUNTIME: u8 = 1;
/// Exit code for a usage error (clap uses it too).
pub const EXIT_USAGE: u8 = 2;
/// Exit code when a threshold failed (all outputs are written first).
pub const EXIT_THRESHOLDS_FAILED: u8 = 99;
/// Exit code for an invalid scenario.
pub const EXIT_INVALID_SCENARIO: u8 = 104;
/// Exit code when the hook script's `setup` or `teardown` failed.
pub const EXIT_HOOK: u8 = 107;
/// Exit code for a run stopped by Ctrl-C (results gathered so far are written).
pub const EXIT_INTERRUPTED: u8 = 105;

/// What can stop a command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// One or more scenario files have problems; every problem is listed.
    #[error("{}", format_problems(.0))]
    InvalidScenario(Vec<Problem>),
    /// A scenario file could not be read.
    #[error("{0}")]
    ReadScenario(String),
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// Something failed at run time.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
    /// The hook script's `setup` or `teardown` failed.
    #[error("hook script: {0}")]
    Hook(String),
    /// A report template failed to render.
    #[error("template error: {0}")]
    Template(String),
    /// The HTTP client could not be built.
    #[error("cannot create the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

fn format_problems(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::InvalidScenario(_) => EXIT_INVALID_SCENARIO,
            Error::ReadScenario(_) | Error::Usage(_) => EXIT_USAGE,
            Error::Io { .. } | Error::Client(_) | Error::Template(_) => EXIT_RUNTIME,
            Error::Hook(_) => EXIT_HOOK,
        }
    }

    /// A next step for the user, where one helps.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::InvalidScenario(_) => Some("`llm-bench schema` prints the schema; editors validate as you type with the `# yaml-language-server: $schema=` line"),
            Error::ReadScenario(_) => Some("run `llm-bench run` with no argument for the built-in quickstart"),
            _ => None,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

impl From<LoadError> for Error {
    fn from(err: LoadError) -> Self {
        match err {
            LoadError::Invalid { problems, .. } => Error::InvalidScenario(problems),
            read @ LoadError::Read { .. } => Error::ReadScenario(read.to_string()),
        }
    }
}
