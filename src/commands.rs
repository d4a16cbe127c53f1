//! One function per subcommand: read the arguments, call the layer that does the work, print
//! what the user asked for. Writes to stdout go through [`print`], so a closed pipe
//! (`llm-bench schema | head -1`) ends the command quietly instead of panicking.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::cli::{Cli, Command, CompareFormat, ReportArgs, RunArgs, SimArgs};
use crate::compare;
use crate::compile::{self, Loaded};
use crate::error::Error;
use crate::output::result::{self, RunResult};
use crate::prompts;
use crate::report::{self, ci, table, Format, Templates};
use crate::run::{self, RunOptions, Status, Stop};
use crate::scenario;
use crate::scenario::set::Set;
use crate::sim::{self, SimConfig};

/// The quickstart scenario, built in so `llm-bench run` works from any directory.
pub const QUICKSTART: &str = include_str!("../scenarios/quickstart.yaml");
const QUICKSTART_PATH: &str = "scenarios/quickstart.yaml";

/// Runs one command.
pub async fn run(cli: Cli) -> Result<Status, Error> {
    // Under `ulimit -f` the kernel's default action for SIGXFSZ kills the process in the middle
    // of a write, with no message and the temporary file left behind. Handled (tokio keeps the
    // handler for the life of the process), the write fails with EFBIG instead, and the usual
    // path runs: the temporary file is removed and the error names the file, exit 1.
    let _ = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ));
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
            }
            .map_err(|source| Error::Serialize {
                what: "the schema",
                source,
            })?;
            print(&text)?;
            Ok(Status::Success)
        }
        Command::Sim(args) => cmd_sim(args).await,
        Command::Report(args) => cmd_report(&args),
        Command::Init(args) => cmd_init(&args).await,
        Command::Compare(args) => cmd_compare(&args),
        Command::Merge(args) => cmd_merge(&args),
        Command::Check(args) => cmd_check(&args),
        Command::Completions(args) => {
            use clap::CommandFactory;
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "llm-bench", &mut script);
            print(&String::from_utf8_lossy(&script))?;
            Ok(Status::Success)
        }
    }
}

