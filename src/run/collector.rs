//! The recorder task: the one owner of every aggregate during a run. Workers only send
//! [`Event`]s; this task folds them into the [`Recorder`], writes the raw log, drives the
//! progress display, feeds the live Prometheus families, evaluates `abort_on_fail` thresholds
//! every [`THRESHOLD_INTERVAL`] and answers capacity-search steps' requests for a verdict.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::config::PrometheusConfig;
use crate::error::Error;
use crate::metrics::summary::summarize;
use crate::metrics::{Event, Group, GroupKey, Recorder, Verdict};
use crate::output::prometheus::{self, LiveMetrics};
use crate::output::redact::Secrets;
use crate::output::{raw, redact, remote_write};
use crate::report::progress::Progress;
use crate::thresholds::eval::{evaluate_all, evaluate_on};
use crate::thresholds::{self, Threshold};

/// How often thresholds are evaluated during the run (k6's interval).
pub const THRESHOLD_INTERVAL: Duration = Duration::from_secs(2);
/// How often the raw log is flushed to the file.
pub const RAW_FLUSH: Duration = Duration::from_secs(1);

/// The live families: served at `/metrics`, pushed by remote write, or both.
pub struct Live {
    /// The families `/metrics` shows.
    pub metrics: Arc<LiveMetrics>,
    /// The endpoint and its linger, when served.
    served: Option<(SocketAddr, Duration)>,
    /// The remote-write URL and the client that pushes to it, when pushed.
    push_to: Option<(String, reqwest::Client)>,
    stop: CancellationToken,
}

impl Live {
    /// Pushes the final values (remote write), then keeps `/metrics` up for the linger (or until
    /// Ctrl-C), so the final values are scraped.
    pub async fn linger(self, interrupt: &CancellationToken) {
        if let Some((url, client)) = &self.push_to {
            match remote_write::push(client, url, &self.metrics.encode()).await {
                Ok(()) => eprintln!("prometheus: final values pushed to {}", redact::url(url)),
                Err(e) => eprintln!(
                    "warning: prometheus remote write to {}: {e}",
                    redact::url(url)
                ),
            }
        }
        let Some((addr, linger)) = self.served else {
            self.stop.cancel();
            return;
        };
        if !linger.is_zero() && !interrupt.is_cancelled() {
            eprintln!(
                "prometheus: final values stay at http://{}/metrics for {}",
                addr,
                crate::duration::format(linger)
            );
            tokio::select! {
                _ = tokio::time::sleep(linger) => {}
                _ = interrupt.cancelled() => {}
            }
        }
        self.stop.cancel();
    }
}

/// Starts `/metrics` and the remote-write pusher when the command line or the scenario asks.
pub async fn start_live_metrics(
    config: Option<PrometheusConfig>,
    push_to: Option<String>,
    run: prometheus::RunLabels,
    model: &str,
    backend: &str,
    planned: &[crate::metrics::GroupKey],
) -> Result<Option<Live>, Error> {
    if config.is_none() && push_to.is_none() {
        return Ok(None);
    }
    let metrics = Arc::new(LiveMetrics::new(run, model, backend));
    metrics.prime(planned);
    let stop = CancellationToken::new();
    let served = match config {
        Some(PrometheusConfig {
            listen: addr,
            linger,
        }) => {
            let addr = prometheus::serve(metrics.clone(), addr, stop.clone())
                .await
                .map_err(Error::io(format!(
                    "cannot serve Prometheus metrics on {addr}"
                )))?;
            eprintln!("prometheus: metrics at http://{addr}/metrics");
            Some((addr, linger))
        }
        None => None,
    };
    let push_to = match push_to {
        Some(url) => {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(Error::Client)?;
            eprintln!(
                "prometheus: pushing to {} every {}",
                redact::url(&url),
                crate::duration::format(remote_write::INTERVAL)
            );
            tokio::spawn(push_while_running(
                metrics.clone(),
                url.clone(),
                client.clone(),
                stop.clone(),
            ));
            Some((url, client))
        }
        None => None,
    };
    Ok(Some(Live {
        metrics,
        served,
        push_to,
        stop,
    }))
}

