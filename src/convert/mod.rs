//! Writes accepted events in another input format: canonical CSV, Zeek `conn.log` (JSON or
//! TSV, with header blocks repeated as a rotated log has them) or Suricata EVE `flow`
//! records. `vigil convert` uses it to feed the same connections to every decoder (the
//! golden equality checks, throughput comparisons).
//!
//! Invariant: what is written decodes back to the same event — except that Zeek and Suricata
//! name the device by the originating address, so an event whose device is not its `src_ip`
//! comes back under that address, and they carry no reading (`value`). Times are written to
//! the millisecond exactly (Zeek seconds with six decimals, EVE microseconds).

use std::io::{self, Write};

use crate::decode::Format;
use crate::event::{Event, Ip, Protocol};

/// Zeek's default `conn.log` columns, as a rotated header block writes them.
const TSV_FIELDS: [&str; 21] = [
    "ts",
    "uid",
    "id.orig_h",
    "id.orig_p",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "service",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "conn_state",
    "local_orig",
    "local_resp",
    "missed_bytes",
    "history",
    "orig_pkts",
    "orig_ip_bytes",
    "resp_pkts",
    "resp_ip_bytes",
    "tunnel_parents",
];

/// Writes events in one format.
pub struct Converter<W: Write> {
    out: W,
    format: Format,
    /// Zeek TSV: a new header block (with the columns in another order) every this many
    /// records; 0: one block at the start.
    rotate_every: u64,
    written: u64,
    line: String,
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}000", ms.div_euclid(1000), ms.rem_euclid(1000))
}

fn addr(ip: Ip) -> Option<String> {
    (ip != Ip(0)).then(|| ip.to_string())
}

fn eve_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.6f+0000").to_string())
        .unwrap_or_default()
}

impl<W: Write> Converter<W> {
    /// A converter to `format` (CSV, Zeek JSON, Zeek TSV or Suricata).
    pub fn new(out: W, format: Format, rotate_every: u64) -> io::Result<Self> {
        let mut c = Converter {
            out,
            format,
            rotate_every,
            written: 0,
            line: String::new(),
        };
        if format == Format::Csv {
            writeln!(c.out, "{}", crate::event::CSV_HEADER.join(","))?;
        }
        Ok(c)
    }

