//! `[model]`: how models are trained, where the registry lives, when to retrain, MLflow.
//!
//! Invariants after [`ModelConfig::check`]: `k` is at least 2 (or `"auto"` with
//! `2 <= k_max`), fractions lie in their ranges, and `retrain_every` is a multiple of the
//! tick (0 = no scheduled retraining).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::DurationMs;

/// `k = 8` or `k = "auto"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KChoice {
    Fixed(u64),
    /// The k in `2..=k_max` with the best mean simplified silhouette on a sample.
    Auto,
}

impl Serialize for KChoice {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            KChoice::Fixed(k) => s.serialize_u64(*k),
            KChoice::Auto => s.serialize_str("auto"),
        }
    }
}

impl<'de> Deserialize<'de> for KChoice {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(u64),
            S(String),
        }
        match Raw::deserialize(de)? {
            Raw::N(k) => Ok(KChoice::Fixed(k)),
            Raw::S(s) if s == "auto" => Ok(KChoice::Auto),
            Raw::S(s) => s
                .parse()
                .map(KChoice::Fixed)
                .map_err(|_| serde::de::Error::custom(format!("`{s}`: write a number of clusters or \"auto\""))),
        }
    }
}

/// How raw features are transformed before standardization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Transform {
    /// `sign(x)·ln(1+|x|)`, then z-score (byte and count features are heavy-tailed).
    #[default]
    Log1p,
    /// z-score of the raw value.
    None,
}

impl Transform {
    pub fn apply(self, x: f64) -> f64 {
        match self {
            Transform::Log1p => super::signed_log1p(x),
            Transform::None => x,
        }
    }
    pub fn invert(self, y: f64) -> f64 {
        match self {
            Transform::Log1p => y.signum() * y.abs().exp_m1(),
            Transform::None => y,
        }
    }
}

/// The `[model]` section.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Number of clusters, or "auto".
    pub k: KChoice,
    /// Largest k tried by "auto" (from 2).
    pub k_max: u64,
    /// Devices sampled to choose k and to compute the silhouette metric.
    pub sample: usize,
    pub seed: u64,
    pub max_iterations: u64,
    pub tolerance: f64,
    /// k-means restarts (the lowest inertia wins).
    pub n_runs: u64,
    /// With more devices than this, k-means is first fitted on a sample of this size, then
    /// refined on every device (0: always fit on everything).
    pub fit_sample: usize,
    pub transform: Transform,
    /// Clusters with fewer members than this share of the devices are dropped.
    pub min_cluster_fraction: f64,
    /// Quantile of member distances that defines a cluster's spread.
    pub spread_quantile: f64,
    /// The registry folder.
    pub registry: PathBuf,
    /// Retrain every this much event time ("0s": never on a schedule).
    pub retrain_every: DurationMs,
    /// Whether a newly trained version becomes the active one at once.
    pub auto_promote: bool,
    /// MLflow tracking server; each training run is logged there when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mlflow_tracking_uri: Option<String>,
    pub mlflow_experiment: String,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            k: KChoice::Fixed(8),
            k_max: 10,
            sample: 5_000,
            seed: 42,
            max_iterations: 100,
            tolerance: 1e-4,
            n_runs: 3,
            fit_sample: 20_000,
            transform: Transform::Log1p,
            min_cluster_fraction: 0.002,
            spread_quantile: 0.95,
            registry: PathBuf::from("models"),
            retrain_every: DurationMs(0),
            auto_promote: true,
            mlflow_tracking_uri: None,
            mlflow_experiment: "vigil".into(),
        }
    }
}

impl ModelConfig {
    /// Checks the invariants in the module header: `Err((key, message))`.
    pub fn check(&self, tick_ms: u64) -> Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((format!("model.{k}"), m.to_string()));
        match self.k {
            KChoice::Fixed(k) if k < 2 => return bad("k", "must be at least 2 (or \"auto\")"),
            KChoice::Auto if self.k_max < 2 => return bad("k_max", "must be at least 2"),
            _ => {}
        }
        if self.sample < 10 {
            return bad("sample", "must be at least 10");
        }
        if self.n_runs == 0 || self.max_iterations == 0 {
            return bad("n_runs", "n_runs and max_iterations must be at least 1");
        }
        if !(0.0..0.5).contains(&self.min_cluster_fraction) {
            return bad("min_cluster_fraction", "must lie in [0, 0.5)");
        }
        if !(self.spread_quantile > 0.0 && self.spread_quantile <= 1.0) {
            return bad("spread_quantile", "must lie in (0, 1]");
        }
        if !(self.tolerance.is_finite() && self.tolerance > 0.0) {
            return bad("tolerance", "must be a positive number");
        }
        if self.retrain_every.0 % tick_ms != 0 {
            return bad("retrain_every", "must be a multiple of time.tick");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vigil_toml_states_the_defaults() {
        let c = crate::config::Config::from_toml(include_str!("../../vigil.toml")).unwrap();
        assert_eq!(c.model, ModelConfig::default());
    }

    #[test]
    fn k_auto_and_bad_values() {
        let c = crate::config::Config::from_toml("[model]\nk = \"auto\"\nretrain_every = \"6h\"\n").unwrap();
        assert_eq!(c.model.k, KChoice::Auto);
        assert_eq!(c.model.retrain_every.0, 6 * 3_600_000);
        let e = crate::config::Config::from_toml("[model]\nk = 1\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("model.k"), "{e}");
        let e = crate::config::Config::from_toml("[model]\nk = \"many\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("auto"), "{e}");
    }
}
