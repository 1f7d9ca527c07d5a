//! Outputs to Kafka topics, as flat JSON rows Pinot ingests as they are.
//!
//! - window rows → `kafka.windows_topic`, keyed by device: `WindowRow::to_json` plus
//!   `"op": "insert"` (rows are final when written; a consumer keys them by
//!   `(device_id, window_start_ms, window_len_ms)`);
//! - features → `kafka.features_topic`, keyed by device: the changelog of the feature table
//!   (the `features.jsonl` row shape, latest row per device wins): each time the event time
//!   of the window-stats changes crosses a multiple of `kafka.features_every`, the devices
//!   that changed in the period just ended, as of its last tick; every device at the end of
//!   the run (and at `output.snapshot_every`, when set);
//! - rejects → `kafka.dlq_topic`: the raw record as value, headers `vigil.reason`,
//!   `vigil.detail`, `vigil.source.topic`, `vigil.source.partition`, `vigil.source.offset`
//!   (or `vigil.source` and `vigil.source.line` for a file input);
//! - anomalies → `kafka.anomalies_topic`, keyed by device: `Anomaly::to_json` rows with
//!   `"op": "insert" | "retract"` (an episode is retracted with exactly the row it was
//!   inserted with, so a consumer folds them by `(detector, device_id, ts_ms)`).
//!
//! Invariants: a write never panics; the first send or delivery error is kept and returned
//! by the next `flush`/`finish`, so offsets are never committed past an undelivered output.
//! After a restart, outputs an earlier run already delivered are not sent again: window
//! rows ending at or before the resume tick, feature snapshots before it, and dead letters
//! of records below the offset the earlier run had read (see `source::kafka::resume`).

use foldhash::HashMap;
use std::sync::Arc;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::{SinkFactory, WorkerSink};
use crate::config::KafkaConfig;
use crate::decode::Reject;
use crate::event::DeviceId;
use crate::features::{write_feature_row, FeatureLayout};
use crate::source::kafka::client::{self, TrackedProducer};
use crate::source::kafka::KafkaShared;
use crate::window::{DeviceKey, DeviceState, DeviceWindows, StateStore, WindowRow};

/// `KafkaSink::pending_at` of a device with no change in the current period.
const NOT_PENDING: u32 = u32::MAX;

/// One worker's Kafka outputs (the producer is shared by the workers of the process).
pub struct KafkaSink {
    worker: usize,
    producer: Arc<TrackedProducer>,
    config: Arc<KafkaConfig>,
    shared: Option<Arc<KafkaShared>>,
    layout: Arc<FeatureLayout>,
    tick_ms: i64,
    last_emitted: HashMap<DeviceId, DeviceState>,
    /// Features cadence in ticks (0: only snapshots).
    every: u64,
    /// The period of the changes in `pending`.
    period: Option<u64>,
    /// Devices changed in the current period (by their key on this worker) and their latest
    /// state, copied over in place as it changes.
    pending: Vec<(DeviceKey, DeviceWindows)>,
    /// Per device key: its place in `pending` (`NOT_PENDING`: none) — a dense table, so that
    /// a change finds its device's entry without hashing its name.
    pending_at: Vec<u32>,
    error: Option<std::io::Error>,
    buf: Vec<u8>,
}

impl KafkaSink {
    /// A factory for a run's sinks. `shared` is the Kafka input's state when the input is
    /// Kafka (flushes are then coordinated with offset commits, and a restart's already
    /// delivered outputs are skipped); None for another input (one flush at the end).
    pub fn factory(
        producer: Arc<TrackedProducer>,
        config: KafkaConfig,
        shared: Option<Arc<KafkaShared>>,
        tick_ms: u64,
        layout: FeatureLayout,
    ) -> SinkFactory {
        let config = Arc::new(config);
        let layout = Arc::new(layout);
        Arc::new(move |worker| {
            Box::new(KafkaSink {
                worker,
                producer: producer.clone(),
                config: config.clone(),
                shared: shared.clone(),
                layout: layout.clone(),
                tick_ms: tick_ms as i64,
                last_emitted: HashMap::default(),
                every: config.features_every.0 / tick_ms.max(1),
                period: None,
                pending: Vec::new(),
                pending_at: Vec::new(),
                error: None,
                buf: Vec::with_capacity(1024),
            }) as Box<dyn WorkerSink>
        })
    }

