//! Open-model executors, coordinated omission and capacity search against the simulator, under
//! tokio's paused clock (dispatch is exact in virtual time, so lag is the executor's own).

use std::time::Duration;

use crate::common::{options, run, scenario, start_sim};
use llm_bench::duration::HumanDuration;
use llm_bench::plan::arrivals::{Process, RateSegment, Schedule};
use llm_bench::sim::model::{estimate_prompt_tokens, service_time};
use llm_bench::sim::{OutputTokens, SimConfig};

const PROMPT: &str = "Say something about queues.";

/// One slot, 10 ms per token, 11 tokens: one request takes 103.5 ms, so capacity is 9.66 req/s.
fn one_slot(parallel: u32) -> SimConfig {
    SimConfig {
        parallel,
        prefill_per_token: HumanDuration(Duration::from_micros(500)),
        decode_per_token: HumanDuration(Duration::from_millis(10)),
        load_time: HumanDuration(Duration::ZERO),
        output_tokens: OutputTokens { min: 11, max: 11 },
        ..SimConfig::default()
    }
}

fn service_ms(cfg: &SimConfig) -> f64 {
    service_time(cfg, estimate_prompt_tokens(PROMPT.len()), 11).as_secs_f64() * 1000.0
}

fn yaml(load: &str) -> String {
    format!("name: open\ntarget: {{model: m, timeout: 120s}}\nprompts: [\"{PROMPT}\"]\nscenarios:\n  open:\n{load}")
}

fn raw_lines(out: &llm_bench::RunOutcome) -> Vec<serde_json::Value> {
    std::fs::read_to_string(out.raw_path.as_ref().unwrap())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn within_capacity_every_arrival_starts_on_time() {
    let sim = start_sim(one_slot(8)).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(scenario(&yaml("    executor: constant-arrival-rate\n    rate: 20\n    duration: 10s\n    max_vus: 8\n")), &options(dir.path(), Some(sim.url()))).await;
    let t = &out.result.total;
    assert_eq!((t.requests, t.errors, t.dropped_iterations), (200, 0, 0));
    assert!(
        t.schedule_lag_ms.as_ref().unwrap().max < 1.0,
        "{:?}",
        t.schedule_lag_ms
    );
    // No queueing anywhere: service and schedule-relative latency agree.
    let (e2e, from_schedule) = (
        t.e2e_latency_ms.as_ref().unwrap(),
        t.e2e_from_schedule_ms.as_ref().unwrap(),
    );
    assert!((from_schedule.p99 - e2e.p99).abs() < 1.0);
    assert!(
        (t.requests_per_second - 20.0).abs() < 0.5,
        "{}",
        t.requests_per_second
    );
}

#[tokio::test(start_paused = true)]
async fn the_executor_follows_the_pure_schedule_exactly() {
    let sim = start_sim(one_slot(64)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), Some(sim.url()));
    opts.raw = Some(Default::default());
    let load = "    executor: constant-arrival-rate\n    rate: 30\n    duration: 10s\n    max_vus: 64\n    arrivals: poisson\n    seed: 11\n";
    let out = run(scenario(&yaml(load)), &opts).await;
    let planned: Vec<f64> = Schedule::new(
        vec![RateSegment {
            duration: Duration::from_secs(10),
            from: 30.0,
            to: 30.0,
        }],
        Process::Poisson,
        11,
    )
    .map(|d| d.as_secs_f64() * 1000.0)
    .collect();
    let mut intended: Vec<f64> = raw_lines(&out)
        .iter()
        .map(|l| l["intended_ms"].as_f64().unwrap())
        .collect();
    intended.sort_by(f64::total_cmp);
    assert_eq!(intended.len(), planned.len());
    let offset = intended[0] - planned[0];
    for (got, want) in intended.iter().zip(&planned) {
        assert!((got - offset - want).abs() < 0.01, "{got} vs {want}");
    }
}

