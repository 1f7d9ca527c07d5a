//! Valid records of every format, drawn at random: the seeds the mutations start from.
//!
//! Invariant: an unmutated [`Sample`] decodes to exactly its [`Sample::event`] (that is
//! checked for every valid case of a campaign). Values stay in the accepted ranges (counters
//! up to and at their plausible bounds, readings of any magnitude); the hostile ones come from
//! [`super::mutate`]. Device names may hold commas, quotes, spaces and any Unicode, so that
//! quoting is exercised, but are never blank at either end (decoders trim them).

use chrono::{DateTime, FixedOffset, SecondsFormat};
use serde_json::{json, Value};

use crate::decode::Format;
use crate::event::{Event, Ip, Protocol, CSV_HEADER, MAX_BYTES, MAX_DURATION_MS, MAX_PACKETS, MAX_TS_MS, MIN_TS_MS};
use crate::generate::rng::Rng64;

/// One valid record and what it must decode to.
#[derive(Clone, Debug)]
pub struct Sample {
    /// For CSV with a header: the header line (columns in the order of `fields`).
    pub header: Option<String>,
    /// The record's fields in order (CSV: texts; JSON: one `(key, value)` per field).
    pub fields: Fields,
    pub event: Event,
}

/// A record's fields before rendering.
#[derive(Clone, Debug)]
pub enum Fields {
    Csv(Vec<String>),
    Json(Vec<(String, Value)>),
    /// Zeek TSV: texts joined by tabs, as they are (no quoting in that format).
    Tsv(Vec<String>),
}

impl Sample {
    /// The record's bytes.
    pub fn render(&self) -> Vec<u8> {
        match &self.fields {
            Fields::Csv(fields) => fields
                .iter()
                .map(|f| super::mutate::csv_text(f))
                .collect::<Vec<_>>()
                .join(",")
                .into_bytes(),
            Fields::Tsv(fields) => fields
                .iter()
                .map(|f| f.trim_start_matches('\u{1}'))
                .collect::<Vec<_>>()
                .join("\t")
                .into_bytes(),
            Fields::Json(fields) => {
                // Written member by member: serde_json's map would sort the keys, and the
                // order is part of what is drawn.
                let mut out = String::from("{");
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    out.push_str(&v.to_string());
                }
                out.push('}');
                out.into_bytes()
            }
        }
    }
}

/// Characters device names are drawn from: plain, separators, quotes and non-ASCII.
const NAME_CHARS: &[char] = &[
    'a', 'b', 'c', 'x', 'z', '0', '1', '9', '-', '_', '.', ':', '/', ',', '"', '\'', ' ', '{', '}', '\\', 'é', 'ß',
    '中', '🙂', '\u{200b}', '%', '#',
];

fn device_name(rng: &mut Rng64) -> String {
    if rng.chance(0.6) {
        return format!("vm-{}", rng.below(100_000));
    }
    let len = 1 + rng.below(24) as usize;
    let mut s: String = (0..len)
        .map(|_| NAME_CHARS[rng.below(NAME_CHARS.len() as u64) as usize])
        .collect();
    // Decoders trim names: keep both ends visible.
    let trimmed = s.trim().to_string();
    s = if trimmed.is_empty() { "d".into() } else { trimmed };
    s
}

fn address(rng: &mut Rng64) -> Option<std::net::IpAddr> {
    match rng.below(10) {
        0 => None,
        1..=2 => Some(std::net::IpAddr::V6(std::net::Ipv6Addr::from(
            (u128::from(rng.u64()) << 64) | u128::from(rng.u64()),
        ))),
        _ => Some(std::net::IpAddr::V4(std::net::Ipv4Addr::from(rng.u64() as u32))),
    }
}

fn timestamp(rng: &mut Rng64) -> i64 {
    match rng.below(20) {
        0 => MIN_TS_MS,
        1 => MAX_TS_MS - 1,
        2 => MIN_TS_MS + rng.below((MAX_TS_MS - MIN_TS_MS) as u64) as i64,
        // Mostly near the present, as logs are.
        _ => 1_767_225_600_000 + rng.below(86_400_000 * 30) as i64,
    }
}

/// RFC 3339 text for `ts_ms`, in UTC or at a random whole-minute offset.
fn rfc3339(rng: &mut Rng64, ts_ms: i64) -> String {
    let utc = DateTime::from_timestamp_millis(ts_ms).expect("in range");
    if rng.chance(0.5) {
        return utc.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    let minutes = rng.below(24 * 60) as i32 - 12 * 60;
    let offset = FixedOffset::east_opt(minutes * 60).expect("within a day");
    utc.with_timezone(&offset).to_rfc3339_opts(SecondsFormat::Millis, false)
}

/// A counter up to `max` (inclusive; the decoders' plausible bound), now and then at it.
fn counter(rng: &mut Rng64, max: u64) -> u64 {
    match rng.below(8) {
        0 => 0,
        1 => rng.below(100),
        2 => max,
        _ => (rng.log_range(1.0, max as f64) as u64).min(max),
    }
}

fn reading(rng: &mut Rng64) -> Option<f64> {
    match rng.below(12) {
        0..=2 => None,
        3 => Some(f64::NAN),
        4 => Some(if rng.chance(0.5) {
            f64::INFINITY
        } else {
            f64::NEG_INFINITY
        }),
        5 => Some(0.0),
        _ => {
            let magnitude = 10f64.powi(rng.below(40) as i32 - 20);
            Some(rng.normal() * magnitude)
        }
    }
}

fn reading_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else {
        format!("{v}")
    }
}

