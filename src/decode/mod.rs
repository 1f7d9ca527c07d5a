//! Decoding and validation of raw records into canonical [`Event`]s.
//!
//! Invariants: [`RecordDecoder::decode`] never panics on any input bytes; it returns an event
//! or a [`DecodeError`] with one reason from the closed set in [`reject`].
//! [`RecordDecoder::peek_ts`] returns `Some` exactly when the timestamp field parses and is in
//! range — the watermark is advanced by every such record, valid or not otherwise, so every
//! worker computes the same watermark from the same lines.

pub mod csv;
mod eve_fast;
pub mod eve_scan;
mod fast;
pub mod fields;
pub mod json;
pub mod reject;
pub mod suricata;
pub mod zeek_tsv;

use std::path::Path;

use crate::event::Event;
pub use reject::{DecodeError, Reject, RejectReason};
pub use suricata::{EveDevice, SKIP_KINDS};

/// An input encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Csv,
    Jsonl,
    /// Zeek `conn.log` JSON.
    Zeek,
    /// Zeek `conn.log` in its default tab-separated form with `#` header lines.
    ZeekTsv,
    /// Suricata EVE JSON (`flow` and `netflow` records; other types skipped).
    Suricata,
}

impl Format {
    /// Parses a format name (`auto` gives `None`).
    pub fn parse(name: &str) -> Result<Option<Format>, String> {
        match name {
            "auto" => Ok(None),
            "csv" => Ok(Some(Format::Csv)),
            "jsonl" | "json" | "ndjson" => Ok(Some(Format::Jsonl)),
            "zeek" => Ok(Some(Format::Zeek)),
            "zeek-tsv" | "zeek_tsv" => Ok(Some(Format::ZeekTsv)),
            "suricata" | "eve" => Ok(Some(Format::Suricata)),
            other => Err(format!(
                "unknown format `{other}`: use auto, csv, jsonl, zeek, zeek-tsv or suricata"
            )),
        }
    }

    /// The format's name, as [`Format::parse`] reads it.
    pub fn name(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Zeek => "zeek",
            Format::ZeekTsv => "zeek-tsv",
            Format::Suricata => "suricata",
        }
    }

    /// Guesses the format from a file name and its first non-empty line (of a gzip file: its
    /// first decompressed line): `#separator`/`#fields` starts Zeek TSV; a JSON object with an
    /// `event_type` key is Suricata EVE, with `id.orig_h`/`id.resp_h` Zeek JSON, else JSON
    /// lines; anything else CSV.
    pub fn detect(path: Option<&Path>, first_line: &[u8]) -> Format {
        let trimmed = first_line.trim_ascii_start();
        if zeek_tsv::looks_like_zeek_tsv(trimmed) {
            return Format::ZeekTsv;
        }
        if trimmed.starts_with(b"{") {
            let text = String::from_utf8_lossy(trimmed);
            if text.contains("\"event_type\"") {
                return Format::Suricata;
            }
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

/// What decoders are told beyond the format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Longer records are rejected as `too_long`.
    pub max_record_bytes: usize,
    /// Suricata EVE: what names the device.
    pub eve_device: EveDevice,
}

impl DecodeOptions {
    /// The defaults with this record bound.
    pub fn new(max_record_bytes: usize) -> Self {
        DecodeOptions {
            max_record_bytes,
            eve_device: EveDevice::Source,
        }
    }
}

/// What a quick look at a record found (see [`RecordDecoder::peek`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peek {
    /// A record, with its timestamp when it parses and is in range.
    Record(Option<i64>),
    /// Not a record of interest (a Suricata event type other than flows): counted under this
    /// index of [`SKIP_KINDS`], neither accepted nor rejected.
    Skip(usize),
}

/// A decoder bound to one source (for CSV: its header's column order; for Zeek TSV: the
/// header lines read so far).
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
    ZeekTsv(Box<zeek_tsv::ZeekTsvDecoder>),
    Suricata(suricata::SuricataDecoder),
}

impl RecordDecoder {
    /// A decoder for messages without a header (canonical CSV column order, Zeek's default
    /// `conn.log` columns).
    pub fn new(format: Format, max_record_bytes: usize) -> Self {
        Self::with_options(format, &DecodeOptions::new(max_record_bytes))
    }

    /// [`RecordDecoder::new`] with options.
    pub fn with_options(format: Format, options: &DecodeOptions) -> Self {
        let kind = match format {
            Format::Csv => Kind::Csv(csv::CsvDecoder::default()),
            Format::Jsonl => Kind::Jsonl,
            Format::Zeek => Kind::Zeek,
            Format::ZeekTsv => Kind::ZeekTsv(Box::default()),
            Format::Suricata => Kind::Suricata(suricata::SuricataDecoder {
                device: options.eve_device.clone(),
            }),
        };
        RecordDecoder {
            kind,
            max_record_bytes: options.max_record_bytes,
        }
    }

