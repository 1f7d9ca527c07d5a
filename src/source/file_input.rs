//! [`WorkerInput`] over files, folders and stdin.
//!
//! Invariants: with a file input every worker reads every record (cheaply: only the
//! timestamp is peeked) and decides only the records it owns (`index % readers == worker`),
//! so all workers hold the same watermark and no worker holds the frontier back; stdin can be
//! read once, so worker 0 reads and decides it all and the other workers finish at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::file::{InputSpec, RecordReader};
use super::{Decider, InputBatch, Poll, SourceError, WorkerInput};
use crate::config::Config;
use crate::decode::Format;
use crate::pause;

/// One worker's view of a file input.
pub struct FileInput {
    reader: RecordReader,
    decider: Decider,
    readers: u64,
    reader_index: u64,
    record_index: u64,
    exhausted: bool,
    bytes_read: Arc<AtomicU64>,
    total_bytes: Option<u64>,
}

impl FileInput {
    /// The input of worker `index` of `peers`.
    pub fn new(spec: &InputSpec, format: Option<Format>, config: &Config, index: usize, peers: usize) -> Self {
        let bytes_read = Arc::new(AtomicU64::new(0));
        let (reader, readers, reader_index) = match spec {
            InputSpec::Stdin if index != 0 => (RecordReader::empty(), 1, 1),
            InputSpec::Stdin => (
                RecordReader::new(spec, format, super::decode_options(config), bytes_read.clone()),
                1,
                0,
            ),
            other => (
                RecordReader::new(other, format, super::decode_options(config), bytes_read.clone()),
                peers as u64,
                index as u64,
            ),
        };
        FileInput {
            reader,
            decider: Decider::new(config),
            readers,
            reader_index,
            record_index: 0,
            exhausted: false,
            bytes_read,
            total_bytes: spec.total_bytes(),
        }
    }
}

impl WorkerInput for FileInput {
    fn poll(&mut self, max: usize, batch: &mut InputBatch) -> Result<Poll, SourceError> {
        if self.exhausted {
            return Ok(Poll::Exhausted);
        }
        let (decider, record_index, readers, me) = (
            &mut self.decider,
            &mut self.record_index,
            self.readers,
            self.reader_index,
        );
        let more = self.reader.next_batch(max, |record| {
            let owned = *record_index % readers == me;
            *record_index += 1;
            // Waiting point queries are answered between records.
            pause::every(*record_index as usize, pause::every::RECORDS);
            decider.decide(record.source, record.line, record.bytes, record.decoder, owned, batch);
        })?;
        if more {
            Ok(Poll::More)
        } else {
            // A file shorter than the warm-up decides what it held now.
            self.decider.flush(batch);
            self.exhausted = true;
            Ok(Poll::Exhausted)
        }
    }

    fn watermark(&self) -> Option<u64> {
        self.decider.watermark.tick()
    }

    fn end_tick(&self) -> Option<u64> {
        self.decider.watermark.end_tick()
    }

    fn progress(&self) -> (u64, Option<u64>) {
        (self.bytes_read.load(Ordering::Relaxed), self.total_bytes)
    }
}
