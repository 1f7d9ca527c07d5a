//! Updates held by tick until the input frontier passes them, with the capability they are
//! emitted at: what every operator here that applies changes "once the frontier has passed
//! their time" shares (anomaly episodes, model re-scoring; the window operator, with one
//! capability per output, uses [`hold_target`]).
//!
//! Invariants: while anything is buffered, or the input may still bring updates, the buffer
//! holds a capability no later than its earliest buffered tick; [`TickBuffer::release`]
//! moves it to the earlier of the next buffered tick and the input frontier, and drops it
//! once the input is done (the buffer is then empty: [`TickBuffer::pop_complete`] hands out
//! every tick when there is no frontier).

use std::collections::BTreeMap;

use timely::dataflow::operators::{Capability, InputCapability};

/// Where an operator buffering by tick may hold its capabilities: the earlier of its next
/// buffered tick and the input frontier `upper`.
pub fn hold_target(upper: u64, next_pending: Option<u64>) -> u64 {
    next_pending.map_or(upper, |n| n.min(upper))
}

/// Downgrades each capability to `target` when that moves it forward.
pub fn downgrade_to(caps: &mut [Capability<u64>], target: u64) {
    for c in caps {
        if target > *c.time() {
            c.downgrade(&target);
        }
    }
}

/// The updates of each tick (`D`: whatever the operator collects for one tick) and the
/// capability of output 0 to emit them at.
pub struct TickBuffer<D> {
    pending: BTreeMap<u64, D>,
    cap: Option<Capability<u64>>,
}

impl<D: Default> Default for TickBuffer<D> {
    fn default() -> Self {
        TickBuffer {
            pending: BTreeMap::new(),
            cap: None,
        }
    }
}

impl<D: Default> TickBuffer<D> {
    /// Notes a message arriving under `time`: holds a capability at least as early.
    pub fn stamp(&mut self, time: &InputCapability<u64>) {
        let Some(&t) = time.least() else { return };
        if self.cap.as_ref().is_none_or(|c| t < *c.time()) {
            self.cap = time.retain_least(0);
        }
    }

    /// The updates buffered for `tick`.
    pub fn at(&mut self, tick: u64) -> &mut D {
        self.pending.entry(tick).or_default()
    }

    /// The earliest buffered tick the frontier `upper` has passed (every tick when the input
    /// is done), taken out of the buffer.
    pub fn pop_complete(&mut self, upper: Option<u64>) -> Option<(u64, D)> {
        let (&t, _) = self.pending.first_key_value()?;
        if upper.is_some_and(|u| t >= u) {
            return None;
        }
        self.pending.pop_first()
    }

    /// The capability to emit at (held whenever something was buffered and not released).
    pub fn capability(&self) -> &Capability<u64> {
        self.cap.as_ref().expect("a capability while changes are pending")
    }

    /// Moves the capability to the earlier of the next buffered tick and `upper`, or drops it
    /// when the input is done.
    pub fn release(&mut self, upper: Option<u64>) {
        match upper {
            None => self.cap = None,
            Some(u) => {
                let target = hold_target(u, self.pending.keys().next().copied());
                if let Some(c) = self.cap.as_mut() {
                    downgrade_to(std::slice::from_mut(c), target);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hold_target_is_the_earlier_of_the_next_tick_and_the_frontier() {
        assert_eq!(hold_target(10, None), 10);
        assert_eq!(hold_target(10, Some(7)), 7);
        assert_eq!(hold_target(10, Some(12)), 10);
    }

    #[test]
    fn complete_ticks_come_out_in_order_and_only_below_the_frontier() {
        let mut b: TickBuffer<Vec<u32>> = TickBuffer::default();
        b.at(5).push(1);
        b.at(3).push(2);
        b.at(5).push(3);
        assert_eq!(b.pop_complete(Some(3)), None);
        assert_eq!(b.pop_complete(Some(6)), Some((3, vec![2])));
        assert_eq!(b.pop_complete(Some(6)), Some((5, vec![1, 3])));
        b.at(9).push(4);
        assert_eq!(b.pop_complete(None), Some((9, vec![4])));
        assert_eq!(b.pop_complete(None), None);
    }
}
