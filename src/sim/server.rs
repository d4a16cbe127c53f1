//! The simulator's HTTP side (axum): routes, the slot queue, and the timed token stream.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::{mpsc, OnceCell, Semaphore};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use super::model::{decode_step, estimate_prompt_tokens, output_tokens, pick_fault, prefill_time};
use super::{Fault, SimConfig, SimStats};

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

struct Sim {
    cfg: SimConfig,
    stats: Arc<SimStats>,
    slots: Semaphore,
    loaded: OnceCell<()>,
    decoding: AtomicUsize,
    next_request: std::sync::atomic::AtomicU64,
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
    let app = Router::new()
        .route("/", get(|| async { "Ollama is running" }))
        .route(
            "/api/version",
            get(|| async {
                Json(json!({"version": concat!("0.0.0-llm-bench-sim-", env!("CARGO_PKG_VERSION"))}))
            }),
        )
        .route("/api/tags", get(tags))
        .route("/api/ps", get(ps))
        .route("/api/generate", post(generate))
        .route("/api/chat", post(chat))
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

async fn ps(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let models: Vec<Value> = if sim.loaded.initialized() {
        model_names(&sim).into_iter().map(|name| json!({"name": name, "model": name, "size": 0, "size_vram": 0, "digest": "sim", "expires_at": "2099-01-01T00:00:00Z", "context_length": 4096})).collect()
    } else {
        Vec::new()
    };
    Json(json!({"models": models}))
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"error": message}))).into_response()
}

async fn generate(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    handle(sim, body, false).await
}

async fn chat(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    handle(sim, body, true).await
}

/// What the simulator needs from a request body.
struct Job {
    model: String,
    chat: bool,
    prompt_chars: usize,
    num_predict: Option<i64>,
    stream: bool,
}

fn parse_job(body: &[u8], chat: bool) -> Result<Job, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    let model = v["model"].as_str().ok_or("model is required")?.to_string();
    let prompt_chars = if chat {
        v["messages"]
            .as_array()
            .ok_or("messages is required")?
            .iter()
            .map(|m| m["content"].as_str().map_or(0, str::len))
            .sum()
    } else {
        v["prompt"].as_str().map_or(0, str::len) + v["system"].as_str().map_or(0, str::len)
    };
    Ok(Job {
        model,
        chat,
        prompt_chars,
        num_predict: v["options"]["num_predict"].as_i64(),
        stream: v["stream"].as_bool().unwrap_or(true),
    })
}

async fn handle(sim: Arc<Sim>, body: Bytes, chat: bool) -> Response {
    let job = match parse_job(&body, chat) {
        Ok(job) => job,
        Err(message) => return error(StatusCode::BAD_REQUEST, &message),
    };
    if !sim.cfg.models.is_empty() && !sim.cfg.models.contains(&job.model) {
        return error(
            StatusCode::NOT_FOUND,
            &format!("model \"{}\" not found, try pulling it first", job.model),
        );
    }
    let index = sim.next_request.fetch_add(1, Ordering::Relaxed);
    let mut rng = SmallRng::seed_from_u64(sim.cfg.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    sim.stats.requests.fetch_add(1, Ordering::Relaxed);
    let fault = pick_fault(&sim.cfg, rng.random::<f64>());
    if let Some(fault) = fault {
        sim.stats.count_fault(fault);
        match fault {
            Fault::Http500 => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "simulated internal error",
                )
            }
            Fault::Http503 => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server busy, please try again.  maximum pending requests exceeded",
                )
            }
            Fault::Http404 => {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!("model \"{}\" not found, try pulling it first", job.model),
                )
            }
            _ => {}
        }
    }
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    let stream_mode = job.stream;
    tokio::spawn(produce(sim, job, fault, rng, tx));
    if stream_mode {
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Response::builder()
            .header(header::CONTENT_TYPE, "application/x-ndjson")
            .body(Body::from_stream(stream))
            .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "response build failed"))
    } else {
        collect_whole(rx).await
    }
}

