//! Pure parsing of threshold expressions and metric keys, k6's grammar plus duration units.
//!
//! ```text
//! threshold   = ws aggregation ws operator ws value ws
//! aggregation = "count" | "rate" | "value" | "avg" | "min" | "max" | "med"
//!             | "p(" number ")"                       ; 0 <= number <= 100
//! operator    = "<" | "<=" | ">" | ">=" | "==" | "===" | "!="
//! value       = number [ "ms" | "s" ]                 ; a bare number on a time metric is ms
//! number      = ["-"] digits ["." digits]
//!
//! metric_key  = name [ "{" tag ":" text { "," tag ":" text } "}" ]
//! tag         = "level" | "stage" | "scenario" | "prompt_set" | "check"
//! ```
//!
//! As in k6, `==` and `===` mean the same. Units are only allowed on time metrics.

use std::fmt;

/// How a metric's samples are reduced to one number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    /// Number of samples (trends), total (counters) or failures (rates).
    Count,
    /// Per second (counters) or fraction true (rates).
    Rate,
    /// The single value of a value metric.
    Value,
    /// Mean.
    Avg,
    /// Smallest.
    Min,
    /// Largest.
    Max,
    /// Median.
    Med,
    /// Percentile, 0 to 100.
    Percentile(f64),
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregation::Count => f.write_str("count"),
            Aggregation::Rate => f.write_str("rate"),
            Aggregation::Value => f.write_str("value"),
            Aggregation::Avg => f.write_str("avg"),
            Aggregation::Min => f.write_str("min"),
            Aggregation::Max => f.write_str("max"),
            Aggregation::Med => f.write_str("med"),
            Aggregation::Percentile(p) => write!(f, "p({p})"),
        }
    }
}

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==` or `===`
    Eq,
    /// `!=`
    Ne,
}

impl Operator {
    /// Whether `observed <op> limit` holds.
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Operator::Lt => observed < limit,
            Operator::Le => observed <= limit,
            Operator::Gt => observed > limit,
            Operator::Ge => observed >= limit,
            Operator::Eq => observed == limit,
            Operator::Ne => observed != limit,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operator::Lt => "<",
            Operator::Le => "<=",
            Operator::Gt => ">",
            Operator::Ge => ">=",
            Operator::Eq => "==",
            Operator::Ne => "!=",
        })
    }
}

/// A unit written after the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Seconds.
    S,
}

/// A parsed `aggregation operator value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    /// The reduction.
    pub aggregation: Aggregation,
    /// The comparison.
    pub operator: Operator,
    /// The limit as written, before unit conversion.
    pub number: f64,
    /// The unit written, if any.
    pub unit: Option<Unit>,
}

impl Expression {
    /// The limit in the metric's base unit: milliseconds for time metrics.
    pub fn limit(&self) -> f64 {
        match self.unit {
            Some(Unit::S) => self.number * 1000.0,
            Some(Unit::Ms) | None => self.number,
        }
    }
}

/// Why an expression or key does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} in {input:?}")]
pub struct ParseError {
    input: String,
    message: String,
}

fn fail(input: &str, message: impl Into<String>) -> ParseError {
    ParseError {
        input: input.to_string(),
        message: message.into(),
    }
}

/// Parses `p(95) < 500ms`.
pub fn parse_expression(input: &str) -> Result<Expression, ParseError> {
    let text = input.trim();
    let op_at = text
        .find(['<', '>', '=', '!'])
        .ok_or_else(|| fail(input, "missing operator (<, <=, >, >=, ==, !=)"))?;
    let aggregation = parse_aggregation(text[..op_at].trim()).map_err(|m| fail(input, m))?;
    let rest = &text[op_at..];
    let (operator, len) = [
        ("===", Operator::Eq),
        ("<=", Operator::Le),
        (">=", Operator::Ge),
        ("==", Operator::Eq),
        ("!=", Operator::Ne),
        ("<", Operator::Lt),
        (">", Operator::Gt),
    ]
    .into_iter()
    .find(|(token, _)| rest.starts_with(token))
    .map(|(token, op)| (op, token.len()))
    .ok_or_else(|| fail(input, "unknown operator; use <, <=, >, >=, ==, !="))?;
    let value = rest[len..].trim();
    if value.starts_with(['<', '>', '=', '!']) {
        return Err(fail(input, "unknown operator; use <, <=, >, >=, ==, !="));
    }
    if value.is_empty() {
        return Err(fail(input, "missing value after the operator"));
    }
    let (number_text, unit) = if let Some(n) = value.strip_suffix("ms") {
        (n, Some(Unit::Ms))
    } else if let Some(n) = value.strip_suffix('s') {
        (n, Some(Unit::S))
    } else {
        (value, None)
    };
    let number = parse_number(number_text.trim())
        .ok_or_else(|| fail(input, format!("{value:?} is not a number (units: ms, s)")))?;
    Ok(Expression {
        aggregation,
        operator,
        number,
        unit,
    })
}

