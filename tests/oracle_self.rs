//! Checks of the oracle itself on small hand-made inputs with hand-computed results.

mod common;

use common::oracle::{Oracle, OracleInput};
use common::{at, config, BASE_MS};
use vigil::config::Config;
use vigil::decode::RejectReason;
use vigil::event::Ip;
use vigil::window::{DeviceWindows, WindowRow, WindowStats};

/// Tick of `BASE_MS` with a 1 s tick.
const T0: u64 = (BASE_MS / 1000) as u64;

const HEADER: &str = "ts,device_id,src_ip,dst_ip,dst_port,protocol,bytes_out,bytes_in,packets,duration_ms,value";

/// tick 1 s, lateness 5 s; maintained windows 10, 30 and 60 ticks.
fn base_config() -> Config {
    config(
        r#"
[time]
tick = "1s"
lateness = "5s"
[windows]
sliding = ["10s", "60s"]
tumbling = ["30s"]
"#,
    )
}

fn run(config: &Config, csv: &str) -> Oracle {
    let oracle = Oracle::run(config, None, &OracleInput::single("in.csv", csv.as_bytes()));
    check_counts(&oracle);
    oracle
}

fn check_counts(oracle: &Oracle) {
    assert_eq!(oracle.read, (oracle.accepted.len() + oracle.rejects.len()) as u64);
}

/// Stats of events without addresses, ports or readings.
fn plain(count: u64, bytes_out: u64) -> WindowStats {
    WindowStats {
        count,
        bytes_out,
        ..Default::default()
    }
}

fn ip(text: &str) -> Ip {
    Ip::from_addr(text.parse().unwrap())
}

#[test]
fn window_boundary_excludes_an_event_exactly_l_ticks_earlier() {
    let c = base_config();
    assert_eq!(c.maintained_windows_ticks(), vec![10, 30, 60]);
    let csv = format!(
        "{HEADER}\n\
         1699999200000,a,10.0.0.1,8.8.8.8,53,udp,100,1,1,0,\n\
         1699999210000,a,10.0.0.1,8.8.8.8,53,udp,200,2,1,0,\n"
    );
    let o = run(&c, &csv);
    assert_eq!(o.read, 2);
    assert_eq!(o.accepted.iter().map(|e| e.tick).collect::<Vec<_>>(), vec![T0, T0 + 10]);
    assert_eq!(o.t_last, Some(T0 + 10));
    assert_eq!(o.change_ticks(&c), vec![T0, T0 + 10]);

    assert!(o.state_at(&c, T0 - 1).is_empty());

    let s = o.state_at(&c, T0 + 9);
    let a = &s["a"];
    assert_eq!(a.last_seen_ms, BASE_MS);
    assert_eq!(a.windows.iter().map(|w| w.count).collect::<Vec<_>>(), vec![1, 1, 1]);

    let s = o.state_at(&c, T0 + 10);
    assert_eq!(s.len(), 1);
    let a = &s["a"];
    assert_eq!(a.last_seen_ms, at(10_000));
    // The 10-tick window at T0+10 holds ticks T0+1..=T0+10: the event at T0 is out.
    assert_eq!(
        a.windows[0],
        WindowStats {
            count: 1,
            bytes_out: 200,
            bytes_in: 2,
            packets: 1,
            bytes_out_external: 200,
            distinct_dst: 1,
            distinct_ports: 1,
            ..Default::default()
        }
    );
    assert_eq!(a.windows[1].count, 2);
    assert_eq!(a.windows[1].bytes_out, 300);
    assert_eq!(a.windows[1].distinct_dst, 1);
    assert_eq!(a.windows[2].count, 2);
}

