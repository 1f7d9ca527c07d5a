//! The guard against records dated far ahead: how far a record may run ahead of its source
//! partition's recent progress (`time.max_ahead`), as defined in `docs/semantics.md`.
//!
//! A record whose timestamp is more than the *bound* ahead of the partition's *progress* is
//! rejected (`too_far_ahead`) and never observed by the watermark, so one future-dated record
//! cannot move event time. With `R` the last [`RECENT`] timestamps the partition delivered
//! (every record whose timestamp parsed, whatever became of it) and `M` the watermark's highest
//! observed timestamp:
//! - progress `P = max(M, median(R))` (the lower median): one outlier moves neither; a real
//!   jump of the whole stream (data resuming after a gap) moves the median once most recent
//!   records are past it. A record beyond the bound is therefore not decided at once: it is
//!   held with the records after it until [`WARM_UP`] of them have a timestamp (or the
//!   partition ends or idles), their timestamps join `R`, and they are decided in order
//!   against that: after a gap the whole stream has moved and every record is accepted; one
//!   record dated ahead leaves the median where it was and alone is rejected;
//! - bound `B = max(max_ahead, 4 × the median gap between the sorted timestamps of R)`: a
//!   sparse partition whose records are usually hours apart may move by a few of its own gaps;
//! - following live Kafka, a record more than `max_ahead` ahead of the wall clock is rejected
//!   too (the only wall-clock dependence besides the idle time-out).
//!
//! At the start of a partition there is no progress yet: the first [`WARM_UP`] records with a
//! timestamp (and the records between them) are held and decided together once they are in
//! (or once the partition ends or goes idle), with `R` made of their timestamps. A first
//! record dated far ahead of the next ones is then rejected like any other.
//!
//! Cost: per record one comparison and one store into a fixed ring; the median is computed
//! only for a record beyond `M + max_ahead` (rare), over at most [`RECENT`] values on the stack.

/// Timestamps kept to measure progress by.
pub const RECENT: usize = 7;
/// Records with a timestamp held at the start of a partition before any is decided.
pub const WARM_UP: usize = 5;
/// The bound on a sparse partition: this many of its usual gaps between records.
pub const GAPS: i64 = 4;

/// Why a record is too far ahead: what it was measured against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ahead {
    /// More than `bound` ms ahead of the partition's progress `progress`.
    Progress { progress: i64, bound: i64 },
    /// More than `max_ahead` ahead of the wall clock `now` (live Kafka).
    WallClock { now: i64, bound: i64 },
}

impl Ahead {
    /// The time the record ran ahead of, and by how much it may.
    pub fn reference(self) -> (i64, i64) {
        match self {
            Ahead::Progress { progress, bound } => (progress, bound),
            Ahead::WallClock { now, bound } => (now, bound),
        }
    }

    /// One line for the reject's detail.
    pub fn detail(self, ts: i64) -> String {
        match self {
            Ahead::Progress { progress, bound } => format!(
                "ts {ts} is {} ms ahead of its partition's recent progress ({progress}); at most {bound} ms is accepted (time.max_ahead)",
                ts - progress
            ),
            Ahead::WallClock { now, bound } => format!(
                "ts {ts} is {} ms ahead of the wall clock ({now}); at most {bound} ms is accepted (time.max_ahead)",
                ts - now
            ),
        }
    }
}

/// The recent timestamps of one partition and the bound they set.
#[derive(Clone, Debug)]
pub struct AheadGuard {
    /// `time.max_ahead` in ms; 0: no bound.
    max_ahead: i64,
    /// Also bound by the wall clock (a live Kafka partition).
    wall_clock: bool,
    ring: [i64; RECENT],
    len: usize,
    next: usize,
}

impl AheadGuard {
    pub fn new(max_ahead_ms: u64, wall_clock: bool) -> Self {
        AheadGuard {
            max_ahead: max_ahead_ms.min(i64::MAX as u64) as i64,
            wall_clock,
            ring: [0; RECENT],
            len: 0,
            next: 0,
        }
    }

    /// Whether the guard bounds anything (`time.max_ahead` is not 0).
    pub fn enabled(&self) -> bool {
        self.max_ahead > 0
    }

    /// Notes the timestamp of a record (after it was checked).
    #[inline]
    pub fn note(&mut self, ts: i64) {
        self.ring[self.next] = ts;
        self.next = (self.next + 1) % RECENT;
        self.len = (self.len + 1).min(RECENT);
    }