    /// Creates the output topics that are missing and a producer for them.
    pub fn connect(config: &KafkaConfig) -> Result<Arc<TrackedProducer>, client::KafkaError> {
        client::ensure_topics(
            config,
            &[
                &config.windows_topic,
                &config.features_topic,
                &config.anomalies_topic,
                &config.dlq_topic,
            ],
            config.output_partitions,
        )?;
        Ok(Arc::new(client::producer(config)?))
    }

    fn resume_tick(&self) -> u64 {
        self.shared
            .as_ref()
            .and_then(|s| s.resume())
            .map_or(0, |r| r.complete_tick)
    }

    fn keep(&mut self, e: client::KafkaError) {
        if self.error.is_none() {
            self.error = Some(std::io::Error::other(e.to_string()));
        }
    }

    fn send_json(&mut self, topic: &str, key: &[u8], value: &serde_json::Value) {
        self.send_written(topic, key, |buf| {
            serde_json::to_writer(buf, value).map_err(std::io::Error::other)
        });
    }

    /// Sends to `topic` the payload `write` puts in the (reused) buffer; nothing once an
    /// error is kept.
    fn send_written(&mut self, topic: &str, key: &[u8], write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) {
        if self.error.is_some() {
            return;
        }
        self.buf.clear();
        if let Err(e) = write(&mut self.buf) {
            self.error = Some(e);
            return;
        }
        let record = BaseRecord::<[u8], [u8]>::to(topic).key(key).payload(&self.buf);
        if let Err(e) = client::send(&self.producer, record) {
            self.keep(e);
        }
    }

    /// Emits the devices changed in the current period, as of its last tick (their names
    /// from `store`).
    fn emit_period(&mut self, store: &StateStore) {
        let Some(period) = self.period else { return };
        let as_of_tick = (period + 1) * self.every - 1;
        let keys = store.keys();
        let mut pending: Vec<(DeviceId, DeviceState)> = Vec::with_capacity(self.pending.len());
        for (key, windows) in self.pending.drain(..) {
            self.pending_at[key.0 as usize] = NOT_PENDING;
            pending.push((keys.name(key).clone(), DeviceState::new(windows)));
        }
        drop(keys);
        pending.sort_by(|a, b| a.0.cmp(&b.0));
        self.features(as_of_tick, false, &pending);
    }

    fn take_error(&mut self) -> std::io::Result<()> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn flush_now(&mut self) -> std::io::Result<()> {
        self.take_error()?;
        if let Err(e) = client::flush(&self.producer, &self.config) {
            return Err(std::io::Error::other(e.to_string()));
        }
        if let Some(s) = &self.shared {
            s.mark_flushed(self.worker);
        }
        Ok(())
    }
}

/// `kafka:<topic>/<partition>` → (topic, partition).
fn kafka_source(source: &str) -> Option<(&str, i32)> {
    let (topic, partition) = source.strip_prefix("kafka:")?.rsplit_once('/')?;
    Some((topic, partition.parse().ok()?))
}

impl WorkerSink for KafkaSink {
    fn anomalies(&mut self, changes: &[(crate::detect::Anomaly, u64, isize)]) {
        let resume = self.resume_tick();
        let topic = self.config.anomalies_topic.clone();
        for (anomaly, tick, diff) in changes {
            if *tick < resume {
                continue;
            }
            let op = if *diff > 0 { "insert" } else { "retract" };
            let at_ms = *tick as i64 * self.tick_ms;
            let json = anomaly.to_json(op, at_ms, self.tick_ms as u64);
            for _ in 0..diff.unsigned_abs() {
                self.send_json(&topic, anomaly.device.as_bytes(), &json);
            }
        }
    }

    fn rows(&mut self, rows: &[WindowRow]) {
        let resume_ms = self.resume_tick() as i64 * self.tick_ms;
        let topic = self.config.windows_topic.clone();
        for row in rows {
            if row.window_end_ms <= resume_ms {
                continue;
            }
            self.send_written(&topic, row.device.as_bytes(), |buf| {
                row.write_json_with_op("insert", buf);
                Ok(())
            });
        }
    }

