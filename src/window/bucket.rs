//! A stepped window's bucket: the sums of one step's events of one device, kept until the
//! step leaves the device's longest window, and the look-up of a step's bucket.
//!
//! Invariants: a bucket's sums are exact (an event that would overflow one of its fields
//! goes to a new bucket of the same step instead); `dsts_last <= count` and
//! `ports_last <= count`, since each is counted with an event added to the bucket.

use std::collections::VecDeque;

use super::obs::Obs;
use super::stats::WindowStats;

/// The events of one step of one device (or of part of it), summed: 96 bytes inline, the
/// readings' sums with the rest (a device keeps one per step of its longest window, 60 for
/// an hour, and most steps have readings). Its sums are exact: an event that would overflow
/// one of its narrow fields opens a second bucket for the same step ([`Bucket::try_add`]),
/// so a step can have several, and they leave the windows together.
#[derive(Clone, Debug)]
pub(super) struct Bucket {
    /// Step number (`tick / step`) minus the slide's `bucket_base`.
    pub(super) rel: u32,
    pub(super) count: u32,
    /// Destinations and ports whose latest event lies in this bucket: they leave a window
    /// when this step does. At most `count` (each was counted with an event added here).
    pub(super) dsts_last: u32,
    pub(super) ports_last: u32,
    /// Valid and invalid readings.
    pub(super) value_count: u32,
    pub(super) value_invalid: u32,
    pub(super) bytes_out: u64,
    pub(super) bytes_in: u64,
    pub(super) packets: u64,
    pub(super) bytes_out_external: u64,
    pub(super) value_sum: i64,
    /// The sum of squared readings (an `i128`, non-negative), as its two halves: an `i128`
    /// field would align the bucket to 16 bytes and make it 112.
    pub(super) sumsq_lo: u64,
    pub(super) sumsq_hi: u64,
    /// Least and greatest valid reading (meaningful when `value_count > 0`).
    pub(super) value_min: i64,
    pub(super) value_max: i64,
}

impl Bucket {
    pub(super) fn new(rel: u32) -> Self {
        Bucket {
            rel,
            count: 0,
            dsts_last: 0,
            ports_last: 0,
            value_count: 0,
            value_invalid: 0,
            bytes_out: 0,
            bytes_in: 0,
            packets: 0,
            bytes_out_external: 0,
            value_sum: 0,
            sumsq_lo: 0,
            sumsq_hi: 0,
            value_min: i64::MAX,
            value_max: i64::MIN,
        }
    }

    /// Its step number, given the slide's `bucket_base`.
    pub(super) fn step(&self, base: u64) -> u64 {
        base + self.rel as u64
    }

    pub(super) fn sumsq(&self) -> i128 {
        ((self.sumsq_hi as i128) << 64) | self.sumsq_lo as i128
    }

    /// Adds the event, or leaves the bucket as it was and returns `false` when one of its
    /// sums would overflow (then the event opens a new bucket: a fresh one takes any event).
    pub(super) fn try_add(&mut self, o: &Obs) -> bool {
        let sums = (
            self.count.checked_add(1),
            self.bytes_out.checked_add(o.bytes_out),
            self.bytes_in.checked_add(o.bytes_in),
            self.packets.checked_add(o.packets),
        );
        let (Some(count), Some(bytes_out), Some(bytes_in), Some(packets)) = sums else {
            return false;
        };
        let bytes_out_external = if o.external {
            let Some(e) = self.bytes_out_external.checked_add(o.bytes_out) else {
                return false;
            };
            e
        } else {
            self.bytes_out_external
        };
        match o.value() {
            Some(Some(q)) => {
                let square = (q as i128) * (q as i128);
                let sums = (
                    self.value_count.checked_add(1),
                    self.value_sum.checked_add(q),
                    self.sumsq().checked_add(square),
                );
                let (Some(n), Some(sum), Some(sumsq)) = sums else {
                    return false;
                };
                self.value_count = n;
                self.value_sum = sum;
                self.sumsq_lo = sumsq as u64;
                self.sumsq_hi = (sumsq >> 64) as u64;
                self.value_min = self.value_min.min(q);
                self.value_max = self.value_max.max(q);
            }
            Some(None) => {
                let Some(n) = self.value_invalid.checked_add(1) else {
                    return false;
                };
                self.value_invalid = n;
            }
            None => {}
        }
        self.count = count;
        self.bytes_out = bytes_out;
        self.bytes_in = bytes_in;
        self.packets = packets;
        self.bytes_out_external = bytes_out_external;
        true
    }

