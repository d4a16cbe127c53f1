//! The Kubernetes manifests in deploy/kubernetes: valid against the API schemas (offline, with
//! PyPI's kubernetes-validate, which `.ci/run` installs), and consistent with each other and
//! with llm-bench (one shard per completion index, a merge over every shard, a valid scenario).

use std::path::{Path, PathBuf};
use std::process::Command;

const MANIFESTS: [&str; 4] = ["configmap.yaml", "pvc.yaml", "job.yaml", "merge-job.yaml"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

fn manifest(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join(name)).unwrap();
    llm_bench::yaml::parse(&text).unwrap().value
}

#[test]
#[ignore = "needs kubernetes-validate (KUBERNETES_VALIDATE); .ci/run installs it"]
fn the_manifests_are_valid_kubernetes_objects() {
    let tool = std::env::var_os("KUBERNETES_VALIDATE")
        .expect("KUBERNETES_VALIDATE: the kubernetes-validate command");
    let out = Command::new(&tool)
        .arg("--strict")
        .args(MANIFESTS)
        .current_dir(dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The validator must refuse a broken Job, or the check above proves nothing.
    let tmp = tempfile::tempdir().unwrap();
    let broken = std::fs::read_to_string(dir().join("job.yaml"))
        .unwrap()
        .replace("parallelism: 4", "parallelism: four");
    std::fs::write(tmp.path().join("job.yaml"), broken).unwrap();
    let out = Command::new(&tool)
        .arg("--strict")
        .arg(tmp.path().join("job.yaml"))
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "kubernetes-validate accepted a broken Job"
    );
}

#[test]
fn the_shard_job_the_merge_job_and_the_scenario_fit_together() {
    let job = manifest("job.yaml");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let n = spec["completions"].as_u64().unwrap();
    assert_eq!(spec["parallelism"].as_u64(), Some(n), "every shard at once");
    let container = &spec["template"]["spec"]["containers"][0];
    let command = container["args"][0].as_str().unwrap();
    assert!(
        command.contains(&format!("--shard \"$SHARD/{n}\"")),
        "{command}"
    );
    assert_eq!(
        container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    );
    let merge = manifest("merge-job.yaml");
    let merge_command = merge["spec"]["template"]["spec"]["containers"][0]["args"][0]
        .as_str()
        .unwrap();
    for i in 0..n {
        assert!(
            merge_command.contains(&format!("/results/shard-{i}/benchmark_latest.json")),
            "the merge reads shard {i}: {merge_command}"
        );
    }
    assert!(!merge_command.contains(&format!("shard-{n}/")));
    let config = manifest("configmap.yaml");
    let scenario = config["data"]["scenario.yaml"].as_str().unwrap();
    let loaded = llm_bench::load_str(scenario, "configmap.yaml").expect("the scenario is valid");
    assert!(
        loaded.scenario.simulator.is_none(),
        "shards share a real server"
    );
    assert!(loaded.scenario.target.url.is_some());
}
