//! `vigil run`: the main job over files, folders, stdin, Kafka topics or the embedded
//! sample, to files or Kafka topics.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use vigil::cluster::ClusterSpec;
use vigil::config::SinkKind;
use vigil::decode::Format;
use vigil::features::FeatureLayout;
use vigil::output::files::{self, FileSink};
use vigil::output::kafka::KafkaSink;
use vigil::pipeline::{run as run_pipeline, RunError, RunSpec};
use vigil::query::ServerError;
use vigil::source::file::InputSpec;
use vigil::source::kafka::client::{self, KafkaError};
use vigil::source::kafka::{KafkaShared, KafkaSpec};

use super::{load_config, UsageError};

/// The sample the engine runs on when no input is given (the repository's fixture).
pub const EMBEDDED_SAMPLE: &[u8] = include_bytes!("../../fixtures/events.csv");

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (-h is the hostfile, as in timely).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// A file, a folder of files (read in name order), - for stdin, or kafka://topic[,topic]
    /// (kafka alone: the topics of [kafka] topics). Default: the Kafka topics of the config
    /// when set, else the embedded sample (fixtures/events.csv).
    #[arg(short, long)]
    pub input: Option<PathBuf>,
    /// Where outputs go: files (in --out) or kafka (the topics of [kafka]); default from
    /// [output] sink.
    #[arg(long, value_enum)]
    pub sink: Option<SinkArg>,
    /// Kafka input: read up to the end offsets present at start, then finish. Without it the
    /// run goes on until stopped (Ctrl-C / SIGTERM finish it cleanly).
    #[arg(long)]
    pub bounded: bool,
    /// Kafka bootstrap servers (overrides [kafka] brokers).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Kafka consumer group (overrides [kafka] group_id).
    #[arg(long)]
    pub group: Option<String>,
    /// Input format (default: from the config, else auto: detected from the file name and
    /// first line).
    #[arg(short, long, value_enum)]
    pub format: Option<FormatArg>,
    /// Output folder for windows.jsonl, features.jsonl, rejects.jsonl, summary.json (only
    /// summary.json with --sink kafka).
    #[arg(short, long, default_value = "out")]
    pub out: PathBuf,
    /// Config file (TOML); see vigil.toml for every key and its default.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Worker threads in this process [default: the cores this process may use]. Every
    /// process of a cluster must run the same number (`vigil launch` passes its own -w to all).
    #[arg(short, long, default_value_t = super::default_workers(), hide_default_value = true)]
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
    /// Progress display.
    #[arg(long, value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,
    /// Also write per-event scores (`ts, device_id, detector, score`, JSON lines) of the
    /// detectors that score every event to this file (not written otherwise, unless
    /// [output] scores = true: then to OUT/scores.jsonl).
    #[arg(long)]
    pub scores_out: Option<PathBuf>,
    /// Write into an --out folder that is not empty: vigil's outputs of an earlier run there
    /// (windows.jsonl, ..., snapshots/) are removed first; other files are left alone.
    #[arg(long)]
    pub force: bool,
    /// Serve live queries (HTTP/JSON) on ADDR, or `off`. Default: 127.0.0.1:7070 while the
    /// input runs. Given explicitly, the run keeps serving after its input is done, until
    /// Ctrl-C (see --exit-when-done). In a cluster, process p serves on ADDR's port + p.
    #[arg(long, value_name = "ADDR|off")]
    pub serve: Option<String>,
    /// Stop when the input is done, even when serving queries.
    #[arg(long)]
    pub exit_when_done: bool,
    /// Serve a non-loopback --serve address without a token (`[server] token`): anyone who
    /// reaches the port may query and retrain.
    #[arg(long)]
    pub insecure: bool,
}

/// `--sink`: where outputs go.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkArg {
    /// Files in --out.
    Files,
    /// The topics of [kafka].
    Kafka,
}

/// `--format`: how input records are read.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatArg {
    /// Detected per file from its name and first line.
    Auto,
    Csv,
    /// JSON lines.
    #[value(alias = "json", alias = "ndjson")]
    Jsonl,
    /// Zeek conn.log as JSON.
    Zeek,
    /// Zeek conn.log as Zeek writes it by default: tab-separated under `#` header lines
    /// (also gzip-compressed).
    #[value(alias = "zeek_tsv")]
    ZeekTsv,
    /// Suricata EVE JSON: flow and netflow records (other event types are counted and
    /// skipped); the device is `[input] suricata_device` (default: the source address).
    #[value(alias = "eve")]
    Suricata,
}

impl FormatArg {
    fn format(self) -> Option<Format> {
        match self {
            FormatArg::Auto => None,
            FormatArg::Csv => Some(Format::Csv),
            FormatArg::Jsonl => Some(Format::Jsonl),
            FormatArg::Zeek => Some(Format::Zeek),
            FormatArg::ZeekTsv => Some(Format::ZeekTsv),
            FormatArg::Suricata => Some(Format::Suricata),
        }
    }
}

