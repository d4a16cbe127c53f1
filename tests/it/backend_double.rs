//! A run through `execute_on` with a backend double: no server, no socket. The executor, the
//! recorder task, thresholds and the result are the real ones; the double answers every request
//! after a fixed time, so the expected metrics are exact under tokio's paused clock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use llm_bench::backend::{Backend, Exchange, Measurement, Picked};
use llm_bench::{RunConfig, Target};
use tokio_util::sync::CancellationToken;

use crate::common::{options, scenario};

/// Answers with four tokens: the first after 30 ms, then one every 10 ms.
#[derive(Default)]
struct FixedServer {
    calls: AtomicU64,
}

impl Backend for FixedServer {
    fn send<'a>(&'a self, _request: &'a Picked) -> BoxFuture<'a, Exchange> {
        Box::pin(async move {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let sent_at = tokio::time::Instant::now();
            let mut m = Measurement::default();
            let mut last = None;
            tokio::time::sleep(Duration::from_millis(30)).await;
            m.content_arrived(sent_at.elapsed(), true, &mut last);
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                m.content_arrived(sent_at.elapsed(), true, &mut last);
            }
            m.e2e = sent_at.elapsed();
            m.output_tokens = m.content_chunks;
            Exchange {
                sent_at,
                measurement: m,
            }
        })
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_measures_exactly_what_a_backend_double_answers() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = scenario(
        "name: double\ntarget: {model: m}\nprompts: [hi]\nwarmup: {requests: 2}\nscenarios:\n  sweep: {executor: concurrency-levels, levels: [1, 3], requests_per_level: 6}\nthresholds:\n  ttft: [\"p(95)<31ms\"]\n  e2e_latency: [\"max<61ms\"]\n",
    );
    let config = RunConfig::resolve(loaded, &options(dir.path(), None)).unwrap();
    let double = Arc::new(FixedServer::default());
    let target = Target::new("double://", double.clone());
    let out = llm_bench::execute_on(config, target, CancellationToken::new())
        .await
        .unwrap();
    assert_eq!(
        double.calls.load(Ordering::Relaxed),
        14,
        "2 warm-up + 2 × 6"
    );
    let r = &out.result;
    assert_eq!(r.target.url, "double://");
    assert_eq!(
        (r.total.requests, r.total.errors, r.warmup.requests),
        (12, 0, 2)
    );
    let ttft = r.total.ttft_ms.as_ref().unwrap();
    let itl = r.total.itl_ms.as_ref().unwrap();
    let e2e = r.total.e2e_latency_ms.as_ref().unwrap();
    assert!((ttft.p50 - 30.0).abs() < 0.05, "{ttft:?}");
    assert!((itl.p50 - 10.0).abs() < 0.05 && itl.count == 36, "{itl:?}");
    assert!((e2e.max - 60.0).abs() < 0.05, "{e2e:?}");
    assert_eq!(r.total.output_tokens_total, 48);
    assert!(r.thresholds.iter().all(|t| t.passed), "{:?}", r.thresholds);
    assert!(out.result_path.exists());
}

/// Answers like a server that gives no token count: the count is its chunks, an estimate.
struct CountlessServer;

impl Backend for CountlessServer {
    fn send<'a>(&'a self, _request: &'a Picked) -> BoxFuture<'a, Exchange> {
        Box::pin(async move {
            let sent_at = tokio::time::Instant::now();
            let mut m = Measurement::default();
            let mut last = None;
            for _ in 0..2 {
                tokio::time::sleep(Duration::from_millis(10)).await;
                m.content_arrived(sent_at.elapsed(), true, &mut last);
            }
            m.e2e = sent_at.elapsed();
            m.text = "forty characters of answer in two chunks".into();
            m.output_tokens = m.content_chunks;
            m.tokens_estimated = true;
            Exchange {
                sent_at,
                measurement: m,
            }
        })
    }
}

/// With `tokenizer: server`, an answer without a server count is counted by the server's
/// `/tokenize` (here the simulator's, 4 characters per token: 10 for the 40-character answer)
/// after it was measured, and no longer labelled an estimate.
#[tokio::test]
async fn a_server_tokenizer_counts_answers_the_server_gave_no_count_for() {
    let sim = crate::common::start_sim(llm_bench::sim::SimConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let loaded = scenario(
        "name: countless\ntarget: {backend: openai, model: m, tokenizer: server}\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [2], requests_per_level: 4}\n",
    );
    let config = RunConfig::resolve(loaded, &options(dir.path(), None)).unwrap();
    let target = Target::new(sim.url(), Arc::new(CountlessServer));
    let out = llm_bench::execute_on(config, target, CancellationToken::new())
        .await
        .unwrap();
    let t = &out.result.total;
    assert_eq!(t.requests, 4);
    assert_eq!(t.output_tokens_total, 40, "10 tokens each, not 2 chunks");
    assert_eq!(t.tokens_estimated_requests, 0);
    // Timing is the answer's own: the count came after the measurement.
    assert!(t.e2e_latency_ms.as_ref().unwrap().max < 100.0);
}
