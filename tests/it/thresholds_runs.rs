//! Thresholds as gates, against the simulator: pass and fail, tagged sub-metrics, the `slo:`
//! sugar, abort_on_fail, and the CI outputs (summary.md, junit.xml).

use std::time::Duration;

use crate::common::{options, run, scenario, start_sim};
use llm_bench::duration::HumanDuration;
use llm_bench::sim::{OutputTokens, SimConfig};
use llm_bench::Status;

/// One slot, 10 ms per token, 11 tokens: service ≈ 103.5 ms; TTFT p50 at level c ≈ (c − 1) × 103.5.
fn one_slot() -> SimConfig {
    SimConfig {
        parallel: 1,
        prefill_per_token: HumanDuration(Duration::from_micros(500)),
        decode_per_token: HumanDuration(Duration::from_millis(10)),
        load_time: HumanDuration(Duration::ZERO),
        output_tokens: OutputTokens { min: 11, max: 11 },
        ..SimConfig::default()
    }
}

fn sweep(thresholds: &str) -> String {
    format!("name: gate\ntarget: {{model: m}}\nprompts: [Say something about queues.]\nscenarios:\n  sweep: {{executor: concurrency-levels, levels: [1, 4], requests_per_level: 20}}\n{thresholds}")
}

#[tokio::test(start_paused = true)]
async fn passing_and_failing_thresholds_set_the_status() {
    let sim = start_sim(one_slot()).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), Some(sim.url()));
    let pass = run(
        scenario(&sweep(
            "thresholds:\n  ttft: [\"p(95)<1s\"]\n  errors: [\"rate<0.01\"]\n",
        )),
        &opts,
    )
    .await;
    assert_eq!(pass.status(), Status::Success);
    assert!(pass
        .result
        .thresholds
        .iter()
        .all(|t| t.passed && !t.no_data));
    let fail = run(
        scenario(&sweep(
            "thresholds:\n  ttft: [\"p(95)<100ms\", \"p(95)<1s\"]\n",
        )),
        &opts,
    )
    .await;
    assert_eq!(fail.status(), Status::ThresholdsFailed);
    let verdicts: Vec<_> = fail
        .result
        .thresholds
        .iter()
        .map(|t| (t.expression.as_str(), t.passed))
        .collect();
    assert_eq!(verdicts, vec![("p(95)<100ms", false), ("p(95)<1s", true)]);
    // The verdict is also in the file on disk.
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&fail.result_path).unwrap()).unwrap();
    assert_eq!(saved["thresholds"][0]["passed"], false);
}

#[tokio::test(start_paused = true)]
async fn tagged_thresholds_measure_only_their_level() {
    let sim = start_sim(one_slot()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = sweep("thresholds:\n  \"ttft{level:1}\": [\"p(95)<100ms\"]\n  \"ttft{level:4}\": [\"p(95)<100ms\"]\n  \"requests{scenario:sweep,level:4}\": [\"count==20\"]\n");
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let groups = &out.result.scenarios[0].groups;
    let t = &out.result.thresholds;
    assert_eq!(t[0].metric, "requests{scenario:sweep,level:4}");
    assert!(t[0].passed);
    assert_eq!((t[1].metric.as_str(), t[1].passed), ("ttft{level:1}", true));
    assert_eq!(
        (t[2].metric.as_str(), t[2].passed),
        ("ttft{level:4}", false)
    );
    // The measured value is the level's own p95, not the run's.
    assert_eq!(
        t[1].observed,
        Some(groups[0].summary.ttft_ms.as_ref().unwrap().p95)
    );
    assert_eq!(
        t[2].observed,
        Some(groups[1].summary.ttft_ms.as_ref().unwrap().p95)
    );
}

#[tokio::test(start_paused = true)]
async fn the_seed_slo_section_gates_like_the_equivalent_thresholds() {
    let sim = start_sim(one_slot()).await;
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path(), Some(sim.url()));
    // e2e p95 at level 4 is ~414 ms; throughput is ~106 tok/s.
    let sugar = run(
        scenario(&sweep(
            "slo: {p95_latency_ms: 300, p99_latency_ms: 60000, min_throughput_tps: 2}\n",
        )),
        &opts,
    )
    .await;
    let explicit = run(scenario(&sweep("thresholds:\n  e2e_latency: [\"p(95)<300\", \"p(99)<60000\"]\n  output_tokens_per_second: [\"value>=2\"]\n")), &opts).await;
    assert_eq!(sugar.status(), Status::ThresholdsFailed);
    assert_eq!(explicit.status(), Status::ThresholdsFailed);
    let verdicts = |r: &llm_bench::RunOutcome| {
        r.result
            .thresholds
            .iter()
            .map(|t| (t.metric.clone(), t.expression.clone(), t.passed, t.observed))
            .collect::<Vec<_>>()
    };
    assert_eq!(verdicts(&sugar), verdicts(&explicit));
    assert_eq!(
        sugar.result.thresholds[0].from_slo.as_deref(),
        Some("slo.p95_latency_ms")
    );
}

