//! Which requests paid for opening a TCP connection, and how long it took (k6's
//! `http_req_connecting`). reqwest keeps connections alive and does not say whether a request
//! got a pooled one or waited for a new one; a layer around its connector times every connect
//! and credits it to the request whose task it finished in. A connect the pool started for a
//! request that then got a freed connection instead finishes in the background, not in that
//! request's task, and is credited to nobody: the request did not wait for it.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    /// The connect time of the request being sent in this task, once it waited for one.
    static OPENED: Cell<Option<Duration>>;
}

/// Runs `sending` and says how long it waited for a new connection (`None`: a kept-alive one
/// served it).
pub async fn watched<T>(sending: impl Future<Output = T>) -> (T, Option<Duration>) {
    OPENED
        .scope(Cell::new(None), async {
            let out = sending.await;
            (out, OPENED.with(Cell::get))
        })
        .await
}

/// The layer reqwest's connector is wrapped in ([`reqwest::ClientBuilder::connector_layer`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct TimedConnects;

impl<S> tower_layer::Layer<S> for TimedConnects {
    type Service = Timed<S>;

    fn layer(&self, inner: S) -> Timed<S> {
        Timed(inner)
    }
}

/// A connector that times each connection it opens.
#[derive(Debug, Clone)]
pub struct Timed<S>(S);

impl<S, R> tower_service::Service<R> for Timed<S>
where
    S: tower_service::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, target: R) -> Self::Future {
        let start = Instant::now();
        let connecting = self.0.call(target);
        Box::pin(async move {
            let out = connecting.await;
            if out.is_ok() {
                // Outside a watched request's task (preconnect, or a connect the pool finishes
                // in the background) there is nobody to credit.
                let _ = OPENED.try_with(|opened| opened.set(Some(start.elapsed())));
            }
            out
        })
    }
}
