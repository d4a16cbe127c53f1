//! Runs over real loopback HTTP against the built-in simulator, under tokio's paused clock: the
//! simulator's sleeps advance virtual time, so latencies are exact and the tests never flake on
//! a busy machine.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::{options, run, scenario, start_sim, with_backend, with_load};
use llm_bench::backend::ErrorKind;
use llm_bench::duration::HumanDuration;
use llm_bench::sim::model::service_time;
use llm_bench::sim::{Fault, OutputTokens, SimConfig};

/// Runs one test body against the simulator once per backend: the same suite for both APIs.
macro_rules! both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(start_paused = true)]
            async fn ollama() {
                super::$name("ollama").await
            }
            #[tokio::test(start_paused = true)]
            async fn openai() {
                super::$name("openai").await
            }
        }
    };
}

fn ms(n: u64) -> HumanDuration {
    HumanDuration(Duration::from_millis(n))
}

/// Fixed-length outputs, no cold load, no bandwidth cap.
fn steady(parallel: u32, tokens: u32) -> SimConfig {
    SimConfig {
        parallel,
        prefill_per_token: HumanDuration(Duration::from_micros(500)),
        decode_per_token: ms(10),
        load_time: ms(0),
        output_tokens: OutputTokens {
            min: tokens,
            max: tokens,
        },
        ..SimConfig::default()
    }
}

both_backends!(closed_model_concurrency_is_exact_at_every_level);
async fn closed_model_concurrency_is_exact_at_every_level(backend: &str) {
    let sim = start_sim(steady(64, 8)).await;
    let dir = tempfile::tempdir().unwrap();
    for level in [1u32, 3, 7, 20] {
        sim.stats.reset_max_in_flight();
        let load = format!("scenarios:\n  sweep:\n    executor: concurrency-levels\n    levels: [{level}]\n    requests_per_level: {}\n", level * 3);
        let out = run(
            scenario(&with_backend(backend, &load)),
            &options(dir.path(), Some(sim.url())),
        )
        .await;
        assert_eq!(
            sim.stats.max_in_flight.load(Ordering::SeqCst),
            u64::from(level),
            "level {level}"
        );
        let g = &out.result.scenarios[0].groups[0];
        assert_eq!(
            (g.level, g.summary.requests, g.summary.errors),
            (Some(level), u64::from(level * 3), 0)
        );
        // The per-second series saw the same concurrency from the client side.
        assert_eq!(
            out.result.timeseries.iter().map(|p| p.active_vus).max(),
            Some(u64::from(level))
        );
    }
}

both_backends!(warmup_is_sent_first_and_excluded_from_every_metric);
async fn warmup_is_sent_first_and_excluded_from_every_metric(backend: &str) {
    let mut cfg = steady(1, 4);
    cfg.load_time = ms(2000); // paid by the first (warm-up) request only
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_backend(backend, "warmup: {requests: 3}\nscenarios:\n  s:\n    executor: concurrency-levels\n    levels: [2]\n    requests_per_level: 10\n");
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    assert_eq!(sim.stats.requests.load(Ordering::SeqCst), 13);
    assert_eq!(out.result.warmup.requests, 3);
    assert_eq!(out.result.total.requests, 10);
    let ttft = out.result.total.ttft_ms.as_ref().unwrap();
    assert!(
        ttft.max < 1000.0,
        "the cold load leaked into the measured TTFT: {ttft:?}"
    );
    if backend == "ollama" {
        assert!(out.result.total.load_ms.as_ref().unwrap().max < 1.0);
    }
}

