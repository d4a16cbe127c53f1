//! Writing scenarios, as a new user meets it through the binary: `init` (alone, from a server,
//! from the original toolkit's config), `extends`, the original config run as is, `validate`
//! on prompt sets, completions and `--version`.

use std::path::Path;
use std::process::Output;

use llm_bench::duration::HumanDuration;
use llm_bench::sim::SimConfig;

use crate::common::{bin, start_sim};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The binary run off the test's runtime, so an in-process simulator keeps serving.
async fn llm_bench(args: Vec<String>, dir: &Path) -> Output {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || bin().args(args).current_dir(dir).output().unwrap())
        .await
        .unwrap()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn fast_sim(models: &[&str]) -> SimConfig {
    SimConfig {
        parallel: 8,
        decode_per_token: HumanDuration(std::time::Duration::from_millis(1)),
        prefill_per_token: HumanDuration(std::time::Duration::ZERO),
        load_time: HumanDuration(std::time::Duration::ZERO),
        models: models.iter().map(|m| m.to_string()).collect(),
        ..SimConfig::default()
    }
}

#[test]
fn init_writes_a_valid_commented_starter_and_never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["init", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let file = dir.path().join("llama3.2-1b.yaml");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.starts_with("# yaml-language-server: $schema=schemas/scenario.schema.json"));
    assert!(dir.path().join("schemas/scenario.schema.json").exists());
    let out = bin().arg("validate").arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));

    std::fs::write(&file, "# mine\n").unwrap();
    let out = bin()
        .args(["init", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("exists; --force replaces it"),
        "{}",
        text(&out)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "# mine\n");
    let out = bin()
        .args(["init", "--force", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), written);

    // OpenAI needs to be told the model; the starter then targets an OpenAI server.
    let out = bin()
        .args(["init", "--backend", "openai", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let out = bin()
        .args([
            "init",
            "--backend",
            "openai",
            "--model",
            "Qwen/Qwen2.5-0.5B-Instruct",
            "--dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let openai =
        std::fs::read_to_string(dir.path().join("qwen-qwen2.5-0.5b-instruct.yaml")).unwrap();
    assert!(
        openai.contains("backend: openai") && openai.contains("max_tokens: 256"),
        "{openai}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn init_from_a_server_writes_a_base_and_a_file_per_model_that_run_side_by_side() {
    let sim = start_sim(fast_sim(&["llama3.2:1b", "qwen2.5:0.5b"])).await;
    let dir = tempfile::tempdir().unwrap();
    let out = llm_bench(
        args(&["init", "--from-server", &sim.url(), "--dir", "models"]),
        dir.path(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let models = dir.path().join("models");
    for name in ["shared/base.yaml", "llama3.2-1b.yaml", "qwen2.5-0.5b.yaml"] {
        assert!(models.join(name).exists(), "{name}: {}", text(&out));
    }
    let qwen = std::fs::read_to_string(models.join("qwen2.5-0.5b.yaml")).unwrap();
    assert!(
        qwen.contains("extends: shared/base.yaml") && qwen.contains("model: \"qwen2.5:0.5b\""),
        "{qwen}"
    );

    let out = llm_bench(
        args(&[
            "run",
            "models/llama3.2-1b.yaml",
            "models/qwen2.5-0.5b.yaml",
            "-q",
            "--set",
            "scenarios.sweep.levels=[2]",
            "--set",
            "scenarios.sweep.requests_per_level=4",
            "--set",
            "target.options.num_predict=8",
        ]),
        dir.path(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = table.lines().filter(|l| l.contains(" 4 ")).collect();
    assert!(rows.iter().any(|l| l.contains("llama3.2:1b")), "{table}");
    assert!(rows.iter().any(|l| l.contains("qwen2.5:0.5b")), "{table}");
    let latest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("results/benchmark_latest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(latest["target"]["model"], "qwen2.5:0.5b");
    assert_eq!(
        latest["target"]["url"],
        sim.url(),
        "the base's url, inherited"
    );
    assert_eq!(latest["scenario"]["extends"][0], "models/shared/base.yaml");

    // The same server asked as an OpenAI one lists the same models.
    let out = llm_bench(
        args(&[
            "init",
            "--from-server",
            &sim.url(),
            "--backend",
            "openai",
            "--dir",
            "openai",
        ]),
        dir.path(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let base = std::fs::read_to_string(dir.path().join("openai/shared/base.yaml")).unwrap();
    assert!(base.contains("backend: openai"), "{base}");
    assert!(dir.path().join("openai/qwen2.5-0.5b.yaml").exists());

    // Nothing listening: an error naming what was tried.
    let out = llm_bench(
        args(&[
            "init",
            "--from-server",
            "http://127.0.0.1:9",
            "--dir",
            "none",
        ]),
        dir.path(),
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("cannot list the models of http://127.0.0.1:9"),
        "{}",
        text(&out)
    );
    assert!(!dir.path().join("none").exists(), "nothing written");
}

/// The shipped original config runs against a server as its `slo:` says, and gates like it.
#[tokio::test(flavor = "multi_thread")]
async fn the_original_config_runs_as_is_and_gates_on_its_slo() {
    let sim = start_sim(fast_sim(&["llama3.2:1b"])).await;
    let dir = tempfile::tempdir().unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/benchmark_config.yaml");
    let original = std::fs::read_to_string(&shipped).unwrap();
    std::fs::write(dir.path().join("benchmark_config.yaml"), &original).unwrap();
    let quick = [
        "--target-url",
        &sim.url(),
        "-c",
        "2",
        "--requests-per-level",
        "4",
    ];
    let mut run = args(&["run", "--config", "benchmark_config.yaml"]);
    run.extend(args(&quick));
    let out = llm_bench(run, dir.path()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("is the original toolkit's config; it runs as this scenario"),
        "{said}"
    );
    assert!(
        said.contains("(from slo.p95_latency_ms)")
            && said.contains("(from slo.min_throughput_tps)"),
        "{said}"
    );

    // An SLO the server cannot meet fails the gate, as the original's did.
    let strict = original.replace("p95_latency_ms: 5000", "p95_latency_ms: 1");
    assert_ne!(strict, original, "the shipped config has a p95 SLO");
    std::fs::write(dir.path().join("strict.yaml"), strict).unwrap();
    let mut run = args(&["run", "strict.yaml", "-q"]);
    run.extend(args(&quick));
    let out = llm_bench(run, dir.path()).await;
    assert_eq!(out.status.code(), Some(99), "{}", text(&out));

    // `init --from-config` writes that scenario; it validates as an ordinary one.
    let out = llm_bench(
        args(&[
            "init",
            "--from-config",
            "benchmark_config.yaml",
            "--dir",
            "converted",
        ]),
        dir.path(),
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let converted = dir.path().join("converted/llama3.2-1b.yaml");
    let scenario = std::fs::read_to_string(&converted).unwrap();
    assert!(
        scenario.contains("levels: [1, 2, 4, 8]") && scenario.contains("p99_latency_ms: 10000"),
        "{scenario}"
    );
    let out = bin().arg("validate").arg(&converted).output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("original toolkit"), "{}", text(&out));

    // A mistake in the original layout is reported in the config, at its line.
    std::fs::write(
        dir.path().join("typo.yaml"),
        "ollama:\n  model: m\nbenchmark:\n  concurency_levels: [1]\n",
    )
    .unwrap();
    let out = bin()
        .arg("validate")
        .arg(dir.path().join("typo.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(104));
    assert!(
        text(&out).contains("typo.yaml:4:3: benchmark.concurency_levels: unknown field"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_problem_inherited_through_extends_is_reported_where_it_was_written() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("common")).unwrap();
    std::fs::write(
        dir.path().join("common/base.yaml"),
        "name: base\ntarget:\n  model: m\n  timeout: 10 sec\nprompts: [hi]\nscenarios:\n  s: {executor: concurrency-levels, levels: [1], requests_per_level: 2}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("m.yaml"),
        "extends: common/base.yaml\nname: m\ntarget: {model: other}\n",
    )
    .unwrap();
    let out = bin()
        .args(["validate", "m.yaml"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(104));
    assert!(
        text(&out).contains("common/base.yaml:4:3: target.timeout: invalid duration"),
        "{}",
        text(&out)
    );
}

#[test]
fn validate_checks_a_prompt_set_as_one() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = bin()
        .arg("validate")
        .arg(repo.join("scenarios/prompts/short-chat.yaml"))
        .arg(repo.join("scenarios/prompts/json-output.jsonl"))
        .arg(repo.join("scenarios/quickstart.yaml"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("short-chat.yaml: ok (prompt set `short-chat`, 5 prompt(s))"),
        "{}",
        text(&out)
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("set.yaml");
    std::fs::write(&bad, "# yaml-language-server: $schema=../schemas/prompt-set.schema.json\nprompts:\n  - fine\n  - {system: no prompt}\n").unwrap();
    let out = bin().arg("validate").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(104));
    assert!(
        text(&out).contains("set.yaml:4:5: prompts[1]: give `prompt` or `messages`"),
        "{}",
        text(&out)
    );
    assert!(
        !text(&out).contains("target"),
        "not judged as a scenario: {}",
        text(&out)
    );
}

#[test]
fn completions_version_and_help_tell_the_whole_story() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let out = bin().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("llm-bench") && script.contains("validate"),
            "{shell}: {script}"
        );
    }
    let out = bin().arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match head {
        Some(commit) => assert_eq!(
            version,
            format!("llm-bench {} ({commit})", env!("CARGO_PKG_VERSION"))
        ),
        None => assert!(version.ends_with("(unknown)"), "{version}"),
    }
    let help = String::from_utf8_lossy(&bin().arg("--help").output().unwrap().stdout).into_owned();
    for code in [
        "99 a threshold failed",
        "104 invalid scenario",
        "105 interrupted",
        "107 hook",
    ] {
        assert!(help.contains(code), "{code}: {help}");
    }
}
