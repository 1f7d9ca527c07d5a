//! Small statistical building blocks for detectors: a robust, incrementally maintained
//! per-device baseline of a series, a Poisson tail bound for "fewer events than expected",
//! and the conversion of a z-score into a score in [0, 1].
//!
//! Invariants: every function is pure and deterministic (the same inputs in the same order
//! give the same bits), every returned value is finite, and a [`RobustBaseline`] takes O(1)
//! memory whatever the number of observations.

use serde::{Deserialize, Serialize};

/// An exponentially weighted mean and variance whose updates are winsorised: a residual is
/// clipped to `clip` standard deviations before it moves the mean or the variance, so one
/// absurd reading cannot blow the baseline up. The first `1/alpha` observations are a plain
/// running mean/variance (warm-up); after that, weights decay with `alpha` per observation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RobustBaseline {
    pub n: u64,
    pub mean: f64,
    pub var: f64,
}

impl RobustBaseline {
    /// Adds one observation.
    pub fn update(&mut self, x: f64, alpha: f64, clip: f64) {
        if !x.is_finite() {
            return;
        }
        self.n += 1;
        if self.n == 1 {
            self.mean = x;
            self.var = 0.0;
            return;
        }
        let a = (1.0 / self.n as f64).max(alpha);
        let sd = self.var.sqrt();
        let mut r = x - self.mean;
        if self.n > 10 && sd > 0.0 {
            r = r.clamp(-clip * sd, clip * sd);
        }
        self.mean += a * r;
        self.var = (1.0 - a) * (self.var + a * r * r);
    }

    /// Standard deviation, never below `floor`.
    pub fn sd(&self, floor: f64) -> f64 {
        self.var.sqrt().max(floor)
    }

    /// How many standard deviations `x` lies from the mean (with a floor on the deviation).
    pub fn z(&self, x: f64, floor: f64) -> f64 {
        let z = (x - self.mean).abs() / self.sd(floor);
        if z.is_finite() {
            z
        } else {
            f64::MAX
        }
    }
}

/// `-ln P(X <= k)` bounded from below (Chernoff) for `X ~ Poisson(lambda)`, `k < lambda`:
/// `lambda - k + k ln(k / lambda)`; 0 when `k >= lambda`. How surprising it is to see only
/// `k` events where `lambda` were expected.
pub fn poisson_low_surprise(k: f64, lambda: f64) -> f64 {
    if lambda.is_nan() || lambda <= 0.0 || k >= lambda {
        return 0.0;
    }
    if k <= 0.0 {
        return lambda;
    }
    (lambda - k + k * (k / lambda).ln()).max(0.0)
}

/// `-ln P(X >= k)` bounded from below for `X ~ Poisson(lambda)`, `k > lambda`:
/// `lambda - k + k ln(k / lambda)`; 0 when `k <= lambda`.
pub fn poisson_high_surprise(k: f64, lambda: f64) -> f64 {
    if k <= lambda {
        return 0.0;
    }
    let lambda = lambda.max(1e-9);
    (lambda - k + k * (k / lambda).ln()).max(0.0)
}

/// A two-sided z-score as a score in [0, 1]: `erf(|z| / sqrt 2)`, i.e. the probability mass
/// of a normal distribution closer to the mean than `z` (0 at the mean, → 1 far away).
pub fn z_score01(z: f64) -> f64 {
    if !z.is_finite() {
        return 1.0;
    }
    erf(z.abs() / std::f64::consts::SQRT_2).clamp(0.0, 1.0)
}

/// The error function (Abramowitz–Stegun 7.1.26, |error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let y = 1.0
        - (((((1.061_405_429 * t - 1.453_152_027) * t) + 1.421_413_741) * t - 0.284_496_736) * t + 0.254_829_592)
            * t
            * (-x * x).exp();
    sign * y
}

/// Whether `name` matches a glob with `*` wildcards (`sensor-*`, `*-db-*`, `*`).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let mut rest = name;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

/// A duration parameter in ms (`"5m"`), as `(key, message)` on error.
pub fn parse_duration_ms(key: &str, text: &str) -> Result<u64, (String, String)> {
    let d = humantime::parse_duration(text.trim()).map_err(|e| {
        (
            key.to_string(),
            format!("`{text}` is not a duration ({e}); write e.g. \"5m\""),
        )
    })?;
    if d.as_millis() == 0 {
        return Err((key.to_string(), "must be positive".into()));
    }
    Ok(d.as_millis() as u64)
}

/// A duration for human eyes: "4m12s".
pub fn human_ms(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_millis(ms / 1000 * 1000))
        .to_string()
        .replace(' ', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn baseline_is_robust_to_one_outlier() {
        let mut b = RobustBaseline::default();
        for i in 0..500 {
            b.update(20.0 + (i % 5) as f64 * 0.1, 0.01, 3.0);
        }
        let (m, s) = (b.mean, b.sd(0.0));
        b.update(1e6, 0.01, 3.0);
        assert!((b.mean - m).abs() < 0.1 && b.sd(0.0) < 2.0 * s, "{b:?}");
        assert!(b.z(1e6, 0.01) > 1e4);
    }

    #[test]
    fn poisson_bounds() {
        assert_eq!(poisson_low_surprise(0.0, 12.0), 12.0);
        assert!(poisson_low_surprise(1.0, 60.0) > 50.0);
        assert_eq!(poisson_low_surprise(70.0, 60.0), 0.0);
        assert!(poisson_high_surprise(30.0, 5.0) > 20.0);
    }

    #[test]
    fn scores_and_globs() {
        assert!(z_score01(0.0) < 1e-6);
        assert!((z_score01(1.96) - 0.95).abs() < 1e-3);
        assert_eq!(z_score01(f64::INFINITY), 1.0);
        assert!(glob_match("sensor-*", "sensor-0012"));
        assert!(!glob_match("sensor-*", "vm-000001"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("*-db-*", "eu-db-1"));
        assert!(glob_match("vm-1", "vm-1"));
    }
}
