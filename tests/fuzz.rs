//! The decoder fuzzing campaign, short: every decoder holds on thousands of mutated records,
//! a campaign's report does not depend on its thread count, and a run over a file of fuzzed
//! records accounts for every one of them exactly as the decoder does, reason by reason.
//! (`vigil fuzz decode --cases 10000000` is the full campaign; see the README.)

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use vigil::decode::{Format, RecordDecoder};
use vigil::event::CSV_HEADER;
use vigil::fuzz::{self, Campaign};

fn campaign(format: Format, cases: u64, threads: usize) -> Campaign {
    Campaign {
        format,
        seed: 11,
        first: 0,
        cases,
        threads,
        hang_after: Duration::from_secs(30),
        max_record_bytes: 64 * 1024,
        keep_findings: 5,
    }
}

#[test]
fn every_decoder_holds_on_mutated_records() {
    for format in [
        Format::Csv,
        Format::Jsonl,
        Format::Zeek,
        Format::ZeekTsv,
        Format::Suricata,
    ] {
        let report = fuzz::run(&campaign(format, 30_000, 2), &|_| {});
        let findings: Vec<String> = report.findings.iter().map(|f| f.to_string()).collect();
        assert_eq!(report.failures(), 0, "{format:?}: {findings:#?}");
        assert_eq!(report.cases, 30_000);
        assert_eq!(
            report.accounted(),
            report.cases,
            "{format:?}: every case has one outcome"
        );
        // The campaign reaches both sides and many reasons.
        assert!(report.valid > 2_000, "{format:?}: {} valid cases", report.valid);
        assert!(
            report.accepted > report.valid,
            "{format:?}: mutated records are accepted too"
        );
        assert!(
            report.rejected.len() >= 8,
            "{format:?}: rejections by reason {:?}",
            report.rejected
        );
    }
}

#[test]
fn a_report_does_not_depend_on_the_thread_count() {
    let one = fuzz::run(&campaign(Format::Jsonl, 6_000, 1), &|_| {});
    let three = fuzz::run(&campaign(Format::Jsonl, 6_000, 3), &|_| {});
    assert_eq!(
        (one.valid, one.accepted, &one.rejected, one.headers_refused),
        (three.valid, three.accepted, &three.rejected, three.headers_refused)
    );
}

#[test]
fn a_case_is_reproduced_from_its_seed_and_index() {
    let a = fuzz::case(Format::Csv, 5, 1234);
    let b = fuzz::case(Format::Csv, 5, 1234);
    assert_eq!((&a.header, &a.record), (&b.header, &b.record));
    assert_ne!(fuzz::case(Format::Csv, 5, 1235).record, b.record);
}

/// A file of fuzzed CSV records (one per line, under the canonical header) through
/// `vigil run`: every record is read, and each is accepted or rejected exactly as the decoder
/// says, reason by reason; those the decoder accepts are accepted or rejected for their time.
#[test]
fn a_run_accounts_for_every_fuzzed_record() {
    let header = CSV_HEADER.join(",");
    let decoder = RecordDecoder::for_file(Format::Csv, header.as_bytes(), 64 * 1024)
        .unwrap()
        .0;
    let mut file = format!("{header}\n").into_bytes();
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    let mut decoded_ok = 0u64;
    let records = 20_000u64;
    for i in 0..records {
        let mut record = fuzz::case(Format::Csv, 3, i).record;
        // One record per line: line breaks become spaces, blank lines (skipped by the
        // reader, not records) get text.
        for b in record.iter_mut() {
            if *b == b'\n' {
                *b = b' ';
            }
        }
        if record.trim_ascii().is_empty() {
            record = b"blank".to_vec();
        }
        match decoder.decode(&record) {
            Ok(_) => decoded_ok += 1,
            Err(e) => *expected.entry(e.reason.as_str().to_string()).or_default() += 1,
        }
        file.extend_from_slice(&record);
        file.push(b'\n');
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("fuzzed.csv");
    std::fs::write(&input, &file).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["run", "--input"])
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .args(["-w", "2", "--serve", "off", "--progress", "never"])
        .env("VIGIL_LOG", "warn")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["events_read"], records, "every record is read");
    let accepted = summary["accepted"].as_u64().unwrap();
    let rejected = summary["rejected"].as_u64().unwrap();
    assert_eq!(accepted + rejected, records, "each record accepted or rejected");
    let by_reason: BTreeMap<String, u64> = serde_json::from_value(summary["rejected_by_reason"].clone()).unwrap();
    let mut for_time = 0;
    for (reason, n) in &by_reason {
        match expected.get(reason) {
            Some(want) => assert_eq!(n, want, "rejects for `{reason}`"),
            // Reasons of event time (late, ...): among the records the decoder accepts.
            None => for_time += n,
        }
    }
    for (reason, want) in &expected {
        assert_eq!(by_reason.get(reason), Some(want), "rejects for `{reason}`");
    }
    assert_eq!(accepted + for_time, decoded_ok, "records the decoder accepts");
    let reject_lines = std::fs::read_to_string(out.join("rejects.jsonl"))
        .unwrap()
        .lines()
        .count() as u64;
    assert_eq!(
        reject_lines, rejected,
        "rejects.jsonl holds one line per rejected record"
    );
}

#[test]
fn the_command_runs_a_campaign_and_reproduces_a_case() {
    let vigil = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(args)
            .env("VIGIL_LOG", "warn")
            .output()
            .unwrap()
    };
    let o = vigil(&["fuzz", "decode", "--format", "zeek", "--cases", "3000", "--seed", "4"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.starts_with("zeek: 3000 cases"), "{stdout}");
    assert!(stdout.contains("panics 0, wrong 0, hangs 0"), "{stdout}");

    let o = vigil(&["fuzz", "decode", "--format", "csv", "--seed", "4", "--case", "17"]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{stdout}");
    let case = fuzz::case(Format::Csv, 4, 17);
    assert!(
        stdout.contains(&format!("record:   {}", fuzz::check::escape(&case.record))),
        "{stdout}"
    );

    let o = vigil(&["fuzz", "decode", "--case", "17"]);
    assert_eq!(o.status.code(), Some(2), "--case needs one format");
    assert!(String::from_utf8_lossy(&o.stderr).contains("--format"));
}
