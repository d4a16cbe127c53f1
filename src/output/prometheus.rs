//! Live metrics for Prometheus: families updated by the recorder task as events arrive, served
//! at `/metrics` in the text format while the run lasts and for a linger after it, so the last
//! values are scraped. Labels are bounded: the run's id, scenario, group (level/stage/step),
//! model, backend, and for requests the outcome and error kind. No prompt text, no request ids.
//! Every planned group's counters exist from the start at 0, so a panel of something that
//! never happens (dropped iterations on a healthy run) shows 0 rather than nothing.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::metrics::registry::Trend;
use crate::metrics::{GroupKey, Outcome, Sample};
use crate::thresholds::eval::ThresholdOutcome;

/// Time to first token: fine below a second, where interactive SLOs sit (p95 < 200 ms, 500 ms),
/// coarse up to the minutes a cold model load or a long queue can take.
const TTFT_BUCKETS: [f64; 24] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75, 1.0, 1.5, 2.0,
    3.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];
/// LLM latencies span sub-millisecond gaps to minutes-long answers.
const LATENCY_BUCKETS: [f64; 18] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0,
    100.0, 300.0, 600.0,
];
/// Inter-token gaps are fractions of a millisecond to a few seconds.
const ITL_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Labels of per-group series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabels {
    /// The run (`<name>-<timestamp>`, as its result file), so repeated runs stay apart.
    pub run_id: String,
    /// Scenario (phase) name.
    pub scenario: String,
    /// "level 4", "stage 2", "step 3", "all".
    pub group: String,
    /// Model name.
    pub model: String,
    /// `ollama` or `openai`.
    pub backend: String,
}

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The run.
    pub run_id: String,
    /// Scenario (phase) name.
    pub scenario: String,
    /// "level 4", ...
    pub group: String,
    /// Model name.
    pub model: String,
    /// `ollama` or `openai`.
    pub backend: String,
    /// `success`, `error` or `interrupted`.
    pub outcome: String,
    /// The error category, or `none`.
    pub error_kind: String,
}

/// Labels of threshold state.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThresholdLabels {
    /// The run.
    pub run_id: String,
    /// Metric key as written.
    pub metric: String,
    /// Expression as written.
    pub expression: String,
    /// Model name.
    pub model: String,
}

/// Labels of the run's info series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    /// The run.
    pub run_id: String,
    /// The scenario's name.
    pub scenario_name: String,
    /// SHA-256 of the scenario's text (and its bases'), first 12 characters.
    pub scenario_sha256: String,
    /// llm-bench's version and commit.
    pub version: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every live family.
pub struct LiveMetrics {
    registry: Registry,
    run_id: String,
    model: String,
    backend: String,
    ttft: HistogramFamily<GroupLabels>,
    e2e: HistogramFamily<GroupLabels>,
    itl: HistogramFamily<GroupLabels>,
    tpot: HistogramFamily<GroupLabels>,
    schedule_lag: HistogramFamily<GroupLabels>,
    requests: Family<RequestLabels, Counter>,
    output_tokens: Family<GroupLabels, Counter>,
    prompt_tokens: Family<GroupLabels, Counter>,
    active: Family<GroupLabels, Gauge>,
    dropped: Family<GroupLabels, Counter>,
    thresholds: Family<ThresholdLabels, Gauge>,
}

