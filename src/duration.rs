//! Go/k6-style duration strings (`500ms`, `1.5s`, `2m`, `1m30s`) used everywhere in scenario files.
//!
//! k6 users already write durations this way, so the scenario grammar follows Go's
//! `time.ParseDuration` for the units that make sense for a benchmark: `us`, `ms`, `s`, `m`, `h`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The regular expression the JSON Schema uses; [`parse`] accepts exactly this language.
pub const PATTERN: &str = r"^([0-9]+(\.[0-9]+)?(us|ms|s|m|h))+$";

/// The longest duration accepted anywhere: a year of soak test. Bounding every duration keeps the
/// time arithmetic of plans and executors (start times plus stages) far from overflowing.
pub const MAX: Duration = Duration::from_secs(366 * 24 * 3600);

/// A parse failure, phrased for a scenario error message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason} (examples: 500ms, 30s, 2m, 1m30s)")]
pub struct DurationError {
    input: String,
    reason: &'static str,
}

/// Parses `1m30s`-style text into a [`Duration`].
pub fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        input: text.to_string(),
        reason,
    };
    if text.is_empty() {
        return Err(fail("empty"));
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| fail("missing unit"))?;
        if number_len == 0 {
            return Err(fail("expected a number"));
        }
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| fail("malformed number"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "us" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(fail("unknown unit, use us, ms, s, m or h")),
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    if total > MAX.as_secs_f64() {
        return Err(fail(
            "longer than the longest run this tool plans for, 8784h (366 days)",
        ));
    }
    Duration::try_from_secs_f64(total).map_err(|_| fail("out of range"))
}

/// Whole microseconds, saturating (HDR histograms record integers; truncation keeps µs-level
/// values exact).
pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A duration in milliseconds, with fractions (results, raw log and hooks show times in ms).
pub fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Formats a duration the way [`parse`] reads it back, choosing the largest exact unit.
pub fn format(d: Duration) -> String {
    let micros = d.as_micros();
    if micros == 0 {
        "0s".to_string()
    } else if micros % 1_000_000 == 0 {
        let secs = micros / 1_000_000;
        if secs % 60 == 0 {
            format!("{}m", secs / 60)
        } else {
            format!("{secs}s")
        }
    } else if micros % 1000 == 0 {
        format!("{}ms", micros / 1000)
    } else {
        format!("{micros}us")
    }
}

/// A duration field of a scenario file, written as text (`"120s"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// The wrapped [`Duration`].
    pub fn get(self) -> Duration {
        self.0
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(self.0))
    }
}

impl JsonSchema for HumanDuration {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "pattern": PATTERN,
            "description": "A duration as in k6 and Go: a number and a unit (us, ms, s, m, h), repeated: 500ms, 30s, 2m, 1m30s, 1.5s.",
            "examples": ["500ms", "30s", "2m", "1m30s"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_units() {
        assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse("120s"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse("250us"), Ok(Duration::from_micros(250)));
    }

    #[test]
    fn parses_compound_and_fractional() {
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_text_with_reason() {
        for bad in ["", "10", "ms", "10 s", "10sec", "-5s", "1..5s", "5d"] {
            let err = parse(bad).expect_err(bad);
            assert!(err.to_string().contains("invalid duration"), "{bad}: {err}");
        }
    }

    #[test]
    fn durations_past_a_year_are_refused() {
        assert_eq!(parse("8784h"), Ok(MAX));
        let err = parse("4000000000000000h").unwrap_err();
        assert!(err.to_string().contains("longer than"), "{err}");
        assert!(parse("8784h1s").is_err());
    }

    #[test]
    fn pattern_and_parser_agree() {
        let re = regex_lite_match;
        for text in ["500ms", "1m30s", "1.5s", "10", "10 s", "5d", "ms"] {
            assert_eq!(re(text), parse(text).is_ok(), "{text}");
        }
    }

    /// A tiny matcher for [`PATTERN`] so the test needs no regex crate: units after numbers.
    fn regex_lite_match(text: &str) -> bool {
        let schema = serde_json::json!({"type": "string", "pattern": PATTERN});
        jsonschema::is_valid(&schema, &serde_json::json!(text))
    }

    #[test]
    fn format_round_trips() {
        for d in [
            Duration::ZERO,
            Duration::from_micros(250),
            Duration::from_millis(1500),
            Duration::from_secs(45),
            Duration::from_secs(180),
        ] {
            assert_eq!(parse(&format(d)), Ok(d));
        }
    }

    proptest::proptest! {
        /// Any text is a duration within the bound or an error that quotes it; the parser never
        /// panics, whatever the digits.
        #[test]
        fn any_text_is_a_bounded_duration_or_an_error(text in "[0-9.a-z ]{0,24}") {
            match parse(&text) {
                Ok(d) => proptest::prop_assert!(d <= MAX),
                Err(e) => {
                    let quoted = format!("{:?}", text);
                    proptest::prop_assert!(e.to_string().contains(&quoted));
                }
            }
        }
    }
}
