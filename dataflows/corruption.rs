//! `corruption` (data corruption): a device sends erroneous data — readings outside the
//! configured physical range, NaN/infinite readings, absurd spikes against its own baseline,
//! a reading stuck where the device normally varies, a sudden shift of the reported level,
//! or a spike of malformed/rejected records.
//!
//! Per device (own state over the events and the rejects), in event order:
//! - a robust baseline of the readings ([`RobustBaseline`]: EWMA mean/variance, residuals
//!   clipped at 3σ, learned only from readings that look normal), and a fast EWMA of the
//!   level;
//! - *bad readings*: invalid (NaN, ±inf, beyond ±1e9), outside the first `ranges` rule whose
//!   glob matches the device, or further than `spike_z` σ from the baseline; reported once
//!   `min_bad` fall in `window`, held while any does;
//! - *stuck*: a run of identical readings longer than what the device's own repeat rate makes
//!   plausible (`P < 1e-6`, at least `min_stuck_run`), on a device whose baseline varies,
//!   unless the value is the device's own floor or ceiling (the lowest or highest valid
//!   reading it ever sent: saturation);
//! - *shift*: the fast level more than `shift_z` σ from the baseline, held down to half that
//!   (hysteresis); after `relearn` of continuous shift the baseline accepts the new level;
//! - *malformed*: at least `min_rejects` rejected records in `window` making at least
//!   `reject_ratio` of the device's records, held down to half the ratio.
//!
//! Invariants: deterministic (inputs of a tick sorted); memory per device is O(1) plus the
//! ticks of the current window (bad readings and per-tick record counts).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::detect::baseline::{glob_match, human_ms, parse_duration_ms, RobustBaseline};
use crate::detect::keyed::{DeviceLogic, DeviceTick, Step};
use crate::detect::{Threat, Anomaly, Detected, DetectorContext, EventScore, Real, Severity, TypedDetector};
use crate::event::DeviceId;
use crate::window::stats::VALUE_LIMIT;

/// A physical range for the devices whose name matches `devices` (a glob with `*`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RangeRule {
    pub devices: String,
    pub min: f64,
    pub max: f64,
}

/// Detector parameters.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Params {
    /// The window bad readings and rejects are counted in.
    pub window: String,
    /// Physical ranges by device glob; the first match applies (none: no range check).
    pub ranges: Vec<RangeRule>,
    /// Bad readings in the window before a report.
    pub min_bad: u32,
    /// Distance from the baseline, in standard deviations, of an absurd reading.
    pub spike_z: f64,
    /// Distance of the fast level from the baseline, in standard deviations, of a shift.
    pub shift_z: f64,
    /// Readings the baseline needs before spikes, shifts and stuck readings are judged.
    pub min_readings: u64,
    /// Weight of a new reading in the baseline (1/n of an n-reading memory).
    pub baseline_alpha: f64,
    /// Weight of a new reading in the fast level.
    pub fast_alpha: f64,
    /// Identical readings in a row before a reading can count as stuck.
    pub min_stuck_run: u32,
    /// After this long shifted, the baseline accepts the new level.
    pub relearn: String,
    /// Rejected records in the window before a malformed spike.
    pub min_rejects: u32,
    /// Share of the device's records rejected for a malformed spike.
    pub reject_ratio: f64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            window: "5m".into(),
            ranges: Vec::new(),
            min_bad: 2,
            spike_z: 12.0,
            shift_z: 8.0,
            min_readings: 30,
            baseline_alpha: 0.005,
            fast_alpha: 0.3,
            min_stuck_run: 12,
            relearn: "1h".into(),
            min_rejects: 4,
            reject_ratio: 0.2,
        }
    }
}

pub struct Corruption;

