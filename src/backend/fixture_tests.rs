//! The Ollama stream parser on every recorded real stream (tests/data/streams, copied from
//! ../shared/fixtures/streams), fed whole, split at every byte offset, and one byte at a time.
//! Expected values come from the fixtures' README.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::http::StreamFold as _;
use super::ollama_stream::OllamaStream;
use super::openai_stream::OpenAiStream;
use super::{ErrorKind, Measurement, ServerTimings};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/streams")
}

struct Expected {
    file: &'static str,
    text: &'static str,
    content_chunks: u64,
    output_tokens: u64,
    tokens_estimated: bool,
    done_reason: Option<&'static str>,
    error: Option<ErrorKind>,
    prompt_tokens: Option<u64>,
    server: [Option<u64>; 4],
}

const NONE4: [Option<u64>; 4] = [None; 4];

fn expectations() -> Vec<Expected> {
    vec![
        Expected {
            file: "ollama-generate-docs-streaming.ndjson",
            text: "That's a fantastic question!",
            content_chunks: 7,
            output_tokens: 7,
            tokens_estimated: true,
            done_reason: Some("stop"),
            error: None,
            prompt_tokens: None,
            server: NONE4,
        },
        Expected {
            file: "ollama-generate-error-midstream.ndjson",
            text: " Yes.Ican",
            content_chunks: 4,
            output_tokens: 4,
            tokens_estimated: true,
            done_reason: None,
            error: Some(ErrorKind::StreamError),
            prompt_tokens: None,
            server: NONE4,
        },
        Expected {
            file: "ollama-generate-docs-api-md.ndjson",
            text: "The",
            content_chunks: 1,
            output_tokens: 259,
            tokens_estimated: false,
            done_reason: None,
            error: None,
            prompt_tokens: Some(26),
            server: [
                Some(10706818083),
                Some(6338219291),
                Some(130079000),
                Some(4232710000),
            ],
        },
        Expected {
            file: "ollama-chat-docs-streaming.ndjson",
            text: "The",
            content_chunks: 1,
            output_tokens: 282,
            tokens_estimated: false,
            done_reason: None,
            error: None,
            prompt_tokens: Some(26),
            server: [
                Some(4883583458),
                Some(1334875),
                Some(342546000),
                Some(4535599000),
            ],
        },
        // The tool call is the only content: it counts as the first token, with no text.
        Expected {
            file: "ollama-chat-docs-tool-calls.ndjson",
            text: "",
            content_chunks: 1,
            output_tokens: 15,
            tokens_estimated: false,
            done_reason: Some("stop"),
            error: None,
            prompt_tokens: Some(169),
            server: [
                Some(182242375),
                Some(41295167),
                Some(24573166),
                Some(115959084),
            ],
        },
        Expected {
            file: "ollama-generate-granite-full-metrics.ndjson",
            text: "Fluffy Burrower.",
            content_chunks: 7,
            output_tokens: 8,
            tokens_estimated: false,
            done_reason: Some("stop"),
            error: None,
            prompt_tokens: Some(50),
            server: [
                Some(269377500),
                Some(24999375),
                Some(82861916),
                Some(160765500),
            ],
        },
        Expected {
            file: "ollama-generate-nonstream-length.json",
            text: "Once upon a time, in a small village nestled",
            content_chunks: 1,
            output_tokens: 10,
            tokens_estimated: false,
            done_reason: Some("length"),
            error: None,
            prompt_tokens: Some(14),
            server: [
                Some(195361027),
                Some(25814720),
                Some(14601000),
                Some(96146000),
            ],
        },
    ]
}

/// Feeds `reads` with increasing arrival offsets (1 ms apart) and finishes.
fn parse(reads: &[&[u8]]) -> Measurement {
    let mut stream = OllamaStream::default();
    for (i, read) in reads.iter().enumerate() {
        stream.feed(Duration::from_millis(i as u64 + 1), read);
    }
    stream.finish(Duration::from_millis(reads.len() as u64 + 1))
}

/// A stream with content has a TTFT and one inter-token gap fewer than its content chunks.
fn check_timing(m: &Measurement, content_chunks: u64, ctx: &str) {
    assert_eq!(m.ttft.is_some(), content_chunks > 0, "{ctx}");
    assert_eq!(
        m.itl.len() as u64,
        content_chunks.saturating_sub(1),
        "{ctx}"
    );
}

