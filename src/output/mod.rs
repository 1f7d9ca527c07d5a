//! Where results go: per-worker sinks (files, memory capture, nothing) and the metrics and
//! summary of a run.
//!
//! Invariants: a sink belongs to one worker and is written only from that worker's thread;
//! a write error is kept and reported when the run finishes (never a panic mid-dataflow).

pub mod episodes;
pub mod files;
pub mod kafka;
pub mod metrics;

use std::sync::{Arc, Mutex};

use crate::decode::Reject;
use crate::detect::{Anomaly, EventScore};
use crate::event::DeviceId;
use crate::window::{DeviceState, WindowRow};

/// One worker's outputs.
pub trait WorkerSink {
    /// Closed tumbling windows.
    fn rows(&mut self, rows: &[WindowRow]);
    /// A rejected record.
    fn reject(&mut self, reject: Reject);
    /// This worker's share of a feature snapshot taken at `as_of_tick` (`last`: the run's
    /// final snapshot, as of the end of the input).
    fn features(&mut self, as_of_tick: u64, last: bool, states: &[(DeviceId, DeviceState)]);
    /// Anomaly changes: `(anomaly, tick, +1 opened / -1 closed)`, in time order.
    fn anomalies(&mut self, _changes: &[(Anomaly, u64, isize)]) {}
    /// Per-event scores.
    fn scores(&mut self, _scores: &[EventScore]) {}
    /// Changes of the window-stats collection (only sinks that capture them want them).
    fn changes(&mut self, _changes: &[crate::window::operator::StateChange]) {}
    /// Whether [`WorkerSink::changes`] should be fed.
    fn wants_changes(&self) -> bool {
        false
    }
    /// Whether the changes come as handles into the worker's state store
    /// ([`WorkerSink::store_changes`]) instead of owned copies of every change
    /// ([`WorkerSink::changes`]): a sink that keeps only each device's latest state copies
    /// what it keeps, with no allocation per change.
    fn reads_store(&self) -> bool {
        false
    }
    /// The changes of the window-stats collection as handles into this worker's state store,
    /// retractions included (when [`WorkerSink::reads_store`]): read them during the call (a
    /// handle may be freed after it).
    fn store_changes(
        &mut self,
        _changes: &[crate::window::operator::WindowChange],
        _store: &crate::window::StateStore,
    ) {
    }
    /// Whether [`WorkerSink::scores`] should be fed (detectors skip shipping per-event
    /// scores nobody writes).
    fn wants_scores(&self) -> bool {
        true
    }
    /// Called before the source commits what the outputs so far make final: sinks that
    /// deliver elsewhere (Kafka) await delivery here; returns the first error met.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    /// Flushes; returns the first error met while writing.
    fn finish(&mut self) -> std::io::Result<()>;
}

/// Makes the sink of worker `index`.
pub type SinkFactory = Arc<dyn Fn(usize) -> Box<dyn WorkerSink> + Send + Sync>;

/// A sink that keeps nothing (benchmarks).
pub struct NullSink;

impl WorkerSink for NullSink {
    fn wants_scores(&self) -> bool {
        false
    }
    fn rows(&mut self, _rows: &[WindowRow]) {}
    fn reject(&mut self, _reject: Reject) {}
    fn features(&mut self, _as_of_tick: u64, _last: bool, _states: &[(DeviceId, DeviceState)]) {}
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Everything a run produced, kept in memory (tests).
#[derive(Default, Debug)]
pub struct Captured {
    pub rows: Vec<WindowRow>,
    pub rejects: Vec<Reject>,
    /// Feature snapshots: (as-of tick, device, state).
    pub features: Vec<(u64, DeviceId, DeviceState)>,
    pub changes: Vec<crate::window::operator::StateChange>,
    pub anomalies: Vec<(Anomaly, u64, isize)>,
    pub scores: Vec<EventScore>,
}

/// A sink that appends to a shared [`Captured`].
pub struct CaptureSink(pub Arc<Mutex<Captured>>);

impl CaptureSink {
    /// A factory whose sinks all capture into `target`.
    pub fn factory(target: Arc<Mutex<Captured>>) -> SinkFactory {
        Arc::new(move |_| Box::new(CaptureSink(target.clone())) as Box<dyn WorkerSink>)
    }
}

impl WorkerSink for CaptureSink {
    fn rows(&mut self, rows: &[WindowRow]) {
        self.0.lock().expect("capture lock").rows.extend_from_slice(rows);
    }
    fn reject(&mut self, reject: Reject) {
        self.0.lock().expect("capture lock").rejects.push(reject);
    }
    fn features(&mut self, as_of_tick: u64, _last: bool, states: &[(DeviceId, DeviceState)]) {
        let mut c = self.0.lock().expect("capture lock");
        c.features
            .extend(states.iter().map(|(d, s)| (as_of_tick, d.clone(), s.clone())));
    }
    fn changes(&mut self, changes: &[crate::window::operator::StateChange]) {
        self.0.lock().expect("capture lock").changes.extend_from_slice(changes);
    }
    fn anomalies(&mut self, changes: &[(Anomaly, u64, isize)]) {
        self.0
            .lock()
            .expect("capture lock")
            .anomalies
            .extend_from_slice(changes);
    }
    fn scores(&mut self, scores: &[EventScore]) {
        self.0.lock().expect("capture lock").scores.extend_from_slice(scores);
    }
    fn wants_changes(&self) -> bool {
        true
    }
    fn finish(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