/// `llm-bench merge`: the shard results as one result file, whole or not at all.
fn cmd_merge(args: &crate::cli::MergeArgs) -> Result<Status, Error> {
    let shards = args
        .shards
        .iter()
        .map(|path| Ok((path.display().to_string(), read_result(path)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    let merged = crate::output::merge::merge(&shards, args.allow_partial)?;
    let text = serde_json::to_string_pretty(&merged).map_err(|source| Error::Serialize {
        what: "the merged result",
        source,
    })? + "\n";
    crate::output::files::replace(&args.out, text.as_bytes()).map_err(Error::Write)?;
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", table::render(&merged));
    let _ = writeln!(
        out,
        "merged {} shard(s) into {}",
        shards.len(),
        args.out.display()
    );
    Ok(
        if merged
            .thresholds
            .iter()
            .any(|t| !t.passed && !t.judges_steps)
        {
            Status::ThresholdsFailed
        } else {
            Status::Success
        },
    )
}

/// `llm-bench check`: the thresholds evaluated again from the histograms; exit 99 on failure.
fn cmd_check(args: &crate::cli::CheckArgs) -> Result<Status, Error> {
    use crate::output::merge;
    let result = read_result(&args.result)?;
    let file = args.result.display().to_string();
    // Judged as the run judged: a run with --no-data-fails stored failing no-data outcomes.
    let stored_strict = merge::stored_no_data_fails(&result);
    let outcomes = merge::check(&file, &result, args.no_data_fails || stored_strict)?;
    let mut text = table::thresholds(&outcomes);
    if outcomes.is_empty() {
        text.push_str("the scenario has no thresholds\n");
    }
    // Only the stored verdict is compared with what was run with the same options.
    let differences = if args.no_data_fails && !stored_strict {
        let as_run = merge::check(&file, &result, false)?;
        merge::verdict_differences(&result.thresholds, &as_run)
    } else {
        merge::verdict_differences(&result.thresholds, &outcomes)
    };
    for d in &differences {
        text.push_str(&format!("verdict differs: {d}\n"));
    }
    if !differences.is_empty() {
        text.push_str(&format!(
            "FAILED: the verdict stored in {file} is not the one its histograms give: the file was edited or is damaged\n"
        ));
    }
    print(&text)?;
    let failed = outcomes.iter().any(|t| !t.passed && !t.judges_steps);
    Ok(if failed || !differences.is_empty() {
        Status::ThresholdsFailed
    } else {
        Status::Success
    })
}

/// `llm-bench init`: writes, then says what to do next.
async fn cmd_init(args: &crate::cli::InitArgs) -> Result<Status, Error> {
    let written = crate::init::init(args).await?;
    let mut text = String::new();
    for path in &written.scenarios {
        text.push_str(&format!("wrote {}\n", path.display()));
    }
    if let Some(schema) = &written.schema {
        text.push_str(&format!(
            "wrote {} (editors read it through each file's $schema line)\n",
            schema.display()
        ));
    }
    // One run per model file: a glob over the folder when `init` wrote several.
    let next = match written.scenarios.as_slice() {
        [] => None,
        [one] => Some(one.display().to_string()),
        [.., last] => last
            .parent()
            .map(|dir| dir.join("*.yaml").display().to_string()),
    };
    if let Some(files) = next {
        text.push_str(&format!(
            "next: llm-bench validate {files} && llm-bench run {files}\n"
        ));
    }
    print(&text)?;
    Ok(Status::Success)
}

/// `llm-bench validate`: scenarios, and prompt-set files recognised as such, each checked as
/// what it is; every problem of every file is listed before the exit code says invalid.
fn validate(files: &[PathBuf]) -> Result<(), Error> {
    let mut problems = Vec::new();
    let mut scenarios = Vec::new();
    for file in files {
        let is_set = crate::input::read_to_string(file)
            .is_ok_and(|text| prompts::load::looks_like_prompt_set(file, &text));
        if !is_set {
            scenarios.push(Some(file.as_path()));
            continue;
        }
        match prompts::load::load_set(file) {
            Ok((name, entries)) => print(&format!(
                "{}: ok (prompt set `{name}`, {} prompt(s))\n",
                file.display(),
                entries.len()
            ))?,
            Err(problem) => problems.push(problem),
        }
    }
    let checked = load_all(scenarios, &[], |path, loaded| match path {
        Some(path) if loaded.converted.is_some() => print(&format!(
            "{}: ok (the original toolkit's config; `llm-bench init --from-config {}` writes \
             the scenario it runs as)\n",
            path.display(),
            path.display()
        )),
        Some(path) => print(&format!("{}: ok\n", path.display())),
        None => Ok(()),
    });
    match checked {
        Ok(_) => {}
        Err(Error::InvalidScenario(found)) => problems.extend(found),
        Err(other) => return Err(other),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Error::InvalidScenario(problems))
    }
}

/// Loads every scenario (`None`: the quickstart) with `sets` applied, calling `on_valid` for each
/// that is valid; fails after the last with every problem of every file, so one pass lists them
/// all and nothing is sent while any file is invalid.
fn load_all<'a>(
    paths: impl IntoIterator<Item = Option<&'a Path>>,
    sets: &[Set],
    mut on_valid: impl FnMut(Option<&Path>, &Loaded) -> Result<(), Error>,
) -> Result<Vec<Loaded>, Error> {
    let mut loaded = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        match load_scenario(path, sets) {
            Ok(l) => {
                on_valid(path, &l)?;
                loaded.push(l);
            }
            Err(Error::InvalidScenario(p)) => problems.extend(p),
            Err(other) => return Err(other),
        }
    }
    if problems.is_empty() {
        Ok(loaded)
    } else {
        Err(Error::InvalidScenario(problems))
    }
}

/// The scenario named on the command line, or the quickstart, with `--set` values applied.
pub fn load_scenario(path: Option<&Path>, sets: &[Set]) -> Result<Loaded, Error> {
    match path {
        Some(path) => Ok(compile::load_file_with(path, sets)?),
        None if Path::new(QUICKSTART_PATH).exists() => {
            Ok(compile::load_file_with(Path::new(QUICKSTART_PATH), sets)?)
        }
        None => Ok(compile::load_str_with(
            QUICKSTART,
            "<built-in quickstart>",
            sets,
        )?),
    }
}

