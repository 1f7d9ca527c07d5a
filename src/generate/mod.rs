//! A realistic synthetic SOC event stream with injected, labelled incidents.
//!
//! A fleet of web servers, databases, batch workers, IoT sensors and workstations talks to
//! its usual (mostly internal) destinations with per-profile rates, daily and weekly rhythm,
//! heavy-tailed volumes and per-device telemetry readings; on top of that, silences,
//! exfiltrations and corruptions are injected and returned as ground-truth [`Label`]s, benign
//! look-alikes (backups, updates, batch bursts, planned maintenance, uploads to new sites:
//! [`BenignPlan`]) are added and labelled `benign`, and delivery noise (out-of-order, late and
//! malformed records) is added like a real pipeline's.
//!
//! Invariants: the output is a pure function of the configuration (same config and seed,
//! same bytes); exactly `events` records are written, in arrival order, after the CSV
//! header when the format is CSV; `summary.late` equals the number of records the engine
//! rejects as `late` under `docs/semantics.md` with `lateness_ms`, `summary.malformed` the
//! number it rejects for any other reason; every label lies inside the generated span.

mod emit;
mod engine;
mod fleet;
mod incident;
mod lookalike;
mod metric;
mod net;
mod profile;
pub(crate) mod rng;
mod services;
#[cfg(test)]
mod tests;

use std::io::{self, BufRead, Write};

use serde::{Deserialize, Serialize};

pub use incident::{IncidentKind, IncidentPlan, Label};
pub use lookalike::BenignPlan;
pub use profile::Profile;
pub(crate) use rng::Rng64;

use crate::event::{MAX_TS_MS, MIN_TS_MS};

/// The largest fleet [`GeneratorConfig::validate`] accepts.
pub const MAX_DEVICES: u32 = 1_000_000;

/// 2026-01-05T00:00:00Z (a Monday).
pub const DEFAULT_START_MS: i64 = 1_767_571_200_000;

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratorConfig {
    /// Total records to emit (including malformed and late ones).
    pub events: u64,
    pub devices: u32,
    pub seed: u64,
    /// Event time of the start of the stream, epoch ms.
    pub start_ms: i64,
    /// Mean events per device per minute over a weekday; the span follows
    /// (about `events / devices / rate_per_min` minutes).
    pub rate_per_min: f64,
    /// Share of records delayed by less than `lateness_ms` (out of order, still accepted).
    pub out_of_order_share: f64,
    /// Share of records delayed by more than `lateness_ms` (lateness + 1 s ..= lateness + 120 s).
    pub late_share: f64,
    /// The engine's allowed lateness (`time.lateness`).
    pub lateness_ms: u64,
    /// Share of records outside incidents turned into malformed lines.
    pub malformed_share: f64,
    pub incidents: IncidentPlan,
    /// Benign look-alikes (labelled `benign`, not incidents).
    pub benign: BenignPlan,
}

impl GeneratorConfig {
    /// Defaults for `events` records from `devices` devices, with the default incident plan
    /// for that fleet size.
    pub fn new(events: u64, devices: u32, seed: u64) -> Self {
        GeneratorConfig {
            events,
            devices,
            seed,
            start_ms: DEFAULT_START_MS,
            rate_per_min: 6.0,
            out_of_order_share: 0.02,
            late_share: 0.001,
            lateness_ms: 5_000,
            malformed_share: 0.0005,
            incidents: IncidentPlan::for_devices(devices),
            benign: BenignPlan::for_devices(devices),
        }
    }

    /// Checks the configuration; the message names the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.events > 0 && self.devices == 0 {
            return Err("devices must be at least 1".into());
        }
        if self.devices > MAX_DEVICES {
            return Err(format!("devices must be at most {MAX_DEVICES}"));
        }
        if !(self.rate_per_min.is_finite() && self.rate_per_min > 0.0) {
            return Err(format!("rate_per_min must be positive, not {}", self.rate_per_min));
        }
        for (name, v) in [
            ("out_of_order_share", self.out_of_order_share),
            ("late_share", self.late_share),
            ("malformed_share", self.malformed_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("{name} must lie in 0..=1, not {v}"));
            }
        }
        if self.out_of_order_share + self.late_share > 1.0 {
            return Err("out_of_order_share + late_share must not exceed 1".into());
        }
        if !(MIN_TS_MS..MAX_TS_MS).contains(&self.start_ms) {
            return Err(format!("start_ms {} is outside 2000-01-01..2100-01-01", self.start_ms));
        }
        if self.benign.total() > 100_000 {
            return Err(format!(
                "{} look-alikes is too many (at most 100000)",
                self.benign.total()
            ));
        }
        if self.incidents.total() > 100_000 {
            return Err(format!(
                "{} incidents is too many (at most 100000)",
                self.incidents.total()
            ));
        }
        if self.lateness_ms > 86_400_000 {
            return Err(format!("lateness_ms {} is more than a day", self.lateness_ms));
        }
        Ok(())
    }
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig::new(1_000_000, 1_000, 1)
    }
}

