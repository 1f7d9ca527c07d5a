//! Models in the engine: scheduled retraining from the feature store (exactly the features
//! at the stated frontier, late data included), the kmeans detector's evidence, promotion of
//! an older version changing scores back, the top score for a planted outlier, and the query
//! server's model endpoints (`POST /models/retrain` trains on exactly the features its
//! answer's `as_of_tick` holds; `GET /models`; the model score in `GET /devices/{id}`).

mod common;

use std::collections::BTreeMap;

use std::time::Duration;

use common::engine::{run_captured, run_serving, states_at};
use vigil::config::Config;
use vigil::detect::{Anomaly, Real};
use vigil::features::FeatureLayout;
use vigil::model::{train, Frontier, Model, Registry, TrainingSet};
use vigil::query::client;

fn generated(events: u64, devices: u32, seed: u64) -> Vec<u8> {
    common::noisy_csv(events, devices, seed, 0.02)
}

fn config_with(registry: &std::path::Path, extra: &str) -> Config {
    common::config(&format!(
        "[time]\nlate_policy = \"correct\"\n[model]\nk = 3\nregistry = \"{}\"\n{extra}",
        registry.display()
    ))
}

/// A model with the fields that depend on wall-clock time and numbering cleared.
fn comparable(mut m: Model) -> Model {
    m.version = 0;
    m.created_ms = 0;
    m.metrics.training_ms = Real(0.0);
    m
}

#[test]
fn scheduled_retraining_uses_exactly_the_features_at_the_frontier() {
    let data = generated(60_000, 40, 5);
    for workers in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let registry = dir.path().join("models");
        let config = config_with(&registry, "retrain_every = \"10m\"\n");
        let (outcome, captured) = run_captured(&config, &data, None, workers);
        assert!(outcome.summary.late_corrected > 0, "the input has late data");
        let reg = Registry::new(&registry);
        let versions = reg.versions().unwrap();
        assert!(versions.len() >= 2, "retrained on schedule: {versions:?}");
        let layout = FeatureLayout::new(&config);
        let ticks: Vec<u64> = versions
            .iter()
            .map(|&v| reg.load(v).unwrap().trained_at.tick.expect("a tick"))
            .collect();
        assert!(ticks.windows(2).all(|w| w[1] - w[0] == 600), "every 10 min: {ticks:?}");
        assert!(
            ticks.iter().all(|t| (t + 1) % 600 == 0),
            "boundaries at kE-1: {ticks:?}"
        );
        let states = states_at(&captured.changes, &ticks);
        for ((&v, &tick), at_tick) in versions.iter().zip(&ticks).zip(states) {
            let model = reg.load(v).unwrap();
            let rows = at_tick.iter().map(|(d, w)| (d.clone(), layout.vector(w))).collect();
            let frontier = Frontier {
                tick: Some(tick),
                as_of_ms: ((tick + 1) * config.tick_ms()) as i64 - 1,
            };
            let expected = train(
                &TrainingSet::new(layout.names().to_vec(), rows, frontier),
                &config.model,
            )
            .unwrap();
            assert_eq!(
                model.metrics.devices, expected.metrics.devices,
                "v{v}, {workers} workers"
            );
            assert_eq!(comparable(model), comparable(expected), "v{v}, {workers} workers");
        }
        // The last version is active; the kmeans detector's anomalies carry their evidence.
        assert_eq!(reg.index().unwrap().active, versions.last().copied());
        for (a, _, _) in captured.anomalies.iter().filter(|(a, _, _)| a.detector == "kmeans") {
            let keys: Vec<&str> = a.evidence.iter().map(|(k, _)| k.as_str()).collect();
            for k in ["score", "cluster", "distance", "model_version"] {
                assert!(keys.contains(&k), "{keys:?}");
            }
            assert!(a.score.0 >= 0.95 && a.score.0 <= 1.0);
        }
    }
}

/// The kmeans anomalies open at the end of a run, by device: (score, model version).
fn open_kmeans(anomalies: &[(Anomaly, u64, isize)]) -> BTreeMap<String, (u64, u64)> {
    let mut acc: BTreeMap<Anomaly, isize> = BTreeMap::new();
    for (a, _, d) in anomalies.iter().filter(|(a, _, _)| a.detector == "kmeans") {
        *acc.entry(a.clone()).or_default() += d;
    }
    acc.into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(a, _)| {
            let version = a.evidence.iter().find(|(k, _)| k == "model_version").unwrap().1 .0 as u64;
            (a.device.to_string(), ((a.score.0 * 1e9) as u64, version))
        })
        .collect()
}

