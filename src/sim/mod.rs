//! The built-in Ollama-compatible simulator: a loopback server with a small, explainable model of
//! one loaded model (slots, FIFO queue, prefill and decode rates, cold load, faults).
//!
//! It serves Ollama's /api/generate, /api/chat, /api/embed and /api/embeddings and the
//! OpenAI-compatible /v1/chat/completions, /v1/completions, /v1/responses (streaming and not)
//! and /v1/embeddings, plus /api/tags, /api/show, /api/ps, /api/version, /v1/models,
//! /v1/models/{id}, /tokenize and `/`. It reads time through tokio, so tests can run it under a paused clock.

pub mod model;
mod server;
pub(crate) mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::HumanDuration;

pub use server::{start, SimServer};

/// Simulator settings (the `simulator:` section of a scenario, or `llm-bench sim` flags).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Requests decoded at once (OLLAMA_NUM_PARALLEL). More wait in a FIFO queue.
    pub parallel: u32,
    /// Prefill time per prompt token (prompt tokens ≈ characters / 4).
    pub prefill_per_token: HumanDuration,
    /// Decode time per output token of one stream alone.
    pub decode_per_token: HumanDuration,
    /// Shared decode bandwidth in tokens/s across all slots; unset = no cap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_decode_tokens_per_second: Option<f64>,
    /// Cold model load paid by the first request (and those arriving during it).
    pub load_time: HumanDuration,
    /// An exact pause before each answer's first token, after prefill (0 by default): with
    /// prefill and load at 0 and many slots, the first-token time of a fixed-timing benchmark.
    pub first_token_delay: HumanDuration,
    /// Output length when the request sets no num_predict: uniform in [min, max].
    pub output_tokens: OutputTokens,
    /// Models served; empty serves any name. Other names get 404 as in Ollama.
    pub models: Vec<String>,
    /// Seed for output lengths, text and faults.
    pub seed: u64,
    /// Fault injection rates.
    pub faults: Faults,
    /// Require this bearer token on every OpenAI-compatible route (`/v1/...`, `/tokenize`;
    /// 401 otherwise), as vLLM does; unset = no check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Require `api_key` on the Ollama routes (`/api/...`, `/`) too, as an authenticating proxy
    /// in front of Ollama would. Off by default: Ollama itself checks no key.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub guard_ollama: bool,
}

impl SimConfig {
    /// Whether the simulator answers for `model` (any name when `models` is empty).
    pub fn serves(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            parallel: 1,
            prefill_per_token: HumanDuration(Duration::from_micros(500)),
            decode_per_token: HumanDuration(Duration::from_millis(20)),
            max_decode_tokens_per_second: None,
            load_time: HumanDuration(Duration::from_millis(500)),
            first_token_delay: HumanDuration(Duration::ZERO),
            output_tokens: OutputTokens::default(),
            models: Vec::new(),
            seed: 1,
            faults: Faults::default(),
            api_key: None,
            guard_ollama: false,
        }
    }
}

/// Output-length range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutputTokens {
    /// Fewest tokens.
    pub min: u32,
    /// Most tokens.
    pub max: u32,
}

impl Default for OutputTokens {
    fn default() -> Self {
        Self { min: 16, max: 64 }
    }
}

/// Probability of each fault per request (0 to 1; they add up, in this order).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Faults {
    /// HTTP 500 before streaming.
    pub http_500: f64,
    /// HTTP 503 "server busy" before streaming.
    pub http_503: f64,
    /// HTTP 404 "model not found" before streaming.
    pub http_404: f64,
    /// An `{"error": ...}` line halfway through the stream.
    pub error_line: f64,
    /// A line that is not JSON halfway through the stream, then the connection closes.
    pub malformed_line: f64,
    /// The stream stops halfway for `stall_duration`, then goes on.
    pub stall: f64,
    /// The connection is cut halfway through the stream.
    pub disconnect: f64,
    /// How long a stall lasts. Default 1h (longer than any sane timeout).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_duration: Option<HumanDuration>,
}

/// An injected fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// HTTP 500.
    Http500,
    /// HTTP 503.
    Http503,
    /// HTTP 404.
    Http404,
    /// Error line mid-stream.
    ErrorLine,
    /// Garbage line mid-stream.
    MalformedLine,
    /// Stall mid-stream.
    Stall,
    /// Connection cut mid-stream.
    Disconnect,
}

impl Fault {
    /// Every fault, in the order rates accumulate.
    pub const ALL: [Fault; 7] = [
        Fault::Http500,
        Fault::Http503,
        Fault::Http404,
        Fault::ErrorLine,
        Fault::MalformedLine,
        Fault::Stall,
        Fault::Disconnect,
    ];

