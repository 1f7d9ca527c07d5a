//! `vigil generate`: a synthetic SOC stream with labelled incidents, to a file or stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use vigil::generate::{generate as gen, write_labels, BenignPlan, GeneratorConfig, OutputFormat};

use super::UsageError;

#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Records to write (including malformed and late ones).
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// Devices.
    #[arg(long, default_value_t = 100)]
    pub devices: u32,
    /// Output file, or - for stdout.
    #[arg(short, long)]
    pub out: PathBuf,
    /// Seed: the same seed and flags give the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where to write the incident labels (JSONL: kind, device, start_ms, end_ms, detail).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// csv or jsonl.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Mean events per device per minute (sets the event-time span).
    #[arg(long, default_value_t = 6.0)]
    pub rate: f64,
    /// Share of records delayed beyond the allowed lateness (late).
    #[arg(long)]
    pub late_share: Option<f64>,
    /// Share of records delivered out of order within the allowed lateness.
    #[arg(long)]
    pub out_of_order_share: Option<f64>,
    /// Share of malformed records outside incidents.
    #[arg(long)]
    pub malformed_share: Option<f64>,
    /// Allowed lateness the late records are measured against, in ms.
    #[arg(long, default_value_t = 5_000)]
    pub lateness_ms: u64,
}

pub fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let format = match args.format.as_str() {
        "csv" => OutputFormat::Csv,
        "jsonl" => OutputFormat::Jsonl,
        other => return Err(UsageError(format!("--format `{other}`: use csv or jsonl")).into()),
    };
    if args.devices == 0 {
        return Err(UsageError("--devices must be at least 1".into()).into());
    }
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        return Err(UsageError("--rate must be a positive number".into()).into());
    }
    for (name, share) in [
        ("--late-share", args.late_share),
        ("--out-of-order-share", args.out_of_order_share),
        ("--malformed-share", args.malformed_share),
    ] {
        if share.is_some_and(|s| !(0.0..=1.0).contains(&s)) {
            return Err(UsageError(format!("{name} must be between 0 and 1")).into());
        }
    }
    let mut config = GeneratorConfig {
        events: args.events,
        devices: args.devices,
        seed: args.seed,
        rate_per_min: args.rate,
        lateness_ms: args.lateness_ms,
        benign: BenignPlan::for_devices(args.devices),
        ..GeneratorConfig::default()
    };
    if let Some(s) = args.late_share {
        config.late_share = s;
    }
    if let Some(s) = args.out_of_order_share {
        config.out_of_order_share = s;
    }
    if let Some(s) = args.malformed_share {
        config.malformed_share = s;
    }
    let summary = if args.out.as_os_str() == "-" {
        let stdout = std::io::stdout();
        let mut lock = std::io::BufWriter::new(stdout.lock());
        let s = gen(&config, format, &mut lock)?;
        lock.flush()?;
        s
    } else {
        let file = std::fs::File::create(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let s = gen(&config, format, &mut w).with_context(|| format!("writing {}", args.out.display()))?;
        w.flush()?;
        s
    };
    if let Some(path) = &args.labels {
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        write_labels(&summary.labels, std::io::BufWriter::new(file))?;
    }
    eprintln!(
        "generated {} records ({} malformed, {} late), {} incidents, {} benign look-alikes, event time {}..{}",
        summary.records,
        summary.malformed,
        summary.late,
        summary.labels.iter().filter(|l| l.kind.threat().is_some()).count(),
        summary.labels.iter().filter(|l| l.kind.threat().is_none()).count(),
        summary.first_ts_ms,
        summary.last_ts_ms
    );
    Ok(())
}