#[test]
fn distinct_counts_skip_absent_destination_and_port_zero() {
    let c = base_config();
    let csv = format!(
        "{HEADER}\n\
         1699999200000,a,10.0.0.1,8.8.8.8,53,udp,1,0,1,0,\n\
         1699999200000,a,10.0.0.1,8.8.8.8,53,udp,1,0,1,0,\n\
         1699999200100,a,10.0.0.1,1.1.1.1,443,tcp,1,0,1,0,\n\
         1699999200200,a,10.0.0.1,,,tcp,1,0,1,0,\n\
         1699999200300,a,10.0.0.1,::,0,tcp,1,0,1,0,\n\
         1699999200400,a,10.0.0.1,10.0.0.5,53,udp,1,0,1,0,\n\
         1699999200500,a,10.0.0.1,::ffff:8.8.8.8,8080,tcp,1,0,1,0,\n"
    );
    let o = run(&c, &csv);
    assert_eq!(o.accepted.len(), 7);
    let w = &o.state_at(&c, T0)["a"].windows[0];
    assert_eq!(w.count, 7);
    // 8.8.8.8 (also written IPv4-mapped), 1.1.1.1, 10.0.0.5; `::` and empty are not counted.
    assert_eq!(w.distinct_dst, 3);
    // 53, 443, 8080; 0 and empty are not counted.
    assert_eq!(w.distinct_ports, 3);
    assert_eq!(w.packets, 7);
}

#[test]
fn external_bytes_count_only_destinations_outside_internal_ranges() {
    let c = base_config();
    let csv = format!(
        "{HEADER}\n\
         1699999200000,a,10.0.0.1,8.8.8.8,1,tcp,10,0,0,0,\n\
         1699999200000,a,10.0.0.1,192.168.1.1,1,tcp,20,0,0,0,\n\
         1699999200000,a,10.0.0.1,172.31.255.255,1,tcp,40,0,0,0,\n\
         1699999200000,a,10.0.0.1,172.32.0.1,1,tcp,80,0,0,0,\n\
         1699999200000,a,10.0.0.1,2001:db8::1,1,tcp,160,0,0,0,\n\
         1699999200000,a,10.0.0.1,,1,tcp,320,0,0,0,\n\
         1699999200000,a,10.0.0.1,10.1.2.3,1,tcp,640,0,0,0,\n"
    );
    let o = run(&c, &csv);
    let w = &o.state_at(&c, T0)["a"].windows[0];
    assert_eq!(w.bytes_out, 1270);
    // 8.8.8.8, 172.32.0.1 and 2001:db8::1 are external; the absent address never is.
    assert_eq!(w.bytes_out_external, 10 + 80 + 160);
    assert_eq!(w.distinct_dst, 6);
    assert_eq!(w.distinct_ports, 1);
}

#[test]
fn readings_invalid_values_and_extremes() {
    let c = base_config();
    let values = [
        "1.5",
        "-2.25",
        "",
        "NaN",
        "inf",
        "-inf",
        "1e12",
        "1000000000",
        "0.0000004",
    ];
    let mut csv = format!("{HEADER}\n");
    for (i, v) in values.iter().enumerate() {
        csv.push_str(&format!("{},a,,,,,0,0,0,0,{v}\n", at(i as i64 * 100)));
    }
    let o = run(&c, &csv);
    assert_eq!(o.accepted.len(), values.len());
    let w = &o.state_at(&c, T0)["a"].windows[0];
    assert_eq!(
        *w,
        WindowStats {
            count: 9,
            value_count: 4,
            value_invalid: 4,
            value_sum: 1_000_000_000_000_000 + 1_500_000 - 2_250_000,
            value_sumsq: 1_000_000_000_000_000_000_000_000_000_000 + 2_250_000_000_000 + 5_062_500_000_000,
            value_min: Some(-2_250_000),
            value_max: Some(1_000_000_000_000_000),
            ..Default::default()
        }
    );
}

#[test]
fn readings_mean_min_max() {
    let c = base_config();
    let csv = format!(
        "{HEADER}\n\
         1699999200000,a,,,,,0,0,0,0,3\n\
         1699999201000,a,,,,,0,0,0,0,1\n\
         1699999202000,a,,,,,0,0,0,0,\n\
         1699999203000,a,,,,,0,0,0,0,4\n\
         1699999204000,a,,,,,0,0,0,0,2\n"
    );
    let o = run(&c, &csv);
    let w = &o.state_at(&c, T0 + 4)["a"].windows[0];
    assert_eq!(w.count, 5);
    assert_eq!(w.value_count, 4);
    assert_eq!(w.value_invalid, 0);
    assert_eq!(w.value_sum, 10_000_000);
    assert_eq!(w.value_sumsq, 30_000_000_000_000);
    assert_eq!(w.value_min, Some(1_000_000));
    assert_eq!(w.value_max, Some(4_000_000));
    assert_eq!(w.value_mean(), Some(2.5));
    assert_eq!(w.value_variance(), Some(1.25));
    // At T0+1 only the readings 3 and 1 are in.
    let w = &o.state_at(&c, T0 + 1)["a"].windows[0];
    assert_eq!(
        (w.value_min, w.value_max, w.value_mean()),
        (Some(1_000_000), Some(3_000_000), Some(2.0))
    );
}

