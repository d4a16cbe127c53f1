//! `--raw`: one line per request (JSON lines, or CSV with `--raw-format csv`), streamed to disk
//! as requests end, never held in memory.

use std::io::Write;

use serde::Serialize;

use super::redact::Secrets;
use crate::metrics::{Outcome, Sample};

#[derive(Serialize)]
struct RawLine<'a> {
    scenario: Option<&'a str>,
    group: Option<String>,
    warmup: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_set: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    entry: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<&'a str>,
    vu: u64,
    iteration: u64,
    #[serde(skip_serializing_if = "is_zero")]
    turn: u32,
    started_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    intended_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule_lag_ms: Option<f64>,
    ended_ms: f64,
    interrupted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ttft_ms: Option<f64>,
    e2e_ms: Option<f64>,
    output_tokens: Option<u64>,
    tokens_estimated: Option<bool>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    reconnected: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_tokens: Option<u64>,
    chunks: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    done_reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_total_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_load_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_prefill_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_decode_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<std::borrow::Cow<'a, str>>,
}

use crate::duration::millis as ms;

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// How the raw log is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum RawFormat {
    /// One JSON object per line (`.requests.jsonl`).
    #[default]
    Jsonl,
    /// CSV with a header row (`.requests.csv`); tags joined with `;`.
    Csv,
}

impl RawFormat {
    /// The file name's ending.
    pub fn suffix(self) -> &'static str {
        match self {
            RawFormat::Jsonl => ".requests.jsonl",
            RawFormat::Csv => ".requests.csv",
        }
    }
}

/// The CSV columns, in order: every field a JSON line can have.
const COLUMNS: [&str; 30] = [
    "scenario",
    "group",
    "warmup",
    "prompt_set",
    "entry",
    "tags",
    "vu",
    "iteration",
    "turn",
    "started_ms",
    "intended_ms",
    "schedule_lag_ms",
    "ended_ms",
    "interrupted",
    "status",
    "ttft_ms",
    "e2e_ms",
    "output_tokens",
    "tokens_estimated",
    "reconnected",
    "connect_ms",
    "prompt_tokens",
    "chunks",
    "done_reason",
    "server_total_ms",
    "server_load_ms",
    "server_prefill_ms",
    "server_decode_ms",
    "error_kind",
    "error",
];

/// Writes the CSV header row (before the first [`write_line`] of a CSV log).
pub fn write_header(out: &mut impl Write) -> std::io::Result<()> {
    let mut w = csv::WriterBuilder::new().from_writer(&mut *out);
    w.write_record(COLUMNS)?;
    w.flush()
}

