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
    assert_eq!(written["format_version"], 2);
    let groups = written["aggregates"]["groups"].as_array().unwrap();
    assert!(groups
        .iter()
        .any(|g| g["group"] == serde_json::json!({"level": 8}) && g["trends"]["ttft"].is_string()));
    assert_eq!(written["scenario"]["definition"]["name"], "quickstart");
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

/// Every property of the schemas users write against, with where it sits and its schema.
fn properties(node: &serde_json::Value, at: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match node {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                // `true` only names a property for a `required` beside it (the `extends` rule).
                for (name, prop) in props.iter().filter(|(_, p)| p.is_object()) {
                    out.push((format!("{at}/properties/{name}"), prop.clone()));
                }
            }
            for (key, child) in map {
                properties(child, &format!("{at}/{key}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                properties(item, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn every_authored_field_has_a_description_and_a_valid_example() {
    for file in ["scenario.schema.json", "prompt-set.schema.json"] {
        let schema: serde_json::Value = serde_json::from_str(&committed(file)).unwrap();
        let mut found = Vec::new();
        properties(&schema, "#", &mut found);
        assert!(found.len() > 10, "{file}: {} properties", found.len());
        for (at, prop) in found {
            assert!(
                prop.get("description")
                    .is_some_and(|d| d.as_str().is_some_and(|s| !s.is_empty())),
                "{file} {at}: no description for the editor's hover"
            );
            let examples = prop["examples"]
                .as_array()
                .unwrap_or_else(|| panic!("{file} {at}: no example"));
            // The property's schema, with the $defs its references point into.
            let mut own = prop.clone();
            own["$defs"] = schema["$defs"].clone();
            let validator = jsonschema::validator_for(&own).unwrap();
            for example in examples {
                let errors: Vec<String> = validator
                    .iter_errors(example)
                    .map(|e| e.to_string())
                    .collect();
                assert!(
                    errors.is_empty(),
                    "{file} {at}: example {example} is invalid: {errors:?}"
                );
            }
        }
    }
}

#[test]
fn the_schemas_use_only_standard_formats() {
    const STANDARD: &[&str] = &[
        "date-time",
        "date",
        "time",
        "duration",
        "email",
        "idn-email",
        "hostname",
        "idn-hostname",
        "ipv4",
        "ipv6",
        "uri",
        "uri-reference",
        "iri",
        "iri-reference",
        "uuid",
        "uri-template",
        "json-pointer",
        "relative-json-pointer",
        "regex",
    ];
    for file in [
        "scenario.schema.json",
        "prompt-set.schema.json",
        "result.schema.json",
    ] {
        let text = committed(file);
        let schema: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut formats = Vec::new();
        fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(serde_json::Value::String(f)) = m.get("format") {
                        out.push(f.clone());
                    }
                    m.values().for_each(|c| walk(c, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
                _ => {}
            }
        }
        walk(&schema, &mut formats);
        let unknown: Vec<&String> = formats
            .iter()
            .filter(|f| !STANDARD.contains(&f.as_str()))
            .collect();
        assert!(
            unknown.is_empty(),
            "{file}: formats strict validators refuse: {unknown:?}"
        );
    }
    // The bound a dropped `uint32` format stood for is kept.
    let scenario: serde_json::Value =
        serde_json::from_str(&committed("scenario.schema.json")).unwrap();
    assert_eq!(
        scenario["$defs"]["Conversation"]["properties"]["turns"]["maximum"],
        4294967295u64
    );
}

/// ajv (the validator behind most JSON-Schema tooling) compiles each committed schema in strict
/// mode, and refuses one with a non-standard format, so the check can fail.
#[test]
#[ignore = "needs ajv (AJV_DIR, npm's ajv 8); .ci/run installs it"]
fn ajv_in_strict_mode_accepts_every_schema() {
    let dir = std::env::var("AJV_DIR").expect("AJV_DIR: a folder with node_modules/ajv");
    const SCRIPT: &str = r#"
        const Ajv2020 = require(process.env.AJV_DIR + "/node_modules/ajv/dist/2020").default;
        const fs = require("fs");
        const ajv = new Ajv2020({ strict: true, allErrors: true });
        ajv.compile(JSON.parse(fs.readFileSync(process.argv[1], "utf8")));
    "#;
    let compile = |path: &Path| {
        std::process::Command::new("node")
            .args(["-e", SCRIPT])
            .arg(path)
            .env("AJV_DIR", &dir)
            .output()
            .expect("node runs")
    };
    let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for name in [
        "scenario.schema.json",
        "prompt-set.schema.json",
        "result.schema.json",
    ] {
        let out = compile(&schemas.join(name));
        assert!(
            out.status.success(),
            "ajv strict refuses {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"type": "integer", "format": "uint32"}"#).unwrap();
    let out = compile(&bad);
    assert!(
        !out.status.success(),
        "ajv strict accepted an unknown format"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown format"));
}

/// In the editor a file that `extends` another holds only what it changes: the schema must not
/// call its inherited fields missing, and must for a file that extends nothing.
#[test]
fn the_schema_lets_a_file_that_extends_leave_out_what_it_inherits() {
    let schema: serde_json::Value =
        serde_json::from_str(&committed("scenario.schema.json")).unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let model_file =
        llm_bench::yaml::parse("extends: base.yaml\nname: m\ntarget: {model: m}\n").unwrap();
    assert!(validator.is_valid(&model_file.value));
    let alone = llm_bench::yaml::parse("name: m\ntarget: {model: m}\n").unwrap();
    let missing: Vec<String> = validator
        .iter_errors(&alone.value)
        .map(|e| e.to_string())
        .collect();
    assert!(
        missing
            .iter()
            .any(|e| e.contains("\"prompts\" is a required property")),
        "{missing:?}"
    );
    let typo = llm_bench::yaml::parse("extends: base.yaml\nnmae: m\n").unwrap();
    assert!(
        !validator.is_valid(&typo.value),
        "unknown fields stay errors with extends"
    );
}
