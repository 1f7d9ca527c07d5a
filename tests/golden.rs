//! Golden files: `vigil run` (the binary, as a user runs it) over each fixture format gives
//! exactly the outputs kept in `fixtures/golden/<name>/`, for 1 and 3 workers; the CSV and
//! JSON-lines fixtures (the same events) give identical windows, features and anomalies, and
//! so do the Zeek JSON, Zeek TSV (rotated, also gzip-compressed) and Suricata EVE fixtures
//! (the same connections). Real Zeek and Suricata output (`fixtures/real/`) has goldens too.
//! Regenerate after an intended change with `VIGIL_BLESS=1 cargo test --release --test golden`.

use std::path::{Path, PathBuf};
use std::process::Command;

const FILES: [&str; 4] = ["windows.jsonl", "features.jsonl", "rejects.jsonl", "anomalies.jsonl"];
const SUMMARY_KEYS: [&str; 11] = [
    "events_read",
    "accepted",
    "rejected",
    "rejected_by_reason",
    "skipped",
    "skipped_by_type",
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

#[test]
fn zeek_tsv_fixture_matches_golden_files() {
    check("zeek-tsv", "fixtures/conn.tsv.log");
}

#[test]
fn suricata_fixture_matches_golden_files() {
    check("suricata", "fixtures/eve.json");
}

#[test]
fn real_zeek_tsv_sample_matches_golden_files() {
    check("real-zeek-tsv", "fixtures/real/zeek-conn.log");
}

#[test]
fn real_suricata_sample_matches_golden_files() {
    check("real-suricata", "fixtures/real/suricata-eve.json");
}

/// The same connections as Zeek JSON, Zeek TSV (a rotated log) and Suricata EVE.
#[test]
fn zeek_json_zeek_tsv_and_suricata_of_the_same_connections_agree() {
    let golden = root().join("fixtures/golden");
    for file in ["windows.jsonl", "features.jsonl", "anomalies.jsonl"] {
        let zeek = std::fs::read_to_string(golden.join("zeek").join(file)).unwrap();
        for other in ["zeek-tsv", "suricata"] {
            let text = std::fs::read_to_string(golden.join(other).join(file)).unwrap();
            assert!(zeek == text, "{file}: the zeek and {other} fixtures disagree");
        }
    }
    let summary = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(golden.join(name).join("summary.json")).unwrap()).unwrap()
    };
    for other in ["zeek-tsv", "suricata"] {
        for key in ["events_read", "accepted", "rejected_by_reason", "window_rows"] {
            assert_eq!(summary("zeek")[key], summary(other)[key], "{other}: {key}");
        }
    }
}

/// A gzip-compressed rotated Zeek log (as Zeek archives them) reads as the plain one.
#[test]
fn a_gzip_compressed_zeek_log_reads_as_the_plain_one() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let gz = dir.path().join("conn.log.gz");
    let plain = std::fs::read(root().join("fixtures/conn.tsv.log")).unwrap();
    // Two gzip members, as `cat a.gz b.gz` makes: the second starts in the middle of a line.
    let cut = plain.len() / 2;
    let mut bytes = Vec::new();
    for part in [&plain[..cut], &plain[cut..]] {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(part).unwrap();
        bytes.extend(e.finish().unwrap());
    }
    std::fs::write(&gz, bytes).unwrap();
    let out = dir.path().join("out");
    run(gz.to_str().unwrap(), 2, &out);
    let golden = root().join("fixtures/golden/zeek-tsv");
    for file in ["windows.jsonl", "features.jsonl", "anomalies.jsonl"] {
        let expected = std::fs::read_to_string(golden.join(file)).unwrap();
        let actual = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(expected == actual, "{file} of conn.log.gz differs from the plain log's");
    }
    assert_eq!(summary_subset(&out), summary_subset_of(&golden));
}

fn summary_subset_of(golden: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(golden.join("summary.json")).unwrap()).unwrap()
}

/// Suricata event types other than flows are counted by type (reckoned here from the file
/// with plain JSON parsing) and are neither records nor rejects.
#[test]
fn suricata_event_types_other_than_flows_are_counted_as_skipped() {
    for (name, input) in [
        ("suricata", "fixtures/eve.json"),
        ("real-suricata", "fixtures/real/suricata-eve.json"),
    ] {
        let mut want = std::collections::BTreeMap::<String, u64>::new();
        let mut records = 0u64;
        for line in std::fs::read_to_string(root().join(input)).unwrap().lines() {
            let kind = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|v| v["event_type"].as_str().map(str::to_string));
            match kind.as_deref() {
                Some("flow" | "netflow") | None => records += 1,
                Some(t) => {
                    let t = if vigil::decode::SKIP_KINDS.contains(&t) {
                        t
                    } else {
                        "other"
                    };
                    *want.entry(t.to_string()).or_default() += 1;
                }
            }
        }
        let got = summary_subset_of(&root().join("fixtures/golden").join(name));
        assert_eq!(got["skipped_by_type"], serde_json::json!(want), "{name}");
        assert_eq!(got["skipped"], want.values().sum::<u64>(), "{name}");
        assert_eq!(got["events_read"], records, "{name}: every other line is a record");
    }
}