    /// The decoder's format.
    pub fn format(&self) -> Format {
        match self.kind {
            Kind::Csv(_) => Format::Csv,
            Kind::Jsonl => Format::Jsonl,
            Kind::Zeek => Format::Zeek,
            Kind::ZeekTsv(_) => Format::ZeekTsv,
            Kind::Suricata(_) => Format::Suricata,
        }
    }

    /// Whether `line` is a header line of this decoder's format (Zeek TSV's `#` lines), which
    /// [`RecordDecoder::header`] takes instead of a record.
    pub fn is_header(&self, line: &[u8]) -> bool {
        matches!(self.kind, Kind::ZeekTsv(_)) && zeek_tsv::is_header(line)
    }

    /// Applies a header line (see [`RecordDecoder::is_header`]): Zeek TSV's `#fields` re-binds
    /// the columns of the records after it. An error means the records after it cannot be read.
    pub fn header(&mut self, line: &[u8]) -> Result<(), DecodeError> {
        match &mut self.kind {
            Kind::ZeekTsv(d) => d.header(line),
            _ => Ok(()),
        }
    }

    /// A decoder for a file: for CSV, reads the header from the first line. Returns whether
    /// the first line was a header (and so is not a record).
    pub fn for_file(format: Format, first_line: &[u8], max_record_bytes: usize) -> Result<(Self, bool), DecodeError> {
        Self::for_file_with(format, first_line, &DecodeOptions::new(max_record_bytes))
    }

    /// [`RecordDecoder::for_file`] with options.
    pub fn for_file_with(
        format: Format,
        first_line: &[u8],
        options: &DecodeOptions,
    ) -> Result<(Self, bool), DecodeError> {
        let mut decoder = Self::with_options(format, options);
        if decoder.is_header(first_line) {
            decoder.header(first_line)?;
            return Ok((decoder, true));
        }
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
            Kind::ZeekTsv(d) => d.decode(text),
            Kind::Suricata(d) => d.decode(text),
        }
    }

    /// The record's timestamp, or that it is to be skipped (Suricata event types other than
    /// flows). For every format but Suricata this is [`RecordDecoder::peek_ts`].
    pub fn peek(&self, raw: &[u8]) -> Peek {
        if let Kind::Suricata(d) = &self.kind {
            let Ok(text) = self.text(raw) else {
                return Peek::Record(None);
            };
            return match d.peek(text) {
                suricata::Peeked::Record(ts) => Peek::Record(ts),
                suricata::Peeked::Skip(kind) => Peek::Skip(kind),
            };
        }
        Peek::Record(self.peek_ts(raw))
    }

    /// [`Self::peek`] and [`Self::decode`] from one read of the record, for formats whose
    /// records are costly to read twice (Suricata EVE; CSV, whose owner would parse the
    /// timestamp twice), when that read can tell; `None`: ask the two.
    pub fn peek_decode(&self, raw: &[u8]) -> Option<(Peek, Result<Event, DecodeError>)> {
        if let Kind::Csv(d) = &self.kind {
            let (ts, decoded) = d.peek_decode(self.text(raw).ok()?)?;
            return Some((Peek::Record(ts), decoded));
        }
        let Kind::Suricata(d) = &self.kind else { return None };
        let (peeked, decoded) = d.peek_decode(self.text(raw).ok()?)?;
        let peek = match peeked {
            suricata::Peeked::Record(ts) => Peek::Record(ts),
            suricata::Peeked::Skip(kind) => Peek::Skip(kind),
        };
        Some((peek, decoded))
    }

    /// The device a (possibly invalid) record names, when it can be read.
    pub fn peek_device(&self, raw: &[u8]) -> Option<crate::event::DeviceId> {
        let text = self.text(raw).ok()?;
        let name = match &self.kind {
            Kind::Csv(d) => d.peek_device(text)?,
            Kind::Jsonl => json::peek_key(text, "device_id")?,
            Kind::Zeek => json::peek_key(text, "id.orig_h")?,
            Kind::ZeekTsv(d) => d.peek_device(text)?,
            Kind::Suricata(d) => d.peek_device(text)?,
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
            Kind::ZeekTsv(d) => d.peek_ts(text),
            Kind::Suricata(d) => match d.peek(text) {
                suricata::Peeked::Record(ts) => ts,
                suricata::Peeked::Skip(_) => None,
            },
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
        assert_eq!(Format::detect(None, b"#separator \\x09"), Format::ZeekTsv);
        assert_eq!(
            Format::detect(None, br#"{"timestamp":"2017-07-20T04:12:52+0000","event_type":"flow"}"#),
            Format::Suricata
        );
    }

    #[test]
    fn never_panics_on_garbage() {
        for format in [
            Format::Csv,
            Format::Jsonl,
            Format::Zeek,
            Format::ZeekTsv,
            Format::Suricata,
        ] {
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
