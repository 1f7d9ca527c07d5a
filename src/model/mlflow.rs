//! Logging a training run to an MLflow tracking server through its REST API (2.0):
//! experiment by name (created when missing), a run with tags (training frontier, model
//! version), params, metrics, the model file as an artifact, then the run marked FINISHED.
//!
//! Invariants: plain blocking HTTP with a timeout (no retries: a failure is returned, and the
//! engine logs it and goes on — a model never waits for MLflow); artifacts are uploaded
//! through the tracking server's artifact proxy (`mlflow server --serve-artifacts`, run
//! artifact URIs of the form `mlflow-artifacts:/…`), the only way that needs no shared disk.

use std::time::Duration;

use serde_json::{json, Value};

use super::{Model, ModelError};

/// A tracking server.
pub struct Mlflow {
    base: String,
    agent: ureq::Agent,
}

/// What a logged run is known by.
#[derive(Clone, Debug, PartialEq)]
pub struct LoggedRun {
    pub experiment_id: String,
    pub run_id: String,
    pub artifact_uri: String,
}

impl Mlflow {
    /// A client for `uri` (`http://127.0.0.1:15000`).
    pub fn new(uri: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .new_agent();
        Mlflow {
            base: uri.trim_end_matches('/').to_string(),
            agent,
        }
    }

    fn fail(&self, message: impl Into<String>) -> ModelError {
        ModelError::Mlflow {
            uri: self.base.clone(),
            message: message.into(),
        }
    }

