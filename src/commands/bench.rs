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
}

pub fn bench(args: BenchArgs) -> anyhow::Result<()> {
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
