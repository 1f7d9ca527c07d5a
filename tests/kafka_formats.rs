//! Zeek TSV and Suricata EVE from a real Apache Kafka broker (scripts/kafka.sh; a missing
//! broker skips these tests unless VIGIL_REQUIRE_KAFKA=1): every line of a fixture is one
//! message of a one-partition topic — Zeek's header lines too, as a line shipper forwards
//! them — and the run's windows and rejects equal the golden outputs of the same file; and
//! `vigil produce` of a rotated Zeek log sends its header lines to every partition, so every
//! record of every block decodes there.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::kafka::{broker, produce, send_raw, unique, vigil_ok, write_events};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Reasons of a rejects file, counted.
fn reasons(path: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        *out.entry(v["reason"].as_str().unwrap().to_string()).or_default() += 1;
    }
    out
}

/// Runs vigil over `topic` to its end (2 workers, the topic as its group) into `out`.
fn run_bounded(brokers: &str, topic: &str, out: &std::path::Path, format: Option<&str>) {
    let input = format!("kafka://{topic}");
    let out_s = out.display().to_string();
    let mut args = vec![
        "run",
        "--input",
        &input,
        "--bounded",
        "--brokers",
        brokers,
        "--group",
        topic,
        "-w",
        "2",
        "--out",
        &out_s,
        "--progress",
        "never",
        "--serve",
        "off",
    ];
    if let Some(f) = format {
        args.extend(["--format", f]);
    }
    vigil_ok(&args, &[]);
}

/// Sends every line of `fixture` to a new one-partition topic and runs over it.
fn run_over_topic(fixture: &str, golden: &str, format: Option<&str>) {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = unique(&format!("vigil-{golden}"));
    let empty = write_events(dir.path(), "empty.csv", b"");
    produce(&brokers, &empty, &topic, 1);
    let text = std::fs::read_to_string(root().join(fixture)).unwrap();
    let messages: Vec<(&[u8], &[u8])> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| (&b"k"[..], l.as_bytes()))
        .collect();
    send_raw(&brokers, &topic, 0, &messages);
    let out = dir.path().join("out");
    run_bounded(&brokers, &topic, &out, format);
    let golden = root().join("fixtures/golden").join(golden);
    for file in ["windows.jsonl", "features.jsonl"] {
        let expected = std::fs::read_to_string(golden.join(file)).unwrap();
        let actual = std::fs::read_to_string(out.join(file)).unwrap();
        assert!(
            expected == actual,
            "{fixture} through Kafka: {file} differs from the file run's"
        );
    }
    assert_eq!(
        reasons(&out.join("rejects.jsonl")),
        reasons(&golden.join("rejects.jsonl"))
    );
    let summary = |p: &Path| -> Value { serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap() };
    let (got, want) = (
        summary(&out.join("summary.json")),
        summary(&golden.join("summary.json")),
    );
    for key in [
        "events_read",
        "accepted",
        "rejected_by_reason",
        "skipped",
        "skipped_by_type",
    ] {
        assert_eq!(got[key], want[key], "{fixture} through Kafka: {key}");
    }
}

/// A rotated Zeek log: header messages re-bind the partition's columns and are not records.
#[test]
fn zeek_tsv_messages_with_their_header_lines_equal_the_file_run() {
    run_over_topic("fixtures/conn.tsv.log", "zeek-tsv", Some("zeek-tsv"));
}

/// EVE is detected per message; other event types are skipped and counted.
#[test]
fn suricata_messages_equal_the_file_run_and_count_skipped_types() {
    run_over_topic("fixtures/eve.json", "suricata", None);
}

/// `vigil produce` spreads a rotated log's records over partitions by device and sends each
/// header line to every partition: the run decodes every record as the file run does (only
/// lateness, decided per partition, may differ).
#[test]
fn produced_zeek_tsv_keeps_its_header_blocks_in_every_partition() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("vigil-zeek-produce");
    produce(
        &brokers,
        &root().join("fixtures/conn.tsv.log").display().to_string(),
        &topic,
        3,
    );
    let out = dir.path().join("out");
    run_bounded(&brokers, &topic, &out, Some("zeek-tsv"));
    let mut got = reasons(&out.join("rejects.jsonl"));
    let mut want = reasons(&root().join("fixtures/golden/zeek-tsv/rejects.jsonl"));
    let (late_got, late_want) = (got.remove("late").unwrap_or(0), want.remove("late").unwrap_or(0));
    assert_eq!(got, want, "every record of every header block decodes as in the file");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["events_read"], 3005);
    assert_eq!(summary["accepted"].as_u64().unwrap() + late_got, 2998 + late_want);
}
