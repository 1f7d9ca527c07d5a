//! Models are data: k-means models trained from the feature store, kept in an on-disk
//! registry, logged to MLflow, and fed into the dataflow as an input collection.
//!
//! Invariants: a [`Model`] is plain differential data (total order, hash, serde), so a new
//! version replaces the old one in the dataflow by retraction; scoring is a pure function of
//! the model and a feature vector ([`Model::score`]), with the score in [0, 1] and every
//! number finite; training is deterministic for a seed and a training set (rows are sorted
//! by device before fitting). The score mapping is documented once, on [`score_of_ratio`].

pub mod bench;
pub mod config;
pub mod driver;
pub mod mlflow;
pub mod registry;
pub mod rescore;
pub mod snapshot;
pub mod synth;
pub mod train;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use crate::detect::Real;

pub use config::{KChoice, ModelConfig, Transform};
pub use registry::Registry;
pub use train::{train, TrainingSet};

/// What can go wrong with models (training, registry, MLflow, snapshots).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("training: {0}")]
    Training(String),
    #[error("model registry {path}: {message}")]
    Registry { path: String, message: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("feature snapshot {path}: {message}")]
    Snapshot { path: String, message: String },
    #[error("MLflow at {uri}: {message}")]
    Mlflow { uri: String, message: String },
}

/// The event time a model was trained at: the feature store as of `tick` (its last
/// millisecond is `as_of_ms`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Frontier {
    /// The tick of the snapshot, when known (a snapshot file states `as_of_ms` only).
    pub tick: Option<u64>,
    /// The snapshot's `as_of_ms`: the features hold every event up to this time.
    pub as_of_ms: i64,
}

/// Training parameters, as recorded with each version.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModelParams {
    /// Clusters asked for (`k = "auto"` records the chosen k here and `k_auto = true`).
    pub k: u64,
    pub k_auto: bool,
    pub seed: u64,
    pub max_iterations: u64,
    pub tolerance: Real,
    pub n_runs: u64,
    /// Devices k-means was first fitted on before refinement over all (0: all at once).
    pub fit_sample: u64,
    pub transform: Transform,
    /// Clusters with fewer members than this share of the devices are dropped.
    pub min_cluster_fraction: Real,
    /// Quantile of the member distances that defines a cluster's spread.
    pub spread_quantile: Real,
}

/// Training metrics.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// Devices trained on.
    pub devices: u64,
    /// Mean squared distance of a device to its nearest kept centroid (standardized space).
    pub inertia: Real,
    /// Members of each kept cluster.
    pub cluster_sizes: Vec<u64>,
    /// Clusters fitted but dropped as too small (their members go to the nearest kept one).
    pub dropped_clusters: u64,
    /// Mean simplified silhouette of the kept clustering on the sample (see `train`).
    pub silhouette: Real,
    /// For `k = "auto"`: (k, mean simplified silhouette) of every candidate.
    pub k_candidates: Vec<(u64, Real)>,
    /// Wall-clock training time (standardize + fit + spreads), in milliseconds.
    pub training_ms: Real,
}

/// One model version: everything needed to score a feature vector.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Model {
    /// Assigned by the registry (0 before registration).
    pub version: u64,
    pub trained_at: Frontier,
    /// Wall-clock creation time, epoch ms.
    pub created_ms: i64,
    pub params: ModelParams,
    /// Feature names, in the order of `mean`, `std` and each centroid.
    pub features: Vec<String>,
    /// Scaler: mean and standard deviation of each (transformed) feature.
    pub mean: Vec<Real>,
    pub std: Vec<Real>,
    /// Centroids in standardized space.
    pub centroids: Vec<Vec<Real>>,
    /// Per-cluster spread: the `spread_quantile` of its members' distances (floored > 0).
    pub spread: Vec<Real>,
    pub metrics: ModelMetrics,
}

/// What scoring a vector gives.
#[derive(Clone, Debug, PartialEq)]
pub struct Scored {
    /// In [0, 1]; see [`score_of_ratio`].
    pub score: f64,
    pub cluster: usize,
    /// Euclidean distance to the nearest centroid, standardized space.
    pub distance: f64,
    /// `distance / spread[cluster]`.
    pub ratio: f64,
}

/// The score of a device whose distance is `ratio` times its cluster's spread:
/// `1 − exp(−ratio² / 2)`. 0 at the centroid, 0.39 at the spread (the cluster's 95th
/// percentile by default), 0.86 at twice it, 0.99 at three times; monotone, in [0, 1).
pub fn score_of_ratio(ratio: f64) -> f64 {
    if !ratio.is_finite() {
        return 1.0;
    }
    (1.0 - (-ratio * ratio / 2.0).exp()).clamp(0.0, 1.0)
}