/// Line numbers count the header and blank lines.
fn lateness_input() -> String {
    format!(
        "{HEADER}\n\
         1699999220000,a,,,,,1,0,0,0,\n\
         \n\
         1699999215000,a,,,,,2,0,0,0,\n\
         1699999203000,a,,,,,4,0,0,0,\n\
         1699999210000,a,,,,,-1,0,0,0,\n\
         1699999240000,a,,,70000,,8,0,0,0,\n\
         1699999234999,a,,,,,16,0,0,0,\n\
         1699999235000,a,,,,,32,0,0,0,\n\
         garbage\n"
    )
}

#[test]
fn late_records_are_rejected_and_validation_wins() {
    let c = base_config();
    let o = run(&c, &lateness_input());
    assert_eq!(o.read, 8);
    // Line 4 is exactly at M - lateness (20 s - 5 s): inside. Line 7 is invalid but its valid
    // timestamp (40 s) advances M, so line 8 (34.999 s < 35 s) is late and line 9 is not.
    assert_eq!(
        o.accepted
            .iter()
            .map(|e| (e.event.bytes_out, e.tick))
            .collect::<Vec<_>>(),
        vec![(1, T0 + 20), (2, T0 + 15), (32, T0 + 35)]
    );
    assert_eq!(
        o.rejects
            .iter()
            .map(|r| (r.source.as_str(), r.line, r.reason))
            .collect::<Vec<_>>(),
        vec![
            ("in.csv", 5, RejectReason::Late),
            ("in.csv", 6, RejectReason::NegativeValue),
            ("in.csv", 7, RejectReason::BadPort),
            ("in.csv", 8, RejectReason::Late),
            ("in.csv", 10, RejectReason::Malformed),
        ]
    );
    assert_eq!(o.rejects[4].raw, "garbage");
    assert_eq!(o.late_corrected, 0);
    assert_eq!(o.t_last, Some(T0 + 35));
}

#[test]
fn late_policy_correct_moves_the_tick_to_the_watermark() {
    let c = config(
        r#"
[time]
tick = "1s"
lateness = "5s"
late_policy = "correct"
[windows]
sliding = ["10s", "60s"]
tumbling = ["30s"]
"#,
    );
    let o = run(&c, &lateness_input());
    assert_eq!(o.read, 8);
    assert_eq!(o.late_corrected, 2);
    // Line 5 (3 s) is applied at floor((20 s - 5 s) / 1 s), line 8 (34.999 s) at 35 s; both
    // keep their own ts.
    assert_eq!(
        o.accepted
            .iter()
            .map(|e| (e.event.bytes_out, e.event.ts_ms, e.tick))
            .collect::<Vec<_>>(),
        vec![
            (1, at(20_000), T0 + 20),
            (2, at(15_000), T0 + 15),
            (4, at(3_000), T0 + 15),
            (16, at(34_999), T0 + 35),
            (32, at(35_000), T0 + 35),
        ]
    );
    assert_eq!(
        o.rejects.iter().map(|r| (r.line, r.reason)).collect::<Vec<_>>(),
        vec![
            (6, RejectReason::NegativeValue),
            (7, RejectReason::BadPort),
            (10, RejectReason::Malformed),
        ]
    );
    // Nothing is applied before T0+15: the corrected record is not at its own tick T0+3.
    assert!(o.state_at(&c, T0 + 14).is_empty());
    let a = &o.state_at(&c, T0 + 15)["a"];
    assert_eq!(a.last_seen_ms, at(15_000));
    assert_eq!(a.windows[0], plain(2, 6));
    let a = &o.state_at(&c, T0 + 35)["a"];
    assert_eq!(a.last_seen_ms, at(35_000));
    // 10-tick window at T0+35: ticks T0+26..=T0+35.
    assert_eq!(a.windows[0], plain(2, 48));
    // 30- and 60-tick windows hold everything accepted (ticks T0+15..=T0+35).
    assert_eq!(a.windows[1], plain(5, 55));
    assert_eq!(a.windows[2], plain(5, 55));
}

