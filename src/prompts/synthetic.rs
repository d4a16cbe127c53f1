//! Synthetic prompts of a controlled size, deterministic from the seed. Without a tokenizer,
//! a token is counted as 4 characters (the simulator's rule); the text is ordinary words, so
//! real tokenizers land near the target (English averages 3.5 to 4.5 characters per token).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use serde_json::{Map, Value};

use super::{Entry, PromptSet};
use crate::scenario::{BackendKind, Prompt, Synthetic};

const WORDS: [&str; 24] = [
    "system",
    "latency",
    "request",
    "model",
    "token",
    "queue",
    "server",
    "budget",
    "cache",
    "answer",
    "stream",
    "prompt",
    "throughput",
    "batch",
    "memory",
    "engineer",
    "measure",
    "percentile",
    "capacity",
    "traffic",
    "window",
    "context",
    "decode",
    "prefill",
];

/// Characters per token in the sizing rule.
pub const CHARS_PER_TOKEN: usize = 4;

/// Text of about `tokens` tokens by the 4-characters rule, ending with a request to continue.
pub fn text_of(tokens: usize, rng: &mut SmallRng) -> String {
    let target = tokens * CHARS_PER_TOKEN;
    let mut text = String::with_capacity(target + 16);
    while text.len() < target {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(WORDS[rng.random_range(0..WORDS.len())]);
    }
    text.truncate(target.max(1));
    text
}

/// The set described by `spec`: `count` prompts whose sizes follow the distribution, each asking
/// for exactly `output_tokens` through the backend's own option.
pub fn generate(spec: &Synthetic, backend: BackendKind, seed: u64) -> PromptSet {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x5EED_5EED);
    let sizes = Normal::new(spec.input_tokens.mean, spec.input_tokens.stddev.max(0.0)).ok();
    let key = match backend {
        BackendKind::Ollama => "num_predict",
        BackendKind::Openai => "max_tokens",
    };
    let options = Map::from_iter([(key.to_string(), Value::from(spec.output_tokens))]);
    // The shared prefixes come from their own stream, so adding them leaves the suffixes as
    // they were; each ends with a paragraph break, a natural boundary for a cache.
    let prefixes: Vec<String> = spec.shared_prefix.map_or_else(Vec::new, |p| {
        let mut prefix_rng = SmallRng::seed_from_u64(seed ^ 0x50F1_C5ED);
        (0..p.prefixes)
            .map(|_| text_of(p.tokens as usize, &mut prefix_rng) + "\n\n")
            .collect()
    });
    let entries = (0..spec.count.unwrap_or(64))
        .map(|i| {
            let tokens = sizes
                .map_or(spec.input_tokens.mean, |d| d.sample(&mut rng))
                .round()
                .max(1.0) as usize;
            let own = text_of(tokens, &mut rng);
            let text = match prefixes.get(i as usize % prefixes.len().max(1)) {
                Some(prefix) => format!("{prefix}{own}"),
                None => own,
            };
            Entry {
                options: Some(options.clone()),
                ..Entry::plain(Prompt::Text(text))
            }
        })
        .collect();
    PromptSet {
        name: spec
            .name
            .clone()
            .unwrap_or_else(|| "synthetic".into())
            .into(),
        weight: 1.0,
        entries,
    }
}

/// [`generate`] with every prompt and shared prefix sized by a real tokenizer (`count` gives
/// the tokens of a text, e.g. the server's `/tokenize`): each has exactly its drawn number of
/// tokens where one more word or letter can reach it, and never more.
pub async fn generate_counted<F, Fut, E>(
    spec: &Synthetic,
    backend: BackendKind,
    seed: u64,
    count: F,
) -> Result<PromptSet, SizingError<E>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<u64, E>>,
    E: std::error::Error + 'static,
{
    let mut set = generate(spec, backend, seed);
    // Sizes are drawn as `generate` draws them; the words of each come from a stream of their own.
    let mut sizes_rng = SmallRng::seed_from_u64(seed ^ 0x5EED_5EED);
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x70C3_A1ED);
    let sizes = Normal::new(spec.input_tokens.mean, spec.input_tokens.stddev.max(0.0)).ok();
    let mut prefixes = Vec::new();
    if let Some(p) = spec.shared_prefix {
        let mut prefix_rng = SmallRng::seed_from_u64(seed ^ 0x50F1_C5ED);
        for _ in 0..p.prefixes {
            prefixes.push(fit(p.tokens as usize, &mut prefix_rng, &count).await? + "\n\n");
        }
    }
    for (i, entry) in set.entries.iter_mut().enumerate() {
        let tokens = sizes
            .map_or(spec.input_tokens.mean, |d| d.sample(&mut sizes_rng))
            .round()
            .max(1.0) as usize;
        // `generate` draws the words of each prompt from the same stream as the sizes.
        let _ = text_of(tokens, &mut sizes_rng);
        let own = fit(tokens, &mut rng, &count).await?;
        let text = match prefixes.get(i % prefixes.len().max(1)) {
            Some(prefix) => format!("{prefix}{own}"),
            None => own,
        };
        entry.prompt = Prompt::Text(text);
    }
    Ok(set)
}

