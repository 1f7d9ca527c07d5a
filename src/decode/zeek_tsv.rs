//! Zeek `conn.log` in its default ASCII form: tab-separated records under `#` header lines.
//!
//! Invariants: the header lines (`#separator`, `#set_separator`, `#empty_field`,
//! `#unset_field`, `#fields`, and the ignored `#path`, `#open`, `#close`, `#types`) are not
//! records; `#fields` binds the columns by name (any order, extra columns ignored) until the
//! next `#fields` (a rotated log appended to another re-binds them). Without any `#fields`
//! the default `conn.log` column order applies. The unset (`-`) and empty (`(empty)`) markers
//! mean "absent", as a missing key does in Zeek JSON, and the mapping is that of
//! [`super::json::decode_zeek`]: the device and `src_ip` are `id.orig_h`, `ts` is epoch
//! seconds, `packets = orig_pkts + resp_pkts`, `duration` is seconds. A record whose field
//! count differs from the header's is `malformed`.

use super::fields::*;
use super::reject::{DecodeError, RejectReason};
use crate::event::{Event, Protocol, MAX_BYTES, MAX_PACKETS};

/// A record's fields (inline up to a long `conn.log`'s width).
type Fields<'a> = smallvec::SmallVec<[&'a str; 40]>;

/// The columns vigil reads, in this order.
const WANTED: [&str; 10] = [
    "ts",
    "id.orig_h",
    "id.resp_h",
    "id.resp_p",
    "proto",
    "duration",
    "orig_bytes",
    "resp_bytes",
    "orig_pkts",
    "resp_pkts",
];
const TS: usize = 0;
const ORIG_H: usize = 1;

/// Zeek's default `conn.log` columns (Zeek 6/7 without extra scripts).
const DEFAULT_FIELDS: &str = "ts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\tlocal_orig\tlocal_resp\tmissed_bytes\thistory\torig_pkts\torig_ip_bytes\tresp_pkts\tresp_ip_bytes\ttunnel_parents";

/// Column binding and markers of one Zeek TSV source (they change with its header lines).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZeekTsvDecoder {
    separator: u8,
    unset: Box<str>,
    empty: Box<str>,
    /// For each of [`WANTED`], its column index.
    columns: [Option<u16>; 10],
    width: usize,
}

impl Default for ZeekTsvDecoder {
    fn default() -> Self {
        let mut d = ZeekTsvDecoder {
            separator: b'\t',
            unset: "-".into(),
            empty: "(empty)".into(),
            columns: [None; 10],
            width: 0,
        };
        d.bind(DEFAULT_FIELDS);
        d
    }
}

/// Whether a line is a Zeek header line (not a record).
pub fn is_header(line: &[u8]) -> bool {
    line.first() == Some(&b'#')
}

/// Whether a first line starts a Zeek ASCII log.
pub fn looks_like_zeek_tsv(first_line: &[u8]) -> bool {
    first_line.starts_with(b"#separator") || first_line.starts_with(b"#fields")
}

/// `\x09` → tab (Zeek writes the separator escaped); anything else taken as it is.
fn unescape_separator(text: &str) -> Option<u8> {
    let t = text.trim_matches(|c| c == ' ' || c == '\r');
    if let Some(hex) = t.strip_prefix("\\x") {
        return u8::from_str_radix(hex, 16).ok();
    }
    (t.len() == 1).then(|| t.as_bytes()[0])
}

impl ZeekTsvDecoder {
    fn bind(&mut self, fields: &str) {
        let mut columns = [None; 10];
        let mut width = 0;
        for (i, name) in fields.split(self.separator as char).enumerate() {
            if let Some(w) = WANTED.iter().position(|w| *w == name.trim()) {
                columns[w] = columns[w].or(u16::try_from(i).ok());
            }
            width = i + 1;
        }
        self.columns = columns;
        self.width = width;
    }

