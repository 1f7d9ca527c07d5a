//! `vigil bench-train`: retraining time for N devices and the cost of re-scoring every
//! device after a model change (synthetic device states; see `vigil::model::bench`).

use clap::Args;

use super::{load_config, UsageError};

#[derive(Args, Debug)]
pub struct BenchTrainArgs {
    /// Devices.
    #[arg(long, default_value_t = 100_000)]
    pub devices: usize,
    /// Clusters: a number or "auto" (default: `model.k`).
    #[arg(short, long)]
    pub k: Option<String>,
    /// Config file (TOML).
    #[arg(short, long)]
    pub config: Option<std::path::PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn bench_train(args: BenchTrainArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.config.as_deref())?;
    if args.devices < 10 {
        return Err(UsageError("--devices must be at least 10".into()).into());
    }
    if let Some(k) = &args.k {
        config.model.k = match k.as_str() {
            "auto" => vigil::model::KChoice::Auto,
            n => vigil::model::KChoice::Fixed(n.parse().map_err(|_| UsageError(format!("--k `{n}`")))?),
        };
    }
    let r = vigil::model::bench::run(args.devices, &config)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!("devices: {}  features: {}  k: {}", r.devices, r.features, r.k);
    println!("feature vectors:          {:>9.1} ms", r.vectors_ms);
    println!(
        "retraining (train):       {:>9.1} ms   (silhouette {:.3})",
        r.train_ms, r.silhouette
    );
    println!("first scoring, dataflow:  {:>9.1} ms", r.initial_score_ms);
    println!(
        "model change re-score:    {:>9.1} ms   ({} output updates, {:.2} µs/device)",
        r.model_change_ms,
        r.model_change_updates,
        r.model_change_ms * 1000.0 / r.devices as f64
    );
    println!(
        "1% state changes:         {:>9.1} ms   ({} output updates)",
        r.state_change_ms, r.state_change_updates
    );
    Ok(())
}
