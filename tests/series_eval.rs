//! Per-event scoring of labelled series: `vigil run --scores-out` gives exactly the scores of
//! `value_outlier`'s per-device logic applied to each device's readings directly (what
//! `vigil eval bench` runs), also with out-of-order rows and several workers; and
//! `vigil eval series|bench|events` on constructed UCR files.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::engine::run_captured;
use common::{at, config};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use vigil::dataflows::value_outlier::{Outlier, Params};

/// Three devices for 3 hours, one reading per 2 s (a discrete one, a noisy one with a shift,
/// a heavy-tailed one), rows jittered out of order by up to 3 s (within the 5 s lateness).
fn readings() -> BTreeMap<String, Vec<(i64, f64)>> {
    let mut r = StdRng::seed_from_u64(3);
    let mut out: BTreeMap<String, Vec<(i64, f64)>> = BTreeMap::new();
    for i in 0..5400i64 {
        let ts = at(i * 2000);
        out.entry("counts".into())
            .or_default()
            .push((ts, r.random_range(0..4) as f64));
        let shift = if i > 4000 { 10.0 } else { 0.0 };
        out.entry("noisy".into())
            .or_default()
            .push((ts + 1, 20.0 + shift + r.random_range(-1.0..1.0f64)));
        let u: f64 = r.random_range(0.001..1.0);
        out.entry("heavy".into())
            .or_default()
            .push((ts + 2, (1.0 / u).powf(0.7)));
    }
    out
}

fn csv(readings: &BTreeMap<String, Vec<(i64, f64)>>) -> Vec<u8> {
    let mut r = StdRng::seed_from_u64(4);
    let mut rows: Vec<(i64, String)> = readings
        .iter()
        .flat_map(|(d, v)| v.iter().map(move |(ts, x)| (*ts, format!("{ts},{d},{x}"))))
        .collect();
    rows.sort_by_key(|r| r.0);
    // Swap neighbours within 3 s: out of order, not late.
    for i in 1..rows.len() {
        if rows[i].0 - rows[i - 1].0 < 3000 && r.random_bool(0.3) {
            rows.swap(i, i - 1);
        }
    }
    let mut out = String::from("ts,device_id,value\n");
    for (_, line) in rows {
        out += &line;
        out.push('\n');
    }
    out.into_bytes()
}

#[test]
fn engine_scores_equal_the_logic_applied_directly() {
    let readings = readings();
    let data = csv(&readings);
    let mut text = String::new();
    for d in ["silence", "exfiltration", "corruption", "port_scan"] {
        text += &format!("[detectors.{d}]\nenabled = false\n");
    }
    let logic = Outlier(Params::default());
    for workers in [1, 2] {
        let (_, captured) = run_captured(&config(&text), &data, None, workers);
        let mut engine: BTreeMap<(String, i64), f64> = BTreeMap::new();
        for s in captured.scores.iter().filter(|s| s.detector == "value_outlier") {
            assert!(engine.insert((s.device.to_string(), s.ts_ms), s.score).is_none());
        }
        let mut direct = BTreeMap::new();
        for (d, v) in &readings {
            for ((ts, _), s) in v.iter().zip(logic.score_series(v)) {
                direct.insert((d.clone(), *ts), s);
            }
        }
        assert_eq!(engine.len(), 3 * 5400, "{workers} workers: one score per reading");
        let differ = direct
            .iter()
            .filter(|(k, v)| engine.get(*k).map(|e| e.to_bits()) != Some(v.to_bits()))
            .count();
        assert_eq!(differ, 0, "{workers} workers: scores differ from the direct logic");
        assert!(direct.values().any(|&s| s > 0.999), "the shift scores high");
    }
}

fn vigil(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .env("VIGIL_LOG", "warn")
        .output()
        .expect("run vigil")
}

#[test]
fn eval_series_bench_and_events_on_constructed_files() {
    let dir = tempfile::tempdir().unwrap();
    // Two UCR files of 1000 readings; anomalies at rows 700..=705 and 800..=800 (1-based).
    let mut r = StdRng::seed_from_u64(5);
    for (name, at_row) in [
        ("001_UCR_Anomaly_A_300_700_705.txt", 700),
        ("002_UCR_Anomaly_B_300_800_800.txt", 800),
    ] {
        let text: String = (1..=1000)
            .map(|i| {
                let spike = if i == at_row { 30.0 } else { 0.0 };
                format!("{}\n", 10.0 + spike + r.random_range(-1.0..1.0f64))
            })
            .collect();
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let data = dir.path().to_str().unwrap();
    let o = vigil(&["eval", "bench", "--format", "ucr", "--data", data, "--json"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bench: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = bench
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["detector"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["value_outlier", "robust_z", "windowed_gaussian"]);
    let ours = &bench[0];
    assert_eq!(ours["nab"][0][0], "standard");
    assert!(ours["nab"][0][3].as_f64().unwrap() > 80.0, "{}", ours["nab"][0]);
    assert_eq!(ours["best_f1"]["range_recall"], 1.0);

    // events → run → series gives the same figures as bench.
    let events = dir.path().join("events.csv");
    let o = vigil(&[
        "eval",
        "events",
        "--format",
        "ucr",
        "--data",
        data,
        "--out",
        events.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let scores = dir.path().join("scores.jsonl");
    let out = dir.path().join("out");
    let o = vigil(&[
        "run",
        "--serve",
        "off",
        "--progress",
        "never",
        "--input",
        events.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--scores-out",
        scores.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = vigil(&[
        "eval",
        "series",
        "--format",
        "ucr",
        "--data",
        data,
        "--scores",
        scores.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let series: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(series[0]["nab"], ours["nab"]);
    assert_eq!(series[0]["best_f1"], ours["best_f1"]);

    // Errors name the file (and line).
    std::fs::write(dir.path().join("003_UCR_Anomaly_C_1_2_3.txt"), "1\nx\n3\n").unwrap();
    let o = vigil(&["eval", "bench", "--format", "ucr", "--data", data]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("003_UCR_Anomaly_C_1_2_3.txt:2") && err.contains("`x`"),
        "{err}"
    );
    let o = vigil(&["eval"]);
    assert_eq!(o.status.code(), Some(2), "no labels nor subcommand is a usage error");
}
