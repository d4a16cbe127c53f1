//! An independent timing server as a new user would write one: axum, the body fed from a
//! channel of capacity 8 by a task that follows a `sleep_until` schedule, one HTTP chunk per
//! event (OpenAI SSE, or Ollama NDJSON with `--ndjson`). It records when it handed each event to
//! the body (`GET /truth`, `POST /reset`), the truth `scripts/bench_overhead.sh` compares the
//! clients with. Any POST is a generation request; any other GET answers `{}`.
//!
//!   cargo run --release --example truth_axum -- [--ndjson] [--listen ADDR] [--first-ms 50]
//!       [--gap-ms 10] [--events 64]

#[path = "truth_common/mod.rs"]
mod truth_common;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use truth_common::{Schedule, Truth};

struct App {
    truth: Truth,
    schedule: Schedule,
    ndjson: bool,
}

async fn generate(State(app): State<Arc<App>>, _body: Bytes) -> Response {
    let arrived = Instant::now();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let feeder = app.clone();
    tokio::spawn(async move {
        let app = feeder;
        app.truth.begin();
        let start = tokio::time::Instant::from_std(arrived);
        let s = app.schedule;
        let (mut ttft, mut last, mut gaps) = (None, arrived, Vec::with_capacity(s.events as usize));
        let mut complete = true;
        for i in 0..s.events {
            tokio::time::sleep_until(start + s.first + s.gap * i).await;
            let event = if app.ndjson {
                truth_common::ndjson_line(i)
            } else {
                truth_common::sse_event(i)
            };
            if tx.send(Bytes::from(event)).await.is_err() {
                complete = false;
                break;
            }
            let sent = Instant::now();
            match ttft {
                None => ttft = Some(sent - arrived),
                Some(_) => gaps.push(sent - last),
            }
            last = sent;
        }
        let end = if app.ndjson {
            truth_common::ndjson_end(s.events)
        } else {
            truth_common::sse_end()
        };
        if complete && tx.send(Bytes::from(end)).await.is_ok() {
            if let Some(ttft) = ttft {
                app.truth.record(ttft, &gaps, arrived.elapsed());
            }
        }
        app.truth.end();
    });
    let body = futures_util::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|b| b.map(Ok::<_, Infallible>))
    });
    let kind = if app.ndjson {
        "application/x-ndjson"
    } else {
        "text/event-stream"
    };
    Response::builder()
        .header(header::CONTENT_TYPE, kind)
        .body(Body::from_stream(body))
        .expect("a valid response")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let app = Arc::new(App {
        truth: Truth::default(),
        schedule: Schedule::from_args(&args),
        ndjson: args.iter().any(|a| a == "--ndjson"),
    });
    let router = Router::new()
        .route(
            "/truth",
            get(|State(app): State<Arc<App>>| async move { app.truth.json() }),
        )
        .route(
            "/reset",
            post(|State(app): State<Arc<App>>| async move {
                app.truth.reset();
                "{}"
            }),
        )
        .fallback(
            |State(app): State<Arc<App>>, req: axum::extract::Request| async move {
                if req.method() == axum::http::Method::POST {
                    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
                        .await
                        .unwrap_or_default();
                    generate(State(app), body).await
                } else {
                    Response::new(Body::from("{}"))
                }
            },
        )
        .with_state(app);
    let listener = tokio::net::TcpListener::bind(truth_common::listen_arg(&args))
        .await
        .expect("bind");
    println!("{}", listener.local_addr().expect("bound"));
    axum::serve(listener, router).await.expect("serve");
}
