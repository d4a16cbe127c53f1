//! The server a run talks to: the built-in simulator started for the run, or a URL, and the
//! [`Backend`] that speaks its API. Tests build a [`Target`] around a backend double instead.

use std::net::SocketAddr;
use std::sync::Arc;

use super::config::{Endpoint, RunConfig};
use crate::backend::{Backend, OllamaBackend, OpenAiBackend};
use crate::error::Error;
use crate::scenario::BackendKind;
use crate::sim::{self, SimServer};

/// A connected target: what requests go through, and what keeps the simulator alive.
pub struct Target {
    /// The URL the result names.
    pub url: String,
    /// Sends requests and measures answers.
    pub backend: Arc<dyn Backend>,
    /// True when the URL is the built-in simulator's.
    pub simulated: bool,
    /// The simulator started for this run; it stops when the target is dropped.
    simulator: Option<SimServer>,
}

impl Target {
    /// A target around any backend (a test double, or one built elsewhere).
    pub fn new(url: impl Into<String>, backend: Arc<dyn Backend>) -> Target {
        Target {
            url: url.into(),
            backend,
            simulated: false,
            simulator: None,
        }
    }

    /// Starts the simulator when the run uses it, and builds the backend for the scenario's API.
    pub async fn connect(config: &RunConfig) -> Result<Target, Error> {
        let (url, simulator) = match &config.endpoint {
            Endpoint::Simulator(cfg) => {
                let server = sim::start(cfg.clone(), SocketAddr::from(([127, 0, 0, 1], 0)))
                    .await
                    .map_err(Error::io("cannot start the built-in simulator"))?;
                (server.url(), Some(server))
            }
            Endpoint::Url(url) => (url.clone(), None),
        };
        let target = &config.scenario().target;
        let backend: Arc<dyn Backend> = match target.backend {
            BackendKind::Ollama => {
                Arc::new(OllamaBackend::try_new(target, &url).map_err(Error::Client)?)
            }
            BackendKind::Openai => Arc::new(
                OpenAiBackend::try_new(target, &url, config.api_key.clone())
                    .map_err(Error::Client)?,
            ),
        };
        Ok(Target {
            url,
            backend,
            simulated: simulator.is_some(),
            simulator,
        })
    }

    /// Stops the simulator, if this target started one.
    pub fn disconnect(&mut self) {
        self.simulator = None;
    }
}
