//! The HTML report in a real browser: Debian's Chromium, headless, driven by playwright-core
//! through `tests/browser/check_report.cjs`. Ignored by a plain `cargo test`, which lists it as
//! ignored; `.ci/run` installs both, sets PLAYWRIGHT_CORE and runs it with `--ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;

use llm_bench::result::RunResult;

/// What these tests need, and why a plain `cargo test` ignores them.
const NEEDS: &str =
    "needs Debian's chromium and npm's playwright-core (PLAYWRIGHT_CORE); .ci/run runs it";

fn tools() -> (PathBuf, PathBuf) {
    let core = std::env::var_os("PLAYWRIGHT_CORE").map(PathBuf::from);
    let chromium = std::env::var_os("CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    match core {
        Some(core) if chromium.exists() => (core, chromium),
        _ => panic!("{NEEDS}"),
    }
}

fn check(html: &Path, screenshot: &Path, core: &Path, chromium: &Path) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/check_report.cjs");
    let out = Command::new("node")
        .arg(script)
        .arg(html)
        .arg(screenshot)
        .env("PLAYWRIGHT_CORE", core)
        .env("CHROMIUM", chromium)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "browser check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fixture_with_probe() -> RunResult {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sim-result.json"),
    )
    .unwrap();
    let mut result: RunResult = serde_json::from_str(&text).unwrap();
    result.scenario.name = "<script>window.__xss='name';document.title='pwned'</script>".into();
    result.scenario.description =
        Some("\"><img src=x onerror=\"window.__xss='description'\">".into());
    result.scenarios[0].name = "<svg onload=\"window.__xss='scenario'\">".into();
    result
}

#[test]
#[ignore = "needs chromium and playwright-core (PLAYWRIGHT_CORE); .ci/run runs it"]
fn the_report_loads_offline_without_errors_draws_every_chart_and_keeps_probes_inert() {
    let (core, chromium) = tools();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    std::fs::write(
        &html,
        llm_bench::report::render_html(&fixture_with_probe(), &Default::default()).unwrap(),
    )
    .unwrap();
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("report.png");
    let report = check(&html, &screenshot, &core, &chromium);

    assert_eq!(
        report["errors"],
        serde_json::json!([]),
        "console or page errors"
    );
    assert_eq!(
        report["requests"],
        serde_json::json!([]),
        "the report made network requests"
    );
    let probe = &report["probe"];
    assert_eq!(
        probe["xss"],
        serde_json::Value::Null,
        "an XSS probe ran: {probe}"
    );
    // The probe shows as the literal text it is; had it run, the title would be "pwned".
    assert_eq!(
        probe["title"],
        "llm-bench: <script>window.__xss='name';document.title='pwned'</script>"
    );
    assert_eq!(probe["scripts"], 0);
    let charts = report["charts"].as_array().unwrap();
    // Sweep: TTFT, e2e latency, throughput, requests/s, TTFT breakdown; run: spectrum, load,
    // tokens, TTFT, errors (the fixture predates the ITL spectrum).
    assert_eq!(charts.len(), 10, "{charts:?}");
    for chart in charts {
        assert!(
            chart["drawn"].as_u64().unwrap() > 0,
            "a chart drew nothing: {chart}"
        );
        assert!(
            chart["width"].as_f64().unwrap() > 300.0,
            "a chart is not laid out: {chart}"
        );
    }
    assert!(
        std::fs::metadata(&screenshot).unwrap().len() > 50_000,
        "screenshot kept at {}",
        screenshot.display()
    );
}

/// The checker itself must see what it is looking for, or the test above proves nothing.
#[test]
#[ignore = "needs chromium and playwright-core (PLAYWRIGHT_CORE); .ci/run runs it"]
fn the_checker_sees_requests_errors_and_scripts() {
    let (core, chromium) = tools();
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("bad.html");
    std::fs::write(&html, "<html><body><img src=\"http://127.0.0.1:9/x.png\"><script>window.__xss='ran'; throw new Error('boom')</script></body></html>").unwrap();
    let report = check(&html, &dir.path().join("bad.png"), &core, &chromium);
    assert_eq!(report["probe"]["xss"], "ran");
    assert!(report["requests"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().contains("127.0.0.1:9")));
    assert!(report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e.as_str().unwrap().contains("boom")));
}

/// A capacity search's charts, and the comparison page, in the browser too.
#[test]
#[ignore = "needs chromium and playwright-core (PLAYWRIGHT_CORE); .ci/run runs it"]
fn capacity_search_and_comparison_pages_draw_every_chart() {
    let (core, chromium) = tools();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("search.yaml"),
        "name: search\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  find: {executor: capacity-search, mode: concurrency, start: 1, max: 8, step_duration: 1s}\n  rates: {executor: rate-levels, rates: [5, 10], duration: 1s, max_vus: 20}\nthresholds: {ttft: [\"p(95)<30ms\"]}\nsimulator: {parallel: 2, decode_per_token: 2ms, prefill_per_token: 0s, load_time: 0s, first_token_delay: 5ms}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_llm-bench"))
        .args(["run", "search.yaml", "-q", "--output-dir", "r"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = check(
        &dir.path().join("r/report_latest.html"),
        &dir.path().join("s.png"),
        &core,
        &chromium,
    );
    assert_eq!(report["errors"], serde_json::json!([]));
    let charts = report["charts"].as_array().unwrap();
    // The rate sweep's four, the two spectra, load, tokens, TTFT, offered vs sent and schedule
    // lag over time, and the search's two.
    for chart in charts {
        assert!(
            chart["drawn"].as_u64().unwrap() > 0,
            "a chart drew nothing: {chart}"
        );
    }
    let titles: Vec<&str> = charts.iter().filter_map(|c| c["title"].as_str()).collect();
    for wanted in [
        "rates: e2e latency vs offered rate",
        "rates: TTFT vs offered rate",
        "Inter-token latency by percentile",
        "TTFT p50 and p95 over time (requests completed each second)",
        "Open model: offered vs sent over time",
        "Open model: schedule lag p95 over time",
        "find: VUs and requests/s per step",
        "find: thresholds per step (failed steps marked)",
    ] {
        assert!(titles.contains(&wanted), "{wanted} missing from {titles:?}");
    }
    let compare = Command::new(env!("CARGO_BIN_EXE_llm-bench"))
        .args([
            "compare",
            "r/benchmark_latest.json",
            "r/benchmark_latest.json",
            "--format",
            "html",
            "--out",
            "c.html",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        compare.status.success(),
        "{}",
        String::from_utf8_lossy(&compare.stderr)
    );
    let page = check(
        &dir.path().join("c.html"),
        &dir.path().join("c.png"),
        &core,
        &chromium,
    );
    assert_eq!(page["errors"], serde_json::json!([]));
    assert_eq!(
        page["requests"],
        serde_json::json!([]),
        "the comparison made network requests"
    );
    let charts = page["charts"].as_array().unwrap();
    assert!(!charts.is_empty());
    for chart in charts {
        assert!(chart["drawn"].as_u64().unwrap() > 0, "{chart}");
    }
}
