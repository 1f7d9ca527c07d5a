//! Per-device windows: the statistics record, the sliding-window state of one device, and
//! the timely operator that maintains them for every device as the frontier advances.
//!
//! Invariant: the operator's output, accumulated up to tick `T`, equals
//! `{ (device, DeviceWindows(device, T)) }` as defined in `docs/semantics.md`.

mod detect_work;
pub mod operator;
mod prefetch;
pub mod sliding;
pub mod state_store;
pub mod stats;

pub use prefetch::prefetch;
pub use state_store::{Hold, StateRef, StateStore};
pub use stats::{DeviceState, DeviceWindows, WindowRow, WindowStats};
