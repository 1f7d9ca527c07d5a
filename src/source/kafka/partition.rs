//! One Kafka partition as a source partition: its own [`Decider`] (watermark and lateness,
//! `docs/semantics.md`), its read position, its bounded end, its idleness and the marks that
//! decide which offsets may be committed.
//!
//! Invariants: records are decided in offset order, each exactly once per run; no event
//! leaves a partition below `floor` (the tick the worker's input has already reached): a
//! record that would (possible only after an idle partition resumed, or for a partition
//! picked up late) is treated as late — rejected with reason `late`, or with
//! `late_policy = "correct"` applied at `floor` and counted as corrected. The records a
//! warming-up partition holds ([`Decider`]) are not committed past, and are decided when the
//! partition ends or idles if not before.

use std::sync::Arc;
use std::time::Instant;

use super::resume::Marks;
use crate::config::Config;
use crate::decode::{DecodeOptions, Format, RecordDecoder};
use crate::source::{Decider, InputBatch};

/// Decoders for message payloads: one format, or detected per message (`auto`).
#[derive(Clone, Debug)]
pub struct Decoders {
    fixed: Option<RecordDecoder>,
    csv: RecordDecoder,
    jsonl: RecordDecoder,
    zeek: RecordDecoder,
    suricata: RecordDecoder,
}

impl Decoders {
    /// Each message is one record; CSV messages are in the canonical column order, Zeek TSV
    /// messages in Zeek's default `conn.log` columns until a `#fields` message re-binds them
    /// (per partition).
    pub fn new(format: Option<Format>, options: &DecodeOptions) -> Self {
        let make = |f| RecordDecoder::with_options(f, options);
        Decoders {
            fixed: format.map(make),
            csv: make(Format::Csv),
            jsonl: make(Format::Jsonl),
            zeek: make(Format::Zeek),
            suricata: make(Format::Suricata),
        }
    }

