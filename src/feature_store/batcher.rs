//! The batcher of the `features` arrangement: what differential's merge batcher does, for
//! the shape the window operator emits.
//!
//! The merge batcher sorts every container it is handed into a chunk and merges chunks in a
//! geometric ladder as they arrive, because in general updates trickle in for times far
//! apart and a batch is sealed rarely. Here every update arrives at a tick the window
//! operator is finishing, and the arrangement's frontier passes it within an activation or
//! two: the pending updates are few ticks' worth, sealed soon. So they are only appended as
//! they come, and sorted once, when sealed — one `sort_unstable` of small tuples (a device
//! name and an 8-byte handle) instead of a sort per container plus the ladder's merges.
//!
//! Invariant: a sealed batch holds exactly the pending updates at times not beyond `upper`,
//! sorted by `(device, state, time)` and consolidated (no two equal triples, no zero diff);
//! the rest stay pending, and the reported frontier is the least of their times.

use differential_dataflow::batcher::merge::Sealer;
use differential_dataflow::batcher::{Batcher, Extract};
use differential_dataflow::logging::Logger;
use differential_dataflow::trace::implementations::ord_neu::OrdValBatch;
use differential_dataflow::trace::implementations::{ValBuilder, Vector};
use timely::progress::frontier::{Antichain, AntichainRef};

use crate::event::DeviceId;
use crate::window::StateRef;

/// One update of the features collection.
type Update = ((DeviceId, StateRef), u64, isize);

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
                    ready.push(update.clone());
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
        sort(&mut ready);
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
        let batch = <ValBuilder<DeviceId, StateRef, u64, isize> as Sealer<Vec<Update>>>::seal(&mut chain);
        (batch, self.frontier.borrow())
    }
}

/// The first 16 bytes of `name`, zero-padded, as a big-endian integer: ordered as the names
/// are wherever two differ (a name that is a prefix of another pads with zeros, which are
/// less than or equal to any byte), equal only if their first 16 bytes, padded, are.
fn prefix(name: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = name.len().min(16);
    bytes[..n].copy_from_slice(&name[..n]);
    u128::from_be_bytes(bytes)
}

/// Sorts `updates` by `(device, state, time)`: by the devices' name prefixes, read once per
/// update, and whole names, states and times only between equal prefixes.
fn sort(updates: &mut Vec<Update>) {
    let mut order: Vec<(u128, u32)> = updates
        .iter()
        .enumerate()
        .map(|(i, u)| (prefix(u.0 .0.as_bytes()), i as u32))
        .collect();
    order.sort_unstable_by(|x, y| {
        x.0.cmp(&y.0).then_with(|| {
            let (a, b) = (&updates[x.1 as usize], &updates[y.1 as usize]);
            (&a.0, a.1).cmp(&(&b.0, b.1))
        })
    });
    let sorted: Vec<Update> = order.iter().map(|&(_, i)| updates[i as usize].clone()).collect();
    *updates = sorted;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::{DeviceWindows, StateStore};
    use differential_dataflow::trace::cursor::Cursor;
    use differential_dataflow::trace::Navigable;

    /// Every `(device, state, time, diff)` of a sealed batch, in its order.
    fn contents(batch: &OrdValBatch<Vector<Update>>) -> Vec<(DeviceId, StateRef, u64, isize)> {
        let mut out = Vec::new();
        let mut cursor = batch.cursor();
        while let Some(key) = cursor.get_key(batch) {
            while let Some(val) = cursor.get_val(batch) {
                cursor.map_times(batch, |t, d| out.push((key.clone(), *val, *t, *d)));
                cursor.step_val(batch);
            }
            cursor.step_key(batch);
        }
        out
    }

    #[test]
    fn name_prefixes_order_as_names_do() {
        let names = [
            "",
            "a",
            "a\0",
            "a\0\x01",
            "ab",
            "abcdefghijklmnop",
            "abcdefghijklmnopq",
            "abcdefghijklmnopr",
            "b",
            "\u{ff}",
            "vm-000123",
            "vm-0001230",
            "ip-10-0-1-23.ec2.internal",
            "ip-10-0-1-23.ec2.internal2",
        ];
        for a in names {
            for b in names {
                let (pa, pb) = (prefix(a.as_bytes()), prefix(b.as_bytes()));
                if pa != pb {
                    assert_eq!(pa.cmp(&pb), a.cmp(b), "{a:?} vs {b:?}");
                }
            }
        }
        // And the whole sort against a plain one, over names sharing long prefixes.
        let store = StateStore::new();
        let mut updates: Vec<Update> = Vec::new();
        let mut rng = 7u64;
        for i in 0..2_000u64 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let name = format!("host-{:03}.example.internal{}", rng >> 61, (rng >> 40) % 3);
            let state = store.insert(DeviceWindows::default());
            updates.push((
                (DeviceId::from(name.as_str()), state),
                (rng >> 20) % 5,
                if i % 2 == 0 { 1 } else { -1 },
            ));
        }
        let mut plain = updates.clone();
        plain.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        sort(&mut updates);
        assert_eq!(updates, plain);
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
        let d = |n: &str| DeviceId::from(n);
        let mut b = ChangeBatcher::new(None, 0);
        b.insert(&mut vec![
            ((d("b"), s[1]), 3, 1),
            ((d("a"), s[0]), 3, 1),
            ((d("c"), s[2]), 5, 1),
            ((d("a"), s[3]), 4, 1),
        ]);
        b.insert(&mut vec![
            ((d("a"), s[0]), 4, -1),
            ((d("b"), s[1]), 3, -1),
            ((d("a"), s[0]), 3, 1),
        ]);
        let (batch, frontier) = b.extract(Antichain::from_elem(5).borrow());
        assert_eq!(frontier.to_vec(), vec![5], "the update at 5 stays");
        let got = contents(&batch.expect("a batch"));
        // `b` inserted and retracted at 3: gone. `a`'s two insertions at 3: summed.
        assert_eq!(
            got,
            vec![(d("a"), s[0], 3, 2), (d("a"), s[0], 4, -1), (d("a"), s[3], 4, 1)]
        );
        let (batch, frontier) = b.extract(Antichain::new().borrow());
        assert!(frontier.is_empty());
        assert_eq!(contents(&batch.expect("a batch")), vec![(d("c"), s[2], 5, 1)]);
        let (batch, _) = b.extract(Antichain::new().borrow());
        assert!(batch.is_none(), "nothing left");
    }
}