impl TypedDetector for Corruption {
    type Params = Params;
    const NAME: &'static str = "corruption";
    const THREAT: Option<Threat> = Some(Threat::DataCorruption);
    const DESCRIPTION: &'static str =
        "data corruption: impossible or absurd readings, stuck or shifted values, malformed-record spikes";
    const PARAMETER_DOCS: &'static [(&'static str, &'static str)] = &[
        ("window", "window in which bad readings and rejected records are counted"),
        (
            "ranges",
            "physical ranges: [{ devices = \"sensor-*\", min = -40.0, max = 125.0 }, ...], first match wins",
        ),
        ("min_bad", "bad readings (invalid, out of range, absurd) in the window before a report"),
        ("spike_z", "standard deviations from the device's baseline that make a reading absurd"),
        ("shift_z", "standard deviations between the recent level and the baseline that make a shift"),
        ("min_readings", "readings the baseline needs before spikes, shifts and stuck values are judged"),
        ("baseline_alpha", "weight of a reading in the baseline (memory of about 1/alpha readings)"),
        ("fast_alpha", "weight of a reading in the recent level"),
        ("min_stuck_run", "identical readings in a row before a value can be stuck"),
        ("relearn", "after this long shifted, the new level becomes the baseline"),
        ("min_rejects", "rejected records in the window before a malformed spike"),
        ("reject_ratio", "share of the device's records rejected for a malformed spike"),
    ];

    fn check(p: &Params) -> Result<(), (String, String)> {
        parse_duration_ms("window", &p.window)?;
        parse_duration_ms("relearn", &p.relearn)?;
        for (i, r) in p.ranges.iter().enumerate() {
            if r.min.partial_cmp(&r.max) != Some(std::cmp::Ordering::Less) {
                return Err((format!("ranges[{i}]"), format!("min {} must be below max {}", r.min, r.max)));
            }
        }
        for (key, v) in [("spike_z", p.spike_z), ("shift_z", p.shift_z)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err((key.into(), "must be positive".into()));
            }
        }
        for (key, v) in [
            ("baseline_alpha", p.baseline_alpha),
            ("fast_alpha", p.fast_alpha),
            ("reject_ratio", p.reject_ratio),
        ] {
            if !(v > 0.0 && v <= 1.0) {
                return Err((key.into(), "must lie in (0, 1]".into()));
            }
        }
        if p.min_bad == 0 || p.min_rejects == 0 || p.min_stuck_run < 2 {
            return Err((
                "min_bad".into(),
                "min_bad and min_rejects must be at least 1, min_stuck_run at least 2".into(),
            ));
        }
        Ok(())
    }

    fn build<'s>(ctx: &DetectorContext<'s>, p: &Params) -> Detected<'s> {
        let tick = ctx.windows.tick_ms.max(1);
        let ms = |key: &str, text: &str| parse_duration_ms(key, text).unwrap_or(300_000);
        let logic = ValueLogic {
            p: p.clone(),
            window: ms("window", &p.window).div_ceil(tick),
            window_ms: ms("window", &p.window),
            relearn: ms("relearn", &p.relearn).div_ceil(tick),
        };
        let (reports, _) = ctx.per_device.run(logic);
        Detected::reports(reports)
    }
}

/// What the corruption logic sees of a record.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Obs {
    /// An accepted event with a reading (ts, value).
    Reading(i64, f64),
    /// An accepted event without a reading.
    Record(i64),
    /// A rejected record.
    Reject,
}

impl Obs {
    fn key(&self) -> (u8, i64, f64) {
        match *self {
            Obs::Reading(ts, v) => (0, ts, v),
            Obs::Record(ts) => (1, ts, 0.0),
            Obs::Reject => (2, 0, 0.0),
        }
    }
}

/// Readings within this many σ of the baseline teach it.
const LEARN_Z: f64 = 6.0;

