//! Semantic checks the schema cannot express, and the [`Problem`] every check reports.

pub use crate::yaml::Problem;

use super::{Api, BackendKind, Phase, Scenario};

fn check_open(open: &super::OpenModel, problem: &mut impl FnMut(&str, &str)) {
    if open.time_unit.is_some_and(|t| t.get().is_zero()) {
        problem("/time_unit", "must be longer than 0s");
    }
    if open.burstiness.is_some_and(|b| b <= 0.0) {
        problem("/burstiness", "must be greater than 0");
    }
    if open.burstiness.is_some() && open.arrivals != Some(super::Arrivals::Gamma) {
        problem("/burstiness", "applies to `arrivals: gamma` only");
    }
    if let (Some(pre), Some(max)) = (open.pre_allocated_vus, open.max_vus) {
        if pre > max {
            problem("/pre_allocated_vus", "must not exceed max_vus");
        }
    }
}

/// Whether `text` is a URL requests can be sent to: http or https, with a host. Found before
/// anything is sent, instead of every request failing as `disconnected`.
pub fn check_url(text: &str) -> Result<(), String> {
    match reqwest::Url::parse(text) {
        Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(()),
        Ok(url) => Err(format!(
            "{text:?} is not an http:// or https:// URL with a host (scheme {:?})",
            url.scheme()
        )),
        Err(err) => Err(format!("{text:?} is not an http:// or https:// URL: {err}")),
    }
}

