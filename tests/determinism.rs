//! One input, run again and again with 1, 2 and 3 workers (and from a real Kafka topic),
//! gives byte-identical output files.
//!
//! The window operator cuts its work into time slices; a slice that ended in the middle of
//! the last tumbling period's rows once lost them at the end of the input (single-worker runs
//! only, and not always the same rows). `[server] work_slice_us = 1` makes every activation
//! stop after one check's worth of items, so every cut that can happen does, on every run.

mod common;

use std::path::{Path, PathBuf};

use common::kafka::{broker, unique, vigil_ok};

/// Outputs compared byte for byte.
const FILES: [&str; 4] = ["windows.jsonl", "features.jsonl", "rejects.jsonl", "anomalies.jsonl"];

fn generate(dir: &Path) -> PathBuf {
    let input = dir.join("events.csv");
    let input_s = input.display().to_string();
    // 2,000 devices: hundreds of rows per closing period on every worker, so the rows of the
    // last period span many slices.
    vigil_ok(
        &[
            "generate",
            "--events",
            "60000",
            "--devices",
            "2000",
            "--seed",
            "5",
            "--out",
            &input_s,
        ],
        &[],
    );
    input
}

fn run(input: &str, out: &Path, workers: usize, extra: &[&str]) -> Vec<String> {
    let out_s = out.display().to_string();
    let w = workers.to_string();
    let mut args = vec![
        "run",
        "--input",
        input,
        "--out",
        &out_s,
        "-w",
        &w,
        "--serve",
        "off",
        "--progress",
        "never",
    ];
    args.extend_from_slice(extra);
    vigil_ok(&args, &[("VIGIL__SERVER__WORK_SLICE_US".into(), "1".into())]);
    FILES
        .iter()
        .map(|f| std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}")))
        .collect()
}

fn assert_same(reference: &[String], other: &[String], what: &str) {
    for ((file, a), b) in FILES.iter().zip(reference).zip(other) {
        if a != b {
            let (la, lb) = (a.lines().count(), b.lines().count());
            let first = a.lines().zip(b.lines()).position(|(x, y)| x != y);
            panic!("{file} differs for {what}: {la} vs {lb} lines, first difference at line {first:?}");
        }
    }
}

#[test]
fn runs_with_1_2_and_3_workers_write_identical_files_every_time() {
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path());
    let input = input.display().to_string();
    let reference = run(&input, &dir.path().join("w1-0"), 1, &[]);
    assert!(
        reference[0].lines().count() > 10_000,
        "enough window rows to mean something"
    );
    assert!(
        !reference[2].is_empty(),
        "the generator's malformed records are rejected"
    );
    for (n, workers) in [1, 1, 2, 2, 3].into_iter().enumerate() {
        let other = run(&input, &dir.path().join(format!("w{workers}-{}", n + 1)), workers, &[]);
        assert_same(&reference, &other, &format!("run {} with {workers} worker(s)", n + 1));
    }
}

#[test]
fn kafka_runs_with_1_and_3_workers_write_the_file_runs_files() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = generate(dir.path());
    // Lateness is decided per partition: one partition keeps the file's order, so the Kafka
    // run decides every record as the file run does.
    let topic = unique("vigil-determinism");
    let input_s = input.display().to_string();
    vigil_ok(
        &[
            "produce",
            "--input",
            &input_s,
            "--topic",
            &topic,
            "--partitions",
            "1",
            "--brokers",
            &brokers,
        ],
        &[],
    );
    let reference = run(&input_s, &dir.path().join("file"), 2, &[]);
    for workers in [1, 3] {
        let group = unique("vigil-determinism-group");
        let kafka_input = format!("kafka://{topic}");
        let other = run(
            &kafka_input,
            &dir.path().join(format!("kafka-w{workers}")),
            workers,
            &["--bounded", "--sink", "files", "--group", &group, "--brokers", &brokers],
        );
        // Rejects name their origin (file line vs topic partition and offset): compared as
        // counts; the other files byte for byte.
        assert_eq!(
            reference[2].lines().count(),
            other[2].lines().count(),
            "rejects, Kafka, {workers} worker(s)"
        );
        let (mut a, mut b) = (reference.clone(), other.clone());
        a[2].clear();
        b[2].clear();
        assert_same(&a, &b, &format!("Kafka with {workers} worker(s)"));
    }
}