#[test]
fn promoting_an_older_version_changes_scores_back() {
    let data = generated(30_000, 30, 9);
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("models");
    let config = config_with(&registry, "[detectors.kmeans]\nthreshold = 0.3\n");
    let layout = FeatureLayout::new(&config);
    // Two versions trained on different data: the engine's own features (run 0) and a
    // synthetic fleet.
    let (_, captured) = run_captured(&config, &data, None, 2);
    let rows: Vec<_> = captured
        .features
        .iter()
        .map(|(_, d, s)| (d.clone(), layout.vector(s)))
        .collect();
    let frontier = Frontier {
        tick: None,
        as_of_ms: 0,
    };
    let v1 = train(
        &TrainingSet::new(layout.names().to_vec(), rows, frontier.clone()),
        &config.model,
    )
    .unwrap();
    let windows: Vec<u64> = config
        .maintained_windows_ticks()
        .iter()
        .map(|l| l * config.tick_ms())
        .collect();
    let synth = vigil::model::synth::fleet(500, 0, &windows, 3);
    let rows2 = synth.iter().map(|(d, s)| (d.clone(), layout.vector(s))).collect();
    let v2 = train(
        &TrainingSet::new(layout.names().to_vec(), rows2, frontier),
        &config.model,
    )
    .unwrap();
    let reg = Registry::new(&registry);
    reg.register(v1, true).unwrap();
    let (_, with_v1) = run_captured(&config, &data, None, 2);
    reg.register(v2, true).unwrap();
    let (_, with_v2) = run_captured(&config, &data, None, 2);
    reg.promote(1).unwrap();
    let (_, back_to_v1) = run_captured(&config, &data, None, 2);
    let (a, b, c) = (
        open_kmeans(&with_v1.anomalies),
        open_kmeans(&with_v2.anomalies),
        open_kmeans(&back_to_v1.anomalies),
    );
    assert!(!a.is_empty() && a.values().all(|(_, v)| *v == 1), "{a:?}");
    assert!(b.values().all(|(_, v)| *v == 2), "{b:?}");
    assert_ne!(a, b, "another model gives other scores");
    assert_eq!(a, c, "promoting v1 again gives v1's scores");
    assert_eq!(with_v1.anomalies.len(), back_to_v1.anomalies.len());
}

#[test]
fn a_planted_outlier_gets_the_top_score_with_the_real_features() {
    let config = common::config("");
    let layout = FeatureLayout::new(&config);
    let windows: Vec<u64> = config
        .maintained_windows_ticks()
        .iter()
        .map(|l| l * config.tick_ms())
        .collect();
    let fleet = vigil::model::synth::fleet(3000, 1, &windows, 17);
    let rows: Vec<_> = fleet.iter().map(|(d, s)| (d.clone(), layout.vector(s))).collect();
    let set = TrainingSet::new(
        layout.names().to_vec(),
        rows.clone(),
        Frontier {
            tick: None,
            as_of_ms: 0,
        },
    );
    for k in ["5", "8", "\"auto\""] {
        let config = common::config(&format!("[model]\nk = {k}\n"));
        let model = train(&set, &config.model).unwrap();
        let mut scored: Vec<(f64, &str)> = rows.iter().map(|(d, v)| (model.score(v).score, d.as_str())).collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert!(scored[0].1.starts_with("outlier-"), "k={k}: {:?}", &scored[..3]);
        assert!(scored[0].0 > 0.99, "k={k}: {:?}", &scored[..3]);
    }
}

fn post(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let r = client::post(addr, path, Duration::from_secs(120)).unwrap();
    (r.status, r.json())
}

fn get(addr: &str, path: &str) -> (u16, serde_json::Value) {
    let r = client::get(addr, path, Duration::from_secs(30)).unwrap();
    (r.status, r.json())
}

