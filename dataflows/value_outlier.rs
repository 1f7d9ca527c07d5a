//! `value_outlier`: a streaming per-device detector on the `value` series that scores every
//! reading (for `--scores-out` and evaluation), and reports a device while its latest reading
//! is far from its own baseline.
//!
//! Score of a reading: `erf(|z| / √2)` where `z` is its distance to the device's robust
//! baseline ([`RobustBaseline`], residuals clipped at 3σ) in standard deviations, before the
//! reading updates the baseline; invalid readings (NaN, ±inf, beyond ±1e9) score 1, readings
//! of a device with fewer than `min_readings` score 0. Reported from `report_z` on, until a
//! reading falls below half of it.
//!
//! Invariants: one score per accepted event that carries a reading, in [0, 1]; deterministic
//! (inputs of a tick sorted); O(1) memory per device.

use serde::{Deserialize, Serialize};

use crate::detect::baseline::{z_score01, RobustBaseline};
use crate::detect::keyed::{event_order, DeviceLogic, DeviceTick, Step};
use crate::detect::{Anomaly, Detected, DetectorContext, EventScore, Real, Severity, TypedDetector};
use crate::event::{DeviceId, Event};
use crate::window::stats::VALUE_LIMIT;

/// Detector parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// Readings the baseline needs before readings are scored.
    pub min_readings: u64,
    /// Weight of a reading in the baseline.
    pub alpha: f64,
    /// |z| from which a device is reported.
    pub report_z: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_readings: 30,
            alpha: 0.005,
            report_z: 12.0,
        }
    }
}

pub struct ValueOutlier;

impl TypedDetector for ValueOutlier {
    type Params = Params;
    const NAME: &'static str = "value_outlier";
    const THREAT: Option<crate::detect::Threat> = Some(crate::detect::Threat::DataCorruption);
    const DESCRIPTION: &'static str = "scores every reading by its distance to the device's own robust baseline";
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)] = &[
        ("min_readings", "readings the baseline needs before readings are scored"),
        ("alpha", "weight of a reading in the baseline (memory of about 1/alpha readings)"),
        ("report_z", "standard deviations from the baseline from which the device is reported"),
    ];

    fn check(p: &Params) -> Result<(), (String, String)> {
        if !(p.alpha > 0.0 && p.alpha <= 1.0) {
            return Err(("alpha".into(), "must lie in (0, 1]".into()));
        }
        if !(p.report_z > 0.0 && p.report_z.is_finite()) {
            return Err(("report_z".into(), "must be positive".into()));
        }
        Ok(())
    }

    fn build<'s>(ctx: &DetectorContext<'s>, p: &Params) -> Detected<'s> {
        let (anomalies, scores) = ctx.per_device.run(Outlier(p.clone()));
        Detected {
            anomalies,
            scores,
            model_scores: None,
        }
    }
}

struct Outlier(Params);

#[derive(Default)]
struct State {
    base: RobustBaseline,
    reporting: Option<(f64, f64)>,
}

impl DeviceLogic for Outlier {
    type Input = Event;
    type State = State;
    const SCORES: bool = true;

    fn new_state(&self) -> State {
        State::default()
    }

    fn inputs(&self, tick: &DeviceTick<'_>, out: &mut Vec<Event>) {
        out.extend(tick.events.iter().filter(|e| e.value.is_some()).cloned());
    }

    fn order(a: &Event, b: &Event) -> std::cmp::Ordering {
        event_order(a, b)
    }

    fn step(&self, s: &mut State, device: &DeviceId, tick: u64, events: &[Event], scores: &mut Vec<EventScore>) -> Step {
        let p = &self.0;
        for e in events {
            let Some(v) = e.value else { continue };
            let valid = v.is_finite() && v.abs() <= VALUE_LIMIT;
            let z = if !valid {
                f64::INFINITY
            } else if s.base.n < p.min_readings {
                0.0
            } else {
                s.base.z(v, 1e-6 * s.base.mean.abs().max(1.0))
            };
            scores.push(EventScore {
                ts_ms: e.ts_ms,
                device: device.clone(),
                detector: ValueOutlier::NAME.into(),
                score: z_score01(z),
            });
            if z >= p.report_z {
                s.reporting.get_or_insert((v, z));
            } else if z < p.report_z / 2.0 {
                s.reporting = None;
            }
            if valid {
                s.base.update(v, p.alpha, 3.0);
            }
        }
        let report = s.reporting.map(|(v, z)| Anomaly {
            detector: ValueOutlier::NAME.into(),
            device: device.clone(),
            tick,
            window_ms: None,
            score: Real(z_score01(z)),
            severity: Severity::from_score(z_score01(z)),
            reason: if z.is_finite() {
                format!(
                    "reading {v} is {z:.1}σ from the device's baseline {:.3} ± {:.3}",
                    s.base.mean,
                    s.base.sd(0.0)
                )
            } else {
                format!("invalid reading {v}")
            },
            evidence: vec![
                ("value".into(), Real(v)),
                ("z".into(), Real(z)),
                ("baseline_mean".into(), Real(s.base.mean)),
                ("baseline_sd".into(), Real(s.base.sd(0.0))),
            ],
        });
        Step { report, wake_at: None }
    }
}
