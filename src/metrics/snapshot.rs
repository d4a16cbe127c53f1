//! Aggregates as they travel in a result file: each HDR histogram in the standard compressed V2
//! encoding (what HdrHistogram's Java, C, Go and Python libraries read), base64, with the
//! counters of its group. `compare`, `merge` and `check` work from these alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::recorder::{new_histogram, GroupStats, Split};
use super::registry::Trend;
use super::sample::{Group, GroupKey};
use crate::backend::ErrorKind;

/// One group's aggregates (a level, stage, phase or step; or its share from one prompt set or
/// entry tag).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct GroupSnapshot {
    /// The scenario (phase) name.
    pub scenario: String,
    /// The group: `{"level": 8}`, `{"stage": 0}` (0-based), `"all"`, `{"step": 0}`.
    pub group: GroupRef,
    /// Set when these are the requests of one prompt set only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_set: Option<String>,
    /// Set when these are the requests whose prompt entry carries this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_tag: Option<String>,
    /// Requests that completed without error.
    pub ok: u64,
    /// Failed requests by category.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Requests cut off by the end of the run.
    #[serde(default)]
    pub interrupted: u64,
    /// Arrivals skipped because every VU was busy.
    #[serde(default)]
    pub dropped: u64,
    /// Successful requests that met every per-request limit.
    #[serde(default)]
    pub good: u64,
    /// Hook checks by name: [passed, evaluated].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub checks: BTreeMap<String, [u64; 2]>,
    /// Output tokens of successful requests.
    #[serde(default)]
    pub output_tokens: u64,
    /// Embeddings returned by successful requests.
    #[serde(default, skip_serializing_if = "super::registry::is_zero")]
    pub embeddings: u64,
    /// Prompt tokens of successful requests.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Successful requests whose token count is a chunk count.
    #[serde(default)]
    pub tokens_estimated: u64,
    /// Requests sent again after a kept-alive connection closed under them.
    #[serde(default)]
    pub reconnected: u64,
    /// Requests that waited for a new TCP connection.
    #[serde(default, skip_serializing_if = "super::registry::is_zero")]
    pub connections_opened: u64,
    /// Earliest request start, µs from the start of the run that recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_start_us: Option<u64>,
    /// Latest request end, µs from the start of the run that recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_end_us: Option<u64>,
    /// Each trend with samples: base64 of its compressed V2 histogram (µs for times, tokens,
    /// thousandths of a token/s for rates: the units of the trend registry).
    pub trends: BTreeMap<String, String>,
    /// Custom metrics from hooks, in thousandths, encoded the same way.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub custom: BTreeMap<String, String>,
}

/// A group named in a result file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupRef {
    /// A concurrency level.
    Level(u32),
    /// A stage, 0-based.
    Stage(usize),
    /// A whole phase.
    All,
    /// A capacity-search step, 0-based.
    Step(usize),
}

impl GroupRef {
    fn of(group: Group) -> Option<GroupRef> {
        Some(match group {
            Group::Level(n) => GroupRef::Level(n),
            Group::Stage(i) => GroupRef::Stage(i),
            Group::All => GroupRef::All,
            Group::Step(i) => GroupRef::Step(i),
            Group::Discarded(_) => return None,
        })
    }

    /// The recorder's group.
    pub fn group(self) -> Group {
        match self {
            GroupRef::Level(n) => Group::Level(n),
            GroupRef::Stage(i) => Group::Stage(i),
            GroupRef::All => Group::All,
            GroupRef::Step(i) => Group::Step(i),
        }
    }
}

/// Base64 of the compressed V2 encoding of `h`.
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("serialising into memory cannot fail");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A histogram from [`encode_histogram`]'s text (or any HdrHistogram V2 encoding, compressed or
/// not), on the recorder's bounds so it adds to the recorder's own.
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, DecodeError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(DecodeError::Base64)?;
    let read: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| DecodeError::NotV2(format!("{e:?}")))?;
    let mut h = new_histogram();
    h.add(&read)
        .map_err(|e| DecodeError::OutOfRange(format!("{e:?}")))?;
    Ok(h)
}

/// Why a stored histogram does not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The text is not base64.
    #[error("not base64: {0}")]
    Base64(#[from] base64::DecodeError),
    /// The bytes are not the V2 encoding (hdrhistogram's error has only a Debug form).
    #[error("not an HdrHistogram V2 encoding: {0}")]
    NotV2(String),
    /// The values do not fit the recorder's range.
    #[error("values outside the recorder's range: {0}")]
    OutOfRange(String),
}

