//! Tests of the generator through its public API: determinism, the engine's own decoders
//! and lateness rule over the produced bytes, and the evidence each labelled incident leaves.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::decode::{Format, RecordDecoder, RejectReason};
use crate::event::{Event, Ip, MAX_TS_MS, MIN_TS_MS};

fn config() -> GeneratorConfig {
    let mut cfg = GeneratorConfig::new(60_000, 40, 7);
    cfg.out_of_order_share = 0.05;
    cfg.late_share = 0.01;
    cfg.malformed_share = 0.005;
    cfg.incidents = IncidentPlan {
        silence: 2,
        exfiltration: 2,
        corruption: 5,
    };
    cfg
}

fn run(cfg: &GeneratorConfig, format: OutputFormat) -> (Vec<u8>, GenerateSummary) {
    let mut out = Vec::new();
    let summary = generate(cfg, format, &mut out).unwrap();
    (out, summary)
}

/// Decodes every line: `Ok(event)` or the rejection reason, with the engine's lateness rule
/// applied to valid records; the timestamp for the rule is parsed here from the text.
fn decode_all(bytes: &[u8], format: Format, lateness: i64) -> Vec<Result<Event, RejectReason>> {
    let text = std::str::from_utf8(bytes).unwrap();
    let mut lines = text.lines();
    let decoder = match format {
        Format::Csv => {
            let header = lines.next().unwrap();
            let (d, is_header) = RecordDecoder::for_file(format, header.as_bytes(), 1 << 16).unwrap();
            assert!(is_header);
            d
        }
        _ => RecordDecoder::new(format, 1 << 16),
    };
    let mut max: Option<i64> = None;
    let mut results = Vec::new();
    for line in lines {
        assert!(!line.trim().is_empty(), "blank line");
        let own_ts = own_ts(line, format);
        assert_eq!(own_ts, decoder.peek_ts(line.as_bytes()), "{line}");
        let result = match decoder.decode(line.as_bytes()) {
            Ok(e) if matches!(max, Some(m) if e.ts_ms < m - lateness) => Err(RejectReason::Late),
            Ok(e) => Ok(e),
            Err(err) => Err(err.reason),
        };
        if let Some(t) = own_ts {
            max = Some(max.map_or(t, |m| m.max(t)));
        }
        results.push(result);
    }
    results
}

/// The timestamp field parsed by hand: epoch milliseconds in range, else none.
fn own_ts(line: &str, format: Format) -> Option<i64> {
    let field = match format {
        Format::Csv => line.split(',').next()?,
        _ => {
            let v: serde_json::Value = serde_json::from_str(line).ok()?;
            return v.get("ts")?.as_i64().filter(|t| (MIN_TS_MS..MAX_TS_MS).contains(t));
        }
    };
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    field.parse::<i64>().ok().filter(|t| (MIN_TS_MS..MAX_TS_MS).contains(t))
}

#[test]
fn same_seed_same_bytes() {
    let mut cfg = config();
    cfg.events = 20_000;
    for format in [OutputFormat::Csv, OutputFormat::Jsonl] {
        let (a, sa) = run(&cfg, format);
        let (b, sb) = run(&cfg, format);
        assert!(a == b, "{format:?} output differs between runs");
        assert_eq!(sa, sb);
    }
    let (a, _) = run(&cfg, OutputFormat::Csv);
    cfg.seed += 1;
    let (b, _) = run(&cfg, OutputFormat::Csv);
    assert!(a != b);
}