    /// Takes the bucket's sums out of a window's (not its distincts, min or max).
    pub(super) fn subtract_from(&self, s: &mut WindowStats) {
        s.count -= self.count as u64;
        s.bytes_out = s.bytes_out.saturating_sub(self.bytes_out);
        s.bytes_in = s.bytes_in.saturating_sub(self.bytes_in);
        s.packets = s.packets.saturating_sub(self.packets);
        s.bytes_out_external = s.bytes_out_external.saturating_sub(self.bytes_out_external);
        s.value_count -= self.value_count as u64;
        s.value_invalid -= self.value_invalid as u64;
        s.value_sum -= self.value_sum as i128;
        s.value_sumsq = s.value_sumsq.saturating_sub(self.sumsq()).max(0);
    }

    pub(super) fn valid_readings(&self) -> bool {
        self.value_count > 0
    }

    /// Least and greatest valid reading, if it has any.
    pub(super) fn extremes(&self) -> Option<(i64, i64)> {
        self.valid_readings().then_some((self.value_min, self.value_max))
    }
}

/// The newest bucket of step `index` whose counter (`which`) is positive, if there is one.
/// The steps a device's destinations were last seen in are mostly its latest few: those are
/// looked at first, from the newest (in cache: the newest bucket was asked for ahead), before
/// a binary search of the rest (each probe of which is a cold line).
pub(super) fn find_bucket(
    buckets: &mut VecDeque<Bucket>,
    base: u64,
    index: u64,
    which: fn(&mut Bucket) -> &mut u32,
) -> Option<&mut Bucket> {
    const RECENT: usize = 4;
    let n = buckets.len();
    // One past the newest bucket of a step `<= index`.
    let end = match (1..=RECENT.min(n))
        .map(|back| n - back)
        .find(|&at| buckets[at].step(base) <= index)
    {
        Some(at) => at + 1,
        None => buckets.partition_point(|b| b.step(base) <= index),
    };
    let mut at = end;
    while at > 0 && buckets[at - 1].step(base) == index {
        at -= 1;
        if *which(&mut buckets[at]) > 0 {
            return Some(&mut buckets[at]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_refuses_an_event_that_would_overflow_it_and_stays_as_it_was() {
        assert_eq!(std::mem::size_of::<Bucket>(), 96);
        let reading = |bytes: u64, v: f64| Obs::new(0, bytes, 1, 1, true, 9, 80, Some(v));
        let mut b = Bucket::new(0);
        assert!(b.try_add(&reading(u64::MAX - 10, 1e9)));
        let before = b.clone();
        assert!(!b.try_add(&reading(11, 1.0)), "bytes_out would overflow");
        assert_eq!(format!("{b:?}"), format!("{before:?}"));
        assert!(b.try_add(&reading(10, -2.0)));
        assert_eq!((b.count, b.bytes_out, b.value_count), (2, u64::MAX, 2));
        assert_eq!(b.extremes(), Some((-2_000_000, 1_000_000_000_000_000)));
        assert_eq!(b.sumsq(), 1_000_000_000_000_000i128.pow(2) + 4_000_000_000_000);
        // The sum of readings: about 9,200 readings of 1e9 fill an i64 of micro-units.
        let mut c = Bucket::new(0);
        let n = (0..20_000).take_while(|_| c.try_add(&reading(1, 1e9))).count() as i64;
        assert_eq!(n, i64::MAX / 1_000_000_000_000_000);
        assert_eq!(c.value_sum, n * 1_000_000_000_000_000);
        // Subtracting a bucket takes out exactly what it added.
        let mut s = WindowStats::default();
        for _ in 0..n {
            super::super::obs::add(&mut s, &reading(1, 1e9));
        }
        c.subtract_from(&mut s);
        assert_eq!(
            s,
            WindowStats {
                value_min: s.value_min,
                value_max: s.value_max,
                ..Default::default()
            }
        );
    }

    #[test]
    fn the_bucket_of_a_step_is_the_newest_of_its_buckets_with_a_positive_count() {
        let mut q: VecDeque<Bucket> = VecDeque::new();
        for (rel, dsts) in [(0, 1), (2, 1), (2, 0), (3, 2), (5, 0), (6, 1), (7, 1), (8, 1), (9, 1)] {
            let mut b = Bucket::new(rel);
            b.dsts_last = dsts;
            q.push_back(b);
        }
        fn dsts(b: &mut Bucket) -> &mut u32 {
            &mut b.dsts_last
        }
        let found =
            |q: &mut VecDeque<Bucket>, index: u64| find_bucket(q, 100, index, dsts).map(|b| (b.rel, b.dsts_last));
        // Step 2 has two buckets: the newer one counts none, so the older one is taken.
        assert_eq!(found(&mut q, 102), Some((2, 1)));
        assert_eq!(found(&mut q, 103), Some((3, 2)), "by binary search");
        assert_eq!(found(&mut q, 108), Some((8, 1)), "among the newest four");
        assert_eq!(found(&mut q, 105), None, "its only bucket counts none");
        assert_eq!(found(&mut q, 104), None, "no bucket");
        assert_eq!(found(&mut q, 99), None);
        assert_eq!(found(&mut q, 110), None);
    }
}