/// `sign(x)·ln(1 + |x|)`: tames the heavy tails of byte and count features.
pub fn signed_log1p(x: f64) -> f64 {
    x.signum() * x.abs().ln_1p()
}

impl Model {
    /// Transforms and standardizes a raw feature vector (in `self.features` order).
    pub fn standardize(&self, raw: &[f64]) -> Vec<f64> {
        raw.iter()
            .zip(self.mean.iter().zip(&self.std))
            .map(|(&x, (m, s))| {
                let x = if x.is_finite() { x } else { 0.0 };
                (self.params.transform.apply(x) - m.0) / s.0
            })
            .collect()
    }

    /// Scores a raw feature vector given in `self.features` order.
    pub fn score(&self, raw: &[f64]) -> Scored {
        let z = self.standardize(raw);
        let (cluster, d2) = self.nearest(&z);
        let distance = d2.sqrt();
        let ratio = distance / self.spread[cluster].0;
        Scored {
            score: score_of_ratio(ratio),
            cluster,
            distance,
            ratio,
        }
    }

    /// Nearest centroid of a standardized vector and the squared distance to it.
    pub fn nearest(&self, z: &[f64]) -> (usize, f64) {
        let mut best = (0, f64::INFINITY);
        for (c, centroid) in self.centroids.iter().enumerate() {
            let d2: f64 = centroid.iter().zip(z).map(|(m, x)| (x - m.0) * (x - m.0)).sum();
            if d2 < best.1 {
                best = (c, d2);
            }
        }
        best
    }

    /// The `n` features that differ most from the nearest centroid, with their
    /// standardized difference (the "why" of a score).
    pub fn top_deviations(&self, raw: &[f64], cluster: usize, n: usize) -> Vec<(CompactString, Real)> {
        let z = self.standardize(raw);
        let mut diffs: Vec<(usize, f64)> = z
            .iter()
            .zip(&self.centroids[cluster])
            .map(|(x, m)| x - m.0)
            .enumerate()
            .collect();
        diffs.sort_by(|a, b| b.1.abs().total_cmp(&a.1.abs()).then(a.0.cmp(&b.0)));
        diffs
            .into_iter()
            .take(n)
            .map(|(i, d)| (CompactString::from(format!("z:{}", self.features[i])), Real(d)))
            .collect()
    }

    /// Maps vectors in `names` order into this model's feature order (None when they are the
    /// same). Features the model has but `names` lacks read as the training mean.
    pub fn mapping(&self, names: &[String]) -> Option<Vec<Option<usize>>> {
        if names == self.features.as_slice() {
            return None;
        }
        Some(
            self.features
                .iter()
                .map(|f| names.iter().position(|n| n == f))
                .collect(),
        )
    }

    /// Reorders a vector given in another feature order (see [`Model::mapping`]).
    pub fn remap(&self, mapping: &[Option<usize>], v: &[f64]) -> Vec<f64> {
        mapping
            .iter()
            .enumerate()
            .map(|(i, m)| match m {
                Some(j) => v[*j],
                None => self.params.transform.invert(self.mean[i].0),
            })
            .collect()
    }

    /// A one-line summary for listings and logs.
    pub fn summary(&self) -> String {
        format!(
            "v{} k={} devices={} inertia={:.4} silhouette={:.3} as_of_ms={} trained in {:.0} ms",
            self.version,
            self.centroids.len(),
            self.metrics.devices,
            self.metrics.inertia.0,
            self.metrics.silhouette.0,
            self.trained_at.as_of_ms,
            self.metrics.training_ms.0
        )
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A trained, registered version and how logging it to MLflow went (None: no tracking URI).
pub struct Registered {
    pub model: Model,
    pub mlflow: Option<Result<mlflow::LoggedRun, ModelError>>,
}

/// Trains on `set`, registers the version in `config.registry` (active when `promote`) and
/// logs it to MLflow when `config.mlflow_tracking_uri` is set — what both scheduled and
/// on-request retraining do. A failed MLflow log is reported, not an error: the model stands.
pub fn train_and_register(set: &TrainingSet, config: &ModelConfig, promote: bool) -> Result<Registered, ModelError> {
    let model = train(set, config)?;
    let model = Registry::new(&config.registry).register(model, promote)?;
    tracing::info!(model = %model.summary(), promote, "registered model");
    let mlflow = config.mlflow_tracking_uri.as_ref().map(|uri| {
        let logged = mlflow::Mlflow::new(uri).log_training(&config.mlflow_experiment, &model);
        if let Err(e) = &logged {
            tracing::warn!(error = %e, "could not log the training run to MLflow");
        }
        logged
    });
    Ok(Registered { model, mlflow })
}