fn ttft_histogram() -> Histogram {
    Histogram::new(TTFT_BUCKETS)
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn itl_histogram() -> Histogram {
    Histogram::new(ITL_BUCKETS)
}

impl LiveMetrics {
    /// Families for one run against `model` on `backend`.
    pub fn new(run: RunLabels, model: &str, backend: &str) -> Self {
        let mut registry = Registry::default();
        let info = Family::<RunLabels, Gauge>::default();
        info.get_or_create(&run).set(1);
        registry.register(
            "llmbench_run_info",
            "1 for the run: its id, scenario, scenario hash and llm-bench version",
            info,
        );
        let ttft = HistogramFamily::<GroupLabels>::new_with_constructor(
            ttft_histogram as fn() -> Histogram,
        );
        let tpot = HistogramFamily::<GroupLabels>::new_with_constructor(
            itl_histogram as fn() -> Histogram,
        );
        let schedule_lag = HistogramFamily::<GroupLabels>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let prompt_tokens = Family::<GroupLabels, Counter>::default();
        registry.register(
            "llmbench_tpot_seconds",
            "Time per output token after the first, per request",
            tpot.clone(),
        );
        registry.register(
            "llmbench_schedule_lag_seconds",
            "Actual send time minus the intended one (open-model executors)",
            schedule_lag.clone(),
        );
        registry.register(
            "llmbench_prompt_tokens",
            "Prompt tokens of successful requests (as the server counted them)",
            prompt_tokens.clone(),
        );
        let e2e = HistogramFamily::<GroupLabels>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let itl = HistogramFamily::<GroupLabels>::new_with_constructor(
            itl_histogram as fn() -> Histogram,
        );
        let requests = Family::<RequestLabels, Counter>::default();
        let output_tokens = Family::<GroupLabels, Counter>::default();
        let active = Family::<GroupLabels, Gauge>::default();
        let dropped = Family::<GroupLabels, Counter>::default();
        let thresholds = Family::<ThresholdLabels, Gauge>::default();
        registry.register("llmbench_ttft_seconds", "Time to first token", ttft.clone());
        registry.register(
            "llmbench_e2e_latency_seconds",
            "End-to-end request latency",
            e2e.clone(),
        );
        registry.register(
            "llmbench_itl_seconds",
            "Inter-token latency (gaps between content chunks)",
            itl.clone(),
        );
        registry.register(
            "llmbench_requests",
            "Requests that ended, by outcome and error kind",
            requests.clone(),
        );
        registry.register(
            "llmbench_output_tokens",
            "Output tokens of successful requests",
            output_tokens.clone(),
        );
        registry.register("llmbench_active_vus", "Requests in flight", active.clone());
        registry.register(
            "llmbench_dropped_iterations",
            "Arrivals skipped because every VU was busy",
            dropped.clone(),
        );
        registry.register(
            "llmbench_threshold_passing",
            "1 while a threshold holds, 0 when it fails",
            thresholds.clone(),
        );
        Self {
            registry,
            run_id: run.run_id,
            model: model.into(),
            backend: backend.into(),
            ttft,
            e2e,
            itl,
            tpot,
            schedule_lag,
            requests,
            output_tokens,
            prompt_tokens,
            active,
            dropped,
            thresholds,
        }
    }

    /// Creates the counters of the groups the run plans, at 0.
    pub fn prime<'a>(&self, groups: impl IntoIterator<Item = &'a GroupKey>) {
        for key in groups {
            let labels = self.labels(key);
            let _ = self
                .requests
                .get_or_create(&request_labels(&labels, "success", "none"));
            let _ = self
                .requests
                .get_or_create(&request_labels(&labels, "error", "none"));
            let _ = self.output_tokens.get_or_create(&labels);
            let _ = self.prompt_tokens.get_or_create(&labels);
            let _ = self.dropped.get_or_create(&labels);
            let _ = self.active.get_or_create(&labels);
        }
    }

    fn labels(&self, key: &GroupKey) -> GroupLabels {
        GroupLabels {
            run_id: self.run_id.clone(),
            scenario: key.scenario.to_string(),
            group: key.group.to_string(),
            model: self.model.clone(),
            backend: self.backend.clone(),
        }
    }

    /// A request of `key` started.
    pub fn started(&self, key: &GroupKey) {
        self.active.get_or_create(&self.labels(key)).inc();
    }

    /// A request ended.
    pub fn finished(&self, key: &GroupKey, sample: &Sample) {
        let labels = self.labels(key);
        self.active.get_or_create(&labels).dec();
        let (outcome, kind) = match &sample.outcome {
            Outcome::Interrupted => ("interrupted", "none".to_string()),
            Outcome::Done(m) => match &m.error {
                Some(e) => ("error", e.kind.to_string()),
                None => {
                    if let Some(ttft) = m.ttft {
                        self.ttft.get_or_create(&labels).observe(ttft.as_secs_f64());
                    }
                    let request = crate::metrics::registry::Request {
                        m,
                        lag: sample.lag(),
                    };
                    for (trend, family) in [
                        (Trend::Tpot, &self.tpot),
                        (Trend::ScheduleLag, &self.schedule_lag),
                    ] {
                        let h = family.get_or_create(&labels);
                        trend.def().record(&request, &mut |micros| {
                            h.observe(micros as f64 / 1e6);
                        });
                    }
                    if let Some(p) = m.prompt_tokens {
                        self.prompt_tokens.get_or_create(&labels).inc_by(p);
                    }
                    self.e2e.get_or_create(&labels).observe(m.e2e.as_secs_f64());
                    let itl = self.itl.get_or_create(&labels);
                    for gap in &m.itl {
                        itl.observe(gap.as_secs_f64());
                    }
                    self.output_tokens
                        .get_or_create(&labels)
                        .inc_by(m.output_tokens);
                    ("success", "none".to_string())
                }
            },
        };
        self.requests
            .get_or_create(&request_labels(&labels, outcome, &kind))
            .inc();
    }

    /// Arrivals were dropped.
    pub fn dropped(&self, key: &GroupKey, count: u64) {
        self.dropped.get_or_create(&self.labels(key)).inc_by(count);
    }

    /// The current verdict of every threshold.
    pub fn thresholds(&self, outcomes: &[ThresholdOutcome]) {
        for o in outcomes {
            let labels = ThresholdLabels {
                run_id: self.run_id.clone(),
                metric: o.metric.clone(),
                expression: o.expression.clone(),
                model: self.model.clone(),
            };
            self.thresholds
                .get_or_create(&labels)
                .set(i64::from(o.passed));
        }
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

fn request_labels(labels: &GroupLabels, outcome: &str, kind: &str) -> RequestLabels {
    RequestLabels {
        run_id: labels.run_id.clone(),
        scenario: labels.scenario.clone(),
        group: labels.group.clone(),
        model: labels.model.clone(),
        backend: labels.backend.clone(),
        outcome: outcome.into(),
        error_kind: kind.into(),
    }
}

/// Connections served at once; more are closed as they arrive, so scrapers that never finish
/// cannot take the file descriptors the benchmark's own requests need.
const MAX_CONNECTIONS: usize = 32;
/// Time a client has to send its request head (a slow-loris client is dropped after it).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest request head read.
const MAX_HEAD: usize = 8 << 10;

/// Serves `GET /metrics` on `addr` until `stop`; returns the bound address. A deliberately small
/// HTTP/1.1 server: one request per connection, its head read within [`HEAD_TIMEOUT`] and
/// [`MAX_HEAD`] bytes, at most [`MAX_CONNECTIONS`] at once. Those bounds are what a general
/// server (axum) does not offer without a timer-aware connection builder.
pub async fn serve(
    metrics: Arc<LiveMetrics>,
    addr: SocketAddr,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            let socket = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((socket, _)) => socket,
                    Err(_) => continue,
                },
                _ = stop.cancelled() => return,
            };
            // Full: the connection is closed at once instead of waiting in the backlog.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let _slot = slot;
                let _ = tokio::time::timeout(HEAD_TIMEOUT, answer(socket, &metrics)).await;
            });
        }
    });
    Ok(bound)
}