/// Appends one line for `sample` to `out`, with `secrets` masked in what the server said.
pub fn write_line(
    out: &mut impl Write,
    sample: &Sample,
    secrets: &Secrets,
    format: RawFormat,
) -> std::io::Result<()> {
    let m = match &sample.outcome {
        Outcome::Done(m) => Some(m),
        Outcome::Interrupted => None,
    };
    let line = RawLine {
        scenario: sample.key.as_ref().map(|k| &*k.scenario),
        group: sample.key.as_ref().map(|k| k.group.to_string()),
        warmup: sample.key.is_none(),
        prompt_set: sample.prompt_set.as_deref(),
        entry: sample.entry.as_deref(),
        tags: sample.tags.iter().map(|t| &**t).collect(),
        vu: sample.vu,
        iteration: sample.iteration,
        turn: sample.turn,
        started_ms: ms(sample.started),
        intended_ms: sample.intended.map(ms),
        schedule_lag_ms: sample
            .intended
            .map(|i| ms(sample.started.saturating_sub(i))),
        ended_ms: ms(sample.ended),
        interrupted: m.is_none(),
        status: m.and_then(|m| m.status),
        ttft_ms: m.and_then(|m| m.ttft).map(ms),
        e2e_ms: m.map(|m| ms(m.e2e)),
        output_tokens: m.map(|m| m.output_tokens),
        tokens_estimated: m.map(|m| m.tokens_estimated),
        reconnected: m.is_some_and(|m| m.reconnected),
        connect_ms: m.and_then(|m| m.connect).map(ms),
        prompt_tokens: m.and_then(|m| m.prompt_tokens),
        chunks: m.map(|m| m.content_chunks),
        done_reason: m.and_then(|m| m.done_reason.as_deref()),
        server_total_ms: m.and_then(|m| m.server.total).map(ms),
        server_load_ms: m.and_then(|m| m.server.load).map(ms),
        server_prefill_ms: m.and_then(|m| m.server.prompt_eval).map(ms),
        server_decode_ms: m.and_then(|m| m.server.eval).map(ms),
        error_kind: m.and_then(|m| m.error.as_ref()).map(|e| e.kind.as_str()),
        error: m
            .and_then(|m| m.error.as_ref())
            .map(|e| secrets.apply(&e.message)),
    };
    match format {
        RawFormat::Jsonl => {
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")
        }
        RawFormat::Csv => {
            let value = serde_json::to_value(&line)?;
            let cell = |name: &str| match value.get(name) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .filter_map(serde_json::Value::as_str)
                    .collect::<Vec<_>>()
                    .join(";"),
                Some(other) => other.to_string(),
            };
            let mut w = csv::WriterBuilder::new().from_writer(&mut *out);
            w.write_record(COLUMNS.iter().map(|c| cell(c)))?;
            w.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::backend::Measurement;
    use crate::metrics::{Group, GroupKey};

    /// The JSONL line of `sample`, parsed.
    fn jsonl(sample: &Sample) -> serde_json::Value {
        let mut out = Vec::new();
        write_line(
            &mut out,
            sample,
            &Secrets::new(None, "http://x"),
            RawFormat::Jsonl,
        )
        .unwrap();
        serde_json::from_slice(&out).unwrap()
    }

    #[test]
    fn a_line_says_which_prompt_vu_iteration_and_turn_it_was() {
        let mut sample = Sample::plain(
            Some(GroupKey {
                scenario: "chat".into(),
                group: Group::Level(4),
            }),
            Duration::from_millis(900),
            Outcome::Done(Measurement::default()),
        );
        sample.prompt_set = Some("code".into());
        sample.entry = Some("binary-search".into());
        sample.tags = Arc::from([Arc::from("long"), Arc::from("turn 2")]);
        sample.vu = 3;
        sample.iteration = 41;
        sample.turn = 2;
        let line = jsonl(&sample);
        assert_eq!(line["scenario"], "chat");
        assert_eq!(line["group"], "level 4");
        assert_eq!(line["prompt_set"], "code");
        assert_eq!(line["entry"], "binary-search");
        assert_eq!(line["tags"], serde_json::json!(["long", "turn 2"]));
        assert_eq!(
            (
                line["vu"].as_u64(),
                line["iteration"].as_u64(),
                line["turn"].as_u64()
            ),
            (Some(3), Some(41), Some(2))
        );
        let mut plain = Sample::plain(None, Duration::ZERO, Outcome::Interrupted);
        plain.iteration = 0;
        let line = jsonl(&plain);
        assert!(
            line.get("turn").is_none() && line.get("entry").is_none(),
            "{line}"
        );
    }

    #[test]
    fn the_csv_log_has_a_header_and_one_quoted_row_per_request() {
        let mut sample = Sample::plain(
            Some(GroupKey {
                scenario: "chat".into(),
                group: Group::Level(4),
            }),
            Duration::from_millis(900),
            Outcome::Done(Measurement {
                error: Some(crate::backend::RequestError::new(
                    crate::backend::ErrorKind::StreamError,
                    "bad, \"quoted\" text",
                )),
                ..Measurement::default()
            }),
        );
        sample.tags = Arc::from([Arc::from("a"), Arc::from("b")]);
        let mut out = Vec::new();
        write_header(&mut out).unwrap();
        write_line(
            &mut out,
            &sample,
            &Secrets::new(None, "http://x"),
            RawFormat::Csv,
        )
        .unwrap();
        let mut reader = csv::Reader::from_reader(out.as_slice());
        let header = reader.headers().unwrap().clone();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), 1);
        let at = |name: &str| {
            rows[0]
                .get(header.iter().position(|h| h == name).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(at("group"), "level 4");
        assert_eq!(at("tags"), "a;b");
        assert_eq!(at("error_kind"), "stream_error");
        assert_eq!(at("error"), "bad, \"quoted\" text");
        assert_eq!(header.len(), rows[0].len());
    }
}