fn check(e: &Expected, m: &Measurement, how: &str) {
    let ctx = format!("{} ({how})", e.file);
    assert_eq!(m.text, e.text, "{ctx}");
    assert_eq!(m.content_chunks, e.content_chunks, "{ctx}");
    assert_eq!(m.output_tokens, e.output_tokens, "{ctx}");
    assert_eq!(m.tokens_estimated, e.tokens_estimated, "{ctx}");
    assert_eq!(m.done_reason.as_deref(), e.done_reason, "{ctx}");
    assert_eq!(m.error.as_ref().map(|e| e.kind), e.error, "{ctx}");
    assert_eq!(m.prompt_tokens, e.prompt_tokens, "{ctx}");
    let ns = |d: Option<u64>| d.map(Duration::from_nanos);
    let want = ServerTimings {
        total: ns(e.server[0]),
        load: ns(e.server[1]),
        prompt_eval: ns(e.server[2]),
        eval: ns(e.server[3]),
    };
    assert_eq!(m.server, want, "{ctx}");
    check_timing(m, e.content_chunks, &ctx);
}

#[test]
fn every_ollama_stream_parses_whole() {
    for e in expectations() {
        let bytes = std::fs::read(data_dir().join(e.file)).unwrap();
        check(&e, &parse(&[&bytes]), "whole");
    }
}

#[test]
fn every_ollama_stream_parses_the_same_split_at_every_offset() {
    for e in expectations() {
        let bytes = std::fs::read(data_dir().join(e.file)).unwrap();
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            check(&e, &parse(&[a, b]), &format!("split at {cut}"));
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        check(&e, &parse(&singles), "one byte per read");
    }
}

#[test]
fn ttft_is_the_arrival_of_the_first_content_line_not_of_the_first_byte() {
    let bytes = std::fs::read(data_dir().join("ollama-chat-docs-tool-calls.ndjson")).unwrap();
    let first_newline = bytes.iter().position(|&b| b == b'\n').unwrap();
    let mut stream = OllamaStream::default();
    stream.feed(Duration::from_millis(10), &bytes[..first_newline]);
    stream.feed(Duration::from_millis(30), &bytes[first_newline..]);
    let m = stream.finish(Duration::from_millis(31));
    assert_eq!(m.ttft, Some(Duration::from_millis(30)));
    assert_eq!(m.e2e, Duration::from_millis(30));
}

/// Every recorded stream is accounted for: Ollama-native ones above, SSE ones belong to the
/// OpenAI-compatible parser. A new shared fixture fails this test until it is copied
/// here and given an expectation.
#[test]
fn every_shared_fixture_is_covered() {
    let ours: Vec<String> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/streams");
    if let Ok(entries) = std::fs::read_dir(&shared) {
        for entry in entries {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                ours.contains(&name),
                "shared fixture {name} is missing from tests/data/streams"
            );
            let ours_bytes = std::fs::read(data_dir().join(&name)).unwrap();
            assert_eq!(
                ours_bytes,
                std::fs::read(shared.join(&name)).unwrap(),
                "{name} differs from the shared copy"
            );
        }
    }
    let expected: Vec<&str> = expectations()
        .iter()
        .map(|e| e.file)
        .chain(sse_expectations().iter().map(|e| e.file))
        .collect();
    for name in ours.iter().filter(|n| *n != "README.md") {
        assert!(
            expected.contains(&name.as_str()),
            "no expectation for {name}"
        );
    }
}

/// Expected results of the SSE recordings (fixtures README), for the OpenAI-compatible parser.
struct SseExpected {
    file: &'static str,
    text: &'static str,
    /// Chunks with content, reasoning or a tool call.
    content_chunks: u64,
    output_tokens: u64,
    tokens_estimated: bool,
    prompt_tokens: Option<u64>,
    finish: Option<&'static str>,
    /// EOF before `[DONE]`: the request counts as truncated.
    truncated: bool,
    /// llama.cpp `timings`: prompt_ms, predicted_ms.
    server_ms: Option<(f64, f64)>,
}