#[test]
fn watermark_spans_files_of_a_partition_but_not_partitions() {
    let c = base_config();
    let first = b"1699999220000,a,,,,,1,0,0,0,\n";
    let second = b"1699999200000,a,,,,,2,0,0,0,\n";
    let one_partition = OracleInput {
        sources: vec![
            ("dir/1.csv".to_string(), &first[..]),
            ("dir/2.csv".to_string(), &second[..]),
        ],
    };
    let o = Oracle::run(&c, None, &one_partition);
    check_counts(&o);
    assert_eq!(o.accepted.len(), 1);
    assert_eq!(
        o.rejects
            .iter()
            .map(|r| (r.source.as_str(), r.line, r.reason))
            .collect::<Vec<_>>(),
        vec![("dir/2.csv", 1, RejectReason::Late)]
    );

    let o = Oracle::run_partitions(
        &c,
        None,
        &[OracleInput::single("p0", first), OracleInput::single("p1", second)],
    );
    check_counts(&o);
    assert_eq!(o.accepted.iter().map(|e| e.tick).collect::<Vec<_>>(), vec![T0 + 20, T0]);
    assert!(o.rejects.is_empty());
}

#[test]
fn tumbling_rows_per_period_with_partial_last_period() {
    let c = config(
        r#"
[windows]
sliding = ["10s"]
tumbling = ["60s", "30s"]
"#,
    );
    assert_eq!(c.maintained_windows_ticks(), vec![10, 30, 60]);
    let csv = format!(
        "{HEADER}\n\
         1699999200000,a,,,,,1,0,0,0,\n\
         1699999229999,a,,,,,2,0,0,0,\n\
         1699999230000,a,,,,,4,0,0,0,\n\
         1699999245000,b,,,,,8,0,0,0,\n\
         1699999275000,a,,,,,16,0,0,0,\n"
    );
    let o = run(&c, &csv);
    let row = |start: i64, len: i64, device: &str, stats: WindowStats| WindowRow {
        window_end_ms: at(start + len),
        window_len_ms: len as u64,
        device: device.into(),
        window_start_ms: at(start),
        stats,
    };
    assert_eq!(
        o.tumbling_rows(&c),
        vec![
            row(0, 30_000, "a", plain(2, 3)),
            row(30_000, 30_000, "a", plain(1, 4)),
            row(30_000, 30_000, "b", plain(1, 8)),
            row(0, 60_000, "a", plain(3, 7)),
            row(0, 60_000, "b", plain(1, 8)),
            row(60_000, 30_000, "a", plain(1, 16)),
            row(60_000, 60_000, "a", plain(1, 16)),
        ]
    );
}

#[test]
fn device_with_all_windows_emptied_stays_with_zero_stats() {
    let c = base_config();
    let csv = format!(
        "{HEADER}\n\
         1699999200000,a,,,,,1,0,0,0,\n\
         1699999300000,b,,,,,2,0,0,0,\n"
    );
    let o = run(&c, &csv);
    assert_eq!(o.t_last, Some(T0 + 100));
    assert_eq!(o.change_ticks(&c), vec![T0, T0 + 10, T0 + 30, T0 + 60, T0 + 100]);

    let s = o.state_at(&c, T0 + 59);
    assert_eq!(s.len(), 1);
    assert_eq!(
        s["a"].windows.to_vec(),
        vec![WindowStats::default(), WindowStats::default(), plain(1, 1)]
    );

    let s = o.state_at(&c, T0 + 60);
    assert_eq!(
        s["a"],
        DeviceWindows {
            last_seen_ms: BASE_MS,
            windows: vec![WindowStats::default(); 3].into(),
        }
    );
    let s = o.state_at(&c, T0 + 100);
    assert_eq!(s.len(), 2);
    assert_eq!(s["a"].windows.to_vec(), vec![WindowStats::default(); 3]);
    assert_eq!(s["b"].windows.to_vec(), vec![plain(1, 2); 3]);
    assert_eq!(s["b"].last_seen_ms, at(100_000));
    assert_eq!(o.final_state(&c), s);
}

