//! The HTTP side every streaming backend shares: t0 right before sending, the request timeout,
//! categorised non-2xx answers with the server's own message, and the body streamed read by
//! read into a pure [`StreamFold`], timestamped as each read comes off the socket.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::Value;
use tokio::time::Instant;

use super::think::{default_tags, ThinkTags};
use super::{ErrorKind, Exchange, Measurement, RequestError};

/// A pure fold of one streamed response body (NDJSON or SSE).
pub trait StreamFold: Default {
    /// Feeds one network read that arrived `at` after t0.
    fn feed(&mut self, at: Duration, bytes: &[u8]);
    /// True once the protocol's end (or a failure) was seen: later bytes are ignored.
    fn is_finished(&self) -> bool;
    /// Ends the stream at EOF.
    fn finish(self, at: Duration) -> Measurement;
    /// Ends the stream because the transport failed.
    fn fail(self, at: Duration, error: RequestError) -> Measurement;
    /// True once a chunk with content (text, thinking, a tool call) arrived.
    fn has_content(&self) -> bool;
    /// Bytes held for a line or event not yet complete (bounded by the exchange).
    fn pending(&self) -> usize;
    /// Which tag pair marks reasoning inside the answer text (`None`: none is looked for).
    fn set_think_tags(&mut self, tags: Option<Arc<ThinkTags>>);
}

/// The longest line (NDJSON) or event (SSE) accepted by default: far above any real token chunk,
/// small enough that a server sending endless bytes without a line end cannot exhaust memory.
pub const DEFAULT_MAX_LINE_BYTES: usize = 4 << 20;
/// How long the end of a body may take after the protocol's end before the connection is
/// given up (closed rather than reused).
const DRAIN: Duration = Duration::from_millis(100);
/// How much of an error body is kept: enough for any server's message.
pub const MAX_ERROR_BODY: usize = 4 << 10;
/// The largest answer read from a request that is not a token stream (pre-flight, model
/// lists, `/tokenize`, warm-up connections): far above a real one, so an endless body from a
/// broken or hostile server costs 4 MiB, not the machine.
pub const MAX_SIDE_BODY: usize = 4 << 20;
/// How long such a request may take in all, body included.
pub const SIDE_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of `response`, at most `limit` bytes; a longer one is an error, read no further.
pub async fn read_capped(response: reqwest::Response, limit: usize) -> Result<Vec<u8>, String> {
    let too_long = || format!("the answer is longer than {limit} bytes: not read further");
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_long());
    }
    let mut body = response.bytes_stream();
    let mut kept = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| error_chain(&e))?;
        if kept.len() + chunk.len() > limit {
            return Err(too_long());
        }
        kept.extend_from_slice(&chunk);
    }
    Ok(kept)
}

/// At most [`MAX_ERROR_BODY`] bytes of `text`, cut at a character boundary, marked when cut.
pub fn clipped(text: &str) -> String {
    if text.len() <= MAX_ERROR_BODY {
        return text.to_string();
    }
    let mut end = MAX_ERROR_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

/// How a request is read: how long it may take (in all, until its first token, between two
/// reads), how long a line may be, and which tags mark reasoning inside the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// From sending to the last byte.
    pub total: Duration,
    /// From sending to the first token.
    pub first_token: Option<Duration>,
    /// Between two reads (and from sending to the first byte).
    pub idle: Option<Duration>,
    /// The longest line or event accepted, in bytes.
    pub max_line_bytes: usize,
    /// The tag pair of inline reasoning (`<think>…</think>` by default).
    pub think_tags: Option<Arc<ThinkTags>>,
}

/// A limit that can end a request before its answer is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Deadline {
    /// No token within this long of sending.
    FirstToken(Duration),
    /// No byte for this long.
    Idle(Duration),
}

impl Deadline {
    /// The failure it stands for; built only when the deadline has passed, not on every read.
    fn error(self) -> RequestError {
        match self {
            Deadline::FirstToken(d) => RequestError::new(
                ErrorKind::FirstTokenTimeout,
                format!("no token within {d:?}"),
            ),
            Deadline::Idle(d) => {
                RequestError::new(ErrorKind::IdleTimeout, format!("no byte for {d:?}"))
            }
        }
    }
}

