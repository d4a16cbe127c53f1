//! Prompt libraries against the simulator: included sets with weights, per-entry options
//! reaching the server, per-set metrics and thresholds, seeded reproducibility, and errors
//! inside included files reported at their line.

use std::path::Path;
use std::time::Duration;

use crate::common::{self, options, run, start_sim};
use llm_bench::duration::HumanDuration;
use llm_bench::sim::{OutputTokens, SimConfig};

fn library_scenario(dir: &Path, seed: u64) -> llm_bench::Loaded {
    let prompts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/prompts");
    let yaml = format!(
        "name: lib\ntarget: {{model: m, timeout: 60s}}\nprompts:\n  - {{include: {p}/short-chat.yaml, weight: 6}}\n  - {{include: {p}/code-generation.yaml, weight: 2}}\n  - {{include: {p}/json-output.jsonl, weight: 2}}\norder: weighted\nseed: {seed}\nscenarios:\n  mix: {{executor: constant-vus, vus: 4, iterations: 200}}\nthresholds:\n  \"output_tokens{{prompt_set:code}}\": [\"max<=384\"]\n",
        p = prompts.display()
    );
    let file = dir.join("lib.yaml");
    std::fs::write(&file, yaml).unwrap();
    llm_bench::load_file(&file).unwrap()
}

fn sim() -> SimConfig {
    SimConfig {
        parallel: 8,
        decode_per_token: HumanDuration(Duration::from_millis(1)),
        load_time: HumanDuration(Duration::ZERO),
        output_tokens: OutputTokens { min: 20, max: 20 },
        ..SimConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn weighted_sets_options_and_per_set_metrics() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        library_scenario(dir.path(), 42),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let sets: Vec<(&str, u64)> = out
        .result
        .prompt_sets
        .iter()
        .map(|s| (s.name.as_str(), s.summary.requests))
        .collect();
    let count = |name: &str| sets.iter().find(|(n, _)| *n == name).map_or(0, |(_, c)| *c) as f64;
    assert_eq!(
        count("short-chat") + count("code") + count("json-output"),
        200.0,
        "{sets:?}"
    );
    // Weights 6 : 2 : 2 over 200 requests.
    assert!((count("short-chat") / 200.0 - 0.6).abs() < 0.1, "{sets:?}");
    assert!((count("code") / 200.0 - 0.2).abs() < 0.08, "{sets:?}");
    // Entry options reach the server: the code set asks for 384 tokens, the simulator's default is 20.
    let code = &out
        .result
        .prompt_sets
        .iter()
        .find(|s| s.name == "code")
        .unwrap()
        .summary;
    assert_eq!(code.output_tokens.as_ref().unwrap().max, 384.0);
    let chat = &out
        .result
        .prompt_sets
        .iter()
        .find(|s| s.name == "short-chat")
        .unwrap()
        .summary;
    assert!(chat.output_tokens.as_ref().unwrap().min < 384.0);
    // Every json-output entry is tagged `json`: the tag breakdown counts exactly that set's requests.
    let json = out
        .result
        .entry_tags
        .iter()
        .find(|t| t.name == "json")
        .unwrap();
    assert_eq!(json.summary.requests as f64, count("json-output"));
    // A threshold tagged with a prompt set measures only that set.
    let t = &out.result.thresholds[0];
    assert_eq!(
        (t.metric.as_str(), t.observed, t.passed),
        ("output_tokens{prompt_set:code}", Some(384.0), true)
    );
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_sends_the_same_sequence() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let counts = |r: &llm_bench::RunOutcome| {
        r.result
            .prompt_sets
            .iter()
            .map(|s| {
                (
                    s.name.clone(),
                    s.summary.requests,
                    s.summary.output_tokens_total,
                )
            })
            .collect::<Vec<_>>()
    };
    let a = run(
        library_scenario(dir.path(), 7),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let b = run(
        library_scenario(dir.path(), 7),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let c = run(
        library_scenario(dir.path(), 8),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    assert_eq!(counts(&a), counts(&b));
    assert_ne!(counts(&a), counts(&c));
}

#[test]
fn errors_inside_an_included_file_name_that_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("set.yaml"),
        "name: s\nprompts:\n  - fine\n  - {prompt: \"{{ missing_var }}\", vars: {topic: [a]}}\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("s.yaml"), "name: x\ntarget: {model: m}\nprompts: {include: set.yaml}\nscenarios:\n  a: {executor: constant-vus, vus: 1, iterations: 1}\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_llm-bench"))
        .arg("validate")
        .arg(dir.path().join("s.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(104));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("s.yaml:3:11: prompts.include: ")
            && stderr.contains("set.yaml:4:5: prompts[1]: template"),
        "{stderr}"
    );
}

#[tokio::test(start_paused = true)]
async fn synthetic_prompts_have_the_requested_sizes_on_the_server() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: syn\ntarget: {model: m, timeout: 60s}\nprompts:\n  - synthetic: {input_tokens: {mean: 300, stddev: 30}, output_tokens: 50, count: 32}\nseed: 3\nscenarios:\n  s: {executor: constant-vus, vus: 4, iterations: 64}\n";
    let out = run(
        common::scenario(yaml),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let t = &out.result.total;
    assert_eq!((t.requests, t.errors), (64, 0));
    // The simulator counts prompt tokens by the same 4-characters rule.
    let prompt = t.prompt_tokens.as_ref().unwrap();
    assert!(
        (prompt.mean - 300.0).abs() < 20.0 && prompt.stddev > 10.0 && prompt.stddev < 50.0,
        "{prompt:?}"
    );
    let output = t.output_tokens.as_ref().unwrap();
    assert_eq!(
        (output.min, output.max),
        (50.0, 50.0),
        "output length enforced through num_predict"
    );
    assert_eq!(out.result.prompt_sets[0].name, "synthetic");
}

#[tokio::test(start_paused = true)]
async fn conversations_send_growing_histories_and_keep_ttft_per_turn() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: chat\ntarget: {model: m, timeout: 60s}\nprompts: [Tell me about caches.]\nconversation: {turns: 3, follow_ups: [Go on., And then?]}\nscenarios:\n  s: {executor: constant-vus, vus: 2, iterations: 10}\n";
    let out = run(
        common::scenario(yaml),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    assert_eq!(
        (out.result.total.requests, out.result.total.errors),
        (30, 0),
        "10 sessions of 3 turns"
    );
    let turn = |n: u32| {
        out.result
            .entry_tags
            .iter()
            .find(|t| t.name == format!("turn {n}"))
            .unwrap()
            .summary
            .clone()
    };
    let prompt = |n: u32| turn(n).prompt_tokens.unwrap().mean;
    // Each turn carries the previous answers (20 tokens each) and a follow-up: the prompt grows.
    assert!(
        prompt(1) < 10.0 && prompt(2) > prompt(1) + 20.0 && prompt(3) > prompt(2) + 20.0,
        "{} {} {}",
        prompt(1),
        prompt(2),
        prompt(3)
    );
    for n in 1..=3 {
        assert_eq!(turn(n).requests, 10);
        assert!(turn(n).ttft_ms.is_some(), "TTFT is kept for turn {n}");
    }
}

#[test]
fn conversations_need_the_chat_api() {
    let yaml = "name: c\ntarget: {model: m, api: generate}\nprompts: [hi]\nconversation: {turns: 2}\nscenarios:\n  s: {executor: constant-vus, vus: 1, iterations: 1}\n";
    let err = llm_bench::load_str(yaml, "c.yaml").unwrap_err().to_string();
    assert!(err.contains("1 problem"), "{err}");
}