fn sse_expectations() -> Vec<SseExpected> {
    vec![
        SseExpected {
            file: "ollama-v1-chat-legacy-empty-finish-reason-truncated.sse",
            text: " if you have any questions",
            content_chunks: 5,
            output_tokens: 5,
            tokens_estimated: true,
            prompt_tokens: None,
            finish: None,
            truncated: true,
            server_ms: None,
        },
        SseExpected {
            file: "openai-chat-content-usage.sse",
            text: "",
            content_chunks: 30,
            output_tokens: 30,
            tokens_estimated: false,
            prompt_tokens: Some(14),
            finish: Some("stop"),
            truncated: false,
            server_ms: None,
        },
        SseExpected {
            file: "openai-chat-length-usage.sse",
            text: "{\"",
            content_chunks: 1,
            output_tokens: 1,
            tokens_estimated: false,
            prompt_tokens: Some(79),
            finish: Some("length"),
            truncated: false,
            server_ms: None,
        },
        SseExpected {
            file: "openai-chat-tool-calls-usage.sse",
            text: "",
            content_chunks: 8,
            output_tokens: 16,
            tokens_estimated: false,
            prompt_tokens: Some(44),
            finish: Some("tool_calls"),
            truncated: false,
            server_ms: None,
        },
        SseExpected {
            file: "vllm-completions-length-usage-null.sse",
            text: " city in the state of California,",
            content_chunks: 7,
            output_tokens: 7,
            tokens_estimated: true,
            prompt_tokens: None,
            finish: Some("length"),
            truncated: false,
            server_ms: None,
        },
        SseExpected {
            file: "llamacpp-chat-timings-tail-b6925.sse",
            text: "!",
            content_chunks: 1,
            output_tokens: 2188,
            tokens_estimated: false,
            prompt_tokens: Some(147),
            finish: Some("stop"),
            truncated: false,
            server_ms: Some((23.467, 13095.01)),
        },
        SseExpected {
            file: "llamacpp-chat-final-usage-timings-b4764.sse",
            text: "",
            content_chunks: 0,
            output_tokens: 1,
            tokens_estimated: false,
            prompt_tokens: Some(43),
            finish: Some("length"),
            truncated: true,
            server_ms: Some((246.082, 0.028)),
        },
        SseExpected {
            file: "openrouter-chat-comment-keepalive-truncated.sse",
            text: "The next day",
            content_chunks: 3,
            output_tokens: 3,
            tokens_estimated: true,
            prompt_tokens: None,
            finish: None,
            truncated: true,
            server_ms: None,
        },
    ]
}

fn parse_sse(reads: &[&[u8]]) -> Measurement {
    let mut stream = OpenAiStream::default();
    for (i, read) in reads.iter().enumerate() {
        stream.feed(Duration::from_millis(i as u64 + 1), read);
    }
    stream.finish(Duration::from_millis(reads.len() as u64 + 1))
}

fn check_sse(e: &SseExpected, m: &Measurement, how: &str) {
    let ctx = format!("{} ({how})", e.file);
    if e.file == "openai-chat-content-usage.sse" {
        assert_eq!(m.text.chars().count(), 159, "{ctx}");
    } else {
        assert_eq!(m.text, e.text, "{ctx}");
    }
    assert_eq!(m.content_chunks, e.content_chunks, "{ctx}");
    assert_eq!(m.output_tokens, e.output_tokens, "{ctx}");
    assert_eq!(m.tokens_estimated, e.tokens_estimated, "{ctx}");
    assert_eq!(m.prompt_tokens, e.prompt_tokens, "{ctx}");
    assert_eq!(m.done_reason.as_deref(), e.finish, "{ctx}");
    let kind = m.error.as_ref().map(|e| e.kind);
    assert_eq!(
        kind,
        e.truncated.then_some(ErrorKind::Truncated),
        "{ctx}: {:?}",
        m.error
    );
    let server = m
        .server
        .prompt_eval
        .zip(m.server.eval)
        .map(|(p, d)| (p.as_secs_f64() * 1000.0, d.as_secs_f64() * 1000.0));
    match (server, e.server_ms) {
        (Some((p, d)), Some((wp, wd))) => assert!(
            (p - wp).abs() < 1e-6 && (d - wd).abs() < 1e-6,
            "{ctx}: {p} {d}"
        ),
        (got, want) => assert_eq!(got.is_some(), want.is_some(), "{ctx}"),
    }
    check_timing(m, e.content_chunks, &ctx);
}

#[test]
fn every_sse_stream_parses_whole_split_at_every_offset_and_byte_by_byte() {
    for e in sse_expectations() {
        let bytes = std::fs::read(data_dir().join(e.file)).unwrap();
        check_sse(&e, &parse_sse(&[&bytes]), "whole");
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            check_sse(&e, &parse_sse(&[a, b]), &format!("split at {cut}"));
        }
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        check_sse(&e, &parse_sse(&singles), "one byte per read");
    }
}

#[test]
fn the_empty_first_delta_is_not_the_first_token() {
    let bytes = std::fs::read(data_dir().join("openai-chat-content-usage.sse")).unwrap();
    let first_event_end = bytes.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let mut stream = OpenAiStream::default();
    stream.feed(Duration::from_millis(10), &bytes[..first_event_end]);
    stream.feed(Duration::from_millis(50), &bytes[first_event_end..]);
    let m = stream.finish(Duration::from_millis(51));
    assert_eq!(m.ttft, Some(Duration::from_millis(50)));
    assert_eq!(m.ttfa, Some(Duration::from_millis(50)));
}