    /// Applies one header line. A `#fields` line without `ts` or `id.orig_h` is an error (the
    /// records under it could not be read).
    pub fn header(&mut self, line: &[u8]) -> Result<(), DecodeError> {
        let text = std::str::from_utf8(line)
            .map_err(|_| DecodeError::new(RejectReason::Encoding, "header line is not UTF-8"))?
            .trim_end_matches('\r');
        if let Some(rest) = text.strip_prefix("#separator") {
            // `#separator \x09`: the only header line separated by a space.
            self.separator = unescape_separator(rest).ok_or_else(|| {
                DecodeError::new(
                    RejectReason::Malformed,
                    format!("#separator {} is not one byte", quote(rest)),
                )
            })?;
            return Ok(());
        }
        let sep = self.separator as char;
        let Some((key, value)) = text.split_once(sep) else {
            return Ok(());
        };
        match key {
            "#unset_field" => self.unset = value.into(),
            "#empty_field" => self.empty = value.into(),
            "#fields" => {
                self.bind(value);
                for (w, name) in [(TS, "ts"), (ORIG_H, "id.orig_h")] {
                    if self.columns[w].is_none() {
                        return Err(DecodeError::new(
                            RejectReason::Malformed,
                            format!("#fields has no `{name}` column"),
                        ));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The value of wanted column `w` in `fields`; the unset and empty markers give "".
    fn get<'a>(&self, fields: &[&'a str], w: usize) -> &'a str {
        match self.columns[w].and_then(|i| fields.get(i as usize)) {
            Some(v) if *v == &*self.unset || *v == &*self.empty => "",
            Some(v) => v,
            None => "",
        }
    }

    fn split<'a>(&self, line: &'a str, out: &mut Fields<'a>) -> Result<usize, DecodeError> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.clear();
        out.extend(line.split(self.separator as char));
        let n = out.len();
        if n != self.width {
            return Err(DecodeError::new(
                RejectReason::Malformed,
                format!("{n} fields, expected {} (from #fields)", self.width),
            ));
        }
        Ok(n)
    }

    /// The field at wanted column `w` alone, without splitting the whole record.
    fn nth<'a>(&self, line: &'a str, w: usize) -> Option<&'a str> {
        let i = self.columns[w]? as usize;
        let v = line.split(self.separator as char).nth(i)?;
        let v = v.strip_suffix('\r').unwrap_or(v);
        (v != &*self.unset && v != &*self.empty).then_some(v)
    }

    /// Decodes one record.
    pub fn decode(&self, line: &str) -> Result<Event, DecodeError> {
        if line.starts_with('#') {
            return Err(DecodeError::new(
                RejectReason::Malformed,
                "a header line is not a record",
            ));
        }
        let mut fields = Fields::new();
        self.split(line, &mut fields)?;
        let fields = &fields[..];
        let ts_ms = zeek_ts_text(self.get(fields, TS))?;
        let orig = self.get(fields, ORIG_H);
        if orig.trim().is_empty() {
            return Err(DecodeError::new(RejectReason::MissingField, "id.orig_h is missing"));
        }
        let src_ip = parse_ip(orig, "id.orig_h")?;
        let orig_pkts = parse_counter(self.get(fields, 8), "orig_pkts", MAX_PACKETS)?;
        let resp_pkts = parse_counter(self.get(fields, 9), "resp_pkts", MAX_PACKETS)?;
        let packets = orig_pkts + resp_pkts;
        if packets > MAX_PACKETS {
            return Err(DecodeError::new(
                RejectReason::TooLarge,
                format!("orig_pkts + resp_pkts {packets} is above its largest plausible value {MAX_PACKETS}"),
            ));
        }
        let duration = self.get(fields, 5).trim();
        let duration_ms = if duration.is_empty() {
            0
        } else {
            let secs = duration.parse::<f64>().map_err(|_| {
                DecodeError::new(
                    RejectReason::BadNumber,
                    format!("duration {} is not a number", quote(duration)),
                )
            })?;
            parse_seconds_as_ms(secs, "duration")?
        };
        Ok(Event {
            ts_ms,
            device: parse_device(orig, "id.orig_h")?,
            src_ip,
            dst_ip: parse_ip(self.get(fields, 2), "id.resp_h")?,
            dst_port: parse_port(self.get(fields, 3), "id.resp_p")?,
            protocol: Protocol::parse(self.get(fields, 4)),
            bytes_out: parse_counter(self.get(fields, 6), "orig_bytes", MAX_BYTES)?,
            bytes_in: parse_counter(self.get(fields, 7), "resp_bytes", MAX_BYTES)?,
            packets,
            duration_ms,
            value: None,
        })
    }

    /// The record's timestamp alone.
    pub fn peek_ts(&self, line: &str) -> Option<i64> {
        if line.starts_with('#') {
            return None;
        }
        zeek_ts_text(self.nth(line, TS)?).ok()
    }

    /// The record's device alone.
    pub fn peek_device(&self, line: &str) -> Option<String> {
        if line.starts_with('#') {
            return None;
        }
        self.nth(line, ORIG_H).map(str::to_string)
    }
}

