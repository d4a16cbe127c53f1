//! Pure fold of an OpenAI-compatible SSE stream (`/v1/chat/completions` or `/v1/completions`)
//! into one request's [`Measurement`], following PROTOCOLS.md §2 and §3.
//!
//! - First token: the first non-empty `content`, `reasoning_content`/`reasoning`, tool-call
//!   delta, or completions `text`. Role-only and empty-string chunks do not count.
//! - First answer token (`ttfa`): the same without reasoning, for thinking models.
//! - Output tokens: the last `usage.completion_tokens`, else llama.cpp `timings.predicted_n`,
//!   else the number of content chunks (marked estimated).
//! - Failure: `data` JSON with `error` or `object: "error"`, an `error:` SSE field, malformed
//!   JSON, or EOF without `[DONE]` (truncated).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::http::StreamFold;
use super::keep_text;
use super::lenient::{List, Num, Obj, Presence, Text};
use super::sse::{SseItem, SseParser};
use super::think::{default_tags, ThinkSplitter, ThinkTags};
use super::{Choice, ErrorKind, Measurement, RequestError};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One choice of the answer (`n > 1` streams several, interleaved): measured as its own stream.
#[derive(Debug, Default)]
struct ChoiceState {
    think: ThinkSplitter,
    text: String,
    finish_reason: Option<String>,
    last_content_at: Option<Duration>,
}

/// Folds one streamed response.
#[derive(Debug)]
pub struct OpenAiStream {
    sse: SseParser,
    think_tags: Option<Arc<ThinkTags>>,
    /// Each choice by its `index`.
    choices: BTreeMap<u64, ChoiceState>,
    m: Measurement,
    done: bool,
    failed: bool,
    completion_tokens: Option<u64>,
    predicted_n: Option<u64>,
    prompt_from_usage: Option<u64>,
    prompt_from_timings: Option<u64>,
}

impl Default for OpenAiStream {
    fn default() -> Self {
        Self {
            sse: SseParser::default(),
            think_tags: Some(default_tags()),
            choices: BTreeMap::new(),
            m: Measurement::default(),
            done: false,
            failed: false,
            completion_tokens: None,
            predicted_n: None,
            prompt_from_usage: None,
            prompt_from_timings: None,
        }
    }
}

/// The fields of a stream chunk the fold reads, borrowed from the event's text; a field of
/// another type than expected counts as absent, as `Value` lookups would have it.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Chunk<'a> {
    #[serde(borrow)]
    choices: List<ChoiceChunk<'a>>,
    usage: Obj<Usage>,
    timings: Obj<Timings>,
    error: Presence,
    #[serde(borrow)]
    object: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ChoiceChunk<'a> {
    index: Num,
    #[serde(borrow)]
    delta: Obj<Delta<'a>>,
    /// `/v1/completions` sends the text here instead of in `delta.content`.
    #[serde(borrow)]
    text: Text<'a>,
    #[serde(borrow)]
    finish_reason: Text<'a>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Text<'a>,
    #[serde(borrow)]
    reasoning_content: Text<'a>,
    #[serde(borrow)]
    reasoning: Text<'a>,
    tool_calls: Presence,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Usage {
    completion_tokens: Num,
    prompt_tokens: Num,
}

/// llama.cpp's per-answer timings.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Timings {
    predicted_n: Num,
    prompt_n: Num,
    cache_n: Num,
    prompt_ms: Num,
    predicted_ms: Num,
}

fn millis(ms: Num) -> Option<Duration> {
    ms.0.and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok())
}

/// Reads one event's JSON. The typed parse borrows from `data`; JSON it refuses that is still
/// valid (a key sent twice) is read through a `Value`, whose last key wins.
fn parse_chunk<'a>(
    data: &'a str,
    fallback: &'a mut Option<Value>,
) -> serde_json::Result<Chunk<'a>> {
    match serde_json::from_str::<Chunk>(data) {
        Ok(chunk) => Ok(chunk),
        Err(_) => {
            let value = fallback.insert(serde_json::from_str::<Value>(data)?);
            Chunk::deserialize(&*value)
        }
    }
}

impl StreamFold for OpenAiStream {
    /// True once `[DONE]` or a failure was seen.
    fn is_finished(&self) -> bool {
        self.done || self.failed
    }

    /// Feeds one network read that arrived `at` after the request was sent.
    fn feed(&mut self, at: Duration, bytes: &[u8]) {
        let mut sse = std::mem::take(&mut self.sse);
        sse.push(bytes, |item| self.item(at, item));
        self.sse = sse;
    }

