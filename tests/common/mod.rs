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
