//! `compare`, `run --baseline`, `--shard`, `merge` and `check` through the binary, against
//! simulators on loopback whose speed is set exactly.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use llm_bench::duration::HumanDuration;
use llm_bench::sim::{OutputTokens, SimConfig};

use crate::common::{bin, start_sim};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn llm_bench(args: &[&str], dir: &Path) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || bin().args(args).current_dir(dir).output().unwrap())
        .await
        .unwrap()
}

/// `run s.yaml -q --target-url URL --output-dir OUT` and `extra`, in `dir`.
async fn run_scenario(dir: &Path, url: &str, out: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "run",
        "s.yaml",
        "-q",
        "--target-url",
        url,
        "--output-dir",
        out,
    ];
    args.extend_from_slice(extra);
    llm_bench(&args, dir).await
}

/// `run_scenario` for each `(url, out, extra)` at once, so that the runs compared share the
/// machine's load: one after the other, a busy moment in one reads as a regression.
async fn run_at_once(dir: &Path, runs: &[(&str, &str, &[&str])]) -> Vec<Output> {
    futures_util::future::join_all(
        runs.iter()
            .map(|&(url, out, extra)| run_scenario(dir, url, out, extra)),
    )
    .await
}

/// The group labelled `label` of scenario `name` in one shard's result, when the shard ran
/// it (a level with fewer VUs than shards is not in every shard).
fn shard_group<'a>(
    result: &'a serde_json::Value,
    name: &serde_json::Value,
    label: &serde_json::Value,
) -> Option<&'a serde_json::Value> {
    let scenario = result["scenarios"]
        .as_array()?
        .iter()
        .find(|s| &s["name"] == name)?;
    scenario["groups"]
        .as_array()?
        .iter()
        .find(|g| &g["label"] == label)
}

/// A server whose answers take a known time: `decode` per token, `tokens` tokens (a range
/// when `min < max`), everything in parallel.
fn sim(decode_ms: u64, tokens: (u32, u32), seed: u64) -> SimConfig {
    SimConfig {
        parallel: 256,
        decode_per_token: HumanDuration(Duration::from_millis(decode_ms)),
        prefill_per_token: HumanDuration(Duration::ZERO),
        load_time: HumanDuration(Duration::ZERO),
        first_token_delay: HumanDuration(Duration::from_millis(5)),
        output_tokens: OutputTokens {
            min: tokens.0,
            max: tokens.1,
        },
        seed,
        ..SimConfig::default()
    }
}

