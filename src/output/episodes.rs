//! The process's recent anomaly episodes, opened and closed: what the dashboard's timeline,
//! its "all episodes" table and a device's episode bands are drawn from (`GET /episodes`).
//!
//! The anomalies arrangement holds only the episodes open at a tick; once an episode closes
//! it is gone from it (and from `GET /anomalies`). This log keeps the last [`CAPACITY`]
//! episodes each with its start (the anomaly's own event time) and, once closed, its end
//! (the tick of the retraction), fed from the same change stream the anomaly outputs are
//! written from.
//!
//! Invariants: at most [`CAPACITY`] episodes are held (the oldest go first), so memory is
//! bounded whatever the input; a retraction and an insertion of the same (detector, device,
//! start) at one tick are one episode that goes on with its new score (an update), not a
//! closed one and a new one; the lock is held only to append or mark, never while
//! rendering. In a multi-process cluster each process logs its own workers' episodes.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::detect::Anomaly;

/// Most episodes kept.
pub const CAPACITY: usize = 20_000;

/// One episode as the dashboard shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct Episode {
    /// Tells episodes apart across the log's life (increasing).
    pub id: u64,
    pub detector: String,
    pub device: String,
    pub severity: &'static str,
    pub score: f64,
    pub reason: String,
    /// Event time (ms) the episode opened at.
    pub start_ms: i64,
    /// Event time (ms) of the tick it closed at; None while open.
    pub end_ms: Option<i64>,
}

impl Episode {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "detector": self.detector,
            "device_id": self.device,
            "severity": self.severity,
            "score": if self.score.is_finite() { serde_json::json!(self.score) } else { serde_json::Value::Null },
            "reason": self.reason,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "open": self.end_ms.is_none(),
        })
    }
}

type Key = (String, String, i64);

#[derive(Debug, Default)]
struct Inner {
    episodes: VecDeque<Episode>,
    /// Open episodes by (detector, device, start): their id.
    open: HashMap<Key, u64>,
    next_id: u64,
}

impl Inner {
    fn find(&mut self, id: u64) -> Option<&mut Episode> {
        let first = self.episodes.front()?.id;
        let at = id.checked_sub(first)? as usize;
        self.episodes.get_mut(at).filter(|e| e.id == id)
    }
}

/// The log (shared by the workers of a process, read by the query server).
#[derive(Debug, Default)]
pub struct EpisodeLog {
    inner: Mutex<Inner>,
}

impl EpisodeLog {
    /// Records one batch of anomaly changes `(anomaly, tick, diff)`; `tick_ms` turns ticks
    /// into event time.
    pub fn record(&self, changes: &[(Anomaly, u64, isize)], tick_ms: u64) {
        let Ok(mut inner) = self.inner.lock() else { return };
        let tick_ms = tick_ms as i64;
        // In time order, retractions first at each tick, so an update at one tick finds the
        // episode it continues.
        let mut order: Vec<&(Anomaly, u64, isize)> = changes.iter().collect();
        order.sort_by_key(|c| (c.1, c.2));
        for (a, t, diff) in order {
            let key = (
                a.detector.to_string(),
                a.device.as_str().to_string(),
                a.tick as i64 * tick_ms,
            );
            let at_ms = *t as i64 * tick_ms;
            if *diff < 0 {
                if let Some(id) = inner.open.remove(&key) {
                    if let Some(e) = inner.find(id) {
                        e.end_ms = Some(at_ms);
                    }
                }
                continue;
            }
            // Continued at the tick it was retracted at: an update of the same episode.
            let continued =
                inner.episodes.iter_mut().rev().take(64).find(|e| {
                    e.end_ms == Some(at_ms) && (&e.detector, &e.device, e.start_ms) == (&key.0, &key.1, key.2)
                });
            if let Some(e) = continued {
                e.end_ms = None;
                e.score = a.score.0;
                e.severity = a.severity.as_str();
                e.reason.clone_from(&a.reason);
                let id = e.id;
                inner.open.insert(key, id);
                continue;
            }
            let id = inner.next_id;
            inner.next_id += 1;
            inner.episodes.push_back(Episode {
                id,
                detector: key.0.clone(),
                device: key.1.clone(),
                severity: a.severity.as_str(),
                score: a.score.0,
                reason: a.reason.clone(),
                start_ms: key.2,
                end_ms: None,
            });
            inner.open.insert(key, id);
            while inner.episodes.len() > CAPACITY {
                if let Some(old) = inner.episodes.pop_front() {
                    if old.end_ms.is_none() {
                        inner.open.remove(&(old.detector, old.device, old.start_ms));
                    }
                }
            }
        }
    }

