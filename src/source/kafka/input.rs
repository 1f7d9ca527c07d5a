//! [`WorkerInput`] over Kafka: one `BaseConsumer` per worker with a manual assignment.
//!
//! Invariants:
//! - partition `p` of the `i`-th input topic belongs to worker `(p + i) % workers` (for one
//!   topic: `p % workers`), so each partition has exactly one reader and its records are
//!   decided in offset order by its own [`PartitionState`];
//! - the worker's watermark is the minimum over its *live* partitions (assigned, not
//!   exhausted, not idle longer than `time.idle_timeout`); a live partition that has not seen
//!   a timestamp yet holds it. A worker with no live partition *follows*: it reports the
//!   lowest watermark of the workers that hold the frontier (read from [`KafkaShared`]), so it
//!   never holds others back and never runs ahead of them. Reported watermarks never
//!   decrease (the *floor*); no event is sent below the floor;
//! - a bounded run reads every partition up to the end offset present at start; a worker
//!   whose partitions are all read follows, and every worker reports `Exhausted` once every
//!   worker is done (a stop request makes every worker done at once);
//! - offsets are committed only after this worker's sink awaited delivery and only up to
//!   what [`super::resume::Marks`] allows for the tick below which every worker delivered.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use super::client::{self, KafkaError, IDLE_POLL};
use super::partition::{Decoders, PartitionState};
use super::resume::CommitMeta;
use super::shared::{KafkaShared, Resume, FOLLOWER};
use super::KafkaSpec;
use crate::config::{Config, StartPosition};
use crate::decode::Format;
use crate::source::{InputBatch, Poll, SourceError, WorkerInput};

/// How long a final commit waits for the other workers to flush.
const FINAL_WAIT: Duration = Duration::from_secs(60);

/// One worker's share of the input topics.
pub struct KafkaInput {
    consumer: BaseConsumer,
    /// Consumer errors (a broker away): logged at most once per interval.
    errors: ErrorLog,
    config: Config,
    topics: Vec<String>,
    bounded: bool,
    shared: Arc<KafkaShared>,
    index: usize,
    peers: usize,
    decoders: Decoders,
    parts: Vec<PartitionState>,
    lookup: HashMap<(usize, i32), usize>,
    floor: Option<u64>,
    /// Watermark computed by the last poll (what `watermark()` reports).
    reported: Option<u64>,
    done: bool,
    horizon: u64,
    last_complete: u64,
    commit_pending: bool,
    last_commit: Instant,
    last_refresh: Instant,
    bytes: u64,
}

fn source_err(e: KafkaError) -> SourceError {
    SourceError::Kafka(e.to_string())
}

impl KafkaInput {
    /// Connects, reads the group's committed offsets and assigns worker `index`'s partitions.
    pub fn open(
        spec: &KafkaSpec,
        format: Option<Format>,
        config: &Config,
        index: usize,
        peers: usize,
    ) -> Result<Self, SourceError> {
        let mut config = config.clone();
        // A dead letter carries the whole record (up to the record size limit).
        config.output.reject_raw_bytes = config.output.reject_raw_bytes.max(config.input.max_record_bytes);
        let k = &config.kafka;
        let consumer = client::consumer(k, &k.group_id).map_err(source_err)?;
        let mut all = Vec::new();
        for (ti, topic) in spec.topics.iter().enumerate() {
            for p in client::partitions(&consumer, k, topic).map_err(source_err)? {
                all.push((ti, p));
            }
        }
        let committed = committed(&consumer, &config, &spec.topics, &all)?;
        spec.shared.resume_or_init(|| {
            let mut r = Resume::default();
            for ((ti, p), (_, meta)) in all.iter().zip(&committed) {
                if let Some(m) = meta {
                    r.complete_tick = r.complete_tick.max(m.complete);
                    r.read_through.insert((spec.topics[*ti].clone(), *p), m.read);
                }
            }
            if r.complete_tick > 0 {
                tracing::info!(
                    complete_tick = r.complete_tick,
                    "resuming from committed offsets: outputs before this tick were delivered by an earlier run"
                );
            }
            r
        });
        let windows_ms = config.maintained_windows_ticks().last().copied().unwrap_or(0);
        let horizon = windows_ms + config.time.lateness.0.div_ceil(config.tick_ms()) + 1;
        let mut input = KafkaInput {
            consumer,
            decoders: Decoders::new(format, &crate::source::decode_options(&config)),
            topics: spec.topics.clone(),
            bounded: spec.bounded,
            shared: spec.shared.clone(),
            index,
            peers,
            parts: Vec::new(),
            lookup: HashMap::new(),
            floor: None,
            reported: None,
            done: false,
            horizon,
            last_complete: 0,
            commit_pending: false,
            last_commit: Instant::now(),
            last_refresh: Instant::now(),
            errors: ErrorLog::default(),
            bytes: 0,
            config,
        };
        let mine: Vec<((usize, i32), Option<i64>)> = all
            .iter()
            .zip(committed)
            .filter(|((ti, p), _)| input.owns(*ti, *p))
            .map(|(&tp, (offset, _))| (tp, offset))
            .collect();
        input.assign(mine)?;
        tracing::info!(
            worker = index,
            partitions = ?input.parts.iter().map(|p| p.source.as_str()).collect::<Vec<_>>(),
            bounded = spec.bounded,
            "kafka input assigned"
        );
        Ok(input)
    }

