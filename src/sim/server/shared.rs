//! What every route of the simulator shares: its state, the admission of a request (seeded
//! randomness, fault draw), the in-flight count and the small helpers around them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tokio::sync::{OnceCell, Semaphore};
use tokio::time::sleep;

use crate::sim::model::pick_fault;
use crate::sim::{Fault, SimConfig, SimStats};

/// The simulator's state, shared by every route.
pub(super) struct Sim {
    pub(super) cfg: SimConfig,
    pub(super) stats: Arc<SimStats>,
    pub(super) slots: Semaphore,
    pub(super) loaded: OnceCell<()>,
    pub(super) decoding: AtomicUsize,
    pub(super) next_request: std::sync::atomic::AtomicU64,
}

/// An answer with `status` and a JSON body.
pub(super) fn error(status: StatusCode, body: Value) -> Response {
    (status, Json(body)).into_response()
}

/// Counts a request in and draws its seeded randomness and its fault, if any.
pub(super) fn admit(sim: &Sim) -> (SmallRng, Option<Fault>) {
    let index = sim.next_request.fetch_add(1, Ordering::Relaxed);
    let mut rng = SmallRng::seed_from_u64(sim.cfg.seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    sim.stats.requests.fetch_add(1, Ordering::Relaxed);
    let fault = pick_fault(&sim.cfg, rng.random::<f64>());
    (rng, fault)
}

/// The status and message of a fault answered before any body (HTTP 500 and 503).
pub(super) fn http_fault(fault: Fault) -> Option<(StatusCode, &'static str)> {
    match fault {
        Fault::Http500 => Some((
            StatusCode::INTERNAL_SERVER_ERROR,
            "simulated internal error",
        )),
        Fault::Http503 => Some((
            StatusCode::SERVICE_UNAVAILABLE,
            "server busy, please try again.  maximum pending requests exceeded",
        )),
        _ => None,
    }
}

/// Counts a request in flight (and the high-water mark) while it lives.
pub(super) struct InFlight(Arc<SimStats>);

impl InFlight {
    pub(super) fn enter(stats: &Arc<SimStats>) -> Self {
        let now = stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(stats.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sleeps for `d`; a zero `d` returns at once instead of going through the timer.
pub(super) async fn pause(d: Duration) {
    if !d.is_zero() {
        sleep(d).await;
    }
}
