//! The scenario JSON Schema: generated from the Rust types, and the checker that turns schema
//! failures into messages a user can act on.

use std::sync::OnceLock;

use jsonschema::error::ValidationErrorKind;
use jsonschema::ValidationError;
use serde_json::Value;

use super::Scenario;

/// The scenario schema as pretty JSON, exactly as committed in `schemas/scenario.schema.json`.
pub fn scenario_schema_json() -> serde_json::Result<String> {
    let schema = schemars::schema_for!(Scenario);
    pretty(&schema)
}

/// The prompt-set file schema, as committed in `schemas/prompt-set.schema.json`.
pub fn prompt_set_schema_json() -> serde_json::Result<String> {
    pretty(&schemars::schema_for!(super::PromptSetFile))
}

/// Pretty JSON with a trailing newline, the form every committed schema file has.
pub fn pretty(schema: &schemars::Schema) -> serde_json::Result<String> {
    Ok(serde_json::to_string_pretty(schema)? + "\n")
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema = serde_json::to_value(schemars::schema_for!(Scenario))
            .expect("a generated schema is valid JSON");
        jsonschema::validator_for(&schema).expect("the generated schema compiles")
    })
}

/// Every schema problem in `value`, as (JSON pointer, message).
pub fn check(value: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for error in validator().iter_errors(value) {
        explain(&error, &mut out);
    }
    out
}

/// Turns one validation error into messages. For `oneOf`/`anyOf` it reports the branch the user
/// evidently meant (the one whose type and discriminator match) instead of "not valid under any
/// of the given schemas", which names neither the field nor the fix.
fn explain(error: &ValidationError<'_>, out: &mut Vec<(String, String)>) {
    let pointer = error.instance_path().as_str().to_string();
    match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            let relevant: Vec<_> = context
                .iter()
                .filter(|branch| !branch.iter().any(|e| is_mismatch(e, &pointer)))
                .collect();
            match relevant.iter().min_by_key(|branch| branch.len()) {
                Some(branch) => branch.iter().for_each(|e| explain(e, out)),
                None => {
                    // Point at the discriminator (`executor:`) when that is what matched nothing.
                    let at = context
                        .iter()
                        .flatten()
                        .find(|e| matches!(e.kind(), ValidationErrorKind::Constant { .. }))
                        .map_or(pointer.clone(), |e| e.instance_path().as_str().to_string());
                    out.push((at, no_branch_message(error, context)));
                }
            }
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            for key in unexpected {
                out.push((format!("{pointer}/{key}"), format!("unknown field `{key}`")));
            }
        }
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            out.push((pointer, format!("missing required field `{name}`")));
        }
        ValidationErrorKind::Pattern { pattern } if pattern == crate::duration::PATTERN => {
            let text = error.instance().as_str().unwrap_or_default();
            let message = crate::duration::parse(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| error.to_string());
            out.push((pointer, message));
        }
        _ => out.push((pointer, error.to_string())),
    }
}

/// A branch error that shows the branch is not the one meant: the wrong JSON type for the value
/// itself, or a wrong discriminator (`executor: ...`) right below it.
fn is_mismatch(error: &ValidationError<'_>, branch_pointer: &str) -> bool {
    let at = error.instance_path().as_str();
    let is_self = at == branch_pointer;
    let is_child = at
        .strip_prefix(branch_pointer)
        .is_some_and(|rest| rest.starts_with('/') && !rest[1..].contains('/'));
    match error.kind() {
        ValidationErrorKind::Type { .. } => is_self,
        ValidationErrorKind::Constant { .. } | ValidationErrorKind::Enum { .. } => {
            is_self || is_child
        }
        _ => false,
    }
}

fn no_branch_message(error: &ValidationError<'_>, context: &[Vec<ValidationError<'_>>]) -> String {
    let expected: Vec<String> = context
        .iter()
        .flatten()
        .filter_map(|e| match e.kind() {
            ValidationErrorKind::Constant { expected_value } => {
                expected_value.as_str().map(str::to_string)
            }
            _ => None,
        })
        .collect();
    if expected.is_empty() {
        return format!("{} does not match any allowed form", error.instance());
    }
    let given = context
        .iter()
        .flatten()
        .find(|e| matches!(e.kind(), ValidationErrorKind::Constant { .. }))
        .map(|e| e.instance().to_string())
        .unwrap_or_default();
    format!(
        "unknown value {given}; expected one of: {}",
        expected.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "name": "t",
            "target": {"model": "m"},
            "prompts": ["hi"],
            "scenarios": {"sweep": {"executor": "concurrency-levels", "levels": [1], "requests_per_level": 2}}
        })
    }

    #[test]
    fn valid_scenario_has_no_problems() {
        assert_eq!(check(&base()), Vec::<(String, String)>::new());
    }

    #[test]
    fn typo_inside_an_executor_names_the_key() {
        let mut v = base();
        v["scenarios"]["sweep"] =
            json!({"executor": "concurrency-levels", "levls": [1], "requests_per_level": 2});
        let problems = check(&v);
        assert!(problems.contains(&(
            "/scenarios/sweep/levls".into(),
            "unknown field `levls`".into()
        )));
        assert!(problems.contains(&(
            "/scenarios/sweep".into(),
            "missing required field `levels`".into()
        )));
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn unknown_executor_lists_the_executors() {
        let mut v = base();
        v["scenarios"]["sweep"]["executor"] = json!("constant-rate");
        let problems = check(&v);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "/scenarios/sweep/executor");
        assert!(problems[0].1.contains("concurrency-levels"), "{problems:?}");
        assert!(problems[0].1.contains("ramping-vus"), "{problems:?}");
    }

    #[test]
    fn prompt_forms_report_the_meant_form() {
        let mut v = base();
        v["prompts"] = json!([{"prompt": "x", "sytem": "y"}]);
        assert_eq!(
            check(&v),
            vec![("/prompts/0/sytem".into(), "unknown field `sytem`".into())]
        );
    }

    #[test]
    fn bad_duration_uses_the_duration_message() {
        let mut v = base();
        v["target"]["timeout"] = json!("10 sec");
        let problems = check(&v);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].1.starts_with("invalid duration \"10 sec\""),
            "{problems:?}"
        );
    }
}
