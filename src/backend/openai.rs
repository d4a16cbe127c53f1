//! OpenAI-compatible servers (vLLM, llama.cpp's llama-server, TGI, SGLang, LM Studio, Ollama's
//! /v1): POST /v1/chat/completions or /v1/completions with `stream: true` and
//! `stream_options.include_usage`. Timestamps are read as each read comes off the socket.

use futures_util::future::BoxFuture;
use serde_json::{json, Map, Value};

use super::openai_stream::OpenAiStream;
use super::{http, merged_options, Backend, Exchange};
use crate::prompts::Picked;
use crate::scenario::{Api, Prompt, Target};

/// vLLM's default address, used when the scenario gives no `url`.
pub const DEFAULT_URL: &str = "http://localhost:8000";

/// The endpoint for `api` under a base URL given with or without its `/v1`.
pub fn endpoint(base_url: &str, api: Api) -> String {
    let base = base_url.trim_end_matches('/');
    let base = base.strip_suffix("/v1").unwrap_or(base);
    let path = match api {
        Api::Completions => "completions",
        Api::Embeddings => "embeddings",
        Api::Chat | Api::Generate => "chat/completions",
    };
    format!("{base}/v1/{path}")
}

/// Sends prompts to one model behind an OpenAI-compatible API.
pub struct OpenAiBackend {
    client: reqwest::Client,
    /// The measured requests' transport over plain HTTP (reqwest otherwise).
    wire: Option<super::wire::Wire>,
    endpoint: String,
    model: String,
    api: Api,
    settings: http::Settings,
    options: Option<Map<String, Value>>,
    /// Sent as a bearer token; never logged or written anywhere.
    api_key: Option<String>,
}

impl OpenAiBackend {
    /// A backend for `target` at `base_url`, with the key read from `target.api_key_env`.
    pub fn try_new(
        target: &Target,
        base_url: &str,
        api_key: Option<String>,
    ) -> Result<Self, reqwest::Error> {
        let (client, settings) = http::client_for(target)?;
        let endpoint = endpoint(base_url, target.api);
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
            api_key,
        })
    }

    /// The JSON body for one prompt. `options` are merged in at the top level (max_tokens,
    /// temperature, seed, ...), as OpenAI-compatible servers read them.
    pub fn body(&self, prompt: &Prompt, entry_options: Option<&Map<String, Value>>) -> Value {
        let mut body = if self.api == Api::Embeddings {
            // `float`, not openai-python's default `base64`: every server speaks it.
            json!({"model": self.model, "input": super::flat_prompt(prompt), "encoding_format": "float"})
        } else {
            json!({
                "model": self.model,
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        };
        if self.api == Api::Completions {
            body["prompt"] = json!(super::flat_prompt(prompt));
        } else if self.api != Api::Embeddings {
            body["messages"] = match prompt {
                Prompt::Text(text) => json!([{"role": "user", "content": text}]),
                Prompt::WithSystem(p) => {
                    let mut messages = Vec::new();
                    if let Some(system) = &p.system {
                        messages.push(json!({"role": "system", "content": system}));
                    }
                    messages.push(json!({"role": "user", "content": p.prompt}));
                    Value::Array(messages)
                }
                Prompt::Chat(chat) => json!(chat.messages),
            };
        }
        for (key, value) in merged_options(self.options.as_ref(), entry_options).unwrap_or_default()
        {
            body[key] = value;
        }
        body
    }
}

impl Backend for OpenAiBackend {
    fn preconnect(&self, connections: usize) -> BoxFuture<'_, usize> {
        // `/v1/models`: every OpenAI-compatible server has it, and it is small.
        let base = self
            .endpoint
            .rsplit_once("/v1/")
            .map_or(self.endpoint.as_str(), |(base, _)| base);
        let url = format!("{base}/v1/models");
        Box::pin(async move {
            match &self.wire {
                Some(wire) => wire.preconnect(connections).await,
                None => {
                    super::open_connections(
                        &self.client,
                        &url,
                        self.api_key.as_deref(),
                        connections,
                    )
                    .await
                }
            }
        })
    }

    fn receive_clock(&self) -> Option<&'static str> {
        self.wire.as_ref().and_then(|w| w.stamps.clock())
    }

    fn send<'a>(&'a self, request: &'a Picked) -> BoxFuture<'a, Exchange> {
        let body = self.body(&request.prompt, request.options.as_ref());
        if self.api == Api::Embeddings {
            return Box::pin(
                self.send_as::<super::embeddings::EmbeddingsAnswer>(body, "application/json"),
            );
        }
        Box::pin(self.send_as::<OpenAiStream>(body, "text/event-stream"))
    }
}

impl OpenAiBackend {
    async fn send_as<F: http::StreamFold>(&self, body: Value, accept: &'static str) -> Exchange {
        if let Some(wire) = &self.wire {
            let bearer = self.api_key.as_ref().map(|k| format!("Bearer {k}"));
            let mut headers = vec![("accept", accept)];
            if let Some(bearer) = &bearer {
                headers.push(("authorization", bearer.as_str()));
            }
            return http::send_wire::<F>(&self.settings, wire, body, &headers).await;
        }
        http::send::<F>(&self.settings, body, |body| {
            let request = self
                .client
                .post(&self.endpoint)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(reqwest::header::ACCEPT, accept)
                .body(body);
            match &self.api_key {
                Some(key) => request.bearer_auth(key),
                None => request,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_a_base_with_or_without_v1() {
        assert_eq!(
            endpoint("http://h:8000", Api::Chat),
            "http://h:8000/v1/chat/completions"
        );
        assert_eq!(
            endpoint("http://h:8000/v1/", Api::Chat),
            "http://h:8000/v1/chat/completions"
        );
        assert_eq!(
            endpoint("http://h:8000/", Api::Completions),
            "http://h:8000/v1/completions"
        );
        assert_eq!(
            endpoint("http://h:8000/v1", Api::Embeddings),
            "http://h:8000/v1/embeddings"
        );
    }
}
