//! The seam between load generation and a model server: a [`Backend`] sends one request and
//! returns what was measured. Request failures are data ([`RequestError`]), never panics.

pub(crate) mod connect;
pub(crate) mod embeddings;
#[cfg(test)]
mod fixture_tests;
pub(crate) mod http;
pub(crate) mod lenient;
pub(crate) mod ndjson;
pub(crate) mod ollama;
pub(crate) mod ollama_stream;
pub(crate) mod openai;
pub(crate) mod openai_stream;
#[cfg(test)]
mod property_tests;
pub(crate) mod sse;
pub(crate) mod think;
pub(crate) mod tokenize;
pub(crate) mod wire;

use std::fmt;
use std::time::Duration;

use futures_util::future::BoxFuture;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

/// What one request sends: the backend's input.
pub use crate::prompts::Picked;

pub use ollama::{resolve_ollama_url, OllamaBackend};
pub use openai::OpenAiBackend;

/// Why a request failed, in the categories the summary counts.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Nothing listens on the port.
    Refused,
    /// Another connect failure (DNS, unreachable, TLS).
    Connect,
    /// The request did not finish within the target's timeout.
    Timeout,
    /// No token arrived within the target's `first_token_timeout`.
    FirstTokenTimeout,
    /// No byte arrived for the target's `idle_timeout` (a stream stuck mid-answer).
    IdleTimeout,
    /// HTTP 404: the model is not on the server (Ollama does not pull on demand).
    ModelNotFound,
    /// HTTP 503: the server's queue is full (OLLAMA_MAX_QUEUE).
    ServerBusy,
    /// Another 4xx status. (Results written before the spelling was unified say `http4xx`.)
    #[serde(rename = "http_4xx", alias = "http4xx")]
    Http4xx,
    /// A 5xx status other than 503.
    #[serde(rename = "http_5xx", alias = "http5xx")]
    Http5xx,
    /// The server sent an `{"error": ...}` line after the stream began.
    StreamError,
    /// A line that is not valid JSON.
    Malformed,
    /// A line or event longer than the target's `max_line_bytes`.
    Oversized,
    /// The stream ended cleanly but before `done: true`.
    Truncated,
    /// The connection broke mid-response.
    Disconnected,
    /// A hook script failed for this request (before or after it).
    Hook,
}

