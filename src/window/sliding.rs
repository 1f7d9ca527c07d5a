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

/// The events of one step of one device, summed: 64 bytes (a device keeps one per step of
/// its longest window, 60 for an hour), the readings apart since most steps have none.
#[derive(Clone, Debug, Default)]
struct Bucket {
    /// Step number: `tick / step`.
    index: u64,
    count: u64,
    bytes_out: u64,
    bytes_in: u64,
    packets: u64,
    bytes_out_external: u64,
    /// Destinations and ports whose latest event lies in this step: they leave a window
    /// when this step does.
    dsts_last: u32,
    ports_last: u32,
    /// The step's readings, when it had any (valid or invalid).
    values: Option<Box<BucketValues>>,
}

/// The readings of one step: the `value_*` fields of [`WindowStats`].
#[derive(Clone, Debug, Default)]
struct BucketValues {
    count: u64,
    invalid: u64,
    sum: i128,
    sumsq: i128,
    min: Option<i64>,
    max: Option<i64>,
}

impl Bucket {
    fn add(&mut self, o: &Obs) {
        self.count += 1;
        self.bytes_out = self.bytes_out.saturating_add(o.bytes_out);
        self.bytes_in = self.bytes_in.saturating_add(o.bytes_in);
        self.packets = self.packets.saturating_add(o.packets);
        if o.external {
            self.bytes_out_external = self.bytes_out_external.saturating_add(o.bytes_out);
        }
        let Some(reading) = o.value() else { return };
        let v = self.values.get_or_insert_with(Default::default);
        match reading {
            Some(q) => {
                v.count += 1;
                v.sum += q as i128;
                v.sumsq = v.sumsq.saturating_add((q as i128) * (q as i128));
                v.min = Some(v.min.map_or(q, |m| m.min(q)));
                v.max = Some(v.max.map_or(q, |m| m.max(q)));
            }
            None => v.invalid += 1,
        }
    }

    /// Takes the step's sums out of a window's (not its distincts, min or max).
    fn subtract_from(&self, s: &mut WindowStats) {
        s.count -= self.count;
        s.bytes_out = s.bytes_out.saturating_sub(self.bytes_out);
        s.bytes_in = s.bytes_in.saturating_sub(self.bytes_in);
        s.packets = s.packets.saturating_sub(self.packets);
        s.bytes_out_external = s.bytes_out_external.saturating_sub(self.bytes_out_external);
        if let Some(v) = &self.values {
            s.value_count -= v.count;
            s.value_invalid -= v.invalid;
            s.value_sum -= v.sum;
            s.value_sumsq = s.value_sumsq.saturating_sub(v.sumsq).max(0);
        }
    }

    fn valid_readings(&self) -> bool {
        self.values.as_ref().is_some_and(|v| v.count > 0)
    }
}

