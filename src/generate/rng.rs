//! Seeded random numbers for the generator: xoshiro256++ (`rand_xoshiro`) seeded through
//! SplitMix64 per stream.
//!
//! Invariants: a stream depends only on `(seed, label)` — no global or thread-local state —
//! so the same configuration gives the same bytes on every run and platform; independent
//! streams (one per device, one for delivery, one for planning) keep a change in one
//! concern (say, the out-of-order share) from reshuffling the others. Normal and exponential
//! variates come from `rand_distr` (ziggurat), fed by this generator.

use rand::RngCore;
use rand_distr::{Distribution, Exp1, StandardNormal};
use rand_xoshiro::rand_core::{RngCore as XoshiroCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The xoshiro256++ state of stream `label` under `seed`: SplitMix64 of both, never all zero.
fn stream_state(seed: u64, label: u64) -> [u64; 4] {
    let mut x = seed;
    let a = splitmix(&mut x);
    let mut y = label ^ 0xD1B5_4A32_D192_ED03;
    let mut z = a ^ splitmix(&mut y);
    let mut s = [0u64; 4];
    for v in &mut s {
        *v = splitmix(&mut z);
    }
    if s == [0; 4] {
        s[0] = 1;
    }
    s
}

/// A small, fast, seedable generator (xoshiro256++), with the stream derivation and the
/// variates the generator uses.
#[derive(Clone, Debug)]
pub(crate) struct Rng64 {
    core: Xoshiro256PlusPlus,
}

impl Rng64 {
    /// The stream named `label` of the configuration seeded with `seed`.
    pub fn stream(seed: u64, label: u64) -> Self {
        let s = stream_state(seed, label);
        // The state words little-endian, in order: the seed layout rand_xoshiro reads.
        let mut seed = [0u8; 32];
        for (chunk, word) in seed.chunks_exact_mut(8).zip(s) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        Rng64 {
            core: Xoshiro256PlusPlus::from_seed(seed),
        }
    }

    #[inline]
    pub fn u64(&mut self) -> u64 {
        XoshiroCore::next_u64(&mut self.core)
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub fn f64(&mut self) -> f64 {
        (self.u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (`n > 0`).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[lo, hi)`.
    #[inline]
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Log-uniform in `[lo, hi)` (both positive).
    pub fn log_range(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.f64()).exp()
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        StandardNormal.sample(self)
    }

    /// Exponential with mean 1.
    #[inline]
    pub fn exp1(&mut self) -> f64 {
        Exp1.sample(self)
    }

    /// Log-normal with the given median and log-space standard deviation.
    #[inline]
    pub fn log_normal(&mut self, median: f64, sigma: f64) -> f64 {
        if sigma == 0.0 {
            median
        } else {
            median * (sigma * self.normal()).exp()
        }
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

impl RngCore for Rng64 {
    fn next_u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        rand::rand_core::impls::fill_bytes_via_next(self, dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng64::stream(7, 1).u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng64::stream(7, 1).u64(), Rng64::stream(7, 2).u64());
        assert_ne!(Rng64::stream(7, 1).u64(), Rng64::stream(8, 1).u64());
        let mut r = Rng64::stream(1, 1);
        let mean = (0..100_000).map(|_| r.f64()).sum::<f64>() / 100_000.0;
        assert!((mean - 0.5).abs() < 0.01);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }

    /// xoshiro256++ written out from its definition (Blackman and Vigna), as this module had
    /// it before using rand_xoshiro: the generator's bytes, and the fixtures made with them,
    /// must not change.
    #[test]
    fn the_stream_is_xoshiro256_plus_plus_from_the_splitmix_state() {
        for (seed, label) in [(1, 1), (7, 2), (u64::MAX, 0), (0, 0)] {
            let mut s = stream_state(seed, label);
            let mut r = Rng64::stream(seed, label);
            for _ in 0..1000 {
                let expected = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
                let t = s[1] << 17;
                s[2] ^= s[0];
                s[3] ^= s[1];
                s[1] ^= s[2];
                s[0] ^= s[3];
                s[2] ^= t;
                s[3] = s[3].rotate_left(45);
                assert_eq!(r.u64(), expected, "seed {seed}, label {label}");
            }
        }
    }
}