impl Settings {
    /// The failure of a stream whose unfinished line or event outgrew `max_line_bytes`.
    fn oversized(&self, fold: &impl StreamFold) -> Option<RequestError> {
        (fold.pending() > self.max_line_bytes).then(|| {
            RequestError::new(
                ErrorKind::Oversized,
                format!(
                    "a line or event longer than {} bytes (target.max_line_bytes)",
                    self.max_line_bytes
                ),
            )
        })
    }

    /// The next instant a request that is still waiting fails, and as what: the idle limit
    /// counts from `last_read`, the first-token limit from `sent_at` until a token arrived.
    fn next(
        &self,
        sent_at: Instant,
        last_read: Instant,
        has_token: bool,
    ) -> Option<(Instant, Deadline)> {
        let idle = self.idle.map(|d| (last_read + d, Deadline::Idle(d)));
        let first = self
            .first_token
            .filter(|_| !has_token)
            .map(|d| (sent_at + d, Deadline::FirstToken(d)));
        match (idle, first) {
            (Some(a), Some(b)) => Some(if b.0 <= a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }
}

/// The measurement of a stream read until `broken` (or its end) at `at`, and whether it ended
/// complete: its protocol's end seen, without error, so the body's rest can be drained.
fn conclude<F: StreamFold>(
    fold: F,
    broken: Option<RequestError>,
    at: Duration,
) -> (Measurement, bool) {
    let finished = broken.is_none() && fold.is_finished();
    let m = match broken {
        Some(error) => fold.fail(at, error),
        None => fold.finish(at),
    };
    let complete = finished && m.error.is_none();
    (m, complete)
}

/// Awaits `work` unless `deadline` comes first, which yields its error.
async fn before<T>(
    deadline: Option<(Instant, Deadline)>,
    work: impl std::future::Future<Output = T>,
) -> Result<T, RequestError> {
    match deadline {
        None => Ok(work.await),
        Some((at, deadline)) => tokio::select! {
            done = work => Ok(done),
            _ = tokio::time::sleep_until(at) => Err(deadline.error()),
        },
    }
}

/// The HTTP client for `target` and its settings (in all 120 s by default). Connection set-up
/// gets at most 10 s of it; TCP_NODELAY keeps small request writes from waiting on delayed ACKs.
pub fn client_for(
    target: &crate::scenario::Target,
) -> reqwest::Result<(reqwest::Client, Settings)> {
    let timeout = target.timeout.map_or(Duration::from_secs(120), |t| t.get());
    let settings = Settings {
        total: timeout,
        first_token: target.first_token_timeout.map(|t| t.get()),
        idle: target.idle_timeout.map(|t| t.get()),
        max_line_bytes: target.max_line_bytes.map_or(DEFAULT_MAX_LINE_BYTES, |n| {
            usize::try_from(n).unwrap_or(usize::MAX)
        }),
        think_tags: match target.think_tags.as_deref() {
            None => Some(default_tags()),
            Some([open, close]) => Some(Arc::new(ThinkTags {
                open: open.clone(),
                close: close.clone(),
            })),
            // `[]` (validation allows nothing else) turns the detection off.
            Some(_) => None,
        },
    };
    let client = reqwest::Client::builder()
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .connector_layer(super::connect::TimedConnects)
        .build()?;
    Ok((client, settings))
}

/// A measurement of a request that failed before any answer.
pub fn failed(at: Duration, error: RequestError) -> Measurement {
    let mut m = Measurement::default();
    m.fail_at(at, error);
    m
}

/// Categorises a transport failure before any response arrived.
pub fn transport_error(err: &reqwest::Error) -> RequestError {
    let refused = std::error::Error::source(err).is_some_and(|mut source| loop {
        if let Some(io) = source.downcast_ref::<std::io::Error>() {
            break io.kind() == std::io::ErrorKind::ConnectionRefused;
        }
        match source.source() {
            Some(next) => source = next,
            None => break false,
        }
    });
    let kind = if refused {
        ErrorKind::Refused
    } else if err.is_timeout() {
        ErrorKind::Timeout
    } else if err.is_connect() {
        ErrorKind::Connect
    } else {
        ErrorKind::Disconnected
    };
    RequestError::new(kind, error_chain(err))
}

/// An error with its causes, `outer: inner: root`: reqwest's own text ("error sending request")
/// hides the part a user can act on ("connection closed before message completed").
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The server's words from an error body: Ollama's `{"error": "..."}`, OpenAI's
/// `{"error": {"message": ...}}`, older vLLM's flat `{"message": ...}`, else the raw text.
pub fn error_message(text: &str) -> String {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        return text.to_string();
    };
    let error = v.get("error").filter(|e| !e.is_null()).unwrap_or(&v);
    error
        .as_str()
        .or_else(|| error["message"].as_str())
        .map_or_else(|| text.to_string(), str::to_string)
}

async fn exchange<F: StreamFold>(
    request: reqwest::RequestBuilder,
    sent_at: Instant,
    settings: &Settings,
) -> Measurement {
    let again = request.try_clone();
    let mut reconnected = false;
    let sending = async {
        let sent = request.send().await;
        match (sent, again) {
            // A server that closes a kept-alive connection right after an answer (llama-server
            // after every streamed one) races the next request written to it: the server never
            // read that request, so it is sent once more on a new connection, as browsers do.
            // t0 stays at the first attempt, so the lost round trip counts as latency.
            (Err(err), Some(again)) if closed_before_answer(&err) => {
                reconnected = true;
                again.send().await
            }
            (sent, _) => sent,
        }
    };
    let (sent, connect) =
        super::connect::watched(before(settings.next(sent_at, sent_at, false), sending)).await;
    let mut m = match sent {
        Ok(Ok(response)) => read_response::<F>(response, sent_at, settings).await,
        Ok(Err(err)) => failed(sent_at.elapsed(), transport_error(&err)),
        Err(stalled) => failed(sent_at.elapsed(), stalled),
    };
    m.reconnected = reconnected;
    m.connect = connect;
    m
}

/// Reads a response whose head arrived: the stream folded read by read, or an error body.
async fn read_response<F: StreamFold>(
    response: reqwest::Response,
    sent_at: Instant,
    settings: &Settings,
) -> Measurement {
    let elapsed = || sent_at.elapsed();
    let status = response.status().as_u16();
    let mut m = if response.status().is_success() {
        let mut fold = F::default();
        fold.set_think_tags(settings.think_tags.clone());
        let mut body = response.bytes_stream();
        let mut broken = None;
        let mut last_read = Instant::now();
        loop {
            let deadline = settings.next(sent_at, last_read, fold.has_content());
            let read = match before(deadline, body.next()).await {
                Ok(Some(read)) => read,
                Ok(None) => break,
                Err(stalled) => {
                    broken = Some(stalled);
                    break;
                }
            };
            // One clock read per arrival: the timestamp and the idle limit's start are the same.
            last_read = Instant::now();
            match read {
                Ok(bytes) => {
                    fold.feed(last_read - sent_at, &bytes);
                    if let Some(oversized) = settings.oversized(&fold) {
                        broken = Some(oversized);
                        break;
                    }
                }
                Err(err) => {
                    broken = Some(RequestError::new(
                        ErrorKind::Disconnected,
                        error_chain(&err),
                    ));
                    break;
                }
            }
            if fold.is_finished() {
                break;
            }
        }
        let (m, complete) = conclude(fold, broken, elapsed());
        if complete {
            // The protocol's end came before the body's (the chunked terminator follows
            // `[DONE]` or `done: true`). Read to it, outside the measurement: a body dropped
            // unread makes hyper close the connection, and the VU's next request would wait
            // for a new one.
            let _ = tokio::time::timeout(DRAIN, async {
                while let Some(Ok(_)) = body.next().await {}
            })
            .await;
            // The pool takes the connection back in a task of its own, woken with the body's
            // end: letting it run first keeps the VU's next request from racing it to a new
            // connection.
            tokio::task::yield_now().await;
        }
        m
    } else {
        let text = error_body(response).await;
        failed(
            elapsed(),
            RequestError::new(
                ErrorKind::from_status(status),
                format!("HTTP {status}: {}", error_message(&text)),
            ),
        )
    };
    m.status = Some(status);
    m
}

/// The start of an error body: at most [`MAX_ERROR_BODY`] bytes are read and kept, so a server
/// answering an error with megabytes costs neither memory nor raw-log space.
async fn error_body(response: reqwest::Response) -> String {
    let mut body = response.bytes_stream();
    let mut kept = Vec::new();
    while let Some(Ok(bytes)) = body.next().await {
        kept.extend_from_slice(&bytes);
        if kept.len() >= MAX_ERROR_BODY {
            kept.truncate(MAX_ERROR_BODY);
            break;
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// True when the connection closed before any byte of an answer: hyper's "connection closed
/// before message completed" on a request it had written (the server's FIN came first), or a
/// reset or broken pipe (the server's socket was gone when the request reached it).
fn closed_before_answer(err: &reqwest::Error) -> bool {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_incomplete_message)
        {
            return true;
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            );
        }
        source = cause.source();
    }
    false
}

/// Sends `body` with the request `build` makes of it, under `settings`. The body is serialised
/// before t0, so building the request is not counted as latency.
pub async fn send<F: StreamFold>(
    settings: &Settings,
    body: Value,
    build: impl FnOnce(Vec<u8>) -> reqwest::RequestBuilder,
) -> Exchange {
    // A JSON value always serialises (string keys, finite numbers): `Display` cannot fail.
    let request = build(body.to_string().into_bytes());
    let sent_at = Instant::now();
    within_total(settings, sent_at, exchange::<F>(request, sent_at, settings)).await
}

/// The exchange that started at `sent_at`, failed as a timeout when `settings.total` passes.
async fn within_total(
    settings: &Settings,
    sent_at: Instant,
    answer: impl std::future::Future<Output = Measurement>,
) -> Exchange {
    let timeout = settings.total;
    let measurement = match tokio::time::timeout(timeout, answer).await {
        Ok(m) => m,
        Err(_) => failed(
            sent_at.elapsed(),
            RequestError::new(
                ErrorKind::Timeout,
                format!("no complete answer within {timeout:?}"),
            ),
        ),
    };
    Exchange {
        sent_at,
        measurement,
    }
}

/// [`send`] over the [`Wire`](super::wire::Wire): the same t0, timeout and measurement, with
/// the body read in this task and each read stamped as it arrived.
pub async fn send_wire<F: StreamFold>(
    settings: &Settings,
    wire: &super::wire::Wire,
    body: Value,
    headers: &[(&str, &str)],
) -> Exchange {
    let request = wire.request(body.to_string().as_bytes(), headers);
    let sent_at = Instant::now();
    within_total(
        settings,
        sent_at,
        wire_exchange::<F>(wire, &request, sent_at, settings),
    )
    .await
}

fn wire_error(err: super::wire::WireError) -> RequestError {
    use super::wire::WireError;
    let kind = match &err {
        WireError::Refused(_) => ErrorKind::Refused,
        WireError::Connect(_) => ErrorKind::Connect,
        WireError::Io(_) => ErrorKind::Disconnected,
        WireError::Malformed(_) => ErrorKind::Malformed,
    };
    RequestError::new(kind, err.to_string())
}

/// True when a kept-alive connection was found closed before any byte of the answer: the
/// server never read the request, so it is sent again on a new connection.
fn closed_under_us(err: &super::wire::WireError) -> bool {
    matches!(err, super::wire::WireError::Io(e) if matches!(
        e.kind(),
        std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe
    ))
}

async fn wire_exchange<F: StreamFold>(
    wire: &super::wire::Wire,
    request: &[u8],
    sent_at: Instant,
    settings: &Settings,
) -> Measurement {
    let elapsed = || sent_at.elapsed();
    let first_deadline = settings.next(sent_at, sent_at, false);
    let mut connect = None;
    let mut reconnected = false;
    let opened = before(first_deadline, async {
        let mut pooled = wire.take();
        loop {
            let mut conn = match pooled.take() {
                Some(conn) => conn,
                None => {
                    let (conn, took) = wire.connect().await?;
                    connect = Some(took);
                    conn
                }
            };
            let written = conn.write(request).await;
            let head = match written {
                Ok(()) => conn.head(wire).await,
                Err(e) => Err(super::wire::WireError::Io(e)),
            };
            match head {
                Ok(response) => return Ok((conn, response)),
                // The server closed the connection as the request reached it (a kept-alive one
                // it had given up, or one it closes after every answer): it never read the
                // request, which is sent once more on a new connection, as browsers do. t0
                // stays at the first attempt, so the lost round trip counts as latency.
                Err(e) if !reconnected && closed_under_us(&e) => reconnected = true,
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    let finish = |mut m: Measurement, reconnected: bool, connect: Option<Duration>| {
        m.reconnected = reconnected;
        m.connect = connect;
        m
    };
    let (mut conn, mut response) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(err)) => return finish(failed(elapsed(), wire_error(err)), reconnected, connect),
        Err(stalled) => return finish(failed(elapsed(), stalled), reconnected, connect),
    };
    let status = response.status;
    let mut m = if (200..300).contains(&status) {
        stream_answer::<F>(&mut conn, &mut response, wire, sent_at, settings).await
    } else {
        let text = wire_error_body(&mut conn, &mut response, wire).await;
        failed(
            elapsed(),
            RequestError::new(
                ErrorKind::from_status(status),
                format!("HTTP {status}: {}", error_message(&text)),
            ),
        )
    };
    if response.reusable() {
        wire.put(conn);
    }
    m.status = Some(status);
    finish(m, reconnected, connect)
}

/// A 2xx answer's stream folded as it arrives, until its protocol's end, a failure or a limit.
async fn stream_answer<F: StreamFold>(
    conn: &mut super::wire::Conn,
    response: &mut super::wire::Response,
    wire: &super::wire::Wire,
    sent_at: Instant,
    settings: &Settings,
) -> Measurement {
    let elapsed = || sent_at.elapsed();
    let mut ranges = Vec::new();
    let mut fold = F::default();
    fold.set_think_tags(settings.think_tags.clone());
    let mut broken = None;
    let mut last_read = Instant::now();
    loop {
        let deadline = settings.next(sent_at, last_read, fold.has_content());
        let read = match before(deadline, conn.body(response, wire, &mut ranges)).await {
            Ok(read) => read,
            Err(stalled) => {
                broken = Some(stalled);
                break;
            }
        };
        match read {
            Ok(Some(arrived)) => {
                // The idle limit counts from the bytes' arrival, which is already stamped:
                // no second clock read per chunk.
                last_read = arrived;
                let at = arrived.saturating_duration_since(sent_at);
                for range in &ranges {
                    fold.feed(at, conn.bytes(range.clone()));
                }
                if let Some(oversized) = settings.oversized(&fold) {
                    broken = Some(oversized);
                    break;
                }
            }
            Ok(None) => break,
            Err(err) => {
                broken = Some(wire_error(err));
                break;
            }
        }
        if fold.is_finished() {
            break;
        }
    }
    let (m, complete) = conclude(fold, broken, elapsed());
    if complete {
        // The protocol's end came before the body's (the chunked terminator follows
        // `[DONE]` or `done: true`): read to it, outside the measurement, so the connection
        // serves the VU's next request.
        let _ = tokio::time::timeout(DRAIN, async {
            while let Ok(Some(_)) = conn.body(response, wire, &mut ranges).await {}
        })
        .await;
    }
    m
}

/// The first [`MAX_ERROR_BODY`] bytes of an error answer's body, as text.
async fn wire_error_body(
    conn: &mut super::wire::Conn,
    response: &mut super::wire::Response,
    wire: &super::wire::Wire,
) -> String {
    let mut ranges = Vec::new();
    let mut kept = Vec::new();
    let _ = tokio::time::timeout(DRAIN.max(Duration::from_secs(1)), async {
        while let Ok(Some(_)) = conn.body(response, wire, &mut ranges).await {
            for range in &ranges {
                kept.extend_from_slice(conn.bytes(range.clone()));
            }
            if kept.len() >= MAX_ERROR_BODY {
                kept.truncate(MAX_ERROR_BODY);
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_of_every_server_family() {
        assert_eq!(
            error_message(r#"{"error":"model \"x\" not found, try pulling it first"}"#),
            "model \"x\" not found, try pulling it first"
        );
        assert_eq!(
            error_message(
                r#"{"error":{"message":"The model `x` does not exist.","type":"NotFoundError"}}"#
            ),
            "The model `x` does not exist."
        );
        assert_eq!(
            error_message(r#"{"object":"error","message":"flat vLLM"}"#),
            "flat vLLM"
        );
        assert_eq!(error_message("plain text"), "plain text");
    }
}
