//! `vigil bench-query`: query latency under load. Ingests a generated stream at full speed
//! with the query server on a free loopback port while client threads send a fixed rate of
//! queries (mostly `/devices/{id}`, some `/top` and `/anomalies`), then reports latency
//! percentiles during ingestion and after it. Loopback only; bounded in count and time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use vigil::generate::{generate, GeneratorConfig, OutputFormat};
use vigil::output::{NullSink, WorkerSink};
use vigil::pipeline::{run as run_pipeline, RunSpec};
use vigil::query::client;
use vigil::query::request::percent_encode;
use vigil::source::file::InputSpec;

use super::{load_config, UsageError};

#[derive(Args, Debug)]
pub struct BenchQueryArgs {
    /// Events to generate and ingest.
    #[arg(long, default_value_t = 3_000_000)]
    pub events: u64,
    /// Devices.
    #[arg(long, default_value_t = 20_000)]
    pub devices: u32,
    /// Worker threads.
    #[arg(short, long, default_value_t = 2)]
    pub workers: usize,
    /// Queries per second, spread over the client threads.
    #[arg(long, default_value_t = 1000)]
    pub qps: u32,
    /// Client threads.
    #[arg(long, default_value_t = 4)]
    pub clients: u32,
    /// Seconds of queries after the input is done.
    #[arg(long, default_value_t = 3)]
    pub after: u64,
    /// Longest the benchmark runs, in seconds.
    #[arg(long, default_value_t = 300)]
    pub max_seconds: u64,
    /// One TCP connection per request (`Connection: close`) instead of one kept-alive
    /// connection per client thread (what dashboards and HTTP load tools use).
    #[arg(long)]
    pub connection_per_request: bool,
    /// Generator seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Config file (TOML).
    #[arg(short, long)]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Clone, Copy)]
struct Sample {
    kind: usize,
    ingesting: bool,
    status: u16,
    micros: u64,
    /// From the time the request was due by the schedule (later than `micros` when the
    /// client fell behind: the wait a slow answer imposes on the next ones counts too).
    scheduled_micros: u64,
}

const KINDS: [&str; 3] = ["device", "top", "anomalies"];

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn report(label: &str, samples: &[Sample]) {
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.status == 200).collect();
    let errors = samples.len() - ok.len();
    // Not 200: 404 for a device no event has named yet at the answer's tick, 503 before the
    // first tick is complete, 0 for a failed connection.
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for s in samples.iter().filter(|s| s.status != 200) {
        *by_status.entry(s.status).or_default() += 1;
    }
    let statuses: Vec<String> = by_status.iter().map(|(s, n)| format!("{n} × {s}")).collect();
    let statuses = if statuses.is_empty() {
        String::new()
    } else {
        format!(" ({})", statuses.join(", "))
    };
    let mut all: Vec<u64> = ok.iter().map(|s| s.micros).collect();
    all.sort_unstable();
    println!(
        "  {label}: {} queries, {} ok, {errors} not 200{statuses}; latency ms p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        samples.len(),
        ok.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.9),
        percentile(&all, 0.99),
        all.last().map_or(f64::NAN, |m| *m as f64 / 1000.0)
    );
    let mut scheduled: Vec<u64> = ok.iter().map(|s| s.scheduled_micros).collect();
    scheduled.sort_unstable();
    println!(
        "    from the scheduled send time (no coordinated omission): p50 {:.2}  p99 {:.2}",
        percentile(&scheduled, 0.5),
        percentile(&scheduled, 0.99)
    );
    for (k, name) in KINDS.iter().enumerate() {
        let mut v: Vec<u64> = ok.iter().filter(|s| s.kind == k).map(|s| s.micros).collect();
        if v.is_empty() {
            continue;
        }
        v.sort_unstable();
        println!(
            "    {name:<10} {:>6} ok  p50 {:.2}  p99 {:.2}  max {:.2}",
            v.len(),
            percentile(&v, 0.5),
            percentile(&v, 0.99),
            *v.last().unwrap_or(&0) as f64 / 1000.0
        );
    }
}

/// The engine's own latency histogram (`vigil_query_duration_seconds`, request read to
/// answer ready: without the client's connection set-up and response transfer), cumulative
/// counts per bucket bound in ms, from `/metrics`.
fn engine_latency(addr: &str) -> Vec<(String, u64)> {
    let Ok(r) = client::get(addr, "/metrics", Duration::from_secs(10)) else {
        return Vec::new();
    };
    r.body
        .lines()
        .filter_map(|l| l.strip_prefix("vigil_query_duration_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, n) = l.split_once("\"} ")?;
            let ms = match le.parse::<f64>() {
                Ok(s) if s.is_finite() => format!("{}", s * 1e3),
                _ => le.to_string(),
            };
            Some((ms, n.trim().parse().ok()?))
        })
        .collect()
}

/// The share of answers within 1, 2 and 5 ms between two histogram reads.
fn report_engine(label: &str, before: &[(String, u64)], now: &[(String, u64)]) {
    let count = |h: &[(String, u64)], le: &str| h.iter().find(|(b, _)| b == le).map_or(0, |(_, n)| *n);
    let total = count(now, "+Inf").saturating_sub(count(before, "+Inf"));
    if total == 0 {
        return;
    }
    let within = |le: &str| 100.0 * count(now, le).saturating_sub(count(before, le)) as f64 / total as f64;
    println!(
        "    engine side ({label}): {total} answers, {:.1}% within 1 ms, {:.1}% within 2 ms, {:.1}% within 5 ms",
        within("1"),
        within("2"),
        within("5")
    );
}

