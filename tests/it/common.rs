//! Shared helpers for integration tests: scenarios from text, run options, a simulator.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use llm_bench::sim::{self, SimConfig, SimServer};
use llm_bench::{LoadError, Loaded};
use llm_bench::{RunOptions, RunOutcome};
use tokio_util::sync::CancellationToken;

/// A child process (a server the test started) killed and reaped when the test ends, even when
/// it panics.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `llm-bench sim` as its own process on a free loopback port; stopped when dropped.
pub struct SimProcess {
    _child: KillOnDrop,
    /// Its base URL, read from the address line it prints.
    pub url: String,
}

/// Starts `llm-bench sim --listen 127.0.0.1:0 ARGS...` and waits for its address line.
pub fn sim_process(args: &[&str]) -> SimProcess {
    use std::io::BufRead;
    let mut child = bin()
        .args(["sim", "--listen", "127.0.0.1:0"])
        .args(args)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address line")
        .to_string();
    SimProcess {
        _child: KillOnDrop(child),
        url,
    }
}

/// A scenario from YAML text; panics with every problem if it is invalid.
pub fn scenario(yaml: &str) -> Loaded {
    match llm_bench::load_str(yaml, "test.yaml") {
        Ok(loaded) => loaded,
        Err(LoadError::Invalid { problems, .. }) => {
            panic!(
                "invalid test scenario:\n{}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        }
        Err(e) => panic!("{e}"),
    }
}

/// Quiet options writing into `dir`, calling `url` when given.
pub fn options(dir: &Path, url: Option<String>) -> RunOptions {
    RunOptions {
        target_url: url,
        ..RunOptions::new(dir)
    }
}

/// The llm-bench binary, for what only the process shows.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_llm-bench"))
}

/// A simulator on a free loopback port.
pub async fn start_sim(cfg: SimConfig) -> SimServer {
    sim::start(cfg, SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .expect("simulator starts")
}

/// Runs `loaded` to its end.
pub async fn run(loaded: Loaded, opts: &RunOptions) -> RunOutcome {
    llm_bench::execute(loaded, opts, CancellationToken::new())
        .await
        .expect("run succeeds")
}

/// A scenario header with the given load section, for a target given on the command line.
pub fn with_backend(backend: &str, load: &str) -> String {
    format!(
        "name: t\ntarget:\n  backend: {backend}\n  model: m\n  timeout: 60s\nprompts:\n  - Say something about queues.\n{load}"
    )
}

/// [`with_backend`] for Ollama.
pub fn with_load(load: &str) -> String {
    format!(
        "name: t\ntarget:\n  model: m\n  timeout: 60s\nprompts:\n  - Say something about queues.\n{load}"
    )
}

/// One metric of the first group of a `compare --format json` output.
pub fn compared_metric(comparison: &serde_json::Value, name: &str) -> serde_json::Value {
    comparison["groups"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["metric"] == name)
        .unwrap()
        .clone()
}

/// Every `.rs` file under `dir`, appended to `out`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}
