//! CSV records with the canonical header (columns in any order; `ts` and `device_id` required).
//!
//! Invariants: fields follow RFC 4180 quoting (`"a,b"`, `""` for a quote); a record whose
//! field count differs from the header's is `malformed`; a file whose first line is not a
//! header is read in the canonical column order.

use std::borrow::Cow;

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

    fn field<'a>(&self, fields: &'a [Cow<'a, str>], column: usize) -> &'a str {
        match self.columns[column] {
            Some(i) => fields[i].as_ref(),
            None => "",
        }
    }

    /// Decodes and validates one record.
    pub fn decode(&self, line: &str) -> Result<Event, DecodeError> {
        let mut fields = Fields::new();
        split_fields(line.trim_end_matches('\r'), &mut fields)?;
        self.decode_fields(&fields)
    }

    fn decode_fields(&self, fields: &[Cow<'_, str>]) -> Result<Event, DecodeError> {
        if fields.len() != self.width {
            return Err(DecodeError::new(
                RejectReason::Malformed,
                format!("{} fields, expected {}", fields.len(), self.width),
            ));
        }
        let ts_ms = parse_ts_text(self.field(fields, 0), "ts")?;
        let device = parse_device(self.field(fields, 1), "device_id")?;
        Ok(Event {
            ts_ms,
            device,
            src_ip: parse_ip(self.field(fields, 2), "src_ip")?,
            dst_ip: parse_ip(self.field(fields, 3), "dst_ip")?,
            dst_port: parse_port(self.field(fields, 4), "dst_port")?,
            protocol: Protocol::parse(self.field(fields, 5)),
            bytes_out: parse_counter(self.field(fields, 6), "bytes_out", MAX_BYTES)?,
            bytes_in: parse_counter(self.field(fields, 7), "bytes_in", MAX_BYTES)?,
            packets: parse_counter(self.field(fields, 8), "packets", MAX_PACKETS)?,
            duration_ms: parse_counter(self.field(fields, 9), "duration_ms", MAX_DURATION_MS)?,
            value: parse_value(self.field(fields, 10), "value")?,
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

    #[test]
    fn field_count_mismatch_is_malformed() {
        let d = CsvDecoder::default();
        let err = d.decode("1700000000000,vm-1,1.2.3.4").unwrap_err();
        assert_eq!(err.reason, RejectReason::Malformed);
    }
}
