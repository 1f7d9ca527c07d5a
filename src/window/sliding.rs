//! The sliding-window state of one device: every window length at once, updated in O(1)
//! amortised per event and per expiry.
//!
//! Invariants: events are inserted in non-decreasing tick order and, at each tick, expiries
//! are applied before insertions ([`DeviceSlide::advance_to`] then [`DeviceSlide::insert`]).
//! After `advance_to(T)` and the insertions at `T`, a window `i` that slides every tick holds
//! exactly the events with `T - len[i] < tick <= T`, and a window advancing in steps of `S`
//! ticks those with `(T / S + 1) * S - len[i] <= tick <= T` (`docs/semantics.md`). The first
//! keep their events; the second keep one summed bucket per step that had events. Distinct
//! counts rely on `dst_last` (latest tick per destination): a destination is in a window iff
//! its latest tick is inside it. An event carries `dst_first` when it was the first with its
//! destination at its tick, and only that event's expiry can remove the destination from a
//! window sliding every tick — unless a later tick's event had the destination too, which
//! marks it `dst_superseded` when it is inserted (so an expiry looks nothing up); a bucket counts the destinations whose latest event it holds,
//! and they leave a stepped window with it. Min/max use monotonic queues of (sequence number,
//! reading) in windows sliding every tick, and the buckets' min/max in stepped ones.
//!
//! Sums never wrap: byte and packet sums (u64) and the sum of squared readings (i128) add and
//! subtract saturating (at `u64::MAX`, `i128::MAX`; an add-and-compare, no branch to
//! mispredict, no wider accumulator). They are exact while they fit, which with the decoder's
//! field bounds (`event::MAX_BYTES`, ...) takes more than 18 million records at the bound of
//! one device in one window; once a sum has saturated it reads low (never above the true sum,
//! never wrapped) until the events it held then have left the window. The sum of readings
//! (i128, at most 10^15 per reading) and the counts (one per event) cannot reach their limits.

use std::collections::VecDeque;

use smallvec::SmallVec;

use super::bucket::{find_bucket, Bucket};
use super::latest::LatestMap;
use super::obs::{add, remove, Obs};
use super::stats::WindowStats;

#[derive(Clone, Debug, Default)]
struct WindowAcc {
    len: u64,
    /// Sequence number of the oldest event still in the window.
    head: u64,
    stats: WindowStats,
    min_q: VecDeque<(u64, i64)>,
    max_q: VecDeque<(u64, i64)>,
}

/// A window that advances in steps: at tick `T` it holds the buckets (steps) from
/// `first = T / step + 1 - len / step` on.
#[derive(Clone, Debug, Default)]
struct SteppedAcc {
    /// Length in steps.
    steps: u64,
    /// Index of the oldest step inside the window.
    first: u64,
    stats: WindowStats,
}

/// Makes room for one more element a few at a time, not by doubling: a device's queues are
/// short and many (a doubling queue of 17 buckets holds room for 32).
fn grow_slim<T>(queue: &mut VecDeque<T>) {
    if queue.len() == queue.capacity() {
        queue.reserve_exact((queue.len() / 8).max(4));
    }
}

/// All windows of one device: those that slide every tick keep their events (the longest
/// one's), those that advance in steps keep one summed bucket per step with events.
#[derive(Clone, Debug)]
pub struct DeviceSlide {
    events: VecDeque<Obs>,
    /// Sequence number of `events[0]`.
    base_seq: u64,
    /// Windows sliding every tick, ascending; all shorter than the stepped ones. Inline (the
    /// default windows fit): a device's accumulators are part of its slot, fetched with it.
    exact: SmallVec<[WindowAcc; 1]>,
    /// Windows advancing in steps of `step` ticks, ascending (inline, as `exact`).
    stepped: SmallVec<[SteppedAcc; 2]>,
    step: u64,
    /// Oldest first; grown a few at a time (see [`grow_slim`]).
    buckets: VecDeque<Bucket>,
    /// The step the buckets' `rel` counts from.
    bucket_base: u64,
    /// Latest tick of every destination (port) in some window, with the event that first
    /// had it at that tick.
    dst_last: LatestMap<u128>,
    port_last: LatestMap<u16>,
}

