//! What detectors produce: anomalies (episodes with a score, a severity, a one-line reason
//! and their evidence) and per-event scores.
//!
//! Invariants: scores lie in [0, 1]; every float is finite (non-finite evidence is written as
//! `null`); anomalies are plain data with a total order so they can live in differential
//! collections and be retracted exactly.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::event::DeviceId;

/// An f64 with a total order (by `total_cmp`), so it can be differential data.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Real(pub f64);

impl PartialEq for Real {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}
impl Eq for Real {}
impl PartialOrd for Real {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Real {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}
impl std::hash::Hash for Real {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state)
    }
}

/// How urgent an anomaly is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The usual mapping from a score: <0.5 low, <0.75 medium, <0.9 high, else critical.
    pub fn from_score(score: f64) -> Self {
        match score {
            s if s >= 0.9 => Severity::Critical,
            s if s >= 0.75 => Severity::High,
            s if s >= 0.5 => Severity::Medium,
            _ => Severity::Low,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One anomaly of one device, as a detector reports it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Anomaly {
    pub detector: CompactString,
    pub device: DeviceId,
    /// The tick at which the anomaly was detected (for an episode: when it opened).
    pub tick: u64,
    /// The window the evidence comes from, in ms, when one does.
    pub window_ms: Option<u64>,
    /// In [0, 1].
    pub score: Real,
    pub severity: Severity,
    /// One human line, e.g. "no events for 4m12s; usual rate 38/min".
    pub reason: String,
    /// The feature values and baselines that made it fire, by name.
    pub evidence: Vec<(CompactString, Real)>,
}

impl Anomaly {
    /// A row of `anomalies.jsonl` (and of the Kafka/Pinot anomalies table): `op` is
    /// `insert` or `retract`, `at_ms` the event time of the change.
    pub fn to_json(&self, op: &str, at_ms: i64, tick_ms: u64) -> serde_json::Value {
        let evidence: serde_json::Map<String, serde_json::Value> = self
            .evidence
            .iter()
            .map(|(k, v)| (k.to_string(), finite(v.0)))
            .collect();
        serde_json::json!({
            "op": op,
            "at_ms": at_ms,
            "detector": self.detector.as_str(),
            "device_id": self.device.as_str(),
            "ts_ms": self.tick as i64 * tick_ms as i64,
            "window_ms": self.window_ms,
            "score": finite(self.score.0),
            "severity": self.severity.as_str(),
            "reason": self.reason,
            "evidence": evidence,
        })
    }
}

fn finite(v: f64) -> serde_json::Value {
    if v.is_finite() {
        serde_json::json!(v)
    } else {
        serde_json::Value::Null
    }
}

/// A score for one event, from a detector that scores every event (`--scores-out`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventScore {
    pub ts_ms: i64,
    pub device: DeviceId,
    pub detector: CompactString,
    pub score: f64,
}
