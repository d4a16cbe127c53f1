//! `llm-bench sim` as a standalone server: any Ollama client can use it.

use crate::common::{sim_process, SimProcess as Sim};

fn start(args: &[&str]) -> Sim {
    let mut all = vec!["--load-time", "0s", "--decode-per-token", "1ms"];
    all.extend_from_slice(args);
    sim_process(&all)
}

#[tokio::test]
async fn speaks_ollamas_api_streaming_and_not() {
    let sim = start(&["--model", "llama3.2:1b", "--output-tokens", "5"]);
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", sim.url)).send();
    assert_eq!(
        get("/").await.unwrap().text().await.unwrap(),
        "Ollama is running"
    );
    let tags: serde_json::Value = get("/api/tags").await.unwrap().json().await.unwrap();
    assert_eq!(tags["models"][0]["name"], "llama3.2:1b");
    let version: serde_json::Value = get("/api/version").await.unwrap().json().await.unwrap();
    assert!(version["version"].as_str().unwrap().contains("sim"));

    let whole: serde_json::Value = http
        .post(format!("{}/api/generate", sim.url))
        .json(&serde_json::json!({"model": "llama3.2:1b", "prompt": "hi", "stream": false}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(whole["done"], true);
    assert_eq!(whole["eval_count"], 5);
    assert!(!whole["response"].as_str().unwrap().is_empty());

    let stream = http
        .post(format!("{}/api/chat", sim.url))
        .json(&serde_json::json!({"model": "llama3.2:1b", "messages": [{"role": "user", "content": "hi"}], "options": {"num_predict": 3}}))
        .send().await.unwrap();
    assert_eq!(stream.headers()["content-type"], "application/x-ndjson");
    let text = stream.text().await.unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    let last = lines.last().unwrap();
    assert_eq!(
        (
            last["done"].as_bool(),
            last["done_reason"].as_str(),
            last["eval_count"].as_u64()
        ),
        (Some(true), Some("length"), Some(3))
    );
    for field in [
        "total_duration",
        "load_duration",
        "prompt_eval_count",
        "prompt_eval_duration",
        "eval_duration",
    ] {
        assert!(last[field].as_u64().is_some(), "{field} missing");
    }

    let missing = http
        .post(format!("{}/api/generate", sim.url))
        .json(&serde_json::json!({"model": "other", "prompt": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("not found"));
}

/// Every route a client may call, as (method, path, body); `None` is a GET.
const OPENAI_ROUTES: [(&str, Option<&str>); 7] = [
    ("/v1/models", None),
    ("/v1/models/m", None),
    (
        "/v1/chat/completions",
        Some(r#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#),
    ),
    ("/v1/completions", Some(r#"{"model":"m","prompt":"hi"}"#)),
    ("/v1/responses", Some(r#"{"model":"m","input":"hi"}"#)),
    ("/v1/embeddings", Some(r#"{"model":"m","input":"hi"}"#)),
    ("/tokenize", Some(r#"{"content":"hi"}"#)),
];
const OLLAMA_ROUTES: [(&str, Option<&str>); 8] = [
    ("/", None),
    ("/api/tags", None),
    ("/api/ps", None),
    ("/api/show", Some(r#"{"model":"m"}"#)),
    (
        "/api/generate",
        Some(r#"{"model":"m","prompt":"hi","stream":false}"#),
    ),
    (
        "/api/chat",
        Some(r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":false}"#),
    ),
    ("/api/embed", Some(r#"{"model":"m","input":"hi"}"#)),
    ("/api/embeddings", Some(r#"{"model":"m","prompt":"hi"}"#)),
];

async fn status(sim: &Sim, path: &str, body: Option<&str>, key: Option<&str>) -> u16 {
    let http = reqwest::Client::new();
    let url = format!("{}{path}", sim.url);
    let mut request = match body {
        Some(body) => http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string()),
        None => http.get(url),
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_api_key_guards_every_openai_route_and_ollamas_only_when_asked() {
    let sim = start(&["--api-key", "sekret", "--output-tokens", "2"]);
    for (path, body) in OPENAI_ROUTES {
        assert_eq!(
            status(&sim, path, body, None).await,
            401,
            "{path} without a key"
        );
        assert_eq!(
            status(&sim, path, body, Some("wrong")).await,
            401,
            "{path} wrong key"
        );
        assert_eq!(
            status(&sim, path, body, Some("sekret")).await,
            200,
            "{path} with it"
        );
    }
    for (path, body) in OLLAMA_ROUTES {
        assert_eq!(
            status(&sim, path, body, None).await,
            200,
            "{path}: open, as in Ollama"
        );
    }
    let guarded = start(&[
        "--api-key",
        "sekret",
        "--guard-ollama",
        "--output-tokens",
        "2",
    ]);
    for (path, body) in OLLAMA_ROUTES {
        assert_eq!(
            status(&guarded, path, body, None).await,
            401,
            "{path} guarded"
        );
        assert_eq!(
            status(&guarded, path, body, Some("sekret")).await,
            200,
            "{path}"
        );
    }
}

#[tokio::test]
async fn embeddings_show_and_model_routes_answer_as_real_servers_do() {
    let sim = start(&["--model", "all-minilm", "--prefill-per-token", "0s"]);
    let http = reqwest::Client::new();
    let post = |path: &str, body: serde_json::Value| {
        http.post(format!("{}{path}", sim.url)).json(&body).send()
    };
    let embed: serde_json::Value = post(
        "/api/embed",
        serde_json::json!({"model": "all-minilm", "input": ["a cat", "a dog"]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let vectors = embed["embeddings"].as_array().unwrap();
    assert_eq!(vectors.len(), 2);
    assert_eq!(vectors[0].as_array().unwrap().len(), 384);
    let norm: f64 = vectors[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap().powi(2))
        .sum();
    assert!((norm - 1.0).abs() < 1e-4, "unit vectors: {norm}");
    assert!(embed["prompt_eval_count"].as_u64().unwrap() >= 2);
    let again: serde_json::Value = post(
        "/api/embeddings",
        serde_json::json!({"model": "all-minilm", "prompt": "a cat"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(
        again["embedding"], vectors[0],
        "the same text embeds the same"
    );

    // openai-python asks for base64 by default: little-endian f32s.
    let b64: serde_json::Value = post(
        "/v1/embeddings",
        serde_json::json!({"model": "all-minilm", "input": "a cat", "encoding_format": "base64", "dimensions": 8}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len(), 8 * 4);
    assert_eq!(b64["usage"]["prompt_tokens"], b64["usage"]["total_tokens"]);

    let missing = post(
        "/v1/embeddings",
        serde_json::json!({"model": "nope", "input": "x"}),
    )
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);
    let show: serde_json::Value = post("/api/show", serde_json::json!({"model": "all-minilm"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(show["capabilities"]
        .as_array()
        .unwrap()
        .contains(&"embedding".into()));
    assert_eq!(show["model_info"]["general.architecture"], "llama");
    assert_eq!(show["details"]["format"], "gguf");
    let model = http
        .get(format!("{}/v1/models/all-minilm", sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(model.status(), 200);
    let model: serde_json::Value = model.json().await.unwrap();
    assert_eq!(
        (model["id"].as_str(), model["object"].as_str()),
        (Some("all-minilm"), Some("model"))
    );
    let other = http
        .get(format!("{}/v1/models/other", sim.url))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}
