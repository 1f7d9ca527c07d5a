//! `vigil fuzz`: fuzzing campaigns on stable Rust.
//!
//! `vigil fuzz decode`: a structure-aware campaign over the record decoders (see
//! `vigil::fuzz`), or one case of it reproduced. Exit status: 0 when every case held, 1 when
//! a case panicked or decoded wrongly (the findings are printed, and written to
//! `--findings` as JSON lines), 3 when a case hung.
//!
//! `vigil fuzz http`: random HTTP requests against the query server — its own (an engine on
//! the embedded sample, served on a free loopback port) or a running one (`--addr`) — then
//! `/health` must still answer. Prints the figures; fails on any panic, hang or malformed
//! answer.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use vigil::decode::Format;
use vigil::fuzz::http::{count_panics, run_campaign, HttpCampaign, HttpReport};
use vigil::fuzz::{self, Campaign, Report};
use vigil::output::{NullSink, WorkerSink};
use vigil::pipeline::{run as run_pipeline, RunSpec};
use vigil::query::client::{self, Client, ClientOptions};
use vigil::source::file::InputSpec;

use super::run::EMBEDDED_SAMPLE;
use super::{load_config, UsageError};

#[derive(Args, Debug)]
pub struct FuzzArgs {
    #[command(subcommand)]
    pub target: FuzzTarget,
}

#[derive(Subcommand, Debug)]
pub enum FuzzTarget {
    /// Mutated CSV, JSON-lines and Zeek records through the decoders: no panic, no hang,
    /// valid records decoded exactly, accepted ones consistent and round-tripping.
    Decode(DecodeArgs),
    /// Random HTTP requests (valid ones mutated, and raw bytes) against the query server:
    /// no panic, no hang, no malformed answer, and `/health` answers after.
    Http(FuzzHttpArgs),
}

/// Which decoders.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuzzFormat {
    Csv,
    Jsonl,
    Zeek,
    /// Zeek conn.log TSV (records under a `#fields` header in a random column order).
    ZeekTsv,
    /// Suricata EVE flow and netflow records.
    Suricata,
    /// Each of the above in turn.
    All,
}

#[derive(Args, Debug)]
pub struct DecodeArgs {
    /// The decoder(s) to fuzz.
    #[arg(long, value_enum, default_value_t = FuzzFormat::All)]
    pub format: FuzzFormat,
    /// Cases per decoder.
    #[arg(long, default_value_t = 1_000_000)]
    pub cases: u64,
    /// Campaign seed: the same seed gives the same cases.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Reproduce one case: print its input and what the checks say (needs one --format).
    #[arg(long)]
    pub case: Option<u64>,
    /// Threads [default: the cores this process may use].
    #[arg(long, default_value_t = super::default_workers(), hide_default_value = true)]
    pub threads: usize,
    /// A case running longer than this many milliseconds is a hang.
    #[arg(long, default_value_t = 2_000)]
    pub hang_ms: u64,
    /// The decoders' record length limit, as `input.max_record_bytes`.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_record_bytes: usize,
    /// Write the findings here as JSON lines (format, case, kind, message, header, record).
    #[arg(long)]
    pub findings: Option<PathBuf>,
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
    match args.target {
        FuzzTarget::Decode(args) => decode(args),
        FuzzTarget::Http(args) => fuzz_http(args),
    }
}

fn formats(f: FuzzFormat) -> Vec<Format> {
    match f {
        FuzzFormat::Csv => vec![Format::Csv],
        FuzzFormat::Jsonl => vec![Format::Jsonl],
        FuzzFormat::Zeek => vec![Format::Zeek],
        FuzzFormat::ZeekTsv => vec![Format::ZeekTsv],
        FuzzFormat::Suricata => vec![Format::Suricata],
        FuzzFormat::All => vec![
            Format::Csv,
            Format::Jsonl,
            Format::Zeek,
            Format::ZeekTsv,
            Format::Suricata,
        ],
    }
}