const SCENARIO: &str = "name: cmp\ntarget: {model: m, options: {temperature: 0}}\n\
    prompts: [one, two, three]\nscenarios:\n  sweep: {executor: concurrency-levels, levels: [4], requests_per_level: 40}\n\
    thresholds: {errors: [\"rate<0.01\"]}\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slower_decoding_is_called_a_regression_with_its_sign_and_gates_with_99() {
    let fast = start_sim(sim(2, (20, 20), 1)).await;
    let slow = start_sim(sim(5, (20, 20), 1)).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), SCENARIO).unwrap();
    let runs = [(&*fast.url(), "base", &[][..]), (&slow.url(), "new", &[])];
    for run in run_at_once(dir.path(), &runs).await {
        assert!(run.status.success(), "{}", text(&run));
    }
    let (base, new) = ("base/benchmark_latest.json", "new/benchmark_latest.json");
    let out = llm_bench(
        &[
            "compare",
            base,
            new,
            "--fail-on-regression",
            "10%",
            "--format",
            "json",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e2e = crate::common::compared_metric(&json, "e2e_latency");
    assert_eq!(e2e["verdict"], "regressed", "{e2e:#}");
    assert!(
        e2e["change"]["p95"].as_f64().unwrap() > 0.25,
        "45 ms against 105 ms on an idle machine, and well beyond 10% on a busy one: {e2e:#}"
    );
    assert!(e2e["prob_new_larger"].as_f64().unwrap() > 0.95, "{e2e:#}");
    assert!(
        e2e["p95_difference"]["low"].as_f64().unwrap() > 0.0,
        "{e2e:#}"
    );
    let regressions = json["regressions"].as_array().unwrap();
    assert!(
        regressions
            .iter()
            .any(|r| r.as_str().unwrap().contains("e2e_latency p95")),
        "{regressions:?}"
    );

    // The other way round it is an improvement, and the gate passes.
    // TTFT is the same 5 ms on both servers, so a busy machine may call its small difference
    // significant: the test asks about e2e and the gate, not about every verdict.
    let out = llm_bench(
        &[
            "compare",
            new,
            base,
            "--fail-on-regression",
            "10%",
            "--format",
            "json",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let e2e = crate::common::compared_metric(&json, "e2e_latency");
    assert_eq!(e2e["verdict"], "improved", "{e2e:#}");
    assert_eq!(json["regressions"], serde_json::json!([]), "{json:#}");

    // Run and compare in one step: the baseline is read first, the comparison written beside.
    let out = run_scenario(
        dir.path(),
        &slow.url(),
        "pr",
        &["--baseline", base, "--fail-on-regression", "10%"],
    )
    .await;
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    let md = std::fs::read_to_string(dir.path().join("pr/comparison.md")).unwrap();
    assert!(
        md.contains("❌ regression") && md.contains("**regressed**"),
        "{md}"
    );
    assert!(dir.path().join("pr/comparison.html").exists());
    let out = llm_bench(
        &["run", "s.yaml", "-q", "--baseline", "missing.json"],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        !dir.path().join("results").exists(),
        "nothing run without its baseline"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_server_with_other_seeds_is_not_a_regression() {
    // A first token late enough that a millisecond of scheduling noise is not 10% of TTFT.
    let server = |seed| SimConfig {
        first_token_delay: HumanDuration(Duration::from_millis(25)),
        ..sim(2, (10, 30), seed)
    };
    let a = start_sim(server(1)).await;
    let b = start_sim(server(2)).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), SCENARIO).unwrap();
    let runs = [
        (&*a.url(), "base", &["--set", "seed=1"][..]),
        (&b.url(), "new", &["--set", "seed=2"]),
    ];
    for run in run_at_once(dir.path(), &runs).await {
        assert!(run.status.success(), "{}", text(&run));
    }
    let out = llm_bench(
        &[
            "compare",
            "base/benchmark_latest.json",
            "new/benchmark_latest.json",
            "--fail-on-regression",
            "10%",
        ],
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("passed") && !text(&out).contains("regression:"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_merge_into_the_run_they_split_and_check_agrees_with_the_verdict() {
    let server = start_sim(sim(2, (20, 20), 1)).await;
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let scenario = "name: split\ntarget: {model: m}\nprompts: [one, two]\nscenarios:\n  sweep: {executor: concurrency-levels, levels: [2, 6], requests_per_level: 30}\n  soak: {executor: constant-vus, vus: 4, iterations: 25, start_time: 0s}\nthresholds:\n  errors: [\"rate<0.01\"]\n  \"e2e_latency{level:6}\": [\"p(95)<1ms\"]\n";
    std::fs::write(dir.path().join("s.yaml"), scenario).unwrap();
    let shards = 3;
    // The shards run at once, as separate machines would.
    let names: Vec<(String, String)> = (0..shards)
        .map(|i| (format!("shard{i}"), format!("{i}/{shards}")))
        .collect();
    let runs = names.iter().map(|(out, shard)| async {
        run_scenario(dir.path(), &url, out, &["--shard", shard]).await
    });
    for out in futures_util::future::join_all(runs).await {
        assert_eq!(
            out.status.code(),
            Some(99),
            "each shard fails the 1 ms gate: {}",
            text(&out)
        );
    }
    let whole = run_scenario(dir.path(), &url, "whole", &[]).await;
    assert_eq!(whole.status.code(), Some(99), "{}", text(&whole));

    let files: Vec<String> = (0..shards)
        .map(|i| format!("shard{i}/benchmark_latest.json"))
        .collect();
    let mut merge = vec!["merge"];
    merge.extend(files.iter().map(String::as_str));
    merge.extend(["-o", "merged.json"]);
    let out = llm_bench(&merge, dir.path()).await;
    assert_eq!(
        out.status.code(),
        Some(99),
        "the merged run fails its gate too: {}",
        text(&out)
    );

    let read = |p: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(dir.path().join(p)).unwrap()).unwrap()
    };
    let (merged, one) = (read("merged.json"), read("whole/benchmark_latest.json"));
    let shard_results: Vec<serde_json::Value> = files.iter().map(|f| read(f)).collect();
    assert_eq!(merged["shard"], serde_json::json!({"count": 3}));
    for (m, o) in merged["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .zip(one["scenarios"].as_array().unwrap())
    {
        for (mg, og) in m["groups"]
            .as_array()
            .unwrap()
            .iter()
            .zip(o["groups"].as_array().unwrap())
        {
            assert_eq!(mg["label"], og["label"]);
            assert_eq!(
                mg["requests"], og["requests"],
                "{} {}",
                m["name"], mg["label"]
            );
            assert_eq!(mg["output_tokens_total"], og["output_tokens_total"]);
            // The merged latencies are the shards' histograms added: timing-free properties
            // of that sum, since the whole run's own timings shift with the machine's load.
            let parts: Vec<&serde_json::Value> = shard_results
                .iter()
                .filter_map(|p| shard_group(p, &m["name"], &mg["label"]))
                .collect();
            assert!(
                !parts.is_empty(),
                "{} {} in no shard",
                m["name"],
                mg["label"]
            );
            let e2e =
                |g: &serde_json::Value, field: &str| g["e2e_latency_ms"][field].as_f64().unwrap();
            let fold = |field: &str, f: fn(f64, f64) -> f64| {
                parts.iter().map(|g| e2e(g, field)).reduce(f).unwrap()
            };
            let at = format!("{} {}", m["name"], mg["label"]);
            assert_eq!(e2e(mg, "max"), fold("max", f64::max), "{at}");
            assert_eq!(e2e(mg, "min"), fold("min", f64::min), "{at}");
            let p50 = e2e(mg, "p50");
            assert!(
                fold("p50", f64::min) <= p50 && p50 <= fold("p50", f64::max),
                "{at}: merged p50 {p50} outside the shards' p50s"
            );
            let count: f64 = parts.iter().map(|g| e2e(g, "count")).sum();
            let mean = parts
                .iter()
                .map(|g| e2e(g, "count") * e2e(g, "mean"))
                .sum::<f64>()
                / count;
            assert!(
                (e2e(mg, "mean") - mean).abs() < 1e-6 * mean,
                "{at}: mean {mean}"
            );
        }
    }
    assert_eq!(merged["total"]["requests"], one["total"]["requests"]);
    assert_eq!(merged["warmup"]["requests"], 0);

    // check re-evaluates from the histograms alone and agrees with each run's own verdict.
    for file in [
        "merged.json",
        "whole/benchmark_latest.json",
        "shard1/benchmark_latest.json",
    ] {
        let out = llm_bench(&["check", file], dir.path()).await;
        assert_eq!(out.status.code(), Some(99), "{file}: {}", text(&out));
        assert!(
            text(&out).contains("✗ e2e_latency{level:6} p(95)<1ms"),
            "{}",
            text(&out)
        );
        assert!(!text(&out).contains("differs"), "{file}: {}", text(&out));
    }

    // An incomplete or mixed set is refused, naming what is wrong.
    let out = llm_bench(&["merge", &files[0], &files[2], "-o", "x.json"], dir.path()).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("shard(s) 1 of 3 missing"),
        "{}",
        text(&out)
    );
    let out = llm_bench(
        &["merge", &files[0], &files[0], &files[1], "-o", "x.json"],
        dir.path(),
    )
    .await;
    assert!(text(&out).contains("given twice"), "{}", text(&out));
    let out = llm_bench(
        &[
            "merge",
            &files[0],
            "whole/benchmark_latest.json",
            "-o",
            "x.json",
        ],
        dir.path(),
    )
    .await;
    assert!(text(&out).contains("not a shard result"), "{}", text(&out));
    assert!(!dir.path().join("x.json").exists());
}

#[test]
fn a_format_1_result_compares_without_significance_and_cannot_be_checked() {
    let old = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sim-result.json");
    let out = bin().arg("compare").arg(&old).arg(&old).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("has no histograms (result format 1"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("no test"), "{}", text(&out));
    // A gate given it cannot judge, and fails.
    let out = bin()
        .arg("compare")
        .arg(&old)
        .arg(&old)
        .args(["--fail-on-regression", "10%"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));
    assert!(
        text(&out).contains("cannot judge:")
            && text(&out).contains("written before they were stored"),
        "{}",
        text(&out)
    );
    let out = bin().arg("check").arg(&old).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("has no histograms"), "{}", text(&out));
}
