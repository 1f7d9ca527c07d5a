//! What must hold for every decoded input.
//!
//! Invariants checked, per case:
//! - nothing panics: the decoder, its peeks, nor the re-encodings;
//! - an unmutated record decodes to exactly the event it was drawn from;
//! - an accepted event has a device name that is non-empty, trimmed and at most 256 bytes,
//!   and a time in the accepted range;
//! - `peek_ts` and `peek_device` of an accepted record give its time and device (the watermark
//!   and the worker placement read those, before decoding);
//! - an accepted event written as canonical JSON and as canonical CSV decodes back to itself;
//! - a rejection carries a reason from the closed set and a detail of bounded length.

use std::panic::{catch_unwind, AssertUnwindSafe};

use super::Case;
use crate::decode::{EveDevice, Format, RecordDecoder, RejectReason};
use crate::event::{Event, MAX_TS_MS, MIN_TS_MS};

/// A reject detail longer than this would flood `rejects.jsonl`.
const MAX_DETAIL_BYTES: usize = 1_000;

/// How one case ended.
#[derive(Debug)]
pub enum Outcome {
    Accepted,
    Rejected(RejectReason),
    /// The CSV header was refused (as a file's first line would be).
    HeaderRefused,
    Failed(Box<Finding>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingKind {
    Panic,
    /// A decoding that broke one of the invariants above.
    Wrong,
}

/// A case that did not hold, with what reproduces it.
#[derive(Clone, Debug)]
pub struct Finding {
    pub case: u64,
    pub kind: FindingKind,
    pub message: String,
    pub header: Option<Vec<u8>>,
    pub record: Vec<u8>,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "case {}: {:?}: {}", self.case, self.kind, self.message)?;
        if let Some(h) = &self.header {
            write!(f, "\n  header: {}", escape_bounded(h))?;
        }
        write!(f, "\n  record: {}", escape_bounded(&self.record))
    }
}

/// Bytes as a Rust-style escaped string (printable ASCII kept).
pub fn escape(bytes: &[u8]) -> String {
    format!("\"{}\"", bytes.escape_ascii())
}

/// At most 300 bytes of `bytes`, escaped, and how long the whole is.
pub fn escape_bounded(bytes: &[u8]) -> String {
    if bytes.len() <= 300 {
        escape(bytes)
    } else {
        format!("{}… ({} bytes)", escape(&bytes[..300]), bytes.len())
    }
}

/// Decodes cases of one format and checks them.
pub struct Checker {
    format: Format,
    max_record_bytes: usize,
    plain: RecordDecoder,
    canonical_csv: RecordDecoder,
    canonical_json: RecordDecoder,
    line: String,
}

impl Checker {
    pub fn new(format: Format, max_record_bytes: usize) -> Self {
        Checker {
            format,
            max_record_bytes,
            plain: RecordDecoder::new(format, max_record_bytes),
            canonical_csv: RecordDecoder::new(Format::Csv, usize::MAX),
            canonical_json: RecordDecoder::new(Format::Jsonl, usize::MAX),
            line: String::new(),
        }
    }

    /// Decodes `case` and checks every invariant.
    pub fn check(&mut self, case: &Case) -> Outcome {
        let result = catch_unwind(AssertUnwindSafe(|| self.check_inner(case)));
        let failed = |kind, message: String| {
            Outcome::Failed(Box::new(Finding {
                case: case.index,
                kind,
                message,
                header: case.header.clone(),
                record: case.record.clone(),
            }))
        };
        match result {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(message)) => failed(FindingKind::Wrong, message),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic without a message".into());
                failed(FindingKind::Panic, format!("panicked: {message}"))
            }
        }
    }

    fn check_inner(&mut self, case: &Case) -> Result<Outcome, String> {
        let with_header;
        let decoder = match &case.header {
            Some(h) => match RecordDecoder::for_file(self.format, h, self.max_record_bytes) {
                Ok((d, _)) => {
                    with_header = d;
                    &with_header
                }
                Err(e) => {
                    check_detail(&e.detail)?;
                    return Ok(Outcome::HeaderRefused);
                }
            },
            None => &self.plain,
        };
        if self.format == Format::Suricata {
            // The hand-written EVE read must agree with serde wherever it answers.
            if let Ok(line) = std::str::from_utf8(&case.record) {
                for device in [EveDevice::Source, EveDevice::Field("host".into())] {
                    crate::decode::suricata::check_fast_parse(line, &device)?;
                }
            }
        }
        let decoded = decoder.decode(&case.record);
        if let Some((peek, once)) = decoder.peek_decode(&case.record) {
            // One read for both answers must give the two answers.
            if peek != decoder.peek(&case.record) {
                return Err(format!(
                    "peek_decode peeks {peek:?}, peek gives {:?}",
                    decoder.peek(&case.record)
                ));
            }
            let same = match (&once, &decoded) {
                (Ok(a), Ok(b)) => same_event(a, b),
                (Err(a), Err(b)) => a.reason == b.reason && a.detail == b.detail,
                _ => false,
            };
            if !same {
                return Err(format!("peek_decode decodes {once:?}, decode gives {decoded:?}"));
            }
        }
        let ts = decoder.peek_ts(&case.record);
        let device = decoder.peek_device(&case.record);
        match (decoded, &case.expected) {
            (Err(e), Some(want)) => Err(format!(
                "a valid record was rejected ({}: {}); it holds {want:?}",
                e.reason, e.detail
            )),
            (Err(e), None) => {
                check_detail(&e.detail)?;
                Ok(Outcome::Rejected(e.reason))
            }
            (Ok(event), expected) => {
                if let Some(want) = expected {
                    if !same_event(&event, want) {
                        return Err(format!("decoded to {event:?}, drawn as {want:?}"));
                    }
                }
                check_event(&event)?;
                if ts != Some(event.ts_ms) {
                    return Err(format!("peek_ts gives {ts:?}, the event's time is {}", event.ts_ms));
                }
                if device.as_deref() != Some(event.device.as_str()) {
                    return Err(format!(
                        "peek_device gives {device:?}, the event's device is {:?}",
                        event.device
                    ));
                }
                self.round_trips(&event)?;
                Ok(Outcome::Accepted)
            }
        }
    }

    /// The event through canonical JSON and canonical CSV, and back.
    fn round_trips(&mut self, event: &Event) -> Result<(), String> {
        let json = event.to_json().to_string();
        match self.canonical_json.decode(json.as_bytes()) {
            Ok(back) if same_event(&back, event) => {}
            Ok(back) => return Err(format!("through JSON {json} it became {back:?}")),
            Err(e) => {
                return Err(format!(
                    "its canonical JSON {json} is rejected: {}: {}",
                    e.reason, e.detail
                ))
            }
        }
        self.line.clear();
        event.write_csv(&mut self.line);
        match self.canonical_csv.decode(self.line.as_bytes()) {
            Ok(back) if same_event(&back, event) => Ok(()),
            Ok(back) => Err(format!("through CSV {:?} it became {back:?}", self.line)),
            Err(e) => Err(format!(
                "its canonical CSV {:?} is rejected: {}: {}",
                self.line, e.reason, e.detail
            )),
        }
    }
}

