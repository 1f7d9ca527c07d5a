//! A streaming scorer for one numeric series that does not saturate: a raw *surprise* per
//! reading from a small ensemble of predictors, then an *anomaly likelihood* stage — how
//! improbable the recent surprises are given the distribution of the series' own past
//! surprises (after Ahmad et al. 2017, "Unsupervised real-time anomaly detection for
//! streaming data") — then the suppression of repeat alarms. `value_outlier` runs one
//! [`SeriesScorer`] per device; `vigil eval bench` runs the same code over labelled series.
//!
//! Surprise of a reading `x` at time `t`: `u = ln(1 + r)`, where `r = |x − p| / s` is the
//! normalised residual of the predictor with the smallest scale `s` (the most accurate lately)
//! among three: the last reading (smooth series, level shifts after their
//! first reading), a fast exponentially weighted level, and — once two days of data are in —
//! a slow level plus an hour-of-day profile (plus a day-of-week profile after two weeks), for
//! daily and weekly seasonality. Each scale `sᵢ` is the weighted mean absolute residual of its
//! predictor (winsorised at [`CLIP`] scales so one absurd reading cannot inflate it), never
//! below half the series' quantum (the smallest step between readings seen: discrete counts do
//! not make zero scales) nor 10⁻⁹ of the level. After a gap (more than [`GAP`] usual intervals)
//! the last reading predicts nothing and the levels re-learn fast; a shift confirmed by
//! [`SHIFT_RUN`] readings in a row beyond [`SHIFT_R`] scales on the same side moves the levels
//! to the new readings (re-learning instead of alarming for ever).
//!
//! Likelihood: how improbable the surprise `u`, and its average `m` over the last [`SHORT`]
//! readings, are given the device's own past ones (memory `memory` readings). Each tail is
//! fitted by peaks over a threshold: a running [`TAIL_Q`] quantile `q` (stochastic
//! approximation, steps proportional to the mean absolute deviation) and the mean excess `e`
//! over it give `−ln P = −ln(1 − TAIL_Q) + (x − q)/e` above `q` — an exponential tail in `u`, a
//! Pareto tail in `r`: a heavy-tailed series learns that its big residuals are common, a quiet
//! one that they are not. `u` and `m` are fitted on their upper side, `m` also on its lower
//! side (a stuck series surprises by too little).
//! `s` is the largest of the three. Score: `1 − P = 1 − e^(−s)`
//! up to `1 − 10⁻⁶`; beyond, `1 − 10⁻⁶·s₀/s` (`s₀ = 6 ln 10`), so distinct surprises keep
//! distinct scores near 1 instead of tying at 1.0.
//!
//! Repeat alarms: during `quiet` readings after a reading, any reading whose `s` does not exceed
//! the largest `s` of that period by [`RISE`] scores half its score: only the first crossing of
//! any threshold in a burst stays above it (NAB rewards the first detection and charges every
//! later one outside the window) — a rule independent of the threshold chosen.
//!
//! Invariants: one score per reading, in [0, 1], a pure function of the readings so far in
//! order; no allocation; O(1) state (a few dozen numbers) whatever the series' length; the
//! first `warmup` readings score 0.

use serde::{Deserialize, Serialize};

/// The quantile of the point surprise above which its tail is fitted.
pub const TAIL_Q: f64 = 0.95;
/// `−ln(1 − TAIL_Q)`: the surprise at the quantile.
const TAIL_SURPRISE: f64 = 2.995_732_273_553_991;
/// Readings averaged by the short-term surprise.
pub const SHORT: usize = 16;
/// Residuals are clipped at this many scales before they update a scale.
pub const CLIP: f64 = 6.0;
/// A gap: more than this many usual intervals without a reading.
pub const GAP: f64 = 8.0;
/// A shift is confirmed by this many readings in a row ...
pub const SHIFT_RUN: u32 = 6;
/// ... beyond this many scales from the fast level, on the same side.
pub const SHIFT_R: f64 = 4.0;
/// A reading in a quiet period stays an alarm only if its `s` exceeds the period's peak by this
/// factor.
pub const RISE: f64 = 1.1;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// `s₀`: where the score leaves `1 − e^(−s)` for the slower `1 − 10⁻⁶·s₀/s`.
const S0: f64 = 13.815_510_557_964_274;

