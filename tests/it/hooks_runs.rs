//! Rhai hooks against the simulator: a rewrite the simulator can see, checks failing at a known
//! rate gating a threshold, skips, a runaway script stopped, and setup/teardown failures.

use std::path::Path;
use std::time::Duration;

use crate::common::{options, run, start_sim};
use llm_bench::backend::ErrorKind;
use llm_bench::duration::HumanDuration;
use llm_bench::sim::{OutputTokens, SimConfig};

fn sim() -> SimConfig {
    SimConfig {
        parallel: 4,
        decode_per_token: HumanDuration(Duration::from_millis(1)),
        load_time: HumanDuration(Duration::ZERO),
        output_tokens: OutputTokens { min: 20, max: 20 },
        ..SimConfig::default()
    }
}

fn scenario(dir: &Path, script: &str, extra: &str) -> llm_bench::Loaded {
    std::fs::write(dir.join("hook.rhai"), script).unwrap();
    let yaml = format!("name: hooks\ntarget: {{model: m}}\nprompts: [hi]\nhooks: {{script: hook.rhai}}\nscenarios:\n  s: {{executor: constant-vus, vus: 2, iterations: 40}}\n{extra}");
    std::fs::write(dir.join("s.yaml"), yaml).unwrap();
    llm_bench::load_file(&dir.join("s.yaml")).unwrap()
}

#[tokio::test(start_paused = true)]
async fn before_request_rewrites_what_the_simulator_receives() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    // "hi" is 1 prompt token; the rewrite makes it 42 characters, 11 tokens, and asks for 7 tokens.
    let script = r#"fn before_request(ctx) { ctx.prompt = ctx.prompt + " — please answer in one short line."; ctx.options = #{ num_predict: 7 }; ctx }"#;
    let out = run(
        scenario(dir.path(), script, ""),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let t = &out.result.total;
    assert_eq!((t.requests, t.errors), (40, 0));
    assert_eq!(t.output_tokens.as_ref().unwrap().max, 7.0);
    let rewritten = "hi — please answer in one short line.".len();
    assert_eq!(
        t.prompt_tokens.as_ref().unwrap().p50,
        llm_bench::sim::model::estimate_prompt_tokens(rewritten) as f64
    );
}

#[tokio::test(start_paused = true)]
async fn checks_failing_at_a_known_rate_gate_a_threshold() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let script =
        r#"fn after_response(ctx, res) { #{ "quarter": ctx.iteration % 4 == 0, "ok": res.ok } }"#;
    let extra = "thresholds:\n  \"checks{check:quarter}\": [\"rate>0.5\"]\n  \"checks{check:ok}\": [\"rate==1\"]\n";
    let out = run(
        scenario(dir.path(), script, extra),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let quarter = &out.result.total.checks["quarter"];
    assert_eq!((quarter.passes, quarter.fails), (10, 30));
    let t = &out.result.thresholds;
    assert_eq!(
        (t[0].metric.as_str(), t[0].passed, t[0].observed),
        ("checks{check:ok}", true, Some(1.0))
    );
    assert_eq!(
        (t[1].metric.as_str(), t[1].passed, t[1].observed),
        ("checks{check:quarter}", false, Some(0.25))
    );
    assert_eq!(out.status(), llm_bench::Status::ThresholdsFailed);
    let report = std::fs::read_to_string(out.report_path.as_ref().unwrap()).unwrap();
    assert!(
        report.contains("Checks by name"),
        "the HTML report charts the checks"
    );
}