#[test]
fn csv_decodes_and_late_count_matches_the_engine_rule() {
    let cfg = config();
    let (bytes, summary) = run(&cfg, OutputFormat::Csv);
    let header = bytes.split(|&b| b == b'\n').next().unwrap();
    assert_eq!(header, crate::event::CSV_HEADER.join(",").as_bytes());
    let results = decode_all(&bytes, Format::Csv, cfg.lateness_ms as i64);
    assert_eq!(results.len() as u64, cfg.events);
    assert_eq!(summary.records, cfg.events);
    let late = results.iter().filter(|r| matches!(r, Err(RejectReason::Late))).count() as u64;
    let bad = results
        .iter()
        .filter(|r| matches!(r, Err(x) if *x != RejectReason::Late))
        .count() as u64;
    assert_eq!(late, summary.late);
    assert_eq!(bad, summary.malformed);
    // About the configured shares (late ones that the stream end caught may fall short).
    assert!(late as f64 > 0.5 * cfg.late_share * cfg.events as f64, "{late}");
    assert!(late as f64 <= 1.5 * cfg.late_share * cfg.events as f64, "{late}");
    assert!(bad > 0);
    // Out-of-order records exist and were accepted.
    let mut max = i64::MIN;
    let mut disordered = 0;
    for e in results.iter().flatten() {
        disordered += (e.ts_ms < max) as u64;
        max = max.max(e.ts_ms);
    }
    assert!(
        disordered as f64 > 0.5 * cfg.out_of_order_share * cfg.events as f64,
        "{disordered}"
    );
    // Every rejection reason the decoder can give for a broken line shows up somewhere.
    let reasons: HashSet<RejectReason> = results.iter().filter_map(|r| r.as_ref().err().copied()).collect();
    for r in [
        RejectReason::Malformed,
        RejectReason::BadNumber,
        RejectReason::NegativeValue,
        RejectReason::BadIp,
        RejectReason::BadPort,
        RejectReason::MissingField,
        RejectReason::BadTimestamp,
    ] {
        assert!(reasons.contains(&r), "no {r} record");
    }
}

#[test]
fn jsonl_decodes_to_the_same_events_as_csv() {
    let cfg = config();
    let (csv, s1) = run(&cfg, OutputFormat::Csv);
    let (json, s2) = run(&cfg, OutputFormat::Jsonl);
    assert_eq!((s1.late, s1.malformed, &s1.labels), (s2.late, s2.malformed, &s2.labels));
    let a = decode_all(&csv, Format::Csv, cfg.lateness_ms as i64);
    let b = decode_all(&json, Format::Jsonl, cfg.lateness_ms as i64);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        match (x, y) {
            (Ok(x), Ok(y)) => {
                let same_value = match (x.value, y.value) {
                    (Some(p), Some(q)) => p == q || (p.is_nan() && q.is_nan()),
                    (p, q) => p == q,
                };
                assert!(same_value, "{x:?} vs {y:?}");
                assert_eq!(
                    (x.ts_ms, &x.device, x.dst_ip, x.bytes_out),
                    (y.ts_ms, &y.device, y.dst_ip, y.bytes_out)
                );
                assert_eq!((x.src_ip, x.dst_port, x.protocol), (y.src_ip, y.dst_port, y.protocol));
                assert_eq!(
                    (x.bytes_in, x.packets, x.duration_ms),
                    (y.bytes_in, y.packets, y.duration_ms)
                );
            }
            (Err(_), Err(_)) => {}
            _ => panic!("{x:?} vs {y:?}"),
        }
    }
}

fn internal(ip: Ip) -> bool {
    match ip.to_addr() {
        std::net::IpAddr::V4(v) => v.is_private(),
        _ => false,
    }
}

