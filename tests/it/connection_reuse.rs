//! Servers that close kept-alive connections. llama-server ends every streamed answer by closing
//! the connection without `Connection: close`, so the next request may be written to a socket
//! the server already left. A raw loopback server reproduces that race deterministically: it
//! answers the first request of each connection and closes on the second without answering.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::common::{options, run, scenario};
use llm_bench::backend::ErrorKind;
use llm_bench::RunOutcome;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

const ANSWER: &str = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n\
data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n\
data: [DONE]\n\n";

/// How many requests a connection answers before it closes on the next one unanswered.
#[derive(Clone, Copy)]
enum Policy {
    /// Answers the first request, closes (FIN) on the second.
    CloseAfterFirst,
    /// Answers the first request, resets (RST) on the second.
    ResetAfterFirst,
    /// Closes every connection after reading its first request.
    NeverAnswer,
    /// Answers every request, chunked, and keeps the connection; the body's last chunk comes
    /// 20 ms after `[DONE]`, as a separate write.
    KeepAliveLateEnd,
}

struct Server {
    url: String,
    connections: Arc<AtomicU64>,
    answered: Arc<AtomicU64>,
}

/// Reads one request (head and Content-Length body); false at EOF.
async fn read_request(reader: &mut BufReader<TcpStream>) -> bool {
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
            return false;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap();
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.is_ok()
}

async fn start(policy: Policy) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let connections = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let (c, a) = (connections.clone(), answered.clone());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            c.fetch_add(1, Ordering::SeqCst);
            let answered = a.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                if !read_request(&mut reader).await {
                    return;
                }
                if matches!(policy, Policy::NeverAnswer) {
                    return;
                }
                if matches!(policy, Policy::KeepAliveLateEnd) {
                    loop {
                        let socket = reader.get_mut();
                        let head = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{ANSWER}\r\n",
                            ANSWER.len()
                        );
                        socket.write_all(head.as_bytes()).await.unwrap();
                        answered.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        socket.write_all(b"0\r\n\r\n").await.unwrap();
                        if !read_request(&mut reader).await {
                            return;
                        }
                    }
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n",
                    ANSWER.len()
                );
                let socket = reader.get_mut();
                socket.write_all(head.as_bytes()).await.unwrap();
                socket.write_all(ANSWER.as_bytes()).await.unwrap();
                answered.fetch_add(1, Ordering::SeqCst);
                // Keep-alive as far as the client can tell; the next request is read, then the
                // connection closes unanswered.
                read_request(&mut reader).await;
                if matches!(policy, Policy::ResetAfterFirst) {
                    reader.get_ref().set_zero_linger().unwrap();
                }
            });
        }
    });
    Server {
        url,
        connections,
        answered,
    }
}

const YAML: &str = "name: r\ntarget:\n  backend: openai\n  model: m\n  timeout: 10s\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 6}\n";

#[tokio::test]
async fn a_request_written_to_a_connection_the_server_closed_is_sent_again() {
    every_request_after_the_first_is_sent_again(Policy::CloseAfterFirst).await;
}

#[tokio::test]
async fn a_request_written_to_a_connection_the_server_reset_is_sent_again() {
    every_request_after_the_first_is_sent_again(Policy::ResetAfterFirst).await;
}

async fn every_request_after_the_first_is_sent_again(policy: Policy) {
    let (server, dir, out) = run_with_raw_log(policy).await;

    let t = &out.result.total;
    assert_eq!((t.requests, t.errors), (6, 0), "{:?}", t.errors_by_kind);
    assert_eq!(
        t.reconnected_requests, 5,
        "every request after the first met a closed connection"
    );
    assert_eq!(server.answered.load(Ordering::SeqCst), 6);
    assert_eq!(server.connections.load(Ordering::SeqCst), 6);
    assert_eq!(
        t.connections_opened, 6,
        "each request waited for a new connection"
    );
    assert_eq!(t.connect_ms.as_ref().map(|c| c.count), Some(6));
    assert_eq!(
        raw_log(dir.path()).matches("\"reconnected\":true").count(),
        5
    );
}

/// Runs [`YAML`] with a raw log against a server of `policy`, without pre-opened connections.
async fn run_with_raw_log(policy: Policy) -> (Server, tempfile::TempDir, RunOutcome) {
    let server = start(policy).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), Some(server.url.clone()));
    opts.raw = Some(Default::default());
    let out = run(scenario(YAML), &opts).await;
    (server, dir, out)
}

fn raw_log(dir: &std::path::Path) -> String {
    let raw = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .find(|e| e.path().to_string_lossy().ends_with(".requests.jsonl"))
        .unwrap();
    std::fs::read_to_string(raw.path()).unwrap()
}

#[tokio::test]
async fn a_server_that_never_answers_is_an_error_after_one_retry() {
    let (server, dir, out) = run_with_raw_log(Policy::NeverAnswer).await;

    let t = &out.result.total;
    assert_eq!(t.errors_by_kind.get(&ErrorKind::Disconnected), Some(&6));
    assert!(
        raw_log(dir.path()).contains("connection closed before message completed"),
        "the raw log names the cause under reqwest's words"
    );
    assert_eq!(t.reconnected_requests, 6);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        12,
        "one retry per request, never more"
    );
}

#[tokio::test]
async fn a_connection_is_reused_when_its_body_ends_after_the_protocol_does() {
    let (server, dir, out) = run_with_raw_log(Policy::KeepAliveLateEnd).await;

    let t = &out.result.total;
    assert_eq!((t.requests, t.errors), (6, 0), "{:?}", t.errors_by_kind);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "the body is read to its end, so the connection goes back to the pool"
    );
    assert_eq!(t.connections_opened, 1, "only the first request connected");
    let connect = t.connect_ms.as_ref().expect("the first request's connect");
    assert!(connect.count == 1 && connect.max < 1000.0, "{connect:?}");
    assert_eq!(raw_log(dir.path()).matches("\"connect_ms\":").count(), 1);
    let e2e = t.e2e_latency_ms.as_ref().unwrap();
    assert!(
        e2e.max < 20.0,
        "e2e ends at [DONE], not at the body's end 20 ms later: {e2e:?}"
    );

    // With the connections opened before the load (as the CLI does), none is measured.
    let server = start(Policy::KeepAliveLateEnd).await;
    let mut opts = options(dir.path(), Some(server.url.clone()));
    opts.preconnect = true;
    let out = run(scenario(YAML), &opts).await;
    assert_eq!(out.result.total.connections_opened, 0);
    assert_eq!(out.result.total.connect_ms, None);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}
