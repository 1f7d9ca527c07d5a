//! The batcher of the `features` arrangement: what differential's merge batcher does, for
//! the shape the window operator emits.
//!
//! The merge batcher sorts every container it is handed into a chunk and merges chunks in a
//! geometric ladder as they arrive, because in general updates trickle in for times far
//! apart and a batch is sealed rarely. Here every update arrives at a tick the window
//! operator is finishing, and the arrangement's frontier passes it within an activation or
//! two: the pending updates are few ticks' worth, sealed soon. And the window operator emits
//! each tick's changes already sorted by `(device key, handle)` (it visits a tick's devices
//! in key order). So updates are only appended as they come and, when sealed, put in order by
//! one stable sort that finds those sorted runs and merges them (one run per tick; none to
//! merge when one tick is sealed, the usual case) — integer compares, nothing else touched.
//!
//! Invariant: a sealed batch holds exactly the pending updates at times not beyond `upper`,
//! sorted by `(device, state, time)` and consolidated (no two equal triples, no zero diff);
//! the rest stay pending, and the reported frontier is the least of their times. (Sorted input
//! makes it fast, not correct: any order is sealed the same.)

use differential_dataflow::batcher::merge::Sealer;
use differential_dataflow::batcher::{Batcher, Extract};
use differential_dataflow::logging::Logger;
use differential_dataflow::trace::implementations::ord_neu::OrdValBatch;
use differential_dataflow::trace::implementations::{ValBuilder, Vector};
use timely::progress::frontier::{Antichain, AntichainRef};

use crate::window::{DeviceKey, StateRef};

/// One update of the features collection.
type Update = ((DeviceKey, StateRef), u64, isize);

/// Collects the features collection's updates and seals them into batches (see the module
/// documentation).
pub struct ChangeBatcher {
    pending: Vec<Update>,
    frontier: Antichain<u64>,
}

impl ChangeBatcher {
    /// The constructor `arrange_core` takes.
    pub fn new(_logger: Option<Logger>, _operator_id: usize) -> Self {
        ChangeBatcher {
            pending: Vec::new(),
            frontier: Antichain::new(),
        }
    }
}

impl Batcher<Vec<Update>> for ChangeBatcher {
    fn insert(&mut self, container: &mut Vec<Update>) {
        self.pending.append(container);
    }
}

impl Extract for ChangeBatcher {
    type Time = u64;
    type Output = OrdValBatch<Vector<Update>>;

