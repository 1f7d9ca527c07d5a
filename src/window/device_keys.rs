//! Device keys: every device a worker sees gets a small integer, its key, once, in the order
//! the worker first meets it. The window operator's changes and the `features` arrangement
//! carry keys, not names: the window operator visits a tick's devices in key order, so its
//! changes come out sorted and the arrangement's batcher and merges compare and copy 4-byte
//! integers instead of names. Names come back at the edges — outputs, queries, listings —
//! through [`DeviceKeys`], which the worker's [`super::StateStore`] keeps.
//!
//! The index from names to keys is an open-addressing table (linear probing, insert only)
//! whose entries hold the names inline, so that a name's entry follows from its hash alone:
//! the window operator hashes a tick's device names first and asks for each entry's memory a
//! few names before it looks the name up (a `std` map keeps its control bytes and its entries
//! apart, two cache misses per lookup that could not be asked for ahead; with 100,000
//! devices the lookup of every event's name was 3% of the workers' time). The hash is
//! foldhash, seeded at random per process (names come from the input).
//!
//! Invariants: a key names one device for the worker's life (keys are never reused); keys are
//! dense, `0..len`, and equal the window operator's slot numbers; keys are per worker and
//! never leave it (nothing keyed by them is exchanged), and no output is ordered by them
//! (their order depends on the order of arrival and the number of workers). The table is at
//! most three quarters full, its size a power of two; a name sits in its home entry or after
//! it with no empty entry in between.

use std::hash::BuildHasher;

use crate::event::DeviceId;

/// A device's key on one worker (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceKey(pub u32);

/// An empty entry's key.
const EMPTY: u32 = u32::MAX;

/// An entry of the index: a name and its key (`EMPTY`: none).
#[derive(Clone)]
struct Entry {
    name: DeviceId,
    key: u32,
}

/// The devices one worker has seen, by key and by name.
#[derive(Default)]
pub struct DeviceKeys {
    names: Vec<DeviceId>,
    index: Vec<Entry>,
}

/// A name's hash, for [`DeviceKeys::prefetch`] and [`DeviceKeys::key_or_insert_hashed`].
pub fn hash(name: &DeviceId) -> u64 {
    super::latest::hasher().hash_one(name.as_bytes())
}

impl DeviceKeys {
    /// The entry of `name` (hash `h`), or the empty one where it would go.
    fn find(&self, name: &DeviceId, h: u64) -> usize {
        let mask = self.index.len() - 1;
        let mut i = h as usize & mask;
        loop {
            let e = &self.index[i];
            if e.key == EMPTY || e.name == *name {
                return i;
            }
            i = (i + 1) & mask;
        }
    }

    /// The key of `name`, if the worker has seen it.
    pub fn key(&self, name: &DeviceId) -> Option<DeviceKey> {
        if self.index.is_empty() {
            return None;
        }
        let e = &self.index[self.find(name, hash(name))];
        (e.key != EMPTY).then_some(DeviceKey(e.key))
    }

    /// The key of `name`, a new one (the next integer) if the worker had not seen it; and
    /// whether it is new.
    pub fn key_or_insert(&mut self, name: &DeviceId) -> (DeviceKey, bool) {
        self.key_or_insert_hashed(name, hash(name))
    }

    /// [`DeviceKeys::key_or_insert`] with the name's [`hash`] already computed.
    pub fn key_or_insert_hashed(&mut self, name: &DeviceId, h: u64) -> (DeviceKey, bool) {
        if (self.names.len() + 1) * 4 > self.index.len() * 3 {
            self.grow();
        }
        let i = self.find(name, h);
        if self.index[i].key != EMPTY {
            return (DeviceKey(self.index[i].key), false);
        }
        let k = u32::try_from(self.names.len())
            .ok()
            .filter(|&k| k != EMPTY)
            .expect("fewer than 2^32 - 1 devices on one worker");
        self.names.push(name.clone());
        self.index[i] = Entry {
            name: name.clone(),
            key: k,
        };
        (DeviceKey(k), true)
    }

    /// Asks for the memory of the entry of the name with hash `h` (see `super::prefetch`).
    pub fn prefetch(&self, h: u64) {
        if !self.index.is_empty() {
            super::prefetch(&self.index[h as usize & (self.index.len() - 1)] as *const Entry);
        }
    }

    /// Doubles the index (16 entries at first) and puts every name back.
    fn grow(&mut self) {
        let size = (self.index.len() * 2).max(16);
        let empty = Entry {
            name: DeviceId::default(),
            key: EMPTY,
        };
        self.index = vec![empty; size];
        for (k, name) in self.names.iter().enumerate() {
            let mask = size - 1;
            let mut i = hash(name) as usize & mask;
            while self.index[i].key != EMPTY {
                i = (i + 1) & mask;
            }
            self.index[i] = Entry {
                name: name.clone(),
                key: k as u32,
            };
        }
    }

    /// The name of `key`. Panics for a key this worker did not give.
    pub fn name(&self, key: DeviceKey) -> &DeviceId {
        &self.names[key.0 as usize]
    }

    /// Devices seen.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_dense_stable_and_name_their_device() {
        let mut keys = DeviceKeys::default();
        assert_eq!(keys.key(&DeviceId::from("none yet")), None);
        let names = ["vm-2", "vm-1", "a-much-longer-device-name-than-inline", "vm-3", ""];
        for (i, n) in names.iter().enumerate() {
            assert_eq!(keys.key_or_insert(&DeviceId::from(*n)), (DeviceKey(i as u32), true));
        }
        for (i, n) in names.iter().enumerate() {
            let name = DeviceId::from(*n);
            assert_eq!(keys.key_or_insert(&name), (DeviceKey(i as u32), false));
            assert_eq!(keys.key(&name), Some(DeviceKey(i as u32)));
            assert_eq!(keys.name(DeviceKey(i as u32)), &name);
        }
        assert_eq!(keys.key(&DeviceId::from("unseen")), None);
        assert_eq!(keys.len(), names.len());
    }

    #[test]
    fn many_names_against_a_std_map() {
        let mut keys = DeviceKeys::default();
        let mut reference = std::collections::HashMap::new();
        let mut rng = 11u64;
        for _ in 0..50_000 {
            rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let name = DeviceId::from(format!("host-{}.internal", (rng >> 33) % 20_000).as_str());
            let next = reference.len() as u32;
            let want = *reference.entry(name.clone()).or_insert(next);
            let (got, new) = keys.key_or_insert(&name);
            assert_eq!(got, DeviceKey(want));
            assert_eq!(new, want == next);
        }
        assert_eq!(keys.len(), reference.len());
        for (name, k) in &reference {
            assert_eq!(keys.key(name), Some(DeviceKey(*k)));
            assert_eq!(keys.name(DeviceKey(*k)), name);
        }
        assert!(keys.index.len() * 3 >= keys.len() * 4, "at most three quarters full");
    }
}