struct ValueLogic {
    p: Params,
    window: u64,
    window_ms: u64,
    relearn: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Bad {
    Invalid,
    OutOfRange(f64, f64),
    Absurd,
}

#[derive(Default)]
struct ValState {
    base: RobustBaseline,
    fast: Option<f64>,
    last: Option<f64>,
    run: u32,
    /// EWMA of "this reading equals the previous one", and how many pairs fed it.
    repeat_rate: f64,
    pairs: u64,
    /// Bad readings in the window: (tick, value, kind).
    bad: VecDeque<(u64, f64, Bad)>,
    /// Per tick in the window: (tick, rejected, accepted).
    records: VecDeque<(u64, u32, u32)>,
    rejected: u32,
    accepted: u32,
    /// The lowest and highest valid readings seen, and how often each was seen.
    lowest: Option<(f64, u32)>,
    highest: Option<(f64, u32)>,
    values_active: bool,
    stuck_active: bool,
    shift_since: Option<u64>,
    malformed_active: bool,
    /// The device's configured range, looked up once (`None` until the first step).
    range: Option<Option<(f64, f64)>>,
}

impl ValueLogic {
    fn range(&self, device: &str) -> Option<(f64, f64)> {
        self.p
            .ranges
            .iter()
            .find(|r| glob_match(&r.devices, device))
            .map(|r| (r.min, r.max))
    }

    fn stuck_needed(&self, s: &ValState) -> u32 {
        let r = s.repeat_rate.clamp(0.0, 0.99);
        let plausible = if r <= 0.0 {
            0.0
        } else {
            (1e-6f64).ln() / r.ln()
        };
        (plausible.ceil() as u32).max(self.p.min_stuck_run)
    }
}

impl DeviceLogic for ValueLogic {
    type Input = Obs;
    type State = ValState;

    fn inputs(&self, tick: &DeviceTick<'_>, out: &mut Vec<Obs>) {
        out.extend(tick.events.iter().map(|e| match e.value {
            Some(v) => Obs::Reading(e.ts_ms, v),
            None => Obs::Record(e.ts_ms),
        }));
        // Records too far ahead are `clock_skew`'s to report.
        out.extend((0..tick.rejects - tick.ahead).map(|_| Obs::Reject));
    }

    fn new_state(&self) -> ValState {
        ValState::default()
    }

    fn prefetch(&self, s: &ValState) {
        crate::window::prefetch_ends(&s.records);
    }

    fn order(a: &Obs, b: &Obs) -> std::cmp::Ordering {
        let (x, y) = (a.key(), b.key());
        (x.0, x.1).cmp(&(y.0, y.1)).then(x.2.total_cmp(&y.2))
    }

