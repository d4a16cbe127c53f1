//! The simulator's HTTP side (axum): routes, the slot queue, and the timed token stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::{Path, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use rand::rngs::SmallRng;
use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::{mpsc, OnceCell, Semaphore};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use super::model::{decode_step, estimate_prompt_tokens, output_tokens, prefill_time};
use super::wire::{Done, Frames, Wire};
use super::{Fault, SimConfig, SimStats};

mod embed;
mod shared;
use embed::{ollama_embed, ollama_embeddings, openai_embeddings, EMBEDDING_DIMENSIONS};
use shared::{admit, error, http_fault, pause, InFlight, Sim};

/// A running simulator; dropping it stops the server.
pub struct SimServer {
    /// The bound address.
    pub addr: SocketAddr,
    /// Live counters.
    pub stats: Arc<SimStats>,
    stop: CancellationToken,
}

impl SimServer {
    /// Base URL for clients.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Resolves when the server stops (Ctrl-C handling is the caller's).
    pub async fn stopped(&self) {
        self.stop.cancelled().await;
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Binds `addr` (port 0 picks a free port) and serves until the returned handle is dropped.
pub async fn start(cfg: SimConfig, addr: SocketAddr) -> std::io::Result<SimServer> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let stats = Arc::new(SimStats::default());
    let sim = Arc::new(Sim {
        slots: Semaphore::new(cfg.parallel.max(1) as usize),
        cfg,
        stats: stats.clone(),
        loaded: OnceCell::new(),
        decoding: AtomicUsize::new(0),
        next_request: Default::default(),
    });
    // vLLM and llama-server check the key on every route they serve; Ollama checks none, so its
    // routes are guarded only when asked (`guard_ollama`), as behind an authenticating proxy.
    let openai = Router::new()
        .route("/v1/chat/completions", post(openai_chat))
        .route("/v1/completions", post(openai_completions))
        .route("/v1/responses", post(openai_responses))
        .route("/v1/embeddings", post(openai_embeddings))
        .route("/v1/models", get(openai_models))
        .route("/v1/models/{*id}", get(openai_model))
        .route("/tokenize", post(tokenize))
        .route_layer(middleware::from_fn_with_state(sim.clone(), require_key));
    let mut ollama = Router::new()
        .route("/", get(|| async { "Ollama is running" }))
        .route(
            "/api/version",
            get(|| async {
                Json(json!({"version": concat!("0.0.0-llm-bench-sim-", env!("CARGO_PKG_VERSION"))}))
            }),
        )
        .route("/api/tags", get(tags))
        .route("/api/show", post(show))
        .route("/api/ps", get(ps))
        .route("/api/generate", post(generate))
        .route("/api/chat", post(chat))
        .route("/api/embed", post(ollama_embed))
        .route("/api/embeddings", post(ollama_embeddings));
    if sim.cfg.guard_ollama {
        ollama = ollama.route_layer(middleware::from_fn_with_state(sim.clone(), require_key));
    }
    let app = openai
        .merge(ollama)
        .route("/sim/stats", get(truth))
        .route("/sim/reset", post(reset_truth))
        .with_state(sim);
    let stop = CancellationToken::new();
    let shutdown = stop.clone();
    tokio::spawn(async move {
        // Go's net/http (and so Ollama) sets TCP_NODELAY; without it, Nagle's algorithm and the
        // client's delayed ACK add ~40 ms between the headers and the first token.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let serve = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await });
        // Serving ends only on shutdown or a listener failure; neither needs reporting.
        let _ = serve.await;
    });
    Ok(SimServer { addr, stats, stop })
}

fn model_names(sim: &Sim) -> Vec<String> {
    if sim.cfg.models.is_empty() {
        vec!["llm-bench-sim:latest".to_string()]
    } else {
        sim.cfg.models.clone()
    }
}

async fn tags(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let models: Vec<Value> = model_names(&sim)
        .into_iter()
        .map(|name| json!({"name": name, "model": name, "modified_at": "2026-01-01T00:00:00Z", "size": 0, "digest": "sim", "details": {"format": "gguf", "family": "sim", "parameter_size": "0", "quantization_level": "none"}}))
        .collect();
    Json(json!({"models": models}))
}

/// The simulator's own send times since the last reset (the truth benchmarks compare with).
async fn truth(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(sim.stats.truth())
}

async fn reset_truth(State(sim): State<Arc<Sim>>) -> Json<Value> {
    sim.stats.reset_truth();
    Json(json!({"reset": true}))
}

/// Ollama's `/api/show`: 200 with a few details when the model is served, 404 as Ollama words it
/// otherwise.
async fn show(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = asked["model"]
        .as_str()
        .or_else(|| asked["name"].as_str())
        .unwrap_or("");
    if sim.cfg.serves(model) {
        Json(show_body(model)).into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            json!({"error": format!("model '{model}' not found")}),
        )
    }
}

