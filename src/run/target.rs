//! The server a run talks to: the built-in simulator started for the run, or a URL, and the
//! [`Backend`] that speaks its API. Tests build a [`Target`] around a backend double instead.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::config::{Endpoint, RunConfig};
use crate::backend::http::{error_chain, read_capped, MAX_SIDE_BODY, SIDE_TIMEOUT};
use crate::backend::{Backend, OllamaBackend, OpenAiBackend};
use crate::error::Error;
use crate::output::redact;
use crate::scenario::BackendKind;
use crate::scenario::Target as ScenarioTarget;
use crate::sim::{self, SimServer};

/// How long the pre-flight check waits for each answer, body included.
const PREFLIGHT_TIMEOUT: Duration = SIDE_TIMEOUT;

/// Why a pre-flight GET gave no JSON.
enum Probe {
    /// The server answered with a non-2xx status: it is up.
    Refused,
    /// No usable answer from this URL, and why.
    Unreachable(String, String),
}

/// The `key` of every object in a JSON list.
fn names(list: &serde_json::Value, key: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m[key].as_str().map(str::to_string))
        .collect()
}

fn listing(names: &[String]) -> String {
    if names.is_empty() {
        "no models listed".into()
    } else {
        names.join(", ")
    }
}

/// The models a server has, asking as `backend` would (Ollama `/api/tags`, OpenAI
/// `/v1/models`), or as each in turn when none is given; returns which one answered.
pub async fn list_models(
    url: &str,
    backend: Option<BackendKind>,
) -> Result<(BackendKind, Vec<String>), Error> {
    let client = reqwest::Client::builder()
        .timeout(PREFLIGHT_TIMEOUT)
        .build()
        .map_err(Error::Client)?;
    let base = url.trim_end_matches('/');
    let openai_base = base.strip_suffix("/v1").unwrap_or(base);
    let tries = [
        (
            BackendKind::Ollama,
            format!("{base}/api/tags"),
            "models",
            "name",
        ),
        (
            BackendKind::Openai,
            format!("{openai_base}/v1/models"),
            "data",
            "id",
        ),
    ];
    let mut tried = Vec::new();
    for (kind, list_url, list, key) in tries {
        if backend.is_some_and(|b| b != kind) {
            continue;
        }
        let answer = match client.get(&list_url).send().await {
            Ok(response) if response.status().is_success() => {
                match read_capped(response, MAX_SIDE_BODY).await.and_then(|body| {
                    serde_json::from_slice::<serde_json::Value>(&body)
                        .map_err(|e| format!("not JSON: {e}"))
                }) {
                    Ok(json) if json[list].is_array() => {
                        return Ok((kind, names(&json[list], key)))
                    }
                    Ok(_) => format!("no `{list}` list in the answer"),
                    Err(e) => e,
                }
            }
            Ok(response) => format!("HTTP {}", response.status().as_u16()),
            Err(e) => error_chain(&e),
        };
        tried.push(format!("GET {} ({answer})", redact::url(&list_url)));
    }
    Err(Error::ListModels {
        url: redact::url(url),
        tried: tried.join(", "),
    })
}

/// An Ollama model name in full, as Ollama reads one: `llama3.2` is
/// `registry.ollama.ai/library/llama3.2:latest`, `me/model:q4` is
/// `registry.ollama.ai/me/model:q4`; case does not matter.
pub fn ollama_full_name(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    let (path, tag) = match name.rsplit_once(':') {
        Some((path, tag)) if !tag.contains('/') => (path.to_string(), tag.to_string()),
        _ => (name.clone(), "latest".to_string()),
    };
    let parts: Vec<&str> = path.split('/').collect();
    let full = match parts.as_slice() {
        [model] => format!("registry.ollama.ai/library/{model}"),
        [namespace, model] => format!("registry.ollama.ai/{namespace}/{model}"),
        _ => path.clone(),
    };
    format!("{full}:{tag}")
}

