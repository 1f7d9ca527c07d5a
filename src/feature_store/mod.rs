//! The feature store: the arrangement of `(device, DeviceWindows)` keyed by device, read
//! point-in-time, with its compaction managed in one place. The arrangement holds the
//! worker's device keys and handles into the worker's [`StateStore`] (which gives the names
//! and the states back); the store's [`Hold`] follows the compaction here.
//!
//! Invariants: a [`FeatureStore`] never lets compaction pass a time it may still be asked
//! about — the logical compaction frontier trails the completed frontier by one tick (so
//! "as of the last complete tick" can always be read) and never passes a pinned snapshot
//! time. A read sees only this worker's shard of devices; a full snapshot is the union over
//! all workers.

use differential_dataflow::operators::arrange::TraceAgent;
use differential_dataflow::trace::cursor::{cursor_list, Cursor};
use differential_dataflow::trace::implementations::ValSpine;
use differential_dataflow::trace::TraceReader;
use timely::progress::frontier::{Antichain, AntichainRef};

use std::rc::Rc;

use crate::event::DeviceId;
use crate::pause;
use crate::window::{DeviceKey, DeviceState, Hold, StateRef, StateStore};

mod batcher;
pub mod scan;

/// The arranged window statistics (the feature store's storage): device keys and handles
/// into the worker's [`StateStore`].
pub type FeatureTrace = TraceAgent<ValSpine<DeviceKey, StateRef, u64, isize>>;

/// Arranges the window-stats changes of one worker by device, in place: the changes are
/// made on the worker that owns the device and carry handles into its store, so they are
/// never exchanged.
pub fn arrange<'s>(
    changes: timely::dataflow::StreamVec<'s, u64, ((DeviceKey, StateRef), u64, isize)>,
) -> differential_dataflow::operators::arrange::Arranged<'s, FeatureTrace> {
    use differential_dataflow::operators::arrange::arrangement::arrange_core;
    arrange_core::<_, _, batcher::ChangeBatcher, _>(
        changes,
        timely::dataflow::channels::pact::Pipeline,
        "features",
        batcher::ChangeBatcher::new,
    )
}

/// A worker's handle on the feature store arrangement.
pub struct FeatureStore {
    trace: FeatureTrace,
    states: Rc<StateStore>,
    /// Follows the logical compaction: states retracted at or before it may be freed.
    hold: Hold,
    /// Earliest time a reader still needs.
    pinned: Option<u64>,
    compacted_to: u64,
}

impl FeatureStore {
    pub fn new(trace: FeatureTrace, states: Rc<StateStore>) -> Self {
        FeatureStore {
            trace,
            hold: states.hold(),
            states,
            pinned: None,
            compacted_to: 0,
        }
    }

    /// Keeps times from `tick` on readable until unpinned.
    pub fn pin(&mut self, tick: Option<u64>) {
        self.pinned = tick;
    }

    /// Allows compaction up to the last complete tick (`complete` is the frontier: every
    /// tick below it is final), but not past a pinned time.
    pub fn advance(&mut self, complete: u64) {
        let mut target = complete.saturating_sub(1);
        if let Some(p) = self.pinned {
            target = target.min(p);
        }
        if target > self.compacted_to {
            self.compacted_to = target;
            self.trace.set_logical_compaction(AntichainRef::new(&[target]));
            self.trace.set_physical_compaction(AntichainRef::new(&[target]));
            self.hold.advance(target);
        }
    }

    /// This worker's devices and their state as of `tick` (which must be complete), in name
    /// order.
    pub fn read_at(&mut self, tick: u64) -> Vec<(DeviceId, DeviceState)> {
        let mut out = Vec::new();
        // All batches (an empty upper is always a clean cut); later times are filtered out.
        let Some(batches) = self.trace.batches_through(Antichain::new().borrow()) else {
            return out;
        };
        let (mut cursor, storage) = cursor_list(batches);
        let mut read = 0usize;
        while let Some(key) = cursor.get_key(&storage) {
            // A long read: the worker's waiting point queries are answered meanwhile.
            pause::every(read, pause::every::ENTRIES);
            read += 1;
            while let Some(val) = cursor.get_val(&storage) {
                let mut count = 0isize;
                cursor.map_times(&storage, |t, d| {
                    if *t <= tick {
                        count += *d;
                    }
                });
                if count > 0 {
                    out.push((self.states.device_name(*key), self.states.snapshot(*val)));
                }
                cursor.step_val(&storage);
            }
            cursor.step_key(&storage);
        }
        // Keys follow the order of arrival on this worker: names are the order readers see.
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Updates held by this worker's shard of the arrangement (its memory, in records).
    pub fn updates(&self) -> usize {
        use differential_dataflow::trace::implementations::spine_fueled::SpineBatch;
        let mut n = 0;
        self.trace.map_spans(|span| {
            if let Some(batch) = &span.inner {
                n += batch.len();
            }
        });
        n
    }

    /// The trace, for importing into other dataflows (queries).
    pub fn trace(&mut self) -> &mut FeatureTrace {
        &mut self.trace
    }

    /// The store the trace's handles point into.
    pub fn states(&self) -> &Rc<StateStore> {
        &self.states
    }
}
