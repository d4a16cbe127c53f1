//! The scenario file: serde + schemars types that define the YAML users write.
//!
//! Field doc comments become the JSON Schema's descriptions, which editors show as hover help
//! through yaml-language-server, so they are written for users, not for maintainers.

pub(crate) mod env;
pub(crate) mod legacy;
pub(crate) mod load;
mod phase;
pub mod schema;
pub mod set;
pub mod starter;
pub(crate) mod validate;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::duration::HumanDuration;
use crate::sim::SimConfig;

pub use load::LoadError;

pub use phase::{
    Arrivals, CapacitySearch, ConcurrencyLevels, ConstantArrivalRate, ConstantVus, OpenModel,
    Phase, RampingArrivalRate, RampingVus, RateLevels, RateStage, SearchMode, Stage, WhenBusy,
    MAX_VUS,
};
pub use validate::Problem;

/// A benchmark scenario: what to call, with which prompts, under which load.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Another scenario file this one is based on, relative to this file: its fields are
    /// inherited, mappings merge key by key, anything else written here (lists, scalars)
    /// replaces the inherited value, and `~` removes it. The base may extend another in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(example = "base.yaml")]
    pub extends: Option<String>,
    /// Short name; used in result file names and reports.
    pub name: String,
    /// What this scenario measures and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The server and model under test.
    pub target: Target,
    /// The prompts: inline entries and `{include: FILE, weight: N}` prompt sets (YAML, JSONL or
    /// ShareGPT JSON), or one `{include: FILE}`. Paths are relative to this file.
    pub prompts: Prompts,
    /// How each request picks its prompt: `sequential` (default), `random` or `weighted` (a set
    /// by its weight, then an entry). Seeded by `seed`, so two runs send the same sequence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<PromptOrder>,
    /// Seed of prompt selection and of `vars` values. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Requests sent one at a time before measuring, excluded from every metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<Warmup>,
    /// Named load phases (k6 scenarios). They start together, each after its own `start_time`.
    pub scenarios: BTreeMap<String, Phase>,
    /// Pass/fail criteria per metric, in k6's grammar: `ttft: ["p(95)<500ms"]`. A key may select
    /// a sub-metric by tag: `"ttft{level:10}"` (tags: level, stage, scenario, prompt_set, check).
    /// Any failure makes the run exit with code 99 after writing all outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<BTreeMap<String, Vec<ThresholdSpec>>>,
    /// Simple SLOs, kept for older configs: sugar for the equivalent thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slo: Option<Slo>,
    /// Multi-turn sessions: each request becomes `turns` requests, every one carrying the
    /// conversation so far (the model's replies and the follow-ups), so the context grows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation: Option<Conversation>,
    /// A Rhai script whose `setup`, `before_request`, `after_response` and `teardown` functions
    /// run around the requests (all optional).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HooksConfig>,
    /// Where live metrics go while the run lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    /// Start the built-in Ollama simulator in-process and benchmark it, unless a target URL is
    /// given on the command line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulator: Option<SimConfig>,
}

/// One threshold: an expression, or an expression with abort settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ThresholdSpec {
    /// `aggregation operator value`, e.g. `p(95)<500ms`, `rate<0.01`, `avg>2`.
    Expression(String),
    /// With k6's abort options.
    Detailed(DetailedThreshold),
}

/// A threshold with abort settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailedThreshold {
    /// `aggregation operator value`, e.g. `p(99)<50ms`.
    pub threshold: String,
    /// Stop the run (writing the results gathered so far) as soon as this fails.
    #[serde(default)]
    pub abort_on_fail: bool,
    /// Do not abort before this much of the run has passed, so early noise cannot stop it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_abort_eval: Option<HumanDuration>,
}

/// The seed's SLO section; each entry becomes a threshold.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Slo {
    /// `e2e_latency: p(95)<N` (milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_latency_ms: Option<f64>,
    /// `e2e_latency: p(99)<N` (milliseconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_latency_ms: Option<f64>,
    /// `output_tokens_per_second: value>=N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_throughput_tps: Option<f64>,
}