    /// Ends the stream at EOF and returns the measurement.
    fn finish(mut self, at: Duration) -> Measurement {
        let mut sse = std::mem::take(&mut self.sse);
        sse.finish(|item| self.item(at, item));
        if !self.done && !self.failed {
            self.m.fail_at(
                at,
                RequestError::new(ErrorKind::Truncated, "stream ended without data: [DONE]"),
            );
        }
        self.settle_counts();
        self.flush_think();
        self.m
    }

    /// Ends the fold because the transport failed; keeps what arrived so far.
    fn fail(mut self, at: Duration, error: RequestError) -> Measurement {
        self.m.fail_at(at, error);
        self.settle_counts();
        self.flush_think();
        self.m
    }

    fn has_content(&self) -> bool {
        self.m.content_chunks > 0
    }

    fn pending(&self) -> usize {
        self.sse.pending()
    }

    fn set_think_tags(&mut self, tags: Option<Arc<ThinkTags>>) {
        self.think_tags = tags;
    }
}

impl OpenAiStream {
    /// Ends every choice: text held back for a tag that never completed is what it was. The
    /// first choice is the answer (`text`, `done_reason`); the others are kept beside it.
    fn flush_think(&mut self) {
        for (position, (index, mut choice)) in
            std::mem::take(&mut self.choices).into_iter().enumerate()
        {
            let (thinking, text) = choice.think.finish();
            keep_text(&mut self.m.thinking, &thinking);
            keep_text(&mut choice.text, &text);
            if position == 0 {
                self.m.text = choice.text;
                if choice.finish_reason.is_some() {
                    self.m.done_reason = choice.finish_reason;
                }
            } else {
                self.m.other_choices.push(Choice {
                    index,
                    text: choice.text,
                    finish_reason: choice.finish_reason,
                });
            }
        }
    }

    fn settle_counts(&mut self) {
        match self.completion_tokens.or(self.predicted_n) {
            Some(n) => self.m.output_tokens = n,
            None => {
                self.m.output_tokens = self.m.content_chunks;
                self.m.tokens_estimated = self.m.content_chunks > 0;
            }
        }
        self.m.prompt_tokens = self.prompt_from_usage.or(self.prompt_from_timings);
    }

    fn item(&mut self, at: Duration, item: SseItem<'_>) {
        if self.is_finished() {
            return;
        }
        match item {
            SseItem::Comment(_) => {}
            // Legacy llama-server: `error: {"code","message","type"}`; the message is the words.
            SseItem::ErrorField(text) => {
                let message = super::http::error_message(text);
                self.stop(at, ErrorKind::StreamError, message)
            }
            SseItem::Event(data) if data.starts_with("[DONE]") => {
                self.done = true;
                self.m.e2e = at;
            }
            SseItem::Event(data) => match parse_chunk(data, &mut None) {
                Ok(chunk) if chunk.error.set || chunk.object.0.as_deref() == Some("error") => {
                    self.server_error(at, data)
                }
                Ok(chunk) => self.chunk(at, chunk),
                Err(err) => self.stop(
                    at,
                    ErrorKind::Malformed,
                    format!("malformed SSE data: {err}"),
                ),
            },
        }
    }

    /// A chunk that is an error (`{"error": ...}` or `"object": "error"`): its message.
    fn server_error(&mut self, at: Duration, data: &str) {
        let chunk: Value = serde_json::from_str(data).unwrap_or_default();
        let error = chunk
            .get("error")
            .filter(|e| !e.is_null())
            .unwrap_or(&chunk);
        let message = error["message"]
            .as_str()
            .map_or_else(|| error.to_string(), str::to_string);
        self.stop(at, ErrorKind::StreamError, message);
    }

