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

/// Records dated far ahead (the very first record, lone ones in the stream) are rejected as
/// `too_far_ahead` without moving the watermark, and a real jump of the whole stream is
/// followed from its first record (held until the records after it show the jump) —
/// exactly as the oracle decides.
#[test]
fn records_far_ahead_match_the_oracle() {
    use vigil::decode::RejectReason;
    let config = Config::from_toml("").unwrap();
    let text = String::from_utf8(generated(20_000, 25, 17)).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let ts_of = |l: &str| l.split(',').next().and_then(|t| t.parse::<i64>().ok());
    let forged = |ts: i64, n: usize| format!("{ts},skewed-{n},10.0.0.1,8.8.8.8,443,tcp,1,1,1,1,");
    let mut out = vec![lines.remove(0), forged(4_102_444_799_000, 0)];
    let mut lone = 0;
    for (i, l) in lines.iter().enumerate() {
        out.push(l.clone());
        if i % 997 == 500 {
            if let Some(ts) = ts_of(l) {
                lone += 1;
                out.push(forged(ts + 3 * 3_600_000, lone));
            }
        }
    }
    // The stream resumes ten hours later: 20 records of the same devices.
    let last = lines.iter().rev().find_map(|l| ts_of(l)).unwrap();
    for i in 0..20 {
        out.push(format!(
            "{},dev-jump-{i},10.0.0.1,10.0.0.2,443,tcp,1,1,1,1,",
            last + 10 * 3_600_000 + i
        ));
    }
    let data = (out.join("\n") + "\n").into_bytes();
    let oracle = Oracle::run(&config, None, &OracleInput::single("input", &data));
    let ahead: Vec<u64> = oracle
        .rejects
        .iter()
        .filter(|r| r.reason == RejectReason::TooFarAhead)
        .map(|r| r.line)
        .collect();
    // The first forged record and every lone one; none of the jump (held until the records
    // after it are in, the median of the last 7 times is past it).
    assert!(lone >= 19, "{lone}");
    assert_eq!(ahead.len(), 1 + lone, "{ahead:?}");
    assert_eq!(ahead[0], 2, "the first record is caught");
    let jumped = oracle
        .accepted
        .iter()
        .filter(|e| e.event.device.starts_with("dev-jump-"))
        .count();
    assert_eq!(jumped, 20, "every record after the gap is accepted");
    check(&config, &data, &[1, 3]);
}
