//! Reports from a fixed, real simulator result (tests/data/sim-result.json, made by
//! tests/data/report-scenario.yaml): golden Markdown and view model, the HTML's structure and
//! escaping, and `llm-bench report` with its formats and template overrides.
//! `UPDATE_GOLDEN=1 cargo test --test report` rewrites the golden files after a deliberate change.

use std::path::{Path, PathBuf};
use std::process::Command;

use llm_bench::report::{self, Templates};
use llm_bench::result::RunResult;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn fixture() -> RunResult {
    serde_json::from_str(&std::fs::read_to_string(data("sim-result.json")).unwrap()).unwrap()
}

fn golden(name: &str, actual: &str) {
    let path = data(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        let diff: Vec<String> = expected
            .lines()
            .zip(actual.lines())
            .enumerate()
            .filter(|(_, (e, a))| e != a)
            .take(5)
            .map(|(i, (e, a))| format!("line {}:\n  expected: {e}\n  actual:   {a}", i + 1))
            .collect();
        panic!(
            "{name} differs ({} vs {} lines; UPDATE_GOLDEN=1 to accept):\n{}",
            expected.lines().count(),
            actual.lines().count(),
            diff.join("\n")
        );
    }
}

#[test]
fn markdown_summary_matches_the_golden_file() {
    golden(
        "sim-summary.golden.md",
        &report::render_markdown(&fixture(), &Templates::default()).unwrap(),
    );
}

#[test]
fn view_model_matches_the_golden_file() {
    let view = report::view(&fixture());
    let model = serde_json::json!({
        "rows": view.rows,
        "has_open_model": view.has_open_model,
        "failed_thresholds": view.failed_thresholds,
        "notes": view.notes,
        "sweeps": view.charts.sweeps.iter().map(|c| &c.scenario).collect::<Vec<_>>(),
    });
    golden(
        "sim-view.golden.json",
        &(serde_json::to_string_pretty(&model).unwrap() + "\n"),
    );
}

#[test]
fn the_html_is_self_contained_and_complete() {
    let html = report::render_html(&fixture(), &Templates::default()).unwrap();
    for section in [
        "id=\"thresholds\"",
        "id=\"results\"",
        "id=\"notes\"",
        "id=\"sweep-1\"",
        "id=\"distribution\"",
        "Open model: latency from the actual send",
    ] {
        assert!(html.contains(section), "missing {section}");
    }
    // The sweep's four (TTFT, e2e, tokens/s, requests/s), the spectrum, three time series and
    // two open-model ones; the fixture predates the ITL spectrum, which is then left out.
    assert_eq!(html.matches("<svg class=\"chart\"").count(), 10);
    assert!(!html.contains("Inter-token latency by percentile"));
    assert!(html.contains("knee: TTFT tail separates") && html.contains(">saturation<"));
    for forbidden in ["<script", "<link", " src=", " href=", "@import", "url("] {
        assert!(
            !html.contains(forbidden),
            "the report must not load anything: found {forbidden}"
        );
    }
    assert!(
        html.contains("default-src 'none'"),
        "a CSP forbids loading anything even if a template tried"
    );
    assert!(html.len() < 120_000, "keep it small: {} bytes", html.len());
}

#[test]
fn resent_requests_are_explained_in_every_format() {
    let mut result = fixture();
    result.total.reconnected_requests = 3;
    let html = report::render_html(&result, &Templates::default()).unwrap();
    assert!(html.contains("3 request(s) were sent again"), "HTML notes");
    let md = report::render_markdown(&result, &Templates::default()).unwrap();
    assert!(md.contains("Sent again: 3 request(s)"), "{md}");
}

#[test]
fn every_text_from_the_run_is_escaped() {
    let mut result = fixture();
    result.scenario.name = "<script>alert(1)</script>".into();
    result.scenarios[0].name = "</td><img src=x onerror=alert(2)>".into();
    result.thresholds[0].metric = "<b>bold</b>".into();
    let html = report::render_html(&result, &Templates::default()).unwrap();
    assert!(
        !html.contains("<script>alert")
            && !html.contains("<img src=x")
            && !html.contains("<b>bold")
    );
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;&#x2F;script&gt;")
            || html.contains("&lt;script&gt;alert(1)&lt;/script&gt;")
    );
    let md = report::render_markdown(&result, &Templates::default()).unwrap();
    // GitHub renders some raw HTML in comments and step summaries: names are escaped there too.
    assert!(
        md.contains("## llm-bench: &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{md}"
    );
    assert!(!md.contains("<img") && !md.contains("<script"), "{md}");
}

