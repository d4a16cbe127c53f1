//! `llm-bench sim` as a standalone server: any Ollama client can use it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::common::KillOnDrop;

struct Sim {
    _child: KillOnDrop,
    url: String,
}

fn start(args: &[&str]) -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-bench"))
        .args([
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--load-time",
            "0s",
            "--decode-per-token",
            "1ms",
        ])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("address line")
        .to_string();
    Sim {
        _child: KillOnDrop(child),
        url,
    }
}

#[tokio::test]
async fn speaks_ollamas_api_streaming_and_not() {
    let sim = start(&["--model", "llama3.2:1b", "--output-tokens", "5"]);
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", sim.url)).send();
    assert_eq!(
        get("/").await.unwrap().text().await.unwrap(),
        "Ollama is running"
    );
    let tags: serde_json::Value = get("/api/tags").await.unwrap().json().await.unwrap();
    assert_eq!(tags["models"][0]["name"], "llama3.2:1b");
    let version: serde_json::Value = get("/api/version").await.unwrap().json().await.unwrap();
    assert!(version["version"].as_str().unwrap().contains("sim"));

    let whole: serde_json::Value = http
        .post(format!("{}/api/generate", sim.url))
        .json(&serde_json::json!({"model": "llama3.2:1b", "prompt": "hi", "stream": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whole["done"], true);
    assert_eq!(whole["eval_count"], 5);
    assert!(!whole["response"].as_str().unwrap().is_empty());

    let stream = http
        .post(format!("{}/api/chat", sim.url))
        .json(&serde_json::json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": 3}}))
        .send().await.unwrap();
    assert_eq!(stream.headers()["content-type"], "application/x-ndjson");
    let text = stream.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let last = lines.last().unwrap();
    assert_eq!(
        (
            last["done"].as_bool(),
            last["done_reason"].as_str(),
            last["eval_count"].as_u64()
        ),
        (Some(true), Some("length"), Some(3))
    );
    for field in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(last[field].as_u64().is_some(), "{field} missing");
    }

    let missing = http
        .post(format!("{}/api/generate", sim.url))
        .json(&serde_json::json!({"model": "other", "prompt": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("not found"));
}
