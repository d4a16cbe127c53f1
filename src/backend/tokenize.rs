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
        let body = super::http::read_capped(response, super::http::MAX_SIDE_BODY)
            .await
            .map_err(|e| format!("POST {}: HTTP {status}: {e}", self.url))?;
        let reply = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Err(format!(
                "POST {}: HTTP {status}: {}",
                self.url,
                super::http::clipped(&reply)
            ));
        }
        let answer: serde_json::Value = serde_json::from_str(&reply).map_err(|e| {
            format!(
                "POST {}: HTTP {status}, not JSON ({e}): {}",
                self.url,
                super::http::clipped(&reply)
            )
        })?;
        let count = answer["count"]
            .as_u64()
            .or_else(|| answer["tokens"].as_array().map(|t| t.len() as u64))
            .ok_or_else(|| {
                format!(
                    "POST {}: no `count` or `tokens` in {}",
                    self.url,
                    super::http::clipped(&answer.to_string())
                )
            })?;
        plausible(count, text).map_err(|e| format!("POST {}: {e}", self.url))
    }
}

/// Special tokens a tokenizer may add even when asked not to (BOS, EOS, a chat wrapper).
const SPECIAL_TOKEN_SLACK: u64 = 8;

/// `count` when it can be the token count of `text`: every token of a real tokenizer covers at
/// least one byte, so a count above the byte length (plus a few special tokens) is not one, and
/// neither is 0 for a text that is not empty. A server answering such counts would make the
/// prompt sizing chase an impossible target, and the result claim token counts it never had.
pub fn plausible(count: u64, text: &str) -> Result<u64, String> {
    let bytes = text.len() as u64;
    if (count == 0 && !text.trim().is_empty()) || count > bytes + SPECIAL_TOKEN_SLACK {
        return Err(format!(
            "answered {count} tokens for a text of {bytes} bytes: not a token count (a tokenizer gives at least 1 and at most about one per byte)"
        ));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absurd_counts_are_refused() {
        assert_eq!(plausible(3, "one two three"), Ok(3));
        assert_eq!(plausible(1, "a"), Ok(1));
        assert_eq!(plausible(0, ""), Ok(0));
        for absurd in [0, 100, u64::MAX] {
            let err = plausible(absurd, "one two three").unwrap_err();
            assert!(err.contains("not a token count"), "{absurd}: {err}");
        }
    }
}
