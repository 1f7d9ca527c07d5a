//! Valid Zeek TSV and Suricata EVE records, drawn at random (see [`super::inputs`]).
//!
//! Invariant: as for every [`Sample`], an unmutated record decodes to exactly its event. Zeek
//! TSV records come with a `#fields` header naming their columns in a random order, with
//! columns vigil does not read among them, and absent values written as Zeek's `-` or
//! `(empty)`; EVE records are `flow` or `netflow` objects with their nested counters.

use chrono::DateTime;
use serde_json::{json, Value};

use super::inputs::{draw, Fields, Sample};
use crate::event::{Ip, MAX_TS_MS, MIN_TS_MS};
use crate::generate::rng::Rng64;

fn origin(rng: &mut Rng64, src: Option<std::net::IpAddr>) -> std::net::IpAddr {
    src.unwrap_or_else(|| std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0001 + rng.below(256) as u32)))
}

/// A Zeek `conn.log` TSV record under its `#fields` header.
pub(super) fn zeek_tsv_sample(rng: &mut Rng64) -> Sample {
    let d = draw(rng);
    let mut e = d.event;
    let orig = origin(rng, d.src);
    e.src_ip = Ip::from_addr(orig);
    e.device = orig.to_string().into();
    e.value = None;
    let absent = |rng: &mut Rng64| if rng.chance(0.8) { "-" } else { "(empty)" }.to_string();
    let orig_pkts = rng.below(e.packets + 1);
    let duration = if rng.chance(0.1) {
        e.duration_ms = 0;
        absent(rng)
    } else {
        format!("{:.6}", e.duration_ms as f64 / 1000.0)
    };
    let proto = if d.protocol_text.trim().is_empty() || d.protocol_text.contains('\t') {
        e.protocol = crate::event::Protocol::Other;
        absent(rng)
    } else {
        d.protocol_text.clone()
    };
    let mut columns: Vec<(&str, String)> = vec![
        ("ts", format!("{:.6}", e.ts_ms as f64 / 1000.0)),
        ("uid", format!("C{}", rng.u64())),
        ("id.orig_h", orig.to_string()),
        ("id.orig_p", rng.below(65_536).to_string()),
        ("id.resp_h", d.dst.map(|a| a.to_string()).unwrap_or_else(|| absent(rng))),
        ("id.resp_p", e.dst_port.to_string()),
        ("proto", proto),
        ("service", absent(rng)),
        ("duration", duration),
        ("orig_bytes", e.bytes_out.to_string()),
        ("resp_bytes", e.bytes_in.to_string()),
        ("conn_state", "SF".into()),
        ("orig_pkts", orig_pkts.to_string()),
        ("resp_pkts", (e.packets - orig_pkts).to_string()),
        ("tunnel_parents", "(empty)".into()),
    ];
    rng.shuffle(&mut columns);
    let header = std::iter::once("#fields")
        .chain(columns.iter().map(|(k, _)| *k))
        .collect::<Vec<_>>()
        .join("\t");
    Sample {
        header: Some(header),
        fields: Fields::Tsv(columns.into_iter().map(|(_, v)| v).collect()),
        event: e,
    }
}

/// Suricata's time form: microseconds and a `+0000` offset.
fn eve_time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .expect("in range")
        .format("%Y-%m-%dT%H:%M:%S%.6f+0000")
        .to_string()
}

/// A Suricata EVE `flow` (both directions) or `netflow` (one direction) record.
pub(super) fn suricata_sample(rng: &mut Rng64) -> Sample {
    let d = draw(rng);
    let mut e = d.event;
    let src = origin(rng, d.src);
    e.src_ip = Ip::from_addr(src);
    e.device = src.to_string().into();
    e.value = None;
    let (start, end) = if e.ts_ms - (e.duration_ms as i64) >= MIN_TS_MS {
        (e.ts_ms - e.duration_ms as i64, e.ts_ms)
    } else {
        (e.ts_ms, (e.ts_ms + e.duration_ms as i64).min(MAX_TS_MS - 1))
    };
    e.duration_ms = (end - start) as u64;
    let netflow = rng.chance(0.3);
    let counters = if netflow {
        e.bytes_in = 0;
        json!({"pkts": e.packets, "bytes": e.bytes_out, "start": eve_time(start), "end": eve_time(end), "age": 0})
    } else {
        let to_server = rng.below(e.packets + 1);
        json!({
            "pkts_toserver": to_server, "pkts_toclient": e.packets - to_server,
            "bytes_toserver": e.bytes_out, "bytes_toclient": e.bytes_in,
            "start": eve_time(start), "end": eve_time(end), "age": 0,
            "state": "closed", "reason": "timeout", "alerted": false
        })
    };
    let mut fields: Vec<(String, Value)> = vec![
        ("timestamp".into(), json!(eve_time(e.ts_ms))),
        ("flow_id".into(), json!(rng.u64())),
        ("in_iface".into(), json!("eth0")),
        ("event_type".into(), json!(if netflow { "netflow" } else { "flow" })),
        ("src_ip".into(), json!(src.to_string())),
        ("src_port".into(), json!(rng.below(65_536))),
        ("dest_port".into(), json!(e.dst_port)),
        ("proto".into(), json!(d.protocol_text)),
        ((if netflow { "netflow" } else { "flow" }).into(), counters),
    ];
    if let Some(dst) = d.dst {
        fields.push(("dest_ip".into(), json!(dst.to_string())));
    }
    rng.shuffle(&mut fields);
    Sample {
        header: None,
        fields: Fields::Json(fields),
        event: e,
    }
}