async fn cmd_run(mut args: RunArgs) -> Result<Status, Error> {
    args.scenarios.append(&mut args.config);
    let one_line = scenario::set::OneLine {
        num_prompts: args.num_prompts,
        request_rate: args.request_rate,
        max_concurrency: args.max_concurrency,
        burstiness: args.burstiness,
    };
    let flags = scenario::set::Flags {
        concurrency: args.concurrency.clone(),
        requests_per_level: args.requests_per_level,
        model: args.model.clone(),
    };
    // The one-line flags come first, so a `--set scenarios.serve...` can refine what they made;
    // `--concurrency`, `--requests-per-level` and `--model` last, so they beat a `--set` of the
    // same field, as they always did.
    let sets = one_line
        .lowered()
        .into_iter()
        .map(Ok)
        .chain(args.set.iter().map(|arg| Set::parse(arg)))
        .chain(flags.lowered().into_iter().map(Ok))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::Usage)?;
    if args.ci && args.scenarios.len() > 1 {
        return Err(Error::Usage(
            "--ci writes one summary.md and junit.xml: give it one scenario per run".into(),
        ));
    }
    let paths: Vec<Option<&Path>> = if args.scenarios.is_empty() {
        vec![None]
    } else {
        args.scenarios.iter().map(|p| Some(p.as_path())).collect()
    };
    let gate = gate_of(&args.gate)?;
    if gate.is_some() && args.baseline.is_none() {
        return Err(Error::Usage(
            "--fail-on-regression needs --baseline RESULT: the run to compare with".into(),
        ));
    }
    if args.baseline.is_some() && args.scenarios.len() > 1 {
        return Err(Error::Usage(
            "--baseline compares one scenario's run: give it one scenario".into(),
        ));
    }
    // Read before anything is sent: a missing or unreadable baseline must not cost a run.
    let baseline = match &args.baseline {
        Some(path) => Some((path.clone(), read_result(path)?)),
        None => None,
    };
    let quiet = args.quiet;
    let loaded = load_all(paths, &sets, |path, loaded| {
        if let (Some(path), Some(scenario), false) = (path, &loaded.converted, quiet) {
            eprintln!(
                "{} is the original toolkit's config; it runs as this scenario \
                 (`llm-bench init --from-config {}` writes it):\n\n{}",
                path.display(),
                path.display(),
                scenario
            );
        }
        if !quiet {
            for notice in &loaded.set_aside {
                eprintln!("{notice} (--num-prompts replaced the file's scenarios with `serve`)");
            }
        }
        Ok(())
    })?;
    let mut opts = RunOptions::from_args(&args);
    opts.templates = Templates::load(args.templates_dir.as_deref())
        .map_err(Error::io("cannot read the templates directory"))?;
    let stop = Stop::new();
    let mut signals = Signals::new().map_err(Error::io("cannot listen for signals"))?;
    let on_signal = stop.clone();
    tokio::spawn(async move {
        let name = signals.next().await;
        eprintln!(
            "\n{name}: no new requests; waiting up to {:?} for those in flight (again to stop now)",
            run::INTERRUPT_GRACE
        );
        on_signal.request();
        let name = signals.next().await;
        eprintln!("{name}: requests in flight are cut off; writing the results");
        on_signal.now();
    });
    let several = loaded.len() > 1;
    let mut results = Vec::new();
    let mut status = Status::Success;
    for scenario in loaded {
        let outcome = run::execute(scenario, &opts, stop.clone()).await?;
        print_paths(&outcome);
        if args.ci {
            write_ci_outputs(&outcome, &opts)?;
        }
        status = worse(status, outcome.status());
        if let Some(baseline) = &baseline {
            if compare_with_baseline(baseline, &outcome, gate.as_ref(), &opts, args.ci)? {
                status = worse(status, Status::ThresholdsFailed);
            }
        }
        results.push(outcome.result);
        if stop.is_requested() {
            break;
        }
    }
    if several {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "\n{}", table::side_by_side(&results));
    }
    Ok(status)
}

/// The exit status of several runs: interrupted beats a failed hook, which beats failed
/// thresholds, which beat success.
fn worse(a: Status, b: Status) -> Status {
    let rank = |s: Status| match s {
        Status::Success => 0,
        Status::ThresholdsFailed => 1,
        Status::HookFailed => 2,
        Status::Interrupted => 3,
    };
    if rank(b) > rank(a) {
        b
    } else {
        a
    }
}

