//! Everything the command line, the scenario and the environment decide about a run, resolved
//! once, in one place: command line over scenario over environment over defaults (like ripgrep's
//! low-level args -> `HiArgs`). Nothing after this reads `std::env` or `RunArgs`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{openai, resolve_ollama_url};
use crate::cli::RunArgs;
use crate::compile::Loaded;
use crate::error::Error;
use crate::report::progress::ProgressMode;
use crate::report::Templates;
use crate::scenario::validate::check_url;
use crate::scenario::{BackendKind, Scenario};
use crate::sim::SimConfig;

/// How long `/metrics` stays up after a run when neither the command line nor the scenario says.
const DEFAULT_PROMETHEUS_LINGER: Duration = Duration::from_secs(15);

/// Run settings that come from the command line rather than the scenario. The flags that
/// change the scenario itself (`--model`, `--concurrency`, `--requests-per-level`, `--set`)
/// are not here: they are lowered to [`Set`](crate::scenario::set::Set)s and applied before the
/// scenario is checked ([`crate::scenario::set::Flags`]).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Beats the scenario's url and OLLAMA_HOST, and skips the simulator.
    pub target_url: Option<String>,
    /// Where results go.
    pub output_dir: PathBuf,
    /// Write the per-request log, in this format.
    pub raw: Option<crate::output::raw::RawFormat>,
    /// Sub-millisecond arrival pacing (see `executor::Runner::precise_timer`).
    pub precise_timer: bool,
    /// Report templates (embedded, or overridden by `--templates-dir`).
    pub templates: Templates,
    /// Serve Prometheus metrics here (beats the scenario's `outputs.prometheus.listen`).
    pub prometheus: Option<SocketAddr>,
    /// Linger of the metrics endpoint after the run (beats the scenario's).
    pub prometheus_linger: Option<Duration>,
    /// Push the live series to this remote-write URL.
    pub remote_write: Option<String>,
    /// Progress display.
    pub progress: ProgressMode,
    /// Print the title line and table on stdout before the files are written.
    pub print_summary: bool,
    /// A threshold without data fails instead of passing.
    pub no_data_fails: bool,
    /// Check that the server answers and has the model before sending load.
    pub preflight: bool,
    /// Run only this slice (index, count) of the load.
    pub shard: Option<(u32, u32)>,
    /// Open the load's connections after the warm-up, before the measured requests.
    pub preconnect: bool,
}

impl RunOptions {
    /// A library caller's defaults: results in `output_dir`, the scenario as written, nothing
    /// on the terminal, no pre-flight, no connections opened ahead, arrival pacing by tokio's
    /// timer alone.
    pub fn new(output_dir: impl Into<PathBuf>) -> Self {
        Self {
            target_url: None,
            output_dir: output_dir.into(),
            raw: None,
            precise_timer: false,
            templates: Templates::default(),
            prometheus: None,
            prometheus_linger: None,
            remote_write: None,
            progress: ProgressMode::Quiet,
            print_summary: false,
            no_data_fails: false,
            preflight: false,
            shard: None,
            preconnect: false,
        }
    }

    /// Options from `llm-bench run` arguments (templates are read by the caller).
    pub fn from_args(args: &RunArgs) -> Self {
        Self {
            target_url: args.target_url.clone(),
            raw: (args.raw || args.raw_format.is_some())
                .then(|| args.raw_format.unwrap_or_default()),
            precise_timer: true,
            prometheus: args.prometheus,
            prometheus_linger: args.prometheus_linger.map(|d| d.get()),
            remote_write: args.prometheus_remote_write.clone(),
            progress: if args.ci && !args.quiet {
                ProgressMode::Lines
            } else {
                ProgressMode::detect(args.quiet)
            },
            print_summary: true,
            no_data_fails: args.no_data_fails,
            preflight: !args.no_preflight,
            shard: args.shard,
            preconnect: true,
            ..Self::new(args.output_dir.clone())
        }
    }
}

/// Where the requests go.
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    /// The scenario's built-in simulator, started for this run on a free loopback port.
    Simulator(SimConfig),
    /// A server at this URL.
    Url(String),
}

/// The live `/metrics` endpoint, when asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrometheusConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// How long the final values stay up after the run.
    pub linger: Duration,
}