#[test]
fn labels_are_placed_sanely_and_leave_evidence() {
    let cfg = config();
    let (bytes, summary) = run(&cfg, OutputFormat::Csv);
    let events: Vec<Event> = decode_all(&bytes, Format::Csv, cfg.lateness_ms as i64)
        .into_iter()
        .flatten()
        .collect();
    let labels = &summary.labels;
    let benign = labels.iter().filter(|l| l.kind == IncidentKind::Benign).count();
    assert_eq!((labels.len() - benign) as u32, cfg.incidents.total());
    let labels: Vec<Label> = labels
        .iter()
        .filter(|l| l.kind != IncidentKind::Benign)
        .cloned()
        .collect();
    let labels = &labels;
    let span = summary.last_ts_ms - summary.first_ts_ms;
    let mut by_device: HashMap<&str, Vec<&Label>> = HashMap::new();
    for l in labels {
        assert!(l.start_ms >= summary.first_ts_ms + (30 * 60_000).min(span / 5), "{l:?}");
        assert!(l.end_ms <= summary.last_ts_ms && l.start_ms < l.end_ms, "{l:?}");
        by_device.entry(&l.device).or_default().push(l);
    }
    for ls in by_device.values() {
        for (i, a) in ls.iter().enumerate() {
            for b in &ls[i + 1..] {
                assert!(a.end_ms <= b.start_ms || b.end_ms <= a.start_ms, "{a:?} overlaps {b:?}");
            }
        }
    }
    let details: HashSet<&str> = labels.iter().map(|l| l.detail.as_str()).collect();
    for d in ["out_of_range", "nan", "stuck", "shift", "malformed", "burst_new_hosts"] {
        assert!(details.contains(d), "no {d} incident");
    }
    let in_window = |l: &Label| -> Vec<&Event> {
        events
            .iter()
            .filter(|e| e.device.as_str() == l.device && (l.start_ms..l.end_ms).contains(&e.ts_ms))
            .collect()
    };
    let before = |l: &Label| -> Vec<&Event> {
        let len = l.end_ms - l.start_ms;
        events
            .iter()
            .filter(|e| e.device.as_str() == l.device && (l.start_ms - 2 * len..l.start_ms).contains(&e.ts_ms))
            .collect()
    };
    for l in labels {
        let (during, base) = (in_window(l), before(l));
        match l.detail.as_str() {
            "silent" => assert!(during.is_empty(), "{l:?}: {} events", during.len()),
            "collapse" => assert!(
                during.len() * 4 < base.len() / 2 + 4,
                "{l:?}: {} vs {}",
                during.len(),
                base.len()
            ),
            "burst_new_hosts" => {
                let seen: HashSet<Ip> = events
                    .iter()
                    .filter(|e| e.ts_ms < l.start_ms)
                    .map(|e| e.dst_ip)
                    .collect();
                let new: HashSet<Ip> = during
                    .iter()
                    .filter(|e| !internal(e.dst_ip) && !seen.contains(&e.dst_ip))
                    .map(|e| e.dst_ip)
                    .collect();
                assert!(new.len() >= 2, "{l:?}: {} new hosts", new.len());
                let out = |es: &[&Event]| es.iter().map(|e| e.bytes_out).sum::<u64>() as f64;
                assert!(
                    out(&during) > 4.0 * out(&base) / 2.0,
                    "{l:?}: {} vs {}",
                    out(&during),
                    out(&base)
                );
            }
            "out_of_range" => {
                let normal: Vec<f64> = base.iter().filter_map(|e| e.value).collect();
                let lo = normal.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = normal.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let margin = 0.25 * (hi - lo) + 1.0;
                let odd = |v: f64| v < lo - margin || v > hi + margin;
                assert!(during.iter().any(|e| e.value.is_some_and(odd)), "{l:?}");
            }
            "nan" => assert!(during.iter().any(|e| e.value.is_some_and(|v| !v.is_finite()))),
            "stuck" => {
                let vs: HashSet<u64> = during.iter().filter_map(|e| e.value.map(f64::to_bits)).collect();
                assert_eq!(vs.len(), 1, "{l:?}");
                assert!(
                    base.iter()
                        .filter_map(|e| e.value.map(f64::to_bits))
                        .collect::<HashSet<_>>()
                        .len()
                        > 3
                );
            }
            "shift" => {
                let stats = |es: &[&Event]| {
                    let v: Vec<f64> = es.iter().filter_map(|e| e.value).collect();
                    let m = v.iter().sum::<f64>() / v.len() as f64;
                    (
                        m,
                        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt(),
                    )
                };
                let ((m1, _), (m0, s0)) = (stats(&during), stats(&base));
                assert!((m1 - m0).abs() > 3.0 * s0, "{l:?}: {m0}±{s0} -> {m1}");
            }
            "malformed" => {
                let text = std::str::from_utf8(&bytes).unwrap();
                let rejected = text
                    .lines()
                    .filter(|line| line.contains(&format!(",{},", l.device)))
                    .filter(|line| crate::decode::csv::CsvDecoder::default().decode(line).is_err())
                    .count();
                assert!(rejected > 0, "{l:?}");
            }
            _ => {}
        }
    }
    let mut buf = Vec::new();
    write_labels(labels, &mut buf).unwrap();
    assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), labels.len());
    assert!(std::str::from_utf8(&buf).unwrap().contains("\"kind\":\"exfiltration\""));
    assert_eq!(&read_labels(&buf[..]).unwrap(), labels);
}