#[tokio::test(start_paused = true)]
async fn abort_on_fail_stops_a_long_run_early_and_keeps_its_results() {
    let sim = start_sim(one_slot()).await;
    let dir = tempfile::tempdir().unwrap();
    // 8 users on one slot: TTFT ≈ 725 ms from the first seconds; 10,000 requests would take ~17 min.
    let yaml = "name: abort\ntarget: {model: m}\nprompts: [Say something about queues.]\nscenarios:\n  long: {executor: concurrency-levels, levels: [8], requests_per_level: 10000}\nthresholds:\n  ttft:\n    - {threshold: \"p(95)<200ms\", abort_on_fail: true, delay_abort_eval: 10s}\n  errors: [\"rate<0.01\"]\n";
    let out = run(scenario(yaml), &options(dir.path(), Some(sim.url()))).await;
    assert_eq!(out.status(), Status::ThresholdsFailed);
    assert_eq!(
        out.result.aborted_by_threshold.as_deref(),
        Some("ttft p(95)<200ms")
    );
    assert!(!out.result.interrupted, "a threshold abort is not a Ctrl-C");
    let t = &out.result.total;
    // Evaluated every 2 s, aborting at the first check past 10 s: about 10 s of requests at 9.7/s.
    assert!(
        t.requests >= 90 && t.requests < 150,
        "{} requests",
        t.requests
    );
    assert!(
        out.result.duration_secs < 20.0,
        "{}",
        out.result.duration_secs
    );
    assert!(out.result_path.exists());
}

#[tokio::test(start_paused = true)]
async fn ci_outputs_render_thresholds_and_parse_as_junit() {
    let sim = start_sim(one_slot()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = sweep("thresholds:\n  ttft: [\"p(95)<100ms\"]\n  e2e_latency: [\"p(99)<5s\"]\n  checks: [\"rate>0.9\"]\n");
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let step = dir.path().join("step-summary.md");
    std::fs::write(&step, "earlier step\n").unwrap();
    llm_bench::report::ci::write_outputs(
        &out.result,
        &Default::default(),
        dir.path(),
        Some(step.as_os_str()),
    )
    .unwrap();

    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(md.contains("### Thresholds: 1 of 3 failed ❌"), "{md}");
    assert!(md.contains("| ❌ | `ttft` | `p(95)<100ms` |"), "{md}");
    assert!(
        md.contains("| ➖ | `checks` | `rate>0.9` | no data |"),
        "{md}"
    );
    assert!(md.contains("| sweep | level 4 | 20 | 0 |"), "{md}");
    let appended = std::fs::read_to_string(&step).unwrap();
    assert!(
        appended.starts_with("earlier step\n## llm-bench: gate"),
        "{appended}"
    );

    // Parse junit.xml with a real XML parser: one testcase per expression, one failure.
    use quick_xml::events::Event;
    let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut cases, mut failures, mut failure_message, mut suites, mut skipped) =
        (Vec::new(), 0, String::new(), 0, 0);
    loop {
        match reader.read_event().expect("well-formed XML") {
            Event::Start(e) | Event::Empty(e) => {
                let attr = |name: &[u8]| {
                    e.attributes()
                        .flatten()
                        .find(|a| a.key.as_ref() == name)
                        .map(|a| a.unescape_value().unwrap().into_owned())
                };
                match e.name().as_ref() {
                    b"testsuites" => assert_eq!(attr(b"failures").as_deref(), Some("1")),
                    b"testsuite" => {
                        suites += 1;
                        assert_eq!(attr(b"skipped").as_deref(), Some("1"));
                    }
                    b"testcase" => cases.push(attr(b"name").unwrap()),
                    b"skipped" => skipped += 1,
                    b"failure" => {
                        failures += 1;
                        failure_message = attr(b"message").unwrap();
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(suites, 1);
    assert_eq!(
        cases,
        vec![
            "checks rate>0.9",
            "e2e_latency p(99)<5s",
            "ttft p(95)<100ms"
        ]
    );
    assert_eq!(failures, 1);
    assert_eq!(
        skipped, 1,
        "the no-data threshold is a skipped test case, not a pass"
    );
    assert!(
        failure_message.starts_with("ttft p(95)<100ms: measured ")
            && failure_message.ends_with("limit < 100ms"),
        "{failure_message}"
    );
}

#[tokio::test(start_paused = true)]
async fn no_data_fails_when_asked_to() {
    let sim = start_sim(one_slot()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = sweep("thresholds:\n  checks: [\"rate>0.9\"]\n  e2e_latency: [\"p(99)<50s\"]\n");
    let mut opts = options(dir.path(), Some(sim.url()));
    let passes = run(scenario(&yaml), &opts).await;
    assert_eq!(passes.status(), Status::Success, "no data passes, as in k6");
    opts.no_data_fails = true;
    let fails = run(scenario(&yaml), &opts).await;
    assert_eq!(fails.status(), Status::ThresholdsFailed);
    let checks = &fails.result.thresholds[0];
    assert!(checks.no_data && !checks.passed, "{checks:?}");
    assert!(
        fails.result.thresholds[1].passed,
        "thresholds with data are unaffected"
    );
}
