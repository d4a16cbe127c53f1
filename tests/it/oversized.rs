//! Answers too large to hold: a line without end and a huge error body. A raw loopback server
//! sends them; the request fails in its own kind and memory and the raw log stay small.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::common::{options, run, scenario};
use llm_bench::backend::ErrorKind;

/// Answers every request on its connection with `status` and `size` bytes of `x` and no line
/// end, then closes.
async fn serve(status: &'static str, size: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                // The request head is enough; the body is small and ignored.
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let mut socket = reader.into_inner();
                let head = format!("HTTP/1.1 {status}\r\nContent-Type: application/x-ndjson\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n");
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 << 10];
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if socket.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    left -= n;
                }
            });
        }
    });
    url
}

const SCENARIO: &str = "name: big\ntarget:\n  model: m\n  max_line_bytes: 65536\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 2}\n";

#[tokio::test]
async fn a_line_without_end_fails_as_oversized() {
    let url = serve("200 OK", 8 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let out = run(scenario(SCENARIO), &options(dir.path(), Some(url))).await;
    let by_kind = &out.result.total.errors_by_kind;
    assert_eq!(by_kind.get(&ErrorKind::Oversized), Some(&2), "{by_kind:?}");
}

#[tokio::test]
async fn a_huge_error_body_is_kept_to_its_first_kilobytes() {
    let url = serve("500 Internal Server Error", 8 << 20).await;
    let dir = tempfile::tempdir().unwrap();
    let mut opts = options(dir.path(), Some(url));
    opts.raw = Some(Default::default());
    let out = run(scenario(SCENARIO), &opts).await;
    assert_eq!(
        out.result.total.errors_by_kind.get(&ErrorKind::Http5xx),
        Some(&2)
    );
    let raw = std::fs::read_to_string(out.raw_path.unwrap()).unwrap();
    for line in raw.lines() {
        assert!(
            line.len() < 6 << 10,
            "a raw-log line of {} bytes",
            line.len()
        );
        assert!(line.contains("HTTP 500: xxxx"), "{line}");
    }
}
