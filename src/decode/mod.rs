//! Decoding and validation of raw records into canonical [`Event`]s.
//!
//! Invariants: [`RecordDecoder::decode`] never panics on any input bytes; it returns an event
//! or a [`DecodeError`] with one reason from the closed set in [`reject`].
//! [`RecordDecoder::peek_ts`] returns `Some` exactly when the timestamp field parses and is in
//! range — the watermark is advanced by every such record, valid or not otherwise, so every
//! worker computes the same watermark from the same lines.

pub mod csv;
pub mod fields;
pub mod json;
pub mod reject;

use std::path::Path;

use crate::event::Event;
pub use reject::{DecodeError, Reject, RejectReason};

/// An input encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Jsonl,
    Zeek,
}

impl Format {
    /// Parses a format name (`auto` gives `None`).
    pub fn parse(name: &str) -> Result<Option<Format>, String> {
        match name {
            "auto" => Ok(None),
            "csv" => Ok(Some(Format::Csv)),
            "jsonl" | "json" | "ndjson" => Ok(Some(Format::Jsonl)),
            "zeek" => Ok(Some(Format::Zeek)),
            other => Err(format!("unknown format `{other}`: use auto, csv, jsonl or zeek")),
        }
    }

    /// The format's name, as [`Format::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Zeek => "zeek",
        }
    }

    /// Guesses the format from a file name and its first non-empty line.
    pub fn detect(path: Option<&Path>, first_line: &[u8]) -> Format {
        let trimmed = first_line.trim_ascii_start();
        if trimmed.starts_with(b"{") {
            let text = String::from_utf8_lossy(trimmed);
            if text.contains("\"id.orig_h\"") || text.contains("\"id.resp_h\"") {
                return Format::Zeek;
            }
            return Format::Jsonl;
        }
        if let Some("jsonl" | "ndjson" | "json") = path.and_then(|p| p.extension()).and_then(|e| e.to_str()) {
            return Format::Jsonl;
        }
        Format::Csv
    }
}

/// A decoder bound to one source (for CSV: its header's column order).
#[derive(Clone, Debug)]
pub struct RecordDecoder {
    kind: Kind,
    max_record_bytes: usize,
}

#[derive(Clone, Debug)]
enum Kind {
    Csv(csv::CsvDecoder),
    Jsonl,
    Zeek,
}

impl RecordDecoder {
    /// A decoder for messages without a header (canonical CSV column order).
    pub fn new(format: Format, max_record_bytes: usize) -> Self {
        let kind = match format {
            Format::Csv => Kind::Csv(csv::CsvDecoder::default()),
            Format::Jsonl => Kind::Jsonl,
            Format::Zeek => Kind::Zeek,
        };
        RecordDecoder { kind, max_record_bytes }
    }

    /// A decoder for a file: for CSV, reads the header from the first line. Returns whether
    /// the first line was a header (and so is not a record).
    pub fn for_file(format: Format, first_line: &[u8], max_record_bytes: usize) -> Result<(Self, bool), DecodeError> {
        let mut decoder = Self::new(format, max_record_bytes);
        if format == Format::Csv {
            let text = std::str::from_utf8(first_line)
                .map_err(|_| DecodeError::new(RejectReason::Encoding, "first line is not UTF-8"))?;
            if let Some(header) = csv::CsvDecoder::from_header(text)? {
                decoder.kind = Kind::Csv(header);
                return Ok((decoder, true));
            }
        }
        Ok((decoder, false))
    }

    fn text<'a>(&self, raw: &'a [u8]) -> Result<&'a str, DecodeError> {
        if raw.len() > self.max_record_bytes {
            return Err(DecodeError::new(
                RejectReason::TooLong,
                format!(
                    "{} bytes, more than input.max_record_bytes = {}",
                    raw.len(),
                    self.max_record_bytes
                ),
            ));
        }
        std::str::from_utf8(raw).map_err(|e| {
            DecodeError::new(
                RejectReason::Encoding,
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            )
        })
    }

    /// Decodes and validates one record.
    pub fn decode(&self, raw: &[u8]) -> Result<Event, DecodeError> {
        let text = self.text(raw)?;
        match &self.kind {
            Kind::Csv(d) => d.decode(text),
            Kind::Jsonl => json::decode_jsonl(text),
            Kind::Zeek => json::decode_zeek(text),
        }
    }

    /// The device a (possibly invalid) record names, when it can be read.
    pub fn peek_device(&self, raw: &[u8]) -> Option<crate::event::DeviceId> {
        let text = self.text(raw).ok()?;
        let name = match &self.kind {
            Kind::Csv(d) => d.peek_device(text)?,
            Kind::Jsonl => json::peek_key(text, "device_id")?,
            Kind::Zeek => json::peek_key(text, "id.orig_h")?,
        };
        fields::parse_device(&name, "device").ok()
    }

    /// The record's timestamp, when it parses and is in range.
    pub fn peek_ts(&self, raw: &[u8]) -> Option<i64> {
        let text = self.text(raw).ok()?;
        match &self.kind {
            Kind::Csv(d) => d.peek_ts(text),
            Kind::Jsonl => json::peek_ts_jsonl(text),
            Kind::Zeek => json::peek_ts_zeek(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection() {
        assert_eq!(Format::detect(None, b"ts,device_id"), Format::Csv);
        assert_eq!(Format::detect(None, br#"{"ts":1}"#), Format::Jsonl);
        assert_eq!(Format::detect(None, br#"{"ts":1,"id.orig_h":"1.2.3.4"}"#), Format::Zeek);
    }

    #[test]
    fn never_panics_on_garbage() {
        for format in [Format::Csv, Format::Jsonl, Format::Zeek] {
            let d = RecordDecoder::new(format, 64);
            for raw in [
                &b""[..],
                b"\xff\xfe",
                b",,,,,,,,,,",
                b"\"",
                b"{\"ts\":1e400}",
                &[b'a'; 100],
            ] {
                assert!(d.decode(raw).is_err());
                let _ = d.peek_ts(raw);
            }
        }
    }
}
