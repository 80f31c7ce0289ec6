//! Detection quality on the labelled dev corpus in `../shared/corpus/dev`, scored by
//! the corpus's own `score.py`. Skips (with a message) where the corpus is absent, except
//! under `CI=true`, where that fails.

use std::path::Path;
use std::process::Command;

#[test]
fn dev_corpus_recall_and_false_positives() {
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    let docs = shared.join("dev/docs");
    if !docs.is_dir() || !shared.join("score.py").is_file() {
        // CI scores every change on the corpus: there a missing corpus is a broken CI,
        // not a pass that tested nothing.
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true" || v == "1"),
            "CI=true and the dev corpus is missing: {} (CI needs ../shared/corpus beside the clone)",
            docs.display()
        );
        eprintln!(
            "SKIP dev_corpus_recall_and_false_positives: {} not found",
            docs.display()
        );
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_clawguard"))
        .args(["scan", "--format", "json"])
        .arg(&docs)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    let findings = dir.path().join("findings.jsonl");
    std::fs::write(&findings, &out.stdout).unwrap();
    let score = Command::new("python3")
        .arg(shared.join("score.py"))
        .arg(shared.join("dev"))
        .arg(&findings)
        .arg("--json")
        .output()
        .expect("python3 runs score.py");
    assert!(
        score.status.success(),
        "{}",
        String::from_utf8_lossy(&score.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&score.stdout).unwrap();
    eprintln!("dev corpus score: {v}");
    let recall = v["recall"].as_f64().unwrap();
    let fp_per_mb = v["fp_per_mb"].as_f64().unwrap();
    assert!(recall >= 0.99, "recall {recall} < 0.99: {v}");
    assert!(
        fp_per_mb <= 1.0,
        "{fp_per_mb} false positives per MB > 1: {v}"
    );
    for (entity, frac) in v["recall_by_entity"].as_object().unwrap() {
        let (a, b) = frac.as_str().unwrap().split_once('/').unwrap();
        let r = a.parse::<f64>().unwrap() / b.parse::<f64>().unwrap();
        assert!(r >= 0.95, "recall for {entity} is {frac} < 0.95");
    }
}