fn parse_number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let valid = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || c == '.')
        && digits.matches('.').count() <= 1
        && !digits.starts_with('.')
        && !digits.ends_with('.');
    valid.then(|| text.parse().ok()).flatten()
}

fn parse_aggregation(text: &str) -> Result<Aggregation, String> {
    Ok(match text {
        "count" => Aggregation::Count,
        "rate" => Aggregation::Rate,
        "value" => Aggregation::Value,
        "avg" => Aggregation::Avg,
        "min" => Aggregation::Min,
        "max" => Aggregation::Max,
        "med" => Aggregation::Med,
        "" => {
            return Err("missing aggregation (count, rate, value, avg, min, max, med, p(N))".into())
        }
        other => {
            let inner = other
                .strip_prefix("p(")
                .and_then(|s| s.strip_suffix(')'))
                .ok_or_else(|| format!("unknown aggregation {other:?}; use count, rate, value, avg, min, max, med or p(N)"))?;
            let p = parse_number(inner.trim())
                .ok_or_else(|| format!("{inner:?} in p(N) is not a number"))?;
            if !(0.0..=100.0).contains(&p) {
                return Err(format!("percentile {p} is outside 0 to 100"));
            }
            Aggregation::Percentile(p)
        }
    })
}

/// A tag key of a sub-metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TagKey {
    /// A concurrency level.
    Level,
    /// A ramping stage, 1-based.
    Stage,
    /// A scenario (phase) name.
    Scenario,
    /// A prompt set (prompt libraries, not built yet: no data).
    PromptSet,
    /// A check name (hooks, not built yet: no data).
    Check,
}

/// Every tag key, as written.
pub const TAG_KEYS: [(&str, TagKey); 5] = [
    ("level", TagKey::Level),
    ("stage", TagKey::Stage),
    ("scenario", TagKey::Scenario),
    ("prompt_set", TagKey::PromptSet),
    ("check", TagKey::Check),
];

/// `ttft{level:10}` split into the metric name and its tag filters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricKey {
    /// The metric name.
    pub name: String,
    /// Tag filters, all of which must match.
    pub tags: Vec<(TagKey, String)>,
}

