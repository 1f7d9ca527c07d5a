//! Training: standardize a point-in-time snapshot of feature vectors and fit k-means
//! (linfa-clustering), then derive what scoring needs (kept centroids, per-cluster spread).
//!
//! Invariants: the result depends only on the training set and the parameters (rows are
//! sorted by device; the sample and k-means use a seeded Xoshiro256+; linfa's parallel
//! assignment step is per row, so deterministic). Steps, in order:
//! 1. transform (`log1p` by default) and z-score every feature (a constant feature gets
//!    std 1, so it contributes 0);
//! 2. choose k: the configured one, or with `k = "auto"` the k in `2..=k_max` with the best
//!    mean *simplified silhouette* `(b − a) / max(a, b)` (a: distance to the nearest centroid,
//!    b: to the second nearest) on a seeded sample of `sample` devices, tiny clusters dropped
//!    as in step 4 (ties: smaller k);
//! 3. fit k-means (k-means++ init, `n_runs` restarts, lowest inertia wins) — with more than
//!    `fit_sample` devices on a seeded sample of that size, then Lloyd iterations over every
//!    device from the sample's centroids (same result quality, a fraction of the time);
//! 4. drop clusters with fewer than `min_cluster_fraction` of the devices (so a handful of
//!    outliers cannot claim a centroid of their own and score 0), reassign their members;
//! 5. spread of a cluster = the `spread_quantile` of its members' distances, floored at
//!    a tenth of the median spread (and 1e-6) so a tight cluster does not score everything 1.

use std::time::Instant;

use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::{KMeans, KMeansInit};
use ndarray::Array2;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;

use super::{now_ms, Frontier, KChoice, Model, ModelConfig, ModelError, ModelMetrics, ModelParams};
use crate::detect::Real;
use crate::event::DeviceId;

/// A point-in-time snapshot of feature vectors: what a model is trained on.
#[derive(Clone, Debug)]
pub struct TrainingSet {
    pub features: Vec<String>,
    /// `(device, raw vector in `features` order)`, sorted by device.
    pub rows: Vec<(DeviceId, Vec<f64>)>,
    pub frontier: Frontier,
}

impl TrainingSet {
    /// A training set; sorts the rows by device (the order the fit sees).
    pub fn new(features: Vec<String>, mut rows: Vec<(DeviceId, Vec<f64>)>, frontier: Frontier) -> Self {
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        TrainingSet {
            features,
            rows,
            frontier,
        }
    }
}

fn err(m: impl Into<String>) -> ModelError {
    ModelError::Training(m.into())
}