    /// The flag/field name.
    pub fn name(self) -> &'static str {
        match self {
            Fault::Http500 => "http_500",
            Fault::Http503 => "http_503",
            Fault::Http404 => "http_404",
            Fault::ErrorLine => "error_line",
            Fault::MalformedLine => "malformed_line",
            Fault::Stall => "stall",
            Fault::Disconnect => "disconnect",
        }
    }

    fn index(self) -> usize {
        Fault::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

impl Faults {
    /// The rate of one fault.
    pub fn rate(&self, fault: Fault) -> f64 {
        match fault {
            Fault::Http500 => self.http_500,
            Fault::Http503 => self.http_503,
            Fault::Http404 => self.http_404,
            Fault::ErrorLine => self.error_line,
            Fault::MalformedLine => self.malformed_line,
            Fault::Stall => self.stall,
            Fault::Disconnect => self.disconnect,
        }
    }

    /// Sets one fault's rate by name; false for an unknown name.
    pub fn set(&mut self, name: &str, rate: f64) -> bool {
        let slot = match name {
            "http_500" => &mut self.http_500,
            "http_503" => &mut self.http_503,
            "http_404" => &mut self.http_404,
            "error_line" => &mut self.error_line,
            "malformed_line" => &mut self.malformed_line,
            "stall" => &mut self.stall,
            "disconnect" => &mut self.disconnect,
            _ => return false,
        };
        *slot = rate;
        true
    }
}

/// What the simulator saw, for tests and for `llm-bench sim`'s exit line.
#[derive(Debug, Default)]
pub struct SimStats {
    /// Generation requests received.
    pub requests: AtomicU64,
    /// Generation requests being handled now (queued or streaming).
    pub in_flight: AtomicU64,
    /// The most generation requests handled at once since the last reset.
    pub max_in_flight: AtomicU64,
    faults: [AtomicU64; 7],
    /// The simulator's own send times: the truth a client's report is compared with.
    truth: std::sync::Mutex<Truth>,
}

/// The server's side of every completed answer: from its arrival to the first token handed to
/// the connection, the gaps between tokens, and to the last frame. Microseconds.
#[derive(Debug)]
struct Truth {
    ttft: hdrhistogram::Histogram<u64>,
    itl: hdrhistogram::Histogram<u64>,
    e2e: hdrhistogram::Histogram<u64>,
}

impl Default for Truth {
    fn default() -> Self {
        let h = || {
            hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .expect("static histogram bounds are valid")
        };
        Self {
            ttft: h(),
            itl: h(),
            e2e: h(),
        }
    }
}

/// Percentiles of one truth histogram, ms (the middle of each HDR bucket).
fn truth_stats(h: &hdrhistogram::Histogram<u64>) -> serde_json::Value {
    let q = |q: f64| h.median_equivalent(h.value_at_quantile(q)) as f64 / 1000.0;
    if h.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::json!({
        "count": h.len(),
        "p50": q(0.5),
        "p90": q(0.9),
        "p99": q(0.99),
        "mean": h.mean() / 1000.0,
        "max": h.median_equivalent(h.max()) as f64 / 1000.0,
    })
}

impl SimStats {
    /// How many times `fault` was injected.
    pub fn faults(&self, fault: Fault) -> u64 {
        self.faults[fault.index()].load(Ordering::Relaxed)
    }

    /// Clears the high-water mark of in-flight requests.
    pub fn reset_max_in_flight(&self) {
        self.max_in_flight
            .store(self.in_flight.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Records one completed answer's send times (µs from its arrival).
    pub(crate) fn record_truth(&self, ttft: u64, gaps: &[u64], e2e: u64) {
        let mut truth = self.truth.lock().unwrap_or_else(|e| e.into_inner());
        truth.ttft.saturating_record(ttft);
        for gap in gaps {
            truth.itl.saturating_record(*gap);
        }
        truth.e2e.saturating_record(e2e);
    }

    /// The distribution of the simulator's own send times since the last reset, in ms:
    /// `{"requests", "ttft_ms", "itl_ms", "e2e_ms"}` (`GET /sim/stats`).
    pub fn truth(&self) -> serde_json::Value {
        let truth = self.truth.lock().unwrap_or_else(|e| e.into_inner());
        serde_json::json!({
            "requests": truth.e2e.len(),
            "max_in_flight": self.max_in_flight.load(Ordering::Relaxed),
            "ttft_ms": truth_stats(&truth.ttft),
            "itl_ms": truth_stats(&truth.itl),
            "e2e_ms": truth_stats(&truth.e2e),
        })
    }

    /// Forgets the send times and the in-flight high-water mark (`POST /sim/reset`).
    pub fn reset_truth(&self) {
        *self.truth.lock().unwrap_or_else(|e| e.into_inner()) = Truth::default();
        self.reset_max_in_flight();
    }

    fn count_fault(&self, fault: Fault) {
        self.faults[fault.index()].fetch_add(1, Ordering::Relaxed);
    }
}