/// Why an aggregate read back from a result file cannot be used: the file is damaged or edited.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A count beyond [`MAX_COUNT`].
    #[error(
        "{what} = {n} is beyond the {MAX_COUNT} a run can record: the file is damaged or edited"
    )]
    TooLarge {
        /// Which count.
        what: String,
        /// Its value.
        n: u64,
    },
    /// A trend name this version does not know.
    #[error("unknown trend `{0}`")]
    UnknownTrend(String),
    /// A histogram that does not decode.
    #[error("{name}: {source}")]
    Histogram {
        /// The trend or custom metric.
        name: String,
        /// Why.
        source: DecodeError,
    },
}

/// One aggregate for a result file; `None` for what no metric includes.
pub fn snapshot(split: &Split, key: &GroupKey, stats: &GroupStats) -> Option<GroupSnapshot> {
    let (prompt_set, entry_tag) = match split {
        Split::Group => (None, None),
        Split::PromptSet(name) => (Some(name.to_string()), None),
        Split::EntryTag(name) => (None, Some(name.to_string())),
    };
    let micros = |d: Option<Duration>| d.map(|d| d.as_micros() as u64);
    Some(GroupSnapshot {
        scenario: key.scenario.to_string(),
        group: GroupRef::of(key.group)?,
        prompt_set,
        entry_tag,
        ok: stats.ok,
        errors: stats.errors.clone(),
        interrupted: stats.interrupted,
        dropped: stats.dropped,
        good: stats.good,
        checks: stats
            .checks
            .iter()
            .map(|(name, &(pass, total))| (name.clone(), [pass, total]))
            .collect(),
        output_tokens: stats.output_tokens,
        embeddings: stats.embeddings,
        prompt_tokens: stats.prompt_tokens,
        tokens_estimated: stats.tokens_estimated,
        reconnected: stats.reconnected,
        connections_opened: stats.connections_opened,
        first_start_us: micros(stats.first_start),
        last_end_us: micros(stats.last_end),
        trends: Trend::all()
            .filter(|t| !stats.trend(*t).is_empty())
            .map(|t| (t.name().to_string(), encode_histogram(stats.trend(t))))
            .collect(),
        custom: stats
            .custom
            .iter()
            .map(|(name, h)| (name.clone(), encode_histogram(h)))
            .collect(),
    })
}

/// Largest count a result file may hold in one counter or histogram of one group: 2^40, a
/// trillion requests or samples, far beyond any run. Counts from a file are checked against it
/// so that adding groups and shards cannot overflow (2^40 times the groups a file can hold is
/// still below 2^63, the most the V2 encoding stores).
pub const MAX_COUNT: u64 = 1 << 40;

/// `Err` naming `what` when `n` is beyond [`MAX_COUNT`].
pub fn bounded(what: &str, n: u64) -> Result<u64, SnapshotError> {
    if n > MAX_COUNT {
        Err(SnapshotError::TooLarge {
            what: what.to_string(),
            n,
        })
    } else {
        Ok(n)
    }
}

/// `Err` naming the first count of `stats` beyond [`MAX_COUNT`].
pub fn within_bounds(stats: &GroupStats) -> Result<(), SnapshotError> {
    for t in Trend::all() {
        bounded(&format!("the count of {}", t.name()), stats.trend(t).len())?;
    }
    for (name, h) in &stats.custom {
        bounded(&format!("the count of {name}"), h.len())?;
    }
    for (what, n) in [
        ("ok", stats.ok),
        ("interrupted", stats.interrupted),
        ("dropped", stats.dropped),
        ("good", stats.good),
        ("output_tokens", stats.output_tokens),
        ("embeddings", stats.embeddings),
        ("prompt_tokens", stats.prompt_tokens),
        ("tokens_estimated", stats.tokens_estimated),
        ("reconnected", stats.reconnected),
        ("connections_opened", stats.connections_opened),
        ("errors", stats.error_count()),
    ] {
        bounded(what, n)?;
    }
    for (name, (pass, total)) in &stats.checks {
        bounded(&format!("checks.{name}"), (*pass).max(*total))?;
    }
    Ok(())
}

