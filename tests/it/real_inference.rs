//! Real inference: llama.cpp's llama-server with Gemma 3 270M on loopback, 4 slots, driven by the
//! shipped scenario `scenarios/llamacpp-gemma3-270m.yaml` through the real binary.
//!
//! Ignored by `cargo test` (it needs the server built by `scripts/setup_llamacpp.sh`); `.ci/run`
//! runs it with `cargo test --test it real_inference -- --ignored` and LLAMA_SERVER / LLAMA_MODEL
//! set. Run `--nocapture` to see the measured numbers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::KillOnDrop;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run `eval \"$(scripts/setup_llamacpp.sh)\"` first")
    })
}

#[tokio::test]
#[ignore = "needs llama-server from scripts/setup_llamacpp.sh; .ci/run runs it"]
async fn llama_server_real_inference_matches_the_servers_own_accounting() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let log = tempfile::NamedTempFile::new().unwrap();
    // `--no-repack`: weight repacking picks CPU-specific kernels (AMX) that die with an invalid
    // opcode on a machine other than the one the wheel was built on; without it the server
    // starts on any x86-64 this project lands on.
    let mut server = KillOnDrop(
        Command::new(env("LLAMA_SERVER"))
            .args([
                "-m",
                &env("LLAMA_MODEL"),
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "-np",
                "4",
                "-c",
                "4096",
                "--no-repack",
            ])
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("llama-server starts"),
    );
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        // A server that died is reported at once, with why, instead of polled for minutes.
        if let Some(status) = server.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(log.path()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "llama-server exited ({status}) before it was healthy; its last log lines:\n{}",
                tail.join("\n")
            );
        }
        if http
            .get(format!("{url}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "llama-server not healthy: {}",
            std::fs::read_to_string(log.path()).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "llama-server healthy after {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let out_dir = tempfile::tempdir().unwrap();
    let scenario =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/llamacpp-gemma3-270m.yaml");
    let run = Command::new(env!("CARGO_BIN_EXE_llm-bench"))
        .arg("run")
        .arg(&scenario)
        .args(["--target-url", &url, "--raw", "--ci", "--output-dir"])
        .arg(out_dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    eprintln!("{stdout}");
    assert_eq!(
        run.status.code(),
        Some(0),
        "thresholds or run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let result: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out_dir.path().join("benchmark_latest.json")).unwrap(),
    )
    .unwrap();
    let total = &result["total"];
    assert_eq!(total["requests"], 24);
    assert_eq!(total["errors"], 0, "every request succeeds");
    assert_eq!(
        total["tokens_estimated_requests"], 0,
        "the server's usage gave every count"
    );

    let raw_path = std::fs::read_dir(out_dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with(".requests.jsonl"))
        .unwrap();
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(raw_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 26, "24 measured + 2 warm-up");
    for r in &lines {
        let f = |k: &str| {
            r[k].as_f64()
                .unwrap_or_else(|| panic!("{k} missing in {r}"))
        };
        let (ttft, e2e, prefill, decode) = (
            f("ttft_ms"),
            f("e2e_ms"),
            f("server_prefill_ms"),
            f("server_decode_ms"),
        );
        assert!(ttft < e2e, "{r}");
        // One token per chunk on llama-server: what the client counted is what usage says.
        assert_eq!(r["chunks"], r["output_tokens"], "{r}");
        // Prefill happens inside the client's TTFT window (plus clock granularity)...
        assert!(
            prefill <= ttft + 1.0,
            "server prefill {prefill} ms > client TTFT {ttft} ms: {r}"
        );
        // ...and the server's decode time is the client's e2e − TTFT.
        let client_decode = e2e - ttft;
        assert!(
            (client_decode - decode).abs() <= 0.1 * decode + 50.0,
            "client decode {client_decode} ms vs server {decode} ms: {r}"
        );
    }
    let mut report = String::from("measured on real llama-server (gemma3 270M Q4_K_M, 4 slots):\n");
    for g in result["scenarios"][0]["groups"].as_array().unwrap() {
        let tps = g["output_tokens_per_second"].as_f64().unwrap();
        assert!(tps > 0.0, "throughput per level is reported");
        report.push_str(&format!(
            "  level {}: ttft p50 {:.1} ms, p95 {:.1} ms; e2e p50 {:.0} ms; itl p50 {:.1} ms; {:.1} output tok/s; {:.2} req/s\n",
            g["level"], g["ttft_ms"]["p50"].as_f64().unwrap(), g["ttft_ms"]["p95"].as_f64().unwrap(), g["e2e_latency_ms"]["p50"].as_f64().unwrap(),
            g["itl_ms"]["p50"].as_f64().unwrap(), tps, g["requests_per_second"].as_f64().unwrap()
        ));
    }
    eprintln!("{report}");
    assert!(
        out_dir.path().join("junit.xml").exists() && out_dir.path().join("summary.md").exists()
    );

    // `tokenizer: server`: synthetic prompts sized by llama-server's own /tokenize have the
    // server's prompt count exactly (plus the BOS token it adds), where the 4-characters
    // estimate is off for this tokenizer.
    let sized = |tokenizer: &str| {
        format!(
            "name: sized\ntarget: {{backend: openai, model: gemma, api: completions, timeout: 60s{tokenizer}}}\n\
             prompts:\n  - synthetic: {{input_tokens: {{mean: 48}}, output_tokens: 4, count: 6}}\n\
             scenarios:\n  s: {{executor: concurrency-levels, levels: [2], requests_per_level: 6}}\n"
        )
    };
    let mut counts = Vec::new();
    for (name, tokenizer) in [("exact", ", tokenizer: server"), ("estimate", "")] {
        let file = out_dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, sized(tokenizer)).unwrap();
        let dir = out_dir.path().join(name);
        let run = Command::new(env!("CARGO_BIN_EXE_llm-bench"))
            .arg("run")
            .arg(&file)
            .args(["--target-url", &url, "--raw", "-q", "--output-dir"])
            .arg(&dir)
            .output()
            .unwrap();
        assert_eq!(
            run.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let raw = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().ends_with(".requests.jsonl"))
            .unwrap();
        let prompt_tokens: Vec<u64> = std::fs::read_to_string(raw)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["prompt_tokens"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        let result: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("benchmark_latest.json")).unwrap())
                .unwrap();
        assert_eq!(
            result["target"]["token_counts"],
            if tokenizer.is_empty() {
                "estimate"
            } else {
                "server"
            }
        );
        counts.push((name, prompt_tokens));
    }
    eprintln!("prompt tokens as llama-server counted them, for 48 asked: {counts:?}");
    for n in &counts[0].1 {
        assert!(
            (48..=49).contains(n),
            "sized by the server's tokenizer: {counts:?}"
        );
    }
}
