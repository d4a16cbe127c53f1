//! OpenAI-compatible backend specifics against the simulator: /v1/completions, options merged
//! into the body, and the API key (sent as a bearer token, never written anywhere).

use std::time::Duration;

use crate::common::{options, run, scenario, start_sim};
use llm_bench::backend::ErrorKind;
use llm_bench::duration::HumanDuration;
use llm_bench::sim::{OutputTokens, SimConfig};

fn sim_config() -> SimConfig {
    SimConfig {
        parallel: 4,
        decode_per_token: HumanDuration(Duration::from_millis(5)),
        load_time: HumanDuration(Duration::ZERO),
        output_tokens: OutputTokens { min: 9, max: 9 },
        ..SimConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn completions_api_with_max_tokens_and_server_usage() {
    let sim = start_sim(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: c\ntarget:\n  backend: openai\n  model: m\n  api: completions\n  options: {max_tokens: 4, temperature: 0}\nprompts:\n  - {prompt: Hello there, system: Be brief.}\nscenarios:\n  s: {executor: concurrency-levels, levels: [2], requests_per_level: 6}\n";
    let out = run(
        scenario(yaml),
        &options(dir.path(), Some(format!("{}/v1", sim.url()))),
    )
    .await;
    let t = &out.result.total;
    assert_eq!((t.requests, t.errors), (6, 0));
    assert_eq!(
        t.output_tokens.as_ref().unwrap().max,
        4.0,
        "max_tokens reached the server"
    );
    assert_eq!(t.tokens_estimated_requests, 0, "usage gave the counts");
    // "Be brief.\n\nHello there" = 22 characters = 6 prompt tokens.
    assert_eq!(t.prompt_tokens.as_ref().unwrap().p50, 6.0);
    assert_eq!(out.result.target.backend, "openai");
    assert_eq!(out.result.target.api, "completions");
    assert!(t.ttfa_ms.is_some());
}

#[tokio::test(start_paused = true)]
async fn the_api_key_is_sent_and_never_written() {
    const KEY: &str = "sk-llmbench-test-9f3a61";
    let mut cfg = sim_config();
    cfg.api_key = Some(KEY.into());
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let var = "LLM_BENCH_TEST_KEY_SENT";
    // SAFETY-free in edition 2021; the name is unique to this test.
    std::env::set_var(var, KEY);
    let yaml = format!("name: k\ntarget:\n  backend: openai\n  model: m\n  api_key_env: {var}\nprompts: [hi]\nscenarios:\n  s: {{executor: concurrency-levels, levels: [2], requests_per_level: 4}}\n");
    let mut opts = options(dir.path(), Some(sim.url()));
    opts.raw = Some(Default::default());
    let out = run(scenario(&yaml), &opts).await;
    assert_eq!((out.result.total.requests, out.result.total.errors), (4, 0));
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains(KEY),
            "the API key leaked into an output file"
        );
    }

    // A refused key is echoed by the server, and URL credentials are part of the target:
    // neither reaches an output.
    const WRONG: &str = "sk-wrong-key-5c21";
    std::env::set_var(var, WRONG);
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), Some(sim.url()));
    opts.raw = Some(Default::default());
    let out = run(scenario(&yaml), &opts).await;
    assert_eq!(
        out.result.total.errors_by_kind.get(&ErrorKind::Http4xx),
        Some(&4),
        "401 without the right key"
    );
    let raw = std::fs::read_to_string(out.raw_path.as_ref().unwrap()).unwrap();
    assert!(
        raw.contains("invalid or missing API key (given: ***)"),
        "{raw}"
    );
    opts.target_url = Some(sim.url().replace("http://", "http://bench:pa55word@"));
    let out = run(scenario(&yaml), &opts).await;
    assert!(
        out.result
            .target
            .url
            .starts_with("http://bench:***@127.0.0.1:"),
        "{}",
        out.result.target.url
    );
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(
            !text.contains(WRONG) && !text.contains("pa55word"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn a_missing_key_variable_is_reported_before_sending() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: k\ntarget:\n  backend: openai\n  model: m\n  api_key_env: LLM_BENCH_SURELY_UNSET_VAR\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 1}\n";
    let err = llm_bench::execute(
        scenario(yaml),
        &options(dir.path(), Some("http://127.0.0.1:9".into())),
        llm_bench::Stop::new(),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("LLM_BENCH_SURELY_UNSET_VAR (target.api_key_env) is not set"),
        "{err}"
    );
}

