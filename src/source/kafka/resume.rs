//! The offsets vigil commits and what a restart makes of them.
//!
//! A commit for a partition is `(offset, metadata)` with metadata
//! `vigil1;complete=<tick>;read=<offset>`: `offset` is the first record still needed to
//! rebuild the state of every output not yet delivered (it trails the frontier by the
//! retention horizon, see [`Marks`]); `complete` is the tick below which every worker had
//! delivered every output when the commit was made; `read` is the next offset the run had
//! read (dead letters below it were delivered).
//!
//! Invariants of [`Marks`]: marks are kept in increasing offset order with increasing ticks
//! (the partition's highest tick seen so far, which never decreases), so the records that
//! are no longer needed are always a prefix.

use std::collections::VecDeque;

const PREFIX: &str = "vigil1";

/// What a commit's metadata says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommitMeta {
    pub complete: u64,
    pub read: i64,
}

impl CommitMeta {
    pub fn encode(&self) -> String {
        format!("{PREFIX};complete={};read={}", self.complete, self.read)
    }

    /// Parses metadata written by [`CommitMeta::encode`]; anything else (another tool's
    /// commit) is None.
    pub fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(';');
        if parts.next()? != PREFIX {
            return None;
        }
        let (mut complete, mut read) = (None, None);
        for part in parts {
            match part.split_once('=')? {
                ("complete", v) => complete = v.parse().ok(),
                ("read", v) => read = v.parse().ok(),
                _ => {}
            }
        }
        Some(CommitMeta {
            complete: complete?,
            read: read?,
        })
    }
}

/// Per partition: which records are still needed for a restart.
///
/// A record's *retention tick* is the highest tick its partition had seen when it was read
/// (at least its own tick when it has one). A record is needed while its retention tick is
/// at or above `complete - horizon`, where `horizon` is the longest maintained window plus
/// the lateness, in ticks: replaying from the first needed record rebuilds every window
/// and feature state at or after `complete` exactly, and decides every record whose tick is
/// at or above `complete - horizon` exactly as the first run did.
#[derive(Debug, Default, Clone)]
pub struct Marks {
    /// (first offset with this retention tick, retention tick).
    marks: VecDeque<(i64, u64)>,
}

impl Marks {
    /// Records that the record at `offset` has retention tick `tick`.
    pub fn note(&mut self, offset: i64, tick: u64) {
        match self.marks.back() {
            Some(&(_, t)) if t >= tick => {}
            _ => self.marks.push_back((offset, tick)),
        }
    }

    /// The offset to commit when every output below `complete` is delivered and `next` is
    /// the next offset to read: the first record still needed, else `next`.
    pub fn commit_offset(&mut self, complete: u64, horizon: u64, next: i64) -> i64 {
        let threshold = complete.saturating_sub(horizon);
        while self.marks.front().is_some_and(|&(_, t)| t < threshold) {
            self.marks.pop_front();
        }
        self.marks.front().map_or(next, |&(o, _)| o.min(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trip() {
        let m = CommitMeta { complete: 42, read: 7 };
        assert_eq!(CommitMeta::parse(&m.encode()), Some(m));
        assert_eq!(CommitMeta::parse(""), None);
        assert_eq!(CommitMeta::parse("other;complete=1;read=2"), None);
        assert_eq!(CommitMeta::parse("vigil1;complete=x;read=2"), None);
    }

    #[test]
    fn commit_trails_by_the_horizon() {
        let mut m = Marks::default();
        for (offset, tick) in [(0, 10), (1, 10), (2, 12), (3, 11), (4, 20), (5, 30)] {
            m.note(offset, tick.max(if offset == 3 { 12 } else { 0 }));
        }
        // Nothing final yet: commit the first record.
        assert_eq!(m.commit_offset(0, 5, 6), 0);
        // complete 18, horizon 5: records with retention tick < 13 are no longer needed.
        assert_eq!(m.commit_offset(18, 5, 6), 4);
        assert_eq!(m.commit_offset(34, 5, 6), 5);
        assert_eq!(m.commit_offset(100, 5, 6), 6);
        m.note(6, 31);
        assert_eq!(m.commit_offset(100, 5, 7), 7);
    }
}