impl DeviceSlide {
    /// Windows of the given lengths in ticks, ascending, each with its step in ticks (1: it
    /// slides every tick). Stepped windows share one step, and are longer than every window
    /// sliding every tick, whose lengths are at most that step (`Config::window_steps_ticks`).
    pub fn new(lens: &[u64], steps: &[u64]) -> Self {
        debug_assert!(lens.windows(2).all(|w| w[0] < w[1]));
        debug_assert_eq!(lens.len(), steps.len());
        let step = steps.iter().copied().max().unwrap_or(1).max(1);
        let mut exact = SmallVec::new();
        let mut stepped = SmallVec::new();
        for (&len, &s) in lens.iter().zip(steps) {
            if s <= 1 {
                debug_assert!(stepped.is_empty() && len <= step);
                exact.push(WindowAcc {
                    len,
                    ..Default::default()
                });
            } else {
                debug_assert!(s == step && len % step == 0 && len > step);
                stepped.push(SteppedAcc {
                    steps: len / step,
                    ..Default::default()
                });
            }
        }
        DeviceSlide {
            events: VecDeque::new(),
            base_seq: 0,
            exact,
            stepped,
            step,
            buckets: VecDeque::new(),
            bucket_base: 0,
            dst_last: LatestMap::default(),
            port_last: LatestMap::default(),
        }
    }

    fn next_seq(&self) -> u64 {
        self.base_seq + self.events.len() as u64
    }

    /// Removes from every window the events that leave it at tick `now`.
    pub fn advance_to(&mut self, now: u64) {
        self.advance_exact(now);
        if !self.stepped.is_empty() {
            self.advance_stepped(now);
        }
    }

    fn advance_exact(&mut self, now: u64) {
        if self.exact.is_empty() {
            return;
        }
        let end = self.next_seq();
        // Destinations leave the maps only with the longest window (a stepped one, if any).
        let forget = if self.stepped.is_empty() {
            self.exact.len() - 1
        } else {
            usize::MAX
        };
        for (wi, w) in self.exact.iter_mut().enumerate() {
            while w.head < end {
                let obs = self.events[(w.head - self.base_seq) as usize];
                if obs.tick + w.len > now {
                    break;
                }
                remove(&mut w.stats, &obs);
                if obs.dst_first && !obs.dst_superseded && obs.dst() != 0 {
                    w.stats.distinct_dst -= 1;
                    if wi == forget {
                        self.dst_last.remove(obs.dst());
                    }
                }
                if obs.port_first && !obs.port_superseded && obs.port != 0 {
                    w.stats.distinct_ports -= 1;
                    if wi == forget {
                        self.port_last.remove(obs.port);
                    }
                }
                w.head += 1;
            }
            while w.min_q.front().is_some_and(|&(s, _)| s < w.head) {
                w.min_q.pop_front();
            }
            while w.max_q.front().is_some_and(|&(s, _)| s < w.head) {
                w.max_q.pop_front();
            }
            w.stats.value_min = w.min_q.front().map(|&(_, v)| v);
            w.stats.value_max = w.max_q.front().map(|&(_, v)| v);
        }
        let keep_from = self.exact[self.exact.len() - 1].head;
        while self.base_seq < keep_from {
            self.events.pop_front();
            self.base_seq += 1;
        }
    }