    pub fn for_payload(&self, payload: &[u8]) -> &RecordDecoder {
        if let Some(d) = &self.fixed {
            return d;
        }
        match Format::detect(None, payload) {
            // Zeek TSV needs `--format zeek-tsv`: detected per message, a stray `#fields`
            // line in a CSV stream would be taken for a header and not counted; as CSV it is
            // a record, rejected with its reason.
            Format::Csv | Format::ZeekTsv => &self.csv,
            Format::Jsonl => &self.jsonl,
            Format::Zeek => &self.zeek,
            Format::Suricata => &self.suricata,
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
    /// Zeek TSV: this partition's decoder, bound by the `#` header messages read so far.
    tsv: Option<RecordDecoder>,
}

impl PartitionState {
    /// A partition read from `start` (to `end`, bounded); a live one (`end` None) also bounds
    /// records by the wall clock (`time.max_ahead`).
    pub fn new(config: &Config, topic: Arc<str>, partition: i32, start: i64, end: Option<i64>) -> Self {
        PartitionState {
            source: format!("kafka:{topic}/{partition}"),
            topic,
            partition,
            decider: Decider::with_wall_clock(config, end.is_none()),
            next: start,
            end,
            marks: Marks::default(),
            last_activity: Instant::now(),
            committed: None,
            tsv: None,
        }
    }

    /// Decides the records held while the partition warms up (it ended, idles or stops).
    pub fn flush(&mut self, floor: u64, batch: &mut InputBatch) {
        if let Some(first) = self.decider.first_held() {
            self.decider.set_floor(floor);
            self.decider.flush(batch);
            self.marks.note(first as i64, self.end_tick().unwrap_or(0));
        }
    }

    /// The offset to commit at most: the first record still held undecided, else `offset`.
    pub fn commit_limit(&self, offset: i64) -> i64 {
        self.decider.first_held().map_or(offset, |held| offset.min(held as i64))
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

    /// Decides the record at `offset` into `batch`, never below `floor`; `now` is when the
    /// batch of records it came with was polled (the partition's last activity).
    pub fn record(
        &mut self,
        offset: i64,
        payload: &[u8],
        decoders: &Decoders,
        floor: u64,
        batch: &mut InputBatch,
        now: Instant,
    ) {
        let mut decoder = decoders.for_payload(payload);
        if decoder.format() == Format::ZeekTsv {
            let tsv = self.tsv.get_or_insert_with(|| decoder.clone());
            // A header message is not a record (one that cannot be used is rejected below).
            if tsv.is_header(payload) && tsv.header(payload).is_ok() {
                self.next = offset + 1;
                self.last_activity = now;
                if self.decider.first_held().is_none() {
                    self.marks.note(offset, self.end_tick().unwrap_or(0));
                }
                return;
            }
            decoder = tsv;
        }
        self.decider.set_floor(floor);
        let held_from = self.decider.first_held();
        self.decider
            .decide(&self.source, offset as u64, payload, decoder, true, batch);
        self.next = offset + 1;
        self.last_activity = now;
        // Records held while warming up are retained from the first of them, with the tick
        // the partition reached once they were decided.
        if self.decider.first_held().is_none() {
            let from = held_from.map_or(offset, |first| first as i64);
            self.marks.note(from, self.end_tick().unwrap_or(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decode::RejectReason;

    fn line(ts: i64) -> Vec<u8> {
        format!("{ts},dev-1,10.0.0.1,8.8.8.8,443,tcp,1,2,3,4,").into_bytes()
    }

    #[test]
    fn a_warming_up_partition_holds_its_first_records_and_is_not_committed_past() {
        let config = Config::from_toml("").unwrap();
        let decoders = Decoders::new(None, &DecodeOptions::new(1024));
        let mut p = PartitionState::new(&config, "t".into(), 0, 10, None);
        let mut batch = InputBatch::default();
        let ts = crate::source::ahead::wall_clock_ms() - 600_000;
        // A live partition: a record far ahead of the wall clock is rejected at once...
        p.record(
            10,
            &line(crate::source::ahead::wall_clock_ms() + 7_200_000),
            &decoders,
            0,
            &mut batch,
            Instant::now(),
        );
        assert_eq!(p.commit_limit(100), 10, "held records are not committed past");
        for (i, offset) in (11..14).enumerate() {
            p.record(offset, &line(ts + i as i64), &decoders, 0, &mut batch, Instant::now());
        }
        assert!(batch.events.is_empty() && batch.rejects.is_empty());
        p.record(14, &line(ts + 3), &decoders, 0, &mut batch, Instant::now());
        // ...once five are in, all are decided: four accepted, the one far ahead rejected.
        assert_eq!((batch.read, batch.accepted), (5, 4));
        assert_eq!(batch.rejects.len(), 1);
        assert_eq!(batch.rejects[0].reason, RejectReason::TooFarAhead);
        assert_eq!(batch.rejects[0].line, 10);
        assert!(
            batch.rejects[0].detail.contains("ahead of the wall clock"),
            "{}",
            batch.rejects[0].detail
        );
        assert_eq!(p.commit_limit(100), 100);
        // Retained from the first held record.
        assert_eq!(p.marks.commit_offset(0, 0, 15), 10);
        // A partition that ends (or idles) before five records decides what it holds.
        let mut q = PartitionState::new(&config, "t".into(), 1, 0, Some(2));
        q.record(0, &line(ts), &decoders, 0, &mut batch, Instant::now());
        assert_eq!(batch.read, 5);
        q.flush(0, &mut batch);
        assert_eq!((batch.read, batch.accepted), (6, 5));
        assert_eq!(q.commit_limit(7), 7);
    }

    #[test]
    fn floor_turns_records_late() {
        let config = Config::from_toml("[time]\nmax_ahead = \"0s\"\n").unwrap();
        let decoders = Decoders::new(None, &DecodeOptions::new(1024));
        let mut p = PartitionState::new(&config, "t".into(), 0, 0, Some(3));
        let mut batch = InputBatch::default();
        let ts = 1_699_999_200_000i64;
        p.record(
            0,
            format!("{ts},dev-1,10.0.0.1,8.8.8.8,443,tcp,1,2,3,4,").as_bytes(),
            &decoders,
            0,
            &mut batch,
            Instant::now(),
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
            Instant::now(),
        );
        assert_eq!(batch.events.len(), 1);
        assert_eq!(batch.rejects.len(), 1);
        assert_eq!(batch.rejects[0].reason, RejectReason::Late);
        assert_eq!(batch.rejects[0].source, "kafka:t/0");
        assert_eq!(batch.rejects[0].line, 1);
        assert_eq!(batch.read, 2);
        assert_eq!(batch.accepted, 1);
        assert!(!p.exhausted());
        p.record(2, b"{\"ts\":\"garbage\"}", &decoders, 0, &mut batch, Instant::now());
        assert_eq!(batch.rejects.len(), 2);
        assert!(p.exhausted());
        assert!(p.beyond_end(3));
        assert_eq!(p.end_tick(), Some((ts / 1000) as u64 + 1));
    }
}