/// Which server to call and how.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The API family the server speaks.
    #[serde(default)]
    pub backend: BackendKind,
    /// Base URL of the server. Ollama default: `OLLAMA_HOST` if set (as Ollama's own clients read
    /// it), else http://localhost:11434. OpenAI default: http://localhost:8000 (with or without
    /// `/v1`). `--target-url` overrides both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Model name as the server knows it, e.g. `llama3.2:1b`.
    pub model: String,
    /// Ollama: `chat` (/api/chat, default) or `generate` (/api/generate). OpenAI: `chat`
    /// (/v1/chat/completions, default) or `completions` (/v1/completions).
    #[serde(default)]
    pub api: Api,
    /// OpenAI backend: the environment variable holding the API key, sent as a bearer token.
    /// The key itself is never written to results, logs or reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Time allowed for one request, from sending to the last byte. Default 120s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    /// Time allowed from sending to the first token; past it the request fails as
    /// `first_token_timeout`. Unset: only `timeout` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_token_timeout: Option<HumanDuration>,
    /// Longest silence allowed between two reads (no byte for this long) before the request
    /// fails as `idle_timeout`, so a stream stuck mid-answer is found in seconds, not after the
    /// whole `timeout`. Unset: only `timeout` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<HumanDuration>,
    /// The longest line (NDJSON) or event (SSE) accepted, in bytes; a longer one fails the
    /// request as `oversized`. Default 4194304 (4 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1024))]
    pub max_line_bytes: Option<u64>,
    /// The tag pair that marks reasoning inside the answer text (DeepSeek-R1 on Ollama without
    /// `think`, OpenAI-compatible servers without a reasoning parser), as `[open, close]`; `[]`
    /// turns the detection off. Default `["<think>", "</think>"]`. A block counts only at the
    /// start of the answer; TTFA is the first answer token after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2))]
    pub think_tags: Option<Vec<String>>,
    /// Ollama: passed through as `options` (num_predict, temperature, seed, num_ctx, ...); keep
    /// num_ctx constant across runs, a change forces a model reload. OpenAI: merged into the
    /// request body (max_tokens, temperature, seed, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Map<String, Value>>,
    /// How tokens are counted where a count matters: unset, one token is 4 characters (an
    /// estimate, labelled so in the result); `server` asks the server's own `/tokenize`
    /// (llama.cpp's llama-server, vLLM, SGLang), `{file: tokenizer.json}` a local Hugging Face
    /// tokenizer file, so synthetic prompts have exactly their `input_tokens` and answers the
    /// server gives no count for are counted exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<TokenizerKind>,
    /// Passed through as Ollama `keep_alive`: a duration string ("5m") or seconds; negative keeps
    /// the model loaded forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_alive: Option<KeepAlive>,
}

/// Where token counts come from: `server`, or `{file: tokenizer.json}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum TokenizerKind {
    /// A tokenizer the server runs.
    Named(NamedTokenizer),
    /// A Hugging Face `tokenizer.json` on this machine (the model repository's), for servers
    /// without `/tokenize`: Ollama, TGI, or any server whose model's tokenizer file you have.
    File(TokenizerFile),
}

/// A local tokenizer file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenizerFile {
    /// Path of the `tokenizer.json`, relative to the scenario file.
    pub file: String,
}

/// The tokenizers a server runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NamedTokenizer {
    /// The server's `POST /tokenize` (OpenAI-compatible servers that have one).
    Server,
}

/// Ollama's `keep_alive`: a Go duration string or a number of seconds.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum KeepAlive {
    /// Seconds; negative means forever, 0 unloads after the request.
    Seconds(i64),
    /// A Go duration such as "5m" or "-1s".
    Text(String),
}

/// The wire protocol family of the target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// Ollama's native streaming NDJSON API.
    #[default]
    Ollama,
    /// The OpenAI-compatible SSE API (vLLM, llama-server, TGI, SGLang, LM Studio, Ollama /v1).
    Openai,
}

impl BackendKind {
    /// The name scenario files and results use.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Ollama => "ollama",
            BackendKind::Openai => "openai",
        }
    }
}

/// Which Ollama endpoint to call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// POST /api/chat with `messages`.
    #[default]
    Chat,
    /// POST /api/generate with `prompt` and `system` (Ollama).
    Generate,
    /// POST /v1/completions with a plain `prompt` (OpenAI).
    Completions,
    /// Embeddings, not a token stream: POST /api/embed (Ollama) or /v1/embeddings (OpenAI) with
    /// the prompt as `input`; measured as latency and embeddings per second.
    Embeddings,
}

impl Api {
    /// The name scenario files and results use.
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Chat => "chat",
            Api::Generate => "generate",
            Api::Completions => "completions",
            Api::Embeddings => "embeddings",
        }
    }
}

/// The `prompts` field.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Prompts {
    /// Inline entries and included sets, mixed. (First: serde would read `[x]` as a struct.)
    List(Vec<PromptItem>),
    /// One prompt-set file.
    Include(Include),
}

/// An item of the `prompts` list.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PromptItem {
    /// A prompt-set file.
    Include(Include),
    /// Generated prompts of a controlled size.
    Synthetic(SyntheticItem),
    /// An inline prompt.
    Entry(PromptEntry),
}

/// `{synthetic: {...}, weight: N}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyntheticItem {
    /// How to generate them.
    pub synthetic: Synthetic,
    /// Relative weight with `order: weighted`. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub weight: Option<f64>,
}

/// Deterministic prompts of a controlled size (vLLM's "random" dataset idea). No tokenizer is
/// shipped: a token is counted as 4 characters, the rule the simulator uses too.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Synthetic {
    /// Prompt length in tokens: a normal distribution, cut at 1.
    pub input_tokens: TokenDistribution,
    /// Answer length, enforced as `num_predict` (Ollama) or `max_tokens` (OpenAI).
    #[schemars(range(min = 1))]
    pub output_tokens: u32,
    /// How many distinct prompts to generate. Default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub count: Option<u32>,
    /// The set's name in metrics. Default `synthetic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A prefix shared between prompts, to measure prefix caching (vLLM's prefix repetition,
    /// llama.cpp's cache reuse): each prompt starts with one of `prefixes` texts of `tokens`
    /// tokens, followed by its own `input_tokens`. Prompts are assigned prefixes in turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_prefix: Option<SharedPrefix>,
}

