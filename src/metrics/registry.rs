//! The metric registry: every per-request distribution (trend) is declared once, in [`REGISTRY`], with
//! its name (in thresholds), its unit (how it is recorded and how it is shown) and how one
//! request's values are read. The recorder, goodput limits, threshold names and scaling, and the
//! summaries all read this table, so a new metric is a [`Trend`] variant, one entry, and its
//! field in the result document.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::backend::Measurement;

/// Per-request distributions, each an HDR histogram. The order is the registry's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Trend {
    /// Time to first token.
    Ttft,
    /// Time to first answer token (not reasoning).
    Ttfa,
    /// Inter-token latency (every gap between content chunks).
    Itl,
    /// Time per output token after the first.
    Tpot,
    /// End-to-end latency.
    E2e,
    /// Output tokens of one request.
    OutputTokens,
    /// Prompt tokens of one request.
    PromptTokens,
    /// Output tokens / e2e of one request.
    RequestTokensPerSecond,
    /// Server queue wait (total − load − prefill − decode).
    QueueWait,
    /// Server `load_duration`.
    Load,
    /// Server `prompt_eval_duration`.
    Prefill,
    /// Actual send − intended start (open-model executors).
    ScheduleLag,
    /// First token measured from the intended start.
    TtftFromSchedule,
    /// End-to-end latency measured from the intended start.
    E2eFromSchedule,
    /// Waiting for a new TCP connection, by the requests that did (k6's `http_req_connecting`).
    Connect,
}

/// How a trend is recorded (HDR histograms hold integers) and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Recorded in µs, shown (and written in thresholds) in ms.
    Millis,
    /// A count, recorded and shown as is.
    Count,
    /// A value with fractions (a rate per second, a hook's custom metric), recorded in
    /// thousandths.
    Thousandths,
}

/// The unit of the custom trends a hook script records with `metric(name, value)`.
pub const CUSTOM_UNIT: Unit = Unit::Thousandths;

impl Unit {
    /// Recorded units per shown unit.
    pub fn scale(self) -> f64 {
        match self {
            Unit::Millis | Unit::Thousandths => 1000.0,
            Unit::Count => 1.0,
        }
    }

    /// A recorded value in shown units.
    pub fn shown(self, recorded: f64) -> f64 {
        recorded / self.scale()
    }

    /// A shown value (a hook's custom metric) as recorded: negative values count as 0.
    pub fn recorded(self, shown: f64) -> u64 {
        (shown.max(0.0) * self.scale()).round() as u64
    }
}

/// A successful request as the registry reads it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// What was measured.
    pub m: &'a Measurement,
    /// Actual send − intended start, for open-model arrivals.
    pub lag: Option<Duration>,
}

/// How a trend reads a request.
#[derive(Clone, Copy)]
enum Read {
    /// At most one value per request, which a threshold's bound also applies to request by
    /// request (goodput: `ttft p(95)<500ms` -> this request's TTFT < 500 ms).
    Limit(fn(&Request) -> Option<u64>),
    /// At most one value per request, but no per-request bound: the value is a ratio
    /// (tokens/s) or the server's account, not something a request is judged by.
    One(fn(&Request) -> Option<u64>),
    /// Any number of values per request (every inter-token gap).
    Each(fn(&Request, &mut dyn FnMut(u64))),
}

/// One registry entry.
#[derive(Clone, Copy)]
pub struct TrendDef {
    /// The trend.
    pub trend: Trend,
    /// Its name in thresholds.
    pub name: &'static str,
    /// How it is recorded and shown.
    pub unit: Unit,
    read: Read,
}

impl std::fmt::Debug for TrendDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrendDef")
            .field("trend", &self.trend)
            .field("name", &self.name)
            .field("unit", &self.unit)
            .finish_non_exhaustive()
    }
}

pub use crate::duration::micros;

/// Decode time per token after the first: (e2e − TTFT) / (tokens − 1), in µs.
fn tpot(r: &Request) -> Option<u64> {
    let ttft = r.m.ttft.filter(|_| r.m.output_tokens > 1)?;
    Some(micros(r.m.e2e.saturating_sub(ttft)) / (r.m.output_tokens - 1))
}

