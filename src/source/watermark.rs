//! Per-partition watermark and lateness, as defined in `docs/semantics.md`.
//!
//! Invariants: `observe` is called for every record in partition order with its peeked
//! timestamp; `classify` is asked *before* `observe` for the same record; the watermark tick
//! never decreases.

use crate::config::{Config, LatePolicy};

/// Where an accepted record lands in event time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeliness {
    /// At its own tick.
    OnTime(u64),
    /// Late, rejected.
    Late,
    /// Late, applied at the watermark tick as a correction.
    Corrected(u64),
}

/// The running maximum of a partition and what follows from it.
#[derive(Clone, Debug)]
pub struct Watermark {
    max_ts: Option<i64>,
    lateness_ms: i64,
    tick_ms: i64,
    policy: LatePolicy,
}

impl Watermark {
    pub fn new(config: &Config) -> Self {
        Watermark {
            max_ts: None,
            lateness_ms: config.time.lateness.0 as i64,
            tick_ms: config.tick_ms() as i64,
            policy: config.time.late_policy,
        }
    }

    /// The tick of an event time.
    #[inline]
    pub fn tick_of(&self, ts_ms: i64) -> u64 {
        ts_ms.div_euclid(self.tick_ms) as u64
    }

    /// Where a valid record with timestamp `ts_ms` goes, given the records before it.
    #[inline]
    pub fn classify(&self, ts_ms: i64) -> Timeliness {
        match self.max_ts {
            Some(m) if ts_ms < m - self.lateness_ms => match self.policy {
                LatePolicy::Reject => Timeliness::Late,
                LatePolicy::Correct => Timeliness::Corrected(self.tick_of(m - self.lateness_ms)),
            },
            _ => Timeliness::OnTime(self.tick_of(ts_ms)),
        }
    }

    /// Accounts for a record whose timestamp parsed (valid or not otherwise).
    #[inline]
    pub fn observe(&mut self, ts_ms: i64) {
        self.max_ts = Some(self.max_ts.map_or(ts_ms, |m| m.max(ts_ms)));
    }

    /// The partition's watermark tick: no later record lands below it.
    pub fn tick(&self) -> Option<u64> {
        self.max_ts.map(|m| self.tick_of(m - self.lateness_ms))
    }

    /// The tick of the highest timestamp seen (`T_end` once the partition is exhausted).
    pub fn end_tick(&self) -> Option<u64> {
        self.max_ts.map(|m| self.tick_of(m))
    }

    /// The highest timestamp seen.
    pub fn max_ts(&self) -> Option<i64> {
        self.max_ts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lateness_is_relative_to_earlier_records() {
        let config = Config::from_toml("").unwrap();
        let mut w = Watermark::new(&config);
        assert_eq!(w.classify(10_000), Timeliness::OnTime(10));
        w.observe(10_000);
        assert_eq!(w.classify(5_000), Timeliness::OnTime(5));
        assert_eq!(w.classify(4_999), Timeliness::Late);
        assert_eq!(w.tick(), Some(5));
        let config = Config::from_toml("[time]\nlate_policy = \"correct\"\n").unwrap();
        let mut w = Watermark::new(&config);
        w.observe(10_000);
        assert_eq!(w.classify(1_000), Timeliness::Corrected(5));
    }
}