/// Why prompts could not be sized by a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum SizingError<E: std::error::Error + 'static> {
    /// The tokenizer failed.
    #[error(transparent)]
    Count(E),
    /// Its counts grow too slowly with the text to be token counts.
    #[error("the tokenizer counts {got} tokens in {words} words; a prompt of {target} tokens would need more than {most} words: its counts are not token counts")]
    NotCounting {
        /// Tokens counted.
        got: usize,
        /// In this many words.
        words: usize,
        /// Tokens wanted.
        target: usize,
        /// The most words allowed.
        most: usize,
    },
}

/// The most words a prompt of `target` tokens is allowed: sixteen per token (a dictionary word
/// is rarely below one token), plus room for tiny targets.
fn max_words(target: usize) -> usize {
    target.saturating_mul(16).saturating_add(16)
}

/// Words whose text has `target` tokens by `count`: start from the 4-characters estimate,
/// scale the word count by what the tokenizer says (a few rounds), trim to at most `target`,
/// then pad with one-letter words to reach it.
async fn fit<F, Fut, E>(
    target: usize,
    rng: &mut SmallRng,
    count: &F,
) -> Result<String, SizingError<E>>
where
    F: Fn(String) -> Fut,
    Fut: std::future::Future<Output = Result<u64, E>>,
    E: std::error::Error + 'static,
{
    let mut words: Vec<&str> = Vec::new();
    let mut chars = 0;
    while chars < target * CHARS_PER_TOKEN {
        let w = WORDS[rng.random_range(0..WORDS.len())];
        chars += w.len() + 1;
        words.push(w);
    }
    let measure = |words: &[&str]| {
        let counted = count(words.join(" "));
        async move { counted.await.map_err(SizingError::Count) }
    };
    for _ in 0..6 {
        let got = measure(&words).await? as usize;
        if got == target {
            return Ok(words.join(" "));
        }
        let per_word = got.max(1) as f64 / words.len().max(1) as f64;
        let step = ((got.abs_diff(target)) as f64 / per_word).ceil().max(1.0) as usize;
        if got < target {
            // Words are whole dictionary words, each at least a token for any real tokenizer;
            // a tokenizer that needs many more words than tokens is not counting tokens, and
            // following it would double the text every round until memory runs out.
            if words.len() + step > max_words(target) {
                return Err(SizingError::NotCounting {
                    got,
                    words: words.len(),
                    target,
                    most: max_words(target),
                });
            }
            for _ in 0..step {
                words.push(WORDS[rng.random_range(0..WORDS.len())]);
            }
        } else {
            words.truncate(words.len().saturating_sub(step).max(1));
        }
    }
    while words.len() > 1 && measure(&words).await? as usize > target {
        words.pop();
    }
    // One letter at a time, each checked by the tokenizer before the next.
    #[allow(clippy::same_item_push)]
    for _ in 0..4 {
        words.push("a");
        if measure(&words).await? as usize > target {
            words.pop();
            break;
        }
    }
    Ok(words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::TokenDistribution;

    fn spec(mean: f64, stddev: f64) -> Synthetic {
        Synthetic {
            input_tokens: TokenDistribution { mean, stddev },
            output_tokens: 128,
            count: Some(400),
            name: None,
            shared_prefix: None,
        }
    }

    #[test]
    fn sizes_follow_the_distribution_by_the_four_characters_rule() {
        let set = generate(&spec(512.0, 64.0), BackendKind::Ollama, 1);
        let tokens: Vec<f64> = set
            .entries
            .iter()
            .map(|e| match &e.prompt {
                Prompt::Text(t) => (t.len() / CHARS_PER_TOKEN) as f64,
                _ => 0.0,
            })
            .collect();
        let mean = tokens.iter().sum::<f64>() / tokens.len() as f64;
        let sd =
            (tokens.iter().map(|t| (t - mean).powi(2)).sum::<f64>() / tokens.len() as f64).sqrt();
        assert!((mean - 512.0).abs() < 10.0, "{mean}");
        assert!((sd - 64.0).abs() < 8.0, "{sd}");
        assert_eq!(set.entries[0].options.as_ref().unwrap()["num_predict"], 128);
        assert_eq!(&*set.name, "synthetic");
    }

    #[test]
    fn deterministic_and_backend_aware() {
        let a = generate(&spec(100.0, 10.0), BackendKind::Openai, 7);
        let b = generate(&spec(100.0, 10.0), BackendKind::Openai, 7);
        assert_eq!(a, b);
        assert_eq!(a.entries[0].options.as_ref().unwrap()["max_tokens"], 128);
        let fixed = generate(&spec(50.0, 0.0), BackendKind::Ollama, 1);
        assert!(fixed
            .entries
            .iter()
            .all(|e| matches!(&e.prompt, Prompt::Text(t) if t.len() == 200)));
    }

    #[test]
    fn shared_prefixes_open_the_prompts_in_turn_and_leave_the_suffixes_as_they_were() {
        let plain = generate(&spec(64.0, 0.0), BackendKind::Ollama, 3);
        let mut with = spec(64.0, 0.0);
        with.shared_prefix = Some(crate::scenario::SharedPrefix {
            tokens: 256,
            prefixes: 3,
        });
        let shared = generate(&with, BackendKind::Ollama, 3);
        let text = |set: &PromptSet, i: usize| match &set.entries[i].prompt {
            Prompt::Text(t) => t.clone(),
            _ => unreachable!(),
        };
        let prefix = |i: usize| text(&shared, i)[..256 * CHARS_PER_TOKEN + 2].to_string();
        assert_eq!(
            prefix(0),
            prefix(3),
            "prompts 0 and 3 share the first prefix"
        );
        assert_eq!(prefix(1), prefix(4));
        assert_ne!(prefix(0), prefix(1));
        assert!(prefix(0).ends_with("\n\n"));
        for i in 0..6 {
            assert!(
                text(&shared, i).ends_with(&text(&plain, i)),
                "the suffix of {i} is unchanged"
            );
        }
        let distinct: std::collections::HashSet<String> = (0..60).map(prefix).collect();
        assert_eq!(distinct.len(), 3);
    }

    /// A tokenizer answering 0 or 1 for any text would have the sizing double the prompt each
    /// round until memory ran out.
    #[tokio::test]
    async fn a_tokenizer_that_counts_too_few_is_an_error_not_an_endless_prompt() {
        let mut s = spec(100.0, 0.0);
        s.count = Some(2);
        for stuck in [0u64, 1] {
            let counter = move |_: String| async move { Ok::<_, std::io::Error>(stuck) };
            let err = generate_counted(&s, BackendKind::Openai, 9, counter)
                .await
                .unwrap_err();
            assert!(
                matches!(err, SizingError::NotCounting { .. }),
                "{stuck}: {err}"
            );
        }
    }

    /// With a tokenizer, each prompt has exactly its drawn size: here a toy tokenizer that
    /// counts words of more than 5 letters as two tokens, so the 4-characters rule is off.
    #[tokio::test]
    async fn a_real_tokenizer_sizes_every_prompt_exactly() {
        let toy = |text: String| async move {
            Ok::<_, std::io::Error>(
                text.split(' ')
                    .map(|w| if w.len() > 5 { 2 } else { 1 })
                    .sum::<u64>(),
            )
        };
        let mut s = spec(100.0, 20.0);
        s.count = Some(30);
        s.shared_prefix = Some(crate::scenario::SharedPrefix {
            tokens: 50,
            prefixes: 2,
        });
        let set = generate_counted(&s, BackendKind::Openai, 9, toy)
            .await
            .unwrap();
        let estimated = generate(&s, BackendKind::Openai, 9);
        let mut rng = SmallRng::seed_from_u64(9 ^ 0x5EED_5EED);
        let sizes = Normal::new(100.0, 20.0).unwrap();
        for (entry, plain) in set.entries.iter().zip(&estimated.entries) {
            let want = Distribution::<f64>::sample(&sizes, &mut rng)
                .round()
                .max(1.0) as u64;
            let _ = text_of(want as usize, &mut rng);
            let Prompt::Text(text) = &entry.prompt else {
                panic!()
            };
            let (prefix, own) = text.split_once("\n\n").unwrap();
            assert_eq!(toy(prefix.to_string()).await.unwrap(), 50);
            assert_eq!(toy(own.to_string()).await.unwrap(), want, "{own}");
            assert_eq!(entry.options, plain.options);
        }
    }
}