/// Where a run's files are. The results are saved whatever happens to stdout: a closed pipe must
/// not change the exit code a CI gate reads, so these lines ignore write errors.
fn print_paths(outcome: &run::RunOutcome) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "results: {}", outcome.result_path.display());
    if let Some(raw) = &outcome.raw_path {
        let _ = writeln!(out, "raw log: {}", raw.display());
    }
    if let Some(report) = &outcome.report_path {
        let _ = writeln!(out, "report: {}", report.display());
    }
}

/// `summary.md` and `junit.xml` (and `$GITHUB_STEP_SUMMARY`) for `--ci`.
fn write_ci_outputs(outcome: &run::RunOutcome, opts: &RunOptions) -> Result<(), Error> {
    let written = ci::write_outputs(
        &outcome.result,
        &opts.templates,
        &opts.output_dir,
        std::env::var_os("GITHUB_STEP_SUMMARY").as_deref(),
    )
    .map_err(|err| match err {
        ci::CiError::Template(source) => Error::Template {
            template: "summary.md",
            source,
        },
        ci::CiError::Write(err) => Error::Write(err),
        ci::CiError::Append { path, source } => Error::Io {
            context: format!("cannot append to {}", path.display()),
            source,
        },
    })?;
    let mut out = std::io::stdout().lock();
    for path in written {
        let _ = writeln!(out, "ci: {}", path.display());
    }
    Ok(())
}

/// A result file, read and typed.
fn read_result(path: &Path) -> Result<RunResult, Error> {
    let text = crate::input::read_to_string(path)
        .map_err(Error::io(format!("cannot read {}", path.display())))?;
    serde_json::from_str(&text).map_err(|source| Error::NotAResult {
        path: path.to_path_buf(),
        source,
    })
}

/// The regression gate the flags ask for, if any.
fn gate_of(flags: &crate::cli::RegressionGate) -> Result<Option<compare::Gate>, Error> {
    flags
        .fail_on_regression
        .as_deref()
        .map(|tolerance| compare::Gate::parse(tolerance, &flags.regression_on))
        .transpose()
        .map_err(Error::from)
}

/// `llm-bench compare`.
fn cmd_compare(args: &crate::cli::CompareArgs) -> Result<Status, Error> {
    let gate = gate_of(&args.gate)?;
    let base = read_result(&args.base)?;
    let new = read_result(&args.new)?;
    let comparison = compare::compare(
        (&args.base.display().to_string(), &base),
        (&args.new.display().to_string(), &new),
        gate.as_ref(),
    )?;
    if comparison.base.scenario != comparison.new.scenario {
        eprintln!(
            "warning: comparing scenario {} (base) with {} (new): groups are paired by name",
            comparison.base.scenario, comparison.new.scenario
        );
    }
    let template = match &args.template {
        Some(file) => Some(
            crate::input::read_to_string(file)
                .map_err(Error::io(format!("cannot read {}", file.display())))?,
        ),
        None => None,
    };
    let text =
        match args.format {
            CompareFormat::Text => compare::render::text(&comparison),
            CompareFormat::Md => compare::render::markdown(&comparison),
            CompareFormat::Json => {
                serde_json::to_string_pretty(&comparison).map_err(|source| Error::Serialize {
                    what: "the comparison",
                    source,
                })? + "\n"
            }
            CompareFormat::Html => compare::render::html(&comparison, template.as_deref())
                .map_err(|source| Error::Template {
                    template: "comparison",
                    source,
                })?,
        };
    match &args.out {
        Some(path) => crate::output::files::replace(path, text.as_bytes()).map_err(Error::Write)?,
        None => print(&text)?,
    }
    Ok(if comparison.regressed() {
        Status::ThresholdsFailed
    } else {
        Status::Success
    })
}

