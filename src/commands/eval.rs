//! `vigil eval`: scores detectors against ground truth.
//!
//! - `vigil eval --labels L --anomalies A`: precision, recall, F1 and median time-to-detect per
//!   detector and per incident flavour, from a run's `anomalies.jsonl` against
//!   `vigil generate --labels`.
//! - `vigil eval series`: per-event scores of a run (`vigil run --scores-out`) against labelled
//!   series (SKAB, UCR, or vigil events with generated labels): NAB (every profile, optimal
//!   threshold), point-wise P/R/F1 and range recall, per file and in total.
//! - `vigil eval bench`: runs every per-event detector and the windowed-Gaussian baseline over
//!   labelled series itself and prints the same figures side by side.
//! - `vigil eval events`: writes labelled series as vigil events for `vigil run`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use vigil::config::DurationMs;
use vigil::eval::bench::{figures, file_table, row_scores, scorers, table, Figures};
use vigil::eval::series::{read_all, write_events, Series, SeriesFormat};
use vigil::eval::{evaluate, read_episodes};
use vigil::generate::read_labels;

use super::UsageError;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct EvalArgs {
    #[command(subcommand)]
    pub command: Option<EvalCommand>,
    /// Labels written by `vigil generate --labels`.
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// `anomalies.jsonl` of a run.
    #[arg(long)]
    pub anomalies: Option<PathBuf>,
    /// An episode still matches a label this long after the label's end.
    #[arg(long, default_value = "5m")]
    pub grace: String,
    /// Print JSON instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Score a run's per-event scores (`vigil run --scores-out`) against labelled series.
    Series(SeriesArgs),
    /// Run every per-event detector and the windowed-Gaussian baseline over labelled series.
    Bench(BenchArgs),
    /// Write labelled series as vigil events (`ts,device_id,value`) for `vigil run`.
    Events(EventsArgs),
}

/// Where the labelled series are.
#[derive(Args, Debug)]
pub struct DataArgs {
    /// skab (`;`-separated, `anomaly` column), ucr (`..._TRAIN_BEGIN_END.txt`) or vigil (events
    /// CSV with `ts,device_id,value`, labelled by --labels).
    #[arg(long, value_enum)]
    pub format: SeriesFormat,
    /// Files or folders (searched recursively for .csv, or .txt for ucr).
    #[arg(long, num_args = 1.., required = true)]
    pub data: Vec<PathBuf>,
    /// vigil format: the labels `vigil generate --labels` wrote.
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct SeriesArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// The per-event scores of a run (`vigil run --scores-out FILE`), JSON lines.
    #[arg(long)]
    pub scores: PathBuf,
    /// The detector whose scores are evaluated.
    #[arg(long, default_value = "value_outlier")]
    pub detector: String,
    /// Also list every file.
    #[arg(long)]
    pub per_file: bool,
    /// Print JSON instead of the tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// A config file whose `[detectors.value_outlier]` section sets value_outlier's parameters
    /// (`VIGIL__DETECTORS__VALUE_OUTLIER__QUIET=100` and the like work too).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Also list every file.
    #[arg(long)]
    pub per_file: bool,
    /// Print JSON instead of the tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to write the events CSV.
    #[arg(long)]
    pub out: PathBuf,
}

pub fn eval(args: EvalArgs) -> anyhow::Result<()> {
    match args.command {
        Some(EvalCommand::Series(a)) => return series(a),
        Some(EvalCommand::Bench(a)) => return bench(a),
        Some(EvalCommand::Events(a)) => return events(a),
        None => {}
    }
    let (Some(labels_path), Some(anomalies_path)) = (&args.labels, &args.anomalies) else {
        return Err(UsageError(
            "give --labels and --anomalies (generated incidents), or a subcommand: series, bench, events (see --help)"
                .into(),
        )
        .into());
    };
    let grace = DurationMs::from_text(&args.grace).map_err(|m| UsageError(format!("--grace: {m}")))?;
    let labels =
        read_labels(open(labels_path)?).with_context(|| format!("reading labels {}", labels_path.display()))?;
    let episodes = read_episodes(open(anomalies_path)?)
        .with_context(|| format!("reading anomalies {}", anomalies_path.display()))?;
    // What each detector targets, as it declares it in its own file.
    let detectors: Vec<(&str, Option<vigil::detect::Threat>)> = vigil::detect::registry()
        .iter()
        .map(|d| (d.name(), d.threat()))
        .collect();
    let report = evaluate(&labels, &episodes, grace.0 as i64, &detectors);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json())?);
    } else {
        println!(
            "{} labels, {} episodes, grace {}\n",
            labels.len(),
            episodes.len(),
            args.grace
        );
        print!("{}", report.table());
    }
    Ok(())
}

