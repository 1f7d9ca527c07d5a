//! Sources of records, and what every source shares: how a record is decided (accepted at
//! a tick, accepted as a late correction, or rejected) and the [`WorkerInput`] interface the
//! pipeline drives.
//!
//! Invariant: a record is decided by exactly one worker (its owner) with the watermark of
//! its source partition as it stood *before* the record; the watermark then observes the
//! record's timestamp whoever owns it (see `docs/semantics.md`) — unless the record is too
//! far ahead of the partition's progress ([`ahead`]): then it is rejected and observed by
//! nothing but the guard's ring of recent times. The first [`ahead::WARM_UP`] records with a
//! timestamp of a partition are held and decided together ([`Decider::flush`] decides what
//! is held when a partition ends or idles first), and so are a record beyond the guard's
//! bound and the records after it.

pub mod ahead;
pub mod file;
pub mod file_input;
pub mod kafka;
pub mod watermark;

use crate::decode::{DecodeError, Peek, RecordDecoder, Reject, RejectReason, SKIP_KINDS};
use crate::event::{DeviceId, Event};
use ahead::AheadGuard;
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
    /// corruption detector counts them), and for a record too far ahead how far it was
    /// (ms, 0 for every other reject; the `clock_skew` detector reports them).
    pub reject_devices: Vec<(u64, DeviceId, u64)>,
    pub read: u64,
    pub accepted: u64,
    pub corrected: u64,
    /// Lines skipped (not records: Suricata event types other than flows), by kind
    /// ([`SKIP_KINDS`]); counted by the worker that owns the line.
    pub skipped: [u64; SKIP_KINDS.len()],
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

