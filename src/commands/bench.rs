//! `vigil bench`: generated CSV in memory (outside the timed part), then the whole pipeline
//! (decode, watermark, windows, feature arrangement, tumbling rows) timed; prints events/s
//! and peak RSS.

use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use vigil::generate::{generate, GeneratorConfig, OutputFormat};
use vigil::output::metrics::{current_rss_bytes, peak_rss_bytes};
use vigil::output::{NullSink, WorkerSink};
use vigil::pipeline::{run as run_pipeline, RunSpec};
use vigil::source::file::InputSpec;

use super::{load_config, UsageError};

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Events to generate.
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Devices.
    #[arg(long, default_value_t = 100_000)]
    pub devices: u32,
    /// Worker threads.
    #[arg(short, long, default_value_t = 2)]
    pub workers: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Mean events per device per minute (sets the event-time span).
    #[arg(long, default_value_t = 6.0)]
    pub rate: f64,
    /// Config file (TOML).
    #[arg(short, long)]
    pub config: Option<std::path::PathBuf>,
    /// Instead: measure the Kafka source alone on TOPIC (consume, decode, watermark; no
    /// dataflow), one worker reading every partition to the end offsets present at start.
    /// scripts/bench-kafka.sh measures the whole run from topic to topics.
    #[arg(long, value_name = "TOPIC")]
    pub kafka_source: Option<String>,
    /// Kafka bootstrap servers (overrides [kafka] brokers).
    #[arg(long)]
    pub brokers: Option<String>,
}

/// Reads a topic to its end with the Kafka source only.
fn bench_kafka_source(args: &BenchArgs, topic: &str) -> anyhow::Result<()> {
    use vigil::source::kafka::{KafkaShared, KafkaSpec};
    use vigil::source::{InputBatch, Poll, WorkerInput};
    let mut config = load_config(args.config.as_deref())?;
    if let Some(b) = &args.brokers {
        config.kafka.brokers = b.clone();
    }
    // A fresh group: start from the beginning, commit nothing that matters.
    config.kafka.group_id = format!("vigil-bench-source-{}", std::process::id());
    let spec = KafkaSpec {
        topics: vec![topic.to_string()],
        bounded: true,
        shared: Arc::new(KafkaShared::new(1)),
    };
    let started = Instant::now();
    let mut input = vigil::source::kafka::input::KafkaInput::open(&spec, None, &config, 0, 1)?;
    let opened = started.elapsed().as_secs_f64();
    let mut batch = InputBatch::default();
    let (mut read, mut accepted) = (0u64, 0u64);
    loop {
        let poll = input.poll(config.input.batch_records, &mut batch)?;
        read += std::mem::take(&mut batch.read);
        accepted += std::mem::take(&mut batch.accepted);
        batch.events.clear();
        batch.rejects.clear();
        batch.reject_devices.clear();
        if poll == Poll::Exhausted {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64() - opened;
    let (bytes, _) = input.progress();
    println!("vigil bench --kafka-source {topic}: consume + decode + watermark, no dataflow, 1 worker");
    println!(
        "  {read} records ({accepted} accepted), {:.1} MiB",
        bytes as f64 / 1048576.0
    );
    println!("  connect and assign {opened:.2} s, read {secs:.2} s");
    println!("  throughput {:.0} events/s", read as f64 / secs.max(1e-9));
    Ok(())
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(topic) = &args.kafka_source {
        return bench_kafka_source(&args, topic);
    }
    if args.workers == 0 || args.devices == 0 {
        return Err(UsageError("--workers and --devices must be at least 1".into()).into());
    }
    let config = load_config(args.config.as_deref())?;
    let gen = GeneratorConfig {
        events: args.events,
        devices: args.devices,
        seed: args.seed,
        rate_per_min: args.rate,
        lateness_ms: config.time.lateness.0,
        ..GeneratorConfig::default()
    };
    eprintln!(
        "generating {} events over {} devices (not timed)…",
        args.events, args.devices
    );
    let t0 = Instant::now();
    let mut data = Vec::with_capacity((args.events * 90) as usize);
    let generated = generate(&gen, OutputFormat::Csv, &mut data)?;
    eprintln!(
        "generated {} records, {:.1} MiB, event time span {:.1} min, in {:.1} s",
        generated.records,
        data.len() as f64 / 1048576.0,
        (generated.last_ts_ms - generated.first_ts_ms) as f64 / 60_000.0,
        t0.elapsed().as_secs_f64()
    );
    let rss_before = current_rss_bytes();
    let started = Instant::now();
    let outcome = run_pipeline(RunSpec {
        config,
        input: InputSpec::Memory {
            name: "bench".into(),
            data: Arc::new(data),
        },
        format: None,
        workers: args.workers,
        sinks: Arc::new(|_| Box::new(NullSink) as Box<dyn WorkerSink>),
        progress: false,
        cluster: None,
        serve: None,
    })?;
    let secs = started.elapsed().as_secs_f64();
    let s = &outcome.summary;
    println!(
        "vigil bench: {} events, {} devices, {} worker(s)",
        s.events_read, args.devices, args.workers
    );
    println!("  pipeline: decode + watermark + sliding windows + feature arrangement + tumbling rows");
    println!(
        "  accepted {}, rejected {}, window rows {}",
        s.accepted, s.rejected, s.window_rows
    );
    println!("  elapsed {secs:.2} s");
    println!("  throughput {:.0} events/s", s.events_read as f64 / secs);
    println!(
        "  peak RSS {:.1} MiB (input buffer and generator included; {:.1} MiB before the run)",
        peak_rss_bytes() as f64 / 1048576.0,
        rss_before as f64 / 1048576.0
    );
    Ok(())
}
