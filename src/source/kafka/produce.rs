//! `vigil produce`: records of a file (or folder, stdin, memory) into a Kafka topic, one
//! record per message, keyed by device.
//!
//! Invariants: records are sent in input order and the producer is idempotent, so each
//! partition holds its records in input order; a record whose device cannot be read (a
//! malformed one) is sent without key to partition `record index % partitions`; nothing
//! is decoded beyond the device, so bad records reach the topic as they are.

use std::time::Instant;

use rdkafka::producer::BaseRecord;

use super::client::{self, KafkaError};
use crate::config::KafkaConfig;
use crate::decode::Format;
use crate::event::CSV_HEADER;
use crate::source::file::{InputSpec, RecordReader};
use crate::source::SourceError;

/// A failed `produce`.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// What was sent.
#[derive(Debug, Clone, Default)]
pub struct ProduceReport {
    pub records: u64,
    pub bytes: u64,
    pub without_key: u64,
    /// Zeek TSV header lines, each sent to every partition.
    pub headers: u64,
    pub partitions: usize,
    pub elapsed_s: f64,
}

/// Sends every record of `input` to `topic`, creating it with `partitions` partitions when
/// it does not exist; returns once every message is acknowledged.
pub fn produce(
    config: &KafkaConfig,
    input: &InputSpec,
    format: Option<Format>,
    max_record_bytes: usize,
    topic: &str,
    partitions: u32,
) -> Result<ProduceReport, ProduceError> {
    client::ensure_topics(config, &[topic], partitions)?;
    let producer = client::producer(config)?;
    let count = {
        let probe = client::consumer(config, "vigil-produce")?;
        client::partitions(&probe, config, topic)?.len()
    };
    if count as u32 != partitions {
        tracing::warn!(
            topic,
            existing = count,
            asked = partitions,
            "topic exists with another partition count; kept as is"
        );
    }
    let started = Instant::now();
    let mut reader = RecordReader::new(
        input,
        format,
        crate::decode::DecodeOptions::new(max_record_bytes),
        Default::default(),
    )
    .with_headers();
    let mut report = ProduceReport {
        partitions: count,
        ..ProduceReport::default()
    };
    let mut failure: Option<KafkaError> = None;
    loop {
        let more = reader.next_batch(65_536, |record| {
            if failure.is_some() {
                return;
            }
            // A Zeek TSV header line goes to every partition, ahead of the records it
            // describes, so each partition's reader binds its columns (not a record).
            if record.header {
                for p in 0..count as i32 {
                    let msg = BaseRecord::<[u8], [u8]>::to(topic).payload(record.bytes).partition(p);
                    if let Err(e) = client::send(&producer, msg) {
                        failure = Some(e);
                        return;
                    }
                }
                report.headers += 1;
                return;
            }
            let key = record.decoder.peek_device(record.bytes);
            let mut msg = BaseRecord::<[u8], [u8]>::to(topic).payload(record.bytes);
            match &key {
                Some(device) => msg = msg.key(device.as_bytes()),
                None => {
                    report.without_key += 1;
                    msg = msg.partition((report.records % count as u64) as i32);
                }
            }
            if let Err(e) = client::send(&producer, msg) {
                failure = Some(e);
                return;
            }
            report.records += 1;
            report.bytes += record.bytes.len() as u64;
        })?;
        if let Some(e) = failure.take() {
            return Err(e.into());
        }
        if !more {
            break;
        }
    }
    client::flush(&producer, config)?;
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// False when a first line is a CSV header whose columns are not in the canonical order
/// (messages are read in the canonical order, so such a file's records would not decode).
pub fn csv_header_order_ok(first_line: &str) -> bool {
    let names: Vec<&str> = first_line.split(',').map(|s| s.trim().trim_matches('"')).collect();
    if !CSV_HEADER.contains(&names.first().copied().unwrap_or("")) {
        return true; // not a header
    }
    names.iter().zip(CSV_HEADER.iter()).all(|(a, b)| a == b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_order() {
        assert!(csv_header_order_ok(&CSV_HEADER.join(",")));
        assert!(csv_header_order_ok("1699999200000,dev-1"));
        assert!(!csv_header_order_ok("device_id,ts"));
    }
}
