//! The top-level error and the exit-code table, which matches k6's so CI scripts written for k6
//! keep working: 0 passed, 1 runtime error, 2 usage, 99 thresholds failed, 104 invalid scenario,
//! 105 interrupted, 107 hook script failed.
//!
//! Each variant says what was being done and keeps the failure as its `source`; `main` prints
//! the whole chain (`error: cannot write x: No space left on device`) with [`chain`].

use std::path::PathBuf;

use crate::hooks::HookError;
use crate::output::files::WriteError;
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
    #[error("cannot read scenario {}", path.display())]
    ReadScenario {
        /// The path given.
        path: PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The command line asks for something impossible.
    #[error("{0}")]
    Usage(String),
    /// A signal ended the command before the load began: nothing was measured or written.
    #[error(
        "stopped by a signal during {during}: nothing was sent to measure, no results written"
    )]
    Interrupted {
        /// The phase it stopped.
        during: &'static str,
    },
    /// A result file read back (`merge`, `check`) cannot be used.
    #[error(transparent)]
    ReadBack(#[from] crate::output::merge::ReadBackError),
    /// Two results cannot be compared (`compare`, `run --baseline`).
    #[error("cannot compare")]
    Compare(#[from] crate::compare::CompareError),
    /// The regression gate's flags do not read.
    #[error(transparent)]
    Gate(#[from] crate::compare::GateError),
    /// `--shard` asks for a split the run cannot have.
    #[error(transparent)]
    Shard(#[from] crate::plan::ShardError),
    /// The environment variable the scenario names for the API key is not set.
    #[error("environment variable {var} (target.api_key_env) is not set")]
    MissingKey {
        /// The variable's name.
        var: String,
    },
    /// A file given to `llm-bench report` is not a result document.
    #[error("{} is not an llm-bench result", path.display())]
    NotAResult {
        /// The file.
        path: PathBuf,
        /// Why it does not read.
        source: serde_json::Error,
    },
    /// Reading or writing a file, or a socket, failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The failure.
        source: std::io::Error,
    },
    /// An output file could not be written (the previous one, if any, is intact).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The pre-flight check found the server unreachable or without the model.
    #[error("pre-flight check of {url} failed: {tried}: {message}")]
    Preflight {
        /// The target URL (credentials masked).
        url: String,
        /// The request that was tried.
        tried: String,
        /// What came back.
        message: String,
    },
    /// `init --from-server` could not get a model list.
    #[error("cannot list the models of {url}: {tried}")]
    ListModels {
        /// The server URL (credentials masked).
        url: String,
        /// Each request tried and what came back.
        tried: String,
    },
    /// A file `init` would write exists.
    #[error("{} exists; --force replaces it", path.display())]
    Exists {
        /// The file.
        path: std::path::PathBuf,
    },
    /// The hook script's `setup` or `teardown` failed.
    #[error("hook script")]
    Hook(#[source] HookError),
    /// A report template failed to render.
    #[error("cannot render the {template} template")]
    Template {
        /// Which template.
        template: &'static str,
        /// Tera's error, whose own chain says where and why.
        source: tera::Error,
    },
    /// A value could not be turned into JSON.
    #[error("cannot serialise {what}")]
    Serialize {
        /// What was being serialised.
        what: &'static str,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// The HTTP client could not be built.
    #[error("cannot create the HTTP client")]
    Client(#[source] reqwest::Error),
    /// A task of the run ended abnormally.
    #[error("{what} task failed")]
    Task {
        /// Which task.
        what: &'static str,
        /// Its join error (a panic or a cancellation).
        source: tokio::task::JoinError,
    },
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
            Error::ReadScenario { .. }
            | Error::Usage(_)
            | Error::Gate(_)
            | Error::Shard(_)
            | Error::MissingKey { .. }
            | Error::NotAResult { .. } => EXIT_USAGE,
            Error::Io { .. }
            | Error::Write(_)
            | Error::Preflight { .. }
            | Error::ListModels { .. }
            | Error::Exists { .. }
            | Error::Client(_)
            | Error::Template { .. }
            | Error::Serialize { .. }
            | Error::Task { .. }
            // A result file that reads but cannot be used (shards that are not one run,
            // histograms that do not decode) is damaged data, not a wrong command line.
            | Error::Compare(_)
            | Error::ReadBack(crate::output::merge::ReadBackError::Unusable(_)) => EXIT_RUNTIME,
            Error::Hook(_) => EXIT_HOOK,
            Error::Interrupted { .. } => EXIT_INTERRUPTED,
            Error::ReadBack(crate::output::merge::ReadBackError::Thresholds(_)) => {
                EXIT_INVALID_SCENARIO
            }
        }
    }

    /// A next step for the user, where one helps.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::InvalidScenario(_) => Some("`llm-bench schema` prints the schema; editors validate as you type with the `# yaml-language-server: $schema=` line"),
            Error::ReadScenario { .. } => Some("run `llm-bench run` with no argument for the built-in quickstart"),
            Error::Preflight { .. } => Some("check --target-url / target.url and target.model; --no-preflight skips this check"),
            _ => None,
        }
    }

    /// True when the error is a write to a reader that has gone (`llm-bench schema | head -1`):
    /// not a failure of the command, so `main` exits quietly with 0, as ripgrep does.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

/// An error and every cause under it, joined as `outer: inner: innermost` (each said once).
pub use crate::backend::http::error_chain as chain;

impl From<LoadError> for Error {
    fn from(err: LoadError) -> Self {
        match err {
            LoadError::Invalid { problems, .. } => Error::InvalidScenario(problems),
            LoadError::Read { path, source } => Error::ReadScenario { path, source },
            LoadError::Set(message) => Error::Usage(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_names_every_cause_once() {
        let err = Error::Io {
            context: "cannot write results/x.json".into(),
            source: std::io::Error::other("No space left on device"),
        };
        assert_eq!(
            chain(&err),
            "cannot write results/x.json: No space left on device"
        );
        let tera = tera::Tera::one_off("{{ missing }}", &tera::Context::new(), false).unwrap_err();
        let err = Error::Template {
            template: "report.html",
            source: tera,
        };
        let text = chain(&err);
        assert!(text.starts_with("cannot render the report.html template: "));
        assert!(
            text.contains("missing"),
            "the cause reaches the user: {text}"
        );
    }

    #[test]
    fn a_closed_pipe_is_recognised_and_other_errors_are_not() {
        let pipe = Error::io("stdout")(std::io::ErrorKind::BrokenPipe.into());
        assert!(pipe.is_broken_pipe());
        assert!(!Error::Usage("x".into()).is_broken_pipe());
    }
}
