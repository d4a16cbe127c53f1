//! Pure fold of an Ollama NDJSON stream into one request's [`Measurement`].
//!
//! Input is `(offset since t0, bytes)` pairs exactly as they came off the socket; nothing here
//! reads a clock, so every rule (what counts as the first token, which token count wins, what
//! is a failure) is unit-tested on recorded streams. The rules follow PROTOCOLS.md §1 and §3.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::http::StreamFold;
use super::keep_text;
use super::ndjson::LineSplitter;
use super::think::{ThinkSplitter, ThinkTags};
use super::{ErrorKind, Measurement, RequestError, ServerTimings};
use std::sync::Arc;

/// One line of /api/generate or /api/chat output. Every field is optional: servers omit
/// zero-valued metrics, and an error line has nothing but `error`.
#[derive(Debug, Default, Deserialize)]
struct Chunk {
    #[serde(default)]
    response: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    message: Option<ChatMessage>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
    #[serde(default)]
    done: bool,
    #[serde(default)]
    done_reason: Option<String>,
    #[serde(default)]
    error: Option<Value>,
    total_duration: Option<u64>,
    load_duration: Option<u64>,
    prompt_eval_count: Option<u64>,
    prompt_eval_duration: Option<u64>,
    eval_count: Option<u64>,
    eval_duration: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
struct ChatMessage {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
}

impl Chunk {
    /// Whether this line carries an answer (text or a tool call) and whether it carries thinking.
    fn payload(&self) -> (bool, bool) {
        let some = |s: &Option<String>| s.as_ref().is_some_and(|s| !s.is_empty());
        let mut answer = some(&self.response) || self.has_tool_calls();
        let mut thinking = some(&self.thinking);
        if let Some(m) = &self.message {
            answer |= some(&m.content);
            thinking |= some(&m.thinking);
        }
        (answer, thinking)
    }

    fn has_tool_calls(&self) -> bool {
        let has_tools = |t: &Option<Vec<Value>>| t.as_ref().is_some_and(|t| !t.is_empty());
        has_tools(&self.tool_calls)
            || self
                .message
                .as_ref()
                .is_some_and(|m| has_tools(&m.tool_calls))
    }

    fn text(&self) -> impl Iterator<Item = &str> {
        let message = self.message.as_ref();
        [
            self.response.as_deref(),
            message.and_then(|m| m.content.as_deref()),
        ]
        .into_iter()
        .flatten()
    }
}

/// Folds one streamed response.
#[derive(Debug, Default)]
pub struct OllamaStream {
    lines: LineSplitter,
    think: ThinkSplitter,
    m: Measurement,
    last_content_at: Option<Duration>,
    finished: bool,
}

impl StreamFold for OllamaStream {
    /// True once `done:true`, an error line or a malformed line was seen: later bytes are ignored.
    fn is_finished(&self) -> bool {
        self.finished
    }

    /// Feeds one network read that arrived `at` after the request was sent.
    fn feed(&mut self, at: Duration, bytes: &[u8]) {
        let mut lines = std::mem::take(&mut self.lines);
        lines.push(bytes, |line| self.line(at, line, ErrorKind::Malformed));
        self.lines = lines;
    }

    /// Ends the stream at EOF (`at` after sending) and returns the measurement.
    fn finish(mut self, at: Duration) -> Measurement {
        if let Some(rest) = self.lines.finish() {
            // A non-streaming answer is one object without a newline; anything else left over
            // is a line the connection cut short, so a parse failure here is a truncation.
            self.line(at, &rest, ErrorKind::Truncated);
        }
        if !self.finished {
            self.m.fail_at(
                at,
                RequestError::new(ErrorKind::Truncated, "stream ended before done:true"),
            );
        }
        if self.m.output_tokens == 0 {
            self.m.output_tokens = self.m.content_chunks;
            self.m.tokens_estimated = self.m.content_chunks > 0;
        }
        self.flush_think();
        self.m
    }

    /// Ends the fold because the transport failed; keeps what arrived so far.
    fn fail(mut self, at: Duration, error: RequestError) -> Measurement {
        self.m.fail_at(at, error);
        self.m.output_tokens = self.m.content_chunks;
        self.m.tokens_estimated = true;
        self.flush_think();
        self.m
    }

    fn has_content(&self) -> bool {
        self.m.content_chunks > 0
    }

    fn pending(&self) -> usize {
        self.lines.pending()
    }

    fn set_think_tags(&mut self, tags: Option<Arc<ThinkTags>>) {
        self.think = ThinkSplitter::new(tags);
    }
}

impl OllamaStream {
    /// Text held back for a tag that never completed is what it was.
    fn flush_think(&mut self) {
        let (thinking, text) = self.think.finish();
        keep_text(&mut self.m.thinking, &thinking);
        keep_text(&mut self.m.text, &text);
    }

