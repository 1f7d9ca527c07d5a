//! Each built-in detector on constructed input: it fires on an incident, stays quiet on
//! normal traffic and on benign look-alikes (a planned maintenance, a batch burst, backups,
//! downloads from new hosts), and retracts when the incident ends or corrected data arrives;
//! the anomalies do not depend on the number of workers; bad detector configs name the key;
//! every registered detector documents its parameters and declares its threat.

mod common;

use common::engine::run_captured;
use common::{at, config};
use vigil::config::Config;
use vigil::detect::Anomaly;

const MIN: i64 = 60_000;

/// CSV rows: on-time rows (sorted by time) and late rows delivered after a given time.
#[derive(Default)]
struct Csv {
    rows: Vec<(i64, String)>,
    late: Vec<(i64, i64, String)>,
}

impl Csv {
    fn row(ts: i64, device: &str, dst: &str, port: u16, out: u64, value: &str) -> String {
        format!("{ts},{device},10.0.0.1,{dst},{port},tcp,{out},500,2,10,{value}")
    }

    /// A row with its own source address and bytes in.
    fn flow(ts: i64, device: &str, src: &str, dst: &str, out: u64, inb: u64) -> String {
        format!("{ts},{device},{src},{dst},443,tcp,{out},{inb},2,10,")
    }

    /// One event every `every_ms` over `[from, to)` minutes of the test's time.
    fn steady(&mut self, _device: &str, from_min: i64, to_min: i64, every_ms: i64, f: impl Fn(i64, i64) -> String) {
        let mut ts = at(from_min * MIN);
        let mut i = 0;
        while ts < at(to_min * MIN) {
            self.rows.push((ts, f(i, ts)));
            ts += every_ms;
            i += 1;
        }
    }

    fn bytes(mut self) -> Vec<u8> {
        self.rows.sort_by_key(|r| r.0);
        let mut out =
            String::from("ts,device_id,src_ip,dst_ip,dst_port,protocol,bytes_out,bytes_in,packets,duration_ms,value\n");
        let mut late = std::mem::take(&mut self.late);
        late.sort_by_key(|l| (l.0, l.1));
        let mut li = 0;
        for (ts, line) in &self.rows {
            while li < late.len() && late[li].0 <= *ts {
                out += &late[li].2;
                out.push('\n');
                li += 1;
            }
            out += line;
            out.push('\n');
        }
        out.into_bytes()
    }
}

/// A normal device: internal traffic every 6 s, a reading around 20 with some noise.
fn normal(csv: &mut Csv, device: &str, from_min: i64, to_min: i64) {
    normal_every(csv, device, from_min, to_min, 6_000)
}

fn normal_every(csv: &mut Csv, device: &str, from_min: i64, to_min: i64, every_ms: i64) {
    let d = device.to_string();
    csv.steady(device, from_min, to_min, every_ms, move |i, ts| {
        let noise = ((i * 7919) % 101) as f64 / 50.0 - 1.0;
        Csv::row(
            ts,
            &d,
            "10.1.2.3",
            443,
            1_000 + (i % 13) as u64 * 100,
            &format!("{:.2}", 20.0 + noise),
        )
    });
}

