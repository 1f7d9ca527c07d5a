//! vigil against a real Apache Kafka broker (scripts/kafka.sh; scripts/test.sh starts it and
//! sets VIGIL_REQUIRE_KAFKA=1 so that a missing broker fails these tests instead of skipping).
//!
//! - a Kafka run's output topics, read back, equal the file run's outputs for the same
//!   events, with 1 and 2 workers (and a Kafka input to the file sink too);
//! - a run killed with SIGKILL mid-topic and started again ends with the same folded outputs
//!   as one uninterrupted run;
//! - bad messages end in the dead-letter topic with their reason and origin; the run goes on;
//! - a stop signal finishes an unbounded run cleanly; clear errors for an unreachable
//!   broker, an unknown topic and a bad librdkafka property.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::kafka::{
    broker, committed, device_key, events, fold, output_env, produce, read_topic, send_raw, unique, vigil, vigil_ok,
    window_key, write_events, KillOnDrop, Msg, SHORT_WINDOWS,
};
use serde_json::Value;

fn lines_json(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn sorted(mut v: Vec<Value>) -> Vec<Value> {
    v.sort_by_key(|x| x.to_string());
    v
}

fn window_rows(msgs: &[Msg]) -> Vec<Value> {
    msgs.iter()
        .map(|m| {
            let mut v = m.json();
            let op = v.as_object_mut().unwrap().remove("op");
            assert_eq!(op, Some(Value::from("insert")));
            assert_eq!(m.key.as_deref(), v["device_id"].as_str().map(str::as_bytes));
            v
        })
        .collect()
}

/// Dead letters as (reason, raw record).
fn dead_letters(msgs: &[Msg], topic: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = msgs
        .iter()
        .map(|m| {
            assert_eq!(m.headers.get("vigil.source.topic").map(String::as_str), Some(topic));
            assert!(m.headers["vigil.source.partition"].parse::<i32>().is_ok());
            assert!(m.headers["vigil.source.offset"].parse::<i64>().is_ok());
            assert!(!m.headers["vigil.detail"].is_empty());
            (
                m.headers["vigil.reason"].clone(),
                String::from_utf8_lossy(&m.value).into_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn file_rejects(path: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = lines_json(path)
        .into_iter()
        .map(|r| {
            (
                r["reason"].as_str().unwrap().to_string(),
                r["raw"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn kafka_outputs_equal_file_outputs_for_1_and_2_workers() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let data = events(20_000, 40, 11);
    let file = write_events(dir.path(), "events.csv", &data);
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, SHORT_WINDOWS).unwrap();
    let config = config.display().to_string();

    // The reference: the file path.
    let file_out = dir.path().join("file-out");
    let file_out_s = file_out.display().to_string();
    vigil_ok(
        &[
            "run",
            "--input",
            &file,
            "--out",
            &file_out_s,
            "-c",
            &config,
            "--progress",
            "never",
        ],
        &[],
    );
    let expected_windows = sorted(lines_json(&file_out.join("windows.jsonl")));
    let expected_features: BTreeMap<String, Value> = lines_json(&file_out.join("features.jsonl"))
        .into_iter()
        .map(|v| (device_key(&v), v))
        .collect();
    let expected_rejects = file_rejects(&file_out.join("rejects.jsonl"));
    assert!(!expected_windows.is_empty() && !expected_rejects.is_empty());

    let input = unique("vigil-eq-in");
    produce(&brokers, &file, &input, 4);
    for workers in ["1", "2"] {
        let prefix = unique(&format!("vigil-eq-w{workers}"));
        let env = output_env(&brokers, &prefix);
        let out = dir.path().join(format!("kafka-out-{workers}"));
        vigil_ok(
            &[
                "run",
                "--input",
                &format!("kafka://{input}"),
                "--bounded",
                "--sink",
                "kafka",
                "--group",
                &prefix,
                "-w",
                workers,
                "--out",
                &out.display().to_string(),
                "-c",
                &config,
                "--progress",
                "never",
            ],
            &env,
        );
        let windows = read_topic(&brokers, &format!("{prefix}.windows"));
        assert_eq!(
            sorted(window_rows(&windows)),
            expected_windows,
            "windows, {workers} worker(s)"
        );
        let features = fold(&read_topic(&brokers, &format!("{prefix}.features")), device_key);
        assert_eq!(features, expected_features, "features, {workers} worker(s)");
        let dlq = read_topic(&brokers, &format!("{prefix}.dlq"));
        assert_eq!(
            dead_letters(&dlq, &input),
            expected_rejects,
            "dead letters, {workers} worker(s)"
        );
        let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
        assert_eq!(summary["events_read"], Value::from(20_000u64));

        // The same Kafka input to the file sink gives the same files.
        let files_out = dir.path().join(format!("kafka-files-{workers}"));
        vigil_ok(
            &[
                "run",
                "--input",
                &format!("kafka://{input}"),
                "--bounded",
                "--sink",
                "files",
                "--group",
                &unique("vigil-eq-files"),
                "-w",
                workers,
                "--out",
                &files_out.display().to_string(),
                "-c",
                &config,
                "--progress",
                "never",
            ],
            &env,
        );
        assert_eq!(sorted(lines_json(&files_out.join("windows.jsonl"))), expected_windows);
        assert_eq!(
            std::fs::read_to_string(files_out.join("features.jsonl")).unwrap(),
            std::fs::read_to_string(file_out.join("features.jsonl")).unwrap()
        );
        assert_eq!(file_rejects(&files_out.join("rejects.jsonl")), expected_rejects);
    }
}

#[test]
fn restart_after_sigkill_folds_to_the_uninterrupted_outputs() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(&config, SHORT_WINDOWS).unwrap();
    let config = config.display().to_string();
    let data = events(30_000, 30, 12);
    let text = String::from_utf8(data).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap().to_string();
    let records: Vec<&str> = lines.collect();
    let cut = records.len() * 6 / 10;
    let first = write_events(
        dir.path(),
        "first.csv",
        format!("{header}\n{}\n", records[..cut].join("\n")).as_bytes(),
    );
    let second = write_events(
        dir.path(),
        "second.csv",
        format!("{header}\n{}\n", records[cut..].join("\n")).as_bytes(),
    );
    let input = unique("vigil-restart-in");
    produce(&brokers, &first, &input, 3);

    // Run 1: unbounded, 2 workers, killed hard once it has committed offsets.
    let prefix = unique("vigil-restart");
    let env = output_env(&brokers, &prefix);
    let out = dir.path().join("out-restart").display().to_string();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"));
    cmd.args([
        "run",
        "--input",
        &format!("kafka://{input}"),
        "--sink",
        "kafka",
        "--group",
        &prefix,
        "-w",
        "2",
        "--out",
        &out,
        "-c",
        &config,
        "--progress",
        "never",
    ])
    .env("VIGIL_LOG", "warn")
    .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    .stderr(std::process::Stdio::null());
    let mut child = KillOnDrop(cmd.spawn().unwrap());
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let c = committed(&brokers, &prefix, &input, 3);
        if c.iter().all(|o| o.is_some_and(|o| o > 0)) {
            break;
        }
        assert!(child.0.try_wait().unwrap().is_none(), "run 1 ended on its own");
        assert!(Instant::now() < deadline, "run 1 committed nothing: {c:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    child.0.kill().unwrap(); // SIGKILL
    child.0.wait().unwrap();
    let after_kill = committed(&brokers, &prefix, &input, 3);

    // More events arrive; run 2 resumes (1 worker) and reads to the end.
    produce(&brokers, &second, &input, 3);
    vigil_ok(
        &[
            "run",
            "--input",
            &format!("kafka://{input}"),
            "--bounded",
            "--sink",
            "kafka",
            "--group",
            &prefix,
            "-w",
            "1",
            "--out",
            &out,
            "-c",
            &config,
            "--progress",
            "never",
        ],
        &env,
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&out).join("summary.json")).unwrap()).unwrap();
    let replayed = summary["events_read"].as_u64().unwrap();
    assert!(
        replayed < records.len() as u64,
        "run 2 started from the committed offsets {after_kill:?}, not from the beginning ({replayed} read)"
    );

    // The uninterrupted reference.
    let uprefix = unique("vigil-uninterrupted");
    vigil_ok(
        &[
            "run",
            "--input",
            &format!("kafka://{input}"),
            "--bounded",
            "--sink",
            "kafka",
            "--group",
            &uprefix,
            "--out",
            &dir.path().join("out-u").display().to_string(),
            "-c",
            &config,
            "--progress",
            "never",
        ],
        &output_env(&brokers, &uprefix),
    );

    let fold_windows = |p: &str| fold(&read_topic(&brokers, &format!("{p}.windows")), window_key);
    let (restarted, reference) = (fold_windows(&prefix), fold_windows(&uprefix));
    assert!(!reference.is_empty());
    assert_eq!(restarted, reference, "window rows, folded by (device, start, length)");
    let fold_features = |p: &str| fold(&read_topic(&brokers, &format!("{p}.features")), device_key);
    assert_eq!(
        fold_features(&prefix),
        fold_features(&uprefix),
        "features, latest per device"
    );
    let dlq = |p: &str| -> BTreeSet<(String, String, String)> {
        read_topic(&brokers, &format!("{p}.dlq"))
            .iter()
            .map(|m| {
                (
                    m.headers["vigil.source.partition"].clone(),
                    m.headers["vigil.source.offset"].clone(),
                    m.headers["vigil.reason"].clone(),
                )
            })
            .collect()
    };
    let reference_dlq = dlq(&uprefix);
    assert!(!reference_dlq.is_empty());
    assert_eq!(dlq(&prefix), reference_dlq, "dead letters, by origin");
}

#[test]
fn bad_messages_go_to_the_dead_letter_topic() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = unique("vigil-dlq-in");
    // A topic with good records (CSV and JSON) around bad ones.
    let file = write_events(dir.path(), "empty.csv", b"");
    produce(&brokers, &file, &input, 2);
    send_raw(
        &brokers,
        &input,
        0,
        &[(b"dev-1", b"1767571200000,dev-1,10.0.0.1,8.8.8.8,443,tcp,100,200,3,10,")],
    );
    let long = "x".repeat(70_000);
    let bad: Vec<(&[u8], &[u8])> = vec![
        (b"k", b"\xff\xfe not utf-8"),
        (
            b"k",
            b"{\"ts\": 1767571201000, \"device_id\": \"dev-2\", \"bytes_out\": -5}",
        ),
        (b"k", b"{not json"),
        (b"k", b"1767571202000,dev-3,not-an-ip,,,,,,,,"),
        (b"k", long.as_bytes()),
        (
            b"k",
            b"{\"ts\": 1767571203000, \"device_id\": \"dev-2\", \"bytes_out\": 5}",
        ),
        (b"k", b"1767571204000,dev-1,10.0.0.1,8.8.8.8,443,tcp,100,200,3,10,"),
    ];
    send_raw(&brokers, &input, 1, &bad);
    let prefix = unique("vigil-dlq");
    let out = dir.path().join("out").display().to_string();
    vigil_ok(
        &[
            "run",
            "--input",
            &format!("kafka://{input}"),
            "--bounded",
            "--sink",
            "kafka",
            "--group",
            &prefix,
            "-w",
            "2",
            "--out",
            &out,
            "--progress",
            "never",
        ],
        &output_env(&brokers, &prefix),
    );
    let dlq = read_topic(&brokers, &format!("{prefix}.dlq"));
    let mut got: Vec<(String, String, String)> = dlq
        .iter()
        .map(|m| {
            assert_eq!(m.headers["vigil.source.topic"], input);
            assert!(!m.headers["vigil.detail"].is_empty());
            (
                m.headers["vigil.source.partition"].clone(),
                m.headers["vigil.source.offset"].clone(),
                m.headers["vigil.reason"].clone(),
            )
        })
        .collect();
    got.sort();
    let expected: Vec<(String, String, String)> = [
        (0, "encoding"),
        (1, "negative_value"),
        (2, "malformed"),
        (3, "bad_ip"),
        (4, "too_long"),
    ]
    .iter()
    .map(|(o, r)| ("1".to_string(), o.to_string(), r.to_string()))
    .collect();
    assert_eq!(got, expected);
    // The raw record is the value (invalid UTF-8 shown lossily).
    let neg = dlq
        .iter()
        .find(|m| m.headers["vigil.reason"] == "negative_value")
        .unwrap();
    assert!(String::from_utf8_lossy(&neg.value).contains("\"bytes_out\": -5"));
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(Path::new(&out).join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["events_read"], Value::from(8u64));
    assert_eq!(summary["accepted"], Value::from(3u64));
    // The good events made it through.
    let windows = read_topic(&brokers, &format!("{prefix}.windows"));
    let count: u64 = windows.iter().map(|m| m.json()["count"].as_u64().unwrap()).sum();
    assert_eq!(count, 3);
}

#[test]
fn stop_signal_finishes_an_unbounded_run_cleanly() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let file = write_events(dir.path(), "e.csv", &events(5_000, 10, 13));
    let input = unique("vigil-stop-in");
    produce(&brokers, &file, &input, 2);
    let prefix = unique("vigil-stop");
    let out = dir.path().join("out");
    let mut child = KillOnDrop(
        std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args([
                "run",
                "--input",
                &format!("kafka://{input}"),
                "--sink",
                "kafka",
                "--group",
                &prefix,
                "--out",
                &out.display().to_string(),
                "--progress",
                "never",
            ])
            .env("VIGIL_LOG", "warn")
            .envs(output_env(&brokers, &prefix))
            .spawn()
            .unwrap(),
    );
    // Wait until everything was read (rows reach the windows topic), then SIGTERM.
    let deadline = Instant::now() + Duration::from_secs(60);
    while read_topic(&brokers, &format!("{prefix}.windows")).is_empty() {
        assert!(Instant::now() < deadline, "no output from the unbounded run");
        std::thread::sleep(Duration::from_millis(300));
    }
    std::process::Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let read = summary["events_read"].as_u64().unwrap();
    assert!(read > 0 && read <= 5_000, "{read}");
    assert!(committed(&brokers, &prefix, &input, 2).iter().all(Option::is_some));
}

#[test]
fn clear_errors_for_unreachable_broker_unknown_topic_and_bad_property() {
    let Some(brokers) = broker() else { return };
    let started = Instant::now();
    let out = vigil(
        &["run", "--input", "kafka://x", "--bounded", "--brokers", "127.0.0.1:1"],
        &[("VIGIL__KAFKA__TIMEOUT".into(), "2s".into())],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("did not answer within 2000 ms"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));

    let out = vigil(
        &[
            "run",
            "--input",
            &format!("kafka://{}", unique("vigil-missing")),
            "--brokers",
            &brokers,
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("does not exist"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "[kafka.properties]\n\"no.such.property\" = \"1\"\n").unwrap();
    let out = vigil(
        &[
            "run",
            "--input",
            "kafka://x",
            "--brokers",
            &brokers,
            "-c",
            &config.display().to_string(),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no.such.property"), "{err}");
}

/// A record dated far ahead, the first of its partition or a lone one in the middle of
/// another, is rejected as `too_far_ahead` (with its origin), does not move its partition's
/// watermark (every other record is accepted, none is late) and is reported as a
/// `clock_skew` anomaly of the device that sent it.
#[test]
fn records_far_ahead_are_rejected_and_reported_per_partition() {
    let Some(brokers) = broker() else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = unique("vigil-ahead-in");
    let file = write_events(dir.path(), "empty.csv", b"");
    produce(&brokers, &file, &input, 2);
    let base = 1_767_571_200_000i64;
    let record = |ts: i64, device: &str| format!("{ts},{device},10.0.0.1,10.0.0.2,443,tcp,100,200,3,10,");
    // Partition 0: the forged record first; partition 1: one 3 hours ahead in the middle.
    let mut p0 = vec![record(4_102_444_799_000, "attacker-0")];
    p0.extend((0..30).map(|i| record(base + i * 1_000, &format!("dev-{}", i % 3))));
    let mut p1: Vec<String> = (0..30)
        .map(|i| record(base + i * 1_000 + 500, &format!("dev-{}", 3 + i % 3)))
        .collect();
    p1.insert(15, record(base + 14_500 + 3 * 3_600_000, "skewed-1"));
    for (partition, records) in [(0, &p0), (1, &p1)] {
        let msgs: Vec<(&[u8], &[u8])> = records.iter().map(|r| (&b"k"[..], r.as_bytes())).collect();
        send_raw(&brokers, &input, partition, &msgs);
    }
    let out = dir.path().join("out");
    let prefix = unique("vigil-ahead");
    vigil_ok(
        &[
            "run",
            "--input",
            &format!("kafka://{input}"),
            "--bounded",
            "--sink",
            "files",
            "--group",
            &prefix,
            "-w",
            "2",
            "--out",
            &out.display().to_string(),
            "--progress",
            "never",
        ],
        &output_env(&brokers, &prefix),
    );
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["events_read"], Value::from(62u64));
    assert_eq!(summary["accepted"], Value::from(60u64));
    assert_eq!(summary["rejected_by_reason"], serde_json::json!({"too_far_ahead": 2}));
    let rejects: Vec<(String, u64, String)> = lines_json(&out.join("rejects.jsonl"))
        .iter()
        .map(|r| {
            (
                r["source"].as_str().unwrap().to_string(),
                r["line"].as_u64().unwrap(),
                r["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        rejects,
        [
            (format!("kafka:{input}/0"), 0, "too_far_ahead".to_string()),
            (format!("kafka:{input}/1"), 15, "too_far_ahead".to_string()),
        ]
    );
    let windows = lines_json(&out.join("windows.jsonl"));
    assert_eq!(windows.iter().map(|w| w["count"].as_u64().unwrap()).sum::<u64>(), 60);
    let skewed: BTreeSet<String> = lines_json(&out.join("anomalies.jsonl"))
        .iter()
        .filter(|a| a["detector"] == "clock_skew" && a["op"] == "insert")
        .map(|a| a["device_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        skewed,
        BTreeSet::from(["attacker-0".to_string(), "skewed-1".to_string()])
    );
}
