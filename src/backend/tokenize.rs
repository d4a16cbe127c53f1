//! Token counts from the server's own tokenizer: `POST /tokenize`, which llama.cpp's
//! llama-server (`{"content"}` -> `{"tokens": [...]}`), vLLM and SGLang (`{"model", "prompt"}` ->
//! `{"count", "tokens"}`) serve beside their OpenAI API. One body carries both spellings.

use std::time::Duration;

/// Counts tokens with the server under test.
#[derive(Debug, Clone)]
pub struct ServerTokenizer {
    client: reqwest::Client,
    url: String,
    model: String,
    api_key: Option<String>,
}

impl ServerTokenizer {
    /// The tokenizer of the server at `base_url` (with or without `/v1`) for `model`.
    pub fn new(base_url: &str, model: &str, api_key: Option<&str>) -> Result<Self, String> {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(ServerTokenizer {
            client,
            url: format!("{base}/tokenize"),
            model: model.to_string(),
            api_key: api_key.map(str::to_string),
        })
    }

    /// The number of tokens of `text`, without special tokens.
    pub async fn count(&self, text: &str) -> Result<u64, String> {
        let body = serde_json::json!({
            "model": self.model,
            "prompt": text,
            "content": text,
            "add_special_tokens": false,
        });
        let mut request = self.client.post(&self.url).json(&body);
        if let Some(key) = &self.api_key {
            request = request.bearer_auth(key);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("POST {}: {}", self.url, super::http::error_chain(&e)))?;
        let status = response.status();
        let answer: serde_json::Value = response
            .json()
            .await
            .map_err(|e| format!("POST {}: HTTP {status}, not JSON: {e}", self.url))?;
        if !status.is_success() {
            return Err(format!("POST {}: HTTP {status}: {answer}", self.url));
        }
        answer["count"]
            .as_u64()
            .or_else(|| answer["tokens"].as_array().map(|t| t.len() as u64))
            .ok_or_else(|| format!("POST {}: no `count` or `tokens` in {answer}", self.url))
    }
}