fn protocol(rng: &mut Rng64) -> (Protocol, String) {
    match rng.below(6) {
        0 => (Protocol::Tcp, "tcp".into()),
        1 => (Protocol::Udp, "UDP".into()),
        2 => (Protocol::Icmp, "icmp".into()),
        3 => (Protocol::Other, "sctp".into()),
        4 => (Protocol::Other, String::new()),
        _ => (Protocol::Tcp, "Tcp".into()),
    }
}

/// A random valid event with the texts each field is written as.
pub(super) struct Drawn {
    pub(super) event: Event,
    pub(super) ts_text: String,
    pub(super) protocol_text: String,
    pub(super) src: Option<std::net::IpAddr>,
    pub(super) dst: Option<std::net::IpAddr>,
}

pub(super) fn draw(rng: &mut Rng64) -> Drawn {
    let ts_ms = timestamp(rng);
    let ts_text = if rng.chance(0.6) {
        ts_ms.to_string()
    } else {
        rfc3339(rng, ts_ms)
    };
    let (protocol, protocol_text) = protocol(rng);
    let src = address(rng);
    let dst = address(rng);
    let ip = |a: Option<std::net::IpAddr>| a.map_or(Ip(0), Ip::from_addr);
    Drawn {
        event: Event {
            ts_ms,
            device: device_name(rng).into(),
            src_ip: ip(src),
            dst_ip: ip(dst),
            dst_port: rng.below(65_536) as u16,
            protocol,
            bytes_out: counter(rng, MAX_BYTES),
            bytes_in: counter(rng, MAX_BYTES),
            packets: counter(rng, MAX_PACKETS),
            duration_ms: counter(rng, MAX_DURATION_MS),
            value: reading(rng),
        },
        ts_text,
        protocol_text,
        src,
        dst,
    }
}

/// A valid record of `format`. CSV records come with a header in a random column order
/// (some columns left out) half of the time.
pub(crate) fn sample(format: Format, rng: &mut Rng64) -> Sample {
    match format {
        Format::Csv => csv_sample(rng),
        Format::Jsonl => jsonl_sample(rng),
        Format::Zeek => zeek_sample(rng),
        Format::ZeekTsv => super::flows::zeek_tsv_sample(rng),
        Format::Suricata => super::flows::suricata_sample(rng),
    }
}

fn csv_sample(rng: &mut Rng64) -> Sample {
    let d = draw(rng);
    let mut e = d.event;
    let texts = |e: &Event, d_src: Option<std::net::IpAddr>, d_dst: Option<std::net::IpAddr>| -> [String; 11] {
        [
            d.ts_text.clone(),
            e.device.to_string(),
            d_src.map(|a| a.to_string()).unwrap_or_default(),
            d_dst.map(|a| a.to_string()).unwrap_or_default(),
            e.dst_port.to_string(),
            d.protocol_text.clone(),
            e.bytes_out.to_string(),
            e.bytes_in.to_string(),
            e.packets.to_string(),
            e.duration_ms.to_string(),
            e.value.map(reading_text).unwrap_or_default(),
        ]
    };
    if rng.chance(0.5) {
        let all = texts(&e, d.src, d.dst);
        return Sample {
            header: None,
            fields: Fields::Csv(all.to_vec()),
            event: e,
        };
    }
    // A header: `ts` and `device_id` always, the other columns each kept with p = 0.8, an
    // unknown column now and then, all shuffled.
    let mut columns: Vec<usize> = (0..11).filter(|&c| c < 2 || rng.chance(0.8)).collect();
    for c in 2..11 {
        if !columns.contains(&c) {
            // A left-out column reads as empty: its default.
            match c {
                2 => e.src_ip = Ip(0),
                3 => e.dst_ip = Ip(0),
                4 => e.dst_port = 0,
                5 => e.protocol = Protocol::Other,
                6 => e.bytes_out = 0,
                7 => e.bytes_in = 0,
                8 => e.packets = 0,
                9 => e.duration_ms = 0,
                _ => e.value = None,
            }
        }
    }
    let all = texts(
        &e,
        if columns.contains(&2) { d.src } else { None },
        if columns.contains(&3) { d.dst } else { None },
    );
    let unknown = rng.chance(0.2);
    if unknown {
        columns.push(usize::MAX);
    }
    rng.shuffle(&mut columns);
    let header: Vec<String> = columns
        .iter()
        .map(|&c| {
            if c == usize::MAX {
                "note".to_string()
            } else {
                CSV_HEADER[c].to_string()
            }
        })
        .collect();
    let fields = columns
        .iter()
        .map(|&c| {
            if c == usize::MAX {
                "extra, ignored".to_string()
            } else {
                all[c].clone()
            }
        })
        .collect();
    Sample {
        header: Some(header.join(",")),
        fields: Fields::Csv(fields),
        event: e,
    }
}

