//! Workloads beyond a token stream and runs given in one line: `api: embeddings` on both
//! backends, and vLLM's `--num-prompts`/`--request-rate`/`--max-concurrency`.

use std::time::Duration;

use crate::common::{bin, options, run, scenario, start_sim};
use llm_bench::duration::HumanDuration;
use llm_bench::sim::SimConfig;

fn sim_config() -> SimConfig {
    SimConfig {
        parallel: 2,
        load_time: HumanDuration(Duration::ZERO),
        prefill_per_token: HumanDuration(Duration::from_millis(1)),
        ..SimConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn embeddings_are_measured_as_latency_and_embeddings_per_second_on_both_backends() {
    let sim = start_sim(sim_config()).await;
    // 40 characters: 10 prompt tokens, so 10 ms of prefill per request on 2 slots.
    let prompt = "x".repeat(40);
    for (backend, url) in [
        ("ollama", sim.url()),
        ("openai", format!("{}/v1", sim.url())),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "name: e\ntarget: {{backend: {backend}, model: m, api: embeddings}}\nprompts: [{prompt}]\n\
             scenarios:\n  s: {{executor: concurrency-levels, levels: [1, 2], requests_per_level: 10}}\n\
             thresholds:\n  embeddings: [\"rate>50\", \"count>=20\"]\n  e2e_latency: [\"p(95)<50ms\"]\n  goodput: [\"rate>0.99\"]\n"
        );
        let out = run(scenario(&yaml), &options(dir.path(), Some(url))).await;
        let t = &out.result.total;
        assert_eq!((t.requests, t.errors), (20, 0), "{backend}");
        assert_eq!(
            t.embeddings_total, 20,
            "{backend}: one embedding per request"
        );
        assert_eq!(
            t.prompt_tokens_total, 200,
            "{backend}: the server's token counts"
        );
        assert!(
            t.ttft_ms.is_none() && t.itl_ms.is_none(),
            "{backend}: no token stream"
        );
        let e2e = t.e2e_latency_ms.as_ref().unwrap();
        assert!(
            (e2e.p50 - 10.0).abs() < 1.0,
            "{backend}: 10 ms of prefill, got {}",
            e2e.p50
        );
        // Level 2 has two slots: twice the embeddings per second of level 1.
        let groups = &out.result.scenarios[0].groups;
        let ratio =
            groups[1].summary.embeddings_per_second / groups[0].summary.embeddings_per_second;
        assert!((ratio - 2.0).abs() < 0.2, "{backend}: {ratio}");
        assert!(
            out.result.thresholds.iter().all(|o| o.passed),
            "{backend}: {:?}",
            out.result.thresholds
        );
        assert_eq!(t.goodput_ratio, Some(1.0));
        assert!(
            out.result.scenarios[0].knee.is_none(),
            "no TTFT, no knee sentence"
        );
    }
}

#[test]
fn the_one_line_vllm_flags_run_exactly_n_prompts_at_the_rate_and_cap() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args([
            "run",
            "-q",
            "--num-prompts",
            "24",
            "--request-rate",
            "40",
            "--max-concurrency",
            "3",
            "--output-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let path = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .unwrap_or_else(|| panic!("no result: {stdout}{stderr}"));
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let phase = &result["scenarios"][0];
    assert_eq!(phase["name"], "serve", "{stdout}");
    assert_eq!(phase["executor"], "constant-arrival-rate");
    let total = &result["total"];
    assert_eq!(total["requests"], 24, "exactly --num-prompts: {stdout}");
    assert_eq!(
        total["dropped_iterations"], 0,
        "arrivals wait for a slot, as in vLLM"
    );
    assert!(
        result["scenario"]["overrides"]
            .as_array()
            .unwrap()
            .contains(&"--num-prompts 24 --request-rate 40 --max-concurrency 3".into()),
        "{}",
        result["scenario"]["overrides"]
    );
    // 40/s against a server that serves ~10/s: arrivals queue for the 3 slots, never more.
    let most_active = result["timeseries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["active_vus"].as_u64())
        .max()
        .unwrap();
    assert!(
        most_active <= 3,
        "at most --max-concurrency in flight: {most_active}"
    );
    // The quickstart's `e2e_latency{level:1}` names a level `serve` does not have.
    assert!(stderr.is_empty() || !stderr.contains("error"), "{stderr}");

    let all_at_once = bin()
        .args([
            "run",
            "-q",
            "--num-prompts",
            "6",
            "--max-concurrency",
            "2",
            "--output-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(all_at_once.status.code().is_some(), "ran");
    let bad = bin()
        .args(["run", "--request-rate", "0", "--output-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not a rate"));
    let clash = bin()
        .args(["run", "--num-prompts", "5", "-c", "4"])
        .output()
        .unwrap();
    assert_eq!(
        clash.status.code(),
        Some(2),
        "-c applies to level sweeps, not to --num-prompts"
    );
}

/// The tokenizer.json of `src/backend/tokenize.rs`'s tests: whitespace-split words, one token
/// each (any word it does not know is `[UNK]`).
const WORD_LEVEL: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{"id":0,"content":"[UNK]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1},"unk_token":"[UNK]"}}"#;

/// Ollama has no /tokenize: a local tokenizer.json sizes the synthetic prompts instead. With one
/// token per word, 40-token prompts are 40 words, far longer than the 160 characters the
/// 4-characters estimate would make them (which the simulator counts as 40 prompt tokens).
#[tokio::test]
async fn a_local_tokenizer_file_sizes_prompts_for_ollama_and_is_recorded() {
    let sim = start_sim(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("words.json"), WORD_LEVEL).unwrap();
    let yaml = "name: t\ntarget: {model: m, tokenizer: {file: words.json}}\nprompts:\n  - synthetic: {input_tokens: {mean: 40, stddev: 0}, output_tokens: 4, count: 6}\nscenarios:\n  s: {executor: concurrency-levels, levels: [2], requests_per_level: 6}\n";
    let path = dir.path().join("t.yaml");
    std::fs::write(&path, yaml).unwrap();
    let loaded = llm_bench::load_file(&path).unwrap();
    let out = run(loaded, &options(dir.path(), Some(sim.url()))).await;
    assert_eq!(out.result.target.token_counts.as_deref(), Some("file"));
    let t = &out.result.total;
    assert_eq!((t.requests, t.errors), (6, 0));
    let prompt = t.prompt_tokens.as_ref().unwrap();
    assert!(
        prompt.min > 60.0,
        "40 words of 4+ letters and spaces: {prompt:?}"
    );

    std::fs::write(&path, yaml.replace("words.json", "nope.json")).unwrap();
    let Err(llm_bench::LoadError::Invalid { problems, .. }) = llm_bench::load_file(&path) else {
        panic!("a missing tokenizer file is a scenario error")
    };
    let problem = problems[0].to_string();
    assert!(
        problem.contains("t.yaml:2:") && problem.contains("target.tokenizer.file: cannot read"),
        "{problem}"
    );
}

/// The report and summary of an embeddings run head their throughput column as what it is.
#[tokio::test(start_paused = true)]
async fn reports_of_an_embeddings_run_show_embeddings_per_second() {
    let sim = start_sim(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: e\ntarget: {model: m, api: embeddings}\nprompts: [a cat]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 5}\n";
    let out = run(scenario(yaml), &options(dir.path(), Some(sim.url()))).await;
    let templates = llm_bench::report::Templates::default();
    let md = llm_bench::report::render_markdown(&out.result, &templates).unwrap();
    let html = llm_bench::report::render_html(&out.result, &templates).unwrap();
    let eps = format!("{:.1}", out.result.total.embeddings_per_second);
    assert!(out.result.total.embeddings_per_second > 0.0);
    assert!(
        md.contains("| embeddings/s |") && !md.contains("output tok/s"),
        "{md}"
    );
    assert!(md.contains(&eps), "{md}");
    assert!(html.contains("<th>embeddings/s</th>") && html.contains(&eps));
}

/// `compare` puts an embedding model's capacity beside its latencies: half the embeddings per
/// second is a change of about -50 %.
#[tokio::test(start_paused = true)]
async fn compare_reports_embeddings_per_second_for_embeddings_runs() {
    let yaml = "name: e\ntarget: {model: m, api: embeddings}\nprompts: [xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 20}\n";
    let dir = tempfile::tempdir().unwrap();
    for (name, prefill) in [("base", 1), ("new", 2)] {
        let sim = start_sim(SimConfig {
            prefill_per_token: HumanDuration(Duration::from_millis(prefill)),
            ..sim_config()
        })
        .await;
        run(
            scenario(yaml),
            &options(&dir.path().join(name), Some(sim.url())),
        )
        .await;
    }
    let out = bin()
        .args([
            "compare",
            "base/benchmark_latest.json",
            "new/benchmark_latest.json",
            "--format",
            "json",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let comparison: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
    let eps = crate::common::compared_metric(&comparison, "embeddings_per_second");
    assert_eq!(eps["unit"], "embeddings/s");
    let change = eps["change"]["mean"].as_f64().unwrap();
    assert!(
        (change + 0.5).abs() < 0.05,
        "10 ms -> 20 ms of prefill: {change}"
    );
    assert!(
        crate::common::compared_metric(&comparison, "e2e_latency")["change"]["p50"]
            .as_f64()
            .unwrap()
            > 0.9
    );
}