/// Pushes the series every [`remote_write::INTERVAL`] until `stop`; a failed push is reported
/// once and retried at the next interval (the run goes on: live metrics are no verdict).
async fn push_while_running(
    metrics: Arc<LiveMetrics>,
    url: String,
    client: reqwest::Client,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(remote_write::INTERVAL);
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = remote_write::push(&client, &url, &metrics.encode()).await {
            if !warned {
                eprintln!(
                    "warning: prometheus remote write to {}: {e}",
                    redact::url(&url)
                );
                warned = true;
            }
        }
    }
}

/// Mirrors a recorder event into the live families (warm-up and discarded requests excluded).
fn feed_live(live: &LiveMetrics, event: &Event) {
    let counted = |key: &Option<GroupKey>| {
        key.clone()
            .filter(|k| !matches!(k.group, Group::Discarded(_)))
    };
    match event {
        Event::Started { key, .. } => {
            if let Some(key) = counted(key) {
                live.started(&key);
            }
        }
        Event::Finished(sample) => {
            if let Some(key) = counted(&sample.key) {
                live.finished(&key, sample);
            }
        }
        Event::Dropped { key, count, .. } => live.dropped(key, *count),
        Event::GroupDone(_) | Event::Evaluate { .. } => {}
    }
}

/// `abort_on_fail` thresholds watched during the run.
pub struct ThresholdWatch {
    /// The `abort_on_fail` ones.
    pub thresholds: Vec<Threshold>,
    /// Every threshold (capacity-search verdicts, live values).
    pub all: Vec<Threshold>,
    /// Cancelled when an `abort_on_fail` threshold fails.
    pub run_stop: CancellationToken,
    /// t = 0 of the run, for `delay_abort_eval`.
    pub run_start: Instant,
}

impl ThresholdWatch {
    /// Watches `thresholds`; an `abort_on_fail` one that fails cancels `run_stop`.
    pub fn new(thresholds: &[Threshold], run_stop: CancellationToken, run_start: Instant) -> Self {
        Self {
            thresholds: thresholds
                .iter()
                .filter(|t| t.abort_on_fail)
                .cloned()
                .collect(),
            all: thresholds.to_vec(),
            run_stop,
            run_start,
        }
    }

    /// Whether a capacity-search step held: it completed requests, dropped none, and every
    /// threshold that applies to it (untagged, or tagged with its scenario) passed.
    fn verdict(&self, recorder: &Recorder, key: &GroupKey) -> Verdict {
        let Some(g) = recorder.group(key) else {
            return Verdict {
                passed: false,
                failed: vec!["no request completed".into()],
                observed: Vec::new(),
            };
        };
        let outcomes: Vec<_> = self
            .all
            .iter()
            .filter(|t| t.applies_to_scenario(&key.scenario))
            .map(|t| evaluate_on(t, g))
            .collect();
        let observed = outcomes
            .iter()
            .map(|o| crate::metrics::sample::StepThreshold {
                label: o.label(),
                observed: o.observed,
                limit: o.limit,
                unit: o.unit.clone(),
                passed: o.passed,
            })
            .collect();
        let mut failed: Vec<String> = outcomes
            .iter()
            .filter(|o| !o.passed)
            .map(|o| o.label())
            .collect();
        if g.ok == 0 {
            failed.push("no request succeeded".into());
        }
        if g.dropped > 0 {
            failed.push(format!(
                "{} dropped iterations (max_vus reached)",
                g.dropped
            ));
        }
        Verdict {
            passed: failed.is_empty(),
            failed,
            observed,
        }
    }

