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
    /// Serve live queries (HTTP/JSON) on ADDR, or `off`. Default: 127.0.0.1:7070 while the
    /// input runs. Given explicitly, the run keeps serving after its input is done, until
    /// Ctrl-C (see --exit-when-done).
    #[arg(long, value_name = "ADDR|off")]
    pub serve: Option<String>,
    /// Stop when the input is done, even when serving queries.
    #[arg(long)]
    pub exit_when_done: bool,
}

/// Where the query server listens unless told otherwise.
pub const DEFAULT_SERVE: &str = "127.0.0.1:7070";

/// The `--serve` address: None for `off`.
fn serve_addr(text: &str) -> anyhow::Result<Option<std::net::SocketAddr>> {
    use std::net::ToSocketAddrs;
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let addr = text.to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or_else(|| {
        UsageError(format!(
            "--serve `{text}`: not an address; write e.g. 127.0.0.1:7070, or off"
        ))
    })?;
    Ok(Some(addr))
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
    let explicit_serve = args.serve.is_some();
    let mut serve = serve_addr(args.serve.as_deref().unwrap_or(DEFAULT_SERVE))?;
    if !explicit_serve {
        // The default address is a convenience: when it is taken, run without a server.
        if let Some(addr) = serve {
            if let Err(e) = std::net::TcpListener::bind(addr) {
                tracing::warn!("not serving queries: cannot listen on {addr} ({e}); pass --serve ADDR or --serve off");
                serve = None;
            }
        }
    }
    files::prepare(&args.out).with_context(|| format!("creating output folder {}", args.out.display()))?;
    let sinks = FileSink::factory(&args.out, config.tick_ms(), FeatureLayout::new(&config));
    let outcome = run_pipeline(RunSpec {
        config,
        input,
        format,
        workers: args.workers,
        sinks,
        progress,
        serve,
    })?;
    let written = files::merge(&args.out).with_context(|| format!("merging outputs in {}", args.out.display()))?;
    let summary_path = args.out.join(files::SUMMARY_FILE);
    std::fs::write(&summary_path, serde_json::to_string_pretty(&outcome.summary)? + "\n")
        .with_context(|| format!("writing {}", summary_path.display()))?;
    eprintln!("{}", outcome.summary.human());
    for (path, lines) in written {
        eprintln!("wrote {path} ({lines} lines)");
    }
    eprintln!("wrote {}", summary_path.display());
    if let Some(serving) = outcome.serving {
        if explicit_serve && !args.exit_when_done {
            eprintln!(
                "input done; serving queries on http://{} until Ctrl-C (try `vigil query health --addr {}`)",
                serving.addr(),
                serving.addr()
            );
            serving.wait()?;
        } else {
            serving.stop()?;
        }
    }
    Ok(())
}