/// A number as a JSON number or, now and then, as a string holding it.
fn json_number(rng: &mut Rng64, v: u64) -> Value {
    if rng.chance(0.2) {
        Value::String(v.to_string())
    } else {
        json!(v)
    }
}

fn jsonl_sample(rng: &mut Rng64) -> Sample {
    let d = draw(rng);
    let e = d.event;
    let ts = if d.ts_text.bytes().all(|b| b.is_ascii_digit()) && rng.chance(0.7) {
        json!(e.ts_ms)
    } else {
        Value::String(d.ts_text.clone())
    };
    let mut fields: Vec<(String, Value)> = vec![("ts".into(), ts), ("device_id".into(), json!(e.device.as_str()))];
    let optional = |rng: &mut Rng64, key: &str, v: Value, fields: &mut Vec<(String, Value)>| match rng.below(10) {
        0 => fields.push((key.into(), Value::Null)),
        _ => fields.push((key.into(), v)),
    };
    match d.src {
        Some(a) => fields.push(("src_ip".into(), json!(a.to_string()))),
        None if rng.chance(0.5) => fields.push(("src_ip".into(), Value::Null)),
        None => {}
    }
    if let Some(a) = d.dst {
        fields.push(("dst_ip".into(), json!(a.to_string())));
    }
    let port = json_number(rng, u64::from(e.dst_port));
    fields.push(("dst_port".into(), port));
    fields.push(("protocol".into(), json!(d.protocol_text)));
    for (key, v) in [
        ("bytes_out", e.bytes_out),
        ("bytes_in", e.bytes_in),
        ("packets", e.packets),
        ("duration_ms", e.duration_ms),
    ] {
        let n = json_number(rng, v);
        fields.push((key.into(), n));
    }
    match e.value {
        None => optional(rng, "value", Value::Null, &mut fields),
        Some(v) if v.is_finite() && rng.chance(0.8) => fields.push(("value".into(), json!(v))),
        Some(v) => fields.push(("value".into(), Value::String(reading_text(v)))),
    }
    if rng.chance(0.2) {
        fields.push(("tags".into(), json!({"site": "a", "list": [1, 2, null]})));
    }
    rng.shuffle(&mut fields);
    Sample {
        header: None,
        fields: Fields::Json(fields),
        event: e,
    }
}

fn zeek_sample(rng: &mut Rng64) -> Sample {
    let d = draw(rng);
    let mut e = d.event;
    let orig = d
        .src
        .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));
    e.src_ip = Ip::from_addr(orig);
    e.device = orig.to_string().into();
    e.value = None;
    // Zeek's times are seconds with microseconds: keep the event's milliseconds exact.
    let secs = e.ts_ms as f64 / 1000.0;
    let ts = if rng.chance(0.7) {
        json!(secs)
    } else if d.ts_text.bytes().all(|b| b.is_ascii_digit()) {
        // A string of digits is read as seconds, as Zeek writes them.
        Value::String(format!("{secs}"))
    } else {
        Value::String(d.ts_text.clone())
    };
    let orig_pkts = rng.below(e.packets + 1);
    let resp_pkts = e.packets - orig_pkts;
    let duration = if rng.chance(0.1) {
        e.duration_ms = 0;
        None
    } else {
        Some(json!(e.duration_ms as f64 / 1000.0))
    };
    let mut fields: Vec<(String, Value)> = vec![
        ("ts".into(), ts),
        ("uid".into(), json!(format!("C{}", rng.u64()))),
        ("id.orig_h".into(), json!(orig.to_string())),
        ("id.orig_p".into(), json!(rng.below(65_536))),
        (
            "id.resp_h".into(),
            json!(d.dst.map(|a| a.to_string()).unwrap_or_default()),
        ),
        ("id.resp_p".into(), json!(e.dst_port)),
        ("proto".into(), json!(d.protocol_text)),
        ("orig_bytes".into(), json!(e.bytes_out)),
        ("resp_bytes".into(), json!(e.bytes_in)),
        ("orig_pkts".into(), json!(orig_pkts)),
        ("resp_pkts".into(), json!(resp_pkts)),
        ("conn_state".into(), json!("SF")),
    ];
    if let Some(d) = duration {
        fields.push(("duration".into(), d));
    }
    rng.shuffle(&mut fields);
    Sample {
        header: None,
        fields: Fields::Json(fields),
        event: e,
    }
}