    /// The episodes `keep` accepts, newest start first (ties: detector, device), after
    /// skipping `offset`, at most `limit`; and how many matched in all.
    pub fn select(&self, keep: impl Fn(&Episode) -> bool, offset: usize, limit: usize) -> (Vec<Episode>, usize) {
        let Ok(inner) = self.inner.lock() else {
            return (Vec::new(), 0);
        };
        let mut matched: Vec<&Episode> = inner.episodes.iter().filter(|e| keep(e)).collect();
        matched.sort_by(|a, b| {
            (b.start_ms, &a.detector, &a.device, a.id).cmp(&(a.start_ms, &b.detector, &b.device, b.id))
        });
        let total = matched.len();
        let page = matched.into_iter().skip(offset).take(limit).cloned().collect();
        (page, total)
    }

    /// Episodes held (open and closed).
    pub fn len(&self) -> usize {
        self.inner.lock().map_or(0, |i| i.episodes.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Real, Severity};

    fn anomaly(device: &str, tick: u64, score: f64) -> Anomaly {
        Anomaly {
            detector: "silence".into(),
            device: device.into(),
            tick,
            window_ms: None,
            score: Real(score),
            severity: Severity::from_score(score),
            reason: format!("score {score}"),
            evidence: Vec::new(),
        }
    }

    #[test]
    fn episodes_open_close_and_updates_continue_them() {
        let log = EpisodeLog::default();
        log.record(&[(anomaly("a", 10, 0.6), 10, 1), (anomaly("b", 12, 0.95), 12, 1)], 1000);
        // a's score changes at tick 15 (retract + insert at one tick): the same episode.
        log.record(&[(anomaly("a", 10, 0.8), 15, 1), (anomaly("a", 10, 0.6), 15, -1)], 1000);
        // One batch may hold an episode's opening and, later, its closing.
        log.record(&[(anomaly("c", 17, 0.5), 18, -1), (anomaly("c", 17, 0.5), 17, 1)], 1000);
        log.record(&[(anomaly("b", 12, 0.95), 20, -1)], 1000);
        let (all, total) = log.select(|_| true, 0, 10);
        assert_eq!(total, 3);
        assert_eq!((all[0].device.as_str(), all[0].end_ms), ("c", Some(18_000)));
        let all = &all[1..];
        assert_eq!((all[0].device.as_str(), all[0].end_ms), ("b", Some(20_000)));
        assert_eq!((all[1].device.as_str(), all[1].end_ms, all[1].score), ("a", None, 0.8));
        assert_eq!(all[1].severity, "high");
        let (open, n) = log.select(|e| e.end_ms.is_none(), 0, 10);
        assert_eq!((open.len(), n), (1, 1));
        let (page, n) = log.select(|_| true, 2, 10);
        assert_eq!((page.len(), page[0].device.as_str(), n), (1, "a", 3));
    }

    #[test]
    fn the_log_keeps_at_most_its_capacity() {
        let log = EpisodeLog::default();
        let batch: Vec<_> = (0..CAPACITY as u64 + 10)
            .map(|i| (anomaly(&format!("d{i}"), i, 0.5), i, 1))
            .collect();
        log.record(&batch, 1000);
        assert_eq!(log.len(), CAPACITY);
        let (newest, _) = log.select(|_| true, 0, 1);
        assert_eq!(newest[0].start_ms, (CAPACITY as i64 + 9) * 1000);
        // An evicted open episode's retraction is ignored.
        log.record(&[(anomaly("d0", 0, 0.5), 99_999, -1)], 1000);
        assert_eq!(log.select(|e| e.end_ms.is_some(), 0, 1).1, 0);
    }
}