/// Trains a model (version 0: the registry numbers it).
pub fn train(set: &TrainingSet, config: &ModelConfig) -> Result<Model, ModelError> {
    let started = Instant::now();
    let n = set.rows.len();
    let d = set.features.len();
    if n < 2 {
        return Err(err(format!("{n} devices in the snapshot; at least 2 are needed")));
    }
    if d == 0 {
        return Err(err("no features"));
    }
    if let Some((dev, v)) = set.rows.iter().find(|(_, v)| v.len() != d) {
        return Err(err(format!("device {dev}: {} values for {d} features", v.len())));
    }
    let transform = config.transform;
    // 1. transform and standardize.
    let mut x = Array2::<f64>::zeros((n, d));
    for (i, (_, v)) in set.rows.iter().enumerate() {
        for (j, &value) in v.iter().enumerate() {
            x[[i, j]] = transform.apply(if value.is_finite() { value } else { 0.0 });
        }
    }
    let mut mean = vec![0.0; d];
    let mut std = vec![0.0; d];
    for j in 0..d {
        let col = x.column(j);
        let m = col.sum() / n as f64;
        let var = col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n as f64;
        mean[j] = m;
        std[j] = if var.sqrt() > 1e-12 { var.sqrt() } else { 1.0 };
    }
    for mut row in x.rows_mut() {
        for j in 0..d {
            row[j] = (row[j] - mean[j]) / std[j];
        }
    }
    // 2. the sample and k.
    let sample = sample_rows(&x, config.sample, config.seed);
    let mut k_candidates = Vec::new();
    let (k, k_auto) = match config.k {
        KChoice::Fixed(k) => ((k as usize).min(n), false),
        KChoice::Auto => {
            let top = (config.k_max as usize).min(sample.nrows().saturating_sub(1)).max(2);
            let mut best = (2usize, f64::NEG_INFINITY);
            for k in 2..=top {
                let fitted = rows_of(&fit(&sample, k, config)?);
                let kept = keep_clusters(&sample, &fitted, config.min_cluster_fraction);
                let s = silhouette(&sample, &kept);
                k_candidates.push((k as u64, Real(s)));
                if s > best.1 + 1e-12 {
                    best = (k, s);
                }
            }
            (best.0, true)
        }
    };
    // 3. fit (on a sample of `fit_sample` devices first when there are more, then Lloyd
    //    iterations on everything from those centroids); 4. drop tiny clusters.
    let fitted = if config.fit_sample > 0 && n > config.fit_sample {
        let start = fit(&sample_rows(&x, config.fit_sample, config.seed ^ 1), k, config)?;
        rows_of(&refine(&x, start, config)?)
    } else {
        rows_of(&fit(&x, k, config)?)
    };
    let centroids = keep_clusters(&x, &fitted, config.min_cluster_fraction);
    let dropped = (fitted.len() - centroids.len()) as u64;
    // 5. spreads, inertia, sizes over the kept centroids.
    let (assignment, cluster_sizes) = assign(&x, &centroids);
    let mut dists: Vec<Vec<f64>> = vec![Vec::new(); centroids.len()];
    let mut inertia = 0.0;
    for (i, &(c, d2)) in assignment.iter().enumerate() {
        let _ = i;
        inertia += d2;
        dists[c].push(d2.sqrt());
    }
    let raw_spread: Vec<f64> = dists.iter_mut().map(|v| quantile(v, config.spread_quantile)).collect();
    let mut sorted = raw_spread.clone();
    sorted.sort_by(f64::total_cmp);
    let floor = (sorted[sorted.len() / 2] / 10.0).max(1e-6);
    let spread: Vec<Real> = raw_spread.iter().map(|&s| Real(s.max(floor))).collect();
    let silhouette_value = silhouette(&sample, &centroids);
    let training_ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        devices = n,
        features = d,
        k,
        kept = centroids.len(),
        inertia = inertia / n as f64,
        ms = training_ms as u64,
        "k-means trained"
    );
    Ok(Model {
        version: 0,
        trained_at: set.frontier.clone(),
        created_ms: now_ms(),
        params: ModelParams {
            k: k as u64,
            k_auto,
            seed: config.seed,
            max_iterations: config.max_iterations,
            tolerance: Real(config.tolerance),
            n_runs: config.n_runs,
            fit_sample: if config.fit_sample > 0 && n > config.fit_sample {
                config.fit_sample as u64
            } else {
                0
            },
            transform,
            min_cluster_fraction: Real(config.min_cluster_fraction),
            spread_quantile: Real(config.spread_quantile),
        },
        features: set.features.clone(),
        mean: mean.into_iter().map(Real).collect(),
        std: std.into_iter().map(Real).collect(),
        centroids: centroids
            .into_iter()
            .map(|c| c.into_iter().map(Real).collect())
            .collect(),
        spread,
        metrics: ModelMetrics {
            devices: n as u64,
            inertia: Real(inertia / n as f64),
            cluster_sizes,
            dropped_clusters: dropped,
            silhouette: Real(silhouette_value),
            k_candidates,
            training_ms: Real(training_ms),
        },
    })
}

/// k-means with linfa-clustering; returns the centroids `(k, d)`.
fn fit(x: &Array2<f64>, k: usize, config: &ModelConfig) -> Result<Array2<f64>, ModelError> {
    let dataset = DatasetBase::from(x.clone());
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(config.seed))
        .max_n_iterations(config.max_iterations)
        .tolerance(config.tolerance)
        .n_runs(config.n_runs as usize)
        .fit(&dataset)
        .map_err(|e| err(format!("k-means with k={k}: {e}")))?;
    Ok(model.centroids().clone())
}