fn open(p: &PathBuf) -> anyhow::Result<BufReader<std::fs::File>> {
    Ok(std::fs::File::open(p)
        .map(BufReader::new)
        .map_err(|e| UsageError(format!("cannot read {}: {e}", p.display())))?)
}

fn load_series(d: &DataArgs) -> anyhow::Result<Vec<Series>> {
    let labels: Vec<(String, i64, i64)> = match (&d.labels, d.format) {
        (Some(p), _) => read_labels(open(p)?)
            .with_context(|| format!("reading labels {}", p.display()))?
            .into_iter()
            .map(|l| (l.device, l.start_ms, l.end_ms))
            .collect(),
        (None, SeriesFormat::Vigil) => return Err(UsageError("--format vigil needs --labels".into()).into()),
        (None, _) => Vec::new(),
    };
    let series = read_all(d.format, &d.data, &labels).map_err(|e| UsageError(e.to_string()))?;
    if series.is_empty() {
        return Err(UsageError(format!("no {:?} series found in the --data given", d.format).to_lowercase()).into());
    }
    tracing::info!(
        series = series.len(),
        rows = series.iter().map(Series::len).sum::<usize>(),
        "read labelled series"
    );
    Ok(series)
}

fn print(all: &[Figures], series: &[Series], per_file: bool, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(all)?);
        return Ok(());
    }
    let ranges: usize = series.iter().map(|s| s.ranges().len()).sum();
    let rows: usize = series.iter().map(Series::len).sum();
    println!("{} series, {rows} rows, {ranges} labelled anomalies\n", series.len());
    print!("{}", table(all));
    if per_file {
        for f in all {
            println!();
            print!("{}", file_table(f));
        }
    }
    Ok(())
}

fn series(a: SeriesArgs) -> anyhow::Result<()> {
    let series = load_series(&a.data)?;
    #[derive(serde::Deserialize)]
    struct Row {
        ts: i64,
        device_id: String,
        detector: String,
        score: f64,
    }
    let mut scores: HashMap<(String, i64), f64> = HashMap::new();
    for (i, line) in open(&a.scores)?.lines().enumerate() {
        let line = line.with_context(|| format!("reading {}", a.scores.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let row: Row =
            serde_json::from_str(&line).map_err(|e| UsageError(format!("{}:{}: {e}", a.scores.display(), i + 1)))?;
        if row.detector == a.detector {
            let e = scores.entry((row.device_id, row.ts)).or_insert(0.0);
            *e = e.max(row.score);
        }
    }
    if scores.is_empty() {
        return Err(UsageError(format!("{} has no scores of `{}`", a.scores.display(), a.detector)).into());
    }
    let rows: Vec<Vec<f64>> = series.iter().map(|s| s.row_scores(&scores)).collect();
    print(&[figures(&a.detector, &series, &rows)], &series, a.per_file, a.json)
}

fn bench(a: BenchArgs) -> anyhow::Result<()> {
    let series = load_series(&a.data)?;
    let config = super::load_config(a.config.as_deref())?;
    let params: vigil::dataflows::value_outlier::Params = match config.detectors.get("value_outlier") {
        Some(toml::Value::Table(t)) => {
            let mut t = t.clone();
            t.remove("enabled");
            toml::Value::Table(t)
                .try_into()
                .map_err(|e: toml::de::Error| UsageError(format!("detectors.value_outlier: {}", e.message())))?
        }
        _ => Default::default(),
    };
    let mut all = Vec::new();
    for (name, scorer) in scorers(&params) {
        let rows: Vec<Vec<f64>> = series.iter().map(|s| row_scores(s, &scorer)).collect();
        all.push(figures(&name, &series, &rows));
    }
    print(&all, &series, a.per_file, a.json)
}

fn events(a: EventsArgs) -> anyhow::Result<()> {
    let series = load_series(&a.data)?;
    let file =
        std::fs::File::create(&a.out).map_err(|e| UsageError(format!("cannot write {}: {e}", a.out.display())))?;
    let mut w = std::io::BufWriter::new(file);
    write_events(&series, &mut w).with_context(|| format!("writing {}", a.out.display()))?;
    std::io::Write::flush(&mut w)?;
    Ok(())
}
