//! Rhai hook scripts: `setup()`, `before_request(ctx)`, `after_response(ctx, res)` and
//! `teardown(summary)`, all optional, looked up by name. The script is compiled once; every call
//! runs under limits (operations, wall-clock time, call depth, sizes), so a runaway script is
//! stopped with an error instead of hanging the run. Scripts have no file access: `import` is
//! refused and `sleep` is not available.
//!
//! Rhai passes maps by value: `before_request` returns the (modified) `ctx`, or `false` to skip
//! the request; `after_response` returns a map of check names to booleans.

use std::cell::Cell;
use std::path::Path;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use rhai::{Dynamic, Engine, Scope, AST};
use serde_json::{json, Map, Value};

use crate::backend::Measurement;
use crate::prompts::Picked;
use crate::scenario::{ChatPrompt, Message, Prompt, PromptWithSystem};

/// Operations one hook call may take: generous for real checks, fatal for an endless loop.
pub const MAX_OPERATIONS: u64 = 2_000_000;
/// Wall-clock time one hook call may take unless `hooks.timeout` says otherwise. An operation
/// limit is not a time limit: two million operations that each copy megabytes run for minutes.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
/// The largest string a script may build, in bytes.
const MAX_STRING: usize = 1 << 20;
/// The most items in an array or map a script may build.
const MAX_ITEMS: usize = 10_000;

/// Memory one hook call may add to the process, in bytes. Rhai bounds each string, array and
/// map, not their sum: a map of large strings could otherwise take the machine's memory.
const MAX_GROWTH: u64 = 256 << 20;

thread_local! {
    /// When the hook call running on this thread must stop, and the process's resident memory
    /// when it started.
    static LIMITS: Cell<Option<(Instant, u64)>> = const { Cell::new(None) };
}

/// The process's resident memory in bytes (Linux `/proc/self/statm`); 0 where unknown.
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Why the running call must stop, if it must: checked every 256 operations for time and every
/// 1024 for memory (reading the clock, and more so `/proc`, is not free).
fn over_limit(operations: u64) -> Option<&'static str> {
    if operations % 256 != 0 {
        return None;
    }
    let (deadline, start_memory) = LIMITS.get()?;
    if Instant::now() >= deadline {
        return Some("the hook call ran out of time (hooks.timeout)");
    }
    if operations % 1024 == 0 && resident_bytes().saturating_sub(start_memory) > MAX_GROWTH {
        return Some("the hook call used more than 256 MiB of memory");
    }
    None
}

/// A failed hook call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{script}: {function}: {message}")]
pub struct HookError {
    /// The script's file name.
    pub script: String,
    /// The hook function.
    pub function: &'static str,
    /// What went wrong (Rhai's words, with the script position).
    pub message: String,
}

/// Why a hook script cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file does not read.
    #[error("cannot read hook script {}: {source}", path.display())]
    Read {
        /// The script's path.
        path: std::path::PathBuf,
        /// The I/O failure.
        source: std::io::Error,
    },
    /// Rhai refuses the script.
    #[error("{script}: line {line}, column {column}: {message}")]
    Syntax {
        /// The script's path (`<script>` for text compiled directly).
        script: String,
        /// Where, 1-based (0 when Rhai gives no position).
        line: usize,
        /// The column.
        column: usize,
        /// Rhai's words.
        message: String,
    },
}

/// What `after_response` observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// Named checks.
    pub checks: Vec<(String, bool)>,
    /// Custom metrics recorded with `metric(name, value)`.
    pub metrics: Vec<(String, f64)>,
}

/// What `before_request` decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Before {
    /// Send this (possibly rewritten) request; the custom metrics the call recorded with
    /// `metric()` belong to it.
    Send(Picked, Vec<(String, f64)>),
    /// Do not send; the request is counted as skipped.
    Skip,
}

/// A compiled script and the data `setup()` returned.
pub struct Hooks {
    engine: Engine,
    ast: AST,
    script: String,
    custom_metrics: Vec<String>,
    shared: RwLock<Dynamic>,
    /// Wall-clock limit of one call.
    timeout: Duration,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hooks").finish_non_exhaustive()
    }
}

fn to_dynamic(v: &Value) -> Dynamic {
    rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT)
}

fn from_dynamic(d: &Dynamic) -> Value {
    rhai::serde::from_dynamic(d).unwrap_or(Value::Null)
}