    /// The column order of header block `block` (the first: Zeek's; later ones rotate it).
    fn order(block: u64) -> Vec<&'static str> {
        let mut cols = TSV_FIELDS.to_vec();
        if block % 2 == 1 {
            cols.reverse();
        }
        cols
    }

    fn tsv_header(&mut self, block: u64) -> io::Result<()> {
        let cols = Self::order(block);
        let types: Vec<&str> = cols
            .iter()
            .map(|c| match *c {
                "ts" => "time",
                "id.orig_h" | "id.resp_h" => "addr",
                "id.orig_p" | "id.resp_p" => "port",
                "proto" => "enum",
                "duration" => "interval",
                "local_orig" | "local_resp" => "bool",
                "tunnel_parents" => "set[string]",
                "uid" | "service" | "conn_state" | "history" => "string",
                _ => "count",
            })
            .collect();
        write!(
            self.out,
            "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#open\t2026-01-01-00-00-00\n#fields\t{}\n#types\t{}\n",
            cols.join("\t"),
            types.join("\t")
        )
    }

    /// The header block the next record is in.
    fn block(&self) -> u64 {
        self.written.checked_div(self.rotate_every).unwrap_or(0)
    }

    /// Writes one event.
    pub fn write(&mut self, e: &Event) -> io::Result<()> {
        if self.format == Format::ZeekTsv
            && (self.written == 0 || (self.rotate_every > 0 && self.written % self.rotate_every == 0))
        {
            let block = self.block();
            if block > 0 {
                writeln!(self.out, "#close\t2026-01-01-00-00-00")?;
            }
            self.tsv_header(block)?;
        }
        self.line.clear();
        let orig = addr(e.src_ip).unwrap_or_else(|| e.device.to_string());
        let orig_pkts = e.packets.div_ceil(2);
        let uid = format!("C{:08x}", self.written);
        match self.format {
            Format::Csv => e.write_csv(&mut self.line),
            Format::Jsonl => self.line = e.to_json().to_string(),
            Format::Zeek => {
                let mut m = serde_json::Map::new();
                m.insert("ts".into(), serde_json::json!(e.ts_ms as f64 / 1000.0));
                m.insert("uid".into(), serde_json::json!(uid));
                m.insert("id.orig_h".into(), serde_json::json!(orig));
                if let Some(d) = addr(e.dst_ip) {
                    m.insert("id.resp_h".into(), serde_json::json!(d));
                }
                m.insert("id.resp_p".into(), serde_json::json!(e.dst_port));
                m.insert("proto".into(), serde_json::json!(e.protocol.as_str()));
                m.insert("duration".into(), serde_json::json!(e.duration_ms as f64 / 1000.0));
                m.insert("orig_bytes".into(), serde_json::json!(e.bytes_out));
                m.insert("resp_bytes".into(), serde_json::json!(e.bytes_in));
                m.insert("orig_pkts".into(), serde_json::json!(orig_pkts));
                m.insert("resp_pkts".into(), serde_json::json!(e.packets - orig_pkts));
                self.line = serde_json::Value::Object(m).to_string();
            }
            Format::ZeekTsv => {
                let block = self.block();
                let proto = match e.protocol {
                    Protocol::Other => "unknown_transport",
                    p => p.as_str(),
                };
                let values: Vec<String> = Self::order(block)
                    .iter()
                    .map(|c| match *c {
                        "ts" => secs(e.ts_ms),
                        "uid" => uid.clone(),
                        "id.orig_h" => orig.clone(),
                        "id.resp_h" => addr(e.dst_ip).unwrap_or_else(|| "-".into()),
                        "id.resp_p" => e.dst_port.to_string(),
                        "proto" => proto.into(),
                        "duration" => format!("{}.{:03}000", e.duration_ms / 1000, e.duration_ms % 1000),
                        "orig_bytes" => e.bytes_out.to_string(),
                        "resp_bytes" => e.bytes_in.to_string(),
                        "orig_pkts" => orig_pkts.to_string(),
                        "resp_pkts" => (e.packets - orig_pkts).to_string(),
                        "conn_state" => "SF".into(),
                        "local_orig" | "local_resp" => "-".into(),
                        "tunnel_parents" => "(empty)".into(),
                        "service" | "history" => "-".into(),
                        _ => "0".into(),
                    })
                    .collect();
                self.line = values.join("\t");
            }
            Format::Suricata => {
                let start = e.ts_ms - e.duration_ms as i64;
                let mut m = serde_json::Map::new();
                m.insert("timestamp".into(), serde_json::json!(eve_time(e.ts_ms)));
                m.insert("flow_id".into(), serde_json::json!(self.written));
                m.insert("event_type".into(), serde_json::json!("flow"));
                m.insert("src_ip".into(), serde_json::json!(orig));
                if let Some(d) = addr(e.dst_ip) {
                    m.insert("dest_ip".into(), serde_json::json!(d));
                }
                m.insert("dest_port".into(), serde_json::json!(e.dst_port));
                m.insert("proto".into(), serde_json::json!(e.protocol.as_str().to_uppercase()));
                m.insert(
                    "flow".into(),
                    serde_json::json!({
                        "pkts_toserver": orig_pkts, "pkts_toclient": e.packets - orig_pkts,
                        "bytes_toserver": e.bytes_out, "bytes_toclient": e.bytes_in,
                        "start": eve_time(start), "end": eve_time(e.ts_ms),
                        "age": e.duration_ms / 1000, "state": "closed", "reason": "timeout", "alerted": false
                    }),
                );
                self.line = serde_json::Value::Object(m).to_string();
            }
        }
        self.out.write_all(self.line.as_bytes())?;
        self.out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Flushes and returns how many events were written.
    pub fn finish(mut self) -> io::Result<u64> {
        if self.format == Format::ZeekTsv && self.written > 0 {
            writeln!(self.out, "#close\t2026-01-01-00-00-00")?;
        }
        self.out.flush()?;
        Ok(self.written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::RecordDecoder;

    #[test]
    fn every_format_decodes_back_to_the_event() {
        let e = Event {
            ts_ms: 1_767_571_200_848,
            device: "10.0.0.5".into(),
            src_ip: Ip::from_addr("10.0.0.5".parse().unwrap()),
            dst_ip: Ip::from_addr("8.8.8.8".parse().unwrap()),
            dst_port: 53,
            protocol: Protocol::Udp,
            bytes_out: 100,
            bytes_in: 200,
            packets: 7,
            duration_ms: 1_234,
            value: None,
        };
        for format in [Format::Zeek, Format::ZeekTsv, Format::Suricata, Format::Csv] {
            let mut buf = Vec::new();
            let mut c = Converter::new(&mut buf, format, 1).unwrap();
            c.write(&e).unwrap();
            c.write(&e).unwrap();
            c.finish().unwrap();
            let text = String::from_utf8(buf).unwrap();
            let mut lines = text.lines();
            let first = lines.next().unwrap();
            let (mut d, header) = RecordDecoder::for_file(format, first.as_bytes(), 1 << 16).unwrap();
            assert!(header || format == Format::Zeek || format == Format::Suricata);
            let mut records = 0;
            for l in (!header).then_some(first).into_iter().chain(lines) {
                if d.is_header(l.as_bytes()) {
                    d.header(l.as_bytes()).unwrap();
                    continue;
                }
                assert_eq!(d.decode(l.as_bytes()).unwrap(), e, "{format:?}: {l}");
                records += 1;
            }
            assert_eq!(records, 2, "{format:?}");
        }
    }
}
