//! Run metrics (shared by all workers of a process) and the end-of-run summary.
//!
//! Invariant: `read = accepted + Σ rejected`, counted by the worker that owns each record;
//! late records rejected are in `rejected[late]`, late records applied as corrections are in
//! `accepted` and in `late_corrected`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::Serialize;

use crate::decode::{RejectReason, SKIP_KINDS};

/// Counters updated while a run goes on.
#[derive(Debug, Default)]
pub struct Metrics {
    pub read: AtomicU64,
    pub accepted: AtomicU64,
    pub rejected: [AtomicU64; RejectReason::ALL.len()],
    /// Lines skipped as not records (Suricata event types other than flows), by kind.
    pub skipped: [AtomicU64; SKIP_KINDS.len()],
    pub late_corrected: AtomicU64,
    pub window_rows: AtomicU64,
    pub devices: AtomicU64,
    pub features_written: AtomicU64,
    /// Anomaly episodes opened and closed.
    pub anomalies_opened: AtomicU64,
    pub anomalies_closed: AtomicU64,
    /// Highest event time seen (epoch ms), for progress and lag.
    pub max_event_ms: AtomicU64,
    /// The frontier (tick) the outputs are complete through.
    pub frontier_tick: AtomicU64,
    /// Largest number of updates the feature arrangement held at once (summed over this
    /// process's workers at each observation, max over observations): the memory bound.
    pub peak_arrangement_updates: AtomicU64,
    /// Largest number of events the window operators held at once (same accounting).
    pub peak_window_events: AtomicU64,
    /// Anomaly episodes (opened, closed) per detector.
    pub anomalies_by_detector: Mutex<BTreeMap<String, (u64, u64)>>,
    /// The recent anomaly episodes, open and closed (`GET /episodes`, the dashboard).
    pub episodes: super::episodes::EpisodeLog,
    /// Devices in this process's window operators now (updated each step; `devices` is
    /// the end-of-run count).
    pub devices_live: AtomicU64,
    /// Query latencies (request read to answer ready).
    pub query_latency: LatencyHistogram,
    /// Answers by endpoint and status class: `[endpoint][0: 2xx, 1: 4xx, 2: 5xx]`.
    pub queries: [[AtomicU64; 3]; ENDPOINTS.len()],
    /// The query server's connections.
    pub connections: ConnectionCounters,
}

/// What the query server's transport counts about its connections.
#[derive(Debug, Default)]
pub struct ConnectionCounters {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections closed to make room for a new one (the server at its connection limit).
    pub evicted: AtomicU64,
    /// Connections closed because a request head did not arrive whole in time (408) or the
    /// connection stayed idle too long.
    pub timed_out: AtomicU64,
}

/// The query server's endpoints, as labelled in metrics.
pub const ENDPOINTS: [&str; 12] = [
    "device",
    "history",
    "anomalies",
    "top",
    "health",
    "metrics",
    "other",
    "features",
    "models",
    "retrain",
    "episodes",
    "dashboard",
];

/// Upper bounds (seconds) of the query latency histogram's buckets (`+Inf` is implied).
pub const LATENCY_BUCKETS_S: [f64; 14] = [
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// A Prometheus-style cumulative-on-read latency histogram (counts per bucket, sum, count).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    /// Per bucket of [`LATENCY_BUCKETS_S`], plus one for larger values.
    pub buckets: [AtomicU64; LATENCY_BUCKETS_S.len() + 1],
    pub sum_us: AtomicU64,
    pub count: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, d: std::time::Duration) {
        let s = d.as_secs_f64();
        let i = LATENCY_BUCKETS_S
            .iter()
            .position(|&b| s <= b)
            .unwrap_or(LATENCY_BUCKETS_S.len());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_us.fetch_add(d.as_micros() as u64, Relaxed);
        self.count.fetch_add(1, Relaxed);
    }
}

impl Metrics {
    pub fn reject(&self, reason: RejectReason) {
        self.rejected[reason.index()].fetch_add(1, Relaxed);
    }

