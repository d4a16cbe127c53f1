//! Orchestration only: load -> validate -> plan -> execute -> summarise -> write.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backend::{openai, resolve_ollama_url, Backend, OllamaBackend, OpenAiBackend};
use crate::cli::{Cli, Command, ReportArgs, RunArgs, SimArgs};
use crate::error::{Error, EXIT_INTERRUPTED, EXIT_THRESHOLDS_FAILED};
use crate::executor::{arm_grace, Runner};
use crate::metrics::summary::summarize;
use crate::metrics::Verdict;
use crate::metrics::{Event, Group, GroupKey, Recorder};
use crate::output::progress::{Progress, ProgressMode};
use crate::output::prometheus::{self, LiveMetrics};
use crate::output::result::{
    self, HostInfo, RunResult, ScenarioInfo, TargetInfo, ToolInfo, WarmupSummary,
};
use crate::output::{ci, raw, table};
use crate::plan::{self, PlanKind};
use crate::prompts::Picker;
use crate::report::{self, Format, Templates};
use crate::scenario::{self, BackendKind, Loaded, Phase, Scenario, Target};
use crate::sim::{self, SimConfig};
use crate::thresholds::eval::{evaluate_all, evaluate_on};
use crate::thresholds::parse::TagKey;
use crate::thresholds::{self, Threshold};

/// The quickstart scenario, built in so `llm-bench run` works from any directory.
pub const QUICKSTART: &str = include_str!("../scenarios/quickstart.yaml");
const QUICKSTART_PATH: &str = "scenarios/quickstart.yaml";
/// How long requests in flight may finish after Ctrl-C before they are cut off.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);
/// How often thresholds are evaluated during the run (k6's interval).
const THRESHOLD_INTERVAL: Duration = Duration::from_secs(2);

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
            Status::HookFailed => crate::error::EXIT_HOOK,
        }
    }
}

/// Runs one command.
pub async fn run(cli: Cli) -> Result<Status, Error> {
    match cli.command {
        Command::Run(args) => cmd_run(args).await,
        Command::Validate(args) => validate(&args.files).map(|()| Status::Success),
        Command::Schema(args) => {
            let text = if args.result {
                result::result_schema_json()
            } else if args.prompt_set {
                scenario::schema::prompt_set_schema_json()
            } else {
                scenario::schema::scenario_schema_json()
            };
            print!("{text}");
            Ok(Status::Success)
        }
        Command::Sim(args) => cmd_sim(args).await,
        Command::Report(args) => cmd_report(&args),
    }
}

fn validate(files: &[PathBuf]) -> Result<(), Error> {
    let mut problems = Vec::new();
    for file in files {
        match scenario::load_file(file) {
            Ok(_) => println!("{}: ok", file.display()),
            Err(scenario::LoadError::Invalid { problems: p, .. }) => problems.extend(p),
            Err(read) => return Err(read.into()),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidScenario(problems))
    }
}

/// The scenario named on the command line, or the quickstart.
pub fn load_scenario(path: Option<&Path>) -> Result<Loaded, Error> {
    match path {
        Some(path) => Ok(scenario::load_file(path)?),
        None if Path::new(QUICKSTART_PATH).exists() => {
            Ok(scenario::load_file(Path::new(QUICKSTART_PATH))?)
        }
        None => Ok(scenario::load_str(QUICKSTART, "<built-in quickstart>")?),
    }
}

/// Run settings that come from the command line rather than the scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Replaces every concurrency-levels scenario's levels.
    pub concurrency: Vec<u32>,
    /// Replaces every concurrency-levels scenario's requests_per_level.
    pub requests_per_level: Option<u32>,
    /// Beats the scenario's url and OLLAMA_HOST, and skips the simulator.
    pub target_url: Option<String>,
    /// Replaces the scenario's model.
    pub model: Option<String>,
    /// Where results go.
    pub output_dir: PathBuf,
    /// Write the per-request log.
    pub raw: bool,
    /// Sub-millisecond arrival pacing (see `executor::Runner::precise_timer`).
    pub precise_timer: bool,
    /// Report templates (embedded, or overridden by `--templates-dir`).
    pub templates: Templates,
    /// Serve Prometheus metrics here (beats the scenario's `outputs.prometheus.listen`).
    pub prometheus: Option<SocketAddr>,
    /// Linger of the metrics endpoint after the run (beats the scenario's).
    pub prometheus_linger: Option<Duration>,
    /// Progress display.
    pub progress: ProgressMode,
}