/// Whether two names are one Ollama model.
pub fn same_ollama_model(a: &str, b: &str) -> bool {
    ollama_full_name(a) == ollama_full_name(b)
}

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

    /// Checks, before any load, that the server answers and has the model: Ollama's
    /// `/api/show` (its 404 is what every request would get), OpenAI's `/v1/models`. A server
    /// that cannot be reached, or an Ollama without the model, is an error naming what was
    /// tried and the models the server has; an OpenAI-compatible server that does not list the
    /// model is a warning only, since some (llama-server) answer to any name.
    pub async fn preflight(&self, target: &ScenarioTarget) -> Result<(), Error> {
        let client = reqwest::Client::builder()
            .timeout(PREFLIGHT_TIMEOUT)
            .build()
            .map_err(Error::Client)?;
        let base = self.url.trim_end_matches('/');
        let model = target.model.as_str();
        let fail = |tried: String, message: String| Error::Preflight {
            url: redact::url(&self.url),
            tried,
            message,
        };
        let get_json = |url: String| {
            let client = client.clone();
            async move {
                let response = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| Probe::Unreachable(url.clone(), error_chain(&e)))?;
                if !response.status().is_success() {
                    return Err(Probe::Refused);
                }
                let body = read_capped(response, MAX_SIDE_BODY)
                    .await
                    .map_err(|e| Probe::Unreachable(url.clone(), e))?;
                serde_json::from_slice::<serde_json::Value>(&body)
                    .map_err(|e| Probe::Unreachable(url, format!("not JSON: {e}")))
            }
        };
        match target.backend {
            BackendKind::Ollama => {
                let show = format!("{base}/api/show");
                let answer = client
                    .post(&show)
                    .json(&serde_json::json!({ "model": model }))
                    .send()
                    .await
                    .map_err(|e| fail(format!("POST {show}"), error_chain(&e)))?;
                if answer.status().is_success() {
                    return Ok(());
                }
                let status = answer.status().as_u16();
                let listed = match get_json(format!("{base}/api/tags")).await {
                    Ok(tags) => names(&tags["models"], "name"),
                    Err(_) => Vec::new(),
                };
                // A server without `/api/show` (or with another answer to it) that lists the
                // model under Ollama's own reading of names has it.
                if listed.iter().any(|m| same_ollama_model(m, model)) {
                    return Ok(());
                }
                Err(fail(
                    format!("POST {show}"),
                    format!(
                        "HTTP {status}: the server does not have model {model:?}; it has: {}",
                        listing(&listed)
                    ),
                ))
            }
            BackendKind::Openai => {
                let base = base.strip_suffix("/v1").unwrap_or(base);
                let url = format!("{base}/v1/models");
                match get_json(url.clone()).await {
                    Ok(models) => {
                        let listed = names(&models["data"], "id");
                        if !listed.is_empty() && !listed.iter().any(|m| m == model) {
                            eprintln!("warning: {url} does not list model {model:?} (it lists: {}); some servers answer to any name, others will fail every request as model_not_found", listing(&listed));
                        }
                        Ok(())
                    }
                    // Answered, but without a model list: the server is up.
                    Err(Probe::Refused) => Ok(()),
                    Err(Probe::Unreachable(tried, message)) => {
                        Err(fail(format!("GET {tried}"), message))
                    }
                }
            }
        }
    }

    /// Stops the simulator, if this target started one.
    pub fn disconnect(&mut self) {
        self.simulator = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_names_are_read_as_ollama_reads_them() {
        assert!(same_ollama_model("truth", "truth:latest"));
        assert!(same_ollama_model(
            "llama3.2",
            "registry.ollama.ai/library/llama3.2:latest"
        ));
        assert!(same_ollama_model("Qwen3:0.6B", "qwen3:0.6b"));
        assert!(same_ollama_model(
            "me/model",
            "registry.ollama.ai/me/model:latest"
        ));
        assert!(same_ollama_model(
            "localhost:5000/x/y:1",
            "localhost:5000/x/y:1"
        ));
        assert!(!same_ollama_model("llama3.2:1b", "llama3.2:3b"));
        assert!(!same_ollama_model("llama3.2", "llama3.2:1b"));
        assert!(!same_ollama_model("me/model", "model"));
        assert_eq!(
            ollama_full_name("localhost:5000/x/y"),
            "localhost:5000/x/y:latest"
        );
    }
}
