//! `GET /episodes`: the process's recent anomaly episodes, open and closed, newest first,
//! paged and filtered ([`EpisodeFilter`]), from the log the pipeline keeps
//! ([`crate::output::episodes`]).
//!
//! Invariants: answered from memory on the event loop (the log's lock is held only to copy
//! out one page); the answer says how many matched (`total`) and the frontier it was read
//! at (`as_of_ms`); the log holds the last [`crate::output::episodes::CAPACITY`] episodes of
//! this process's workers, and the answer says so (`capacity`, `scope`).

use serde_json::json;

use crate::output::episodes::{Episode, CAPACITY};
use crate::output::metrics::Metrics;
use crate::query::request::EpisodeFilter;
use crate::query::Answer;

/// Whether `e` passes `f`.
fn keep(f: &EpisodeFilter, e: &Episode) -> bool {
    f.detector.as_deref().is_none_or(|d| e.detector == d)
        && f.device.as_deref().is_none_or(|d| e.device == d)
        && f.min_severity.is_none_or(|m| severity_rank(e.severity) >= m as u8)
        && (!f.open || e.end_ms.is_none())
        && f.since_ms.is_none_or(|s| e.end_ms.is_none_or(|end| end >= s))
}

fn severity_rank(name: &str) -> u8 {
    ["low", "medium", "high", "critical"]
        .iter()
        .position(|s| *s == name)
        .unwrap_or(0) as u8
}

/// The answer to `GET /episodes` (`as_of_ms`: the completed frontier, if any).
pub fn answer(metrics: &Metrics, filter: &EpisodeFilter, as_of_ms: Option<i64>) -> Answer {
    let (page, total) = metrics
        .episodes
        .select(|e| keep(filter, e), filter.offset, filter.limit);
    let body = json!({
        "as_of_ms": as_of_ms,
        "total": total,
        "offset": filter.offset,
        "count": page.len(),
        "capacity": CAPACITY,
        "scope": "this process's workers",
        "episodes": page.iter().map(Episode::to_json).collect::<Vec<_>>(),
    });
    Answer::json(200, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Anomaly, Real, Severity};

    #[test]
    fn filters_by_detector_device_severity_and_state() {
        let m = Metrics::default();
        let a = |detector: &str, device: &str, tick: u64, score: f64| Anomaly {
            detector: detector.into(),
            device: device.into(),
            tick,
            window_ms: None,
            score: Real(score),
            severity: Severity::from_score(score),
            reason: String::new(),
            evidence: Vec::new(),
        };
        m.episodes.record(
            &[
                (a("silence", "a", 1, 0.95), 1, 1),
                (a("exfiltration", "a", 2, 0.6), 2, 1),
                (a("silence", "b", 3, 0.3), 3, 1),
            ],
            1000,
        );
        m.episodes.record(&[(a("silence", "a", 1, 0.95), 5, -1)], 1000);
        let ids = |f: EpisodeFilter| -> Vec<(String, String)> {
            let body: serde_json::Value = serde_json::from_str(&answer(&m, &f, Some(9)).body).unwrap();
            body["episodes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (
                        e["detector"].as_str().unwrap().into(),
                        e["device_id"].as_str().unwrap().into(),
                    )
                })
                .collect()
        };
        let limit = 10;
        let pair = |d: &str, v: &str| (d.to_string(), v.to_string());
        assert_eq!(
            ids(EpisodeFilter {
                limit,
                ..Default::default()
            }),
            vec![pair("silence", "b"), pair("exfiltration", "a"), pair("silence", "a")]
        );
        assert_eq!(
            ids(EpisodeFilter {
                device: Some("a".into()),
                open: true,
                limit,
                ..Default::default()
            }),
            vec![pair("exfiltration", "a")]
        );
        assert_eq!(
            ids(EpisodeFilter {
                min_severity: Some(Severity::Medium),
                limit,
                ..Default::default()
            }),
            vec![pair("exfiltration", "a"), pair("silence", "a")]
        );
        assert_eq!(
            ids(EpisodeFilter {
                detector: Some("silence".into()),
                since_ms: Some(6000),
                limit,
                ..Default::default()
            }),
            vec![pair("silence", "b")]
        );
    }
}
