//! The synthetic network: address plan, interned address texts, and the pool of popular
//! external web sites.
//!
//! Invariants: device addresses are RFC 1918 (10/8, 172.16/12, 192.168/16); `random_public`
//! only returns public unicast addresses (never private, loopback, link-local, CGNAT,
//! multicast or documentation space); an address is interned once and its text is formatted
//! once, so emitting a record never formats an IP.

use std::collections::{HashMap, HashSet};

use super::rng::Rng64;

/// IPv4 address from octets.
pub(crate) const fn v4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// Whether an address is a plausible public unicast destination.
pub(crate) fn is_public(a: u32) -> bool {
    let [o1, o2, o3, _] = a.to_be_bytes();
    !(o1 == 0
        || o1 == 10
        || o1 == 127
        || o1 >= 224
        || (o1 == 100 && (64..128).contains(&o2))
        || (o1 == 169 && o2 == 254)
        || (o1 == 172 && (16..32).contains(&o2))
        || (o1 == 192 && o2 == 168)
        || (o1 == 192 && o2 == 0 && (o3 == 0 || o3 == 2))
        || (o1 == 198 && (o2 == 18 || o2 == 19))
        || (o1 == 198 && o2 == 51 && o3 == 100)
        || (o1 == 203 && o2 == 0 && o3 == 113))
}

/// A random public address outside `avoid`.
pub(crate) fn random_public(rng: &mut Rng64, avoid: &HashSet<u32>) -> u32 {
    loop {
        let a = rng.u64() as u32;
        if is_public(a) && !avoid.contains(&a) {
            return a;
        }
    }
}

/// Interned IPv4 addresses with their dotted text (at most 15 bytes, kept in 16-byte slots
/// so that appending one is a fixed-size copy).
#[derive(Default, Debug)]
pub(crate) struct IpTable {
    text: Vec<([u8; 16], u8)>,
    index: HashMap<u32, u32>,
}

impl IpTable {
    pub fn intern(&mut self, addr: u32) -> u32 {
        if let Some(&i) = self.index.get(&addr) {
            return i;
        }
        let [a, b, c, d] = addr.to_be_bytes();
        let s = format!("{a}.{b}.{c}.{d}");
        let mut slot = [0u8; 16];
        slot[..s.len()].copy_from_slice(s.as_bytes());
        self.text.push((slot, s.len() as u8));
        let i = self.text.len() as u32 - 1;
        self.index.insert(addr, i);
        i
    }

    pub fn text(&self, i: u32) -> &[u8] {
        let (slot, len) = &self.text[i as usize];
        &slot[..*len as usize]
    }

    /// Appends the text of address `i`.
    #[inline]
    pub fn push_text(&self, buf: &mut Vec<u8>, i: u32) {
        let (slot, len) = &self.text[i as usize];
        let at = buf.len();
        buf.extend_from_slice(slot);
        buf.truncate(at + *len as usize);
    }
}

/// The address of host number `i` in a block of /24s starting at `base`: 250 hosts per
/// /24 (.2 to .251), wrapping after `blocks` /24s.
pub(crate) fn host_addr(base: u32, blocks: u32, i: u32) -> u32 {
    base + ((i / 250) % blocks) * 256 + i % 250 + 2
}

/// Popular external web sites: a fixed pool with Zipf-like popularity.
#[derive(Debug)]
pub(crate) struct WebPool {
    pub ips: Vec<u32>,
    cum: Vec<f64>,
}

impl WebPool {
    pub fn new(size: usize, rng: &mut Rng64, table: &mut IpTable, avoid: &mut HashSet<u32>) -> Self {
        let mut ips = Vec::with_capacity(size);
        let mut cum = Vec::with_capacity(size);
        let mut total = 0.0;
        for rank in 0..size {
            let a = random_public(rng, avoid);
            avoid.insert(a);
            ips.push(table.intern(a));
            total += 1.0 / (rank as f64 + 2.0);
            cum.push(total);
        }
        for c in &mut cum {
            *c /= total;
        }
        WebPool { ips, cum }
    }

    /// A site drawn by popularity.
    #[inline]
    pub fn pick(&self, rng: &mut Rng64) -> u32 {
        let u = rng.f64();
        let i = self.cum.partition_point(|&c| c <= u).min(self.ips.len() - 1);
        self.ips[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        for a in [
            v4(10, 1, 2, 3),
            v4(172, 20, 0, 1),
            v4(192, 168, 5, 5),
            v4(127, 0, 0, 1),
            v4(100, 64, 0, 1),
        ] {
            assert!(!is_public(a));
        }
        for list in crate::generate::services::KNOWN_EXTERNAL {
            assert!(list.iter().all(|&a| is_public(a)));
        }
        let mut t = IpTable::default();
        let i = t.intern(v4(10, 0, 0, 2));
        assert_eq!(t.intern(v4(8, 8, 8, 8)), i + 1);
        assert_eq!(t.intern(v4(10, 0, 0, 2)), i);
        assert_eq!(t.text(i + 1), b"8.8.8.8");
        assert_eq!(host_addr(v4(10, 16, 0, 0), 4096, 251), v4(10, 16, 1, 3));
    }
}
