//! Subcommands of the `vigil` binary and what they share (logging, usage errors).

mod bench;
mod bench_query;
mod generate;
mod query;
mod run;

use clap::{Parser, Subcommand};

/// A mistake in how vigil was called (flags, config, input paths): exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// vigil finds denial of service, data loss and data corruption in network and device
/// event logs, incrementally, on timely/differential dataflow.
#[derive(Parser, Debug)]
#[command(name = "vigil", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). `VIGIL_LOG` / `RUST_LOG` filters win.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the main job: events in; window stats, features and rejects out.
    Run(run::RunArgs),
    /// Write a synthetic SOC event stream with labelled incidents.
    Generate(generate::GenerateArgs),
    /// Measure throughput (events/s) and peak memory on generated events.
    Bench(bench::BenchArgs),
    /// Ask a running engine (`vigil run --serve`) about devices, anomalies, top features.
    Query(query::QueryArgs),
    /// Measure query latency (p50/p99) at a fixed query rate while ingesting at full speed.
    BenchQuery(bench_query::BenchQueryArgs),
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Generate(args) => generate::generate(args),
        Command::Bench(args) => bench::bench(args),
        Command::Query(args) => query::query(args),
        Command::BenchQuery(args) => bench_query::bench_query(args),
    }
}

/// Logs to stderr; `VIGIL_LOG` (or `RUST_LOG`) sets the filter, default `info`.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = std::env::var("VIGIL_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| default.to_string());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Loads the config file (or defaults), as a usage error when it is wrong.
/// Detector sections are checked here too, so a bad one stops the run before any data is read.
pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<vigil::config::Config> {
    let config = vigil::config::Config::load(path).map_err(|e| UsageError(e.to_string()))?;
    vigil::detect::validate_config(&config).map_err(|e| UsageError(e.to_string()))?;
    Ok(config)
}
