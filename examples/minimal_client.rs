//! The yardstick of `scripts/bench_overhead.sh`: the least a streaming client can do. Each of
//! `c` connections (opened before the clock starts) sends one OpenAI chat request after another
//! for `secs` and timestamps the reads as they come off the socket: TTFT at the first read with a
//! non-empty `content`, a gap per later one, e2e at `[DONE]` (with `ndjson`: Ollama `/api/chat`,
//! e2e at `"done":true`). No HTTP library, no JSON parsing, same tokio runtime as llm-bench:
//! what llm-bench adds beyond this is its own overhead.
//!
//!   cargo run --release --example minimal_client -- 127.0.0.1:8080 100 15 [ndjson]
//!
//! Prints `{"requests", "requests_per_second", "output_tokens_total", "ttft_ms", "itl_ms",
//! "e2e_ms"}` with p50/p99 as the simulator's `GET /sim/stats` reports them.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BODY: &str = r#"{"model":"llm-bench-sim:latest","messages":[{"role":"user","content":"hello"}],"stream":true}"#;

/// What marks the end of an answer, and where the request goes.
#[derive(Clone, Copy)]
struct Protocol {
    path: &'static str,
    done: &'static [u8],
}

const OPENAI: Protocol = Protocol {
    path: "/v1/chat/completions",
    done: b"data: [DONE]",
};
const OLLAMA: Protocol = Protocol {
    path: "/api/chat",
    done: b"\"done\":true",
};

#[derive(Default)]
struct Times {
    ttft: Vec<u64>,
    itl: Vec<u64>,
    e2e: Vec<u64>,
    tokens: u64,
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// How many tokens a read carries: each `"content":"` followed by anything but the closing
/// quote (a server may put several events in one write).
fn tokens_in(read: &[u8]) -> usize {
    const KEY: &[u8] = b"\"content\":\"";
    read.windows(KEY.len() + 1)
        .filter(|w| &w[..KEY.len()] == KEY && w[KEY.len()] != b'"')
        .count()
}

async fn vu(addr: String, until: Instant, protocol: Protocol) -> std::io::Result<Times> {
    let mut conn = TcpStream::connect(&addr).await?;
    conn.set_nodelay(true)?;
    let request = format!(
        "POST {} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
        protocol.path,
        BODY.len()
    );
    let (mut times, mut buf) = (Times::default(), vec![0u8; 64 << 10]);
    while Instant::now() < until {
        let t0 = Instant::now();
        conn.write_all(request.as_bytes()).await?;
        let (mut last, mut tail) = (None::<Instant>, Vec::new());
        loop {
            let n = conn.read(&mut buf).await?;
            let at = Instant::now();
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            let read = &buf[..n];
            // Tokens that arrive in one read arrive at its instant (gaps of 0 after the first).
            for _ in 0..tokens_in(read) {
                match last {
                    None => times.ttft.push((at - t0).as_micros() as u64),
                    Some(prev) => times.itl.push((at - prev).as_micros() as u64),
                }
                last = Some(at);
                times.tokens += 1;
            }
            if contains(read, protocol.done) {
                times.e2e.push((at - t0).as_micros() as u64);
            }
            // The response ends with the last chunk of chunked encoding.
            tail.extend_from_slice(&read[n.saturating_sub(5)..]);
            if tail.ends_with(b"0\r\n\r\n") {
                break;
            }
            tail.drain(..tail.len().saturating_sub(5));
        }
    }
    Ok(times)
}

fn stats(values: &[u64]) -> serde_json::Value {
    let mut h = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds");
    values.iter().for_each(|v| h.saturating_record(*v));
    let q = |q: f64| h.median_equivalent(h.value_at_quantile(q)) as f64 / 1000.0;
    serde_json::json!({"count": h.len(), "p50": q(0.5), "p99": q(0.99), "mean": h.mean() / 1000.0})
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (addr, c, secs, protocol) = match &args[..] {
        [addr, c, secs] => (addr, c, secs, OPENAI),
        [addr, c, secs, kind] if kind == "ndjson" => (addr, c, secs, OLLAMA),
        _ => {
            eprintln!("usage: minimal_client HOST:PORT CONCURRENCY SECONDS [ndjson]");
            std::process::exit(2);
        }
    };
    let (c, secs): (usize, u64) = (c.parse().expect("concurrency"), secs.parse().expect("secs"));
    let start = Instant::now();
    let until = start + Duration::from_secs(secs);
    let vus: Vec<_> = (0..c)
        .map(|_| tokio::spawn(vu(addr.clone(), until, protocol)))
        .collect();
    let mut all = Times::default();
    for vu in vus {
        let times = vu.await.expect("vu task").expect("vu i/o");
        all.ttft.extend(times.ttft);
        all.itl.extend(times.itl);
        all.e2e.extend(times.e2e);
        all.tokens += times.tokens;
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "requests": all.e2e.len(),
            "requests_per_second": all.e2e.len() as f64 / elapsed,
            "output_tokens_total": all.tokens,
            "ttft_ms": stats(&all.ttft),
            "itl_ms": stats(&all.itl),
            "e2e_ms": stats(&all.e2e),
        })
    );
}