fn decode(args: DecodeArgs) -> anyhow::Result<()> {
    if args.threads == 0 {
        return Err(UsageError("--threads must be at least 1".into()).into());
    }
    if let Some(index) = args.case {
        let [format] = formats(args.format)[..] else {
            return Err(UsageError(
                "--case reproduces one case of one decoder: give --format csv, jsonl or zeek".into(),
            )
            .into());
        };
        return reproduce(format, args.seed, index, args.max_record_bytes);
    }
    let mut findings_out = match &args.findings {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating the findings file {}", path.display()))?,
        )),
        None => None,
    };
    let mut failures = 0;
    for format in formats(args.format) {
        let name = format.name();
        let campaign = Campaign {
            format,
            seed: args.seed,
            first: 0,
            cases: args.cases,
            threads: args.threads,
            hang_after: Duration::from_millis(args.hang_ms),
            max_record_bytes: args.max_record_bytes,
            keep_findings: 20,
        };
        let total = args.cases;
        let report = fuzz::run(&campaign, &|done| {
            eprintln!("{name}: {done} of {total} cases");
        });
        println!("{}", summary(name, &report));
        for f in &report.findings {
            println!("  {f}");
            if let Some(out) = findings_out.as_mut() {
                let line = serde_json::json!({
                    "format": name,
                    "seed": args.seed,
                    "case": f.case,
                    "kind": format!("{:?}", f.kind).to_lowercase(),
                    "message": f.message,
                    "header": f.header.as_deref().map(|h| String::from_utf8_lossy(h).into_owned()),
                    "record": String::from_utf8_lossy(&f.record),
                    "reproduce": format!("vigil fuzz decode --format {name} --seed {} --case {}", args.seed, f.case),
                });
                writeln!(out, "{line}").context("writing the findings file")?;
            }
        }
        if report.accounted() != report.cases {
            println!(
                "  accounting: {} cases but {} outcomes (a case counted twice or not at all)",
                report.cases,
                report.accounted()
            );
            failures += 1;
        }
        failures += report.failures();
    }
    if let Some(mut out) = findings_out {
        out.flush().context("writing the findings file")?;
    }
    if failures > 0 {
        anyhow::bail!("{failures} case(s) did not hold (reproduce each with the command printed above)");
    }
    Ok(())
}

/// One line per decoder: cases, rate, outcomes, findings, slowest case.
fn summary(name: &str, r: &Report) -> String {
    let secs = r.elapsed.as_secs_f64();
    let rejected: u64 = r.rejected.values().sum();
    let reasons: Vec<String> = r.rejected.iter().map(|(k, v)| format!("{k} {v}")).collect();
    format!(
        "{name}: {} cases in {secs:.1} s ({:.0}/s); valid {}, accepted {}, rejected {rejected} ({}), headers refused {}; \
         panics {}, wrong {}, hangs 0; slowest case {:.3} ms (case {})",
        r.cases,
        r.cases as f64 / secs.max(1e-9),
        r.valid,
        r.accepted,
        reasons.join(", "),
        r.headers_refused,
        r.panics,
        r.wrong,
        r.slowest.as_secs_f64() * 1e3,
        r.slowest_case
    )
}

fn reproduce(format: Format, seed: u64, index: u64, max_record_bytes: usize) -> anyhow::Result<()> {
    let case = fuzz::case(format, seed, index);
    if let Some(h) = &case.header {
        println!("header:   {}", fuzz::check::escape(h));
    }
    println!("record:   {}", fuzz::check::escape(&case.record));
    if let Some(e) = &case.expected {
        println!("valid:    must decode to {e:?}");
    }
    let mut checker = fuzz::check::Checker::new(format, max_record_bytes);
    match checker.check(&case) {
        fuzz::Outcome::Failed(f) => {
            println!("finding:  {:?}: {}", f.kind, f.message);
            anyhow::bail!("case {index} does not hold")
        }
        other => {
            println!("outcome:  {other:?}");
            Ok(())
        }
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