#[tokio::test(start_paused = true)]
async fn skipped_requests_are_not_sent_and_runaway_scripts_are_stopped() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(
        scenario(
            dir.path(),
            "fn before_request(ctx) { if ctx.iteration % 2 == 1 { return false; } ctx }",
            "",
        ),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    assert_eq!(out.result.total.requests, 20);
    assert_eq!(
        sim.stats.requests.load(std::sync::atomic::Ordering::SeqCst),
        20
    );

    let out = run(
        scenario(
            dir.path(),
            "fn after_response(ctx, res) { let n = 0; loop { n += 1; } }",
            "",
        ),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let t = &out.result.total;
    assert_eq!(
        (t.requests, t.errors_by_kind.get(&ErrorKind::Hook)),
        (40, Some(&40)),
        "every request fails with kind hook; the run completes"
    );
}

#[test]
fn setup_and_teardown_failures_exit_107_and_syntax_errors_are_scenario_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |script: &str| {
        std::fs::write(dir.path().join("hook.rhai"), script).unwrap();
        std::fs::write(dir.path().join("s.yaml"), "name: h\ntarget: {model: m}\nprompts: [hi]\nhooks: {script: hook.rhai}\nscenarios:\n  s: {executor: constant-vus, vus: 1, iterations: 3}\nsimulator: {load_time: 0s, decode_per_token: 1ms, output_tokens: {min: 3, max: 3}}\n").unwrap();
    };
    let bin = || std::process::Command::new(env!("CARGO_BIN_EXE_llm-bench"));
    write(r#"fn setup() { throw "no credentials" }"#);
    let out = bin()
        .arg("run")
        .arg(dir.path().join("s.yaml"))
        .arg("--output-dir")
        .arg(dir.path().join("r1"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(107));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no credentials"));
    assert!(
        !dir.path().join("r1").join("benchmark_latest.json").exists(),
        "nothing is sent when setup fails"
    );

    write(r#"fn teardown(summary) { throw "saw " + summary.requests }"#);
    let out = bin()
        .arg("run")
        .arg(dir.path().join("s.yaml"))
        .arg("--output-dir")
        .arg(dir.path().join("r2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(107));
    assert!(String::from_utf8_lossy(&out.stderr).contains("saw 3"));
    assert!(
        dir.path().join("r2").join("benchmark_latest.json").exists(),
        "results are written before teardown"
    );

    write("fn after_response(ctx, res) { #{ ok: res.ok ");
    let out = bin()
        .arg("validate")
        .arg(dir.path().join("s.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(104));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hooks.script: "),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(start_paused = true)]
async fn ctx_names_the_closed_model_vu() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let script = r#"fn after_response(ctx, res) { #{ "vu 1 or 2": ctx.vu == 1 || ctx.vu == 2, "vu 2": ctx.vu == 2 } }"#;
    let out = run(
        scenario(dir.path(), script, ""),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let checks = &out.result.total.checks;
    assert_eq!(checks["vu 1 or 2"].rate, 1.0);
    assert!(
        checks["vu 2"].passes > 0 && checks["vu 2"].fails > 0,
        "both VUs sent requests: {checks:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn ctx_numbers_open_model_arrivals_within_max_vus() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hook.rhai"),
        r#"fn after_response(ctx, res) { #{ "vu within max_vus": ctx.vu >= 1 && ctx.vu <= 3, "vu 3": ctx.vu == 3 } }"#,
    )
    .unwrap();
    // About 25 ms per answer at 100 arrivals/s: 2 to 3 in flight, more when arrivals bunch up.
    std::fs::write(dir.path().join("s.yaml"), "name: open\ntarget: {model: m}\nprompts: [hi]\nhooks: {script: hook.rhai}\nscenarios:\n  s: {executor: constant-arrival-rate, rate: 100, duration: 2s, max_vus: 3, when_busy: wait, arrivals: poisson}\n").unwrap();
    let loaded = llm_bench::load_file(&dir.path().join("s.yaml")).unwrap();
    let out = run(loaded, &options(dir.path(), Some(sim.url()))).await;
    let checks = &out.result.total.checks;
    assert_eq!(checks["vu within max_vus"].rate, 1.0, "{checks:?}");
    assert!(
        checks["vu 3"].passes > 0,
        "all three VUs served: {checks:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn custom_metrics_are_trends_that_thresholds_gate() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    // The simulator answers exactly 20 tokens; the script records that per request.
    let script = r#"fn after_response(ctx, res) { metric("answer_tokens", res.tokens); #{} }"#;
    let extra = "thresholds:\n  answer_tokens: [\"avg>19\", \"max<19\"]\n";
    let out = run(
        scenario(dir.path(), script, extra),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let tokens = &out.result.total.custom["answer_tokens"];
    // HDR keeps 3 significant digits, as for every trend: 20 reads back within 0.1 %.
    assert_eq!(tokens.count, 40);
    assert!(
        (tokens.min - 20.0).abs() < 0.02 && (tokens.max - 20.0).abs() < 0.02,
        "{tokens:?}"
    );
    let verdicts: Vec<(&str, bool)> = out
        .result
        .thresholds
        .iter()
        .map(|t| (t.expression.as_str(), t.passed))
        .collect();
    assert_eq!(verdicts, vec![("avg>19", true), ("max<19", false)]);
}

#[tokio::test(start_paused = true)]
async fn metrics_recorded_before_the_request_join_those_recorded_after() {
    let sim = start_sim(sim()).await;
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
        fn before_request(ctx) { metric("prompt_chars", ctx.prompt.len()); ctx }
        fn after_response(ctx, res) { metric("answer_tokens", res.tokens); #{} }
    "#;
    let out = run(
        scenario(
            dir.path(),
            script,
            "thresholds:\n  prompt_chars: [\"max<3\"]\n",
        ),
        &options(dir.path(), Some(sim.url())),
    )
    .await;
    let custom = &out.result.total.custom;
    assert_eq!(custom["prompt_chars"].count, 40, "one value per request");
    assert_eq!(custom["prompt_chars"].max, 2.0, "\"hi\" is two characters");
    assert_eq!(custom["answer_tokens"].count, 40);
    assert!(out.result.thresholds[0].passed);
}

#[test]
fn a_threshold_on_a_metric_the_script_never_records_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("hook.rhai"),
        r#"fn after_response(ctx, res) { metric("answer_tokens", 1); #{} }"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("s.yaml"), "name: h\ntarget: {model: m}\nprompts: [hi]\nhooks: {script: hook.rhai}\nscenarios:\n  s: {executor: constant-vus, vus: 1, iterations: 1}\nthresholds:\n  answer_wrds: [\"avg>1\"]\n").unwrap();
    let err = llm_bench::load_file(&dir.path().join("s.yaml")).unwrap_err();
    let llm_bench::LoadError::Invalid { problems, .. } = err else {
        panic!()
    };
    assert!(
        problems[0]
            .to_string()
            .contains("thresholds.answer_wrds: unknown metric \"answer_wrds\""),
        "{problems:?}"
    );
}