    fn chunk(&mut self, at: Duration, chunk: Chunk) {
        // Until [DONE] arrives, the last chunk is the end of the answer.
        self.m.e2e = at;
        for choice in chunk.choices.0 {
            let index = choice.index.count().unwrap_or(0);
            let tags = &self.think_tags;
            let state = self.choices.entry(index).or_insert_with(|| ChoiceState {
                think: ThinkSplitter::new(tags.clone()),
                ..ChoiceState::default()
            });
            let (mut answer, mut reasoning) = (false, false);
            let delta = choice.delta.0.unwrap_or_default();
            if let Some(text) = delta
                .content
                .non_empty()
                .or_else(|| choice.text.non_empty())
            {
                // Reasoning inside the answer text (`<think>…</think>`) is thinking, not answer.
                let (inline_thinking, text) = state.think.push(text);
                if !inline_thinking.is_empty() {
                    keep_text(&mut self.m.thinking, &inline_thinking);
                    reasoning = true;
                }
                keep_text(&mut state.text, &text);
                // The first answer token is the first that is not whitespace (R1 sends "\n\n"
                // right after `</think>`); text held back while a tag may be forming, or
                // whitespace, is still content that arrived.
                if text.trim().is_empty() {
                    reasoning = true;
                } else {
                    answer = true;
                }
            }
            if delta.tool_calls.len.is_some_and(|n| n > 0) {
                answer = true;
            }
            if let Some(piece) = delta
                .reasoning_content
                .non_empty()
                .or_else(|| delta.reasoning.non_empty())
            {
                keep_text(&mut self.m.thinking, piece);
                reasoning = true;
            }
            if let Some(reason) = choice.finish_reason.non_empty() {
                state.finish_reason = Some(reason.to_string());
            }
            // Each choice's gaps are its own: interleaved choices must not pool into one ITL.
            if answer || reasoning {
                self.m
                    .content_arrived(at, answer, &mut state.last_content_at);
            }
        }
        if let Some(usage) = chunk.usage.0 {
            if let Some(n) = usage.completion_tokens.count() {
                // vLLM's continuous usage is cumulative and Ollama's /v1/completions sends zeros
                // on every chunk before the real one: the last non-zero count is the answer.
                if n > 0 || self.completion_tokens.is_none() {
                    self.completion_tokens = Some(n);
                }
                self.prompt_from_usage = usage
                    .prompt_tokens
                    .count()
                    .filter(|&p| p > 0)
                    .or(self.prompt_from_usage);
            }
        }
        if let Some(timings) = chunk.timings.0 {
            self.predicted_n = timings.predicted_n.count().or(self.predicted_n);
            let cache_n = timings.cache_n.count().unwrap_or(0);
            self.prompt_from_timings = timings
                .prompt_n
                .count()
                .map(|p| p + cache_n)
                .or(self.prompt_from_timings);
            self.m.server.prompt_eval = millis(timings.prompt_ms).or(self.m.server.prompt_eval);
            self.m.server.eval = millis(timings.predicted_ms).or(self.m.server.eval);
        }
    }

