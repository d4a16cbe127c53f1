//! What the independent timing servers of `scripts/bench_overhead.sh` share: their send-time
//! records and the `GET /truth` answer. No code of the client (or of its simulator) is used, so
//! a client error that happens to match a server built from the same code cannot hide.
//!
//! Each answer records, from the instant its request was read: TTFT to the first event handed
//! to the connection, the gaps between events, e2e to the protocol's end (`[DONE]`, or Ollama's
//! `"done": true` line). Microseconds, HDR histograms (3 significant digits).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

/// The schedule every server follows: the first event `first` after the request, then one
/// every `gap`, `events` in all.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub first: Duration,
    pub gap: Duration,
    pub events: u32,
}

impl Schedule {
    /// `--first-ms 50 --gap-ms 10 --events 64` from the command line (these are the defaults).
    pub fn from_args(args: &[String]) -> Schedule {
        let get = |name: &str, default: u64| {
            args.windows(2)
                .find(|w| w[0] == name)
                .map_or(default, |w| w[1].parse().expect("a number"))
        };
        Schedule {
            first: Duration::from_millis(get("--first-ms", 50)),
            gap: Duration::from_millis(get("--gap-ms", 10)),
            events: get("--events", 64) as u32,
        }
    }
}

/// `--listen ADDR` (default 127.0.0.1:0; the address taken is printed on stdout).
pub fn listen_arg(args: &[String]) -> String {
    args.windows(2)
        .find(|w| w[0] == "--listen")
        .map_or("127.0.0.1:0".into(), |w| w[1].clone())
}

/// The server's own record of every completed answer.
pub struct Truth {
    times: Mutex<[Histogram<u64>; 3]>,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
}

impl Default for Truth {
    fn default() -> Self {
        Truth {
            times: Mutex::new(std::array::from_fn(|_| histogram())),
            in_flight: AtomicU64::new(0),
            max_in_flight: AtomicU64::new(0),
        }
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

impl Truth {
    /// An answer starts streaming.
    pub fn begin(&self) {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
    }

    /// An answer ended (completed or not).
    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }

    /// One completed answer: TTFT, the gaps, e2e.
    pub fn record(&self, ttft: Duration, gaps: &[Duration], e2e: Duration) {
        let us = |d: &Duration| d.as_micros() as u64;
        let mut h = self.times.lock().unwrap_or_else(|e| e.into_inner());
        h[0].saturating_record(us(&ttft));
        for g in gaps {
            h[1].saturating_record(us(g));
        }
        h[2].saturating_record(us(&e2e));
    }

    /// Forgets everything recorded (`POST /reset`).
    pub fn reset(&self) {
        *self.times.lock().unwrap_or_else(|e| e.into_inner()) =
            std::array::from_fn(|_| histogram());
        self.max_in_flight
            .store(self.in_flight.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// `{"requests", "max_in_flight", "ttft_ms", "itl_ms", "e2e_ms"}`, as `GET /sim/stats`.
    pub fn json(&self) -> String {
        let h = self.times.lock().unwrap_or_else(|e| e.into_inner());
        let stats = |h: &Histogram<u64>| {
            if h.is_empty() {
                return "null".to_string();
            }
            let q = |q: f64| h.median_equivalent(h.value_at_quantile(q)) as f64 / 1000.0;
            format!(
                r#"{{"count":{},"p50":{},"p90":{},"p99":{},"mean":{}}}"#,
                h.len(),
                q(0.5),
                q(0.9),
                q(0.99),
                h.mean() / 1000.0
            )
        };
        format!(
            r#"{{"requests":{},"max_in_flight":{},"ttft_ms":{},"itl_ms":{},"e2e_ms":{}}}"#,
            h[2].len(),
            self.max_in_flight.load(Ordering::SeqCst),
            stats(&h[0]),
            stats(&h[1]),
            stats(&h[2])
        )
    }
}

/// The `i`-th OpenAI chat chunk as one SSE event (`data: {...}\n\n`).
pub fn sse_event(i: u32) -> String {
    format!(
        "data: {{\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"t{i} \"}},\"finish_reason\":null}}]}}\n\n"
    )
}

/// The end of an OpenAI stream: the finish chunk and `[DONE]`.
pub fn sse_end() -> String {
    "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n".to_string()
}

/// The `i`-th Ollama `/api/chat` line.
pub fn ndjson_line(i: u32) -> String {
    format!(
        "{{\"model\":\"m\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{{\"role\":\"assistant\",\"content\":\"t{i} \"}},\"response\":\"t{i} \",\"done\":false}}\n"
    )
}

/// Ollama's final line, with its counts.
pub fn ndjson_end(events: u32) -> String {
    format!(
        "{{\"model\":\"m\",\"created_at\":\"2024-01-01T00:00:00Z\",\"message\":{{\"role\":\"assistant\",\"content\":\"\"}},\"response\":\"\",\"done\":true,\"done_reason\":\"stop\",\"total_duration\":1,\"load_duration\":0,\"prompt_eval_count\":1,\"prompt_eval_duration\":1,\"eval_count\":{events},\"eval_duration\":1}}\n"
    )
}