#[tokio::test(start_paused = true)]
async fn above_capacity_waiting_arrivals_show_coordinated_omission() {
    let cfg = one_slot(1);
    let s = service_ms(&cfg);
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), Some(sim.url()));
    opts.raw = Some(Default::default());
    // 20/s against 9.66/s of capacity; at most 2 in flight, the rest wait for a VU.
    let load = "    executor: constant-arrival-rate\n    rate: 20\n    duration: 10s\n    max_vus: 2\n    when_busy: wait\n";
    let out = run(scenario(&yaml(load)), &opts).await;
    let mut lines = raw_lines(&out);
    lines.sort_by(|a, b| {
        a["intended_ms"]
            .as_f64()
            .unwrap()
            .total_cmp(&b["intended_ms"].as_f64().unwrap())
    });
    let (early, late) = (&lines[5..15], &lines[lines.len() - 10..]);
    let mean = |ls: &[serde_json::Value], f: &dyn Fn(&serde_json::Value) -> f64| {
        ls.iter().map(f).sum::<f64>() / ls.len() as f64
    };
    let service = |l: &serde_json::Value| l["e2e_ms"].as_f64().unwrap();
    let from_schedule = |l: &serde_json::Value| {
        l["schedule_lag_ms"].as_f64().unwrap() + l["e2e_ms"].as_f64().unwrap()
    };
    // The server never sees more than 2 requests: service latency stays at about 2 service times...
    assert!(
        (mean(early, &service) - 2.0 * s).abs() < 0.15 * s,
        "early service {}",
        mean(early, &service)
    );
    assert!(
        (mean(late, &service) - 2.0 * s).abs() < 0.15 * s,
        "late service {}",
        mean(late, &service)
    );
    // ...while latency from the intended start grows with the backlog: by the end of 10 s about
    // (20 − 9.66) × 10 ≈ 100 arrivals wait ahead, several seconds.
    // Arrival k (every 50 ms) starts when arrival k − 2 ends, about (k − 1) service times in:
    // from its intended start that is about (s − 50)·k + s, growing linearly with time.
    let predicted = |ls: &[serde_json::Value]| {
        mean(ls, &|l| {
            (s - 50.0) * l["intended_ms"].as_f64().unwrap() / 50.0 + s
        })
    };
    for part in [early, late] {
        let (got, want) = (mean(part, &from_schedule), predicted(part));
        assert!(
            (got - want).abs() < 0.1 * want,
            "from schedule {got} vs predicted {want}"
        );
    }
    assert!(
        mean(late, &from_schedule) > 4000.0,
        "late from schedule {}",
        mean(late, &from_schedule)
    );
    let t = &out.result.total;
    // Arrivals still waiting when the phase ended never started: they count as dropped.
    assert_eq!(t.requests + t.dropped_iterations + t.interrupted, 200);
    assert!(t.dropped_iterations > 80, "{}", t.dropped_iterations);
    let summary_gap =
        t.e2e_from_schedule_ms.as_ref().unwrap().p95 / t.e2e_latency_ms.as_ref().unwrap().p95;
    assert!(
        summary_gap > 10.0,
        "the summary shows the difference: {summary_gap}"
    );
    // The lag grows over the run, second by second, as the backlog does.
    let lags: Vec<f64> = out
        .result
        .timeseries
        .iter()
        .filter_map(|p| p.lag_p95_ms)
        .collect();
    assert!(lags.len() >= 5, "{lags:?}");
    assert!(lags[lags.len() - 1] > 2.0 * lags[1].max(100.0), "{lags:?}");
}

#[tokio::test(start_paused = true)]
async fn above_capacity_dropping_arrivals_counts_dropped_iterations() {
    let cfg = one_slot(1);
    let s = service_ms(&cfg);
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let load = "    executor: constant-arrival-rate\n    rate: 20\n    duration: 10s\n    pre_allocated_vus: 2\n    max_vus: 2\n";
    let yaml = yaml(load) + "thresholds:\n  dropped_iterations: [\"count==0\"]\n";
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let t = &out.result.total;
    assert_eq!(
        t.requests + t.dropped_iterations + t.interrupted,
        200,
        "every arrival is accounted for"
    );
    assert!(t.dropped_iterations > 80, "{}", t.dropped_iterations);
    // Dropping keeps both latencies honest and equal: nothing waits on the client.
    assert!(t.schedule_lag_ms.as_ref().unwrap().max < 1.0);
    assert!(t.e2e_latency_ms.as_ref().unwrap().p95 < 2.2 * s);
    let gate = &out.result.thresholds[0];
    assert_eq!(
        (gate.passed, gate.observed),
        (false, Some(t.dropped_iterations as f64))
    );
    // The time series keeps the offered load: 20 due every second, the dropped ones included.
    let series = &out.result.timeseries;
    let due: u64 = series.iter().map(|p| p.scheduled).sum();
    let dropped: u64 = series.iter().map(|p| p.dropped).sum();
    assert_eq!((due, dropped), (200, t.dropped_iterations));
    assert!(series[3..9].iter().all(|p| p.scheduled == 20), "{series:?}");
    let view = llm_bench::report::view(&out.result);
    let offered = view
        .charts
        .offered_over_time
        .expect("an open-model run draws offered vs sent");
    assert_eq!(offered.matches("<polyline").count(), 3);
    assert!(view.charts.lag_over_time.is_some());
}