both_backends!(every_injected_fault_is_counted_in_its_category_and_the_run_completes);
async fn every_injected_fault_is_counted_in_its_category_and_the_run_completes(backend: &str) {
    let mut cfg = steady(4, 6);
    for fault in Fault::ALL {
        cfg.faults.set(fault.name(), 0.1);
    }
    cfg.faults.stall_duration = Some(ms(600_000));
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!("name: faults\ntarget:\n  backend: {backend}\n  model: m\n  timeout: 5s\nprompts: [hello]\nscenarios:\n  s:\n    executor: concurrency-levels\n    levels: [4]\n    requests_per_level: 300\n");
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let by_kind = &out.result.total.errors_by_kind;
    let expect = [
        (Fault::Http500, ErrorKind::Http5xx),
        (Fault::Http503, ErrorKind::ServerBusy),
        (Fault::Http404, ErrorKind::ModelNotFound),
        (Fault::ErrorLine, ErrorKind::StreamError),
        (Fault::MalformedLine, ErrorKind::Malformed),
        (Fault::Stall, ErrorKind::Timeout),
        (Fault::Disconnect, ErrorKind::Disconnected),
    ];
    let mut injected = 0;
    for (fault, kind) in expect {
        let n = sim.stats.faults(fault);
        assert!(
            n > 0,
            "{fault:?} was never injected; raise the request count"
        );
        assert_eq!(
            by_kind.get(&kind).copied().unwrap_or(0),
            n,
            "{fault:?} -> {kind:?}: {by_kind:?}"
        );
        injected += n;
    }
    assert_eq!(out.result.total.errors, injected);
    assert_eq!(out.result.total.requests, 300);
    assert_eq!(out.result.total.successes, 300 - injected);
}

both_backends!(refused_connections_are_counted_not_fatal);
async fn refused_connections_are_counted_not_fatal(backend: &str) {
    // Bind and drop a listener to find a port where nothing listens.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_backend(backend, "scenarios:\n  s:\n    executor: concurrency-levels\n    levels: [2]\n    requests_per_level: 6\n");
    let out = run(
        scenario(&yaml),
        &options(dir.path(), Some(format!("http://127.0.0.1:{port}"))),
    )
    .await;
    assert_eq!(
        out.result.total.errors_by_kind.get(&ErrorKind::Refused),
        Some(&6)
    );
    assert!(out.result_path.exists());
}