    fn line(&mut self, at: Duration, line: &[u8], unparsable: ErrorKind) {
        if self.finished || line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let chunk: Chunk = match serde_json::from_slice(line) {
            Ok(chunk) => chunk,
            Err(err) => {
                self.stop(at, unparsable, format!("unparsable stream line: {err}"));
                return;
            }
        };
        if let Some(error) = &chunk.error {
            let text = error
                .as_str()
                .map_or_else(|| error.to_string(), str::to_string);
            self.stop(at, ErrorKind::StreamError, text);
            return;
        }
        let (answer, thinking) = chunk.payload();
        if answer || thinking {
            // Reasoning inside the answer text (`<think>…</think>`) is thinking, not answer. The
            // first answer token is the first that is not whitespace (R1 sends "\n\n" right
            // after `</think>`).
            let mut answer = chunk.has_tool_calls();
            for piece in chunk.text() {
                let (inline_thinking, text) = self.think.push(piece);
                keep_text(&mut self.m.thinking, &inline_thinking);
                keep_text(&mut self.m.text, &text);
                answer |= !text.trim().is_empty();
            }
            self.m
                .content_arrived(at, answer, &mut self.last_content_at);
            let message_thinking = chunk.message.as_ref().and_then(|m| m.thinking.as_deref());
            for piece in [chunk.thinking.as_deref(), message_thinking]
                .into_iter()
                .flatten()
            {
                keep_text(&mut self.m.thinking, piece);
            }
        }
        if chunk.done {
            self.finished = true;
            self.m.e2e = at;
            self.m.done_reason = chunk.done_reason;
            let nanos = |v: Option<u64>| v.map(Duration::from_nanos);
            self.m.server = ServerTimings {
                total: nanos(chunk.total_duration),
                load: nanos(chunk.load_duration),
                prompt_eval: nanos(chunk.prompt_eval_duration),
                eval: nanos(chunk.eval_duration),
            };
            self.m.prompt_tokens = chunk.prompt_eval_count;
            if let Some(n) = chunk.eval_count {
                self.m.output_tokens = n;
                self.m.tokens_estimated = false;
            }
        }
    }

    fn stop(&mut self, at: Duration, kind: ErrorKind, message: String) {
        self.finished = true;
        self.m.fail_at(at, RequestError::new(kind, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_reasoning_is_thinking_and_ttfa_follows_the_closing_tag() {
        // DeepSeek-R1 on Ollama without `think`: the reasoning streams as content.
        let mut s = OllamaStream::default();
        for (i, piece) in [
            "<think>",
            "\nThe capital",
            " is Paris.",
            "</th",
            "ink>",
            "\n\n",
            "Paris",
            ".",
        ]
        .iter()
        .enumerate()
        {
            let line = format!(
                "{{\"message\":{{\"role\":\"assistant\",\"content\":{}}},\"done\":false}}\n",
                serde_json::json!(piece)
            );
            s.feed(Duration::from_secs(i as u64 + 1), line.as_bytes());
        }
        s.feed(
            Duration::from_secs(9),
            b"{\"done\":true,\"eval_count\":8}\n",
        );
        let m = s.finish(Duration::from_secs(9));
        assert_eq!(m.thinking, "\nThe capital is Paris.");
        assert_eq!(m.text, "\n\nParis.");
        assert_eq!(m.ttft, Some(Duration::from_secs(1)));
        assert_eq!(
            m.ttfa,
            Some(Duration::from_secs(7)),
            "the first answer token after </think>"
        );
        assert_eq!(m.content_chunks, 8);
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn ttft_skips_empty_lines_and_itl_pools_gaps() {
        let mut s = OllamaStream::default();
        s.feed(
            ms(5),
            b"{\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":false}\n",
        );
        s.feed(
            ms(10),
            b"{\"message\":{\"content\":\"a\"},\"done\":false}\n",
        );
        s.feed(
            ms(14),
            b"{\"message\":{\"content\":\"b\"},\"done\":false}\n",
        );
        s.feed(ms(20), b"{\"message\":{\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"eval_count\":3}\n");
        let m = s.finish(ms(21));
        assert_eq!(m.ttft, Some(ms(10)));
        assert_eq!(m.itl, vec![ms(4)]);
        assert_eq!(m.e2e, ms(20));
        assert_eq!(m.output_tokens, 3);
        assert!(!m.tokens_estimated);
        assert!(m.error.is_none());
    }

    #[test]
    fn thinking_and_tool_calls_count_as_first_token() {
        let mut s = OllamaStream::default();
        s.feed(
            ms(3),
            b"{\"message\":{\"content\":\"\",\"thinking\":\"hmm\"},\"done\":false}\n",
        );
        assert_eq!(s.m.ttft, Some(ms(3)));
        assert_eq!((s.m.thinking.as_str(), s.m.ttfa), ("hmm", None));
        let mut s = OllamaStream::default();
        s.feed(
            ms(4),
            b"{\"response\":\"\",\"tool_calls\":[{\"function\":{}}],\"done\":false}\n",
        );
        assert_eq!(s.m.ttft, Some(ms(4)));
    }

    #[test]
    fn eof_before_done_is_truncated_and_counts_chunks_as_estimate() {
        let mut s = OllamaStream::default();
        s.feed(
            ms(1),
            b"{\"response\":\"a\",\"done\":false}\n{\"response\":\"b\"",
        );
        let m = s.finish(ms(9));
        assert_eq!(m.error.unwrap().kind, ErrorKind::Truncated);
        assert_eq!(m.output_tokens, 1);
        assert!(m.tokens_estimated);
        assert_eq!(m.e2e, ms(9));
    }

    #[test]
    fn garbage_line_is_malformed_and_stops_the_fold() {
        let mut s = OllamaStream::default();
        s.feed(
            ms(1),
            b"{\"response\":\"a\",\"done\":false}\nnot json\n{\"response\":\"b\",\"done\":true}\n",
        );
        assert!(s.is_finished());
        let m = s.finish(ms(2));
        assert_eq!(m.error.unwrap().kind, ErrorKind::Malformed);
        assert_eq!(m.content_chunks, 1);
    }
}