    /// An anomaly episode of `detector` opened (`diff > 0`) or closed (`diff < 0`).
    pub fn anomaly_change(&self, detector: &str, diff: isize) {
        let n = diff.unsigned_abs() as u64;
        let (total, slot) = if diff > 0 {
            (&self.anomalies_opened, 0)
        } else {
            (&self.anomalies_closed, 1)
        };
        total.fetch_add(n, Relaxed);
        if let Ok(mut map) = self.anomalies_by_detector.lock() {
            let e = map.entry(detector.to_string()).or_default();
            if slot == 0 {
                e.0 += n;
            } else {
                e.1 += n;
            }
        }
    }

    /// An answer of the query server: its endpoint (index into [`ENDPOINTS`]), status and
    /// latency.
    pub fn query_answered(&self, endpoint: usize, status: u16, latency: std::time::Duration) {
        let class = match status {
            200..=399 => 0,
            400..=499 => 1,
            _ => 2,
        };
        if let Some(row) = self.queries.get(endpoint) {
            row[class].fetch_add(1, Relaxed);
        }
        self.query_latency.observe(latency);
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.iter().map(|c| c.load(Relaxed)).sum()
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.iter().map(|c| c.load(Relaxed)).sum()
    }

    /// Skipped lines by kind (event type), the kinds with none left out.
    pub fn skipped_by_type(&self) -> BTreeMap<String, u64> {
        SKIP_KINDS
            .iter()
            .zip(&self.skipped)
            .map(|(k, c)| (k.to_string(), c.load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    pub fn rejected_by_reason(&self) -> BTreeMap<String, u64> {
        RejectReason::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), self.rejected[r.index()].load(Relaxed)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }
}

/// How a plain number of [`Metrics`] reads in Prometheus text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    Gauge,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
        }
    }
}

/// One plain number of [`Metrics`], defined once: its Prometheus name, kind and help, and
/// where it lives. [`COUNTERS`] is what the end-of-run totals (summed over the processes of
/// a cluster) and `/metrics` both read, so neither keeps a list of its own.
pub struct CounterDef {
    pub name: &'static str,
    pub kind: MetricKind,
    pub help: &'static str,
    pub field: fn(&Metrics) -> &AtomicU64,
    /// In `/metrics` (the anomaly totals are not: the per-detector families hold them).
    pub exported: bool,
}

