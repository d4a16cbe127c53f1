//! A hostile user's inputs, through the binary: a regression gate that cannot judge, edited and
//! mismatched result files for `check` and `merge`, servers that answer endlessly, absurdly or
//! never, unbounded files, a file-size limit. Each must end in a clear error, never a pass, a
//! hang, a panic or unbounded memory (peak RSS is read from the kernel for the process itself).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use llm_bench::duration::HumanDuration;
use llm_bench::sim::{OutputTokens, SimConfig};
use serde_json::{json, Value};

use crate::common::{bin, start_sim};

/// Peak RSS allowed to any command given unbounded input.
const MAX_RSS_MIB: u64 = 100;

/// What a finished command left: its exit code (`None` when a signal ended it), its output,
/// its peak resident memory and how long it took.
struct Finished {
    code: Option<i32>,
    text: String,
    rss_mib: u64,
    took: Duration,
}

/// Runs `cmd` to its end (killed after `limit`), measuring the peak RSS of that process.
fn measured(mut cmd: Command, limit: Duration) -> Finished {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = Vec::new();
            let _ = r.read_to_end(&mut s);
            String::from_utf8_lossy(&s).into_owned()
        })
    };
    let out = read_all(Box::new(child.stdout.take().unwrap()));
    let err = read_all(Box::new(child.stderr.take().unwrap()));
    // Peak RSS is polled from /proc (VmHWM, the high-water mark of the process's own memory):
    // wait4's ru_maxrss would also count the pages the child shared with this large test
    // process before it exec'd.
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let mut peak_kib = 0;
        loop {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            // Reaped, or a zombie whose memory is released: the peak has been read.
            if status.is_empty() || status.contains("State:\tZ") {
                return peak_kib;
            }
            if let Some(kib) = status
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak_kib = peak_kib.max(kib);
            }
            if Instant::now() > deadline {
                // SAFETY: the child is ours and not yet reaped (`wait` below reaps it).
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let code = child.wait().unwrap().code();
    let took = started.elapsed();
    let peak_kib = watchdog.join().unwrap();
    Finished {
        code,
        text: format!("{}{}", out.join().unwrap(), err.join().unwrap()),
        rss_mib: peak_kib / 1024,
        took,
    }
}

fn llm_bench(dir: &Path, args: &[&str]) -> Finished {
    let mut cmd = bin();
    cmd.args(args).current_dir(dir);
    measured(cmd, Duration::from_secs(60))
}

/// [`measured`] off the async runtime, with a minute's limit.
async fn measured_async(cmd: Command) -> Finished {
    tokio::task::spawn_blocking(move || measured(cmd, Duration::from_secs(60)))
        .await
        .unwrap()
}

async fn llm_bench_async(dir: &Path, args: &[&str]) -> Finished {
    let mut cmd = bin();
    cmd.args(args).current_dir(dir);
    measured_async(cmd).await
}