#[test]
fn retraining_on_request_uses_exactly_the_served_features_and_scores_show_in_devices() {
    let data = generated(40_000, 30, 11);
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("models");
    let config = config_with(&registry, "[detectors.kmeans]\nthreshold = 0.3\n");
    let layout = FeatureLayout::new(&config);
    for workers in [1, 2] {
        let _ = std::fs::remove_dir_all(&registry);
        let addr = client::free_loopback_addr().unwrap();
        let (outcome, captured) = run_serving(&config, &data, None, workers, Some(addr));
        let serving = outcome.serving.expect("serving");
        let addr = addr.to_string();

        let (status, list) = get(&addr, "/models");
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["models"].as_array().unwrap().len(), 0);
        assert!(list["active"].is_null());

        // Trained on every device's features at the tick the answer states.
        let (status, v1) = post(&addr, "/models/retrain");
        assert_eq!(status, 201, "{v1}");
        assert_eq!(v1["version"], 1);
        assert_eq!(v1["active"], true);
        let tick = v1["trained_at"]["tick"].as_u64().unwrap();
        let at_tick = states_at(&captured.changes, &[tick]).remove(0);
        let rows = at_tick.iter().map(|(d, w)| (d.clone(), layout.vector(w))).collect();
        let frontier = Frontier {
            tick: Some(tick),
            as_of_ms: ((tick + 1) * config.tick_ms()) as i64 - 1,
        };
        assert_eq!(v1["trained_at"]["as_of_ms"], frontier.as_of_ms);
        let expected = train(
            &TrainingSet::new(layout.names().to_vec(), rows, frontier),
            &config.model,
        )
        .unwrap();
        let reg = Registry::new(&registry);
        assert_eq!(
            comparable(reg.load(1).unwrap()),
            comparable(expected),
            "{workers} workers"
        );
        assert_eq!(v1["metrics"]["devices"], at_tick.len());

        // Not promoted on request: registered, the active version stays.
        let (status, v2) = post(&addr, "/models/retrain?promote=false");
        assert_eq!(status, 201, "{v2}");
        assert_eq!((v2["version"].as_u64(), v2["active"].as_bool()), (Some(2), Some(false)));
        // The same through the command line: `vigil train --server ADDR`.
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["train", "--server", &addr, "--no-promote", "--json"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v3: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!((v3["version"].as_u64(), v3["active"].as_bool()), (Some(3), Some(false)));
        assert_eq!(v3["trained_at"], v1["trained_at"], "the same frontier after the replay");
        let (_, list) = get(&addr, "/models");
        let versions: Vec<u64> = list["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["version"].as_u64().unwrap())
            .collect();
        assert_eq!((versions, list["active"].as_u64()), (vec![3, 2, 1], Some(1)));
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["query", "models", "--addr", &addr])
            .output()
            .unwrap();
        let table = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success() && table.contains("registry"), "{table}");
        assert_eq!(
            table.lines().filter(|l| l.trim_start().starts_with('*')).count(),
            1,
            "{table}"
        );
        let (status, whole) = get(&addr, "/models/1");
        assert_eq!(status, 200);
        let stored: Model = serde_json::from_value(whole).unwrap();
        assert_eq!(stored, reg.load(1).unwrap());

        // Bad requests: clear 4xx.
        for (method, path, want) in [
            ("GET", "/models/retrain", 405),
            ("POST", "/models", 405),
            ("POST", "/models/retrain?promote=maybe", 400),
            ("GET", "/models/x", 400),
            ("GET", "/models/99", 404),
            ("POST", "/devices/x", 405),
        ] {
            let r = client::request(&addr, method, path, Duration::from_secs(30)).unwrap();
            assert_eq!(r.status, want, "{method} {path}: {}", r.body);
            assert!(r.json()["error"].is_string(), "{method} {path}: {}", r.body);
        }
        // This run started without a model: its devices have no score.
        let device = at_tick.keys().next().unwrap().to_string();
        let (_, answer) = get(&addr, &format!("/devices/{device}"));
        assert!(answer["model"].is_null(), "{answer}");
        serving.stop().unwrap();

        // The next run starts with v1 active: every device's answer carries its score under
        // v1, equal to scoring the answer's own feature vector, and a kmeans anomaly is open
        // exactly when the score reaches the threshold.
        let addr = client::free_loopback_addr().unwrap();
        let (outcome, _) = run_serving(&config, &data, None, workers, Some(addr));
        let serving = outcome.serving.expect("serving");
        let model = reg.load(1).unwrap();
        let mut flagged = 0;
        for device in at_tick.keys() {
            let (status, answer) = get(&addr.to_string(), &format!("/devices/{device}"));
            assert_eq!(status, 200, "{answer}");
            let m = &answer["model"];
            assert_eq!(m["model_version"], 1, "{answer}");
            let vector: Vec<f64> = answer["feature_vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let scored = model.score(&vector);
            assert_eq!(m["score"].as_f64().unwrap(), scored.score, "{device}");
            assert_eq!(m["cluster"].as_u64().unwrap(), scored.cluster as u64, "{device}");
            let open = answer["anomalies"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["detector"] == "kmeans");
            assert_eq!(open, scored.score >= 0.3, "{device}: {answer}");
            flagged += usize::from(open);
        }
        assert!(flagged > 0, "some device is far from v1's clusters");
        serving.stop().unwrap();
    }
}