    fn stop(&mut self, at: Duration, kind: ErrorKind, message: String) {
        self.failed = true;
        self.m.fail_at(at, RequestError::new(kind, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn reasoning_sets_ttft_and_the_first_answer_sets_ttfa() {
        let mut s = OpenAiStream::default();
        s.feed(
            ms(1),
            b"data: {\"choices\":[{\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
        );
        s.feed(
            ms(5),
            b"data: {\"choices\":[{\"delta\":{\"reasoning_content\":\"hmm\"}}]}\n\n",
        );
        s.feed(
            ms(9),
            b"data: {\"choices\":[{\"delta\":{\"reasoning\":\" ok\"}}]}\n\n",
        );
        s.feed(ms(20), b"data: {\"choices\":[{\"delta\":{\"content\":\"Yes\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        let m = s.finish(ms(21));
        assert_eq!((m.ttft, m.ttfa), (Some(ms(5)), Some(ms(20))));
        assert_eq!(m.itl, vec![ms(4), ms(11)]);
        assert_eq!(m.text, "Yes");
        assert_eq!(m.thinking, "hmm ok");
        assert_eq!(m.e2e, ms(20));
        assert!(m.error.is_none());
    }

    #[test]
    fn mid_stream_error_forms_fail_the_request() {
        for body in [
            &b"data: {\"error\":{\"message\":\"context overflow\",\"type\":\"x\"}}\n\ndata: [DONE]\n\n"[..],
            b"data: {\"object\":\"error\",\"message\":\"boom\"}\n\n",
            b"error: {\"code\":500,\"message\":\"legacy\"}\n\ndata: [DONE]\n\n",
        ] {
            let mut s = OpenAiStream::default();
            s.feed(ms(1), b"data: {\"choices\":[{\"delta\":{\"content\":\"a\"}}]}\n\n");
            s.feed(ms(2), body);
            let m = s.finish(ms(3));
            assert_eq!(m.error.map(|e| e.kind), Some(ErrorKind::StreamError), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn inline_reasoning_is_thinking_unless_turned_off() {
        let feed = |s: &mut OpenAiStream| {
            for (i, piece) in ["<think>", "hmm", "</think>", "\n\n", "Yes"]
                .iter()
                .enumerate()
            {
                let event = format!(
                    "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}}}}]}}\n\n",
                    serde_json::json!(piece)
                );
                s.feed(ms(i as u64 + 1), event.as_bytes());
            }
            s.feed(ms(6), b"data: [DONE]\n\n");
        };
        let mut on = OpenAiStream::default();
        feed(&mut on);
        let m = on.finish(ms(6));
        assert_eq!((m.thinking.as_str(), m.text.as_str()), ("hmm", "\n\nYes"));
        assert_eq!((m.ttft, m.ttfa), (Some(ms(1)), Some(ms(5))));
        let mut off = OpenAiStream::default();
        off.set_think_tags(None);
        feed(&mut off);
        let m = off.finish(ms(6));
        assert_eq!(m.text, "<think>hmm</think>\n\nYes");
        assert_eq!(m.ttfa, Some(ms(1)));
    }

    #[test]
    fn each_choice_of_n_is_its_own_stream() {
        // n: 3, one event every 20 ms, round robin: each choice gets a token every 60 ms.
        let mut s = OpenAiStream::default();
        for step in 0..12u64 {
            let (index, token) = (step % 3, step / 3);
            let event = format!("data: {{\"choices\":[{{\"index\":{index},\"delta\":{{\"content\":\"c{index}t{token} \"}}}}]}}\n\n");
            s.feed(ms(100 + 20 * step), event.as_bytes());
        }
        s.feed(ms(400), b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"},{\"index\":1,\"delta\":{},\"finish_reason\":\"length\"},{\"index\":2,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
        let m = s.finish(ms(400));
        assert_eq!(m.ttft, Some(ms(100)));
        assert_eq!(m.text, "c0t0 c0t1 c0t2 c0t3 ");
        assert_eq!(m.done_reason.as_deref(), Some("stop"));
        assert_eq!(m.itl.len(), 9, "3 gaps in each of 3 choices");
        assert!(m.itl.iter().all(|gap| *gap == ms(60)), "{:?}", m.itl);
        let others: Vec<(u64, &str, Option<&str>)> = m
            .other_choices
            .iter()
            .map(|c| (c.index, c.text.as_str(), c.finish_reason.as_deref()))
            .collect();
        assert_eq!(
            others,
            vec![
                (1, "c1t0 c1t1 c1t2 c1t3 ", Some("length")),
                (2, "c2t0 c2t1 c2t2 c2t3 ", Some("stop"))
            ]
        );
    }

    #[test]
    fn fields_of_unexpected_types_are_absent_and_a_repeated_key_is_the_last() {
        let mut s = OpenAiStream::default();
        s.feed(
            ms(1),
            br#"data: {"choices":[{"index":"0","delta":{"content":5,"tool_calls":{}}}]}

"#,
        );
        s.feed(
            ms(2),
            br#"data: {"choices":[{"delta":{"content":"a","content":"b"}}],"usage":{"completion_tokens":"9"}}

data: {"choices":"none","usage":{"completion_tokens":2.0},"timings":[1]}

data: [DONE]

"#,
        );
        let m = s.finish(ms(3));
        assert!(m.error.is_none(), "{:?}", m.error);
        assert_eq!(
            m.text, "b",
            "as a Value reads it, the last of a repeated key wins"
        );
        assert_eq!(
            m.ttft,
            Some(ms(2)),
            "a number is not content, an object not a tool call"
        );
        assert_eq!(m.output_tokens, 2);
    }

    #[test]
    fn the_legacy_error_field_reports_its_message() {
        let mut s = OpenAiStream::default();
        s.feed(
            ms(1),
            b"error: {\"code\":500,\"message\":\"the request exceeds the available context size\",\"type\":\"exceed_context_size_error\"}\n\ndata: [DONE]\n\n",
        );
        let error = s.finish(ms(2)).error.unwrap();
        assert_eq!(
            error.message,
            "the request exceeds the available context size"
        );
    }

    #[test]
    fn ollama_v1_completions_zero_usage_does_not_hide_the_real_count() {
        let mut s = OpenAiStream::default();
        s.feed(ms(1), b"data: {\"choices\":[{\"text\":\"a\"}],\"usage\":{\"prompt_tokens\":0,\"completion_tokens\":0}}\n\n");
        s.feed(ms(2), b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":3}}\n\ndata: [DONE]\n\n");
        let m = s.finish(ms(3));
        assert_eq!(
            (m.output_tokens, m.prompt_tokens, m.tokens_estimated),
            (3, Some(9), false)
        );
    }
}