impl Hooks {
    /// Compiles the script at `path` with each call limited to `timeout`; a syntax error names
    /// the line.
    pub fn load(path: &Path, timeout: Duration) -> Result<Hooks, LoadError> {
        let text = crate::input::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let mut hooks = Self::compile_named(&text, &name).map_err(|e| match e {
            LoadError::Syntax {
                line,
                column,
                message,
                ..
            } => LoadError::Syntax {
                script: path.display().to_string(),
                line,
                column,
                message,
            },
            other => other,
        })?;
        hooks.timeout = timeout;
        Ok(hooks)
    }

    /// Compiles script text.
    pub fn compile(text: &str) -> Result<Hooks, LoadError> {
        Self::compile_named(text, "<script>")
    }

    /// The names passed to `metric("...", value)` in the script, found when it is loaded so
    /// thresholds can name them.
    pub fn custom_metrics(&self) -> &[String] {
        &self.custom_metrics
    }

    fn compile_named(text: &str, script: &str) -> Result<Hooks, LoadError> {
        let mut engine = Engine::new();
        engine.set_max_operations(MAX_OPERATIONS);
        engine.set_max_call_levels(64);
        engine.set_max_expr_depths(64, 64);
        engine.set_max_string_size(MAX_STRING);
        engine.set_max_array_size(MAX_ITEMS);
        engine.set_max_map_size(MAX_ITEMS);
        // No file access: `import "/any/path"` would load any script on the machine.
        engine.set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new());
        // A hook that sleeps holds a VU (and its thread) for as long as it likes.
        engine.register_fn("sleep", |_: f64| -> Result<(), Box<rhai::EvalAltResult>> {
            Err("sleep is not available in hook scripts".into())
        });
        engine.register_fn("sleep", |_: i64| -> Result<(), Box<rhai::EvalAltResult>> {
            Err("sleep is not available in hook scripts".into())
        });
        // Time and memory limits per call; the reason travels in the termination token.
        engine.on_progress(|operations| over_limit(operations).map(Dynamic::from));
        // `res.text.parse_json()`: the value, or () when the text is not JSON.
        engine.register_fn("parse_json", |text: &str| {
            serde_json::from_str::<Value>(text).map_or(Dynamic::UNIT, |v| to_dynamic(&v))
        });
        // `metric("name", value)`: a custom trend, collected per call (calls are synchronous).
        engine.register_fn("metric", |name: &str, value: f64| {
            record_metric(name, value)
        });
        engine.register_fn("metric", |name: &str, value: i64| {
            record_metric(name, value as f64)
        });
        let ast = engine.compile(text).map_err(|e| LoadError::Syntax {
            script: script.to_string(),
            line: e.1.line().unwrap_or(0),
            column: e.1.position().unwrap_or(0),
            message: e.0.to_string(),
        })?;
        let custom_metrics = metric_names(text);
        Ok(Hooks {
            engine,
            ast,
            script: script.to_string(),
            custom_metrics,
            shared: RwLock::new(Dynamic::UNIT),
            timeout: DEFAULT_TIMEOUT,
        })
    }

    fn has(&self, name: &str) -> bool {
        self.ast.iter_functions().any(|f| f.name == name)
    }

    fn call(
        &self,
        function: &'static str,
        args: impl rhai::FuncArgs,
    ) -> Result<Dynamic, HookError> {
        let deadline = Instant::now()
            .checked_add(self.timeout)
            .unwrap_or_else(|| Instant::now() + DEFAULT_TIMEOUT);
        LIMITS.set(Some((deadline, resident_bytes())));
        let result = self
            .engine
            .call_fn::<Dynamic>(&mut Scope::new(), &self.ast, function, args);
        LIMITS.set(None);
        let result = result.map_err(|e| match *e {
            rhai::EvalAltResult::ErrorTerminated(reason, position) => {
                let reason = reason.into_string().unwrap_or_default();
                format!("{reason} ({position})")
            }
            other => other.to_string(),
        });
        result.map_err(|message| HookError {
            script: self.script.clone(),
            function,
            message,
        })
    }

    /// Runs `setup()` once; what it returns is `ctx.data` in every later call.
    pub fn setup(&self) -> Result<(), HookError> {
        if self.has("setup") {
            let shared = self.call("setup", ())?;
            *self.shared.write().unwrap_or_else(|e| e.into_inner()) = shared;
        }
        Ok(())
    }

    fn context(&self, picked: &Picked, info: &RequestInfo) -> Value {
        let (prompt, system, messages) = match &picked.prompt {
            Prompt::Text(t) => (Value::from(t.clone()), Value::Null, Value::Null),
            Prompt::WithSystem(p) => (
                Value::from(p.prompt.clone()),
                p.system.clone().map_or(Value::Null, Value::from),
                Value::Null,
            ),
            Prompt::Chat(c) => (Value::Null, Value::Null, json!(c.messages)),
        };
        json!({
            "vu": info.vu,
            "vars": info.vars,
            "iteration": info.iteration,
            "scenario": info.scenario,
            "group": info.group,
            "level": info.level,
            "prompt_set": &*picked.set,
            "prompt": prompt,
            "system": system,
            "messages": messages,
            "options": picked.options.clone().map_or(Value::Null, Value::Object),
            "data": from_dynamic(&self.shared.read().unwrap_or_else(|e| e.into_inner())),
        })
    }

    /// `before_request(ctx)`: the request to send, rewritten as the script wants, or a skip.
    pub fn before_request(&self, picked: &Picked, info: &RequestInfo) -> Result<Before, HookError> {
        if !self.has("before_request") {
            return Ok(Before::Send(picked.clone(), Vec::new()));
        }
        RECORDED.with(|r| r.borrow_mut().clear());
        let out = self.call("before_request", (to_dynamic(&self.context(picked, info)),))?;
        let metrics = RECORDED.with(|r| std::mem::take(&mut *r.borrow_mut()));
        if out.as_bool() == Ok(false) {
            return Ok(Before::Skip);
        }
        let Value::Object(ctx) = from_dynamic(&out) else {
            return Ok(Before::Send(picked.clone(), metrics));
        };
        let text = |k: &str| ctx.get(k).and_then(Value::as_str).map(str::to_string);
        let prompt = match (ctx.get("messages").filter(|m| !m.is_null()), text("prompt")) {
            (Some(m), _) => Prompt::Chat(ChatPrompt {
                messages: serde_json::from_value::<Vec<Message>>(m.clone()).map_err(|e| {
                    HookError {
                        script: self.script.clone(),
                        function: "before_request",
                        message: format!("ctx.messages: {e}"),
                    }
                })?,
            }),
            (None, Some(prompt)) => match text("system") {
                Some(system) => Prompt::WithSystem(PromptWithSystem {
                    prompt,
                    system: Some(system),
                }),
                None => Prompt::Text(prompt),
            },
            (None, None) => picked.prompt.clone(),
        };
        let options = ctx
            .get("options")
            .and_then(Value::as_object)
            .cloned()
            .map(Map::from_iter);
        Ok(Before::Send(
            Picked {
                prompt,
                options,
                set: picked.set.clone(),
                index: picked.index,
                vars: picked.vars.clone(),
                tags: picked.tags.clone(),
                entry: picked.entry.clone(),
            },
            metrics,
        ))
    }

    /// Whether `after_response` is defined (it costs a call per request).
    pub fn checks_responses(&self) -> bool {
        self.has("after_response")
    }

    /// `after_response(ctx, res)`: named checks.
    /// Returns the named checks and the custom metrics the call recorded with `metric()`.
    pub fn after_response(
        &self,
        picked: &Picked,
        info: &RequestInfo,
        m: &Measurement,
    ) -> Result<Observed, HookError> {
        if !self.has("after_response") {
            return Ok(Observed::default());
        }
        let ms = crate::duration::millis;
        let res = json!({
            "text": m.text,
            "thinking": m.thinking,
            "status": m.status,
            "ok": m.error.is_none(),
            "error": m.error.as_ref().map(|e| e.message.clone()),
            "error_kind": m.error.as_ref().map(|e| e.kind.as_str()),
            "tokens": m.output_tokens,
            "prompt_tokens": m.prompt_tokens,
            "ttft_ms": m.ttft.map(ms),
            "e2e_ms": ms(m.e2e),
            "done_reason": m.done_reason,
            // Every choice of an `n > 1` answer; `text` is the first.
            "choices": std::iter::once(json!({"index": 0, "text": m.text, "finish_reason": m.done_reason}))
                .chain(m.other_choices.iter().map(|c| json!({"index": c.index, "text": c.text, "finish_reason": c.finish_reason})))
                .collect::<Vec<_>>(),
        });
        RECORDED.with(|r| r.borrow_mut().clear());
        let out = self.call(
            "after_response",
            (to_dynamic(&self.context(picked, info)), to_dynamic(&res)),
        )?;
        let metrics = RECORDED.with(|r| std::mem::take(&mut *r.borrow_mut()));
        match from_dynamic(&out) {
            Value::Object(map) => Ok(Observed {
                checks: map
                    .into_iter()
                    .map(|(k, v)| (k, v.as_bool().unwrap_or(false)))
                    .collect(),
                metrics,
            }),
            Value::Null => Ok(Observed {
                checks: Vec::new(),
                metrics,
            }),
            other => Err(HookError {
                script: self.script.clone(),
                function: "after_response",
                message: format!("must return a map of check names to booleans, not {other}"),
            }),
        }
    }

    /// `teardown(summary)`, once at the end.
    pub fn teardown(&self, summary: &Value) -> Result<(), HookError> {
        if self.has("teardown") {
            let _ = self.call("teardown", (to_dynamic(summary),))?;
        }
        Ok(())
    }
}