    fn owns(&self, topic_index: usize, partition: i32) -> bool {
        (partition as usize + topic_index) % self.peers.max(1) == self.index
    }

    /// Adds partitions (with their committed offsets) to the assignment.
    fn assign(&mut self, new: Vec<((usize, i32), Option<i64>)>) -> Result<(), SourceError> {
        if new.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((ti, p), committed) in new {
            let topic = &self.topics[ti];
            let (low, high) = client::watermarks(&self.consumer, &self.config.kafka, topic, p).map_err(source_err)?;
            let start = match committed {
                Some(o) => o.max(low),
                None => match self.config.kafka.start {
                    StartPosition::Earliest => low,
                    StartPosition::Latest => high,
                },
            };
            let end = self.bounded.then_some(high);
            tracing::debug!(worker = self.index, topic, partition = p, start, ?end, "assigning");
            tpl.add_partition_offset(topic, p, Offset::Offset(start))
                .map_err(|e| source_err(KafkaError::other("assignment", e)))?;
            self.lookup.insert((ti, p), self.parts.len());
            self.parts.push(PartitionState::new(
                &self.config,
                Arc::from(topic.as_str()),
                p,
                start,
                end,
            ));
        }
        self.consumer
            .incremental_assign(&tpl)
            .map_err(|e| source_err(KafkaError::other("assigning partitions", e)))
    }

