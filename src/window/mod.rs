//! Per-device windows: the statistics record, the sliding-window state of one device, the
//! timely operator that maintains them for every device as the frontier advances, and the
//! worker's store of the states it emits (the `features` arrangement holds handles into it,
//! keyed by the worker's integer device keys).
//!
//! Invariant: the operator's output, accumulated up to tick `T`, equals
//! `{ (device, DeviceWindows(device, T)) }` as defined in `docs/semantics.md`.

mod bucket;
pub mod device_keys;
mod latest;
mod obs;
pub mod operator;
mod prefetch;
pub mod sliding;
pub mod state_store;
pub mod stats;
mod tick_devices;
mod worker_state;

pub use device_keys::{DeviceKey, DeviceKeys};
pub use prefetch::{prefetch, prefetch_ends, prefetch_value};
pub use state_store::{Hold, StateRef, StateStore};
pub use stats::{DeviceState, DeviceWindows, WindowRow, WindowStats};

/// The window tests' random numbers: `next(m)` is in `0..m` (xorshift64 from `seed`, which
/// must not be 0), the same sequence on every run.
#[cfg(test)]
fn test_random(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut x = seed;
    move |m| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    }
}
