//! One run, as a story in three acts: [`prepare`](Prepared) the plans, the outputs and the
//! recorder task; [`drive`](Prepared::drive) warm-up and phases through the executors; and
//! [`finish`] by assembling, saving and rendering the result, then the hook script's `teardown`.
//!
//! - [`config`]: command line over scenario over environment, resolved once.
//! - [`target`]: the URL, the backend and the simulator started for the run.
//! - [`collector`]: the recorder task, the one owner of every aggregate.

pub mod collector;
pub mod config;
pub mod target;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::compile::Loaded;
use crate::error::{Error, EXIT_HOOK, EXIT_INTERRUPTED, EXIT_THRESHOLDS_FAILED};
use crate::executor::open::CapacityReport;
use crate::executor::{arm_grace, Runner};
use crate::metrics::{Group, GroupKey, Recorder};
use crate::output::result::{self, RunFacts, RunResult};
use crate::output::{files, raw, redact};
use crate::plan::{self, PhasePlan, PlanKind};
use crate::prompts::Picker;
use crate::report;
use crate::report::progress::Progress;
use collector::{collect, start_live_metrics, Live, ThresholdWatch};
pub use config::{RunConfig, RunOptions};
pub use target::Target;

/// How long requests in flight may finish after Ctrl-C before they are cut off.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// How a command ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Everything ran.
    Success,
    /// Ctrl-C stopped the run; partial results were written.
    Interrupted,
    /// A threshold failed; all outputs were written.
    ThresholdsFailed,
    /// The hook script's `teardown` failed; all outputs were written.
    HookFailed,
}

impl Status {
    /// The process exit code.
    pub fn exit_code(self) -> u8 {
        match self {
            Status::Success => 0,
            Status::Interrupted => EXIT_INTERRUPTED,
            Status::ThresholdsFailed => EXIT_THRESHOLDS_FAILED,
            Status::HookFailed => EXIT_HOOK,
        }
    }
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The result document.
    pub result: RunResult,
    /// Where it was written.
    pub result_path: PathBuf,
    /// The per-request log, with `--raw`.
    pub raw_path: Option<PathBuf>,
    /// The HTML report (absent when its template failed to render).
    pub report_path: Option<PathBuf>,
    /// The hook script's `teardown` failure, if any (the results are saved).
    pub teardown_error: Option<String>,
}

impl RunOutcome {
    /// Interrupted beats failed thresholds, as in k6.
    pub fn status(&self) -> Status {
        if self.result.interrupted {
            Status::Interrupted
        } else if self.teardown_error.is_some() {
            Status::HookFailed
        } else if self.result.thresholds.iter().any(|t| !t.passed) {
            Status::ThresholdsFailed
        } else {
            Status::Success
        }
    }
}

/// How a run is told to stop from outside (Ctrl-C, SIGTERM, SIGHUP). The first request ends
/// the sending of new requests and gives those in flight its grace period (5 s); `now` cuts the
/// grace short. Either way the results gathered so far are written.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    requested: CancellationToken,
    now: CancellationToken,
}

impl Stop {
    /// A stop nobody has asked for yet.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// No new requests; those in flight get the grace period.
    pub fn request(&self) {
        self.requested.cancel();
    }

    /// Cut requests in flight off now (a second signal).
    pub fn now(&self) {
        self.requested.cancel();
        self.now.cancel();
    }

    /// Whether a stop was asked for.
    pub fn is_requested(&self) -> bool {
        self.requested.is_cancelled()
    }
}

impl From<CancellationToken> for Stop {
    /// A stop requested by cancelling `token`, with the full grace period.
    fn from(token: CancellationToken) -> Stop {
        Stop {
            requested: token,
            now: CancellationToken::new(),
        }
    }
}

/// Runs a loaded scenario to its end or until a stop is requested, and writes the results.
pub async fn execute(
    loaded: Loaded,
    opts: &RunOptions,
    stop: impl Into<Stop>,
) -> Result<RunOutcome, Error> {
    let stop = stop.into();
    let mut config = RunConfig::resolve(loaded, opts)?;
    let target = Target::connect(&config).await?;
    // Nothing is measured yet, so a signal here ends the command at once: there are no
    // results to write, and a slow or hostile server must not hold the process.
    let interrupted = |during: &'static str| Error::Interrupted { during };
    if config.preflight {
        tokio::select! {
            checked = target.preflight(&config.scenario().target) => checked?,
            _ = stop.requested.cancelled() => return Err(interrupted("the pre-flight check")),
        }
    }
    if config.scenario().target.tokenizer.is_some() {
        let requested = stop.requested.clone();
        tokio::select! {
            counted = count_synthetic_prompts(&mut config, &target) => counted?,
            _ = requested.cancelled() => return Err(interrupted("the prompt sizing (target.tokenizer)")),
        }
    }
    execute_on(config, target, stop).await
}