    /// Picks up partitions added to the input topics since the last look.
    fn refresh(&mut self) -> Result<(), SourceError> {
        self.last_refresh = Instant::now();
        let mut new = Vec::new();
        for ti in 0..self.topics.len() {
            let ids = match client::partitions(&self.consumer, &self.config.kafka, &self.topics[ti]) {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(error = %e, "metadata refresh failed; keeping the current assignment");
                    return Ok(());
                }
            };
            for p in ids {
                if self.owns(ti, p) && !self.lookup.contains_key(&(ti, p)) {
                    new.push((ti, p));
                }
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        let committed = committed(&self.consumer, &self.config, &self.topics, &new)?;
        tracing::info!(worker = self.index, partitions = ?new, "new partitions picked up");
        self.assign(new.into_iter().zip(committed).map(|(tp, (o, _))| (tp, o)).collect())
    }

    fn live(&self, p: &PartitionState) -> bool {
        !p.exhausted() && p.last_activity.elapsed() < self.config.time.idle_timeout.as_duration()
    }

    /// The watermark of the live partitions: None when there is none (follow), Some(None)
    /// when one has no timestamp yet (hold).
    fn live_watermark(&self) -> Option<Option<u64>> {
        let mut min: Option<Option<u64>> = None;
        for p in self.parts.iter().filter(|p| self.live(p)) {
            let w = p.watermark();
            min = Some(match (min, w) {
                (None, w) => w,
                (Some(None), _) | (_, None) => None,
                (Some(Some(a)), Some(b)) => Some(a.min(b)),
            });
        }
        min
    }

    fn stop_reading(&mut self) {
        if !self.done {
            self.done = true;
            self.shared.set_done(self.index);
            tracing::debug!(worker = self.index, "kafka input done reading");
        }
    }

    fn read(&mut self, max: usize, batch: &mut InputBatch) -> Result<usize, SourceError> {
        let floor = self.floor.unwrap_or(0);
        let mut n = 0;
        let mut timeout = Duration::ZERO;
        // One clock reading per poll batch, not per record.
        let mut now = Instant::now();
        while n < max {
            let Some(result) = self.consumer.poll(timeout) else {
                if n == 0 && timeout.is_zero() {
                    timeout = IDLE_POLL;
                    continue;
                }
                break;
            };
            if !timeout.is_zero() {
                // The batch waited for its first record.
                now = Instant::now();
            }
            timeout = Duration::ZERO;
            let msg = match result {
                Ok(msg) => msg,
                Err(e) => {
                    if matches!(e, rdkafka::error::KafkaError::MessageConsumptionFatal(_)) {
                        return Err(source_err(KafkaError::other("consuming", e)));
                    }
                    // Transient (a broker away, a leader moving): the client reconnects by
                    // itself. Give the worker back its step instead of spinning on errors.
                    self.errors.log(&e);
                    break;
                }
            };
            let Some(ti) = self.topics.iter().position(|t| t == msg.topic()) else {
                continue;
            };
            let Some(&pi) = self.lookup.get(&(ti, msg.partition())) else {
                continue;
            };
            let part = &mut self.parts[pi];
            if part.beyond_end(msg.offset()) || msg.offset() < part.next {
                continue;
            }
            let payload = msg.payload().unwrap_or_default();
            self.bytes += payload.len() as u64;
            part.record(msg.offset(), payload, &self.decoders, floor, batch, now);
            n += 1;
        }
        if n == 0 && self.bounded {
            // Positions move past control records and compacted gaps without a message.
            if let Ok(positions) = self.consumer.position() {
                for e in positions.elements() {
                    let (Some(ti), Offset::Offset(o)) = (self.topics.iter().position(|t| t == e.topic()), e.offset())
                    else {
                        continue;
                    };
                    if let Some(&pi) = self.lookup.get(&(ti, e.partition())) {
                        let part = &mut self.parts[pi];
                        part.next = part.next.max(o);
                    }
                }
            }
        }
        Ok(n)
    }

    fn commit_now(&mut self, complete: u64) {
        let meta_complete = complete;
        let mut tpl = TopicPartitionList::new();
        for p in self.parts.iter_mut() {
            let needed = p.marks.commit_offset(complete, self.horizon, p.next);
            let offset = p.commit_limit(needed);
            let meta = CommitMeta {
                complete: meta_complete,
                read: p.next,
            };
            match tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(offset)) {
                Ok(()) => {
                    if let Some(mut e) = tpl.find_partition(&p.topic, p.partition) {
                        e.set_metadata(meta.encode());
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot commit {}", p.source),
            }
            p.committed = Some(offset);
        }
        if tpl.count() == 0 {
            return;
        }
        match self.consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => tracing::debug!(worker = self.index, complete, "offsets committed"),
            Err(e) => tracing::warn!(worker = self.index, error = %e, "offset commit failed; a restart replays more"),
        }
    }
}

/// A partition's committed offset (None: none) and vigil's commit metadata, when present.
type Committed = (Option<i64>, Option<CommitMeta>);

/// Committed offsets and vigil metadata of `(topic index, partition)`s, in order.
fn committed(
    consumer: &BaseConsumer,
    config: &Config,
    topics: &[String],
    parts: &[(usize, i32)],
) -> Result<Vec<Committed>, SourceError> {
    let mut tpl = TopicPartitionList::new();
    for &(ti, p) in parts {
        tpl.add_partition(&topics[ti], p);
    }
    let got = consumer
        .committed_offsets(tpl, config.kafka.timeout.as_duration())
        .map_err(|e| {
            source_err(KafkaError::Unreachable {
                brokers: config.kafka.brokers.clone(),
                timeout_ms: config.kafka.timeout.0,
                message: format!("reading committed offsets of group `{}`: {e}", config.kafka.group_id),
            })
        })?;
    Ok(parts
        .iter()
        .map(|&(ti, p)| match got.find_partition(&topics[ti], p) {
            Some(e) => {
                let offset = match e.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o),
                    _ => None,
                };
                (offset, offset.and(CommitMeta::parse(e.metadata())))
            }
            None => (None, None),
        })
        .collect())
}