/// `--progress`: how a run shows its progress.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressArg {
    /// A bar on a terminal, log lines otherwise.
    Auto,
    /// The same as auto: a bar on a terminal, log lines otherwise.
    Always,
    /// Nothing until the summary.
    Never,
}

/// Where the query server listens unless told otherwise.
pub const DEFAULT_SERVE: &str = "127.0.0.1:7070";

/// Where this process serves queries (None: it does not), from `--serve` and, in a
/// cluster, the process index `p`: process `p` listens on the given port + `p`, so the
/// processes of one host (all started with the same arguments by `vigil launch`) do not
/// clash. In a cluster every process must build the same dataflows, so a port that is taken
/// is an error, found here before anything starts. (A single process on the default address
/// runs without a server when the port is taken: see `run`.)
fn serve_for(flag: Option<&str>, process: Option<usize>) -> anyhow::Result<Option<std::net::SocketAddr>> {
    let Some(mut addr) = serve_addr(flag.unwrap_or(DEFAULT_SERVE))? else {
        return Ok(None);
    };
    let Some(p) = process else {
        return Ok(Some(addr));
    };
    if addr.port() != 0 {
        let port = usize::from(addr.port()) + p;
        let port = u16::try_from(port).map_err(|_| {
            UsageError(format!(
                "--serve {addr}: process {p} would listen on port {port}, above 65535; pick a lower base port"
            ))
        })?;
        addr.set_port(port);
    }
    if let Err(e) = std::net::TcpListener::bind(addr) {
        return Err(UsageError(format!(
            "process {p} cannot serve queries on {addr} ({e}): in a cluster process p listens on the --serve port + p (default {DEFAULT_SERVE}); pass --serve with a free base port, or --serve off on every process"
        ))
        .into());
    }
    Ok(Some(addr))
}

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
    let mut config = load_config(args.config.as_deref())?;
    if let Some(b) = &args.brokers {
        config.kafka.brokers = b.clone();
    }
    if let Some(g) = &args.group {
        config.kafka.group_id = g.clone();
    }
    let sink_kind = match args.sink {
        None => config.output.sink,
        Some(SinkArg::Files) => SinkKind::Files,
        Some(SinkArg::Kafka) => SinkKind::Kafka,
    };
    let format = match args.format {
        Some(f) => f.format(),
        None => Format::parse(&config.input.format).map_err(UsageError)?,
    };
    if args.workers == 0 {
        return Err(UsageError("--workers must be at least 1".into()).into());
    }
    let kafka_topics = match args.input.as_ref().and_then(|p| p.to_str()) {
        Some(text) => KafkaSpec::parse_input(text, &config.kafka.topics),
        None if args.input.is_none() && !config.kafka.topics.is_empty() => Some(Ok(config.kafka.topics.clone())),
        None => None,
    };
    let shared = Arc::new(KafkaShared::new(args.workers));
    let input = match (kafka_topics, &args.input) {
        (Some(topics), _) => {
            let topics = topics.map_err(UsageError)?;
            preflight(&config, &topics)?;
            install_stop_handler(shared.clone());
            InputSpec::Kafka(KafkaSpec {
                topics,
                bounded: args.bounded,
                shared: shared.clone(),
            })
        }
        (None, Some(path)) => InputSpec::resolve(path).map_err(|e| UsageError(e.to_string()))?,
        (None, None) => {
            tracing::info!("no --input given: running on the embedded sample (fixtures/events.csv)");
            InputSpec::Memory {
                name: "embedded:fixtures/events.csv".into(),
                data: Arc::new(EMBEDDED_SAMPLE.to_vec()),
            }
        }
    };
    // A bar on a terminal, log lines otherwise (Progress decides by the bar's visibility).
    let progress = args.progress != ProgressArg::Never;
    let explicit_serve = args.serve.is_some();
    let cluster = cluster_spec(&args)?;
    let serve = serve_for(args.serve.as_deref(), cluster.as_ref().map(|c| c.process))?;
    config.server.insecure |= args.insecure;
    if let Some(addr) = serve {
        // Before any input is read: no token beyond loopback, or TLS files that do not load.
        vigil::query::server::guard(addr, &config.server).map_err(|e| UsageError(e.to_string()))?;
    }
    let leader = cluster.as_ref().is_none_or(|c| c.process == 0);
    if let Some(c) = &cluster {
        super::install_panic_hook(c.addresses.clone());
    }
    let kafka_input = matches!(input, InputSpec::Kafka(_));
    if args.bounded && !kafka_input {
        tracing::warn!("--bounded only matters for a Kafka input (files are bounded already)");
    }
    let write_scores = args.scores_out.is_some() || config.output.scores;
    let sinks = match sink_kind {
        SinkKind::Files => {
            files::prepare(&args.out, leader, args.force).map_err(|e| match e {
                e @ files::OutDirError::NotEmpty { .. } => anyhow::Error::new(UsageError(e.to_string())),
                e => anyhow::Error::new(e),
            })?;
            FileSink::factory(
                &args.out,
                config.tick_ms(),
                FeatureLayout::new(&config),
                write_scores,
                kafka_input.then(|| shared.clone()),
            )
        }
        SinkKind::Kafka => {
            std::fs::create_dir_all(&args.out)
                .with_context(|| format!("creating output folder {}", args.out.display()))?;
            let producer = KafkaSink::connect(&config.kafka)?;
            KafkaSink::factory(
                producer,
                config.kafka.clone(),
                kafka_input.then(|| shared.clone()),
                config.tick_ms(),
                FeatureLayout::new(&config),
            )
        }
    };
    let kafka_topics_out = (sink_kind == SinkKind::Kafka).then(|| {
        let k = &config.kafka;
        format!(
            "windows → {}, features → {}, dead letters → {} (anomalies → {})",
            k.windows_topic, k.features_topic, k.dlq_topic, k.anomalies_topic
        )
    });
    let spec = |serve| RunSpec {
        config: config.clone(),
        input: input.clone(),
        format,
        workers: args.workers,
        sinks: sinks.clone(),
        progress,
        cluster: cluster.clone(),
        serve,
    };
    let outcome = match run_pipeline(spec(serve)) {
        // The default address is a convenience: when it is taken (also by another run
        // starting at the same moment), run without a server.
        Err(RunError::Serve(ServerError::Bind { addr, source })) if !explicit_serve && cluster.is_none() => {
            tracing::warn!("not serving queries: cannot listen on {addr} ({source}); pass --serve ADDR or --serve off");
            run_pipeline(spec(None))
        }
        other => other,
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            // Part files of a failed run are of no use: nothing is left filling the disk.
            if sink_kind == SinkKind::Files {
                files::discard_parts(&args.out);
            }
            return Err(e.into());
        }
    };
    if !leader {
        eprintln!("{}", outcome.summary.human());
        eprintln!("outputs are merged into {} by process 0", args.out.display());
        return keep_serving(outcome.serving, explicit_serve && !args.exit_when_done);
    }
    let written = match sink_kind {
        SinkKind::Files => files::merge(&args.out, write_scores && args.scores_out.is_none())
            .with_context(|| format!("merging outputs in {}", args.out.display()))?,
        SinkKind::Kafka => Vec::new(),
    };
    let scores_file = args.out.join(files::SCORES_FILE);
    if let Some(target) = &args.scores_out {
        if scores_file.exists() {
            std::fs::rename(&scores_file, target)
                .or_else(|_| {
                    files::write_atomically(target, |out| {
                        std::io::copy(&mut std::fs::File::open(&scores_file)?, out).map(|_| ())
                    })
                })
                .with_context(|| format!("writing {}", target.display()))?;
            let _ = std::fs::remove_file(&scores_file);
        } else {
            files::write_atomically(target, |_| Ok(())).context("writing the per-event scores")?;
        }
        eprintln!("wrote {} (per-event scores)", target.display());
    }
    let summary_path = args.out.join(files::SUMMARY_FILE);
    let summary_text = serde_json::to_string_pretty(&outcome.summary)? + "\n";
    files::write_atomically(&summary_path, |out| {
        std::io::Write::write_all(out, summary_text.as_bytes())
    })
    .context("writing the run summary")?;
    eprintln!("{}", outcome.summary.human());
    for (path, lines) in written {
        eprintln!("wrote {path} ({lines} lines)");
    }
    if let Some(topics) = kafka_topics_out {
        eprintln!("sent {topics}");
    }
    eprintln!("wrote {}", summary_path.display());
    keep_serving(outcome.serving, explicit_serve && !args.exit_when_done)
}

