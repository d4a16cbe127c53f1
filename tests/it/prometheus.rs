//! Live metrics against a real Prometheus (Debian's package, installed by `.ci/run`): it scrapes
//! a simulator run on loopback; then the series must match the run's own result, and every
//! PromQL expression of the Grafana dashboard must return data. Also validates the compose file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::KillOnDrop;
use serde_json::Value;

/// The path of an installed tool; these tests are ignored by a plain `cargo test` and `.ci/run`
/// installs what they need before running them.
fn tool(name: &str) -> String {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .ok()
        .filter(|o| o.status.success());
    match found {
        Some(out) => String::from_utf8_lossy(&out.stdout).trim().to_string(),
        None => panic!("needs Debian's {name}; .ci/run installs it and runs this test"),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const SCENARIO: &str = "\
name: live
target: {model: llm-bench-sim, timeout: 10s}
prompts: [Explain queueing in one sentence.]
scenarios:
  sweep: {executor: concurrency-levels, levels: [1, 4], requests_per_level: 40}
  open: {executor: constant-arrival-rate, rate: 30, duration: 4s, max_vus: 2, start_time: 1s}
thresholds:
  ttft: [\"p(95)<5s\"]
  errors: [\"rate<0.5\"]
simulator:
  parallel: 2
  decode_per_token: 4ms
  load_time: 0s
  output_tokens: {min: 10, max: 30}
  faults: {http_503: 0.05, error_line: 0.05}
";

/// Debian's Prometheus on `port` with `dir/prometheus.yml`, its data in `dir/tsdb` and `extra`
/// flags, once ready: the process (killed on drop), its URL and a client for its API.
async fn start_prometheus(
    bin: &str,
    dir: &Path,
    port: u16,
    extra: &[&str],
) -> (KillOnDrop, String, reqwest::Client) {
    let process = KillOnDrop(
        Command::new(bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let started = Instant::now();
    while !http
        .get(format!("{url}/-/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "prometheus did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (process, url, http)
}

/// Runs [`SCENARIO`] quietly with `flags`, its results in `dir/results`.
fn run_live(dir: &Path, flags: &[&str]) -> std::process::Output {
    std::fs::write(dir.join("live.yaml"), SCENARIO).unwrap();
    Command::new(env!("CARGO_BIN_EXE_llm-bench"))
        .arg("run")
        .arg(dir.join("live.yaml"))
        .arg("--quiet")
        .args(flags)
        .arg("--output-dir")
        .arg(dir.join("results"))
        .output()
        .unwrap()
}

async fn query(http: &reqwest::Client, prometheus: &str, expr: &str, at: f64) -> Vec<Value> {
    let url = reqwest::Url::parse_with_params(
        &format!("{prometheus}/api/v1/query"),
        &[("query", expr), ("time", &at.to_string())],
    )
    .unwrap();
    let body: Value = http.get(url).send().await.unwrap().json().await.unwrap();
    assert_eq!(body["status"], "success", "{expr}: {body}");
    body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn scalar(series: &[Value]) -> f64 {
    series
        .iter()
        .map(|s| s["value"][1].as_str().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
#[ignore = "needs Debian's prometheus; .ci/run runs it"]
async fn a_real_prometheus_scrapes_the_run_and_every_dashboard_panel_has_data() {
    let prometheus_bin = tool("prometheus");
    let dir = tempfile::tempdir().unwrap();
    let (metrics_port, prom_port) = (free_port(), free_port());
    std::fs::write(
        dir.path().join("prometheus.yml"),
        format!("global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: llm-bench\n    static_configs: [{{targets: [\"127.0.0.1:{metrics_port}\"]}}]\n"),
    )
    .unwrap();
    let (_prometheus, prometheus, http) =
        start_prometheus(&prometheus_bin, dir.path(), prom_port, &[]).await;

    let out = run_live(
        dir.path(),
        &[
            "--prometheus",
            &format!("127.0.0.1:{metrics_port}"),
            "--prometheus-linger",
            "4s",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("results/benchmark_latest.json")).unwrap(),
    )
    .unwrap();
    // Query just before the end of the linger: the last scrapes have the final values.
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - 1.0;

    let total = &result["total"];
    let requests = scalar(&query(&http, &prometheus, "sum(llmbench_requests_total)", at).await);
    assert_eq!(
        requests,
        total["requests"].as_f64().unwrap() + total["interrupted"].as_f64().unwrap(),
        "request counts"
    );
    let errors = scalar(
        &query(
            &http,
            &prometheus,
            r#"sum(llmbench_requests_total{outcome="error"})"#,
            at,
        )
        .await,
    );
    assert_eq!(errors, total["errors"].as_f64().unwrap());
    let tokens = scalar(&query(&http, &prometheus, "sum(llmbench_output_tokens_total)", at).await);
    assert_eq!(tokens, total["output_tokens_total"].as_f64().unwrap());
    let dropped = scalar(
        &query(
            &http,
            &prometheus,
            "sum(llmbench_dropped_iterations_total)",
            at,
        )
        .await,
    );
    assert_eq!(dropped, total["dropped_iterations"].as_f64().unwrap());
    assert!(dropped > 0.0, "the open phase drops arrivals at max_vus 2");
    // Bucketed quantiles land in the bucket of the exact value: buckets are 2 to 2.5x apart.
    for (metric, stats) in [
        ("llmbench_ttft_seconds", "ttft_ms"),
        ("llmbench_e2e_latency_seconds", "e2e_latency_ms"),
    ] {
        let estimate = scalar(
            &query(
                &http,
                &prometheus,
                &format!("histogram_quantile(0.95, sum by (le) ({metric}_bucket))"),
                at,
            )
            .await,
        ) * 1000.0;
        let exact = total[stats]["p95"].as_f64().unwrap();
        assert!(
            estimate / exact > 0.4 && estimate / exact < 2.5,
            "{metric}: prometheus p95 {estimate} ms vs run p95 {exact} ms"
        );
    }
    // The run is named as its result file, and its scenario's hash is there to tell runs apart.
    let info = query(&http, &prometheus, "llmbench_run_info", at).await;
    let run_id = info[0]["metric"]["run_id"].as_str().unwrap();
    assert!(
        run_id.starts_with(&format!(
            "{}-",
            result["scenario"]["name"].as_str().unwrap()
        )),
        "{info:?}"
    );
    assert_eq!(
        info[0]["metric"]["scenario_sha256"].as_str().unwrap(),
        &result["scenario"]["content_sha256"].as_str().unwrap()[..12]
    );
    let tpot = scalar(&query(&http, &prometheus, "sum(llmbench_tpot_seconds_count)", at).await);
    assert!(tpot > 0.0, "TPOT series");
    let passing = query(&http, &prometheus, "llmbench_threshold_passing", at).await;
    assert_eq!(passing.len(), 2, "{passing:?}");

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards/grafana/llm-bench.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$scenario", ".*")
                .replace("$model", ".*")
                .replace("$__rate_interval", "20s");
            let series = query(&http, &prometheus, &expr, at - 2.0).await;
            assert!(
                !series.is_empty(),
                "dashboard panel {:?} shows nothing: {expr}",
                panel["title"]
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "{checked} expressions");
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let expr = variable["definition"].as_str().unwrap();
        let label = expr
            .trim_start_matches("label_values(")
            .trim_end_matches(')')
            .split(", ")
            .nth(1)
            .unwrap();
        let values: Value = http
            .get(format!("{prometheus}/api/v1/label/{label}/values"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            !values["data"].as_array().unwrap().is_empty(),
            "template variable {label} has no values"
        );
    }
}

#[test]
fn the_compose_stack_is_valid_and_wired() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = std::fs::read_to_string(root.join("docker-compose.yml")).unwrap();
    for needle in [
        "ollama/ollama",
        "11434:11434",
        "9090:9090",
        "3000:3000",
        "GF_SECURITY_ADMIN_PASSWORD: llmbench",
        "host.docker.internal:host-gateway",
    ] {
        assert!(
            compose.contains(needle),
            "docker-compose.yml lacks {needle}"
        );
    }
    for path in [
        "config/prometheus.yml",
        "config/grafana/provisioning/datasources/prometheus.yml",
        "config/grafana/provisioning/dashboards/dashboards.yml",
        "dashboards/grafana/llm-bench.json",
    ] {
        assert!(
            root.join(path).exists(),
            "{path} is mounted by docker-compose.yml but missing"
        );
    }
}

#[test]
#[ignore = "needs Debian's docker-compose; .ci/run runs it"]
fn docker_compose_accepts_the_stack() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose_bin = tool("docker-compose");
    let out = Command::new(compose_bin)
        .args(["-f", "docker-compose.yml", "config", "-q"])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker-compose config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--prometheus-remote-write`: a short run pushes its series to a real Prometheus (its
/// remote-write receiver on), with no scrape at all, and the values read back are the run's.
#[tokio::test]
#[ignore = "needs Debian's prometheus; .ci/run runs it"]
async fn a_short_run_pushes_its_series_to_a_real_prometheus_by_remote_write() {
    let prometheus_bin = tool("prometheus");
    let dir = tempfile::tempdir().unwrap();
    let prom_port = free_port();
    std::fs::write(
        dir.path().join("prometheus.yml"),
        "global: {scrape_interval: 1h}\n",
    )
    .unwrap();
    let (_prometheus, prometheus, http) = start_prometheus(
        &prometheus_bin,
        dir.path(),
        prom_port,
        &["--web.enable-remote-write-receiver"],
    )
    .await;
    let out = run_live(
        dir.path(),
        &[
            "--prometheus-remote-write",
            &format!("{prometheus}/api/v1/write"),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("final values pushed"), "{stderr}");
    assert!(
        !stderr.contains("warning: prometheus remote write"),
        "{stderr}"
    );
    let result: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("results/benchmark_latest.json")).unwrap(),
    )
    .unwrap();
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let total = &result["total"];
    let requests = scalar(&query(&http, &prometheus, "sum(llmbench_requests_total)", at).await);
    assert_eq!(
        requests,
        total["requests"].as_f64().unwrap() + total["interrupted"].as_f64().unwrap()
    );
    let tokens = scalar(&query(&http, &prometheus, "sum(llmbench_output_tokens_total)", at).await);
    assert_eq!(tokens, total["output_tokens_total"].as_f64().unwrap());
    let info = query(&http, &prometheus, "llmbench_run_info", at).await;
    assert_eq!(info.len(), 1, "{info:?}");
    let buckets = query(
        &http,
        &prometheus,
        "llmbench_ttft_seconds_bucket{le=\"+Inf\"}",
        at,
    )
    .await;
    assert!(
        !buckets.is_empty(),
        "histograms arrive as their _bucket series"
    );
}