/// Parameters of the scorer (`[detectors.value_outlier]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScorerParams {
    /// Readings before any is scored (they score 0).
    pub warmup: u32,
    /// Readings of memory of the distribution of surprises.
    pub memory: f64,
    /// Readings after an alarm during which lower scores are halved.
    pub quiet: u32,
}

impl Default for ScorerParams {
    fn default() -> Self {
        ScorerParams {
            warmup: 60,
            memory: 3000.0,
            quiet: 150,
        }
    }
}

/// An exponentially weighted mean and mean absolute deviation (plain averages while fewer
/// than `1/alpha` values are in).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Ew {
    n: u32,
    mean: f64,
    dev: f64,
}

impl Ew {
    fn update(&mut self, x: f64, alpha: f64, clip: Option<f64>) {
        self.n = self.n.saturating_add(1);
        let a = (1.0 / self.n as f64).max(alpha);
        let mut r = x - self.mean;
        if let Some(c) = clip.filter(|_| self.n > 10 && self.dev > 0.0) {
            r = r.clamp(-c * self.dev, c * self.dev);
        }
        if self.n == 1 {
            self.mean = x;
            return;
        }
        self.mean += a * r;
        self.dev += a * (r.abs() - self.dev);
    }
}

/// The upper tail of a surprise by peaks over a threshold: a running [`TAIL_Q`] quantile `q`
/// (stochastic approximation, steps of a fraction of the deviation) and the mean excess `e`
/// over it; `−ln P(X ≥ x) = −ln(1 − TAIL_Q) + (x − q)/e` above `q`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Tail {
    q: f64,
    excess: f64,
    n: u32,
}

impl Tail {
    fn surprise(&self, x: f64) -> f64 {
        if x > self.q {
            TAIL_SURPRISE + (x - self.q) / self.excess.max(0.02)
        } else {
            0.0
        }
    }

    fn update(&mut self, x: f64, dev: f64, fast: bool, memory: f64) {
        let eta = dev.max(0.005) * if fast { 0.2 } else { 0.05 };
        if x > self.q {
            self.n = self.n.saturating_add(1);
            let a = (1.0 / self.n as f64).max(1.0 / ((1.0 - TAIL_Q) * memory.max(20.0)));
            self.excess += a * ((x - self.q) - self.excess);
            self.q += eta * TAIL_Q;
        } else {
            self.q -= eta * (1.0 - TAIL_Q);
        }
    }
}

/// The state of one series (a device's readings).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SeriesScorer {
    n: u64,
    first_ts: i64,
    last_ts: i64,
    prev: f64,
    /// Usual interval between readings, ms.
    interval: f64,
    quantum: f64,
    /// Fast level (value) and its residual scale.
    fast: Ew,
    /// Scale of the last-reading predictor.
    step_dev: f64,
    /// Slow level, and the scale of the seasonal predictor.
    slow: f64,
    season_dev: f64,
    hours: [f32; 24],
    days: [f32; 7],
    /// Readings still re-learning fast (after a gap or a shift).
    relearn: u32,
    shift_run: u32,
    shift_side: f64,
    /// The last SHORT surprises (ring) and their sum.
    ring: [f32; SHORT],
    ring_sum: f64,
    /// Distribution of the point surprise: its mean and deviation, its upper [`TAIL_Q`]
    /// quantile and the mean excess over it; and of the short average.
    point: Ew,
    point_tail: Tail,
    avg: Ew,
    avg_tail: Tail,
    low_tail: Tail,
    /// Peak `s` of the current quiet period and readings since it started.
    peak: f64,
    since_peak: u32,
}

