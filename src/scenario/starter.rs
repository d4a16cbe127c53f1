//! The files `llm-bench init` writes: a commented starter scenario, or a shared base with one
//! small scenario per model that extends it. Pure text; `init` does the writing.

use super::BackendKind;

/// A name safe in file names and result names: `llama3.2:1b` -> `llama3.2-1b`,
/// `Qwen/Qwen2.5-0.5B-Instruct` -> `qwen-qwen2.5-0.5b-instruct`.
pub fn slug(model: &str) -> String {
    let mut out = String::new();
    for c in model.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_matches(['-', '.']);
    if trimmed.is_empty() {
        "model".into()
    } else {
        trimmed.to_string()
    }
}

/// The modeline that gives editors completion and hover help (yaml-language-server), pointing
/// at the schema `init` writes beside the scenarios.
pub const MODELINE: &str = "# yaml-language-server: $schema=schemas/scenario.schema.json";

/// A YAML string: JSON's double-quoted form is valid YAML and escapes everything needed.
pub(crate) fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// The target section, commented for the backend.
fn target(backend: BackendKind, model: &str, url: Option<&str>) -> String {
    let (url_line, options) = match backend {
        BackendKind::Ollama => (
            match url {
                Some(url) => format!("  url: {}\n", quoted(url)),
                None => "  # url: http://localhost:11434   # default: OLLAMA_HOST, else this\n"
                    .to_string(),
            },
            "  options:                          # Ollama `options`, passed through\n    \
             temperature: 0                  # the same answers run after run\n    \
             num_predict: 256                # caps the answer length\n    \
             num_ctx: 4096                   # keep constant: a change reloads the model\n",
        ),
        BackendKind::Openai => (
            format!(
                "  url: {}\n",
                quoted(url.unwrap_or("http://localhost:8000"))
            ),
            "  # api_key_env: OPENAI_API_KEY     # the variable holding a bearer token, if needed\n  \
             options:                          # merged into the request body\n    \
             temperature: 0                  # the same answers run after run\n    \
             max_tokens: 256                 # caps the answer length\n",
        ),
    };
    format!(
        "target:\n  backend: {}\n{url_line}  model: {}\n  timeout: 120s                     # per request, first byte to last\n{options}",
        backend.as_str(),
        quoted(model),
    )
}

/// What every starter measures: a warm-up, a concurrency sweep and a CI gate.
const LOAD: &str = "\
prompts:                            # inline, or {include: prompts/set.yaml} (YAML, JSONL, ShareGPT)
  - Explain what a KV cache is, in three sentences.
  - prompt: Summarise why tail latency grows with queueing.
    system: You are a concise performance engineer.
warmup:
  requests: 2                       # loads the model; excluded from every metric
scenarios:
  sweep:
    executor: concurrency-levels    # closed model: exactly N requests in flight per level
    levels: [1, 2, 4, 8]
    requests_per_level: 20
thresholds:                         # the CI gate: any failure exits 99, after writing results
  ttft: [\"p(95)<2s\"]                # time to first token, what a user feels
  e2e_latency: [\"p(95)<30s\"]
  errors: [\"rate<0.01\"]
";

/// A commented starter scenario for one model.
pub fn scenario(backend: BackendKind, model: &str, url: Option<&str>) -> String {
    format!(
        "{MODELINE}\n#\n\
         # Written by `llm-bench init`. `llm-bench validate {name}.yaml` checks it,\n\
         # `llm-bench run {name}.yaml` runs it (`--target-url URL` points it elsewhere,\n\
         # `--set path=value` changes any field for one run).\n\
         name: {}\n\
         description: {}\n\
         {}{LOAD}",
        quoted(&slug(model)),
        quoted(&format!("Concurrency sweep of {model}")),
        target(backend, model, url),
        name = slug(model),
    )
}

/// Where [`base`] goes, relative to the model files: in its own folder, so `run models/*.yaml`
/// runs the models and not the base.
pub const BASE_PATH: &str = "shared/base.yaml";

/// The base the per-model files extend: everything but the model. It names the first model so
/// it is a valid scenario on its own (editors check it too).
pub fn base(backend: BackendKind, first_model: &str, url: &str) -> String {
    format!(
        "# yaml-language-server: $schema=../schemas/scenario.schema.json\n#\n\
         # Written by `llm-bench init --from-server`: what every model's scenario shares. Each\n\
         # model's file `extends: {BASE_PATH}` and sets its own name and model; a change here\n\
         # applies to all of them. Mappings merge key by key, lists and values replace, `~`\n\
         # removes an inherited field.\n\
         name: base\n\
         description: {}\n\
         {}{LOAD}",
        quoted(&format!("Shared settings for the models of {url}")),
        target(backend, first_model, Some(url)),
    )
}

/// One model's scenario on top of [`base`].
pub fn model_file(model: &str) -> String {
    format!(
        "{MODELINE}\n\
         extends: {BASE_PATH}\n\
         name: {}\n\
         target:\n  model: {}\n",
        quoted(&slug(model)),
        quoted(model),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_file_safe_and_readable() {
        assert_eq!(slug("llama3.2:1b"), "llama3.2-1b");
        assert_eq!(
            slug("Qwen/Qwen2.5-0.5B-Instruct"),
            "qwen-qwen2.5-0.5b-instruct"
        );
        assert_eq!(slug("../../etc"), "etc");
        assert_eq!(slug(":::"), "model");
    }

    #[test]
    fn every_starter_is_a_valid_scenario() {
        for (backend, model) in [
            (BackendKind::Ollama, "llama3.2:1b"),
            (BackendKind::Openai, "Qwen/Qwen2.5-0.5B-Instruct"),
        ] {
            for text in [
                scenario(backend, model, None),
                base(backend, model, "http://127.0.0.1:1"),
            ] {
                let checked = crate::scenario::load::check_str(&text, "starter.yaml", &[]).unwrap();
                let (s, _) = checked.finish().unwrap_or_else(|e| panic!("{e:?}\n{text}"));
                assert_eq!(s.target.model, model);
                assert_eq!(s.target.backend, backend);
                assert!(s.thresholds.is_some(), "a starter gates CI");
            }
        }
    }
}