pub fn bench_query(args: BenchQueryArgs) -> anyhow::Result<()> {
    if args.workers == 0 || args.devices == 0 || args.qps == 0 || args.clients == 0 {
        return Err(UsageError("--workers, --devices, --qps and --clients must be at least 1".into()).into());
    }
    let config = load_config(args.config.as_deref())?;
    let gen = GeneratorConfig {
        events: args.events,
        devices: args.devices,
        seed: args.seed,
        lateness_ms: config.time.lateness.0,
        ..GeneratorConfig::default()
    };
    eprintln!(
        "generating {} events over {} devices (not timed)…",
        args.events, args.devices
    );
    let mut data = Vec::with_capacity((args.events * 90) as usize);
    generate(&gen, OutputFormat::Csv, &mut data)?;
    // Device ids to ask about: the second column of the first lines.
    let mut ids: Vec<String> = Vec::new();
    for line in data.split(|b| *b == b'\n').skip(1).take(200_000) {
        if let Some(id) = std::str::from_utf8(line).ok().and_then(|l| l.split(',').nth(1)) {
            if !id.is_empty() && !ids.iter().any(|x| x == id) && ids.len() < 2_000 {
                ids.push(id.to_string());
            }
        }
    }
    if ids.is_empty() {
        return Err(anyhow::anyhow!("the generated input names no device"));
    }
    let addr = client::free_loopback_addr()?;
    let addr_text = addr.to_string();
    let ingesting = Arc::new(AtomicBool::new(true));
    let stop = Arc::new(AtomicBool::new(false));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let feature = vigil::features::FeatureLayout::new(&config).names()[0].clone();

    let run_config = config.clone();
    let workers = args.workers;
    let started = Instant::now();
    let engine = std::thread::spawn(move || {
        run_pipeline(RunSpec {
            config: run_config,
            input: InputSpec::Memory {
                name: "bench-query".into(),
                data: Arc::new(data),
            },
            format: None,
            workers,
            sinks: Arc::new(|_| Box::new(NullSink) as Box<dyn WorkerSink>),
            progress: false,
            serve: Some(addr),
            cluster: None,
        })
    });

    // The clients start once the server answers (not with refused connections while the
    // engine is still starting it).
    let listening_by = Instant::now() + Duration::from_secs(30);
    while client::get(&addr_text, "/health", Duration::from_secs(1)).is_err() {
        if engine.is_finished() || Instant::now() > listening_by {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let per_client = Duration::from_secs_f64(args.clients as f64 / args.qps as f64);
    let deadline = started + Duration::from_secs(args.max_seconds);
    let clients: Vec<_> = (0..args.clients)
        .map(|c| {
            let (ids, addr, ingesting, stop, samples, feature) = (
                ids.clone(),
                addr_text.clone(),
                ingesting.clone(),
                stop.clone(),
                samples.clone(),
                feature.clone(),
            );
            let per_request = args.connection_per_request;
            std::thread::spawn(move || {
                let mut local = Vec::new();
                let kept =
                    client::Client::new(&addr, &client::ClientOptions::with_timeout(Duration::from_secs(10))).ok();
                let mut next = Instant::now() + per_client.mul_f64(c as f64 / 4.0);
                let mut i = c as usize;
                while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                    let now = Instant::now();
                    if next > now {
                        std::thread::sleep(next - now);
                    }
                    let due = next;
                    next += per_client;
                    let kind = match i % 50 {
                        0 => 1,
                        25 => 2,
                        _ => 0,
                    };
                    let path = match kind {
                        1 => format!("/top?feature={feature}&k=10"),
                        2 => "/anomalies?limit=20".to_string(),
                        _ => format!("/devices/{}", percent_encode(&ids[(i * 7919) % ids.len()])),
                    };
                    i += 1;
                    let was_ingesting = ingesting.load(Ordering::Relaxed);
                    let t0 = Instant::now();
                    let answer = match kept.as_ref() {
                        Some(c) if !per_request => c.get(&path),
                        _ => client::get(&addr, &path, Duration::from_secs(10)),
                    };
                    let status = answer.map_or(0, |r| r.status);
                    local.push(Sample {
                        kind,
                        ingesting: was_ingesting && ingesting.load(Ordering::Relaxed),
                        status,
                        micros: t0.elapsed().as_micros() as u64,
                        scheduled_micros: due.elapsed().as_micros() as u64,
                    });
                }
                if let Ok(mut s) = samples.lock() {
                    s.extend(local);
                }
            })
        })
        .collect();

    let outcome = engine
        .join()
        .map_err(|_| anyhow::anyhow!("the engine thread panicked"))??;
    let ingest_s = started.elapsed().as_secs_f64();
    ingesting.store(false, Ordering::Relaxed);
    let at_input_end = engine_latency(&addr_text);
    std::thread::sleep(Duration::from_secs(args.after));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.join();
    }
    let at_end = engine_latency(&addr_text);
    if let Some(serving) = outcome.serving {
        serving.stop()?;
    }
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let during: Vec<Sample> = samples.iter().filter(|s| s.ingesting).copied().collect();
    let after: Vec<Sample> = samples.iter().filter(|s| !s.ingesting).copied().collect();
    let s = &outcome.summary;
    println!(
        "vigil bench-query: {} events, {} devices, {} worker(s), {} queries/s from {} clients on {addr}, {}",
        s.events_read,
        args.devices,
        args.workers,
        args.qps,
        args.clients,
        if args.connection_per_request {
            "one connection per request"
        } else {
            "kept-alive connections"
        }
    );
    println!(
        "  ingest {ingest_s:.2} s, {:.0} events/s while serving (mix: 96% /devices/ID, 2% /top, 2% /anomalies)",
        s.events_read as f64 / ingest_s
    );
    report("during ingestion", &during);
    report_engine("during ingestion", &[], &at_input_end);
    report("after the input was done", &after);
    report_engine("after the input", &at_input_end, &at_end);
    Ok(())
}