/// Anomaly changes of one detector: (device, op, minute of the test's time).
fn changes(anomalies: &[(Anomaly, u64, isize)], detector: &str) -> Vec<(String, &'static str, i64)> {
    let mut v: Vec<(String, &'static str, i64)> = anomalies
        .iter()
        .filter(|(a, _, _)| a.detector == detector)
        .map(|(a, t, d)| {
            let op = if *d > 0 { "insert" } else { "retract" };
            (a.device.to_string(), op, (*t as i64 * 1000 - at(0)) / MIN)
        })
        .collect();
    v.sort_by(|a, b| (a.2, &a.0, a.1).cmp(&(b.2, &b.0, b.1)));
    v
}

/// A config with every registered detector but `detector` turned off.
fn only(detector: &str, extra: &str) -> Config {
    let mut text = String::new();
    for d in vigil::detect::registry() {
        if d.name() != detector {
            text += &format!("[detectors.{}]\nenabled = false\n", d.name());
        }
    }
    text += extra;
    config(&text)
}

#[test]
fn silence_fires_on_a_quiet_device_resolves_when_it_returns_and_ignores_normal_traffic() {
    let mut csv = Csv::default();
    normal_every(&mut csv, "quiet", 0, 70, 2_000);
    normal_every(&mut csv, "quiet", 85, 100, 2_000);
    normal(&mut csv, "steady", 0, 100);
    let (_, captured) = run_captured(&only("silence", ""), &csv.bytes(), None, 1);
    let c = changes(&captured.anomalies, "silence");
    assert!(c.iter().all(|x| x.0 == "quiet"), "normal traffic fired: {c:?}");
    assert_eq!(c.len(), 2, "{c:?}");
    assert_eq!((c[0].1, c[1].1), ("insert", "retract"));
    // Reported `confirm` (4m) after it shows, so peers going quiet together are seen first.
    assert!(
        (74..=76).contains(&c[0].2),
        "fires within a minute or two, plus confirm: {c:?}"
    );
    // Withdrawn with its candidate, when the device is back (a report shows only while the
    // silence still holds).
    assert!((85..=87).contains(&c[1].2), "resolves when the device returns: {c:?}");
}

#[test]
fn silence_episode_is_retracted_when_late_data_shows_the_device_was_active() {
    let build = |late: bool| {
        let mut csv = Csv::default();
        normal_every(&mut csv, "quiet", 0, 60, 2_000);
        normal(&mut csv, "steady", 0, 80);
        if late {
            // The device's records of minutes 60..68 arrive at minute 70, too late to be exact.
            let mut ts = at(60 * MIN);
            while ts < at(68 * MIN) {
                csv.late
                    .push((at(70 * MIN), ts, Csv::row(ts, "quiet", "10.1.2.3", 443, 1_000, "20.0")));
                ts += 3_000;
            }
        }
        csv.bytes()
    };
    let reject = only("silence", "");
    let (_, plain) = run_captured(&reject, &build(true), None, 1);
    let c = changes(&plain.anomalies, "silence");
    assert_eq!(c.iter().map(|x| x.1).collect::<Vec<_>>(), ["insert"], "{c:?}");
    let correct = only("silence", "[time]\nlate_policy = \"correct\"\n");
    let (outcome, corrected) = run_captured(&correct, &build(true), None, 1);
    assert!(outcome.summary.late_corrected > 0);
    let c = changes(&corrected.anomalies, "silence");
    assert_eq!((c[0].1, c[1].1), ("insert", "retract"), "{c:?}");
    assert!(
        (69..=70).contains(&c[1].2),
        "retracted when the correction lands: {c:?}"
    );
}

/// A device sending from `src`, one event every 2 s over `[from, to)` minutes.
fn busy_from(csv: &mut Csv, device: &str, src: &str, from_min: i64, to_min: i64) {
    let (d, src) = (device.to_string(), src.to_string());
    csv.steady(device, from_min, to_min, 2_000, move |i, ts| {
        Csv::flow(ts, &d, &src, "10.1.2.3", 1_000 + (i % 7) as u64, 500)
    });
}

/// A rack of five devices `rack-0..4` in 10.5.5.0/24, busy from minute 0, quiet together
/// from 70 to 85 (planned maintenance), busy again until `end_min`.
fn quiet_rack(csv: &mut Csv, end_min: i64) {
    for i in 0..5 {
        let (device, src) = (format!("rack-{i}"), format!("10.5.5.{}", 10 + i));
        busy_from(csv, &device, &src, 0, 70);
        busy_from(csv, &device, &src, 85, end_min);
    }
}

#[test]
fn silence_ignores_a_group_going_quiet_together_but_not_a_lone_device() {
    let mut csv = Csv::default();
    // A rack of five in 10.5.5.0/24 goes quiet together at minute 70 (planned maintenance).
    quiet_rack(&mut csv, 100);
    // A device of another subnet goes quiet at the same moment: alone in its neighbourhood.
    busy_from(&mut csv, "lone", "10.6.6.6", 0, 70);
    busy_from(&mut csv, "lone", "10.6.6.6", 85, 100);
    busy_from(&mut csv, "steady", "10.5.5.99", 0, 100);
    let data = csv.bytes();
    let (_, captured) = run_captured(&only("silence", ""), &data, None, 1);
    let c = changes(&captured.anomalies, "silence");
    assert!(c.iter().all(|x| x.0 == "lone"), "the group was reported: {c:?}");
    assert_eq!(
        c.iter().map(|x| x.1).collect::<Vec<_>>(),
        ["insert", "retract"],
        "{c:?}"
    );
    // Grouping off: every quiet device is reported.
    let off = only("silence", "[detectors.silence]\ngroup_min = 0\n");
    let (_, captured) = run_captured(&off, &data, None, 1);
    let opened = changes(&captured.anomalies, "silence")
        .iter()
        .filter(|x| x.1 == "insert")
        .count();
    assert_eq!(opened, 6);
}

#[test]
fn silence_reports_a_group_member_still_quiet_long_after_the_group_is_back_and_a_slow_device() {
    let mut csv = Csv::default();
    // A rack of five goes quiet together at minute 70 and is back at 85; a sixth of the rack
    // went quiet with them but stays quiet until 105: no longer the maintenance.
    quiet_rack(&mut csv, 120);
    busy_from(&mut csv, "stuck", "10.5.5.30", 0, 70);
    busy_from(&mut csv, "stuck", "10.5.5.30", 105, 120);
    // A slow device (2 a minute) quiet from 40 to 70: its 5-minute window never expects
    // enough, 10 minutes of quiet do.
    csv.steady("slow", 0, 40, 30_000, |i, ts| {
        Csv::flow(ts + 7, "slow", "10.9.9.9", "10.1.2.3", 1_000 + (i % 7) as u64, 500)
    });
    csv.steady("slow", 70, 120, 30_000, |i, ts| {
        Csv::flow(ts + 7, "slow", "10.9.9.9", "10.1.2.3", 1_000 + (i % 7) as u64, 500)
    });
    busy_from(&mut csv, "steady", "10.5.5.99", 0, 120);
    let (_, captured) = run_captured(&only("silence", ""), &csv.bytes(), None, 1);
    let c = changes(&captured.anomalies, "silence");
    let of = |d: &str| c.iter().filter(|x| x.0 == d).map(|x| (x.1, x.2)).collect::<Vec<_>>();
    assert!(
        c.iter().all(|x| x.0 == "stuck" || x.0 == "slow"),
        "the group was reported: {c:?}"
    );
    let stuck = of("stuck");
    assert_eq!(stuck.len(), 2, "{c:?}");
    // Reported `group_outlast` (10m) after the rack is back (85, plus a minute or two to show).
    assert!(stuck[0].0 == "insert" && (95..=99).contains(&stuck[0].1), "{c:?}");
    assert!(stuck[1].0 == "retract" && (105..=107).contains(&stuck[1].1), "{c:?}");
    let slow = of("slow");
    assert_eq!(slow.len(), 2, "{c:?}");
    // Shown on the 10-minute horizon (about 50 minutes), reported 4 minutes later.
    assert!(slow[0].0 == "insert" && (48..=55).contains(&slow[0].1), "{c:?}");
}

#[test]
fn silence_ignores_the_normal_rate_after_a_batch_burst() {
    let mut csv = Csv::default();
    // 10 events a minute, 20 minutes at 200 a minute, then 10 a minute again.
    let d = "batch";
    csv.steady(d, 0, 40, 6_000, |i, ts| {
        Csv::flow(ts, d, "10.7.0.2", "10.1.2.3", 900 + i as u64 % 5, 300)
    });
    csv.steady(d, 40, 60, 300, |i, ts| {
        Csv::flow(ts + 1, d, "10.7.0.2", "10.1.2.4", 900 + i as u64 % 5, 300)
    });
    csv.steady(d, 60, 120, 6_000, |i, ts| {
        Csv::flow(ts + 2, d, "10.7.0.2", "10.1.2.3", 900 + i as u64 % 5, 300)
    });
    let (_, captured) = run_captured(&only("silence", ""), &csv.bytes(), None, 1);
    let c = changes(&captured.anomalies, "silence");
    assert!(c.is_empty(), "the rate after a burst is not a collapse: {c:?}");
}

#[test]
fn exfiltration_ignores_backups_to_known_storage_downloads_and_one_upload() {
    let mut csv = Csv::default();
    // A database that checks in with its storage every 5 minutes and backs up 400 MB to it.
    talker(&mut csv, "db", 90);
    csv.steady("db", 0, 90, 300_000, |_, ts| {
        Csv::flow(ts + 300, "db", "10.0.0.1", "52.216.8.35", 1_500, 3_000)
    });
    csv.steady("db", 60, 70, 10_000, |_, ts| {
        Csv::flow(ts + 400, "db", "10.0.0.1", "52.216.8.35", 7_000_000, 70_000)
    });
    // A workstation downloading an update from five CDN hosts it never saw.
    talker(&mut csv, "desk", 90);
    csv.steady("desk", 50, 56, 20_000, |i, ts| {
        let dst = format!("198.51.{}.7", 10 + i % 5);
        Csv::flow(ts + 600, "desk", "10.0.0.1", &dst, 400_000, 60_000_000)
    });
    // ... and one upload of a 15 MB file to a new site.
    csv.rows.push((
        at(70 * MIN) + 800,
        Csv::flow(
            at(70 * MIN) + 800,
            "desk",
            "10.0.0.1",
            "203.0.113.77",
            15_000_000,
            40_000,
        ),
    ));
    let (_, captured) = run_captured(&only("exfiltration", ""), &csv.bytes(), None, 1);
    let c = changes(&captured.anomalies, "exfiltration");
    assert!(c.is_empty(), "benign look-alikes fired: {c:?}");
}

/// A device that also talks to one external service now and then.
fn talker(csv: &mut Csv, device: &str, to_min: i64) {
    normal(csv, device, 0, to_min);
    let d = device.to_string();
    csv.steady(device, 0, to_min, 60_000, move |_, ts| {
        Csv::row(ts + 500, &d, "8.8.8.8", 53, 200, "")
    });
}

#[test]
fn exfiltration_fires_on_a_burst_to_new_hosts_and_resolves_after_it() {
    let mut csv = Csv::default();
    talker(&mut csv, "thief", 90);
    talker(&mut csv, "honest", 90);
    csv.steady("thief", 40, 52, 20_000, |i, ts| {
        let dst = format!("203.0.113.{}", 10 + i % 5);
        Csv::row(ts + 700, "thief", &dst, 443, 3_000_000, "")
    });
    let (_, captured) = run_captured(&only("exfiltration", ""), &csv.bytes(), None, 1);
    let c = changes(&captured.anomalies, "exfiltration");
    assert!(c.iter().all(|x| x.0 == "thief"), "normal traffic fired: {c:?}");
    assert_eq!(c.first().map(|x| x.1), Some("insert"), "{c:?}");
    assert!((40..=43).contains(&c[0].2), "{c:?}");
    assert_eq!(
        c.last().map(|x| x.1),
        Some("retract"),
        "resolves after the burst: {c:?}"
    );
    assert!(c.last().unwrap().2 <= 60, "{c:?}");
    let reason = &captured.anomalies.iter().find(|a| a.2 > 0).unwrap().0.reason;
    assert!(reason.contains("MB"), "{reason}");
}

#[test]
fn corruption_fires_on_each_flavour_and_stays_quiet_on_normal_readings() {
    let mut csv = Csv::default();
    normal(&mut csv, "fine", 0, 90);
    // Impossible values: NaN and infinities now and then.
    normal(&mut csv, "nan", 0, 40);
    csv.steady("nan", 40, 90, 6_000, |i, ts| {
        let v = if i % 2 == 0 {
            "NaN".to_string()
        } else {
            "20.1".to_string()
        };
        Csv::row(ts, "nan", "10.1.2.3", 443, 1_000, &v)
    });
    // Stuck: the same reading for 20 minutes.
    normal(&mut csv, "stuck", 0, 40);
    csv.steady("stuck", 40, 60, 6_000, |_, ts| {
        Csv::row(ts, "stuck", "10.1.2.3", 443, 1_000, "20.37")
    });
    normal(&mut csv, "stuck", 60, 90);
    // Shift: +15 (far beyond the device's ±1 noise).
    normal(&mut csv, "shift", 0, 40);
    csv.steady("shift", 40, 90, 6_000, |i, ts| {
        let noise = ((i * 7919) % 101) as f64 / 50.0 - 1.0;
        Csv::row(ts, "shift", "10.1.2.3", 443, 1_000, &format!("{:.2}", 35.0 + noise))
    });
    // Out of the configured physical range (0..100 for "range*").
    normal(&mut csv, "range", 0, 40);
    csv.steady("range", 40, 90, 6_000, |i, ts| {
        let v = if i % 3 == 0 { "-12.5" } else { "20.3" };
        Csv::row(ts, "range", "10.1.2.3", 443, 1_000, v)
    });
    // Malformed records: half of them from minute 40.
    normal(&mut csv, "garbled", 0, 90);
    csv.steady("garbled", 40, 90, 6_000, |_, ts| {
        format!("{},garbled,10.0.0.1,not-an-ip,443,tcp,1,1,1,1,", ts + 3_000)
    });
    let cfg = only(
        "corruption",
        "[detectors.corruption]\nranges = [{ devices = \"range*\", min = 0.0, max = 100.0 }]\n",
    );
    let (_, captured) = run_captured(&cfg, &csv.bytes(), None, 1);
    let c = changes(&captured.anomalies, "corruption");
    for device in ["nan", "stuck", "shift", "range", "garbled"] {
        let first = c.iter().find(|x| x.0 == device && x.1 == "insert");
        assert!(first.is_some_and(|x| (40..=44).contains(&x.2)), "{device}: {c:?}");
    }
    assert!(!c.iter().any(|x| x.0 == "fine"), "normal readings fired: {c:?}");
    // The stuck sensor recovers: its episode is retracted at minute 60.
    assert!(
        c.iter().any(|x| x.0 == "stuck" && x.1 == "retract" && x.2 == 60),
        "{c:?}"
    );
    let reason = |d: &str| {
        captured
            .anomalies
            .iter()
            .find(|a| a.0.device == d && a.2 > 0)
            .map(|a| a.0.reason.clone())
            .unwrap()
    };
    assert!(reason("range").contains("physical range"), "{}", reason("range"));
    assert!(reason("stuck").contains("same reading"), "{}", reason("stuck"));
    assert!(reason("garbled").contains("rejected"), "{}", reason("garbled"));
}

#[test]
fn corruption_malformed_spike_is_retracted_when_late_good_records_arrive() {
    let mut csv = Csv::default();
    normal(&mut csv, "steady", 0, 60);
    normal(&mut csv, "garbled", 0, 40);
    csv.steady("garbled", 40, 60, 6_000, |_, ts| {
        format!("{ts},garbled,10.0.0.1,not-an-ip,443,tcp,1,1,1,1,")
    });
    // The good records of minutes 40..50 were only delayed: they arrive at minute 50.
    let mut ts = at(40 * MIN);
    while ts < at(50 * MIN) {
        let value = format!("{:.2}", 20.0 + (ts / 1000 % 17) as f64 / 20.0);
        csv.late.push((
            at(50 * MIN),
            ts,
            Csv::row(ts + 1, "garbled", "10.1.2.3", 443, 1_000, &value),
        ));
        ts += 1_000;
    }
    let cfg = only("corruption", "[time]\nlate_policy = \"correct\"\n");
    let (_, captured) = run_captured(&cfg, &csv.bytes(), None, 1);
    let c: Vec<_> = changes(&captured.anomalies, "corruption")
        .into_iter()
        .filter(|x| x.0 == "garbled")
        .collect();
    assert_eq!(c.first().map(|x| x.1), Some("insert"), "{c:?}");
    assert!(
        c.iter().any(|x| x.1 == "retract" && (49..=50).contains(&x.2)),
        "retracted when the corrected records land: {c:?}"
    );
}

#[test]
fn value_outlier_scores_every_reading_and_reports_a_spike() {
    let mut csv = Csv::default();
    normal(&mut csv, "a", 0, 30);
    csv.rows.push((
        at(20 * MIN + 3_000),
        Csv::row(at(20 * MIN + 3_000), "a", "10.1.2.3", 443, 1, "500"),
    ));
    let (_, captured) = run_captured(&only("value_outlier", ""), &csv.bytes(), None, 1);
    let readings = csv_readings(&captured);
    assert_eq!(captured.scores.len(), readings, "one score per reading");
    assert!(captured.scores.iter().all(|s| (0.0..=1.0).contains(&s.score)));
    let spike = captured
        .scores
        .iter()
        .find(|s| s.ts_ms == at(20 * MIN + 3_000))
        .unwrap();
    assert!(spike.score > 0.999, "{spike:?}");
    let c = changes(&captured.anomalies, "value_outlier");
    assert_eq!(c.first().map(|x| (x.1, x.2)), Some(("insert", 20)), "{c:?}");
    assert_eq!(
        c.get(1).map(|x| x.1),
        Some("retract"),
        "resolves on the next normal reading: {c:?}"
    );
}

/// Readings accepted in a run: the sum over the 1-minute tumbling rows.
fn csv_readings(c: &vigil::output::Captured) -> usize {
    c.rows
        .iter()
        .filter(|r| r.window_len_ms == 60_000)
        .map(|r| (r.stats.value_count + r.stats.value_invalid) as usize)
        .sum()
}

#[test]
fn port_scan_fires_on_a_burst_of_ports_only() {
    let mut csv = Csv::default();
    normal(&mut csv, "scanner", 0, 30);
    normal(&mut csv, "quiet", 0, 30);
    csv.steady("scanner", 20, 21, 200, |i, ts| {
        Csv::row(ts + 1, "scanner", "10.9.9.9", 1 + i as u16, 60, "")
    });
    let (_, captured) = run_captured(&only("port_scan", ""), &csv.bytes(), None, 1);
    let c = changes(&captured.anomalies, "port_scan");
    assert!(!c.is_empty() && c.iter().all(|x| x.0 == "scanner"), "{c:?}");
    assert_eq!((c[0].1, c[0].2), ("insert", 20), "{c:?}");
}

#[test]
fn anomalies_do_not_depend_on_the_number_of_workers() {
    use vigil::generate::{generate, GeneratorConfig, IncidentPlan, OutputFormat};
    let gen = GeneratorConfig {
        events: 120_000,
        devices: 40,
        seed: 7,
        incidents: IncidentPlan {
            silence: 3,
            exfiltration: 3,
            corruption: 5,
        },
        ..GeneratorConfig::default()
    };
    let mut data = Vec::new();
    generate(&gen, OutputFormat::Csv, &mut data).unwrap();
    let cfg = config("");
    let sorted = |mut v: Vec<(Anomaly, u64, isize)>| {
        v.sort();
        v
    };
    let (_, one) = run_captured(&cfg, &data, None, 1);
    let (_, two) = run_captured(&cfg, &data, None, 2);
    assert!(!one.anomalies.is_empty());
    assert_eq!(sorted(one.anomalies), sorted(two.anomalies));
    let key = |s: &vigil::detect::EventScore| (s.ts_ms, s.device.clone(), s.detector.clone(), s.score.to_bits());
    let mut a: Vec<_> = one.scores.iter().map(key).collect();
    let mut b: Vec<_> = two.scores.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn bad_detector_configs_name_the_key() {
    let err = |text: &str| {
        let c = Config::from_toml(text).unwrap();
        vigil::detect::validate_config(&c).unwrap_err().to_string()
    };
    let e = err("[detectors.silense]\nenabled = true\n");
    assert!(e.contains("detectors.silense") && e.contains("unknown detector"), "{e}");
    let e = err("[detectors.silence]\nmax_ratio = 2.0\n");
    assert!(e.contains("detectors.silence.max_ratio"), "{e}");
    let e = err("[detectors.silence]\nhorizons = [\"90s\"]\n");
    assert!(
        e.contains("detectors.silence.horizons") && e.contains("whole minutes"),
        "{e}"
    );
    let e = err("[detectors.silence]\nhorizons = [\"2h\"]\n");
    assert!(e.contains("detectors.silence.horizons") && e.contains("40m"), "{e}");
    let e = err("[detectors.silence]\ngroup_gap = -1.0\n");
    assert!(e.contains("detectors.silence.group_gap"), "{e}");
    let e = err("[detectors.silence]\ngroup_outlast = \"later\"\n");
    assert!(e.contains("detectors.silence.group_outlast"), "{e}");
    let e = err("[detectors.exfiltration]\nwindow = \"soon\"\n");
    assert!(e.contains("detectors.exfiltration.window"), "{e}");
    let e = err("[detectors.corruption]\nspike = 3\n");
    assert!(e.contains("detectors.corruption") && e.contains("spike"), "{e}");
    let e = err("[detectors.corruption]\nenabled = \"yes\"\n");
    assert!(e.contains("detectors.corruption.enabled"), "{e}");
    let e = err("[detectors.corruption]\nranges = [{ devices = \"x*\", min = 5.0, max = 1.0 }]\n");
    assert!(e.contains("detectors.corruption.ranges[0]"), "{e}");
    assert!(vigil::detect::validate_config(&Config::from_toml("").unwrap()).is_ok());
}

#[test]
fn every_detector_documents_its_parameters() {
    for d in vigil::detect::registry() {
        assert!(!d.description().is_empty());
        for p in d.parameters() {
            assert!(!p.default.is_empty(), "{}.{} has no default", d.name(), p.name);
        }
    }
}

#[test]
fn every_labelled_threat_has_a_detector_and_eval_maps_labels_through_the_registry() {
    use vigil::generate::{IncidentKind, Label};
    for kind in [
        IncidentKind::Silence,
        IncidentKind::Exfiltration,
        IncidentKind::Corruption,
    ] {
        let threat = kind.threat().expect("an incident is a threat");
        assert!(
            vigil::detect::registry().iter().any(|d| d.threat() == Some(threat)),
            "no registered detector targets {threat:?}"
        );
    }
    assert_eq!(IncidentKind::Benign.threat(), None);
    // Each registered detector is scored against the labels of its own threat only.
    let detectors: Vec<(&str, Option<vigil::detect::Threat>)> = vigil::detect::registry()
        .iter()
        .map(|d| (d.name(), d.threat()))
        .collect();
    let kinds = [
        IncidentKind::Silence,
        IncidentKind::Exfiltration,
        IncidentKind::Corruption,
    ];
    let labels: Vec<Label> = kinds
        .iter()
        .map(|&kind| Label {
            kind,
            device: "d".into(),
            start_ms: 0,
            end_ms: 10,
            detail: "x".into(),
        })
        .collect();
    for d in vigil::detect::registry() {
        let episode = vigil::eval::Episode {
            detector: d.name().into(),
            device: "d".into(),
            open_ms: 5,
            close_ms: None,
        };
        let report = vigil::eval::evaluate(&labels, &[episode], 0, &detectors);
        let (target, f) = &report.detectors[d.name()];
        assert_eq!(target.as_deref(), d.threat().map(|t| t.name()), "{}", d.name());
        let expected = kinds.iter().filter(|k| k.threat() == d.threat()).count();
        assert_eq!((f.labels, f.detected), (expected, expected), "{}", d.name());
    }
}

#[test]
fn soc_detectors_on_generated_data_find_the_incidents_and_spare_the_look_alikes() {
    use std::collections::HashMap;
    use vigil::eval::{evaluate, Episode};
    use vigil::generate::{generate, GeneratorConfig, OutputFormat};
    // 300 devices over about three hours: 3 incidents of each kind, ~50 look-alikes.
    let gen = GeneratorConfig::new(300_000, 300, 9);
    let mut data = Vec::new();
    let summary = generate(&gen, OutputFormat::Csv, &mut data).unwrap();
    let (_, captured) = run_captured(&config(""), &data, None, 2);
    let mut changes = captured.anomalies.clone();
    changes.sort_by_key(|c| (c.1, c.2));
    let mut episodes: Vec<Episode> = Vec::new();
    let mut open: HashMap<(String, String), usize> = HashMap::new();
    for (a, tick, diff) in changes {
        let key = (a.detector.to_string(), a.device.to_string());
        if diff > 0 {
            open.insert(key, episodes.len());
            episodes.push(Episode {
                detector: a.detector.to_string(),
                device: a.device.to_string(),
                open_ms: tick as i64 * 1000,
                close_ms: None,
            });
        } else if let Some(i) = open.remove(&key) {
            episodes[i].close_ms = Some(tick as i64 * 1000);
        }
    }
    let detectors: Vec<(&str, Option<vigil::detect::Threat>)> = vigil::detect::registry()
        .iter()
        .map(|d| (d.name(), d.threat()))
        .collect();
    let report = evaluate(&summary.labels, &episodes, 300_000, &detectors);
    let table = report.table();
    for name in ["silence", "exfiltration", "corruption"] {
        let f = &report.detectors[name].1;
        assert!(f.labels >= 3, "{name}: {table}");
        assert!(f.recall >= Some(0.66) && f.precision >= Some(0.66), "{name}:\n{table}");
    }
    let flagged: usize = report
        .benign
        .iter()
        .filter(|((d, _), _)| ["silence", "exfiltration", "corruption"].contains(&d.as_str()))
        .map(|(_, b)| b.episodes)
        .sum();
    assert!(report.benign.values().any(|b| b.labels > 0), "{table}");
    assert!(flagged <= 1, "look-alikes flagged:\n{table}");
}
