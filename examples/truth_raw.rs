//! An independent timing server with no HTTP library: HTTP/1.1 by hand on tokio sockets with
//! `TCP_NODELAY`, chunked OpenAI SSE. By default one `write()` per event, each its own chunk,
//! the terminating chunk right after `[DONE]`. `--coalesce K` buffers K events (of the same
//! schedule) and writes them in one `write()`, and `--late-ms N` sends the chunked terminator N ms
//! after `[DONE]`, as proxies and some servers do. It records when each write returned
//! (`GET /truth`, `POST /reset`). Keep-alive: one connection serves request after request.
//!
//!   cargo run --release --example truth_raw -- [--coalesce 4] [--late-ms 30] [--listen ADDR]
//!       [--first-ms 50] [--gap-ms 10] [--events 64]

// Its NDJSON helpers are for the other servers.
#[allow(dead_code)]
#[path = "truth_common/mod.rs"]
mod truth_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use truth_common::{Schedule, Truth};

struct App {
    truth: Truth,
    schedule: Schedule,
    coalesce: u32,
    late: Duration,
}

fn chunk(data: &str) -> String {
    format!("{:x}\r\n{data}\r\n", data.len())
}

/// Reads one request (head and Content-Length body); `None` at the end of the connection.
async fn request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(String, String)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let mut more = [0u8; 8192];
                let n = conn.read(&mut more).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&more[..n]);
            }
            buf.drain(..end + 4 + length);
            let mut words = head.split_whitespace();
            let method = words.next()?.to_string();
            let path = words.next()?.to_string();
            return Some((method, path));
        }
        let mut more = [0u8; 8192];
        let n = conn.read(&mut more).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&more[..n]);
    }
}

async fn stream(app: &App, conn: &mut TcpStream, arrived: Instant) -> std::io::Result<()> {
    conn.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await?;
    let s = app.schedule;
    let start = tokio::time::Instant::from_std(arrived);
    let (mut ttft, mut last, mut gaps) = (None, arrived, Vec::with_capacity(s.events as usize));
    let mut pending = String::new();
    let mut held = 0;
    for i in 0..s.events {
        tokio::time::sleep_until(start + s.first + s.gap * i).await;
        pending.push_str(&chunk(&truth_common::sse_event(i)));
        held += 1;
        if held < app.coalesce && i + 1 < s.events {
            continue;
        }
        conn.write_all(pending.as_bytes()).await?;
        let sent = Instant::now();
        // Every event of one write was sent at its instant.
        for _ in 0..held {
            match ttft {
                None => ttft = Some(sent - arrived),
                Some(_) => gaps.push(sent - last),
            }
            last = sent;
        }
        pending.clear();
        held = 0;
    }
    let end = chunk(&truth_common::sse_end());
    if app.late.is_zero() {
        conn.write_all(format!("{end}0\r\n\r\n").as_bytes()).await?;
    } else {
        conn.write_all(end.as_bytes()).await?;
    }
    let e2e = arrived.elapsed();
    if let Some(ttft) = ttft {
        app.truth.record(ttft, &gaps, e2e);
    }
    if !app.late.is_zero() {
        tokio::time::sleep(app.late).await;
        conn.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

async fn serve(app: Arc<App>, mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = Vec::new();
    while let Some((method, path)) = request(&mut conn, &mut buf).await {
        let arrived = Instant::now();
        let written = match (method.as_str(), path.as_str()) {
            ("GET", "/truth") => {
                let body = app.truth.json();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                conn.write_all(head.as_bytes()).await
            }
            ("POST", "/reset") => {
                app.truth.reset();
                conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").await
            }
            ("POST", _) => {
                app.truth.begin();
                let streamed = stream(&app, &mut conn, arrived).await;
                app.truth.end();
                streamed
            }
            _ => conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}").await,
        };
        if written.is_err() {
            return;
        }
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |name: &str, default: u64| {
        args.windows(2)
            .find(|w| w[0] == name)
            .map_or(default, |w| w[1].parse().expect("a number"))
    };
    let app = Arc::new(App {
        truth: Truth::default(),
        schedule: Schedule::from_args(&args),
        coalesce: get("--coalesce", 1).max(1) as u32,
        late: Duration::from_millis(get("--late-ms", 0)),
    });
    let listener = TcpListener::bind(truth_common::listen_arg(&args))
        .await
        .expect("bind");
    println!("{}", listener.local_addr().expect("bound"));
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(serve(app.clone(), conn));
    }
}