/// The centroids with at least `min_fraction` of the rows (at least 1) nearest to them;
/// the largest one when none has.
fn keep_clusters(x: &Array2<f64>, fitted: &[Vec<f64>], min_fraction: f64) -> Vec<Vec<f64>> {
    let sizes = assign(x, fitted).1;
    let min_size = ((min_fraction * x.nrows() as f64).ceil() as u64).max(1);
    let mut kept: Vec<Vec<f64>> = fitted
        .iter()
        .zip(&sizes)
        .filter(|(_, &s)| s >= min_size)
        .map(|(c, _)| c.clone())
        .collect();
    if kept.is_empty() {
        let largest = (0..sizes.len())
            .max_by_key(|&c| (sizes[c], std::cmp::Reverse(c)))
            .unwrap_or(0);
        kept.push(fitted[largest].clone());
    }
    kept
}

/// k-means on every row from given centroids (one run).
fn refine(x: &Array2<f64>, start: Array2<f64>, config: &ModelConfig) -> Result<Array2<f64>, ModelError> {
    let k = start.nrows();
    let dataset = DatasetBase::from(x.clone());
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(config.seed))
        .init_method(KMeansInit::Precomputed(start))
        .max_n_iterations(config.max_iterations)
        .tolerance(config.tolerance)
        .n_runs(1)
        .fit(&dataset)
        .map_err(|e| err(format!("k-means refinement with k={k}: {e}")))?;
    Ok(model.centroids().clone())
}

fn rows_of(a: &Array2<f64>) -> Vec<Vec<f64>> {
    a.rows().into_iter().map(|r| r.to_vec()).collect()
}

/// Nearest centroid and squared distance of every row; members per centroid.
fn assign(x: &Array2<f64>, centroids: &[Vec<f64>]) -> (Vec<(usize, f64)>, Vec<u64>) {
    let mut sizes = vec![0u64; centroids.len()];
    let out = x
        .rows()
        .into_iter()
        .map(|row| {
            let mut best = (0, f64::INFINITY);
            for (c, m) in centroids.iter().enumerate() {
                let d2: f64 = row.iter().zip(m).map(|(a, b)| (a - b) * (a - b)).sum();
                if d2 < best.1 {
                    best = (c, d2);
                }
            }
            sizes[best.0] += 1;
            best
        })
        .collect();
    (out, sizes)
}

/// Mean simplified silhouette: `(b − a) / max(a, b)` per row, a and b the distances to the
/// nearest and second-nearest centroid (1 cluster: 0).
fn silhouette(x: &Array2<f64>, centroids: &[Vec<f64>]) -> f64 {
    if centroids.len() < 2 || x.nrows() == 0 {
        return 0.0;
    }
    let mut total = 0.0;
    for row in x.rows() {
        let (mut a, mut b) = (f64::INFINITY, f64::INFINITY);
        for m in centroids {
            let d = row.iter().zip(m).map(|(p, q)| (p - q) * (p - q)).sum::<f64>().sqrt();
            if d < a {
                b = a;
                a = d;
            } else if d < b {
                b = d;
            }
        }
        let m = a.max(b);
        total += if m > 0.0 { (b - a) / m } else { 0.0 };
    }
    total / x.nrows() as f64
}

/// Up to `size` rows, chosen with a seeded partial shuffle, kept in their original order.
fn sample_rows(x: &Array2<f64>, size: usize, seed: u64) -> Array2<f64> {
    let n = x.nrows();
    if n <= size {
        return x.clone();
    }
    let mut rng = Xoshiro256Plus::seed_from_u64(seed ^ 0x5eed);
    let mut idx: Vec<usize> = (0..n).collect();
    for i in 0..size {
        let j = i + (rng.next_u64() % (n - i) as u64) as usize;
        idx.swap(i, j);
    }
    let mut chosen = idx[..size].to_vec();
    chosen.sort_unstable();
    x.select(ndarray::Axis(0), &chosen)
}

