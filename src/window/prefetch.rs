//! Prefetching per-device state: with 100,000 devices a device's slot, events and buckets are
//! never in cache when its turn comes, and the window operator's stages spent most of their
//! time waiting for memory one device after the other. Each stage walks a list of devices it
//! knows in advance, so it asks for the memory of the devices a few places ahead while it works
//! on the current one.

/// How many devices ahead a stage asks for memory.
pub const AHEAD: usize = 16;

/// Asks the processor to bring the cache line at `p` closer (a hint: no effect elsewhere).
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and changes no program state, whatever the address; SSE
    // is part of the x86_64 baseline.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Asks for the oldest and newest of a queue's elements (where popping the oldest and
/// pushing the newest read and write), both lines of each when it may straddle two.
#[inline(always)]
pub fn prefetch_ends<T>(queue: &std::collections::VecDeque<T>) {
    let (a, b) = queue.as_slices();
    if let Some(first) = a.first() {
        prefetch_element(first);
    }
    if let Some(last) = b.last().or(a.last()) {
        prefetch_element(last);
    }
}

/// Asks for the first and last byte of an element of at most two cache lines.
#[inline(always)]
fn prefetch_element<T>(element: &T) {
    let start = element as *const T as *const u8;
    prefetch(start);
    if std::mem::size_of::<T>() > 1 {
        prefetch(start.wrapping_add(std::mem::size_of::<T>() - 1));
    }
}

/// Asks for every cache line of `value` (up to 16: 1 KiB), wherever it starts.
#[inline(always)]
pub fn prefetch_value<T>(value: *const T) {
    let size = std::mem::size_of::<T>().clamp(1, 1024);
    let start = value as *const u8;
    for offset in (0..size).step_by(64).chain([size - 1]) {
        prefetch(start.wrapping_add(offset));
    }
}