#[test]
fn rates_span_and_defaults() {
    let cfg = GeneratorConfig::new(30_000, 50, 3);
    assert_eq!(cfg.incidents, IncidentPlan::for_devices(50));
    assert_eq!(IncidentPlan::for_devices(9).total(), 0);
    assert_eq!(IncidentPlan::for_devices(1000).silence, 10);
    let (bytes, s) = run(&cfg, OutputFormat::Csv);
    let events: Vec<Event> = decode_all(&bytes, Format::Csv, 5_000).into_iter().flatten().collect();
    let devices: HashSet<&str> = events.iter().map(|e| e.device.as_str()).collect();
    assert_eq!(devices.len(), 50);
    let info = fleet(&cfg);
    assert_eq!(info.iter().map(|d| d.device.as_str()).collect::<HashSet<_>>(), devices);
    let mean = info.iter().map(|d| d.rate_per_min).sum::<f64>() / 50.0;
    assert!((mean - cfg.rate_per_min).abs() < 1e-9);
    for p in Profile::ALL {
        assert!(info.iter().any(|d| d.profile == p), "no {p:?}");
    }
    assert!(info.iter().any(|d| d.reading == Some("temperature_c")));
    for prefix in ["vm-", "ctr-", "host-", "sensor-"] {
        assert!(devices.iter().any(|d| d.starts_with(prefix)), "no {prefix} device");
    }
    assert!(events.iter().all(|e| internal(e.src_ip)));
    let internal_share = events.iter().filter(|e| internal(e.dst_ip)).count() as f64 / events.len() as f64;
    assert!(internal_share > 0.7, "{internal_share}");
    // 30k events / 50 devices / 6 per minute = 100 minutes at a mean rhythm; midnight is
    // quieter than the mean, so the span is longer, but of that order.
    let minutes = (s.last_ts_ms - s.first_ts_ms) as f64 / 60_000.0;
    assert!((80.0..400.0).contains(&minutes), "{minutes}");
    assert_eq!(s.first_ts_ms, events.iter().map(|e| e.ts_ms).min().unwrap());
    assert!(GeneratorConfig {
        devices: 0,
        ..cfg.clone()
    }
    .validate()
    .is_err());
    assert!(GeneratorConfig {
        late_share: 2.0,
        ..cfg.clone()
    }
    .validate()
    .is_err());
    let empty = generate(&GeneratorConfig { events: 0, ..cfg }, OutputFormat::Csv, Vec::new()).unwrap();
    assert_eq!(empty.records, 0);
}

#[test]
fn tiny_and_zero_lateness_configs_work() {
    for (events, devices, lateness) in [(1, 1, 5_000), (500, 3, 0), (2_000, 12, 1), (5_000, 200, 5_000)] {
        let mut cfg = GeneratorConfig::new(events, devices, 11);
        cfg.lateness_ms = lateness;
        cfg.late_share = 0.05;
        cfg.out_of_order_share = 0.1;
        let (bytes, s) = run(&cfg, OutputFormat::Csv);
        let results = decode_all(&bytes, Format::Csv, lateness as i64);
        assert_eq!(results.len() as u64, events);
        let late = results.iter().filter(|r| matches!(r, Err(RejectReason::Late))).count() as u64;
        assert_eq!(late, s.late, "{events} {devices} {lateness}");
        assert!(s.labels.iter().all(|l| l.end_ms <= s.last_ts_ms + 1));
    }
}

