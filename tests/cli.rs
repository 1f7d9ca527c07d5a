//! The command line as a user meets it: help on every subcommand, the embedded default run,
//! and clear errors (exit status 2, naming what is wrong) for bad flags, files and config.

use std::process::{Command, Output};

fn vigil(args: &[&str]) -> Output {
    // `vigil run` serves queries by default; tests run in parallel, so no server here
    // (tests/query.rs covers it).
    let no_server: &[&str] = if args.first() == Some(&"run") {
        &["--serve", "off"]
    } else {
        &[]
    };
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .args(no_server)
        .env("VIGIL_LOG", "warn")
        .output()
        .expect("run vigil")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn every_subcommand_has_help() {
    let top = vigil(&["--help"]);
    assert!(top.status.success());
    let text = String::from_utf8_lossy(&top.stdout).into_owned();
    let subcommands: Vec<String> = text
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(subcommands.len() >= 3, "subcommands listed: {subcommands:?}");
    for sub in subcommands {
        let o = vigil(&[&sub, "--help"]);
        assert!(o.status.success(), "{sub} --help");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage:"),
            "{sub} --help prints usage"
        );
    }
}

#[test]
fn default_run_uses_the_embedded_sample() {
    let dir = tempfile::tempdir().unwrap();
    let o = vigil(&["run", "--progress", "never", "--out", dir.path().to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap()).unwrap();
    let read = summary["events_read"].as_u64().unwrap();
    assert_eq!(read, 12_000);
    assert_eq!(
        read,
        summary["accepted"].as_u64().unwrap() + summary["rejected"].as_u64().unwrap()
    );
    for file in ["windows.jsonl", "features.jsonl", "rejects.jsonl", "anomalies.jsonl"] {
        assert!(dir.path().join(file).exists(), "{file} written");
    }
    assert!(
        stderr(&o).contains("events read 12000"),
        "summary printed: {}",
        stderr(&o)
    );
}

#[test]
fn missing_input_is_a_usage_error_naming_the_path() {
    let o = vigil(&["run", "--input", "/no/such/file.csv", "--out", "/tmp/vigil-cli-test"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/no/such/file.csv"), "{}", stderr(&o));
}

#[test]
fn unknown_config_key_is_a_usage_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[windows]\nslidng = [\"1m\"]\n").unwrap();
    let o = vigil(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("slidng"), "{}", stderr(&o));
}

#[test]
fn bad_config_value_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[time]\ntick = \"soon\"\n").unwrap();
    let o = vigil(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("tick") && stderr(&o).contains("soon"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_detector_is_rejected_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "[detectors.no_such_detector]\nenabled = true\n").unwrap();
    let o = vigil(&[
        "run",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("detectors.no_such_detector"), "{}", stderr(&o));
}

#[test]
fn bad_format_flag_is_a_usage_error() {
    let o = vigil(&["run", "--format", "xml", "--out", "/tmp/vigil-cli-test"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("xml"), "{}", stderr(&o));
}

#[test]
fn csv_without_ts_column_is_an_input_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.csv");
    std::fs::write(&input, "device_id,bytes_out\nvm-1,5\n").unwrap();
    let o = vigil(&[
        "run",
        "--input",
        input.to_str().unwrap(),
        "--out",
        dir.path().join("out").to_str().unwrap(),
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("bad.csv") && stderr(&o).contains("header"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn generate_is_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    for path in [&a, &b] {
        let o = vigil(&[
            "generate",
            "--events",
            "2000",
            "--devices",
            "10",
            "--seed",
            "5",
            "--out",
            path.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn train_needs_a_snapshot_or_a_server_and_names_an_unreachable_one() {
    let o = vigil(&["train"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--features"), "{}", stderr(&o));
    let o = vigil(&["train", "--server", "127.0.0.1:1"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot reach the vigil query server at 127.0.0.1:1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bench_times_a_short_job_and_repeats_it_on_the_same_input() {
    let o = vigil(&[
        "bench",
        "--events",
        "20000",
        "--devices",
        "200",
        "--repeat",
        "2",
        "-w",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    // Every record is accounted for, and the same input gives the same counts each run.
    let counts: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with("accepted "))
        .collect();
    assert_eq!(counts.len(), 2, "{out}");
    assert_eq!(counts[0], counts[1], "{out}");
    let number = |line: &str, word: &str| -> u64 {
        let after = line.split(word).nth(1).unwrap_or_else(|| panic!("{word} in {line}"));
        after
            .trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(
        number(counts[0], "accepted") + number(counts[0], "rejected"),
        20_000,
        "{out}"
    );
    assert!(number(counts[0], "window rows") > 0, "{out}");
    assert!(out.contains("vigil bench: 20000 events"), "{out}");
    assert!(out.contains("throughput over 2 runs: fastest"), "{out}");
    assert!(out.contains("memory per device"), "{out}");
    let zero = vigil(&["bench", "--events", "10", "--repeat", "0"]);
    assert_eq!(zero.status.code(), Some(2), "{}", stderr(&zero));
    assert!(stderr(&zero).contains("--repeat"), "{}", stderr(&zero));
}