/// The decoder options of a config (`[input]`).
pub fn decode_options(config: &crate::config::Config) -> crate::decode::DecodeOptions {
    crate::decode::DecodeOptions {
        max_record_bytes: config.input.max_record_bytes,
        // Validated with the config; a bad value cannot reach here.
        eve_device: crate::decode::EveDevice::parse(&config.input.suricata_device).unwrap_or_default(),
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
    guard: AheadGuard,
    /// While the partition warms up: the records held, and how many have a timestamp.
    held: Option<(Vec<Held>, usize)>,
    raw_limit: usize,
    lateness_ms: u64,
    policy: crate::config::LatePolicy,
    /// No event leaves below this tick (the tick the worker's input already reached, for a
    /// Kafka partition that was idle or picked up late; 0 for files).
    floor: u64,
}

/// A record held while its partition warms up.
#[derive(Clone, Debug)]
struct Held {
    source: String,
    position: u64,
    bytes: Vec<u8>,
    decoder: RecordDecoder,
    owned: bool,
    peeked: Option<i64>,
}

impl Decider {
    /// A decider for a file partition or a bounded Kafka partition.
    pub fn new(config: &crate::config::Config) -> Self {
        Self::with_wall_clock(config, false)
    }

    /// `wall_clock`: also reject records too far ahead of the wall clock (live Kafka).
    pub fn with_wall_clock(config: &crate::config::Config, wall_clock: bool) -> Self {
        let guard = AheadGuard::new(config.time.max_ahead.0, wall_clock);
        Decider {
            watermark: Watermark::new(config),
            held: guard.enabled().then(|| (Vec::new(), 0)),
            guard,
            raw_limit: config.output.reject_raw_bytes,
            lateness_ms: config.time.lateness.0,
            policy: config.time.late_policy,
            floor: 0,
        }
    }

    /// From now on no event leaves below `floor`: an event that would is late (rejected with
    /// reason `late`, or with `late_policy = "correct"` applied at `floor`).
    pub fn set_floor(&mut self, floor: u64) {
        self.floor = self.floor.max(floor);
    }

    /// The position of the first record held undecided (a Kafka offset not to commit past).
    pub fn first_held(&self) -> Option<u64> {
        self.held.as_ref().and_then(|(h, _)| h.first()).map(|h| h.position)
    }

    /// Decides one record (when `owned`) and lets the watermark observe it (always). While
    /// the partition warms up the record is held, and decided with the others held once
    /// [`ahead::WARM_UP`] of them have a timestamp.
    pub fn decide(
        &mut self,
        source: &str,
        position: u64,
        bytes: &[u8],
        decoder: &RecordDecoder,
        owned: bool,
        batch: &mut InputBatch,
    ) {
        // The record's owner reads it once when the format allows (see `peek_decode`).
        let (peek, mut decoded) = match owned && self.held.is_none() {
            true => match decoder.peek_decode(bytes) {
                Some((peek, decoded)) => (peek, Some(decoded)),
                None => (decoder.peek(bytes), None),
            },
            false => (decoder.peek(bytes), None),
        };
        let peeked = match peek {
            Peek::Record(ts) => ts,
            // Not a record: neither decided nor observed by the watermark.
            Peek::Skip(kind) => {
                if owned {
                    batch.skipped[kind] += 1;
                }
                return;
            }
        };
        // A record beyond the bound is held with the records after it, as at the start of a
        // partition, until enough are in to tell the whole stream jumping ahead (data resuming
        // after a gap: accepted) from one record dated ahead (rejected); see `ahead`.
        if self.held.is_none() && peeked.is_some_and(|ts| self.guard.check(ts, self.watermark.max_ts()).is_some()) {
            self.held = Some((Vec::new(), 0));
            decoded = None;
        }
        if let Some((held, with_ts)) = &mut self.held {
            held.push(Held {
                source: source.to_string(),
                position,
                bytes: bytes.to_vec(),
                decoder: decoder.clone(),
                owned,
                peeked,
            });
            *with_ts += usize::from(peeked.is_some());
            if *with_ts >= ahead::WARM_UP {
                self.flush(batch);
            }
            return;
        }
        self.decide_now(
            source,
            position,
            bytes,
            decoder,
            owned,
            peeked,
            true,
            decoded.take(),
            batch,
        );
    }

    /// Decides every record held while warming up (the partition ended or went idle, or
    /// enough records came): their timestamps are the recent progress they are measured by.
    pub fn flush(&mut self, batch: &mut InputBatch) {
        let Some((held, _)) = self.held.take() else { return };
        for h in &held {
            if let Some(ts) = h.peeked {
                self.guard.note(ts);
            }
        }
        for h in held {
            self.decide_now(
                &h.source, h.position, &h.bytes, &h.decoder, h.owned, h.peeked, false, None, batch,
            );
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn decide_now(
        &mut self,
        source: &str,
        position: u64,
        bytes: &[u8],
        decoder: &RecordDecoder,
        owned: bool,
        peeked: Option<i64>,
        note: bool,
        decoded: Option<Result<Event, DecodeError>>,
        batch: &mut InputBatch,
    ) {
        let ahead = peeked.and_then(|ts| self.guard.check(ts, self.watermark.max_ts()));
        if owned {
            batch.read += 1;
            match decoded.unwrap_or_else(|| decoder.decode(bytes)) {
                // A record far ahead counts against its device at the partition's progress.
                Err(e) if ahead.is_some() => self.reject(source, position, bytes, decoder, None, e, batch),
                Err(e) => self.reject(source, position, bytes, decoder, peeked, e, batch),
                Ok(event) if ahead.is_some() => {
                    let why = ahead.expect("checked");
                    let e = DecodeError::new(RejectReason::TooFarAhead, why.detail(event.ts_ms));
                    let (reference, _) = why.reference();
                    let by = (event.ts_ms - reference).max(1) as u64;
                    // Reported at the partition's progress (never at its own, far tick).
                    let tick = self
                        .watermark
                        .tick()
                        .unwrap_or_else(|| self.watermark.tick_of(reference.min(event.ts_ms)))
                        .max(self.floor);
                    batch.reject_devices.push((tick, event.device.clone(), by));
                    batch
                        .rejects
                        .push(Reject::new(source, position, e, bytes, self.raw_limit));
                }
                Ok(event) => match self.watermark.classify(event.ts_ms) {
                    Timeliness::OnTime(t) if t >= self.floor => {
                        batch.accepted += 1;
                        batch.events.push((t, event));
                    }
                    Timeliness::Corrected(t) if t >= self.floor => {
                        batch.accepted += 1;
                        batch.corrected += 1;
                        batch.events.push((t, event));
                    }
                    Timeliness::OnTime(t) | Timeliness::Corrected(t) => match self.policy {
                        crate::config::LatePolicy::Correct => {
                            batch.accepted += 1;
                            batch.corrected += 1;
                            batch.events.push((self.floor, event));
                        }
                        crate::config::LatePolicy::Reject => {
                            let e = DecodeError::new(
                                RejectReason::Late,
                                format!(
                                    "ts {} (tick {t}) is below the frontier already reached (tick {}): its partition was idle or picked up late",
                                    event.ts_ms, self.floor
                                ),
                            );
                            batch
                                .rejects
                                .push(Reject::new(source, position, e, bytes, self.raw_limit));
                        }
                    },
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
            if note {
                self.guard.note(ts);
            }
            if ahead.is_none() {
                self.watermark.observe(ts);
            }
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
                batch.reject_devices.push((t.max(self.floor), device, 0));
            }
        }
        batch
            .rejects
            .push(Reject::new(source, position, error, bytes, self.raw_limit));
    }
}
