//! Property tests of the stream folds on arbitrary input: whatever a server sends, and however
//! the network splits it, parsing never panics, and where the bytes arrive does not change what
//! is parsed (only when). Built from fragments of real protocol text as well as raw bytes, so
//! the cases reach deep into both parsers.

use std::time::Duration;

use proptest::prelude::*;

use super::http::StreamFold;
use super::ollama_stream::OllamaStream;
use super::openai_stream::OpenAiStream;
use super::Measurement;

/// Pieces that real streams are made of, to be shuffled into odd streams.
const PIECES: &[&str] = &[
    "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"Hi\"},\"done\":false}\n",
    "{\"response\":\"x\",\"done\":false}\n",
    "{\"done\":true,\"done_reason\":\"stop\",\"eval_count\":3,\"total_duration\":5}\n",
    "{\"error\":\"boom\"}\n",
    "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
    "data: {\"choices\":[{\"index\":1,\"delta\":{\"reasoning_content\":\"r\"}}]}\n\n",
    "data: {\"choices\":[],\"usage\":{\"completion_tokens\":2}}\n\n",
    "data: [DONE]\n\n",
    ": keep-alive\n\n",
    "error: {\"message\":\"x\"}\n\n",
    "\r\n",
    "\r",
    "\n",
    "{",
    "data: ",
    "\u{00e9}\u{1f600}",
    "not json\n",
];

fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        prop::sample::select(PIECES).prop_map(|p| p.as_bytes().to_vec()),
        prop::collection::vec(any::<u8>(), 0..32),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|parts| parts.concat())
}

/// Feeds `bytes` cut at `cuts` (offsets, any order), each read one ms after the previous.
fn fold<F: StreamFold>(bytes: &[u8], cuts: &[usize]) -> Measurement {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut fold = F::default();
    let mut start = 0;
    for (i, &cut) in cuts.iter().chain(std::iter::once(&bytes.len())).enumerate() {
        if cut > start {
            fold.feed(Duration::from_millis(i as u64), &bytes[start..cut]);
            start = cut;
        }
        if fold.is_finished() {
            break;
        }
    }
    fold.finish(Duration::from_secs(1))
}

/// What was parsed, leaving out when it arrived.
fn content(m: &Measurement) -> impl PartialEq + std::fmt::Debug {
    (
        m.text.clone(),
        m.thinking.clone(),
        m.content_chunks,
        m.output_tokens,
        m.done_reason.clone(),
        m.error.as_ref().map(|e| e.kind),
    )
}

proptest! {
    #[test]
    fn ollama_parsing_never_panics_and_ignores_how_bytes_are_split(
        bytes in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = fold::<OllamaStream>(&bytes, &[]);
        let split = fold::<OllamaStream>(&bytes, &cuts);
        prop_assert_eq!(content(&whole), content(&split));
    }

    #[test]
    fn sse_parsing_never_panics_and_ignores_how_bytes_are_split(
        bytes in stream(),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let whole = fold::<OpenAiStream>(&bytes, &[]);
        let split = fold::<OpenAiStream>(&bytes, &cuts);
        prop_assert_eq!(content(&whole), content(&split));
    }
}
