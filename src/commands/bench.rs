//! `vigil bench`: generated CSV in memory (outside the timed part), then the whole pipeline
//! (decode, watermark, windows, feature arrangement, tumbling rows, detectors) timed; prints
//! events/s, peak RSS and the memory the run added per device.
//!
//! Named shapes fix the input's density: `sparse` (a large estate: 100,000 devices at 6
//! events/device/min, 10M events) and `seed` (the seed deployment: 500 devices at 1,000
//! events/device/min over 70 minutes of event time, so every default window reaches steady
//! state). `--events`, `--devices` and `--rate` override a shape's numbers.

use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use vigil::generate::{generate, GeneratorConfig, OutputFormat};
use vigil::output::metrics::{current_rss_bytes, peak_rss_bytes};
use vigil::output::{NullSink, WorkerSink};
use vigil::pipeline::{run as run_pipeline, RunSpec};
use vigil::source::file::InputSpec;

use super::{load_config, UsageError};

/// A named input density.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// 100,000 devices at 6 events/device/min, 10M events (many devices, few events each).
    Sparse,
    /// 500 devices at 1,000 events/device/min over 70 min of event time (35M events).
    Seed,
}

impl Shape {
    /// (events, devices, events per device per minute).
    fn numbers(self) -> (u64, u32, f64) {
        match self {
            Shape::Sparse => (10_000_000, 100_000, 6.0),
            Shape::Seed => (35_000_000, 500, 1_000.0),
        }
    }
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// The input's density; --events, --devices and --rate override its numbers.
    #[arg(long, value_enum, default_value_t = Shape::Sparse)]
    pub shape: Shape,
    /// Events to generate [default: the shape's].
    #[arg(long)]
    pub events: Option<u64>,
    /// Devices [default: the shape's].
    #[arg(long)]
    pub devices: Option<u32>,
    /// Worker threads [default: the cores this process may use].
    #[arg(short, long, default_value_t = super::default_workers(), hide_default_value = true)]
    pub workers: usize,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Mean events per device per minute, which sets the event-time span [default: the
    /// shape's].
    #[arg(long)]
    pub rate: Option<f64>,
    /// Config file (TOML).
    #[arg(short, long)]
    pub config: Option<std::path::PathBuf>,
    /// Time the run this many times over the same generated input and print the fastest,
    /// median and slowest (a shared machine's speed varies from one run to the next).
    #[arg(long, default_value_t = 1)]
    pub repeat: u32,
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
    let (shape_events, shape_devices, shape_rate) = args.shape.numbers();
    let (events, devices, rate) = (
        args.events.unwrap_or(shape_events),
        args.devices.unwrap_or(shape_devices),
        args.rate.unwrap_or(shape_rate),
    );
    if args.workers == 0 || devices == 0 || events == 0 || args.repeat == 0 {
        return Err(UsageError("--workers, --devices, --events and --repeat must be at least 1".into()).into());
    }
    if !(rate.is_finite() && rate > 0.0) {
        return Err(UsageError(format!(
            "--rate {rate}: must be a positive number of events per device per minute"
        ))
        .into());
    }
    let config = load_config(args.config.as_deref())?;
    let gen = GeneratorConfig {
        events,
        devices,
        seed: args.seed,
        rate_per_min: rate,
        lateness_ms: config.time.lateness.0,
        ..GeneratorConfig::default()
    };
    eprintln!(
        "generating {events} events over {devices} devices at {rate} events/device/min (shape {:?}; not timed)…",
        args.shape
    );
    let t0 = Instant::now();
    let mut data = Vec::with_capacity((events * 90) as usize);
    let generated = generate(&gen, OutputFormat::Csv, &mut data)?;
    eprintln!(
        "generated {} records, {:.1} MiB, event time span {:.1} min, in {:.1} s",
        generated.records,
        data.len() as f64 / 1048576.0,
        (generated.last_ts_ms - generated.first_ts_ms) as f64 / 60_000.0,
        t0.elapsed().as_secs_f64()
    );
    let rss_before = current_rss_bytes();
    let data = Arc::new(data);
    let mut rates = Vec::new();
    let mut first_peak = 0;
    for run in 1..=args.repeat {
        let started = Instant::now();
        let outcome = run_pipeline(RunSpec {
            config: config.clone(),
            input: InputSpec::Memory {
                name: "bench".into(),
                data: data.clone(),
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
        if run == 1 {
            println!(
                "vigil bench: {} events, {} devices seen, {} worker(s)",
                s.events_read, s.devices, args.workers
            );
            println!(
                "  pipeline: decode + watermark + sliding windows + feature arrangement + tumbling rows + detectors"
            );
        }
        if args.repeat > 1 {
            println!("  run {run} of {}:", args.repeat);
        }
        println!(
            "  accepted {}, rejected {}, window rows {}",
            s.accepted, s.rejected, s.window_rows
        );
        println!("  elapsed {secs:.2} s");
        println!("  throughput {:.0} events/s", s.events_read as f64 / secs);
        rates.push((s.events_read as f64 / secs, s.devices));
        if run == 1 {
            // The first run's peak: later runs start from what the allocator kept of it.
            first_peak = peak_rss_bytes();
        }
    }
    let devices_seen = rates[0].1;
    if rates.len() > 1 {
        let mut sorted: Vec<f64> = rates.iter().map(|r| r.0).collect();
        sorted.sort_by(f64::total_cmp);
        println!(
            "  throughput over {} runs: fastest {:.0}, median {:.0}, slowest {:.0} events/s",
            sorted.len(),
            sorted[sorted.len() - 1],
            sorted[sorted.len() / 2],
            sorted[0]
        );
    }
    let peak = peak_rss_bytes();
    println!(
        "  peak RSS {:.1} MiB (input buffer and generator included; {:.1} MiB before running)",
        peak as f64 / 1048576.0,
        rss_before as f64 / 1048576.0
    );
    // What the run added at its peak, per device it saw: the engine's state per device.
    let per_device = first_peak.saturating_sub(rss_before) as f64 / devices_seen.max(1) as f64;
    println!(
        "  memory per device {:.2} KiB (peak RSS of the first run minus RSS before it, / devices)",
        per_device / 1024.0
    );
    Ok(())
}
