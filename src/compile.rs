//! Loading, stage two: a checked scenario -> the runnable parts, each compiled once: the prompt
//! sets (included files read), the hook script and the thresholds. `validate` and `run` both load
//! through here, so `validate` lists every problem a run would meet, each at its file:line:col.
//!
//! Stage one ([`crate::scenario::load`]) knows only the scenario format; this stage sits above
//! prompts, hooks and thresholds, so none of them is imported from below.

use std::path::Path;
use std::sync::Arc;

use crate::hooks::Hooks;
use crate::prompts::{self, PromptSet};
use crate::scenario::load::{check_file, check_str, Checked};
use crate::scenario::set::Set;
use crate::scenario::{LoadError, Problem, Scenario};
use crate::thresholds::{self, Threshold};
use crate::yaml::Document;

/// A scenario that passed every check, compiled into what a run needs.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The typed scenario.
    pub scenario: Scenario,
    /// Where it came from (a path, or `<built-in quickstart>`).
    pub source: String,
    /// SHA-256 of the file text (and of the texts it extends), so two results can be checked
    /// for the same scenario.
    pub content_sha256: String,
    /// The files this one extends, nearest first.
    pub bases: Vec<String>,
    /// When the file is the original toolkit's config: the scenario it was read as.
    pub converted: Option<String>,
    /// The prompts, with included sets read.
    pub prompt_sets: Vec<PromptSet>,
    /// The compiled hook script.
    pub hooks: Option<Arc<Hooks>>,
    /// The thresholds (and `slo:` sugar), compiled against the scenario and the hook script's
    /// custom metrics.
    pub thresholds: Vec<Threshold>,
    /// The `--set` values applied, as written (`--set path=value`), for the result.
    pub overrides: Vec<String>,
    /// The local tokenizer file (`target.tokenizer: {file: ...}`), read and checked at load.
    pub tokenizer: Option<Arc<crate::backend::tokenize::LocalTokenizer>>,
    /// Thresholds left out because the command line replaced the scenarios they were tagged
    /// for (`--num-prompts`), each with why: for the terminal.
    pub set_aside: Vec<String>,
    /// The file's positions, to locate problems found after loading (command-line overrides).
    document: Arc<Document>,
}

impl Loaded {
    /// A problem at a JSON pointer of the scenario file, with its line and column.
    pub fn problem_at(&self, pointer: &str, message: String) -> Problem {
        self.document.problem(&self.source, pointer, message)
    }
}

/// Loads, checks and compiles the scenario at `path`.
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    load_file_with(path, &[])
}

/// Loads, checks and compiles scenario text; `source` names it in error messages.
pub fn load_str(text: &str, source: &str) -> Result<Loaded, LoadError> {
    load_str_with(text, source, &[])
}

/// [`load_file`] with `--set` values applied before the checks.
pub fn load_file_with(path: &Path, sets: &[Set]) -> Result<Loaded, LoadError> {
    compile(check_file(path, sets)?, sets)
}

/// [`load_str`] with `--set` values applied before the checks.
pub fn load_str_with(text: &str, source: &str, sets: &[Set]) -> Result<Loaded, LoadError> {
    compile(check_str(text, source, sets)?, sets)
}

/// Compiles the runnable parts of a checked scenario, adding every problem they reveal.
fn compile(mut checked: Checked, sets: &[Set]) -> Result<Loaded, LoadError> {
    let mut parts = None;
    let mut set_aside = Vec::new();
    if let Some(scenario) = &mut checked.scenario {
        let base = crate::scenario::load::base_dir(&checked.source);
        let mut problems = Vec::new();
        let prompt_sets = prompts::resolve(
            &scenario.prompts,
            &base,
            scenario.target.backend,
            scenario.seed.unwrap_or(1),
        )
        .unwrap_or_else(|found| {
            problems.extend(found);
            Vec::new()
        });
        let tokenizer = match &scenario.target.tokenizer {
            Some(crate::scenario::TokenizerKind::File(f)) => {
                match crate::backend::tokenize::LocalTokenizer::load(&base.join(&f.file)) {
                    Ok(t) => Some(Arc::new(t)),
                    Err(err) => {
                        problems.push(("/target/tokenizer/file".into(), err.to_string()));
                        None
                    }
                }
            }
            _ => None,
        };
        let hooks = match &scenario.hooks {
            Some(h) => match Hooks::load(
                &base.join(&h.script),
                h.timeout.map_or(crate::hooks::DEFAULT_TIMEOUT, |t| t.get()),
            ) {
                Ok(hooks) => Some(Arc::new(hooks)),
                Err(err) => {
                    problems.push(("/hooks/script".into(), err.to_string()));
                    None
                }
            },
            None => None,
        };
        // Thresholds may name the script's custom metrics: with a script that did not compile,
        // they cannot be checked.
        let thresholds = if scenario.hooks.is_some() && hooks.is_none() {
            Vec::new()
        } else {
            let custom = hooks.as_ref().map_or(&[][..], |h| h.custom_metrics());
            let set_names: Vec<&str> = prompt_sets.iter().map(|p| &*p.name).collect();
            if sets.iter().any(Set::replaces_scenarios) {
                set_aside = thresholds::set_aside_unreachable(scenario, &set_names);
            }
            thresholds::compile(scenario, custom, &set_names, !sets.is_empty()).unwrap_or_else(
                |found| {
                    problems.extend(found);
                    Vec::new()
                },
            )
        };
        checked.report(problems);
        parts = Some((prompt_sets, hooks, thresholds, tokenizer));
    }
    let source = checked.source.clone();
    let content_sha256 = checked.content_sha256.clone();
    let bases = checked.bases.clone();
    let converted = checked.converted.clone();
    let (scenario, document) = checked.finish()?;
    let (prompt_sets, hooks, thresholds, tokenizer) = parts.unwrap_or_default();
    Ok(Loaded {
        scenario,
        source,
        content_sha256,
        bases,
        converted,
        prompt_sets,
        hooks,
        thresholds,
        overrides: sets.iter().map(Set::label).collect(),
        set_aside,
        tokenizer,
        document: Arc::new(document),
    })
}
