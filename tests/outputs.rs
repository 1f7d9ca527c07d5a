//! What a run leaves in its output folder: it refuses a folder that holds another run's
//! files unless forced, writes per-event scores only when asked, and on a write error names
//! the file and leaves no part files and no half-written output (the disk-full cases with a
//! real ENOSPC are unit tests in `src/output/files.rs`, through `/dev/full`).

use std::path::Path;
use std::process::{Command, Output};

fn vigil(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .args(["--serve", "off", "--progress", "never"])
        .env("VIGIL_LOG", "warn")
        .output()
        .expect("run vigil")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).unwrap().lines().count()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_non_empty_out_folder_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out_s = out.to_str().unwrap();
    let first = vigil(&["run", "--out", out_s]);
    assert!(first.status.success(), "{}", stderr(&first));
    let windows = std::fs::read_to_string(out.join("windows.jsonl")).unwrap();
    std::fs::write(out.join("notes.txt"), "mine\n").unwrap();
    std::fs::create_dir(out.join("snapshots")).unwrap();
    std::fs::write(out.join("snapshots/features-1.jsonl"), "stale\n").unwrap();

    let again = vigil(&["run", "--out", out_s]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    let e = stderr(&again);
    assert!(
        e.contains(&format!("output folder {out_s} is not empty")) && e.contains("--force"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("windows.jsonl")).unwrap(),
        windows,
        "left as it was"
    );

    let forced = vigil(&["run", "--out", out_s, "--force"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(std::fs::read_to_string(out.join("windows.jsonl")).unwrap(), windows);
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine\n",
        "not vigil's: kept"
    );
    assert_eq!(
        names(&out),
        [
            "anomalies.jsonl",
            "features.jsonl",
            "notes.txt",
            "rejects.jsonl",
            "summary.json",
            "windows.jsonl"
        ],
        "the earlier run's snapshots are gone; no part or temporary file is left"
    );
}

#[test]
fn per_event_scores_are_written_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain");
    let o = vigil(&["run", "--out", plain.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!plain.join("scores.jsonl").exists(), "not written by default");

    // value_outlier scores every reading: one line per reading in the windows.
    let readings: u64 = std::fs::read_to_string(plain.join("windows.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|row| row["value_count"].as_u64().unwrap() + row["value_invalid"].as_u64().unwrap())
        .sum();
    assert!(readings > 0);

    let flagged = dir.path().join("flagged");
    let scores = dir.path().join("scores.jsonl");
    let o = vigil(&[
        "run",
        "--out",
        flagged.to_str().unwrap(),
        "--scores-out",
        scores.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(lines(&scores) as u64, readings);
    assert!(!flagged.join("scores.jsonl").exists(), "moved to --scores-out");

    let config = dir.path().join("scores.toml");
    std::fs::write(&config, "[output]\nscores = true\n").unwrap();
    let configured = dir.path().join("configured");
    let o = vigil(&[
        "run",
        "--out",
        configured.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The same scores (their order among equal keys may differ from run to run).
    let sorted = |p: &Path| {
        let mut l: Vec<String> = std::fs::read_to_string(p).unwrap().lines().map(String::from).collect();
        l.sort();
        l
    };
    let (a, b) = (sorted(&configured.join("scores.jsonl")), sorted(&scores));
    assert!(a == b, "{} and {} scores differ", a.len(), b.len());
}

#[test]
fn an_unusable_out_folder_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = file.join("out");
    let o = vigil(&["run", "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains(&format!("output folder {}", out.display())), "{e}");
    assert_eq!(e.matches("Not a directory").count(), 1, "the OS message once: {e}");
}