/// `cargo test --release --lib generate::tests::throughput -- --ignored --nocapture`
#[test]
#[ignore]
fn throughput() {
    let t = std::time::Instant::now();
    let cfg = GeneratorConfig::new(10_000_000, 1_000, 1);
    let s = generate(&cfg, OutputFormat::Csv, std::fs::File::create("/dev/null").unwrap()).unwrap();
    eprintln!("Csv to /dev/null: {} records in {:.2?}", s.records, t.elapsed());
    for format in [OutputFormat::Csv, OutputFormat::Jsonl] {
        let cfg = GeneratorConfig::new(10_000_000, 1_000, 1);
        let t = std::time::Instant::now();
        let mut counter = CountingSink(0);
        let s = generate(&cfg, format, &mut counter).unwrap();
        eprintln!(
            "{format:?}: {} records, {} bytes in {:.2?} ({} late, {} malformed, {} labels, span {:.1} h)",
            s.records,
            counter.0,
            t.elapsed(),
            s.late,
            s.malformed,
            s.labels.len(),
            (s.last_ts_ms - s.first_ts_ms) as f64 / 3.6e6
        );
    }
}

struct CountingSink(u64);

impl std::io::Write for CountingSink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn benign_look_alikes_appear_leave_their_evidence_and_never_overlap_incidents() {
    let cfg = GeneratorConfig::new(300_000, 300, 11);
    let (bytes, summary) = run(&cfg, OutputFormat::Csv);
    let (_, again) = run(&cfg, OutputFormat::Csv);
    assert_eq!(summary.labels, again.labels, "deterministic per seed");
    let benign: Vec<&Label> = summary
        .labels
        .iter()
        .filter(|l| l.kind == IncidentKind::Benign)
        .collect();
    let details: HashSet<&str> = benign.iter().map(|l| l.detail.as_str()).collect();
    for d in ["backup", "update", "batch_burst", "maintenance", "site_upload"] {
        assert!(details.contains(d), "no {d} look-alike: {details:?}");
    }
    for b in &benign {
        for l in summary
            .labels
            .iter()
            .filter(|l| l.kind != IncidentKind::Benign && l.device == b.device)
        {
            let end = if b.detail == "batch_burst" {
                b.end_ms - 3_600_000
            } else {
                b.end_ms
            };
            assert!(end <= l.start_ms || l.end_ms <= b.start_ms, "{b:?} overlaps {l:?}");
        }
    }
    let events: Vec<Event> = decode_all(&bytes, Format::Csv, cfg.lateness_ms as i64)
        .into_iter()
        .flatten()
        .collect();
    let during = |l: &Label| -> Vec<&Event> {
        events
            .iter()
            .filter(|e| e.device.as_str() == l.device && (l.start_ms..l.end_ms).contains(&e.ts_ms))
            .collect()
    };
    let maintenance: Vec<&&Label> = benign.iter().filter(|l| l.detail == "maintenance").collect();
    assert!(maintenance.len() >= 3, "a group, not one device");
    for l in &maintenance {
        assert!(during(l).is_empty(), "{l:?} is quiet");
    }
    let out = |es: &[&Event], f: fn(&Event) -> u64| es.iter().map(|e| f(e)).sum::<u64>();
    for l in benign.iter().filter(|l| l.detail == "backup") {
        let ext: Vec<&Event> = during(l).into_iter().filter(|e| !internal(e.dst_ip)).collect();
        assert!(out(&ext, |e| e.bytes_out) > 10_000_000, "{l:?}: a large upload");
        let hosts: HashSet<Ip> = ext
            .iter()
            .filter(|e| e.bytes_out > 1_000_000)
            .map(|e| e.dst_ip)
            .collect();
        assert!(hosts.len() <= 2, "{l:?}: to its one or two storage hosts");
    }
    for l in benign.iter().filter(|l| l.detail == "update") {
        let ext: Vec<&Event> = during(l).into_iter().filter(|e| !internal(e.dst_ip)).collect();
        assert!(
            out(&ext, |e| e.bytes_in) > 10 * out(&ext, |e| e.bytes_out),
            "{l:?}: downloads"
        );
    }
    // A plan of none leaves only incidents.
    let mut plain = GeneratorConfig::new(50_000, 100, 11);
    plain.benign = BenignPlan::default();
    let (_, s) = run(&plain, OutputFormat::Csv);
    assert!(s.labels.iter().all(|l| l.kind != IncidentKind::Benign));
}
