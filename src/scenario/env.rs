//! Environment interpolation in scenario files, as k6 users have `__ENV`: `${NAME}` and
//! `${NAME:-default}` in any string value are replaced before the scenario is checked, so one
//! file serves every target and model. `$${` writes a literal `${`. An unset variable without a
//! default is a problem at the value's line. Pure: the environment is passed in.

use serde_json::Value;

/// Replaces `${…}` in every string of `value`; returns (JSON pointer, message) for each string
/// that names an unset variable without a default, or that leaves a `${` unclosed.
pub fn interpolate(
    value: &mut Value,
    env: &impl Fn(&str) -> Option<String>,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    walk(value, String::new(), env, &mut problems);
    problems
}

fn walk(
    value: &mut Value,
    at: String,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<(String, String)>,
) {
    match value {
        Value::String(text) if text.contains('$') => match expand(text, env) {
            Ok(expanded) => *text = expanded,
            Err(message) => problems.push((at, message)),
        },
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{at}/{i}"), env, problems);
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                let key = key.replace('~', "~0").replace('/', "~1");
                walk(item, format!("{at}/{key}"), env, problems);
            }
        }
        _ => {}
    }
}

/// One string with its references replaced.
pub fn expand(text: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(inner) = after.strip_prefix("${") {
            let end = inner
                .find('}')
                .ok_or_else(|| format!("{text:?}: `${{` without a closing `}}`"))?;
            let reference = &inner[..end];
            let (name, default) = match reference.split_once(":-") {
                Some((name, default)) => (name, Some(default)),
                None => (reference, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "{text:?}: `${{{reference}}}` is not a variable name (letters, digits, _)"
                ));
            }
            match (env(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => {
                    return Err(format!(
                        "environment variable {name} is not set (write ${{{name}:-default}} for a default, $${{ for a literal ${{)"
                    ))
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        (name == "TARGET_URL").then(|| "http://gpu-box:11434".to_string())
    }

    #[test]
    fn references_defaults_and_literals() {
        assert_eq!(
            expand("${TARGET_URL}", &env).unwrap(),
            "http://gpu-box:11434"
        );
        assert_eq!(
            expand("${MODEL:-llama3.2:1b}", &env).unwrap(),
            "llama3.2:1b"
        );
        assert_eq!(expand("${MODEL:-}", &env).unwrap(), "");
        assert_eq!(
            expand("cost: $5, echo $${HOME}", &env).unwrap(),
            "cost: $5, echo ${HOME}"
        );
        assert!(expand("${MODEL}", &env)
            .unwrap_err()
            .contains("MODEL is not set"));
        assert!(expand("${TARGET_URL", &env).is_err());
        assert!(expand("${not a name}", &env).is_err());
    }

    #[test]
    fn every_string_is_expanded_and_problems_name_their_pointer() {
        let mut v = json!({"target": {"url": "${TARGET_URL}", "model": "${MODEL}"}, "prompts": ["hi ${NAME:-you}"], "n": 3});
        let problems = interpolate(&mut v, &env);
        assert_eq!(v["target"]["url"], "http://gpu-box:11434");
        assert_eq!(v["prompts"][0], "hi you");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, "/target/model");
    }
}