/// `/api/show` as Ollama 0.6+ shapes it for a small llama-architecture model: the details,
/// the GGUF metadata under `model_info`, and the `capabilities` clients check before calling
/// chat, tools or embeddings.
fn show_body(model: &str) -> Value {
    json!({
        "license": "",
        "modelfile": format!("# Modelfile generated by llm-bench sim\nFROM {model}\n"),
        "parameters": "num_ctx 4096",
        "template": "{{ if .System }}{{ .System }}\n{{ end }}{{ .Prompt }}",
        "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"], "parameter_size": "1.2B", "quantization_level": "Q4_K_M"},
        "model_info": {
            "general.architecture": "llama",
            "general.basename": "llm-bench-sim",
            "general.file_type": 15,
            "general.parameter_count": 1_235_814_400_u64,
            "general.quantization_version": 2,
            "llama.attention.head_count": 32,
            "llama.attention.head_count_kv": 8,
            "llama.block_count": 16,
            "llama.context_length": 4096,
            "llama.embedding_length": EMBEDDING_DIMENSIONS,
            "llama.vocab_size": 128_256,
            "tokenizer.ggml.model": "gpt2"
        },
        "capabilities": ["completion", "tools", "embedding"],
        "modified_at": "2026-01-01T00:00:00Z"
    })
}

/// The answer to a request whose bearer token is missing or wrong: vLLM's and llama-server's
/// 401 on the OpenAI routes, a proxy's on Ollama's.
async fn require_key(State(sim): State<Arc<Sim>>, request: Request, next: Next) -> Response {
    if authorized(&sim, request.headers()) {
        return next.run(request).await;
    }
    // Like some real servers, say which key was refused: the client must not log it.
    let given = bearer(request.headers()).unwrap_or("none").to_string();
    let message = format!("invalid or missing API key (given: {given})");
    let body = if request.uri().path().starts_with("/api") {
        json!({"error": message})
    } else {
        json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}})
    };
    error(StatusCode::UNAUTHORIZED, body)
}

/// `/v1/models/{id}`: one model, or OpenAI's 404 for a name not served.
async fn openai_model(State(sim): State<Arc<Sim>>, Path(id): Path<String>) -> Response {
    if model_names(&sim).contains(&id) || sim.cfg.serves(&id) {
        Json(json!({"id": id, "object": "model", "created": 0, "owned_by": "llm-bench-sim"}))
            .into_response()
    } else {
        error(
            StatusCode::NOT_FOUND,
            json!({"error": {"message": format!("The model `{id}` does not exist."), "type": "NotFoundError", "param": "model", "code": 404}}),
        )
    }
}

async fn openai_models(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let data: Vec<Value> = model_names(&sim)
        .into_iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "llm-bench-sim"}))
        .collect();
    Json(json!({"object": "list", "data": data}))
}

/// llama-server's and vLLM's `POST /tokenize`, counting as the simulator does (4 characters per
/// token), with both answer shapes (`tokens` and `count`).
async fn tokenize(body: Bytes) -> Response {
    let asked: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(text) = asked["content"]
        .as_str()
        .or_else(|| asked["prompt"].as_str())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            json!({"error": "give `content` or `prompt`"}),
        );
    };
    let n = super::model::estimate_prompt_tokens(text.len());
    let tokens: Vec<u64> = (0..n).collect();
    Json(json!({"tokens": tokens, "count": n, "max_model_len": 4096})).into_response()
}

async fn ps(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let models: Vec<Value> = if sim.loaded.initialized() {
        model_names(&sim).into_iter().map(|name| json!({"name": name, "model": name, "size": 0, "size_vram": 0, "digest": "sim", "expires_at": "2099-01-01T00:00:00Z", "context_length": 4096})).collect()
    } else {
        Vec::new()
    };
    Json(json!({"models": models}))
}

async fn generate(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    handle(sim, body, Api::OllamaGenerate).await
}

async fn chat(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    handle(sim, body, Api::OllamaChat).await
}

async fn openai_chat(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    handle(sim, body, Api::OpenAiChat).await
}

async fn openai_completions(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    handle(sim, body, Api::OpenAiCompletions).await
}

async fn openai_responses(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    handle(sim, body, Api::OpenAiResponses).await
}