    fn answer(
        &self,
        what: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Value), ModelError> {
        let resp = result.map_err(|e| self.fail(format!("{what}: {e}")))?;
        let status = resp.status().as_u16();
        let text = resp
            .into_body()
            .read_to_string()
            .map_err(|e| self.fail(format!("{what}: reading the answer: {e}")))?;
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, value))
    }

    /// GET `/api/2.0/mlflow/{path}?{query}`: (status, JSON).
    pub fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<(u16, Value), ModelError> {
        let mut req = self.agent.get(format!("{}/api/2.0/mlflow/{path}", self.base));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        self.answer(path, req.call())
    }

    /// POST JSON to `/api/2.0/mlflow/{path}`, expecting 200.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ModelError> {
        let result = self
            .agent
            .post(format!("{}/api/2.0/mlflow/{path}", self.base))
            .header("Content-Type", "application/json")
            .send(body.to_string());
        match self.answer(path, result)? {
            (200, v) => Ok(v),
            (status, v) => Err(self.fail(format!("{path}: HTTP {status}: {v}"))),
        }
    }

    /// The id of an experiment, created when missing.
    pub fn experiment_id(&self, name: &str) -> Result<String, ModelError> {
        let (status, v) = self.get("experiments/get-by-name", &[("experiment_name", name)])?;
        if status == 200 {
            if let Some(id) = v["experiment"]["experiment_id"].as_str() {
                return Ok(id.to_string());
            }
        } else if status != 404 {
            return Err(self.fail(format!("experiments/get-by-name: HTTP {status}: {v}")));
        }
        let v = self.post("experiments/create", &json!({ "name": name }))?;
        v["experiment_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| self.fail(format!("experiments/create: no experiment_id in {v}")))
    }

    /// Uploads bytes as a run artifact (through the server's artifact proxy).
    pub fn upload_artifact(&self, artifact_uri: &str, name: &str, bytes: &[u8]) -> Result<(), ModelError> {
        let rest = artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .ok_or_else(|| {
                self.fail(format!(
                    "run artifact URI `{artifact_uri}` is not served by the tracking server; start it with --serve-artifacts"
                ))
            })?
            .trim_start_matches('/');
        // `mlflow-artifacts://host:port/path` names a server; keep only the path.
        let path = if artifact_uri.starts_with("mlflow-artifacts://") {
            rest.split_once('/').map(|(_, p)| p).unwrap_or("")
        } else {
            rest
        };
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{path}/{name}", self.base);
        let result = self
            .agent
            .put(&url)
            .header("Content-Type", "application/octet-stream")
            .send(bytes);
        match self.answer("artifact upload", result)? {
            (200, _) => Ok(()),
            (status, v) => Err(self.fail(format!("artifact upload to {url}: HTTP {status}: {v}"))),
        }
    }

    /// Logs one training run of `model` (already registered, so it has its version).
    pub fn log_training(&self, experiment: &str, model: &Model) -> Result<LoggedRun, ModelError> {
        let experiment_id = self.experiment_id(experiment)?;
        let now = super::now_ms();
        let start = now - model.metrics.training_ms.0 as i64;
        let tick = model.trained_at.tick.map(|t| t.to_string()).unwrap_or_default();
        let tags = json!([
            { "key": "mlflow.runName", "value": format!("kmeans-v{}", model.version) },
            { "key": "mlflow.source.name", "value": "vigil" },
            { "key": "vigil.model_version", "value": model.version.to_string() },
            { "key": "vigil.training_frontier_ms", "value": model.trained_at.as_of_ms.to_string() },
            { "key": "vigil.training_frontier_tick", "value": tick },
        ]);
        let v = self.post(
            "runs/create",
            &json!({
                "experiment_id": experiment_id,
                "run_name": format!("kmeans-v{}", model.version),
                "start_time": start,
                "tags": tags,
            }),
        )?;
        let info = &v["run"]["info"];
        let run_id = info["run_id"]
            .as_str()
            .ok_or_else(|| self.fail(format!("runs/create: no run_id in {v}")))?
            .to_string();
        let artifact_uri = info["artifact_uri"].as_str().unwrap_or_default().to_string();
        let p = &model.params;
        let params: Vec<(String, String)> = vec![
            ("algorithm".into(), "kmeans (linfa-clustering)".into()),
            ("k".into(), p.k.to_string()),
            ("k_auto".into(), p.k_auto.to_string()),
            ("seed".into(), p.seed.to_string()),
            ("max_iterations".into(), p.max_iterations.to_string()),
            ("tolerance".into(), p.tolerance.0.to_string()),
            ("n_runs".into(), p.n_runs.to_string()),
            ("fit_sample".into(), p.fit_sample.to_string()),
            ("transform".into(), format!("{:?}", p.transform).to_lowercase()),
            ("min_cluster_fraction".into(), p.min_cluster_fraction.0.to_string()),
            ("spread_quantile".into(), p.spread_quantile.0.to_string()),
            ("features".into(), model.features.len().to_string()),
            ("model_version".into(), model.version.to_string()),
            ("training_frontier_ms".into(), model.trained_at.as_of_ms.to_string()),
        ];
        let m = &model.metrics;
        let mut metrics: Vec<(String, f64)> = vec![
            ("inertia".into(), m.inertia.0),
            ("silhouette".into(), m.silhouette.0),
            ("training_ms".into(), m.training_ms.0),
            ("devices".into(), m.devices as f64),
            ("clusters".into(), model.centroids.len() as f64),
            ("dropped_clusters".into(), m.dropped_clusters as f64),
        ];
        for (i, size) in m.cluster_sizes.iter().enumerate() {
            metrics.push((format!("cluster_size_{i}"), *size as f64));
        }
        for (k, s) in &m.k_candidates {
            metrics.push((format!("silhouette_k{k}"), s.0));
        }
        self.post(
            "runs/log-batch",
            &json!({
                "run_id": run_id,
                "params": params.iter().map(|(k, v)| json!({"key": k, "value": v})).collect::<Vec<_>>(),
                "metrics": metrics
                    .iter()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(k, v)| json!({"key": k, "value": v, "timestamp": now, "step": 0}))
                    .collect::<Vec<_>>(),
            }),
        )?;
        let file = serde_json::to_vec_pretty(model).map_err(|e| self.fail(e.to_string()))?;
        let uploaded = self.upload_artifact(&artifact_uri, &format!("model-v{}.json", model.version), &file);
        let status = if uploaded.is_ok() { "FINISHED" } else { "FAILED" };
        self.post(
            "runs/update",
            &json!({ "run_id": run_id, "status": status, "end_time": super::now_ms() }),
        )?;
        uploaded?;
        tracing::info!(run_id, experiment_id, version = model.version, "logged to MLflow");
        Ok(LoggedRun {
            experiment_id,
            run_id,
            artifact_uri,
        })
    }
}
