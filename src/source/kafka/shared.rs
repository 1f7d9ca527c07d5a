//! What the Kafka sources and sinks of one process share: the stop flag, each worker's
//! published watermark, completion and flush state, and where a restarted run resumes.
//!
//! Invariants: a worker publishes only its own slot; a published `flushed_complete` never
//! decreases and is published only after that worker's sink flushed every output below it,
//! so `min` over workers of `flushed_complete` is a tick below which every output of every
//! worker has been delivered. All workers of a run live in this process (the pipeline runs
//! `timely::Config::process`); a multi-process cluster would need this state exchanged.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::OnceLock;

/// Slot value of a worker that does not hold the frontier (no live partition, or done).
pub const FOLLOWER: u64 = u64::MAX;

#[derive(Debug, Default)]
struct Slot {
    /// Watermark of the worker's live partitions (0: a live partition has none yet), or
    /// [`FOLLOWER`].
    watermark: AtomicU64,
    /// The worker will read nothing more (bounded end reached, or stopping).
    done: AtomicBool,
    /// The source asks the sink for a delivery flush before the next commit.
    flush_due: AtomicBool,
    /// The sink flushed (durably: Kafka deliveries awaited) since `flush_due` was set.
    flushed: AtomicBool,
    /// Every output of this worker below this tick has been delivered.
    flushed_complete: AtomicU64,
    /// The worker's run is over and its sink flushed for the last time.
    finished: AtomicBool,
}

/// Where a run resumes, read from the consumer group's committed offsets (see
/// [`super::resume`]).
#[derive(Debug, Default, Clone)]
pub struct Resume {
    /// Outputs below this tick were delivered by an earlier run: window rows ending at or
    /// before it, feature snapshots before it.
    pub complete_tick: u64,
    /// Per (topic, partition): records below this offset were read (and their dead letters
    /// delivered) by an earlier run.
    pub read_through: HashMap<(String, i32), i64>,
}

/// Shared by every worker's Kafka source and sink in the process.
#[derive(Debug)]
pub struct KafkaShared {
    /// Set on Ctrl-C / SIGTERM: sources stop reading and the run finishes cleanly.
    pub stop: AtomicBool,
    slots: Vec<Slot>,
    resume: OnceLock<Resume>,
}

impl KafkaShared {
    /// State for a run of `workers` workers.
    pub fn new(workers: usize) -> Self {
        KafkaShared {
            stop: AtomicBool::new(false),
            slots: (0..workers.max(1))
                .map(|_| Slot {
                    watermark: AtomicU64::new(0),
                    ..Slot::default()
                })
                .collect(),
            resume: OnceLock::new(),
        }
    }

    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    pub fn stopping(&self) -> bool {
        self.stop.load(SeqCst)
    }

    pub fn publish_watermark(&self, worker: usize, value: u64) {
        if let Some(s) = self.slots.get(worker) {
            s.watermark.store(value, SeqCst);
        }
    }

    /// The lowest watermark among workers that hold the frontier (None: every worker follows).
    pub fn live_min_watermark(&self) -> Option<u64> {
        self.slots
            .iter()
            .map(|s| s.watermark.load(SeqCst))
            .filter(|&w| w != FOLLOWER)
            .min()
    }

    pub fn set_done(&self, worker: usize) {
        if let Some(s) = self.slots.get(worker) {
            s.done.store(true, SeqCst);
            s.watermark.store(FOLLOWER, SeqCst);
        }
    }

    pub fn all_done(&self) -> bool {
        self.slots.iter().all(|s| s.done.load(SeqCst))
    }

    /// The source asks worker `worker`'s sink to flush before its next commit.
    pub fn request_flush(&self, worker: usize) {
        if let Some(s) = self.slots.get(worker) {
            s.flushed.store(false, SeqCst);
            s.flush_due.store(true, SeqCst);
        }
    }

    /// Whether the sink of `worker` should flush now (clears the request).
    pub fn take_flush_request(&self, worker: usize) -> bool {
        self.slots.get(worker).is_some_and(|s| s.flush_due.swap(false, SeqCst))
    }

    /// The sink of `worker` awaited the delivery of everything it was given.
    pub fn mark_flushed(&self, worker: usize) {
        if let Some(s) = self.slots.get(worker) {
            s.flushed.store(true, SeqCst);
        }
    }

    /// Whether the sink flushed since the last request (clears the mark).
    pub fn take_flushed(&self, worker: usize) -> bool {
        self.slots.get(worker).is_some_and(|s| s.flushed.swap(false, SeqCst))
    }

    /// Worker `worker` has delivered every output below `complete`; returns the tick below
    /// which every worker has.
    pub fn publish_flushed_complete(&self, worker: usize, complete: u64) -> u64 {
        if let Some(s) = self.slots.get(worker) {
            s.flushed_complete.fetch_max(complete, SeqCst);
        }
        self.flushed_complete()
    }

    /// The tick below which every worker has delivered every output.
    pub fn flushed_complete(&self) -> u64 {
        self.slots
            .iter()
            .map(|s| s.flushed_complete.load(SeqCst))
            .min()
            .unwrap_or(0)
    }

    /// Worker `worker`'s run is over and its sink flushed for the last time.
    pub fn mark_final(&self, worker: usize) {
        if let Some(s) = self.slots.get(worker) {
            s.finished.store(true, SeqCst);
        }
    }

    pub fn all_final(&self) -> bool {
        self.slots.iter().all(|s| s.finished.load(SeqCst))
    }

    /// Where this run resumes (set once, by the first source that reads the group's offsets).
    pub fn resume(&self) -> Option<&Resume> {
        self.resume.get()
    }

    pub fn resume_or_init(&self, init: impl FnOnce() -> Resume) -> &Resume {
        self.resume.get_or_init(init)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followers_and_completion() {
        let s = KafkaShared::new(3);
        s.publish_watermark(0, 10);
        s.publish_watermark(1, FOLLOWER);
        s.publish_watermark(2, 7);
        assert_eq!(s.live_min_watermark(), Some(7));
        s.set_done(2);
        assert_eq!(s.live_min_watermark(), Some(10));
        assert!(!s.all_done());
        s.set_done(0);
        s.set_done(1);
        assert!(s.all_done());
        assert_eq!(s.live_min_watermark(), None);
        assert_eq!(s.publish_flushed_complete(0, 5), 0);
        s.publish_flushed_complete(1, 9);
        assert_eq!(s.publish_flushed_complete(2, 6), 5);
        assert_eq!(s.publish_flushed_complete(0, 3), 5, "never decreases");
    }
}