/// `shared_prefix: {tokens: 1024, prefixes: 4}`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SharedPrefix {
    /// Length of each shared prefix, tokens (by the 4-characters rule).
    #[schemars(range(min = 1))]
    pub tokens: u32,
    /// How many distinct prefixes. Default 1: every prompt shares one.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub prefixes: u32,
}

fn one() -> u32 {
    1
}

/// A normal distribution of token counts.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenDistribution {
    /// Mean.
    #[schemars(range(min = 1))]
    pub mean: f64,
    /// Standard deviation. Default 0.
    #[serde(default)]
    #[schemars(range(min = 0))]
    pub stddev: f64,
}

/// `{include: FILE, weight: N}`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Include {
    /// A prompt-set file: YAML (`prompt-set.schema.json`), JSONL (one entry per line, with a
    /// `prompt` or `messages` field), or ShareGPT JSON (`conversations` of `from`/`value`; the
    /// first human turn is the prompt). Relative to the scenario file.
    pub include: String,
    /// Relative weight with `order: weighted`. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub weight: Option<f64>,
}

/// One prompt as written in a scenario or a prompt set.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum PromptEntry {
    /// A user message.
    Text(String),
    /// A prompt with its options.
    Full(FullEntry),
}

/// `{prompt, system}` or `{messages}`, with optional name, tags, options and vars.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FullEntry {
    /// The user message; `{{ name }}` placeholders are filled from `vars`. Give `prompt` or
    /// `messages`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// The system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// A whole chat; the model answers the last message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<Message>>,
    /// A name for this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Free tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Options for this entry only, merged over the target's (e.g. num_predict, max_tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Map<String, Value>>,
    /// Values for `{{ name }}` placeholders: each request picks one value of each list.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: BTreeMap<String, Vec<String>>,
}

/// How requests pick prompts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PromptOrder {
    /// Every entry in turn, across sets in the order written.
    #[default]
    Sequential,
    /// Uniformly at random among all entries.
    Random,
    /// A set at random by weight, then an entry of it uniformly.
    Weighted,
}

/// A prompt-set file in YAML.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptSetFile {
    /// The set's name in metrics (`ttft{prompt_set:NAME}`). Default: the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the set is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The entries.
    #[schemars(length(min = 1))]
    pub prompts: Vec<PromptEntry>,
}

/// One prompt: a plain string, a prompt with a system message, or a whole chat.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum Prompt {
    /// A user message.
    Text(String),
    /// A user message with an optional system message.
    WithSystem(PromptWithSystem),
    /// A whole chat history; the model answers the last message.
    Chat(ChatPrompt),
}

/// `{prompt, system}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromptWithSystem {
    /// The user message.
    pub prompt: String,
    /// The system message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
}

/// `{messages: [...]}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChatPrompt {
    /// Chat messages in order.
    pub messages: Vec<Message>,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

/// A chat role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// System instructions.
    System,
    /// The user.
    User,
    /// An earlier model reply.
    Assistant,
}

/// Warm-up requests.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Warmup {
    /// How many requests to send, one at a time, before measuring.
    pub requests: u32,
}

/// `conversation:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Conversation {
    /// Turns per session, the first included.
    #[schemars(range(min = 2))]
    pub turns: u32,
    /// User messages sent after each reply, in turn. Default: a few generic follow-ups.
    #[serde(default = "default_follow_ups")]
    pub follow_ups: Vec<String>,
}

fn default_follow_ups() -> Vec<String> {
    [
        "Tell me more.",
        "Can you give an example?",
        "Summarise that in one sentence.",
    ]
    .map(String::from)
    .to_vec()
}

/// `hooks:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HooksConfig {
    /// The Rhai script, relative to the scenario file.
    pub script: String,
    /// Wall-clock time one hook call may take; past it the call fails (the request as `hook`).
    /// Default 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
}

/// Live outputs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Outputs {
    /// Serve Prometheus metrics while the run lasts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusOutput>,
}

/// `outputs.prometheus`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrometheusOutput {
    /// Address of the `/metrics` endpoint, e.g. `127.0.0.1:9464` (`--prometheus` overrides).
    pub listen: String,
    /// How long `/metrics` stays up after the run so the final values are scraped. Default 15s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linger: Option<HumanDuration>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serde_names() {
        for kind in [BackendKind::Ollama, BackendKind::Openai] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for api in [Api::Chat, Api::Generate, Api::Completions, Api::Embeddings] {
            assert_eq!(serde_json::to_value(api).unwrap(), api.as_str());
        }
    }
}
