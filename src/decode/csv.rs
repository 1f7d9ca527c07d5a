//! CSV records with the canonical header (columns in any order; `ts` and `device_id` required).
//!
//! Invariants: fields follow RFC 4180 quoting (`"a,b"`, `""` for a quote); a record whose
//! field count differs from the header's is `malformed`; a file whose first line is not a
//! header is read in the canonical column order. A line without a quote is split without a
//! copy ([`PlainFields`]), into the same fields.

use std::borrow::Cow;

use super::fast::PlainFields;
use super::fields::*;
use super::reject::{DecodeError, RejectReason};
use crate::event::{Event, Protocol, CSV_HEADER, MAX_BYTES, MAX_DURATION_MS, MAX_PACKETS};

/// Column positions of one CSV source.
#[derive(Clone, Debug)]
pub struct CsvDecoder {
    /// For each canonical column (in [`CSV_HEADER`] order), its index in the record.
    columns: [Option<usize>; 11],
    width: usize,
}

impl Default for CsvDecoder {
    fn default() -> Self {
        let mut columns = [None; 11];
        for (i, c) in columns.iter_mut().enumerate() {
            *c = Some(i);
        }
        CsvDecoder { columns, width: 11 }
    }
}

/// Splits a CSV record into fields, honouring quotes.
/// A record's fields: inline up to the canonical width (no allocation per record).
pub type Fields<'a> = smallvec::SmallVec<[Cow<'a, str>; 12]>;