/// A run with every choice made.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// The scenario with the command line's overrides applied, and its compiled parts.
    pub loaded: Loaded,
    /// Where the requests go.
    pub endpoint: Endpoint,
    /// The bearer key for OpenAI-compatible servers (from `target.api_key_env`).
    pub api_key: Option<String>,
    /// The live metrics endpoint.
    pub prometheus: Option<PrometheusConfig>,
    /// Where the live series are pushed (Prometheus remote write).
    pub remote_write: Option<String>,
    /// Where results go.
    pub output_dir: PathBuf,
    /// Write the per-request log, in this format.
    pub raw: Option<crate::output::raw::RawFormat>,
    /// Sub-millisecond arrival pacing.
    pub precise_timer: bool,
    /// Report templates.
    pub templates: Templates,
    /// Progress display.
    pub progress: ProgressMode,
    /// Print the title line and table before the files are written.
    pub print_summary: bool,
    /// A threshold without data fails instead of passing.
    pub no_data_fails: bool,
    /// Check the server before sending load (never for the built-in simulator).
    pub preflight: bool,
    /// What the command line changed, as written, for the result (`--set` values first).
    pub overrides: Vec<String>,
    /// The slice (index, count) of the load this run is.
    pub shard: Option<(u32, u32)>,
    /// Open the load's connections before the measured requests.
    pub preconnect: bool,
}

impl RunConfig {
    /// Resolves the run from the scenario, the command line and the process environment.
    pub fn resolve(loaded: Loaded, opts: &RunOptions) -> Result<RunConfig, Error> {
        Self::resolve_with(loaded, opts, |var| std::env::var(var).ok())
    }

    /// [`RunConfig::resolve`] with the environment given as a lookup, so the precedence rules
    /// are testable without touching the process environment.
    pub fn resolve_with(
        mut loaded: Loaded,
        opts: &RunOptions,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<RunConfig, Error> {
        let scenario = &loaded.scenario;
        let endpoint = match (&scenario.simulator, &opts.target_url) {
            (Some(sim), None) => Endpoint::Simulator(sim.clone()),
            _ => Endpoint::Url(match scenario.target.backend {
                BackendKind::Ollama => resolve_ollama_url(
                    opts.target_url.as_deref(),
                    scenario.target.url.as_deref(),
                    env("OLLAMA_HOST").as_deref(),
                ),
                BackendKind::Openai => opts
                    .target_url
                    .clone()
                    .or_else(|| scenario.target.url.clone())
                    .unwrap_or_else(|| openai::DEFAULT_URL.to_string()),
            }),
        };
        if let Endpoint::Url(url) = &endpoint {
            check_url(url).map_err(|message| {
                let given_by = if opts.target_url.is_some() {
                    "--target-url"
                } else if scenario.target.url.is_some() {
                    "target.url"
                } else {
                    "OLLAMA_HOST"
                };
                Error::Usage(format!("{given_by}: {message}"))
            })?;
        }
        let api_key = match (&scenario.target.api_key_env, scenario.target.backend) {
            (Some(var), BackendKind::Openai) => {
                Some(env(var).ok_or_else(|| Error::MissingKey { var: var.clone() })?)
            }
            _ => None,
        };
        if let Some((index, count)) = opts.shard {
            if matches!(endpoint, Endpoint::Simulator(_)) {
                return Err(Error::Usage(format!(
                    "--shard {index}/{count} needs the server the shards share: give --target-url \
                     (the scenario's built-in simulator would start one per shard)"
                )));
            }
            // A split the plans cannot have is refused before any server is asked anything.
            let plans = loaded
                .scenario
                .scenarios
                .iter()
                .map(|(name, phase)| crate::plan::build(name, phase))
                .collect();
            crate::plan::shard(plans, index, count)?;
            // Each shard draws its own prompt sequence, reproducibly.
            loaded.scenario.seed = Some(
                loaded
                    .scenario
                    .seed
                    .unwrap_or(1)
                    .wrapping_add(u64::from(index)),
            );
        }
        let scenario = &loaded.scenario;
        let prometheus = prometheus_config(scenario, opts)?;
        let overrides = loaded
            .overrides
            .iter()
            .cloned()
            .chain(command_line_overrides(opts))
            .collect();
        if let Some(url) = &opts.remote_write {
            check_url(url)
                .map_err(|message| Error::Usage(format!("--prometheus-remote-write: {message}")))?;
        }
        Ok(RunConfig {
            loaded,
            api_key,
            prometheus,
            remote_write: opts.remote_write.clone(),
            output_dir: opts.output_dir.clone(),
            raw: opts.raw,
            precise_timer: opts.precise_timer,
            templates: opts.templates.clone(),
            progress: opts.progress,
            print_summary: opts.print_summary,
            no_data_fails: opts.no_data_fails,
            preflight: opts.preflight && matches!(endpoint, Endpoint::Url(_)),
            overrides,
            shard: opts.shard,
            preconnect: opts.preconnect,
            endpoint,
        })
    }

    /// The scenario after overrides.
    pub fn scenario(&self) -> &Scenario {
        &self.loaded.scenario
    }
}

/// The flags that replaced what the scenario says, as written (credentials in a URL masked).
fn command_line_overrides(opts: &RunOptions) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(url) = &opts.target_url {
        out.push(format!("--target-url {}", crate::output::redact::url(url)));
    }
    if let Some((index, count)) = opts.shard {
        out.push(format!("--shard {index}/{count}"));
    }
    out
}