/// Zeek's `ts` as text: epoch seconds with a fraction (as [`super::json::decode_zeek`] reads
/// a JSON number), else epoch milliseconds or RFC 3339.
pub fn zeek_ts_text(text: &str) -> Result<i64, DecodeError> {
    let t = text.trim();
    if t.is_empty() {
        return Err(DecodeError::new(RejectReason::MissingField, "ts is missing"));
    }
    match t.parse::<f64>() {
        Ok(secs) if secs.is_finite() => check_ts_range((secs * 1000.0).round() as i64, "ts"),
        _ => parse_ts_text(t, "ts"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[&str] = &[
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        "#open\t2014-04-01-23-15-49",
        "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\torig_pkts\tresp_pkts",
        "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\tstring\tinterval\tcount\tcount\tstring\tcount\tcount",
    ];

    fn decoder() -> ZeekTsvDecoder {
        let mut d = ZeekTsvDecoder::default();
        for h in HEADER {
            assert!(is_header(h.as_bytes()));
            d.header(h.as_bytes()).unwrap();
        }
        d
    }

    #[test]
    fn a_record_maps_as_zeek_json_does() {
        let d = decoder();
        let line = "1329843175.736107\tC1\t141.142.220.235\t37604\t199.233.217.249\t56666\ttcp\tftp-data\t0.112432\t0\t342\tSF\t4\t4";
        let e = d.decode(line).unwrap();
        let json = super::super::json::decode_zeek(
            r#"{"ts":1329843175.736107,"uid":"C1","id.orig_h":"141.142.220.235","id.orig_p":37604,"id.resp_h":"199.233.217.249","id.resp_p":56666,"proto":"tcp","service":"ftp-data","duration":0.112432,"orig_bytes":0,"resp_bytes":342,"conn_state":"SF","orig_pkts":4,"resp_pkts":4}"#,
        )
        .unwrap();
        assert_eq!(e, json);
        assert_eq!(d.peek_ts(line), Some(e.ts_ms));
        assert_eq!(d.peek_device(line).as_deref(), Some("141.142.220.235"));
    }

    #[test]
    fn unset_and_empty_are_absent_and_columns_rebind() {
        let mut d = decoder();
        let e = d
            .decode("1329843175.5\tC1\t10.0.0.1\t1\t-\t-\tudp\t(empty)\t-\t-\t-\tS0\t1\t0")
            .unwrap();
        assert_eq!((e.bytes_out, e.duration_ms, e.dst_port, e.packets), (0, 0, 0, 1));
        // A rotated log: new columns, in another order, with an extra one.
        d.header(b"#fields\tid.orig_h\tts\textra\torig_bytes").unwrap();
        let e = d.decode("10.0.0.2\t1329843176\tx\t77").unwrap();
        assert_eq!(
            (e.device.as_str(), e.ts_ms, e.bytes_out),
            ("10.0.0.2", 1_329_843_176_000, 77)
        );
        assert_eq!(
            d.decode("10.0.0.2\t1329843176").unwrap_err().reason,
            RejectReason::Malformed
        );
        assert!(d.header(b"#fields\tuid\tproto").is_err());
    }

    #[test]
    fn another_separator_applies_to_later_header_lines() {
        let mut d = ZeekTsvDecoder::default();
        for h in ["#separator ,", "#unset_field,-", "#fields,ts,id.orig_h,orig_bytes"] {
            d.header(h.as_bytes()).unwrap();
        }
        let e = d.decode("1329843175.736107,141.142.220.235,-").unwrap();
        assert_eq!(e.ts_ms, 1_329_843_175_736);
    }

    #[test]
    fn bad_fields_are_rejected_with_their_reason() {
        let d = decoder();
        let base = [
            "1329843175.5",
            "C1",
            "10.0.0.1",
            "1",
            "10.0.0.2",
            "80",
            "tcp",
            "-",
            "1.0",
            "1",
            "2",
            "SF",
            "1",
            "1",
        ];
        for (col, value, reason) in [
            (0, "soon", RejectReason::BadTimestamp),
            (0, "-", RejectReason::MissingField),
            (2, "-", RejectReason::MissingField),
            (2, "10.0.0.300", RejectReason::BadIp),
            (5, "99999", RejectReason::BadPort),
            (8, "long", RejectReason::BadNumber),
            (9, "-4", RejectReason::NegativeValue),
        ] {
            let mut f = base;
            f[col] = value;
            assert_eq!(d.decode(&f.join("\t")).unwrap_err().reason, reason, "{col}={value}");
        }
    }
}