/// `stream: false`: one object with the whole text and the final line's metrics.
async fn collect_whole(mut rx: mpsc::Receiver<Result<Bytes, std::io::Error>>) -> Response {
    let mut text = String::new();
    let mut last = Value::Null;
    while let Some(item) = rx.recv().await {
        let Ok(bytes) = item else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "simulated disconnect");
        };
        let Ok(line) = serde_json::from_slice::<Value>(&bytes) else {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "simulated malformed output",
            );
        };
        if let Some(e) = line.get("error").and_then(Value::as_str) {
            return error(StatusCode::INTERNAL_SERVER_ERROR, e);
        }
        for piece in [&line["response"], &line["message"]["content"]] {
            text.push_str(piece.as_str().unwrap_or_default());
        }
        last = line;
    }
    if last.get("message").is_some() {
        last["message"]["content"] = json!(text);
    } else {
        last["response"] = json!(text);
    }
    Json(last).into_response()
}

const WORDS: [&str; 16] = [
    " the", " model", " answers", " quickly", " and", " tokens", " flow", " through", " a",
    " queue", " of", " slots", " while", " latency", " grows", ".",
];

struct InFlight(Arc<SimStats>);

impl InFlight {
    fn enter(stats: &Arc<SimStats>) -> Self {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(stats.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Decoding<'a>(&'a AtomicUsize);

impl Drop for Decoding<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn pause(d: Duration) {
    if !d.is_zero() {
        sleep(d).await;
    }
}

/// Runs one request through load, queue, prefill and decode, sending NDJSON lines to `tx`.
/// Returns early (freeing the slot) as soon as the client goes away.
async fn produce(
    sim: Arc<Sim>,
    job: Job,
    fault: Option<Fault>,
    mut rng: SmallRng,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let _in_flight = InFlight::enter(&sim.stats);
    let arrived = Instant::now();
    sim.loaded
        .get_or_init(|| pause(sim.cfg.load_time.get()))
        .await;
    let load = arrived.elapsed();
    let Ok(_slot) = sim.slots.acquire().await else {
        return;
    };
    let prompt_tokens = estimate_prompt_tokens(job.prompt_chars);
    let prefill = prefill_time(&sim.cfg, prompt_tokens);
    pause(prefill).await;
    let (tokens, done_reason) = output_tokens(&sim.cfg, job.num_predict, &mut rng);
    let fault_at = tokens / 2;
    let decode_start = Instant::now();
    sim.decoding.fetch_add(1, Ordering::SeqCst);
    let _decoding = Decoding(&sim.decoding);
    let created_at = humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string();
    let line = |text: &str, done: bool| {
        let mut v = if job.chat {
            json!({"model": job.model, "created_at": created_at, "message": {"role": "assistant", "content": text}, "done": done})
        } else {
            json!({"model": job.model, "created_at": created_at, "response": text, "done": done})
        };
        if done {
            v["done_reason"] = json!(done_reason);
        }
        v
    };
    let send = |v: Value| {
        let mut bytes = serde_json::to_vec(&v).unwrap_or_default();
        bytes.push(b'\n');
        tx.send(Ok(Bytes::from(bytes)))
    };
    for i in 0..tokens {
        if i > 0 {
            pause(decode_step(&sim.cfg, sim.decoding.load(Ordering::SeqCst))).await;
        }
        if i == fault_at {
            match fault {
                Some(Fault::ErrorLine) => {
                    let _ =
                        send(json!({"error": "an error was encountered while running the model"}))
                            .await;
                    return;
                }
                Some(Fault::MalformedLine) => {
                    let _ = tx
                        .send(Ok(Bytes::from_static(b"{\"model\":\"garbage\n")))
                        .await;
                    return;
                }
                Some(Fault::Disconnect) => {
                    let _ = tx
                        .send(Err(std::io::Error::other("simulated disconnect")))
                        .await;
                    return;
                }
                Some(Fault::Stall) => {
                    let stall = sim
                        .cfg
                        .faults
                        .stall_duration
                        .map_or(Duration::from_secs(3600), |d| d.get());
                    tokio::select! {
                        _ = sleep(stall) => {}
                        _ = tx.closed() => return,
                    }
                }
                _ => {}
            }
        }
        let word = WORDS[rng.random_range(0..WORDS.len())];
        if send(line(word, false)).await.is_err() {
            return;
        }
    }
    let eval = decode_start.elapsed();
    let mut last = line("", true);
    let nanos = |d: Duration| d.as_nanos() as u64;
    last["total_duration"] = json!(nanos(arrived.elapsed()));
    last["load_duration"] = json!(nanos(load).max(1));
    last["prompt_eval_count"] = json!(prompt_tokens);
    last["prompt_eval_duration"] = json!(nanos(prefill).max(1));
    last["eval_count"] = json!(tokens);
    last["eval_duration"] = json!(nanos(eval).max(1));
    let _ = send(last).await;
}