impl ErrorKind {
    /// The snake_case name used in results and on the terminal.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Refused => "refused",
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::FirstTokenTimeout => "first_token_timeout",
            ErrorKind::IdleTimeout => "idle_timeout",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::ServerBusy => "server_busy",
            ErrorKind::Http4xx => "http_4xx",
            ErrorKind::Http5xx => "http_5xx",
            ErrorKind::StreamError => "stream_error",
            ErrorKind::Malformed => "malformed",
            ErrorKind::Oversized => "oversized",
            ErrorKind::Truncated => "truncated",
            ErrorKind::Disconnected => "disconnected",
            ErrorKind::Hook => "hook",
        }
    }

    /// The category of a non-2xx HTTP status.
    pub fn from_status(status: u16) -> ErrorKind {
        match status {
            404 => ErrorKind::ModelNotFound,
            503 => ErrorKind::ServerBusy,
            400..=499 => ErrorKind::Http4xx,
            _ => ErrorKind::Http5xx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_text_stops_at_its_bound_on_a_character_boundary() {
        let mut text = "x".repeat(MAX_TEXT - 1);
        keep_text(&mut text, "éé");
        assert_eq!(text.len(), MAX_TEXT - 1, "half an é is not kept");
        keep_text(&mut text, "y");
        keep_text(&mut text, "z");
        assert_eq!(text.len(), MAX_TEXT);
        assert!(text.ends_with('y'));
    }

    #[test]
    fn every_kind_has_one_spelling_and_old_results_still_read() {
        for kind in [
            ErrorKind::Refused,
            ErrorKind::FirstTokenTimeout,
            ErrorKind::IdleTimeout,
            ErrorKind::Http4xx,
            ErrorKind::Http5xx,
            ErrorKind::ModelNotFound,
            ErrorKind::Hook,
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        let old: std::collections::BTreeMap<ErrorKind, u64> =
            serde_json::from_str(r#"{"http4xx": 1, "http5xx": 2}"#).unwrap();
        assert_eq!(old[&ErrorKind::Http4xx], 1);
        assert_eq!(old[&ErrorKind::Http5xx], 2);
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed request: its category and the server's or transport's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    /// The category counted in the summary.
    pub kind: ErrorKind,
    /// Detail for the raw log.
    pub message: String,
}

/// The longest error message kept (in the raw log), in bytes.
pub const MAX_ERROR_MESSAGE: usize = 4 << 10;

impl RequestError {
    /// A new error of `kind`; a message longer than [`MAX_ERROR_MESSAGE`] is cut there.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE {
            let mut cut = MAX_ERROR_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push_str("… (cut)");
        }
        Self { kind, message }
    }
}

/// Durations the server reported about its own work (Ollama's final-line metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerTimings {
    /// `total_duration`: from the request's arrival to the end.
    pub total: Option<Duration>,
    /// `load_duration`: model load and scheduler wait.
    pub load: Option<Duration>,
    /// `prompt_eval_duration`: prefill.
    pub prompt_eval: Option<Duration>,
    /// `eval_duration`: decode.
    pub eval: Option<Duration>,
}

impl ServerTimings {
    /// Time the request waited for a slot: total − load − prompt_eval − eval (PROTOCOLS.md §1:
    /// Ollama takes the slot semaphore after the load, so the remainder is queueing).
    pub fn queue_wait(&self) -> Option<Duration> {
        let used = self.load? + self.prompt_eval? + self.eval?;
        Some(self.total?.saturating_sub(used))
    }
}

/// What one request measured. All times are offsets from t0, the instant before sending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Measurement {
    /// Offset of the first line carrying text, thinking or a tool call.
    pub ttft: Option<Duration>,
    /// Offset of the first answer token: text or a tool call, not thinking. Equals `ttft` for
    /// models that do not reason.
    pub ttfa: Option<Duration>,
    /// Offset of the last byte (the `done` line), or of the failure.
    pub e2e: Duration,
    /// Gaps between consecutive content lines.
    pub itl: Vec<Duration>,
    /// Output tokens: the server's `eval_count`, else the content-chunk count.
    pub output_tokens: u64,
    /// True when `output_tokens` counts chunks because the server gave no count.
    pub tokens_estimated: bool,
    /// Lines that carried content.
    pub content_chunks: u64,
    /// The server's `prompt_eval_count`.
    pub prompt_tokens: Option<u64>,
    /// The server's own durations.
    pub server: ServerTimings,
    /// `done_reason` (`stop`, `length`, ...).
    pub done_reason: Option<String>,
    /// The response text (answer only), for hooks and checks.
    pub text: String,
    /// The reasoning text of thinking models (Ollama `thinking`, OpenAI `reasoning_content` or
    /// `reasoning`), for hooks.
    pub thinking: String,
    /// HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Why the request failed, if it did.
    pub error: Option<RequestError>,
    /// True when the request was sent a second time because the server had closed the
    /// kept-alive connection it was first written to; the first attempt's time is included.
    pub reconnected: bool,
    /// How long the request waited for a new TCP connection (`None`: a kept-alive one took
    /// it). Part of its TTFT and e2e, as the time to write the request is.
    pub connect: Option<Duration>,
    /// The other choices of an OpenAI `n > 1` answer (the first is `text`), each measured as
    /// its own stream: their gaps are in `itl`, never pooled across choices.
    pub other_choices: Vec<Choice>,
    /// Embeddings returned (`api: embeddings`); 0 for generations.
    pub embeddings: u64,
}

/// One more choice of an `n > 1` answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choice {
    /// Its `index`.
    pub index: u64,
    /// Its answer text.
    pub text: String,
    /// Its `finish_reason`.
    pub finish_reason: Option<String>,
}

/// The most answer (or reasoning) text kept per request, in bytes, for hooks and checks: lines
/// are bounded, but their number is not, and a server that never stops must not exhaust memory.
pub const MAX_TEXT: usize = 8 << 20;

/// Appends `piece` to `text` while `text` is below [`MAX_TEXT`] (cut at a character boundary).
pub fn keep_text(text: &mut String, piece: &str) {
    let room = MAX_TEXT.saturating_sub(text.len());
    if piece.len() <= room {
        text.push_str(piece);
    } else {
        let mut cut = room;
        while !piece.is_char_boundary(cut) {
            cut -= 1;
        }
        text.push_str(&piece[..cut]);
    }
}

