//! `silence` (denial of service): a device that was active goes quiet, or its event rate
//! collapses against its own baseline.
//!
//! For every maintained window `w` shorter than the longest, the device's baseline rate is
//! the rate of the period before it: `(count(long) - count(w)) / (span(long) - span(w))`
//! (exact, since window counts subtract), where `span` is the event time a window covers at
//! the tick: its length, or less early in a step for a window advancing in steps
//! (`WindowLayout::span_ms`). With `expected = rate · span(w)` and `observed = count(w)`,
//! the device is reported when, for some `w`, `expected >= min_expected`,
//! `observed <= max_ratio · expected` and the Poisson tail bound
//! `-ln P(X <= observed | expected) >= min_surprise`.
//!
//! Rejected records of the device count as observed (records that arrive but do not decode
//! are corruption, not silence). Once open, a report holds while some window still shows
//! `observed <= 2 · max_ratio · expected` with `expected >= min_expected / 2` (hysteresis).
//!
//! Invariants: driven by the device's window states, which change only once the frontier
//! has passed a tick (so it fires only when the silence is proven, not guessed, e.g. at the
//! tick where the window emptied); it resolves as soon as the device's recent traffic is back
//! (the shortest window refills within a minute); memory per device is its latest window counts and
//! the ticks of its rejected records in the longest recent window.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::detect::baseline::{human_ms, poisson_low_surprise};
use crate::detect::keyed::{DeviceLogic, DeviceTick, Step};
use crate::detect::{Threat, Anomaly, Detected, DetectorContext, EventScore, Real, Severity, TypedDetector};
use crate::event::DeviceId;

/// Detector parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Events the baseline must predict in a window before its emptiness means anything.
    pub min_expected: f64,
    /// Observed / expected at or below which the rate counts as collapsed.
    pub max_ratio: f64,
    /// Minimum surprise (-ln of the Poisson probability of so few events).
    pub min_surprise: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_expected: 10.0,
            max_ratio: 0.2,
            min_surprise: 12.0,
        }
    }
}

pub struct Silence;

impl TypedDetector for Silence {
    type Params = Params;
    const NAME: &'static str = "silence";
    const THREAT: Option<Threat> = Some(Threat::DenialOfService);
    const DESCRIPTION: &'static str =
        "denial of service: an active device goes quiet or its event rate collapses against its own baseline";
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)] = &[
        (
            "min_expected",
            "events the device's baseline must predict in a window before a shortfall counts",
        ),
        ("max_ratio", "observed/expected events at or below which the rate has collapsed"),
        (
            "min_surprise",
            "-ln P(so few events | baseline), Poisson bound; 12 ≈ 1 in 160000",
        ),
    ];

    fn check(p: &Params) -> Result<(), (String, String)> {
        if !(p.min_expected >= 1.0 && p.min_expected.is_finite()) {
            return Err(("min_expected".into(), "must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&p.max_ratio) {
            return Err(("max_ratio".into(), "must lie in [0, 1)".into()));
        }
        if !(p.min_surprise > 0.0 && p.min_surprise.is_finite()) {
            return Err(("min_surprise".into(), "must be positive".into()));
        }
        Ok(())
    }

    fn build<'s>(ctx: &DetectorContext<'s>, p: &Params) -> Detected<'s> {
        let layout = ctx.windows.clone();
        let long = layout.longest();
        let long_len = layout.lens_ms[long];
        let recent: Vec<usize> = (0..layout.lens_ms.len())
            .filter(|&i| layout.lens_ms[i] < long_len)
            .collect();
        let logic = Logic {
            p: p.clone(),
            recent,
            long,
            layout,
        };
        let (anomalies, _) = ctx.per_device.run(logic);
        Detected::reports(anomalies)
    }
}

/// What the silence logic sees: the device's new window state, or one of its rejected
/// records (a sign of life: records that arrive but do not decode are corruption, not
/// silence).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Input {
    /// Every window's event count and the latest event time of the new state.
    State {
        counts: smallvec::SmallVec<[u64; 3]>,
        last_seen_ms: i64,
    },
    Reject,
}

struct Logic {
    p: Params,
    recent: Vec<usize>,
    long: usize,
    /// For the event time a window covers at a tick (less than its length early in a step).
    layout: std::sync::Arc<crate::detect::WindowLayout>,
}

/// What the logic keeps of a device's latest window state: every window's event count and
/// the latest event time (a copy, so the shared state is not held).
struct Counts {
    counts: smallvec::SmallVec<[u64; 3]>,
    last_seen_ms: i64,
}

