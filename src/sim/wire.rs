//! Pure framing of the simulator's answers: Ollama NDJSON lines or OpenAI SSE events, with the
//! same chunk order and quirks real servers have (PROTOCOLS.md): Ollama's metrics on the final
//! line only; OpenAI's role-only first chunk, separate finish chunk, usage chunk with
//! `choices: []` (with llama.cpp-style `timings`), then `data: [DONE]`.

use std::time::Duration;

use serde_json::{json, Value};

/// The protocol a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// POST /api/chat.
    OllamaChat,
    /// POST /api/generate.
    OllamaGenerate,
    /// POST /v1/chat/completions.
    OpenAiChat {
        /// `stream_options.include_usage`.
        include_usage: bool,
    },
    /// POST /v1/completions.
    OpenAiCompletions {
        /// `stream_options.include_usage`.
        include_usage: bool,
    },
    /// POST /v1/responses: typed events (`event:` and a `data:` object with the same `type`),
    /// usage in the final `response.completed`, no `[DONE]`.
    OpenAiResponses,
}

/// What the final frame reports.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    /// `stop` or `length`.
    pub reason: &'static str,
    /// Prompt tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub tokens: u64,
    /// Since arrival.
    pub total: Duration,
    /// Model load and wait for it.
    pub load: Duration,
    /// Prefill.
    pub prefill: Duration,
    /// Decode.
    pub eval: Duration,
}