/// Every trend, in the order thresholds list them. `REGISTRY[t as usize].trend == t`.
pub const REGISTRY: [TrendDef; 15] = [
    TrendDef {
        trend: Trend::Ttft,
        name: "ttft",
        unit: Unit::Millis,
        read: Read::Limit(|r| r.m.ttft.map(micros)),
    },
    TrendDef {
        trend: Trend::Ttfa,
        name: "ttfa",
        unit: Unit::Millis,
        read: Read::Limit(|r| r.m.ttfa.map(micros)),
    },
    TrendDef {
        trend: Trend::Itl,
        name: "itl",
        unit: Unit::Millis,
        read: Read::Each(|r, put| r.m.itl.iter().for_each(|gap| put(micros(*gap)))),
    },
    TrendDef {
        trend: Trend::Tpot,
        name: "tpot",
        unit: Unit::Millis,
        read: Read::Limit(tpot),
    },
    TrendDef {
        trend: Trend::E2e,
        name: "e2e_latency",
        unit: Unit::Millis,
        read: Read::Limit(|r| Some(micros(r.m.e2e))),
    },
    TrendDef {
        trend: Trend::OutputTokens,
        name: "output_tokens",
        unit: Unit::Count,
        read: Read::Limit(|r| Some(r.m.output_tokens)),
    },
    TrendDef {
        trend: Trend::PromptTokens,
        name: "prompt_tokens",
        unit: Unit::Count,
        read: Read::Limit(|r| r.m.prompt_tokens),
    },
    TrendDef {
        trend: Trend::RequestTokensPerSecond,
        name: "request_tokens_per_second",
        unit: Unit::Thousandths,
        read: Read::One(|r| {
            (!r.m.e2e.is_zero() && r.m.output_tokens > 0).then(|| {
                Unit::Thousandths.recorded(r.m.output_tokens as f64 / r.m.e2e.as_secs_f64())
            })
        }),
    },
    TrendDef {
        trend: Trend::QueueWait,
        name: "queue_wait",
        unit: Unit::Millis,
        read: Read::One(|r| r.m.server.queue_wait().map(micros)),
    },
    TrendDef {
        trend: Trend::Load,
        name: "load",
        unit: Unit::Millis,
        read: Read::One(|r| r.m.server.load.map(micros)),
    },
    TrendDef {
        trend: Trend::Prefill,
        name: "prefill",
        unit: Unit::Millis,
        read: Read::One(|r| r.m.server.prompt_eval.map(micros)),
    },
    TrendDef {
        trend: Trend::ScheduleLag,
        name: "schedule_lag",
        unit: Unit::Millis,
        read: Read::Limit(|r| r.lag.map(micros)),
    },
    TrendDef {
        trend: Trend::TtftFromSchedule,
        name: "ttft_from_schedule",
        unit: Unit::Millis,
        read: Read::Limit(|r| r.lag.zip(r.m.ttft).map(|(l, t)| micros(l + t))),
    },
    TrendDef {
        trend: Trend::E2eFromSchedule,
        name: "e2e_from_schedule",
        unit: Unit::Millis,
        read: Read::Limit(|r| r.lag.map(|l| micros(l + r.m.e2e))),
    },
    TrendDef {
        trend: Trend::Connect,
        name: "connect",
        unit: Unit::Millis,
        read: Read::One(|r| r.m.connect.map(micros)),
    },
];

impl Trend {
    /// Every trend, in registry order.
    pub fn all() -> impl Iterator<Item = Trend> {
        REGISTRY.iter().map(|d| d.trend)
    }

    /// Its registry entry.
    pub fn def(self) -> &'static TrendDef {
        &REGISTRY[self as usize]
    }

    /// Its name in thresholds.
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// How it is recorded and shown.
    pub fn unit(self) -> Unit {
        self.def().unit
    }

    /// Looks a threshold name up.
    pub fn by_name(name: &str) -> Option<Trend> {
        REGISTRY.iter().find(|d| d.name == name).map(|d| d.trend)
    }
}

impl TrendDef {
    /// Every value `request` adds to this trend, in recorded units.
    pub fn record(&self, request: &Request, put: &mut dyn FnMut(u64)) {
        match self.read {
            Read::Limit(one) | Read::One(one) => {
                if let Some(v) = one(request) {
                    put(v);
                }
            }
            Read::Each(each) => each(request, put),
        }
    }

    /// This request's value in shown units (ms, tokens), when a threshold on this trend also
    /// bounds each request; `None` when it does not, or when the request has no such value.
    pub fn limit_value(&self, request: &Request) -> Option<f64> {
        match self.read {
            Read::Limit(one) => one(request).map(|v| self.unit.shown(v as f64)),
            Read::One(_) | Read::Each(_) => None,
        }
    }
}

/// The value at quantile `q` (0 to 1), read as the middle of its HDR bucket. HDR's
/// `value_at_quantile` answers the top of the bucket, which reads up to one bucket width high
/// (0.1 % at 3 significant digits: 1 ms near 1 s, 8 ms near 10 s); the middle halves that bound
/// and centres it on the recorded values.
pub fn quantile(h: &Histogram<u64>, q: f64) -> u64 {
    h.median_equivalent(h.value_at_quantile(q))
}

/// For `skip_serializing_if`: counts that are zero are left out of result files.
pub(crate) fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_is_indexed_by_the_enum_and_names_are_unique() {
        for (i, def) in REGISTRY.iter().enumerate() {
            assert_eq!(def.trend as usize, i, "{def:?}");
            assert_eq!(Trend::by_name(def.name), Some(def.trend));
        }
    }

    #[test]
    fn one_reading_serves_recording_and_limits() {
        let m = Measurement {
            ttft: Some(Duration::from_micros(20_500)),
            e2e: Duration::from_micros(50_500),
            output_tokens: 4,
            itl: vec![Duration::from_millis(10); 3],
            ..Measurement::default()
        };
        let r = Request {
            m: &m,
            lag: Some(Duration::from_millis(2)),
        };
        let recorded = |t: Trend| {
            let mut out = Vec::new();
            t.def().record(&r, &mut |v| out.push(v));
            out
        };
        assert_eq!(recorded(Trend::Tpot), [10_000]);
        assert_eq!(Trend::Tpot.def().limit_value(&r), Some(10.0));
        assert_eq!(recorded(Trend::Itl), [10_000; 3]);
        assert_eq!(
            Trend::Itl.def().limit_value(&r),
            None,
            "pooled: no per-request bound"
        );
        assert_eq!(recorded(Trend::TtftFromSchedule), [22_500]);
        assert_eq!(Trend::E2eFromSchedule.def().limit_value(&r), Some(52.5));
        assert_eq!(recorded(Trend::RequestTokensPerSecond), [79_208]);
        assert_eq!(Trend::OutputTokens.def().limit_value(&r), Some(4.0));
        let closed = Request { m: &m, lag: None };
        assert_eq!(Trend::ScheduleLag.def().limit_value(&closed), None);
    }
}
