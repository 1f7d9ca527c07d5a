//! Sources of records, and what every source shares: how a record is decided (accepted at
//! a tick, accepted as a late correction, or rejected) and the [`WorkerInput`] interface the
//! pipeline drives.
//!
//! Invariant: a record is decided by exactly one worker (its owner) with the watermark of
//! its source partition as it stood *before* the record; the watermark then observes the
//! record's timestamp whoever owns it (see `docs/semantics.md`).

pub mod file;
pub mod file_input;
pub mod kafka;
pub mod watermark;

use crate::decode::{DecodeError, RecordDecoder, Reject, RejectReason};
use crate::event::{DeviceId, Event};
use watermark::{Timeliness, Watermark};

/// A problem with an input as a whole (not a single record).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("input {path}: {message}")]
    Input { path: String, message: String },
    #[error("input {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}")]
    Kafka(String),
}

/// What a poll found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Records were read; more may follow at once.
    More,
    /// Nothing right now (an unbounded source waiting for data).
    Idle,
    /// The input is finished (bounded sources, files).
    Exhausted,
}

/// The records of one poll, decided.
#[derive(Debug, Default)]
pub struct InputBatch {
    /// Accepted events with the tick they land at.
    pub events: Vec<(u64, Event)>,
    pub rejects: Vec<Reject>,
    /// Rejected records whose device could be read, at the tick they belong to (the
    /// corruption detector counts them).
    pub reject_devices: Vec<(u64, DeviceId)>,
    pub read: u64,
    pub accepted: u64,
    pub corrected: u64,
}

/// What one worker feeds into the dataflow.
pub trait WorkerInput {
    /// Reads and decides up to `max` records into `batch`.
    fn poll(&mut self, max: usize, batch: &mut InputBatch) -> Result<Poll, SourceError>;
    /// No event this worker sends from now on lands below this tick (None: nothing seen yet).
    fn watermark(&self) -> Option<u64>;
    /// Once exhausted: the tick through which this worker's input is complete (`T_end`).
    fn end_tick(&self) -> Option<u64>;
    /// Every output up to (not including) tick `complete` has been written and flushed;
    /// sources that acknowledge (Kafka offsets) may do so now.
    fn commit(&mut self, _complete: u64) -> Result<(), SourceError> {
        Ok(())
    }
    /// Bytes read so far and the total when known, for progress.
    fn progress(&self) -> (u64, Option<u64>) {
        (0, None)
    }
}

/// Opens worker `index`'s share of an input.
pub fn open_input(
    spec: &file::InputSpec,
    format: Option<crate::decode::Format>,
    config: &crate::config::Config,
    index: usize,
    peers: usize,
) -> Result<Box<dyn WorkerInput>, SourceError> {
    if let file::InputSpec::Kafka(kafka) = spec {
        return Ok(Box::new(kafka::input::KafkaInput::open(
            kafka, format, config, index, peers,
        )?));
    }
    Ok(Box::new(file_input::FileInput::new(spec, format, config, index, peers)))
}

/// Decides records of one source partition against its watermark.
#[derive(Clone, Debug)]
pub struct Decider {
    pub watermark: Watermark,
    raw_limit: usize,
    lateness_ms: u64,
}

impl Decider {
    pub fn new(config: &crate::config::Config) -> Self {
        Decider {
            watermark: Watermark::new(config),
            raw_limit: config.output.reject_raw_bytes,
            lateness_ms: config.time.lateness.0,
        }
    }

    /// Decides one record (when `owned`) and lets the watermark observe it (always).
    pub fn decide(
        &mut self,
        source: &str,
        position: u64,
        bytes: &[u8],
        decoder: &RecordDecoder,
        owned: bool,
        batch: &mut InputBatch,
    ) {
        let peeked = decoder.peek_ts(bytes);
        if owned {
            batch.read += 1;
            match decoder.decode(bytes) {
                Err(e) => self.reject(source, position, bytes, decoder, peeked, e, batch),
                Ok(event) => match self.watermark.classify(event.ts_ms) {
                    Timeliness::OnTime(t) => {
                        batch.accepted += 1;
                        batch.events.push((t, event));
                    }
                    Timeliness::Corrected(t) => {
                        batch.accepted += 1;
                        batch.corrected += 1;
                        batch.events.push((t, event));
                    }
                    Timeliness::Late => {
                        let max = self.watermark.max_ts().unwrap_or(event.ts_ms);
                        let e = DecodeError::new(
                            RejectReason::Late,
                            format!(
                                "ts {} is {} ms behind the highest time seen ({max}); allowed lateness is {} ms",
                                event.ts_ms,
                                max - event.ts_ms,
                                self.lateness_ms
                            ),
                        );
                        batch
                            .rejects
                            .push(Reject::new(source, position, e, bytes, self.raw_limit));
                    }
                },
            }
        }
        if let Some(ts) = peeked {
            self.watermark.observe(ts);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reject(
        &self,
        source: &str,
        position: u64,
        bytes: &[u8],
        decoder: &RecordDecoder,
        peeked: Option<i64>,
        error: DecodeError,
        batch: &mut InputBatch,
    ) {
        // A rejected record still counts against its device when the device can be read and
        // the record is not late: at its own tick, else at the watermark.
        if let Some(device) = decoder.peek_device(bytes) {
            let tick = match peeked.map(|ts| self.watermark.classify(ts)) {
                Some(Timeliness::OnTime(t)) | Some(Timeliness::Corrected(t)) => Some(t),
                Some(Timeliness::Late) => None,
                None => self.watermark.tick(),
            };
            if let Some(t) = tick {
                batch.reject_devices.push((t, device));
            }
        }
        batch
            .rejects
            .push(Reject::new(source, position, error, bytes, self.raw_limit));
    }
}
