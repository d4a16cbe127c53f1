//! Reports from mutated result files: a result edited by hand, cut by a buggy tool or written by
//! another version either fails to read with an error or renders; it never panics.

use proptest::prelude::*;
use serde_json::Value;

use llm_bench::report::{render_html, render_markdown};
use llm_bench::result::RunResult;

fn fixture() -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sim-result.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every leaf (number, string, bool, null, empty container) as a JSON pointer.
fn leaves(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                leaves(item, format!("{at}/{i}"), out);
            }
        }
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                leaves(
                    item,
                    format!("{at}/{}", key.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        _ => out.push(at),
    }
}

/// A replacement for a leaf: the values that break naive code.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        Just(serde_json::json!(0)),
        Just(serde_json::json!(-1)),
        Just(serde_json::json!(1e300)),
        Just(serde_json::json!(-1e300)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(0.000_001)),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        "\\PC{0,40}".prop_map(Value::String),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn a_mutated_result_reads_with_an_error_or_renders(
        edits in prop::collection::vec((any::<usize>(), odd_value()), 1..6),
    ) {
        let mut value = fixture();
        for (pick, replacement) in edits {
            let mut found = Vec::new();
            leaves(&value, String::new(), &mut found);
            let pointer = &found[pick % found.len()];
            if let Some(slot) = value.pointer_mut(pointer) {
                *slot = replacement;
            }
        }
        if let Ok(result) = serde_json::from_value::<RunResult>(value) {
            let _ = render_html(&result, &Default::default());
            let _ = render_markdown(&result, &Default::default());
        }
    }
}