/// The endpoint a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    OllamaChat,
    OllamaGenerate,
    OpenAiChat,
    OpenAiCompletions,
    OpenAiResponses,
}

/// What the simulator needs from a request body.
struct Job {
    prompt_chars: usize,
    num_predict: Option<i64>,
    stream: bool,
    frames: Frames,
}

fn parse_job(body: &[u8], api: Api) -> Result<Job, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    let model = v["model"].as_str().ok_or("model is required")?.to_string();
    let content_len = |messages: &Value| -> Result<usize, String> {
        Ok(messages
            .as_array()
            .ok_or("messages is required")?
            .iter()
            .map(|m| m["content"].as_str().map_or(0, str::len))
            .sum())
    };
    let include_usage = v["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let (prompt_chars, num_predict, wire, stream_default) = match api {
        Api::OllamaChat => (
            content_len(&v["messages"])?,
            v["options"]["num_predict"].as_i64(),
            Wire::OllamaChat,
            true,
        ),
        Api::OllamaGenerate => (
            v["prompt"].as_str().map_or(0, str::len) + v["system"].as_str().map_or(0, str::len),
            v["options"]["num_predict"].as_i64(),
            Wire::OllamaGenerate,
            true,
        ),
        Api::OpenAiChat => (
            content_len(&v["messages"])?,
            v["max_tokens"]
                .as_i64()
                .or(v["max_completion_tokens"].as_i64()),
            Wire::OpenAiChat { include_usage },
            false,
        ),
        Api::OpenAiCompletions => (
            v["prompt"].as_str().ok_or("prompt is required")?.len(),
            v["max_tokens"].as_i64(),
            Wire::OpenAiCompletions { include_usage },
            false,
        ),
        Api::OpenAiResponses => (
            responses_input_len(&v["input"])? + v["instructions"].as_str().map_or(0, str::len),
            v["max_output_tokens"].as_i64(),
            Wire::OpenAiResponses,
            false,
        ),
    };
    let now = std::time::SystemTime::now();
    Ok(Job {
        prompt_chars,
        num_predict,
        stream: v["stream"].as_bool().unwrap_or(stream_default),
        frames: Frames {
            wire,
            model,
            created_at: humantime::format_rfc3339_micros(now).to_string(),
            created: now
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            sequence: Default::default(),
        },
    })
}

/// The characters of a Responses-API `input`: a string, or items whose `content` is a string
/// or a list of `input_text` parts.
fn responses_input_len(input: &Value) -> Result<usize, String> {
    if let Some(text) = input.as_str() {
        return Ok(text.len());
    }
    let items = input.as_array().ok_or("input is required")?;
    Ok(items
        .iter()
        .map(|item| match &item["content"] {
            Value::String(text) => text.len(),
            Value::Array(parts) => parts
                .iter()
                .map(|p| p["text"].as_str().map_or(0, str::len))
                .sum(),
            _ => 0,
        })
        .sum())
}

/// The bearer token a request presents, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

fn authorized(sim: &Sim, headers: &HeaderMap) -> bool {
    match &sim.cfg.api_key {
        None => true,
        Some(key) => bearer(headers).is_some_and(|given| given == key),
    }
}

async fn handle(sim: Arc<Sim>, body: Bytes, api: Api) -> Response {
    let openai = !matches!(api, Api::OllamaChat | Api::OllamaGenerate);
    let job = match parse_job(&body, api) {
        Ok(job) => job,
        Err(message) if openai => {
            return error(
                StatusCode::BAD_REQUEST,
                json!({"error": {"message": message, "type": "invalid_request_error"}}),
            )
        }
        Err(message) => return error(StatusCode::BAD_REQUEST, json!({"error": message})),
    };
    let f = &job.frames;
    let not_found = || {
        error(
            StatusCode::NOT_FOUND,
            f.error_body(
                &format!("model \"{}\" not found, try pulling it first", f.model),
                "not_found_error",
            ),
        )
    };
    if !sim.cfg.serves(&f.model) {
        return not_found();
    }
    let (rng, fault) = admit(&sim);
    if let Some(fault) = fault {
        sim.stats.count_fault(fault);
        if let Some((status, message)) = http_fault(fault) {
            return error(status, f.error_body(message, "api_error"));
        }
        if fault == Fault::Http404 {
            return not_found();
        }
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let content_type = f.content_type();
    if job.stream {
        tokio::spawn(produce(sim, job, fault, rng, tx));
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| {
                error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "response build failed"}),
                )
            })
    } else {
        let frames = job.frames.clone();
        let whole = Arc::new(std::sync::Mutex::new(None));
        let slot = whole.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let result = produce(sim, job, fault, rng, tx).await;
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = result;
            let _ = done_tx.send(());
        });
        collect_whole(rx, done_rx, whole, frames).await
    }
}

