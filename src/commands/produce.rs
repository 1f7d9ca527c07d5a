//! `vigil produce`: load recorded or generated events into a Kafka topic (one record per
//! message, keyed by device), creating the topic when it is missing.

use std::io::BufRead;
use std::path::PathBuf;

use clap::Args;
use vigil::decode::Format;
use vigil::source::file::InputSpec;
use vigil::source::kafka::produce::{csv_header_order_ok, produce as produce_records};
use vigil::source::kafka::valid_topic;

use super::{load_config, UsageError};

#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// A file, a folder of files (read in name order), or - for stdin.
    #[arg(short, long)]
    pub input: PathBuf,
    /// The topic to write to.
    #[arg(short, long)]
    pub topic: String,
    /// Partitions of the topic when vigil creates it (an existing topic is kept as is).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Kafka bootstrap servers (overrides [kafka] brokers).
    #[arg(long)]
    pub brokers: Option<String>,
    /// Input format: auto, csv, jsonl, zeek, zeek-tsv or suricata (used to find each
    /// record's device; Zeek TSV header lines go to every partition).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Config file (TOML): [kafka] brokers and properties.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
}

pub fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let mut config = load_config(args.config.as_deref())?;
    if let Some(b) = &args.brokers {
        config.kafka.brokers = b.clone();
    }
    if !valid_topic(&args.topic) {
        return Err(UsageError(format!("--topic `{}` is not a valid Kafka topic name", args.topic)).into());
    }
    let partitions = args.partitions.unwrap_or(config.kafka.output_partitions);
    if partitions == 0 {
        return Err(UsageError("--partitions must be at least 1".into()).into());
    }
    let format_name = args.format.clone().unwrap_or_else(|| config.input.format.clone());
    let format = Format::parse(&format_name).map_err(UsageError)?;
    let input = InputSpec::resolve(&args.input).map_err(|e| UsageError(e.to_string()))?;
    if let InputSpec::Files(files) = &input {
        for f in files {
            if let Some(first) = first_line(f) {
                if !csv_header_order_ok(&first) {
                    return Err(UsageError(format!(
                        "{}: CSV columns are not in the canonical order; Kafka messages are read in the order {}",
                        f.display(),
                        vigil::event::CSV_HEADER.join(",")
                    ))
                    .into());
                }
            }
        }
    }
    let report = produce_records(
        &config.kafka,
        &input,
        format,
        config.input.max_record_bytes,
        &args.topic,
        partitions,
    )?;
    eprintln!(
        "produced {} records ({:.1} MiB, {} without a readable device{}) to {} ({} partitions) in {:.2} s: {:.0} records/s",
        report.records,
        report.bytes as f64 / 1048576.0,
        report.without_key,
        if report.headers > 0 {
            format!(", {} header lines sent to every partition", report.headers)
        } else {
            String::new()
        },
        args.topic,
        report.partitions,
        report.elapsed_s,
        report.records as f64 / report.elapsed_s.max(1e-9)
    );
    Ok(())
}

fn first_line(path: &std::path::Path) -> Option<String> {
    let file = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(file).read_line(&mut line).ok()?;
    Some(line.trim_end().to_string())
}
