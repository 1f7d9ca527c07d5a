//! The dataflow's outputs equal the single-threaded oracle's, exactly, on seeded generated
//! input with out-of-order, late and malformed records — for 1, 2 and 4 workers.

mod common;

use common::engine::{run_captured, states_at};
use common::oracle::{Oracle, OracleInput};
use vigil::config::Config;
use vigil::window::DeviceWindows;

fn generated(events: u64, devices: u32, seed: u64) -> Vec<u8> {
    common::noisy_csv(events, devices, seed, 0.01)
}

fn check(config: &Config, data: &[u8], workers: &[usize]) {
    let oracle = Oracle::run(config, None, &OracleInput::single("input", data));
    let mut expected_rejects: Vec<_> = oracle
        .rejects
        .iter()
        .map(|r| (r.line, r.reason, r.raw.clone()))
        .collect();
    expected_rejects.sort();
    let expected_rows = oracle.tumbling_rows(config);
    for &w in workers {
        let (outcome, captured) = run_captured(config, data, None, w);
        let s = &outcome.summary;
        assert_eq!(s.events_read, oracle.read, "records read, {w} workers");
        assert_eq!(s.accepted, oracle.accepted.len() as u64, "accepted, {w} workers");
        assert_eq!(s.late_corrected, oracle.late_corrected, "late corrected, {w} workers");
        assert_eq!(s.events_read, s.accepted + s.rejected);

        let mut rejects: Vec<_> = captured
            .rejects
            .iter()
            .map(|r| (r.line, r.reason, r.raw.clone()))
            .collect();
        rejects.sort();
        assert_eq!(rejects, expected_rejects, "rejects, {w} workers");

        // The window-stats collection at every tick where it may change, up to T_end.
        let t_end = (s.end_event_time_ms.expect("an end time") / config.tick_ms() as i64) as u64;
        let ticks: Vec<u64> = oracle
            .change_ticks(config)
            .into_iter()
            .filter(|&t| t <= t_end)
            .collect();
        assert!(ticks.len() > 100, "enough ticks to be meaningful: {}", ticks.len());
        let expected = oracle.states_at(config, &ticks);
        let actual = states_at(&captured.changes, &ticks);
        for ((t, e), a) in ticks.iter().zip(&expected).zip(&actual) {
            if e != a {
                let device = e.keys().chain(a.keys()).find(|d| e.get(*d) != a.get(*d)).unwrap();
                panic!(
                    "{w} workers, tick {t}, device {device}:\n expected {:?}\n actual   {:?}",
                    e.get(device),
                    a.get(device)
                );
            }
        }
        // No change beyond T_end.
        assert!(captured.changes.iter().all(|(_, t, _)| *t <= t_end));

        let mut rows = captured.rows.clone();
        rows.sort();
        assert_eq!(rows.len(), expected_rows.len(), "tumbling rows, {w} workers");
        assert_eq!(rows, expected_rows, "tumbling rows, {w} workers");

        // The final feature snapshot is the collection at T_end.
        let mut snapshot: Vec<_> = captured
            .features
            .iter()
            .filter(|(t, _, _)| *t == t_end)
            .map(|(_, d, s)| (d.clone(), DeviceWindows::clone(s)))
            .collect();
        snapshot.sort();
        let expected_final: Vec<_> = oracle.state_at(config, t_end).into_iter().collect();
        assert_eq!(snapshot, expected_final, "feature snapshot at T_end, {w} workers");
    }
}

#[test]
fn default_windows_match_the_oracle() {
    let config = Config::from_toml("").unwrap();
    let data = generated(30_000, 40, 7);
    check(&config, &data, &[1, 2, 4]);
}

#[test]
fn short_windows_with_many_expiries_match_the_oracle() {
    let config = Config::from_toml(
        "[windows]\nsliding = [\"10s\", \"1m\", \"2m\"]\ntumbling = [\"30s\", \"1m\", \"45s\"]\n[time]\nlateness = \"3s\"\n",
    )
    .unwrap();
    let data = generated(20_000, 25, 11);
    check(&config, &data, &[1, 3]);
}

#[test]
fn late_corrections_match_the_oracle() {
    let config = Config::from_toml("[time]\nlate_policy = \"correct\"\ntick = \"2s\"\n[windows]\nsliding = [\"10s\", \"1m\"]\ntumbling = [\"20s\"]\n").unwrap();
    let data = generated(15_000, 20, 3);
    check(&config, &data, &[1, 2]);
}

#[test]
fn window_work_cut_into_the_smallest_slices_matches_the_oracle() {
    // 1 µs slices: the window operator stops after every few items and resumes mid-tick.
    let config = Config::from_toml(
        "[windows]\nsliding = [\"10s\", \"1m\", \"2m\"]\ntumbling = [\"30s\", \"1m\"]\n[server]\nwork_slice_us = 1\n",
    )
    .unwrap();
    let data = generated(20_000, 25, 5);
    check(&config, &data, &[1, 3]);
}

#[test]
fn windows_advancing_in_other_steps_match_the_oracle() {
    // 1m and 2m advance in steps of 20s; 10s and the 20s tumbling length slide every tick.
    let config = Config::from_toml(
        "[windows]\nsliding = [\"10s\", \"1m\", \"2m\"]\ntumbling = [\"20s\", \"1m\"]\nstep = \"20s\"\n",
    )
    .unwrap();
    assert_eq!(config.window_steps_ticks(), vec![1, 1, 20, 20]);
    let data = generated(20_000, 25, 13);
    check(&config, &data, &[1, 3]);
    // Every window sliding every tick, as before steps existed.
    let config = Config::from_toml("[windows]\nstep = \"1s\"\n").unwrap();
    assert_eq!(config.window_steps_ticks(), vec![1, 1, 1]);
    check(&config, &data, &[2]);
}