    fn step(&self, s: &mut ValState, device: &DeviceId, tick: u64, inputs: &[Obs], _: &mut Vec<EventScore>) -> Step {
        let p = &self.p;
        while s.bad.front().is_some_and(|b| b.0 + self.window <= tick) {
            s.bad.pop_front();
        }
        while let Some(&(t, r, a)) = s.records.front() {
            if t + self.window > tick {
                break;
            }
            s.records.pop_front();
            s.rejected -= r;
            s.accepted -= a;
        }
        let (mut rej, mut acc) = (0u32, 0u32);
        let range = *s.range.get_or_insert_with(|| self.range(device));
        let trained = |s: &ValState| s.base.n >= p.min_readings;
        for obs in inputs {
            let v = match *obs {
                Obs::Reject => {
                    rej += 1;
                    continue;
                }
                Obs::Record(_) => {
                    acc += 1;
                    continue;
                }
                Obs::Reading(_, v) => {
                    acc += 1;
                    v
                }
            };
            let floor = 1e-6 * s.base.mean.abs().max(1.0);
            let bad = if !v.is_finite() || v.abs() > VALUE_LIMIT {
                Some(Bad::Invalid)
            } else if let Some((lo, hi)) = range.filter(|(lo, hi)| v < *lo || v > *hi) {
                Some(Bad::OutOfRange(lo, hi))
            } else if trained(s) && s.base.var > 0.0 && s.base.z(v, floor) > p.spike_z {
                Some(Bad::Absurd)
            } else {
                None
            };
            if let Some(kind) = bad {
                s.bad.push_back((tick, v, kind));
                continue;
            }
            for (extreme, lower) in [(&mut s.lowest, true), (&mut s.highest, false)] {
                match extreme {
                    Some((x, n)) if *x == v => *n = n.saturating_add(1),
                    Some((x, _)) if (v < *x) != lower => {}
                    _ => *extreme = Some((v, 1)),
                }
            }
            // Stuck: runs of identical readings against the device's own repeat rate.
            if let Some(last) = s.last {
                let same = (last == v) as u8 as f64;
                s.pairs += 1;
                let a = (1.0 / s.pairs as f64).max(p.baseline_alpha);
                if s.run < 3 || same == 0.0 {
                    s.repeat_rate += a * (same - s.repeat_rate);
                }
                s.run = if last == v { s.run + 1 } else { 1 };
            } else {
                s.run = 1;
            }
            s.last = Some(v);
            let fast = match s.fast {
                Some(f) => f + p.fast_alpha * (v - f),
                None => v,
            };
            s.fast = Some(fast);
            let z_fast = s.base.z(fast, floor);
            let shifted = trained(s) && s.base.var > 0.0 && z_fast > p.shift_z;
            let hold = s.shift_since.is_some() && trained(s) && z_fast > p.shift_z / 2.0;
            if shifted || hold {
                let since = *s.shift_since.get_or_insert(tick);
                if tick >= since + self.relearn {
                    s.base.mean = fast;
                    s.shift_since = None;
                }
            } else {
                s.shift_since = None;
            }
            let stuck_run = s.run >= 3;
            // Learned from readings within `LEARN_Z` σ (residuals clipped at 3σ): a baseline that
            // learned only from readings within 4σ froze at a tiny spread on devices whose
            // readings sit on a floor (an idle CPU at 0) and then called every move absurd.
            if !trained(s) || (s.shift_since.is_none() && !stuck_run && s.base.z(v, floor) <= LEARN_Z) {
                s.base.update(v, p.baseline_alpha, 3.0);
            }
        }
        if rej + acc > 0 {
            s.records.push_back((tick, rej, acc));
            s.rejected += rej;
            s.accepted += acc;
        }
        // Conditions, with hysteresis.
        let nbad = s.bad.len() as u32;
        s.values_active = if s.values_active { nbad >= 1 } else { nbad >= p.min_bad };
        let needed = self.stuck_needed(s);
        // A reading pinned at the device's own floor or ceiling (the lowest or highest it ever
        // read) is saturation (an idle CPU, an empty queue), not a stuck sensor.
        let saturated = s.last.is_some_and(|v| {
            [s.lowest, s.highest]
                .iter()
                .flatten()
                .any(|&(x, _)| x == v)
        });
        s.stuck_active = trained(s) && s.base.var > 0.0 && s.run >= needed && !saturated;
        let total = (s.rejected + s.accepted).max(1) as f64;
        let ratio = s.rejected as f64 / total;
        s.malformed_active = if s.malformed_active {
            s.rejected >= 1 && ratio >= p.reject_ratio / 2.0
        } else {
            s.rejected >= p.min_rejects && ratio >= p.reject_ratio
        };
        let shift_active = s.shift_since.is_some();
        // Formatted only for a report (this runs for every reading of every device).
        let w = || human_ms(self.window_ms);
        let report = if s.values_active {
            let &(_, v, kind) = s.bad.back().expect("bad readings");
            let (what, score) = match kind {
                Bad::Invalid => ("invalid (NaN, infinite or beyond ±1e9)".to_string(), 1.0),
                Bad::OutOfRange(lo, hi) => (format!("outside the physical range [{lo}, {hi}]"), 1.0),
                Bad::Absurd => (format!("more than {}σ from the device's baseline", p.spike_z), 0.9),
            };
            Some((
                format!(
                    "{nbad} readings in {} {what}; latest {v}; baseline {:.3} ± {:.3}",
                    w(),
                    s.base.mean,
                    s.base.sd(0.0)
                ),
                score,
                vec![
                    ("bad_readings".into(), Real(nbad as f64)),
                    ("latest".into(), Real(v)),
                    ("baseline_mean".into(), Real(s.base.mean)),
                    ("baseline_sd".into(), Real(s.base.sd(0.0))),
                ],
            ))
        } else if s.malformed_active {
            Some((
                format!(
                    "{} of {} records in {} rejected ({:.0}%)",
                    s.rejected,
                    s.rejected + s.accepted,
                    w(),
                    ratio * 100.0
                ),
                (0.5 + ratio).min(1.0),
                vec![
                    ("rejected".into(), Real(s.rejected as f64)),
                    ("accepted".into(), Real(s.accepted as f64)),
                ],
            ))
        } else if s.stuck_active {
            Some((
                format!(
                    "the same reading {} {} times in a row; the device usually varies (sd {:.3}, repeat rate {:.2})",
                    s.last.unwrap_or(0.0),
                    s.run,
                    s.base.sd(0.0),
                    s.repeat_rate
                ),
                0.8,
                vec![
                    ("run".into(), Real(s.run as f64)),
                    ("needed".into(), Real(needed as f64)),
                    ("repeat_rate".into(), Real(s.repeat_rate)),
                    ("baseline_sd".into(), Real(s.base.sd(0.0))),
                ],
            ))
        } else if shift_active {
            let fast = s.fast.unwrap_or(0.0);
            let z = s.base.z(fast, 1e-9);
            Some((
                format!(
                    "level shifted to {fast:.3} from a baseline of {:.3} ± {:.3} ({z:.1}σ)",
                    s.base.mean,
                    s.base.sd(0.0)
                ),
                (0.5 + z / (4.0 * p.shift_z)).min(1.0),
                vec![
                    ("level".into(), Real(fast)),
                    ("baseline_mean".into(), Real(s.base.mean)),
                    ("baseline_sd".into(), Real(s.base.sd(0.0))),
                    ("z".into(), Real(z)),
                ],
            ))
        } else {
            None
        };
        let report = report.map(|(reason, score, evidence)| Anomaly {
            detector: Corruption::NAME.into(),
            device: device.clone(),
            tick,
            window_ms: Some(self.window_ms),
            score: Real(score),
            severity: Severity::from_score(score),
            reason,
            evidence,
        });
        let wake = [s.bad.front().map(|b| b.0), s.records.front().map(|r| r.0)]
            .into_iter()
            .flatten()
            .min()
            .map(|t| t + self.window);
        Step { report, wake_at: wake }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logic() -> ValueLogic {
        ValueLogic {
            p: Params::default(),
            window: 300,
            window_ms: 300_000,
            relearn: 3600,
        }
    }

    /// Feeds one reading per 6 s tick; returns the ticks at which the report opened.
    fn opened(values: &[f64]) -> Vec<u64> {
        let l = logic();
        let mut s = l.new_state();
        let device = DeviceId::from("d");
        let (mut open, mut opened) = (false, Vec::new());
        for (i, &v) in values.iter().enumerate() {
            let t = i as u64 * 6;
            let step = l.step(&mut s, &device, t, &[Obs::Reading(t as i64 * 1000, v)], &mut Vec::new());
            if step.report.is_some() && !open {
                opened.push(t);
            }
            open = step.report.is_some();
        }
        opened
    }

    /// A reading around 20 with some noise.
    fn normal(n: usize) -> Vec<f64> {
        (0..n).map(|i| 20.0 + ((i * 7919) % 101) as f64 / 50.0 - 1.0).collect()
    }

    #[test]
    fn normal_readings_stay_quiet_and_each_flavour_fires() {
        assert!(opened(&normal(600)).is_empty());
        let mut nan = normal(400);
        nan.extend([f64::NAN, 20.0, f64::NAN]);
        assert_eq!(opened(&nan).len(), 1);
        let mut stuck = normal(400);
        stuck.extend(std::iter::repeat_n(20.37, 40));
        assert_eq!(opened(&stuck).len(), 1);
        let mut shifted = normal(400);
        shifted.extend(normal(100).iter().map(|v| v + 15.0));
        assert_eq!(opened(&shifted).len(), 1);
    }

    #[test]
    fn a_reading_pinned_at_its_floor_is_saturation_not_stuck() {
        // An idle CPU: varies, touches 0 now and then, then sits at 0 for a while.
        let mut cpu: Vec<f64> = (0..400).map(|i| [0.0, 3.5, 1.2, 6.8, 0.4, 2.2][i % 6]).collect();
        cpu.extend(std::iter::repeat_n(0.0, 60));
        assert!(opened(&cpu).is_empty(), "{:?}", opened(&cpu));
    }
}