    /// Whether a record at `ts` is too far ahead, given the highest timestamp the watermark
    /// observed (`max_seen`); None when it is not (or nothing is known yet).
    #[inline]
    pub fn check(&self, ts: i64, max_seen: Option<i64>) -> Option<Ahead> {
        if self.max_ahead == 0 {
            return None;
        }
        if self.wall_clock {
            let now = wall_clock_ms();
            if ts > now.saturating_add(self.max_ahead) {
                return Some(Ahead::WallClock {
                    now,
                    bound: self.max_ahead,
                });
            }
        }
        // The common case: within the bound of the highest time seen.
        if max_seen.is_some_and(|m| ts <= m.saturating_add(self.max_ahead)) {
            return None;
        }
        self.slow_check(ts, max_seen)
    }

    #[cold]
    fn slow_check(&self, ts: i64, max_seen: Option<i64>) -> Option<Ahead> {
        let mut sorted = self.ring;
        let recent = &mut sorted[..self.len];
        recent.sort_unstable();
        let median = recent.get(recent.len().saturating_sub(1) / 2).copied();
        let progress = match (max_seen, median) {
            (Some(m), Some(r)) => m.max(r),
            (m, r) => m.or(r)?,
        };
        let mut gaps = [0i64; RECENT];
        let gaps = &mut gaps[..recent.len().saturating_sub(1)];
        for (g, pair) in gaps.iter_mut().zip(recent.windows(2)) {
            *g = pair[1] - pair[0];
        }
        gaps.sort_unstable();
        let usual_gap = gaps.get(gaps.len().saturating_sub(1) / 2).copied().unwrap_or(0);
        let bound = self.max_ahead.max(usual_gap.saturating_mul(GAPS));
        (ts > progress.saturating_add(bound)).then_some(Ahead::Progress { progress, bound })
    }
}

/// Milliseconds since the epoch, by the wall clock.
pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3_600_000;

    fn guard_with(ts: &[i64]) -> AheadGuard {
        let mut g = AheadGuard::new(H as u64, false);
        for &t in ts {
            g.note(t);
        }
        g
    }

    #[test]
    fn one_record_far_ahead_is_caught_and_does_not_move_progress() {
        let base = 1_767_225_600_000;
        let mut g = guard_with(&[base, base + 1000, base + 2000]);
        assert_eq!(g.check(base + 2000 + H, Some(base + 2000)), None, "exactly the bound");
        let ahead = g.check(base + 2001 + H, Some(base + 2000)).unwrap();
        assert_eq!(ahead.reference(), (base + 2000, H));
        g.note(base + 100 * H);
        assert!(
            g.check(base + 100 * H, Some(base + 2000)).is_some(),
            "an outlier does not vouch for another"
        );
        assert_eq!(g.check(base + 3000, Some(base + 2000)), None);
    }

    #[test]
    fn the_stream_jumping_ahead_is_followed_once_most_recent_records_are_past_the_jump() {
        let base = 1_767_225_600_000;
        let mut g = guard_with(&[base; RECENT]);
        let later = base + 10 * H;
        let mut rejected = 0;
        for i in 0..RECENT as i64 {
            if g.check(later + i, Some(base)).is_some() {
                rejected += 1;
            }
            g.note(later + i);
        }
        assert_eq!(rejected, RECENT / 2 + 1, "rejected until the median moved");
    }

    #[test]
    fn a_sparse_partition_may_move_by_a_few_of_its_own_gaps() {
        let base = 1_767_225_600_000;
        let hourly: Vec<i64> = (0..RECENT as i64).map(|i| base + 2 * i * H).collect();
        let g = guard_with(&hourly);
        let last = *hourly.last().unwrap();
        assert_eq!(g.check(last + 2 * H, Some(last)), None);
        assert_eq!(g.check(last + 8 * H, Some(last)), None);
        assert!(g.check(last + 8 * H + 1, Some(last)).is_some());
    }

    #[test]
    fn off_and_wall_clock() {
        let g = AheadGuard::new(0, true);
        assert_eq!(g.check(i64::MAX, None), None);
        let g = AheadGuard::new(H as u64, true);
        let now = wall_clock_ms();
        assert!(matches!(g.check(now + 2 * H, None), Some(Ahead::WallClock { .. })));
        assert_eq!(
            g.check(now, None),
            None,
            "nothing known yet: no progress to be ahead of"
        );
    }
}