/// What scoring one reading found (for reports).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Scored {
    /// The score written for the reading, in [0, 1].
    pub score: f64,
    /// The likelihood score before repeat suppression.
    pub likelihood: f64,
    /// Raw surprise `u` and the smallest normalised residual `r`.
    pub surprise: f64,
    pub residual: f64,
    /// The fast level the reading was compared with.
    pub level: f64,
}

impl SeriesScorer {
    /// Scores one valid (finite) reading and learns from it.
    pub fn push(&mut self, p: &ScorerParams, ts_ms: i64, x: f64) -> Scored {
        self.n += 1;
        if self.n == 1 {
            self.first_ts = ts_ms;
            self.last_ts = ts_ms;
            self.prev = x;
            self.fast.update(x, 1.0, None);
            self.slow = x;
            return Scored {
                level: x,
                ..Scored::default()
            };
        }
        let dt = (ts_ms - self.last_ts).max(0) as f64;
        let gap = self.n > 3 && self.interval > 0.0 && dt > GAP * self.interval;
        if gap {
            self.relearn = self.relearn.max(10);
        }
        let step = (x - self.prev).abs();
        if step > 0.0 && (self.quantum == 0.0 || step < self.quantum) {
            self.quantum = step;
        }
        let floor = (0.5 * self.quantum).max(1e-9 * self.fast.mean.abs()).max(1e-12);
        // Residuals of the predictors, normalised by their own scales.
        let r_level = (x - self.fast.mean).abs() / self.fast.dev.max(floor);
        let r_step = if gap {
            f64::INFINITY
        } else {
            step / self.step_dev.max(floor)
        };
        let seasonal = ts_ms - self.first_ts >= 2 * DAY_MS;
        let (h, d) = (
            (ts_ms.div_euclid(HOUR_MS)).rem_euclid(24) as usize,
            (ts_ms.div_euclid(DAY_MS) + 4).rem_euclid(7) as usize,
        );
        let weekly = ts_ms - self.first_ts >= 14 * DAY_MS;
        let season_pred = self.slow + self.hours[h] as f64 + if weekly { self.days[d] as f64 } else { 0.0 };
        let r_season = if seasonal {
            (x - season_pred).abs() / self.season_dev.max(floor)
        } else {
            f64::INFINITY
        };
        // The predictor with the smallest scale (the most accurate lately) explains the reading.
        let mut best = (self.fast.dev, r_level);
        if !gap && self.step_dev < best.0 {
            best = (self.step_dev, r_step);
        }
        if seasonal && self.season_dev < best.0 {
            best = (self.season_dev, r_season);
        }
        let r = best.1;
        let u = r.ln_1p();
        let level = self.fast.mean;

        // Learn: scales, levels, profiles, interval.
        let warm = self.n <= SHORT as u64;
        let a_fast = if self.relearn > 0 { 0.3 } else { 0.05 };
        if !gap {
            let c = CLIP * self.step_dev.max(floor);
            let a = (1.0 / self.n as f64).max(0.02);
            self.step_dev += a * (step.min(c) - self.step_dev);
            if self.n == 2 {
                self.interval = dt;
            } else {
                self.interval += (1.0 / self.n as f64).max(0.05) * (dt - self.interval);
            }
        }
        // Level shift: a run of readings far on one side of the fast level.
        let side = (x - level).signum();
        if r_level > SHIFT_R && side == self.shift_side {
            self.shift_run += 1;
        } else {
            self.shift_run = u32::from(r_level > SHIFT_R);
            self.shift_side = side;
        }
        if self.shift_run >= SHIFT_RUN {
            self.fast.mean = x;
            self.slow = x;
            self.relearn = SHIFT_RUN * 2;
            self.shift_run = 0;
        }
        self.fast.update(x, a_fast, Some(CLIP));
        let per_day = (DAY_MS as f64 / self.interval.max(1.0)).max(1.0);
        let a_slow = if self.relearn > 0 {
            0.3
        } else {
            (1.0 / (3.0 * per_day)).clamp(1e-4, 0.05)
        };
        let resid = x - self.slow;
        if seasonal {
            let c = CLIP * self.season_dev.max(floor);
            let e = (x - season_pred).abs().min(c);
            self.season_dev += 0.02_f64.max(1.0 / self.n as f64) * (e - self.season_dev);
        } else {
            self.season_dev = self.fast.dev;
        }
        let a_hour = (24.0 / (7.0 * per_day)).clamp(0.005, 0.2);
        let hour_resid = resid - if weekly { self.days[d] as f64 } else { 0.0 };
        self.hours[h] += (a_hour * (hour_resid - self.hours[h] as f64)) as f32;
        if seasonal {
            let a_day = (1.0 / (4.0 * per_day)).clamp(0.001, 0.2);
            self.days[d] += (a_day * (resid - self.hours[h] as f64 - self.days[d] as f64)) as f32;
        }
        self.slow += a_slow * resid;
        self.relearn = self.relearn.saturating_sub(1);
        self.prev = x;
        self.last_ts = ts_ms;

        // Likelihood of the recent surprises.
        let slot = (self.n as usize) % SHORT;
        self.ring_sum += u - self.ring[slot] as f64;
        self.ring[slot] = u as f32;
        let m = self.ring_sum / SHORT as f64;
        let mut tail = 0.0;
        if self.n > p.warmup as u64 && !warm {
            // Peaks over a threshold on each: the point surprise (upper tail), the short
            // average (upper tail, and lower: a stuck series surprises by too little).
            tail = self
                .point_tail
                .surprise(u)
                .max(self.avg_tail.surprise(m))
                .max(self.low_tail.surprise(-m));
        }
        let a_long = 1.0 / p.memory.max(1.0);
        self.point.update(u, a_long, Some(4.0));
        let fast = self.n < 500;
        self.point_tail.update(u, self.point.dev, fast, p.memory);
        if !warm {
            self.avg_tail.update(m, self.avg.dev, fast, p.memory);
            self.low_tail.update(-m, self.avg.dev, fast, p.memory);
        }
        if !warm {
            self.avg.update(m, a_long, Some(4.0));
        }
        if self.n <= p.warmup as u64 || warm {
            return Scored {
                score: 0.0,
                likelihood: 0.0,
                surprise: u,
                residual: r,
                level,
            };
        }
        let s = tail;
        let likelihood = score_of_surprise(s);
        // Repeat suppression.
        self.since_peak = self.since_peak.saturating_add(1);
        if self.since_peak > p.quiet {
            self.peak = 0.0;
        }
        let score = if s > RISE * self.peak || self.peak == 0.0 {
            likelihood
        } else {
            0.5 * likelihood
        };
        if s > self.peak {
            if self.peak == 0.0 || s > RISE * self.peak {
                self.since_peak = 0;
            }
            self.peak = s;
        }
        Scored {
            score,
            likelihood,
            surprise: u,
            residual: r,
            level,
        }
    }

    /// Readings seen.
    pub fn readings(&self) -> u64 {
        self.n
    }
}

/// The score of a log-tail surprise `s = −ln P`: `1 − e^(−s)` up to `1 − 10⁻⁶`, then
/// `1 − 10⁻⁶·s₀/s` (continuous, strictly increasing, below 1 for every finite `s`).
pub fn score_of_surprise(s: f64) -> f64 {
    if s.is_nan() || s <= 0.0 {
        return 0.0;
    }
    if s <= S0 {
        -(-s).exp_m1()
    } else {
        1.0 - 1e-6 * S0 / s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_keep_resolution_near_one() {
        assert!((TAIL_SURPRISE + (1.0 - TAIL_Q).ln()).abs() < 1e-12);
        let scores: Vec<f64> = [1.0, 10.0, 13.8, 14.0, 50.0, 800.0, 1e5]
            .iter()
            .map(|&s| score_of_surprise(s))
            .collect();
        for w in scores.windows(2) {
            assert!(w[0] < w[1] && w[1] < 1.0, "{scores:?}");
        }
        assert!((score_of_surprise(S0) - (1.0 - 1e-6)).abs() < 1e-12);
        assert_eq!(score_of_surprise(0.0), 0.0);
    }
}