fn check_detail(detail: &str) -> Result<(), String> {
    if detail.is_empty() {
        return Err("a rejection without a detail".into());
    }
    if detail.len() > MAX_DETAIL_BYTES {
        return Err(format!("a rejection detail of {} bytes", detail.len()));
    }
    Ok(())
}

fn check_event(e: &Event) -> Result<(), String> {
    let d = e.device.as_str();
    if d.is_empty() || d.trim() != d || d.len() > 256 {
        return Err(format!(
            "accepted device name {d:?} (must be non-empty, trimmed, at most 256 bytes)"
        ));
    }
    if !(MIN_TS_MS..MAX_TS_MS).contains(&e.ts_ms) {
        return Err(format!("accepted time {} ms is out of range", e.ts_ms));
    }
    Ok(())
}

/// Field-by-field equality, with NaN equal to NaN (a reading of NaN is evidence, kept).
pub fn same_event(a: &Event, b: &Event) -> bool {
    let value_eq = match (a.value, b.value) {
        (None, None) => true,
        (Some(x), Some(y)) => x == y || (x.is_nan() && y.is_nan()),
        _ => false,
    };
    value_eq
        && a.ts_ms == b.ts_ms
        && a.device == b.device
        && a.src_ip == b.src_ip
        && a.dst_ip == b.dst_ip
        && a.dst_port == b.dst_port
        && a.protocol == b.protocol
        && a.bytes_out == b.bytes_out
        && a.bytes_in == b.bytes_in
        && a.packets == b.packets
        && a.duration_ms == b.duration_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(record: &str, expected: Option<Event>) -> Case {
        Case {
            index: 7,
            header: None,
            record: record.as_bytes().to_vec(),
            expected,
        }
    }

    #[test]
    fn a_valid_record_decoded_otherwise_is_a_finding() {
        let mut checker = Checker::new(Format::Csv, 65_536);
        let line = "1767225600000,vm-1,10.0.0.1,8.8.8.8,53,udp,1,2,3,4,0.5";
        let mut want = RecordDecoder::new(Format::Csv, 65_536).decode(line.as_bytes()).unwrap();
        assert!(matches!(
            checker.check(&case(line, Some(want.clone()))),
            Outcome::Accepted
        ));
        want.bytes_out = 2;
        match checker.check(&case(line, Some(want))) {
            Outcome::Failed(f) => {
                assert_eq!(f.kind, FindingKind::Wrong);
                assert!(f.message.contains("drawn as"), "{}", f.message);
            }
            other => panic!("expected a finding, got {other:?}"),
        }
    }

    #[test]
    fn rejections_are_counted_by_reason() {
        let mut checker = Checker::new(Format::Jsonl, 65_536);
        assert!(matches!(
            checker.check(&case("{\"ts\":1}", None)),
            Outcome::Rejected(RejectReason::TimeOutOfRange)
        ));
        assert!(matches!(
            checker.check(&case("[", None)),
            Outcome::Rejected(RejectReason::Malformed)
        ));
    }

    #[test]
    fn same_event_treats_nan_as_equal_and_none_apart() {
        let line = "1767225600000,vm-1,,,0,,0,0,0,0,NaN";
        let a = RecordDecoder::new(Format::Csv, 100).decode(line.as_bytes()).unwrap();
        let mut b = a.clone();
        assert!(same_event(&a, &b));
        b.value = None;
        assert!(!same_event(&a, &b));
    }
}
