//! `clock_skew` (data corruption): a device sends records dated too far ahead of its source
//! partition's recent progress (or, following live Kafka, of the wall clock) — a skewed clock,
//! or someone trying to move event time. Those records are rejected with reason
//! `too_far_ahead` before they can move the watermark (`source::ahead`); this detector turns
//! them into an anomaly of the device that sent them.
//!
//! Per device (own state over its rejected records): the ticks of the last `window` at which
//! it had records too far ahead. Reported from the first (`min_records`, default 1) and held
//! while any lies in the window; a wake-up at the end of the window closes it. A record is
//! counted at its partition's progress when it was read (never at its own, far tick).
//!
//! Invariants: deterministic (one input per tick, the tick's count and farthest lead); memory
//! per device is the ticks of the current window with such records.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::detect::baseline::{human_ms, parse_duration_ms};
use crate::detect::keyed::{DeviceLogic, DeviceTick, Step};
use crate::detect::{Threat, Anomaly, Detected, DetectorContext, EventScore, Real, Severity, TypedDetector};
use crate::event::DeviceId;

/// Detector parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// How long a report holds after the device's last record too far ahead.
    pub window: String,
    /// Records too far ahead in the window before a report.
    pub min_records: u32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            window: "1h".into(),
            min_records: 1,
        }
    }
}

pub struct ClockSkew;

impl TypedDetector for ClockSkew {
    type Params = Params;
    const NAME: &'static str = "clock_skew";
    const THREAT: Option<Threat> = Some(Threat::DataCorruption);
    const DESCRIPTION: &'static str =
        "data corruption: records dated too far ahead of their partition's progress (rejected as too_far_ahead)";
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)] = &[
        ("window", "how long a report holds after the device's last record too far ahead"),
        ("min_records", "records too far ahead in the window before a report"),
    ];

    fn check(p: &Params) -> Result<(), (String, String)> {
        parse_duration_ms("window", &p.window)?;
        if p.min_records == 0 {
            return Err(("min_records".into(), "must be at least 1".into()));
        }
        Ok(())
    }

    fn build<'s>(ctx: &DetectorContext<'s>, p: &Params) -> Detected<'s> {
        let tick_ms = ctx.windows.tick_ms.max(1);
        let window_ms = parse_duration_ms("window", &p.window).unwrap_or(3_600_000);
        let logic = SkewLogic {
            min_records: p.min_records,
            window: window_ms.div_ceil(tick_ms).max(1),
            window_ms,
        };
        let (reports, _) = ctx.per_device.run(logic);
        Detected::reports(reports)
    }
}

struct SkewLogic {
    min_records: u32,
    /// In ticks.
    window: u64,
    window_ms: u64,
}

/// The device's records too far ahead in the window: `(tick, count, farthest lead in ms)`.
#[derive(Default)]
struct SkewState {
    seen: VecDeque<(u64, u32, u64)>,
    count: u32,
}

impl DeviceLogic for SkewLogic {
    /// `(count, farthest lead in ms)` of one tick.
    type Input = (u32, u64);
    type State = SkewState;

    fn new_state(&self) -> SkewState {
        SkewState::default()
    }

    fn inputs(&self, tick: &DeviceTick<'_>, out: &mut Vec<(u32, u64)>) {
        if tick.ahead > 0 {
            out.push((tick.ahead, tick.ahead_ms));
        }
    }

    /// Its inputs are records too far ahead (rare rejects): not worth asking for ahead.
    fn worth_prefetching(&self, _events: &[crate::event::Event]) -> bool {
        false
    }

    fn order(a: &(u32, u64), b: &(u32, u64)) -> std::cmp::Ordering {
        a.cmp(b)
    }

    fn step(&self, s: &mut SkewState, device: &DeviceId, tick: u64, inputs: &[(u32, u64)], _: &mut Vec<EventScore>) -> Step {
        while s.seen.front().is_some_and(|&(t, _, _)| t + self.window <= tick) {
            let (_, n, _) = s.seen.pop_front().expect("checked");
            s.count -= n;
        }
        for &(n, lead) in inputs {
            s.seen.push_back((tick, n, lead));
            s.count += n;
        }
        if s.seen.is_empty() {
            return Step::default();
        }
        let wake_at = s.seen.front().map(|&(t, _, _)| t + self.window);
        if s.count < self.min_records {
            return Step { report: None, wake_at };
        }
        let lead = s.seen.iter().map(|&(_, _, l)| l).max().unwrap_or(0);
        let score = (1.0 - 0.25 / f64::from(s.count)).clamp(0.75, 1.0);
        let report = Anomaly {
            detector: ClockSkew::NAME.into(),
            device: device.clone(),
            tick: 0,
            window_ms: Some(self.window_ms),
            score: Real(score),
            severity: Severity::from_score(score),
            reason: format!(
                "{} record(s) dated up to {} ahead of the stream's progress, rejected as too_far_ahead (clock skew or forged times)",
                s.count,
                human_ms(lead)
            ),
            evidence: vec![
                ("records_too_far_ahead".into(), Real(f64::from(s.count))),
                ("max_ahead_ms".into(), Real(lead as f64)),
            ],
        };
        Step {
            report: Some(report),
            wake_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_too_far_ahead_open_a_report_held_for_the_window() {
        let l = SkewLogic {
            min_records: 2,
            window: 60,
            window_ms: 60_000,
        };
        let mut s = l.new_state();
        let d = DeviceId::from("d");
        let mut step = |t: u64, inputs: &[(u32, u64)]| l.step(&mut s, &d, t, inputs, &mut Vec::new());
        let one = step(10, &[(1, 5_000_000)]);
        assert!(one.report.is_none(), "one record is below min_records");
        assert_eq!(one.wake_at, Some(70));
        let two = step(20, &[(1, 9_000_000)]);
        let report = two.report.expect("two records in the window");
        assert!(report.evidence.contains(&("max_ahead_ms".into(), Real(9_000_000.0))));
        // The first leaves the window at 70: one left, below min_records; the last at 80.
        assert!(step(70, &[]).report.is_none());
        assert_eq!(step(80, &[]).wake_at, None);
    }
}