/// `--prometheus` over the scenario's `outputs.prometheus`; linger likewise, then the default.
fn prometheus_config(
    scenario: &Scenario,
    opts: &RunOptions,
) -> Result<Option<PrometheusConfig>, Error> {
    let configured = scenario
        .outputs
        .as_ref()
        .and_then(|o| o.prometheus.as_ref());
    let listen = match (opts.prometheus, configured) {
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
        .unwrap_or(DEFAULT_PROMETHEUS_LINGER);
    Ok(Some(PrometheusConfig { listen, linger }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> RunOptions {
        RunOptions::new("out")
    }

    fn loaded(extra: &str) -> Loaded {
        let yaml = format!("name: t\ntarget: {{model: m}}\nprompts: [hi]\nscenarios:\n  sweep: {{executor: concurrency-levels, levels: [1, 2], requests_per_level: 3}}\n{extra}");
        crate::compile::load_str(&yaml, "t.yaml").unwrap()
    }

    #[test]
    fn the_command_line_beats_the_scenario_which_beats_the_environment() {
        let env = |var: &str| (var == "OLLAMA_HOST").then(|| "10.0.0.9:1".to_string());
        let from_env = RunConfig::resolve_with(loaded(""), &options(), env).unwrap();
        assert_eq!(from_env.endpoint, Endpoint::Url("http://10.0.0.9:1".into()));
        let scenario = loaded("");
        let mut with_url = scenario.clone();
        with_url.scenario.target.url = Some("http://scenario:2".into());
        let from_file = RunConfig::resolve_with(with_url.clone(), &options(), env).unwrap();
        assert_eq!(
            from_file.endpoint,
            Endpoint::Url("http://scenario:2".into())
        );
        let mut opts = options();
        opts.target_url = Some("http://cli:3".into());
        let from_cli = RunConfig::resolve_with(with_url, &opts, env).unwrap();
        assert_eq!(from_cli.endpoint, Endpoint::Url("http://cli:3".into()));
    }

    #[test]
    fn the_simulator_runs_unless_a_url_is_given_on_the_command_line() {
        let sim = loaded("simulator: {parallel: 2}\n");
        let config = RunConfig::resolve_with(sim.clone(), &options(), |_| None).unwrap();
        assert!(matches!(config.endpoint, Endpoint::Simulator(ref s) if s.parallel == 2));
        let mut opts = options();
        opts.target_url = Some("http://cli:3".into());
        let config = RunConfig::resolve_with(sim, &opts, |_| None).unwrap();
        assert_eq!(config.endpoint, Endpoint::Url("http://cli:3".into()));
    }

    #[test]
    fn prometheus_linger_comes_from_the_command_line_then_the_file_then_the_default() {
        let file = loaded("outputs: {prometheus: {listen: \"127.0.0.1:9464\", linger: 3s}}\n");
        let config = RunConfig::resolve_with(file.clone(), &options(), |_| None).unwrap();
        let p = config.prometheus.unwrap();
        assert_eq!(p.linger, Duration::from_secs(3));
        let mut opts = options();
        opts.prometheus_linger = Some(Duration::from_secs(1));
        let config = RunConfig::resolve_with(file, &opts, |_| None).unwrap();
        assert_eq!(config.prometheus.unwrap().linger, Duration::from_secs(1));
        let mut opts = options();
        opts.prometheus = Some("127.0.0.1:1".parse().unwrap());
        let config = RunConfig::resolve_with(loaded(""), &opts, |_| None).unwrap();
        assert_eq!(config.prometheus.unwrap().linger, DEFAULT_PROMETHEUS_LINGER);
    }

    #[test]
    fn a_url_that_is_not_one_is_a_usage_error_before_anything_is_sent() {
        let mut opts = options();
        opts.target_url = Some("not a url".into());
        let err = RunConfig::resolve_with(loaded(""), &opts, |_| None).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
        assert!(err.to_string().starts_with("--target-url: "), "{err}");
        let env = |_: &str| Some("http://[::1".to_string());
        let err = RunConfig::resolve_with(loaded(""), &options(), env).unwrap_err();
        assert!(err.to_string().starts_with("OLLAMA_HOST: "), "{err}");
    }

    #[test]
    fn a_missing_api_key_variable_is_a_usage_error() {
        let mut openai = loaded("");
        openai.scenario.target.backend = BackendKind::Openai;
        openai.scenario.target.api_key_env = Some("KEY_VAR".into());
        let err = RunConfig::resolve_with(openai.clone(), &options(), |_| None).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::EXIT_USAGE);
        assert!(err.to_string().contains("KEY_VAR"));
        let ok = RunConfig::resolve_with(openai, &options(), |_| Some("k".into())).unwrap();
        assert_eq!(ok.api_key.as_deref(), Some("k"));
    }
}
