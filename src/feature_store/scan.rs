//! Reading every device's current state out of the features trace fast, for the listings
//! (`/top`, retraining) that touch every device of a worker's shard.
//!
//! A merged cursor over all of a trace's batches (differential's `cursor_list`) compares keys
//! and values across every batch at each step; with a dozen batches during ingestion that
//! made a top-k over 5,000 devices take several milliseconds. Here each batch is walked on
//! its own, linearly, and the `(device, handle, count)` entries are consolidated by the
//! handle: a state's insertion and its later retraction carry the same one, and no two
//! states share one while both are in the store. Only live states are looked up.
//!
//! Invariant: the states visited are exactly those a merged cursor accumulating counts at
//! times `<= at` finds with a positive count — at most one per device — each with its
//! device's name (the trace's keys are the worker's device keys).

use differential_dataflow::trace::cursor::{Cursor, Navigable};
use differential_dataflow::trace::TraceReader;
use timely::progress::frontier::Antichain;

use super::FeatureTrace;
use crate::event::DeviceId;
use crate::pause;
use crate::window::{DeviceKey, DeviceWindows, StateRef, StateStore};

/// Calls `visit` with every device's state at `at` in `trace`, in no particular order.
pub fn for_each_live(
    trace: &mut FeatureTrace,
    states: &StateStore,
    at: u64,
    mut visit: impl FnMut(&DeviceId, StateRef, &DeviceWindows),
) {
    live_states(trace, states, at, |live| {
        for &(device, state) in live {
            visit(device, state, &states.get(state));
        }
    });
}

/// Calls `read` once with every device's state handle at `at` in `trace` (the names from
/// `states`), in no particular order (nothing when the trace cannot be read). `read` must not
/// add devices to `states`.
pub fn live_states(
    trace: &mut FeatureTrace,
    states: &StateStore,
    at: u64,
    read: impl FnOnce(&[(&DeviceId, StateRef)]),
) {
    let Some(batches) = trace.batches_through(Antichain::new().borrow()) else {
        return;
    };
    let mut entries: Vec<(StateRef, DeviceKey, isize)> = Vec::new();
    let mut seen = 0usize;
    for batch in &batches {
        let mut cursor = batch.cursor();
        while let Some(key) = cursor.get_key(batch) {
            while let Some(val) = cursor.get_val(batch) {
                let mut count = 0isize;
                cursor.map_times(batch, |t, d| {
                    if *t <= at {
                        count += *d;
                    }
                });
                if count != 0 {
                    entries.push((*val, *key, count));
                }
                // A long read: the worker's waiting point queries are answered meanwhile.
                pause::every(seen, pause::every::ENTRIES);
                seen += 1;
                cursor.step_val(batch);
            }
            cursor.step_key(batch);
        }
    }
    entries.sort_unstable_by_key(|e| e.0);
    let keys = states.keys();
    let mut live: Vec<(&DeviceId, StateRef)> = Vec::with_capacity(entries.len());
    let mut i = 0;
    while i < entries.len() {
        let (state, device, mut count) = entries[i];
        i += 1;
        while i < entries.len() && entries[i].0 == state {
            count += entries[i].2;
            i += 1;
        }
        debug_assert!(count == 0 || count == 1, "a state is in the collection at most once");
        if count > 0 {
            live.push((keys.name(device), state));
        }
    }
    read(&live);
}

#[cfg(test)]
mod tests {
    // Exercised against the merged-cursor reading in tests/query.rs and tests/models.rs
    // (every /top and retraining answer is compared with an independent computation).
}
