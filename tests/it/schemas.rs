//! Contract tests: the committed schemas are what the code generates, and real results validate
//! against the result schema.

use crate::common;
use std::path::Path;

use llm_bench::result::result_schema_json;
use llm_bench::scenario::schema::scenario_schema_json;

fn committed(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("schemas")
            .join(name),
    )
    .unwrap()
}

#[test]
fn committed_scenario_schema_is_current() {
    assert!(committed("scenario.schema.json") == scenario_schema_json().unwrap(), "schemas/scenario.schema.json is stale: run `cargo run -- schema > schemas/scenario.schema.json`");
}

#[test]
fn committed_prompt_set_schema_is_current_and_the_library_follows_it() {
    let schema = llm_bench::scenario::schema::prompt_set_schema_json().unwrap();
    assert!(committed("prompt-set.schema.json") == schema, "schemas/prompt-set.schema.json is stale: run `cargo run -- schema --prompt-set > schemas/prompt-set.schema.json`");
    let validator = jsonschema::validator_for(&serde_json::from_str(&schema).unwrap()).unwrap();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/prompts");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let doc = llm_bench::yaml::parse(&std::fs::read_to_string(&path).unwrap()).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&doc.value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        }
        assert!(
            llm_bench::load_prompt_set(&path).is_ok(),
            "{}",
            path.display()
        );
    }
}

#[test]
fn committed_result_schema_is_current() {
    assert!(committed("result.schema.json") == result_schema_json().unwrap(), "schemas/result.schema.json is stale: run `cargo run -- schema --result > schemas/result.schema.json`");
}

#[tokio::test(start_paused = true)]
async fn a_real_result_validates_against_the_result_schema() {
    let loaded = llm_bench::load_scenario(
        Some(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/quickstart.yaml")),
        &[],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = common::run(loaded, &common::options(dir.path(), None)).await;
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out.result_path).unwrap()).unwrap();
    let schema: serde_json::Value = serde_json::from_str(&committed("result.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&written)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    assert_eq!(written["format_version"], 1);
    assert_eq!(written["target"]["simulated"], true);
    assert!(
        written["scenario"]["content_sha256"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );
    assert!(!written["timeseries"].as_array().unwrap().is_empty());
}
