//! `vigil run`: the main job over files, folders, stdin or the embedded sample.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use vigil::decode::Format;
use vigil::features::FeatureLayout;
use vigil::output::files::{self, FileSink};
use vigil::pipeline::{run as run_pipeline, RunSpec};
use vigil::source::file::InputSpec;

use super::{load_config, UsageError};

/// The sample the engine runs on when no input is given (the repository's fixture).
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("../../fixtures/events.csv");

#[derive(Args, Debug)]
pub struct RunArgs {
    /// A file, a folder of files (read in name order), or - for stdin. Default: the embedded
    /// sample (fixtures/events.csv).
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Input format: auto, csv, jsonl or zeek (default: from the config, else auto).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Output folder for windows.jsonl, features.jsonl, rejects.jsonl, summary.json.
    #[arg(short, long, default_value = "out")]
    pub out: PathBuf,
    /// Config file (TOML); see vigil.toml for every key and its default.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Worker threads in this process.
    #[arg(short, long, default_value_t = 1)]
    pub workers: usize,
    /// Progress display: auto (a bar on a terminal, log lines otherwise), always, never.
    #[arg(long, default_value = "auto")]
    pub progress: String,
    /// Also write per-event scores (`ts, device_id, detector, score`, JSON lines) of the
    /// detectors that score every event to this file.
    #[arg(long)]
    pub scores_out: Option<PathBuf>,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    vigil::detect::validate_config(&config).map_err(|e| UsageError(e.to_string()))?;
    let format_name = args.format.clone().unwrap_or_else(|| config.input.format.clone());
    let format = Format::parse(&format_name).map_err(UsageError)?;
    if args.workers == 0 {
        return Err(UsageError("--workers must be at least 1".into()).into());
    }
    let input = match &args.input {
        Some(path) => InputSpec::resolve(path).map_err(|e| UsageError(e.to_string()))?,
        None => {
            tracing::info!("no --input given: running on the embedded sample (fixtures/events.csv)");
            InputSpec::Memory {
                name: "embedded:fixtures/events.csv".into(),
                data: Arc::new(EMBEDDED_SAMPLE.to_vec()),
            }
        }
    };
    let progress = match args.progress.as_str() {
        // A bar on a terminal, log lines otherwise: `Progress` decides.
        "auto" => true,
        "always" => true,
        "never" => false,
        other => return Err(UsageError(format!("--progress `{other}`: use auto, always or never")).into()),
    };
    files::prepare(&args.out).with_context(|| format!("creating output folder {}", args.out.display()))?;
    let sinks = FileSink::factory(&args.out, config.tick_ms(), FeatureLayout::new(&config));
    let outcome = run_pipeline(RunSpec {
        config,
        input,
        format,
        workers: args.workers,
        sinks,
        progress,
    })?;
    let written = files::merge(&args.out).with_context(|| format!("merging outputs in {}", args.out.display()))?;
    let scores_file = args.out.join(files::SCORES_FILE);
    if let Some(target) = &args.scores_out {
        if scores_file.exists() {
            std::fs::rename(&scores_file, target)
                .or_else(|_| std::fs::copy(&scores_file, target).map(|_| ()))
                .with_context(|| format!("writing {}", target.display()))?;
        } else {
            std::fs::write(target, b"").with_context(|| format!("writing {}", target.display()))?;
        }
        eprintln!("wrote {} (per-event scores)", target.display());
    }
    let summary_path = args.out.join(files::SUMMARY_FILE);
    std::fs::write(&summary_path, serde_json::to_string_pretty(&outcome.summary)? + "\n")
        .with_context(|| format!("writing {}", summary_path.display()))?;
    eprintln!("{}", outcome.summary.human());
    for (path, lines) in written {
        eprintln!("wrote {path} ({lines} lines)");
    }
    eprintln!("wrote {}", summary_path.display());
    Ok(())
}
