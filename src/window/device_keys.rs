//! Device keys: every device a worker sees gets a small integer, its key, once, in the order
//! the worker first meets it. The window operator's changes and the `features` arrangement
//! carry keys, not names: the window operator visits a tick's devices in key order, so its
//! changes come out sorted and the arrangement's batcher and merges compare and copy 4-byte
//! integers instead of names. Names come back at the edges — outputs, queries, listings —
//! through [`DeviceKeys`], which the worker's [`super::StateStore`] keeps.
//!
//! Invariants: a key names one device for the worker's life (keys are never reused); keys are
//! dense, `0..len`, and equal the window operator's slot numbers; keys are per worker and
//! never leave it (nothing keyed by them is exchanged), and no output is ordered by them
//! (their order depends on the order of arrival and the number of workers).

use foldhash::HashMap;

use crate::event::DeviceId;

/// A device's key on one worker (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceKey(pub u32);

/// The devices one worker has seen, by key and by name.
#[derive(Default)]
pub struct DeviceKeys {
    names: Vec<DeviceId>,
    index: HashMap<DeviceId, u32>,
}

impl DeviceKeys {
    /// The key of `name`, if the worker has seen it.
    pub fn key(&self, name: &DeviceId) -> Option<DeviceKey> {
        self.index.get(name).map(|&k| DeviceKey(k))
    }

    /// The key of `name`, a new one (the next integer) if the worker had not seen it; and
    /// whether it is new.
    pub fn key_or_insert(&mut self, name: &DeviceId) -> (DeviceKey, bool) {
        if let Some(&k) = self.index.get(name) {
            return (DeviceKey(k), false);
        }
        let k = u32::try_from(self.names.len()).expect("fewer than 2^32 devices on one worker");
        self.names.push(name.clone());
        self.index.insert(name.clone(), k);
        (DeviceKey(k), true)
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
        let names = ["vm-2", "vm-1", "a-much-longer-device-name-than-inline", "vm-3"];
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
}
