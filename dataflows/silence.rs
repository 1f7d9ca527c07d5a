//! `silence` (denial of service): a device that was active goes quiet, or its event rate
//! collapses against its own baseline.
//!
//! For every maintained window `w` shorter than the longest, the device's baseline rate is
//! the rate of the period before it: `(count(long) - count(w)) / (len(long) - len(w))` (exact,
//! since window counts subtract). With `expected = rate · len(w)` and `observed = count(w)`,
//! the device is reported when, for some `w`, `expected >= min_expected`,
//! `observed <= max_ratio · expected` and the Poisson tail bound
//! `-ln P(X <= observed | expected) >= min_surprise`.
//!
//! Invariants: a pure function of the device's window state (so it fires only once the
//! frontier has passed the tick where the window emptied: the silence is proven, not
//! guessed); it resolves as soon as the device's recent traffic is back above the ratio in
//! every window (the shortest window refills within a minute of the device coming back, the
//! longer ones keep it open while the collapse lasts: that is the hysteresis); memory is
//! nothing beyond the window state.

use serde::{Deserialize, Serialize};

use crate::detect::baseline::{human_ms, poisson_low_surprise};
use crate::detect::{Anomaly, Detected, DetectorContext, Real, Severity, TypedDetector};

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
            min_surprise: 10.0,
        }
    }
}

pub struct Silence;

impl TypedDetector for Silence {
    type Params = Params;
    const NAME: &'static str = "silence";
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
            "-ln P(so few events | baseline), Poisson bound; 10 ≈ 1 in 22000",
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
        let p = p.clone();
        let anomalies = ctx.states.clone().flat_map(move |(device, state)| {
            let l = &state.windows[long];
            // The strongest shortfall over the recent windows.
            let mut best: Option<(f64, usize, f64, f64, f64)> = None;
            for &w in &recent {
                let len = layout.lens_ms[w];
                let observed = state.windows[w].count as f64;
                let before = (l.count - state.windows[w].count) as f64;
                let rate_per_ms = before / (long_len - len) as f64;
                let expected = rate_per_ms * len as f64;
                if expected < p.min_expected || observed > p.max_ratio * expected {
                    continue;
                }
                let surprise = poisson_low_surprise(observed, expected);
                if surprise >= p.min_surprise && best.is_none_or(|b| surprise > b.0) {
                    best = Some((surprise, w, observed, expected, rate_per_ms * 60_000.0));
                }
            }
            best.map(|(surprise, w, observed, expected, per_min)| {
                let len = layout.lens_ms[w];
                let score = (1.0 - observed / expected).clamp(0.0, 1.0) * (1.0 - (-surprise / 10.0).exp());
                let reason = if observed == 0.0 {
                    format!(
                        "no events for {} or more; usual rate {per_min:.1}/min ({expected:.0} expected)",
                        human_ms(len)
                    )
                } else {
                    format!(
                        "{observed:.0} events in the last {} against {expected:.0} expected; usual rate {per_min:.1}/min",
                        human_ms(len)
                    )
                };
                Anomaly {
                    detector: Silence::NAME.into(),
                    device: device.clone(),
                    tick: 0,
                    window_ms: Some(len),
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
            })
        });
        Detected::reports(anomalies)
    }
}