fn sim(decode_ms: u64, seed: u64) -> SimConfig {
    SimConfig {
        parallel: 256,
        decode_per_token: HumanDuration(Duration::from_millis(decode_ms)),
        prefill_per_token: HumanDuration(Duration::ZERO),
        load_time: HumanDuration(Duration::ZERO),
        first_token_delay: HumanDuration(Duration::from_millis(2)),
        output_tokens: OutputTokens { min: 8, max: 8 },
        seed,
        ..SimConfig::default()
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

const SMALL: &str = "name: g\ntarget: {model: m}\nprompts: [one, two]\nscenarios:\n  sweep: {executor: concurrency-levels, levels: [2], requests_per_level: 30}\nthresholds:\n  errors: [\"rate<0.01\"]\n  ttft: [\"p(95)<10s\"]\n  checks: [\"rate>0.5\"]\n";

/// The shipped CI scenario, run as the shipped workflow runs it, fails its gate when decoding
/// is twice as slow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_ci_gate_fails_on_a_2x_slower_decode() {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/ci-tinyllama.yaml");
    let scenario = scenario.to_str().unwrap().to_string();
    let fast = start_sim(sim(2, 1)).await;
    let slow = start_sim(sim(4, 1)).await;
    let dir = tempfile::tempdir().unwrap();
    let (fast_url, slow_url) = (fast.url(), slow.url());
    let base = llm_bench_async(
        dir.path(),
        &[
            "run",
            &scenario,
            "-q",
            "--target-url",
            &fast_url,
            "--output-dir",
            "base",
        ],
    )
    .await;
    assert_eq!(base.code, Some(0), "{}", base.text);
    let new = llm_bench_async(
        dir.path(),
        &[
            "run",
            &scenario,
            "-q",
            "--target-url",
            &slow_url,
            "--output-dir",
            "new",
            "--baseline",
            "base/benchmark_latest.json",
            "--fail-on-regression",
            "10%",
        ],
    )
    .await;
    assert_eq!(new.code, Some(99), "{}", new.text);
    assert!(new.text.contains("regression: sweep level"), "{}", new.text);
    assert!(!new.text.contains("cannot judge"), "{}", new.text);
}

/// Every way a gate can end up comparing nothing fails it (exit 99) with the reason; the same
/// files unedited pass, so the failures are the edits'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gate_that_cannot_judge_fails() {
    let server = start_sim(sim(1, 1)).await;
    let url = server.url();
    let dir = scenario_dir(SMALL);
    for (out, n) in [("base", "30"), ("few", "10"), ("few2", "10")] {
        let set = format!("scenarios.sweep.requests_per_level={n}");
        let run = llm_bench_async(
            dir.path(),
            &[
                "run",
                "s.yaml",
                "-q",
                "--target-url",
                &url,
                "--output-dir",
                out,
                "--set",
                &set,
            ],
        )
        .await;
        assert_eq!(run.code, Some(0), "{}", run.text);
    }
    let base = dir.path().join("base/benchmark_latest.json");
    // The edits are made to a copy of the base: a second run would differ from it by the
    // machine's noise, and a busy moment on a 2 ms TTFT is a significant 10% regression.
    std::fs::create_dir(dir.path().join("new")).unwrap();
    std::fs::copy(&base, dir.path().join("new/benchmark_latest.json")).unwrap();
    let gate = |new: &str| {
        llm_bench(
            dir.path(),
            &[
                "compare",
                base.to_str().unwrap(),
                new,
                "--fail-on-regression",
                "10%",
            ],
        )
    };
    let passed = gate("new/benchmark_latest.json");
    assert_eq!(passed.code, Some(0), "{}", passed.text);
    assert!(passed.text.contains(": passed"), "{}", passed.text);

    // Too few requests on both sides.
    let few = llm_bench(
        dir.path(),
        &[
            "compare",
            "few/benchmark_latest.json",
            "few2/benchmark_latest.json",
            "--fail-on-regression",
            "10%",
        ],
    );
    assert_eq!(few.code, Some(99), "{}", few.text);
    assert!(
        few.text.contains("cannot judge: sweep level 2: ttft p95: 10 request(s) in the base and 10 in the new run, fewer than the 20"),
        "{}",
        few.text
    );

    let edited = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut v = read_json(&dir.path().join("new/benchmark_latest.json"));
        edit(&mut v);
        let path = dir.path().join(name);
        write_json(&path, &v);
        gate(path.to_str().unwrap())
    };
    let renamed = edited("renamed.json", &|v| {
        v["scenarios"][0]["name"] = json!("other");
        for g in v["aggregates"]["groups"].as_array_mut().unwrap() {
            g["scenario"] = json!("other");
        }
    });
    assert_eq!(renamed.code, Some(99), "{}", renamed.text);
    assert!(
        renamed
            .text
            .contains("cannot judge: no group is in both runs"),
        "{}",
        renamed.text
    );
    let no_groups = edited("no-groups.json", &|v| {
        v["aggregates"]["groups"] = json!([]);
    });
    assert_eq!(no_groups.code, Some(99), "{}", no_groups.text);
    assert!(
        no_groups.text.contains("cannot judge"),
        "{}",
        no_groups.text
    );
    let no_aggregates = edited("no-aggregates.json", &|v| {
        v.as_object_mut().unwrap().remove("aggregates");
    });
    assert_eq!(no_aggregates.code, Some(99), "{}", no_aggregates.text);
    assert!(
        no_aggregates
            .text
            .contains("result format 2 stores them, but its `aggregates` are missing"),
        "{}",
        no_aggregates.text
    );
    assert!(
        !no_aggregates
            .text
            .contains("written before they were stored"),
        "{}",
        no_aggregates.text
    );
    let no_watched = edited("no-watched.json", &|v| {
        for g in v["aggregates"]["groups"].as_array_mut().unwrap() {
            let trends = g["trends"].as_object_mut().unwrap();
            trends.remove("ttft");
            trends.remove("e2e_latency");
        }
    });
    assert_eq!(no_watched.code, Some(99), "{}", no_watched.text);
    assert!(
        no_watched.text.contains("cannot judge"),
        "{}",
        no_watched.text
    );

    // The values come from the histograms: a summary edited apart from them changes nothing.
    let inflated = edited("inflated.json", &|v| {
        for g in v["scenarios"][0]["groups"].as_array_mut().unwrap() {
            for q in ["p50", "p95", "p99", "mean"] {
                let x = g["e2e_latency_ms"][q].as_f64().unwrap();
                g["e2e_latency_ms"][q] = json!(x * 10.0);
            }
        }
    });
    assert_eq!(inflated.code, Some(0), "{}", inflated.text);
    let json_out = llm_bench(
        dir.path(),
        &[
            "compare",
            "new/benchmark_latest.json",
            "inflated.json",
            "--format",
            "json",
        ],
    );
    let c: Value = serde_json::from_str(&json_out.text).unwrap();
    let e2e = crate::common::compared_metric(&c, "e2e_latency");
    assert_eq!(e2e["change"]["p95"], json!(0.0), "{e2e:#}");
}