thread_local! {
    /// `metric()` calls of the hook call running on this thread (Rhai calls are synchronous).
    static RECORDED: std::cell::RefCell<Vec<(String, f64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn record_metric(name: &str, value: f64) {
    RECORDED.with(|r| r.borrow_mut().push((name.to_string(), value)));
}

/// Names written as `metric("NAME", ...)` in the script text.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .match_indices("metric(\"")
        .filter_map(|(i, m)| text[i + m.len()..].split('"').next().map(str::to_string))
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Where a request stands, for `ctx`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestInfo {
    /// The VU sending it, from 1 (in the open model, the number of its busy slot); 0 for warm-up.
    pub vu: u64,
    /// The values drawn for the entry's `{{ var }}` placeholders.
    pub vars: std::collections::BTreeMap<String, String>,
    /// The request's number in the run, from 0.
    pub iteration: u64,
    /// The scenario (phase) name.
    pub scenario: String,
    /// "level 4", "stage 2", "all", ...
    pub group: String,
    /// The concurrency level, for concurrency-levels.
    pub level: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picked(text: &str) -> Picked {
        Picked {
            prompt: Prompt::Text(text.into()),
            options: None,
            set: "inline".into(),
            index: 0,
            vars: Default::default(),
            tags: std::sync::Arc::from([]),
            entry: None,
        }
    }

    fn info() -> RequestInfo {
        RequestInfo {
            vu: 1,
            vars: std::collections::BTreeMap::from([("topic".to_string(), "tea".to_string())]),
            iteration: 7,
            scenario: "s".into(),
            group: "level 2".into(),
            level: Some(2),
        }
    }

    #[test]
    fn before_request_rewrites_prompts_and_options_or_skips() {
        let hooks = Hooks::compile(
            r#"
            fn setup() { #{ suffix: " Answer briefly." } }
            fn before_request(ctx) {
                if ctx.iteration == 3 { return false; }
                ctx.prompt = ctx.prompt + ctx.data.suffix + " (vu " + ctx.vu + ", " + ctx.vars.topic + ")";
                ctx.options = #{ num_predict: 7 };
                ctx
            }
        "#,
        )
        .unwrap();
        hooks.setup().unwrap();
        let Before::Send(p, _) = hooks.before_request(&picked("Hi."), &info()).unwrap() else {
            panic!()
        };
        assert_eq!(
            p.prompt,
            Prompt::Text("Hi. Answer briefly. (vu 1, tea)".into())
        );
        assert_eq!(p.options.unwrap()["num_predict"], 7);
        let skip = RequestInfo {
            iteration: 3,
            ..info()
        };
        assert_eq!(
            hooks.before_request(&picked("Hi."), &skip).unwrap(),
            Before::Skip
        );
    }

    #[test]
    fn after_response_returns_named_checks() {
        let hooks = Hooks::compile(r#"
            fn after_response(ctx, res) {
                #{ "valid json": res.text.parse_json() != (), "short": res.tokens < 10, "level": ctx.level == 2 }
            }
        "#).unwrap();
        let m = Measurement {
            text: "{\"a\": 1}".into(),
            output_tokens: 12,
            ..Measurement::default()
        };
        let mut checks = hooks
            .after_response(&picked("x"), &info(), &m)
            .unwrap()
            .checks;
        checks.sort();
        assert_eq!(
            checks,
            vec![
                ("level".into(), true),
                ("short".into(), false),
                ("valid json".into(), true)
            ]
        );
        let not_json = Measurement {
            text: "nope".into(),
            ..Measurement::default()
        };
        assert!(hooks
            .after_response(&picked("x"), &info(), &not_json)
            .unwrap()
            .checks
            .contains(&("valid json".into(), false)));
    }

    #[test]
    fn custom_metrics_are_recorded_per_call_and_named_in_the_script() {
        let hooks = Hooks::compile(r#"fn after_response(ctx, res) { metric("answer_chars", res.text.len()); metric("score", 0.5); #{} }"#).unwrap();
        assert_eq!(hooks.custom_metrics(), ["answer_chars", "score"]);
        let m = Measurement {
            text: "hello".into(),
            ..Measurement::default()
        };
        let metrics = hooks
            .after_response(&picked("x"), &info(), &m)
            .unwrap()
            .metrics;
        assert_eq!(
            metrics,
            vec![
                ("answer_chars".to_string(), 5.0),
                ("score".to_string(), 0.5)
            ]
        );
        let again = hooks
            .after_response(&picked("x"), &info(), &m)
            .unwrap()
            .metrics;
        assert_eq!(again.len(), 2, "each call starts empty");
    }

    #[test]
    fn before_request_records_metrics_for_the_request_it_sends() {
        let hooks = Hooks::compile(
            r#"fn before_request(ctx) { metric("prompt_chars", ctx.prompt.len()); ctx }"#,
        )
        .unwrap();
        let Before::Send(_, metrics) = hooks.before_request(&picked("Hello"), &info()).unwrap()
        else {
            panic!("sent")
        };
        assert_eq!(metrics, vec![("prompt_chars".to_string(), 5.0)]);
    }

    #[test]
    fn after_response_sees_every_choice() {
        let hooks = Hooks::compile(
            r#"fn after_response(ctx, res) { #{ three: res.choices.len() == 3, first: res.choices[0].text == res.text, last: res.choices[2].text == "c" } }"#,
        )
        .unwrap();
        let choice = |index: u64, text: &str| crate::backend::Choice {
            index,
            text: text.into(),
            finish_reason: None,
        };
        let m = Measurement {
            text: "a".into(),
            other_choices: vec![choice(1, "b"), choice(2, "c")],
            ..Measurement::default()
        };
        let observed = hooks.after_response(&picked("x"), &info(), &m).unwrap();
        assert!(observed.checks.iter().all(|(_, ok)| *ok), "{observed:?}");
        assert_eq!(observed.checks.len(), 3);
    }

    #[test]
    fn scripts_cannot_sleep_read_files_or_run_past_their_time() {
        let err = Hooks::compile("fn before_request(ctx) { sleep(3600); ctx }")
            .unwrap()
            .before_request(&picked("x"), &info())
            .unwrap_err();
        assert!(err.message.contains("sleep is not available"), "{err}");
        let err = Hooks::compile("fn setup() { sleep(1e300); }")
            .unwrap()
            .setup()
            .unwrap_err();
        assert!(err.message.contains("sleep is not available"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x.rhai"), "fn f() { 1 }").unwrap();
        let script = format!(
            "fn setup() {{ import \"{}\" as x; }}",
            dir.path().join("x").display()
        );
        let err = Hooks::compile(&script).unwrap().setup().unwrap_err();
        assert!(err.message.to_lowercase().contains("module"), "{err}");
        // Few operations, each copying a megabyte: the operation limit would allow minutes.
        let mut slow = Hooks::compile(
            r#"fn before_request(ctx) { let big = "x"; big.pad(500000, "y"); for i in 0..1000000 { let copy = big + big; } ctx }"#,
        )
        .unwrap();
        slow.timeout = Duration::from_millis(100);
        let started = Instant::now();
        let err = slow.before_request(&picked("x"), &info()).unwrap_err();
        assert!(err.message.contains("ran out of time"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    #[test]
    fn scripts_cannot_build_unbounded_data() {
        let mut greedy = Hooks::compile(
            r#"fn setup() { let m = #{}; for i in 0..100000 { let s = "x"; s.pad(1000000, "y"); m[i.to_string()] = s; } }"#,
        )
        .unwrap();
        greedy.timeout = Duration::from_secs(60);
        let err = greedy.setup().unwrap_err();
        // The items limit (10,000) would allow a gigabyte here; the memory limit stops it first.
        assert!(err.message.contains("more than 256 MiB"), "{err}");
    }

    #[test]
    fn runaway_scripts_are_stopped_and_errors_name_the_hook() {
        let hooks = Hooks::compile("fn before_request(ctx) { loop { } }").unwrap();
        let err = hooks.before_request(&picked("x"), &info()).unwrap_err();
        assert_eq!(err.function, "before_request");
        assert!(
            err.message.to_lowercase().contains("too many operations"),
            "{err}"
        );
        let err = Hooks::compile("fn setup() { let x = ; }").err().unwrap();
        assert!(matches!(err, LoadError::Syntax { line: 1, .. }), "{err}");
        assert!(
            err.to_string().starts_with("<script>: line 1, column "),
            "{err}"
        );
        assert!(err.to_string().len() > 20);
        let failing =
            Hooks::compile(r#"fn teardown(summary) { throw "no " + summary.requests }"#).unwrap();
        assert!(failing
            .teardown(&json!({"requests": 3}))
            .unwrap_err()
            .message
            .contains("no 3"));
    }
}