/// Every plain number of [`Metrics`] (the rejects by reason, the per-detector anomaly counts,
/// the query counters and the latency histogram are labelled families, written apart; the
/// frontier and lag are read from the hub).
pub const COUNTERS: &[CounterDef] = &[
    CounterDef {
        name: "vigil_events_read_total",
        kind: MetricKind::Counter,
        help: "Records read.",
        field: |m| &m.read,
        exported: true,
    },
    CounterDef {
        name: "vigil_events_accepted_total",
        kind: MetricKind::Counter,
        help: "Records accepted as events.",
        field: |m| &m.accepted,
        exported: true,
    },
    CounterDef {
        name: "vigil_events_late_corrected_total",
        kind: MetricKind::Counter,
        help: "Late records applied at the watermark.",
        field: |m| &m.late_corrected,
        exported: true,
    },
    CounterDef {
        name: "vigil_window_rows_total",
        kind: MetricKind::Counter,
        help: "Closed tumbling-window rows written.",
        field: |m| &m.window_rows,
        exported: true,
    },
    CounterDef {
        name: "vigil_devices",
        kind: MetricKind::Gauge,
        help: "Devices with state in the windows.",
        field: |m| &m.devices,
        exported: true,
    },
    CounterDef {
        name: "vigil_feature_rows_total",
        kind: MetricKind::Counter,
        help: "Feature rows written (snapshots and the end of the input).",
        field: |m| &m.features_written,
        exported: true,
    },
    CounterDef {
        name: "vigil_anomalies_opened_all_total",
        kind: MetricKind::Counter,
        help: "Anomaly episodes opened, all detectors.",
        field: |m| &m.anomalies_opened,
        exported: false,
    },
    CounterDef {
        name: "vigil_anomalies_closed_all_total",
        kind: MetricKind::Counter,
        help: "Anomaly episodes closed, all detectors.",
        field: |m| &m.anomalies_closed,
        exported: false,
    },
    CounterDef {
        name: "vigil_peak_arrangement_updates",
        kind: MetricKind::Gauge,
        help: "Largest number of updates the feature arrangement held (its memory, in records).",
        field: |m| &m.peak_arrangement_updates,
        exported: true,
    },
    CounterDef {
        name: "vigil_peak_window_events",
        kind: MetricKind::Gauge,
        help: "Largest number of events held in sliding windows and pending ticks.",
        field: |m| &m.peak_window_events,
        exported: true,
    },
    CounterDef {
        name: "vigil_http_connections_total",
        kind: MetricKind::Counter,
        help: "Connections the query server accepted.",
        field: |m| &m.connections.accepted,
        exported: true,
    },
    CounterDef {
        name: "vigil_http_connections_open",
        kind: MetricKind::Gauge,
        help: "Connections the query server holds now.",
        field: |m| &m.connections.open,
        exported: true,
    },
    CounterDef {
        name: "vigil_http_connections_evicted_total",
        kind: MetricKind::Counter,
        help: "Connections closed to make room for a new one at the connection limit.",
        field: |m| &m.connections.evicted,
        exported: true,
    },
    CounterDef {
        name: "vigil_http_connections_timed_out_total",
        kind: MetricKind::Counter,
        help: "Connections closed because a request head came too slowly (408) or they idled.",
        field: |m| &m.connections.timed_out,
        exported: true,
    },
];

/// The counters as plain numbers: [`COUNTERS`] in order, then the rejects by reason, then
/// the skipped lines by kind (summed over processes at the end).
pub fn snapshot(m: &Metrics) -> Vec<u64> {
    COUNTERS
        .iter()
        .map(|c| (c.field)(m))
        .chain(m.rejected.iter())
        .chain(m.skipped.iter())
        .map(|c| c.load(Relaxed))
        .collect()
}

/// Metrics holding the given snapshot (the inverse of [`snapshot`]).
pub fn from_snapshot(v: &[u64]) -> Metrics {
    let m = Metrics::default();
    for (counter, value) in COUNTERS
        .iter()
        .map(|c| (c.field)(&m))
        .chain(m.rejected.iter())
        .chain(m.skipped.iter())
        .zip(v)
    {
        counter.store(*value, Relaxed);
    }
    m
}

/// `summary.json`: what a run did.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Summary {
    pub events_read: u64,
    pub accepted: u64,
    pub rejected: u64,
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Lines that are not records of interest (Suricata event types other than flows):
    /// not in `events_read`.
    pub skipped: u64,
    pub skipped_by_type: BTreeMap<String, u64>,
    /// Late records: rejected as late plus applied as corrections.
    pub late: u64,
    pub late_corrected: u64,
    pub devices: u64,
    pub window_rows: u64,
    pub features: u64,
    /// Anomaly episodes opened (inserted) during the run.
    pub anomalies: u64,
    /// Anomaly episodes closed (retracted) during the run.
    pub anomalies_closed: u64,
    /// Event time the outputs are complete through (epoch ms), when any record had a time.
    pub end_event_time_ms: Option<i64>,
    /// Largest number of updates the feature arrangement held (memory bound, in records).
    pub peak_arrangement_updates: u64,
    /// Largest number of events held in sliding windows and pending ticks.
    pub peak_window_events: u64,
    pub workers: usize,
    pub elapsed_s: f64,
    pub events_per_s: f64,
    pub peak_rss_bytes: u64,
}

