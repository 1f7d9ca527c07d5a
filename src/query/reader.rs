//! One worker's reads of its shard of the main dataflow's arrangements, for the query
//! dataflow and for the point queries a worker answers itself ([`Reader`]), and the
//! worker-independent orders the parts of listings are merged in ([`sort_anomalies`],
//! [`merge_top`]).
//!
//! Invariant: every read is at one tick `at` and accumulates exactly the updates at times
//! `<= at`; the trace handles compact only to what [`Reader::compact`] is given (the query
//! dataflow's frontier), so no read asks for a compacted-away time.

use std::collections::BinaryHeap;
use std::rc::Rc;
use std::sync::Arc;

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::cursor::{cursor_list, Cursor};
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::trace::TraceReader;
use timely::progress::frontier::{Antichain, AntichainRef};

use super::history::HistoryTrace;
use super::{Part, Query, QueryMsg, Reply};
use crate::detect::Anomaly;
use crate::event::DeviceId;
use crate::feature_store::FeatureTrace;
use crate::features::FeatureLayout;
use crate::model::rescore::DeviceScore;
use crate::window::{Hold, StateStore, WindowRow};

/// The arranged anomalies (device → open anomaly).
pub type AnomalyTrace = TraceAgent<ValSpine<DeviceId, Anomaly, u64, isize>>;

/// The arranged model scores (device → its score under the current model).
pub type ScoreTrace = TraceAgent<ValSpine<DeviceId, DeviceScore, u64, isize>>;

/// Handles on the main dataflow's arrangements, for the query dataflow.
#[derive(Clone)]
pub struct QueryTraces {
    pub features: FeatureTrace,
    /// The store the features trace's handles point into.
    pub states: Rc<StateStore>,
    pub anomalies: AnomalyTrace,
    /// Absent when the main dataflow keeps no history.
    pub history: Option<HistoryTrace>,
    /// Absent when no model-based detector runs.
    pub model_scores: Option<ScoreTrace>,
}

/// Visits every `(key, value)` of `trace` present at time `at` (accumulated count > 0),
/// only `key`'s when one is given.
macro_rules! scan {
    ($trace:expr, $key:expr, $at:expr, |$k:ident, $v:ident| $body:block) => {{
        let only = $key;
        let at: u64 = $at;
        let mut seen = 0usize;
        if let Some(batches) = $trace.batches_through(Antichain::new().borrow()) {
            let (mut cursor, storage) = cursor_list(batches);
            if let Some(key) = only {
                cursor.seek_key(&storage, key);
            }
            while let Some($k) = cursor.get_key(&storage) {
                if only.is_some_and(|want| want != $k) {
                    break;
                }
                while let Some($v) = cursor.get_val(&storage) {
                    // A long listing: the worker's waiting point queries are answered meanwhile.
                    crate::pause::every(seen, crate::pause::every::ENTRIES);
                    seen += 1;
                    let mut count = 0isize;
                    cursor.map_times(&storage, |t, d| {
                        if *t <= at {
                            count += *d;
                        }
                    });
                    if count > 0 $body
                    cursor.step_val(&storage);
                }
                cursor.step_key(&storage);
            }
        }
    }};
}

/// Reads one worker's shard of the arrangements.
pub(super) struct Reader {
    features: FeatureTrace,
    states: Rc<StateStore>,
    /// Follows the compaction: no read below it, so the states retracted by then may go.
    hold: Hold,
    anomalies: AnomalyTrace,
    history: Option<HistoryTrace>,
    model_scores: Option<ScoreTrace>,
    layout: Arc<FeatureLayout>,
    tick_ms: i64,
    compacted: Antichain<u64>,
}

impl Reader {
    pub(super) fn new(traces: QueryTraces, layout: Arc<FeatureLayout>, tick_ms: i64) -> Self {
        Reader {
            features: traces.features,
            hold: traces.states.hold(),
            states: traces.states,
            anomalies: traces.anomalies,
            history: traces.history,
            model_scores: traces.model_scores,
            layout,
            tick_ms,
            compacted: Antichain::from_elem(0),
        }
    }

