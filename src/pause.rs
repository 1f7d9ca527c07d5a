//! Pause points: long work in the domain (the window operator's items, a detector's map over
//! every state change, a long read of the feature store, decoding a file) calls [`now`]
//! between items, so that what else the worker must do meanwhile — answer the point queries
//! it owns — does not wait for the end of the activation. The domain only says where it may
//! pause; what runs there is installed per worker thread by the layer that wires the worker
//! (the query server installs its poll), so no domain module imports the server.
//!
//! Invariants: with nothing installed a pause is a thread-local read; the hook runs on the
//! worker's own thread and must not touch the caller's state (it reads the worker's own
//! arrangements through handles of its own).

use std::cell::Cell;

thread_local! {
    /// What a pause runs on this thread (None: nothing).
    static HOOK: Cell<Option<fn()>> = const { Cell::new(None) };
}

/// How many items of each kind a long loop handles between two pauses: a few microseconds of
/// work each.
pub mod every {
    /// Devices (a detector's or the scoring's step for one device).
    pub const DEVICES: usize = 8;
    /// Input records decoded.
    pub const RECORDS: usize = 64;
    /// Trace entries read (listings, snapshots).
    pub const ENTRIES: usize = 512;
}

/// Makes `hook` what a pause runs on this thread (None: nothing); returns the previous one.
pub fn install(hook: Option<fn()>) -> Option<fn()> {
    HOOK.with(|h| h.replace(hook))
}

/// A pause: runs the installed hook, if any.
#[inline]
pub fn now() {
    if let Some(hook) = HOOK.with(Cell::get) {
        hook();
    }
}

/// Pauses once every `every` items; `done` counts the items done so far.
#[inline]
pub fn every(done: usize, every: usize) {
    if done % every == every - 1 {
        now();
    }
}

/// `logic` pausing once every [`every::DEVICES`] records: for a detector's map over every
/// state change, which differential runs as one long activation per batch.
pub fn pausing<A, B>(mut logic: impl FnMut(A) -> B) -> impl FnMut(A) -> B {
    let mut done = 0usize;
    move |record| {
        every(done, every::DEVICES);
        done = done.wrapping_add(1);
        logic(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        static CALLS: Cell<usize> = const { Cell::new(0) };
    }

    fn count() {
        CALLS.with(|c| c.set(c.get() + 1));
    }

    #[test]
    fn pauses_run_the_hook_installed_on_their_thread_only() {
        now();
        assert_eq!(CALLS.with(Cell::get), 0, "nothing installed");
        assert!(install(Some(count)).is_none());
        for i in 0..16 {
            every(i, 8);
        }
        let mut f = pausing(|x: usize| x + 1);
        assert_eq!((0..16).map(&mut f).sum::<usize>(), 136);
        assert_eq!(CALLS.with(Cell::get), 4, "2 of 16 items twice");
        std::thread::spawn(now).join().unwrap();
        assert_eq!(CALLS.with(Cell::get), 4, "another thread has no hook");
        assert!(install(None).is_some());
        now();
        assert_eq!(CALLS.with(Cell::get), 4);
    }
}