/// The bucket of step `index`, if it has one. The steps a device's destinations were last
/// seen in are mostly its latest few: those are looked at first, from the newest (in cache:
/// the newest bucket was asked for ahead), before a binary search of the rest (each probe of
/// which is a cold line).
fn find_bucket(buckets: &mut VecDeque<Bucket>, index: u64) -> Option<&mut Bucket> {
    const RECENT: usize = 4;
    let n = buckets.len();
    let recent = (1..=RECENT.min(n))
        .map(|back| n - back)
        .find(|&at| buckets[at].index <= index);
    let at = match recent {
        Some(at) => at,
        None => buckets.partition_point(|b| b.index < index),
    };
    buckets.get_mut(at).filter(|b| b.index == index)
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
    buckets: VecDeque<Bucket>,
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
        for w in self.stepped.iter_mut() {
            let first = (current + 1).saturating_sub(w.steps);
            if first <= w.first {
                continue;
            }
            let lo = self.buckets.partition_point(|b| b.index < w.first);
            let hi = self.buckets.partition_point(|b| b.index < first);
            let mut extremes_left = false;
            for b in self.buckets.range(lo..hi) {
                b.subtract_from(&mut w.stats);
                w.stats.distinct_dst -= b.dsts_last;
                w.stats.distinct_ports -= b.ports_last;
                extremes_left |= b.valid_readings();
            }
            w.first = first;
            if extremes_left {
                let inside = self.buckets.range(hi..).filter_map(|b| b.values.as_deref());
                w.stats.value_min = inside.clone().filter_map(|v| v.min).min();
                w.stats.value_max = inside.filter_map(|v| v.max).max();
            }
        }
        let first = self.stepped[self.stepped.len() - 1].first;
        let (mut dsts, mut ports) = (false, false);
        while self.buckets.front().is_some_and(|b| b.index < first) {
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
        self.events.push_back(obs);
    }

    /// The stepped windows' part of [`DeviceSlide::insert`]: the event joins its step's
    /// bucket and every stepped window; `*_prev` are the latest ticks of its destination and
    /// port before it (`Some(now)` for an absent one).
    fn insert_stepped(&mut self, obs: &Obs, dst_prev: Option<u64>, port_prev: Option<u64>) {
        let step = self.step;
        let current = obs.tick / step;
        if self.buckets.back().is_none_or(|b| b.index != current) {
            self.buckets.push_back(Bucket {
                index: current,
                ..Default::default()
            });
        }
        // A destination moves to this step's bucket from the one of its previous event.
        let moved = |prev: Option<u64>, buckets: &mut VecDeque<Bucket>, which: fn(&mut Bucket) -> &mut u32| {
            if prev.is_some_and(|p| p / step == current) {
                return false;
            }
            if let Some(b) = prev.and_then(|p| find_bucket(buckets, p / step)) {
                *which(b) -= 1;
            }
            *which(buckets.back_mut().expect("pushed")) += 1;
            true
        };
        let new_dst = moved(dst_prev, &mut self.buckets, |b| &mut b.dsts_last);
        let new_port = moved(port_prev, &mut self.buckets, |b| &mut b.ports_last);
        self.buckets.back_mut().expect("pushed").add(obs);
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
mod tests {
    use super::*;

    #[test]
    fn an_observation_is_64_bytes_and_round_trips() {
        assert_eq!(std::mem::size_of::<Obs>(), 64);
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        let o = Obs::new(7, 1, 2, 3, true, u128::MAX - 5, 443, Some(-2.5));
        assert_eq!((o.dst(), o.value()), (u128::MAX - 5, Some(Some(-2_500_000))));
        assert_eq!(Obs::new(7, 1, 2, 3, false, 0, 0, None).value(), None);
        assert_eq!(Obs::new(7, 1, 2, 3, false, 0, 0, Some(f64::NAN)).value(), Some(None));
    }

    fn obs(tick: u64, dst: u128, port: u16, value: Option<f64>) -> Obs {
        Obs::new(tick, 10, 1, 1, dst > 100, dst, port, value)
    }

    #[test]
    fn window_boundaries_and_distincts() {
        let mut d = DeviceSlide::new(&[2, 5], &[1, 1]);
        d.advance_to(0);
        d.insert(obs(0, 1, 80, Some(1.0)));
        d.insert(obs(0, 1, 80, Some(3.0)));
        d.advance_to(1);
        d.insert(obs(1, 200, 443, Some(2.0)));
        assert_eq!(d.stats(0).count, 3);
        assert_eq!(d.stats(0).distinct_dst, 2);
        assert_eq!(d.stats(0).value_min, Some(1_000_000));
        d.advance_to(2); // tick 0 leaves the 2-window
        assert_eq!(d.stats(0).count, 1);
        assert_eq!(d.stats(0).distinct_dst, 1);
        assert_eq!(d.stats(0).distinct_ports, 1);
        assert_eq!(d.stats(0).value_min, Some(2_000_000));
        assert_eq!(d.stats(0).bytes_out_external, 10);
        assert_eq!(d.stats(1).count, 3);
        d.insert(obs(2, 1, 80, None));
        assert_eq!(d.stats(0).distinct_dst, 2);
        d.advance_to(5); // ticks 0 leave the 5-window; dst 1 is still there (tick 2)
        assert_eq!(d.stats(1).count, 2);
        assert_eq!(d.stats(1).distinct_dst, 2);
        assert_eq!(d.stats(0).count, 0);
        assert_eq!(d.stats(0).distinct_dst, 0);
        d.advance_to(7);
        assert!(d.is_empty());
        assert_eq!(d.stats(1), &WindowStats::default());
    }

    /// The statistics of `events` inside `(t / step + 1) * step - len <= tick <= t`, from the
    /// definition.
    fn brute(events: &[Obs], t: u64, len: u64, step: u64) -> WindowStats {
        let inside: Vec<&Obs> = events
            .iter()
            .filter(|o| o.tick <= t && o.tick + len >= (t / step + 1) * step)
            .collect();
        let mut s = WindowStats::default();
        for o in &inside {
            add(&mut s, o);
        }
        let valid = || inside.iter().filter_map(|o| o.value().flatten());
        s.value_min = valid().min();
        s.value_max = valid().max();
        let dsts: std::collections::BTreeSet<u128> = inside.iter().map(|o| o.dst()).filter(|&d| d != 0).collect();
        let ports: std::collections::BTreeSet<u16> = inside.iter().map(|o| o.port).filter(|&p| p != 0).collect();
        s.distinct_dst = dsts.len() as u32;
        s.distinct_ports = ports.len() as u32;
        s
    }

    #[test]
    fn sums_saturate_instead_of_wrapping_and_recover_when_the_events_leave() {
        // Windows of 2 and 4 ticks sliding every tick, and of 8 advancing in steps of 4.
        let mut d = DeviceSlide::new(&[2, 4, 8], &[1, 1, 4]);
        let huge = u64::MAX / 3 + 1;
        let big = |tick| Obs::new(tick, huge, huge, huge, true, 200, 443, Some(1e9));
        d.advance_to(0);
        for _ in 0..2 {
            d.insert(big(0));
        }
        for i in 0..3 {
            assert_eq!(d.stats(i).bytes_out, 2 * huge, "window {i}: exact while it fits");
        }
        d.insert(big(0));
        d.insert(big(0));
        for i in 0..3 {
            let s = d.stats(i);
            assert_eq!(s.count, 4);
            assert_eq!(
                (s.bytes_out, s.bytes_in, s.packets, s.bytes_out_external),
                (u64::MAX, u64::MAX, u64::MAX, u64::MAX),
                "window {i} saturates, never wraps"
            );
            assert_eq!(s.value_sum, 4 * 1_000_000_000_000_000);
        }
        // Many readings at the limit: the sum of squares saturates too, never negative.
        let mut s = WindowStats {
            value_sumsq: i128::MAX - 5,
            ..Default::default()
        };
        add(&mut s, &Obs::new(0, 0, 0, 0, false, 0, 0, Some(-1e9)));
        assert_eq!(s.value_sumsq, i128::MAX);
        remove(&mut s, &Obs::new(0, 0, 0, 0, false, 0, 0, Some(-1e9)));
        assert!(s.value_sumsq >= 0);
        // Once every event has left, every window is back at zero.
        d.advance_to(8);
        for i in 0..3 {
            assert_eq!(d.stats(i), &WindowStats::default(), "window {i}");
        }
        // Below saturation adding and removing is exact: many events at the decoder's bound.
        let max = crate::event::MAX_BYTES;
        let mut e = DeviceSlide::new(&[2, 4, 8], &[1, 1, 4]);
        for t in 0..6 {
            e.advance_to(t);
            for _ in 0..1000 {
                e.insert(Obs::new(t, max, max, crate::event::MAX_PACKETS, true, 200, 443, None));
            }
        }
        assert_eq!(e.stats(0).bytes_out, 2 * 1000 * max);
        assert_eq!(e.stats(1).bytes_out, 4 * 1000 * max);
        assert_eq!(e.stats(2).bytes_out, 6 * 1000 * max, "steps 0 and 1: ticks 0 to 5");
        assert_eq!(e.stats(2).packets, 6 * 1000 * crate::event::MAX_PACKETS);
    }

    #[test]
    fn stepped_and_exact_windows_equal_their_definition_at_every_tick() {
        let (lens, steps) = ([2, 3, 6, 12], [1, 1, 3, 3]);
        let mut d = DeviceSlide::new(&lens, &steps);
        let mut seen = Vec::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |m: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % m
        };
        for t in 0..400u64 {
            d.advance_to(t);
            // Bursts and gaps: some ticks have several events, some none.
            let n = [0, 0, 1, 1, 2, 4][next(6) as usize];
            for _ in 0..n {
                let value = match next(5) {
                    0 => None,
                    1 => Some(f64::NAN),
                    v => Some(v as f64 - next(100) as f64),
                };
                let o = Obs::new(t, next(50), 1, 1, next(2) == 0, next(6) as u128, next(4) as u16, value);
                d.insert(o);
                seen.push(o);
            }
            for (i, (&len, &step)) in lens.iter().zip(&steps).enumerate() {
                assert_eq!(d.stats(i), &brute(&seen, t, len, step), "window {i} at tick {t}");
            }
        }
        // Everything leaves: the maps and buckets empty with the windows.
        d.advance_to(1_000);
        assert!(d.is_empty() && d.dst_last.is_empty() && d.port_last.is_empty());
    }
}
