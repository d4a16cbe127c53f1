//! CI outputs: `summary.md` (rendered from the tera template, also appended to
//! `$GITHUB_STEP_SUMMARY`) and `junit.xml` (one test case per threshold expression).

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use super::format::{fmt_ms, format_number};
use crate::output::files::{self, WriteError};
use crate::output::result::RunResult;

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// JUnit XML: one test case per threshold expression; a failure carries measured vs limit.
pub fn render_junit(result: &RunResult) -> String {
    let failures = result.thresholds.iter().filter(|t| !t.passed).count();
    // "No data" passes the gate (as in k6) but tested nothing: CI shows it as skipped.
    let skipped = result
        .thresholds
        .iter()
        .filter(|t| t.passed && (t.no_data || t.judges_steps))
        .count();
    let tests = result.thresholds.len();
    let suite = xml_escape(&format!("llm-bench thresholds: {}", result.scenario.name));
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(xml, "<testsuites name=\"llm-bench\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{:.3}\">", result.duration_secs);
    let _ = writeln!(xml, "  <testsuite name=\"{suite}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{:.3}\" timestamp=\"{}\">", result.duration_secs, xml_escape(&result.started_at));
    for t in &result.thresholds {
        let name = xml_escape(&t.label());
        let measured = match t.observed {
            Some(v) if t.unit == "ms" => fmt_ms(v),
            Some(v) => format_number(v),
            None => "no data".into(),
        };
        let limit = if t.unit == "ms" {
            fmt_ms(t.limit)
        } else {
            format_number(t.limit)
        };
        let _ = write!(
            xml,
            "    <testcase classname=\"llm-bench.thresholds\" name=\"{name}\" time=\"0\">"
        );
        if !t.passed {
            let message = xml_escape(&format!(
                "{}: measured {measured}, limit {} {limit}",
                t.label(),
                t.operator
            ));
            let _ = write!(xml, "\n      <failure type=\"threshold\" message=\"{message}\">{message}</failure>\n    ");
        } else if t.judges_steps {
            let _ = write!(
                xml,
                "\n      <skipped message=\"judged each capacity-search step, not the run; gate the search with capacity: [value&gt;=N]\"/>\n    "
            );
        } else if t.no_data {
            let _ = write!(
                xml,
                "\n      <skipped message=\"no data: passes, as in k6 (--no-data-fails makes it fail)\"/>\n    "
            );
        }
        xml.push_str("</testcase>\n");
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

/// Why the CI outputs could not be written.
#[derive(Debug, thiserror::Error)]
pub enum CiError {
    /// The Markdown template failed.
    #[error("cannot render summary.md")]
    Template(#[source] tera::Error),
    /// A file could not be written (the previous one is intact).
    #[error(transparent)]
    Write(#[from] WriteError),
    /// `$GITHUB_STEP_SUMMARY` could not be appended to.
    #[error("cannot append to {}", path.display())]
    Append {
        /// The step-summary file.
        path: PathBuf,
        /// The OS's error.
        source: std::io::Error,
    },
}

/// Writes `summary.md` and `junit.xml` into `dir`, each whole or not at all, and appends the
/// summary to `step_summary` (GitHub's `$GITHUB_STEP_SUMMARY`) when given. Returns the files
/// written.
pub fn write_outputs(
    result: &RunResult,
    templates: &super::Templates,
    dir: &Path,
    step_summary: Option<&OsStr>,
) -> Result<Vec<PathBuf>, CiError> {
    let summary = super::render_markdown(result, templates).map_err(CiError::Template)?;
    let summary_path = dir.join("summary.md");
    files::replace(&summary_path, summary.as_bytes())?;
    let junit_path = dir.join("junit.xml");
    files::replace(&junit_path, render_junit(result).as_bytes())?;
    let mut written = vec![summary_path, junit_path];
    if let Some(path) = step_summary.filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut file| writeln!(file, "{summary}"))
            .map_err(|source| CiError::Append {
                path: path.clone(),
                source,
            })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_four_significant_digits() {
        assert_eq!(format_number(108.0), "108");
        assert_eq!(format_number(2.0 / 110.0), "0.01818");
        assert_eq!(format_number(2.5), "2.5");
        assert_eq!(format_number(1234.5678), "1235");
    }

    #[test]
    fn xml_escaping_covers_markup_and_control_characters() {
        assert_eq!(
            xml_escape("p(95)<5 & \"x\"\u{1}"),
            "p(95)&lt;5 &amp; &quot;x&quot;"
        );
    }
}
