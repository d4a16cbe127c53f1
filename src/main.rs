//! The `llm-bench` binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;
use llm_bench::{error, Cli, Error};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::from(error::EXIT_RUNTIME);
        }
    };
    match runtime.block_on(llm_bench::run(cli)) {
        Ok(status) => ExitCode::from(status.exit_code()),
        // The reader went away (`llm-bench schema | head -1`): nothing failed.
        Err(err) if err.is_broken_pipe() => ExitCode::SUCCESS,
        Err(err) => {
            match &err {
                Error::InvalidScenario(problems) => {
                    for p in problems {
                        eprintln!("{p}");
                    }
                    eprintln!("error: invalid scenario ({} problem(s))", problems.len());
                }
                other => eprintln!("error: {}", error::chain(other)),
            }
            if let Some(hint) = err.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(err.exit_code())
        }
    }
}
