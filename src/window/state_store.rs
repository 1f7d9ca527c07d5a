//! The store of a worker's device states: the `features` arrangement holds 8-byte handles
//! ([`StateRef`]) into it instead of the states themselves, so that its batchers and merges
//! move plain integers — no reference count to touch on a cold line, no allocation to free
//! per state, no deep compare of two states of one device.
//!
//! The window operator puts every state it emits ([`StateStore::insert`]) and retires the
//! previous one of the device at the tick it retracts it ([`StateStore::retire`]). A retired
//! state is freed once every reader has said, through its [`Hold`], that it will read only
//! at that tick or later: from then on the state's accumulated count is zero wherever it is
//! read, so no reader looks it up (readers dereference only handles whose accumulated count
//! at their time is positive, and stream consumers only handles of updates at or after
//! their hold). Freed slots are reused, so in steady state nothing is allocated per state.
//!
//! Invariants: a handle names one state for as long as the state is in the store (the slot's
//! generation changes when it is reused, so a handle never names another state); with no
//! hold registered nothing is freed; holds only move forward. The store is per worker
//! (`Rc`, not `Send`): handles never leave the worker that made them (the arrangement is not
//! exchanged).
//!
//! The store also keeps the worker's [`DeviceKeys`] (the arrangement's keys and their names),
//! which every reader of the handles needs too.

use std::cell::{Cell, Ref, RefCell, RefMut};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use super::device_keys::{DeviceKey, DeviceKeys};
use super::stats::{DeviceState, DeviceWindows};
use crate::event::DeviceId;

/// A state in a worker's [`StateStore`]: its slot and the slot's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StateRef {
    index: u32,
    generation: u32,
}

/// A slot of the store: a state, or a freed one waiting for reuse.
struct Slot {
    generation: u32,
    live: bool,
    windows: DeviceWindows,
}

/// Slots per chunk of the store: the store grows a chunk at a time and never moves a slot
/// (a growing vector would copy every state and, while it does, hold both copies).
const CHUNK: usize = 1024;

/// The slots, in chunks of [`CHUNK`].
#[derive(Default)]
struct Slots {
    chunks: Vec<Vec<Slot>>,
    len: usize,
}

impl Slots {
    fn get(&self, index: u32) -> Option<&Slot> {
        let i = index as usize;
        self.chunks.get(i / CHUNK).and_then(|c| c.get(i % CHUNK))
    }

    fn at(&self, index: u32) -> &Slot {
        self.get(index).expect("a handle of this store")
    }

    fn at_mut(&mut self, index: u32) -> &mut Slot {
        let i = index as usize;
        &mut self.chunks[i / CHUNK][i % CHUNK]
    }

    fn push(&mut self, slot: Slot) -> u32 {
        let index = u32::try_from(self.len).expect("fewer than 2^32 states on one worker");
        if self.len % CHUNK == 0 {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        self.chunks.last_mut().expect("a chunk").push(slot);
        self.len += 1;
        index
    }
}

#[derive(Default)]
struct Inner {
    slots: Slots,
    free: Vec<u32>,
    /// Retired states by the tick they were retracted at, ticks non-decreasing.
    retired: VecDeque<(u64, StateRef)>,
    holds: Vec<Weak<Cell<u64>>>,
}

/// A worker's device states (see the module documentation).
#[derive(Default)]
pub struct StateStore {
    inner: RefCell<Inner>,
    keys: RefCell<DeviceKeys>,
}

/// A reader's promise to the store: from now on it reads at ticks `>=` the hold only (see
/// [`StateStore::hold`]). Dropping it withdraws the promise's constraint.
pub struct Hold(Rc<Cell<u64>>);

impl Hold {
    /// Moves the hold to `tick` (never backwards).
    pub fn advance(&self, tick: u64) {
        if tick > self.0.get() {
            self.0.set(tick);
        }
    }
}

impl StateStore {
    pub fn new() -> Rc<Self> {
        Rc::new(StateStore::default())
    }

    /// Keeps `windows` and returns its handle.
    pub fn insert(&self, windows: DeviceWindows) -> StateRef {
        self.insert_with(|w| *w = windows)
    }

    /// Keeps the state `fill` writes and returns its handle. `fill` is handed a freed state
    /// to overwrite in place (every field of it: it holds an old state's values) or a default
    /// one, and must not use the store.
    pub fn insert_with(&self, fill: impl FnOnce(&mut DeviceWindows)) -> StateRef {
        let mut inner = self.inner.borrow_mut();
        if let Some(index) = inner.free.pop() {
            let slot = inner.slots.at_mut(index);
            slot.generation = slot.generation.wrapping_add(1);
            slot.live = true;
            fill(&mut slot.windows);
            return StateRef {
                index,
                generation: slot.generation,
            };
        }
        let mut windows = DeviceWindows::default();
        fill(&mut windows);
        let index = inner.slots.push(Slot {
            generation: 0,
            live: true,
            windows,
        });
        StateRef { index, generation: 0 }
    }

