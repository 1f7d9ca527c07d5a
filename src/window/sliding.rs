//! The sliding-window state of one device: every window length at once, updated in O(1)
//! amortised per event and per expiry.
//!
//! Invariants: events are inserted in non-decreasing tick order and, at each tick, expiries
//! are applied before insertions ([`DeviceSlide::advance_to`] then [`DeviceSlide::insert`]).
//! After `advance_to(T)` and the insertions at `T`, window `i` holds exactly the events with
//! `T - len[i] < tick <= T`. Distinct counts rely on `last_tick`: a destination is in window
//! `i` iff its latest tick is inside it; an event carries `dst_first` when it was the first
//! with its destination at its tick, and only that event's expiry can remove the
//! destination. Min/max use monotonic queues of (sequence number, reading).

use std::collections::VecDeque;

use foldhash::HashMap;

use super::stats::{quantize, WindowStats};

/// What the window keeps of one event: 64 bytes (every held event of every device is one,
/// so its size is most of the engine's memory per device).
#[derive(Clone, Copy, Debug)]
pub struct Obs {
    pub tick: u64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub packets: u64,
    /// Destination address (0 = absent), as two halves: a `u128` field would align the
    /// record to 16 bytes and make it 80.
    dst_hi: u64,
    dst_lo: u64,
    /// Reading in micro-units, or [`ABSENT`] / [`INVALID`] (quantized readings are within
    /// ±1e15, far from both).
    value: i64,
    /// Destination port (0 = absent).
    pub port: u16,
    pub external: bool,
    dst_first: bool,
    port_first: bool,
}

/// `Obs::value` of an event without a reading.
const ABSENT: i64 = i64::MIN;
/// `Obs::value` of an invalid reading (NaN, infinite, beyond the limit).
const INVALID: i64 = i64::MIN + 1;

impl Obs {
    /// The fields of an event that windows keep (positional: this is the hot path).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        tick: u64,
        bytes_out: u64,
        bytes_in: u64,
        packets: u64,
        external: bool,
        dst: u128,
        port: u16,
        value: Option<f64>,
    ) -> Self {
        Obs {
            tick,
            bytes_out,
            bytes_in,
            packets,
            external,
            dst_hi: (dst >> 64) as u64,
            dst_lo: dst as u64,
            port,
            value: match value.map(quantize) {
                None => ABSENT,
                Some(None) => INVALID,
                Some(Some(q)) => q,
            },
            dst_first: false,
            port_first: false,
        }
    }

    /// Destination address (0 = absent).
    pub fn dst(&self) -> u128 {
        (u128::from(self.dst_hi) << 64) | u128::from(self.dst_lo)
    }

    /// Reading: `Some(Some(q))` valid, `Some(None)` invalid, `None` absent.
    pub fn value(&self) -> Option<Option<i64>> {
        match self.value {
            ABSENT => None,
            INVALID => Some(None),
            q => Some(Some(q)),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct WindowAcc {
    len: u64,
    /// Sequence number of the oldest event still in the window.
    head: u64,
    stats: WindowStats,
    min_q: VecDeque<(u64, i64)>,
    max_q: VecDeque<(u64, i64)>,
}

/// All windows of one device.
#[derive(Clone, Debug)]
pub struct DeviceSlide {
    events: VecDeque<Obs>,
    /// Sequence number of `events[0]`.
    base_seq: u64,
    windows: Vec<WindowAcc>,
    dst_last: HashMap<u128, u64>,
    port_last: HashMap<u16, u64>,
}

impl DeviceSlide {
    /// Windows of the given lengths in ticks, ascending.
    pub fn new(lens: &[u64]) -> Self {
        debug_assert!(lens.windows(2).all(|w| w[0] < w[1]));
        DeviceSlide {
            events: VecDeque::new(),
            base_seq: 0,
            windows: lens
                .iter()
                .map(|&len| WindowAcc {
                    len,
                    ..Default::default()
                })
                .collect(),
            dst_last: HashMap::default(),
            port_last: HashMap::default(),
        }
    }

    fn next_seq(&self) -> u64 {
        self.base_seq + self.events.len() as u64
    }

    /// Removes from every window the events that leave it at tick `now`.
    pub fn advance_to(&mut self, now: u64) {
        let end = self.next_seq();
        let longest = self.windows.len() - 1;
        for (wi, w) in self.windows.iter_mut().enumerate() {
            while w.head < end {
                let obs = self.events[(w.head - self.base_seq) as usize];
                if obs.tick + w.len > now {
                    break;
                }
                remove(&mut w.stats, &obs);
                if obs.dst() != 0 && obs.dst_first && self.dst_last.get(&obs.dst()) == Some(&obs.tick) {
                    w.stats.distinct_dst -= 1;
                    if wi == longest {
                        self.dst_last.remove(&obs.dst());
                    }
                }
                if obs.port != 0 && obs.port_first && self.port_last.get(&obs.port) == Some(&obs.tick) {
                    w.stats.distinct_ports -= 1;
                    if wi == longest {
                        self.port_last.remove(&obs.port);
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
        let keep_from = self.windows[longest].head;
        while self.base_seq < keep_from {
            self.events.pop_front();
            self.base_seq += 1;
        }
    }

    /// Adds an event at tick `obs.tick`, which must be the tick last passed to `advance_to`.
    pub fn insert(&mut self, mut obs: Obs) {
        let now = obs.tick;
        let seq = self.next_seq();
        let dst_prev = if obs.dst() != 0 {
            self.dst_last.insert(obs.dst(), now)
        } else {
            Some(now)
        };
        let port_prev = if obs.port != 0 {
            self.port_last.insert(obs.port, now)
        } else {
            Some(now)
        };
        obs.dst_first = dst_prev != Some(now);
        obs.port_first = port_prev != Some(now);
        for w in self.windows.iter_mut() {
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

    /// The current statistics of window `i`.
    pub fn stats(&self, i: usize) -> &WindowStats {
        &self.windows[i].stats
    }

    /// The current statistics of every window, in length order.
    pub fn all_stats(&self) -> Vec<WindowStats> {
        self.windows.iter().map(|w| w.stats.clone()).collect()
    }

    /// Events held (those of the longest window).
    pub fn held(&self) -> usize {
        self.events.len()
    }

    /// Whether every window is empty (the device holds no events).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

fn add(s: &mut WindowStats, o: &Obs) {
    s.count += 1;
    s.bytes_out += o.bytes_out;
    s.bytes_in += o.bytes_in;
    s.packets += o.packets;
    if o.external {
        s.bytes_out_external += o.bytes_out;
    }
    match o.value() {
        Some(Some(q)) => {
            s.value_count += 1;
            s.value_sum += q as i128;
            s.value_sumsq += (q as i128) * (q as i128);
        }
        Some(None) => s.value_invalid += 1,
        None => {}
    }
}

fn remove(s: &mut WindowStats, o: &Obs) {
    s.count -= 1;
    s.bytes_out -= o.bytes_out;
    s.bytes_in -= o.bytes_in;
    s.packets -= o.packets;
    if o.external {
        s.bytes_out_external -= o.bytes_out;
    }
    match o.value() {
        Some(Some(q)) => {
            s.value_count -= 1;
            s.value_sum -= q as i128;
            s.value_sumsq -= (q as i128) * (q as i128);
        }
        Some(None) => s.value_invalid -= 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observation_is_64_bytes_and_round_trips() {
        assert_eq!(std::mem::size_of::<Obs>(), 64);
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
        let mut d = DeviceSlide::new(&[2, 5]);
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
}