#[test]
fn report_command_renders_every_format_and_honours_template_overrides() {
    let bin = env!("CARGO_BIN_EXE_llm-bench");
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .arg("report")
            .arg(data("sim-result.json"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(
        run(&["--format", "md"]),
        std::fs::read_to_string(data("sim-summary.golden.md")).unwrap()
    );
    let json: serde_json::Value = serde_json::from_str(&run(&["--format", "json"])).unwrap();
    let original: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(data("sim-result.json")).unwrap()).unwrap();
    assert_eq!(json, original, "re-serialising a result loses nothing");
    let out = dir.path().join("r.html");
    run(&["--out", out.to_str().unwrap()]);
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .starts_with("<!DOCTYPE html>"));

    let custom = dir.path().join("mine.tera");
    std::fs::write(&custom, "{{ result.scenario.name }}: {% for r in rows %}{{ r.group }}={{ r.ttft_p95 }} {% endfor %}").unwrap();
    assert_eq!(
        run(&["--format", "md", "--template", custom.to_str().unwrap()]).trim(),
        "report-fixture: all=212ms level 1=5ms level 2=5ms level 4=278ms level 8=718ms"
    );
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    std::fs::write(
        templates.join("report.html.tera"),
        "<p>{{ failed_thresholds }} failed of {{ result.thresholds | length }}</p>",
    )
    .unwrap();
    assert_eq!(
        run(&["--templates-dir", templates.to_str().unwrap()]),
        "<p>2 failed of 4</p>"
    );

    let broken = Command::new(bin)
        .arg("report")
        .arg(data("report-scenario.yaml"))
        .output()
        .unwrap();
    assert_eq!(broken.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&broken.stderr).contains("is not an llm-bench result"));
}

#[test]
fn a_clean_run_has_no_empty_errors_chart() {
    let mut result = fixture();
    let with_errors = report::render_html(&result, &Templates::default()).unwrap();
    assert!(with_errors.contains("Failed requests by category"));
    result.total.errors = 0;
    result.total.errors_by_kind.clear();
    let clean = report::render_html(&result, &Templates::default()).unwrap();
    assert!(
        !clean.contains("Failed requests by category"),
        "no box that says no data"
    );
}

#[test]
fn prompt_sets_tags_and_totals_have_their_tables_in_html_and_markdown() {
    let mut result = fixture();
    for (name, requests) in [("code", 100), ("chat", 61)] {
        let mut summary = result.total.clone();
        summary.requests = requests;
        result.prompt_sets.push(llm_bench::result::Breakdown {
            name: name.into(),
            summary,
        });
    }
    result.entry_tags.push(llm_bench::result::Breakdown {
        name: "long".into(),
        summary: result.total.clone(),
    });
    let md = report::render_markdown(&result, &Templates::default()).unwrap();
    assert!(
        md.contains("### By prompt set")
            && md.contains("| code | 100 |")
            && md.contains("| chat | 61 |"),
        "{md}"
    );
    assert!(
        md.contains("### By entry tag") && md.contains("| long | 161 |"),
        "{md}"
    );
    assert!(
        md.contains("| **sweep** | **total** | **96** |"),
        "the sweep's total row: {md}"
    );
    let html = report::render_html(&result, &Templates::default()).unwrap();
    assert!(html.contains("<h2 style=\"margin-top:14px\">By prompt set</h2>"));
    assert!(
        html.contains("<tr class=\"total\"><td>sweep</td><td>total</td><td>96</td>"),
        "a total row"
    );
    // One prompt set alone says nothing the results table does not: no table.
    result.prompt_sets.truncate(1);
    let md = report::render_markdown(&result, &Templates::default()).unwrap();
    assert!(!md.contains("### By prompt set"));
}

#[test]
fn the_csv_report_has_a_row_per_group_and_metric() {
    let out = Command::new(env!("CARGO_BIN_EXE_llm-bench"))
        .args(["report", "--format", "csv"])
        .arg(data("sim-result.json"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(
        &header[..5],
        ["scenario", "group", "metric", "unit", "count"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let result = fixture();
    let level8 = &result
        .scenarios
        .iter()
        .find(|s| s.name == "sweep")
        .unwrap()
        .groups[3];
    let row = rows
        .iter()
        .find(|r| &r[0] == "sweep" && &r[1] == "level 8" && &r[2] == "e2e_latency")
        .expect("sweep level 8 e2e_latency");
    let p95: f64 = row[10].parse().unwrap();
    assert_eq!(p95, level8.summary.e2e_latency_ms.as_ref().unwrap().p95);
    let total = rows
        .iter()
        .find(|r| r[0].is_empty() && &r[1] == "total" && &r[2] == "requests")
        .unwrap();
    assert_eq!(total[5].parse::<u64>().unwrap(), result.total.requests);
}