// With one slot and `c` closed-loop users, every request after the first `c` waits for the
// `c − 1` ahead of it: TTFT ≈ (c − 1) × service + prefill, e2e ≈ c × service.
both_backends!(ttft_grows_linearly_with_concurrency_on_one_slot);
async fn ttft_grows_linearly_with_concurrency_on_one_slot(backend: &str) {
    let cfg = steady(1, 21);
    let sim = start_sim(cfg.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let prompt = "Say something about queues."; // 27 chars -> 7 prompt tokens
    let yaml = with_backend(backend, "scenarios:\n  sweep:\n    executor: concurrency-levels\n    levels: [1, 2, 4, 8]\n    requests_per_level: 40\n");
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let prompt_tokens = llm_bench::sim::model::estimate_prompt_tokens(prompt.len());
    let service = service_time(&cfg, prompt_tokens, 21).as_secs_f64() * 1000.0; // 203.5 ms
    let prefill = cfg.prefill_per_token.get().as_secs_f64() * 1000.0 * prompt_tokens as f64;
    for g in &out.result.scenarios[0].groups {
        let c = f64::from(g.level.unwrap());
        let ttft = g.summary.ttft_ms.as_ref().unwrap().p50;
        let e2e = g.summary.e2e_latency_ms.as_ref().unwrap().p50;
        let want_ttft = (c - 1.0) * service + prefill;
        let want_e2e = c * service;
        // 2% covers HDR's 0.1% bucket width and per-request HTTP overhead in virtual time.
        assert!(
            (ttft - want_ttft).abs() <= want_ttft * 0.02 + 1.0,
            "c={c}: ttft p50 {ttft} vs {want_ttft}"
        );
        assert!(
            (e2e - want_e2e).abs() <= want_e2e * 0.02 + 1.0,
            "c={c}: e2e p50 {e2e} vs {want_e2e}"
        );
        // Throughput is flat: one slot serves one request per service time whatever c is.
        let rps = g.summary.requests_per_second;
        assert!(
            (rps - 1000.0 / service).abs() < 0.1 * 1000.0 / service,
            "c={c}: {rps} req/s"
        );
        // Ollama's own durations attribute the growth to queueing, not to prefill or decode;
        // OpenAI-compatible servers report prefill and decode only (llama.cpp `timings`).
        if backend == "ollama" {
            let queue = g.summary.queue_wait_ms.as_ref().unwrap().p50;
            assert!(
                (queue - (want_ttft - prefill)).abs() <= want_ttft * 0.02 + 1.0,
                "c={c}: queue p50 {queue}"
            );
        } else {
            assert!(g.summary.queue_wait_ms.is_none());
            let server_prefill = g.summary.prefill_ms.as_ref().unwrap().p50;
            assert!(
                (server_prefill - prefill).abs() < 0.1,
                "c={c}: prefill {server_prefill}"
            );
        }
    }
}

both_backends!(decode_metrics_follow_the_simulator_rates);
async fn decode_metrics_follow_the_simulator_rates(backend: &str) {
    let mut cfg = steady(4, 11);
    cfg.max_decode_tokens_per_second = Some(200.0); // 4 streams share 200 tok/s: 20 ms per step
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_backend(backend, "scenarios:\n  s:\n    executor: concurrency-levels\n    levels: [1, 4]\n    requests_per_level: 12\n");
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let groups = &out.result.scenarios[0].groups;
    let (one, four) = (&groups[0].summary, &groups[1].summary);
    assert!((one.itl_ms.as_ref().unwrap().p50 - 10.0).abs() < 0.1);
    assert!((one.tpot_ms.as_ref().unwrap().p50 - 10.0).abs() < 0.1);
    assert!((four.itl_ms.as_ref().unwrap().p50 - 20.0).abs() < 0.1);
    assert_eq!(one.output_tokens.as_ref().unwrap().p50, 11.0);
    assert_eq!(one.tokens_estimated_requests, 0);
    // The cap binds decode steps: 4 requests × 11 tokens per (3.5 ms prefill + 10 steps × 20 ms),
    // since prefill yields each request's first token.
    let want = 4.0 * 11.0 / 0.2035;
    let got = four.output_tokens_per_second;
    assert!((got - want).abs() < want * 0.02, "{got} vs {want} tok/s");
}

#[tokio::test(start_paused = true)]
async fn constant_vus_honours_iterations_and_duration() {
    let sim = start_sim(steady(8, 5)).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml =
        with_load("scenarios:\n  n:\n    executor: constant-vus\n    vus: 3\n    iterations: 10\n");
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    assert_eq!(out.result.total.requests, 10);
    assert_eq!(sim.stats.max_in_flight.load(Ordering::SeqCst), 3);

    let yaml =
        with_load("scenarios:\n  d:\n    executor: constant-vus\n    vus: 2\n    duration: 3s\n");
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    // Each request takes 40 ms of decode + 3.5 ms prefill: 2 VUs finish ~2 × 3000 / 43.5 ≈ 138.
    let n = out.result.total.requests;
    assert!((130..=142).contains(&n), "{n}");
    assert_eq!(out.result.total.interrupted, 0);
}

#[tokio::test(start_paused = true)]
async fn ramping_vus_follow_the_stages_and_keep_metrics_per_stage() {
    let sim = start_sim(steady(64, 5)).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_load("scenarios:\n  r:\n    executor: ramping-vus\n    start_vus: 0\n    stages:\n      - {duration: 4s, target: 8}\n      - {duration: 4s, target: 8}\n      - {duration: 4s, target: 0}\n");
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let phase = &out.result.scenarios[0];
    let labels: Vec<_> = phase.groups.iter().map(|g| g.stage).collect();
    assert_eq!(labels, vec![Some(1), Some(2), Some(3)]);
    assert_eq!(sim.stats.max_in_flight.load(Ordering::SeqCst), 8);
    let series = &out.result.timeseries;
    // Seconds 5-7 are the plateau: 8 VUs; the ramps average fewer.
    for p in &series[5..8] {
        assert_eq!(p.active_vus, 8, "{p:?}");
    }
    assert!(series[0].active_vus <= 2, "{:?}", series[0]);
    let plateau = phase.groups[1].summary.requests as f64;
    let ramp = phase.groups[0].summary.requests as f64;
    assert!(ramp < plateau * 0.7, "ramp {ramp} vs plateau {plateau}");
}

#[tokio::test(start_paused = true)]
async fn phases_run_in_parallel_after_their_start_time() {
    let sim = start_sim(steady(64, 5)).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_load("scenarios:\n  a:\n    executor: constant-vus\n    vus: 1\n    duration: 2s\n  b:\n    executor: constant-vus\n    vus: 1\n    duration: 2s\n    start_time: 1s\n");
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let s = &out.result.scenarios;
    assert_eq!(sim.stats.max_in_flight.load(Ordering::SeqCst), 2);
    assert!(
        out.result.duration_secs < 3.2,
        "not parallel: {}",
        out.result.duration_secs
    );
    assert!(s[0].total.requests > 40 && s[1].total.requests > 40);
}

both_backends!(interrupting_a_run_writes_the_partial_results);
async fn interrupting_a_run_writes_the_partial_results(backend: &str) {
    let sim = start_sim(steady(1, 20)).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_backend(backend, "scenarios:\n  long:\n    executor: concurrency-levels\n    levels: [2, 4]\n    requests_per_level: 1000\n");
    let stop = tokio_util::sync::CancellationToken::new();
    let trigger = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        trigger.cancel();
    });
    let mut opts = options(dir.path(), Some(sim.url()));
    opts.raw = Some(Default::default());
    let out = llm_bench::execute(scenario(&yaml), &opts, stop)
        .await
        .unwrap();
    assert!(out.result.interrupted);
    let t = &out.result.total;
    assert!(t.requests > 20 && t.requests < 1000, "{}", t.requests);
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out.result_path).unwrap()).unwrap();
    assert_eq!(saved["interrupted"], true);
    assert_eq!(saved["total"]["requests"], t.requests);
    let raw = std::fs::read_to_string(out.raw_path.unwrap()).unwrap();
    assert_eq!(raw.lines().count() as u64, t.requests + t.interrupted);
}