/// `check` refuses a threshold name `validate` refuses, fails a stored verdict its histograms
/// do not give, and honours `--no-data-fails`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_judges_an_edited_result_as_validate_and_the_run_would() {
    let server = start_sim(sim(1, 1)).await;
    let url = server.url();
    let dir = scenario_dir(SMALL);
    let run = llm_bench_async(
        dir.path(),
        &[
            "run",
            "s.yaml",
            "-q",
            "--target-url",
            &url,
            "--output-dir",
            "r",
        ],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}", run.text);
    let file = dir.path().join("r/benchmark_latest.json");
    let ok = llm_bench(dir.path(), &["check", file.to_str().unwrap()]);
    assert_eq!(ok.code, Some(0), "{}", ok.text);
    assert!(!ok.text.contains("differs"), "{}", ok.text);
    let strict = llm_bench(
        dir.path(),
        &["check", file.to_str().unwrap(), "--no-data-fails"],
    );
    assert_eq!(strict.code, Some(99), "checks has no data: {}", strict.text);

    let check_edited = |name: &str, edit: &dyn Fn(&mut Value)| {
        let mut v = read_json(&file);
        edit(&mut v);
        let path = dir.path().join(name);
        write_json(&path, &v);
        llm_bench(dir.path(), &["check", path.to_str().unwrap()])
    };
    let renamed = check_edited("renamed.json", &|v| {
        let t = v["scenario"]["definition"]["thresholds"]
            .as_object_mut()
            .unwrap();
        let limits = t.remove("ttft").unwrap();
        t.insert("ttft_latency".into(), limits);
    });
    assert_eq!(renamed.code, Some(104), "{}", renamed.text);
    assert!(renamed.text.contains("ttft_latency"), "{}", renamed.text);
    let emptied = check_edited("emptied.json", &|v| {
        v["aggregates"]["groups"] = json!([]);
    });
    assert_eq!(emptied.code, Some(99), "{}", emptied.text);
    assert!(
        emptied.text.contains("verdict differs: ttft p(95)<10s"),
        "{}",
        emptied.text
    );
    let no_verdict = check_edited("no-verdict.json", &|v| {
        v["thresholds"] = json!([]);
    });
    assert_eq!(no_verdict.code, Some(99), "{}", no_verdict.text);
    let flipped = check_edited("flipped.json", &|v| {
        v["thresholds"][0]["observed"] = json!(0.001);
    });
    assert_eq!(flipped.code, Some(99), "{}", flipped.text);
}