impl RunOptions {
    /// Options from `llm-bench run` arguments.
    pub fn from_args(args: &RunArgs) -> Self {
        Self {
            concurrency: args.concurrency.clone(),
            requests_per_level: args.requests_per_level,
            target_url: args.target_url.clone(),
            model: args.model.clone(),
            output_dir: args.output_dir.clone(),
            raw: args.raw,
            precise_timer: true,
            templates: Templates::default(),
            prometheus: args.prometheus,
            prometheus_linger: args.prometheus_linger.map(|d| d.get()),
            progress: if args.ci && !args.quiet {
                ProgressMode::Lines
            } else {
                ProgressMode::detect(args.quiet)
            },
        }
    }
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

async fn cmd_run(args: RunArgs) -> Result<Status, Error> {
    let loaded = load_scenario(args.scenario.as_deref())?;
    let mut opts = RunOptions::from_args(&args);
    opts.templates = Templates::load(args.templates_dir.as_deref())
        .map_err(Error::io("cannot read the templates directory"))?;
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\ninterrupted: no new requests; waiting up to {INTERRUPT_GRACE:?} for those in flight");
            on_signal.cancel();
        }
    });
    let outcome = execute(loaded, &opts, stop).await?;
    let r = &outcome.result;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\n{} — {} on {} ({})",
        r.scenario.name,
        r.target.model,
        r.target.url,
        if r.target.simulated {
            "built-in simulator"
        } else {
            r.target.backend.as_str()
        }
    );
    let _ = write!(out, "{}", table::render(r));
    let _ = writeln!(out, "results: {}", outcome.result_path.display());
    if let Some(raw) = &outcome.raw_path {
        let _ = writeln!(out, "raw log: {}", raw.display());
    }
    if let Some(report) = &outcome.report_path {
        let _ = writeln!(out, "report: {}", report.display());
    }
    if args.ci {
        let written = ci::write_outputs(
            r,
            &opts.templates,
            &opts.output_dir,
            std::env::var_os("GITHUB_STEP_SUMMARY").as_deref(),
        )
        .map_err(Error::io("cannot write CI outputs"))?;
        for path in written {
            let _ = writeln!(out, "ci: {}", path.display());
        }
    }
    Ok(outcome.status())
}

/// Applies command-line overrides to the scenario.
fn apply_overrides(scenario: &mut Scenario, opts: &RunOptions) -> Result<(), Error> {
    if let Some(model) = &opts.model {
        scenario.target.model = model.clone();
    }
    let mut has_levels = false;
    for phase in scenario.scenarios.values_mut() {
        if let Phase::ConcurrencyLevels(p) = phase {
            has_levels = true;
            if !opts.concurrency.is_empty() {
                p.levels = opts.concurrency.clone();
            }
            if let Some(n) = opts.requests_per_level {
                p.requests_per_level = n;
            }
        }
    }
    if !has_levels && (!opts.concurrency.is_empty() || opts.requests_per_level.is_some()) {
        return Err(Error::Usage("--concurrency and --requests-per-level apply to concurrency-levels scenarios, and this file has none".into()));
    }
    Ok(())
}

