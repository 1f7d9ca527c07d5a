//! A device name as the engine keys it: short names inline (no allocation), compared eight
//! bytes at a time.
//!
//! Invariants: the order is the byte order of the names (that of `str`), so every sorted
//! output is what it was with plain strings; equality and hashing are those of the name, so a
//! map keyed by [`DeviceId`] is looked up with a `&str`. Device keys are sorted, merged and
//! compared millions of times a second in the dataflow's batches and arrangements, where a
//! `memcmp` call per comparison was ~7% of the engine's instructions.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// A device name: a VM, container or host.
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DeviceId(CompactString);

impl DeviceId {
    pub fn new(name: &str) -> Self {
        DeviceId(CompactString::new(name))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// Byte order, eight bytes at a time (big-endian words compare as their bytes do).
#[inline]
fn compare(a: &[u8], b: &[u8]) -> Ordering {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_be_bytes(a[i..i + 8].try_into().expect("8 bytes"));
        let y = u64::from_be_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        if x != y {
            return x.cmp(&y);
        }
        i += 8;
    }
    while i < n {
        if a[i] != b[i] {
            return a[i].cmp(&b[i]);
        }
        i += 1;
    }
    a.len().cmp(&b.len())
}

#[inline]
fn equal(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && compare(a, b) == Ordering::Equal
}

impl PartialEq for DeviceId {
    #[inline]
    fn eq(&self, other: &Self) -> bool {
        equal(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for DeviceId {}

/// As the name hashes (`str`'s hash), consistent with [`Borrow<str>`].
impl std::hash::Hash for DeviceId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state)
    }
}

impl Ord for DeviceId {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        compare(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl PartialOrd for DeviceId {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq<str> for DeviceId {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for DeviceId {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for DeviceId {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Deref for DeviceId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for DeviceId {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for DeviceId {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&str> for DeviceId {
    fn from(s: &str) -> Self {
        DeviceId::new(s)
    }
}

impl From<&String> for DeviceId {
    fn from(s: &String) -> Self {
        DeviceId::new(s)
    }
}

impl From<String> for DeviceId {
    fn from(s: String) -> Self {
        DeviceId(CompactString::from(s))
    }
}

impl From<CompactString> for DeviceId {
    fn from(s: CompactString) -> Self {
        DeviceId(s)
    }
}

impl From<std::borrow::Cow<'_, str>> for DeviceId {
    fn from(s: std::borrow::Cow<'_, str>) -> Self {
        DeviceId(CompactString::from(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_equality_are_those_of_the_names() {
        let names = [
            "",
            "a",
            "ab",
            "abcdefgh",
            "abcdefgh0",
            "abcdefgi",
            "abcdefg",
            "dev-00000001",
            "dev-00000010",
            "dev-0000001",
            "10.0.0.1",
            "10.0.0.10",
            "192.168.1.1",
            "é",
            "z\u{0}",
            "z",
            "a-very-long-device-name-beyond-24-bytes",
            "a-very-long-device-name-beyond-24-bytez",
        ];
        for a in names {
            for b in names {
                let (x, y) = (DeviceId::from(a), DeviceId::from(b));
                assert_eq!(x.cmp(&y), a.cmp(b), "{a:?} {b:?}");
                assert_eq!(x == y, a == b, "{a:?} {b:?}");
            }
        }
        let mut m = std::collections::HashMap::new();
        m.insert(DeviceId::from("dev-1"), 1);
        assert_eq!(m.get("dev-1"), Some(&1));
        assert_eq!(serde_json::to_string(&DeviceId::from("x\"y")).unwrap(), r#""x\"y""#);
    }
}