/// Frames for one response.
#[derive(Debug, Clone)]
pub struct Frames {
    /// The protocol.
    pub wire: Wire,
    /// Model name echoed back.
    pub model: String,
    /// Response id / timestamp text.
    pub created_at: String,
    /// Unix seconds for OpenAI's `created`.
    pub created: u64,
    /// The next `sequence_number` of a Responses-API event (shared by the clones of a stream).
    pub sequence: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

// A JSON value always serialises (string keys, finite numbers): `Display` cannot fail.
fn ndjson(v: &Value) -> Vec<u8> {
    let mut bytes = v.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

fn sse(v: &Value) -> Vec<u8> {
    let mut bytes = b"data: ".to_vec();
    bytes.extend(v.to_string().into_bytes());
    bytes.extend_from_slice(b"\n\n");
    bytes
}

/// One typed Responses-API event, as `event: TYPE` and its `data:` object.
fn responses_event(mut v: Value, sequence: &std::sync::atomic::AtomicU64) -> Vec<u8> {
    let n = sequence.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    v["sequence_number"] = json!(n);
    let kind = v["type"].as_str().unwrap_or("").to_string();
    let mut bytes = format!("event: {kind}\n").into_bytes();
    bytes.extend(sse(&v));
    bytes
}

fn nanos(d: Duration) -> u64 {
    // Ollama omits zero durations; 1 ns keeps the field present so the queue wait is computable.
    (d.as_nanos() as u64).max(1)
}

impl Frames {
    /// The HTTP content type.
    pub fn content_type(&self) -> &'static str {
        match self.wire {
            Wire::OllamaChat | Wire::OllamaGenerate => "application/x-ndjson",
            _ => "text/event-stream",
        }
    }

    fn openai_chunk(&self, choices: Value) -> Value {
        let object = if matches!(self.wire, Wire::OpenAiCompletions { .. }) {
            "text_completion"
        } else {
            "chat.completion.chunk"
        };
        json!({"id": format!("chatcmpl-sim-{}", self.created_at), "object": object, "created": self.created, "model": self.model, "system_fingerprint": "llm-bench-sim", "choices": choices})
    }

    /// Sent before the first token: OpenAI chat's role-only chunk; nothing for the others.
    pub fn start(&self) -> Option<Vec<u8>> {
        match self.wire {
            Wire::OpenAiChat { .. } => Some(sse(&self.openai_chunk(json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}])))),
            Wire::OpenAiResponses => {
                let seq = &*self.sequence;
                let response = self.response_object("in_progress", json!([]), None);
                let mut out = responses_event(json!({"type": "response.created", "response": response}), seq);
                out.extend(responses_event(json!({"type": "response.in_progress", "response": response}), seq));
                out.extend(responses_event(json!({"type": "response.output_item.added", "output_index": 0, "item": self.message_item("in_progress", None)}), seq));
                out.extend(responses_event(json!({"type": "response.content_part.added", "item_id": self.item_id(), "output_index": 0, "content_index": 0, "part": {"type": "output_text", "text": "", "annotations": []}}), seq));
                Some(out)
            }
            _ => None,
        }
    }

    /// One token.
    pub fn token(&self, text: &str) -> Vec<u8> {
        match self.wire {
            Wire::OllamaChat => ndjson(
                &json!({"model": self.model, "created_at": self.created_at, "message": {"role": "assistant", "content": text}, "done": false}),
            ),
            Wire::OllamaGenerate => ndjson(
                &json!({"model": self.model, "created_at": self.created_at, "response": text, "done": false}),
            ),
            Wire::OpenAiChat { .. } => sse(&self.openai_chunk(
                json!([{"index": 0, "delta": {"content": text}, "finish_reason": null}]),
            )),
            Wire::OpenAiCompletions { .. } => {
                sse(&self.openai_chunk(json!([{"index": 0, "text": text, "finish_reason": null}])))
            }
            Wire::OpenAiResponses => {
                let seq = &*self.sequence;
                responses_event(
                    json!({"type": "response.output_text.delta", "item_id": self.item_id(), "output_index": 0, "content_index": 0, "delta": text, "logprobs": []}),
                    seq,
                )
            }
        }
    }

    fn item_id(&self) -> String {
        format!("msg_sim_{}", self.created)
    }

    /// The Responses API's assistant message item; `text` None while it is being written.
    fn message_item(&self, status: &str, text: Option<&str>) -> Value {
        let content = match text {
            Some(text) => json!([{"type": "output_text", "text": text, "annotations": []}]),
            None => json!([]),
        };
        json!({"id": self.item_id(), "type": "message", "status": status, "role": "assistant", "content": content})
    }

    /// The Responses API's `response` object.
    fn response_object(&self, status: &str, output: Value, done: Option<&Done>) -> Value {
        let usage = done.map_or(Value::Null, |d| {
            json!({"input_tokens": d.prompt_tokens, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": d.tokens, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": d.prompt_tokens + d.tokens})
        });
        let incomplete = done
            .filter(|d| d.reason == "length")
            .map_or(Value::Null, |_| json!({"reason": "max_output_tokens"}));
        let status = if incomplete.is_null() {
            status
        } else {
            "incomplete"
        };
        json!({"id": format!("resp_sim_{}", self.created), "object": "response", "created_at": self.created, "status": status, "model": self.model, "output": output, "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "incomplete_details": incomplete, "error": null, "usage": usage})
    }

    /// The end of a successful answer: Ollama's final line, or OpenAI's finish chunk, usage
    /// chunk (when asked for) and `[DONE]`.
    pub fn end(&self, done: &Done, text: &str) -> Vec<u8> {
        let metrics = |v: Value| ndjson(&self.ollama_done(v, done));
        let ms = crate::duration::millis;
        let openai_end = |finish: Value, include_usage: bool| {
            let mut out = sse(&self.openai_chunk(finish));
            if include_usage {
                let mut usage = self.openai_chunk(json!([]));
                usage["usage"] = json!({"prompt_tokens": done.prompt_tokens, "completion_tokens": done.tokens, "total_tokens": done.prompt_tokens + done.tokens});
                usage["timings"] = json!({"cache_n": 0, "prompt_n": done.prompt_tokens, "prompt_ms": ms(done.prefill), "predicted_n": done.tokens, "predicted_ms": ms(done.eval)});
                out.extend(sse(&usage));
            }
            out.extend_from_slice(b"data: [DONE]\n\n");
            out
        };
        match self.wire {
            Wire::OllamaChat => metrics(
                json!({"model": self.model, "created_at": self.created_at, "message": {"role": "assistant", "content": ""}, "done": true}),
            ),
            Wire::OllamaGenerate => metrics(
                json!({"model": self.model, "created_at": self.created_at, "response": "", "done": true}),
            ),
            Wire::OpenAiChat { include_usage } => openai_end(
                json!([{"index": 0, "delta": {}, "finish_reason": done.reason}]),
                include_usage,
            ),
            Wire::OpenAiCompletions { include_usage } => openai_end(
                json!([{"index": 0, "text": "", "finish_reason": done.reason}]),
                include_usage,
            ),
            Wire::OpenAiResponses => {
                let seq = &*self.sequence;
                let item = self.message_item("completed", Some(text));
                let part = json!({"type": "output_text", "text": text, "annotations": []});
                let mut out = responses_event(
                    json!({"type": "response.output_text.done", "item_id": self.item_id(), "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
                    seq,
                );
                out.extend(responses_event(json!({"type": "response.content_part.done", "item_id": self.item_id(), "output_index": 0, "content_index": 0, "part": part}), seq));
                out.extend(responses_event(
                    json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
                    seq,
                ));
                let response = self.response_object("completed", json!([item]), Some(done));
                // A cut answer ends with `response.incomplete`, as OpenAI's does.
                let last = if response["status"] == "incomplete" {
                    "response.incomplete"
                } else {
                    "response.completed"
                };
                out.extend(responses_event(
                    json!({"type": last, "response": response}),
                    seq,
                ));
                out
            }
        }
    }

    /// A mid-stream error as each server family sends it (HTTP status already 200).
    pub fn error(&self, message: &str) -> Vec<u8> {
        match self.wire {
            Wire::OllamaChat | Wire::OllamaGenerate => ndjson(&json!({"error": message})),
            Wire::OpenAiResponses => responses_event(
                json!({"type": "error", "code": "server_error", "message": message, "param": null}),
                &self.sequence,
            ),
            _ => {
                let mut out = sse(
                    &json!({"error": {"message": message, "type": "server_error", "param": null, "code": 500}}),
                );
                out.extend_from_slice(b"data: [DONE]\n\n");
                out
            }
        }
    }

    /// A line that is not JSON.
    pub fn malformed(&self) -> Vec<u8> {
        match self.wire {
            Wire::OllamaChat | Wire::OllamaGenerate => b"{\"model\":\"garbage\n".to_vec(),
            _ => b"data: {\"choices\":[{\"delta\":\n\n".to_vec(),
        }
    }

    /// A JSON error body sent before streaming, shaped as each API family shapes it.
    pub fn error_body(&self, message: &str, kind: &str) -> Value {
        match self.wire {
            Wire::OllamaChat | Wire::OllamaGenerate => json!({"error": message}),
            _ => json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        }
    }

    /// Ollama's final line: `v` with the server's counts and durations.
    fn ollama_done(&self, mut v: Value, done: &Done) -> Value {
        v["done_reason"] = json!(done.reason);
        v["total_duration"] = json!(nanos(done.total));
        v["load_duration"] = json!(nanos(done.load));
        v["prompt_eval_count"] = json!(done.prompt_tokens);
        v["prompt_eval_duration"] = json!(nanos(done.prefill));
        v["eval_count"] = json!(done.tokens);
        v["eval_duration"] = json!(nanos(done.eval));
        v
    }

    /// The `stream: false` answer.
    pub fn whole(&self, text: &str, done: &Done) -> Value {
        let usage = json!({"prompt_tokens": done.prompt_tokens, "completion_tokens": done.tokens, "total_tokens": done.prompt_tokens + done.tokens});
        match self.wire {
            Wire::OllamaChat => self.ollama_done(
                json!({"model": self.model, "created_at": self.created_at, "message": {"role": "assistant", "content": text}, "done": true}),
                done,
            ),
            Wire::OllamaGenerate => self.ollama_done(
                json!({"model": self.model, "created_at": self.created_at, "response": text, "done": true}),
                done,
            ),
            Wire::OpenAiChat { .. } => {
                json!({"id": format!("chatcmpl-sim-{}", self.created_at), "object": "chat.completion", "created": self.created, "model": self.model, "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": done.reason}], "usage": usage})
            }
            Wire::OpenAiCompletions { .. } => {
                json!({"id": format!("cmpl-sim-{}", self.created_at), "object": "text_completion", "created": self.created, "model": self.model, "choices": [{"index": 0, "text": text, "finish_reason": done.reason}], "usage": usage})
            }
            Wire::OpenAiResponses => {
                self.response_object("completed", json!([self.message_item("completed", Some(text))]), Some(done))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::http::StreamFold as _;
    use crate::backend::ollama_stream::OllamaStream;
    use crate::backend::openai_stream::OpenAiStream;
    use crate::backend::Measurement;

    fn frames(wire: Wire) -> Frames {
        Frames {
            wire,
            model: "m".into(),
            created_at: "t".into(),
            created: 1,
            sequence: Default::default(),
        }
    }

    fn done() -> Done {
        let ms = Duration::from_millis;
        Done {
            reason: "stop",
            prompt_tokens: 7,
            tokens: 2,
            total: ms(40),
            load: ms(5),
            prefill: ms(10),
            eval: ms(20),
        }
    }

    fn stream(f: &Frames) -> Vec<u8> {
        let mut bytes = f.start().unwrap_or_default();
        bytes.extend(f.token("a"));
        bytes.extend(f.token("b"));
        bytes.extend(f.end(&done(), "ab"));
        bytes
    }

    /// The simulator's output parses with the real parsers into what it meant to say.
    #[test]
    fn every_wire_round_trips_through_the_parsers() {
        let check = |m: Measurement, wire: Wire| {
            assert_eq!(
                (
                    m.text.as_str(),
                    m.output_tokens,
                    m.prompt_tokens,
                    m.tokens_estimated
                ),
                ("ab", 2, Some(7), false),
                "{wire:?}"
            );
            assert_eq!(m.done_reason.as_deref(), Some("stop"));
            assert!(m.error.is_none(), "{wire:?}: {:?}", m.error);
        };
        for wire in [Wire::OllamaChat, Wire::OllamaGenerate] {
            let mut s = OllamaStream::default();
            s.feed(Duration::ZERO, &stream(&frames(wire)));
            let m = s.finish(Duration::ZERO);
            assert_eq!(m.server.queue_wait(), Some(Duration::from_millis(5)));
            check(m, wire);
        }
        for wire in [
            Wire::OpenAiChat {
                include_usage: true,
            },
            Wire::OpenAiCompletions {
                include_usage: true,
            },
        ] {
            let mut s = OpenAiStream::default();
            s.feed(Duration::ZERO, &stream(&frames(wire)));
            check(s.finish(Duration::ZERO), wire);
        }
    }

    /// The Responses stream is what openai-python's event types expect: typed events with
    /// increasing sequence numbers, deltas adding up to the text, usage on the last event.
    #[test]
    fn responses_events_are_typed_ordered_and_end_with_usage() {
        let f = frames(Wire::OpenAiResponses);
        let bytes = String::from_utf8(stream(&f)).unwrap();
        let events: Vec<(String, Value)> = bytes
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let (kind, data) = e.split_once('\n').unwrap();
                let data: Value =
                    serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
                (kind.strip_prefix("event: ").unwrap().to_string(), data)
            })
            .collect();
        for (i, (kind, data)) in events.iter().enumerate() {
            assert_eq!(data["type"], kind.as_str());
            assert_eq!(data["sequence_number"], i as u64);
        }
        let deltas: String = events
            .iter()
            .filter(|(k, _)| k == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, "ab");
        let (last, data) = events.last().unwrap();
        assert_eq!(last, "response.completed");
        assert_eq!(data["response"]["usage"]["output_tokens"], 2);
        assert_eq!(data["response"]["output"][0]["content"][0]["text"], "ab");
        assert_eq!(events[0].0, "response.created");
    }

    #[test]
    fn openai_errors_and_garbage_fail_the_parser() {
        let f = frames(Wire::OpenAiChat {
            include_usage: false,
        });
        for (bytes, kind) in [
            (f.error("x"), crate::backend::ErrorKind::StreamError),
            (f.malformed(), crate::backend::ErrorKind::Malformed),
        ] {
            let mut s = OpenAiStream::default();
            s.feed(Duration::ZERO, &bytes);
            assert_eq!(s.finish(Duration::ZERO).error.map(|e| e.kind), Some(kind));
        }
    }
}
