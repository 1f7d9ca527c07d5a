//! `vigil fuzz decode`: a structure-aware fuzzing campaign over the record decoders (see
//! `vigil::fuzz`), or one case of it reproduced.
//!
//! Exit status: 0 when every case held, 1 when a case panicked or decoded wrongly (the
//! findings are printed, and written to `--findings` as JSON lines), 3 when a case hung.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use vigil::decode::Format;
use vigil::fuzz::{self, Campaign, Report};

use super::UsageError;

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
}

/// Which decoders.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FuzzFormat {
    Csv,
    Jsonl,
    Zeek,
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

pub fn fuzz(args: FuzzArgs) -> anyhow::Result<()> {
    match args.target {
        FuzzTarget::Decode(args) => decode(args),
    }
}

fn formats(f: FuzzFormat) -> Vec<Format> {
    match f {
        FuzzFormat::Csv => vec![Format::Csv],
        FuzzFormat::Jsonl => vec![Format::Jsonl],
        FuzzFormat::Zeek => vec![Format::Zeek],
        FuzzFormat::All => vec![Format::Csv, Format::Jsonl, Format::Zeek],
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
        let name = fuzz::format_name(format);
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