    /// Takes out of each stepped window the steps that left it by `now`.
    fn advance_stepped(&mut self, now: u64) {
        let current = now / self.step;
        let base = self.bucket_base;
        for w in self.stepped.iter_mut() {
            let first = (current + 1).saturating_sub(w.steps);
            if first <= w.first {
                continue;
            }
            let lo = self.buckets.partition_point(|b| b.step(base) < w.first);
            let hi = self.buckets.partition_point(|b| b.step(base) < first);
            let mut extremes_left = false;
            for b in self.buckets.range(lo..hi) {
                b.subtract_from(&mut w.stats);
                w.stats.distinct_dst -= b.dsts_last;
                w.stats.distinct_ports -= b.ports_last;
                extremes_left |= b.valid_readings();
            }
            w.first = first;
            if extremes_left {
                let inside = self.buckets.range(hi..).filter_map(Bucket::extremes);
                w.stats.value_min = inside.clone().map(|(min, _)| min).min();
                w.stats.value_max = inside.map(|(_, max)| max).max();
            }
        }
        let first = self.stepped[self.stepped.len() - 1].first;
        let (mut dsts, mut ports) = (false, false);
        while self.buckets.front().is_some_and(|b| b.step(base) < first) {
            let b = self.buckets.pop_front().expect("checked");
            dsts |= b.dsts_last > 0;
            ports |= b.ports_last > 0;
        }
        let step = self.step;
        if dsts {
            self.dst_last.retain(|l| l.tick / step >= first);
        }
        if ports {
            self.port_last.retain(|l| l.tick / step >= first);
        }
    }

    /// Adds an event at tick `obs.tick`, which must be the tick last passed to `advance_to`.
    pub fn insert(&mut self, mut obs: Obs) {
        let now = obs.tick;
        let seq = self.next_seq();
        let (dst_prev, dst_superseded) = if obs.dst() != 0 {
            self.dst_last.note(obs.dst(), now, seq)
        } else {
            (Some(now), None)
        };
        let (port_prev, port_superseded) = if obs.port != 0 {
            self.port_last.note(obs.port, now, seq)
        } else {
            (Some(now), None)
        };
        obs.dst_first = dst_prev != Some(now);
        obs.port_first = port_prev != Some(now);
        if !self.stepped.is_empty() {
            self.insert_stepped(&obs, dst_prev, port_prev);
        }
        if self.exact.is_empty() {
            return;
        }
        // The events that had the destination (port) until now leave no window with it.
        let base = self.base_seq;
        if let Some(old) = dst_superseded.filter(|&s| s >= base) {
            self.events[(old - base) as usize].dst_superseded = true;
        }
        if let Some(old) = port_superseded.filter(|&s| s >= base) {
            self.events[(old - base) as usize].port_superseded = true;
        }
        for w in self.exact.iter_mut() {
            add(&mut w.stats, &obs);
            if obs.dst_first && dst_prev.is_none_or(|l| l + w.len <= now) {
                w.stats.distinct_dst += 1;
            }
            if obs.port_first && port_prev.is_none_or(|l| l + w.len <= now) {
                w.stats.distinct_ports += 1;
            }
            if let Some(Some(q)) = obs.value() {
                while w.min_q.back().is_some_and(|&(_, v)| v >= q) {
                    w.min_q.pop_back();
                }
                w.min_q.push_back((seq, q));
                while w.max_q.back().is_some_and(|&(_, v)| v <= q) {
                    w.max_q.pop_back();
                }
                w.max_q.push_back((seq, q));
                w.stats.value_min = w.min_q.front().map(|&(_, v)| v);
                w.stats.value_max = w.max_q.front().map(|&(_, v)| v);
            }
        }
        grow_slim(&mut self.events);
        self.events.push_back(obs);
    }

    /// The stepped windows' part of [`DeviceSlide::insert`]: the event joins its step's
    /// bucket and every stepped window; `*_prev` are the latest ticks of its destination and
    /// port before it (`Some(now)` for an absent one).
    fn insert_stepped(&mut self, obs: &Obs, dst_prev: Option<u64>, port_prev: Option<u64>) {
        let step = self.step;
        let current = obs.tick / step;
        let added = self
            .buckets
            .back_mut()
            .filter(|b| b.step(self.bucket_base) == current)
            .is_some_and(|b| b.try_add(obs));
        if !added {
            self.push_bucket(current);
            let fresh = self.buckets.back_mut().expect("pushed").try_add(obs);
            debug_assert!(fresh, "a fresh bucket takes any event");
        }
        // A destination moves to the bucket that took the event from the one of its previous
        // event (none when that was in this step: it is counted in this step's buckets).
        let base = self.bucket_base;
        let moved = |prev: Option<u64>, buckets: &mut VecDeque<Bucket>, which: fn(&mut Bucket) -> &mut u32| {
            if prev.is_some_and(|p| p / step == current) {
                return false;
            }
            if let Some(b) = prev.and_then(|p| find_bucket(buckets, base, p / step, which)) {
                *which(b) -= 1;
            }
            *which(buckets.back_mut().expect("pushed")) += 1;
            true
        };
        let new_dst = moved(dst_prev, &mut self.buckets, |b| &mut b.dsts_last);
        let new_port = moved(port_prev, &mut self.buckets, |b| &mut b.ports_last);
        let value = obs.value().flatten();
        for w in self.stepped.iter_mut() {
            add(&mut w.stats, obs);
            // Not yet in the window: never seen, or last seen in a step before its first.
            if new_dst && dst_prev.is_none_or(|p| p / step < w.first) {
                w.stats.distinct_dst += 1;
            }
            if new_port && port_prev.is_none_or(|p| p / step < w.first) {
                w.stats.distinct_ports += 1;
            }
            if let Some(q) = value {
                w.stats.value_min = Some(w.stats.value_min.map_or(q, |m| m.min(q)));
                w.stats.value_max = Some(w.stats.value_max.map_or(q, |m| m.max(q)));
            }
        }
    }

