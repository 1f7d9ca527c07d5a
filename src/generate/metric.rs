//! A device's telemetry reading: a smooth signal (daily cycle or load-following level plus
//! an Ornstein–Uhlenbeck drift) with measurement noise, quantised to the device's precision.
//!
//! Invariants: a normal reading lies inside the metric's physical range and is already
//! quantised (`round(v·10^d)/10^d`), so its decimal text parses back to the same `f64`;
//! readings of one device are drawn in event-time order, so the drift is continuous.

use super::profile::MetricKind;
use super::rng::Rng64;

const HOUR_MS: f64 = 3_600_000.0;

/// The state of one device's reading.
#[derive(Clone, Debug)]
pub(crate) struct Metric {
    pub kind: MetricKind,
    /// Level around which the reading moves.
    base: f64,
    /// Daily cycle amplitude and the hour of its peak (temperature, humidity).
    amp: f64,
    peak_h: f64,
    /// How strongly the level follows the device's activity (CPU, queues).
    load: f64,
    /// Drift: stationary standard deviation and time constant.
    drift_sd: f64,
    tau_ms: f64,
    noise_sd: f64,
    drift: f64,
    last_ts: i64,
    /// The last normal reading (what a stuck sensor keeps repeating).
    pub last: f64,
}

impl Metric {
    pub fn new(kind: MetricKind, rng: &mut Rng64) -> Self {
        let (base, amp, load, drift_sd, tau_min, noise_sd) = match kind {
            MetricKind::TemperatureC if rng.chance(0.2) => {
                // cold room / refrigerated storage
                (
                    rng.range(2.0, 6.0),
                    rng.range(0.2, 0.8),
                    0.0,
                    0.4,
                    20.0,
                    rng.range(0.05, 0.15),
                )
            }
            MetricKind::TemperatureC => (
                rng.range(18.0, 30.0),
                rng.range(0.8, 4.0),
                0.0,
                rng.range(0.3, 0.8),
                30.0,
                rng.range(0.08, 0.3),
            ),
            MetricKind::HumidityPct => (
                rng.range(30.0, 60.0),
                rng.range(3.0, 10.0),
                0.0,
                rng.range(1.0, 3.0),
                45.0,
                rng.range(0.3, 1.0),
            ),
            MetricKind::CpuPct => (
                rng.range(12.0, 45.0),
                0.0,
                0.8,
                rng.range(2.0, 6.0),
                10.0,
                rng.range(1.5, 4.0),
            ),
            MetricKind::QueueDepth => (rng.range(20.0, 400.0), 0.0, 1.0, 0.0, 8.0, 0.0),
        };
        // Queues drift and jitter in proportion to their level.
        let (drift_sd, noise_sd) = if kind == MetricKind::QueueDepth {
            (base * rng.range(0.15, 0.3), base * rng.range(0.05, 0.1))
        } else {
            (drift_sd, noise_sd)
        };
        // Humidity peaks before dawn, temperature in the afternoon.
        let peak_h = match kind {
            MetricKind::HumidityPct => rng.range(3.0, 7.0),
            _ => rng.range(13.0, 17.0),
        };
        Metric {
            kind,
            base,
            amp,
            peak_h,
            load,
            drift_sd,
            tau_ms: tau_min * 60_000.0,
            noise_sd,
            drift: drift_sd * rng.normal(),
            last_ts: i64::MIN,
            last: base,
        }
    }

    /// A typical spread of the reading (drift, noise and daily cycle together).
    pub fn spread(&self) -> f64 {
        (self.drift_sd.powi(2) + self.noise_sd.powi(2) + self.amp.powi(2) / 2.0).sqrt()
    }

    /// The true (unquantised, unclamped) reading at `ts` for activity level `activity`
    /// (the device's rate multiplier, mean 1); advances the drift.
    pub fn sample(&mut self, ts: i64, activity: f64, rng: &mut Rng64) -> f64 {
        if self.last_ts != i64::MIN && self.drift_sd > 0.0 {
            let decay = (-((ts - self.last_ts) as f64) / self.tau_ms).exp();
            self.drift = self.drift * decay + self.drift_sd * (1.0 - decay * decay).sqrt() * rng.normal();
        }
        self.last_ts = ts;
        let hour = ts.rem_euclid(24 * HOUR_MS as i64) as f64 / HOUR_MS;
        let cycle = self.amp * (std::f64::consts::TAU * (hour - self.peak_h) / 24.0).cos();
        let level = if self.load > 0.0 {
            self.base * activity.max(0.05).powf(self.load)
        } else {
            self.base
        };
        level + cycle + self.drift + self.noise_sd * rng.normal()
    }

    /// Clamps to the physical range and quantises to the device's precision.
    pub fn finish(&self, v: f64) -> f64 {
        let (lo, hi) = self.kind.range();
        quantise(v.clamp(lo, hi), self.kind.decimals())
    }

    /// A normal reading at `ts`; remembered as the last good one.
    pub fn next(&mut self, ts: i64, activity: f64, rng: &mut Rng64) -> f64 {
        let v = self.sample(ts, activity, rng);
        self.last = self.finish(v);
        self.last
    }
}

/// `round(v·10^d)/10^d`, which prints and parses back exactly.
pub(crate) fn quantise(v: f64, decimals: u8) -> f64 {
    let scale = [1.0, 10.0, 100.0, 1000.0][decimals.min(3) as usize];
    (v * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_stay_in_range_and_vary() {
        let mut rng = Rng64::stream(3, 3);
        for kind in [
            MetricKind::TemperatureC,
            MetricKind::HumidityPct,
            MetricKind::CpuPct,
            MetricKind::QueueDepth,
        ] {
            let mut m = Metric::new(kind, &mut rng);
            let (lo, hi) = kind.range();
            let mut distinct = std::collections::HashSet::new();
            for i in 0..2000 {
                let v = m.next(1_767_571_200_000 + i * 10_000, 1.0, &mut rng);
                assert!(v >= lo && v <= hi, "{kind:?} {v}");
                assert_eq!(quantise(v, kind.decimals()), v);
                distinct.insert(v.to_bits());
            }
            assert!(distinct.len() > 30, "{kind:?} barely varies");
            assert!(m.spread() > 0.0);
        }
    }
}
