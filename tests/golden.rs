//! Golden files: `vigil run` (the binary, as a user runs it) over each fixture format gives
//! exactly the outputs kept in `fixtures/golden/<name>/`, for 1 and 3 workers; the CSV and
//! JSON-lines fixtures (the same events) give identical windows, features and anomalies.
//! Regenerate after an intended change with `VIGIL_BLESS=1 cargo test --release --test golden`.

use std::path::{Path, PathBuf};
use std::process::Command;

const FILES: [&str; 4] = ["windows.jsonl", "features.jsonl", "rejects.jsonl", "anomalies.jsonl"];
const SUMMARY_KEYS: [&str; 9] = [
    "events_read",
    "accepted",
    "rejected",
    "rejected_by_reason",
    "late",
    "devices",
    "window_rows",
    "features",
    "anomalies",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(input: &str, workers: usize, out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(root())
        .args([
            "run",
            "--serve",
            "off",
            "--input",
            input,
            "--progress",
            "never",
            "-w",
            &workers.to_string(),
            "--out",
        ])
        .arg(out)
        .env("VIGIL_LOG", "warn")
        .status()
        .expect("run vigil");
    assert!(status.success(), "vigil run --input {input} failed");
}

fn summary_subset(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("summary.json")).unwrap();
    let full: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut subset = serde_json::Map::new();
    for key in SUMMARY_KEYS {
        subset.insert(key.to_string(), full[key].clone());
    }
    serde_json::Value::Object(subset)
}

fn check(name: &str, input: &str) {
    let golden = root().join("fixtures/golden").join(name);
    let bless = std::env::var("VIGIL_BLESS").is_ok();
    for workers in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        run(input, workers, dir.path());
        let summary = serde_json::to_string_pretty(&summary_subset(dir.path())).unwrap() + "\n";
        if bless && workers == 1 {
            std::fs::create_dir_all(&golden).unwrap();
            for file in FILES {
                std::fs::copy(dir.path().join(file), golden.join(file)).unwrap();
            }
            std::fs::write(golden.join("summary.json"), &summary).unwrap();
        }
        for file in FILES {
            let expected = std::fs::read_to_string(golden.join(file)).unwrap_or_else(|e| panic!("{name}/{file}: {e}"));
            let actual = std::fs::read_to_string(dir.path().join(file)).unwrap();
            assert!(
                expected == actual,
                "{name}/{file} differs from the golden file with {workers} worker(s); diff {} {}",
                golden.join(file).display(),
                dir.path().join(file).display()
            );
        }
        let expected = std::fs::read_to_string(golden.join("summary.json")).unwrap();
        assert_eq!(expected, summary, "{name}/summary.json with {workers} worker(s)");
    }
}

#[test]
fn csv_fixture_matches_golden_files() {
    check("csv", "fixtures/events.csv");
}

#[test]
fn jsonl_fixture_matches_golden_files() {
    check("jsonl", "fixtures/events.jsonl");
}

#[test]
fn zeek_fixture_matches_golden_files() {
    check("zeek", "fixtures/conn.log");
}

#[test]
fn csv_and_jsonl_of_the_same_events_agree() {
    let golden = root().join("fixtures/golden");
    for file in ["windows.jsonl", "features.jsonl", "anomalies.jsonl"] {
        let csv = std::fs::read_to_string(golden.join("csv").join(file)).unwrap();
        let jsonl = std::fs::read_to_string(golden.join("jsonl").join(file)).unwrap();
        assert!(csv == jsonl, "{file}: CSV and JSONL fixtures disagree");
    }
}
