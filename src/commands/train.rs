//! `vigil train`: trains a k-means model over a feature snapshot file, registers it, prints
//! its metrics, and logs the run to MLflow when a tracking URI is given; or, with
//! `--server`, asks a running engine to retrain from its live feature store
//! (`POST /models/retrain`).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use vigil::features::FeatureLayout;
use vigil::model::mlflow::Mlflow;
use vigil::model::snapshot::read_snapshot;
use vigil::model::{train, KChoice, Registry};

use super::access::AccessArgs;
use super::{load_config, UsageError};

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// A feature snapshot: `OUT/features.jsonl` or `OUT/snapshots/features-<ms>.jsonl` from
    /// `vigil run`.
    #[arg(long, required_unless_present = "server", conflicts_with = "server")]
    pub features: Option<PathBuf>,
    /// Retrain inside a running engine instead (its query server, e.g. 127.0.0.1:7070): it
    /// trains on every device's features at its current frontier with its own `[model]`
    /// config, registers the version in its registry and logs to its MLflow.
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["k", "registry", "mlflow"])]
    pub server: Option<String>,
    /// Config file (TOML): `[model]` and the `[windows]` the snapshot was written with.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Clusters: a number or "auto" (default: `model.k`).
    #[arg(short, long)]
    pub k: Option<String>,
    /// Registry folder (default: `model.registry`).
    #[arg(long)]
    pub registry: Option<PathBuf>,
    /// Register without making it the active version.
    #[arg(long)]
    pub no_promote: bool,
    /// MLflow tracking server, e.g. http://127.0.0.1:15000 (default: `model.mlflow_tracking_uri`).
    #[arg(long)]
    pub mlflow: Option<String>,
    /// Print the model as JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// With --server: its token and CA file.
    #[command(flatten)]
    pub access: AccessArgs,
}

pub fn train_cmd(args: TrainArgs) -> anyhow::Result<()> {
    if let Some(addr) = &args.server {
        return train_on_server(addr, &args.access, args.no_promote, args.json);
    }
    let mut config = load_config(args.config.as_deref())?;
    if let Some(k) = &args.k {
        config.model.k = match k.as_str() {
            "auto" => KChoice::Auto,
            n => KChoice::Fixed(
                n.parse()
                    .ok()
                    .filter(|k| *k >= 2)
                    .ok_or_else(|| UsageError(format!("--k `{n}`: a number >= 2 or \"auto\"")))?,
            ),
        };
    }
    if let Some(r) = args.registry {
        config.model.registry = r;
    }
    if let Some(uri) = args.mlflow {
        config.model.mlflow_tracking_uri = Some(uri);
    }
    let layout = FeatureLayout::new(&config);
    let features = args
        .features
        .as_deref()
        .expect("clap requires --features without --server");
    let set = read_snapshot(features, layout.names(), config.tick_ms()).map_err(|e| UsageError(e.to_string()))?;
    eprintln!(
        "training on {} devices × {} features as of {} ms",
        set.rows.len(),
        set.features.len(),
        set.frontier.as_of_ms
    );
    let model = train(&set, &config.model).context("training")?;
    let registry = Registry::new(&config.model.registry);
    let model = registry
        .register(model, !args.no_promote)
        .context("registering the model")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&model)?);
    } else {
        println!("{}", model.summary());
        println!("cluster sizes: {:?}", model.metrics.cluster_sizes);
        if !model.metrics.k_candidates.is_empty() {
            let c: Vec<String> = model
                .metrics
                .k_candidates
                .iter()
                .map(|(k, s)| format!("k={k}: {:.3}", s.0))
                .collect();
            println!("silhouette by k: {}", c.join(", "));
        }
        println!(
            "registered as version {} in {}{}",
            model.version,
            registry.dir().display(),
            if args.no_promote { "" } else { " (active)" }
        );
    }
    if let Some(uri) = &config.model.mlflow_tracking_uri {
        let run = Mlflow::new(uri)
            .log_training(&config.model.mlflow_experiment, &model)
            .context("logging to MLflow")?;
        eprintln!(
            "logged to MLflow {uri}: experiment {} run {}",
            run.experiment_id, run.run_id
        );
    }
    Ok(())
}

/// `vigil train --server ADDR`: `POST /models/retrain` and print what the engine trained.
fn train_on_server(addr: &str, access: &AccessArgs, no_promote: bool, json: bool) -> anyhow::Result<()> {
    let path = format!("/models/retrain?promote={}", !no_promote);
    eprintln!("asking the engine at {addr} to retrain from its live feature store");
    let response = access
        .client(addr, vigil::query::server::RETRAIN_TIMEOUT)?
        .post(&path)?;
    let body = response.json();
    if response.status != 201 {
        let message = body["error"].as_str().map_or(response.body.clone(), str::to_string);
        anyhow::bail!("the engine at {addr} did not retrain ({}): {message}", response.status);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(());
    }
    println!("{}", body["summary"].as_str().unwrap_or_default());
    println!("cluster sizes: {}", body["metrics"]["cluster_sizes"]);
    println!(
        "registered as version {} in {}{}",
        body["version"],
        body["registry"].as_str().unwrap_or_default(),
        if body["active"] == true { " (active)" } else { "" }
    );
    if let Some(run) = body["mlflow"]["run_id"].as_str() {
        eprintln!("logged to MLflow: run {run}");
    } else if let Some(e) = body["mlflow"]["error"].as_str() {
        eprintln!("not logged to MLflow: {e}");
    }
    Ok(())
}
