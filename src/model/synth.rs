//! Synthetic device states for model tests and the training benchmark: devices drawn from
//! a few behaviour profiles (web server, database, IoT sensor, …), plus planted outliers.
//!
//! Invariant: deterministic for a seed; every state has one `WindowStats` per window of
//! `windows_ms` (the maintained windows, ascending) and is a plausible sliding-window state
//! (longer windows hold at least as much as shorter ones).

use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;

use crate::event::DeviceId;
use crate::window::{DeviceState, DeviceWindows, WindowStats};

/// (events/min, bytes out per event, bytes in per event, external share, distinct dsts,
/// distinct ports, reading mean) of each profile.
const PROFILES: [(f64, f64, f64, f64, f64, f64, f64); 5] = [
    (30.0, 2_000.0, 20_000.0, 0.1, 40.0, 2.0, 0.0),
    (120.0, 50_000.0, 4_000.0, 0.0, 6.0, 1.0, 0.0),
    (2.0, 200.0, 100.0, 0.0, 1.0, 1.0, 21.5),
    (10.0, 800.0, 900.0, 0.5, 12.0, 4.0, 0.0),
    (60.0, 10_000.0, 10_000.0, 0.2, 25.0, 3.0, 70.0),
];

fn unit(rng: &mut Xoshiro256Plus) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// `(1 ± jitter)`, uniform.
fn jitter(rng: &mut Xoshiro256Plus, j: f64) -> f64 {
    1.0 + j * (2.0 * unit(rng) - 1.0)
}

/// One device of profile `p` (`scale` multiplies its traffic: 1 normal, 1000 an outlier).
pub fn device_state(rng: &mut Xoshiro256Plus, p: usize, scale: f64, windows_ms: &[u64]) -> DeviceWindows {
    let (rate, out, inb, ext, dst, ports, reading) = PROFILES[p % PROFILES.len()];
    let rate = rate * jitter(rng, 0.3) * scale;
    let windows = windows_ms
        .iter()
        .map(|&ms| {
            let count = (rate * ms as f64 / 60_000.0).round().max(1.0) as u64;
            let bytes_out = (count as f64 * out * jitter(rng, 0.2) * scale) as u64;
            let value_count = if reading > 0.0 { count } else { 0 };
            let mean_q = (reading * jitter(rng, 0.05) * 1e6) as i128;
            WindowStats {
                count,
                bytes_out,
                bytes_in: (count as f64 * inb * jitter(rng, 0.2)) as u64,
                packets: count * 4,
                bytes_out_external: (bytes_out as f64 * (ext * scale.min(2.0)).min(1.0)) as u64,
                distinct_dst: (dst * jitter(rng, 0.3) * scale.sqrt()).max(1.0) as u32,
                distinct_ports: ports as u32,
                value_count,
                value_invalid: 0,
                value_sum: mean_q * value_count as i128,
                value_sumsq: mean_q * mean_q * value_count as i128,
                value_min: (value_count > 0).then_some(mean_q as i64),
                value_max: (value_count > 0).then_some(mean_q as i64),
            }
        })
        .collect();
    DeviceWindows {
        last_seen_ms: 0,
        windows,
    }
}

/// `devices` states from the profiles (device `dev-000042`), the last `outliers` of them
/// with 1000× the traffic of their profile (named `outlier-…`).
pub fn fleet(devices: usize, outliers: usize, windows_ms: &[u64], seed: u64) -> Vec<(DeviceId, DeviceState)> {
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    (0..devices)
        .map(|i| {
            let p = (rng.next_u64() % PROFILES.len() as u64) as usize;
            let outlier = i >= devices.saturating_sub(outliers);
            let state = device_state(&mut rng, p, if outlier { 1000.0 } else { 1.0 }, windows_ms);
            let name = if outlier {
                format!("outlier-{i:06}")
            } else {
                format!("dev-{i:06}")
            };
            (DeviceId::from(name), DeviceState::new(state))
        })
        .collect()
}