#[test]
fn header_in_another_order_crlf_and_per_file_formats() {
    let c = config(
        r#"
[output]
reject_raw_bytes = 12
"#,
    );
    let f1 = b"device_id,value,ts,bytes_out,dst_ip\r\n\
               vm-1,1.5,1699999200000,10,8.8.8.8\r\n\
               \r\n\
               vm-2,,1699999201000,20,\r\n\
               vm-1,oops,1699999202000,30,1.1.1.1";
    let f2 = br#"{"ts":1699999203000,"device_id":"vm-3","bytes_out":5}
"#;
    let f3 = b"1699999204000,vm-1,10.0.0.1,8.8.8.8,443,tcp,1,2,3,4,2.5\n";
    let input = OracleInput {
        sources: vec![
            ("x/1.csv".to_string(), &f1[..]),
            ("x/2.jsonl".to_string(), &f2[..]),
            ("x/3.csv".to_string(), &f3[..]),
        ],
    };
    let o = Oracle::run(&c, None, &input);
    check_counts(&o);
    assert_eq!(o.read, 5);
    let summary: Vec<_> = o
        .accepted
        .iter()
        .map(|e| {
            let ev = &e.event;
            (
                ev.device.to_string(),
                ev.ts_ms,
                ev.bytes_out,
                ev.dst_ip,
                ev.dst_port,
                ev.value,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("vm-1".to_string(), at(0), 10, ip("8.8.8.8"), 0, Some(1.5)),
            ("vm-2".to_string(), at(1_000), 20, Ip(0), 0, None),
            ("vm-3".to_string(), at(3_000), 5, Ip(0), 0, None),
            ("vm-1".to_string(), at(4_000), 1, ip("8.8.8.8"), 443, Some(2.5)),
        ]
    );
    assert_eq!(o.rejects.len(), 1);
    let r = &o.rejects[0];
    assert_eq!(
        (r.source.as_str(), r.line, r.reason),
        ("x/1.csv", 5, RejectReason::BadNumber)
    );
    assert_eq!(r.raw, "vm-1,oops,16");
}

#[test]
fn header_without_ts_is_a_rejected_record() {
    let c = base_config();
    let o = run(&c, "device_id,bytes_out\nvm,1\n");
    assert_eq!(o.read, 2);
    assert!(o.accepted.is_empty());
    assert_eq!(
        o.rejects.iter().map(|r| (r.line, r.reason)).collect::<Vec<_>>(),
        vec![(1, RejectReason::Malformed), (2, RejectReason::Malformed)]
    );
    assert_eq!(o.t_last, None);
    assert!(o.change_ticks(&c).is_empty());
    assert!(o.tumbling_rows(&c).is_empty());
}

#[test]
fn collection_changes_only_at_change_ticks() {
    let c = base_config();
    // A small deterministic pseudo-random input: three devices over ~2 minutes.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut csv = format!("{HEADER}\n");
    let mut ts = BASE_MS;
    for _ in 0..60 {
        ts += next(4_000) as i64;
        let device = ["a", "b", "c"][next(3) as usize];
        let dst = ["8.8.8.8", "10.0.0.1", ""][next(3) as usize];
        csv.push_str(&format!(
            "{ts},{device},,{dst},{},,{},0,1,0,{}\n",
            next(3) * 443,
            next(1000),
            next(10)
        ));
    }
    let o = run(&c, &csv);
    assert_eq!(o.accepted.len(), 60);
    let t_last = o.t_last.unwrap();
    let changes = o.change_ticks(&c);
    let all = o.all_states(&c);
    assert_eq!(all.len(), changes.len());
    for (t, state) in &all {
        assert_eq!(*state, o.state_at(&c, *t));
    }
    assert_eq!(all.last().unwrap().1, o.final_state(&c));
    // Between change ticks the collection stays as it was at the last change.
    for t in T0 - 1..=t_last {
        let last_change = all.iter().rev().find(|(ct, _)| *ct <= t);
        let expected = last_change.map(|(_, s)| s.clone()).unwrap_or_default();
        assert_eq!(o.state_at(&c, t), expected, "at tick {t}");
    }
    // Each event is counted exactly once per tumbling length.
    let rows = o.tumbling_rows(&c);
    assert_eq!(rows.iter().map(|r| r.stats.count).sum::<u64>(), 60);
}