/// Runs a loaded scenario to its end or until `stop` is cancelled, and writes the results.
pub async fn execute(
    mut loaded: Loaded,
    opts: &RunOptions,
    stop: CancellationToken,
) -> Result<RunOutcome, Error> {
    apply_overrides(&mut loaded.scenario, opts)?;
    let scenario = &loaded.scenario;
    let simulator = match (&scenario.simulator, &opts.target_url) {
        (Some(cfg), None) => Some(
            sim::start(cfg.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
                .await
                .map_err(Error::io("cannot start the built-in simulator"))?,
        ),
        _ => None,
    };
    let url = match (&simulator, scenario.target.backend) {
        (Some(s), _) => s.url(),
        (None, BackendKind::Ollama) => resolve_ollama_url(
            opts.target_url.as_deref(),
            scenario.target.url.as_deref(),
            std::env::var("OLLAMA_HOST").ok().as_deref(),
        ),
        (None, BackendKind::Openai) => opts
            .target_url
            .clone()
            .or_else(|| scenario.target.url.clone())
            .unwrap_or_else(|| openai::DEFAULT_URL.to_string()),
    };
    let backend = build_backend(&scenario.target, &url)?;
    let custom_metrics = loaded
        .hooks
        .as_ref()
        .map(|h| h.custom_metrics().to_vec())
        .unwrap_or_default();
    let thresholds = thresholds::compile_with(scenario, &custom_metrics).map_err(|problems| {
        Error::Usage(
            problems
                .into_iter()
                .map(|(at, m)| format!("{at}: {m}"))
                .collect::<Vec<_>>()
                .join("\n"),
        )
    })?;
    if let Some(hooks) = &loaded.hooks {
        hooks.setup().map_err(|e| Error::Hook(e.to_string()))?;
    }
    let plans: Vec<_> = scenario
        .scenarios
        .iter()
        .map(|(name, phase)| plan::build(name, phase))
        .collect();

    let started_at = SystemTime::now();
    let stamp = humantime::format_rfc3339_seconds(started_at).to_string();
    let stem = format!(
        "{}-{}",
        result::file_stem(&scenario.name),
        result::compact_timestamp(&stamp)
    );
    std::fs::create_dir_all(&opts.output_dir).map_err(Error::io(format!(
        "cannot create {}",
        opts.output_dir.display()
    )))?;
    let raw_path = opts
        .raw
        .then(|| opts.output_dir.join(format!("{stem}.requests.jsonl")));
    let raw_file = match &raw_path {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p)
                .map_err(Error::io(format!("cannot create {}", p.display())))?,
        )),
        None => None,
    };

    let (tx, rx) = mpsc::channel(4096);
    // Ctrl-C cancels `stop`; a failed abort_on_fail threshold cancels only `run_stop`, so the two
    // stay distinguishable in the result and the exit code.
    let run_stop = stop.child_token();
    let run_start = Instant::now();
    let watch = ThresholdWatch {
        thresholds: thresholds
            .iter()
            .filter(|t| t.abort_on_fail)
            .cloned()
            .collect(),
        all: thresholds.clone(),
        run_stop: run_stop.clone(),
        run_start,
    };
    let progress = Progress::new(opts.progress, expected_totals(&plans));
    let live = start_live_metrics(scenario, opts).await?;
    let collector = tokio::spawn(collect(
        rx,
        progress,
        raw_file,
        watch,
        live.as_ref().map(|l| l.metrics.clone()),
    ));
    let abort = CancellationToken::new();
    let finished = CancellationToken::new();
    // After Ctrl-C, requests in flight get INTERRUPT_GRACE to finish, then they are cut off.
    arm_grace(
        run_stop.clone(),
        abort.clone(),
        INTERRUPT_GRACE,
        finished.clone(),
    );
    let runner = Runner {
        backend,
        prompts: Arc::new(Picker::new(
            loaded.prompt_sets.clone(),
            scenario.order.unwrap_or_default(),
            scenario.seed.unwrap_or(1),
        )),
        events: tx,
        run_start,
        stop: run_stop,
        abort,
        precise_timer: opts.precise_timer,
        hooks: loaded.hooks.clone(),
        conversation: scenario.conversation.clone().map(Arc::new),
    };
    let clock = Instant::now();
    runner
        .warmup(scenario.warmup.as_ref().map_or(0, |w| w.requests))
        .await;
    // Phase start times count from the end of warm-up, so warm-up never overlaps measurement.
    let measured = Runner {
        run_start: runner.run_start,
        ..runner.clone()
    };
    let phases = plans.iter().cloned().map(|p| {
        let r = measured.clone();
        async move {
            let offset = r.run_start.elapsed();
            let p = plan::PhasePlan {
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
    drop((runner, measured));
    finished.cancel();
    let (recorder, aborted_by) = collector
        .await
        .map_err(|e| Error::io("recorder task failed")(std::io::Error::other(e)))?;
    let duration = clock.elapsed();
    drop(simulator);

    let phase_names: Vec<(String, String)> = scenario
        .scenarios
        .iter()
        .map(|(n, p)| (n.clone(), p.executor_name().to_string()))
        .collect();
    let (scenarios, total, spectrum) = result::summarize_phases(&recorder, &phase_names);
    let warmup_errors = recorder.warmup.errors.values().sum();
    let result = RunResult {
        format_version: result::FORMAT_VERSION,
        tool: ToolInfo {
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        scenario: ScenarioInfo {
            name: scenario.name.clone(),
            description: scenario.description.clone(),
            source: loaded.source.clone(),
            content_sha256: loaded.content_sha256.clone(),
        },
        target: TargetInfo {
            backend: enum_name(scenario.target.backend),
            url,
            model: scenario.target.model.clone(),
            api: enum_name(scenario.target.api),
            simulated: scenario.simulator.is_some() && opts.target_url.is_none(),
        },
        started_at: stamp,
        ended_at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        duration_secs: duration.as_secs_f64(),
        host: HostInfo::current(),
        interrupted: stop.is_cancelled(),
        warmup: WarmupSummary {
            requests: recorder.warmup.requests,
            discarded: recorder.warmup.discarded,
            errors: warmup_errors,
            errors_by_kind: recorder.warmup.errors.clone(),
        },
        scenarios,
        total,
        timeseries: recorder.series.points(),
        thresholds: evaluate_all(&thresholds, &recorder),
        aborted_by_threshold: aborted_by,
        capacity,
        spectrum,
        prompt_sets: result::summarize_split(&recorder, recorder.by_prompt_set()),
        entry_tags: result::summarize_split(&recorder, recorder.by_entry_tag()),
    };
    let result_path = result::save(&result, &opts.output_dir, &stem).map_err(Error::io(
        format!("cannot write results to {}", opts.output_dir.display()),
    ))?;
    if let Some(live) = live {
        live.metrics.thresholds(&result.thresholds);
        live.linger(&stop).await;
    }
    // The results are saved: a template that fails to render is reported, not fatal.
    let report_path = match write_html_report(&result, &opts.templates, &opts.output_dir, &stem) {
        Ok(path) => Some(path),
        Err(err) => {
            eprintln!("warning: no HTML report: {err}");
            None
        }
    };
    // teardown runs once everything is saved, so its failure loses nothing.
    let teardown_error = loaded.hooks.as_ref().and_then(|hooks| {
        let summary = serde_json::to_value(&result.total).unwrap_or_default();
        hooks.teardown(&summary).err().map(|e| e.to_string())
    });
    if let Some(err) = &teardown_error {
        eprintln!("error: hook script: {err}");
    }
    Ok(RunOutcome {
        result,
        result_path,
        raw_path,
        report_path,
        teardown_error,
    })
}

/// A running `/metrics` endpoint.
struct Live {
    metrics: Arc<LiveMetrics>,
    addr: SocketAddr,
    linger: Duration,
    stop: CancellationToken,
}

impl Live {
    /// Keeps `/metrics` up for the linger (or until Ctrl-C), so the final values are scraped.
    async fn linger(self, interrupt: &CancellationToken) {
        if !self.linger.is_zero() && !interrupt.is_cancelled() {
            eprintln!(
                "prometheus: final values stay at http://{}/metrics for {}",
                self.addr,
                crate::duration::format(self.linger)
            );
            tokio::select! {
                _ = tokio::time::sleep(self.linger) => {}
                _ = interrupt.cancelled() => {}
            }
        }
        self.stop.cancel();
    }
}

/// Starts `/metrics` when the command line or the scenario asks for it.
async fn start_live_metrics(scenario: &Scenario, opts: &RunOptions) -> Result<Option<Live>, Error> {
    let configured = scenario
        .outputs
        .as_ref()
        .and_then(|o| o.prometheus.as_ref());
    let addr = match (opts.prometheus, configured) {
        (Some(addr), _) => addr,
        (None, Some(p)) => p.listen.parse().map_err(|_| {
            Error::Usage(format!(
                "outputs.prometheus.listen: {:?} is not an address",
                p.listen
            ))
        })?,
        (None, None) => return Ok(None),
    };
    let linger = opts
        .prometheus_linger
        .or(configured.and_then(|p| p.linger.map(|d| d.get())))
        .unwrap_or(Duration::from_secs(15));
    let metrics = Arc::new(LiveMetrics::new(
        &scenario.target.model,
        &enum_name(scenario.target.backend),
    ));
    let stop = CancellationToken::new();
    let addr = prometheus::serve(metrics.clone(), addr, stop.clone())
        .await
        .map_err(Error::io(format!(
            "cannot serve Prometheus metrics on {addr}"
        )))?;
    eprintln!("prometheus: metrics at http://{addr}/metrics");
    Ok(Some(Live {
        metrics,
        addr,
        linger,
        stop,
    }))
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

/// Writes `<dir>/report_<stem>.html` and `<dir>/report_latest.html`; returns the first.
fn write_html_report(
    result: &RunResult,
    templates: &Templates,
    dir: &Path,
    stem: &str,
) -> Result<PathBuf, Error> {
    let html =
        report::render_html(result, templates).map_err(|e| Error::Template(format!("{e:?}")))?;
    let path = dir.join(format!("report_{stem}.html"));
    std::fs::write(&path, &html).map_err(Error::io(format!("cannot write {}", path.display())))?;
    std::fs::write(dir.join("report_latest.html"), &html)
        .map_err(Error::io("cannot write report_latest.html"))?;
    Ok(path)
}

/// `llm-bench report`: re-renders a saved result.
fn cmd_report(args: &ReportArgs) -> Result<Status, Error> {
    let text = std::fs::read_to_string(&args.result)
        .map_err(Error::io(format!("cannot read {}", args.result.display())))?;
    let result: RunResult = serde_json::from_str(&text).map_err(|e| {
        Error::Usage(format!(
            "{} is not an llm-bench result: {e}",
            args.result.display()
        ))
    })?;
    let mut templates = Templates::load(args.templates_dir.as_deref())
        .map_err(Error::io("cannot read the templates directory"))?;
    if let Some(file) = &args.template {
        let body = std::fs::read_to_string(file)
            .map_err(Error::io(format!("cannot read {}", file.display())))?;
        match args.format {
            Format::Html => templates.html = body,
            Format::Md => templates.markdown = body,
            Format::Json => {
                return Err(Error::Usage(
                    "--template applies to --format html or md".into(),
                ))
            }
        }
    }
    let rendered = match args.format {
        Format::Html => report::render_html(&result, &templates),
        Format::Md => report::render_markdown(&result, &templates),
        Format::Json => Ok(serde_json::to_string_pretty(&result).unwrap_or_default() + "\n"),
    }
    .map_err(|e| Error::Template(format!("{e:?}")))?;
    match &args.out {
        Some(path) => std::fs::write(path, rendered)
            .map_err(Error::io(format!("cannot write {}", path.display())))?,
        None => print!("{rendered}"),
    }
    Ok(Status::Success)
}

/// The backend for `target` at `url`; the OpenAI key is read from the environment here, once.
fn build_backend(target: &Target, url: &str) -> Result<Arc<dyn Backend>, Error> {
    Ok(match target.backend {
        BackendKind::Ollama => Arc::new(OllamaBackend::try_new(target, url)?),
        BackendKind::Openai => {
            let api_key = match &target.api_key_env {
                Some(var) => Some(std::env::var(var).map_err(|_| {
                    Error::Usage(format!(
                        "environment variable {var} (target.api_key_env) is not set"
                    ))
                })?),
                None => None,
            };
            Arc::new(OpenAiBackend::try_new(target, url, api_key)?)
        }
    })
}

/// The name a unit enum variant has in scenario files.
fn enum_name(value: impl serde::Serialize) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

fn expected_totals(plans: &[plan::PhasePlan]) -> HashMap<GroupKey, u64> {
    let mut totals = HashMap::new();
    for p in plans {
        let scenario: Arc<str> = p.name.as_str().into();
        match &p.kind {
            PlanKind::Levels {
                levels,
                requests_per_level,
            } => {
                for level in levels {
                    totals.insert(
                        GroupKey {
                            scenario: scenario.clone(),
                            group: Group::Level(*level),
                        },
                        *requests_per_level,
                    );
                }
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

/// `abort_on_fail` thresholds watched during the run.
struct ThresholdWatch {
    thresholds: Vec<Threshold>,
    all: Vec<Threshold>,
    run_stop: CancellationToken,
    run_start: Instant,
}

impl ThresholdWatch {
    /// Whether a capacity-search step held: it completed requests, dropped none, and every
    /// threshold that applies to it (untagged, or tagged with its scenario) passed.
    fn verdict(&self, recorder: &Recorder, key: &GroupKey) -> Verdict {
        let Some(g) = recorder.group(key) else {
            return Verdict {
                passed: false,
                failed: vec!["no request completed".into()],
            };
        };
        let applies = |t: &&Threshold| {
            t.key
                .tags
                .iter()
                .all(|(tag, v)| *tag == TagKey::Scenario && v.as_str() == &*key.scenario)
        };
        let mut failed: Vec<String> = self
            .all
            .iter()
            .filter(applies)
            .map(|t| evaluate_on(t, g))
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
/// Returns the aggregates and the threshold that aborted the run, if one did.
async fn collect(
    mut rx: mpsc::Receiver<Event>,
    mut progress: Progress,
    mut raw: Option<std::io::BufWriter<std::fs::File>>,
    watch: ThresholdWatch,
    live: Option<Arc<LiveMetrics>>,
) -> (Recorder, Option<String>) {
    let mut recorder = Recorder::with_limits(thresholds::request_limits(&watch.all));
    let mut aborted_by = None;
    let mut tick =
        tokio::time::interval_at(watch.run_start + THRESHOLD_INTERVAL, THRESHOLD_INTERVAL);
    loop {
        let event = tokio::select! {
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
                    if let Err(err) = raw::write_line(out, sample) {
                        eprintln!("warning: raw log stopped: {err}");
                        raw = None;
                    }
                }
                if let Some(key) = &sample.key {
                    let errors = recorder.group(key).map_or(0, |g| g.error_count());
                    progress.finished(key, errors);
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
        if let Err(err) = out.flush() {
            eprintln!("warning: raw log incomplete: {err}");
        }
    }
    progress.finish();
    (recorder, aborted_by)
}

async fn cmd_sim(args: SimArgs) -> Result<Status, Error> {
    let mut cfg = match &args.config {
        Some(path) => scenario::load_file(path)?
            .scenario
            .simulator
            .unwrap_or_default(),
        None => SimConfig::default(),
    };
    if let Some(n) = args.parallel {
        cfg.parallel = n.max(1);
    }
    if let Some(d) = args.prefill_per_token {
        cfg.prefill_per_token = d;
    }
    if let Some(d) = args.decode_per_token {
        cfg.decode_per_token = d;
    }
    if let Some(cap) = args.max_decode_tokens_per_second {
        cfg.max_decode_tokens_per_second = Some(cap);
    }
    if let Some(d) = args.load_time {
        cfg.load_time = d;
    }
    if let Some((min, max)) = args.output_tokens {
        cfg.output_tokens = sim::OutputTokens { min, max };
    }
    if !args.models.is_empty() {
        cfg.models = args.models.clone();
    }
    if let Some(seed) = args.seed {
        cfg.seed = seed;
    }
    if let Some(key) = &args.api_key {
        cfg.api_key = Some(key.clone());
    }
    for (name, rate) in &args.faults {
        cfg.faults.set(name, *rate);
    }
    let server = sim::start(cfg.clone(), args.listen)
        .await
        .map_err(Error::io(format!("cannot listen on {}", args.listen)))?;
    eprintln!(
        "llm-bench sim: Ollama-compatible simulator on {} (parallel {}, prefill {}/token, decode {}/token, models: {}); Ctrl-C stops",
        server.url(),
        cfg.parallel,
        cfg.prefill_per_token,
        cfg.decode_per_token,
        if cfg.models.is_empty() { "any".to_string() } else { cfg.models.join(", ") }
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = server.stopped() => {}
    }
    eprintln!(
        "llm-bench sim: served {} generation request(s)",
        server
            .stats
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    );
    Ok(Status::Success)
}
