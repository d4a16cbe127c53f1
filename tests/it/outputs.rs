//! What the outputs guarantee (issue 12): every file is written whole or not at all and a failed
//! write is exit 1 with the table already shown; SIGTERM and SIGHUP stop a run like Ctrl-C and a
//! second signal cuts the grace short; two runs never share file names; the raw log reaches the
//! disk while the run goes on.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::common::{bin, options, run, scenario};

const SMALL: &str = "name: small\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1, 2], requests_per_level: 4}\nsimulator: {parallel: 2, decode_per_token: 1ms, load_time: 0s, output_tokens: {min: 5, max: 5}}\n";

/// Requests of 10,000 tokens at 5 ms each: nothing finishes within a test's lifetime.
const ENDLESS: &str = "name: endless\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [2], requests_per_level: 100000}\nsimulator: {parallel: 2, decode_per_token: 5ms, load_time: 0s, output_tokens: {min: 10000, max: 10000}}\n";

/// Requests of 10 tokens: many finish every second.
const STEADY: &str = "name: steady\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [2], requests_per_level: 100000}\nsimulator: {parallel: 2, decode_per_token: 5ms, load_time: 0s, output_tokens: {min: 10, max: 10}}\n";

/// `llm-bench run s.yaml FLAGS` in `dir` with files limited to `kib` KiB; SIGXFSZ is ignored,
/// so a write past the limit fails with EFBIG as on a full disk instead of killing the process.
fn run_with_file_limit(dir: &Path, kib: u32, flags: &str) -> Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {kib}; exec {} run s.yaml {flags}",
            env!("CARGO_BIN_EXE_llm-bench")
        ))
        .current_dir(dir)
        .output()
        .unwrap()
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn a_write_that_fails_is_exit_1_and_leaves_the_previous_result_intact() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), SMALL).unwrap();
    let first = bin()
        .args(["run", "s.yaml", "-q"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(first.status.code(), Some(0));
    let results = dir.path().join("results");
    let latest = std::fs::read(results.join("benchmark_latest.json")).unwrap();
    let before = json_files(&results);
    // A 16 KiB file-size limit (SIGXFSZ ignored, so writes fail with EFBIG): the result, some
    // 40 KiB, cannot be written.
    let second = run_with_file_limit(dir.path(), 16, "-q");
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: cannot write"), "{stderr}");
    assert!(
        stderr.contains("File too large"),
        "the OS's words: {stderr}"
    );
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("e2e p50"),
        "the table is shown before the files are written"
    );
    assert_eq!(
        std::fs::read(results.join("benchmark_latest.json")).unwrap(),
        latest,
        "the previous latest result is intact"
    );
    assert_eq!(
        json_files(&results),
        before,
        "no new, partial or temporary file is left"
    );
}

#[test]
fn an_unwritable_output_folder_is_found_before_anything_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), ENDLESS).unwrap();
    // /proc/self exists, but no file can be created in it, not even by root (CI runs as root,
    // which ignores permission bits). Found after the whole run, this would take forever.
    let out = bin()
        .args(["run", "s.yaml", "-q", "--output-dir", "/proc/self"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: cannot write /proc/self"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("e2e p50"),
        "nothing ran"
    );
}

fn start(dir: &Path, yaml: &str) -> Child {
    std::fs::write(dir.join("s.yaml"), yaml).unwrap();
    bin()
        .args(["run", "s.yaml", "--raw", "-q"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the simulator has had `requests` requests in flight for a while (the raw log or
/// the process says so), at most 30 s.
fn wait_for_raw_log(dir: &Path, bytes: u64) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let grown = std::fs::read_dir(dir.join("results"))
            .ok()
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| {
                e.path().to_string_lossy().ends_with(".requests.jsonl")
                    && e.metadata().map(|m| m.len() >= bytes).unwrap_or(false)
            });
        if grown {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the raw log never reached {bytes} bytes");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn latest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("results/benchmark_latest.json")).unwrap())
        .unwrap()
}

fn finished(child: Child) -> Output {
    child.wait_with_output().unwrap()
}

#[test]
fn sigterm_stops_the_run_like_ctrl_c_and_the_raw_log_is_on_disk_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    let child = start(dir.path(), STEADY);
    // The raw log reaches the disk during the run (flushed every second), not only at the end.
    wait_for_raw_log(dir.path(), 1);
    signal(&child, "TERM");
    let out = finished(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(105), "{stderr}");
    assert!(stderr.contains("terminated (SIGTERM)"), "{stderr}");
    let result = latest(dir.path());
    assert_eq!(result["interrupted"], true);
    let requests = result["total"]["requests"].as_u64().unwrap();
    assert!(requests > 0, "finished requests are kept");
}

#[test]
fn a_second_sighup_cuts_the_grace_short_and_the_results_are_still_written() {
    let dir = tempfile::tempdir().unwrap();
    let child = start(dir.path(), ENDLESS);
    // Warm-up and the first requests are in flight once the simulator has answered a little.
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "HUP");
    std::thread::sleep(Duration::from_millis(100));
    let cut = Instant::now();
    signal(&child, "HUP");
    let out = finished(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(105), "{stderr}");
    assert!(
        stderr.contains("requests in flight are cut off"),
        "{stderr}"
    );
    // Without the second signal the requests in flight would have had 5 s.
    assert!(
        cut.elapsed() < Duration::from_secs(4),
        "{:?}",
        cut.elapsed()
    );
    let result = latest(dir.path());
    assert_eq!(result["interrupted"], true);
    assert_eq!(result["total"]["interrupted"], 2, "{}", result["total"]);
}

#[tokio::test(start_paused = true)]
async fn two_runs_at_once_write_separate_files() {
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), None);
    opts.raw = Some(Default::default());
    let (a, b) = tokio::join!(run(scenario(SMALL), &opts), run(scenario(SMALL), &opts));
    assert_ne!(a.result_path, b.result_path);
    assert_ne!(a.raw_path, b.raw_path);
    assert_ne!(a.report_path, b.report_path);
    for out in [&a, &b] {
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&out.result_path).unwrap()).unwrap();
        assert_eq!(written["total"]["requests"], 8);
        let raw = std::fs::read_to_string(out.raw_path.as_ref().unwrap()).unwrap();
        assert_eq!(
            raw.lines().count(),
            8,
            "each run's raw log holds only its own requests"
        );
    }
}

#[test]
fn a_raw_log_that_cannot_be_written_fails_the_run_after_everything_else_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // 2,000 quick requests: the raw log passes 128 KiB long before the result (~25 KiB) does.
    std::fs::write(
        dir.path().join("s.yaml"),
        "name: many\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [8], requests_per_level: 2000}\nsimulator: {parallel: 8, decode_per_token: 0s, prefill_per_token: 0s, load_time: 0s, output_tokens: {min: 2, max: 2}}\n",
    )
    .unwrap();
    let out = run_with_file_limit(dir.path(), 128, "-q --raw");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("warning: raw log stopped: File too large"),
        "{stderr}"
    );
    assert!(
        stderr.contains("error: cannot write results/many-") && stderr.contains(".requests.jsonl"),
        "{stderr}"
    );
    // The result itself was written whole.
    let latest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("results/benchmark_latest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(latest["total"]["requests"], 2000);
}
