//! What only the process shows: exit codes, stderr, signals, files written from a fresh
//! directory. Runs the real binary.

use std::path::Path;

use crate::common::bin;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(path)
        .display()
        .to_string()
}

const BROKEN: &str = "\
name: broken
target:
  backend: ollama
  timeout: 10 sec
  temprature: 0.2
prompts:
  - hello
scenarios:
  sweep:
    executor: concurrency-levels
    levels: [1, -5, 10]
    requests_per_level: many
";

/// Runs `validate` on `text` written to a file `name`, which must fail with 104; returns the
/// folder (kept alive), the file's path and stderr.
fn invalid(name: &str, text: &str) -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(name);
    std::fs::write(&file, text).unwrap();
    let out = bin().arg("validate").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(104));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (dir, file.display().to_string(), stderr)
}

#[test]
fn validate_lists_every_problem_with_its_line_and_exits_104() {
    let (_dir, f, stderr) = invalid("broken.yaml", BROKEN);
    for expected in [
        format!("{f}:2:1: target: missing required field `model`"),
        format!("{f}:4:3: target.timeout: invalid duration \"10 sec\""),
        format!("{f}:5:3: target.temprature: unknown field `temprature`"),
        format!("{f}:11:17: scenarios.sweep.levels[1]: -5 is less than the minimum of 1"),
        format!(
            "{f}:12:5: scenarios.sweep.requests_per_level: \"many\" is not of type \"integer\""
        ),
    ] {
        assert!(
            stderr.contains(&expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("invalid scenario (5 problem(s))"),
        "{stderr}"
    );
}

/// Schema problems and semantic ones (which need typed values) in one file.
const MIXED: &str = "\
name: mixed
target:
  model: m
  temprature: 0.2
prompts: [hello]
scenarios:
  soak:
    executor: constant-vus
    vus: 2
    duration: 0s
  sweep:
    executor: concurrency-levels
    levels: [1, -5]
    requests_per_level: 3
  spell:
    executor: constant-vus
    vus: 1
    duration: 10 sec
  open:
    executor: constant-arrival-rate
    rate: 5
    duration: 10s
    burstiness: 2
thresholds:
  ttft: [\"p(95)<fast\"]
";

#[test]
fn validate_lists_schema_and_semantic_problems_together() {
    let (_dir, f, stderr) = invalid("mixed.yaml", MIXED);
    let listed: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&f)).collect();
    assert_eq!(
        listed,
        [
            format!("{f}:4:3: target.temprature: unknown field `temprature`"),
            format!("{f}:10:5: scenarios.soak.duration: must be longer than 0s"),
            format!("{f}:13:17: scenarios.sweep.levels[1]: -5 is less than the minimum of 1"),
            format!("{f}:18:5: scenarios.spell.duration: invalid duration \"10 sec\": unknown unit, use us, ms, s, m or h (examples: 500ms, 30s, 2m, 1m30s)"),
            format!("{f}:23:5: scenarios.open.burstiness: applies to `arrivals: gamma` only"),
            format!("{f}:25:10: thresholds.ttft[0]: \"fast\" is not a number (units: ms, s) in \"p(95)<fast\""),
        ],
        "every problem once, and nothing about the parts the schema rejected (such as \
         `spell` lacking a duration):\n{stderr}"
    );
}

#[test]
fn run_refuses_an_invalid_scenario_before_sending_anything() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, BROKEN).unwrap();
    let out = bin()
        .arg("run")
        .arg(&file)
        .arg("--output-dir")
        .arg(dir.path().join("r"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(104));
    assert!(
        !dir.path().join("r").exists(),
        "results written for an invalid scenario"
    );
}

