//! Live metrics for Prometheus: families updated by the recorder task as events arrive, served
//! at `/metrics` in the text format while the run lasts and for a linger after it, so the last
//! values are scraped. Labels are bounded: scenario, group (level/stage/step), model, backend,
//! and for requests the outcome and error kind. No prompt text, no request ids.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

use crate::metrics::{GroupKey, Outcome, Sample};
use crate::thresholds::eval::ThresholdOutcome;

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
    /// Metric key as written.
    pub metric: String,
    /// Expression as written.
    pub expression: String,
    /// Model name.
    pub model: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Every live family.
pub struct LiveMetrics {
    registry: Registry,
    model: String,
    backend: String,
    ttft: HistogramFamily<GroupLabels>,
    e2e: HistogramFamily<GroupLabels>,
    itl: HistogramFamily<GroupLabels>,
    requests: Family<RequestLabels, Counter>,
    output_tokens: Family<GroupLabels, Counter>,
    active: Family<GroupLabels, Gauge>,
    dropped: Family<GroupLabels, Counter>,
    thresholds: Family<ThresholdLabels, Gauge>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn itl_histogram() -> Histogram {
    Histogram::new(ITL_BUCKETS)
}

impl LiveMetrics {
    /// Families for one run against `model` on `backend`.
    pub fn new(model: &str, backend: &str) -> Self {
        let mut registry = Registry::default();
        let ttft = HistogramFamily::<GroupLabels>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
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
            model: model.into(),
            backend: backend.into(),
            ttft,
            e2e,
            itl,
            requests,
            output_tokens,
            active,
            dropped,
            thresholds,
        }
    }

    fn labels(&self, key: &GroupKey) -> GroupLabels {
        GroupLabels {
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
        let request = RequestLabels {
            scenario: labels.scenario,
            group: labels.group,
            model: labels.model,
            backend: labels.backend,
            outcome: outcome.into(),
            error_kind: kind,
        };
        self.requests.get_or_create(&request).inc();
    }

    /// Arrivals were dropped.
    pub fn dropped(&self, key: &GroupKey, count: u64) {
        self.dropped.get_or_create(&self.labels(key)).inc_by(count);
    }

    /// The current verdict of every threshold.
    pub fn thresholds(&self, outcomes: &[ThresholdOutcome]) {
        for o in outcomes {
            let labels = ThresholdLabels {
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

/// Serves `/metrics` on `addr` until `stop` is cancelled; returns the bound address.
pub async fn serve(
    metrics: Arc<LiveMetrics>,
    addr: SocketAddr,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.encode(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::backend::{ErrorKind, Measurement, RequestError};
    use crate::metrics::Group;

    #[test]
    fn families_encode_with_bounded_labels() {
        let m = LiveMetrics::new("llama3.2:1b", "ollama");
        let key = GroupKey {
            scenario: "sweep".into(),
            group: Group::Level(4),
        };
        m.started(&key);
        let ok = Sample::plain(
            Some(key.clone()),
            Duration::from_millis(500),
            Outcome::Done(Measurement {
                ttft: Some(Duration::from_millis(40)),
                e2e: Duration::from_millis(500),
                itl: vec![Duration::from_millis(5)],
                output_tokens: 12,
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
        let labels = r#"scenario="sweep",group="level 4",model="llama3.2:1b",backend="ollama""#;
        for line in [
            format!(r#"llmbench_requests_total{{{labels},outcome="success",error_kind="none"}} 1"#),
            format!(
                r#"llmbench_requests_total{{{labels},outcome="error",error_kind="timeout"}} 1"#
            ),
            format!(r#"llmbench_output_tokens_total{{{labels}}} 12"#),
            format!(r#"llmbench_active_vus{{{labels}}} 0"#),
            format!(r#"llmbench_ttft_seconds_bucket{{le="0.05",{labels}}} 1"#),
            format!(r#"llmbench_ttft_seconds_bucket{{le="0.025",{labels}}} 0"#),
            format!(r#"llmbench_e2e_latency_seconds_count{{{labels}}} 1"#),
        ] {
            assert!(text.contains(&line), "missing {line} in\n{text}");
        }
    }
}
