//! Ollama's native API over HTTP: POST /api/chat or /api/generate with `stream: true`.
//! Timestamps are read as each read comes off the socket, before any parsing.

use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};

use super::ollama_stream::OllamaStream;
use super::{http, merged_options, Backend, Exchange};
use crate::prompts::Picked;
use crate::scenario::{Api, KeepAlive, Prompt, Role, Target};

/// Ollama's default address, as its CLI uses when `OLLAMA_HOST` is unset.
pub const DEFAULT_URL: &str = "http://localhost:11434";

/// The base URL by precedence: command line, scenario, `OLLAMA_HOST`, default. `OLLAMA_HOST` is
/// read as Ollama's client reads it: scheme optional (http), port optional (11434).
pub fn resolve_ollama_url(
    cli: Option<&str>,
    scenario: Option<&str>,
    ollama_host: Option<&str>,
) -> String {
    if let Some(url) = cli.or(scenario) {
        return url.trim_end_matches('/').to_string();
    }
    match ollama_host.map(str::trim).filter(|h| !h.is_empty()) {
        Some(host) => {
            let (scheme, rest) = match host.split_once("://") {
                Some((scheme, rest)) => (scheme, rest),
                None => ("http", host),
            };
            let rest = rest.trim_end_matches('/');
            let has_port = rest.rsplit_once(':').is_some_and(|(_, port)| {
                port.chars().all(|c| c.is_ascii_digit()) && !rest.ends_with(']')
            });
            if has_port {
                format!("{scheme}://{rest}")
            } else {
                let port = if scheme == "https" { 443 } else { 11434 };
                format!("{scheme}://{rest}:{port}")
            }
        }
        None => DEFAULT_URL.to_string(),
    }
}

/// Sends prompts to one Ollama model.
pub struct OllamaBackend {
    client: reqwest::Client,
    /// The measured requests' transport over plain HTTP (reqwest otherwise).
    wire: Option<super::wire::Wire>,
    endpoint: String,
    model: String,
    api: Api,
    settings: http::Settings,
    options: Option<Map<String, Value>>,
    keep_alive: Option<KeepAlive>,
}

impl OllamaBackend {
    /// A backend for `target` at `base_url`.
    pub fn try_new(target: &Target, base_url: &str) -> Result<Self, reqwest::Error> {
        let (client, settings) = http::client_for(target)?;
        // Validation rejects `completions` for Ollama; its nearest endpoint keeps this total.
        let path = match target.api {
            Api::Chat => "/api/chat",
            Api::Generate | Api::Completions => "/api/generate",
            Api::Embeddings => "/api/embed",
        };
        let endpoint = format!("{}{path}", base_url.trim_end_matches('/'));
        Ok(Self {
            client,
            wire: super::wire::Wire::for_url(
                &endpoint,
                settings.total.min(std::time::Duration::from_secs(10)),
            ),
            endpoint,
            model: target.model.clone(),
            api: target.api,
            settings,
            options: target.options.clone(),
            keep_alive: target.keep_alive.clone(),
        })
    }

    /// The JSON body for one prompt.
    pub fn body(&self, prompt: &Prompt, entry_options: Option<&Map<String, Value>>) -> Value {
        let mut body = json!({"model": self.model, "stream": true});
        match (self.api, prompt) {
            (Api::Embeddings, prompt) => {
                body = json!({"model": self.model, "input": super::flat_prompt(prompt)});
            }
            (Api::Generate | Api::Completions, Prompt::Text(text)) => body["prompt"] = json!(text),
            (Api::Generate | Api::Completions, Prompt::WithSystem(p)) => {
                body["prompt"] = json!(p.prompt);
                if let Some(system) = &p.system {
                    body["system"] = json!(system);
                }
            }
            (Api::Generate | Api::Completions, Prompt::Chat(chat)) => {
                // Validation rejects this pairing; sending the last user turn keeps the backend total.
                let last = chat.messages.iter().rev().find(|m| m.role == Role::User);
                body["prompt"] = json!(last.map_or("", |m| m.content.as_str()));
            }
            (Api::Chat, Prompt::Text(text)) => {
                body["messages"] = json!([{"role": "user", "content": text}]);
            }
            (Api::Chat, Prompt::WithSystem(p)) => {
                let mut messages = Vec::new();
                if let Some(system) = &p.system {
                    messages.push(json!({"role": "system", "content": system}));
                }
                messages.push(json!({"role": "user", "content": p.prompt}));
                body["messages"] = Value::Array(messages);
            }
            (Api::Chat, Prompt::Chat(chat)) => body["messages"] = json!(chat.messages),
        }
        if let Some(options) = merged_options(self.options.as_ref(), entry_options) {
            body["options"] = Value::Object(options);
        }
        if let Some(keep_alive) = &self.keep_alive {
            body["keep_alive"] = json!(keep_alive);
        }
        body
    }
}

impl Backend for OllamaBackend {
    fn preconnect(&self, connections: usize) -> BoxFuture<'_, usize> {
        // The cheapest answer Ollama has: its version.
        let base = self
            .endpoint
            .rsplit_once("/api/")
            .map_or(self.endpoint.as_str(), |(base, _)| base);
        let url = format!("{base}/api/version");
        Box::pin(async move {
            match &self.wire {
                Some(wire) => wire.preconnect(connections).await,
                None => super::open_connections(&self.client, &url, None, connections).await,
            }
        })
    }

    fn receive_clock(&self) -> Option<&'static str> {
        self.wire.as_ref().and_then(|w| w.stamps.clock())
    }

    fn send<'a>(&'a self, request: &'a Picked) -> BoxFuture<'a, Exchange> {
        let body = self.body(&request.prompt, request.options.as_ref());
        if self.api == Api::Embeddings {
            return Box::pin(self.send_as::<super::embeddings::EmbeddingsAnswer>(body));
        }
        Box::pin(self.send_as::<OllamaStream>(body))
    }
}

impl OllamaBackend {
    async fn send_as<F: http::StreamFold>(&self, body: Value) -> Exchange {
        if let Some(wire) = &self.wire {
            return http::send_wire::<F>(
                &self.settings,
                wire,
                body,
                &[("accept", "application/x-ndjson")],
            )
            .await;
        }
        http::send::<F>(&self.settings, body, |body| {
            self.client
                .post(&self.endpoint)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_precedence_is_cli_then_scenario_then_env_then_default() {
        assert_eq!(
            resolve_ollama_url(Some("http://a:1/"), Some("http://b:2"), Some("c")),
            "http://a:1"
        );
        assert_eq!(
            resolve_ollama_url(None, Some("http://b:2"), Some("c")),
            "http://b:2"
        );
        assert_eq!(resolve_ollama_url(None, None, Some("c")), "http://c:11434");
        assert_eq!(resolve_ollama_url(None, None, None), DEFAULT_URL);
    }

    #[test]
    fn ollama_host_is_read_like_ollamas_client() {
        assert_eq!(
            resolve_ollama_url(None, None, Some("0.0.0.0")),
            "http://0.0.0.0:11434"
        );
        assert_eq!(
            resolve_ollama_url(None, None, Some("127.0.0.1:9000")),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            resolve_ollama_url(None, None, Some("https://gpu.example")),
            "https://gpu.example:443"
        );
        assert_eq!(
            resolve_ollama_url(None, None, Some("http://h:8080/")),
            "http://h:8080"
        );
        assert_eq!(resolve_ollama_url(None, None, Some("  ")), DEFAULT_URL);
    }
}