/// The tokenizer the scenario asks for: the server's, or the file read at load.
fn tokenizer_for(
    config: &RunConfig,
    url: &str,
) -> Result<Option<Arc<crate::backend::tokenize::Tokenizer>>, Error> {
    use crate::backend::tokenize::{ServerTokenizer, Tokenizer};
    let target = &config.scenario().target;
    match &target.tokenizer {
        None => Ok(None),
        Some(crate::scenario::TokenizerKind::File(_)) => Ok(config
            .loaded
            .tokenizer
            .clone()
            .map(|t| Arc::new(Tokenizer::Local(t)))),
        Some(crate::scenario::TokenizerKind::Named(_)) => {
            ServerTokenizer::new(url, &target.model, config.api_key.as_deref())
                .map(|t| Some(Arc::new(Tokenizer::Server(t))))
                .map_err(|e| Error::Preflight {
                    url: redact::url(url),
                    tried: "the tokenizer".into(),
                    message: e.to_string(),
                })
        }
    }
}

/// `target.tokenizer`: every synthetic prompt set generated again, sized by the real
/// tokenizer, before any load.
async fn count_synthetic_prompts(config: &mut RunConfig, target: &Target) -> Result<(), Error> {
    let Some(tokenizer) = tokenizer_for(config, &target.url)? else {
        return Ok(());
    };
    let scenario = config.scenario().clone();
    let specs: Vec<&crate::scenario::Synthetic> = match &scenario.prompts {
        crate::scenario::Prompts::List(items) => items
            .iter()
            .filter_map(|item| match item {
                crate::scenario::PromptItem::Synthetic(s) => Some(&s.synthetic),
                _ => None,
            })
            .collect(),
        crate::scenario::Prompts::Include(_) => Vec::new(),
    };
    let mut next = 0;
    for set in config.loaded.prompt_sets.iter_mut() {
        let Some(spec) = specs.get(next) else { break };
        if *set.name != *spec.name.as_deref().unwrap_or("synthetic") {
            continue;
        }
        next += 1;
        let counted = crate::prompts::synthetic::generate_counted(
            spec,
            scenario.target.backend,
            scenario.seed.unwrap_or(1),
            |text| {
                let tokenizer = tokenizer.clone();
                async move { tokenizer.count(&text).await }
            },
        )
        .await
        .map_err(|e| Error::Preflight {
            url: redact::url(&target.url),
            tried: tokenizer.describe(),
            message: e.to_string(),
        })?;
        set.entries = counted.entries;
    }
    Ok(())
}

/// Runs a resolved configuration against `target` (whose backend may be a test double).
pub async fn execute_on(
    config: RunConfig,
    mut target: Target,
    stop: impl Into<Stop>,
) -> Result<RunOutcome, Error> {
    let stop = stop.into();
    if let Some(hooks) = &config.loaded.hooks {
        hooks.setup().map_err(Error::Hook)?;
    }
    let prepared = Prepared::new(&config, &target, &stop).await?;
    let driven = prepared.drive(&config).await?;
    target.disconnect();
    finish(&config, &target, &stop, driven).await
}

/// Everything set up before the first request.
struct Prepared {
    plans: Vec<PhasePlan>,
    /// The most requests the plans hold in flight at once.
    in_flight: u64,
    started_at: String,
    stem: String,
    raw_path: Option<PathBuf>,
    runner: Runner,
    collector: tokio::task::JoinHandle<(Recorder, Option<String>, Option<std::io::Error>)>,
    live: Option<Live>,
    finished: CancellationToken,
}

/// What driving the load left for `finish`.
struct Driven {
    recorder: Recorder,
    raw_failure: Option<std::io::Error>,
    aborted_by: Option<String>,
    capacity: Vec<CapacityReport>,
    duration: Duration,
    started_at: String,
    stem: String,
    raw_path: Option<PathBuf>,
    live: Option<Live>,
    /// Connections opened before the measured load.
    preconnected: u64,
}

/// The most connections opened ahead of the load: beyond this, the open-model `max_vus`
/// defaults are a ceiling rather than what a run holds.
const MAX_PRECONNECT: u64 = 10_000;