/// `stream: false`: waits for the whole answer and sends it as one object.
async fn collect_whole(
    mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>,
    done_rx: tokio::sync::oneshot::Receiver<()>,
    whole: Arc<std::sync::Mutex<Option<(String, Done)>>>,
    frames: Frames,
) -> Response {
    // Drain the frames (they are for streaming) so the producer runs to its end.
    while rx.recv().await.is_some() {}
    let _ = done_rx.await;
    let result = whole.lock().unwrap_or_else(|e| e.into_inner()).take();
    match result {
        Some((text, done)) => Json(frames.whole(&text, &done)).into_response(),
        None => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            frames.error_body(
                "an error was encountered while running the model",
                "api_error",
            ),
        ),
    }
}

const WORDS: [&str; 16] = [
    " the", " model", " answers", " quickly", " and", " tokens", " flow", " through", " a",
    " queue", " of", " slots", " while", " latency", " grows", ".",
];

struct Decoding<'a>(&'a AtomicUsize);

impl Drop for Decoding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs one request through load, queue, prefill and decode, sending frames to `tx`. Returns
/// the text and final numbers when the answer completed; returns early (freeing the slot) as
/// soon as the client goes away.
async fn produce(
    sim: Arc<Sim>,
    job: Job,
    fault: Option<Fault>,
    mut rng: SmallRng,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Option<(String, Done)> {
    let _in_flight = InFlight::enter(&sim.stats);
    let arrived = Instant::now();
    sim.loaded
        .get_or_init(|| pause(sim.cfg.load_time.get()))
        .await;
    let load = arrived.elapsed();
    let _slot = sim.slots.acquire().await.ok()?;
    let prompt_tokens = estimate_prompt_tokens(job.prompt_chars);
    let prefill = prefill_time(&sim.cfg, prompt_tokens);
    pause(prefill).await;
    let (tokens, reason) = output_tokens(&sim.cfg, job.num_predict, &mut rng);
    let fault_at = tokens / 2;
    let decode_start = Instant::now();
    sim.decoding.fetch_add(1, Ordering::SeqCst);
    let _decoding = Decoding(&sim.decoding);
    let f = &job.frames;
    let send = |bytes: Vec<u8>| tx.send(Ok(Bytes::from(bytes)));
    if let Some(start) = f.start() {
        send(start).await.ok()?;
    }
    let mut text = String::new();
    pause(sim.cfg.first_token_delay.get()).await;
    let micros = crate::duration::micros;
    let (mut first_sent, mut last_sent, mut gaps) = (None, None::<Instant>, Vec::new());
    for i in 0..tokens {
        if i > 0 {
            pause(decode_step(&sim.cfg, sim.decoding.load(Ordering::SeqCst))).await;
        }
        if i == fault_at {
            match fault {
                Some(Fault::ErrorLine) => {
                    let _ = send(f.error("an error was encountered while running the model")).await;
                    return None;
                }
                Some(Fault::MalformedLine) => {
                    let _ = send(f.malformed()).await;
                    return None;
                }
                Some(Fault::Disconnect) => {
                    let _ = tx
                        .send(Err(std::io::Error::other("simulated disconnect")))
                        .await;
                    return None;
                }
                Some(Fault::Stall) => {
                    let stall = sim
                        .cfg
                        .faults
                        .stall_duration
                        .map_or(Duration::from_secs(3600), |d| d.get());
                    tokio::select! {
                        _ = sleep(stall) => {}
                        _ = tx.closed() => return None,
                    }
                }
                _ => {}
            }
        }
        let word = WORDS[rng.random_range(0..WORDS.len())];
        text.push_str(word);
        let sent = Instant::now();
        send(f.token(word)).await.ok()?;
        first_sent.get_or_insert(sent);
        if let Some(previous) = last_sent {
            gaps.push(micros(sent - previous));
        }
        last_sent = Some(sent);
    }
    let done = Done {
        reason,
        prompt_tokens,
        tokens,
        total: arrived.elapsed(),
        load,
        prefill,
        eval: decode_start.elapsed(),
    };
    let _ = send(f.end(&done, &text)).await;
    if let Some(first) = first_sent {
        sim.stats
            .record_truth(micros(first - arrived), &gaps, micros(arrived.elapsed()));
    }
    Some((text, done))
}