impl Summary {
    pub fn from_metrics(m: &Metrics, workers: usize, elapsed_s: f64, end_event_time_ms: Option<i64>) -> Self {
        let read = m.read.load(Relaxed);
        let late_rejected = m.rejected[RejectReason::Late.index()].load(Relaxed);
        let late_corrected = m.late_corrected.load(Relaxed);
        Summary {
            events_read: read,
            accepted: m.accepted.load(Relaxed),
            rejected: m.rejected_total(),
            rejected_by_reason: m.rejected_by_reason(),
            skipped: m.skipped_total(),
            skipped_by_type: m.skipped_by_type(),
            late: late_rejected + late_corrected,
            late_corrected,
            devices: m.devices.load(Relaxed),
            window_rows: m.window_rows.load(Relaxed),
            features: m.features_written.load(Relaxed),
            anomalies: m.anomalies_opened.load(Relaxed),
            anomalies_closed: m.anomalies_closed.load(Relaxed),
            end_event_time_ms,
            peak_arrangement_updates: m.peak_arrangement_updates.load(Relaxed),
            peak_window_events: m.peak_window_events.load(Relaxed),
            workers,
            elapsed_s,
            events_per_s: if elapsed_s > 0.0 { read as f64 / elapsed_s } else { 0.0 },
            peak_rss_bytes: peak_rss_bytes(),
        }
    }

    /// A few human lines for the end of a run.
    pub fn human(&self) -> String {
        let mut s = format!(
            "events read {}, accepted {}, rejected {}{}, late {} ({} corrected)\n",
            self.events_read,
            self.accepted,
            self.rejected,
            if self.rejected_by_reason.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    self.rejected_by_reason
                        .iter()
                        .map(|(k, v)| format!("{k}: {v}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            self.late,
            self.late_corrected
        );
        if self.skipped > 0 {
            s += &format!(
                "skipped {} (not flow records: {})\n",
                self.skipped,
                self.skipped_by_type
                    .iter()
                    .map(|(k, v)| format!("{k}: {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        s += &format!(
            "devices {}, window rows {}, feature rows {}, anomalies {}\n",
            self.devices, self.window_rows, self.features, self.anomalies
        );
        s += &format!(
            "{:.2} s on {} worker(s): {:.0} events/s, peak RSS {:.1} MiB",
            self.elapsed_s,
            self.workers,
            self.events_per_s,
            self.peak_rss_bytes as f64 / (1024.0 * 1024.0)
        );
        s
    }
}

/// The process's peak resident set size (VmHWM), 0 where unknown.
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// The process's current resident set size (VmRSS), 0 where unknown.
pub fn current_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_every_counter_and_reject_reason() {
        let m = Metrics::default();
        for (i, c) in COUNTERS.iter().enumerate() {
            (c.field)(&m).store(1_000 + i as u64, Relaxed);
        }
        for (i, r) in m.rejected.iter().enumerate() {
            r.store(7 + i as u64, Relaxed);
        }
        for (i, r) in m.skipped.iter().enumerate() {
            r.store(300 + i as u64, Relaxed);
        }
        let v = snapshot(&m);
        assert_eq!(v.len(), COUNTERS.len() + RejectReason::ALL.len() + SKIP_KINDS.len());
        assert_eq!(snapshot(&from_snapshot(&v)), v);
    }

    #[test]
    fn counter_names_are_unique_and_point_at_distinct_fields() {
        let m = Metrics::default();
        let mut names: Vec<&str> = COUNTERS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COUNTERS.len(), "a name defined twice");
        let mut fields: Vec<usize> = COUNTERS
            .iter()
            .map(|c| (c.field)(&m) as *const AtomicU64 as usize)
            .collect();
        fields.sort_unstable();
        fields.dedup();
        assert_eq!(fields.len(), COUNTERS.len(), "a field listed twice");
        for c in COUNTERS {
            let ends_total = c.name.ends_with("_total");
            assert_eq!(
                ends_total,
                c.kind == MetricKind::Counter,
                "{}: counters and only counters end in _total",
                c.name
            );
        }
    }
}