#[test]
fn backend_and_api_must_belong_together() {
    let yaml = "name: k\ntarget:\n  backend: openai\n  model: m\n  api: generate\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 1}\n";
    let err = llm_bench::load_str(yaml, "k.yaml").unwrap_err().to_string();
    assert!(err.contains("1 problem"), "{err}");
    let Err(llm_bench::LoadError::Invalid { problems, .. }) = llm_bench::load_str(yaml, "k.yaml")
    else {
        panic!()
    };
    assert_eq!(problems[0].to_string(), "k.yaml:5:3: target.api: `generate` is an Ollama endpoint; OpenAI's are `chat`, `completions` and `embeddings`");
}

/// `tokenizer: server`: synthetic prompts are sized by the server's `/tokenize` before any
/// load, the result says the counts are the server's, and Ollama (no such endpoint) is refused.
#[tokio::test]
async fn a_server_tokenizer_sizes_synthetic_prompts_and_is_recorded() {
    let sim = start_sim(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: t\ntarget:\n  backend: openai\n  model: m\n  api: completions\n  tokenizer: server\nprompts:\n  - synthetic: {input_tokens: {mean: 30, stddev: 6}, output_tokens: 5, count: 8, shared_prefix: {tokens: 20}}\nscenarios:\n  s: {executor: concurrency-levels, levels: [2], requests_per_level: 8}\n";
    let out = run(
        scenario(yaml),
        &options(dir.path(), Some(format!("{}/v1", sim.url()))),
    )
    .await;
    assert_eq!(out.result.target.token_counts.as_deref(), Some("server"));
    let t = &out.result.total;
    assert_eq!((t.requests, t.errors), (8, 0));
    // The simulator's tokenizer is the 4-characters rule, so every prompt is its drawn size
    // plus the 20-token prefix and the paragraph break between them.
    let prompt = t.prompt_tokens.as_ref().unwrap();
    assert!(
        prompt.min >= 20.0 + 10.0 && prompt.max <= 20.0 + 60.0,
        "{prompt:?}"
    );
    let refused = llm_bench::load_str(
        "name: o\ntarget: {model: m, tokenizer: server}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 1}\n",
        "o.yaml",
    );
    let Err(llm_bench::LoadError::Invalid { problems, .. }) = refused else {
        panic!("Ollama has no /tokenize")
    };
    assert!(
        problems[0]
            .to_string()
            .contains("target.tokenizer: Ollama has no /tokenize"),
        "{problems:?}"
    );
}

/// With pre-connecting on (the command line's default), the connections the load holds are
/// opened after the warm-up and before the first measured request, and the result says how many.
#[tokio::test]
async fn the_loads_connections_are_opened_before_it_and_counted() {
    let sim = start_sim(sim_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: p\ntarget: {backend: openai, model: m}\nprompts: [hi]\nwarmup: {requests: 1}\nscenarios:\n  sweep: {executor: concurrency-levels, levels: [1, 3], requests_per_level: 6}\n  other: {executor: constant-vus, vus: 2, iterations: 4}\n";
    let mut opts = options(dir.path(), Some(format!("{}/v1", sim.url())));
    opts.preconnect = true;
    let out = run(scenario(yaml), &opts).await;
    assert_eq!(
        out.result.warmup.connections_opened,
        3 + 2,
        "phases run side by side"
    );
    assert_eq!(
        (out.result.total.requests, out.result.total.errors),
        (16, 0)
    );
    let off = run(
        scenario(yaml),
        &options(dir.path(), Some(format!("{}/v1", sim.url()))),
    )
    .await;
    assert_eq!(off.result.warmup.connections_opened, 0);
}