/// The q-quantile (nearest rank) of the values (0 when there are none); sorts in place.
fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three planted blobs in 4 dimensions plus one far outlier.
    pub fn planted(n_per: usize, seed: u64) -> (TrainingSet, Vec<[f64; 4]>) {
        let centers = vec![[0.0, 0.0, 0.0, 0.0], [10.0, 10.0, 0.0, 0.0], [0.0, 10.0, 10.0, 10.0]];
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let mut unit = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
        let mut rows = Vec::new();
        for (c, center) in centers.iter().enumerate() {
            for i in 0..n_per {
                let v: Vec<f64> = center.iter().map(|m| m + unit()).collect();
                rows.push((DeviceId::from(format!("c{c}-{i:04}")), v));
            }
        }
        rows.push((DeviceId::from("outlier"), vec![40.0, -30.0, 25.0, 60.0]));
        let names = (0..4).map(|i| format!("f{i}")).collect();
        (
            TrainingSet::new(
                names,
                rows,
                Frontier {
                    tick: Some(9),
                    as_of_ms: 9_999,
                },
            ),
            centers,
        )
    }

    fn linear() -> ModelConfig {
        ModelConfig {
            k: KChoice::Fixed(3),
            transform: super::super::Transform::None,
            ..ModelConfig::default()
        }
    }

    #[test]
    fn recovers_planted_clusters() {
        let (set, centers) = planted(300, 7);
        let model = train(&set, &linear()).unwrap();
        assert_eq!(model.centroids.len(), 3);
        let mut sizes = model.metrics.cluster_sizes.clone();
        sizes.sort();
        assert_eq!(sizes[0] + sizes[1] + sizes[2], 901);
        assert!(sizes[0] >= 300 && sizes[2] <= 301, "{sizes:?}");
        // Every planted center is scored in-cluster and close to a centroid; members of one
        // blob share one cluster, different blobs get different clusters.
        let mut seen = Vec::new();
        for (c, center) in centers.iter().enumerate() {
            let s = model.score(center);
            assert!(s.score < 0.2, "center {c}: {s:?}");
            for (dev, v) in set.rows.iter().filter(|(d, _)| d.starts_with(&format!("c{c}-"))) {
                assert_eq!(model.score(v).cluster, s.cluster, "{dev}");
            }
            seen.push(s.cluster);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn the_far_device_gets_the_top_score() {
        let (set, _) = planted(300, 11);
        for config in [
            linear(),
            ModelConfig::default(),
            ModelConfig {
                k: KChoice::Auto,
                ..ModelConfig::default()
            },
        ] {
            let model = train(&set, &config).unwrap();
            let mut scored: Vec<(f64, &str)> = set
                .rows
                .iter()
                .map(|(d, v)| (model.score(v).score, d.as_str()))
                .collect();
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            assert_eq!(scored[0].1, "outlier", "{:?} {:?}", config.k, &scored[..3]);
            assert!(scored[0].0 > 0.99, "{scored:?}");
            assert!(scored[1].0 < scored[0].0);
        }
    }

    #[test]
    fn auto_k_finds_three() {
        let (set, _) = planted(200, 3);
        let config = ModelConfig {
            k: KChoice::Auto,
            transform: super::super::Transform::None,
            ..ModelConfig::default()
        };
        let model = train(&set, &config).unwrap();
        assert!(model.params.k_auto);
        // k = 4 may win by giving the outlier a cluster, which is then dropped.
        assert!([3, 4].contains(&model.params.k), "{:?}", model.metrics.k_candidates);
        assert_eq!(model.centroids.len(), 3, "{:?}", model.metrics);
    }

    #[test]
    fn deterministic_for_a_seed() {
        let (set, _) = planted(100, 5);
        let mut a = train(&set, &ModelConfig::default()).unwrap();
        let mut b = train(&set, &ModelConfig::default()).unwrap();
        for m in [&mut a, &mut b] {
            m.created_ms = 0;
            m.metrics.training_ms = Real(0.0);
        }
        assert_eq!(a, b);
    }

    #[test]
    fn score_mapping() {
        use super::super::score_of_ratio;
        assert_eq!(score_of_ratio(0.0), 0.0);
        assert!((score_of_ratio(1.0) - 0.3935).abs() < 1e-3);
        assert!(score_of_ratio(3.0) > 0.98);
        assert_eq!(score_of_ratio(f64::INFINITY), 1.0);
        assert!(score_of_ratio(1e300) <= 1.0);
    }
}