/// After the input: serves until Ctrl-C when asked to (`forever`), else stops the server.
/// Serves on after the outputs are written (its callers write them first: `/health` says
/// "input done" only now).
fn keep_serving(serving: Option<vigil::query::Serving>, forever: bool) -> anyhow::Result<()> {
    if let Some(serving) = serving {
        serving.outputs_written();
        if forever {
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

/// Checks before starting the workers that the brokers answer and the topics exist, so
/// those mistakes are reported once, clearly.
fn preflight(config: &vigil::config::Config, topics: &[String]) -> anyhow::Result<()> {
    let consumer = client::consumer(&config.kafka, &config.kafka.group_id)?;
    client::check_reachable(&consumer, &config.kafka)?;
    for t in topics {
        match client::partitions(&consumer, &config.kafka, t) {
            Err(e @ KafkaError::UnknownTopic { .. }) => return Err(UsageError(e.to_string()).into()),
            other => {
                other?;
            }
        }
    }
    Ok(())
}

/// Ctrl-C / SIGTERM: sources stop reading and the run finishes cleanly (outputs flushed,
/// offsets of final records committed); a second signal exits at once.
fn install_stop_handler(shared: Arc<KafkaShared>) {
    let result = ctrlc::set_handler(move || {
        if shared.stop.swap(true, std::sync::atomic::Ordering::SeqCst) {
            eprintln!("second stop signal: exiting now");
            std::process::exit(130);
        }
        eprintln!("stopping: finishing at the current frontier (Ctrl-C again to exit at once)");
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot install the Ctrl-C handler");
    }
}
