//! When each destination (port) a device's windows hold was last seen: an open-addressing
//! table (linear probing, deletion by shifting back) in which a key's slot follows from the
//! key alone, so the window operator asks for that memory a few devices ahead of the
//! insertion that reads it (a `std` map hides where a key lives; its probe was half of an
//! insertion's time with 100,000 devices). Keys are never zero (an absent destination or port
//! is not recorded), so a zero key marks an empty slot. The hash is foldhash, seeded at random
//! per process (destinations come from the input: a fixed hash would let crafted addresses
//! collide).
//!
//! Invariants: at most three quarters of the slots are full, their number a power of two (8
//! or more once anything is stored); a key sits in its home slot or after it with no empty
//! slot in between, which a removal keeps by moving later entries back.

use std::hash::BuildHasher;
use std::sync::OnceLock;

/// A key of the table: an address or a port, never zero when stored.
pub trait Key: Copy + Eq + Default + std::hash::Hash {}
impl Key for u128 {}
impl Key for u16 {}

/// When a key was last seen: the tick, and the sequence number of the tick's first event
/// with it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latest {
    pub tick: u64,
    pub seq: u64,
}

/// The table (see the module documentation).
#[derive(Clone, Debug, Default)]
pub struct LatestMap<K: Key> {
    slots: Vec<(K, Latest)>,
    len: usize,
}

/// The process's seeded hasher for the window operator's tables (this one and the device
/// index, `super::device_keys`).
pub(super) fn hasher() -> &'static foldhash::fast::RandomState {
    static STATE: OnceLock<foldhash::fast::RandomState> = OnceLock::new();
    STATE.get_or_init(Default::default)
}

impl<K: Key> LatestMap<K> {
    fn home(&self, key: K) -> usize {
        hasher().hash_one(key) as usize & (self.slots.len() - 1)
    }

    /// The slot holding `key`, if any.
    fn find(&self, key: K) -> Option<usize> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let k = self.slots[i].0;
            if k == key {
                return Some(i);
            }
            if k == K::default() {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(test)]
    pub fn get(&self, key: K) -> Option<Latest> {
        self.find(key).map(|i| self.slots[i].1)
    }

    /// Asks for the memory of `key`'s home slot (see `super::prefetch`).
    pub fn prefetch(&self, key: K) {
        if !self.slots.is_empty() {
            super::prefetch(&self.slots[self.home(key)] as *const (K, Latest));
        }
    }

    /// Records that `key` (not zero) is seen at `now` by event `seq`; returns the tick it was
    /// last seen before (`Some(now)`: already seen at `now`) and the event it was seen by
    /// then, when that event is now superseded (an earlier tick's).
    pub fn note(&mut self, key: K, now: u64, seq: u64) -> (Option<u64>, Option<u64>) {
        debug_assert!(key != K::default(), "zero keys are not stored");
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            self.resize((self.len + 1) * 2);
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let (k, old) = &mut self.slots[i];
            if *k == K::default() {
                *k = key;
                *old = Latest { tick: now, seq };
                self.len += 1;
                return (None, None);
            }
            if *k == key {
                if old.tick == now {
                    return (Some(now), None);
                }
                let before = *old;
                *old = Latest { tick: now, seq };
                return (Some(before.tick), Some(before.seq));
            }
            i = (i + 1) & mask;
        }
    }

    /// Forgets `key` (nothing when absent).
    pub fn remove(&mut self, key: K) {
        let Some(mut hole) = self.find(key) else { return };
        let mask = self.slots.len() - 1;
        let mut j = (hole + 1) & mask;
        loop {
            let k = self.slots[j].0;
            if k == K::default() {
                break;
            }
            // The entry at `j` may move back into the hole when the hole lies between its
            // home and `j` (cyclically): its probe then still passes no empty slot.
            let home = self.home(k);
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.slots[hole] = self.slots[j];
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = (K::default(), Latest::default());
        self.len -= 1;
    }

    /// Keeps only the keys whose latest sighting satisfies `keep`.
    pub fn retain(&mut self, keep: impl Fn(&Latest) -> bool) {
        let kept: Vec<(K, Latest)> = self
            .slots
            .iter()
            .filter(|(k, l)| *k != K::default() && keep(l))
            .copied()
            .collect();
        if kept.len() == self.len {
            return;
        }
        // Rebuilt at the size the kept keys need (an emptied table gives its memory back).
        self.slots = Vec::new();
        self.len = 0;
        if !kept.is_empty() {
            self.resize(kept.len() * 2);
        }
        for (k, l) in kept {
            self.insert_new(k, l);
        }
    }

    /// Rebuilds the table with `capacity` slots (rounded up to a power of two, at least 8).
    fn resize(&mut self, capacity: usize) {
        let capacity = capacity.next_power_of_two().max(8);
        let old = std::mem::replace(&mut self.slots, vec![(K::default(), Latest::default()); capacity]);
        self.len = 0;
        for (k, l) in old {
            if k != K::default() {
                self.insert_new(k, l);
            }
        }
    }

    /// Puts an absent key in (the table has room).
    fn insert_new(&mut self, key: K, latest: Latest) {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        while self.slots[i].0 != K::default() {
            i = (i + 1) & mask;
        }
        self.slots[i] = (key, latest);
        self.len += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Random notes, removals and retains against a `std` map doing the same.
    #[test]
    fn behaves_as_a_map() {
        let mut next = super::super::test_random(0x9e37_79b9_7f4a_7c15);
        for keys in [3u64, 20, 300] {
            let mut table: LatestMap<u128> = LatestMap::default();
            let mut reference: HashMap<u128, Latest> = HashMap::new();
            for step in 0..20_000u64 {
                let key = 1 + next(keys) as u128 * 0x1_0000_0001;
                let now = step / 3;
                match next(10) {
                    0..=5 => {
                        let expect = match reference.get(&key).copied() {
                            None => (None, None),
                            Some(l) if l.tick == now => (Some(now), None),
                            Some(l) => (Some(l.tick), Some(l.seq)),
                        };
                        if expect.0 != Some(now) {
                            reference.insert(key, Latest { tick: now, seq: step });
                        }
                        assert_eq!(table.note(key, now, step), expect, "note {key} at {step}");
                    }
                    6..=8 => {
                        reference.remove(&key);
                        table.remove(key);
                    }
                    _ => {
                        let cut = now.saturating_sub(next(50));
                        reference.retain(|_, l| l.tick >= cut);
                        table.retain(|l| l.tick >= cut);
                    }
                }
                assert_eq!(table.len(), reference.len());
                if step % 97 == 0 {
                    for k in 1..=keys as u128 + 1 {
                        let key = 1 + (k - 1) * 0x1_0000_0001;
                        assert_eq!(table.get(key), reference.get(&key).copied(), "key {key}");
                    }
                }
            }
            assert!(table.slots.len() <= 8 || table.len * 4 <= table.slots.len() * 3);
        }
    }

    #[test]
    fn ports_and_an_emptied_table() {
        let mut t: LatestMap<u16> = LatestMap::default();
        assert_eq!(t.note(443, 5, 0), (None, None));
        assert_eq!(t.note(443, 5, 1), (Some(5), None));
        assert_eq!(t.note(443, 7, 2), (Some(5), Some(0)));
        t.remove(443);
        t.remove(80);
        assert!(t.is_empty());
        assert_eq!(t.get(443), None);
        t.prefetch(22);
    }
}
