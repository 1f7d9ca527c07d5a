//! Reading every device's current state out of the features trace fast, for the listings
//! (`/top`, retraining) that touch every device of a worker's shard.
//!
//! A merged cursor over all of a trace's batches (differential's `cursor_list`) compares keys
//! and whole values across every batch at each step; with a dozen batches during ingestion
//! that made a top-k over 5,000 devices take several milliseconds. Here each batch is walked
//! on its own, linearly, and the `(device, state, count)` entries are consolidated by the
//! state's pointer: a state's insertion and its later retraction are clones of one `Arc`.
//! Entries borrow from the batches; nothing is cloned but what the caller keeps. Should two
//! equal states ever carry different pointers (a state rebuilt by deserialisation), a
//! retraction is left unmatched, and then every entry is consolidated by value instead.
//!
//! Invariant: the states visited are exactly those a merged cursor accumulating counts at
//! times `<= at` finds with a positive count — at most one per device.

use differential_dataflow::trace::cursor::{Cursor, Navigable};
use differential_dataflow::trace::TraceReader;
use timely::progress::frontier::Antichain;

use super::FeatureTrace;
use crate::event::DeviceId;
use crate::pause;
use crate::window::DeviceState;

/// Calls `visit` with every device's state at `at` in `trace`, in no particular order.
pub fn for_each_live(trace: &mut FeatureTrace, at: u64, mut visit: impl FnMut(&DeviceId, &DeviceState)) {
    live_states(trace, at, |live| {
        for (device, state) in live {
            visit(device, state);
        }
    });
}

/// Calls `read` once with every device's state at `at` in `trace`, in no particular order
/// (nothing when the trace cannot be read).
pub fn live_states(trace: &mut FeatureTrace, at: u64, read: impl FnOnce(&[(&DeviceId, &DeviceState)])) {
    let Some(batches) = trace.batches_through(Antichain::new().borrow()) else {
        return;
    };
    let mut entries: Vec<(usize, &DeviceId, &DeviceState, isize)> = Vec::new();
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
                    entries.push((val.address(), key, val, count));
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
    let mut consolidated: Vec<(usize, &DeviceId, &DeviceState, isize)> = Vec::with_capacity(entries.len());
    for e in entries.iter() {
        match consolidated.last_mut() {
            Some(last) if last.0 == e.0 => last.3 += e.3,
            _ => consolidated.push(*e),
        }
    }
    if consolidated.iter().all(|e| e.3 == 0 || e.3 == 1) {
        let live: Vec<(&DeviceId, &DeviceState)> = consolidated
            .into_iter()
            .filter(|e| e.3 == 1)
            .map(|(_, device, state, _)| (device, state))
            .collect();
        read(&live);
        return;
    }
    // Equal states behind different pointers: consolidate by value.
    entries.sort_by(|a, b| a.1.cmp(b.1).then_with(|| a.2.cmp(b.2)));
    let mut by_value: Vec<(&DeviceId, &DeviceState, isize)> = Vec::new();
    for &(_, device, state, count) in &entries {
        match by_value.last_mut() {
            Some(last) if last.0 == device && last.1 == state => last.2 += count,
            _ => by_value.push((device, state, count)),
        }
    }
    let live: Vec<(&DeviceId, &DeviceState)> = by_value
        .into_iter()
        .filter(|e| e.2 > 0)
        .map(|(device, state, _)| (device, state))
        .collect();
    read(&live);
}

#[cfg(test)]
mod tests {
    // Exercised against the merged-cursor reading in tests/query.rs and tests/models.rs
    // (every /top and retraining answer is compared with an independent computation).
}
