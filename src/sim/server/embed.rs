//! The simulator's embeddings: Ollama's `/api/embed` and `/api/embeddings`, OpenAI's
//! `/v1/embeddings`, answered with deterministic unit vectors after a short compute time.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::shared::{admit, error, http_fault, pause, InFlight, Sim};
use crate::sim::model::{estimate_prompt_tokens, prefill_time};

/// Dimensions of the simulator's embeddings (all-MiniLM-L6-v2's), unless a request asks fewer.
pub(super) const EMBEDDING_DIMENSIONS: usize = 384;

/// What an embeddings request asked for.
struct EmbedJob {
    model: String,
    texts: Vec<String>,
    dimensions: usize,
    /// OpenAI's `encoding_format: base64`.
    base64: bool,
}

/// Reads `model`, the texts under `field` (a string or a list of strings) and `dimensions`.
fn parse_embed(body: &[u8], field: &str) -> Result<EmbedJob, String> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| format!("invalid request body: {e}"))?;
    let model = v["model"].as_str().ok_or("model is required")?.to_string();
    let texts = match &v[field] {
        Value::String(text) => vec![text.clone()],
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(format!("`{field}` must be a string or a list of strings"))?,
        _ => return Err(format!("`{field}` is required")),
    };
    let dimensions = match v["dimensions"].as_u64() {
        Some(0) => return Err("`dimensions` must be at least 1".into()),
        Some(d) => (d as usize).min(EMBEDDING_DIMENSIONS),
        None => EMBEDDING_DIMENSIONS,
    };
    Ok(EmbedJob {
        model,
        texts,
        dimensions,
        base64: v["encoding_format"] == "base64",
    })
}

/// A finished embeddings request.
struct Embedded {
    vectors: Vec<Vec<f32>>,
    prompt_tokens: u64,
    total: Duration,
    load: Duration,
}

/// A unit vector that depends only on the text and the seed: the same input embeds the same.
fn embedding_of(text: &str, seed: u64, dimensions: usize) -> Vec<f32> {
    // FNV-1a: a stable hash (std's is randomised per process).
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut rng = SmallRng::seed_from_u64(hash ^ seed);
    let raw: Vec<f32> = (0..dimensions)
        .map(|_| rng.random_range(-1.0_f32..1.0))
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    raw.into_iter().map(|x| x / norm).collect()
}

/// Runs an embeddings request as a served embedding model spends its time: the cold load, a
/// slot, and prefill over every input's tokens, with no decode. `Err` is an injected HTTP
/// fault's (status, message).
async fn embed(sim: &Arc<Sim>, job: &EmbedJob) -> Result<Embedded, (StatusCode, &'static str)> {
    // Stream faults have no stream to happen in; a 404 is answered by the name check.
    if let (_, Some(fault)) = admit(sim) {
        if let Some(answer) = http_fault(fault) {
            sim.stats.count_fault(fault);
            return Err(answer);
        }
    }
    let _in_flight = InFlight::enter(&sim.stats);
    let arrived = Instant::now();
    sim.loaded
        .get_or_init(|| pause(sim.cfg.load_time.get()))
        .await;
    let load = arrived.elapsed();
    let _slot = sim
        .slots
        .acquire()
        .await
        .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "shutting down"))?;
    let prompt_tokens: u64 = job
        .texts
        .iter()
        .map(|t| estimate_prompt_tokens(t.len()))
        .sum();
    pause(prefill_time(&sim.cfg, prompt_tokens)).await;
    Ok(Embedded {
        vectors: job
            .texts
            .iter()
            .map(|t| embedding_of(t, sim.cfg.seed, job.dimensions))
            .collect(),
        prompt_tokens,
        total: arrived.elapsed(),
        load,
    })
}

fn ollama_model_not_found(model: &str) -> Response {
    error(
        StatusCode::NOT_FOUND,
        json!({"error": format!("model \"{model}\" not found, try pulling it first")}),
    )
}

/// Ollama's `/api/embed`: `input` is a string or a list; one vector per input, with the
/// server's durations and token count as on the final line of a generation.
pub(super) async fn ollama_embed(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let job = match parse_embed(&body, "input") {
        Ok(job) => job,
        Err(message) => return error(StatusCode::BAD_REQUEST, json!({"error": message})),
    };
    if !sim.cfg.serves(&job.model) {
        return ollama_model_not_found(&job.model);
    }
    match embed(&sim, &job).await {
        Ok(e) => Json(json!({
            "model": job.model,
            "embeddings": e.vectors,
            "total_duration": e.total.as_nanos() as u64,
            "load_duration": e.load.as_nanos() as u64,
            "prompt_eval_count": e.prompt_tokens,
        }))
        .into_response(),
        Err((status, message)) => error(status, json!({"error": message})),
    }
}

/// Ollama's older `/api/embeddings`: one `prompt`, one `embedding`.
pub(super) async fn ollama_embeddings(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let job = match parse_embed(&body, "prompt") {
        Ok(job) if job.texts.len() == 1 => job,
        Ok(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                json!({"error": "`prompt` must be a string"}),
            )
        }
        Err(message) => return error(StatusCode::BAD_REQUEST, json!({"error": message})),
    };
    if !sim.cfg.serves(&job.model) {
        return ollama_model_not_found(&job.model);
    }
    match embed(&sim, &job).await {
        Ok(mut e) => Json(json!({"embedding": e.vectors.swap_remove(0)})).into_response(),
        Err((status, message)) => error(status, json!({"error": message})),
    }
}

/// OpenAI's `/v1/embeddings`, in both encodings: `float` lists, or `base64` of little-endian
/// f32s, which openai-python asks for by default.
pub(super) async fn openai_embeddings(State(sim): State<Arc<Sim>>, body: Bytes) -> Response {
    let openai_error = |status: StatusCode, message: &str, kind: &str| {
        error(
            status,
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        )
    };
    let job = match parse_embed(&body, "input") {
        Ok(job) => job,
        Err(message) => {
            return openai_error(StatusCode::BAD_REQUEST, &message, "invalid_request_error")
        }
    };
    if !sim.cfg.serves(&job.model) {
        return openai_error(
            StatusCode::NOT_FOUND,
            &format!("The model `{}` does not exist.", job.model),
            "NotFoundError",
        );
    }
    match embed(&sim, &job).await {
        Ok(e) => {
            let data: Vec<Value> = e
                .vectors
                .iter()
                .enumerate()
                .map(|(index, v)| {
                    let embedding = if job.base64 {
                        use base64::Engine as _;
                        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                        json!(base64::engine::general_purpose::STANDARD.encode(bytes))
                    } else {
                        json!(v)
                    };
                    json!({"object": "embedding", "index": index, "embedding": embedding})
                })
                .collect();
            Json(json!({
                "object": "list",
                "data": data,
                "model": job.model,
                "usage": {"prompt_tokens": e.prompt_tokens, "total_tokens": e.prompt_tokens},
            }))
            .into_response()
        }
        Err((status, message)) => openai_error(status, message, "api_error"),
    }
}