    /// Opens a bucket for step `index` (the newest step): `rel` counts from the oldest
    /// bucket's step when it would not fit from the current base. The buckets span less
    /// than the longest window's steps, which the configuration keeps below 2^31.
    fn push_bucket(&mut self, index: u64) {
        if self.buckets.is_empty() {
            self.bucket_base = index;
        }
        if index - self.bucket_base > u32::MAX as u64 {
            let new_base = self
                .buckets
                .front()
                .map_or(self.bucket_base, |b| b.step(self.bucket_base));
            let shift = (new_base - self.bucket_base) as u32;
            for b in self.buckets.iter_mut() {
                b.rel -= shift;
            }
            self.bucket_base = new_base;
        }
        let rel = u32::try_from(index - self.bucket_base).expect("a window spans fewer than 2^32 steps");
        grow_slim(&mut self.buckets);
        self.buckets.push_back(Bucket::new(rel));
    }

    /// The current statistics of window `i` (in length order).
    pub fn stats(&self, i: usize) -> &WindowStats {
        match self.exact.get(i) {
            Some(w) => &w.stats,
            None => &self.stepped[i - self.exact.len()].stats,
        }
    }

    /// Writes the current statistics of every window, in length order, into `out` (in
    /// place: a reused state's own list).
    pub fn write_stats(&self, out: &mut super::stats::WindowList) {
        let exact = self.exact.iter().map(|w| &w.stats);
        let all = exact.chain(self.stepped.iter().map(|w| &w.stats));
        if out.len() == self.exact.len() + self.stepped.len() {
            // A reused state of the same shape: plain copies over its windows.
            for (o, stats) in out.iter_mut().zip(all) {
                o.clone_from(stats);
            }
        } else {
            out.clear();
            out.extend(all.cloned());
        }
    }

    /// Asks for the memory outside the device's slot that `advance_to` and `insert` read
    /// (see `super::prefetch`): both ends of the events and of the buckets, the oldest entry
    /// of each min/max queue.
    pub fn prefetch(&self) {
        use super::prefetch::{prefetch, prefetch_ends};
        prefetch_ends(&self.events);
        prefetch_ends(&self.buckets);
        for w in &self.exact {
            if let Some(front) = w.min_q.front() {
                prefetch(front as *const (u64, i64));
            }
            if let Some(front) = w.max_q.front() {
                prefetch(front as *const (u64, i64));
            }
        }
    }

    /// Asks for the memory where an event to `dst` and `port` will be looked up when it is
    /// inserted (its slots in the destination and port tables).
    pub fn prefetch_event(&self, dst: u128, port: u16) {
        if dst != 0 {
            self.dst_last.prefetch(dst);
        }
        if port != 0 {
            self.port_last.prefetch(port);
        }
    }

    /// Events held one by one (those of the longest window that slides every tick).
    pub fn held(&self) -> usize {
        self.events.len()
    }

    /// Whether every window is empty (the device holds no events).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.buckets.is_empty()
    }
}

#[cfg(test)]
#[path = "sliding_tests.rs"]
mod tests;