#[test]
fn every_shipped_scenario_is_valid() {
    let mut files: Vec<_> = std::fs::read_dir(repo("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4);
    let out = bin().arg("validate").args(&files).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in &files {
        let head = std::fs::read_to_string(f).unwrap();
        assert!(
            head.starts_with("# yaml-language-server: $schema=../schemas/scenario.schema.json"),
            "{} lacks the schema line",
            f.display()
        );
    }
}

#[test]
fn missing_file_and_bad_flags_are_usage_errors() {
    let out = bin().args(["run", "no/such/file.yaml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read scenario no/such/file.yaml"));
    let out = bin().args(["run", "--concurrency", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Exit codes follow the cause: 2 for what the command line asks that cannot be, 1 for a file
/// that reads but cannot be used (tests/it/hardening.rs and compare_runs.rs plant those).
#[test]
fn a_gate_or_shard_the_command_line_cannot_have_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("r.json");
    std::fs::write(&fake, "{}").unwrap();
    let fake = fake.to_str().unwrap();
    for (flags, says) in [
        (
            &["--fail-on-regression", "lots"][..],
            "--fail-on-regression \"lots\"",
        ),
        (
            &["--fail-on-regression", "5000%"][..],
            "between 0% and 1000%",
        ),
        (
            &["--fail-on-regression", "10%", "--regression-on", "nope:p95"][..],
            "unknown metric",
        ),
        (
            &["--fail-on-regression", "10%", "--regression-on", "ttft:p42"][..],
            "unknown percentile \"p42\"",
        ),
    ] {
        let out = bin()
            .args(["compare", fake, fake])
            .args(flags)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
    let scenario = dir.path().join("search.yaml");
    std::fs::write(
        &scenario,
        "name: s\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  find: {executor: capacity-search, mode: concurrency, start: 1, max: 4, step_duration: 1s}\nthresholds: {ttft: [\"p(95)<30ms\"]}\n",
    )
    .unwrap();
    let out = bin()
        .arg("run")
        .arg(&scenario)
        .args(["--shard", "0/2", "--output-dir"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot be split into shards"), "{stderr}");
}

#[test]
fn run_without_arguments_benchmarks_the_built_in_quickstart_from_any_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin().arg("run").current_dir(dir.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "level 1",
        "level 8",
        "ttft p95",
        "out tok/s",
        "results: results/quickstart-",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} missing from:\n{stdout}"
        );
    }
    let latest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("results/benchmark_latest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(latest["scenario"]["source"], "<built-in quickstart>");
    assert_eq!(latest["total"]["requests"], 64);
    assert_eq!(latest["warmup"]["requests"], 2);
}

#[test]
fn ctrl_c_stops_the_run_writes_partial_results_and_exits_105() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("long.yaml");
    std::fs::write(&file, "name: long\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [2], requests_per_level: 100000}\nsimulator: {parallel: 2, decode_per_token: 5ms, load_time: 0s, output_tokens: {min: 10, max: 10}}\n").unwrap();
    let child = bin()
        .arg("run")
        .arg(&file)
        .arg("--raw")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until requests flow (the raw log grows), then interrupt.
    let started = Instant::now();
    let results = dir.path().join("results");
    loop {
        let grown = std::fs::read_dir(&results)
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.metadata().map(|m| m.len() > 4096).unwrap_or(false));
        if grown || started.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(105),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let latest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(results.join("benchmark_latest.json")).unwrap())
            .unwrap();
    assert_eq!(latest["interrupted"], true);
    let requests = latest["total"]["requests"].as_u64().unwrap();
    assert!(requests > 0 && requests < 100_000, "{requests}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("the run was interrupted: these results are partial"));
}

fn write_sim_scenario(dir: &Path, thresholds: &str) -> std::path::PathBuf {
    let file = dir.join("gate.yaml");
    std::fs::write(
        &file,
        format!("name: gate\ntarget: {{model: m}}\nprompts: [hi]\nscenarios:\n  s: {{executor: concurrency-levels, levels: [1, 2], requests_per_level: 6}}\nsimulator: {{parallel: 1, decode_per_token: 2ms, load_time: 0s, output_tokens: {{min: 5, max: 5}}}}\n{thresholds}"),
    )
    .unwrap();
    file
}

#[test]
fn thresholds_gate_the_exit_code_after_writing_every_output() {
    let dir = tempfile::tempdir().unwrap();
    let pass = write_sim_scenario(
        dir.path(),
        "thresholds:\n  errors: [\"rate<0.01\"]\n  ttft: [\"p(95)<10s\"]\n",
    );
    let out = bin()
        .arg("run")
        .arg(&pass)
        .args(["--ci", "--output-dir"])
        .arg(dir.path().join("pass"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("✓ errors rate<0.01"));

    let fail = write_sim_scenario(
        dir.path(),
        "thresholds:\n  \"e2e_latency{level:2}\": [\"p(95)<1ms\"]\n",
    );
    let results = dir.path().join("fail");
    let out = bin()
        .arg("run")
        .arg(&fail)
        .args(["--ci", "--output-dir"])
        .arg(&results)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(99),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("✗ e2e_latency{level:2} p(95)<1ms"),
        "{stdout}"
    );
    for file in ["benchmark_latest.json", "summary.md", "junit.xml"] {
        assert!(
            results.join(file).exists(),
            "{file} not written on a failed gate"
        );
    }
}

#[test]
fn a_bad_threshold_is_a_scenario_error_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = write_sim_scenario(
        dir.path(),
        "thresholds:\n  ttft: [\"p(95)<500ms\"]\n  ttfb: [\"p(95)<1s\"]\n  errors: [\"avg<0.1\"]\n",
    );
    let out = bin().arg("run").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(104));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let f = file.display();
    assert!(
        stderr.contains(&format!(
            "{f}:9:3: thresholds.ttfb: unknown metric \"ttfb\"; valid metrics: ttft,"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{f}:10:12: thresholds.errors[0]: avg does not apply to this metric; use rate, count"
        )),
        "{stderr}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_command_quietly() {
    // The pipe's read end is closed before anything is written (`llm-bench schema | head -0`):
    // every write fails with EPIPE, which once made `print!` panic with exit 101.
    let (reader, writer) = std::os::unix::net::UnixStream::pair().unwrap();
    drop(reader);
    let out = bin()
        .args(["schema", "--result"])
        .stdout(std::os::fd::OwnedFd::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_error_names_its_cause() {
    let out = bin()
        .args(["report", "/nonexistent/result.json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("error: cannot read /nonexistent/result.json: No such file"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("r.json");
    std::fs::write(&bad, "{}").unwrap();
    let out = bin().args(["report"]).arg(&bad).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains("is not an llm-bench result: missing field"),
        "the serde cause is printed: {stderr}"
    );
}

#[test]
fn a_url_that_is_not_one_is_refused_before_anything_is_sent() {
    let (_dir, path, stderr) = invalid(
        "url.yaml",
        "name: u\ntarget:\n  model: m\n  url: ${TARGET_URL}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 1}\n",
    );
    // Interpolated first: an unset variable is said as such, once, at its line.
    assert!(
        stderr.contains(&format!(
            "{path}:4:3: target.url: environment variable TARGET_URL is not set"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("(1 problem(s))"), "{stderr}");
    // Set, the variable is the URL; a URL that is not one is still refused before sending.
    let validate = |value: &str| {
        bin()
            .arg("validate")
            .arg(&path)
            .env("TARGET_URL", value)
            .output()
            .unwrap()
    };
    let out = validate("gpu-box:11434");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("target.url: \"gpu-box:11434\" is not an http:// or https:// URL"),
        "{stderr}"
    );
    assert_eq!(validate("http://gpu-box:11434").status.code(), Some(0));
    let out = bin()
        .args(["run", "--target-url", "not a url", "-q"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--target-url: \"not a url\""));
}

#[test]
fn a_run_whose_every_request_failed_cannot_pass_a_throughput_gate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("down.yaml");
    // Port 9 (discard) has no listener here: every request is refused.
    std::fs::write(&file, "name: down\ntarget: {model: m, url: \"http://127.0.0.1:9\"}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 3}\nthresholds:\n  output_tokens_per_second: [\"value>50\"]\n  ttft: [\"p(95)<2s\"]\n").unwrap();
    let out = bin()
        .arg("run")
        .arg(&file)
        .args(["-q", "--no-preflight"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(99), "{stdout}{stderr}");
    assert!(
        stderr.contains("warning: every request failed (3 of 3: refused 3)"),
        "{stderr}"
    );
    assert!(stdout.contains("warning: every request failed"), "{stdout}");
}

#[test]
fn a_threshold_an_override_leaves_without_data_is_a_scenario_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, "name: s\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1, 16], requests_per_level: 2}\nsimulator: {parallel: 4, decode_per_token: 1ms, load_time: 0s}\nthresholds:\n  \"ttft{level:16}\": [\"p(95)<1s\"]\n").unwrap();
    let run_with = |args: &[&str]| {
        bin()
            .arg("run")
            .arg(&file)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run_with(&["-c", "4", "-q"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(104), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:8:3: thresholds.ttft{{level:16}}: level:16 can never have data: the levels are 4 (after command-line overrides)", file.display())),
        "{stderr}"
    );
    assert!(!dir.path().join("results").exists(), "nothing ran");
    // The flags are checked by the schema as the file is: beyond its 100,000 VUs is an error
    // that names the flag, and a flag for a sweep the file does not have is a usage error.
    let out = run_with(&["-c", "200000", "-q"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(104), "{stderr}");
    assert!(
        stderr.contains("--concurrency 200000 (command line): scenarios.s.levels[0]:"),
        "{stderr}"
    );
    std::fs::write(
        &file,
        "name: s\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: constant-vus, vus: 1, iterations: 1}\n",
    )
    .unwrap();
    let out = run_with(&["--requests-per-level", "4", "-q"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains(
        "--requests-per-level 4 applies to concurrency-levels scenarios, and this file has none"
    ));
}

#[test]
fn sizes_and_durations_beyond_reason_are_scenario_errors_not_crashes() {
    let (_dir, path, stderr) = invalid(
        "huge.yaml",
        "name: h\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  open:\n    executor: constant-arrival-rate\n    rate: 1\n    duration: 1s\n    max_vus: 4294967295\n  later:\n    executor: constant-vus\n    vus: 1\n    duration: 1s\n    start_time: 4000000000000000h\n",
    );
    assert!(
        stderr.contains(&format!("{path}:9:5: scenarios.open.max_vus:")),
        "{stderr}"
    );
    assert!(stderr.contains("100000"), "{stderr}");
    // Inside a scenario (an enum tagged by `executor`), serde's path stops at the scenario.
    assert!(
        stderr.contains(&format!(
            "{path}:10:3: scenarios.later: invalid duration \"4000000000000000h\": longer than"
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn an_alias_bomb_is_a_scenario_error_at_its_line() {
    let mut text =
        String::from("name: bomb\nx0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..9 {
        let p = i - 1;
        text.push_str(&format!(
            "x{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let (_dir, path, stderr) = invalid("bomb.yaml", &text);
    assert!(
        stderr.contains(&format!("{path}:5:"))
            && stderr.contains("aliases expand to more than 10000 values"),
        "{stderr}"
    );
}

#[test]
fn a_server_that_is_down_stops_the_run_before_any_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("down.yaml");
    std::fs::write(&file, "name: down\ntarget: {model: m, url: \"http://127.0.0.1:9\"}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [4], requests_per_level: 1000}\n").unwrap();
    let out = bin()
        .arg("run")
        .arg(&file)
        .arg("-q")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: pre-flight check of http://127.0.0.1:9 failed: POST http://127.0.0.1:9/api/show: ")
            && stderr.contains("Connection refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--no-preflight skips this check"),
        "{stderr}"
    );
    assert!(!dir.path().join("results").exists(), "no load, no results");
}

#[test]
fn set_changes_any_field_typed_by_the_schema_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.yaml");
    std::fs::write(&file, "name: s\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 2}\nsimulator: {parallel: 2, decode_per_token: 1ms, load_time: 0s}\n").unwrap();
    let out = bin()
        .arg("run")
        .arg(&file)
        .args([
            "-q",
            "--set",
            "scenarios.s.requests_per_level=5",
            "--set",
            "target.options.temperature=0",
            "-c",
            "2",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let latest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("results/benchmark_latest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(latest["total"]["requests"], 5);
    assert_eq!(
        latest["scenario"]["overrides"],
        serde_json::json!([
            "--set scenarios.s.requests_per_level=5",
            "--set target.options.temperature=0",
            "--concurrency 2"
        ])
    );
    // Typed by the schema like a value written in the file; a malformed one is a usage error.
    let out = bin()
        .arg("run")
        .arg(&file)
        .args(["-q", "--set", "scenarios.s.requests_per_level=-1"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(104));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scenarios.s.requests_per_level"));
    let out = bin().args(["run", "--set", "name"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn several_scenarios_run_in_turn_and_end_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, model: &str, gate: &str| {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(&file, format!("name: {name}\ntarget: {{model: {model}}}\nprompts: [hi]\nscenarios:\n  s: {{executor: concurrency-levels, levels: [1], requests_per_level: 3}}\nsimulator: {{parallel: 1, decode_per_token: 2ms, load_time: 0s, output_tokens: {{min: 5, max: 5}}}}\nthresholds:\n  ttft: [\"{gate}\"]\n")).unwrap();
        file
    };
    let fast = write("fast", "small:1b", "p(95)<10s");
    let slow = write("strict", "big:70b", "p(95)<0.001");
    let out = bin()
        .arg("run")
        .args([&fast, &slow])
        .arg("-q")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(99), "one gate failed: {stdout}");
    let table = stdout
        .rsplit_once("\nscenario")
        .map(|(_, t)| t)
        .unwrap_or_default();
    assert!(
        table.contains("fast") && table.contains("small:1b") && table.contains("✓ 1 passed"),
        "{stdout}"
    );
    assert!(
        table.contains("strict") && table.contains("big:70b") && table.contains("✗ 1 of 1 failed"),
        "{stdout}"
    );
    let results = std::fs::read_dir(dir.path().join("results"))
        .unwrap()
        .filter(|e| {
            let name = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .into_owned();
            name.ends_with(".json") && name != "benchmark_latest.json"
        })
        .count();
    assert_eq!(results, 2);
    // One broken file stops everything before anything is sent, listing its problems.
    let broken = dir.path().join("broken.yaml");
    std::fs::write(&broken, "name: b\n").unwrap();
    let out = bin().arg("run").args([&fast, &broken]).output().unwrap();
    assert_eq!(out.status.code(), Some(104));
}

/// A run whose concurrency needs more open files than the hard limit allows is refused before
/// anything is sent, saying how many it needs and how to raise the limit.
#[test]
fn too_low_an_open_file_limit_is_named_before_any_request() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("wide.yaml"),
        "name: wide\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1, 500], requests_per_level: 500}\nsimulator: {parallel: 64}\n",
    )
    .unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n 200 && exec '{}' run wide.yaml -q --output-dir r",
            env!("CARGO_BIN_EXE_llm-bench")
        ))
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("holds up to 500 requests open at once and needs about 1064 open files, but the limit is 200"),
        "{stderr}"
    );
    assert!(!dir.path().join("r").exists(), "nothing was run");
}