    /// The first abort_on_fail threshold failing past its delay; it stops the run.
    fn check(&self, recorder: &Recorder) -> Option<String> {
        let elapsed = self.run_start.elapsed();
        let due: Vec<Threshold> = self
            .thresholds
            .iter()
            .filter(|t| elapsed >= t.delay_abort_eval)
            .cloned()
            .collect();
        let failed = evaluate_all(&due, recorder)
            .into_iter()
            .find(|o| !o.passed)?;
        self.run_stop.cancel();
        Some(failed.label())
    }
}

/// The recorder task: the only owner of the aggregates, the raw log and the progress display.
/// Returns the aggregates, the threshold that aborted the run (if one did) and the error that
/// stopped the raw log (if one did: the run goes on, but must not end as a success).
pub async fn collect(
    mut rx: mpsc::Receiver<Event>,
    mut progress: Progress,
    mut raw: Option<std::io::BufWriter<std::fs::File>>,
    raw_format: raw::RawFormat,
    secrets: Secrets,
    watch: ThresholdWatch,
    live: Option<Arc<LiveMetrics>>,
) -> (Recorder, Option<String>, Option<std::io::Error>) {
    let mut raw_failure = None;
    let mut recorder = Recorder::with_limits(thresholds::request_limits(&watch.all));
    let mut aborted_by = None;
    let mut tick =
        tokio::time::interval_at(watch.run_start + THRESHOLD_INTERVAL, THRESHOLD_INTERVAL);
    let mut flush = tokio::time::interval_at(watch.run_start + RAW_FLUSH, RAW_FLUSH);
    loop {
        let event = tokio::select! {
            _ = flush.tick(), if raw.is_some() => {
                // Even a process killed with SIGKILL loses at most this last second of the log.
                if let Some(Err(err)) = raw.as_mut().map(Write::flush) {
                    eprintln!("warning: raw log stopped: {err}");
                    raw = None;
                    raw_failure = Some(err);
                }
                continue;
            }
            event = rx.recv() => match event {
                Some(event) => event,
                None => break,
            },
            _ = tick.tick(), if live.is_some() || (aborted_by.is_none() && !watch.thresholds.is_empty()) => {
                if let Some(live) = &live {
                    live.thresholds(&evaluate_all(&watch.all, &recorder));
                }
                if aborted_by.is_some() || watch.thresholds.is_empty() {
                    continue;
                }
                aborted_by = watch.check(&recorder);
                if let Some(label) = &aborted_by {
                    eprintln!("threshold {label} failed: stopping the run (abort_on_fail)");
                }
                continue;
            }
        };
        let event = match event {
            Event::Evaluate { key, reply } => {
                let _ = reply.send(watch.verdict(&recorder, &key));
                continue;
            }
            event => event,
        };
        recorder.record(&event);
        if let Some(live) = &live {
            feed_live(live, &event);
        }
        match &event {
            Event::Finished(sample) => {
                if let Some(out) = raw.as_mut() {
                    if let Err(err) = raw::write_line(out, sample, &secrets, raw_format) {
                        eprintln!("warning: raw log stopped: {err}");
                        raw = None;
                        raw_failure = Some(err);
                    }
                }
                match &sample.key {
                    Some(key) => progress.finished(key, recorder.group(key)),
                    None => progress.warmup_finished(matches!(
                        &sample.outcome,
                        crate::metrics::Outcome::Done(m) if m.error.is_some()
                    )),
                }
            }
            Event::GroupDone(key) => {
                let summary = recorder.group(key).map(summarize);
                progress.group_done(key, summary.as_ref());
            }
            Event::Started { .. } | Event::Dropped { .. } | Event::Evaluate { .. } => {}
        }
    }
    if let Some(mut out) = raw {
        if let Err(err) = out.flush().and_then(|()| out.get_ref().sync_all()) {
            eprintln!("warning: raw log incomplete: {err}");
            raw_failure = Some(err);
        }
    }
    progress.finish();
    (recorder, aborted_by, raw_failure)
}