/// Every semantic problem of a schema-valid scenario, as (JSON pointer, message).
pub fn check(scenario: &Scenario) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut problem =
        |pointer: String, message: &str| problems.push((pointer, message.to_string()));
    if scenario.name.trim().is_empty() {
        problem("/name".into(), "must not be empty");
    }
    if let Some(tags) = &scenario.target.think_tags {
        if tags.len() == 1 || tags.iter().any(String::is_empty) {
            problem(
                "/target/think_tags".into(),
                "give the pair [open, close], e.g. [\"<think>\", \"</think>\"], or [] to turn it off",
            );
        }
    }
    if let Some(Err(message)) = scenario.target.url.as_deref().map(check_url) {
        problem("/target/url".into(), &message);
    }
    if scenario.target.model.trim().is_empty() {
        problem("/target/model".into(), "a model must be set");
    }
    match (scenario.target.backend, scenario.target.api) {
        (BackendKind::Ollama, Api::Completions) => problem(
            "/target/api".into(),
            "`completions` is an OpenAI endpoint; Ollama's are `chat`, `generate` and `embeddings`",
        ),
        (BackendKind::Openai, Api::Generate) => problem(
            "/target/api".into(),
            "`generate` is an Ollama endpoint; OpenAI's are `chat`, `completions` and `embeddings`",
        ),
        _ => {}
    }
    if let Some(c) = &scenario.conversation {
        if scenario.target.api != Api::Chat {
            problem(
                "/conversation".into(),
                "multi-turn sessions need `api: chat`",
            );
        }
        if c.follow_ups.is_empty() {
            problem(
                "/conversation/follow_ups".into(),
                "at least one follow-up is needed",
            );
        }
    }
    if scenario.target.backend == BackendKind::Ollama && scenario.target.api_key_env.is_some() {
        problem(
            "/target/api_key_env".into(),
            "only the openai backend sends an API key",
        );
    }
    if let Some(timeout) = scenario.target.timeout {
        if timeout.get().is_zero() {
            problem("/target/timeout".into(), "must be longer than 0s");
        }
    }
    if scenario.target.api == Api::Generate {
        if let super::Prompts::List(items) = &scenario.prompts {
            for (i, item) in items.iter().enumerate() {
                if let super::PromptItem::Entry(super::PromptEntry::Full(e)) = item {
                    if e.messages.is_some() {
                        problem(
                            format!("/prompts/{i}"),
                            "a `messages` prompt needs `api: chat` (/api/generate takes a prompt and a system message)",
                        );
                    }
                }
            }
        }
    }
    if matches!(
        scenario.target.tokenizer,
        Some(super::TokenizerKind::Named(_))
    ) && scenario.target.backend == BackendKind::Ollama
    {
        problem(
            "/target/tokenizer".into(),
            "Ollama has no /tokenize endpoint: give the model's tokenizer file instead (`tokenizer: {file: tokenizer.json}`), or leave tokenizer unset (the 4-characters estimate)",
        );
    }
    if scenario.scenarios.is_empty() {
        problem("/scenarios".into(), "at least one scenario is needed");
    }
    for (name, phase) in &scenario.scenarios {
        let at = |field: &str| format!("/scenarios/{name}{field}");
        match phase {
            // Minimums and non-empty lists are in the schema; what is left needs two fields at once.
            Phase::ConcurrencyLevels(_) => {}
            Phase::ConstantVus(p) => match (p.duration, p.iterations) {
                (None, None) => problem(at(""), "give `duration` or `iterations`"),
                (Some(_), Some(_)) => problem(
                    at("/iterations"),
                    "give `duration` or `iterations`, not both",
                ),
                (Some(d), None) if d.get().is_zero() => {
                    problem(at("/duration"), "must be longer than 0s")
                }
                _ => {}
            },
            Phase::ConstantArrivalRate(p) => {
                if p.duration.get().is_zero() {
                    problem(at("/duration"), "must be longer than 0s");
                }
                if p.rate <= 0.0 {
                    problem(
                        at("/rate"),
                        "must be greater than 0: at rate 0 the phase sends nothing",
                    );
                }
                check_open(&p.open, &mut |f, m| problem(at(f), m));
            }
            Phase::RampingArrivalRate(p) => {
                if p.stages.iter().all(|s| s.duration.get().is_zero()) {
                    problem(
                        at("/stages"),
                        "the stages must last longer than 0s in total",
                    );
                }
                if p.start_rate <= 0.0 && p.stages.iter().all(|s| s.target <= 0.0) {
                    problem(
                        at("/stages"),
                        "every target (and start_rate) is 0: the phase would send nothing",
                    );
                }
                check_open(&p.open, &mut |f, m| problem(at(f), m));
            }
            Phase::RateLevels(p) => {
                if p.duration.get().is_zero() {
                    problem(at("/duration"), "must be longer than 0s");
                }
                for (i, rate) in p.rates.iter().enumerate() {
                    if *rate <= 0.0 {
                        problem(
                            at(&format!("/rates/{i}")),
                            "must be greater than 0: at rate 0 the level sends nothing",
                        );
                    }
                }
                check_open(&p.open, &mut |f, m| problem(at(f), m));
            }
            Phase::CapacitySearch(p) => {
                if p.start <= 0.0 {
                    problem(at("/start"), "must be greater than 0");
                }
                if p.growth.is_some_and(|g| g <= 1.0) {
                    problem(at("/growth"), "must be greater than 1");
                }
                if p.precision.is_some_and(|v| v <= 0.0) {
                    problem(at("/precision"), "must be greater than 0");
                }
                if p.step_duration.get().is_zero() {
                    problem(at("/step_duration"), "must be longer than 0s");
                }
                if p.discard.is_some_and(|d| d.get() >= p.step_duration.get()) {
                    problem(at("/discard"), "must be shorter than step_duration");
                }
                if scenario.thresholds.is_none() && scenario.slo.is_none() {
                    problem(at(""), "a capacity search needs thresholds: they define what \"still holds\" means");
                }
            }
            Phase::RampingVus(p) => {
                if p.stages.iter().all(|s| s.duration.get().is_zero()) {
                    problem(
                        at("/stages"),
                        "the stages must last longer than 0s in total",
                    );
                }
                if p.start_vus.unwrap_or(0) == 0 && p.stages.iter().all(|s| s.target == 0) {
                    problem(
                        at("/stages"),
                        "every target (and start_vus) is 0: no virtual user would run",
                    );
                }
            }
        }
    }
    if let Some(p) = scenario
        .outputs
        .as_ref()
        .and_then(|o| o.prometheus.as_ref())
    {
        if p.listen.parse::<std::net::SocketAddr>().is_err() {
            problem(
                "/outputs/prometheus/listen".into(),
                "expected an address such as 127.0.0.1:9464",
            );
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_with_a_host_are_targets() {
        assert!(check_url("http://localhost:11434").is_ok());
        assert!(check_url("https://api.example/v1").is_ok());
        assert!(check_url("${TARGET_URL}").is_err());
        assert!(check_url("not a url").is_err());
        assert!(
            check_url("localhost:11434").is_err(),
            "a host without a scheme"
        );
        assert!(check_url("ftp://host/x").is_err());
    }

    #[test]
    fn a_phase_that_would_do_nothing_is_a_problem() {
        let text = "name: idle\ntarget: {model: m}\nprompts: [hi]\nscenarios:\n\
            \x20 open: {executor: constant-arrival-rate, rate: 0, duration: 10s}\n\
            \x20 ramp: {executor: ramping-arrival-rate, stages: [{target: 0, duration: 5s}]}\n\
            \x20 vus: {executor: ramping-vus, stages: [{target: 0, duration: 5s}]}\n\
            \x20 down: {executor: ramping-vus, start_vus: 2, stages: [{target: 0, duration: 5s}]}\n\
            \x20 search: {executor: capacity-search, start: 1, step_duration: 0s}\n\
            thresholds: {ttft: [\"p(95)<1s\"]}\n";
        let checked = crate::scenario::load::check_str(text, "idle.yaml", &[]).unwrap();
        let Err(crate::scenario::LoadError::Invalid { problems, .. }) = checked.finish() else {
            panic!("phases that send nothing must not validate")
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "scenarios.open.rate",
                "scenarios.ramp.stages",
                "scenarios.vus.stages",
                "scenarios.search.step_duration"
            ],
            "ramping down from 2 VUs does something: {problems:#?}"
        );
    }
}
