//! `llm-bench init`: writes starter scenarios, and the schema editors read beside them, into a
//! folder. Nothing is written while any file it would write exists, unless `--force`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::cli::{InitArgs, InitBackend};
use crate::error::Error;
use crate::output::files;
use crate::run::target::list_models;
use crate::scenario::{legacy, schema, starter, BackendKind};
use crate::yaml;

/// What `init` wrote, and what it left as it was.
#[derive(Debug, Default)]
pub struct Written {
    /// Scenario files, in the order a user would open them.
    pub scenarios: Vec<PathBuf>,
    /// The schema file, when it was written (an existing one is kept unless forced).
    pub schema: Option<PathBuf>,
}

/// Writes what the arguments ask for.
pub async fn init(args: &InitArgs) -> Result<Written, Error> {
    let backend = args.backend.map(|b| match b {
        InitBackend::Ollama => BackendKind::Ollama,
        InitBackend::Openai => BackendKind::Openai,
    });
    let planned = if let Some(config) = &args.from_config {
        vec![from_config(config)?]
    } else if let Some(url) = &args.from_server {
        from_server(url, backend, args.max).await?
    } else {
        let backend = backend.unwrap_or_default();
        let model =
            match (&args.model, backend) {
                (Some(model), _) => model.clone(),
                (None, BackendKind::Ollama) => "llama3.2:1b".to_string(),
                (None, BackendKind::Openai) => return Err(Error::Usage(
                    "--backend openai needs --model (the name the server serves; GET /v1/models \
                     lists them), or --from-server URL to ask the server"
                        .into(),
                )),
            };
        vec![(
            format!("{}.yaml", starter::slug(&model)),
            starter::scenario(backend, &model, None),
        )]
    };
    let planned: Vec<(PathBuf, String)> = planned
        .into_iter()
        .map(|(name, text)| (args.dir.join(name), text))
        .collect();
    if !args.force {
        if let Some((path, _)) = planned.iter().find(|(path, _)| path.exists()) {
            return Err(Error::Exists { path: path.clone() });
        }
    }
    let mut written = Written::default();
    let schema_path = args.dir.join("schemas/scenario.schema.json");
    let schema_existed = schema_path.exists();
    if args.force || !schema_existed {
        let text = schema::scenario_schema_json().map_err(|source| Error::Serialize {
            what: "the schema",
            source,
        })?;
        write(&schema_path, &text)?;
        written.schema = Some(schema_path);
    }
    // All or nothing: a write that fails takes back the files this command created before it
    // (a file replaced under --force keeps its new text: its old one is gone either way).
    let mut created: Vec<PathBuf> = written
        .schema
        .iter()
        .filter(|_| !schema_existed)
        .cloned()
        .collect();
    for (path, text) in planned {
        let existed = path.exists();
        if let Err(e) = write(&path, &text) {
            for done in &created {
                let _ = std::fs::remove_file(done);
            }
            return Err(e);
        }
        if !existed {
            created.push(path.clone());
        }
        written.scenarios.push(path);
    }
    Ok(written)
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(Error::io(format!("cannot create {}", dir.display())))?;
    }
    files::replace(path, text.as_bytes()).map_err(Error::Write)
}

/// The scenario equivalent to an original `benchmark_config.yaml`.
fn from_config(config: &Path) -> Result<(String, String), Error> {
    let source = config.display().to_string();
    let text =
        crate::input::read_to_string(config).map_err(Error::io(format!("cannot read {source}")))?;
    let doc = yaml::parse(&text).map_err(|p| Error::InvalidScenario(vec![p.in_file(&source)]))?;
    if !legacy::is_legacy(&doc.value) {
        return Err(Error::Usage(format!(
            "{source} is not the original toolkit's config (it has no `ollama:` or `benchmark:` \
             section, or it has scenario fields); `llm-bench validate` checks a scenario"
        )));
    }
    let scenario = legacy::convert(&doc, &source).map_err(Error::InvalidScenario)?;
    let model = doc.value["ollama"]["model"].as_str().unwrap_or("model");
    Ok((format!("{}.yaml", starter::slug(model)), scenario))
}

/// The longest model name a scenario is written for: names are file names too.
const MAX_NAME_CHARS: usize = 200;

/// A shared base and one scenario per model the server lists. Every name is checked before
/// anything is written: an empty one is skipped with a warning, one that cannot be a scenario
/// (control characters, absurd length) refuses the whole command, and more models than `max`
/// ask for `--max`.
async fn from_server(
    url: &str,
    backend: Option<BackendKind>,
    max: usize,
) -> Result<Vec<(String, String)>, Error> {
    crate::scenario::validate::check_url(url).map_err(Error::Usage)?;
    let (backend, listed) = list_models(url, backend).await?;
    let mut models = Vec::new();
    for model in listed {
        if model.trim().is_empty() {
            eprintln!(
                "warning: {} lists a model with an empty name: skipped",
                crate::output::redact::url(url)
            );
            continue;
        }
        if model.chars().any(char::is_control) || model.chars().count() > MAX_NAME_CHARS {
            let shown: String = model
                .chars()
                .take(60)
                .flat_map(char::escape_debug)
                .collect();
            return Err(Error::Usage(format!(
                "{} lists a model named \"{shown}…\" ({} characters{}): not a name a scenario can be written for; nothing was written",
                crate::output::redact::url(url),
                model.chars().count(),
                if model.chars().any(char::is_control) { ", with control characters" } else { "" },
            )));
        }
        models.push(model);
    }
    let Some(first) = models.first() else {
        return Err(Error::ListModels {
            url: crate::output::redact::url(url),
            tried: "the server lists no models (with Ollama: `ollama pull MODEL` first)".into(),
        });
    };
    if models.len() > max {
        return Err(Error::Usage(format!(
            "{} lists {} models, more than --max {max}: nothing was written; --max {} writes a scenario for each",
            crate::output::redact::url(url),
            models.len(),
            models.len()
        )));
    }
    let mut planned = vec![(
        starter::BASE_PATH.to_string(),
        starter::base(backend, first, url),
    )];
    let mut taken: HashSet<String> = HashSet::new();
    for model in &models {
        let stem = starter::slug(model);
        let mut name = stem.clone();
        let mut n = 2;
        while !taken.insert(name.clone()) {
            name = format!("{stem}-{n}");
            n += 1;
        }
        planned.push((format!("{name}.yaml"), starter::model_file(model)));
    }
    Ok(planned)
}