pub fn split_fields<'a>(line: &'a str, out: &mut Fields<'a>) -> Result<(), DecodeError> {
    out.clear();
    let bytes = line.as_bytes();
    let mut i = 0;
    loop {
        if i < bytes.len() && bytes[i] == b'"' {
            let mut text = String::new();
            let mut j = i + 1;
            loop {
                match memchr::memchr(b'"', &bytes[j..]) {
                    None => return Err(DecodeError::new(RejectReason::Malformed, "unterminated quoted field")),
                    Some(k) => {
                        text.push_str(&line[j..j + k]);
                        j += k + 1;
                        if j < bytes.len() && bytes[j] == b'"' {
                            text.push('"');
                            j += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            out.push(Cow::Owned(text));
            if j == bytes.len() {
                return Ok(());
            }
            if bytes[j] != b',' {
                return Err(DecodeError::new(RejectReason::Malformed, "text after a closing quote"));
            }
            i = j + 1;
        } else {
            // Fields are short: a plain scan beats a vectorised search's set-up per field.
            let mut j = i;
            while j < bytes.len() && bytes[j] != b',' {
                j += 1;
            }
            out.push(Cow::Borrowed(&line[i..j]));
            if j == bytes.len() {
                return Ok(());
            }
            i = j + 1;
        }
    }
}

impl CsvDecoder {
    /// Reads a header line; `None` when the line is not a header (first field is not a
    /// known column name), in which case the canonical order applies.
    pub fn from_header(line: &str) -> Result<Option<Self>, DecodeError> {
        let mut fields = Fields::new();
        split_fields(line.trim_end_matches('\r'), &mut fields)?;
        let names: Vec<String> = fields.iter().map(|f| f.trim().to_ascii_lowercase()).collect();
        if !names.iter().any(|n| n == "ts") || !names.iter().any(|n| n == "device_id") {
            if CSV_HEADER.contains(&names[0].as_str()) {
                return Err(DecodeError::new(
                    RejectReason::Malformed,
                    "CSV header lacks `ts` or `device_id`",
                ));
            }
            return Ok(None);
        }
        let mut columns = [None; 11];
        for (i, name) in names.iter().enumerate() {
            if let Some(c) = CSV_HEADER.iter().position(|h| h == name) {
                columns[c] = Some(i);
            }
        }
        Ok(Some(CsvDecoder {
            columns,
            width: names.len(),
        }))
    }

    /// Decodes and validates one record.
    pub fn decode(&self, line: &str) -> Result<Event, DecodeError> {
        let line = line.trim_end_matches('\r');
        if let Some(fields) = PlainFields::split(line) {
            return self.decode_fields(fields.len(), |i| fields.get(i), None);
        }
        let mut fields = Fields::new();
        split_fields(line, &mut fields)?;
        self.decode_fields(fields.len(), |i| fields[i].as_ref(), None)
    }

    /// [`Self::peek_ts`] and [`Self::decode`] of `line` from one split of it, with its
    /// timestamp parsed once; `None` when the line does not split (`peek_ts` may still read
    /// its timestamp: ask the two).
    pub fn peek_decode(&self, line: &str) -> Option<(Option<i64>, Result<Event, DecodeError>)> {
        let line = line.trim_end_matches('\r');
        if let Some(fields) = PlainFields::split(line) {
            return Some(self.peek_decode_fields(fields.len(), |i| fields.get(i)));
        }
        let mut fields = Fields::new();
        split_fields(line, &mut fields).ok()?;
        Some(self.peek_decode_fields(fields.len(), |i| fields[i].as_ref()))
    }

    /// What `peek_ts` reads from a line that splits: the timestamp column when the line has
    /// it (whatever its width); the decoded record takes the same parse.
    fn peek_decode_fields<'a>(
        &self,
        len: usize,
        field: impl Fn(usize) -> &'a str,
    ) -> (Option<i64>, Result<Event, DecodeError>) {
        let ts = self.columns[0]
            .filter(|&i| i < len)
            .map(|i| parse_ts_text(field(i), "ts"));
        let peeked = ts.as_ref().and_then(|ts| ts.as_ref().ok().copied());
        (peeked, self.decode_fields(len, field, ts))
    }

    /// Decodes the `len` fields `field` gives; `ts`: the timestamp column already parsed.
    #[inline]
    fn decode_fields<'a>(
        &self,
        len: usize,
        field: impl Fn(usize) -> &'a str,
        ts: Option<Result<i64, DecodeError>>,
    ) -> Result<Event, DecodeError> {
        if len != self.width {
            return Err(DecodeError::new(
                RejectReason::Malformed,
                format!("{} fields, expected {}", len, self.width),
            ));
        }
        // Each canonical column's text ("" when the header lacks it), from one call site.
        let mut column = [""; 11];
        for (text, at) in column.iter_mut().zip(self.columns) {
            if let Some(i) = at {
                *text = field(i);
            }
        }
        let ts_ms = match ts {
            Some(ts) => ts?,
            None => parse_ts_text(column[0], "ts")?,
        };
        let device = parse_device(column[1], "device_id")?;
        Ok(Event {
            ts_ms,
            device,
            src_ip: parse_ip(column[2], "src_ip")?,
            dst_ip: parse_ip(column[3], "dst_ip")?,
            dst_port: parse_port(column[4], "dst_port")?,
            protocol: Protocol::parse(column[5]),
            bytes_out: parse_counter(column[6], "bytes_out", MAX_BYTES)?,
            bytes_in: parse_counter(column[7], "bytes_in", MAX_BYTES)?,
            packets: parse_counter(column[8], "packets", MAX_PACKETS)?,
            duration_ms: parse_counter(column[9], "duration_ms", MAX_DURATION_MS)?,
            value: parse_value(column[10], "value")?,
        })
    }

    /// The device column alone, when the record splits into the header's width.
    pub fn peek_device(&self, line: &str) -> Option<String> {
        let col = self.columns[1]?;
        let mut fields = Fields::new();
        split_fields(line.trim_end_matches('\r'), &mut fields).ok()?;
        (fields.len() == self.width).then(|| fields[col].to_string())
    }

    /// The record's timestamp alone (cheap: used by every worker to track the watermark).
    pub fn peek_ts(&self, line: &str) -> Option<i64> {
        let col = self.columns[0]?;
        let line = line.trim_end_matches('\r');
        if col == 0 && !line.starts_with('"') {
            let end = memchr::memchr(b',', line.as_bytes()).unwrap_or(line.len());
            return parse_ts_text(&line[..end], "ts").ok();
        }
        let mut fields = Fields::new();
        split_fields(line, &mut fields).ok()?;
        parse_ts_text(fields.get(col)?, "ts").ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields() {
        let mut f = Fields::new();
        split_fields(r#"a,"b,c","d""e",,"#, &mut f).unwrap();
        assert_eq!(f.as_slice(), ["a", "b,c", "d\"e", "", ""]);
        assert!(split_fields(r#""abc"#, &mut f).is_err());
    }

    #[test]
    fn header_in_any_order() {
        let d = CsvDecoder::from_header("device_id,ts,bytes_out").unwrap().unwrap();
        let e = d.decode("vm-1,1700000000000,42").unwrap();
        assert_eq!(e.device.as_str(), "vm-1");
        assert_eq!(e.bytes_out, 42);
        assert_eq!(e.value, None);
        assert_eq!(d.peek_ts("vm-1,1700000000000,42"), Some(1_700_000_000_000));
        assert!(CsvDecoder::from_header("1700000000000,vm-1").unwrap().is_none());
    }

    /// The general path: the line through `split_fields`, the timestamp parsed on its own.
    fn general(d: &CsvDecoder, line: &str) -> Result<Event, DecodeError> {
        let mut fields = Fields::new();
        split_fields(line.trim_end_matches('\r'), &mut fields)?;
        d.decode_fields(fields.len(), |i| fields[i].as_ref(), None)
    }

    #[test]
    fn one_split_decodes_as_the_general_path_and_peeks_as_peek_ts() {
        use crate::decode::fast::tests::Rng;
        let decoders = [
            CsvDecoder::default(),
            CsvDecoder::from_header(
                "device_id,ts,src_ip,dst_ip,dst_port,protocol,bytes_out,bytes_in,packets,duration_ms,value",
            )
            .unwrap()
            .unwrap(),
            CsvDecoder::from_header("ts,device_id,bytes_out,extra")
                .unwrap()
                .unwrap(),
            // Wider than a line the fast split takes.
            CsvDecoder::from_header("ts,device_id,value,c1,c2,c3,c4,c5,c6,c7,c8,c9,c10,c11,c12,c13,c14,c15")
                .unwrap()
                .unwrap(),
        ];
        let lines = [
            "1767571200001,vm-000348,10.16.1.174,10.0.1.13,8080,tcp,17696,1248,24,105,26.4",
            "1767571200008,sensor-0514,192.168.18.15,10.0.0.3,53,udp,58,102,2,4,",
            "2026-01-05T00:00:00.008Z,vm-1,::1,1.2.3.4,0,ICMP,0,0,0,0,-0.0",
            "vm-000174,1767571200008,10.32.0.73,10.0.0.2,53,udp,108,180,2,18,31.8",
            "\"1767571200008\",\"vm,1\",,,,,,,,,NaN",
            "1767571200001,vm-1,42,x",
            "1767571200001,vm-1,2.5,,,,,,,,,,,,,,,",
        ];
        let edits = [
            ",",
            "\"",
            "\"\"",
            " ",
            "-",
            "0",
            "9",
            ".",
            "\r",
            "é",
            "x",
            "1e3",
            "+",
            "\t",
            "",
            "99999999999999999999",
            "1767571200.123",
            "256",
            "00",
        ];
        let mut rng = Rng::new(23);
        for _ in 0..60_000 {
            let mut line = lines[rng.below(lines.len())].to_string();
            for _ in 0..rng.below(4) {
                let cut: Vec<usize> = line.char_indices().map(|(i, _)| i).chain([line.len()]).collect();
                let at = cut[rng.below(cut.len())];
                match rng.below(3) {
                    0 if at < line.len() => {
                        line.remove(at);
                    }
                    _ => line.insert_str(at, edits[rng.below(edits.len())]),
                }
            }
            for d in &decoders {
                let decoded = d.decode(&line);
                assert_eq!(format!("{decoded:?}"), format!("{:?}", general(d, &line)), "{line:?}");
                if let Some((peeked, once)) = d.peek_decode(&line) {
                    assert_eq!(peeked, d.peek_ts(&line), "{line:?}");
                    assert_eq!(format!("{once:?}"), format!("{decoded:?}"), "{line:?}");
                } else {
                    assert!(split_fields(line.trim_end_matches('\r'), &mut Fields::new()).is_err());
                }
            }
        }
    }

    #[test]
    fn field_count_mismatch_is_malformed() {
        let d = CsvDecoder::default();
        let err = d.decode("1700000000000,vm-1,1.2.3.4").unwrap_err();
        assert_eq!(err.reason, RejectReason::Malformed);
    }
}