impl MetricKey {
    /// The value of tag `which`, when the key has it.
    pub fn tag(&self, which: TagKey) -> Option<&str> {
        self.tags
            .iter()
            .find(|(tag, _)| *tag == which)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a metric key; the name itself is checked by the caller against the metric table.
pub fn parse_metric_key(input: &str) -> Result<MetricKey, ParseError> {
    let text = input.trim();
    let Some(open) = text.find('{') else {
        return Ok(MetricKey {
            name: text.to_string(),
            tags: Vec::new(),
        });
    };
    let inner = text[open + 1..]
        .strip_suffix('}')
        .ok_or_else(|| fail(input, "missing closing }"))?;
    let mut tags = Vec::new();
    for pair in inner.split(',') {
        let (key, value) = pair
            .split_once(':')
            .ok_or_else(|| fail(input, format!("tag {pair:?} is not key:value")))?;
        let (key, value) = (key.trim(), value.trim());
        let tag = TAG_KEYS
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, tag)| *tag)
            .ok_or_else(|| {
                fail(
                    input,
                    format!(
                        "unknown tag {key:?}; valid tags: {}",
                        TAG_KEYS.map(|(n, _)| n).join(", ")
                    ),
                )
            })?;
        if value.is_empty() {
            return Err(fail(input, format!("tag {key:?} has no value")));
        }
        tags.push((tag, value.to_string()));
    }
    Ok(MetricKey {
        name: text[..open].trim().to_string(),
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Expression {
        parse_expression(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn every_aggregation_parses() {
        for (text, agg) in [
            ("count>0", Aggregation::Count),
            ("rate<0.01", Aggregation::Rate),
            ("value>=2", Aggregation::Value),
            ("avg<2", Aggregation::Avg),
            ("min>1", Aggregation::Min),
            ("max<9", Aggregation::Max),
            ("med<200", Aggregation::Med),
            ("p(95)<500", Aggregation::Percentile(95.0)),
            ("p(99.9)<1", Aggregation::Percentile(99.9)),
            ("p(0)>0", Aggregation::Percentile(0.0)),
            ("p(100)<5", Aggregation::Percentile(100.0)),
        ] {
            assert_eq!(parse(text).aggregation, agg, "{text}");
        }
    }

    #[test]
    fn every_operator_parses_and_holds_as_written() {
        for (text, op, holds_at_1) in [
            ("avg<2", Operator::Lt, true),
            ("avg<=1", Operator::Le, true),
            ("avg>1", Operator::Gt, false),
            ("avg>=1", Operator::Ge, true),
            ("avg==1", Operator::Eq, true),
            ("avg===1", Operator::Eq, true),
            ("avg!=1", Operator::Ne, false),
        ] {
            let e = parse(text);
            assert_eq!(e.operator, op, "{text}");
            assert_eq!(e.operator.holds(1.0, e.limit()), holds_at_1, "{text}");
        }
    }

    #[test]
    fn units_convert_to_milliseconds_and_bare_numbers_are_milliseconds() {
        assert_eq!(parse("p(95)<500ms").limit(), 500.0);
        assert_eq!(parse("p(95) < 1.5s").limit(), 1500.0);
        assert_eq!(parse("p(95)<250").limit(), 250.0);
        assert_eq!(parse("p(95)<250").unit, None);
        assert_eq!(parse("  med  <  30s ").limit(), 30000.0);
    }

    #[test]
    fn bad_expressions_say_what_is_wrong() {
        for (text, needle) in [
            ("p(95)", "missing operator"),
            ("<500", "missing aggregation"),
            ("p95<500", "unknown aggregation"),
            ("mean<5", "unknown aggregation"),
            ("p(101)<5", "outside 0 to 100"),
            ("p(x)<5", "is not a number"),
            ("avg=<5", "unknown operator"),
            ("p(95)<<1", "unknown operator"),
            ("avg<", "missing value"),
            ("avg<5 sec", "is not a number"),
            ("avg<5m", "is not a number"),
            ("avg<1.2.3", "is not a number"),
        ] {
            let err = parse_expression(text).expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(
                err.contains(text),
                "{text}: the message quotes the input: {err}"
            );
        }
    }

    #[test]
    fn metric_keys_split_name_and_tags() {
        assert_eq!(
            parse_metric_key("ttft").unwrap(),
            MetricKey {
                name: "ttft".into(),
                tags: vec![]
            }
        );
        assert_eq!(
            parse_metric_key("ttft{scenario:sweep, level:10}").unwrap(),
            MetricKey {
                name: "ttft".into(),
                tags: vec![
                    (TagKey::Scenario, "sweep".into()),
                    (TagKey::Level, "10".into())
                ]
            }
        );
        assert_eq!(
            parse_metric_key("checks{check:valid json}").unwrap().tags,
            vec![(TagKey::Check, "valid json".into())]
        );
        assert!(parse_metric_key("ttft{lvl:10}")
            .unwrap_err()
            .to_string()
            .contains("valid tags: level, stage"));
        assert!(parse_metric_key("ttft{level:10")
            .unwrap_err()
            .to_string()
            .contains("missing closing"));
        assert!(parse_metric_key("ttft{level}").is_err());
    }

    proptest::proptest! {
        /// Threshold expressions and metric keys from any text: a value or an error, never a
        /// panic.
        #[test]
        fn any_text_parses_or_fails_cleanly(text in "[ a-z0-9(){}:,.<>=!_%-]{0,40}") {
            let _ = parse_expression(&text);
            let _ = parse_metric_key(&text);
        }
    }
}
