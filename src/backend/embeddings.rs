//! The answer to an embeddings request (Ollama's `/api/embed`, OpenAI's `/v1/embeddings`): one
//! JSON document, not a stream. It is folded like a stream, so the transport, t0, timeouts and
//! error categories are those of every other request; what it measures is the end-to-end
//! latency and how many embeddings came back.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::http::StreamFold;
use super::think::ThinkTags;
use super::{ErrorKind, Measurement, RequestError, ServerTimings};

/// Collects the body, then reads it at the end.
#[derive(Debug, Default)]
pub struct EmbeddingsAnswer {
    body: Vec<u8>,
}

fn nanos(v: &Value) -> Option<Duration> {
    v.as_u64().map(Duration::from_nanos)
}

/// Reads a complete answer body received `at` after t0.
pub fn read_answer(body: &[u8], at: Duration) -> Measurement {
    let mut m = Measurement {
        e2e: at,
        ..Measurement::default()
    };
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            m.error = Some(RequestError::new(
                ErrorKind::Malformed,
                format!("the embeddings answer is not JSON: {e}"),
            ));
            return m;
        }
    };
    if let Some(error) = v.get("error") {
        let message = error["message"]
            .as_str()
            .or(error.as_str())
            .unwrap_or("the server answered with an error");
        m.error = Some(RequestError::new(ErrorKind::StreamError, message));
        return m;
    }
    // Ollama: `embeddings` (a list of vectors); OpenAI: `data` (a list of objects).
    let count = v["embeddings"]
        .as_array()
        .or_else(|| v["data"].as_array())
        .map(Vec::len);
    let Some(count) = count.filter(|n| *n > 0) else {
        m.error = Some(RequestError::new(
            ErrorKind::Truncated,
            "the answer holds no `embeddings` (Ollama) or `data` (OpenAI) list",
        ));
        return m;
    };
    m.embeddings = count as u64;
    m.prompt_tokens = v["prompt_eval_count"]
        .as_u64()
        .or_else(|| v["usage"]["prompt_tokens"].as_u64());
    m.server = ServerTimings {
        total: nanos(&v["total_duration"]),
        load: nanos(&v["load_duration"]),
        ..ServerTimings::default()
    };
    m
}

impl StreamFold for EmbeddingsAnswer {
    fn feed(&mut self, _at: Duration, bytes: &[u8]) {
        self.body.extend_from_slice(bytes);
    }

    fn is_finished(&self) -> bool {
        // The document ends with the body: only EOF says it is whole.
        false
    }

    fn finish(self, at: Duration) -> Measurement {
        read_answer(&self.body, at)
    }

    fn fail(self, at: Duration, error: RequestError) -> Measurement {
        let mut m = Measurement::default();
        m.fail_at(at, error);
        m
    }

    fn has_content(&self) -> bool {
        // No first token is waited for: `first_token_timeout` does not apply to embeddings.
        true
    }

    fn pending(&self) -> usize {
        // The whole answer is one document: it is bounded as one line is (`max_line_bytes`).
        self.body.len()
    }

    fn set_think_tags(&mut self, _tags: Option<Arc<ThinkTags>>) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(reads: &[&[u8]]) -> Measurement {
        let mut answer = EmbeddingsAnswer::default();
        for (i, read) in reads.iter().enumerate() {
            answer.feed(Duration::from_millis(i as u64), read);
        }
        answer.finish(Duration::from_millis(9))
    }

    #[test]
    fn ollama_embed_counts_vectors_tokens_and_durations_across_reads() {
        let m = folded(&[
            br#"{"model":"m","embeddings":[[0.1,0.2],[0.3"#,
            br#",0.4]],"total_duration":2000000,"load_duration":500,"prompt_eval_count":12}"#,
        ]);
        assert!(m.error.is_none(), "{:?}", m.error);
        assert_eq!((m.embeddings, m.prompt_tokens), (2, Some(12)));
        assert_eq!(m.server.total, Some(Duration::from_millis(2)));
        assert_eq!(m.server.load, Some(Duration::from_nanos(500)));
        assert_eq!(
            (m.e2e, m.ttft, m.output_tokens),
            (Duration::from_millis(9), None, 0)
        );
    }

    #[test]
    fn openai_embeddings_count_data_items_and_usage() {
        let m = folded(&[
            br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":"AACAPw=="}],"model":"m","usage":{"prompt_tokens":3,"total_tokens":3}}"#,
        ]);
        assert!(m.error.is_none());
        assert_eq!((m.embeddings, m.prompt_tokens), (1, Some(3)));
    }

    #[test]
    fn errors_garbage_and_empty_answers_are_categorised() {
        let kind = |body: &[u8]| folded(&[body]).error.map(|e| (e.kind, e.message));
        assert_eq!(
            kind(br#"{"error":"model \"x\" not found"}"#),
            Some((ErrorKind::StreamError, "model \"x\" not found".into()))
        );
        assert_eq!(
            kind(br#"{"error":{"message":"bad input","type":"invalid_request_error"}}"#)
                .map(|(_, m)| m),
            Some("bad input".into())
        );
        assert_eq!(
            kind(b"{\"embeddings\":[").map(|e| e.0),
            Some(ErrorKind::Malformed)
        );
        assert_eq!(
            kind(br#"{"embeddings":[]}"#).map(|e| e.0),
            Some(ErrorKind::Truncated)
        );
        assert_eq!(kind(b"").map(|e| e.0), Some(ErrorKind::Malformed));
    }
}
