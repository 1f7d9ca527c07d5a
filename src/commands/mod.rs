//! Subcommands of the `vigil` binary and what they share (logging, usage errors).

mod access;
mod bench;
mod bench_query;
mod bench_train;
mod convert;
mod detectors;
mod eval;
mod fuzz;
mod generate;
mod launch;
mod models;
mod pinot;
mod produce;
mod query;
mod run;
mod train;

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
    /// Start every process of a hostfile running `vigil run` as one cluster.
    Launch(launch::LaunchArgs),
    /// Pinot schemas and REALTIME tables for vigil's output topics: print or apply them.
    Pinot(pinot::PinotArgs),
    /// Load events from a file into a Kafka topic (keyed by device).
    Produce(produce::ProduceArgs),
    /// List the registered detectors with their parameters and defaults.
    Detectors(detectors::DetectorsArgs),
    /// Score detectors: anomalies against generated incident labels, or per-event scores against
    /// labelled series (SKAB, UCR; NAB, point-wise and range figures).
    Eval(eval::EvalArgs),
    /// Train a k-means model over a feature snapshot file and register it.
    Train(train::TrainArgs),
    /// The model registry: list, show, promote, rollback.
    Models(models::ModelsArgs),
    /// Retraining time for N devices and the cost of re-scoring after a model change.
    BenchTrain(bench_train::BenchTrainArgs),
    /// Ask a running engine (`vigil run --serve`) about devices, anomalies, top features.
    Query(query::QueryArgs),
    /// Measure query latency (p50/p99) at a fixed query rate while ingesting at full speed.
    BenchQuery(bench_query::BenchQueryArgs),
    /// Fuzzing campaigns on stable Rust: mutated records through the decoders (`decode`),
    /// random requests to the query server (`http`).
    Fuzz(fuzz::FuzzArgs),
    /// Write the events of an input in another format (CSV, JSON lines, Zeek JSON or TSV,
    /// Suricata EVE): the same connections for every decoder.
    Convert(convert::ConvertArgs),
}

pub fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Generate(args) => generate::generate(args),
        Command::Convert(args) => convert::convert(args),
        Command::Bench(args) => bench::bench(args),
        Command::Launch(args) => launch::launch(args),
        Command::Pinot(args) => pinot::pinot(args),
        Command::Produce(args) => produce::produce(args),
        Command::Detectors(args) => detectors::detectors(args),
        Command::Eval(args) => eval::eval(args),
        Command::Train(args) => train::train_cmd(args),
        Command::Models(args) => models::models(args),
        Command::BenchTrain(args) => bench_train::bench_train(args),
        Command::Query(args) => query::query(args),
        Command::BenchQuery(args) => bench_query::bench_query(args),
        Command::Fuzz(args) => fuzz::fuzz(args),
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
/// The default worker count: one worker per core this process may use
/// (`std::thread::available_parallelism`), 1 when that is unknown. A worker is a thread
/// that runs the whole dataflow over its share of the devices, so one per core uses the
/// machine without oversubscribing it.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn load_config(path: Option<&std::path::Path>) -> anyhow::Result<vigil::config::Config> {
    let config = vigil::config::Config::load(path).map_err(|e| UsageError(e.to_string()))?;
    vigil::detect::validate_config(&config).map_err(|e| UsageError(e.to_string()))?;
    Ok(config)
}

/// The exit status of a cluster process that stops because it lost a peer (the peer is the
/// one that failed: `vigil launch` names the process that failed first, not this one).
pub const PEER_LOST_EXIT: i32 = 3;

/// Makes the loss of a peer process a clear error instead of a cascade of thread panics:
/// timely's network threads are named `timely:send-N` / `timely:recv-N` after the peer.
pub fn install_panic_hook(addresses: Vec<String>) {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let name = std::thread::current().name().unwrap_or("").to_string();
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let peer = name
            .strip_prefix("timely:recv-")
            .or_else(|| name.strip_prefix("timely:send-"));
        if let Some(peer) = peer {
            let addr = peer
                .parse::<usize>()
                .ok()
                .and_then(|i| addresses.get(i))
                .cloned()
                .unwrap_or_default();
            eprintln!("error: lost the connection to process {peer} ({addr}): {message}; stopping");
            std::process::exit(PEER_LOST_EXIT);
        }
        if message.contains("poisoned") && name.starts_with("timely:") {
            eprintln!("error: a peer process disconnected; stopping");
            std::process::exit(PEER_LOST_EXIT);
        }
        default(info);
    }));
}