#[tokio::test(start_paused = true)]
async fn command_line_overrides_replace_levels_requests_and_model() {
    let mut cfg = steady(8, 3);
    cfg.models = vec!["big:70b".into()];
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_load("scenarios:\n  s:\n    executor: concurrency-levels\n    levels: [1]\n    requests_per_level: 2\n");
    let flags = llm_bench::scenario::set::Flags {
        concurrency: vec![2, 3],
        requests_per_level: Some(9),
        model: Some("big:70b".into()),
    };
    let loaded = llm_bench::load_str_with(&yaml, "test.yaml", &flags.lowered()).unwrap();
    let out = run(loaded, &options(dir.path(), Some(sim.url()))).await;
    let groups = &out.result.scenarios[0].groups;
    assert_eq!(
        groups.iter().map(|g| g.level).collect::<Vec<_>>(),
        vec![Some(2), Some(3)]
    );
    assert!(groups
        .iter()
        .all(|g| g.summary.requests == 9 && g.summary.errors == 0));
    assert_eq!(out.result.target.model, "big:70b");
    // Without the override the simulator's model list answers 404, as Ollama does.
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    assert_eq!(
        out.result
            .total
            .errors_by_kind
            .get(&ErrorKind::ModelNotFound),
        Some(&2)
    );
}

#[tokio::test(start_paused = true)]
async fn the_generate_api_streams_and_reports_server_counts() {
    let sim = start_sim(steady(2, 6)).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: g\ntarget:\n  model: m\n  api: generate\n  options: {num_predict: 4}\nprompts:\n  - {prompt: Hello there, system: Be brief.}\nscenarios:\n  s: {executor: concurrency-levels, levels: [2], requests_per_level: 4}\n";
    let out = run(scenario(yaml), &options(dir.path(), Some(sim.url()))).await;
    let t = &out.result.total;
    assert_eq!((t.requests, t.errors), (4, 0));
    // num_predict reaches the server: 4 tokens, not the configured 6.
    assert_eq!(t.output_tokens.as_ref().unwrap().max, 4.0);
    // "Hello there" + "Be brief." = 20 characters = 5 prompt tokens.
    assert_eq!(t.prompt_tokens.as_ref().unwrap().p50, 5.0);
}