    /// Marks `state` as retracted at `tick` (ticks non-decreasing across calls): it is freed
    /// once every hold has reached `tick`.
    pub fn retire(&self, state: StateRef, tick: u64) {
        let mut inner = self.inner.borrow_mut();
        debug_assert!(
            inner.retired.back().is_none_or(|&(t, _)| t <= tick),
            "retired in tick order"
        );
        inner.retired.push_back((tick, state));
    }

    /// The state behind `state`. Panics if it was freed: a reader broke its hold's promise.
    pub fn get(&self, state: StateRef) -> Ref<'_, DeviceWindows> {
        Ref::map(self.inner.borrow(), |inner| {
            let slot = inner.slots.at(state.index);
            assert!(
                slot.live && slot.generation == state.generation,
                "a state read after it was freed ({state:?}): a reader read below its hold"
            );
            &slot.windows
        })
    }

    /// An owned copy of the state behind `state` (for what outlives the worker's step: query
    /// answers, training sets, sinks).
    pub fn snapshot(&self, state: StateRef) -> DeviceState {
        DeviceState::new(self.get(state).clone())
    }

    /// Asks for the memory of the slot the state inserted `ahead` insertions from now will
    /// take (when no state is freed meanwhile): every line of it is written then.
    pub fn prefetch_free(&self, ahead: usize) {
        let inner = self.inner.borrow();
        if let Some(&index) = inner.free.len().checked_sub(ahead + 1).and_then(|k| inner.free.get(k)) {
            super::prefetch_value(inner.slots.at(index) as *const Slot);
        }
    }

    /// The worker's device keys.
    pub fn keys(&self) -> Ref<'_, DeviceKeys> {
        self.keys.borrow()
    }

    /// The worker's device keys, to add to (the window operator's).
    pub fn keys_mut(&self) -> RefMut<'_, DeviceKeys> {
        self.keys.borrow_mut()
    }

    /// The name of device `key` (a copy: names are short and inline).
    pub fn device_name(&self, key: DeviceKey) -> DeviceId {
        self.keys.borrow().name(key).clone()
    }

    /// A new hold, at tick 0 until advanced.
    pub fn hold(&self) -> Hold {
        let cell = Rc::new(Cell::new(0));
        self.inner.borrow_mut().holds.push(Rc::downgrade(&cell));
        Hold(cell)
    }

    /// Frees the retired states every hold has passed; returns how many.
    pub fn collect(&self) -> usize {
        let mut inner = self.inner.borrow_mut();
        inner.holds.retain(|h| h.strong_count() > 0);
        let Some(upto) = inner.holds.iter().filter_map(|h| h.upgrade()).map(|h| h.get()).min() else {
            return 0;
        };
        let mut freed = 0;
        while let Some(&(tick, state)) = inner.retired.front() {
            if tick > upto {
                break;
            }
            inner.retired.pop_front();
            let slot = inner.slots.at_mut(state.index);
            debug_assert!(slot.live && slot.generation == state.generation, "retired once");
            slot.live = false;
            inner.free.push(state.index);
            freed += 1;
        }
        freed
    }

    /// States in the store (live or retired, not yet freed).
    pub fn len(&self) -> usize {
        let inner = self.inner.borrow();
        inner.slots.len - inner.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(last_seen_ms: i64) -> DeviceWindows {
        DeviceWindows {
            last_seen_ms,
            windows: Default::default(),
        }
    }

    #[test]
    fn a_retired_state_lives_until_every_hold_passes_its_tick() {
        let store = StateStore::new();
        let a = store.hold();
        let b = store.hold();
        let s = store.insert(windows(1));
        store.retire(s, 5);
        a.advance(9);
        b.advance(4);
        assert_eq!(store.collect(), 0);
        assert_eq!(store.get(s).last_seen_ms, 1);
        b.advance(5);
        assert_eq!(store.collect(), 1);
        assert!(store.is_empty());
    }

    #[test]
    fn a_reused_slot_gets_a_new_handle() {
        let store = StateStore::new();
        let hold = store.hold();
        let s = store.insert(windows(1));
        store.retire(s, 1);
        hold.advance(1);
        store.collect();
        let t = store.insert(windows(2));
        assert_ne!(s, t);
        assert_eq!(store.get(t).last_seen_ms, 2);
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| store.get(s).last_seen_ms));
        assert!(read.is_err(), "a freed handle is never read as another state");
    }

    #[test]
    fn without_holds_nothing_is_freed_and_dropped_holds_stop_counting() {
        let store = StateStore::new();
        let s = store.insert(windows(1));
        store.retire(s, 0);
        assert_eq!(store.collect(), 0);
        let stuck = store.hold();
        let moving = store.hold();
        moving.advance(3);
        assert_eq!(store.collect(), 1, "tick 0 is passed by both");
        let s = store.insert(windows(2));
        store.retire(s, 2);
        assert_eq!(store.collect(), 0, "the stuck hold is at 0");
        drop(stuck);
        assert_eq!(store.collect(), 1);
    }
}