#[derive(Default)]
struct State {
    latest: Option<Counts>,
    /// Ticks of rejected records within the longest recent window.
    rejects: VecDeque<u64>,
    open: bool,
}

impl Logic {
    fn tick_ms(&self) -> u64 {
        self.layout.tick_ms.max(1)
    }
}

impl DeviceLogic for Logic {
    type Input = Input;
    type State = State;

    fn new_state(&self) -> State {
        State::default()
    }

    fn inputs(&self, tick: &DeviceTick<'_>, out: &mut Vec<Input>) {
        out.extend(tick.state.map(|s| Input::State {
            counts: s.windows.iter().map(|w| w.count).collect(),
            last_seen_ms: s.last_seen_ms,
        }));
        out.extend((0..tick.rejects).map(|_| Input::Reject));
    }

    fn order(a: &Input, b: &Input) -> std::cmp::Ordering {
        let rank = |i: &Input| matches!(i, Input::Reject) as u8;
        rank(a).cmp(&rank(b))
    }

    fn step(&self, s: &mut State, device: &DeviceId, tick: u64, inputs: &[Input], _: &mut Vec<EventScore>) -> Step {
        for i in inputs {
            match i {
                Input::State { counts, last_seen_ms } => {
                    s.latest = Some(Counts {
                        counts: counts.clone(),
                        last_seen_ms: *last_seen_ms,
                    });
                }
                Input::Reject => s.rejects.push_back(tick),
            }
        }
        let horizon = self.recent.iter().map(|&w| self.layout.lens_ms[w]).max().unwrap_or(0) / self.tick_ms();
        while s.rejects.front().is_some_and(|&t| t + horizon <= tick) {
            s.rejects.pop_front();
        }
        let Some(state) = s.latest.as_ref() else {
            return Step::default();
        };
        let p = &self.p;
        let long_len = self.layout.span_ms(self.long, tick);
        let long_count = state.counts[self.long];
        // The strongest shortfall over the recent windows (opening thresholds, or the relaxed
        // holding ones while an episode is open).
        let mut best: Option<(f64, usize, f64, f64, f64)> = None;
        let mut holds = false;
        for &w in &self.recent {
            let len = self.layout.span_ms(w, tick);
            let rejected = s.rejects.iter().filter(|&&t| t + len / self.tick_ms() > tick).count() as f64;
            let observed = state.counts[w] as f64 + rejected;
            let before = (long_count - state.counts[w]) as f64;
            let rate_per_ms = before / (long_len - len) as f64;
            let expected = rate_per_ms * len as f64;
            if s.open && expected >= p.min_expected / 2.0 && observed <= 2.0 * p.max_ratio * expected {
                holds = true;
            }
            if expected < p.min_expected || observed > p.max_ratio * expected {
                continue;
            }
            let surprise = poisson_low_surprise(observed, expected);
            if surprise >= p.min_surprise && best.is_none_or(|b| surprise > b.0) {
                best = Some((surprise, w, observed, expected, rate_per_ms * 60_000.0));
            }
        }
        s.open = best.is_some() || holds;
        let report = best.map(|(surprise, w, observed, expected, per_min)| {
            let len = self.layout.span_ms(w, tick);
            let nominal = self.layout.lens_ms[w];
            let score = (1.0 - observed / expected).clamp(0.0, 1.0) * (1.0 - (-surprise / 10.0).exp());
            let reason = if observed == 0.0 {
                format!(
                    "no events for {} or more; usual rate {per_min:.1}/min ({expected:.0} expected)",
                    human_ms(len)
                )
            } else {
                format!(
                    "{observed:.0} records in the last {} against {expected:.0} expected; usual rate {per_min:.1}/min",
                    human_ms(len)
                )
            };
            Anomaly {
                detector: Silence::NAME.into(),
                device: device.clone(),
                tick,
                window_ms: Some(nominal),
                score: Real(score),
                severity: Severity::from_score(score),
                reason,
                evidence: vec![
                    ("observed".into(), Real(observed)),
                    ("expected".into(), Real(expected)),
                    ("baseline_rate_per_min".into(), Real(per_min)),
                    ("surprise".into(), Real(surprise)),
                    ("last_seen_ms".into(), Real(state.last_seen_ms as f64)),
                ],
            }
        });
        // While holding, the report's content does not matter (episodes keep the first).
        let report = report.or_else(|| {
            holds.then(|| Anomaly {
                detector: Silence::NAME.into(),
                device: device.clone(),
                tick,
                window_ms: None,
                score: Real(0.5),
                severity: Severity::Medium,
                reason: "still quiet".into(),
                evidence: Vec::new(),
            })
        });
        Step { report, wake_at: None }
    }
}