    fn extract<'a>(&'a mut self, upper: AntichainRef<'_, u64>) -> (Option<Self::Output>, AntichainRef<'a, u64>) {
        let upper = upper.first().copied();
        let mut ready = Vec::new();
        match upper {
            // Usually every pending update is ready: the whole vector is taken.
            Some(u) if self.pending.iter().any(|update| update.1 >= u) => self.pending.retain(|update| {
                let take = update.1 < u;
                if take {
                    ready.push(*update);
                }
                !take
            }),
            _ => std::mem::swap(&mut ready, &mut self.pending),
        }
        self.frontier.clear();
        if let Some(least) = self.pending.iter().map(|update| update.1).min() {
            self.frontier.insert(least);
        }
        if ready.is_empty() {
            return (None, self.frontier.borrow());
        }
        // Stable: it merges the sorted runs it finds (see the module documentation).
        ready.sort_by_key(|update| (update.0, update.1));
        // Consolidate: equal `(device, state, time)` summed, zeros dropped.
        let mut kept = 0;
        for i in 0..ready.len() {
            if kept > 0 && ready[kept - 1].0 == ready[i].0 && ready[kept - 1].1 == ready[i].1 {
                ready[kept - 1].2 += ready[i].2;
            } else {
                if kept > 0 && ready[kept - 1].2 == 0 {
                    kept -= 1;
                }
                ready.swap(kept, i);
                kept += 1;
            }
        }
        if kept > 0 && ready[kept - 1].2 == 0 {
            kept -= 1;
        }
        ready.truncate(kept);
        if ready.is_empty() {
            return (None, self.frontier.borrow());
        }
        let mut chain = vec![ready];
        let batch = <ValBuilder<DeviceKey, StateRef, u64, isize> as Sealer<Vec<Update>>>::seal(&mut chain);
        (batch, self.frontier.borrow())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{DeviceWindows, StateStore};
    use differential_dataflow::trace::cursor::Cursor;
    use differential_dataflow::trace::Navigable;

    /// Every `(device, state, time, diff)` of a sealed batch, in its order.
    fn contents(batch: &OrdValBatch<Vector<Update>>) -> Vec<(DeviceKey, StateRef, u64, isize)> {
        let mut out = Vec::new();
        let mut cursor = batch.cursor();
        while let Some(key) = cursor.get_key(batch) {
            while let Some(val) = cursor.get_val(batch) {
                cursor.map_times(batch, |t, d| out.push((*key, *val, *t, *d)));
                cursor.step_val(batch);
            }
            cursor.step_key(batch);
        }
        out
    }

    /// The batch of `updates` computed another way: a `BTreeMap` summing the diffs.
    fn reference(updates: &[Update]) -> Vec<(DeviceKey, StateRef, u64, isize)> {
        let mut sums = std::collections::BTreeMap::new();
        for ((k, s), t, r) in updates {
            *sums.entry((*k, *s, *t)).or_insert(0isize) += r;
        }
        sums.into_iter()
            .filter(|(_, r)| *r != 0)
            .map(|((k, s, t), r)| (k, s, t, r))
            .collect()
    }

    #[test]
    fn seals_runs_and_any_order_alike() {
        let store = StateStore::new();
        let states: Vec<StateRef> = (0..64).map(|_| store.insert(DeviceWindows::default())).collect();
        let mut rng = 7u64;
        let mut next = |n: u64| {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (rng >> 33) % n
        };
        // Three ticks' sorted runs, as the window operator emits them, then the same
        // updates shuffled: both seal to the reference.
        let mut runs: Vec<Update> = Vec::new();
        for tick in 0..3u64 {
            let mut run: Vec<Update> = (0..200)
                .map(|_| {
                    let key = DeviceKey(next(40) as u32);
                    let state = states[next(64) as usize];
                    ((key, state), tick, if next(2) == 0 { 1 } else { -1 })
                })
                .collect();
            run.sort();
            runs.extend(run);
        }
        let mut shuffled = runs.clone();
        for i in (1..shuffled.len()).rev() {
            shuffled.swap(i, next(i as u64 + 1) as usize);
        }
        for input in [runs.clone(), shuffled] {
            let mut b = ChangeBatcher::new(None, 0);
            let (mut first, mut second) = (input[..250].to_vec(), input[250..].to_vec());
            b.insert(&mut first);
            b.insert(&mut second);
            let (batch, frontier) = b.extract(Antichain::new().borrow());
            assert!(frontier.is_empty());
            assert_eq!(contents(&batch.expect("a batch")), reference(&runs));
        }
    }

    #[test]
    fn seals_the_updates_below_upper_sorted_and_consolidated() {
        let store = StateStore::new();
        let s: Vec<StateRef> = (0..4)
            .map(|i| {
                store.insert(DeviceWindows {
                    last_seen_ms: i,
                    ..Default::default()
                })
            })
            .collect();
        let (a, b_, c) = (DeviceKey(0), DeviceKey(1), DeviceKey(2));
        let mut b = ChangeBatcher::new(None, 0);
        b.insert(&mut vec![
            ((b_, s[1]), 3, 1),
            ((a, s[0]), 3, 1),
            ((c, s[2]), 5, 1),
            ((a, s[3]), 4, 1),
        ]);
        b.insert(&mut vec![((a, s[0]), 4, -1), ((b_, s[1]), 3, -1), ((a, s[0]), 3, 1)]);
        let (batch, frontier) = b.extract(Antichain::from_elem(5).borrow());
        assert_eq!(frontier.to_vec(), vec![5], "the update at 5 stays");
        let got = contents(&batch.expect("a batch"));
        // `b_` inserted and retracted at 3: gone. `a`'s two insertions at 3: summed.
        assert_eq!(got, vec![(a, s[0], 3, 2), (a, s[0], 4, -1), (a, s[3], 4, 1)]);
        let (batch, frontier) = b.extract(Antichain::new().borrow());
        assert!(frontier.is_empty());
        assert_eq!(contents(&batch.expect("a batch")), vec![(c, s[2], 5, 1)]);
        let (batch, _) = b.extract(Antichain::new().borrow());
        assert!(batch.is_none(), "nothing left");
    }
}
