//! `vigil fuzz http`: a campaign of random HTTP requests against the query server — its
//! own (an engine on the embedded sample, served on a free loopback port) or a running one
//! (`--addr`) — then `/health` must still answer. Prints the figures; fails on any panic,
//! hang or malformed answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use vigil::fuzz::http::{count_panics, run_campaign, HttpCampaign, HttpReport};
use vigil::output::{NullSink, WorkerSink};
use vigil::pipeline::{run as run_pipeline, RunSpec};
use vigil::query::client::{self, Client, ClientOptions};
use vigil::source::file::InputSpec;

use super::run::EMBEDDED_SAMPLE;
use super::{load_config, UsageError};

#[derive(Args, Debug)]
pub struct FuzzArgs {
    #[command(subcommand)]
    pub what: FuzzWhat,
}

#[derive(Subcommand, Debug)]
pub enum FuzzWhat {
    /// Random HTTP requests (valid ones mutated, and raw bytes) against the query server.
    Http(FuzzHttpArgs),
}

#[derive(Args, Debug)]
pub struct FuzzHttpArgs {
    /// Requests to send.
    #[arg(long, default_value_t = 100_000)]
    pub cases: u64,
    /// Seed of the random requests (a campaign is the same for the same seed and clients).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Client threads.
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// A running query server on this machine (host:port) instead of one of its own.
    #[arg(long)]
    pub addr: Option<String>,
    /// Its bearer token, sent with most requests.
    #[arg(long, env = "VIGIL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Seconds to wait for an answer or a close before a request counts as a hang.
    #[arg(long, default_value_t = 15)]
    pub hang_after: u64,
    /// Config file (TOML) of the engine it starts.
    #[arg(short, long)]
    pub config: Option<std::path::PathBuf>,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn fuzz(args: FuzzArgs) -> anyhow::Result<()> {
    match args.what {
        FuzzWhat::Http(a) => fuzz_http(a),
    }
}

fn fuzz_http(args: FuzzHttpArgs) -> anyhow::Result<()> {
    if args.clients == 0 || args.hang_after == 0 {
        return Err(UsageError("--clients and --hang-after must be at least 1".into()).into());
    }
    let panics = args.addr.is_none().then(count_panics);
    let registry = std::env::temp_dir().join(format!("vigil-fuzz-{}", std::process::id()));
    let (addr, serving) = match &args.addr {
        Some(a) => (a.clone(), None),
        None => {
            let mut config = load_config(args.config.as_deref())?;
            // Retraining requests register models: in a folder of the campaign's own.
            config.model.registry = registry.clone();
            let addr = client::free_loopback_addr()?;
            let outcome = run_pipeline(RunSpec {
                config,
                input: InputSpec::Memory {
                    name: "embedded:fixtures/events.csv".into(),
                    data: Arc::new(EMBEDDED_SAMPLE.to_vec()),
                },
                format: None,
                workers: 2,
                sinks: Arc::new(|_| Box::new(NullSink) as Box<dyn WorkerSink>),
                progress: false,
                serve: Some(addr),
                cluster: None,
            })
            .context("starting the engine to fuzz")?;
            (addr.to_string(), outcome.serving)
        }
    };
    let target: std::net::SocketAddr = addr
        .parse()
        .map_err(|_| UsageError(format!("--addr {addr}: write host:port, e.g. 127.0.0.1:7070")))?;
    let options = ClientOptions {
        token: args.token.clone(),
        ..ClientOptions::with_timeout(Duration::from_secs(10))
    };
    let server = Client::new(&addr, &options)?;
    let features = server
        .get("/features")
        .context("asking the server what it knows")?
        .json();
    let names = |key: &str, field: Option<&str>| -> Vec<String> {
        features[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| field.map_or(v.as_str(), |f| v[f].as_str()).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let devices: Vec<String> = String::from_utf8_lossy(EMBEDDED_SAMPLE)
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1).map(str::to_string))
        .take(500)
        .collect();
    let campaign = HttpCampaign {
        addr: target,
        cases: args.cases,
        seed: args.seed,
        clients: args.clients,
        hang_after: Duration::from_secs(args.hang_after),
        devices,
        features: names("features", Some("name")),
        detectors: names("detectors", None),
        token: args.token.clone(),
    };
    eprintln!(
        "fuzz http: {} random requests from {} clients to {addr} (seed {})…",
        args.cases, args.clients, args.seed
    );
    let started = Instant::now();
    let mut report = run_campaign(&campaign, &|n| eprintln!("  {n} requests sent"));
    let elapsed = started.elapsed().as_secs_f64();
    if let Some(p) = &panics {
        report.panics = report.panics.max(p.load(std::sync::atomic::Ordering::Relaxed));
    }
    let health = server.get("/health").map(|r| r.status).unwrap_or(0);
    if let Some(s) = serving {
        s.stop()?;
    }
    let _ = std::fs::remove_dir_all(&registry);
    print_report(&report, elapsed, health, args.json)?;
    if report.panics > 0 || report.hangs > 0 || report.malformed_answers > 0 || health != 200 {
        anyhow::bail!(
            "the server did not hold: {} panics, {} hangs, {} malformed answers, /health after: {health}",
            report.panics,
            report.hangs,
            report.malformed_answers
        );
    }
    Ok(())
}

fn print_report(r: &HttpReport, elapsed: f64, health: u16, json: bool) -> anyhow::Result<()> {
    if json {
        let mut v = serde_json::to_value(r)?;
        v["seconds"] = elapsed.into();
        v["health_after"] = health.into();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "fuzz http: {} requests in {elapsed:.1} s ({:.0}/s): answered 2xx {}, 4xx {}, 5xx {}; closed without an answer {}",
        r.cases,
        r.cases as f64 / elapsed.max(1e-9),
        r.answered_2xx,
        r.answered_4xx,
        r.answered_5xx,
        r.closed_silently
    );
    println!(
        "  panics {}, hangs {}, malformed answers {}, connect retries {}; /health after: {health}",
        r.panics, r.hangs, r.malformed_answers, r.connect_failures
    );
    Ok(())
}