/// `merge` refuses shards that are not the slices of one run, counts no file can hold, and an
/// interrupted shard unless told; none of it panics or allocates without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_refuses_what_is_not_one_run() {
    let server = start_sim(sim(1, 1)).await;
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let scenario = "name: m\ntarget: {model: \"${LLMB_TEST_MODEL}\"}\nprompts: [one, two]\nscenarios:\n  sweep: {executor: concurrency-levels, levels: [2], requests_per_level: 10}\nthresholds:\n  errors: [\"rate<0.01\"]\n";
    std::fs::write(dir.path().join("s.yaml"), scenario).unwrap();
    for (out, shard, model) in [("a0", "0/2", "a"), ("a1", "1/2", "a"), ("b1", "1/2", "b")] {
        let mut cmd = bin();
        cmd.args(["run", "s.yaml", "-q", "--target-url", &url])
            .args(["--output-dir", out, "--shard", shard])
            .env("LLMB_TEST_MODEL", model)
            .current_dir(dir.path());
        let run = measured_async(cmd).await;
        assert_eq!(run.code, Some(0), "{}", run.text);
    }
    let merge = |a: &str, b: &str, extra: &[&str]| {
        let mut args = vec!["merge", a, b, "-o", "merged.json"];
        args.extend_from_slice(extra);
        llm_bench(dir.path(), &args)
    };
    let (a0, a1) = ("a0/benchmark_latest.json", "a1/benchmark_latest.json");
    let good = merge(a0, a1, &[]);
    assert_eq!(good.code, Some(0), "{}", good.text);
    std::fs::remove_file(dir.path().join("merged.json")).unwrap();
    let mixed = merge(a0, "b1/benchmark_latest.json", &[]);
    assert_eq!(mixed.code, Some(1), "{}", mixed.text);
    assert!(
        mixed.text.contains("shards of different targets"),
        "{}",
        mixed.text
    );

    let edited = |name: &str, from: &str, edit: &dyn Fn(&mut Value)| -> String {
        let mut v = read_json(&dir.path().join(from));
        edit(&mut v);
        write_json(&dir.path().join(name), &v);
        name.to_string()
    };
    let refused = |files: (&str, &str), extra: &[&str], why: &str| {
        let out = merge(files.0, files.1, extra);
        assert_eq!(out.code, Some(1), "{why}: {}", out.text);
        assert!(out.text.contains(why), "{why}: {}", out.text);
        assert!(out.rss_mib <= MAX_RSS_MIB, "{why}: {} MiB", out.rss_mib);
        assert!(!dir.path().join("merged.json").exists(), "{why}");
    };
    let zero = edited("zero.json", a1, &|v| v["shard"]["count"] = json!(0));
    refused((a0, &zero), &[], "expected 0 <= index < count");
    let beyond = edited("beyond.json", a1, &|v| v["shard"]["index"] = json!(5));
    refused((a0, &beyond), &[], "says it is shard 5/2");
    let huge0 = edited("huge0.json", a0, &|v| {
        v["shard"]["count"] = json!(4294967295u32)
    });
    let huge1 = edited("huge1.json", a1, &|v| {
        v["shard"]["count"] = json!(4294967295u32)
    });
    refused((&huge0, &huge1), &[], "count <= 4096");
    let old = edited("old.json", a1, &|v| v["format_version"] = json!(1));
    refused((a0, &old), &[], "result format 1");
    let loose = edited("loose.json", a1, &|v| {
        v["scenario"]["definition"]["thresholds"]["errors"] = json!(["rate<1"]);
    });
    refused((a0, &loose), &[], "different scenario definitions");
    let cut = edited("cut.json", a1, &|v| v["interrupted"] = json!(true));
    refused((a0, &cut), &[], "--allow-partial");
    let partial = merge(a0, &cut, &["--allow-partial"]);
    assert_eq!(partial.code, Some(0), "{}", partial.text);
    assert_eq!(
        read_json(&dir.path().join("merged.json"))["interrupted"],
        json!(true)
    );
    std::fs::remove_file(dir.path().join("merged.json")).unwrap();

    // Counts beyond what any run records: refused by name, never wrapped (2^64-1 twice is not
    // 7) and never a panic.
    let max0 = edited("max0.json", a0, &|v| {
        v["aggregates"]["groups"][0]["ok"] = json!(u64::MAX)
    });
    let max1 = edited("max1.json", a1, &|v| {
        v["aggregates"]["groups"][0]["ok"] = json!(u64::MAX)
    });
    refused((&max0, &max1), &[], "ok = 18446744073709551615 is beyond");
    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).unwrap();
    h.record_n(12_000, (1 << 63) - 1).unwrap();
    let mut bytes = Vec::new();
    use hdrhistogram::serialization::Serializer as _;
    hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(&h, &mut bytes)
        .unwrap();
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let buckets = edited("buckets.json", a1, &|v| {
        v["aggregates"]["groups"][0]["trends"]["ttft"] = json!(encoded);
    });
    refused((a0, &buckets), &[], "the count of ttft");
    for command in ["check", "report"] {
        let out = llm_bench(dir.path(), &[command, &buckets]);
        assert_ne!(out.code, Some(101), "{command} panicked: {}", out.text);
        assert!(!out.text.contains("panicked"), "{command}: {}", out.text);
    }
    let compared = llm_bench(dir.path(), &["compare", a1, &buckets]);
    assert_eq!(compared.code, Some(1), "{}", compared.text);
    assert!(
        compared.text.contains("the count of ttft"),
        "{}",
        compared.text
    );
}