impl Prepared {
    /// Plans, output names, the raw log, the recorder task and the runner.
    async fn new(config: &RunConfig, target: &Target, stop: &Stop) -> Result<Prepared, Error> {
        let scenario = config.scenario();
        let mut plans: Vec<PhasePlan> = scenario
            .scenarios
            .iter()
            .map(|(name, phase)| plan::build(name, phase))
            .collect();
        if let Some((index, count)) = config.shard {
            plans = plan::shard(plans, index, count)?;
        }
        let in_flight = most_in_flight(&plans);
        ensure_open_files(
            in_flight,
            matches!(config.endpoint, config::Endpoint::Simulator(_)),
        )?;
        let now = SystemTime::now();
        let started_at = humantime::format_rfc3339_seconds(now).to_string();
        // Milliseconds in the name, and a counter when even those collide, keep two runs of one
        // scenario from ever writing the same files.
        let mut stem = format!(
            "{}-{}",
            result::file_stem(&scenario.name),
            result::compact_timestamp(&humantime::format_rfc3339_millis(now).to_string())
        );
        // Found now rather than after the whole run.
        files::check_writable(&config.output_dir)?;
        let (raw_path, raw_file) = match config.raw {
            Some(format) => {
                let suffix = format.suffix();
                let (file, taken) = files::open_unique(&config.output_dir, &stem, suffix)?;
                stem = taken;
                let path = config.output_dir.join(format!("{stem}{suffix}"));
                let mut out = std::io::BufWriter::new(file);
                if format == raw::RawFormat::Csv {
                    raw::write_header(&mut out).map_err(|source| {
                        Error::Write(files::WriteError {
                            path: path.clone(),
                            source,
                        })
                    })?;
                }
                (Some(path), Some(out))
            }
            None => (None, None),
        };

        let (events, rx) = mpsc::channel(4096);
        // Ctrl-C cancels `stop`; a failed abort_on_fail threshold cancels only `run_stop`, so
        // the two stay distinguishable in the result and the exit code.
        let run_stop = stop.requested.child_token();
        let run_start = Instant::now();
        let watch = ThresholdWatch::new(&config.loaded.thresholds, run_stop.clone(), run_start);
        let warmup = scenario
            .warmup
            .as_ref()
            .map_or(0, |w| u64::from(w.requests));
        let progress = Progress::new(config.progress, expected_totals(&plans), warmup);
        let run_labels = crate::output::prometheus::RunLabels {
            run_id: stem.clone(),
            scenario_name: scenario.name.clone(),
            scenario_sha256: config.loaded.content_sha256.chars().take(12).collect(),
            version: crate::cli::VERSION.to_string(),
        };
        let live = start_live_metrics(
            config.prometheus,
            config.remote_write.clone(),
            run_labels,
            &scenario.target.model,
            scenario.target.backend.as_str(),
            &planned_groups(&plans),
        )
        .await?;
        let collector = tokio::spawn(collect(
            rx,
            progress,
            raw_file,
            config.raw.unwrap_or_default(),
            redact::Secrets::new(config.api_key.as_deref(), &target.url),
            watch,
            live.as_ref().map(|l| l.metrics.clone()),
        ));
        // A second signal cuts requests in flight off at once: `abort` is its child.
        let abort = stop.now.child_token();
        let finished = CancellationToken::new();
        // After Ctrl-C, requests in flight get INTERRUPT_GRACE to finish, then they are cut off.
        arm_grace(
            run_stop.clone(),
            abort.clone(),
            INTERRUPT_GRACE,
            finished.clone(),
        );
        let runner = Runner {
            backend: target.backend.clone(),
            prompts: Arc::new(Picker::new(
                config.loaded.prompt_sets.clone(),
                scenario.order.unwrap_or_default(),
                scenario.seed.unwrap_or(1),
            )),
            events,
            run_start,
            stop: run_stop,
            abort,
            precise_timer: config.precise_timer,
            hooks: config.loaded.hooks.clone(),
            conversation: scenario.conversation.clone().map(Arc::new),
            tokenizer: tokenizer_for(config, &target.url)?,
        };
        Ok(Prepared {
            plans,
            in_flight,
            started_at,
            stem,
            raw_path,
            runner,
            collector,
            live,
            finished,
        })
    }