/// Output encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// Canonical CSV with its header line.
    #[default]
    Csv,
    /// One canonical JSON object per line.
    Jsonl,
}

impl From<OutputFormat> for crate::decode::Format {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Csv => crate::decode::Format::Csv,
            OutputFormat::Jsonl => crate::decode::Format::Jsonl,
        }
    }
}

/// What was generated.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GenerateSummary {
    /// Records written (the header not included); equals `events`.
    pub records: u64,
    /// Records the engine rejects for a reason other than lateness.
    pub malformed: u64,
    /// Records the engine rejects as late (with `lateness_ms`).
    pub late: u64,
    /// Ground truth, sorted by start time.
    pub labels: Vec<Label>,
    /// Event time of the first and last record generated (event-time order).
    pub first_ts_ms: i64,
    pub last_ts_ms: i64,
}

/// Writes the stream described by `cfg` to `out` (buffered internally; pass the raw writer).
pub fn generate<W: Write>(cfg: &GeneratorConfig, format: OutputFormat, out: W) -> io::Result<GenerateSummary> {
    cfg.validate()
        .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
    let mut sink = emit::Sink::new(out, format, cfg.lateness_ms)?;
    if cfg.events == 0 {
        sink.finish()?;
        return Ok(GenerateSummary {
            first_ts_ms: cfg.start_ms,
            last_ts_ms: cfg.start_ms,
            ..Default::default()
        });
    }
    let mut fleet = fleet::Fleet::build(cfg.devices, cfg.rate_per_min, cfg.seed);
    let end = fleet.expected_end(cfg.start_ms, cfg.events);
    if end >= MAX_TS_MS - 30 * 86_400_000 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the stream would run past 2100-01-01: lower events or raise devices/rate_per_min",
        ));
    }
    let (mut labels, mut exfils) = incident::place(&cfg.incidents, &mut fleet, cfg.start_ms, end, cfg.seed);
    labels.extend(lookalike::place(
        &cfg.benign,
        &mut fleet,
        cfg.start_ms,
        end,
        cfg.seed,
        &mut exfils,
    ));
    labels.sort_by(|a, b| (a.start_ms, &a.device, a.kind).cmp(&(b.start_ms, &b.device, b.kind)));
    let (first, last) = engine::run(cfg, &mut fleet, &mut exfils, &mut sink)?;
    labels.retain(|l| l.start_ms <= last);
    for l in &mut labels {
        l.end_ms = l.end_ms.min(last + 1);
    }
    let summary = GenerateSummary {
        records: sink.records,
        malformed: sink.malformed,
        late: sink.late,
        labels,
        first_ts_ms: first,
        last_ts_ms: last,
    };
    sink.finish()?;
    Ok(summary)
}

/// One device of the fleet a configuration generates.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeviceInfo {
    pub device: String,
    pub profile: Profile,
    pub ip: String,
    /// Mean events per minute over a weekday.
    pub rate_per_min: f64,
    /// What its `value` reports (`temperature_c`, `humidity_pct`, `cpu_pct`,
    /// `queue_depth`), if anything.
    pub reading: Option<&'static str>,
}

/// The fleet `cfg` generates (the same devices [`generate`] uses), e.g. to break detection
/// results down by profile.
pub fn fleet(cfg: &GeneratorConfig) -> Vec<DeviceInfo> {
    let fleet = fleet::Fleet::build(cfg.devices, cfg.rate_per_min, cfg.seed);
    fleet
        .devices
        .iter()
        .map(|d| DeviceInfo {
            device: d.name.clone(),
            profile: d.profile,
            ip: String::from_utf8_lossy(fleet.ips.text(d.src)).into_owned(),
            rate_per_min: d.rate,
            reading: d.metric.as_ref().map(|m| m.kind.name()),
        })
        .collect()
}

/// Writes labels as JSON lines.
pub fn write_labels<W: Write>(labels: &[Label], out: W) -> io::Result<()> {
    let mut out = io::BufWriter::new(out);
    for l in labels {
        serde_json::to_writer(&mut out, l).map_err(io::Error::other)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

/// Reads labels written by [`write_labels`] (blank lines skipped).
pub fn read_labels<R: BufRead>(input: R) -> io::Result<Vec<Label>> {
    let mut labels = Vec::new();
    for line in input.lines() {
        let line = line?;
        if !line.trim().is_empty() {
            labels.push(serde_json::from_str(&line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?);
        }
    }
    Ok(labels)
}
