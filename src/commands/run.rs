//! `vigil run`: the main job over files, folders, stdin or the embedded sample.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use vigil::cluster::ClusterSpec;
use vigil::decode::Format;
use vigil::features::FeatureLayout;
use vigil::output::files::{self, FileSink};
use vigil::pipeline::{run as run_pipeline, RunSpec};
use vigil::source::file::InputSpec;

use super::{load_config, UsageError};

/// The sample the engine runs on when no input is given (the repository's fixture).
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("../../fixtures/events.csv");

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (-h is the hostfile, as in timely).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
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
    /// Number of processes in the cluster (timely's -n).
    #[arg(short = 'n', long, default_value_t = 1)]
    pub processes: usize,
    /// This process's index, 0..n (timely's -p).
    #[arg(short = 'p', long, default_value_t = 0)]
    pub process: usize,
    /// Hostfile: one host:port per line, in process order (timely's -h). Without it, a
    /// multi-process cluster runs on 127.0.0.1:2101+i.
    #[arg(short = 'h', long)]
    pub hostfile: Option<PathBuf>,
    /// Seconds the processes of a cluster may take to connect to each other.
    #[arg(long, default_value_t = 60)]
    pub connect_timeout: u64,
    /// Progress display: auto (a bar on a terminal, log lines otherwise), always, never.
    #[arg(long, default_value = "auto")]
    pub progress: String,
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
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
        "auto" => true,
        "always" => true,
        "never" => false,
        other => return Err(UsageError(format!("--progress `{other}`: use auto, always or never")).into()),
    };
    let cluster = cluster_spec(&args)?;
    let leader = cluster.as_ref().is_none_or(|c| c.process == 0);
    if let Some(c) = &cluster {
        super::install_panic_hook(c.addresses.clone());
    }
    files::prepare(&args.out, leader).with_context(|| format!("creating output folder {}", args.out.display()))?;
    let sinks = FileSink::factory(&args.out, config.tick_ms(), FeatureLayout::new(&config));
    let outcome = run_pipeline(RunSpec {
        config,
        input,
        format,
        workers: args.workers,
        sinks,
        progress,
        cluster,
    })?;
    if !leader {
        eprintln!("{}", outcome.summary.human());
        eprintln!("outputs are merged into {} by process 0", args.out.display());
        return Ok(());
    }
    let written = files::merge(&args.out).with_context(|| format!("merging outputs in {}", args.out.display()))?;
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

/// The cluster described by -n/-p/-h (None for a single process).
fn cluster_spec(args: &RunArgs) -> anyhow::Result<Option<ClusterSpec>> {
    if args.processes <= 1 && args.hostfile.is_none() {
        if args.process != 0 {
            return Err(UsageError(format!("-p {} needs -n larger than {}", args.process, args.process)).into());
        }
        return Ok(None);
    }
    let spec = match &args.hostfile {
        Some(path) => ClusterSpec::from_hostfile(path, args.processes, args.process),
        None => ClusterSpec::new(
            (0..args.processes).map(|i| format!("127.0.0.1:{}", 2101 + i)).collect(),
            args.processes,
            args.process,
        ),
    };
    let mut spec = spec.map_err(|e| UsageError(e.to_string()))?;
    spec.connect_timeout = std::time::Duration::from_secs(args.connect_timeout.max(1));
    Ok(Some(spec))
}