both_backends!(a_stuck_stream_and_a_slow_first_token_are_found_by_their_own_timeouts);
async fn a_stuck_stream_and_a_slow_first_token_are_found_by_their_own_timeouts(backend: &str) {
    // Every stream stalls for 10 minutes mid-answer; the total timeout is 2 minutes.
    let mut cfg = steady(4, 20);
    cfg.faults.set(Fault::Stall.name(), 1.0);
    cfg.faults.stall_duration = Some(ms(600_000));
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let target = |extra: &str| {
        format!("name: t\ntarget:\n  backend: {backend}\n  model: m\n  timeout: 2m\n{extra}prompts: [hello]\nscenarios:\n  s: {{executor: concurrency-levels, levels: [2], requests_per_level: 4}}\n")
    };
    let out = run(
        scenario(&target("  idle_timeout: 1s\n")),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let by_kind = &out.result.total.errors_by_kind;
    assert_eq!(
        by_kind.get(&ErrorKind::IdleTimeout),
        Some(&4),
        "{by_kind:?}"
    );
    // Found after a second of silence, not after the whole 2-minute timeout.
    assert!(
        out.result.duration_secs < 10.0,
        "{}",
        out.result.duration_secs
    );

    // A cold model load of 30 s before the first token; first_token_timeout 5 s.
    let mut cold = steady(4, 20);
    cold.load_time = ms(30_000);
    let sim = start_sim(cold).await;
    let out = run(
        scenario(&target("  first_token_timeout: 5s\n  idle_timeout: 60s\n")),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let by_kind = &out.result.total.errors_by_kind;
    assert_eq!(
        by_kind.get(&ErrorKind::FirstTokenTimeout),
        Some(&4),
        "{by_kind:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_preflight_names_the_models_a_server_has() {
    let mut cfg = steady(2, 4);
    cfg.models = vec!["llama3.2:1b".into(), "qwen3:0.6b".into()];
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = |backend: &str, model: &str| {
        format!("name: p\ntarget:\n  backend: {backend}\n  model: {model}\nprompts: [hello]\nscenarios:\n  s: {{executor: concurrency-levels, levels: [1], requests_per_level: 2}}\n")
    };
    let mut opts = options(dir.path(), Some(sim.url()));
    opts.preflight = true;
    let err = llm_bench::execute(
        scenario(&yaml("ollama", "llama3.2:3b")),
        &opts,
        llm_bench::Stop::new(),
    )
    .await
    .unwrap_err();
    let text = llm_bench::error::chain(&err);
    assert!(
        text.contains("HTTP 404: the server does not have model \"llama3.2:3b\"; it has: llama3.2:1b, qwen3:0.6b"),
        "{text}"
    );
    assert_eq!(
        sim.stats.requests.load(Ordering::Relaxed),
        0,
        "no load was sent"
    );
    // With the model: the run goes ahead.
    let out = run(scenario(&yaml("ollama", "qwen3:0.6b")), &opts).await;
    assert_eq!((out.result.total.requests, out.result.total.errors), (2, 0));
    // OpenAI-compatible servers may answer to any name: a model they do not list is a warning.
    let out = run(scenario(&yaml("openai", "llama3.2:1b")), &opts).await;
    assert_eq!(out.result.total.errors, 0);
}

#[tokio::test(start_paused = true)]
async fn the_simulator_reports_its_own_send_times_as_the_truth() {
    let cfg = SimConfig {
        parallel: 1000,
        prefill_per_token: ms(0),
        load_time: ms(0),
        first_token_delay: ms(50),
        decode_per_token: ms(10),
        output_tokens: OutputTokens { min: 8, max: 8 },
        ..SimConfig::default()
    };
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = with_load(
        "scenarios:\n  s: {executor: concurrency-levels, levels: [4], requests_per_level: 20}\n",
    );
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let truth = sim.stats.truth();
    assert_eq!(truth["requests"], 20);
    let near = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap() - want).abs() < 0.05;
    assert!(near(&truth["ttft_ms"]["p50"], 50.0), "{truth}");
    assert!(near(&truth["itl_ms"]["p99"], 10.0), "{truth}");
    assert!(near(&truth["e2e_ms"]["p50"], 120.0), "{truth}");
    // Under the paused clock the client sees exactly what the server sent.
    let client = out.result.total.ttft_ms.unwrap();
    assert!((client.p50 - 50.0).abs() < 0.1, "{client:?}");
    // Over HTTP, as benchmarks read it, and reset between runs.
    let http = reqwest::Client::new();
    let stats: serde_json::Value = http
        .get(format!("{}/sim/stats", sim.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats, truth);
    http.post(format!("{}/sim/reset", sim.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.stats.truth()["requests"], 0);
}