#[tokio::test(start_paused = true)]
async fn ramping_arrival_rate_keeps_metrics_per_stage() {
    let sim = start_sim(one_slot(64)).await;
    let dir = tempfile::tempdir().unwrap();
    let load = "    executor: ramping-arrival-rate\n    start_rate: 0\n    stages:\n      - {duration: 10s, target: 20}\n      - {duration: 5s, target: 20}\n    max_vus: 64\n";
    let out = run(scenario(&yaml(load)), &options(dir.path(), Some(sim.url()))).await;
    let groups = &out.result.scenarios[0].groups;
    let counts: Vec<u64> = groups.iter().map(|g| g.summary.requests).collect();
    // 0 -> 20/s over 10 s is 100 arrivals; 20/s for 5 s is 100 more.
    assert_eq!(counts, vec![100, 100]);
}

#[tokio::test(start_paused = true)]
async fn capacity_search_finds_the_rate_the_simulator_implies() {
    let cfg = one_slot(1);
    let s = service_ms(&cfg);
    let capacity = 1000.0 / s; // 9.66 req/s
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let load = "    executor: capacity-search\n    mode: rate\n    start: 1\n    precision: 0.05\n    step_duration: 10s\n    discard: 2s\n    arrivals: uniform\n";
    // Below capacity every request takes exactly one service time; above, a queue builds.
    // The capacity threshold gates the run on what the search found (about 9.66 req/s).
    let yaml = yaml(load)
        + format!(
            "thresholds:\n  e2e_latency: [\"p(95)<{}\"]\n  capacity: [\"value>=9\", \"value>=50\"]\n",
            (1.5 * s).round()
        )
        .as_str();
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let e2e = format!("p(95)<{}", (1.5 * s).round());
    let verdicts: Vec<(&str, &str, bool, bool)> = out
        .result
        .thresholds
        .iter()
        .map(|t| {
            (
                t.metric.as_str(),
                t.expression.as_str(),
                t.passed,
                t.judges_steps,
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        vec![
            ("capacity", "value>=9", true, false),
            ("capacity", "value>=50", false, false),
            // It judged each step; it is no verdict on the run, and says so.
            ("e2e_latency", e2e.as_str(), true, true),
        ]
    );
    assert_eq!(out.status(), llm_bench::Status::ThresholdsFailed);
    let table = llm_bench::report::render_markdown(&out.result, &Default::default()).unwrap();
    assert!(
        table.contains("1 of 2 failed"),
        "only the capacity gates count: {table}"
    );
    assert!(table.contains("↪"), "{table}");
    let report = &out.result.capacity[0];
    let found = report.capacity.unwrap();
    let failed = report.first_failure.unwrap();
    assert!(
        found <= capacity && failed > capacity,
        "{found} .. {failed} around {capacity}: {:?}",
        report.steps
    );
    assert!(
        (capacity - found) / capacity <= 0.05,
        "{found} vs {capacity}"
    );
    let values: Vec<f64> = report.steps.iter().map(|s| s.value).collect();
    assert_eq!(
        &values[..5],
        &[1.0, 2.0, 4.0, 8.0, 16.0],
        "geometric steps first"
    );
    // Each step is a group with its own metrics, and goodput counts the requests within limits.
    let groups = &out.result.scenarios[0].groups;
    assert_eq!(groups.len(), report.steps.len());
    let last_pass = groups
        .iter()
        .zip(&report.steps)
        .rfind(|(_, st)| st.passed)
        .unwrap()
        .0;
    assert!(
        (last_pass.summary.goodput_rps.unwrap() - last_pass.summary.requests_per_second).abs()
            < 0.01
    );
    // A run that is only a search still has a latency distribution (its passing steps), and
    // the report draws the search: offered vs achieved, and latency with failed steps marked.
    assert!(!out.result.spectrum.e2e_ms.is_empty());
    let view = llm_bench::report::view(&out.result);
    let charts = &view.charts.capacity[0];
    assert!(charts.load.contains("achieved") && charts.load.matches("<polyline").count() == 2);
    let marks = charts.latency.matches("class=\"boundary\"").count();
    assert_eq!(
        marks,
        report.steps.iter().filter(|s| !s.passed).count(),
        "one mark per failed step"
    );
    assert_eq!(report.time_unit_secs, Some(1.0));
    // Each step keeps what its thresholds read: a failed step's e2e p95 is over its limit.
    let failed = report.steps.iter().find(|s| !s.passed).unwrap();
    let e2e_reading = failed
        .thresholds
        .iter()
        .find(|t| t.label.starts_with("e2e_latency"))
        .unwrap();
    assert!(
        !e2e_reading.passed && e2e_reading.observed.unwrap() > e2e_reading.limit,
        "{e2e_reading:?}"
    );
    assert!(report.steps.iter().all(|s| !s.thresholds.is_empty()));
    assert!(charts.latency.contains("thresholds per step"));
    // Below capacity the achieved rate meets the offered one.
    let first = &groups[0].summary;
    assert!(
        (first.requests_per_second - 1.0).abs() < 0.15,
        "{}",
        first.requests_per_second
    );
}

#[tokio::test(start_paused = true)]
async fn capacity_search_by_concurrency_finds_the_slot_count() {
    let sim = start_sim(one_slot(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let load = "    executor: capacity-search\n    mode: concurrency\n    start: 1\n    step_duration: 5s\n";
    // With more users than slots, some wait a whole service time for their first token.
    let yaml = yaml(load) + "thresholds:\n  ttft: [\"p(95)<20ms\"]\n";
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let report = &out.result.capacity[0];
    assert_eq!(
        (report.capacity, report.first_failure),
        (Some(2.0), Some(3.0)),
        "{:?}",
        report.steps
    );
    assert_eq!(report.unit, "VUs");
}

#[tokio::test(start_paused = true)]
async fn a_concurrency_sweep_reports_its_saturation_point() {
    let mut cfg = one_slot(2);
    cfg.output_tokens = OutputTokens { min: 5, max: 30 };
    let sim = start_sim(cfg).await;
    let dir = tempfile::tempdir().unwrap();
    let load =
        "    executor: concurrency-levels\n    levels: [1, 2, 4, 8]\n    requests_per_level: 40\n";
    let out = run(scenario(&yaml(load)), &options(dir.path(), Some(sim.url()))).await;
    let knee = out.result.scenarios[0].knee.unwrap();
    assert_eq!(
        knee.saturation_level,
        Some(2),
        "two slots: throughput stops growing after 2 users"
    );
    assert!(
        matches!(knee.latency_knee_level, Some(4) | Some(8)),
        "{knee:?}"
    );
}

/// A rate sweep: each rate for its duration, a group per rate named by it, thresholds per rate
/// through `stage:N`, and the report's sweep charts against the offered rate. Past capacity
/// (9.66/s) latency grows while requests/s stays at capacity.
#[tokio::test(start_paused = true)]
async fn a_rate_sweep_measures_each_rate_as_its_own_group() {
    let sim = start_sim(one_slot(1)).await;
    let dir = tempfile::tempdir().unwrap();
    let load = "    executor: rate-levels\n    rates: [2, 5, 20]\n    duration: 6s\n    max_vus: 100\n    arrivals: uniform\n";
    let yaml = yaml(load) + "thresholds:\n  \"e2e_latency{stage:1}\": [\"p(95)<200ms\"]\n  \"e2e_latency{stage:3}\": [\"p(95)<200ms\"]\n";
    let out = run(scenario(&yaml), &options(dir.path(), Some(sim.url()))).await;
    let groups = &out.result.scenarios[0].groups;
    let labels: Vec<&str> = groups.iter().map(|g| g.label.as_str()).collect();
    assert_eq!(labels, ["rate 2", "rate 5", "rate 20"]);
    assert_eq!(groups[2].rate, Some(20.0));
    // Each rate was offered for 6 s: 12, 30 and 120 arrivals.
    let due: u64 = out.result.timeseries.iter().map(|p| p.scheduled).sum();
    assert_eq!(due, 12 + 30 + 120);
    assert_eq!(groups[0].summary.requests, 12);
    // Below capacity every request is served alone; at 20/s a queue builds.
    let p95 = |i: usize| groups[i].summary.e2e_latency_ms.as_ref().unwrap().p95;
    assert!(p95(0) < 150.0 && p95(2) > 1000.0, "{} {}", p95(0), p95(2));
    let verdicts: Vec<bool> = out.result.thresholds.iter().map(|t| t.passed).collect();
    assert_eq!(verdicts, [true, false], "stage:N selects the N-th rate");
    let view = llm_bench::report::view(&out.result);
    assert_eq!(view.charts.sweeps.len(), 1);
    assert!(view.charts.sweeps[0]
        .latency
        .contains("latency vs offered rate"));
    assert_eq!(view.charts.sweeps[0].kind, "Rate sweep");
}
