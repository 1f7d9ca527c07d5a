//! `vigil eval`: precision, recall, F1 and median time-to-detect per detector and per
//! incident flavour, from a run's `anomalies.jsonl` against `vigil generate --labels`.

use std::io::BufReader;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use vigil::config::DurationMs;
use vigil::eval::{evaluate, read_episodes};
use vigil::generate::read_labels;

use super::UsageError;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Labels written by `vigil generate --labels`.
    #[arg(long)]
    pub labels: PathBuf,
    /// `anomalies.jsonl` of a run.
    #[arg(long)]
    pub anomalies: PathBuf,
    /// An episode still matches a label this long after the label's end.
    #[arg(long, default_value = "5m")]
    pub grace: String,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    let grace = DurationMs::from_text(&args.grace).map_err(|m| UsageError(format!("--grace: {m}")))?;
    let open = |p: &PathBuf| {
        std::fs::File::open(p)
            .map(BufReader::new)
            .map_err(|e| UsageError(format!("cannot read {}: {e}", p.display())))
    };
    let labels =
        read_labels(open(&args.labels)?).with_context(|| format!("reading labels {}", args.labels.display()))?;
    let episodes = read_episodes(open(&args.anomalies)?)
        .with_context(|| format!("reading anomalies {}", args.anomalies.display()))?;
    // What each detector targets, as it declares it in its own file.
    let detectors: Vec<(&str, Option<vigil::detect::Threat>)> = vigil::detect::registry()
        .iter()
        .map(|d| (d.name(), d.threat()))
        .collect();
    let report = evaluate(&labels, &episodes, grace.0 as i64, &detectors);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        println!(
            "{} labels, {} episodes, grace {}\n",
            labels.len(),
            episodes.len(),
            args.grace
        );
        print!("{}", report.table());
    }
    Ok(())
}