/// An aggregate read back from a result file.
pub fn restore(s: &GroupSnapshot) -> Result<(Split, GroupKey, GroupStats), SnapshotError> {
    let mut stats = GroupStats::default();
    let decode = |name: &str, text: &str| {
        decode_histogram(text).map_err(|source| SnapshotError::Histogram {
            name: name.to_string(),
            source,
        })
    };
    for (name, text) in &s.trends {
        let trend =
            Trend::by_name(name).ok_or_else(|| SnapshotError::UnknownTrend(name.clone()))?;
        stats.trends[trend as usize] = decode(name, text)?;
    }
    for (name, text) in &s.custom {
        let h = decode(name, text)?;
        stats.custom.insert(name.clone(), h);
    }
    stats.ok = s.ok;
    stats.errors = s.errors.clone();
    stats.interrupted = s.interrupted;
    stats.dropped = s.dropped;
    stats.good = s.good;
    stats.checks = s
        .checks
        .iter()
        .map(|(name, [pass, total])| (name.clone(), (*pass, *total)))
        .collect();
    stats.output_tokens = s.output_tokens;
    stats.embeddings = s.embeddings;
    stats.prompt_tokens = s.prompt_tokens;
    stats.tokens_estimated = s.tokens_estimated;
    stats.reconnected = s.reconnected;
    stats.connections_opened = s.connections_opened;
    stats.first_start = s.first_start_us.map(Duration::from_micros);
    stats.last_end = s.last_end_us.map(Duration::from_micros);
    within_bounds(&stats)?;
    let split = match (&s.prompt_set, &s.entry_tag) {
        (Some(set), _) => Split::PromptSet(Arc::from(set.as_str())),
        (None, Some(tag)) => Split::EntryTag(Arc::from(tag.as_str())),
        (None, None) => Split::Group,
    };
    let key = GroupKey {
        scenario: Arc::from(s.scenario.as_str()),
        group: s.group.group(),
    };
    Ok((split, key, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_survives_the_v2_encoding_exactly() {
        let mut h = new_histogram();
        for v in [1u64, 7, 7, 1_000, 52_345, 3_000_000] {
            h.record(v).unwrap();
        }
        let text = encode_histogram(&h);
        let back = decode_histogram(&text).unwrap();
        assert_eq!(back, h);
        assert!(decode_histogram("not base64!").is_err());
        assert!(decode_histogram("AAAA").is_err());
    }

    /// The bytes start with the V2 compressed cookie (0x1c849314), which other HdrHistogram
    /// libraries look for.
    #[test]
    fn the_encoding_is_the_standard_compressed_v2_one() {
        let mut h = new_histogram();
        h.record(42).unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encode_histogram(&h))
            .unwrap();
        assert_eq!(&bytes[..4], &[0x1c, 0x84, 0x93, 0x14]);
    }

    #[test]
    fn a_group_round_trips_with_its_counters() {
        let mut stats = GroupStats::default();
        stats.trends[Trend::Ttft as usize].record(12_000).unwrap();
        stats.ok = 3;
        stats.errors.insert(ErrorKind::Timeout, 2);
        stats.checks.insert("json".into(), (1, 3));
        stats.output_tokens = 99;
        stats.first_start = Some(Duration::from_millis(5));
        stats.last_end = Some(Duration::from_secs(2));
        let key = GroupKey {
            scenario: "sweep".into(),
            group: Group::Level(4),
        };
        let split = Split::PromptSet("code".into());
        let snap = snapshot(&split, &key, &stats).unwrap();
        let json = serde_json::to_value(&snap).unwrap();
        assert_eq!(json["group"], serde_json::json!({"level": 4}));
        let (split2, key2, back) = restore(&serde_json::from_value(json).unwrap()).unwrap();
        assert_eq!((split2, key2), (split, key));
        assert_eq!(back.trend(Trend::Ttft), stats.trend(Trend::Ttft));
        assert_eq!(
            (back.ok, back.output_tokens, back.error_count()),
            (3, 99, 2)
        );
        assert_eq!(back.checks["json"], (1, 3));
        assert_eq!(back.wall_time(), stats.wall_time());
        let discarded = GroupKey {
            scenario: "s".into(),
            group: Group::Discarded(0),
        };
        assert!(snapshot(&Split::Group, &discarded, &stats).is_none());
    }
}
