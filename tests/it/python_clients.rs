//! The simulator as real client libraries see it: ollama-python and openai-python (PyPI, in a
//! venv `.ci/run` makes) calling embed, embeddings.create, models.retrieve, show, chat and
//! responses streams, and getting 401 on every guarded route (tests/clients/real_clients.py).

use std::process::Command;

use crate::common::sim_process;

#[test]
#[ignore = "needs ollama-python and openai-python (PY_CLIENTS: their venv's python); .ci/run installs them"]
fn ollama_python_and_openai_python_work_against_the_simulator() {
    let python =
        std::env::var_os("PY_CLIENTS").expect("PY_CLIENTS: a python with ollama and openai");
    let sim = sim_process(&[
        "--api-key",
        "sekret",
        "--model",
        "llm-bench-sim",
        "--load-time",
        "0s",
        "--decode-per-token",
        "1ms",
        "--output-tokens",
        "6",
    ]);
    let url = sim.url.as_str();
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