/// What a hostile test server answers to one request.
#[derive(Clone)]
enum Reply {
    /// These bytes, then the connection closes.
    Whole(String),
    /// A 200 with a chunked body that never ends.
    Endless,
    /// A 200 that announces `n` bytes and sends zeros.
    Sized(u64),
    /// Nothing, ever.
    Hang,
}

fn ok_json(body: &str) -> Reply {
    Reply::Whole(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

fn status(code: u16, body: &str) -> Reply {
    Reply::Whole(format!(
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// A loopback server written here, with no HTTP library: `answer(method, path)` decides.
fn hostile(answer: impl Fn(&str, &str) -> Reply + Send + Sync + 'static) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || serve(stream, &*answer));
        }
    });
    addr
}

fn serve(mut stream: TcpStream, answer: &dyn Fn(&str, &str) -> Reply) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut words = head.split_whitespace();
    let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    let _ = stream.read_exact(&mut body);
    match answer(method, path) {
        Reply::Whole(text) => {
            let _ = stream.write_all(text.as_bytes());
        }
        Reply::Endless => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n");
            let chunk = format!("10000\r\n{}\r\n", "[".repeat(0x10000));
            while stream.write_all(chunk.as_bytes()).is_ok() {}
        }
        Reply::Sized(n) => {
            let _ = stream.write_all(
                format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {n}\r\n\r\n").as_bytes(),
            );
            let zeros = vec![b' '; 1 << 16];
            while stream.write_all(&zeros).is_ok() {}
        }
        Reply::Hang => {
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

const OLLAMA_DONE: &str = "{\"model\":\"m\",\"created_at\":\"2024-01-01T00:00:00Z\",\"response\":\"hi\",\"done\":true,\"done_reason\":\"stop\",\"eval_count\":1}\n";

fn scenario_dir(yaml: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s.yaml"), yaml).unwrap();
    dir
}

const ONE_REQUEST: &str = "name: h\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: constant-vus, vus: 1, iterations: 1}\n";

/// Endless bodies in the pre-flight (`/api/tags`, `/v1/models`) and the connection warm-up
/// (`/api/version`): each is cut at 4 MiB, and the process stays small.
#[test]
fn endless_answers_outside_the_stream_cost_a_bounded_read() {
    let ollama = hostile(|_, path| match path {
        "/api/show" => status(404, "{\"error\":\"model 'm' not found\"}"),
        _ => Reply::Endless,
    });
    let dir = scenario_dir(ONE_REQUEST);
    let url = format!("http://{ollama}");
    let out = llm_bench(dir.path(), &["run", "s.yaml", "-q", "--target-url", &url]);
    assert_eq!(out.code, Some(1), "{}", out.text);
    assert!(out.text.contains("does not have model"), "{}", out.text);
    assert!(out.rss_mib <= MAX_RSS_MIB, "{} MiB", out.rss_mib);

    let openai = hostile(|_, _| Reply::Endless);
    let yaml = "name: h\ntarget: {backend: openai, model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: constant-vus, vus: 1, iterations: 1}\n";
    let dir = scenario_dir(yaml);
    let url = format!("http://{openai}");
    let out = llm_bench(dir.path(), &["run", "s.yaml", "-q", "--target-url", &url]);
    assert_eq!(out.code, Some(1), "{}", out.text);
    assert!(
        out.text.contains("longer than 4194304 bytes"),
        "{}",
        out.text
    );
    assert!(out.rss_mib <= MAX_RSS_MIB, "{} MiB", out.rss_mib);

    // Pre-flight passes; the warm-up connections read an endless /api/version and go on.
    let warm = hostile(|_, path| match path {
        "/api/show" => ok_json("{}"),
        "/api/version" => Reply::Endless,
        _ => ok_json(OLLAMA_DONE.trim_end()),
    });
    let dir = scenario_dir(ONE_REQUEST);
    let url = format!("http://{warm}");
    let out = llm_bench(dir.path(), &["run", "s.yaml", "-q", "--target-url", &url]);
    assert_eq!(out.code, Some(0), "{}", out.text);
    assert!(out.rss_mib <= MAX_RSS_MIB, "{} MiB", out.rss_mib);
    assert!(out.took < Duration::from_secs(20), "{:?}", out.took);
}

/// A signal during the pre-flight ends the command at once, with exit 105.
#[test]
fn a_signal_during_the_preflight_ends_it() {
    let silent = hostile(|_, _| Reply::Hang);
    let dir = scenario_dir(ONE_REQUEST);
    let url = format!("http://{silent}");
    let mut cmd = bin();
    cmd.args(["run", "s.yaml", "-q", "--target-url", &url])
        .current_dir(dir.path());
    let child = std::thread::spawn(move || measured(cmd, Duration::from_secs(30)));
    std::thread::sleep(Duration::from_millis(1500));
    let pids = std::fs::read_dir("/proc").unwrap().filter_map(|e| {
        let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline)
            .contains(&url)
            .then_some(pid)
    });
    for pid in pids {
        // SAFETY: sends SIGTERM to the child this test started (its command line has our URL).
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let out = child.join().unwrap();
    assert_eq!(out.code, Some(105), "{}", out.text);
    assert!(
        out.text.contains("during the pre-flight check"),
        "{}",
        out.text
    );
    assert!(out.took < Duration::from_secs(5), "{:?}", out.took);
}

/// `init --from-server`: bounded reads, every name checked before anything is written, and a
/// cap on how many scenarios one command writes.
#[test]
fn init_from_server_reads_bounded_and_writes_all_or_nothing() {
    let endless = hostile(|_, _| Reply::Endless);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{endless}");
    let out = llm_bench(dir.path(), &["init", "--from-server", &url, "--dir", "o"]);
    assert_eq!(out.code, Some(1), "{}", out.text);
    assert!(out.rss_mib <= MAX_RSS_MIB, "{} MiB", out.rss_mib);
    let large = hostile(|_, _| Reply::Sized(500 << 20));
    let url = format!("http://{large}");
    let out = llm_bench(dir.path(), &["init", "--from-server", &url, "--dir", "o"]);
    assert_eq!(out.code, Some(1), "{}", out.text);
    assert!(out.text.contains("longer than"), "{}", out.text);
    assert!(out.rss_mib <= MAX_RSS_MIB, "{} MiB", out.rss_mib);
    assert!(!dir.path().join("o").exists());

    let tags = |names: Vec<String>| {
        let models: Vec<Value> = names.into_iter().map(|n| json!({ "name": n })).collect();
        json!({ "models": models }).to_string()
    };
    let many = tags((0..150).map(|i| format!("m{i}")).collect());
    let server = hostile(move |_, _| ok_json(&many));
    let url = format!("http://{server}");
    let out = llm_bench(
        dir.path(),
        &["init", "--from-server", &url, "--dir", "many"],
    );
    assert_eq!(out.code, Some(2), "{}", out.text);
    assert!(out.text.contains("more than --max 100"), "{}", out.text);
    assert!(!dir.path().join("many").exists(), "nothing written");
    let out = llm_bench(
        dir.path(),
        &[
            "init",
            "--from-server",
            &url,
            "--dir",
            "many",
            "--max",
            "150",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.text);
    let written = std::fs::read_dir(dir.path().join("many")).unwrap().count();
    assert_eq!(written, 152, "150 scenarios, base.yaml and schemas/");

    let odd = tags(vec![
        "".into(),
        "  ".into(),
        "good:1b".into(),
        "bad\u{7}name".into(),
    ]);
    let server = hostile(move |_, _| ok_json(&odd));
    let url = format!("http://{server}");
    let out = llm_bench(dir.path(), &["init", "--from-server", &url, "--dir", "odd"]);
    assert_eq!(out.code, Some(2), "{}", out.text);
    assert!(out.text.contains("control characters"), "{}", out.text);
    assert!(!dir.path().join("odd").exists(), "nothing written");
    let blank = tags(vec!["".into(), "good:1b".into()]);
    let server = hostile(move |_, _| ok_json(&blank));
    let url = format!("http://{server}");
    let out = llm_bench(
        dir.path(),
        &["init", "--from-server", &url, "--dir", "blank"],
    );
    assert_eq!(out.code, Some(0), "{}", out.text);
    assert!(out.text.contains("empty name: skipped"), "{}", out.text);
    assert!(dir.path().join("blank/good-1b.yaml").exists());
    assert!(!dir.path().join("blank/model.yaml").exists());
}

/// A `/tokenize` that answers 0 (or absurd counts, or megabytes of error) is an error naming
/// the endpoint, before any load.
#[test]
fn an_absurd_tokenizer_is_an_error_naming_the_endpoint() {
    let yaml = "name: t\ntarget: {backend: openai, model: m, api: completions, tokenizer: server}\nprompts:\n  - synthetic: {input_tokens: {mean: 200, stddev: 0}, output_tokens: 5, count: 4}\nscenarios:\n  s: {executor: constant-vus, vus: 1, iterations: 1}\n";
    for (label, reply) in [
        ("zero", ok_json("{\"count\":0}")),
        ("max", ok_json("{\"count\":18446744073709551615}")),
        ("large error", status(500, &"e".repeat(5 << 20))),
    ] {
        let server = hostile(move |_, path| match path {
            "/v1/models" => ok_json("{\"data\":[{\"id\":\"m\"}]}"),
            _ => reply.clone(),
        });
        let dir = scenario_dir(yaml);
        let url = format!("http://{server}/v1");
        let out = llm_bench(dir.path(), &["run", "s.yaml", "-q", "--target-url", &url]);
        assert_eq!(out.code, Some(1), "{label}: {}", out.text);
        assert!(out.text.contains("/tokenize"), "{label}: {}", out.text);
        assert!(
            out.text.len() < 16 << 10,
            "{label}: {} bytes of output",
            out.text.len()
        );
        assert!(out.rss_mib <= MAX_RSS_MIB, "{label}: {} MiB", out.rss_mib);
    }
}

/// Devices, oversized files and files that are not YAML: refused by size or kind, unread, and
/// never quoted.
#[test]
fn input_files_are_read_within_a_bound_and_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    write("zero.yaml", "extends: /dev/zero\n");
    write(
        "inc.yaml",
        "name: x\ntarget: {model: m}\nprompts: [{include: /dev/zero}]\nscenarios:\n  a: {executor: constant-vus, vus: 1, iterations: 1}\n",
    );
    for (args, code, why) in [
        (vec!["validate", "zero.yaml"], 104, "not a regular file"),
        (vec!["validate", "/dev/zero"], 2, "not a regular file"),
        (vec!["validate", "inc.yaml"], 104, "not a regular file"),
        (
            vec!["compare", "/dev/zero", "/dev/zero"],
            1,
            "not a regular file",
        ),
        (vec!["check", "/dev/zero"], 1, "not a regular file"),
    ] {
        let out = llm_bench(dir.path(), &args);
        assert_eq!(out.code, Some(code), "{args:?}: {}", out.text);
        assert!(out.text.contains(why), "{args:?}: {}", out.text);
        assert!(out.rss_mib <= MAX_RSS_MIB, "{args:?}: {} MiB", out.rss_mib);
        assert!(
            out.took < Duration::from_secs(5),
            "{args:?}: {:?}",
            out.took
        );
    }
    write("big.yaml", &format!("name: x\n# {}\n", "x".repeat(4096)));
    let mut cmd = bin();
    cmd.args(["validate", "big.yaml"])
        .env("LLM_BENCH_MAX_INPUT_BYTES", "1K")
        .current_dir(dir.path());
    let out = measured(cmd, Duration::from_secs(20));
    assert_eq!(out.code, Some(2), "{}", out.text);
    assert!(
        out.text
            .contains("larger than the 1024-byte input limit (LLM_BENCH_MAX_INPUT_BYTES"),
        "{}",
        out.text
    );

    write(
        "shadow",
        "root:$6$SECRETHASH:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n",
    );
    write(
        "e.yaml",
        "extends: shadow\nname: x\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  a: {executor: constant-vus, vus: 1, iterations: 1}\n",
    );
    write("binary", "\u{0}\u{1}SECRETHASH: [\n");
    write(
        "b.yaml",
        "extends: binary\nname: x\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n  a: {executor: constant-vus, vus: 1, iterations: 1}\n",
    );
    for args in [
        vec!["validate", "e.yaml"],
        vec!["validate", "shadow"],
        vec!["validate", "b.yaml"],
    ] {
        let out = llm_bench(dir.path(), &args);
        assert_eq!(out.code, Some(104), "{args:?}: {}", out.text);
        assert!(out.text.contains("not shown"), "{args:?}: {}", out.text);
        assert!(!out.text.contains("SECRETHASH"), "{args:?}: {}", out.text);
    }
}

/// Under `ulimit -f` the write fails with EFBIG, named, exit 1, and no temporary file stays.
#[test]
fn a_file_size_limit_is_an_error_not_a_silent_death() {
    let dir = scenario_dir(
        "name: f\ntarget: {model: m}\nsimulator: {parallel: 4}\nprompts: [hi]\nscenarios:\n  s: {executor: constant-vus, vus: 1, iterations: 2}\n",
    );
    let script = format!(
        "ulimit -f 8 && exec {} run s.yaml -q --output-dir out",
        env!("CARGO_BIN_EXE_llm-bench")
    );
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &script]).current_dir(dir.path());
    let out = measured(cmd, Duration::from_secs(60));
    assert_eq!(out.code, Some(1), "{}", out.text);
    assert!(out.text.contains("File too large"), "{}", out.text);
    let left: Vec<String> = std::fs::read_dir(dir.path().join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// `--set` cannot choose a base, and its mistakes are the command line's, not a file line's.
#[test]
fn set_mistakes_name_the_command_line() {
    let dir = scenario_dir(
        "name: s\nprompts: [hi]\nscenarios:\n  sweep: {executor: concurrency-levels, levels: [1], requests_per_level: 1}\n",
    );
    let out = llm_bench(
        dir.path(),
        &["run", "s.yaml", "--set", "extends=other.yaml"],
    );
    assert_eq!(out.code, Some(2), "{}", out.text);
    assert!(out.text.contains("cannot be set here"), "{}", out.text);
    let out = llm_bench(
        dir.path(),
        &["run", "s.yaml", "--set", "scenarios.sweep.levels=abc"],
    );
    assert_eq!(out.code, Some(104), "{}", out.text);
    assert!(
        out.text
            .contains("--set scenarios.sweep.levels=abc (command line): scenarios.sweep.levels:"),
        "{}",
        out.text
    );
    assert!(!out.text.contains("s.yaml:4"), "{}", out.text);
}

/// The remote-write warning shows the receiver's URL with its query values masked.
#[test]
fn remote_write_warnings_mask_query_strings() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let dir = scenario_dir(
        "name: r\ntarget: {model: m}\nsimulator: {parallel: 4}\nprompts: [hi]\nscenarios:\n  s: {executor: constant-vus, vus: 1, iterations: 1}\n",
    );
    let url = format!("http://127.0.0.1:{port}/api/v1/write?token=hunter2-secret");
    let out = llm_bench(
        dir.path(),
        &["run", "s.yaml", "-q", "--prometheus-remote-write", &url],
    );
    assert!(out.text.contains("remote write to"), "{}", out.text);
    assert!(out.text.contains("token=***"), "{}", out.text);
    assert!(!out.text.contains("hunter2"), "{}", out.text);
}

/// Plain-HTTP answers are read by llm-bench's own reader and stamped by the kernel (Linux), and
/// the result says so; `LLM_BENCH_TRANSPORT=reqwest` keeps reqwest, which says nothing. Both
/// measure the same server alike (a close-delimited body, a `Content-Length` one, chunked SSE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_names_the_clock_that_stamped_the_reads() {
    let server = start_sim(sim(1, 1)).await;
    let url = server.url();
    let dir = scenario_dir(
        "name: c\ntarget: {backend: openai, model: m}\nprompts: [hi]\nscenarios:\n  s: {executor: constant-vus, vus: 2, iterations: 6}\n",
    );
    for (out, transport, clock) in [("wire", "", Some("kernel")), ("reqwest", "reqwest", None)] {
        let mut cmd = bin();
        cmd.args([
            "run",
            "s.yaml",
            "-q",
            "--target-url",
            &url,
            "--output-dir",
            out,
        ])
        .env("LLM_BENCH_TRANSPORT", transport)
        .current_dir(dir.path());
        let run = measured_async(cmd).await;
        assert_eq!(run.code, Some(0), "{}", run.text);
        let result = read_json(&dir.path().join(out).join("benchmark_latest.json"));
        assert_eq!(result["total"]["requests"], 6);
        assert_eq!(result["total"]["errors"], 0);
        assert_eq!(
            result["target"]["receive_clock"].as_str(),
            if cfg!(target_os = "linux") {
                clock
            } else {
                clock.map(|_| "user")
            },
            "{out}"
        );
    }
    // A close-delimited answer (no length, no chunks) and a Content-Length one read whole.
    for framing in ["close", "length"] {
        let body = OLLAMA_DONE.to_string();
        let server = hostile(move |_, path| {
            match (path, framing) {
            ("/api/chat", "close") => Reply::Whole(format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n{body}"
            )),
            ("/api/chat", _) => ok_json(body.trim_end()),
            _ => ok_json("{}"),
        }
        });
        let dir = scenario_dir(
            "name: f\ntarget: {model: m, api: chat}\nprompts: [hi]\nscenarios:\n  s: {executor: constant-vus, vus: 1, iterations: 3}\n",
        );
        let url = format!("http://{server}");
        let out = llm_bench(
            dir.path(),
            &[
                "run",
                "s.yaml",
                "-q",
                "--no-preflight",
                "--target-url",
                &url,
                "--output-dir",
                "o",
            ],
        );
        assert_eq!(out.code, Some(0), "{framing}: {}", out.text);
        let result = read_json(&dir.path().join("o/benchmark_latest.json"));
        assert_eq!(result["total"]["successes"], 3, "{framing}: {result:#}");
    }
}
