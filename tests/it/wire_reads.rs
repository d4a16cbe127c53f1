//! The request's own socket reads (backend/wire.rs): a read that does not fill the buffer is
//! taken as having drained the socket, so the next read waits for new bytes. A read that fills
//! it must not be: the rest of a large answer already waits in the socket.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::common::{options, run, scenario};

/// Answers each request with an Ollama NDJSON stream: one 200 KB token at once, then, after
/// `pause`, the `done` line.
async fn serve_big_then_late(pause: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                loop {
                    let mut content_length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if let Some(n) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            content_length = n.trim().parse().unwrap();
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; content_length];
                    tokio::io::AsyncReadExt::read_exact(&mut reader, &mut body)
                        .await
                        .unwrap();
                    let big = format!(
                        "{{\"model\":\"m\",\"message\":{{\"role\":\"assistant\",\"content\":\"{}\"}},\"done\":false}}\n",
                        "x".repeat(200 << 10)
                    );
                    let done = "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":1,\"eval_count\":1}\n";
                    let head = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n",
                        big.len() + done.len()
                    );
                    let socket = reader.get_mut();
                    if socket.write_all(head.as_bytes()).await.is_err()
                        || socket.write_all(big.as_bytes()).await.is_err()
                    {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                    if socket.write_all(done.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test]
async fn a_large_token_is_read_whole_as_it_arrives_not_when_more_bytes_come() {
    let url = serve_big_then_late(Duration::from_millis(600)).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: big\ntarget:\n  model: m\n  timeout: 10s\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 2}\n";
    let out = run(scenario(yaml), &options(dir.path(), Some(url))).await;
    let total = &out.result.total;
    assert_eq!(total.errors_by_kind.len(), 0, "{:?}", total.errors_by_kind);
    // The 200 KB line takes many reads that fill the buffer; had one of them been taken as the
    // end of what the socket held, the rest would wait for the `done` line, 600 ms later.
    let ttft = total.ttft_ms.as_ref().unwrap();
    assert!(ttft.max < 300.0, "TTFT {ttft:?}");
    let e2e = total.e2e_latency_ms.as_ref().unwrap();
    assert!(e2e.min >= 590.0, "e2e {e2e:?}");
}
