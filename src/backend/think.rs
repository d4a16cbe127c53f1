//! Reasoning sent inside the answer text: DeepSeek-R1 on Ollama without `think`, and
//! OpenAI-compatible servers without a reasoning parser, stream `<think>…</think>` as ordinary
//! content. Pure: text pieces in, (thinking, answer) pieces out, with tags split across chunks
//! handled, so TTFA is the first answer token after the closing tag and the reasoning goes to
//! `thinking`.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

/// The tag pair that wraps inline reasoning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThinkTags {
    /// The opening tag, e.g. `<think>`.
    pub open: String,
    /// The closing tag, e.g. `</think>`.
    pub close: String,
}

impl Default for ThinkTags {
    /// DeepSeek-R1's and Qwen3's pair.
    fn default() -> Self {
        Self {
            open: "<think>".into(),
            close: "</think>".into(),
        }
    }
}

/// Leading whitespace held while a reasoning block may still open; past it the text is answer.
const MAX_LEAD: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    /// Only whitespace so far: a reasoning block may still open (it must come first).
    #[default]
    Start,
    /// Inside the block.
    Thinking,
    /// Everything from here on is answer.
    Answer,
}

/// Splits streamed answer text into reasoning and answer; by default it looks for the default
/// tag pair.
#[derive(Debug, Clone)]
pub struct ThinkSplitter {
    /// `None`: inline reasoning is not looked for; all text is answer. Shared by every request
    /// (and every choice), so a new fold costs no allocation.
    tags: Option<Arc<ThinkTags>>,
    state: State,
    /// Text held back because it may be the start of a tag.
    pending: String,
}

/// The default pair, allocated once.
pub fn default_tags() -> Arc<ThinkTags> {
    static DEFAULT: LazyLock<Arc<ThinkTags>> = LazyLock::new(|| Arc::new(ThinkTags::default()));
    DEFAULT.clone()
}

impl Default for ThinkSplitter {
    fn default() -> Self {
        Self::new(Some(default_tags()))
    }
}

impl ThinkSplitter {
    /// A splitter for `tags`, or one that passes everything through as answer.
    pub fn new(tags: Option<Arc<ThinkTags>>) -> Self {
        Self {
            tags,
            state: State::Start,
            pending: String::new(),
        }
    }

    /// Feeds one piece of content; returns the (thinking, answer) text it completes. Once the
    /// answer has begun (or with no tags) the piece is passed through without a copy: this runs
    /// for every token.
    pub fn push<'a>(&mut self, text: &'a str) -> (Cow<'a, str>, Cow<'a, str>) {
        let tags = match &self.tags {
            Some(tags) if !(self.state == State::Answer && self.pending.is_empty()) => tags,
            _ => return (Cow::Borrowed(""), Cow::Borrowed(text)),
        };
        let (open, close) = (tags.open.as_str(), tags.close.as_str());
        self.pending.push_str(text);
        let (mut thinking, mut answer) = (String::new(), String::new());
        loop {
            match self.state {
                State::Start => {
                    let trimmed = self.pending.trim_start();
                    if let Some(rest) = trimmed.strip_prefix(open) {
                        self.pending = rest.to_string();
                        self.state = State::Thinking;
                    } else if open.starts_with(trimmed) && self.pending.len() <= MAX_LEAD {
                        // Whitespace, or a tag not yet complete: wait for more.
                        break;
                    } else {
                        self.state = State::Answer;
                    }
                }
                State::Thinking => match self.pending.find(close) {
                    Some(end) => {
                        thinking.push_str(&self.pending[..end]);
                        self.pending = self.pending[end + close.len()..].to_string();
                        self.state = State::Answer;
                    }
                    None => {
                        // Keep what may be the start of the closing tag.
                        let keep = partial_suffix(&self.pending, close);
                        let cut = self.pending.len() - keep;
                        thinking.push_str(&self.pending[..cut]);
                        self.pending.drain(..cut);
                        break;
                    }
                },
                State::Answer => {
                    answer.push_str(&self.pending);
                    self.pending.clear();
                    break;
                }
            }
        }
        (Cow::Owned(thinking), Cow::Owned(answer))
    }

    /// Ends the stream: text held back for a tag that never completed is what it was.
    pub fn finish(&mut self) -> (String, String) {
        let rest = std::mem::take(&mut self.pending);
        match self.state {
            State::Thinking => (rest, String::new()),
            State::Start | State::Answer => (String::new(), rest),
        }
    }
}

/// The length of the longest end of `text` that begins `tag` (and is shorter than it).
fn partial_suffix(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| {
            text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..])
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[&str], tags: Option<ThinkTags>) -> (String, String) {
        let mut s = ThinkSplitter::new(tags.map(Arc::new));
        let (mut thinking, mut answer) = (String::new(), String::new());
        let mut outputs: Vec<(String, String)> = pieces
            .iter()
            .map(|p| {
                let (t, a) = s.push(p);
                (t.into_owned(), a.into_owned())
            })
            .collect();
        outputs.push(s.finish());
        for (t, a) in outputs {
            thinking.push_str(&t);
            answer.push_str(&a);
        }
        (thinking, answer)
    }

    #[test]
    fn reasoning_goes_to_thinking_even_with_tags_split_across_chunks() {
        let on = Some(ThinkTags::default());
        let whole = split(&["<think>\nLet me see.</think>\n\nParis."], on.clone());
        assert_eq!(whole, ("\nLet me see.".into(), "\n\nParis.".into()));
        let split_tags = split(
            &["\n<th", "ink>Let me", " see.</th", "ink>", "\n\nParis."],
            on.clone(),
        );
        assert_eq!(split_tags, ("Let me see.".into(), "\n\nParis.".into()));
    }

    #[test]
    fn text_without_a_leading_block_is_all_answer() {
        let on = Some(ThinkTags::default());
        assert_eq!(
            split(&["Paris."], on.clone()),
            (String::new(), "Paris.".into())
        );
        // A tag later in the answer is the answer's own text.
        assert_eq!(
            split(&["Use ", "<think> tags."], on.clone()),
            (String::new(), "Use <think> tags.".into())
        );
        // An unfinished block at the end is reasoning that never ended.
        assert_eq!(
            split(&["<think>hmm </thi"], on),
            ("hmm </thi".into(), String::new())
        );
        assert_eq!(
            split(&["<think>x</think>y"], None),
            (String::new(), "<think>x</think>y".into())
        );
    }
}
