//! `value_outlier`: the per-event streaming detector for numeric series — the `value`
//! readings, or any per-device series fed as `value` (events/min, bytes out, distinct
//! destinations). It scores every reading (for `--scores-out` and evaluation) and reports a
//! device while its readings are improbable.
//!
//! Method `likelihood` (default): a [`SeriesScorer`] per device — raw surprise from an ensemble
//! of predictors (last reading, fast level, seasonal profile) robust to discrete and
//! heavy-tailed values, re-learning after gaps and confirmed level shifts; then the anomaly
//! likelihood of the recent surprises against the device's own past surprises, as a score in
//! [0, 1] that keeps resolution near 1; repeat alarms within `quiet` readings are halved (see
//! `crate::detect::surprise`). Reported while the likelihood is at least `threshold`
//! (default 0.999, a tail probability of 10⁻³: about the optimal NAB threshold on SKAB).
//!
//! Method `robust_z` (the old scorer, kept as a baseline): `erf(|z| / √2)` of the distance to
//! the device's robust EWMA baseline, reported from `report_z` σ; it saturates at 1.0 on
//! heavy-tailed or discrete series.
//!
//! Invalid readings (NaN, ±inf; for `robust_z` also beyond ±1e9) score 1 and do not update
//! the state.
//!
//! Invariants: one score per accepted event that carries a reading, in [0, 1]; deterministic
//! (a device's readings of a tick are handed over sorted, ticks in order); O(1) memory per
//! device (about 400 bytes); no allocation per reading.

use serde::{Deserialize, Serialize};

use crate::detect::baseline::{z_score01, RobustBaseline};
use crate::detect::keyed::{event_order, DeviceLogic, DeviceTick, Step};
use crate::detect::surprise::{ScorerParams, SeriesScorer};
use crate::detect::{Anomaly, Detected, DetectorContext, EventScore, Real, Severity, TypedDetector};
use crate::event::{DeviceId, Event};
use crate::window::stats::VALUE_LIMIT;

/// How readings are scored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Surprise → anomaly likelihood → repeat suppression (the default).
    Likelihood,
    /// The robust z-score (baseline; saturates).
    RobustZ,
}

/// Detector parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    pub method: Method,
    /// Likelihood from which a device is reported.
    pub threshold: f64,
    /// Readings before any is scored.
    pub warmup: u32,
    /// Readings of memory of the distribution of surprises.
    pub memory: f64,
    /// Readings after an alarm during which lower scores are halved.
    pub quiet: u32,
    /// robust_z: readings the baseline needs before readings are scored.
    pub min_readings: u64,
    /// robust_z: weight of a reading in the baseline.
    pub alpha: f64,
    /// robust_z: |z| from which a device is reported.
    pub report_z: f64,
}

impl Default for Params {
    fn default() -> Self {
        let s = ScorerParams::default();
        Params {
            method: Method::Likelihood,
            threshold: DEFAULT_THRESHOLD,
            warmup: s.warmup,
            memory: s.memory,
            quiet: s.quiet,
            min_readings: 30,
            alpha: 0.005,
            report_z: 12.0,
        }
    }
}

/// The documented default threshold of the likelihood score.
pub const DEFAULT_THRESHOLD: f64 = 0.999;

impl Params {
    pub fn scorer(&self) -> ScorerParams {
        ScorerParams {
            warmup: self.warmup,
            memory: self.memory,
            quiet: self.quiet,
        }
    }
}

pub struct ValueOutlier;