    pub(super) fn answer(&mut self, query: &Query, at: u64) -> Part {
        match query {
            Query::Device { device } => {
                let mut state = None;
                let states = &self.states;
                // The features trace is keyed by the worker's device keys (none: never seen).
                if let Some(key) = states.keys().key(device) {
                    scan!(self.features, Some(&key), at, |_k, v| {
                        state = Some(Box::new(crate::window::DeviceWindows::clone(&states.get(*v))));
                    });
                }
                let mut anomalies = Vec::new();
                scan!(self.anomalies, Some(device), at, |_k, v| {
                    anomalies.push(v.clone());
                });
                anomalies.sort_by(|a: &Anomaly, b: &Anomaly| b.tick.cmp(&a.tick).then_with(|| a.cmp(b)));
                let mut model = None;
                if let Some(scores) = self.model_scores.as_mut() {
                    scan!(scores, Some(device), at, |_k, s| {
                        // One score per device at a time; the highest version if two overlap.
                        if model
                            .as_ref()
                            .is_none_or(|m: &DeviceScore| m.model_version < s.model_version)
                        {
                            model = Some(s.clone());
                        }
                    });
                }
                Part::Device {
                    state,
                    anomalies,
                    model,
                }
            }
            Query::History {
                device,
                window_ms,
                from_ms,
                to_ms,
                limit,
            } => {
                let mut known = false;
                if let Some(key) = self.states.keys().key(device) {
                    scan!(self.features, Some(&key), at, |_k, _v| {
                        known = true;
                    });
                }
                let mut rows: Vec<WindowRow> = Vec::new();
                if let Some(history) = self.history.as_mut() {
                    scan!(history, Some(device), at, |_k, row| {
                        if row.window_len_ms == *window_ms
                            && from_ms.is_none_or(|f| row.window_start_ms >= f)
                            && to_ms.is_none_or(|t| row.window_end_ms <= t)
                        {
                            rows.push(row.clone());
                        }
                    });
                }
                rows.sort_by_key(|r| r.window_start_ms);
                if rows.len() > *limit {
                    rows.drain(..rows.len() - limit);
                }
                Part::History { known, rows }
            }
            Query::Anomalies {
                detector,
                since_ms,
                min_severity,
                offset,
                limit,
            } => {
                let tick_ms = self.tick_ms;
                let mut found: Vec<Anomaly> = Vec::new();
                scan!(self.anomalies, None, at, |_k, a| {
                    if detector.as_deref().is_none_or(|d| a.detector == d)
                        && since_ms.is_none_or(|s| a.tick as i64 * tick_ms >= s)
                        && min_severity.is_none_or(|m| a.severity >= m)
                    {
                        found.push(a.clone());
                    }
                });
                sort_anomalies(&mut found);
                // The page may be anywhere in this worker's first offset + limit.
                found.truncate(offset.saturating_add(*limit));
                Part::Anomalies(found)
            }
            Query::Top { feature, k } => {
                let mut heap: BinaryHeap<std::cmp::Reverse<Ranked>> = BinaryHeap::new();
                let layout = &self.layout;
                let store = &self.states;
                crate::feature_store::scan::live_states(&mut self.features, store, at, |live| {
                    let mut values = Vec::with_capacity(live.len());
                    for chunk in live.chunks(crate::pause::every::ENTRIES) {
                        let held: Vec<_> = chunk.iter().map(|(_, s)| store.get(*s)).collect();
                        let states: Vec<&crate::window::DeviceWindows> = held.iter().map(|s| &**s).collect();
                        values.extend(layout.values(&states, *feature));
                        drop(held);
                        super::poll::poll();
                    }
                    for (&(device, _), &value) in live.iter().zip(&values) {
                        let better = heap.len() < *k
                            || heap
                                .peek()
                                .is_some_and(|w| Ranked::before(value, device, w.0.value, &w.0.device));
                        if better {
                            heap.push(std::cmp::Reverse(Ranked {
                                value,
                                device: device.clone(),
                            }));
                            if heap.len() > *k {
                                heap.pop();
                            }
                        }
                    }
                });
                let mut top: Vec<Ranked> = heap.into_iter().map(|r| r.0).collect();
                top.sort_by(|a, b| b.cmp(a));
                Part::Top(top.into_iter().map(|r| (r.device, r.value)).collect())
            }
            Query::Retrain { .. } => {
                let mut shard = Vec::new();
                let layout = &self.layout;
                crate::feature_store::scan::for_each_live(&mut self.features, &self.states, at, |device, _, state| {
                    shard.push((device.clone(), layout.vector(state)));
                });
                shard.sort_by(|a, b| a.0.cmp(&b.0));
                Part::Shard(shard)
            }
        }
    }

    /// The part of `msg`'s answer this worker holds, read at `at`, addressed to its origin.
    pub(super) fn reply(&mut self, msg: QueryMsg, at: u64) -> Reply {
        tracing::trace!(origin = msg.origin, seq = msg.seq, at, "reading a query");
        Reply {
            origin: msg.origin,
            seq: msg.seq,
            tick: at,
            part: self.answer(&msg.query, at),
        }
    }

    /// Lets the traces compact up to `frontier` (no query can arrive before it).
    pub(super) fn compact(&mut self, frontier: AntichainRef<u64>) {
        if self.compacted.borrow() == frontier {
            return;
        }
        self.compacted = frontier.to_owned();
        self.features.set_logical_compaction(frontier);
        self.features.set_physical_compaction(frontier);
        self.hold.advance(frontier.first().copied().unwrap_or(u64::MAX));
        self.anomalies.set_logical_compaction(frontier);
        self.anomalies.set_physical_compaction(frontier);
        if let Some(h) = self.history.as_mut() {
            h.set_logical_compaction(frontier);
            h.set_physical_compaction(frontier);
        }
        if let Some(s) = self.model_scores.as_mut() {
            s.set_logical_compaction(frontier);
            s.set_physical_compaction(frontier);
        }
    }
}

/// Most recent first, then by device and detector (a total, worker-independent order).
pub fn sort_anomalies(list: &mut [Anomaly]) {
    list.sort_by(|a, b| {
        b.tick
            .cmp(&a.tick)
            .then_with(|| a.device.cmp(&b.device))
            .then_with(|| a.detector.cmp(&b.detector))
            .then_with(|| a.cmp(b))
    });
}

/// A top-k candidate: ordered by value, then the *smaller* device id ranks higher.
#[derive(Clone, Debug)]
struct Ranked {
    value: f64,
    device: DeviceId,
}

impl Ranked {
    /// Whether (value, device) ranks strictly before (other_value, other_device).
    fn before(value: f64, device: &DeviceId, other_value: f64, other_device: &DeviceId) -> bool {
        match value.total_cmp(&other_value) {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal => device < other_device,
        }
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == std::cmp::Ordering::Equal
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value
            .total_cmp(&other.value)
            .then_with(|| other.device.cmp(&self.device))
    }
}

/// Merges the per-worker top-k lists.
pub fn merge_top(parts: Vec<Vec<(DeviceId, f64)>>, k: usize) -> Vec<(DeviceId, f64)> {
    let mut all: Vec<Ranked> = parts
        .into_iter()
        .flatten()
        .map(|(device, value)| Ranked { value, device })
        .collect();
    all.sort_by(|a, b| b.cmp(a));
    all.truncate(k);
    all.into_iter().map(|r| (r.device, r.value)).collect()
}