/// Reads one request head and answers it: the metrics for `GET /metrics`, 404 otherwise.
async fn answer(mut socket: tokio::net::TcpStream, metrics: &LiveMetrics) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = socket.read(&mut buf).await?;
        if n == 0 || head.len() + n > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let request_line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = request_line.split(|&b| b == b' ');
    let (method, path) = (parts.next(), parts.next());
    let (status, content_type, body) = match (method, path) {
        (Some(b"GET"), Some(b"/metrics")) => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        _ => (
            "404 Not Found",
            "text/plain",
            "not found: try /metrics\n".to_string(),
        ),
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(response.as_bytes()).await?;
    socket.shutdown().await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::{ErrorKind, Measurement, RequestError};
    use crate::metrics::Group;

    async fn get(addr: SocketAddr, request: &str) -> String {
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        answer
    }

    #[tokio::test(start_paused = true)]
    async fn silent_clients_are_dropped_and_scrapes_still_answer() {
        let stop = CancellationToken::new();
        let metrics = Arc::new(LiveMetrics::new(run(), "m", "ollama"));
        let addr = serve(metrics, "127.0.0.1:0".parse().unwrap(), stop.clone())
            .await
            .unwrap();
        // A client that connects and says nothing is closed after HEAD_TIMEOUT.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(HEAD_TIMEOUT * 2, silent.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0))), "{read:?}");
        let answer = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("# EOF\n"), "{answer}");
        let other = get(addr, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(other.starts_with("HTTP/1.1 404"), "{other}");
        stop.cancel();
    }

    #[tokio::test]
    async fn open_connections_are_capped() {
        let stop = CancellationToken::new();
        let metrics = Arc::new(LiveMetrics::new(run(), "m", "ollama"));
        let addr = serve(metrics, "127.0.0.1:0".parse().unwrap(), stop.clone())
            .await
            .unwrap();
        let fds = || std::fs::read_dir("/proc/self/fd").unwrap().count();
        let before = fds();
        let mut idle = Vec::new();
        for _ in 0..300 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        // This process holds the 300 client ends; the server keeps at most its cap of them.
        let server_side = fds().saturating_sub(before + idle.len());
        assert!(
            server_side <= MAX_CONNECTIONS + 8,
            "the server holds {server_side} connections"
        );
        stop.cancel();
    }

    fn run() -> RunLabels {
        RunLabels {
            run_id: "q-1".into(),
            scenario_name: "q".into(),
            scenario_sha256: "abc".into(),
            version: "0".into(),
        }
    }

    #[test]
    fn families_encode_with_bounded_labels() {
        let m = LiveMetrics::new(run(), "llama3.2:1b", "ollama");
        let key = GroupKey {
            scenario: "sweep".into(),
            group: Group::Level(4),
        };
        let idle = GroupKey {
            scenario: "sweep".into(),
            group: Group::Level(8),
        };
        m.prime([&key, &idle]);
        let before = m.encode();
        let idle_labels =
            r#"run_id="q-1",scenario="sweep",group="level 8",model="llama3.2:1b",backend="ollama""#;
        for line in [
            format!(r#"llmbench_dropped_iterations_total{{{idle_labels}}} 0"#),
            format!(
                r#"llmbench_requests_total{{{idle_labels},outcome="error",error_kind="none"}} 0"#
            ),
        ] {
            assert!(
                before.contains(&line),
                "missing {line} before any request in\n{before}"
            );
        }
        assert!(before.contains(r#"llmbench_run_info{run_id="q-1",scenario_name="q",scenario_sha256="abc",version="0"} 1"#), "{before}");
        m.started(&key);
        let ok = Sample::plain(
            Some(key.clone()),
            Duration::from_millis(500),
            Outcome::Done(Measurement {
                ttft: Some(Duration::from_millis(40)),
                e2e: Duration::from_millis(500),
                itl: vec![Duration::from_millis(5)],
                output_tokens: 12,
                prompt_tokens: Some(30),
                ..Measurement::default()
            }),
        );
        m.finished(&key, &ok);
        let mut failed = ok.clone();
        failed.outcome = Outcome::Done(Measurement {
            error: Some(RequestError::new(ErrorKind::Timeout, "t")),
            ..Measurement::default()
        });
        m.started(&key);
        m.finished(&key, &failed);
        let text = m.encode();
        let labels =
            r#"run_id="q-1",scenario="sweep",group="level 4",model="llama3.2:1b",backend="ollama""#;
        for line in [
            format!(r#"llmbench_requests_total{{{labels},outcome="success",error_kind="none"}} 1"#),
            format!(
                r#"llmbench_requests_total{{{labels},outcome="error",error_kind="timeout"}} 1"#
            ),
            format!(r#"llmbench_output_tokens_total{{{labels}}} 12"#),
            format!(r#"llmbench_active_vus{{{labels}}} 0"#),
            format!(r#"llmbench_ttft_seconds_bucket{{le="0.05",{labels}}} 1"#),
            format!(r#"llmbench_ttft_seconds_bucket{{le="0.025",{labels}}} 0"#),
            format!(r#"llmbench_prompt_tokens_total{{{labels}}} 30"#),
            format!(r#"llmbench_tpot_seconds_count{{{labels}}} 1"#),
            format!(r#"llmbench_e2e_latency_seconds_count{{{labels}}} 1"#),
        ] {
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
    }
}