impl TypedDetector for ValueOutlier {
    type Params = Params;
    const NAME: &'static str = "value_outlier";
    const THREAT: Option<crate::detect::Threat> = Some(crate::detect::Threat::DataCorruption);
    const DESCRIPTION: &'static str =
        "scores every reading by the likelihood of its recent surprises given the device's own past";
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)] = &[
        ("method", "\"likelihood\" (surprise → anomaly likelihood) or \"robust_z\" (old baseline)"),
        ("threshold", "likelihood score from which a device is reported"),
        ("warmup", "readings before any is scored"),
        ("memory", "readings of memory of the distribution of surprises"),
        ("quiet", "readings after an alarm during which lower scores are halved"),
        ("min_readings", "robust_z: readings the baseline needs before readings are scored"),
        ("alpha", "robust_z: weight of a reading in the baseline"),
        ("report_z", "robust_z: standard deviations from which the device is reported"),
    ];

    fn check(p: &Params) -> Result<(), (String, String)> {
        if !(p.alpha > 0.0 && p.alpha <= 1.0) {
            return Err(("alpha".into(), "must lie in (0, 1]".into()));
        }
        if !(p.report_z > 0.0 && p.report_z.is_finite()) {
            return Err(("report_z".into(), "must be positive".into()));
        }
        if !(p.threshold > 0.0 && p.threshold < 1.0) {
            return Err(("threshold".into(), "must lie in (0, 1)".into()));
        }
        if !(p.memory >= 10.0 && p.memory.is_finite()) {
            return Err(("memory".into(), "must be at least 10 readings".into()));
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

/// The per-device logic (public so that evaluation can run it on a series directly).
pub struct Outlier(pub Params);

/// A device's state.
#[derive(Clone, Debug, Default)]
pub struct State {
    scorer: SeriesScorer,
    base: RobustBaseline,
    reporting: Option<(f64, f64, f64)>,
}

impl Outlier {
    /// Scores one reading of a device and updates its state: the score, and whether the
    /// device is reported after it (`(value, score, level)` of the reading that opened it).
    pub fn score(&self, s: &mut State, ts_ms: i64, v: f64) -> f64 {
        let p = &self.0;
        // Any finite reading is a reading to the likelihood (bytes may exceed 1e9).
        let valid = v.is_finite() && (p.method == Method::Likelihood || v.abs() <= VALUE_LIMIT);
        if !valid {
            s.reporting.get_or_insert((v, 1.0, f64::NAN));
            return 1.0;
        }
        match p.method {
            Method::Likelihood => {
                let r = s.scorer.push(&p.scorer(), ts_ms, v);
                if r.likelihood >= p.threshold {
                    s.reporting.get_or_insert((v, r.likelihood, r.level));
                } else {
                    s.reporting = None;
                }
                r.score
            }
            Method::RobustZ => {
                let z = if s.base.n < p.min_readings {
                    0.0
                } else {
                    s.base.z(v, 1e-6 * s.base.mean.abs().max(1.0))
                };
                if z >= p.report_z {
                    s.reporting.get_or_insert((v, z_score01(z), s.base.mean));
                } else if z < p.report_z / 2.0 {
                    s.reporting = None;
                }
                s.base.update(v, p.alpha, 3.0);
                z_score01(z)
            }
        }
    }

    /// Scores a whole series of one device as the engine does: readings sorted by time
    /// (then value, as [`event_order`] sorts a tick's events), one [`Outlier::score`] each.
    /// Returns the scores in the input's order.
    pub fn score_series(&self, readings: &[(i64, f64)]) -> Vec<f64> {
        let mut order: Vec<usize> = (0..readings.len()).collect();
        order.sort_by(|&a, &b| {
            let (x, y) = (readings[a], readings[b]);
            x.0.cmp(&y.0).then(x.1.total_cmp(&y.1))
        });
        let mut state = State::default();
        let mut out = vec![0.0; readings.len()];
        for i in order {
            out[i] = self.score(&mut state, readings[i].0, readings[i].1);
        }
        out
    }
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

    /// Its inputs are readings: a device's events without one leave its state alone.
    fn worth_prefetching(&self, events: &[Event]) -> bool {
        events.iter().any(|e| e.value.is_some())
    }

    fn order(a: &Event, b: &Event) -> std::cmp::Ordering {
        event_order(a, b)
    }

    fn step(&self, s: &mut State, device: &DeviceId, tick: u64, events: &[Event], scores: &mut Vec<EventScore>) -> Step {
        for e in events {
            let Some(v) = e.value else { continue };
            let score = self.score(s, e.ts_ms, v);
            scores.push(EventScore {
                ts_ms: e.ts_ms,
                device: device.clone(),
                detector: ValueOutlier::NAME.into(),
                score,
            });
        }
        let report = s.reporting.map(|(v, score, level)| Anomaly {
            detector: ValueOutlier::NAME.into(),
            device: device.clone(),
            tick,
            window_ms: None,
            score: Real(score),
            severity: Severity::from_score(score),
            reason: if !v.is_finite() || (self.0.method == Method::RobustZ && v.abs() > VALUE_LIMIT) {
                format!("invalid reading {v}")
            } else if self.0.method == Method::RobustZ {
                format!("reading {v} is far from the device's baseline {level:.3}")
            } else {
                format!("reading {v} is improbable (likelihood {score:.6}) given the device's level {level:.3}")
            },
            evidence: vec![
                ("value".into(), Real(v)),
                ("score".into(), Real(score)),
                ("level".into(), Real(level)),
            ],
        });
        Step { report, wake_at: None }
    }
}


#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, LogNormal, Normal, Poisson};

    use super::*;

    const STEP: i64 = 300_000; // 5 minutes
    const T0: i64 = 1_700_000_000_000;

    fn rng() -> StdRng {
        StdRng::seed_from_u64(15)
    }

    fn series(values: &[f64]) -> Vec<(i64, f64)> {
        values.iter().enumerate().map(|(i, &v)| (T0 + i as i64 * STEP, v)).collect()
    }

    fn scores(values: &[f64]) -> Vec<f64> {
        Outlier(Params::default()).score_series(&series(values))
    }

    fn gaussian(n: usize, mean: f64, sd: f64) -> Vec<f64> {
        let mut r = rng();
        let d = Normal::new(mean, sd).unwrap();
        (0..n).map(|_| d.sample(&mut r)).collect()
    }

    fn max(s: &[f64]) -> f64 {
        s.iter().copied().fold(0.0, f64::max)
    }

    #[test]
    fn warm_up_scores_zero_then_scores_in_range() {
        let s = scores(&gaussian(500, 20.0, 1.0));
        let w = Params::default().warmup as usize;
        assert!(s[..w].iter().all(|&x| x == 0.0));
        assert!(s.iter().all(|&x| (0.0..1.0).contains(&x)));
        assert!(s[w + 20..].iter().any(|&x| x > 0.0));
    }

    #[test]
    fn a_spike_is_the_top_score_and_noise_stays_below_the_threshold() {
        let mut v = gaussian(3000, 20.0, 1.0);
        v[2000] = 35.0;
        let s = scores(&v);
        let top = (0..s.len()).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap();
        assert_eq!(top, 2000, "{} vs {}", s[top], s[2000]);
        assert!(s[2000] >= DEFAULT_THRESHOLD);
        let alarms = s.iter().filter(|&&x| x >= DEFAULT_THRESHOLD).count();
        assert!(alarms <= 3, "{alarms} alarms on noise with one spike");
    }

    #[test]
    fn discrete_and_heavy_tailed_values_do_not_saturate() {
        let mut r = rng();
        let poisson = Poisson::new(1.5).unwrap();
        let mut counts: Vec<f64> = (0..4000).map(|_| poisson.sample(&mut r)).collect();
        counts[3000] = 15.0;
        let lognormal = LogNormal::new(3.0, 1.0).unwrap();
        let mut heavy: Vec<f64> = (0..4000).map(|_| lognormal.sample(&mut r)).collect();
        heavy[3000] = 1e6;
        for (name, v) in [("counts", counts), ("heavy", heavy)] {
            let s = scores(&v);
            assert!(s.iter().all(|&x| x < 1.0), "{name}: a score of 1");
            let mut top: Vec<f64> = s.clone();
            top.sort_by(|a, b| b.total_cmp(a));
            assert!(top[..20].windows(2).all(|w| w[0] > w[1]), "{name}: ties among the top scores {:?}", &top[..20]);
            assert_eq!(s[3000], top[0], "{name}: the planted reading scores highest");
            let alarms = s.iter().filter(|&&x| x >= DEFAULT_THRESHOLD).count();
            assert!(alarms <= 8, "{name}: {alarms} alarms");
        }
    }

    #[test]
    fn a_level_shift_alarms_early_then_is_relearnt() {
        let mut v = gaussian(3000, 20.0, 1.0);
        for x in &mut v[1500..] {
            *x += 8.0;
        }
        let s = scores(&v);
        let alarms = |s: &[f64]| s.iter().filter(|&&x| x >= DEFAULT_THRESHOLD).count();
        assert!(max(&s[1500..1505]) >= DEFAULT_THRESHOLD, "{:?}", &s[1500..1510]);
        // About one reading in a thousand of plain noise reaches the default threshold.
        assert!(alarms(&s[1000..1500]) <= 2, "{} alarms before the shift", alarms(&s[1000..1500]));
        assert!(alarms(&s[1800..]) <= 3, "the new level is learnt: {} alarms", alarms(&s[1800..]));
    }

    #[test]
    fn a_gap_is_not_an_anomaly() {
        let v = gaussian(2000, 20.0, 1.0);
        let mut r = series(&v);
        for x in &mut r[1000..] {
            x.0 += 86_400_000;
        }
        let s = Outlier(Params::default()).score_series(&r);
        assert!(max(&s[1000..1020]) < DEFAULT_THRESHOLD, "{:?}", &s[1000..1010]);
    }

    #[test]
    fn daily_seasonality_is_learnt() {
        // Ten days at 5 minutes: a daily swing of ±10 with noise 1; one reading on day 8 is off
        // the daily pattern by 8 while well inside the day's range.
        let mut r = rng();
        let per_day = 288;
        let mut v: Vec<f64> = (0..10 * per_day)
            .map(|i| {
                let phase = (i % per_day) as f64 / per_day as f64 * std::f64::consts::TAU;
                50.0 + 10.0 * phase.sin() + r.random_range(-1.0..1.0)
            })
            .collect();
        let at = 8 * per_day + per_day / 4; // the daily peak
        v[at] -= 8.0;
        let s = scores(&v);
        let late = &s[3 * per_day..];
        let alarms = late.iter().filter(|&&x| x >= DEFAULT_THRESHOLD).count();
        assert!(alarms <= 3, "{alarms} alarms on a seasonal series");
        assert!(s[at] >= DEFAULT_THRESHOLD, "off-pattern reading scores {}", s[at]);
    }

    #[test]
    fn per_device_state_is_small_and_fixed() {
        assert!(std::mem::size_of::<State>() <= 512, "{} bytes", std::mem::size_of::<State>());
    }

    #[test]
    fn invalid_readings_score_one_and_are_reported() {
        let logic = Outlier(Params::default());
        let mut state = State::default();
        assert_eq!(logic.score(&mut state, T0, f64::NAN), 1.0);
        assert!(state.reporting.is_some());
        assert_eq!(state.scorer.readings(), 0);
    }
}
