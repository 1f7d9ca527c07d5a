//! Rejected records: why a record was not accepted, and where it came from.
//!
//! Invariant: every record read is either accepted as an event or becomes exactly one
//! [`Reject`]; reasons are a closed set with stable snake_case names (they are metric labels
//! and the `reason` field of `rejects.jsonl`).

use serde::{Deserialize, Serialize};

/// Why a record was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// The record does not have the shape of its format (field count, JSON syntax).
    Malformed,
    /// A required field (`ts`, `device_id`) is absent or empty.
    MissingField,
    /// A numeric field holds something that is not a number.
    BadNumber,
    /// An address field is not an IP address.
    BadIp,
    /// The timestamp is neither epoch milliseconds nor RFC 3339.
    BadTimestamp,
    /// A counter (bytes, packets, duration) is negative.
    NegativeValue,
    /// A counter is beyond its plausible range (`event::MAX_BYTES`, ...); the detail names
    /// the field and the bound.
    TooLarge,
    /// The timestamp lies before 2000-01-01 or from 2100-01-01 on.
    TimeOutOfRange,
    /// The destination port is not in 0..=65535.
    BadPort,
    /// The record is not valid UTF-8.
    Encoding,
    /// The record is longer than `input.max_record_bytes`.
    TooLong,
    /// The record is older than the watermark (highest time seen minus the allowed lateness).
    Late,
    /// The record is dated further ahead of its partition's recent progress than
    /// `time.max_ahead` (or, following live Kafka, of the wall clock): it would have moved the
    /// watermark far ahead (see `docs/semantics.md`).
    TooFarAhead,
}

impl RejectReason {
    pub const ALL: [RejectReason; 13] = [
        RejectReason::Malformed,
        RejectReason::MissingField,
        RejectReason::BadNumber,
        RejectReason::BadIp,
        RejectReason::BadTimestamp,
        RejectReason::NegativeValue,
        RejectReason::TooLarge,
        RejectReason::TimeOutOfRange,
        RejectReason::BadPort,
        RejectReason::Encoding,
        RejectReason::TooLong,
        RejectReason::Late,
        RejectReason::TooFarAhead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::Malformed => "malformed",
            RejectReason::MissingField => "missing_field",
            RejectReason::BadNumber => "bad_number",
            RejectReason::BadIp => "bad_ip",
            RejectReason::BadTimestamp => "bad_timestamp",
            RejectReason::NegativeValue => "negative_value",
            RejectReason::TooLarge => "too_large",
            RejectReason::TimeOutOfRange => "time_out_of_range",
            RejectReason::BadPort => "bad_port",
            RejectReason::Encoding => "encoding",
            RejectReason::TooLong => "too_long",
            RejectReason::Late => "late",
            RejectReason::TooFarAhead => "too_far_ahead",
        }
    }

    pub fn index(self) -> usize {
        RejectReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

impl std::fmt::Display for RejectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoding or validation failure: the reason and a human detail naming the field.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct DecodeError {
    pub reason: RejectReason,
    pub detail: String,
}

impl DecodeError {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        DecodeError {
            reason,
            detail: detail.into(),
        }
    }
}

/// One line of `rejects.jsonl`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Reject {
    /// File path, `stdin`, or `kafka:topic/partition`.
    pub source: String,
    /// 1-based line number in a file, or the offset in a Kafka partition.
    pub line: u64,
    pub reason: RejectReason,
    pub detail: String,
    /// The record's text, cut to `output.reject_raw_bytes` (lossy UTF-8).
    pub raw: String,
}

impl Reject {
    pub fn new(source: &str, line: u64, error: DecodeError, raw: &[u8], raw_limit: usize) -> Self {
        let cut = &raw[..raw.len().min(raw_limit)];
        Reject {
            source: source.to_string(),
            line,
            reason: error.reason,
            detail: error.detail,
            raw: String::from_utf8_lossy(cut).into_owned(),
        }
    }
}