/// Logs transient consumer errors at most once per [`ErrorLog::INTERVAL`], with the number
/// left unlogged in between (a broker restart makes the client report thousands).
#[derive(Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    const INTERVAL: Duration = Duration::from_secs(5);

    fn log(&mut self, e: &rdkafka::error::KafkaError) {
        if self.last.is_some_and(|t| t.elapsed() < Self::INTERVAL) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(
            error = %e,
            similar_since_last = self.suppressed,
            "kafka consumer error (the client retries; a broker restart shows as this)"
        );
        self.last = Some(Instant::now());
        self.suppressed = 0;
    }
}

/// A worker that stops early (its run failed) counts as done: the workers waiting for every
/// worker to finish reading would otherwise wait for it forever.
impl Drop for KafkaInput {
    fn drop(&mut self) {
        self.stop_reading();
    }
}

impl WorkerInput for KafkaInput {
    fn poll(&mut self, max: usize, batch: &mut InputBatch) -> Result<Poll, SourceError> {
        if self.shared.stopping() {
            self.stop_reading();
        }
        let mut n = 0;
        if !self.done {
            if !self.bounded && self.last_refresh.elapsed() >= self.config.kafka.metadata_refresh.as_duration() {
                self.refresh()?;
            }
            n = self.read(max, batch)?;
            if self.bounded && self.parts.iter().all(|p| p.exhausted()) {
                self.stop_reading();
            }
        } else {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Partitions still warming up decide what they hold once they end, idle or stop.
        let (floor, idle) = (self.floor.unwrap_or(0), self.config.time.idle_timeout.as_duration());
        for p in self.parts.iter_mut() {
            if self.done || p.exhausted() || p.last_activity.elapsed() >= idle {
                p.flush(floor, batch);
            }
        }
        // The watermark to report, and what others see of it.
        let live = if self.done { None } else { self.live_watermark() };
        let value = match live {
            Some(w) => {
                self.shared.publish_watermark(self.index, w.unwrap_or(0));
                w
            }
            None => {
                self.shared.publish_watermark(self.index, FOLLOWER);
                self.shared.live_min_watermark()
            }
        };
        let reported = match (self.floor, value) {
            (Some(f), Some(v)) => Some(f.max(v)),
            (f, v) => f.or(v),
        };
        self.floor = reported;
        self.reported = reported;
        if !self.commit_pending && self.last_commit.elapsed() >= self.config.kafka.commit_every.as_duration() {
            self.commit_pending = true;
            self.shared.request_flush(self.index);
        }
        if self.done && self.shared.all_done() {
            return Ok(Poll::Exhausted);
        }
        Ok(if n > 0 { Poll::More } else { Poll::Idle })
    }

    fn watermark(&self) -> Option<u64> {
        self.reported
    }

    fn end_tick(&self) -> Option<u64> {
        self.parts.iter().filter_map(|p| p.end_tick()).max()
    }

    fn commit(&mut self, complete: u64) -> Result<(), SourceError> {
        if complete != u64::MAX {
            self.last_complete = self.last_complete.max(complete);
            if self.commit_pending && self.shared.take_flushed(self.index) {
                let all = self.shared.publish_flushed_complete(self.index, complete);
                self.commit_now(all);
                self.commit_pending = false;
                self.last_commit = Instant::now();
            }
            return Ok(());
        }
        // The run is over and this worker's sink flushed: commit what the last frontier
        // allows (the final phase's outputs are partial for a stream that goes on), once
        // every worker has flushed.
        self.shared.publish_flushed_complete(self.index, self.last_complete);
        self.shared.mark_final(self.index);
        let started = Instant::now();
        while !self.shared.all_final() {
            if started.elapsed() > FINAL_WAIT {
                tracing::warn!("other workers did not finish in time; offsets not committed at the end");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let all = self.shared.flushed_complete();
        self.commit_now(all);
        Ok(())
    }

    fn progress(&self) -> (u64, Option<u64>) {
        (self.bytes, None)
    }
}