    fn reject(&mut self, reject: Reject) {
        if self.error.is_some() {
            return;
        }
        let origin = kafka_source(&reject.source);
        if let (Some((topic, partition)), Some(resume)) = (origin, self.shared.as_ref().and_then(|s| s.resume())) {
            let read = resume
                .read_through
                .get(&(topic.to_string(), partition))
                .copied()
                .unwrap_or(0);
            if (reject.line as i64) < read {
                return; // delivered by an earlier run
            }
        }
        let line = reject.line.to_string();
        let mut headers = OwnedHeaders::new()
            .insert(Header {
                key: "vigil.reason",
                value: Some(reject.reason.as_str()),
            })
            .insert(Header {
                key: "vigil.detail",
                value: Some(reject.detail.as_str()),
            });
        headers = match origin {
            Some((topic, partition)) => headers
                .insert(Header {
                    key: "vigil.source.topic",
                    value: Some(topic),
                })
                .insert(Header {
                    key: "vigil.source.partition",
                    value: Some(&partition.to_string()),
                })
                .insert(Header {
                    key: "vigil.source.offset",
                    value: Some(&line),
                }),
            None => headers
                .insert(Header {
                    key: "vigil.source",
                    value: Some(reject.source.as_str()),
                })
                .insert(Header {
                    key: "vigil.source.line",
                    value: Some(&line),
                }),
        };
        let record = BaseRecord::<[u8], [u8]>::to(&self.config.dlq_topic)
            .payload(reject.raw.as_bytes())
            .headers(headers);
        if let Err(e) = client::send(&self.producer, record) {
            self.keep(e);
        }
    }

    fn features(&mut self, as_of_tick: u64, last: bool, states: &[(DeviceId, DeviceState)]) {
        if as_of_tick < self.resume_tick() {
            return; // an earlier run delivered this snapshot
        }
        let as_of_ms = (as_of_tick as i64 + 1) * self.tick_ms - 1;
        let topic = self.config.features_topic.clone();
        let layout = self.layout.clone();
        for (device, state) in states {
            if !last && self.last_emitted.get(device) == Some(state) {
                continue;
            }
            self.send_written(&topic, device.as_bytes(), |buf| {
                write_feature_row(&layout, device, as_of_ms, state, buf);
                Ok(())
            });
            self.last_emitted.insert(device.clone(), state.clone());
        }
    }

    fn store_changes(&mut self, changes: &[crate::window::operator::WindowChange], store: &StateStore) {
        if self.every == 0 {
            return;
        }
        // Changes are final when emitted and reach this worker's sink in tick order.
        for ((device, state), tick, diff) in changes {
            if *diff <= 0 {
                continue;
            }
            let period = tick / self.every;
            if self.period.is_some_and(|p| p < period) {
                self.emit_period(store);
            }
            self.period = Some(period);
            let windows = store.get(*state);
            let k = device.0 as usize;
            if self.pending_at.len() <= k {
                self.pending_at.resize(k + 1, NOT_PENDING);
            }
            match self.pending_at[k] {
                NOT_PENDING => {
                    self.pending_at[k] = self.pending.len() as u32;
                    self.pending.push((*device, windows.clone()));
                }
                at => self.pending[at as usize].1.clone_from(&windows),
            }
        }
    }

    /// Per-event scores are a file output (`--scores-out`); no topic carries them.
    fn wants_scores(&self) -> bool {
        false
    }

    fn wants_changes(&self) -> bool {
        self.every > 0
    }

    /// The topic carries each device's latest state per period: copied from the store.
    fn reads_store(&self) -> bool {
        true
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &self.shared {
            // Flush when the source is about to commit, and at the end of the run.
            Some(s) if s.take_flush_request(self.worker) || s.all_done() => self.flush_now(),
            _ => self.take_error(),
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.flush_now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_sources_parse() {
        assert_eq!(kafka_source("kafka:vigil.in/3"), Some(("vigil.in", 3)));
        assert_eq!(kafka_source("kafka:a/b/12"), Some(("a/b", 12)));
        assert_eq!(kafka_source("/tmp/events.csv"), None);
        assert_eq!(kafka_source("kafka:x/y"), None);
    }
}