    /// Warm-up, then every phase at once (each from its start time), then the recorder's
    /// aggregates once the last event is in.
    async fn drive(self, config: &RunConfig) -> Result<Driven, Error> {
        let clock = Instant::now();
        let warmup = config.scenario().warmup.as_ref().map_or(0, |w| w.requests);
        let runner = self.runner;
        runner.warmup(warmup).await;
        // The connections the load will hold, opened now, outside every measurement (after the
        // warm-up, so a cold model load is not multiplied by them): otherwise the first wave of
        // each level pays for TCP setup, and at 1,000 streams for the listener's backlog.
        let preconnected = if runner.stop.is_cancelled() || !config.preconnect {
            0
        } else {
            let wanted = self.in_flight.min(MAX_PRECONNECT) as usize;
            tokio::select! {
                opened = runner.backend.preconnect(wanted) => opened as u64,
                _ = runner.stop.cancelled() => 0,
            }
        };
        // Phase start times count from the end of warm-up, so warm-up never overlaps measurement.
        let phases = self.plans.into_iter().map(|p| {
            let r = runner.clone();
            async move {
                let offset = r.run_start.elapsed();
                let p = PhasePlan {
                    start_time: p.start_time + offset,
                    ..p
                };
                r.phase(p).await
            }
        });
        let capacity: Vec<_> = futures_util::future::join_all(phases)
            .await
            .into_iter()
            .flatten()
            .collect();
        // The last sender goes with the runner, which ends the recorder task's loop.
        drop(runner);
        self.finished.cancel();
        let (recorder, aborted_by, raw_failure) =
            self.collector.await.map_err(|source| Error::Task {
                what: "recorder",
                source,
            })?;
        Ok(Driven {
            recorder,
            raw_failure,
            aborted_by,
            capacity,
            duration: clock.elapsed(),
            started_at: self.started_at,
            stem: self.stem,
            raw_path: self.raw_path,
            live: self.live,
            preconnected,
        })
    }
}

/// Assembles the result, prints its table (for the command line), saves it, lets `/metrics`
/// linger, renders the HTML report, then runs
/// the hook script's `teardown` once everything is saved, so its failure loses nothing.
async fn finish(
    config: &RunConfig,
    target: &Target,
    stop: &Stop,
    driven: Driven,
) -> Result<RunOutcome, Error> {
    let result = result::assemble(
        RunFacts {
            scenario: config.scenario(),
            source: &config.loaded.source,
            content_sha256: &config.loaded.content_sha256,
            extends: &config.loaded.bases,
            shard: config.shard.map(|(index, count)| result::ShardInfo {
                index: Some(index),
                count,
            }),
            overrides: config.overrides.clone(),
            url: redact::url(&target.url),
            simulated: target.simulated,
            started_at: driven.started_at,
            duration: driven.duration,
            interrupted: stop.is_requested(),
            aborted_by: driven.aborted_by,
            capacity: driven.capacity,
            thresholds: &config.loaded.thresholds,
            no_data_fails: config.no_data_fails,
            preconnected: driven.preconnected,
            receive_clock: target.backend.receive_clock().map(str::to_string),
        },
        &driven.recorder,
    );
    if let Some(warning) = report::table::every_request_failed(&result) {
        eprintln!("{warning}");
    }
    if config.print_summary {
        // Shown before any file is written, so a failed write still leaves the numbers on screen.
        // A closed stdout must not change the exit code a CI gate reads: errors are ignored.
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(report::table::summary(&result).as_bytes());
        let _ = out.flush();
    }
    let json = result::to_json(&result).map_err(|source| Error::Serialize {
        what: "the result",
        source,
    })?;
    let (result_path, stem) = result::save(&json, &config.output_dir, &driven.stem)?;
    if let Some(live) = driven.live {
        live.metrics.thresholds(&result.thresholds);
        live.linger(&stop.requested).await;
    }
    // The results are saved: a template that fails to render is reported, not fatal; a report
    // that cannot be written is an error like any other failed write.
    let report_path = match report::render_html(&result, &config.templates) {
        Ok(html) => {
            let path = config.output_dir.join(format!("report_{stem}.html"));
            files::replace(&path, html.as_bytes())?;
            files::replace(
                &config.output_dir.join("report_latest.html"),
                html.as_bytes(),
            )?;
            Some(path)
        }
        Err(source) => {
            let err = Error::Template {
                template: "HTML report",
                source,
            };
            eprintln!("warning: no HTML report: {}", crate::error::chain(&err));
            None
        }
    };
    let teardown_error = match &config.loaded.hooks {
        Some(hooks) => {
            let summary =
                serde_json::to_value(&result.total).map_err(|source| Error::Serialize {
                    what: "the run summary for teardown",
                    source,
                })?;
            hooks.teardown(&summary).err().map(|e| e.to_string())
        }
        None => None,
    };
    if let Some(err) = &teardown_error {
        eprintln!("error: hook script: {err}");
    }
    // Everything else is written; a raw log that could not be is still a failed write.
    if let (Some(source), Some(path)) = (driven.raw_failure, &driven.raw_path) {
        return Err(Error::Write(files::WriteError {
            path: path.clone(),
            source,
        }));
    }
    Ok(RunOutcome {
        result,
        result_path,
        raw_path: driven.raw_path,
        report_path,
        teardown_error,
    })
}

