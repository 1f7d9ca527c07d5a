//! One Kafka partition as a source partition: its own [`Decider`] (watermark and lateness,
//! `docs/semantics.md`), its read position, its bounded end, its idleness and the marks that
//! decide which offsets may be committed.
//!
//! Invariants: records are decided in offset order, each exactly once per run; no event
//! leaves a partition below `floor` (the tick the worker's input has already reached): a
//! record that would (possible only after an idle partition resumed, or for a partition
//! picked up late) is treated as late — rejected with reason `late`, or with
//! `late_policy = "correct"` applied at `floor` and counted as corrected.

use std::sync::Arc;
use std::time::Instant;

use super::resume::Marks;
use crate::config::{Config, LatePolicy};
use crate::decode::{DecodeError, Format, RecordDecoder, Reject, RejectReason};
use crate::source::{Decider, InputBatch};

/// Decoders for message payloads: one format, or detected per message (`auto`).
#[derive(Clone, Debug)]
pub struct Decoders {
    fixed: Option<RecordDecoder>,
    csv: RecordDecoder,
    jsonl: RecordDecoder,
    zeek: RecordDecoder,
}

impl Decoders {
    /// Each message is one record; CSV messages are in the canonical column order.
    pub fn new(format: Option<Format>, max_record_bytes: usize) -> Self {
        Decoders {
            fixed: format.map(|f| RecordDecoder::new(f, max_record_bytes)),
            csv: RecordDecoder::new(Format::Csv, max_record_bytes),
            jsonl: RecordDecoder::new(Format::Jsonl, max_record_bytes),
            zeek: RecordDecoder::new(Format::Zeek, max_record_bytes),
        }
    }

    pub fn for_payload(&self, payload: &[u8]) -> &RecordDecoder {
        if let Some(d) = &self.fixed {
            return d;
        }
        match Format::detect(None, payload) {
            Format::Csv => &self.csv,
            Format::Jsonl => &self.jsonl,
            Format::Zeek => &self.zeek,
        }
    }
}

/// The state of one assigned partition.
#[derive(Debug)]
pub struct PartitionState {
    pub topic: Arc<str>,
    pub partition: i32,
    /// `kafka:<topic>/<partition>`: the `source` of its rejects.
    pub source: String,
    decider: Decider,
    /// Next offset to read.
    pub next: i64,
    /// Bounded runs: the end offset present at start (exclusive).
    pub end: Option<i64>,
    pub marks: Marks,
    /// Last wall-clock time a record arrived (or the partition was assigned).
    pub last_activity: Instant,
    /// The offset last committed (None: not yet this run).
    pub committed: Option<i64>,
    policy: LatePolicy,
    raw_limit: usize,
}

impl PartitionState {
    pub fn new(config: &Config, topic: Arc<str>, partition: i32, start: i64, end: Option<i64>) -> Self {
        PartitionState {
            source: format!("kafka:{topic}/{partition}"),
            topic,
            partition,
            decider: Decider::new(config),
            next: start,
            end,
            marks: Marks::default(),
            last_activity: Instant::now(),
            committed: None,
            policy: config.time.late_policy,
            raw_limit: config.output.reject_raw_bytes,
        }
    }

    /// Whether a bounded partition has been read to its end.
    pub fn exhausted(&self) -> bool {
        self.end.is_some_and(|e| self.next >= e)
    }

    /// Whether a record at `offset` is beyond a bounded partition's end.
    pub fn beyond_end(&self, offset: i64) -> bool {
        self.end.is_some_and(|e| offset >= e)
    }

    /// The partition's watermark tick (None: no timestamp seen yet).
    pub fn watermark(&self) -> Option<u64> {
        self.decider.watermark.tick()
    }

    /// The tick of the highest timestamp seen.
    pub fn end_tick(&self) -> Option<u64> {
        self.decider.watermark.end_tick()
    }

    /// Decides the record at `offset` into `batch`, never below `floor`.
    pub fn record(&mut self, offset: i64, payload: &[u8], decoders: &Decoders, floor: u64, batch: &mut InputBatch) {
        let decoder = decoders.for_payload(payload);
        let first_event = batch.events.len();
        self.decider
            .decide(&self.source, offset as u64, payload, decoder, true, batch);
        // Only the record just decided can be below the floor (at most one event).
        if batch.events.len() > first_event {
            if let Some((tick, _)) = batch.events.last_mut() {
                if *tick < floor {
                    match self.policy {
                        LatePolicy::Correct => {
                            *tick = floor;
                            batch.corrected += 1;
                        }
                        LatePolicy::Reject => {
                            let (tick, event) = batch.events.pop().expect("just checked");
                            batch.accepted -= 1;
                            let e = DecodeError::new(
                                RejectReason::Late,
                                format!(
                                    "ts {} (tick {tick}) is below the frontier already reached (tick {floor}): its partition was idle or picked up late",
                                    event.ts_ms
                                ),
                            );
                            batch
                                .rejects
                                .push(Reject::new(&self.source, offset as u64, e, payload, self.raw_limit));
                        }
                    }
                }
            }
        }
        self.next = offset + 1;
        self.last_activity = Instant::now();
        self.marks.note(offset, self.end_tick().unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_turns_records_late() {
        let config = Config::from_toml("").unwrap();
        let decoders = Decoders::new(None, 1024);
        let mut p = PartitionState::new(&config, "t".into(), 0, 0, Some(3));
        let mut batch = InputBatch::default();
        let ts = 1_699_999_200_000i64;
        p.record(
            0,
            format!("{ts},dev-1,10.0.0.1,8.8.8.8,443,tcp,1,2,3,4,").as_bytes(),
            &decoders,
            0,
            &mut batch,
        );
        assert_eq!(batch.events.len(), 1);
        // Floor above the record's tick: late.
        let floor = (ts / 1000) as u64 + 10;
        p.record(
            1,
            format!("{},dev-1,10.0.0.1,8.8.8.8,443,tcp,1,2,3,4,", ts + 1000).as_bytes(),
            &decoders,
            floor,
            &mut batch,
        );
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.rejects.len(), 1);
        assert_eq!(batch.rejects[0].reason, RejectReason::Late);
        assert_eq!(batch.rejects[0].source, "kafka:t/0");
        assert_eq!(batch.rejects[0].line, 1);
        assert_eq!(batch.read, 2);
        assert_eq!(batch.accepted, 1);
        assert!(!p.exhausted());
        p.record(2, b"{\"ts\":\"garbage\"}", &decoders, 0, &mut batch);
        assert_eq!(batch.rejects.len(), 2);
        assert!(p.exhausted());
        assert!(p.beyond_end(3));
        assert_eq!(p.end_tick(), Some((ts / 1000) as u64 + 1));
    }
}
