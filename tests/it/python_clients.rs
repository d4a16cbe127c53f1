//! The simulator as real client libraries see it: ollama-python and openai-python (PyPI, in a
//! venv `.ci/run` makes) calling embed, embeddings.create, models.retrieve, show, chat and
//! responses streams, and getting 401 on every guarded route (tests/clients/real_clients.py).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::{bin, KillOnDrop};

#[test]
#[ignore = "needs ollama-python and openai-python (PY_CLIENTS: their venv's python); .ci/run installs them"]
fn ollama_python_and_openai_python_work_against_the_simulator() {
    let python =
        std::env::var_os("PY_CLIENTS").expect("PY_CLIENTS: a python with ollama and openai");
    let mut child = bin()
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--api-key",
            "sekret",
            "--model",
            "llm-bench-sim",
        ])
        .args([
            "--load-time",
            "0s",
            "--decode-per-token",
            "1ms",
            "--output-tokens",
            "6",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let _sim = KillOnDrop(child);
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address line");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/real_clients.py");
    let out = Command::new(python)
        .args([script, url, "sekret"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("real clients: ok"), "{text}");
}