/// Open files a run needs besides one per connection: the runtime, listeners, output files.
const FILES_BESIDES_CONNECTIONS: u64 = 64;

/// The most requests the plans can hold open at once (phases run in parallel, so they add).
fn most_in_flight(plans: &[PhasePlan]) -> u64 {
    plans
        .iter()
        .map(|p| match &p.kind {
            PlanKind::Levels(levels) => levels.iter().map(|l| l.vus).max().unwrap_or(0),
            PlanKind::ConstantVus { vus, .. } => *vus,
            PlanKind::RampingVus { steps, .. } => steps.iter().map(|s| s.vus).max().unwrap_or(0),
            PlanKind::ArrivalRate(a) => a.max_vus,
            PlanKind::CapacitySearch(c) => match (c.mode, c.max) {
                (crate::scenario::SearchMode::Concurrency, Some(max)) => max.ceil() as u32,
                _ => c.max_vus,
            },
        })
        .map(u64::from)
        .sum()
}

/// Raises the open-file limit to what `streams` connections need (twice as many with the
/// in-process simulator, which holds the server side too), before anything is sent; when the
/// hard limit is lower, says so and how to raise it, instead of failing requests mid-run with
/// "too many open files".
fn ensure_open_files(streams: u64, simulated: bool) -> Result<(), Error> {
    let needed = streams * if simulated { 2 } else { 1 } + FILES_BESIDES_CONNECTIONS;
    match rlimit::increase_nofile_limit(needed) {
        Ok(limit) if limit >= needed => Ok(()),
        Ok(limit) => Err(Error::Usage(format!(
            "this run holds up to {streams} requests open at once and needs about {needed} open files, but the limit is {limit} and cannot be raised (the hard limit): raise it (`ulimit -n {needed}`, LimitNOFILE= in systemd, --ulimit nofile= in Docker) or lower the concurrency"
        ))),
        // Unknown: the run goes on; a shortage would show as `connect` errors.
        Err(e) => {
            eprintln!("warning: cannot read or raise the open-file limit: {e}");
            Ok(())
        }
    }
}

/// The groups the plans will record into, as far as they are known before the run (a capacity
/// search's steps are not), so their live counters can start at 0.
fn planned_groups(plans: &[PhasePlan]) -> Vec<GroupKey> {
    let mut out = Vec::new();
    for p in plans {
        let scenario: Arc<str> = p.name.as_str().into();
        let groups: Vec<Group> = match &p.kind {
            PlanKind::Levels(levels) => levels.iter().map(|l| Group::Level(l.level)).collect(),
            PlanKind::ConstantVus { .. } => vec![Group::All],
            PlanKind::RampingVus { stage_ends, .. } => {
                (0..stage_ends.len()).map(Group::Stage).collect()
            }
            PlanKind::ArrivalRate(a) if a.stage_ends.is_empty() => vec![Group::All],
            PlanKind::ArrivalRate(a) => (0..a.stage_ends.len()).map(Group::Stage).collect(),
            PlanKind::CapacitySearch(_) => Vec::new(),
        };
        out.extend(groups.into_iter().map(|group| GroupKey {
            scenario: scenario.clone(),
            group,
        }));
    }
    out
}

/// Requests each level (and each fixed-iteration phase) will send, for the progress bars.
fn expected_totals(plans: &[PhasePlan]) -> HashMap<GroupKey, u64> {
    let mut totals = HashMap::new();
    for p in plans {
        let scenario: Arc<str> = p.name.as_str().into();
        match &p.kind {
            PlanKind::Levels(levels) => {
                for level in levels {
                    totals.insert(
                        GroupKey {
                            scenario: scenario.clone(),
                            group: Group::Level(level.level),
                        },
                        level.requests,
                    );
                }
            }
            PlanKind::ArrivalRate(crate::plan::ArrivalPlan {
                max_arrivals: Some(n),
                stage_ends,
                ..
            }) if stage_ends.is_empty() => {
                totals.insert(
                    GroupKey {
                        scenario,
                        group: Group::All,
                    },
                    *n,
                );
            }
            PlanKind::ConstantVus {
                iterations: Some(n),
                ..
            } => {
                totals.insert(
                    GroupKey {
                        scenario,
                        group: Group::All,
                    },
                    *n,
                );
            }
            _ => {}
        }
    }
    totals
}
