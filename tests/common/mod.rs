//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod oracle;

use vigil::config::Config;

/// 2023-11-14T22:00:00Z: a whole hour, so every window length up to 1 h starts a period here.
pub const BASE_MS: i64 = 1_699_999_200_000;

/// A validated configuration from TOML text (panics on error: tests only).
pub fn config(toml: &str) -> Config {
    Config::from_toml(toml).unwrap_or_else(|e| panic!("bad test config: {e}"))
}

/// Epoch milliseconds `offset_ms` after [`BASE_MS`].
pub fn at(offset_ms: i64) -> i64 {
    BASE_MS + offset_ms
}

pub mod engine;
pub mod kafka;

/// Seeded generated CSV with out-of-order, late and malformed records and every incident
/// kind: the noisy input the oracle, query and model tests share.
pub fn noisy_csv(events: u64, devices: u32, seed: u64, late_share: f64) -> Vec<u8> {
    use vigil::generate::{generate, GeneratorConfig, IncidentPlan, OutputFormat};
    let gen = GeneratorConfig {
        events,
        devices,
        seed,
        rate_per_min: 30.0,
        out_of_order_share: 0.05,
        late_share,
        malformed_share: 0.002,
        incidents: IncidentPlan::for_devices(devices),
        ..GeneratorConfig::default()
    };
    let mut data = Vec::new();
    generate(&gen, OutputFormat::Csv, &mut data).unwrap();
    data
}
