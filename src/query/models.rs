//! The model endpoints: `GET /models`, `GET /models/{version}` (read from the registry on
//! disk) and `POST /models/retrain` (trained from the live feature store).
//!
//! How a retraining request travels: the handler submits [`Query::Retrain`](super::Query)
//! like a listing; every worker reads its shard of the `features` arrangement at the
//! answer's tick `T` and sends every device's feature vector to the origin; the origin hands
//! the union to a background thread ([`retrain_in_background`]), which trains exactly as a
//! scheduled retraining does (same [`TrainingSet`], frontier `T`), registers the version,
//! promotes it when asked, logs it to MLflow when configured, and answers. A running
//! dataflow picks a promotion up within a second (worker 0 polls the registry) and re-scores
//! every device against it; after a replay has finished, the version is registered for the
//! next run.
//!
//! Invariants: training never runs on a worker thread; the model's `trained_at` is the tick
//! the shards were read at, so it was trained on exactly the features `GET /devices/{id}`
//! answered with at that `as_of_tick`; one retraining per process at a time (a second
//! request while one trains gets a 409).

use serde_json::{json, Value};

use super::{Answer, AnswerTo, Part};
use crate::config::Config;
use crate::features::FeatureLayout;
use crate::model::{train_and_register, Frontier, Model, ModelConfig, ModelError, Registered, Registry, TrainingSet};

/// What a retraining needs, shared by the origin's trainer threads.
#[derive(Clone, Debug)]
pub struct RetrainSpec {
    config: ModelConfig,
    features: Vec<String>,
    tick_ms: u64,
}

impl RetrainSpec {
    pub fn new(config: &Config, layout: &FeatureLayout) -> Self {
        RetrainSpec {
            config: config.model.clone(),
            features: layout.names().to_vec(),
            tick_ms: config.tick_ms(),
        }
    }

    /// Trains on the shards read at `tick`, registers (and maybe promotes) the version.
    fn run(&self, tick: u64, promote: bool, parts: Vec<Part>) -> Answer {
        let rows: Vec<_> = parts
            .into_iter()
            .flat_map(|p| match p {
                Part::Shard(rows) => rows,
                _ => Vec::new(),
            })
            .collect();
        let as_of_ms = ((tick + 1) * self.tick_ms) as i64 - 1;
        let set = TrainingSet::new(
            self.features.clone(),
            rows,
            Frontier {
                tick: Some(tick),
                as_of_ms,
            },
        );
        let devices = set.rows.len();
        let Registered { model, mlflow } = match train_and_register(&set, &self.config, promote) {
            Ok(r) => r,
            Err(e @ ModelError::Training(_)) => {
                return Answer::error(
                    422,
                    &format!("cannot train on the {devices} devices known at as_of_ms {as_of_ms}: {e}"),
                    &[("as_of_tick", tick.into()), ("as_of_ms", as_of_ms.into())],
                )
            }
            Err(e) => return Answer::error(500, &format!("trained, but could not register the model: {e}"), &[]),
        };
        let registry = Registry::new(&self.config.registry);
        let mut body = model_summary(&model, registry.index().ok().and_then(|i| i.active));
        if let Some(logged) = mlflow {
            body["mlflow"] = match logged {
                Ok(run) => json!({"run_id": run.run_id, "experiment_id": run.experiment_id}),
                Err(e) => json!({"error": e.to_string()}),
            };
        }
        body["promoted"] = promote.into();
        body["registry"] = registry.dir().display().to_string().into();
        Answer::json(201, &body)
    }
}

/// Trains on a thread of its own and sends the answer to the waiting handler.
pub fn retrain_in_background(
    spec: std::sync::Arc<RetrainSpec>,
    tick: u64,
    promote: bool,
    parts: Vec<Part>,
    reply: AnswerTo,
) {
    let spawned = std::thread::Builder::new().name("vigil-retrain".into()).spawn(move || {
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| spec.run(tick, promote, parts)))
            .unwrap_or_else(|_| Answer::error(500, "training failed unexpectedly; the engine goes on", &[]));
        reply.send(answer);
    });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a training thread");
    }
}

/// One version as listed by `GET /models`: everything but the centroids and the scaler.
pub fn model_summary(model: &Model, active: Option<u64>) -> Value {
    json!({
        "version": model.version,
        "active": active == Some(model.version),
        "created_ms": model.created_ms,
        "trained_at": {"tick": model.trained_at.tick, "as_of_ms": model.trained_at.as_of_ms},
        "k": model.centroids.len(),
        "features": model.features.len(),
        "params": model.params,
        "metrics": model.metrics,
        "summary": model.summary(),
    })
}

/// `GET /models`: every version in the registry, newest first, and the active one.
pub fn list(registry: &Registry) -> Answer {
    let read = || -> Result<Value, crate::model::ModelError> {
        let index = registry.index()?;
        let mut versions = registry.versions()?;
        versions.reverse();
        let mut list = Vec::new();
        for v in versions {
            list.push(model_summary(&registry.load(v)?, index.active));
        }
        Ok(json!({
            "registry": registry.dir().display().to_string(),
            "active": index.active,
            "promotions": index.history,
            "models": list,
        }))
    };
    match read() {
        Ok(body) => Answer::json(200, &body),
        Err(e) => Answer::error(500, &format!("reading the model registry: {e}"), &[]),
    }
}

/// `GET /models/{version}`: the whole model (scaler, centroids, spreads, metrics).
pub fn show(registry: &Registry, version: u64) -> Answer {
    match registry.versions() {
        Ok(v) if !v.contains(&version) => Answer::error(
            404,
            &format!(
                "no model version {version} in {} (see GET /models)",
                registry.dir().display()
            ),
            &[],
        ),
        Err(e) => Answer::error(500, &format!("reading the model registry: {e}"), &[]),
        Ok(_) => match registry.load(version) {
            Ok(m) => match serde_json::to_value(&m) {
                Ok(v) => Answer::json(200, &v),
                Err(e) => Answer::error(500, &e.to_string(), &[]),
            },
            Err(e) => Answer::error(500, &format!("reading the model registry: {e}"), &[]),
        },
    }
}