/// A prompt as one text, for the endpoints that take no messages (`/v1/completions`,
/// embeddings): the prompt with its system message before it, or a conversation's turns one
/// after the other, paragraphs apart.
pub fn flat_prompt(prompt: &crate::scenario::Prompt) -> String {
    use crate::scenario::Prompt;
    match prompt {
        Prompt::Text(text) => text.clone(),
        Prompt::WithSystem(p) => match &p.system {
            Some(system) => format!("{system}\n\n{}", p.prompt),
            None => p.prompt.clone(),
        },
        Prompt::Chat(chat) => chat
            .messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n\n"),
    }
}

/// `base` with `overrides` merged over it (entry options over the target's).
pub fn merged_options(
    base: Option<&serde_json::Map<String, serde_json::Value>>,
    overrides: Option<&serde_json::Map<String, serde_json::Value>>,
) -> Option<serde_json::Map<String, serde_json::Value>> {
    match (base, overrides) {
        (None, None) => None,
        (base, overrides) => {
            let mut merged = base.cloned().unwrap_or_default();
            merged.extend(overrides.cloned().unwrap_or_default());
            Some(merged)
        }
    }
}

impl Measurement {
    /// Ends the request at `at` (after t0) as failed: what arrived before stays measured.
    pub fn fail_at(&mut self, at: Duration, error: RequestError) {
        self.e2e = at;
        self.error = Some(error);
    }

    /// Records a chunk with content arriving at `at`: the first sets TTFT, later ones add an
    /// inter-token gap after `last` (the previous content arrival, kept by the caller); the first
    /// answer chunk (not reasoning) sets TTFA.
    pub fn content_arrived(&mut self, at: Duration, answer: bool, last: &mut Option<Duration>) {
        if answer && self.ttfa.is_none() {
            self.ttfa = Some(at);
        }
        self.content_chunks += 1;
        match *last {
            // The first content of the request; another choice's first content is not.
            None => {
                self.ttft.get_or_insert(at);
            }
            Some(prev) => self.itl.push(at.saturating_sub(prev)),
        }
        *last = Some(at);
    }
}

/// A request's measurement and when it was sent.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// t0: the monotonic instant right before the request was sent.
    pub sent_at: Instant,
    /// What was measured.
    pub measurement: Measurement,
}

/// A model server API. Implementations take timestamps as bytes arrive and never panic on
/// server misbehaviour: every failure becomes a [`RequestError`].
pub trait Backend: Send + Sync {
    /// Which clock stamped the reads of the answers so far: `kernel` (the socket's receive
    /// time), `user` (when each read returned), `mixed`; `None` when this backend does not say.
    fn receive_clock(&self) -> Option<&'static str> {
        None
    }

    /// Sends one prompt (with its entry's options) and measures the streamed answer.
    fn send<'a>(&'a self, request: &'a Picked) -> BoxFuture<'a, Exchange>;

    /// Opens up to `connections` kept-alive connections before the measured load, so the
    /// first requests of a level do not pay for TCP setup; returns how many requests that
    /// opened them succeeded. A double without connections opens none.
    fn preconnect(&self, connections: usize) -> BoxFuture<'_, usize> {
        let _ = connections;
        Box::pin(async { 0 })
    }
}

/// `connections` GETs of `url` at once on `client`, each on a connection of its own (the pool
/// has no idle one while they are all in flight), left open in the pool for the load; returns
/// how many were answered.
pub(crate) async fn open_connections(
    client: &reqwest::Client,
    url: &str,
    bearer: Option<&str>,
    connections: usize,
) -> usize {
    let requests = (0..connections).map(|_| {
        let mut request = client.get(url);
        if let Some(key) = bearer {
            request = request.bearer_auth(key);
        }
        async move {
            let opened = async {
                match request.send().await {
                    // Read to the end, so the connection goes back to the pool; a body beyond
                    // the cap is given up with its connection.
                    Ok(response) => http::read_capped(response, http::MAX_SIDE_BODY)
                        .await
                        .is_ok(),
                    Err(_) => false,
                }
            };
            tokio::time::timeout(http::SIDE_TIMEOUT, opened)
                .await
                .unwrap_or(false)
        }
    });
    futures_util::future::join_all(requests)
        .await
        .into_iter()
        .filter(|ok| *ok)
        .count()
}