/// `run --baseline`: compares a finished run with the baseline, prints the table, writes
/// comparison.md and comparison.html beside the results; true when the gate found a regression.
fn compare_with_baseline(
    baseline: &(PathBuf, RunResult),
    outcome: &run::RunOutcome,
    gate: Option<&compare::Gate>,
    opts: &RunOptions,
    ci: bool,
) -> Result<bool, Error> {
    let comparison = compare::compare(
        (&baseline.0.display().to_string(), &baseline.1),
        (&outcome.result_path.display().to_string(), &outcome.result),
        gate,
    )?;
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "\n{}", compare::render::text(&comparison));
    let md = compare::render::markdown(&comparison);
    let html = compare::render::html(&comparison, None).map_err(|source| Error::Template {
        template: "comparison",
        source,
    })?;
    for (name, text) in [("comparison.md", &md), ("comparison.html", &html)] {
        let path = opts.output_dir.join(name);
        crate::output::files::replace(&path, text.as_bytes()).map_err(Error::Write)?;
        let _ = writeln!(out, "comparison: {}", path.display());
    }
    if let Some(summary) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|_| ci) {
        use std::io::Write as _;
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(&summary)
            .and_then(|mut f| f.write_all(md.as_bytes()))
            .map_err(Error::io(format!(
                "cannot append to {}",
                Path::new(&summary).display()
            )))?;
    }
    Ok(comparison.regressed())
}

/// `llm-bench report`: re-renders a saved result.
fn cmd_report(args: &ReportArgs) -> Result<Status, Error> {
    let result = read_result(&args.result)?;
    let mut templates = Templates::load(args.templates_dir.as_deref())
        .map_err(Error::io("cannot read the templates directory"))?;
    if let Some(file) = &args.template {
        let body = crate::input::read_to_string(file)
            .map_err(Error::io(format!("cannot read {}", file.display())))?;
        match args.format {
            Format::Html => templates.html = body,
            Format::Md => templates.markdown = body,
            Format::Json | Format::Csv => {
                return Err(Error::Usage(
                    "--template applies to --format html or md".into(),
                ))
            }
        }
    }
    let rendered = match args.format {
        Format::Html => {
            report::render_html(&result, &templates).map_err(|source| Error::Template {
                template: "HTML report",
                source,
            })?
        }
        Format::Md => {
            report::render_markdown(&result, &templates).map_err(|source| Error::Template {
                template: "Markdown summary",
                source,
            })?
        }
        Format::Json => {
            serde_json::to_string_pretty(&result).map_err(|source| Error::Serialize {
                what: "the result",
                source,
            })? + "\n"
        }
        Format::Csv => report::csv::render(&result).map_err(|e| Error::Io {
            context: "cannot write the CSV".into(),
            source: std::io::Error::other(e),
        })?,
    };
    match &args.out {
        Some(path) => std::fs::write(path, rendered)
            .map_err(Error::io(format!("cannot write {}", path.display())))?,
        None => print(&rendered)?,
    }
    Ok(Status::Success)
}

async fn cmd_sim(args: SimArgs) -> Result<Status, Error> {
    let mut cfg = match &args.config {
        Some(path) => compile::load_file(path)?
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
    if let Some(d) = args.first_token_delay {
        cfg.first_token_delay = d;
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
    cfg.guard_ollama |= args.guard_ollama;
    for (name, rate) in &args.faults {
        cfg.faults.set(name, *rate);
    }
    let server = sim::start(cfg.clone(), args.listen)
        .await
        .map_err(Error::io(format!("cannot listen on {}", args.listen)))?;
    eprintln!(
        "llm-bench sim: Ollama and OpenAI-compatible simulator on {} (parallel {}, prefill {}/token, decode {}/token, models: {}); Ctrl-C stops",
        server.url(),
        cfg.parallel,
        cfg.prefill_per_token,
        cfg.decode_per_token,
        if cfg.models.is_empty() { "any".to_string() } else { cfg.models.join(", ") }
    );
    let mut signals = Signals::new().map_err(Error::io("cannot listen for signals"))?;
    tokio::select! {
        _ = signals.next() => {}
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

/// Writes to stdout; a reader that has gone becomes an error `main` treats as a quiet exit.
fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Error::io("cannot write to stdout"))
}

/// The signals that ask a command to stop: Ctrl-C (SIGINT), and SIGTERM and SIGHUP, which
/// `docker stop`, CI cancellation, `timeout(1)` and a closed terminal send.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    /// Waits for the next one; returns how to name it to the user.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "interrupted",
            _ = self.terminate.recv() => "terminated (SIGTERM)",
            _ = self.hangup.recv() => "hung up (SIGHUP)",
        }
    }
}
