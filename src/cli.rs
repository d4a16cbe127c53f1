//! The command line (clap derive). No I/O here: values are parsed and typed, nothing more.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::duration::HumanDuration;

/// The version with the commit it was built from, e.g. `0.1.0 (3f2a9c1d7e4b)`.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("LLM_BENCH_GIT_COMMIT"),
    ")"
);

/// Load testing and SLO gates for LLM inference servers.
#[derive(Debug, Parser)]
#[command(name = "llm-bench", version = VERSION, about, after_help = EXAMPLES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const EXAMPLES: &str = "\
Examples:
  llm-bench run                                   built-in quickstart, in-process simulator
  llm-bench run scenarios/ollama-llama3.2-1b.yaml Ollama on localhost:11434 (or OLLAMA_HOST)
  llm-bench run s.yaml --concurrency 1 --concurrency 8 --requests-per-level 50
  llm-bench run scenarios/ci-tinyllama.yaml --ci  gate a pipeline: exit 99 when a threshold fails
  llm-bench report results/benchmark_latest.json --format md
  llm-bench compare main.json pr.json --fail-on-regression 10%
  llm-bench run s.yaml --target-url http://ollama:11434 --shard 0/4   (then: llm-bench merge)
  llm-bench validate scenarios/*.yaml
  llm-bench sim --listen 127.0.0.1:11434 --parallel 2
  llm-bench init --from-server http://localhost:11434
  llm-bench completions bash > ~/.local/share/bash-completion/completions/llm-bench

Exit codes: 0 ok, 1 runtime error, 2 usage, 99 a threshold failed or a regression,
104 invalid scenario, 105 interrupted, 107 hook script's setup or teardown failed.";

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario and write results.
    Run(RunArgs),
    /// Check scenario files against the schema and semantic rules.
    Validate(ValidateArgs),
    /// Print the JSON Schema of scenario files (or of result or prompt-set files).
    Schema(SchemaArgs),
    /// Serve the built-in simulator (Ollama and OpenAI-compatible APIs).
    Sim(SimArgs),
    /// Re-render a saved result as HTML, Markdown or JSON.
    Report(ReportArgs),
    /// Compare two results: per group and metric, base vs new with significance tests.
    Compare(CompareArgs),
    /// Add the results of the shards of one sharded run into one result.
    Merge(MergeArgs),
    /// Evaluate a result's thresholds again, offline, from its histograms (exit 0 or 99).
    Check(CheckArgs),
    /// Write a commented starter scenario (or one per model a server has, or one from the
    /// original toolkit's benchmark_config.yaml).
    Init(InitArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// `llm-bench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The reference result (e.g. the last run on main).
    pub base: PathBuf,
    /// The result to judge.
    pub new: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: CompareFormat,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// A tera template replacing the built-in HTML one.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    #[command(flatten)]
    pub gate: RegressionGate,
}

/// The regression gate shared by `compare` and `run --baseline`.
#[derive(Debug, Args, Default, Clone)]
pub struct RegressionGate {
    /// Exit 99 when a watched value is significantly worse by more than this, e.g. `10%`.
    #[arg(long, value_name = "PERCENT")]
    pub fail_on_regression: Option<String>,
    /// What the gate watches, as METRIC:PERCENTILE (ttft, ttfa, itl, tpot, e2e_latency,
    /// request_tokens_per_second; p50, p95, p99, mean). Repeatable. Default: ttft:p95 and
    /// e2e_latency:p95.
    #[arg(
        long = "regression-on",
        value_name = "METRIC:PCT",
        requires = "fail_on_regression"
    )]
    pub regression_on: Vec<String>,
}

/// How `compare` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompareFormat {
    /// A table for the terminal.
    Text,
    /// Markdown for a pull-request comment.
    Md,
    /// The comparison as JSON.
    Json,
    /// A self-contained HTML page with overlaid percentile spectra.
    Html,
}

/// `llm-bench merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shard results (every shard of one `--shard i/n` run).
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// The merged result to write.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    /// Merge even when a shard was interrupted (the result is marked interrupted).
    #[arg(long)]
    pub allow_partial: bool,
}

/// `llm-bench check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A result file (format 2 or later, e.g. a merged one).
    pub result: PathBuf,
    /// A threshold with no data fails instead of passing (as `run --no-data-fails`).
    #[arg(long)]
    pub no_data_fails: bool,
}

/// `llm-bench init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// The API family of the server. Default: ollama; with --from-server, whichever answers.
    #[arg(long, value_enum)]
    pub backend: Option<InitBackend>,
    /// The model to benchmark. Default for Ollama: llama3.2:1b; needed for OpenAI.
    #[arg(long, value_name = "MODEL", conflicts_with = "from_config")]
    pub model: Option<String>,
    /// Ask this server which models it has (Ollama /api/tags, OpenAI /v1/models) and write a
    /// shared base.yaml plus one small scenario per model that extends it.
    #[arg(long, value_name = "URL", conflicts_with_all = ["model", "from_config"])]
    pub from_server: Option<String>,
    /// Write the scenario equivalent to an original toolkit's benchmark_config.yaml.
    #[arg(long, value_name = "FILE")]
    pub from_config: Option<PathBuf>,
    /// The folder to write into (with a schemas/ folder for the editor).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Replace files that exist.
    #[arg(long)]
    pub force: bool,
    /// With --from-server: the most models to write scenarios for; a server listing more is
    /// refused (nothing is written) rather than filling the folder.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 100,
        requires = "from_server"
    )]
    pub max: usize,
}

/// The backends `init` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InitBackend {
    /// Ollama's native API.
    Ollama,
    /// An OpenAI-compatible server (vLLM, llama-server, TGI, SGLang).
    Openai,
}

/// `llm-bench completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// `llm-bench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// A result file written by `llm-bench run` (results/*.json).
    pub result: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "html")]
    pub format: crate::report::Format,
    /// A tera template to use instead of the built-in one for this format.
    #[arg(long, value_name = "FILE")]
    pub template: Option<PathBuf>,
    /// A directory whose report.html.tera / summary.md.tera replace the built-in ones.
    #[arg(long, value_name = "DIR")]
    pub templates_dir: Option<PathBuf>,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

/// `llm-bench run`.
#[derive(Debug, Args, Default)]
pub struct RunArgs {
    /// Scenario files, run one after another into one output folder, ending with a side-by-side
    /// table. Default: scenarios/quickstart.yaml, or the built-in copy of it. The original
    /// toolkit's benchmark_config.yaml is recognised and run as its equivalent scenario.
    pub scenarios: Vec<PathBuf>,
    /// A scenario (or original benchmark_config.yaml) file, as the original CLI took it: the
    /// same as giving it as an argument.
    #[arg(long = "config", value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Replace the levels of every concurrency-levels scenario (repeatable).
    #[arg(long = "concurrency", short = 'c', value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: Vec<u32>,
    /// Replace requests_per_level of every concurrency-levels scenario.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub requests_per_level: Option<u32>,
    /// vLLM's benchmark in one line: send N requests and replace the file's `scenarios` with
    /// that one run (named `serve`). Default 1000 when --request-rate or --max-concurrency is
    /// given.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..),
          conflicts_with_all = ["concurrency", "requests_per_level"])]
    pub num_prompts: Option<u64>,
    /// Arrivals per second for --num-prompts, Poisson as in vLLM (gamma with --burstiness);
    /// `inf` (the default) sends them all at once, at most --max-concurrency in flight.
    #[arg(long, value_name = "R", value_parser = parse_rate,
          conflicts_with_all = ["concurrency", "requests_per_level"])]
    pub request_rate: Option<f64>,
    /// Most requests in flight for --num-prompts; arrivals wait for a free slot, as in vLLM.
    /// Default: all of them.
    #[arg(long, value_name = "C", value_parser = clap::value_parser!(u32).range(1..=i64::from(crate::scenario::MAX_VUS)),
          conflicts_with_all = ["concurrency", "requests_per_level"])]
    pub max_concurrency: Option<u32>,
    /// Gamma shape of --request-rate's arrivals: 1 is Poisson, below 1 burstier.
    #[arg(long, value_name = "B", requires = "request_rate")]
    pub burstiness: Option<f64>,
    /// Server base URL; beats the scenario's url and OLLAMA_HOST, and skips the simulator.
    #[arg(long, value_name = "URL")]
    pub target_url: Option<String>,
    /// Model name, replacing the scenario's.
    #[arg(long, value_name = "MODEL")]
    pub model: Option<String>,
    /// Where result files go.
    #[arg(long, value_name = "DIR", default_value = "results")]
    pub output_dir: PathBuf,
    /// Also write one JSON line per request to `<name>-<timestamp>.requests.jsonl`.
    #[arg(long)]
    pub raw: bool,
    /// The raw log's format (implies --raw): `jsonl`, or `csv` (`.requests.csv`, for
    /// spreadsheets).
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub raw_format: Option<crate::output::raw::RawFormat>,
    /// No progress output.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// CI mode: plain progress lines, and summary.md + junit.xml in the output folder; the
    /// summary is appended to $GITHUB_STEP_SUMMARY when that is set.
    #[arg(long)]
    pub ci: bool,
    /// A threshold without data (no sample ever arrived for it) fails instead of passing as
    /// in k6.
    #[arg(long)]
    pub no_data_fails: bool,
    /// Sets any scenario field, typed by the schema: `--set scenarios.steady.rate=4`,
    /// `--set target.options.temperature=0`. Repeatable; recorded in the result.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Skip the check, before any load, that the server answers and has the model.
    #[arg(long)]
    pub no_preflight: bool,
    /// Compare the run with this earlier result (read before anything is sent) and write
    /// comparison.md and comparison.html beside the results.
    #[arg(long, value_name = "RESULT")]
    pub baseline: Option<PathBuf>,
    #[command(flatten)]
    pub gate: RegressionGate,
    /// Run the i-th (0-based) of n deterministic slices of the load; `llm-bench merge` adds
    /// the n results into one.
    #[arg(long, value_name = "I/N", value_parser = parse_shard)]
    pub shard: Option<(u32, u32)>,
    /// A directory whose report.html.tera / summary.md.tera replace the built-in templates.
    #[arg(long, value_name = "DIR")]
    pub templates_dir: Option<PathBuf>,
    /// Serve Prometheus metrics at http://ADDR/metrics while the run lasts.
    #[arg(long, value_name = "ADDR")]
    pub prometheus: Option<SocketAddr>,
    /// Push the live series to this Prometheus remote-write endpoint every 5 s and once more at
    /// the end (e.g. http://localhost:9090/api/v1/write): short CI runs land in Grafana
    /// without waiting for a scrape.
    #[arg(long, value_name = "URL")]
    pub prometheus_remote_write: Option<String>,
    /// How long /metrics stays up after the run, so the final values are scraped. Default 15s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub prometheus_linger: Option<HumanDuration>,
}

/// `llm-bench validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Scenario files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// `llm-bench schema`.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Print the schema of result files instead.
    #[arg(long, conflicts_with = "prompt_set")]
    pub result: bool,
    /// Print the schema of prompt-set files instead.
    #[arg(long)]
    pub prompt_set: bool,
}

/// `llm-bench sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:11434")]
    pub listen: SocketAddr,
    /// Read settings from the `simulator:` section of this scenario file; flags override them.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Slots decoding at once (OLLAMA_NUM_PARALLEL).
    #[arg(long)]
    pub parallel: Option<u32>,
    /// Prefill time per prompt token, e.g. 500us.
    #[arg(long, value_parser = parse_duration)]
    pub prefill_per_token: Option<HumanDuration>,
    /// Decode time per output token, e.g. 20ms.
    #[arg(long, value_parser = parse_duration)]
    pub decode_per_token: Option<HumanDuration>,
    /// Shared decode bandwidth cap, tokens/s.
    #[arg(long)]
    pub max_decode_tokens_per_second: Option<f64>,
    /// Cold-load delay of the first request.
    #[arg(long, value_parser = parse_duration)]
    pub load_time: Option<HumanDuration>,
    /// An exact pause before each answer's first token (fixed-timing benchmarks).
    #[arg(long, value_parser = parse_duration)]
    pub first_token_delay: Option<HumanDuration>,
    /// Output tokens when a request sets no num_predict: N or MIN-MAX.
    #[arg(long, value_parser = parse_range)]
    pub output_tokens: Option<(u32, u32)>,
    /// Serve only these models (repeatable); others get 404.
    #[arg(long = "model")]
    pub models: Vec<String>,
    /// Seed for lengths, text and faults.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Require this bearer token on every OpenAI-compatible route (/v1/..., /tokenize), as
    /// vLLM does. The Ollama routes (/api/...) stay open, as in Ollama, unless --guard-ollama.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// Require the --api-key on the Ollama routes too, as an authenticating proxy would.
    #[arg(long, requires = "api_key")]
    pub guard_ollama: bool,
    /// Inject a fault at a rate, e.g. http_503=0.05 (http_500, http_503, http_404, error_line,
    /// malformed_line, stall, disconnect); repeatable.
    #[arg(long = "fault", value_parser = parse_fault)]
    pub faults: Vec<(String, f64)>,
}

/// A request rate: a positive number, or `inf` for "all at once".
fn parse_rate(text: &str) -> Result<f64, String> {
    match text.trim() {
        "inf" | "infinity" => Ok(f64::INFINITY),
        t => match t.parse::<f64>() {
            Ok(r) if r > 0.0 && r.is_finite() => Ok(r),
            _ => Err(format!(
                "{text:?} is not a rate: give requests per second (> 0) or inf"
            )),
        },
    }
}

fn parse_duration(text: &str) -> Result<HumanDuration, String> {
    crate::duration::parse(text)
        .map(HumanDuration)
        .map_err(|e| e.to_string())
}

fn parse_shard(text: &str) -> Result<(u32, u32), String> {
    let (i, n) = text.split_once('/').ok_or("expected I/N, e.g. 0/4")?;
    let (i, n): (u32, u32) = (
        i.trim().parse().map_err(|e| format!("{i:?}: {e}"))?,
        n.trim().parse().map_err(|e| format!("{n:?}: {e}"))?,
    );
    let most = crate::output::merge::MAX_SHARDS;
    if n == 0 || i >= n || n > most {
        return Err(format!("shard {i}/{n}: expected 0 <= I < N <= {most}"));
    }
    Ok((i, n))
}

fn parse_range(text: &str) -> Result<(u32, u32), String> {
    let (lo, hi) = text.split_once('-').unwrap_or((text, text));
    let n = |s: &str| s.trim().parse::<u32>().map_err(|e| format!("{s:?}: {e}"));
    let (lo, hi) = (n(lo)?, n(hi)?);
    if lo == 0 || lo > hi {
        return Err("expected N or MIN-MAX with 1 <= MIN <= MAX".into());
    }
    Ok((lo, hi))
}

fn parse_fault(text: &str) -> Result<(String, f64), String> {
    let (name, rate) = text
        .split_once('=')
        .ok_or("expected KIND=RATE, e.g. http_503=0.05")?;
    let rate: f64 = rate.parse().map_err(|e| format!("rate {rate:?}: {e}"))?;
    if !(0.0..=1.0).contains(&rate) {
        return Err("rate must be between 0 and 1".into());
    }
    if !crate::sim::Faults::default().set(name, rate) {
        return Err(format!("unknown fault {name:?}"));
    }
    Ok((name.to_string(), rate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_is_repeatable_and_positive() {
        let cli =
            Cli::try_parse_from(["llm-bench", "run", "-c", "1", "--concurrency", "8"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!()
        };
        assert_eq!(args.concurrency, vec![1, 8]);
        assert!(Cli::try_parse_from(["llm-bench", "run", "-c", "0"]).is_err());
    }

    #[test]
    fn sim_value_parsers_reject_nonsense() {
        assert_eq!(parse_range("8"), Ok((8, 8)));
        assert_eq!(parse_range("4-16"), Ok((4, 16)));
        assert!(parse_range("16-4").is_err());
        assert!(parse_fault("stall=0.5").is_ok());
        assert!(parse_fault("stall=2").is_err());
        assert!(parse_fault("meteor=0.1").is_err());
        assert!(parse_duration("10 sec").is_err());
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
